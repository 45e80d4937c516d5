/*
 * runtime/rsolve_lapack.c -- md_lu_rsolve with BLAS: B inv(op(A)) from the
 * right, dtrsm and the pivots' column swaps (LAPACK has no right-hand
 * dgetrs).
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_RSOLVE_LAPACK_C
#define MD_RT_RSOLVE_LAPACK_C

#include "prelude.h"
#include "blas.h"
#include "solve_lapack.c"
#include "pivot_lapack.c"

/* md:begin */
/* B (m x n) = B inv(op(A)), op(A) = A' when t, from A's LU = P L U: the
   triangular solves from the right (dtrsm) and the pivots' column swaps
   (inv(A) = inv(U) inv(L) P', inv(A') = P inv(L') inv(U')). */
static void md_lu_rsolve(int t, long m, long n, const double *LU, const double *piv, double *B)
{
    if (m == 1) {   /* a row: the transposed solve of its column */
        md_lu_solve(!t, n, 1, LU, piv, B);
        return;
    }
    if (t) {
        for (long k = 0; k < n; k++) {
            const long p = md_pivot(piv, k);
            if (p != k) cblas_dswap((int)m, B + k * m, 1, B + p * m, 1);
        }
        cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasUnit, (int)m, (int)n, 1.0, LU,
                    (int)n, B, (int)m);
        cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, (int)m, (int)n, 1.0, LU,
                    (int)n, B, (int)m);
        return;
    }
    cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, (int)m, (int)n, 1.0, LU,
                (int)n, B, (int)m);
    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasUnit, (int)m, (int)n, 1.0, LU,
                (int)n, B, (int)m);
    for (long k = n - 1; k >= 0; k--) {
        const long p = md_pivot(piv, k);
        if (p != k) cblas_dswap((int)m, B + k * m, 1, B + p * m, 1);
    }
}

/* md:end */

MD_RUNTIME_KEEP(md_lu_rsolve)

#endif
