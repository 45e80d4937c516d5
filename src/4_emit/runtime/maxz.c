/*
 * runtime/maxz.c -- md_maxz: the larger of two sizes, for a workspace slot
 * that values of different sizes share one after the other (the liveness
 * reuse of em_values in emit_plan.c).
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_MAXZ_C
#define MD_RT_MAXZ_C

#include "prelude.h"

/* md:begin */
/* The larger of two sizes: a workspace slot that values of both sizes use
   one after the other. */
static size_t md_maxz(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* md:end */

MD_RUNTIME_KEEP(md_maxz)

#endif
