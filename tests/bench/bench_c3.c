/*
 * bench_c3.c -- the C backend's LAPACK path in the benchmark (make bench):
 * the Gaussian negative log-likelihood of N samples (the columns of Y,
 * p x N) with covariance S (p x p, symmetric positive definite),
 *
 *   f  = c logdet(S) + tr(Y' inv(S) Y)
 *   dS = c inv(S) - W W',   dY = 2 W,   W = inv(S) Y,
 *
 * emitted by matdiff (gauss.c, --size p=...,N=...) against hand-written
 * CBLAS + LAPACK with the same factorisation (one LU: dgetrf; with dS,
 * dgetri for inv(S), W by dgemm and W W' by dsyrk; without, W by dgetrs).  A hand-written Cholesky (dpotrf)
 * would halve the factorisation; matdiff knows S is symmetric, not that it
 * is positive definite, so it uses LU.  Single-threaded BLAS, best of R.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include <cblas.h>

#include "gauss.h"

void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void dgetrs_(const char *trans, const int *n, const int *nrhs, const double *a, const int *lda, const int *ipiv,
             double *b, const int *ldb, int *info, size_t len);
void dgetri_(const int *n, double *a, const int *lda, const int *ipiv, double *work, const int *lwork, int *info);

/* scratch: LU p*p, W p*N, work 64p, pivots */
static double hand(int p, int N, const double *S, const double *Y, double c, double *dS, double *dY, double *LU,
                   double *W, double *work, int *piv)
{
    int info = 0, lwork = 64 * p;
    memcpy(LU, S, sizeof(double) * (size_t)p * (size_t)p);
    dgetrf_(&p, &p, LU, &p, piv, &info);
    double logdet = 0.0;
    for (int k = 0; k < p; k++) logdet += log(fabs(LU[k + (long)k * p]));   /* S is positive definite */
    if (dS) {   /* inv(S) is needed anyway: W = inv(S) Y by dgemm, faster than dgetrs */
        memcpy(dS, LU, sizeof(double) * (size_t)p * (size_t)p);
        dgetri_(&p, dS, &p, piv, work, &lwork, &info);
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, p, N, p, 1.0, dS, p, Y, p, 0.0, W, p);
        /* dS = c inv(S) - W W': the lower triangle by dsyrk, then mirrored */
        cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, p, N, -1.0, W, p, c, dS, p);
        for (int j = 0; j < p; j++)
            for (int i = j + 1; i < p; i++) dS[j + (long)i * p] = dS[i + (long)j * p];
    } else {
        memcpy(W, Y, sizeof(double) * (size_t)p * (size_t)N);
        dgetrs_("N", &p, &N, LU, &p, piv, W, &p, &info, 1);
    }
    double f = c * logdet + cblas_ddot(p * N, Y, 1, W, 1);
    if (dY)
        for (long i = 0; i < (long)p * N; i++) dY[i] = 2.0 * W[i];
    return f;
}

static double maxrel(const double *a, const double *b, long n)
{
    double e = 0.0, m = 0.0;
    for (long i = 0; i < n; i++) m = fmax(m, fabs(b[i]));
    for (long i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i]) / (m + 1e-300));
    return e;
}

int main(int argc, char **argv)
{
    int p = argc > 1 ? atoi(argv[1]) : 500, N = argc > 2 ? atoi(argv[2]) : 2000;
    int R = argc > 3 ? atoi(argv[3]) : 3;
    unsigned s = 5;
    /* S = B B'/p + I: symmetric positive definite, well conditioned */
    double *B = rnd((long)p * p, &s, 1.0), *S = malloc(sizeof(double) * (size_t)p * (size_t)p);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, p, p, p, 1.0 / p, B, p, B, p, 0.0, S, p);
    for (int i = 0; i < p; i++) S[i + (long)i * p] += 1.0;
    double *Y = rnd((long)p * N, &s, 1.0), c = N;
    size_t np = (size_t)p * (size_t)p, nn = (size_t)p * (size_t)N;
    double *dS1 = malloc(sizeof(double) * np), *dS2 = malloc(sizeof(double) * np);
    double *dY1 = malloc(sizeof(double) * nn), *dY2 = malloc(sizeof(double) * nn);
    double *LU = malloc(sizeof(double) * np), *W = malloc(sizeof(double) * nn);
    double *hw = malloc(sizeof(double) * 64 * (size_t)p);
    int *piv = malloc(sizeof(int) * (size_t)p);
    gauss_dims d = {.p = p, .N = N};
    double *work = malloc(sizeof(double) * (gauss_workspace(&d) + 1));
    double best[3] = {1e30, 1e30, 1e30}, err = 0.0;
    for (int r = 0; r < R; r++) {
        double t[4];
        t[0] = now();
        double fa = gauss(&d, S, Y, c, dS1, dY1, work);
        t[1] = now();
        gauss(&d, S, Y, c, NULL, NULL, work);
        t[2] = now();
        double fb = hand(p, N, S, Y, c, dS2, dY2, LU, W, hw, piv);
        t[3] = now();
        err = fmax(fabs(fa - fb) / fabs(fb), fmax(maxrel(dS1, dS2, (long)np), maxrel(dY1, dY2, (long)nn)));
        for (int i = 0; i < 3; i++)
            if (t[i + 1] - t[i] < best[i]) best[i] = t[i + 1] - t[i];
    }
    printf("Gaussian log-likelihood c logdet(S) + tr(Y' inv(S) Y), p = %d, N = %d, best of %d\n", p, N, R);
    printf("  emitted f + dS + dY   %7.2f ms  (f alone %6.2f)  hand LAPACK %7.2f ms  ratio %5.2f x  "
           "(f+grad)/f %5.2f x  diff %.0e\n",
           1e3 * best[0], 1e3 * best[1], 1e3 * best[2], best[0] / best[2], best[0] / best[1], err);
    free(B), free(S), free(Y), free(dS1), free(dS2), free(dY1), free(dY2), free(LU), free(W), free(hw), free(piv);
    free(work);
    return 0;
}
