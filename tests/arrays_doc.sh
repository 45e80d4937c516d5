#!/bin/sh
# tests/arrays_doc.sh -- the "A complete example" section of docs/arrays.md,
# run as a user would run it: its sh block with the matdiff under test, its
# two python blocks with Debian's python3 (NumPy; PyTorch when installed)
# and its octave block with octave (when installed).  Each block asserts
# that gradient descent lowered f.
#
#   MATDIFF=./matdiff sh tests/arrays_doc.sh [docs/arrays.md]
set -eu
MATDIFF=${MATDIFF:-./matdiff}
DOC=${1:-docs/arrays.md}
PY=${ARRAYS_PYTHON:-/usr/bin/python3}
case $MATDIFF in /*) ;; *) MATDIFF=$(pwd)/$MATDIFF ;; esac
case $DOC in /*) ;; *) DOC=$(pwd)/$DOC ;; esac
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
awk '/^## A complete example/ { on = 1; next } /^## / { on = 0 }
     on && /^```sh$/ { out = "build.sh"; next }
     on && /^```python$/ { out = "use" (++np) ".py"; next }
     on && /^```octave$/ { out = "use.m"; next }
     /^```$/ { out = ""; next }
     out != "" { print > out }' "$DOC"
for f in build.sh use1.py use2.py use.m; do
    [ -s "$f" ] || { echo "arrays_doc: no $f block under 'A complete example' in $DOC"; exit 1; }
done
sed -e "s|^matdiff |\"$MATDIFF\" |" build.sh > run.sh
sh -e run.sh
"$PY" use1.py
if "$PY" -c 'import torch' 2>/dev/null; then "$PY" use2.py; else echo "arrays_doc: no torch: the PyTorch block not run"; fi
if command -v octave >/dev/null 2>&1; then
    # Octave 7.3 says "error: ignoring const execution_exception& while
    # preparing to exit" at every exit of a script; only that line is dropped
    rc=0
    octave --no-gui --quiet --norc use.m 2> octave.err || rc=$?
    grep -v 'ignoring const execution_exception' octave.err >&2 || true
    [ "$rc" = 0 ] || { echo "arrays_doc: the Octave block failed (exit $rc)"; exit 1; }
else
    echo "arrays_doc: no octave: the Octave block not run"
fi
echo "arrays_doc: the example of $(basename "$DOC") ran"
