#!/bin/sh
# tests/io.sh -- output that cannot be written is an error, not a success.
#
# A full disk or a closed standard output would leave a caller with a
# truncated gradient or C file and exit status 0.  matdiff flushes and
# checks its output before exiting: exit 2 (like a file that cannot be
# opened) and "matdiff: cannot write the output: REASON".  /dev/full is a
# Linux device; where it is missing that part is skipped.
#
#   MATDIFF=./matdiff sh tests/io.sh
set -u
MATDIFF=${MATDIFF:-./matdiff}
fail=0 n=0
expect() {   # expect WHAT STATUS ERRFILE
    n=$((n + 1))
    if [ "$2" != 2 ] || ! grep -q "^matdiff: cannot write the output: " "$3"; then
        echo "FAIL io: $1: exit $2, stderr: $(cat "$3")"
        fail=$((fail + 1))
    fi
}
err=$(mktemp)
trap 'rm -f "$err"' EXIT
if [ -w /dev/full ]; then
    for args in "x'*x" "--format c x'*x" "--format latex x'*x" "--steps x'*x" "--help" "--version"; do
        # shellcheck disable=SC2086
        eval "$MATDIFF $(printf '%s' "$args" | sed "s/x'\*x/\"x'*x\"/") > /dev/full 2> \"$err\""
        expect "$args > /dev/full" $? "$err"
    done
fi
$MATDIFF "x'*x" >&- 2> "$err"
expect "stdout closed" $? "$err"
echo "io: $((n - fail)) passed, $fail failed"
[ $fail -eq 0 ]
