/*
 * simplify.c -- the simplifying constructors (the canonical form is
 * described in include/md_simplify.h).
 *
 * The design follows yices' term manager: raw construction (expr.c) is
 * kept apart from the constructors here, which normalise on the way in.
 * Because every node of a derivation is built by these functions, a
 * derivative is born simplified; md_simplify is only needed for trees
 * made by someone else (the parser's direct translation, the tests).
 *
 * Products and sums are the heart of it.  A product is taken apart into
 * (rational coefficient, scalar factors with exponents, matrix chain),
 * each part is normalised, and the node is rebuilt; a sum is taken apart
 * into (coefficient, core) pairs, cores are collected in a table keyed by
 * node pointer (hash consing makes that exact), and rebuilt in order.
 * Rules that need care because they are only true under a condition are
 * commented where they are applied.
 *
 * Nothing here distributes a product over a sum for good: expansion can
 * blow up exponentially on the shared DAGs of deep networks, and the
 * compact factored form is what a mathematician writes anyway.  md_add
 * only tries it, bounded, and keeps it where terms cancel so that the sum
 * becomes clearly smaller (md_expand_sum).  The forms people write out,
 * exp(z)/sum(exp(z)) and 1./(1 + exp(-z)), become the built-ins softmax
 * and sigmoid where the constructors meet them (md_mul, md_pow, md_func).
 */
#include "md_simplify.h"

#include "md_builtins.h"

#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---------------------------------------------------- */

/*
 * Flattening is bounded: an n-ary node with more than MD_FLAT_MAX operands
 * is kept as one operand of a new node instead of being spliced in.
 * Without the bound, the differential of sin(sin(...sin(x)...)) rebuilds a
 * Hadamard product one factor longer at every level: quadratic time and
 * memory.  With it, work per level is constant.  Canonical forms stay
 * deterministic; only very wide products lose normalisation across
 * different bracketings.
 */
enum { MD_FLAT_MAX = 32 };

typedef struct md_vec {
    md_expr **v;
    int n, cap;
} md_vec;

static void md_vec_push(md_vec *a, md_expr *e)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 8;
        a->v = md_xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = e;
}

static md_expr *md_raw(md_ctx *ctx, md_kind kind, int rows, int cols, int n, md_expr *const *args)
{
    return md_expr_make(ctx, kind, rows, cols, 0, 0, 0, n, args, NULL);
}

static md_expr *md_raw1(md_ctx *ctx, md_kind kind, int rows, int cols, md_expr *a)
{
    return md_raw(ctx, kind, rows, cols, 1, &a);
}

static int md_is_integer(const mpq_t q) { return mpz_cmp_ui(mpq_denref(q), 1) == 0; }

/* Splits e into coefficient * core.  core == NULL means e is the number. */
static md_expr *md_split(md_ctx *ctx, md_expr *e, mpq_t coef)
{
    if (e->kind == MD_NUM) {
        mpq_set(coef, e->q);
        return NULL;
    }
    if (e->kind == MD_MUL && e->args[0]->kind == MD_NUM) {
        mpq_set(coef, e->args[0]->q);
        if (e->nargs == 2) return e->args[1];
        return md_raw(ctx, MD_MUL, e->rows, e->cols, e->nargs - 1, e->args + 1);
    }
    mpq_set_ui(coef, 1, 1);
    return e;
}

/* coef * core, core canonical and without a coefficient of its own. */
static md_expr *md_join(md_ctx *ctx, const mpq_t coef, md_expr *core, int rows, int cols)
{
    if (!core) return md_num(ctx, coef);
    if (mpq_sgn(coef) == 0) return md_zero(ctx, rows, cols);
    if (mpq_cmp_ui(coef, 1, 1) == 0) return core;
    md_expr *c = md_num(ctx, coef);
    /* a 1x1 chain (x'*y) stays one factor: c*(x'*y), as md_mul builds it */
    int pure_chain = core->kind == MD_MUL && md_is_scalar(core) && !md_is_scalar(core->args[0]);
    if (core->kind == MD_MUL && !pure_chain) {
        md_expr **a = md_xmalloc((size_t)(core->nargs + 1) * sizeof *a);
        a[0] = c;
        memcpy(a + 1, core->args, (size_t)core->nargs * sizeof *a);
        md_expr *r = md_raw(ctx, MD_MUL, core->rows, core->cols, core->nargs + 1, a);
        free(a);
        return r;
    }
    md_expr *a[2] = {c, core};
    return md_raw(ctx, MD_MUL, core->rows, core->cols, 2, a);
}

/*
 * A sum used as a factor is made primitive: returns the primitive sum and
 * sets content so that e == content * result.  The content is the gcd of
 * the coefficients' numerators, divided by their denominator when they all
 * have the same one; the constant term of the result, if any, is positive,
 * else the first term is.
 */
static md_expr *md_primitive(md_ctx *ctx, md_expr *e, mpq_t content)
{
    mpq_set_ui(content, 1, 1);
    if (e->kind != MD_ADD) return e;
    /* the content is the gcd of the numerators, over the denominator only
       when all coefficients share it: (x + y)/2, but x/2 + y/3 and
       A'*r + x/500 rather than (500*A'*r + x)/500 */
    mpz_t g, l;
    mpz_inits(g, l, NULL);
    mpq_t c;
    mpq_init(c);
    int same_den = 1;
    for (int i = 0; i < e->nargs; i++) {
        md_split(ctx, e->args[i], c);
        mpz_gcd(g, g, mpq_numref(c));
        if (i == 0) mpz_set(l, mpq_denref(c));
        else if (mpz_cmp(l, mpq_denref(c)) != 0) same_den = 0;
    }
    if (!same_den) mpz_set_ui(l, 1);
    /* the sign: a constant term (a number, c*matrix(1)) is made positive,
       as in 1 - x.^2; otherwise the first term */
    md_expr *lead = e->args[0];
    md_expr *lastcore = md_split(ctx, e->args[e->nargs - 1], c);
    if (!lastcore || lastcore->kind == MD_ONES) lead = e->args[e->nargs - 1];
    md_split(ctx, lead, c);
    mpq_set_num(content, g);
    mpq_set_den(content, l);
    mpq_canonicalize(content);
    if (mpq_sgn(c) < 0) mpq_neg(content, content);
    md_expr *r = e;
    if (mpq_cmp_ui(content, 1, 1) != 0) {
        mpq_t inv;
        mpq_init(inv);
        mpq_inv(inv, content);
        md_expr **t = md_xmalloc((size_t)e->nargs * sizeof *t);
        for (int i = 0; i < e->nargs; i++) {
            md_expr *core = md_split(ctx, e->args[i], c);
            mpq_mul(c, c, inv);
            t[i] = md_join(ctx, c, core, e->rows, e->cols);
        }
        r = md_raw(ctx, MD_ADD, e->rows, e->cols, e->nargs, t);
        free(t);
        mpq_clear(inv);
    }
    mpq_clear(c);
    mpz_clears(g, l, NULL);
    return r;
}

/* ---- sums ------------------------------------------------------------- */

typedef struct md_term {
    md_expr *core;   /* NULL for the numeric term */
    mpq_t coef;
} md_term;

static int md_term_cmp(const void *pa, const void *pb)
{
    const md_term *a = pa, *b = pb;
    if (!a->core || !b->core) return (a->core == NULL) - (b->core == NULL);
    return md_expr_cmp(a->core, b->core);
}

static md_expr *md_factor_common(md_ctx *ctx, md_term *t, int n, int rows, int cols, int tail);

/* The chain part of a product: the args after the scalar factors. */
static int md_chain_start(const md_expr *e)
{
    int i = 0;
    while (i < e->nargs && md_is_scalar(e->args[i])) i++;
    return i;
}

/* Flattens nested sums, distributing numbers over them: c*(a + b) as a
   term becomes c*a + c*b, so that no sum ever has a sum as a term. */
static void md_flatten_add(md_ctx *ctx, md_vec *out, md_expr *e, mpq_srcptr coef)
{
    if (e->kind == MD_ADD && e->nargs <= MD_FLAT_MAX) {
        for (int i = 0; i < e->nargs; i++) md_flatten_add(ctx, out, e->args[i], coef);
    } else if (e->kind == MD_MUL && e->nargs == 2 && e->args[0]->kind == MD_NUM &&
               e->args[1]->kind == MD_ADD && e->args[1]->nargs <= MD_FLAT_MAX) {
        mpq_t c;
        mpq_init(c);
        if (coef) mpq_mul(c, coef, e->args[0]->q);
        else mpq_set(c, e->args[0]->q);
        md_flatten_add(ctx, out, e->args[1], c);
        mpq_clear(c);
    } else if (!md_is_zero(e)) {
        md_vec_push(out, coef ? md_scale(ctx, coef, e) : e);
    }
}

static md_expr *md_common_scalar(md_ctx *ctx, md_term *t, int n, int rows, int cols);

/*
 * The sum of v[0..n) with a Hadamard factor common to every term taken
 * out: a.*b.*c + a.*b.*d = a.*b.*(c + d), which then collects
 * ((1 - y) + y is 1).  Used where sums of weights meet (diag merging);
 * not in md_add itself, where it would reorder every gradient.
 */
static md_expr *md_had_factored_sum(md_ctx *ctx, int n, md_expr **v)
{
    md_expr *s = md_add(ctx, n, v);
    if (s->kind != MD_ADD) return s;
    mpq_t c;
    mpq_init(c);
    int nt = s->nargs;
    md_expr **core = md_xmalloc((size_t)nt * sizeof *core);
    mpq_t *coef = md_xmalloc((size_t)nt * sizeof *coef);
    for (int i = 0; i < nt; i++) {
        mpq_init(coef[i]);
        core[i] = md_split(ctx, s->args[i], coef[i]);
    }
    md_vec common = {0};
    md_expr *first = core[0];
    int nf = first ? (first->kind == MD_HAD ? first->nargs : 1) : 0;
    for (int k = 0; k < nf; k++) {
        md_expr *cand = first->kind == MD_HAD ? first->args[k] : first;
        int all = 1;
        for (int i = 1; i < nt && all; i++) {
            md_expr *e = core[i];
            int has = e == cand;
            if (e && e->kind == MD_HAD)
                for (int j = 0; j < e->nargs && !has; j++) has = e->args[j] == cand;
            all = has;
        }
        if (all) md_vec_push(&common, cand);
    }
    md_expr *r = s;
    if (common.n > 0) {
        md_expr **rest = md_xmalloc((size_t)nt * sizeof *rest);
        for (int i = 0; i < nt; i++) {
            md_vec keep = {0};
            md_expr *e = core[i];
            int ne = e->kind == MD_HAD ? e->nargs : 1;
            char *used = md_xcalloc((size_t)common.n, 1);
            for (int j = 0; j < ne; j++) {
                md_expr *a = e->kind == MD_HAD ? e->args[j] : e;
                int dropped = 0;
                for (int k = 0; k < common.n && !dropped; k++)
                    if (!used[k] && common.v[k] == a) used[k] = 1, dropped = 1;
                if (!dropped) md_vec_push(&keep, a);
            }
            free(used);
            md_expr *kept = keep.n == 0 ? md_ones(ctx, s->rows, s->cols) : md_had(ctx, keep.n, keep.v);
            rest[i] = md_scale(ctx, coef[i], kept);
            free(keep.v);
        }
        md_vec_push(&common, md_add(ctx, nt, rest));
        r = md_had(ctx, common.n, common.v);
        free(rest);
    }
    free(common.v);
    for (int i = 0; i < nt; i++) mpq_clear(coef[i]);
    free(coef);
    free(core);
    mpq_clear(c);
    return r;
}

static md_expr *md_scalar_out(md_ctx *ctx, md_expr *a, md_expr **sc);
static md_expr *md_expand_sum(md_ctx *ctx, md_term *t, int m, int rows, int cols);
static uint64_t md_sum_size(md_ctx *ctx, md_expr *e);

md_expr *md_add(md_ctx *ctx, int n, md_expr *const *terms)
{
    if (n == 0) return md_num_si(ctx, 0, 1);
    if (n == 1 && terms[0]->kind != MD_ADD) return terms[0];   /* c*(a + b) stays factored */
    int rows = terms[0]->rows, cols = terms[0]->cols;
    md_vec flat = {0};
    for (int i = 0; i < n; i++) md_flatten_add(ctx, &flat, terms[i], NULL);
    if (flat.n == 0) {
        free(flat.v);
        return md_zero(ctx, rows, cols);
    }
    if (flat.n == 1) {
        md_expr *r = flat.v[0];
        free(flat.v);
        return r;
    }

    /* collect like terms: an open-addressing table from core to slot */
    md_term *t = md_xcalloc((size_t)flat.n, sizeof *t);
    int nt = 0;
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)flat.n) cap *= 2;
    int *slot = md_xmalloc(cap * sizeof *slot);
    for (uint32_t i = 0; i < cap; i++) slot[i] = -1;
    mpq_t c;
    mpq_init(c);
    for (int i = 0; i < flat.n; i++) {
        md_expr *core = md_split(ctx, flat.v[i], c);
        uint32_t h = core ? core->hash : 0x5bd1e995u;
        uint32_t j = h & (cap - 1);
        while (slot[j] >= 0 && t[slot[j]].core != core) j = (j + 1) & (cap - 1);
        if (slot[j] < 0) {
            slot[j] = nt;
            t[nt].core = core;
            mpq_init(t[nt].coef);
            mpq_set(t[nt].coef, c);
            nt++;
        } else {
            mpq_add(t[slot[j]].coef, t[slot[j]].coef, c);
        }
    }
    mpq_clear(c);
    free(slot);
    free(flat.v);

    /* drop zeros, order heaviest first, numbers last */
    int m = 0;
    for (int i = 0; i < nt; i++) {
        if (mpq_sgn(t[i].coef) == 0) {
            mpq_clear(t[i].coef);
            continue;
        }
        t[m++] = t[i];
    }
    qsort(t, (size_t)m, sizeof *t, md_term_cmp);

    md_expr *r = NULL;
    /* c*diag(u) + d*diag(v) = diag(c*u + d*v): Hessians collect their
       weights in one diagonal (X'*diag(s.*(1 - s))*X) */
    int ndiag = 0;
    for (int i = 0; i < m; i++) ndiag += t[i].core && t[i].core->kind == MD_DIAGM;
    /* c*vec(A) + d*vec(B) = vec(c*A + d*B) for A, B of one shape */
    for (int i = 0; i < m && !r; i++) {
        if (!t[i].core || t[i].core->kind != MD_VEC) continue;
        md_expr *A = t[i].core->args[0];
        int same = 0;
        for (int j = i + 1; j < m; j++)
            same += t[j].core && t[j].core->kind == MD_VEC && t[j].core->args[0]->rows == A->rows &&
                    t[j].core->args[0]->cols == A->cols;
        if (!same) continue;
        md_expr **inner = md_xmalloc((size_t)m * sizeof *inner), **outer = md_xmalloc((size_t)(m + 1) * sizeof *outer);
        int ni = 0, no = 0;
        for (int j = 0; j < m; j++)
            if (j >= i && t[j].core && t[j].core->kind == MD_VEC && t[j].core->args[0]->rows == A->rows &&
                t[j].core->args[0]->cols == A->cols)
                inner[ni++] = md_scale(ctx, t[j].coef, t[j].core->args[0]);
            else
                outer[no++] = md_join(ctx, t[j].coef, t[j].core, rows, cols);
        outer[no++] = md_vec_of(ctx, md_add(ctx, ni, inner));
        r = md_add(ctx, no, outer);
        free(inner);
        free(outer);
    }
    /* c*kron(A, B) + d*kron(A, C) = kron(A, c*B + d*C), and the same for a
       common right factor; c and d may hold symbolic scalars */
    {
        md_expr **kc = md_xcalloc((size_t)m + 1, sizeof *kc), **ks = md_xcalloc((size_t)m + 1, sizeof *ks);
        for (int i = 0; i < m; i++) {
            md_expr *core = t[i].core ? md_scalar_out(ctx, t[i].core, &ks[i]) : NULL;
            if (core && core->kind == MD_KRON) {
                kc[i] = core;
                ks[i] = md_scale(ctx, t[i].coef, ks[i]);
            }
        }
        for (int side = 0; side < 2 && !r; side++)
            for (int i = 0; i < m && !r; i++) {
                if (!kc[i]) continue;
                md_expr *K = kc[i]->args[side], *O = kc[i]->args[!side];
                int same = 0;
                for (int j = i + 1; j < m; j++)
                    same += kc[j] && kc[j]->args[side] == K && kc[j]->args[!side]->rows == O->rows &&
                            kc[j]->args[!side]->cols == O->cols;
                if (!same) continue;
                md_expr **inner = md_xmalloc((size_t)m * sizeof *inner), **outer = md_xmalloc((size_t)(m + 1) * sizeof *outer);
                int ni = 0, no = 0;
                for (int j = 0; j < m; j++)
                    if (j >= i && kc[j] && kc[j]->args[side] == K && kc[j]->args[!side]->rows == O->rows &&
                        kc[j]->args[!side]->cols == O->cols)
                        inner[ni++] = md_mul2(ctx, ks[j], kc[j]->args[!side]);
                    else
                        outer[no++] = md_join(ctx, t[j].coef, t[j].core, rows, cols);
                md_expr *sum = md_add(ctx, ni, inner);
                outer[no++] = side == 0 ? md_kron(ctx, K, sum) : md_kron(ctx, sum, K);
                r = md_add(ctx, no, outer);
                free(inner);
                free(outer);
            }
        free(kc);
        free(ks);
    }
    if (!r && ndiag >= 2) {
        md_expr **inner = md_xmalloc((size_t)m * sizeof *inner), **outer = md_xmalloc((size_t)(m + 1) * sizeof *outer);
        int ni = 0, no = 0;
        for (int i = 0; i < m; i++)
            if (t[i].core && t[i].core->kind == MD_DIAGM) inner[ni++] = md_scale(ctx, t[i].coef, t[i].core->args[0]);
            else outer[no++] = md_join(ctx, t[i].coef, t[i].core, rows, cols);
        outer[no++] = md_unary(ctx, MD_DIAGM, md_had_factored_sum(ctx, ni, inner));
        r = md_add(ctx, no, outer);
        free(inner);
        free(outer);
    }
    if (r) ;
    else if (m == 0) r = md_zero(ctx, rows, cols);
    else if (m == 1) r = md_join(ctx, t[0].coef, t[0].core, rows, cols);
    if (!r && !ctx->no_factor) r = md_common_scalar(ctx, t, m, rows, cols);
    if (!r && !ctx->no_factor) r = md_factor_common(ctx, t, m, rows, cols, 1);
    if (!r && !ctx->no_factor) r = md_factor_common(ctx, t, m, rows, cols, 0);
    if (!r) {
        md_expr **a = md_xmalloc((size_t)m * sizeof *a);
        for (int i = 0; i < m; i++) a[i] = md_join(ctx, t[i].coef, t[i].core, rows, cols);
        r = md_raw(ctx, MD_ADD, rows, cols, m, a);
        free(a);
    }
    if (!ctx->expanding && m >= 2) {
        md_expr *x = md_expand_sum(ctx, t, m, rows, cols);
        /* clearly smaller: by a node or two it is only a different
           spelling, (A.*B - C).*B against B.^2.*A - B.*C */
        if (x && 4 * md_sum_size(ctx, x) <= 3 * md_sum_size(ctx, r)) r = x;
    }
    for (int i = 0; i < m; i++) mpq_clear(t[i].coef);
    free(t);
    return r;
}

/*
 * Expanding and collecting again.  Terms whose core is a Hadamard or
 * matrix product with a sum among its factors are distributed over that
 * sum (and again over the sums of the results, a few levels down), and
 * the whole is collected again; md_add keeps the result only when it is
 * lighter than the sum as it was.  That is where cancellations across
 * products show: (1 - y).*s - (1 - s).*y is s - y (logistic regression).
 * Bounded, so that the cost stays small and the shared DAGs of deep
 * networks do not blow up: sums of at most MD_EXPAND_SUM terms,
 * MD_EXPAND_MAX terms in all.  ctx->expanding keeps the sums built on the
 * way from trying it again.  Returns NULL when nothing expands.
 */
enum { MD_EXPAND_SUM = 6, MD_EXPAND_MAX = 32, MD_EXPAND_DEPTH = 3 };

/* Factor i of the product e is a sum to distribute: any sum of a
   Hadamard product, a scalar sum of a product (a matrix sum in a chain
   stays: X'*(X*w - y) is how people write it). */
static int md_expandable_at(const md_expr *e, int i)
{
    md_expr *a = e->args[i];
    if (a->kind != MD_ADD || a->nargs > MD_EXPAND_SUM) return 0;
    return e->kind == MD_HAD || md_is_scalar(a);
}

static int md_expandable(const md_expr *e)
{
    if (e->kind != MD_HAD && e->kind != MD_MUL) return 0;
    for (int i = 0; i < e->nargs; i++)
        if (md_expandable_at(e, i)) return 1;
    return 0;
}

static int md_expand_term(md_ctx *ctx, md_expr *e, md_vec *out, int depth)
{
    mpq_t c;
    mpq_init(c);
    md_expr *core = md_split(ctx, e, c);
    int k = -1;
    if (core && depth > 0 && md_expandable(core))
        for (int i = 0; i < core->nargs && k < 0; i++)
            if (md_expandable_at(core, i)) k = i;
    int rc = 0;
    if (k < 0) {
        md_vec_push(out, e);
    } else {
        md_expr *s = core->args[k];
        md_expr **a = md_xmalloc((size_t)core->nargs * sizeof *a);
        for (int j = 0; j < s->nargs && !rc; j++) {
            memcpy(a, core->args, (size_t)core->nargs * sizeof *a);
            a[k] = s->args[j];
            md_expr *p = core->kind == MD_HAD ? md_had(ctx, core->nargs, a) : md_mul(ctx, core->nargs, a);
            rc = md_expand_term(ctx, md_scale(ctx, c, p), out, depth - 1);
        }
        free(a);
    }
    mpq_clear(c);
    return rc || out->n > MD_EXPAND_MAX ? -1 : 0;
}

/* The size md_add compares an expanded sum by: the weights of the terms'
   cores, coefficients left out.  The same for e and c*e (a weight would
   count the -1 of each negative term), so that a sum, its negation and
   its primitive part expand alike and the canonical form stays one. */
static uint64_t md_sum_size(md_ctx *ctx, md_expr *e)
{
    mpq_t c;
    mpq_init(c);
    uint64_t w = 0;
    int n = e->kind == MD_ADD ? e->nargs : 1;
    md_expr *const *a = e->kind == MD_ADD ? e->args : &e;
    for (int i = 0; i < n; i++) {
        md_expr *core = md_split(ctx, a[i], c);
        w += core ? core->weight : 1;
    }
    mpq_clear(c);
    return w;
}

static md_expr *md_expand_sum(md_ctx *ctx, md_term *t, int m, int rows, int cols)
{
    int any = 0;
    for (int i = 0; i < m && !any; i++) any = t[i].core && md_expandable(t[i].core);
    if (!any) return NULL;
    ctx->expanding = 1;
    md_vec out = {0};
    int rc = 0;
    for (int i = 0; i < m && !rc; i++)
        rc = md_expand_term(ctx, md_join(ctx, t[i].coef, t[i].core, rows, cols), &out, MD_EXPAND_DEPTH);
    md_expr *r = rc ? NULL : md_add(ctx, out.n, out.v);
    free(out.v);
    ctx->expanding = 0;
    return r;
}

/*
 * A symbolic scalar factor common to every term comes out:
 * c*A*x + c*B*x = c*(A*x + B*x) (and then the factoring below gives
 * c*(A + B)*x).  Returns NULL when there is none.
 */
static md_expr *md_common_scalar(md_ctx *ctx, md_term *t, int n, int rows, int cols)
{
    if (!t[0].core || t[0].core->kind != MD_MUL) return NULL;
    md_expr *f = NULL;
    for (int k = 0; k < t[0].core->nargs && !f; k++) {
        md_expr *cand = t[0].core->args[k];
        if (!md_is_scalar(cand) || cand->kind == MD_NUM) continue;
        int all = 1;
        for (int i = 1; i < n && all; i++) {
            md_expr *e = t[i].core;
            int has = 0;
            if (e && e->kind == MD_MUL)
                for (int j = 0; j < e->nargs; j++) has |= e->args[j] == cand;
            all = has;
        }
        if (all) f = cand;
    }
    if (!f) return NULL;
    md_expr **rest = md_xmalloc((size_t)n * sizeof *rest);
    for (int i = 0; i < n; i++) {
        md_expr *e = t[i].core;
        md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
        int m = 0, dropped = 0;
        for (int j = 0; j < e->nargs; j++) {
            if (!dropped && e->args[j] == f) {
                dropped = 1;
                continue;
            }
            a[m++] = e->args[j];
        }
        md_expr *core = m == 0 ? md_num_si(ctx, 1, 1) : md_mul(ctx, m, a);
        if (md_is_scalar(core) && !(rows == MD_DIM_ONE && cols == MD_DIM_ONE))
            core = md_mul2(ctx, core, md_ones(ctx, rows, cols));
        rest[i] = md_scale(ctx, t[i].coef, core);
        free(a);
    }
    md_expr *r = md_mul2(ctx, f, md_add(ctx, n, rest));
    free(rest);
    return r;
}

/*
 * Factoring: terms whose matrix chains end (tail) or start (head) with the
 * same factor F, with something left on the other side, are combined:
 *     P1*F + P2*F + rest  =  (P1 + P2)*F + rest.
 * Returns NULL when no two terms share such a factor.
 */
static md_expr *md_factor_common(md_ctx *ctx, md_term *t, int n, int rows, int cols, int tail)
{
    /* the shared factor of each term, or NULL */
    md_expr **key = md_xcalloc((size_t)n, sizeof *key);
    for (int i = 0; i < n; i++) {
        md_expr *e = t[i].core;
        if (!e || e->kind != MD_MUL) continue;
        int s = md_chain_start(e);
        if (e->nargs - s < 2) continue;
        key[i] = tail ? e->args[e->nargs - 1] : e->args[s];
    }
    int found = -1;
    for (int i = 0; i < n && found < 0; i++)
        for (int j = i + 1; j < n && key[i]; j++)
            if (key[j] == key[i]) {
                found = i;
                break;
            }
    if (found < 0) {
        free(key);
        return NULL;
    }
    md_expr *f = key[found];
    md_vec inner = {0}, outer = {0};
    for (int i = 0; i < n; i++) {
        md_expr *e = t[i].core;
        if (key[i] == f) {
            md_expr *rest;
            if (tail)
                rest = md_mul(ctx, e->nargs - 1, e->args);
            else {
                /* scalars stay with the rest: drop only the first chain factor */
                int s = md_chain_start(e);
                md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
                memcpy(a, e->args, (size_t)s * sizeof *a);
                memcpy(a + s, e->args + s + 1, (size_t)(e->nargs - s - 1) * sizeof *a);
                rest = md_mul(ctx, e->nargs - 1, a);
                free(a);
            }
            md_vec_push(&inner, md_scale(ctx, t[i].coef, rest));
        } else {
            md_vec_push(&outer, md_join(ctx, t[i].coef, e, rows, cols));
        }
    }
    md_expr *s = md_add(ctx, inner.n, inner.v);
    md_expr *prod = tail ? md_mul2(ctx, s, f) : md_mul2(ctx, f, s);
    md_vec_push(&outer, prod);
    md_expr *r = md_add(ctx, outer.n, outer.v);
    free(inner.v);
    free(outer.v);
    free(key);
    return r;
}

md_expr *md_add2(md_ctx *ctx, md_expr *a, md_expr *b)
{
    md_expr *t[2] = {a, b};
    return md_add(ctx, 2, t);
}

md_expr *md_scale(md_ctx *ctx, const mpq_t c, md_expr *a)
{
    if (mpq_cmp_ui(c, 1, 1) == 0) return a;
    md_expr *t[2] = {md_num(ctx, c), a};
    return md_mul(ctx, 2, t);
}

md_expr *md_scale_si(md_ctx *ctx, long num, unsigned long den, md_expr *a)
{
    md_expr *t[2] = {md_num_si(ctx, num, den), a};
    return md_mul(ctx, 2, t);
}

md_expr *md_neg(md_ctx *ctx, md_expr *a) { return md_scale_si(ctx, -1, 1, a); }

md_expr *md_sub(md_ctx *ctx, md_expr *a, md_expr *b)
{
    return md_add2(ctx, a, md_neg(ctx, b));
}

/* ---- products --------------------------------------------------------- */

/* A scalar factor base^exp (exp rational); base is never a number. */
typedef struct md_sfac {
    md_expr *base;
    mpq_t exp;
} md_sfac;

typedef struct md_prod {
    mpq_t coef;
    md_sfac *s;
    int ns, scap;
    md_vec chain;
    int zero;
} md_prod;

static void md_prod_scalar(md_ctx *ctx, md_prod *p, md_expr *base, const mpq_t exp)
{
    for (int i = 0; i < p->ns; i++)
        if (p->s[i].base == base) {
            mpq_add(p->s[i].exp, p->s[i].exp, exp);
            return;
        }
    if (p->ns == p->scap) {
        p->scap = p->scap ? 2 * p->scap : 8;
        p->s = md_xrealloc(p->s, (size_t)p->scap * sizeof *p->s);
    }
    p->s[p->ns].base = base;
    mpq_init(p->s[p->ns].exp);
    mpq_set(p->s[p->ns].exp, exp);
    p->ns++;
    (void)ctx;
}

static void md_prod_absorb(md_ctx *ctx, md_prod *p, md_expr *f, int splice);

/* Adds a 1x1 factor. */
static void md_prod_add_scalar(md_ctx *ctx, md_prod *p, md_expr *f)
{
    mpq_t one;
    mpq_init(one);
    mpq_set_ui(one, 1, 1);
    if (f->kind == MD_NUM) {
        mpq_mul(p->coef, p->coef, f->q);
    } else if (f->kind == MD_POW && f->args[1]->kind == MD_NUM) {
        md_prod_scalar(ctx, p, f->args[0], f->args[1]->q);
    } else if (f->kind == MD_ADD) {
        mpq_t content;
        mpq_init(content);
        md_expr *prim = md_primitive(ctx, f, content);
        mpq_mul(p->coef, p->coef, content);
        md_prod_scalar(ctx, p, prim, one);
        mpq_clear(content);
    } else {
        md_prod_scalar(ctx, p, f, one);
    }
    mpq_clear(one);
}

/* Adds factor f; splice: a 1x1 product f joins the chain (else it is a
   scalar factor). */
static void md_prod_absorb(md_ctx *ctx, md_prod *p, md_expr *f, int splice)
{
    if (md_is_zero(f)) {
        p->zero = 1;
        md_vec_push(&p->chain, f);   /* keeps the shape; the result is zero anyway */
        return;
    }
    if (f->kind == MD_MUL && f->nargs <= MD_FLAT_MAX) {
        int s = md_chain_start(f);
        for (int i = 0; i < s; i++) md_prod_add_scalar(ctx, p, f->args[i]);
        if (s < f->nargs) {
            if (md_is_scalar(f) && !splice) {
                /* a scalar such as x'*A*y inside a bigger product: it commutes */
                md_expr *inner = s == 0 ? f : md_mul(ctx, f->nargs - s, f->args + s);
                md_prod_add_scalar(ctx, p, inner);
            } else {
                for (int i = s; i < f->nargs; i++) md_vec_push(&p->chain, f->args[i]);
            }
        }
        return;
    }
    if (md_is_scalar(f)) {
        md_prod_add_scalar(ctx, p, f);
        return;
    }
    if (f->kind == MD_MUL) {
        /* a product too long to splice stays one factor of the chain, but
           its coefficient and scalar factors join ours: a chain factor
           never carries a coefficient (md_split and md_join rely on it) */
        int s = md_chain_start(f);
        for (int i = 0; i < s; i++) md_prod_add_scalar(ctx, p, f->args[i]);
        md_vec_push(&p->chain, s == 0 ? f
                               : f->nargs - s == 1 ? f->args[s]
                                                   : md_raw(ctx, MD_MUL, f->rows, f->cols, f->nargs - s, f->args + s));
        return;
    }
    if (f->kind == MD_ADD) {
        mpq_t content;
        mpq_init(content);
        md_expr *prim = md_primitive(ctx, f, content);
        mpq_mul(p->coef, p->coef, content);
        mpq_clear(content);
        md_vec_push(&p->chain, prim);
        return;
    }
    md_vec_push(&p->chain, f);
}

/* Square matrix factor as base^k (inv(X) is X^-1). */
static md_expr *md_power_base(md_expr *f, int *k)
{
    if (f->kind == MD_MPOW) {
        *k = f->ival;
        return f->args[0];
    }
    *k = 1;
    return f;
}

/* Normalises the chain in place; returns 1 if it changed. */
static int md_chain_normalise(md_ctx *ctx, md_vec *ch)
{
    int changed = 0;
    /* commutation(p, m)*kron(A, B)*commutation(n, q) = kron(B, A) for A
       m x n and B p x q (the commutation matrices swap a Kronecker
       product's factors) */
    for (int i = 0; i + 2 < ch->n; i++) {
        md_expr *k1 = ch->v[i], *kr = ch->v[i + 1], *k2 = ch->v[i + 2];
        if (k1->kind != MD_COMM || kr->kind != MD_KRON || k2->kind != MD_COMM) continue;
        md_expr *A = kr->args[0], *B = kr->args[1];
        if (k1->ival != B->rows || k1->aux != A->rows || k2->ival != A->cols || k2->aux != B->cols) continue;
        ch->v[i] = md_kron(ctx, B, A);
        memmove(ch->v + i + 1, ch->v + i + 3, (size_t)(ch->n - i - 3) * sizeof *ch->v);
        ch->n -= 2;
        changed = 1;
    }
    /* eye is neutral */
    if (ch->n > 1) {
        int m = 0;
        for (int i = 0; i < ch->n; i++)
            if (ch->v[i]->kind != MD_EYE) ch->v[m++] = ch->v[i];
            else changed = 1;
        if (m == 0) m = 1;   /* all eyes: keep one */
        ch->n = m;
    }
    /* merge neighbours: X^a * X^b = X^(a+b); ones(r,1)*ones(1,c) = ones(r,c) */
    for (int i = 0; i + 1 < ch->n;) {
        md_expr *a = ch->v[i], *b = ch->v[i + 1];
        md_expr *merged = NULL;
        int done = 0;
        if (a->kind == MD_ONES && b->kind == MD_ONES && a->cols == MD_DIM_ONE) {
            merged = md_ones(ctx, a->rows, b->cols);
            done = 1;
        } else if (a->kind == MD_KRON && b->kind == MD_KRON && a->args[0]->cols == b->args[0]->rows &&
                   a->args[1]->cols == b->args[1]->rows) {
            /* kron(A, B)*kron(C, D) = kron(A*C, B*D) */
            merged = md_kron(ctx, md_mul2(ctx, a->args[0], b->args[0]), md_mul2(ctx, a->args[1], b->args[1]));
            done = 1;
        } else if (a->kind == MD_ONES && a->rows == MD_DIM_ONE && b->kind == MD_DIAGM) {
            /* vector(1)'*diag(v) = v' */
            merged = md_trans(ctx, b->args[0]);
            done = 1;
        } else if (a->kind == MD_DIAGM && b->kind == MD_ONES && b->cols == MD_DIM_ONE) {
            /* diag(v)*vector(1) = v */
            merged = a->args[0];
            done = 1;
        } else if (a->kind == MD_KRON && b->kind == MD_COMM && a->args[0]->cols == b->ival &&
                   a->args[1]->cols == b->aux &&
                   (a->args[0]->rows == MD_DIM_ONE || a->args[1]->rows == MD_DIM_ONE)) {
            /* kron(A, B)*K_nq = K_mp*kron(B, A) (A m x n, B p x q; K_nq acts
               on n x q matrices), and K_mp = eye when m or p is 1:
               kron(x', eye)*K = kron(eye, x') */
            merged = md_kron(ctx, a->args[1], a->args[0]);
            done = 1;
        } else if (a->kind == MD_COMM && b->kind == MD_KRON && a->ival == b->args[1]->rows &&
                   a->aux == b->args[0]->rows &&
                   (b->args[0]->cols == MD_DIM_ONE || b->args[1]->cols == MD_DIM_ONE)) {
            /* K_pm*kron(A, B) = kron(B, A)*K_qn for A m x n, B p x q (K_pm
               acts on p x m matrices), and K_qn = eye when n or q is 1 */
            merged = md_kron(ctx, b->args[1], b->args[0]);
            done = 1;
        } else if (a->kind == MD_DIAGM && b->cols == MD_DIM_ONE && b->kind != MD_DIAGM) {
            /* diag(u)*x = u .* x for a column x: never an n x n matrix for a
               scaling (weighted least squares: s.^2 .* (X*w - y)) */
            merged = md_had2(ctx, a->args[0], b);
            done = 1;
        } else if (b->kind == MD_DIAGM && a->rows == MD_DIM_ONE && a->kind != MD_DIAGM) {
            /* x'*diag(u) = (x .* u)' */
            merged = md_trans(ctx, md_had2(ctx, md_trans(ctx, a), b->args[0]));
            done = 1;
        } else if (a->kind == MD_DIAGM && b->kind == MD_DIAGM) {
            /* diag(u)*diag(v) = diag(u .* v) */
            merged = md_unary(ctx, MD_DIAGM, md_had2(ctx, a->args[0], b->args[0]));
            done = 1;
        } else if (a->kind == MD_TRANS && a->args[0]->kind == MD_VEC && b->kind == MD_KRON &&
                   a->args[0]->args[0]->rows == b->args[1]->rows && a->args[0]->args[0]->cols == b->args[0]->rows) {
            /* vec(M)'*kron(B, C) = vec(C'*M*B)' */
            md_expr *M = a->args[0]->args[0], *B = b->args[0], *C = b->args[1];
            merged = md_trans(ctx, md_vec_of(ctx, md_mul3(ctx, md_trans(ctx, C), M, B)));
            done = 1;
        } else if (a->kind == MD_KRON && b->kind == MD_VEC && b->args[0]->rows == a->args[1]->cols &&
                   b->args[0]->cols == a->args[0]->cols) {
            /* kron(B, C)*vec(M) = vec(C*M*B') */
            md_expr *M = b->args[0], *B = a->args[0], *C = a->args[1];
            merged = md_vec_of(ctx, md_mul3(ctx, C, M, md_trans(ctx, B)));
            done = 1;
        } else if (a->kind == MD_KRON && a->args[0]->cols == MD_DIM_ONE && b->kind != MD_KRON &&
                   b->kind != MD_COMM && a->args[1]->cols == b->rows) {
            /* kron(u, B)*M = kron(u, B*M) for a column u (M = kron(1, M)) */
            merged = md_kron(ctx, a->args[0], md_mul2(ctx, a->args[1], b));
            done = 1;
        } else if (b->kind == MD_KRON && b->args[0]->rows == MD_DIM_ONE && a->kind != MD_KRON &&
                   a->kind != MD_COMM && a->cols == b->args[1]->rows) {
            /* M*kron(v', D) = kron(v', M*D) for a row v' */
            merged = md_kron(ctx, b->args[0], md_mul2(ctx, a, b->args[1]));
            done = 1;
        } else if ((a->kind == MD_COMM && b->kind == MD_ONES) || (a->kind == MD_ONES && b->kind == MD_COMM)) {
            /* a commutation matrix permutes: K*matrix(1) = matrix(1), matrix(1)*K = matrix(1) */
            merged = a->kind == MD_ONES ? a : b;
            done = 1;
        } else if (a->kind == MD_COMM && b->kind == MD_VEC && b->args[0]->rows == a->ival &&
                   b->args[0]->cols == a->aux) {
            /* commutation(m, n)*vec(B) = vec(B') for B m x n */
            merged = md_vec_of(ctx, md_trans(ctx, b->args[0]));
            done = 1;
        } else if (a->kind == MD_COMM && b->kind == MD_COMM && a->ival == b->aux && a->aux == b->ival) {
            /* commutation(m, n)*commutation(n, m) = eye */
            merged = md_eye(ctx, a->rows);
            done = 1;
        } else if (a->kind == MD_DIAGM && a->args[0]->kind == MD_VEC && b->kind == MD_VEC &&
                   a->args[0]->args[0]->rows == b->args[0]->rows && a->args[0]->args[0]->cols == b->args[0]->cols) {
            /* diag(vec(A))*vec(B) = vec(A .* B) */
            merged = md_vec_of(ctx, md_had2(ctx, a->args[0]->args[0], b->args[0]));
            done = 1;
        } else if (a->rows == a->cols && b->rows == b->cols && a->rows == b->rows) {
            int ka, kb;
            md_expr *ba = md_power_base(a, &ka), *bb = md_power_base(b, &kb);
            if (ba == bb && abs(ka + kb) <= MD_MPOW_MAX) {
                merged = md_mpow(ctx, ba, ka + kb);
                done = 1;
            }
        }
        if (!done) {
            i++;
            continue;
        }
        changed = 1;
        memmove(ch->v + i + 1, ch->v + i + 2, (size_t)(ch->n - i - 2) * sizeof *ch->v);
        ch->n--;
        ch->v[i] = merged;
        if (merged->kind == MD_EYE && ch->n > 1) {
            memmove(ch->v + i, ch->v + i + 1, (size_t)(ch->n - i - 1) * sizeof *ch->v);
            ch->n--;
        }
        if (i > 0) i--;
    }
    return changed;
}

/* Some term of the sum e has a negative coefficient. */
static int md_has_negative_term(md_ctx *ctx, md_expr *e)
{
    mpq_t c;
    mpq_init(c);
    int neg = 0;
    for (int i = 0; i < e->nargs && !neg; i++) {
        md_split(ctx, e->args[i], c);
        neg = mpq_sgn(c) < 0;
    }
    mpq_clear(c);
    return neg;
}

static int lighter_first(const md_expr *a, const md_expr *b)
{
    if (a->weight != b->weight) return a->weight < b->weight ? -1 : 1;
    return md_expr_cmp(a, b);
}

md_expr *md_mul(md_ctx *ctx, int n, md_expr *const *factors)
{
    if (n == 1) return factors[0];
    /* the shape of the product, left to right: a 1x1 result so far (x'*y
       in x'*y*z) scales what follows */
    int rows = MD_DIM_ONE, cols = MD_DIM_ONE;
    for (int i = 0; i < n; i++) {
        md_expr *f = factors[i];
        if (md_is_scalar(f)) continue;
        if (rows == MD_DIM_ONE && cols == MD_DIM_ONE) rows = f->rows;
        cols = f->cols;
    }
    int whole_is_scalar = rows == MD_DIM_ONE && cols == MD_DIM_ONE;
    /* A 1x1 product (x'*y) among the factors is spliced into the chain
       only when it is the one factor with a matrix chain: 2*(x'*y) is the
       chain x'*y, but in x'*(y'*y)*x the middle product is a scalar. */
    int nchain = 0;
    for (int i = 0; i < n; i++) {
        md_expr *f = factors[i];
        if (!md_is_scalar(f) || (f->kind == MD_MUL && md_chain_start(f) < f->nargs)) nchain++;
    }

    md_prod p;
    memset(&p, 0, sizeof p);
    mpq_init(p.coef);
    mpq_set_ui(p.coef, 1, 1);
    for (int i = 0; i < n; i++) md_prod_absorb(ctx, &p, factors[i], whole_is_scalar && nchain == 1);

    md_expr *r = NULL;
    if (p.zero || mpq_sgn(p.coef) == 0) {
        r = md_zero(ctx, rows, cols);
        goto done;
    }
    /* a 1x1 stretch inside a longer chain is a scalar: pull it out, before
       and after the chain is normalised (eye, merging) so that nothing is
       merged across it */
    for (int round = 0; round < 2; round++) {
        if (round == 1 && md_chain_normalise(ctx, &p.chain)) {
            /* a merge can give a product with scalar factors of its own
               (kron(A, B)*kron(C, D) = 2*kron(A*C, B*D)): a chain factor
               never carries one (md_split and md_join rely on it), so the
               product is built again from its parts, spliced */
            int nested = 0;
            for (int i = 0; i < p.chain.n; i++) nested |= p.chain.v[i]->kind == MD_MUL;
            if (nested) {
                md_vec all = {0};
                md_vec_push(&all, md_num(ctx, p.coef));
                for (int i = 0; i < p.ns; i++)
                    if (mpq_sgn(p.s[i].exp) != 0)
                        md_vec_push(&all, mpq_cmp_ui(p.s[i].exp, 1, 1) == 0 ? p.s[i].base
                                                                          : md_pow(ctx, p.s[i].base, md_num(ctx, p.s[i].exp)));
                for (int i = 0; i < p.chain.n; i++) md_vec_push(&all, p.chain.v[i]);
                r = md_mul(ctx, all.n, all.v);
                free(all.v);
                goto done;
            }
        }
    for (;;) {
        int i0 = -1, j0 = -1;
        for (int i = 0; i < p.chain.n && i0 < 0; i++) {
            if (p.chain.v[i]->rows != MD_DIM_ONE) continue;
            for (int j = i + 1; j < p.chain.n; j++)
                if (p.chain.v[j]->cols == MD_DIM_ONE) {
                    if (!(i == 0 && j == p.chain.n - 1)) i0 = i, j0 = j;
                    break;
                }
        }
        if (i0 < 0) break;
        md_expr *sc = md_mul(ctx, j0 - i0 + 1, p.chain.v + i0);
        memmove(p.chain.v + i0, p.chain.v + j0 + 1, (size_t)(p.chain.n - j0 - 1) * sizeof *p.chain.v);
        p.chain.n -= j0 - i0 + 1;
        md_prod_absorb(ctx, &p, sc, 0);   /* sc is 1x1: it joins the scalars */
        if (p.chain.n == 0) break;
    }
    }
    if (mpq_sgn(p.coef) == 0) {
        r = md_zero(ctx, rows, cols);
        goto done;
    }
    /* v'*vector(1) and vector(1)'*v are sum(v) */
    if (p.chain.n == 2 && p.chain.v[0]->rows == MD_DIM_ONE && p.chain.v[1]->cols == MD_DIM_ONE &&
        (p.chain.v[0]->kind == MD_ONES || p.chain.v[1]->kind == MD_ONES)) {
        md_expr *v = p.chain.v[0]->kind == MD_ONES ? p.chain.v[1] : p.chain.v[0];
        md_expr *sm = md_unary(ctx, MD_SUM, v);
        p.chain.n = 0;
        md_prod_absorb(ctx, &p, sm, 0);
    }

    /* u'*v = sum(u .* v) where the Hadamard product cancels to something
       clearly smaller: (y./s)'*s = sum(y) */
    if (p.chain.n == 2 && p.chain.v[0]->rows == MD_DIM_ONE && p.chain.v[1]->cols == MD_DIM_ONE &&
        !md_is_scalar(p.chain.v[0]) && !md_is_scalar(p.chain.v[1]) &&
        (p.chain.v[0]->kind == MD_HAD || p.chain.v[1]->kind == MD_HAD)) {
        md_expr *h = md_had2(ctx, md_trans(ctx, p.chain.v[0]), p.chain.v[1]);
        if (h->weight + 2 < p.chain.v[0]->weight + p.chain.v[1]->weight) {
            p.chain.n = 0;
            md_prod_absorb(ctx, &p, md_unary(ctx, MD_SUM, h), 0);
        }
    }

    /* in a 1x1 product with other factors, an inner product x'*A*y is one
       scalar factor among the others (sorted with them), whichever way it
       came in: 2*a*(x'*y), never 2*a*x'*y with x', y as a chain */
    if (whole_is_scalar && p.chain.n > 0) {
        int others = mpq_cmp_ui(p.coef, 1, 1) != 0;
        for (int i = 0; i < p.ns; i++) others |= mpq_sgn(p.s[i].exp) != 0;
        if (others) {
            md_expr *inner = md_mul(ctx, p.chain.n, p.chain.v);
            p.chain.n = 0;
            mpq_t one;
            mpq_init(one);
            mpq_set_ui(one, 1, 1);
            if (inner->kind == MD_MUL) md_prod_scalar(ctx, &p, inner, one);
            else md_prod_add_scalar(ctx, &p, inner);
            mpq_clear(one);
        }
    }

    /* exp(z)/sum(exp(z)) = softmax(z), for a column vector z (a factor of
       the chain, or of a Hadamard product in it) */
    for (int i = 0; i < p.ns; i++) {
        md_sfac *f = &p.s[i];
        if (f->base->kind != MD_SUM || mpq_sgn(f->exp) >= 0) continue;
        md_expr *ez = f->base->args[0];
        if (ez->kind != MD_FUNC || ez->ival != MD_FN_EXP || ez->cols != MD_DIM_ONE) continue;
        md_expr *sm = md_unary(ctx, MD_SOFTMAX, ez->args[0]);
        for (int j = 0; j < p.chain.n && mpq_sgn(f->exp) < 0; j++) {
            md_expr *c = p.chain.v[j], *rep = NULL;
            if (c == ez) rep = sm;
            else if (c->kind == MD_TRANS && c->args[0] == ez) rep = md_trans(ctx, sm);
            else if (c->kind == MD_FUNC && c->ival == MD_FN_EXP && c->args[0] == md_trans(ctx, ez->args[0]))
                rep = md_trans(ctx, sm);
            else if (c->kind == MD_HAD) {
                for (int k = 0; k < c->nargs && !rep; k++)
                    if (c->args[k] == ez) {
                        md_expr **t = md_xmalloc((size_t)c->nargs * sizeof *t);
                        memcpy(t, c->args, (size_t)c->nargs * sizeof *t);
                        t[k] = sm;
                        rep = md_had(ctx, c->nargs, t);
                        free(t);
                    }
            }
            if (!rep) continue;
            p.chain.v[j] = rep;
            mpq_t one;
            mpq_init(one);
            mpq_set_ui(one, 1, 1);
            mpq_add(f->exp, f->exp, one);
            mpq_clear(one);
        }
    }

    /* scalar factors: drop exponent 0, numbers fold into the coefficient */
    md_vec args = {0};
    md_vec sc = {0};
    for (int i = 0; i < p.ns; i++) {
        md_sfac *f = &p.s[i];
        if (mpq_sgn(f->exp) == 0) continue;
        md_expr *e = f->base;
        if (mpq_cmp_ui(f->exp, 1, 1) != 0) {
            mpq_srcptr k = f->exp;
            e = md_pow(ctx, f->base, md_num(ctx, k));
        }
        if (e->kind == MD_NUM) {
            mpq_mul(p.coef, p.coef, e->q);
            continue;
        }
        md_vec_push(&sc, e);
    }
    /* lighter scalars first, equal ones in md_expr_cmp's (alphabetical)
       order: 2*lambda*norm2(A)*..., 2*mu*sigma */
    for (int i = 1; i < sc.n; i++)
        for (int j = i; j > 0 && lighter_first(sc.v[j - 1], sc.v[j]) > 0; j--) {
            md_expr *tmp = sc.v[j];
            sc.v[j] = sc.v[j - 1];
            sc.v[j - 1] = tmp;
        }
    md_expr *lone = sc.n + p.chain.n == 1 ? (sc.n ? sc.v[0] : p.chain.v[0]) : NULL;
    if (mpq_sgn(p.coef) == 0) {
        r = md_zero(ctx, rows, cols);
    } else if (lone && lone->kind == MD_ADD && mpq_cmp_si(p.coef, -1, 1) == 0 && md_has_negative_term(ctx, lone)) {
        /* -(a - b) is b - a: no leading minus on a difference that can
           be flipped (a sum that is a factor of anything else stays
           primitive, see md_primitive) */
        md_expr **t = md_xmalloc((size_t)lone->nargs * sizeof *t);
        for (int i = 0; i < lone->nargs; i++) t[i] = md_neg(ctx, lone->args[i]);
        r = md_add(ctx, lone->nargs, t);
        free(t);
    } else {
        if (mpq_cmp_ui(p.coef, 1, 1) != 0 || (sc.n + p.chain.n) == 0)
            md_vec_push(&args, md_num(ctx, p.coef));
        for (int i = 0; i < sc.n; i++) md_vec_push(&args, sc.v[i]);
        for (int i = 0; i < p.chain.n; i++) md_vec_push(&args, p.chain.v[i]);
        if (args.n == 1)
            r = args.v[0];
        else
            r = md_raw(ctx, MD_MUL, rows, cols, args.n, args.v);
    }
    free(args.v);
    free(sc.v);
done:
    for (int i = 0; i < p.ns; i++) mpq_clear(p.s[i].exp);
    free(p.s);
    free(p.chain.v);
    mpq_clear(p.coef);
    return r;
}

md_expr *md_mul2(md_ctx *ctx, md_expr *a, md_expr *b)
{
    md_expr *t[2] = {a, b};
    return md_mul(ctx, 2, t);
}

md_expr *md_mul3(md_ctx *ctx, md_expr *a, md_expr *b, md_expr *c)
{
    md_expr *t[3] = {a, b, c};
    return md_mul(ctx, 3, t);
}

/* ---- Hadamard products ------------------------------------------------ */

static void md_had_collect(md_ctx *ctx, md_expr *e, md_vec *scal, md_vec *args)
{
    if (e->kind == MD_HAD && e->nargs <= MD_FLAT_MAX) {
        for (int i = 0; i < e->nargs; i++) md_had_collect(ctx, e->args[i], scal, args);
        return;
    }
    if (md_is_scalar(e)) {
        md_vec_push(scal, e);
        return;
    }
    if (e->kind == MD_ONES) return;
    if (e->kind == MD_MUL) {
        /* scalars of a product commute with .*: (a*A) .* B = a*(A .* B) */
        int s = md_chain_start(e);
        if (s > 0) {
            for (int i = 0; i < s; i++) md_vec_push(scal, e->args[i]);
            md_had_collect(ctx, md_mul(ctx, e->nargs - s, e->args + s), scal, args);
            return;
        }
    }
    if (e->kind == MD_ADD) {
        mpq_t content;
        mpq_init(content);
        md_expr *prim = md_primitive(ctx, e, content);
        if (mpq_cmp_ui(content, 1, 1) != 0) md_vec_push(scal, md_num(ctx, content));
        mpq_clear(content);
        md_vec_push(args, prim);
        return;
    }
    md_vec_push(args, e);
}

static int md_expr_qcmp(const void *a, const void *b)
{
    return md_expr_cmp(*(md_expr *const *)a, *(md_expr *const *)b);
}

md_expr *md_had(md_ctx *ctx, int n, md_expr *const *in)
{
    int rows = MD_DIM_ONE, cols = MD_DIM_ONE;
    for (int i = 0; i < n; i++)
        if (!md_is_scalar(in[i])) {
            rows = in[i]->rows;
            cols = in[i]->cols;
        }
    if (rows == MD_DIM_ONE && cols == MD_DIM_ONE) return md_mul(ctx, n, in);
    /* vec(A) .* vec(B) = vec(A .* B) for A, B of one shape */
    {
        int all = 1, first = -1;
        for (int i = 0; i < n && all; i++) {
            if (md_is_scalar(in[i])) continue;
            if (in[i]->kind != MD_VEC) all = 0;
            else if (first < 0) first = i;
            else all = in[i]->args[0]->rows == in[first]->args[0]->rows &&
                       in[i]->args[0]->cols == in[first]->args[0]->cols;
        }
        if (all && first >= 0) {
            md_expr **t = md_xmalloc((size_t)n * sizeof *t);
            for (int i = 0; i < n; i++) t[i] = md_is_scalar(in[i]) ? in[i] : in[i]->args[0];
            md_expr *r = md_vec_of(ctx, md_had(ctx, n, t));
            free(t);
            return r;
        }
    }

    md_vec scal = {0}, args = {0};
    for (int i = 0; i < n; i++) md_had_collect(ctx, in[i], &scal, &args);
    md_expr *r = NULL;
    for (int i = 0; i < args.n; i++)
        if (md_is_zero(args.v[i])) r = md_zero(ctx, rows, cols);
    if (!r) {
        /* merge equal bases: A .* A.^k = A.^(k+1) */
        md_vec merged = {0};
        mpq_t *exps = md_xmalloc((size_t)(args.n ? args.n : 1) * sizeof *exps);
        md_expr **bases = md_xmalloc((size_t)(args.n ? args.n : 1) * sizeof *bases);
        int nb = 0;
        for (int i = 0; i < args.n; i++) {
            md_expr *b = args.v[i];
            mpq_t k;
            mpq_init(k);
            if (b->kind == MD_POW && b->args[1]->kind == MD_NUM) {
                mpq_set(k, b->args[1]->q);
                b = b->args[0];
            } else {
                mpq_set_ui(k, 1, 1);
            }
            int j;
            for (j = 0; j < nb; j++)
                if (bases[j] == b) break;
            if (j == nb) {
                bases[nb] = b;
                mpq_init(exps[nb]);
                mpq_set(exps[nb], k);
                nb++;
            } else {
                mpq_add(exps[j], exps[j], k);
            }
            mpq_clear(k);
        }
        for (int j = 0; j < nb; j++) {
            if (mpq_sgn(exps[j]) != 0) {
                md_expr *e = mpq_cmp_ui(exps[j], 1, 1) == 0
                                 ? bases[j]
                                 : md_pow(ctx, bases[j], md_num(ctx, exps[j]));
                if (e->kind != MD_ONES) md_vec_push(&merged, e);
            }
            mpq_clear(exps[j]);
        }
        free(exps);
        free(bases);
        /* exp(u) .* sigmoid(-u).^k = sigmoid(u) .* sigmoid(-u).^(k-1)
           (exp(u)/(1 + exp(u)) = sigmoid(u)): logistic losses written out */
        for (int i = 0; i < merged.n && !r; i++) {
            md_expr *ex = merged.v[i];
            if (ex->kind != MD_FUNC || ex->ival != MD_FN_EXP) continue;
            md_expr *nu = md_neg(ctx, ex->args[0]);
            for (int j = 0; j < merged.n && !r; j++) {
                md_expr *sg = merged.v[j], *kq = NULL;
                if (sg->kind == MD_POW && sg->args[1]->kind == MD_NUM && md_is_integer(sg->args[1]->q) &&
                    mpq_sgn(sg->args[1]->q) > 0)
                    kq = sg->args[1], sg = sg->args[0];
                if (sg->kind != MD_FUNC || sg->ival != MD_FN_SIGMOID || sg->args[0] != nu) continue;
                md_expr **t = md_xmalloc((size_t)(merged.n + 1) * sizeof *t);
                int m = 0;
                for (int k = 0; k < merged.n; k++)
                    if (k != i && k != j) t[m++] = merged.v[k];
                t[m++] = md_func(ctx, MD_FN_SIGMOID, ex->args[0]);
                if (kq) t[m++] = md_pow(ctx, sg, md_num_si(ctx, (long)mpz_get_si(mpq_numref(kq->q)) - 1, 1));
                r = md_had(ctx, m, t);
                free(t);
            }
        }
        if (r) ;
        else if (merged.n == 0)
            r = md_ones(ctx, rows, cols);
        else if (merged.n == 1)
            r = merged.v[0];
        else {
            qsort(merged.v, (size_t)merged.n, sizeof *merged.v, md_expr_qcmp);
            r = md_raw(ctx, MD_HAD, rows, cols, merged.n, merged.v);
        }
        free(merged.v);
        if (scal.n > 0) {
            md_vec_push(&scal, r);
            r = md_mul(ctx, scal.n, scal.v);
        }
    }
    free(scal.v);
    free(args.v);
    return r;
}

md_expr *md_had2(md_ctx *ctx, md_expr *a, md_expr *b)
{
    md_expr *t[2] = {a, b};
    return md_had(ctx, 2, t);
}

/* ---- powers ----------------------------------------------------------- */

md_expr *md_pow(md_ctx *ctx, md_expr *base, md_expr *ex)
{
    int rows = base->rows, cols = base->cols;
    if (md_is_scalar(base) && !md_is_scalar(ex)) {
        rows = ex->rows;
        cols = ex->cols;
    }
    /* vec(A).^k = vec(A.^k): elementwise operations see through vec */
    if (base->kind == MD_VEC && md_is_scalar(ex)) return md_vec_of(ctx, md_pow(ctx, base->args[0], ex));
    if (ex->kind == MD_NUM) {
        if (mpq_sgn(ex->q) == 0) return md_ones(ctx, rows, cols);
        if (mpq_cmp_ui(ex->q, 1, 1) == 0) return base;
        int integral = md_is_integer(ex->q);
        if (base->kind == MD_NUM && integral && mpz_fits_slong_p(mpq_numref(ex->q))) {
            long k = mpz_get_si(mpq_numref(ex->q));
            if (mpq_sgn(base->q) == 0 && k < 0) goto raw;    /* 0^-1: leave it */
            /* folded only while the result stays a number one could type:
               1e-9999^50 has 500 000 digits and stays a power.  An
               inverse costs nothing and is always folded: the printed
               1/N of a number with a huge denominator must read back as
               the number it was, not as a power node N^-1 whose N alone
               overflows the evaluator */
            size_t bits = mpz_sizeinbase(mpq_numref(base->q), 2) + mpz_sizeinbase(mpq_denref(base->q), 2);
            if (labs(k) == 1 || (labs(k) <= 64 && bits * (size_t)labs(k) <= MD_NUM_BITS_MAX)) {
                mpq_t r;
                mpq_init(r);
                mpz_pow_ui(mpq_numref(r), mpq_numref(base->q), (unsigned long)labs(k));
                mpz_pow_ui(mpq_denref(r), mpq_denref(base->q), (unsigned long)labs(k));
                mpq_canonicalize(r);
                if (k < 0) mpq_inv(r, r);
                md_expr *e = md_num(ctx, r);
                mpq_clear(r);
                return e;
            }
        }
        if (base->kind == MD_ONES) return base;
        if (base->kind == MD_ZERO && mpq_sgn(ex->q) > 0) return base;
        /* (1 + exp(u)).^-k = sigmoid(-u).^k: 1./(1 + exp(-z)) is sigmoid(z) */
        if (integral && mpq_sgn(ex->q) < 0 && base->kind == MD_ADD && base->nargs == 2) {
            md_expr *one = base->args[1], *e = base->args[0];
            if (e->kind == MD_NUM || e->kind == MD_ONES) one = base->args[0], e = base->args[1];
            if ((md_is_num(one, 1) || one->kind == MD_ONES) && e->kind == MD_FUNC && e->ival == MD_FN_EXP) {
                mpq_t k;
                mpq_init(k);
                mpq_neg(k, ex->q);
                md_expr *r = md_pow(ctx, md_func(ctx, MD_FN_SIGMOID, md_neg(ctx, e->args[0])), md_num(ctx, k));
                mpq_clear(k);
                return r;
            }
        }
        /* (b.^j).^k = b.^(j*k) holds for integer k */
        if (base->kind == MD_POW && base->args[1]->kind == MD_NUM && integral) {
            mpq_t jk;
            mpq_init(jk);
            mpq_mul(jk, base->args[1]->q, ex->q);
            md_expr *r = md_pow(ctx, base->args[0], md_num(ctx, jk));
            mpq_clear(jk);
            return r;
        }
        /* powers distribute over products of scalars and over .* for integer k */
        if (integral && ((base->kind == MD_MUL && md_is_scalar(base) && md_chain_start(base) == base->nargs) ||
                         base->kind == MD_HAD)) {
            md_expr **a = md_xmalloc((size_t)base->nargs * sizeof *a);
            for (int i = 0; i < base->nargs; i++) a[i] = md_pow(ctx, base->args[i], ex);
            md_expr *r = base->kind == MD_MUL ? md_mul(ctx, base->nargs, a) : md_had(ctx, base->nargs, a);
            free(a);
            return r;
        }
        /* a sum's content: (2A - 2B).^k = 2^k (A - B).^k for integer k */
        if (integral && base->kind == MD_ADD) {
            mpq_t c;
            mpq_init(c);
            md_expr *prim = md_primitive(ctx, base, c);
            md_expr *r = NULL;
            if (mpq_cmp_ui(c, 1, 1) != 0)
                r = md_mul2(ctx, md_pow(ctx, md_num(ctx, c), ex), md_pow(ctx, prim, ex));
            mpq_clear(c);
            if (r) return r;
        }
        /* c*A with a number c: (cA).^k = c^k A.^k for integer k */
        if (integral && base->kind == MD_MUL && base->args[0]->kind == MD_NUM) {
            mpq_t c;
            mpq_init(c);
            md_expr *core = md_split(ctx, base, c);
            md_expr *r = md_mul2(ctx, md_pow(ctx, md_num(ctx, c), ex), md_pow(ctx, core, ex));
            mpq_clear(c);
            return r;
        }
    }
raw:;
    md_expr *a[2] = {base, ex};
    return md_raw(ctx, MD_POW, rows, cols, 2, a);
}

md_expr *md_pow_si(md_ctx *ctx, md_expr *base, long num, unsigned long den)
{
    return md_pow(ctx, base, md_num_si(ctx, num, den));
}

md_expr *md_mpow(md_ctx *ctx, md_expr *base, int k)
{
    if (k == 0) return md_eye(ctx, base->rows);
    if (k == 1) return base;
    if (md_is_scalar(base)) return md_pow_si(ctx, base, k, 1);
    if (base->kind == MD_EYE) return base;
    /* kron(A, B)^k = kron(A^k, B^k) for square A, B; inv(K_mn) = K_nm */
    if (base->kind == MD_KRON && base->args[0]->rows == base->args[0]->cols &&
        base->args[1]->rows == base->args[1]->cols)
        return md_kron(ctx, md_mpow(ctx, base->args[0], k), md_mpow(ctx, base->args[1], k));
    if (base->kind == MD_COMM && k == -1) return md_comm(ctx, base->aux, base->ival);
    /* diag(u)^k = diag(u.^k), inv(diag(u)) = diag(1./u) */
    if (base->kind == MD_DIAGM) return md_unary(ctx, MD_DIAGM, md_pow_si(ctx, base->args[0], k, 1));
    if (base->kind == MD_MPOW && labs((long)base->ival * k) <= MD_MPOW_MAX)
        return md_mpow(ctx, base->args[0], base->ival * k);
    if (base->kind == MD_ADD) {
        /* (2A - 2B)^k = 2^k (A - B)^k */
        mpq_t c;
        mpq_init(c);
        md_expr *prim = md_primitive(ctx, base, c);
        md_expr *r = NULL;
        if (mpq_cmp_ui(c, 1, 1) != 0)
            r = md_mul2(ctx, md_pow_si(ctx, md_num(ctx, c), k, 1), md_mpow(ctx, prim, k));
        mpq_clear(c);
        if (r) return r;
    }
    if (base->kind == MD_MUL && base->args[0]->kind == MD_NUM) {
        /* (c*A)^k = c^k * A^k */
        mpq_t c;
        mpq_init(c);
        md_expr *core = md_split(ctx, base, c);
        md_expr *r = md_mul2(ctx, md_pow_si(ctx, md_num(ctx, c), k, 1), md_mpow(ctx, core, k));
        mpq_clear(c);
        return r;
    }
    return md_expr_make(ctx, MD_MPOW, base->rows, base->cols, k, 0, 0, 1, &base, NULL);
}

md_expr *md_inv(md_ctx *ctx, md_expr *a) { return md_mpow(ctx, a, -1); }

/* ---- transpose -------------------------------------------------------- */

static void md_memo_grow(md_ctx *ctx)
{
    if (ctx->memocap >= ctx->nnodes) return;
    uint32_t cap = ctx->memocap ? ctx->memocap : 1024;
    while (cap < ctx->nnodes) cap *= 2;
    ctx->memo_trans = md_xrealloc(ctx->memo_trans, cap * sizeof *ctx->memo_trans);
    ctx->memo_simp = md_xrealloc(ctx->memo_simp, cap * sizeof *ctx->memo_simp);
    memset(ctx->memo_trans + ctx->memocap, 0, (cap - ctx->memocap) * sizeof *ctx->memo_trans);
    memset(ctx->memo_simp + ctx->memocap, 0, (cap - ctx->memocap) * sizeof *ctx->memo_simp);
    ctx->memocap = cap;
}

static md_expr *md_trans_uncached(md_ctx *ctx, md_expr *a)
{
    md_expr *r;
    md_expr **t;
    switch (a->kind) {
    case MD_SYM:
    case MD_DIFF:
        if (md_sym_is_symmetric(ctx, a->ival)) return a;
        return md_raw1(ctx, MD_TRANS, a->cols, a->rows, a);
    case MD_TRANS: return a->args[0];
    case MD_ZERO: return md_zero(ctx, a->cols, a->rows);
    case MD_ONES: return md_ones(ctx, a->cols, a->rows);
    case MD_EYE:
    case MD_DIAGM: return a;
    case MD_ADD:
    case MD_HAD:
        t = md_xmalloc((size_t)a->nargs * sizeof *t);
        for (int i = 0; i < a->nargs; i++) t[i] = md_trans(ctx, a->args[i]);
        r = a->kind == MD_ADD ? md_add(ctx, a->nargs, t) : md_had(ctx, a->nargs, t);
        free(t);
        return r;
    case MD_MUL: {
        int s = md_chain_start(a);
        t = md_xmalloc((size_t)a->nargs * sizeof *t);
        for (int i = 0; i < s; i++) t[i] = a->args[i];
        for (int i = s; i < a->nargs; i++) t[i] = md_trans(ctx, a->args[a->nargs - 1 - (i - s)]);
        r = md_mul(ctx, a->nargs, t);
        free(t);
        return r;
    }
    case MD_POW: return md_pow(ctx, md_trans(ctx, a->args[0]), md_trans(ctx, a->args[1]));
    case MD_MPOW: return md_mpow(ctx, md_trans(ctx, a->args[0]), a->ival);
    /* kron(A, B)' = kron(A', B'); commutation(m, n)' = commutation(n, m) */
    case MD_KRON: return md_kron(ctx, md_trans(ctx, a->args[0]), md_trans(ctx, a->args[1]));
    case MD_COMM: return md_comm(ctx, a->aux, a->ival);
    case MD_FUNC:
        if (a->ival == MD_FN_GENERIC)
            return md_generic(ctx, a->aux, a->order, md_trans(ctx, a->args[0]));
        return md_func(ctx, (md_fn)a->ival, md_trans(ctx, a->args[0]));
    case MD_NUM: case MD_SUM: case MD_NORM1: case MD_NORM2: case MD_TR: case MD_DET:
    case MD_LOGDET: case MD_DIAGV: case MD_VEC: case MD_SOFTMAX: case MD_LSE: case MD_NKINDS: return md_raw1(ctx, MD_TRANS, a->cols, a->rows, a);
    }
    return md_raw1(ctx, MD_TRANS, a->cols, a->rows, a);
}

md_expr *md_trans(md_ctx *ctx, md_expr *a)
{
    if (md_is_scalar(a)) return a;
    md_memo_grow(ctx);
    if (ctx->memo_trans[a->id]) return ctx->memo_trans[a->id];
    md_expr *r = md_trans_uncached(ctx, a);
    md_memo_grow(ctx);
    ctx->memo_trans[a->id] = r;
    return r;
}

/* ---- functions -------------------------------------------------------- */

/* c, as a constant of shape rows x cols (0 and 1 as zero and matrix(1)). */
static md_expr *md_constant(md_ctx *ctx, const mpq_t c, int rows, int cols)
{
    if (rows == MD_DIM_ONE && cols == MD_DIM_ONE) return md_num(ctx, c);
    if (mpq_sgn(c) == 0) return md_zero(ctx, rows, cols);
    md_expr *ones = md_ones(ctx, rows, cols);
    return mpq_cmp_ui(c, 1, 1) == 0 ? ones : md_scale(ctx, c, ones);
}

md_expr *md_func(md_ctx *ctx, md_fn fn, md_expr *a)
{
    const md_fn_info *fi = &md_fns[fn];
    /* on constants, the table's exact values: sin(0) = 0, exp(0) = 1,
       log(1) = 0, abs(-3/2) = 3/2, sqrt(9/4) = 3/2, abs(matrix(1)) = matrix(1) */
    if (a->kind == MD_NUM || a->kind == MD_ZERO || a->kind == MD_ONES) {
        mpq_t x, y;
        mpq_inits(x, y, NULL);
        if (a->kind == MD_NUM) mpq_set(x, a->q);
        else mpq_set_ui(x, a->kind == MD_ONES, 1);
        md_expr *r = md_fn_exact(fn, y, x) ? md_constant(ctx, y, a->rows, a->cols) : NULL;
        mpq_clears(x, y, NULL);
        if (r) return r;
    }
    /* log(1 + exp(u)) = softplus(u) */
    if (fn == MD_FN_LOG && a->kind == MD_ADD && a->nargs == 2) {
        md_expr *one = a->args[1], *e = a->args[0];
        if (e->kind == MD_NUM || e->kind == MD_ONES) one = a->args[0], e = a->args[1];
        if ((md_is_num(one, 1) || one->kind == MD_ONES) && e->kind == MD_FUNC && e->ival == MD_FN_EXP)
            return md_func(ctx, MD_FN_SOFTPLUS, e->args[0]);
    }
    /* log(sum(exp(z))) = logsumexp(z), log(softmax(z)) = z - logsumexp(z) */
    if (fn == MD_FN_LOG && a->kind == MD_SUM && a->args[0]->kind == MD_FUNC && a->args[0]->ival == MD_FN_EXP &&
        a->args[0]->cols == MD_DIM_ONE)
        return md_unary(ctx, MD_LSE, a->args[0]->args[0]);
    if (fn == MD_FN_LOG && a->kind == MD_SOFTMAX)
        return md_sub(ctx, a->args[0], md_mul2(ctx, md_unary(ctx, MD_LSE, a->args[0]), md_ones(ctx, a->rows, a->cols)));
    /* of a constant matrix: f(c*matrix(1)) = f(c)*matrix(1) */
    if (a->kind == MD_MUL && a->nargs == 2 && a->args[0]->kind == MD_NUM && a->args[1]->kind == MD_ONES)
        return md_mul2(ctx, md_func(ctx, fn, a->args[0]), a->args[1]);
    /* elementwise functions see through vec: f(vec(A)) = vec(f(A)) */
    if (a->kind == MD_VEC) return md_vec_of(ctx, md_func(ctx, fn, a->args[0]));
    /* idempotent functions: abs(abs(x)) = abs(x) */
    if ((fi->flags & MD_FNF_IDEMPOTENT) && a->kind == MD_FUNC && a->ival == (int)fn) return a;
    return md_expr_make(ctx, MD_FUNC, a->rows, a->cols, fn, 0, 0, 1, &a, NULL);
}

md_expr *md_generic(md_ctx *ctx, int func, int order, md_expr *a)
{
    return md_expr_make(ctx, MD_FUNC, a->rows, a->cols, MD_FN_GENERIC, func, order, 1, &a, NULL);
}

/* Pulls a numeric coefficient out of a: returns the rest, sets c. */
static md_expr *md_coef_out(md_ctx *ctx, md_expr *a, mpq_t c)
{
    if (a->kind == MD_ADD) return md_primitive(ctx, a, c);
    md_expr *core = md_split(ctx, a, c);
    return core ? core : md_num_si(ctx, 1, 1);
}

md_expr *md_unary(md_ctx *ctx, md_kind kind, md_expr *a)
{
    int rows = MD_DIM_ONE, cols = MD_DIM_ONE;
    if (kind == MD_DIAGM) rows = cols = a->rows;
    if (kind == MD_DIAGV || kind == MD_SOFTMAX) rows = a->rows;
    mpq_t c;
    md_expr *r = NULL;
    switch (kind) {
    case MD_SUM:
    case MD_TR:
    case MD_NORM1:
    case MD_NORM2:
        if (md_is_zero(a)) return md_num_si(ctx, 0, 1);
        if (md_is_scalar(a)) {
            if (kind == MD_NORM1 || kind == MD_NORM2) return md_func(ctx, MD_FN_ABS, a);
            return a;
        }
        if (a->kind == MD_TRANS) return md_unary(ctx, kind, a->args[0]);
        /* sum and norms of a row vector are those of the column vector */
        if (kind != MD_TR && a->rows == MD_DIM_ONE) return md_unary(ctx, kind, md_trans(ctx, a));
        if (kind == MD_TR && a->kind == MD_DIAGM) return md_unary(ctx, MD_SUM, a->args[0]);
        if (kind == MD_SUM && a->kind == MD_DIAGM) return md_unary(ctx, MD_SUM, a->args[0]);
        /* sum(u*v') = sum(u)*sum(v) for vectors u, v */
        if (kind == MD_SUM && a->kind == MD_MUL && a->nargs == 2 && a->args[0]->cols == MD_DIM_ONE &&
            a->args[1]->rows == MD_DIM_ONE && !md_is_scalar(a->args[0]) && !md_is_scalar(a->args[1]))
            return md_mul2(ctx, md_unary(ctx, MD_SUM, a->args[0]), md_unary(ctx, MD_SUM, a->args[1]));
        /* sum(softmax(a)) = 1, and so is its 1-norm */
        if ((kind == MD_SUM || kind == MD_NORM1) && a->kind == MD_SOFTMAX) return md_num_si(ctx, 1, 1);
        if (kind == MD_TR && a->kind == MD_EYE) break;
        /* sum, tr and the norms of a Kronecker product are products:
           sum(kron(A, B)) = sum(A)*sum(B), tr(kron(A, B)) = tr(A)*tr(B) */
        if (a->kind == MD_KRON && (kind != MD_TR || a->args[0]->rows == a->args[0]->cols))
            return md_mul2(ctx, md_unary(ctx, kind, a->args[0]), md_unary(ctx, kind, a->args[1]));
        /* sum(vec(A)) = sum(A), and its norms */
        if (a->kind == MD_VEC && kind != MD_TR) return md_unary(ctx, kind, a->args[0]);
        /* linear (sum, tr) or absolutely homogeneous (norms): pull numbers and,
           for sum and tr, scalar factors out */
        if (a->kind == MD_MUL || a->kind == MD_ADD) {
            mpq_init(c);
            md_expr *core = md_coef_out(ctx, a, c);
            if (kind == MD_NORM1 || kind == MD_NORM2) mpq_abs(c, c);
            if (core != a) {
                r = md_scale(ctx, c, md_unary(ctx, kind, core));
                mpq_clear(c);
                return r;
            }
            mpq_clear(c);
            if ((kind == MD_SUM || kind == MD_TR) && a->kind == MD_MUL) {
                int s = md_chain_start(a);
                if (s > 0 && s < a->nargs) {
                    md_expr *inner = md_unary(ctx, kind, md_mul(ctx, a->nargs - s, a->args + s));
                    md_expr **t = md_xmalloc((size_t)(s + 1) * sizeof *t);
                    memcpy(t, a->args, (size_t)s * sizeof *t);
                    t[s] = inner;
                    r = md_mul(ctx, s + 1, t);
                    free(t);
                    return r;
                }
            }
        }
        break;
    case MD_DET:
    case MD_LOGDET:
        if (md_is_scalar(a)) return kind == MD_DET ? a : md_func(ctx, MD_FN_LOG, a);
        if (a->kind == MD_TRANS) return md_unary(ctx, kind, a->args[0]);
        if (a->kind == MD_EYE) return md_num_si(ctx, kind == MD_DET, 1);
        /* every size is at least 1, so det(0) = 0 (and 1/det(A - A) is a
           division by zero, reported where it is written) */
        if (a->kind == MD_ZERO && kind == MD_DET) return md_num_si(ctx, 0, 1);
        break;
    case MD_DIAGM:
        if (md_is_scalar(a)) return a;
        if (a->kind == MD_ZERO) return md_zero(ctx, rows, cols);
        if (a->kind == MD_ONES) return md_eye(ctx, a->rows);
        if (a->kind == MD_DIAGV) break;
        goto diag_linear;
    case MD_DIAGV:
        if (md_is_scalar(a)) return a;
        if (a->kind == MD_ZERO) return md_zero(ctx, rows, cols);
        if (a->kind == MD_EYE) return md_ones(ctx, rows, cols);
        if (a->kind == MD_DIAGM) return a->args[0];
        if (a->kind == MD_TRANS) return md_unary(ctx, kind, a->args[0]);
        /* diag(u*w') = u .* w for column vectors u, w (scalars stay outside) */
        if (a->kind == MD_MUL) {
            int k = md_chain_start(a);
            if (a->nargs - k == 2 && a->args[k]->cols == MD_DIM_ONE && a->args[k + 1]->rows == MD_DIM_ONE) {
                md_expr **t = md_xmalloc((size_t)(k + 1) * sizeof *t);
                memcpy(t, a->args, (size_t)k * sizeof *t);
                t[k] = md_had2(ctx, a->args[k], md_trans(ctx, a->args[k + 1]));
                r = md_mul(ctx, k + 1, t);
                free(t);
                return r;
            }
        }
    diag_linear:
        /* both diags are linear: numbers come out */
        if (a->kind == MD_MUL && a->args[0]->kind == MD_NUM) {
            mpq_init(c);
            md_expr *core = md_coef_out(ctx, a, c);
            r = md_scale(ctx, c, md_unary(ctx, kind, core));
            mpq_clear(c);
            return r;
        }
        break;
    case MD_VEC: return md_vec_of(ctx, a);
    /* of one number: softmax(a) = 1, logsumexp(a) = a */
    case MD_SOFTMAX:
        if (md_is_scalar(a)) return md_num_si(ctx, 1, 1);
        break;
    case MD_LSE:
        if (md_is_scalar(a)) return a;
        break;
    case MD_NUM: case MD_SYM: case MD_DIFF: case MD_ZERO: case MD_ONES: case MD_EYE:
    case MD_ADD: case MD_MUL: case MD_HAD: case MD_POW: case MD_MPOW: case MD_TRANS:
    case MD_FUNC: case MD_KRON: case MD_COMM: case MD_NKINDS: break;
    }
    return md_raw1(ctx, kind, rows, cols, a);
}

/* ---- vec, kron, commutation ----------------------------------------- */

/* Splits the scalar factors (coefficient included) off a product: returns
   the matrix chain and sets *sc to the scalar part (1 if none). */
static md_expr *md_scalar_out(md_ctx *ctx, md_expr *a, md_expr **sc)
{
    *sc = md_num_si(ctx, 1, 1);
    if (a->kind != MD_MUL) return a;
    int s = md_chain_start(a);
    if (s == 0 || s == a->nargs) return a;
    *sc = md_mul(ctx, s, a->args);
    return md_mul(ctx, a->nargs - s, a->args + s);
}

md_expr *md_vec_of(md_ctx *ctx, md_expr *a)
{
    /* a column vector is its own vec, a row vector's is its transpose */
    if (a->cols == MD_DIM_ONE) return a;
    if (a->rows == MD_DIM_ONE) return md_trans(ctx, a);
    int rows = md_ctx_dim_mul(ctx, a->rows, a->cols);
    if (a->kind == MD_ZERO) return md_zero(ctx, rows, MD_DIM_ONE);
    if (a->kind == MD_ONES) return md_ones(ctx, rows, MD_DIM_ONE);
    /* vec(s*A) = s*vec(A) */
    md_expr *sc, *core = md_scalar_out(ctx, a, &sc);
    if (core != a) return md_mul2(ctx, sc, md_vec_of(ctx, core));
    return md_raw1(ctx, MD_VEC, rows, MD_DIM_ONE, a);
}

md_expr *md_unvec(md_ctx *ctx, md_expr *v, int m, int n)
{
    /* a column or row is its own reshape; unvec(vec(M)) = M */
    if (n == MD_DIM_ONE) return v;
    if (m == MD_DIM_ONE) return md_trans(ctx, v);
    if (md_is_zero(v)) return md_zero(ctx, m, n);
    if (v->kind == MD_VEC && v->args[0]->rows == m && v->args[0]->cols == n) return v->args[0];
    md_expr *sc, *core = md_scalar_out(ctx, v, &sc);
    if (core != v) return md_mul2(ctx, sc, md_unvec(ctx, core, m, n));
    /* M = (vec(I_n)' ⊗ I_m)(I_n ⊗ vec M) (Magnus and Neudecker) */
    md_expr *In = md_eye(ctx, n);
    return md_mul2(ctx, md_kron(ctx, md_trans(ctx, md_vec_of(ctx, In)), md_eye(ctx, m)), md_kron(ctx, In, v));
}

md_expr *md_kron(md_ctx *ctx, md_expr *a, md_expr *b)
{
    int rows = md_ctx_dim_mul(ctx, a->rows, b->rows), cols = md_ctx_dim_mul(ctx, a->cols, b->cols);
    if (md_is_zero(a) || md_is_zero(b)) return md_zero(ctx, rows, cols);
    /* kron(s, B) = s*B for a scalar s */
    if (md_is_scalar(a)) return md_mul2(ctx, a, b);
    if (md_is_scalar(b)) return md_mul2(ctx, b, a);
    /* scalar factors come out: kron(s*A, B) = s*kron(A, B) */
    md_expr *sa, *sb, *ca = md_scalar_out(ctx, a, &sa), *cb = md_scalar_out(ctx, b, &sb);
    if (ca != a || cb != b) return md_mul3(ctx, sa, sb, md_kron(ctx, ca, cb));
    /* kron(eye(m), eye(n)) = eye(m*n), and the same for matrix(1) */
    if (a->kind == MD_EYE && b->kind == MD_EYE) return md_eye(ctx, rows);
    if (a->kind == MD_ONES && b->kind == MD_ONES) return md_ones(ctx, rows, cols);
    /* kron(u, kron(v', C)) = kron(u*v', C) for a column u and a row v'
       (associativity, and kron of a column and a row is their product) */
    if (b->kind == MD_KRON && a->cols == MD_DIM_ONE && b->args[0]->rows == MD_DIM_ONE)
        return md_kron(ctx, md_mul2(ctx, a, b->args[0]), b->args[1]);
    if (b->kind == MD_KRON && a->rows == MD_DIM_ONE && b->args[0]->cols == MD_DIM_ONE)
        return md_kron(ctx, md_mul2(ctx, b->args[0], a), b->args[1]);
    /* kron(A, B + C) = kron(A, B) + kron(A, C) when some term simplifies
       (kron(x, kron(x', M)) is kron(x*x', M)); otherwise the sum stays
       inside, where md_add's bilinearity would put it back anyway */
    for (int side = 0; side < 2; side++) {
        md_expr *S = side ? a : b, *K = side ? b : a;
        if (S->kind != MD_ADD) continue;
        md_expr **terms = md_xmalloc((size_t)S->nargs * sizeof *terms);
        int better = 0;
        for (int i = 0; i < S->nargs; i++) {
            terms[i] = side ? md_kron(ctx, S->args[i], K) : md_kron(ctx, K, S->args[i]);
            md_expr *sc, *core = md_scalar_out(ctx, terms[i], &sc), *bsc, *bcore = md_scalar_out(ctx, S->args[i], &bsc);
            (void)sc;
            (void)bsc;
            if (core->kind != MD_KRON || core->args[side ? 1 : 0] != K || core->args[side ? 0 : 1] != bcore) better = 1;
        }
        md_expr *r = better ? md_add(ctx, S->nargs, terms) : NULL;
        free(terms);
        if (r) return r;
    }
    /* an outer product: kron(u', v) = kron(v, u') = v*u' */
    if (a->rows == MD_DIM_ONE && b->cols == MD_DIM_ONE) return md_mul2(ctx, b, a);
    if (a->cols == MD_DIM_ONE && b->rows == MD_DIM_ONE) return md_mul2(ctx, a, b);
    md_expr *args[2] = {a, b};
    return md_raw(ctx, MD_KRON, rows, cols, 2, args);
}

md_expr *md_comm(md_ctx *ctx, int m, int n)
{
    int p = md_ctx_dim_mul(ctx, m, n);
    if (m == MD_DIM_ONE || n == MD_DIM_ONE) return md_eye(ctx, p);
    return md_expr_make(ctx, MD_COMM, p, p, m, n, 0, 0, NULL, NULL);
}

md_expr *md_frob(md_ctx *ctx, md_expr *a, md_expr *b)
{
    if (md_is_scalar(a) && md_is_scalar(b)) return md_mul2(ctx, a, b);
    if (a->kind == MD_ONES) return md_unary(ctx, MD_SUM, b);
    if (b->kind == MD_ONES) return md_unary(ctx, MD_SUM, a);
    if (a->kind == MD_EYE) return md_unary(ctx, MD_TR, b);
    if (b->kind == MD_EYE) return md_unary(ctx, MD_TR, a);
    if (a->cols == MD_DIM_ONE) return md_mul2(ctx, md_trans(ctx, a), b);
    if (a->rows == MD_DIM_ONE) return md_mul2(ctx, a, md_trans(ctx, b));
    return md_unary(ctx, MD_SUM, md_had2(ctx, a, b));
}

/* ---- rebuilding ------------------------------------------------------- */

md_expr *md_rebuild(md_ctx *ctx, md_expr *e, md_expr *const *a)
{
    md_expr *r = e;
    switch (e->kind) {
    case MD_ADD: r = md_add(ctx, e->nargs, a); break;
    case MD_MUL: r = md_mul(ctx, e->nargs, a); break;
    case MD_HAD: r = md_had(ctx, e->nargs, a); break;
    case MD_POW: r = md_pow(ctx, a[0], a[1]); break;
    case MD_MPOW: r = md_mpow(ctx, a[0], e->ival); break;
    case MD_TRANS: r = md_trans(ctx, a[0]); break;
    case MD_FUNC:
        r = e->ival == MD_FN_GENERIC ? md_generic(ctx, e->aux, e->order, a[0])
                                     : md_func(ctx, (md_fn)e->ival, a[0]);
        break;
    case MD_KRON: r = md_kron(ctx, a[0], a[1]); break;
    case MD_COMM: r = md_comm(ctx, e->ival, e->aux); break;
    case MD_NUM: case MD_SYM: case MD_DIFF: case MD_ZERO: case MD_ONES: case MD_EYE:
    case MD_SUM: case MD_NORM1: case MD_NORM2: case MD_TR: case MD_DET: case MD_LOGDET:
    case MD_DIAGM: case MD_DIAGV: case MD_VEC: case MD_SOFTMAX: case MD_LSE: case MD_NKINDS:
        r = e->nargs ? md_unary(ctx, e->kind, a[0]) : e;
        break;
    }
    return r;
}

static md_expr *md_simplify_uncached(md_ctx *ctx, md_expr *e)
{
    if (e->nargs == 0) return e->kind == MD_COMM ? md_rebuild(ctx, e, NULL) : e;
    md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
    for (int i = 0; i < e->nargs; i++) a[i] = md_simplify(ctx, e->args[i]);
    md_expr *r = md_rebuild(ctx, e, a);
    free(a);
    return r;
}

md_expr *md_simplify(md_ctx *ctx, md_expr *e)
{
    md_memo_grow(ctx);
    if (ctx->memo_simp[e->id]) return ctx->memo_simp[e->id];
    md_expr *r = md_simplify_uncached(ctx, e);
    md_memo_grow(ctx);
    ctx->memo_simp[e->id] = r;
    return r;
}
