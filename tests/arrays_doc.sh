#!/bin/sh
# tests/arrays_doc.sh -- the "A complete example" section of each page about
# the array targets, run as a user would run it: its sh blocks with the
# matdiff under test, its python blocks with Debian's python3 (NumPy;
# a block that imports torch only when PyTorch is installed) and its octave
# blocks with octave (when installed), every block in the order of the page,
# in one fresh folder per page.  Each block asserts its result (f lowered,
# an optimisation converged, a gradient matching autograd's), so a page
# whose example rots fails here.
#
#   MATDIFF=./matdiff ARRAYS_PYTHON=/usr/bin/python3 sh tests/arrays_doc.sh [PAGE...]
#
# PAGE defaults to docs/arrays.md (the overview), docs/numpy.md,
# docs/torch.md and docs/octave.md (make arrays runs them all).
set -eu
MATDIFF=${MATDIFF:-./matdiff}
PY=${ARRAYS_PYTHON:-/usr/bin/python3}
case $MATDIFF in /*) ;; *) MATDIFF=$(pwd)/$MATDIFF ;; esac
[ $# -gt 0 ] || set -- docs/arrays.md docs/numpy.md docs/torch.md docs/octave.md
if "$PY" -c 'import torch' 2>/dev/null; then have_torch=1; else have_torch=0; fi
if command -v octave >/dev/null 2>&1; then have_octave=1; else have_octave=0; fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for DOC in "$@"; do
    case $DOC in /*) ;; *) DOC=$(pwd)/$DOC ;; esac
    page=$(basename "$DOC")
    [ -f "$DOC" ] || { echo "arrays_doc: no page $DOC"; exit 1; }
    D=$T/${page%.md}
    mkdir "$D"
    # block1.sh, block2.py, block3.m, ...: the section's fenced blocks in
    # order (an Octave script's name must be an identifier: blockN is)
    (cd "$D" && awk '/^## A complete example/ { on = 1; next } /^## / { on = 0 }
        on && /^```(sh|python|octave)$/ {
            ext = substr($0, 4); if (ext == "python") ext = "py"; if (ext == "octave") ext = "m"
            out = "block" (++nb) "." ext; print out >> "blocks"; next }
        /^```/ { out = ""; next }
        out != "" { print > out }' "$DOC")
    blocks=$(cat "$D/blocks" 2>/dev/null || true)
    case $blocks in *.sh*) ;; *) echo "arrays_doc: no sh block under 'A complete example' in $page"; exit 1 ;; esac
    case $blocks in *.py*|*.m*) ;; *) echo "arrays_doc: no python or octave block under 'A complete example' in $page"; exit 1 ;; esac
    ran=0 skipped=0
    for b in $blocks; do
        case $b in
        *.sh)
            sed -e "s|^matdiff |\"$MATDIFF\" |" "$D/$b" > "$D/run-$b"
            (cd "$D" && sh -e "run-$b") || { echo "arrays_doc: $page: the sh block $b failed"; exit 1; }
            ;;
        *.py)
            if [ $have_torch = 0 ] && grep -Eq '^[[:space:]]*(import|from) torch' "$D/$b"; then
                echo "arrays_doc: $page: no torch: the PyTorch block $b not run"; skipped=$((skipped + 1)); continue
            fi
            (cd "$D" && "$PY" "$b") || { echo "arrays_doc: $page: the python block $b failed"; exit 1; }
            ;;
        *.m)
            if [ $have_octave = 0 ]; then
                echo "arrays_doc: $page: no octave: the Octave block $b not run"; skipped=$((skipped + 1)); continue
            fi
            # Octave 7.3 says "error: ignoring const execution_exception& while
            # preparing to exit" at every exit of a script; only that line is dropped
            rc=0
            (cd "$D" && octave --no-gui --quiet --norc "$b" 2> octave.err) || rc=$?
            grep -v 'ignoring const execution_exception' "$D/octave.err" >&2 || true
            [ "$rc" = 0 ] || { echo "arrays_doc: $page: the Octave block $b failed (exit $rc)"; exit 1; }
            ;;
        esac
        ran=$((ran + 1))
    done
    echo "arrays_doc: the example of $page ran (blocks run: $ran, skipped: $skipped)"
done
