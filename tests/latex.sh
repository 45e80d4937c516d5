#!/bin/sh
# tests/latex.sh -- every --standalone case of tests/golden/latex.test, and
# every derivation of tests/golden/steps.test and seeds.test written as a
# LaTeX document,
# must compile with `pdflatex -halt-on-error` (amsmath and amssymb only), and
# without an "Overfull \hbox": long rows break inside align*.
#
# Without pdflatex the check is skipped with a message, except under CI
# (CI=true), where .ci/run installs texlive-latex-base and a missing
# pdflatex is a failure.
set -u
M=${MATDIFF:-./matdiff}
if ! command -v pdflatex >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
        echo "latex: pdflatex not found (CI installs texlive-latex-base)"
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "latex: pdflatex not found: skipping (apt-get install texlive-latex-base)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the cases: name, args, program (one line each)
awk '/^%%case /{name=$2} /^%%args /{args=substr($0, 8)}
     /^%%program$/{getline prog; if (args ~ /--standalone/) print name "\t" args "\t" prog}' \
    tests/golden/latex.test > "$tmp/cases"
# and every derivation of steps.test as a LaTeX document (one-line programs)
awk '/^%%case /{name=$2} /^%%args /{args=substr($0, 8)}
     /^%%program$/{getline prog; if (args ~ /--steps/) print "steps-" name "\t" args " --format latex --standalone\t" prog}' \
    tests/golden/steps.test >> "$tmp/cases"
# and the seed questions' derivations
awk '/^%%case /{name=$2; args=""} /^%%args /{args=substr($0, 8)}
     /^%%program$/{getline prog; if (args !~ /-s|--order|--format/) { sub(/ *@PROG/, "", args); print "seeds-" name "\t" args " --steps --format latex --standalone\t" prog } }' \
    tests/golden/seeds.test >> "$tmp/cases"
pass=0 fail=0
while IFS="$(printf '\t')" read -r name args prog; do
    # shellcheck disable=SC2086 # args are words
    printf '%s\n' "$prog" | $M $args > "$tmp/$name.tex" 2> "$tmp/$name.err"
    if (cd "$tmp" && pdflatex -halt-on-error -interaction=nonstopmode "$name.tex" > "$name.out" 2>&1); then
        # long rows are broken inside align* (md_latex_row): nothing may run
        # into the margin
        if grep -q '^Overfull \\hbox' "$tmp/$name.log"; then
            fail=$((fail + 1))
            echo "FAIL latex $name: a line runs into the margin:"
            grep -A2 '^Overfull \\hbox' "$tmp/$name.log" | head -12
        else
            pass=$((pass + 1))
        fi
    else
        fail=$((fail + 1))
        echo "FAIL latex $name: pdflatex could not compile the document:"
        grep -A4 '^!' "$tmp/$name.log" | head -12
    fi
done < "$tmp/cases"
echo "latex: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
