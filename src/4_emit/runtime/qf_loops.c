/*
 * runtime/qf_loops.c -- md_lu_qf in plain loops (qf_blas.c says what it
 * computes): the forward substitution by columns instead of dtrsm.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_QF_LOOPS_C
#define MD_RT_QF_LOOPS_C

#include "prelude.h"
#include "pivot_loops.c"
#include "solve_loops.c"
#include "rsolve_loops.c"

/* md:begin */
/* tr(B' inv(A) B) (side 0: B m x k) or tr(B inv(A) B') (side 1: B k x m)
   for a symmetric A (m x m) from its factors LU, piv (md_lu_sym); W: m k
   doubles of scratch.  Without pivoting A = Lu D Lu' (D: U's diagonal) and
   the form is sum(D^-1 (inv(Lu) B)^2), one unit triangular solve; with
   pivoting, inv(A) B by the LU and sum(B .* inv(A) B). */
static double md_lu_qf(int side, long m, long k, const double *LU, const double *piv, const double *B, double *W)
{
    long pivoted = 0;
    for (long i = 0; i < m && !pivoted; i++) pivoted = md_pivot(piv, i) != i;
    double s = 0.0;
    if (pivoted) {
        memcpy(W, B, (size_t)(m * k) * sizeof(double));
        if (side) md_lu_rsolve(0, k, m, LU, piv, W);
        else md_lu_solve(0, m, k, LU, piv, W);
        for (long md_i = 0; md_i < m * k; md_i++) s += B[md_i] * W[md_i];
        return s;
    }
    /* column c of B (side 0) or row c of B (side 1) as w = inv(Lu) b */
    for (long c = 0; c < k; c++) {
        double *w = W;
        for (long i = 0; i < m; i++) w[i] = side ? B[c + i * k] : B[i + c * m];
        for (long j = 0; j < m; j++)
            for (long i = j + 1; i < m; i++) w[i] -= LU[i + j * m] * w[j];
        for (long i = 0; i < m; i++) s += w[i] * w[i] / LU[i + i * m];
    }
    return s;
}

/* md:end */

MD_RUNTIME_KEEP(md_lu_qf)

#endif
