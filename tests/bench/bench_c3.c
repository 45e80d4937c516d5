/*
 * bench_c3.c -- the C backend's LAPACK path in the benchmark (make bench):
 * the Gaussian negative log-likelihood of N samples (the columns of Y,
 * p x N) with covariance S (p x p, symmetric positive definite),
 *
 *   f  = c logdet(S) + tr(Y' inv(S) Y)
 *   dS = c inv(S) - W W',   dY = 2 W,   W = inv(S) Y,
 *
 * emitted by matdiff (gauss.c without --size, as users call it;
 * gauss_sized.c with --size p=...,N=..., for comparison) against
 * hand-written CBLAS + LAPACK.  f and the gradients by hand use the same
 * factorisation as matdiff (one LU: dgetrf, dgetri for inv(S), W by dgemm
 * and W W' by dsyrk): inv(S) is part of dS, and W = inv(S) Y by dgemm is
 * faster than dgetrs.  f alone by hand is what one writes for a Gaussian:
 * a Cholesky factor S = L L' (dpotrf), Z = inv(L) Y (one dtrsm, half the
 * flops of inv(S) Y), f = 2c sum(log(diag(L))) + ||Z||^2, no inverse.
 * matdiff does the same for f alone: S is symmetric, so it tries
 * Cholesky (LU when that fails), and tr(Y' inv(S) Y) is one triangular
 * solve (md_lu_qf); with the gradients its factors are the same Cholesky
 * rewritten as LU factors.  The line "f alone, hand LU" is f alone by
 * hand with LU and solves (dgetrf, dgetrs), for comparison: OpenBLAS's
 * dgetrs with many right-hand sides is slower than dgetri and a dgemm.
 * Single-threaded BLAS, best of R.
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
#include "gauss_sized.h"

void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void dgetrs_(const char *trans, const int *n, const int *nrhs, const double *a, const int *lda, const int *ipiv,
             double *b, const int *ldb, int *info, size_t len);
void dgetri_(const int *n, double *a, const int *lda, const int *ipiv, double *work, const int *lwork, int *info);
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t len);

/* Doubles of scratch the hand-written functions need: LU p*p, W p*N,
   dgetri's work 64p, the pivots (p ints); f alone by Cholesky needs L p*p
   and Z p*N, less. */
static size_t hand_workspace(int p, int N)
{
    return (size_t)p * (size_t)p + (size_t)p * (size_t)N + 64 * (size_t)p +
           ((size_t)p * sizeof(int) + sizeof(double) - 1) / sizeof(double);
}

static double hand(int p, int N, const double *S, const double *Y, double c, double *dS, double *dY,
                   double *work)
{
    double *LU = work, *W = LU + (size_t)p * p, *lw = W + (size_t)p * N;
    int *piv = (int *)(void *)(lw + 64 * (size_t)p);
    int info = 0, lwork = 64 * p;
    memcpy(LU, S, sizeof(double) * (size_t)p * (size_t)p);
    dgetrf_(&p, &p, LU, &p, piv, &info);
    double logdet = 0.0;
    for (int k = 0; k < p; k++) logdet += log(fabs(LU[k + (long)k * p]));   /* S is positive definite */
    if (dS) {   /* inv(S) is needed anyway: W = inv(S) Y by dgemm, faster than dgetrs */
        memcpy(dS, LU, sizeof(double) * (size_t)p * (size_t)p);
        dgetri_(&p, dS, &p, piv, lw, &lwork, &info);
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

/* f alone: Cholesky, one triangular solve, no inverse */
static double hand_f(int p, int N, const double *S, const double *Y, double c, double *work)
{
    double *L = work, *Z = L + (size_t)p * p;
    int info = 0;
    memcpy(L, S, sizeof(double) * (size_t)p * (size_t)p);
    dpotrf_("L", &p, L, &p, &info, 1);
    double logdet = 0.0;
    for (int k = 0; k < p; k++) logdet += 2.0 * log(L[k + (long)k * p]);
    memcpy(Z, Y, sizeof(double) * (size_t)p * (size_t)N);
    cblas_dtrsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, p, N, 1.0, L, p, Z, p);
    return c * logdet + cblas_ddot(p * N, Z, 1, Z, 1);
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
    double *dS1 = malloc(sizeof(double) * np), *dS2 = malloc(sizeof(double) * np), *dS3 = malloc(sizeof(double) * np);
    double *dY1 = malloc(sizeof(double) * nn), *dY2 = malloc(sizeof(double) * nn), *dY3 = malloc(sizeof(double) * nn);
    gauss_dims d = {.p = p, .N = N};
    gauss_sized_dims sd = {.p = p, .N = N};
    size_t we = gauss_workspace(&d), ws = gauss_sized_workspace(&sd), wh = hand_workspace(p, N);
    double *w1 = malloc(sizeof(double) * we), *w2 = malloc(sizeof(double) * ws), *w3 = malloc(sizeof(double) * wh);
    double tg = 1e30, tf = 1e30, ts = 1e30, th = 1e30, thf = 1e30, thl = 1e30;
    double fe = 0, ff = 0, fs = 0, fh = 0, fhf = 0, fhl = 0;
    for (int r = 0; r < R; r++) {
        TIME(tg, 1, fe = gauss(&d, S, Y, c, dS1, dY1, w1));
        TIME(tf, 1, ff = gauss(&d, S, Y, c, NULL, NULL, w1));
        TIME(ts, 1, fs = gauss_sized(&sd, S, Y, c, dS3, dY3, w2));
        TIME(th, 1, fh = hand(p, N, S, Y, c, dS2, dY2, w3));
        TIME(thf, 1, fhf = hand_f(p, N, S, Y, c, w3));
        TIME(thl, 1, fhl = hand(p, N, S, Y, c, NULL, NULL, w3));
    }
    double e = fmax(fmax(rel(fe, fh), rel(ff, fhf)), fmax(maxrel(dS1, dS2, (long)np), maxrel(dY1, dY2, (long)nn)));
    e = fmax(e, rel(fhl, fhf));
    double es = fmax(rel(fs, fh), fmax(maxrel(dS3, dS2, (long)np), maxrel(dY3, dY2, (long)nn)));
    printf("Gaussian  c*logdet(S) + tr(Y'*inv(S)*Y) by S, Y;  p = %d, N = %d, best of %d\n", p, N, R);
    report_time("f + dS + dY", tg, th, 1.15);
    report_time("f alone", tf, thf, 1.15);
    report_time("f alone, hand LU", tf, thl, 1.15);
    report_time("f + dS + dY, --size", ts, th, 1.15);
    report_overhead(tg, tf, 3.0);
    report_work(we, ws, wh, 1.5);
    report_diff(e, es);
    free(B), free(S), free(Y), free(dS1), free(dS2), free(dS3), free(dY1), free(dY2), free(dY3);
    free(w1), free(w2), free(w3);
    return 0;
}
