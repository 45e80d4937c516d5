/*
 * runtime/lusym_lapack.c -- md_lu_sym with LAPACK (BLAS mode): the factors
 * of a symmetric matrix by Cholesky (dpotrf, half the flops of dgetrf and
 * no pivoting), or by md_lu when it is not positive definite.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_LUSYM_LAPACK_C
#define MD_RT_LUSYM_LAPACK_C

#include "prelude.h"
#include "lu_lapack.c"
#include "chol_lu.c"

/* md:begin */
void dpotrf_(const char *uplo, const MD_LAPACK_INT *n, double *a, const MD_LAPACK_INT *lda, MD_LAPACK_INT *info,
             size_t uplo_len);

/* LU, piv = the LU factors of the symmetric A (n x n), as md_lu's: when A
   is positive definite from its Cholesky factor (dpotrf on a copy, then
   md_chol_lu; no pivoting, the pivots say so), otherwise by md_lu. */
static void md_lu_sym(long n, const double *A, double *LU, double *piv)
{
    const MD_LAPACK_INT nn = (MD_LAPACK_INT)n;
    MD_LAPACK_INT info = 0;
    memcpy(LU, A, (size_t)(n * n) * sizeof(double));
    dpotrf_("L", &nn, LU, &nn, &info, 1);
    if (info != 0) {
        md_lu(n, A, LU, piv);
        return;
    }
    md_chol_lu(n, LU);
    for (long k = 0; k < n; k++) {
        const MD_LAPACK_INT p = (MD_LAPACK_INT)(k + 1);
        memcpy((char *)piv + (size_t)k * sizeof p, &p, sizeof p);
    }
}

/* md:end */

MD_RUNTIME_KEEP(md_lu_sym)

#endif
