/*
 * bench_c4.c -- weighted least squares in the C backend benchmark
 * (make bench, issue 11): the emitted code for
 *
 *   f = norm2(diag(s)*(X*w - y))^2,   g = 2 X'(s.^2 .* (X w - y))   by w,
 *
 * X n x p, at n = 4000, p = 50 (default), against hand-written CBLAS:
 * r = X w - y (dgemv), f = sum(s_i^2 r_i^2) and r_i *= s_i^2 in one loop,
 * g = 2 X' r (dgemv transposed); one n-vector of scratch.  diag(s) must
 * stay a scaling of rows: an n x n diag(s) would be 16e6 doubles and n^2 p
 * flops, and the workspace must stay O(n + p).  wls.c is emitted without
 * --size, as users call matdiff, wls_sized.c with --size n=...,p=..., for
 * comparison.  One call takes a fraction of a millisecond, so each timing
 * is of K calls; single-threaded BLAS, best of R.  Prints the lines of
 * bench.h; the time target is 1.2.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include <cblas.h>

#include "wls.h"
#include "wls_sized.h"

/* scratch: r, n doubles; g NULL: f alone (no s.^2 .* r, no X' r) */
static double hand_wls(long n, long p, const double *X, const double *w, const double *y, const double *s,
                       double *g, double *r)
{
    memcpy(r, y, sizeof(double) * (size_t)n);
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)p, 1.0, X, (int)n, w, 1, -1.0, r, 1);
    double f = 0.0;
    for (long i = 0; i < n; i++) {
        double t = s[i] * r[i];
        f += t * t;
        if (g) r[i] = s[i] * t;
    }
    if (g) cblas_dgemv(CblasColMajor, CblasTrans, (int)n, (int)p, 2.0, X, (int)n, r, 1, 0.0, g, 1);
    return f;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 4000, p = argc > 2 ? atol(argv[2]) : 50;
    int R = argc > 3 ? atoi(argv[3]) : 5, K = argc > 4 ? atoi(argv[4]) : 50;
    unsigned seed = 13;
    double *X = rnd(n * p, &seed, 1.0), *w = rnd(p, &seed, 1.0), *y = rnd(n, &seed, 1.0), *s = rnd(n, &seed, 1.0);
    double *g1 = malloc(sizeof(double) * (size_t)p), *g2 = malloc(sizeof(double) * (size_t)p);
    double *g3 = malloc(sizeof(double) * (size_t)p), *r = malloc(sizeof(double) * (size_t)n);
    wls_dims d = {.n = n, .p = p};
    wls_sized_dims sd = {.n = n, .p = p};
    size_t we = wls_workspace(&d), ws = wls_sized_workspace(&sd), wh = (size_t)n;
    double *w1 = malloc(sizeof(double) * we), *w2 = malloc(sizeof(double) * ws);
    double tg = 1e30, tf = 1e30, ts = 1e30, th = 1e30, thf = 1e30;
    double fe = 0, ff = 0, fs = 0, fh = 0, fhf = 0;
    for (int i = 0; i < R; i++) {
        TIME(tg, K, fe = wls(&d, X, w, y, s, g1, w1));
        TIME(tf, K, ff = wls(&d, X, w, y, s, NULL, w1));
        TIME(ts, K, fs = wls_sized(&sd, X, w, y, s, g3, w2));
        TIME(th, K, fh = hand_wls(n, p, X, w, y, s, g2, r));
        TIME(thf, K, fhf = hand_wls(n, p, X, w, y, s, NULL, r));
    }
    printf("WLS       norm2(diag(s)*(X*w - y))^2 by w;  n = %ld, p = %ld, best of %d (x %d calls)\n", n, p, R, K);
    report_time("f + dw", tg, th, 1.2);
    report_time("f alone", tf, thf, 1.2);
    report_time("f + dw, --size", ts, th, 1.2);
    report_overhead(tg, tf, 3.0);
    report_work(we, ws, wh, 1.5);
    report_diff(fmax(fmax(rel(fe, fh), rel(ff, fhf)), maxrel(g1, g2, p)), fmax(rel(fs, fh), maxrel(g3, g2, p)));
    free(X), free(w), free(y), free(s), free(g1), free(g2), free(g3), free(r), free(w1), free(w2);
    return 0;
}
