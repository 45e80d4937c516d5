/*
 * runtime/lusym_loops.c -- md_lu_sym in plain loops: the factors of a
 * symmetric matrix by Cholesky, or by md_lu when it is not positive
 * definite.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_LUSYM_LOOPS_C
#define MD_RT_LUSYM_LOOPS_C

#include "prelude.h"
#include "lu_loops.c"
#include "chol_lu.c"

/* md:begin */
/* LU, piv = the LU factors of the symmetric A (n x n), as md_lu's: when A
   is positive definite from its Cholesky factor (A = L L' by columns, from
   the lower triangle, then md_chol_lu; no pivoting), otherwise by md_lu. */
static void md_lu_sym(long n, const double *A, double *LU, double *piv)
{
    memcpy(LU, A, (size_t)(n * n) * sizeof(double));
    for (long j = 0; j < n; j++) {
        double d = LU[j + j * n];
        for (long k = 0; k < j; k++) d -= LU[j + k * n] * LU[j + k * n];
        if (!(d > 0.0)) {   /* not positive definite (or NaN) */
            md_lu(n, A, LU, piv);
            return;
        }
        d = sqrt(d);
        LU[j + j * n] = d;
        for (long i = j + 1; i < n; i++) {
            double s = LU[i + j * n];
            for (long k = 0; k < j; k++) s -= LU[i + k * n] * LU[j + k * n];
            LU[i + j * n] = s / d;
        }
    }
    md_chol_lu(n, LU);
    for (long k = 0; k < n; k++) piv[k] = (double)k;
}

/* md:end */

MD_RUNTIME_KEEP(md_lu_sym)

#endif
