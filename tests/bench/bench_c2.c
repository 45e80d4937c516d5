/*
 * bench_c2.c -- two more cases for the C backend benchmark (make bench):
 * the emitted code against hand-written CBLAS for
 *
 *   ridge:   f = ||X w - y||^2 + lambda ||w||^2,   g = 2 X'(X w - y) + 2 lambda w
 *   logreg:  f = sum(log(1 + exp(-y .* (X w)))),   g = -X'(y .* t ./ (1 + t)), t = exp(-y .* (X w))
 *
 * at n = 4000, p = 2000 (default), single-threaded BLAS, best of R runs.
 * Both are two passes over X when the gradient is asked for (dgemv, then
 * dgemv transposed) and one for f alone, and need one n-vector of scratch
 * by hand.  ridge.c and logreg.c are emitted without --size, as users call
 * matdiff; ridge_sized.c and logreg_sized.c with --size n=...,p=..., for
 * comparison.  The hand-written f alone is hand_ridge with g NULL (it then
 * computes X w - y and two dot products) and hand_logreg_f.  Prints the
 * lines of bench.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include <cblas.h>

#include "ridge.h"
#include "ridge_sized.h"
#include "logreg.h"
#include "logreg_sized.h"

/* scratch: r, n doubles */
static double hand_ridge(long n, long p, const double *X, const double *w, const double *y, double lambda,
                         double *g, double *r)
{
    memcpy(r, y, sizeof(double) * (size_t)n);
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)p, 1.0, X, (int)n, w, 1, -1.0, r, 1);
    double f = cblas_ddot((int)n, r, 1, r, 1) + lambda * cblas_ddot((int)p, w, 1, w, 1);
    if (g) {
        memcpy(g, w, sizeof(double) * (size_t)p);
        cblas_dgemv(CblasColMajor, CblasTrans, (int)n, (int)p, 2.0, X, (int)n, r, 1, 2.0 * lambda, g, 1);
    }
    return f;
}

/* scratch: z, n doubles */
static double hand_logreg(long n, long p, const double *X, const double *w, const double *y, double *g,
                          double *z)
{
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)p, 1.0, X, (int)n, w, 1, 0.0, z, 1);
    double f = 0.0;
    for (long i = 0; i < n; i++) {
        double t = exp(-y[i] * z[i]);
        f += log(1.0 + t);
        z[i] = -y[i] * t / (1.0 + t);
    }
    cblas_dgemv(CblasColMajor, CblasTrans, (int)n, (int)p, 1.0, X, (int)n, z, 1, 0.0, g, 1);
    return f;
}

/* f alone; scratch: z, n doubles */
static double hand_logreg_f(long n, long p, const double *X, const double *w, const double *y, double *z)
{
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)p, 1.0, X, (int)n, w, 1, 0.0, z, 1);
    double f = 0.0;
    for (long i = 0; i < n; i++) f += log(1.0 + exp(-y[i] * z[i]));
    return f;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 4000, p = argc > 2 ? atol(argv[2]) : 2000;
    int R = argc > 3 ? atoi(argv[3]) : 5;
    unsigned s = 11;
    double *X = rnd(n * p, &s, 0.05), *w = rnd(p, &s, 1.0), *y = rnd(n, &s, 1.0), lambda = 0.1;
    for (long i = 0; i < n; i++) y[i] = y[i] < 0 ? -1.0 : 1.0;
    double *g1 = malloc(sizeof(double) * (size_t)p), *g2 = malloc(sizeof(double) * (size_t)p);
    double *g3 = malloc(sizeof(double) * (size_t)p);
    double *tmp = malloc(sizeof(double) * (size_t)n);
    ridge_dims rd = {.n = n, .p = p};
    ridge_sized_dims rsd = {.n = n, .p = p};
    logreg_dims ld = {.n = n, .p = p};
    logreg_sized_dims lsd = {.n = n, .p = p};
    size_t wr = ridge_workspace(&rd), wrs = ridge_sized_workspace(&rsd);
    size_t wl = logreg_workspace(&ld), wls = logreg_sized_workspace(&lsd);
    double *w1 = malloc(sizeof(double) * (wr + wrs + wl + wls + 1));
    for (int c = 0; c < 2; c++) {
        double tg = 1e30, tf = 1e30, ts = 1e30, th = 1e30, thf = 1e30;
        double fe = 0, ff = 0, fs = 0, fh = 0, fhf = 0;
        for (int r = 0; r < R; r++)
            if (c == 0) {
                TIME(tg, 1, fe = ridge(&rd, X, w, y, lambda, g1, w1));
                TIME(tf, 1, ff = ridge(&rd, X, w, y, lambda, NULL, w1));
                TIME(ts, 1, fs = ridge_sized(&rsd, X, w, y, lambda, g3, w1));
                TIME(th, 1, fh = hand_ridge(n, p, X, w, y, lambda, g2, tmp));
                TIME(thf, 1, fhf = hand_ridge(n, p, X, w, y, lambda, NULL, tmp));
            } else {
                TIME(tg, 1, fe = logreg(&ld, X, w, y, g1, w1));
                TIME(tf, 1, ff = logreg(&ld, X, w, y, NULL, w1));
                TIME(ts, 1, fs = logreg_sized(&lsd, X, w, y, g3, w1));
                TIME(th, 1, fh = hand_logreg(n, p, X, w, y, g2, tmp));
                TIME(thf, 1, fhf = hand_logreg_f(n, p, X, w, y, tmp));
            }
        if (c == 0)
            printf("ridge     norm2(X*w - y)^2 + lambda*norm2(w)^2 by w;  n = %ld, p = %ld, best of %d\n", n, p, R);
        else
            printf("logreg    sum(log(1 + exp(-y.*(X*w)))) by w;  n = %ld, p = %ld, best of %d\n", n, p, R);
        report_time("f + dw", tg, th, 1.15);
        report_time("f alone", tf, thf, 1.15);
        report_time("f + dw, --size", ts, th, 1.15);
        report_overhead(tg, tf, 3.0);
        report_work(c == 0 ? wr : wl, c == 0 ? wrs : wls, (size_t)n, 1.5);
        report_diff(fmax(fmax(rel(fe, fh), rel(ff, fhf)), maxrel(g1, g2, p)), fmax(rel(fs, fh), maxrel(g3, g2, p)));
    }
    free(X), free(w), free(y), free(g1), free(g2), free(g3), free(tmp), free(w1);
    return 0;
}
