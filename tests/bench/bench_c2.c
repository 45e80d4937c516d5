/*
 * bench_c2.c -- two more cases for the C backend benchmark (make bench):
 * the emitted code against hand-written CBLAS for
 *
 *   ridge:   f = ||X w - y||^2 + lambda ||w||^2,   g = 2 X'(X w - y) + 2 lambda w
 *   logreg:  f = sum(log(1 + exp(-y .* (X w)))),   g = -X'(y .* t ./ (1 + t)), t = exp(-y .* (X w))
 *
 * at n = 4000, p = 2000 (default), single-threaded BLAS, best of R runs.
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
#include "logreg.h"

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
    if (g) cblas_dgemv(CblasColMajor, CblasTrans, (int)n, (int)p, 1.0, X, (int)n, z, 1, 0.0, g, 1);
    return f;
}

static double maxrel(const double *a, const double *b, long n)
{
    double e = 0.0;
    for (long i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i]) / (fabs(b[i]) + 1e-12));
    return e;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 4000, p = argc > 2 ? atol(argv[2]) : 2000;
    int R = argc > 3 ? atoi(argv[3]) : 5;
    unsigned s = 11;
    double *X = rnd(n * p, &s, 0.05), *w = rnd(p, &s, 1.0), *y = rnd(n, &s, 1.0), lambda = 0.1;
    for (long i = 0; i < n; i++) y[i] = y[i] < 0 ? -1.0 : 1.0;
    double *g1 = malloc(sizeof(double) * (size_t)p), *g2 = malloc(sizeof(double) * (size_t)p);
    double *tmp = malloc(sizeof(double) * (size_t)n);
    ridge_dims rd = {.n = n, .p = p};
    logreg_dims ld = {.n = n, .p = p};
    double *w1 = malloc(sizeof(double) * (ridge_workspace(&rd) + logreg_workspace(&ld) + 1));
    double best[6] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30}, e1 = 0, e2 = 0;
    for (int r = 0; r < R; r++) {
        double t[7];
        t[0] = now();
        double fa = ridge(&rd, X, w, y, lambda, g1, w1);
        t[1] = now();
        ridge(&rd, X, w, y, lambda, NULL, w1);
        t[2] = now();
        double fb = hand_ridge(n, p, X, w, y, lambda, g2, tmp);
        t[3] = now();
        e1 = fmax(fabs(fa - fb) / fabs(fb), maxrel(g1, g2, p));
        double fc = logreg(&ld, X, w, y, g1, w1);
        t[4] = now();
        logreg(&ld, X, w, y, NULL, w1);
        t[5] = now();
        double fd = hand_logreg(n, p, X, w, y, g2, tmp);
        t[6] = now();
        e2 = fmax(fabs(fc - fd) / fabs(fd), maxrel(g1, g2, p));
        int k[6] = {0, 1, 2, 3, 4, 5};
        double dt[6] = {t[1] - t[0], t[2] - t[1], t[3] - t[2], t[4] - t[3], t[5] - t[4], t[6] - t[5]};
        for (int i = 0; i < 6; i++)
            if (dt[k[i]] < best[k[i]]) best[k[i]] = dt[k[i]];
    }
    printf("ridge and logistic regression, n = %ld, p = %ld, best of %d, single-threaded BLAS\n", n, p, R);
    printf("  ridge   emitted %7.2f ms  (f alone %6.2f)  hand %7.2f ms  ratio %5.2f x  (f+grad)/f %5.2f x  diff %.0e\n",
           1e3 * best[0], 1e3 * best[1], 1e3 * best[2], best[0] / best[2], best[0] / best[1], e1);
    printf("  logreg  emitted %7.2f ms  (f alone %6.2f)  hand %7.2f ms  ratio %5.2f x  (f+grad)/f %5.2f x  diff %.0e\n",
           1e3 * best[3], 1e3 * best[4], 1e3 * best[5], best[3] / best[5], best[3] / best[4], e2);
    free(X), free(w), free(y), free(g1), free(g2), free(tmp), free(w1);
    return 0;
}
