/*
 * seed003_hand.c -- the gradient of seed 003 written by hand with CBLAS,
 * with the cheapest bracketing, for `make bench` to compare the emitted
 * code against.
 *
 *   f  = ||X U V' - Y||^2 + lambda ||U V'||^2
 *   A  = X U                      (n x d)   n p d flops
 *   E  = A V' - Y                 (n x q)   n d q
 *   dU = 2 X' (E V) + 2 lambda U (V'V)      n q d + p n d + q d d + p d d
 *   dV = 2 E' A + 2 lambda V (U'U)          q n d + p d d + q d d
 *   ||U V'||^2 = sum((U'U) .* (V'V))        (d x d)
 *
 * No temporary larger than n x q; work holds A, E, EV, U'U, V'V.
 */
#include <stddef.h>
#include <string.h>
#include <cblas.h>

size_t hand_workspace(long n, long p, long q, long d)
{
    (void)p;
    return (size_t)(n * d + n * q + n * d + d * d + d * d);
}

double hand(long n, long p, long q, long d, double lambda, const double *Y, const double *X,
            const double *U, const double *V, double *dU, double *dV, double *work)
{
    double *A = work, *E = A + n * d, *EV = E + n * q, *UU = EV + n * d, *VV = UU + d * d;
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, d, p, 1.0, X, n, U, p, 0.0, A, n);
    memcpy(E, Y, sizeof(double) * (size_t)(n * q));
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, n, q, d, 1.0, A, n, V, q, -1.0, E, n);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, d, d, p, 1.0, U, p, U, p, 0.0, UU, d);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, d, d, q, 1.0, V, q, V, q, 0.0, VV, d);
    double f = cblas_ddot((int)(n * q), E, 1, E, 1);
    double reg = 0.0;
    for (long i = 0; i < d * d; i++) reg += UU[i] * VV[i];
    f += lambda * reg;
    if (dU) {
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, d, q, 1.0, E, n, V, q, 0.0, EV, n);
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, p, d, n, 2.0, X, n, EV, n, 0.0, dU, p);
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, p, d, d, 2.0 * lambda, U, p, VV, d, 1.0, dU, p);
    }
    if (dV) {
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, q, d, n, 2.0, E, n, A, n, 0.0, dV, q);
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, q, d, d, 2.0 * lambda, V, q, UU, d, 1.0, dV, q);
    }
    return f;
}
