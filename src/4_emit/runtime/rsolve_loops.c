/*
 * runtime/rsolve_loops.c -- md_lu_rsolve in plain loops: B inv(op(A)) from
 * the right.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_RSOLVE_LOOPS_C
#define MD_RT_RSOLVE_LOOPS_C

#include "prelude.h"
#include "pivot_loops.c"

/* md:begin */
/* B (m x n) = B inv(op(A)), op(A) = A' when t, from A's LU = P L U, on
   columns: inv(A) = inv(U) inv(L) P', inv(A') = P inv(L') inv(U'). */
static void md_lu_rsolve(int t, long m, long n, const double *LU, const double *piv, double *B)
{
    if (!t) {
        for (long j = 0; j < n; j++) {              /* B inv(U) */
            double *bj = B + j * m;
            for (long k = 0; k < j; k++) {
                const double u = LU[k + j * n];
                for (long i = 0; i < m; i++) bj[i] -= B[i + k * m] * u;
            }
            const double d = LU[j + j * n];
            for (long i = 0; i < m; i++) bj[i] /= d;
        }
        for (long j = n - 1; j >= 0; j--)           /* inv(L) */
            for (long k = j + 1; k < n; k++) {
                const double l = LU[k + j * n];
                for (long i = 0; i < m; i++) B[i + j * m] -= B[i + k * m] * l;
            }
    }
    for (long q = 0; q < n; q++) {                  /* the column swaps */
        const long k = t ? q : n - 1 - q, p = md_pivot(piv, k);
        if (p == k) continue;
        for (long i = 0; i < m; i++) {
            const double s = B[i + k * m];
            B[i + k * m] = B[i + p * m];
            B[i + p * m] = s;
        }
    }
    if (t) {
        for (long j = 0; j < n; j++)                /* inv(L') */
            for (long k = 0; k < j; k++) {
                const double l = LU[j + k * n];
                for (long i = 0; i < m; i++) B[i + j * m] -= B[i + k * m] * l;
            }
        for (long j = n - 1; j >= 0; j--) {         /* inv(U') */
            double *bj = B + j * m;
            for (long k = j + 1; k < n; k++) {
                const double u = LU[j + k * n];
                for (long i = 0; i < m; i++) bj[i] -= B[i + k * m] * u;
            }
            const double d = LU[j + j * n];
            for (long i = 0; i < m; i++) bj[i] /= d;
        }
    }
}

/* md:end */

MD_RUNTIME_KEEP(md_lu_rsolve)

#endif
