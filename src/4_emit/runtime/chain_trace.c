/*
 * runtime/chain_trace.c -- md_chain_trace: the trace of a chain product
 * without forming it: split where the two halves cost least (on
 * md_chain_dp's costs), form the halves, and md_trdot them.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_CHAIN_TRACE_C
#define MD_RT_CHAIN_TRACE_C

#include "prelude.h"
#include "chain_dp.c"
#include "chain_run.c"
#include "trdot_loops.c"

/* md:begin */
/* tr(alpha a[0] ... a[L-1]) of a square chain, 3 <= L <= MD_CHAIN_MAX,
   without forming it: the cheapest split into P = a[0..k] and Q =
   a[k+1..L-1], then sum(P .* Q').  scr as for md_chain. */
static double md_chain_trace(int L, const long *d, const double *const *a, const double *const *p,
                             const int *t, double alpha, double *scr)
{
    double cost[MD_CHAIN_MAX][MD_CHAIN_MAX], best = HUGE_VAL;
    int split[MD_CHAIN_MAX][MD_CHAIN_MAX], k = 0;
    md_chain_dp(L, d, p, cost, split);
    for (int s = 0; s < L - 1; s++) {
        double c = cost[0][s] + cost[s + 1][L - 1] + (double)d[0] * (double)d[s + 1];
#if MD_SEL_SOLVES
        if (p && ((s == 0 && p[0]) || (s == L - 2 && p[L - 1]))) continue;   /* an inverse */
#endif // MD_SEL_SOLVES
        if (c < best) {
            best = c;
            k = s;
        }
    }
    const double *P = a[0], *Q = a[L - 1];
    int tp = t[0], tq = t[L - 1];
    double *q = scr + (k > 0 ? d[0] * d[k + 1] : 0);
    if (k > 0) {
        md_chain_run(d, a, p, t, split, 0, k, 1.0, scr, q);
        P = scr;
        tp = 0;
    }
    if (k < L - 2) {
        md_chain_run(d, a, p, t, split, k + 1, L - 1, 1.0, q, q + d[k + 1] * d[0]);
        Q = q;
        tq = 0;
    }
    return alpha * md_trdot(tp, tq, d[0], d[k + 1], P, Q);
}

/* md:end */

MD_RUNTIME_KEEP(md_chain_trace)

#endif
