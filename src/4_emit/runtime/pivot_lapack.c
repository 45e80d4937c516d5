/*
 * runtime/pivot_lapack.c -- md_pivot for LAPACK's 1-based integer pivots.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_PIVOT_LAPACK_C
#define MD_RT_PIVOT_LAPACK_C

#include "prelude.h"
#include "lu_lapack.c"

/* md:begin */
/* The row (0-based) that the LU's pivoting swapped with row k. */
static long md_pivot(const double *piv, long k)
{
    MD_LAPACK_INT p;
    memcpy(&p, (const char *)piv + (size_t)k * sizeof p, sizeof p);
    return (long)p - 1;
}

/* md:end */

MD_RUNTIME_KEEP(md_pivot)

#endif
