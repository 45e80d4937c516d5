/*
 * runtime/lu_det.c -- md_lu_det: det or logdet from an LU of either
 * backend (md_pivot says which rows were swapped).
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_LU_DET_C
#define MD_RT_LU_DET_C

#include "prelude.h"
#include "pivot_loops.c"

/* md:begin */
/* det(A), or log det(A) when logdet, from A's LU (n x n).  log det of a
   matrix whose determinant is not positive is NaN. */
static double md_lu_det(long n, const double *LU, const double *piv, int logdet)
{
    double det = 1.0, logabs = 0.0;
    int neg = 0;
    for (long k = 0; k < n; k++) {
        const double d = LU[k + k * n];
        neg ^= md_pivot(piv, k) != k;
        if (!logdet) {
            det *= d;
        } else if (d == 0.0) {
            return NAN;
        } else {
            neg ^= d < 0.0;
            logabs += log(fabs(d));
        }
    }
    if (!logdet) return neg ? -det : det;
    return neg ? NAN : logabs;
}

/* md:end */

MD_RUNTIME_KEEP(md_lu_det)

#endif
