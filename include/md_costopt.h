/*
 * md_costopt.h -- cost-based rewriting for the C backend (src/4_emit/costopt.c).
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

#endif
