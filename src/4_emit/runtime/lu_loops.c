/*
 * runtime/lu_loops.c -- md_lu in plain loops: LU with partial pivoting,
 * the pivots stored as doubles (MD_PIVOTS(n) = n).
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_LU_LOOPS_C
#define MD_RT_LU_LOOPS_C

#include "prelude.h"

/* md:begin */
/* The pivots of an n x n LU: n doubles of the workspace, row indices. */
#define MD_PIVOTS(n) ((size_t)(n))

/* LU (n x n) = the LU factors of A with partial pivoting, on a copy: P A =
   L U, L unit lower below the diagonal, U on and above it; piv[k] is the
   row swapped with row k at step k.  A column with no nonzero candidate
   is skipped (U gets a zero pivot). */
static void md_lu(long n, const double *A, double *LU, double *piv)
{
    memcpy(LU, A, (size_t)(n * n) * sizeof(double));
    for (long k = 0; k < n; k++) {
        long p = k;
        for (long i = k + 1; i < n; i++)
            if (fabs(LU[i + k * n]) > fabs(LU[p + k * n])) p = i;
        piv[k] = (double)p;
        if (p != k)
            for (long j = 0; j < n; j++) {
                const double s = LU[k + j * n];
                LU[k + j * n] = LU[p + j * n];
                LU[p + j * n] = s;
            }
        const double d = LU[k + k * n];
        if (d == 0.0) continue;
        for (long i = k + 1; i < n; i++) LU[i + k * n] /= d;
        for (long j = k + 1; j < n; j++) {
            const double u = LU[k + j * n];
            if (u == 0.0) continue;
            for (long i = k + 1; i < n; i++) LU[i + j * n] -= LU[i + k * n] * u;
        }
    }
}

/* md:end */

MD_RUNTIME_KEEP(md_lu)

#endif
