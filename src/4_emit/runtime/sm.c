/*
 * runtime/sm.c -- md_sm: a product with an inverse factor as a solve, from
 * the left or the right; the inverse is never formed.  Either backend's
 * md_lu_solve and md_lu_rsolve.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_SM_C
#define MD_RT_SM_C

#include "prelude.h"
#include "tcopy.c"
#include "solve_loops.c"
#include "rsolve_loops.c"

/* md:begin */
/* C (m x n) = alpha inv(op(A)) op(B) (side 0, A m x m) or alpha op(B)
   inv(op(A)) (side 1, A n x n), from A's LU; op(A) = A' when ta, op(B) =
   B' (stored n x m) when tb.  A solve: the inverse is never formed. */
static void md_sm(int side, int ta, int tb, long m, long n, double alpha, const double *LU,
                  const double *piv, const double *B, double *C)
{
    if (tb) md_tcopy(m, n, alpha, B, C);
    else
        for (long md_i = 0; md_i < m * n; md_i++) C[md_i] = alpha * B[md_i];
    if (side) md_lu_rsolve(ta, m, n, LU, piv, C);
    else md_lu_solve(ta, m, n, LU, piv, C);
}

/* md:end */

MD_RUNTIME_KEEP(md_sm)

#endif
