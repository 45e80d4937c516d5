/*
 * runtime/wsyrk_blas.c -- md_wsyrk with CBLAS: the weighted Gram matrix
 * C = alpha A' diag(u) A (or A diag(u) A'), the Hessian of every
 * generalised linear model (X'*diag(w)*X), in the flops of one dsyrk:
 * when u has one sign, B = sqrt(|u|) .* A (rows scaled) and C = +-alpha
 * B' B by dsyrk, half of a dgemm; with weights of both signs, B = u .* A
 * and one dgemm.  The upper triangle is then copied into the lower, so C
 * is exactly symmetric.  scr: the k x m array B.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_WSYRK_BLAS_C
#define MD_RT_WSYRK_BLAS_C

#include "prelude.h"
#include "blas.h"

/* md:begin */
/* C (m x m) = alpha A' diag(u) A for ta = 1 (A k x m), alpha A diag(u) A'
   for ta = 0 (A m x k); u has k entries; column-major; scr k*m doubles. */
static void md_wsyrk(int ta, long m, long k, double alpha, const double *A, const double *u, double *C,
                     double *scr)
{
    int pos = 1, neg = 1;
    for (long l = 0; l < k; l++) {
        if (u[l] < 0.0) pos = 0;
        if (u[l] > 0.0) neg = 0;
    }
    const double sg = pos ? 1.0 : -1.0;   /* all u of one sign: C = sg alpha B'B, B = sqrt(sg u) .* A */
    for (long md_j = 0; md_j < (ta ? m : k); md_j++)
        for (long md_i = 0; md_i < (ta ? k : m); md_i++) {
            const double w = u[ta ? md_i : md_j];
            scr[md_i + md_j * (ta ? k : m)] = (pos || neg ? sqrt(sg * w) : w) * A[md_i + md_j * (ta ? k : m)];
        }
    const int ld = (int)(ta ? k : m) > 0 ? (int)(ta ? k : m) : 1;
    if (pos || neg)
        cblas_dsyrk(CblasColMajor, CblasUpper, ta ? CblasTrans : CblasNoTrans, (int)m, (int)k, sg * alpha, scr, ld,
                    0.0, C, (int)m);
    else
        cblas_dgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, ta ? CblasNoTrans : CblasTrans, (int)m, (int)m,
                    (int)k, alpha, A, ld, scr, ld, 0.0, C, (int)m);
    for (long md_j = 0; md_j < m; md_j++)
        for (long md_i = md_j + 1; md_i < m; md_i++) C[md_i + md_j * m] = C[md_j + md_i * m];
}

/* md:end */

MD_RUNTIME_KEEP(md_wsyrk)

#endif
