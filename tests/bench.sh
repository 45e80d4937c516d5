#!/bin/sh
# tests/bench.sh -- `make bench`: wall time per seed (process start included)
# and, for norm2(W_{L+1}*tanh(W_L*...tanh(W1*x)...) - y)^2 with L layers,
# the time and the size of the printed gradient with respect to W1.
# Both must grow linearly in L: shared subexpressions are named, not copied.
# The same for the derivations (--steps) of those networks, for Hessians
# (logistic regression, a 2-layer MLP) and for the Jacobian of an L-layer
# tanh chain by its input.
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

# The emitted C code (issue "C code generation") against a hand-written
# CBLAS gradient of seed 003, when CBLAS is installed (libopenblas-dev).
echo
if [ -f /usr/include/x86_64-linux-gnu/cblas.h ] || [ -f /usr/include/cblas.h ] || \
   ls /usr/include/*/cblas.h >/dev/null 2>&1; then
    P="scalar lambda; matrix Y(n, q), X(n, p), U(p, d), V(q, d); norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2"
    $M --format c --name seed003 --size "n=${BENCH_N:-1000},p=${BENCH_N:-1000},q=${BENCH_N:-1000},d=${BENCH_D:-50}" -w U,V "$P" > "$tmp/seed003.c"
    $M --format c --name seed003 --header -w U,V "$P" > "$tmp/seed003.h"
    cc -std=c99 -O2 -I"$tmp" -o "$tmp/bench_c" tests/bench/bench_c.c tests/bench/seed003_hand.c \
        "$tmp/seed003.c" -lopenblas -lm
    OPENBLAS_NUM_THREADS=1 "$tmp/bench_c" "${BENCH_N:-1000}" "${BENCH_D:-50}" "${BENCH_R:-3}"
    R="matrix X(n, p); vector w(p), y(n); scalar lambda; norm2(X*w - y)^2 + lambda*norm2(w)^2"
    L="matrix X(n, p); vector w(p), y(n); sum(log(1 + exp(-y.*(X*w))))"
    for c in ridge logreg; do
        if [ $c = ridge ]; then prog=$R; else prog=$L; fi
        $M --format c --name $c --size n=4000,p=2000 -w w "$prog" > "$tmp/$c.c"
        $M --format c --name $c --header -w w "$prog" > "$tmp/$c.h"
    done
    cc -std=c99 -O2 -I"$tmp" -o "$tmp/bench_c2" tests/bench/bench_c2.c "$tmp/ridge.c" "$tmp/logreg.c" -lopenblas -lm
    OPENBLAS_NUM_THREADS=1 "$tmp/bench_c2" 4000 2000 "${BENCH_R:-3}"
    # the LAPACK path: one LU, solves, a fused trace
    G="symmetric S(p, p); matrix Y(p, N); scalar c; c*logdet(S) + tr(Y'*inv(S)*Y)"
    $M --format c --name gauss --size p=500,N=2000 -w S,Y "$G" > "$tmp/gauss.c"
    $M --format c --name gauss --header -w S,Y "$G" > "$tmp/gauss.h"
    cc -std=c99 -O2 -I"$tmp" -o "$tmp/bench_c3" tests/bench/bench_c3.c "$tmp/gauss.c" -lopenblas -lm
    OPENBLAS_NUM_THREADS=1 "$tmp/bench_c3" 500 2000 "${BENCH_R:-3}"
else
    echo "C code benchmark skipped: no cblas.h (apt-get install libopenblas-dev)"
fi
