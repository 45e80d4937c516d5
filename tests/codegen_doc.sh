#!/bin/sh
# tests/codegen_doc.sh -- the "Compiling and calling" example of
# docs/codegen.md, run as a user would run it.
#
# A calling example that does not compile is a wrong answer in the docs (an
# earlier version initialised dims fields the generated struct did not have).
# This script takes the shell block and the C block of that section from the
# page itself, runs the shell block with the matdiff under test, compiles the
# C block with -Wall -Wextra -Werror, adds a main() that runs a few descent
# steps on random data and checks that f went down, and compiles a C++ file
# that includes the header and calls the function, linked against the object
# the C compiler made (the header's extern "C").
#
#   MATDIFF=./matdiff sh tests/codegen_doc.sh [docs/codegen.md]
set -eu
MATDIFF=${MATDIFF:-./matdiff}
DOC=${1:-docs/codegen.md}
CC=${CC:-cc}
CXX=${CXX:-c++}
case $MATDIFF in /*) ;; *) MATDIFF=$(pwd)/$MATDIFF ;; esac
case $DOC in /*) ;; *) DOC=$(pwd)/$DOC ;; esac
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"

# The section's first ```sh block and its ```c block.
awk '/^## Compiling and calling/ { on = 1; next } /^## / { on = 0 }
     on && /^```sh$/ && !done_sh { sh = 1; next } on && /^```c$/ { c = 1; next }
     /^```$/ { if (sh) done_sh = 1; sh = 0; c = 0; next }
     sh { print > "build.sh" } c { print > "step.c" }' "$DOC"
[ -s build.sh ] && [ -s step.c ] || { echo "codegen_doc: no sh/c block under 'Compiling and calling' in $DOC"; exit 1; }

# The shell block, with matdiff the binary under test, every compiler call
# strict, and the C block (step.c) linked into app beside the main below.
sed -e "s|^matdiff |\"$MATDIFF\" |" -e 's|^cc -o app app.c|cc -o app app.c step.c|' \
    -e "s|^cc |$CC -std=c11 -Wall -Wextra -Wpedantic -Werror |" build.sh > run.sh
cat > app.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include "lowrank.h"
void step(long n, long m, long p, long q, double lambda, const double *Y, const double *X,
          double *U, double *V, double rate, int iters);
static double *rnd(long k, unsigned *s)
{
    double *a = malloc((size_t)k * sizeof *a);
    for (long i = 0; i < k; i++) *s = *s * 1103515245u + 12345u, a[i] = (double)(*s >> 8 & 0xffff) / 65536.0 - 0.5;
    return a;
}
int main(void)
{
    long n = 7, m = 5, p = 4, q = 3;
    unsigned s = 1;
    double *Y = rnd(n * m, &s), *X = rnd(n * p, &s), *U = rnd(p * q, &s), *V = rnd(m * q, &s);
    lowrank_dims d = {.n = n, .m = m, .p = p, .q = q};
    double *work = malloc(lowrank_workspace(&d) * sizeof *work);
    double f0 = lowrank(&d, 0.1, Y, X, U, V, NULL, NULL, work);
    step(n, m, p, q, 0.1, Y, X, U, V, 0.01, 50);
    double f1 = lowrank(&d, 0.1, Y, X, U, V, NULL, NULL, work);
    printf("f: %g -> %g\n", f0, f1);
    free(Y), free(X), free(U), free(V), free(work);
    return !(f1 < f0);
}
EOF
sh -e run.sh > run.out 2>&1 ||
    { echo "codegen_doc: the sh block of $DOC (with the C block as step.c) failed:"; cat run.sh run.out; exit 1; }
./app > app.out || { echo "codegen_doc: the example did not decrease f:"; cat app.out; exit 1; }

# C++: include the header, call the function, link the C object.
cat > cxx.cpp <<'EOF'
#include <vector>
#include "lowrank.h"
int main()
{
    lowrank_dims d = {2, 2, 2, 2};   // n, m, p, q in the order of the header
    std::vector<double> Y(4, 1.0), X(4, 0.5), U(4, 0.25), V(4, 0.125), gU(4), gV(4);
    std::vector<double> work(lowrank_workspace(&d));
    double f = lowrank(&d, 0.5, Y.data(), X.data(), U.data(), V.data(), gU.data(), gV.data(), work.data());
    return f > 0 ? 0 : 1;
}
EOF
if command -v "$CXX" > /dev/null 2>&1; then
    $CXX -Wall -Wextra -Werror -c cxx.cpp -o cxx.o 2> cxx.err ||
        { echo "codegen_doc: lowrank.h does not compile as C++:"; cat cxx.err; exit 1; }
    $CXX -o cxx cxx.o lowrank.o -lopenblas -lm 2> cxx.err ||
        { echo "codegen_doc: a C++ program does not link the C object:"; cat cxx.err; exit 1; }
    ./cxx || { echo "codegen_doc: the C++ call returned a wrong f"; exit 1; }
    echo "codegen_doc: the docs example compiles and descends ($(cat app.out)); lowrank.h links from C++"
else
    echo "codegen_doc: the docs example compiles and descends ($(cat app.out)); no C++ compiler, C++ part skipped"
fi
