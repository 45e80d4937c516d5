/*
 * runtime/mpow.c -- md_mpow: A^k by binary powering, on either backend's
 * md_mm.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_MPOW_C
#define MD_RT_MPOW_C

#include "prelude.h"
#include "mm_loops.c"

/* md:begin */
/* C = A^k for the n x n A and k >= 1, by binary powering; scr holds
   2*n*n doubles. */
static void md_mpow(long n, long k, const double *A, double *C, double *scr)
{
    double *base = scr, *tmp = scr + n * n;
    const size_t bytes = (size_t)(n * n) * sizeof(double);
    int have = 0;
    memcpy(base, A, bytes);
    while (k > 0) {
        if (k & 1) {
            if (!have) {
                memcpy(C, base, bytes);
                have = 1;
            } else {
                md_mm(0, 0, n, n, n, 1.0, C, base, 0.0, tmp);
                memcpy(C, tmp, bytes);
            }
        }
        k >>= 1;
        if (k > 0) {
            md_mm(0, 0, n, n, n, 1.0, base, base, 0.0, tmp);
            memcpy(base, tmp, bytes);
        }
    }
}

/* md:end */

MD_RUNTIME_KEEP(md_mpow)

#endif
