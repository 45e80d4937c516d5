#!/bin/sh
# tests/golden/run.sh -- the golden CLI cases of matdiff (format: README.md).
#
#   MATDIFF="./matdiff" sh tests/golden/run.sh [FILE.test ...]
#
# MATDIFF is used as a command prefix, unquoted, so it may start with a
# valgrind invocation.  Without FILE arguments every tests/golden/*.test runs.
# Each failing case prints one FAIL line followed by a diff; the last line is
# "N passed, N failed" and the exit status is 1 when anything failed.
#
# Every case that exits 0 and computes a gradient is also re-run with
# --check (must exit 0, no "FAILED") and its output is fed back to
# --simplify (must exit 0; for a single gradient the last lines must match).
# For --simplify cases the output's --simplify must end with the same line.

MATDIFF=${MATDIFF:-./matdiff}
here=$(dirname "$0")
if [ $# -eq 0 ]; then set -- "$here"/*.test; fi

# Time limits (%%max-seconds) only mean something for a bare binary.
case $MATDIFF in *' '*) timed=0 ;; *) timed=1 ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/matdiff-golden.XXXXXX") || exit 3
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Split every .test file into one directory per case: files name, where,
# args, exit, and the optional sections program, program-printf, program-gen,
# stdout, stderr, stdout-contains, stderr-contains, stdout-max-bytes,
# max-seconds, no-extra, any-output.  Trailing blank lines of a section are dropped.
awk -v work="$work" '
function flush(   f) {
    if (dir == "") return
    for (f in body) {
        out = dir "/" f
        n = nlines[f]
        while (n > 0 && lines[f, n] == "") n--
        printf "" > out
        for (i = 1; i <= n; i++) print lines[f, i] > out
        close(out)
    }
    split("", body); split("", nlines); split("", lines)
}
function put(f, text,   out) {
    out = dir "/" f; print text > out; close(out)
}
function section(f) { sec = f; body[f] = 1; nlines[f] = 0 }
FNR == 1 { flush(); dir = ""; sec = "" }
/^%%case[ \t]/ {
    flush()
    ncase++
    dir = sprintf("%s/%05d", work, ncase)
    system("mkdir \"" dir "\"")
    name = $0; sub(/^%%case[ \t]+/, "", name)
    put("name", name); put("where", FILENAME ":" FNR)
    put("exit", "0"); put("args", "")
    sec = ""
    next
}
dir == "" { next }
/^%%#/ { next }
/^%%args([ \t]|$)/ { a = $0; sub(/^%%args[ \t]*/, "", a); put("args", a); sec = ""; next }
/^%%exit[ \t]/ { a = $0; sub(/^%%exit[ \t]+/, "", a); put("exit", a); sec = ""; next }
/^%%(program-printf|program-gen|stdout-contains|stderr-contains|stdout-max-bytes|max-seconds)[ \t]/ {
    k = $1; sub(/^%%/, "", k)
    a = $0; sub(/^%%[a-z-]+[ \t]+/, "", a)
    put(k, a); sec = ""; next
}
/^%%(no-extra|any-output)[ \t]*$/ { k = $1; sub(/^%%/, "", k); put(k, "1"); sec = ""; next }
/^%%(program|stdout|stderr)[ \t]*$/ { k = $1; sub(/^%%/, "", k); section(k); next }
/^%%/ { printf "%s:%d: unknown directive %s\n", FILENAME, FNR, $1 > "/dev/stderr"; bad = 1; next }
sec != "" { lines[sec, ++nlines[sec]] = $0; next }
/^[ \t]*$/ { next }
{ printf "%s:%d: text outside a section\n", FILENAME, FNR > "/dev/stderr"; bad = 1 }
END { flush(); exit bad }
' "$@" || { echo "golden: malformed test file" >&2; exit 3; }

pass=0
fail=0

# fail_case REASON [DIFF-EXPECTED DIFF-ACTUAL]
fail_case() {
    if [ "$failed" = 0 ]; then fail=$((fail + 1)); echo "FAIL $where $name: $1"
    else echo "     and: $1"; fi
    if [ $# -ge 3 ]; then diff -u "$2" "$3" | sed '1,2d'; fi
    failed=1
}

# Replaces every occurrence of the case's temporary directory by nothing,
# so a -f file shows up in messages as plain "prog.md".
strip_work() {
    awk -v w="$d/" '{ while ((i = index($0, w)) > 0) $0 = substr($0, 1, i - 1) substr($0, i + length(w)); print }' "$1" > "$1.n" &&
        mv "$1.n" "$1"
}

last_line() { tail -n 1 "$1"; }

for d in "$work"/[0-9]*; do
    [ -d "$d" ] || continue
    read -r name < "$d/name"
    read -r where < "$d/where"
    read -r args < "$d/args" || args=
    read -r want_exit < "$d/exit"
    failed=0

    # The program text, into $d/prog.md.
    if [ -f "$d/program-printf" ]; then
        read -r fmt < "$d/program-printf"
        # shellcheck disable=SC2059
        printf "$fmt" > "$d/prog.md"
    elif [ -f "$d/program-gen" ]; then
        read -r gen < "$d/program-gen"
        (LC_ALL=C; export LC_ALL; eval "$gen") > "$d/prog.md"
    elif [ -f "$d/program" ]; then
        mv "$d/program" "$d/prog.md"
    else
        : > "$d/prog.md"
    fi

    # @PROG in args is the program as one argument, @FILE the path of the
    # program file; otherwise the program goes to standard input.
    file=$d/prog.md
    strip=0
    case $args in *@FILE*) strip=1 ;; esac
    case $args in
        *@PROG* | *@FILE*)
            prog=$(cat "$file")
            args=$(printf '%s\n' "$args" | sed 's/@PROG/"$prog"/g; s/@FILE/"$file"/g')
            stdin=/dev/null ;;
        *) stdin=$file ;;
    esac
    eval "set -- $args"

    lim=
    if [ "$timed" = 1 ] && [ -f "$d/max-seconds" ]; then
        read -r lim < "$d/max-seconds"
        t0=$(date +%s)
    fi
    $MATDIFF "$@" < "$stdin" > "$d/out" 2> "$d/err"
    rc=$?
    if [ -n "$lim" ]; then t1=$(date +%s); fi
    if [ "$strip" = 1 ]; then
        strip_work "$d/out"
        strip_work "$d/err"
    fi

    if [ "$rc" -ge 128 ]; then
        fail_case "crashed: exit $rc"
        sed 's/^/  | /' "$d/err" | head -n 5
        continue
    fi
    case "|$want_exit|" in
        *"|$rc|"*) ;;
        *) fail_case "exit $rc, want $want_exit"; sed 's/^/  | /' "$d/err" | head -n 5 ;;
    esac
    if [ -n "$lim" ] && [ $((t1 - t0)) -gt "$lim" ]; then
        fail_case "took $((t1 - t0)) s, limit $lim s"
    fi

    for s in stdout stderr; do
        [ -f "$d/any-output" ] && break
        if [ "$s" = stdout ]; then act=$d/out; else act=$d/err; fi
        if [ -f "$d/$s-contains" ]; then
            read -r needle < "$d/$s-contains"
            grep -F -e "$needle" "$act" > /dev/null || fail_case "$s lacks '$needle'"
        elif [ -f "$d/$s-max-bytes" ]; then
            read -r lim < "$d/$s-max-bytes"
            size=$(wc -c < "$act")
            [ "$size" -le "$lim" ] || fail_case "$s has $size bytes, limit $lim"
        else
            [ -f "$d/$s" ] || : > "$d/$s"
            cmp -s "$d/$s" "$act" || fail_case "$s differs" "$d/$s" "$act"
        fi
    done

    # The automatic extra checks, for successful gradient and --simplify runs.
    kind=gradient
    for a in "$@"; do
        case $a in
            -s | --simplify) kind=simplify ;;
            -h | --help | -V | --version) kind=none ;;
        esac
    done
    [ -f "$d/no-extra" ] && kind=none
    if [ "$rc" = 0 ] && [ "$failed" = 0 ] && [ "$kind" != none ]; then
        if [ "$kind" = gradient ]; then
            $MATDIFF --check "$@" < "$stdin" > "$d/cout" 2>&1
            crc=$?
            if [ "$crc" != 0 ] || grep FAILED "$d/cout" > /dev/null; then
                fail_case "--check: exit $crc"
                sed 's/^/  | /' "$d/cout" | head -n 8
            fi
        fi
        $MATDIFF --simplify < "$d/out" > "$d/rout" 2> "$d/rerr"
        rrc=$?
        if [ "$rrc" != 0 ]; then
            fail_case "round trip: --simplify of the output exits $rrc"
            sed 's/^/  | /' "$d/rerr" | head -n 5
        else
            want=$(last_line "$d/out")
            case $kind/$want in
                gradient/*=*) ;;   # several gradients: 'dX = ...' lines
                *)
                    got=$(last_line "$d/rout")
                    if [ "$want" != "$got" ]; then
                        fail_case "round trip: last line changes"
                        printf '  - %s\n  + %s\n' "$want" "$got"
                    fi ;;
            esac
        fi
    fi
    [ "$failed" = 0 ] && pass=$((pass + 1))
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
