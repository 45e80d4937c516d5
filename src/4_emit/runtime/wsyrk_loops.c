/*
 * runtime/wsyrk_loops.c -- md_wsyrk in plain loops (--no-blas): the same
 * interface as wsyrk_blas.c; the upper triangle summed directly, then
 * mirrored (scr is not used).
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_WSYRK_LOOPS_C
#define MD_RT_WSYRK_LOOPS_C

#include "prelude.h"

/* md:begin */
/* C (m x m) = alpha A' diag(u) A for ta = 1 (A k x m), alpha A diag(u) A'
   for ta = 0 (A m x k); u has k entries; column-major. */
static void md_wsyrk(int ta, long m, long k, double alpha, const double *A, const double *u, double *C,
                     double *scr)
{
    const long al = ta ? 1 : m, ai = ta ? k : 1;   /* the (l, i) entry of A' (ta) or A' of A' */
    (void)scr;
    for (long md_j = 0; md_j < m; md_j++)
        for (long md_i = 0; md_i <= md_j; md_i++) {
            double s = 0.0;
            for (long l = 0; l < k; l++) s += A[l * al + md_i * ai] * u[l] * A[l * al + md_j * ai];
            C[md_i + md_j * m] = alpha * s;
        }
    for (long md_j = 0; md_j < m; md_j++)
        for (long md_i = md_j + 1; md_i < m; md_i++) C[md_i + md_j * m] = C[md_j + md_i * m];
}

/* md:end */

MD_RUNTIME_KEEP(md_wsyrk)

#endif
