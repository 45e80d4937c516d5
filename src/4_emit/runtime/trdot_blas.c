/*
 * runtime/trdot_blas.c -- md_trdot with CBLAS: tr(op(A) op(B)) as dot
 * products, without forming the product (a product used only by a trace).
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_TRDOT_BLAS_C
#define MD_RT_TRDOT_BLAS_C

#include "prelude.h"
#include "blas.h"

/* md:begin */
/* tr(op(A) op(B)) = sum(op(A) .* op(B)'), op(A) r x c, op(B) c x r: a dot
   product, without forming the r x r product. */
static double md_trdot(int ta, int tb, long r, long c, const double *A, const double *B)
{
    double s = 0.0;
    if (ta != tb) {   /* same layout: one dot product, per column when r c is past int */
        if (r * c <= 2147483647L) return cblas_ddot((int)(r * c), A, 1, B, 1);
        for (long md_j = 0; md_j < c; md_j++) s += cblas_ddot((int)r, A + md_j * r, 1, B + md_j * r, 1);
        return s;
    }
    if (ta) {   /* A c x r, B r x c */
        const double *T = A;
        A = B;
        B = T;
    }
    for (long md_j = 0; md_j < c; md_j++) s += cblas_ddot((int)r, A + md_j * r, 1, B + md_j, (int)c);
    return s;
}

/* md:end */

MD_RUNTIME_KEEP(md_trdot)

#endif
