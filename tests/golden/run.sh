#!/bin/sh
# tests/golden/run.sh -- the golden CLI cases of matdiff (format: README.md).
#
#   MATDIFF="./matdiff" sh tests/golden/run.sh [FILE.test ...]
#
# MATDIFF is used as a command prefix, unquoted, so it may start with a
# valgrind invocation.  Without FILE arguments every tests/golden/*.test runs.
# Each failing case prints a FAIL line (then a diff or the messages); the last
# line is "N passed, N failed" and the exit status is 1 when anything failed.
#
# Every case that exits 0 and computes a gradient is also re-run with
# --check (must exit 0, no "FAILED") and its output is fed back to
# --simplify (must exit 0; for a single gradient the last lines must match).
# For --simplify cases the output's --simplify must end with the same line.

MATDIFF=${MATDIFF:-./matdiff}
here=$(dirname "$0")
if [ $# -eq 0 ]; then set -- "$here"/*.test; fi

# Time limits (%%max-seconds) only mean something for a bare binary, not
# under valgrind.  (make passes "$(VALGRIND) ./matdiff": count the words.)
count_words() { nwords=$#; }
count_words $MATDIFF
if [ "$nwords" = 1 ]; then timed=1; else timed=0; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/matdiff-golden.XXXXXX") || exit 3
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# Split the .test files: case N gets $work/N.sh (shell assignments for the
# one-line directives) and the files $work/N.program, N.stdout, N.stderr for
# the sections present (the program goes straight to N.prog.md).  Trailing blank lines of a section are dropped.
awk -v work="$work" '
function q(s) { gsub(/\047/, "\047\\\047\047", s); return "\047" s "\047" }
function set(var, val) { printf "%s=%s\n", var, q(val) > meta }
function flush(   f, out, n, i) {
    if (meta == "") return
    for (f in nlines) {
        out = base "." (f == "program" ? "prog.md" : f)
        n = nlines[f]
        while (n > 0 && lines[f, n] == "") n--
        printf "" > out
        for (i = 1; i <= n; i++) print lines[f, i] > out
        close(out)
        set("has_" f, 1)
    }
    close(meta)
    meta = ""
    split("", nlines); split("", lines)
}
function rest() { r = $0; sub(/^%%[a-z-]+[ \t]*/, "", r); sec = ""; return r }
FNR == 1 { flush(); sec = "" }
/^%%case[ \t]/ {
    flush()
    base = sprintf("%s/%05d", work, ++ncase)
    meta = base ".sh"
    set("name", rest()); set("where", FILENAME ":" FNR)
    next
}
meta == "" { next }
/^%%#/ { next }
/^%%args([ \t]|$)/ { set("args", rest()); next }
/^%%exit[ \t]/ { set("want_exit", rest()); next }
/^%%program-printf[ \t]/ { set("program_printf", rest()); next }
/^%%program-gen[ \t]/ { set("program_gen", rest()); next }
/^%%stdout-contains[ \t]/ { set("stdout_contains", rest()); next }
/^%%stderr-contains[ \t]/ { set("stderr_contains", rest()); next }
/^%%stdout-max-bytes[ \t]/ { set("stdout_max_bytes", rest()); next }
/^%%max-seconds[ \t]/ { set("max_seconds", rest()); next }
/^%%no-extra[ \t]*$/ { set("no_extra", 1); sec = ""; next }
/^%%any-output[ \t]*$/ { set("any_output", 1); sec = ""; next }
/^%%(program|stdout|stderr)[ \t]*$/ { sec = substr($1, 3); nlines[sec] = 0; next }
/^%%/ { printf "%s:%d: unknown directive %s\n", FILENAME, FNR, $1 > "/dev/stderr"; bad = 1; next }
sec != "" { lines[sec, ++nlines[sec]] = $0; next }
/^[ \t]*$/ { next }
{ printf "%s:%d: text outside a section\n", FILENAME, FNR > "/dev/stderr"; bad = 1 }
END { flush(); exit bad }
' "$@" || { echo "golden: malformed test file" >&2; exit 3; }

pass=0
fail=0
# fail_case REASON [EXPECTED-FILE ACTUAL-FILE]: one FAIL line per case,
# further reasons indented under it.
fail_case() {
    if [ "$failed" = 0 ]; then
        fail=$((fail + 1))
        echo "FAIL $where $name: $1"
    else
        echo "  and: $1"
    fi
    failed=1
    if [ $# -ge 3 ]; then diff -u "$2" "$3" | sed '1,2d'; fi
}
show() { sed 's/^/  | /' "$1" | head -n "${2:-5}"; }

# Drops "$work/00001." from messages about a -f file: it shows as prog.md.
strip_work() {
    awk -v w="$p." '{ while ((i = index($0, w)) > 0) $0 = substr($0, 1, i - 1) substr($0, i + length(w)); print }' "$1" > "$1.n" &&
        mv "$1.n" "$1"
}

# last_line FILE: sets $last to the last line of FILE, without a process.
last_line() {
    last=
    while IFS= read -r l || [ -n "$l" ]; do last=$l; done < "$1"
}

for meta in "$work"/*.sh; do
    [ -f "$meta" ] || continue
    p=${meta%.sh}
    name= where= args= want_exit=0 program_printf= program_gen= stdout_contains=
    stderr_contains= stdout_max_bytes= max_seconds= no_extra= any_output=
    has_program= has_stdout= has_stderr=
    . "$meta"
    failed=0

    # The program text, into $p.prog.md.
    file=$p.prog.md
    if [ -n "$program_printf" ]; then
        # shellcheck disable=SC2059
        printf "$program_printf" > "$file"
    elif [ -n "$program_gen" ]; then
        (LC_ALL=C; export LC_ALL; eval "$program_gen") > "$file"
    elif [ -z "$has_program" ]; then
        : > "$file"
    fi

    # @PROG in args is the program as one argument, @FILE the path of the
    # program file; otherwise the program goes to standard input.
    stdin=$file
    strip=0
    case $args in *@FILE*) strip=1 ;; esac
    case $args in
        *@PROG* | *@FILE*)
            prog=$(cat "$file")
            args=$(printf '%s\n' "$args" | sed 's/@PROG/"$prog"/g; s/@FILE/"$file"/g')
            stdin=/dev/null ;;
    esac
    eval "set -- $args"

    [ "$timed" = 1 ] || max_seconds=
    [ -n "$max_seconds" ] && t0=$(date +%s)
    $MATDIFF "$@" < "$stdin" > "$p.out" 2> "$p.err"
    rc=$?
    if [ -n "$max_seconds" ]; then
        t1=$(date +%s)
        [ $((t1 - t0)) -le "$max_seconds" ] || fail_case "took $((t1 - t0)) s, limit $max_seconds s"
    fi
    if [ "$strip" = 1 ]; then
        strip_work "$p.out"
        strip_work "$p.err"
    fi

    if [ "$rc" -ge 128 ]; then
        fail_case "crashed: exit $rc"
        show "$p.err"
        continue
    fi
    case "|$want_exit|" in
        *"|$rc|"*) ;;
        *) fail_case "exit $rc, want $want_exit"; show "$p.err" ;;
    esac

    if [ -z "$any_output" ]; then
        if [ -n "$stdout_contains" ]; then
            grep -F -e "$stdout_contains" "$p.out" > /dev/null || fail_case "stdout lacks '$stdout_contains'"
        elif [ -n "$stdout_max_bytes" ]; then
            size=$(wc -c < "$p.out")
            [ "$size" -le "$stdout_max_bytes" ] || fail_case "stdout has $size bytes, limit $stdout_max_bytes"
        elif [ -n "$has_stdout" ]; then
            cmp -s "$p.stdout" "$p.out" || fail_case "stdout differs" "$p.stdout" "$p.out"
        elif [ -s "$p.out" ]; then
            : > "$p.stdout"
            fail_case "stdout differs" "$p.stdout" "$p.out"
        fi
        if [ -n "$stderr_contains" ]; then
            grep -F -e "$stderr_contains" "$p.err" > /dev/null || fail_case "stderr lacks '$stderr_contains'"
        elif [ -n "$has_stderr" ]; then
            cmp -s "$p.stderr" "$p.err" || fail_case "stderr differs" "$p.stderr" "$p.err"
        elif [ -s "$p.err" ]; then
            : > "$p.stderr"
            fail_case "stderr differs" "$p.stderr" "$p.err"
        fi
    fi

    # The automatic extra checks, for successful gradient and --simplify runs.
    kind=gradient
    for a in "$@"; do
        case $a in
            -s | --simplify) kind=simplify ;;
            -h | --help | -V | --version) kind=none ;;
        esac
    done
    [ -n "$no_extra" ] && kind=none
    if [ "$rc" = 0 ] && [ "$failed" = 0 ] && [ "$kind" != none ]; then
        if [ "$kind" = gradient ]; then
            $MATDIFF --check "$@" < "$stdin" > "$p.cout" 2>&1
            crc=$?
            while IFS= read -r l; do
                case $l in *FAILED*) crc="$crc, FAILED" ;; esac
            done < "$p.cout"
            [ "$crc" = 0 ] || { fail_case "--check: exit $crc"; show "$p.cout" 8; }
        fi
        $MATDIFF --simplify < "$p.out" > "$p.rout" 2> "$p.rerr"
        rrc=$?
        if [ "$rrc" != 0 ]; then
            fail_case "round trip: --simplify of the output exits $rrc"
            show "$p.rerr"
        else
            last_line "$p.out"
            want=$last
            last_line "$p.rout"
            case $kind/$want in
                gradient/*=*) ;;   # several gradients: 'dX = ...' lines
                *)
                    if [ "$want" != "$last" ]; then
                        fail_case "round trip: the last line changes"
                        printf '  - %s\n  + %s\n' "$want" "$last"
                    fi ;;
            esac
        fi
    fi
    [ "$failed" = 0 ] && pass=$((pass + 1))
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
