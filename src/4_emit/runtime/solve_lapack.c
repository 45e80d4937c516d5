/*
 * runtime/solve_lapack.c -- md_lu_solve with LAPACK: inv(op(A)) B from the
 * left, dgetrs.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_SOLVE_LAPACK_C
#define MD_RT_SOLVE_LAPACK_C

#include "prelude.h"
#include "lu_lapack.c"

/* md:begin */
/* B (n x m) = inv(op(A)) B, op(A) = A' when t, from A's LU: dgetrs. */
static void md_lu_solve(int t, long n, long m, const double *LU, const double *piv, double *B)
{
    const MD_LAPACK_INT nn = (MD_LAPACK_INT)n, mm = (MD_LAPACK_INT)m;
    MD_LAPACK_INT info = 0;
    dgetrs_(t ? "T" : "N", &nn, &mm, LU, &nn, (const MD_LAPACK_INT *)(const void *)piv, B, &nn, &info, 1);
}

/* md:end */

MD_RUNTIME_KEEP(md_lu_solve)

#endif
