/*
 * runtime/qf_blas.c -- md_lu_qf with BLAS: the quadratic form
 * tr(B' inv(A) B) of a symmetric A from its factors (md_lu_sym), with one
 * triangular solve when they are A = Lu D Lu' (no pivoting), and a solve
 * and a dot product otherwise.  The plain-loop variant is qf_loops.c.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_QF_BLAS_C
#define MD_RT_QF_BLAS_C

#include "prelude.h"
#include "blas.h"
#include "pivot_lapack.c"
#include "solve_lapack.c"
#include "rsolve_lapack.c"

/* md:begin */
/* tr(B' inv(A) B) (side 0: B m x k) or tr(B inv(A) B') (side 1: B k x m)
   for a symmetric A (m x m) from its factors LU, piv (md_lu_sym); W: m k
   doubles of scratch.  Without pivoting A = Lu D Lu' (D: U's diagonal), so
   the form is sum(D^-1 (inv(Lu) B)^2): one unit triangular solve (dtrsm),
   half the flops of inv(A) B and no inverse, as a Cholesky factor gives;
   with pivoting, inv(A) B by the LU and sum(B .* inv(A) B). */
static double md_lu_qf(int side, long m, long k, const double *LU, const double *piv, const double *B, double *W)
{
    long pivoted = 0;
    for (long i = 0; i < m && !pivoted; i++) pivoted = md_pivot(piv, i) != i;
    memcpy(W, B, (size_t)(m * k) * sizeof(double));
    double s = 0.0;
    if (pivoted) {
        if (side) md_lu_rsolve(0, k, m, LU, piv, W);
        else md_lu_solve(0, m, k, LU, piv, W);
        for (long md_i = 0; md_i < m * k; md_i++) s += B[md_i] * W[md_i];
        return s;
    }
    if (side) {   /* W = B inv(Lu'), k x m: column j scaled by 1/D_j */
        cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasUnit, (int)k, (int)m, 1.0, LU,
                    (int)m, W, (int)k);
        for (long j = 0; j < m; j++) {
            double c = 0.0;
            for (long i = 0; i < k; i++) c += W[i + j * k] * W[i + j * k];
            s += c / LU[j + j * m];
        }
        return s;
    }
    cblas_dtrsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, (int)m, (int)k, 1.0, LU, (int)m,
                W, (int)m);   /* W = inv(Lu) B, m x k: row i scaled by 1/D_i */
    for (long j = 0; j < k; j++)
        for (long i = 0; i < m; i++) s += W[i + j * m] * W[i + j * m] / LU[i + i * m];
    return s;
}

/* md:end */

MD_RUNTIME_KEEP(md_lu_qf)

#endif
