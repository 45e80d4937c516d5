/*
 * runtime/inv_loops.c -- md_lu_inv in plain loops: the solves of the
 * identity's columns.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_INV_LOOPS_C
#define MD_RT_INV_LOOPS_C

#include "prelude.h"
#include "solve_loops.c"

/* md:begin */
/* C = inv(op(A)), op(A) = A' when t, from A's LU: the solves of the
   identity's columns.  A singular A gives infinities or NaN. */
static void md_lu_inv(int t, long n, const double *LU, const double *piv, double *C, double *scr)
{
    (void)scr;
    memset(C, 0, (size_t)(n * n) * sizeof(double));
    for (long i = 0; i < n; i++) C[i + i * n] = 1.0;
    md_lu_solve(t, n, n, LU, piv, C);
}

/* md:end */

MD_RUNTIME_KEEP(md_lu_inv)

#endif
