/*
 * md_costopt.h -- cost-based rewriting for the C backend (src/4_emit/costopt.c),
 * and the matrix-chain DP that the C backend's emit-time bracketing shares.
 */
#ifndef MD_COSTOPT_H
#define MD_COSTOPT_H

#include "md_expr.h"

/*
 * When size[d] > 0 for every dimension d >= 1, rewrites roots[0..n) in
 * place: product chains bracketed by cost as nested products (shared
 * sub-products become one node), norm2(A*B)^2 through Gram matrices when
 * cheaper.  Returns 1 if it rewrote, 0 if some size is unknown.
 */
int md_cost_rewrite(md_ctx *ctx, const long *size, int n, md_expr **roots);

/*
 * Plans for sizes known only at run time: md_cost_rewrite of roots[0..n)
 * on representative sizes of every dimension without a hint (hint[d] <= 0
 * or hint NULL), the distinct results, at most maxplans, the ones that
 * won for the most sizes first.  plans[k] is a malloc'd array of n roots.
 * Returns the number of plans (at least 1 when maxplans >= 1).
 */
int md_cost_plans(md_ctx *ctx, const long *hint, int n, md_expr **roots, int maxplans, md_expr ***plans);

/*
 * Always, before md_cost_rewrite: a diagonal matrix next to a matrix factor of
 * a product becomes a scaling of its rows or columns (diag(u)*B =
 * (u*1') .* B), so no n x n diagonal array is formed for it.
 */
void md_struct_rewrite(md_ctx *ctx, int n, md_expr **roots);

/*
 * Always, before md_cost_rewrite (after md_struct_rewrite): a sum of
 * products that share a last (first) matrix factor becomes one product,
 * s*A*C + t*B*C = (s*A + t*B)*C, where that saves work at every size
 * (two matrix factors per term, the other no inverse, the product used
 * only there).
 */
void md_factor_rewrite(md_ctx *ctx, int n, md_expr **roots);

/* Always, after md_cost_rewrite: norm2(E)^2 becomes sum(E.^2), one fused
   sum of squares with no square root to square again (raw nodes: the
   bracketing chosen stays). */
void md_norm_rewrite(md_ctx *ctx, int n, md_expr **roots);

/* Always, last: an elementwise product that contains another one of the
   graph, a .* b .* c where a .* b is computed anyway, becomes (a .* b) .* c
   (raw): the multiplication is shared and b need not live until the
   larger product (an MLP's H v keeps one vector fewer). */
void md_had_share(md_ctx *ctx, int n, md_expr **roots);

/*
 * The matrix-chain DP, the one of the emitted md_chain (costopt.c
 * compiles src/4_emit/runtime/chain_dp.c for it): factor i of the chain
 * f[0..L) is d[i] x d[i+1], L >= 2.  inverse may be NULL; inverse[i] != 0
 * says factor i is an inverse applied by a solve, which costs what the
 * product costs, and two inverses are never paired (a solve needs a
 * right-hand side).  cost and split are L*L, indexed [i*L + j]: on return
 * the cheapest cost of the sub-chain i..j and the k where it splits into
 * i..k and k+1..j.  On entry, cost[i*L + j] < 0 (i < j) marks a sub-chain
 * that costs nothing (a product built already; it is not split), and any
 * other value marks nothing: cost must be initialised (zeros).
 */
void md_cost_chain(int L, const long *d, const char *inverse, double *cost, int *split);

#endif
