/*
 * runtime/inv_lapack.c -- md_lu_inv with LAPACK: an explicit inverse from
 * the LU, dgetri (64n doubles of scratch).
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_INV_LAPACK_C
#define MD_RT_INV_LAPACK_C

#include "prelude.h"
#include "lu_lapack.c"

/* md:begin */
/* C = inv(op(A)), op(A) = A' when t, from A's LU: dgetri on a copy (scr:
   64n doubles, for its blocked code), transposed in place when t.  A
   singular A gives NaN. */
static void md_lu_inv(int t, long n, const double *LU, const double *piv, double *C, double *scr)
{
    const MD_LAPACK_INT nn = (MD_LAPACK_INT)n, lwork = (MD_LAPACK_INT)(64 * n);
    MD_LAPACK_INT info = 0;
    memcpy(C, LU, (size_t)(n * n) * sizeof(double));
    dgetri_(&nn, C, &nn, (const MD_LAPACK_INT *)(const void *)piv, scr, &lwork, &info);
    if (info != 0) {
        for (long i = 0; i < n * n; i++) C[i] = NAN;
        return;
    }
    if (t)
        for (long j = 0; j < n; j++)
            for (long i = j + 1; i < n; i++) {
                const double s = C[i + j * n];
                C[i + j * n] = C[j + i * n];
                C[j + i * n] = s;
            }
}

/* md:end */

MD_RUNTIME_KEEP(md_lu_inv)

#endif
