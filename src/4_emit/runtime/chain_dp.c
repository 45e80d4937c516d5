/*
 * runtime/chain_dp.c -- md_chain_dp, the matrix-chain dynamic programme,
 * and the only one in matdiff: the emitted md_chain and md_chain_trace
 * run it on the sizes in dims, and costopt.c compiles this same file into
 * the generator (md_cost_chain), where the emitter's emit-time bracketing
 * (--size) and the cost rewriting call it.
 *
 * For the generator, costopt.c defines MD_CHAIN_MAX as L, which makes
 * cost and split pointers to rows of the chain's length (a variably
 * modified parameter type, no array on the stack), MD_SEL_SOLVES as 1
 * (the caller passes p = NULL when no factor is an inverse) and MD_SEL_GEN
 * as 1: a sub-chain whose cost the caller set negative costs nothing (a
 * product an earlier chain built already) and is not split.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_CHAIN_DP_C
#define MD_RT_CHAIN_DP_C

#include "prelude.h"

/* md:begin */
/* The matrix-chain dynamic programme on the actual sizes: factor i is
#if MD_SEL_SOLVES
   d[i] x d[i+1] (the inverse of the matrix whose LU factors are a[i],
   p[i] when p && p[i]; two inverses cannot meet); cost[i][j] is the cheapest (i..j), split[i][j]
#else // MD_SEL_SOLVES
   d[i] x d[i+1]; cost[i][j] is the cheapest (i..j), split[i][j]
#endif // MD_SEL_SOLVES
   where it splits. */
static void md_chain_dp(int L, const long *d, const double *const *p, double cost[][MD_CHAIN_MAX],
                        int split[][MD_CHAIN_MAX])
{
#if !MD_SEL_SOLVES
    (void)p;
#endif // MD_SEL_SOLVES
    for (int i = 0; i < L; i++) cost[i][i] = 0.0;
    for (int len = 2; len <= L; len++)
        for (int i = 0; i + len - 1 < L; i++) {
            int j = i + len - 1;
#if MD_SEL_GEN
            if (cost[i][j] < 0.0) {   /* built already (costopt.c): free, not split */
                cost[i][j] = 0.0;
                continue;
            }
#endif // MD_SEL_GEN
            cost[i][j] = HUGE_VAL;
            split[i][j] = i;
            for (int k = i; k < j; k++) {
                double c = cost[i][k] + cost[k + 1][j] + (double)d[i] * (double)d[k + 1] * (double)d[j + 1];
#if MD_SEL_SOLVES
                if (p && k == i && k + 1 == j && p[i] && p[j]) c = HUGE_VAL;
#endif // MD_SEL_SOLVES
                if (c < cost[i][j]) {
                    cost[i][j] = c;
                    split[i][j] = k;
                }
            }
        }
}

/* md:end */

MD_RUNTIME_KEEP(md_chain_dp)

#endif
