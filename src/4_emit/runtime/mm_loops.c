/*
 * runtime/mm_loops.c -- md_mm in plain loops (--no-blas): the same
 * interface as mm_blas.c, column-major, the inner loop along columns of A.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_MM_LOOPS_C
#define MD_RT_MM_LOOPS_C

#include "prelude.h"

/* md:begin */
/* C (m x n) = alpha op(A) op(B) + beta C, op(A) m x k, op(B) k x n,
   column-major; ta, tb: the operand is stored transposed; beta 0 or 1 (C
   is not read when 0). */
static void md_mm(int ta, int tb, long m, long n, long k, double alpha,
                  const double *A, const double *B, double beta, double *C)
{
    const long ai = ta ? k : 1, al = ta ? 1 : m;   /* op(A)(i,l) = A[i*ai + l*al] */
    const long bl = tb ? n : 1, bj = tb ? 1 : k;   /* op(B)(l,j) = B[l*bl + j*bj] */
    if (m == 1 || ta) {
        for (long md_j = 0; md_j < n; md_j++)
            for (long md_i = 0; md_i < m; md_i++) {
                double s = 0.0;
                for (long l = 0; l < k; l++) s += A[md_i * ai + l * al] * B[l * bl + md_j * bj];
                C[md_i + md_j * m] = alpha * s + (beta != 0.0 ? beta * C[md_i + md_j * m] : 0.0);
            }
        return;
    }
    for (long md_j = 0; md_j < n; md_j++) {
        double *c = C + md_j * m;
        if (beta != 0.0) {   /* c += alpha op(A) b_j */
            for (long l = 0; l < k; l++) {
                const double b = alpha * B[l * bl + md_j * bj];
                const double *a = A + l * m;
                for (long md_i = 0; md_i < m; md_i++) c[md_i] += a[md_i] * b;
            }
            continue;
        }
        for (long md_i = 0; md_i < m; md_i++) c[md_i] = 0.0;
        for (long l = 0; l < k; l++) {
            const double b = B[l * bl + md_j * bj];
            const double *a = A + l * m;
            for (long md_i = 0; md_i < m; md_i++) c[md_i] += a[md_i] * b;
        }
        for (long md_i = 0; md_i < m; md_i++) c[md_i] *= alpha;
    }
}

/* md:end */

MD_RUNTIME_KEEP(md_mm)

#endif
