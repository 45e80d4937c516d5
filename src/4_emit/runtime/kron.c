/*
 * runtime/kron.c -- md_kron_mv: a Kronecker product applied to a vector
 * without forming it, kron(A, B) x = vec(B X A') for X the cB x cA
 * matrix whose columns are x, two products through md_mm (either
 * backend): cB*cA*(rB + rA*rB/cB...) flops instead of the rA*rB*cA*cB of
 * the formed product, and rB*cA doubles of scratch instead of its array.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_KRON_C
#define MD_RT_KRON_C

#include "prelude.h"
#include "mm_loops.c"

/* md:begin */
/* y (rA*rB) = alpha kron(op(A), op(B)) x, op(A) rA x cA, op(B) rB x cB,
   x of cA*cB entries; op(A) = A' (stored cA x rA) when ta, likewise tb.
   Z = op(B) X (rB x cA, in scr), then y = Z op(A)' (rB x rA = vec). */
static void md_kron_mv(int ta, int tb, long rA, long cA, long rB, long cB, double alpha, const double *A,
                       const double *B, const double *x, double *y, double *scr)
{
    md_mm(tb, 0, rB, cA, cB, 1.0, B, x, 0.0, scr);
    md_mm(0, !ta, rB, rA, cA, alpha, scr, A, 0.0, y);
}

/* md:end */

MD_RUNTIME_KEEP(md_kron_mv)

#endif
