/*
 * runtime/chain_run.c -- md_chain_run: a chain's product, bracketed as
 * md_chain_dp's split says, the intermediate products in scratch.  With
 * inverses (MD_SEL_SOLVES) a pair with an inverse is a solve (md_sm).
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_CHAIN_RUN_C
#define MD_RT_CHAIN_RUN_C

#include "prelude.h"
#include "mm_loops.c"
#if MD_SEL_SOLVES
#include "sm.c"
#endif

/* md:begin */
/* C = alpha a[i] ... a[j] bracketed by split (stored transposed when
   t[k]); scr holds the intermediate products. */
static void md_chain_run(const long *d, const double *const *a, const double *const *p, const int *t,
                         int split[][MD_CHAIN_MAX], int i, int j, double alpha,
                         double *C, double *scr)
{
    int k = split[i][j];
    const double *l = a[i], *r = a[j];
    int tl = t[i], tr = t[j];
    if (k > i) {
        double *q = scr;
        scr += d[i] * d[k + 1];
        md_chain_run(d, a, p, t, split, i, k, 1.0, q, scr);
        l = q;
        tl = 0;
    }
    if (j > k + 1) {
        double *q = scr;
        scr += d[k + 1] * d[j + 1];
        md_chain_run(d, a, p, t, split, k + 1, j, 1.0, q, scr);
        r = q;
        tr = 0;
    }
#if MD_SEL_SOLVES
    if (k == i && p && p[i])
        md_sm(0, tl, tr, d[i], d[j + 1], alpha, l, p[i], r, C);
    else if (j == k + 1 && p && p[j])
        md_sm(1, tr, tl, d[i], d[j + 1], alpha, r, p[j], l, C);
    else
        md_mm(tl, tr, d[i], d[j + 1], d[k + 1], alpha, l, r, 0.0, C);
#else // MD_SEL_SOLVES
    md_mm(tl, tr, d[i], d[j + 1], d[k + 1], alpha, l, r, 0.0, C);
#endif // MD_SEL_SOLVES
}

/* md:end */

MD_RUNTIME_KEEP(md_chain_run)

#endif
