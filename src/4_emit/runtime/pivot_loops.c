/*
 * runtime/pivot_loops.c -- md_pivot for lu_loops.c's pivots (row indices
 * as doubles).
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_PIVOT_LOOPS_C
#define MD_RT_PIVOT_LOOPS_C

#include "prelude.h"

/* md:begin */
/* The row that the LU's pivoting swapped with row k. */
static long md_pivot(const double *piv, long k)
{
    return (long)piv[k];
}

/* md:end */

MD_RUNTIME_KEEP(md_pivot)

#endif
