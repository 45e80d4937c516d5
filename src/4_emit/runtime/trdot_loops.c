/*
 * runtime/trdot_loops.c -- md_trdot in plain loops.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_TRDOT_LOOPS_C
#define MD_RT_TRDOT_LOOPS_C

#include "prelude.h"

/* md:begin */
/* tr(op(A) op(B)) = sum(op(A) .* op(B)'), op(A) r x c, op(B) c x r,
   without forming the r x r product. */
static double md_trdot(int ta, int tb, long r, long c, const double *A, const double *B)
{
    double s = 0.0;
    if (ta != tb) {   /* same layout */
        for (long md_i = 0; md_i < r * c; md_i++) s += A[md_i] * B[md_i];
        return s;
    }
    if (ta) {   /* A c x r, B r x c */
        const double *T = A;
        A = B;
        B = T;
    }
    for (long md_j = 0; md_j < c; md_j++)
        for (long md_i = 0; md_i < r; md_i++) s += A[md_i + md_j * r] * B[md_j + md_i * c];
    return s;
}

/* md:end */

MD_RUNTIME_KEEP(md_trdot)

#endif
