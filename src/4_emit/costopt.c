/*
 * costopt.c -- cost-based rewriting for the C backend: for given sizes
 * (md_cost_rewrite), for the few size regimes that matter when sizes are
 * known only at run time (md_cost_plans, at the end), and the rewrites
 * that hold for every size (md_struct_rewrite, md_norm_rewrite).
 *
 * md_cost_rewrite's four rewrites, all exact:
 *
 *  - Every matrix product chain is bracketed by the classic matrix-chain
 *    dynamic program and rebuilt as nested two-factor products (raw nodes:
 *    the simplifier would flatten them again).  Because nodes are
 *    hash-consed, a sub-product that two chains choose (X*U in X*U*V' and
 *    in E'*X*U) becomes one node, which the emitter computes once.
 *  - A node whose transpose was rewritten already becomes the transpose of
 *    that rewrite (the emitter reads it through a BLAS transpose flag)
 *    instead of a second computation: seed 003's X*U*V' - Y and its
 *    transpose in d_V.
 *  - norm2(A*B)^2 with A a×k and B k×b is sum((A'*A) .* (B*B')) when the
 *    two k×k Gram matrices cost less than forming the a×b product:
 *    seed 003's ||U V'||^2 with d = 50 and p = q = 1000.
 *  - tr(F1...FL) is split into tr(P*Q) where forming P and Q costs least
 *    (not where the whole product does): the emitter computes a trace of
 *    two factors as sum(P .* Q') without forming PQ, so tr(Y'*inv(S)*Y)
 *    with Y p x N costs p*p*N, not p*N*N.
 *
 * Everything else is rebuilt with its kind and payload unchanged (raw), so
 * the graph keeps the canonical form the gradients were built in.  The
 * evaluator and the emitter accept nested products; the values are equal
 * up to rounding.
 *
 * The matrix-chain DP is the emitted code's own md_chain_dp: this file
 * compiles runtime/chain_dp.c (the source emit.c embeds in every file with
 * a run-time chain) and exports it as md_cost_chain, which the emitter's
 * emit-time bracketing calls too, so matdiff has one DP.  Three macros
 * adapt it to the generator: MD_CHAIN_MAX is the chain's length L, which
 * turns cost and split into pointers to rows of L entries (a variably
 * modified parameter type: nothing is allocated on the stack, hence the
 * -Wvla exception); MD_SEL_SOLVES keeps the inverse rule (inactive when
 * no factor is an inverse, as here); MD_SEL_GEN adds the one thing the
 * run-time DP does not need, sub-chains that cost nothing because an
 * earlier chain built them (the caller marks them with a negative cost).
 * Ties go to the first split, as they always did here.
 */
#include "md_costopt.h"

#include <stdlib.h>
#include <string.h>

#include "md_simplify.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wvla"
#define MD_SEL_GEN 1
#define MD_SEL_SOLVES 1
#define MD_CHAIN_MAX L
#include "runtime/chain_dp.c"
#undef MD_CHAIN_MAX
#pragma GCC diagnostic pop

void md_cost_chain(int L, const long *d, const char *inverse, double *cost, int *split)
{
    /* md_chain_dp asks only whether p[i] is NULL: any pointer says "an
       inverse" */
    const double **p = NULL;
    if (inverse) {
        p = md_xcalloc((size_t)L, sizeof *p);
        for (int i = 0; i < L; i++) p[i] = inverse[i] ? cost : NULL;
    }
    md_chain_dp(L, d, p, (void *)cost, (void *)split);
    free(p);
}

/* A product built already: its factors, in order, and its node. */
typedef struct md_known {
    int n;
    md_expr **f;
    md_expr *node;
    uint64_t h;          /* known_hash(f, n) */
} md_known;

typedef struct md_copt {
    md_ctx *ctx;
    const long *size;
    uint32_t n;
    md_expr **memo;
    md_known *known;
    int nknown, capknown;
    int *kidx, kcap;   /* hash of known: 1 + index of the first with a key, 0 empty */
} md_copt;

static double dsz(const md_copt *c, int d) { return d == MD_DIM_ONE ? 1.0 : (double)c->size[d]; }
static long lsz(const md_copt *c, int d) { return d == MD_DIM_ONE ? 1 : c->size[d]; }

static md_expr *copt(md_copt *c, md_expr *e);

static int is_inverse(const md_expr *e) { return e->kind == MD_MPOW && e->ival == -1; }

/* The hash of the factor list f[0..n): a polynomial in the node ids,
   sum (id_k + 1) B^(n-1-k) mod 2^64, so that chain_dp gets every
   sub-chain's from prefix sums in O(1) (known_hash_sub), then its length
   mixed in. */
enum { KNOWN_B = 1000003 };

static uint64_t known_mix(uint64_t h, int n)
{
    h ^= (uint64_t)n * 0x9e3779b97f4a7c15ull;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}

static uint64_t known_hash(md_expr **f, int n)
{
    uint64_t h = 0;
    for (int k = 0; k < n; k++) h = h * KNOWN_B + f[k]->id + 1;
    return known_mix(h, n);
}

/* The hash of x[i..j] from the prefixes P (P[k] the polynomial of x[0..k))
   and the powers W (W[k] = B^k). */
static uint64_t known_hash_sub(const uint64_t *P, const uint64_t *W, int i, int j)
{
    return known_mix(P[j + 1] - P[i] * W[j - i + 1], j - i + 1);
}

/* The slot of c->kidx for f[0..n) of hash h: the one holding its first
   product, or the empty one where it goes (linear probing; kcap a power
   of two). */
static int known_slot(const md_copt *c, md_expr **f, int n, uint64_t h)
{
    int mask = c->kcap - 1, i = (int)(h & (uint64_t)mask);
    for (; c->kidx[i]; i = (i + 1) & mask) {
        const md_known *k = &c->known[c->kidx[i] - 1];
        if (k->h == h && k->n == n && !memcmp(k->f, f, (size_t)n * sizeof *f)) break;
    }
    return i;
}

/* Notes that node is the product f[0..n).  A chain many times over (long
   products in many gradients) looks products up often: a hash keeps that
   linear, where a scan of every product built was quadratic. */
static void remember(md_copt *c, md_expr **f, int n, md_expr *node)
{
    if (c->nknown == c->capknown) {
        c->capknown = c->capknown ? 2 * c->capknown : 16;
        c->known = md_xrealloc(c->known, (size_t)c->capknown * sizeof *c->known);
    }
    md_known *k = &c->known[c->nknown++];
    k->n = n;
    k->f = md_xmalloc((size_t)n * sizeof *k->f);
    memcpy(k->f, f, (size_t)n * sizeof *k->f);
    k->node = node;
    k->h = known_hash(f, n);
    if (2 * c->nknown > c->kcap) {   /* grow and rehash, keeping each first */
        free(c->kidx);
        c->kcap = c->kcap ? 2 * c->kcap : 64;
        c->kidx = md_xcalloc((size_t)c->kcap, sizeof *c->kidx);
        for (int j = 0; j < c->nknown; j++) {
            int i = known_slot(c, c->known[j].f, c->known[j].n, c->known[j].h);
            if (!c->kidx[i]) c->kidx[i] = j + 1;
        }
        return;
    }
    int i = known_slot(c, f, n, k->h);
    if (!c->kidx[i]) c->kidx[i] = c->nknown;
}

/* The first product built as f[0..n) (of hash h), or NULL. */
static md_expr *known_as(const md_copt *c, md_expr **f, int n, uint64_t h)
{
    if (!c->kcap) return NULL;
    int i = known_slot(c, f, n, h);
    return c->kidx[i] ? c->known[c->kidx[i] - 1].node : NULL;
}

/* The product f[0..n) if some chain built it already, or the transpose of
   one built (read through a BLAS flag); NULL if neither. */
static md_expr *available_t(md_copt *c, md_expr **f, md_expr **t, int n, uint64_t hf, uint64_t ht);

static md_expr *available(md_copt *c, md_expr **f, int n)
{
    return available_t(c, f, NULL, n, known_hash(f, n), 0);
}

/* The same, with t[0..n) the transposes of f's factors in reverse order
   and the hashes of both when the caller has them (chain_dp makes them
   once per chain: per sub-chain, they were most of a 39-factor chain's
   time). */
static md_expr *available_t(md_copt *c, md_expr **f, md_expr **t, int n, uint64_t hf, uint64_t ht)
{
    md_expr *r = known_as(c, f, n, hf);
    if (r) return r;
    md_expr **own = NULL;
    if (!t) {
        t = own = md_xmalloc((size_t)n * sizeof *t);
        for (int k = 0; k < n; k++) t[k] = md_trans(c->ctx, f[n - 1 - k]);
        ht = known_hash(t, n);
    }
    r = known_as(c, t, n, ht);
    free(own);
    if (r) r = md_expr_make(c->ctx, MD_TRANS, r->cols, r->rows, 0, 0, 0, 1, &r, NULL);
    return r;
}

/* The matrix-chain DP over a chain f[0..L): sz (L + 1 sizes), then
   cost, split and avail (L * L each, [i * L + j]): the cheapest cost of
   (i..j), where it splits, and the node when it was built already. */
typedef struct chain_plan {
    md_expr **f;
    int L;
    double *sz, *cost;
    int *split;
    md_expr **avail;
} chain_plan;

/* The chain f[i..j] bracketed by the plan, as raw two-factor products. */
static md_expr *build(md_copt *c, const chain_plan *P, int i, int j)
{
    int L = P->L;
    if (i == j) return P->f[i];
    if (P->avail[i * L + j]) return P->avail[i * L + j];
    int k = P->split[i * L + j];
    md_expr *a[2] = {build(c, P, i, k), build(c, P, k + 1, j)};
    md_expr *r = md_expr_make(c->ctx, MD_MUL, a[0]->rows, a[1]->cols, 0, 0, 0, 2, a, NULL);
    remember(c, P->f + i, j - i + 1, r);
    return r;
}

/* Plans f[0..L) with md_cost_chain.  A sub-product that an earlier chain
   built (or its transpose) costs nothing: seed 003's gradients share X*U,
   and inv(S)*Y*Y'*inv(S) becomes W*W' for the W = inv(S)*Y of f. */
static chain_plan chain_dp(md_copt *c, md_expr **f, int L)
{
    chain_plan P = {f, L, md_xmalloc((size_t)(L + 1) * sizeof(double)), md_xcalloc((size_t)(L * L), sizeof(double)),
                    md_xcalloc((size_t)(L * L), sizeof(int)), md_xcalloc((size_t)(L * L), sizeof(md_expr *))};
    long *d = md_xmalloc((size_t)(L + 1) * sizeof *d);
    d[0] = lsz(c, f[0]->rows);
    for (int i = 0; i < L; i++) d[i + 1] = lsz(c, f[i]->cols);
    for (int i = 0; i <= L; i++) P.sz[i] = (double)d[i];
    /* in the DP's order: available() may make transposes, and node ids
       show in the emitted names */
    /* rt[k] = f[L-1-k]': the reversed transposes of f[i..j] are rt[L-1-j .. L-1-i] */
    md_expr **rt = md_xmalloc((size_t)L * sizeof *rt);
    uint64_t *pf = md_xmalloc((size_t)(3 * (L + 1)) * sizeof *pf), *pr = pf + L + 1, *w = pr + L + 1;
    pf[0] = pr[0] = 0, w[0] = 1;
    for (int k = 0; k < L; k++) {
        rt[k] = md_trans(c->ctx, f[L - 1 - k]);
        pf[k + 1] = pf[k] * KNOWN_B + f[k]->id + 1;
        pr[k + 1] = pr[k] * KNOWN_B + rt[k]->id + 1;
        w[k + 1] = w[k] * KNOWN_B;
    }
    for (int len = 2; len <= L; len++)
        for (int i = 0; i + len - 1 < L; i++) {
            int j = i + len - 1;
            P.avail[i * L + j] = available_t(c, f + i, rt + (L - 1 - j), len, known_hash_sub(pf, w, i, j),
                                             known_hash_sub(pr, w, L - 1 - j, L - 1 - i));
            if (P.avail[i * L + j]) P.cost[i * L + j] = -1;   /* free */
        }
    free(pf);
    free(rt);
    md_cost_chain(L, d, NULL, P.cost, P.split);
    free(d);
    return P;
}

static void plan_free(chain_plan *P)
{
    free(P->sz);
    free(P->cost);
    free(P->split);
    free(P->avail);
}

/* A product, bracketed by cost; scalars stay outside (s * (A*B): the
   product is shared with the unscaled one). */
static md_expr *bracket(md_copt *c, md_expr *e, md_expr **a)
{
    int s = 0;
    while (s < e->nargs && md_is_scalar(a[s])) s++;
    int L = e->nargs - s;
    /* one product with scalars: alpha of one BLAS call, unless some chain
       built that product already */
    if (L < 2 || (L == 2 && s > 0 && !available(c, a + s, 2)))
        return md_expr_make(c->ctx, MD_MUL, e->rows, e->cols, 0, 0, 0, e->nargs, a, NULL);
    chain_plan P = chain_dp(c, a + s, L);
    md_expr *chain = build(c, &P, 0, L - 1);
    plan_free(&P);
    if (s == 0) return chain;
    md_expr **t = md_xmalloc((size_t)(s + 1) * sizeof *t);
    memcpy(t, a, (size_t)s * sizeof *t);
    t[s] = chain;
    md_expr *r = md_expr_make(c->ctx, MD_MUL, e->rows, e->cols, 0, 0, 0, s + 1, t, NULL);
    free(t);
    return r;
}

/* norm2(A*B)^2 through Gram matrices when cheaper; NULL when not. */
static md_expr *gram(md_copt *c, md_expr *e)
{
    if (e->kind != MD_POW || !md_is_num(e->args[1], 2) || e->args[0]->kind != MD_NORM2) return NULL;
    md_expr *m = e->args[0]->args[0];
    if (m->kind != MD_MUL || m->nargs != 2 || md_is_scalar(m->args[0])) return NULL;
    md_expr *A = m->args[0], *B = m->args[1];
    double a = dsz(c, A->rows), k = dsz(c, A->cols), b = dsz(c, B->cols);
    if (k * k * (a + b) >= a * k * b) return NULL;
    md_ctx *ctx = c->ctx;
    md_expr *ga[2] = {copt(c, md_trans(ctx, A)), copt(c, A)};
    md_expr *gb[2] = {copt(c, B), copt(c, md_trans(ctx, B))};
    md_expr *h[2] = {md_expr_make(ctx, MD_MUL, A->cols, A->cols, 0, 0, 0, 2, ga, NULL),
                     md_expr_make(ctx, MD_MUL, B->rows, B->rows, 0, 0, 0, 2, gb, NULL)};
    md_expr *had = md_expr_make(ctx, MD_HAD, A->cols, A->cols, 0, 0, 0, 2, h, NULL);
    return md_expr_make(ctx, MD_SUM, MD_DIM_ONE, MD_DIM_ONE, 0, 0, 0, 1, &had, NULL);
}

/* tr(F1...FL), L >= 3: split where forming the two halves P = F1...Fk and
   Q = Fk+1...FL costs least, as tr(s * P * Q) (the emitter computes it as
   sum(P .* Q') without forming PQ; a half that is a lone inverse would
   need forming, so no split leaves one); NULL when not such a trace. */
static md_expr *trace_split(md_copt *c, md_expr *e)
{
    if (e->kind != MD_TR || e->args[0]->kind != MD_MUL) return NULL;
    md_expr *m = e->args[0];
    int s = 0;
    while (s < m->nargs && md_is_scalar(m->args[s])) s++;
    int L = m->nargs - s;
    if (L < 3) return NULL;
    md_expr **a = md_xmalloc((size_t)(m->nargs + 1) * sizeof *a);
    for (int i = 0; i < m->nargs; i++) a[i] = copt(c, m->args[i]);
    md_expr **f = a + s;
    chain_plan P = chain_dp(c, f, L);
    int best = -1;
    double bc = 0;
    for (int k = 0; k < L - 1; k++) {
        if ((k == 0 && is_inverse(f[0])) || (k == L - 2 && is_inverse(f[L - 1]))) continue;
        double t = P.cost[k] + P.cost[(k + 1) * L + L - 1] + P.sz[0] * P.sz[k + 1];
        if (best < 0 || t < bc) best = k, bc = t;
    }
    md_expr *r = NULL;
    if (best >= 0) {
        md_expr *p = build(c, &P, 0, best), *q = build(c, &P, best + 1, L - 1);
        a[s] = p;
        a[s + 1] = q;
        md_expr *pq = md_expr_make(c->ctx, MD_MUL, m->rows, m->cols, 0, 0, 0, s + 2, a, NULL);
        r = md_expr_make(c->ctx, MD_TR, e->rows, e->cols, 0, 0, 0, 1, &pq, NULL);
    }
    plan_free(&P);
    free(a);
    return r;
}

static md_expr *copt(md_copt *c, md_expr *e)
{
    if (e->nargs == 0) return e;
    if (e->id < c->n && c->memo[e->id]) return c->memo[e->id];
    /* the transpose of something already rewritten is read as its
       transpose (a BLAS flag), not recomputed: E' for E = X*U*V' - Y;
       not an inverse: inv(A') shares A's LU with inv(A) anyway, and as a
       transpose of inv(A) it would force that inverse to be formed; nor
       a Kronecker product or commutation matrix, applied where it is a
       factor, never formed (kron(A', B') is not kron(A, B)') */
    if (!md_is_scalar(e) && e->kind != MD_TRANS && !is_inverse(e) && e->kind != MD_KRON && e->kind != MD_COMM) {
        md_expr *t = md_trans(c->ctx, e);
        if (t != e && t->id < c->n && c->memo[t->id]) {
            md_expr *r = c->memo[t->id];
            r = md_expr_make(c->ctx, MD_TRANS, e->rows, e->cols, 0, 0, 0, 1, &r, NULL);
            c->memo[e->id] = r;
            return r;
        }
    }
    md_expr *r = gram(c, e);
    if (!r) r = trace_split(c, e);
    if (!r) {
        md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
        for (int i = 0; i < e->nargs; i++) a[i] = copt(c, e->args[i]);
        r = e->kind == MD_MUL ? bracket(c, e, a)
                              : md_expr_make(c->ctx, e->kind, e->rows, e->cols, e->ival, e->aux, e->order,
                                             e->nargs, a, e->kind == MD_NUM ? e->q : NULL);
        free(a);
    }
    if (e->id < c->n) c->memo[e->id] = r;
    return r;
}

int md_cost_rewrite(md_ctx *ctx, const long *size, int n, md_expr **roots)
{
    if (!size) return 0;
    for (int d = 1; d < ctx->ndims; d++)
        if (size[d] <= 0) return 0;
    md_copt c = {ctx, size, ctx->nnodes, NULL, NULL, 0, 0, NULL, 0};
    c.memo = md_xcalloc(c.n, sizeof *c.memo);
    for (int i = 0; i < n; i++) roots[i] = copt(&c, roots[i]);
    for (int i = 0; i < c.nknown; i++) free(c.known[i].f);
    free(c.known);
    free(c.kidx);
    free(c.memo);
    return 1;
}

/* ---- plans for sizes known at run time ---------------------------------- */

/*
 * Without a size for every dimension, the emitted code cannot know which
 * bracketing wins; but only a few plans can win at all.  md_cost_plans
 * runs md_cost_rewrite on representative sizes of the dimensions that
 * have no hint -- three levels (4, 64, 1024) for up to four of them, two
 * (16, 1024) for up to seven, else each one small or large among the
 * others -- and keeps the distinct rewrites (hash-consing makes equal
 * plans equal root pointers), the ones that won for the most sizes
 * first.  The emitter writes each plan as a function and picks the one
 * with the fewest flops for the dims it is called with, so the code is
 * as good as a --size plan for every size regime that was sampled.
 */

enum { MD_PLAN_SAMPLES = 128 };

/* Marks the dimensions e uses; *work adds L^3 per product of L factors,
   what one sample's matrix-chain DPs cost. */
static void reach_dims(const md_expr *e, char *seen, char *used, double *work)
{
    if (seen[e->id]) return;
    seen[e->id] = 1;
    if (e->rows != MD_DIM_ONE) used[e->rows] = 1;
    if (e->cols != MD_DIM_ONE) used[e->cols] = 1;
    if (e->kind == MD_MUL) *work += (double)e->nargs * e->nargs * e->nargs;
    for (int i = 0; i < e->nargs; i++) reach_dims(e->args[i], seen, used, work);
}

/* The most DP steps all samples together may take: a graph of long chains
   (a 73-factor product's 73 gradients) samples fewer size regimes, down
   to two (all large, all small), rather than take seconds. */
#define MD_PLAN_WORK 2e7

/* Sample s (0-based) of the sizes of the k free dimensions into lv;
   0 when there is no such sample. */
static int plan_sample(int k, int s, long *lv)
{
    static const long three[3] = {4, 64, 1024}, two[2] = {16, 1024};
    if (k <= 4) {
        int total = 1;
        for (int i = 0; i < k; i++) total *= 3;
        if (s >= total) return 0;
        for (int i = 0; i < k; i++, s /= 3) lv[i] = three[s % 3];
        return 1;
    }
    if (k <= 7) {
        if (s >= 1 << k) return 0;
        for (int i = 0; i < k; i++) lv[i] = two[(s >> i) & 1];
        return 1;
    }
    /* all large, all small, then one small among large, one large among small */
    if (s >= 2 + 2 * k) return 0;
    long base = s == 1 || (s >= 2 + k) ? two[0] : two[1];
    for (int i = 0; i < k; i++) lv[i] = base;
    if (s >= 2 && s < 2 + k) lv[s - 2] = two[0];
    else if (s >= 2 + k) lv[s - 2 - k] = two[1];
    return 1;
}

int md_cost_plans(md_ctx *ctx, const long *hint, int n, md_expr **roots, int maxplans, md_expr ***plans)
{
    int nd = ctx->ndims;
    char *seen = md_xcalloc(ctx->nnodes ? ctx->nnodes : 1, 1), *used = md_xcalloc((size_t)nd + 1, 1);
    double work = 0;
    for (int i = 0; i < n; i++) reach_dims(roots[i], seen, used, &work);
    free(seen);
    int maxs = MD_PLAN_SAMPLES;
    if (work * MD_PLAN_SAMPLES > MD_PLAN_WORK) maxs = (int)fmax(2.0, MD_PLAN_WORK / fmax(work, 1.0));
    long *size = md_xcalloc((size_t)nd + 1, sizeof *size), *lv = md_xcalloc((size_t)nd + 1, sizeof *lv);
    int *freed = md_xcalloc((size_t)nd + 1, sizeof *freed), k = 0;
    for (int d = 1; d < nd; d++) {
        if (md_dim_is_product(ctx, d)) continue;   /* its factors' product, below */
        if (hint && hint[d] > 0) size[d] = hint[d];
        else if (used[d]) freed[k++] = d;
        else size[d] = 1024;   /* not in the graph: any size */
    }
    free(used);
    md_expr ***cand = md_xcalloc(MD_PLAN_SAMPLES, sizeof *cand);
    int *wins = md_xcalloc(MD_PLAN_SAMPLES, sizeof *wins), ncand = 0;
    md_expr **tmp = md_xmalloc((size_t)(n ? n : 1) * sizeof *tmp);
    for (int s = 0; s < maxs && plan_sample(k, s, lv); s++) {
        for (int i = 0; i < k; i++) size[freed[i]] = lv[i];
        md_ctx_product_sizes(ctx, size);
        memcpy(tmp, roots, (size_t)n * sizeof *tmp);
        md_cost_rewrite(ctx, size, n, tmp);
        int c = 0;
        while (c < ncand && memcmp(cand[c], tmp, (size_t)n * sizeof *tmp)) c++;
        if (c == ncand) {
            cand[ncand] = md_xmalloc((size_t)(n ? n : 1) * sizeof *tmp);
            memcpy(cand[ncand++], tmp, (size_t)n * sizeof *tmp);
        }
        wins[c]++;
    }
    /* the most frequent winners first (a stable selection: ties keep the
       order of the samples) */
    int np = 0;
    while (np < maxplans && np < ncand) {
        int best = -1;
        for (int c = 0; c < ncand; c++)
            if (cand[c] && (best < 0 || wins[c] > wins[best])) best = c;
        plans[np++] = cand[best];
        cand[best] = NULL;
    }
    for (int c = 0; c < ncand; c++) free(cand[c]);
    free(cand);
    free(wins);
    free(tmp);
    free(size);
    free(lv);
    free(freed);
    return np;
}

/* ---- structured matrices ----------------------------------------------- */

/*
 * Structure the C backend uses, whatever the sizes.  A diagonal matrix
 * next to a matrix in a product is a scaling, never an n x n array: diag(u)*B = (u*1') .* B scales B's rows, A*diag(u) =
 * A .* (1*u') its columns (the outer products with ones are fused into
 * the elementwise loop, or cost what B costs).  The simplifier already
 * writes diag(u)*x as u .* x, diag(u)^k as diag(u.^k) and sums of
 * diagonals as one diagonal; what is left dense is a diag standing alone
 * in a sum (diag(u) + A), which is n x n anyway.
 */
typedef struct md_srw {
    md_ctx *ctx;
    uint32_t n;
    md_expr **memo;
} md_srw;

static md_expr *srw(md_srw *w, md_expr *e)
{
    if (e->nargs == 0) return e;
    if (e->id < w->n && w->memo[e->id]) return w->memo[e->id];
    md_ctx *ctx = w->ctx;
    md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
    int changed = 0;
    for (int i = 0; i < e->nargs; i++) {
        a[i] = srw(w, e->args[i]);
        changed |= a[i] != e->args[i];
    }
    md_expr *r = e;
    /* (K1 + K2)*v (or v'*(K1 + K2)) with Kronecker products or
       commutation matrices among the terms is K1*v + K2*v: each applied
       to v, none formed */
    if (e->kind == MD_MUL) {
        int nm = 0, at = -1;
        for (int i = 0; i < e->nargs; i++)
            if (!md_is_scalar(a[i])) nm++, at = a[i]->kind == MD_ADD ? i : at;
        int vec = at >= 0 && nm == 2 &&
                  ((at + 1 < e->nargs && a[at + 1]->cols == MD_DIM_ONE) ||
                   (at > 0 && !md_is_scalar(a[at - 1]) && a[at - 1]->rows == MD_DIM_ONE));
        int applied = 0;
        for (int t = 0; vec && t < a[at]->nargs; t++) {
            const md_expr *u = a[at]->args[t];
            for (int j = 0; u->kind == MD_MUL && j < u->nargs; j++)
                if (!md_is_scalar(u->args[j])) u = u->args[j];
            applied |= u->kind == MD_KRON || u->kind == MD_COMM;
        }
        if (vec && applied) {
            md_expr *S = a[at], **terms = md_xmalloc((size_t)S->nargs * sizeof *terms);
            for (int t = 0; t < S->nargs; t++) {
                a[at] = S->args[t];
                terms[t] = srw(w, md_mul(ctx, e->nargs, a));
            }
            r = md_add(ctx, S->nargs, terms);
            free(terms);
            free(a);
            if (e->id < w->n) w->memo[e->id] = r;
            return r;
        }
    }
    if (e->kind == MD_MUL) {
        int s = 0, n = e->nargs;
        while (s < n && md_is_scalar(a[s])) s++;
        for (int k = s; k < n; k++) {
            if (a[k]->kind != MD_DIAGM) continue;
            md_expr *u = a[k]->args[0];
            if (k + 1 < n && a[k + 1]->kind != MD_DIAGM) {
                md_expr *B = a[k + 1];
                a[k] = md_had2(ctx, md_mul2(ctx, u, md_ones(ctx, MD_DIM_ONE, B->cols)), B);
                memmove(a + k + 1, a + k + 2, (size_t)(n - k - 2) * sizeof *a);
                n--;
                changed = 1;
            } else if (k > s && a[k - 1]->kind != MD_DIAGM) {
                md_expr *A = a[k - 1];
                a[k - 1] = md_had2(ctx, A, md_mul2(ctx, md_ones(ctx, A->rows, MD_DIM_ONE), md_trans(ctx, u)));
                memmove(a + k, a + k + 1, (size_t)(n - k - 1) * sizeof *a);
                n--;
                k--;
                changed = 1;
            }
        }
        if (changed) r = md_mul(ctx, n, a);
    } else if (changed) {
        r = md_rebuild(ctx, e, a);
    }
    free(a);
    if (e->id < w->n) w->memo[e->id] = r;
    return r;
}

/*
 * Terms of a sum that are the same product but for one diagonal factor
 * are one product: c*L*diag(u)*R + d*L*diag(v)*R = L*diag(c*u + d*v)*R
 * (L or R may be empty).  The Hessian of a generalised linear model comes
 * as X'*(diag(a)*X + diag(b)*X), two n x p scalings and two products,
 * where X'*diag(a + b)*X is one product that md_wsyrk computes as one dsyrk.  Exact,
 * and never more work: the diagonals are vectors.  Runs before srw, which
 * turns the diagonals into scalings.
 */
static md_expr *dmerge(md_srw *w, md_expr *e);

/* Term t as c * F[0..nf) with exactly one diagonal among F (at *at), c
   the product of its scalar factors (NULL: 1).  0 if t is not such a
   product. */
static int dm_split(md_expr *t, md_expr **c, md_expr ***F, int *nf, int *at)
{
    if (t->kind != MD_MUL) return 0;
    int ns = 0, nd = 0;
    while (ns < t->nargs && md_is_scalar(t->args[ns])) ns++;
    for (int i = ns; i < t->nargs; i++)
        if (t->args[i]->kind == MD_DIAGM) nd++, *at = i - ns;
    if (nd != 1) return 0;
    *c = ns == 0 ? NULL : ns == 1 ? t->args[0] : NULL;
    if (ns > 1) return 0;   /* the simplifier folds numbers; two symbolic scalars are rare */
    *F = t->args + ns;
    *nf = t->nargs - ns;
    return 1;
}

static md_expr *dm_sum(md_srw *w, md_expr **a, int n, md_expr *e)
{
    md_ctx *ctx = w->ctx;
    char *done = md_xcalloc((size_t)n + 1, 1);
    md_expr **out = md_xmalloc((size_t)n * sizeof *out);
    int nout = 0, changed = 0;
    for (int i = 0; i < n; i++) {
        if (done[i]) continue;
        md_expr *ci, **Fi;
        int nfi, ati;
        if (!dm_split(a[i], &ci, &Fi, &nfi, &ati)) {
            out[nout++] = a[i];
            continue;
        }
        md_expr **us = md_xmalloc((size_t)n * sizeof *us);
        int nu = 0;
        us[nu++] = ci ? md_mul2(ctx, ci, Fi[ati]->args[0]) : Fi[ati]->args[0];
        for (int j = i + 1; j < n; j++) {
            md_expr *cj, **Fj;
            int nfj, atj;
            if (done[j] || !dm_split(a[j], &cj, &Fj, &nfj, &atj) || nfj != nfi || atj != ati) continue;
            int same = 1;
            for (int k = 0; k < nfi && same; k++) same = k == ati || Fi[k] == Fj[k];
            if (!same) continue;
            done[j] = 1;
            us[nu++] = cj ? md_mul2(ctx, cj, Fj[atj]->args[0]) : Fj[atj]->args[0];
        }
        if (nu == 1) {
            out[nout++] = a[i];
        } else {
            md_expr **F = md_xmalloc((size_t)nfi * sizeof *F);
            memcpy(F, Fi, (size_t)nfi * sizeof *F);
            F[ati] = md_unary(ctx, MD_DIAGM, md_add(ctx, nu, us));
            out[nout++] = md_mul(ctx, nfi, F);
            free(F);
            changed = 1;
        }
        free(us);
    }
    md_expr *r = !changed ? NULL : nout == 1 ? out[0] : md_add(ctx, nout, out);
    (void)e;
    free(out);
    free(done);
    return r;
}

static md_expr *dmerge(md_srw *w, md_expr *e)
{
    if (e->nargs == 0) return e;
    if (e->id < w->n && w->memo[e->id]) return w->memo[e->id];
    md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
    int changed = 0;
    for (int i = 0; i < e->nargs; i++) {
        a[i] = dmerge(w, e->args[i]);
        changed |= a[i] != e->args[i];
    }
    md_expr *r = e->kind == MD_ADD ? dm_sum(w, a, e->nargs, e) : NULL;
    if (!r) r = changed ? md_rebuild(w->ctx, e, a) : e;
    free(a);
    if (e->id < w->n) w->memo[e->id] = r;
    return r;
}

void md_struct_rewrite(md_ctx *ctx, int n, md_expr **roots)
{
    md_srw m = {ctx, ctx->nnodes, NULL};
    m.memo = md_xcalloc(m.n, sizeof *m.memo);
    for (int i = 0; i < n; i++) roots[i] = dmerge(&m, roots[i]);
    free(m.memo);
    md_srw w = {ctx, ctx->nnodes, NULL};
    w.memo = md_xcalloc(w.n, sizeof *w.memo);
    for (int i = 0; i < n; i++) roots[i] = srw(&w, roots[i]);
    free(w.memo);
}

/* ---- shared factors of sums ------------------------------------------- */

/*
 * A sum of products that share their last matrix factor is one product:
 * s*A*C + t*B*C = (s*A + t*B)*C, and likewise for a shared first factor,
 * C*A + C*B = C*(A + B).  The products of a Hessian-vector product come
 * that way (an MLP's a*x' + b*x', W2'*r + W2'*s): one outer product
 * instead of two h x d arrays added.  Only where it saves work for every
 * size: each term is scalars times exactly two matrix factors, the other
 * one not an inverse (which would have to be formed), and used nowhere
 * else (its product is not shared with another root).  Raw nodes, so
 * that the simplifier does not expand them again.
 */
typedef struct md_frw {
    md_ctx *ctx;
    uint32_t n;
    md_expr **memo;
    int *uses;           /* parents of each node, over every root */
} md_frw;

static void count_uses(const md_expr *e, int *uses, char *seen)
{
    for (int i = 0; i < e->nargs; i++) uses[e->args[i]->id]++;
    if (seen[e->id]) return;
    seen[e->id] = 1;
    for (int i = 0; i < e->nargs; i++) count_uses(e->args[i], uses, seen);
}

/* The matrix factor of term t at end (0: first, 1: last) when t is a
   product used once whose other factors are either one matrix (not an
   inverse, which would have to be formed) or a chain whose product is a
   vector (the shared factor a row vector at the end, a column vector at
   the start: outer products, where the vector chain is the cheap
   bracketing anyway); NULL otherwise.  *rest: t without that factor. */
static md_expr *shared_side(md_frw *w, md_expr *t, int end, md_expr **rest)
{
    if (t->kind != MD_MUL || t->id >= w->n || w->uses[t->id] != 1) return NULL;
    int nm = 0, at = -1;
    for (int i = 0; i < t->nargs; i++)
        if (!md_is_scalar(t->args[i])) {
            nm++;
            if (end || at < 0) at = i;   /* the last, or the first, matrix factor */
        }
    if (nm < 2) return NULL;
    md_expr *C = t->args[at];
    md_expr **o = md_xmalloc((size_t)t->nargs * sizeof *o);
    int no = 0, single = -1;
    for (int i = 0; i < t->nargs; i++)
        if (i != at) {
            if (!md_is_scalar(t->args[i])) single = no;
            o[no++] = t->args[i];
        }
    int vec = end ? C->rows == MD_DIM_ONE : C->cols == MD_DIM_ONE;
    /* (nor a Kronecker product or commutation matrix: K1*v + K2*v applies
       each to v, (K1 + K2)*v would form them) */
    int applied = nm == 2 && (o[single]->kind == MD_KRON || o[single]->kind == MD_COMM);
    if (applied || (nm > 2 ? !vec : is_inverse(o[single]))) {
        free(o);
        return NULL;
    }
    int rows = end ? t->rows : C->cols, cols = end ? C->rows : t->cols;
    *rest = no == 1 ? o[0] : md_expr_make(w->ctx, MD_MUL, rows, cols, 0, 0, 0, no, o, NULL);
    free(o);
    return C;
}

static md_expr *frw(md_frw *w, md_expr *e);

/* Terms a[0..n) of a sum (r x c) with shared factors taken out. */
static md_expr *factor_sum(md_frw *w, md_expr **a, int n, int rows, int cols)
{
    md_ctx *ctx = w->ctx;
    for (int end = 1; end >= 0; end--)
        for (int i = 0; i < n; i++) {
            md_expr *ri, *C = shared_side(w, a[i], end, &ri);
            if (!C) continue;
            md_expr **grp = md_xmalloc((size_t)n * sizeof *grp);
            int ng = 0;
            grp[ng++] = ri;
            for (int j = i + 1; j < n; j++) {
                md_expr *rj;
                if (shared_side(w, a[j], end, &rj) == C) {
                    grp[ng++] = rj;
                    memmove(a + j, a + j + 1, (size_t)(n - j - 1) * sizeof *a);
                    n--;
                    j--;
                }
            }
            if (ng > 1) {
                md_expr *sum = factor_sum(w, grp, ng, grp[0]->rows, grp[0]->cols);
                md_expr *pr[2] = {end ? sum : C, end ? C : sum};
                a[i] = md_expr_make(ctx, MD_MUL, pr[0]->rows, pr[1]->cols, 0, 0, 0, 2, pr, NULL);
            }
            free(grp);
        }
    if (n == 1) return a[0];
    return md_expr_make(ctx, MD_ADD, rows, cols, 0, 0, 0, n, a, NULL);
}

static md_expr *frw(md_frw *w, md_expr *e)
{
    if (e->nargs == 0) return e;
    if (e->id < w->n && w->memo[e->id]) return w->memo[e->id];
    md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
    int changed = 0;
    for (int i = 0; i < e->nargs; i++) {
        a[i] = frw(w, e->args[i]);
        changed |= a[i] != e->args[i];
    }
    md_expr *r;
    if (e->kind == MD_ADD && !md_is_scalar(e)) {
        /* the terms as they were: the use counts are the original's */
        md_expr **t = md_xmalloc((size_t)e->nargs * sizeof *t);
        memcpy(t, e->args, (size_t)e->nargs * sizeof *t);
        int n = e->nargs;
        r = factor_sum(w, t, n, e->rows, e->cols);
        free(t);
        if (r->kind == MD_ADD && r->nargs == e->nargs && !memcmp(r->args, e->args, (size_t)n * sizeof *a))
            r = changed ? md_expr_make(w->ctx, e->kind, e->rows, e->cols, e->ival, e->aux, e->order, e->nargs, a,
                                       NULL)
                        : e;
        else
            r = frw(w, r);   /* the new sums' terms, rewritten in turn */
    } else {
        r = changed ? md_expr_make(w->ctx, e->kind, e->rows, e->cols, e->ival, e->aux, e->order, e->nargs, a,
                                   e->kind == MD_NUM ? e->q : NULL)
                    : e;
    }
    free(a);
    if (e->id < w->n) w->memo[e->id] = r;
    return r;
}

void md_factor_rewrite(md_ctx *ctx, int n, md_expr **roots)
{
    md_frw w = {ctx, ctx->nnodes, NULL, NULL};
    w.memo = md_xcalloc(w.n ? w.n : 1, sizeof *w.memo);
    w.uses = md_xcalloc(w.n ? w.n : 1, sizeof *w.uses);
    char *seen = md_xcalloc(w.n ? w.n : 1, 1);
    for (int i = 0; i < n; i++) {
        w.uses[roots[i]->id]++;   /* a root is used by its caller */
        count_uses(roots[i], w.uses, seen);
    }
    free(seen);
    for (int i = 0; i < n; i++) roots[i] = frw(&w, roots[i]);
    free(w.memo);
    free(w.uses);
}

/* norm2(E)^2 = sum(E.^2), after the cost rewrite (which reads norm2(A*B)^2
   for its Gram form); nodes are rebuilt raw, as copt builds them, so that
   the bracketing chosen stays. */
static md_expr *nrw(md_srw *w, md_expr *e)
{
    if (e->nargs == 0) return e;
    if (e->id < w->n && w->memo[e->id]) return w->memo[e->id];
    md_ctx *ctx = w->ctx;
    md_expr *r;
    if (e->kind == MD_POW && e->args[0]->kind == MD_NORM2 && md_is_num(e->args[1], 2) && md_is_scalar(e)) {
        md_expr *E = nrw(w, e->args[0]->args[0]);
        md_expr *sq[2] = {E, e->args[1]};
        md_expr *p = md_expr_make(ctx, MD_POW, E->rows, E->cols, 0, 0, 0, 2, sq, NULL);
        r = md_expr_make(ctx, MD_SUM, MD_DIM_ONE, MD_DIM_ONE, 0, 0, 0, 1, &p, NULL);
    } else {
        md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
        int changed = 0;
        for (int i = 0; i < e->nargs; i++) {
            a[i] = nrw(w, e->args[i]);
            changed |= a[i] != e->args[i];
        }
        r = changed ? md_expr_make(ctx, e->kind, e->rows, e->cols, e->ival, e->aux, e->order, e->nargs, a,
                                   e->kind == MD_NUM ? e->q : NULL)
                    : e;
        free(a);
    }
    if (e->id < w->n) w->memo[e->id] = r;
    return r;
}

void md_norm_rewrite(md_ctx *ctx, int n, md_expr **roots)
{
    md_srw w = {ctx, ctx->nnodes, NULL};
    w.memo = md_xcalloc(w.n, sizeof *w.memo);
    for (int i = 0; i < n; i++) roots[i] = nrw(&w, roots[i]);
    free(w.memo);
}

/* ---- shared Hadamard sub-products -------------------------------------- */

typedef struct md_hsw {
    md_ctx *ctx;
    uint32_t n;
    md_expr **memo;
    md_expr **had;       /* the elementwise products of the graph */
    int nhad;
} md_hsw;

static void hsw_collect(md_hsw *w, md_expr *e, char *seen)
{
    if (e->id >= w->n || seen[e->id]) return;
    seen[e->id] = 1;
    if (e->kind == MD_HAD) {
        w->had = md_xrealloc(w->had, (size_t)(w->nhad + 1) * sizeof *w->had);
        w->had[w->nhad++] = e;
    }
    for (int i = 0; i < e->nargs; i++) hsw_collect(w, e->args[i], seen);
}

/* Are g's arguments a sub-multiset of h's?  Then mark them in used. */
static int hsw_subset(const md_expr *g, const md_expr *h, char *used)
{
    memset(used, 0, (size_t)h->nargs);
    for (int i = 0; i < g->nargs; i++) {
        int j = 0;
        while (j < h->nargs && (used[j] || h->args[j] != g->args[i])) j++;
        if (j == h->nargs) return 0;
        used[j] = 1;
    }
    return 1;
}

static md_expr *hsw(md_hsw *w, md_expr *e)
{
    if (e->nargs == 0 || e->id >= w->n) return e;
    if (w->memo[e->id]) return w->memo[e->id];
    md_expr *g = NULL;
    char *used = md_xcalloc((size_t)e->nargs + 1, 1);
    if (e->kind == MD_HAD && e->nargs >= 3)
        for (int k = 0; k < w->nhad; k++) {
            md_expr *c = w->had[k];
            if (c != e && c->nargs >= 2 && c->nargs < e->nargs && (!g || c->nargs > g->nargs) &&
                hsw_subset(c, e, used))
                g = c;
        }
    md_expr *r;
    if (g) {   /* (g) .* the rest */
        hsw_subset(g, e, used);
        md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
        int na = 0;
        a[na++] = hsw(w, g);
        for (int j = 0; j < e->nargs; j++)
            if (!used[j]) a[na++] = hsw(w, e->args[j]);
        r = md_expr_make(w->ctx, MD_HAD, e->rows, e->cols, 0, 0, 0, na, a, NULL);
        free(a);
    } else {
        md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
        int changed = 0;
        for (int i = 0; i < e->nargs; i++) {
            a[i] = hsw(w, e->args[i]);
            changed |= a[i] != e->args[i];
        }
        r = changed ? md_expr_make(w->ctx, e->kind, e->rows, e->cols, e->ival, e->aux, e->order, e->nargs, a,
                                   e->kind == MD_NUM ? e->q : NULL)
                    : e;
        free(a);
    }
    free(used);
    w->memo[e->id] = r;
    return r;
}

void md_had_share(md_ctx *ctx, int n, md_expr **roots)
{
    md_hsw w = {ctx, ctx->nnodes, NULL, NULL, 0};
    w.memo = md_xcalloc(w.n ? w.n : 1, sizeof *w.memo);
    char *seen = md_xcalloc(w.n ? w.n : 1, 1);
    for (int i = 0; i < n; i++) hsw_collect(&w, roots[i], seen);
    free(seen);
    for (int i = 0; i < n; i++) roots[i] = hsw(&w, roots[i]);
    free(w.memo);
    free(w.had);
}

