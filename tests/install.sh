#!/bin/sh
# tests/install.sh -- `make install` and `make uninstall` as a packager
# runs them: into a temporary DESTDIR with a PREFIX of its own, from a
# built tree.  Checks that the binary runs from there, that the man page
# is where man finds it and names the installed docs (not docs/... of the
# source tree), that every doc is there, and that uninstall leaves
# nothing behind.  `man matdiff` is run when man is installed.
#
#   BIN=./matdiff B=build sh tests/install.sh   (make install-check; the
#   binary and build folder of the make that runs it, so that the ASan
#   suite installs its own binary instead of building the plain one)
set -eu
BIN=${BIN:-matdiff}
B=${B:-build}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PREFIX=/opt/matdiff-test
D=$T/stage
fail() { echo "FAIL install: $*"; exit 1; }
make -s install BIN="$BIN" B="$B" DESTDIR="$D" PREFIX="$PREFIX" > "$T/install.log" 2>&1 || { cat "$T/install.log"; fail "make install failed"; }
R=$D$PREFIX
[ -x "$R/bin/matdiff" ] || fail "no $R/bin/matdiff"
out=$("$R/bin/matdiff" --wrt x "norm2(x)^2" | tail -n 1) || fail "the installed binary does not run"
[ "$out" = "2*x" ] || fail "the installed binary prints '$out'"
M=$R/share/man/man1/matdiff.1
[ -f "$M" ] || fail "no man page at $M"
grep -q "$PREFIX/share/doc/matdiff/language.md" "$M" || fail "the man page does not name the installed docs"
! grep -q '^\.I docs/' "$M" || fail "the man page still names docs/ of the source tree"
for f in README.md language.md identities.md derivations.md codegen.md arrays.md numpy.md torch.md \
         octave.md developer.md; do
    [ -f "$R/share/doc/matdiff/$f" ] || fail "no $f in $R/share/doc/matdiff"
done
if command -v man > /dev/null 2>&1; then
    MANPATH=$R/share/man man -P cat matdiff > "$T/man.txt" 2> "$T/man.err" || fail "man matdiff: $(cat "$T/man.err")"
    grep -q 'matdiff' "$T/man.txt" || fail "man matdiff printed no page"
fi
make -s uninstall BIN="$BIN" B="$B" DESTDIR="$D" PREFIX="$PREFIX" > "$T/uninstall.log" 2>&1 || { cat "$T/uninstall.log"; fail "make uninstall failed"; }
left=$(find "$D" -type f | head -5)
[ -z "$left" ] || fail "make uninstall left: $left"
if command -v man > /dev/null 2>&1; then how="man matdiff works"; else how="man is not installed: page checked as a file"; fi
echo "install: make install and make uninstall into DESTDIR/PREFIX: ok ($how)"
