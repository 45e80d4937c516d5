/*
 * runtime/solve_loops.c -- md_lu_solve in plain loops: the row swaps and
 * the two triangular solves, column by column.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_SOLVE_LOOPS_C
#define MD_RT_SOLVE_LOOPS_C

#include "prelude.h"
#include "pivot_loops.c"

/* md:begin */
/* B (n x m) = inv(op(A)) B, op(A) = A' when t, from A's LU = P L U:
   the row swaps and the two triangular solves, column by column. */
static void md_lu_solve(int t, long n, long m, const double *LU, const double *piv, double *B)
{
    for (long c = 0; c < m; c++) {
        double *b = B + c * n;
        if (!t) {   /* L U x = P' b */
            for (long k = 0; k < n; k++) {
                const long p = md_pivot(piv, k);
                const double s = b[k];
                b[k] = b[p];
                b[p] = s;
            }
            for (long k = 0; k < n; k++)
                for (long i = k + 1; i < n; i++) b[i] -= LU[i + k * n] * b[k];
            for (long k = n - 1; k >= 0; k--) {
                b[k] /= LU[k + k * n];
                for (long i = 0; i < k; i++) b[i] -= LU[i + k * n] * b[k];
            }
        } else {    /* U' L' P' x = b */
            for (long k = 0; k < n; k++) {
                double s = b[k];
                for (long i = 0; i < k; i++) s -= LU[i + k * n] * b[i];
                b[k] = s / LU[k + k * n];
            }
            for (long k = n - 1; k >= 0; k--) {
                double s = b[k];
                for (long i = k + 1; i < n; i++) s -= LU[i + k * n] * b[i];
                b[k] = s;
            }
            for (long k = n - 1; k >= 0; k--) {
                const long p = md_pivot(piv, k);
                const double s = b[k];
                b[k] = b[p];
                b[p] = s;
            }
        }
    }
}

/* md:end */

MD_RUNTIME_KEEP(md_lu_solve)

#endif
