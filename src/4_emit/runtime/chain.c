/*
 * runtime/chain.c -- md_chain: the product of a chain of 3 to MD_CHAIN_MAX
 * factors whose sizes are known only at run time, bracketed by cost on
 * the actual sizes (md_chain_dp, then md_chain_run).
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_CHAIN_C
#define MD_RT_CHAIN_C

#include "prelude.h"
#include "chain_dp.c"
#include "chain_run.c"

/* md:begin */
/* C = alpha a[0] a[1] ... a[L-1], 3 <= L <= MD_CHAIN_MAX; scr holds the
   intermediate products (at most the sizes of all proper sub-chains). */
static void md_chain(int L, const long *d, const double *const *a, const double *const *p,
                     const int *t, double alpha, double *C, double *scr)
{
    double cost[MD_CHAIN_MAX][MD_CHAIN_MAX];
    int split[MD_CHAIN_MAX][MD_CHAIN_MAX];
    md_chain_dp(L, d, p, cost, split);
    md_chain_run(d, a, p, t, split, 0, L - 1, alpha, C, scr);
}

/* md:end */

MD_RUNTIME_KEEP(md_chain)

#endif
