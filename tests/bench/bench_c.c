/*
 * bench_c.c -- times the C code matdiff emits for seed 003,
 *
 *   f = norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2   by U and V,
 *
 * against the hand-written CBLAS gradient (seed003_hand.c), at n = p = q =
 * N and d = D (default 1000 and 50, as in the issue), single-threaded BLAS,
 * best of R runs.
 *
 * seed003.c is emitted without --size, as users call matdiff: its product
 * chains are bracketed at run time from dims.  seed003_sized.c is the same
 * program with --size n=N,p=N,q=N,d=D (bracketed at emit time), for
 * comparison.  The hand-written f alone is hand() with NULL gradients,
 * which then computes X U, E = X U V' - Y, U'U and V'V and nothing else:
 * what one would write for f alone.  Prints the lines of bench.h; the
 * targets are the (time 1.15, gradient overhead 3, workspace 1.5).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench.h"

#include "seed003.h"
#include "seed003_sized.h"

size_t hand_workspace(long n, long p, long q, long d);
double hand(long n, long p, long q, long d, double lambda, const double *Y, const double *X,
            const double *U, const double *V, double *dU, double *dV, double *work);

int main(int argc, char **argv)
{
    long N = argc > 1 ? atol(argv[1]) : 1000, D = argc > 2 ? atol(argv[2]) : 50;
    int R = argc > 3 ? atoi(argv[3]) : 5;
    long n = N, p = N, q = N, d = D;
    unsigned s = 7;
    double lambda = 0.5;
    double *Y = rnd(n * q, &s, 1.0), *X = rnd(n * p, &s, 1.0), *U = rnd(p * d, &s, 1.0), *V = rnd(q * d, &s, 1.0);
    double *dU = malloc(sizeof(double) * (size_t)(p * d)), *dV = malloc(sizeof(double) * (size_t)(q * d));
    double *sU = malloc(sizeof(double) * (size_t)(p * d)), *sV = malloc(sizeof(double) * (size_t)(q * d));
    double *hU = malloc(sizeof(double) * (size_t)(p * d)), *hV = malloc(sizeof(double) * (size_t)(q * d));
    seed003_dims dims = {.n = n, .p = p, .q = q, .d = d};
    seed003_sized_dims sdims = {.n = n, .p = p, .q = q, .d = d};
    size_t we = seed003_workspace(&dims), ws = seed003_sized_workspace(&sdims), wh = hand_workspace(n, p, q, d);
    double *w1 = malloc(sizeof(double) * we), *w2 = malloc(sizeof(double) * ws), *w3 = malloc(sizeof(double) * wh);
    double tg = 1e30, tf = 1e30, ts = 1e30, th = 1e30, thf = 1e30;
    double fe = 0, ff = 0, fs = 0, fh = 0, fhf = 0;
    for (int r = 0; r < R; r++) {
        TIME(tg, 1, fe = seed003(&dims, lambda, Y, X, U, V, dU, dV, w1));
        TIME(tf, 1, ff = seed003(&dims, lambda, Y, X, U, V, NULL, NULL, w1));
        TIME(ts, 1, fs = seed003_sized(&sdims, lambda, Y, X, U, V, sU, sV, w2));
        TIME(th, 1, fh = hand(n, p, q, d, lambda, Y, X, U, V, hU, hV, w3));
        TIME(thf, 1, fhf = hand(n, p, q, d, lambda, Y, X, U, V, NULL, NULL, w3));
    }
    double e = fmax(fmax(rel(fe, fh), rel(ff, fhf)), fmax(maxrel(dU, hU, p * d), maxrel(dV, hV, q * d)));
    double es = fmax(rel(fs, fh), fmax(maxrel(sU, hU, p * d), maxrel(sV, hV, q * d)));
    printf("seed 003  norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2 by U, V;  n = p = q = %ld, d = %ld, best of %d\n", N,
           D, R);
    report_time("f + dU + dV", tg, th, 1.15);
    report_time("f alone", tf, thf, 1.15);
    report_time("f + dU + dV, --size", ts, th, 1.15);
    report_overhead(tg, tf, 3.0);
    report_work(we, ws, wh, 1.5);
    report_diff(e, es);
    free(Y), free(X), free(U), free(V), free(dU), free(dV), free(sU), free(sV), free(hU), free(hV);
    free(w1), free(w2), free(w3);
    return 0;
}
