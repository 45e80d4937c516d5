#!/bin/sh
# tests/bench.sh -- `make bench`: wall time per seed (process start included)
# and, for norm2(W_{L+1}*tanh(W_L*...tanh(W1*x)...) - y)^2 with L layers,
# the time and the size of the printed gradient with respect to W1.
# Both must grow linearly in L: shared subexpressions are named, not copied.
# The same for the derivations (--steps) of those networks, for Hessians
# (logistic regression, a 2-layer MLP) and for the Jacobian of an L-layer
# tanh chain by its input.  Last, the emitted C code (f and gradients,
# Hessian-vector products) against hand-written CBLAS and LAPACK (best of
# BENCH_R runs, see below); the emitted NumPy code for seed 003 against
# hand-written NumPy and PyTorch autograd.
set -eu
M=${MATDIFF:-./matdiff}
RUNS=${RUNS:-20}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

now() { date +%s%N; }
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
echo "matdiff bench on $(uname -m), $(nproc) cores${cpu:+, $cpu}"
echo "command: make bench   (each time is the mean of $RUNS runs, process start included)"
echo

# name|wrt|program
cat > "$tmp/seeds" <<'SEEDS'
seed 000|V|function f; norm2(vector(1)'*f(X*V))^2
seed 001|W|vector alpha; function h; norm2(h(X*W)*alpha - y)^2
seed 002|Phi|scalar beta; matrix Phi; beta*sum(abs(Phi'*Phi - eye))
seed 003|U,V|scalar lambda; norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2
seed 004|gamma|matrix gamma; norm2(R - P.*(gamma*gamma'))^2
SEEDS
printf '%-10s %12s\n' case "ms/run"
while IFS='|' read -r name wrt prog; do
    t0=$(now)
    i=0
    while [ $i -lt "$RUNS" ]; do $M -w "$wrt" "$prog" >/dev/null; i=$((i + 1)); done
    t1=$(now)
    awk -v a="$t0" -v b="$t1" -v n="$RUNS" -v c="$name" 'BEGIN { printf "%-10s %12.2f\n", c, (b - a) / n / 1e6 }'
done < "$tmp/seeds"
echo

printf '%-8s %12s %14s %14s\n' layers "ms/run" "output bytes" "bytes/layer"
for L in 1 10 100 1000; do
    awk -v L="$L" 'BEGIN { e = "tanh(W1*x)"; for (i = 2; i <= L; i++) e = "tanh(W" i "*" e ")";
                           printf "norm2(W%d*%s - y)^2\n", L + 1, e }' > "$tmp/net$L"
    runs=$RUNS
    [ "$L" -ge 1000 ] && runs=5
    t0=$(now)
    i=0
    while [ $i -lt "$runs" ]; do $M -w W1 -f "$tmp/net$L" > "$tmp/out$L"; i=$((i + 1)); done
    t1=$(now)
    size=$(wc -c < "$tmp/out$L")
    awk -v a="$t0" -v b="$t1" -v n="$runs" -v L="$L" -v s="$size" \
        'BEGIN { printf "%-8d %12.2f %14d %14.1f\n", L, (b - a) / n / 1e6, s, s / L }'
done

# The derivations of the same networks (--steps, text and LaTeX): linear in
# L too, because repeated subexpressions are named (T1 = ...).
echo
printf '%-8s %12s %14s %14s %14s\n' layers "steps ms" "steps bytes" "latex ms" "latex bytes"
for L in 1 10 100 1000; do
    runs=$RUNS
    [ "$L" -ge 100 ] && runs=3
    for fmt in text latex; do
        t0=$(now)
        i=0
        while [ $i -lt "$runs" ]; do $M --steps --format $fmt -w W1 -f "$tmp/net$L" > "$tmp/steps$fmt$L"; i=$((i + 1)); done
        t1=$(now)
        eval "ms_$fmt=\$(awk -v a=$t0 -v b=$t1 -v n=$runs 'BEGIN { printf \"%.2f\", (b - a) / n / 1e6 }')"
        eval "sz_$fmt=\$(wc -c < $tmp/steps$fmt$L)"
    done
    printf '%-8d %12s %14s %14s %14s\n' "$L" "$ms_text" "$sz_text" "$ms_latex" "$sz_latex"
done

# Jacobians and Hessians (d vec F/d vec X', --order 2): derived and printed
# per process, and the output size, which must stay linear in depth.
echo
printf '%-34s %10s %14s\n' "derivative" "ms/run" "output bytes"
cat > "$tmp/second" <<'SECOND'
logistic regression Hessian by w|--order 2 -w w|matrix X(n, p); vector w(p), y(n); sum(softplus(X*w)) - y'*X*w
2-layer MLP Hessian by W1|--order 2 -w W1|norm2(W2*tanh(W1*x) - y)^2
2-layer MLP Hessian, all blocks|--order 2|norm2(W2*tanh(W1*x) - y)^2
tanh(A*X*B) Jacobian by X|-w X|tanh(A*X*B)
SECOND
while IFS='|' read -r name args prog; do
    t0=$(now)
    i=0
    # shellcheck disable=SC2086 # args are words
    while [ $i -lt "$RUNS" ]; do $M $args "$prog" > "$tmp/second.out"; i=$((i + 1)); done
    t1=$(now)
    size=$(wc -c < "$tmp/second.out")
    awk -v a="$t0" -v b="$t1" -v n="$RUNS" -v c="$name" -v s="$size" \
        'BEGIN { printf "%-34s %10.2f %14d\n", c, (b - a) / n / 1e6, s }'
done < "$tmp/second"
printf '%-8s %12s %14s %14s   (Jacobian of a tanh chain by its input x)\n' layers "ms/run" "output bytes" "bytes/layer"
for L in 1 10 100; do
    awk -v L="$L" 'BEGIN { e = "tanh(W1*x)"; for (i = 2; i <= L; i++) e = "tanh(W" i "*" e ")"; print e }' > "$tmp/chain$L"
    t0=$(now)
    i=0
    while [ $i -lt "$RUNS" ]; do $M -w x -f "$tmp/chain$L" > "$tmp/chainout$L"; i=$((i + 1)); done
    t1=$(now)
    size=$(wc -c < "$tmp/chainout$L")
    awk -v a="$t0" -v b="$t1" -v n="$RUNS" -v L="$L" -v s="$size" \
        'BEGIN { printf "%-8d %12.2f %14d %14.1f\n", L, (b - a) / n / 1e6, s, s / L }'
done

# The emitted C code (issues "C code generation" and 11) against
# hand-written CBLAS and LAPACK, when CBLAS is installed (libopenblas-dev):
# seed 003, ridge and logistic regression, a Gaussian log-likelihood (the
# LAPACK path), weighted least squares, and Hessian-vector products
# (--order 2, NAME_hvp: logistic regression and a 2-layer MLP by both
# weight matrices).  Each case is emitted twice:
# without --size, as users call matdiff (the measurement: products
# bracketed at run time from dims), and with --size, one line for
# comparison.  Every line prints its ratio beside the issue's target: f and
# its gradients, f alone, the gradient's overhead and the workspace in
# doubles (NAME_workspace against the hand-written scratch).  Best of
# BENCH_R runs, single-threaded BLAS.
echo
if [ -f /usr/include/x86_64-linux-gnu/cblas.h ] || [ -f /usr/include/cblas.h ] || \
   ls /usr/include/*/cblas.h >/dev/null 2>&1; then
    BR=${BENCH_R:-20}
    # emit NAME WRT SIZES PROGRAM: NAME.c and NAME.h without --size,
    # NAME_sized.c and NAME_sized.h with --size SIZES
    emit() {
        $M --format c --name "$1" -w "$2" "$4" > "$tmp/$1.c"
        $M --format c --name "$1" --header -w "$2" "$4" > "$tmp/$1.h"
        $M --format c --name "$1_sized" --size "$3" -w "$2" "$4" > "$tmp/$1_sized.c"
        $M --format c --name "$1_sized" --header -w "$2" "$4" > "$tmp/$1_sized.h"
    }
    # emit2 NAME WRT SIZES PROGRAM: the same with --order 2 (NAME_hvp)
    emit2() {
        $M --format c --order 2 --name "$1" -w "$2" "$4" > "$tmp/$1.c"
        $M --format c --order 2 --name "$1" --header -w "$2" "$4" > "$tmp/$1.h"
        $M --format c --order 2 --name "$1_sized" --size "$3" -w "$2" "$4" > "$tmp/$1_sized.c"
        $M --format c --order 2 --name "$1_sized" --header -w "$2" "$4" > "$tmp/$1_sized.h"
    }
    # cbench PROGRAM NAME...: compile tests/bench/PROGRAM.c with the
    # emitted NAME.c and NAME_sized.c (a NAME ending in .c: that file as is)
    # into $tmp/PROGRAM
    cbench() {
        b=$1
        shift
        srcs=
        for c in "$@"; do
            case $c in
                *.c) srcs="$srcs $c" ;;
                *) srcs="$srcs $tmp/$c.c $tmp/${c}_sized.c" ;;
            esac
        done
        # shellcheck disable=SC2086 # srcs are words
        cc -std=c99 -O2 -I"$tmp" -o "$tmp/$b" "tests/bench/$b.c" $srcs -lopenblas -lm
    }
    N=${BENCH_N:-1000} D=${BENCH_D:-50}
    echo "emitted C against hand-written CBLAS/LAPACK, single-threaded BLAS (OPENBLAS_NUM_THREADS=1), best of $BR"
    P="scalar lambda; matrix Y(n, q), X(n, p), U(p, d), V(q, d); norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2"
    emit seed003 U,V "n=$N,p=$N,q=$N,d=$D" "$P"
    cbench bench_c tests/bench/seed003_hand.c seed003
    OPENBLAS_NUM_THREADS=1 "$tmp/bench_c" "$N" "$D" "$BR"
    emit ridge w n=4000,p=2000 "matrix X(n, p); vector w(p), y(n); scalar lambda; norm2(X*w - y)^2 + lambda*norm2(w)^2"
    emit logreg w n=4000,p=2000 "matrix X(n, p); vector w(p), y(n); sum(log(1 + exp(-y.*(X*w))))"
    cbench bench_c2 ridge logreg
    OPENBLAS_NUM_THREADS=1 "$tmp/bench_c2" 4000 2000 "$BR"
    # the LAPACK path: LU, inverse or solves, a fused trace
    emit gauss S,Y p=500,N=2000 "symmetric S(p, p); matrix Y(p, N); scalar c; c*logdet(S) + tr(Y'*inv(S)*Y)"
    cbench bench_c3 gauss
    OPENBLAS_NUM_THREADS=1 "$tmp/bench_c3" 500 2000 "$BR"
    emit wls w n=4000,p=50 "matrix X(n, p); vector w(p), y(n), s(n); norm2(diag(s)*(X*w - y))^2"
    cbench bench_c4 wls
    OPENBLAS_NUM_THREADS=1 "$tmp/bench_c4" 4000 50 "$BR" 50
    # Hessian-vector products: NAME_hvp against forward-over-reverse by hand
    emit2 logreg2 w n=4000,p=500 "matrix X(n, p); vector w(p), y(n); sum(log(1 + exp(-y.*(X*w))))"
    emit2 mlp W1,W2 d=500,h=300,o=100 "matrix W1(h, d), W2(o, h); vector x(d), y(o); norm2(W2*tanh(W1*x) - y)^2"
    cbench bench_c5 logreg2 mlp
    OPENBLAS_NUM_THREADS=1 "$tmp/bench_c5" 4000 500 500 300 100 "$BR" 50
else
    echo "C code benchmark skipped: no cblas.h (apt-get install libopenblas-dev)"
fi

# The emitted NumPy code for seed 003 (--format numpy) against a
# hand-written NumPy closed form with the best bracketing, and PyTorch
# autograd where python3-torch is installed (tests/bench/bench_numpy.py).
PY=${ARRAYS_PYTHON:-/usr/bin/python3}
echo
if "$PY" -c 'import numpy' 2>/dev/null; then
    N=${BENCH_N:-1000} D=${BENCH_D:-50}
    echo "emitted NumPy against hand-written NumPy, n = p = q = $N, d = $D, one BLAS thread, best of ${BENCH_R:-20}"
    $M --format numpy -w U,V "scalar lambda; matrix Y(n, q), X(n, p), U(p, d), V(q, d); norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2" > "$tmp/seed003_np.py"
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$PY" tests/bench/bench_numpy.py "$tmp/seed003_np.py" "$N" "$D" "${BENCH_R:-20}"
else
    echo "NumPy benchmark skipped: no numpy for $PY (apt-get install python3-numpy)"
fi
