/*
 * runtime/tcopy.c -- md_tcopy: a scaled transpose copy, for a transpose
 * that is not only a product factor and for md_sm's transposed right-hand
 * side.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_TCOPY_C
#define MD_RT_TCOPY_C

#include "prelude.h"

/* md:begin */
/* B (r x c) = alpha A' for A c x r, column-major. */
static void md_tcopy(long r, long c, double alpha, const double *A, double *B)
{
    for (long md_j = 0; md_j < c; md_j++)
        for (long md_i = 0; md_i < r; md_i++) B[md_i + md_j * r] = alpha * A[md_j + md_i * c];
}

/* md:end */

MD_RUNTIME_KEEP(md_tcopy)

#endif
