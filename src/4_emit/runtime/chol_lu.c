/*
 * runtime/chol_lu.c -- md_chol_lu: a Cholesky factor rewritten as the LU
 * factors the other helpers read, so that det, logdet, solves and inverses
 * of a symmetric matrix need no code of their own.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_CHOL_LU_C
#define MD_RT_CHOL_LU_C

#include "prelude.h"

/* md:begin */
/* LU (n x n) holds A's Cholesky factor L (A = L L', lower triangle; the
   upper is ignored).  Rewrites it in place as the LU factors of A without
   pivoting: A = Lu U with Lu = L diag(L)^-1 unit lower (below the
   diagonal) and U = diag(L)^2 Lu' (on and above it); U's diagonal is D of
   A = Lu D Lu', which md_lu_qf reads. */
static void md_chol_lu(long n, double *LU)
{
    for (long j = 0; j < n; j++) {
        const double d = LU[j + j * n];
        for (long i = j + 1; i < n; i++) LU[i + j * n] /= d;
        LU[j + j * n] = d * d;
    }
    for (long j = 1; j < n; j++)
        for (long i = 0; i < j; i++) LU[i + j * n] = LU[i + i * n] * LU[j + i * n];
}

/* md:end */

MD_RUNTIME_KEEP(md_chol_lu)

#endif
