/*
 * steps.c -- step-by-step derivations (see md_steps.h).
 *
 * The derivation is written the way the best answers in the seeds write
 * it by hand, and built from the same machinery as the gradient itself:
 *
 *  1. Substitutions.  The argument of each outermost norm2, norm1, sum or
 *     tr that depends on a variable gets a name (M, N, ...), a new symbol
 *     of its shape, so that lines stay short.
 *  2. The function with the names substituted, shown in Frobenius form
 *     (norm2(M)^2 as M : M, sum(M) as 1 : M, tr(M) as I : M).
 *  3. df with respect to the names (md_differential treats them as
 *     variables), then, per variable X, the differential of each named
 *     subexpression, and df again with those substituted (chain rule).
 *  4. The identification, as a sequence of lines.  A line is a sum of
 *     Frobenius products a_i : e_i; the next line applies to every term
 *     whose e_i is not yet dX the one identity its outermost operator
 *     calls for (the same table as md_identify), then collects terms with
 *     equal right sides.  The identities used are named in the margin.
 *  5. df = G : dX, hence ∂f/∂X = G (for symmetric X, sym(G)).
 *
 * Nothing here is only printed: every line keeps its expressions, and
 * md_steps_check evaluates each equation line on random data to confirm
 * that it equals the previous one.
 */
#include "md_steps.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "md_diff.h"
#include "md_latex.h"
#include "md_print.h"
#include "md_simplify.h"

/* ---- lines ------------------------------------------------------------ */

static md_line *add_line(md_derivation *d, md_line_kind kind, const char *lhs, int block)
{
    if (d->nlines == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 32;
        d->lines = md_xrealloc(d->lines, (size_t)d->cap * sizeof *d->lines);
    }
    md_line *l = &d->lines[d->nlines++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->lhs = lhs ? md_xstrdup(lhs) : NULL;
    l->block = block;
    return l;
}

void md_steps_free(md_derivation *d)
{
    for (int i = 0; i < d->nlines; i++) {
        free(d->lines[i].lhs);
        free(d->lines[i].pairs);
        free(d->lines[i].why);
    }
    free(d->lines);
    free(d->subst);
    free(d->grads);
    free(d->blockf);
    memset(d, 0, sizeof *d);
}

void md_steps_typed(md_ctx *ctx, md_derivation *d, md_expr *typed)
{
    (void)ctx;
    if (!typed || d->nlines == 0 || d->lines[0].kind != MD_LINE_SHAPES) return;
    add_line(d, MD_LINE_EQ, d->fname, -1);
    md_line l = d->lines[d->nlines - 1];
    memmove(d->lines + 2, d->lines + 1, (size_t)(d->nlines - 2) * sizeof *d->lines);
    l.expr = typed;
    l.typed = 1;
    d->lines[1] = l;
}

/* ---- substitution ----------------------------------------------------- */

typedef struct md_repl {
    md_ctx *ctx;
    int n;
    md_expr **from, **to;
    md_expr **memo;
    uint32_t cap;
} md_repl;

static md_expr *repl_rec(md_repl *r, md_expr *e)
{
    for (int i = 0; i < r->n; i++)
        if (e == r->from[i]) return r->to[i];
    if (e->nargs == 0) return e;
    if (e->id < r->cap && r->memo[e->id]) return r->memo[e->id];
    md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
    int changed = 0;
    for (int i = 0; i < e->nargs; i++) {
        a[i] = repl_rec(r, e->args[i]);
        changed |= a[i] != e->args[i];
    }
    md_expr *res = changed ? md_rebuild(r->ctx, e, a) : e;
    free(a);
    if (e->id < r->cap) r->memo[e->id] = res;
    return res;
}

/* e with every from[i] replaced by to[i], rebuilt through the simplifier. */
static md_expr *replace(md_ctx *ctx, md_expr *e, int n, md_expr **from, md_expr **to)
{
    md_repl r = {ctx, n, from, to, NULL, ctx->nnodes};
    r.memo = md_xcalloc(r.cap, sizeof *r.memo);
    md_expr *res = repl_rec(&r, e);
    free(r.memo);
    return res;
}

static int depends_rec(md_expr *e, const int *wrt, int n, char *seen)
{
    if (seen[e->id]) return 0;
    seen[e->id] = 1;
    if (e->kind == MD_SYM)
        for (int i = 0; i < n; i++)
            if (e->ival == wrt[i]) return 1;
    for (int i = 0; i < e->nargs; i++)
        if (depends_rec(e->args[i], wrt, n, seen)) return 1;
    return 0;
}

static int depends(md_ctx *ctx, md_expr *e, const int *wrt, int n)
{
    char *seen = md_xcalloc(ctx->nnodes, 1);
    int r = depends_rec(e, wrt, n, seen);
    free(seen);
    return r;
}

static int is_leafish(md_expr *e)
{
    return e->nargs == 0 || (e->kind == MD_TRANS && e->args[0]->nargs == 0);
}

/* The outermost arguments of norm2, norm1, sum and tr worth a name. */
static void find_subst(md_ctx *ctx, md_expr *e, const int *wrt, int n, md_expr ***out, int *nout, char *seen)
{
    if (seen[e->id]) return;
    seen[e->id] = 1;
    /* (not a value the user named: it has a name already, h in sum(h)) */
    if ((e->kind == MD_NORM2 || e->kind == MD_NORM1 || e->kind == MD_SUM || e->kind == MD_TR) &&
        !is_leafish(e->args[0]) && e->args[0]->weight >= 3 && depends(ctx, e->args[0], wrt, n) &&
        md_user_name_of(ctx, e->args[0]) < 0) {
        for (int i = 0; i < *nout; i++)
            if ((*out)[i] == e->args[0]) return;
        *out = md_xrealloc(*out, (size_t)(*nout + 1) * sizeof **out);
        (*out)[(*nout)++] = e->args[0];
        return;
    }
    for (int i = 0; i < e->nargs; i++) find_subst(ctx, e->args[i], wrt, n, out, nout, seen);
}

static const char *subst_name(md_ctx *ctx, int k)
{
    static const char *const pool[] = {"M", "N", "K", "L", "Z", "E", "F", "H", NULL};
    static char buf[32];
    int seen = 0;
    for (int i = 0; pool[i]; i++)
        if (md_ctx_find_sym(ctx, pool[i]) < 0 && md_ctx_find_func(ctx, pool[i]) < 0 && seen++ == k)
            return pool[i];
    for (int i = 1;; i++) {
        snprintf(buf, sizeof buf, "M%d", i);
        if (md_ctx_find_sym(ctx, buf) < 0 && seen++ == k) return buf;
    }
}

/* ---- pairs ------------------------------------------------------------ */

typedef struct md_pairs {
    md_pair *v;
    int n, cap;
} md_pairs;

static void pairs_push(md_pairs *p, md_expr *a, md_expr *e)
{
    if (md_is_zero(a) || md_is_zero(e)) return;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 8;
        p->v = md_xrealloc(p->v, (size_t)p->cap * sizeof *p->v);
    }
    p->v[p->n++] = (md_pair){a, e};
}

/* Collects terms with the same right side: a:e + b:e = (a + b):e. */
static int pairs_collect(md_ctx *ctx, md_pairs *p)
{
    int changed = 0;
    for (int i = 0; i < p->n; i++)
        for (int j = i + 1; j < p->n; j++)
            if (p->v[j].e == p->v[i].e) {
                p->v[i].a = md_add2(ctx, p->v[i].a, p->v[j].a);
                memmove(p->v + j, p->v + j + 1, (size_t)(p->n - j - 1) * sizeof *p->v);
                p->n--;
                j--;
                changed = 1;
            }
    int m = 0;
    for (int i = 0; i < p->n; i++)
        if (!md_is_zero(p->v[i].a)) p->v[m++] = p->v[i];
    p->n = m;
    return changed;
}

/* A scalar term c * (B : C) in Frobenius form: fills a, e.  For
   sum(B .* C) and x'*y, the side with the differential is e. */
static void frob_split(md_ctx *ctx, md_expr *t, md_expr **a, md_expr **e)
{
    md_expr *coef = md_num_si(ctx, 1, 1);
    md_expr *core = t;
    if (t->kind == MD_MUL) {
        /* the factor with the differential, or (without one) the last */
        int k = t->nargs - 1;
        for (int i = 0; i < t->nargs; i++)
            if (t->args[i]->has_diff) k = i;
        md_expr **rest = md_xmalloc((size_t)t->nargs * sizeof *rest);
        int m = 0, s = 0;
        while (s < t->nargs && md_is_scalar(t->args[s])) s++;
        if (k < s) {
            for (int i = 0; i < t->nargs; i++)
                if (i != k) rest[m++] = t->args[i];
            coef = md_mul(ctx, m, rest);
            core = t->args[k];
        } else {
            /* a 1x1 chain: all of it is the core, the scalars the coefficient */
            coef = md_mul(ctx, s, t->args);
            core = md_mul(ctx, t->nargs - s, t->args + s);
            if (s == 0) coef = md_num_si(ctx, 1, 1);
        }
        free(rest);
    }
    if (core->kind == MD_SUM && core->args[0]->kind == MD_HAD) {
        md_expr *h = core->args[0];
        int k = h->nargs - 1;
        for (int i = 0; i < h->nargs; i++)
            if (h->args[i]->has_diff) k = i;
        md_expr **rest = md_xmalloc((size_t)h->nargs * sizeof *rest);
        int m = 0;
        for (int i = 0; i < h->nargs; i++)
            if (i != k) rest[m++] = h->args[i];
        *a = md_mul2(ctx, coef, md_had(ctx, m, rest));
        *e = h->args[k];
        free(rest);
        return;
    }
    if (core->kind == MD_SUM) {
        *a = md_mul2(ctx, coef, md_ones(ctx, core->args[0]->rows, core->args[0]->cols));
        *e = core->args[0];
        return;
    }
    if (core->kind == MD_TR) {
        *a = md_mul2(ctx, coef, md_eye(ctx, core->args[0]->rows));
        *e = core->args[0];
        return;
    }
    if (core->kind == MD_POW && core->args[0]->kind == MD_NORM2 && md_is_num(core->args[1], 2)) {
        *a = md_mul2(ctx, coef, core->args[0]->args[0]);
        *e = core->args[0]->args[0];
        return;
    }
    /* p*q of a row and a column vector: x'*y is x : y, m*n' is m : n */
    if (core->kind == MD_MUL && core->nargs == 2 && md_is_scalar(core) && !md_is_scalar(core->args[0])) {
        md_expr *p = core->args[0], *q = core->args[1], *u, *v;
        /* p' is written out (r for rᵀr), not q' (rᵀ : rᵀ) */
        u = p->kind == MD_TRANS ? p->args[0] : md_trans(ctx, p);
        v = q;
        if (u->has_diff) {
            md_expr *w = u;
            u = v;
            v = w;
        }
        *a = md_mul2(ctx, coef, u);
        *e = v;
        return;
    }
    *a = coef;
    *e = core;
}

static void to_pairs(md_ctx *ctx, md_expr *L, md_pairs *out)
{
    if (L->kind == MD_ADD) {
        for (int i = 0; i < L->nargs; i++) to_pairs(ctx, L->args[i], out);
        return;
    }
    md_expr *a, *e;
    frob_split(ctx, L, &a, &e);
    pairs_push(out, a, e);
}

/* One identity applied to the pair (a, e); appends the results and returns
   the identity's name. */
static void pairs_emit(void *arg, md_expr *A, md_expr *child) { pairs_push(arg, A, child); }

/* The identity the outermost operator of E calls for, applied to A : E:
   the same step md_identify takes (md_identify_step). */
static const char *rewrite(md_ctx *ctx, md_expr *A, md_expr *E, md_pairs *out)
{
    return md_identify_step(ctx, A, E, pairs_emit, out);
}

static void set_pairs(md_line *l, const md_pairs *p)
{
    l->npairs = p->n;
    l->pairs = md_xmalloc((size_t)(p->n ? p->n : 1) * sizeof *l->pairs);
    if (p->n) memcpy(l->pairs, p->v, (size_t)p->n * sizeof *l->pairs);
}

static int pairs_final(const md_pairs *p, md_expr *dX)
{
    for (int i = 0; i < p->n; i++)
        if (p->v[i].e != dX) return 0;
    return 1;
}

/* A rewriting step: the pair (a, e) one identity down, appended to out;
   the identity's name, or NULL when e's kind has no rule. */
typedef const char *(*md_rewrite_fn)(md_ctx *ctx, md_expr *a, md_expr *e, md_pairs *out);

/*
 * The identities, one level per line: each line takes every term of *p
 * whose e is not yet dX one level down with step, collects terms with
 * equal e, and is added as a line of the given kind for block b with the
 * identities used in its margin.  At most as many lines as the deepest e
 * (the guard only protects against a rule that makes no progress, which
 * would be a bug).  Returns 0, or -1 when a step has no rule.
 */
static int rewrite_lines(md_ctx *ctx, md_derivation *d, md_pairs *p, md_expr *dX, int b, md_line_kind kind,
                         md_rewrite_fn step)
{
    int guard_max = 64;
    for (int i = 0; i < p->n; i++)
        if ((int)p->v[i].e->depth + 64 > guard_max) guard_max = (int)p->v[i].e->depth + 64;
    for (int guard = 0; !pairs_final(p, dX); guard++) {
        if (guard >= guard_max) return -1;
        md_pairs q = {0};
        md_buf why = {0};
        for (int i = 0; i < p->n; i++) {
            if (p->v[i].e == dX) {
                pairs_push(&q, p->v[i].a, p->v[i].e);
                continue;
            }
            const char *w = step(ctx, p->v[i].a, p->v[i].e, &q);
            if (!w) {
                free(q.v);
                md_buf_free(&why);
                return -1;
            }
            if (!why.s || !strstr(why.s, w)) md_buf_printf(&why, "%s%s", why.len ? ", " : "", w);
        }
        if (pairs_collect(ctx, &q)) md_buf_printf(&why, "%scollect terms", why.len ? ", " : "");
        free(p->v);
        *p = q;
        md_line *l = add_line(d, kind, NULL, b);
        set_pairs(l, p);
        l->why = md_buf_take(&why);
    }
    return 0;
}

/* ---- deriving --------------------------------------------------------- */

int md_steps_derive(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_derivation *d)
{
    memset(d, 0, sizeof *d);
    d->nwrt = n;
    d->wrt = wrt;
    d->fname = md_function_name(ctx, 0);
    d->dfname = d->fname[0] == 'f' ? "df" : "dℓ";
    d->fname_latex = md_function_name(ctx, 1);
    d->grads = md_xcalloc((size_t)n + 1, sizeof *d->grads);
    d->kind = 1;
    add_line(d, MD_LINE_SHAPES, NULL, -1);

    /* 1. substitutions */
    md_expr **subs = NULL;
    int nsubs = 0;
    char *seen = md_xcalloc(ctx->nnodes, 1);
    find_subst(ctx, f, wrt, n, &subs, &nsubs, seen);
    free(seen);
    md_expr **syms = md_xcalloc((size_t)nsubs + 1, sizeof *syms);
    d->subst = md_xcalloc((size_t)nsubs + 1, sizeof *d->subst);
    for (int i = 0; i < nsubs; i++) {
        md_expr *E = subs[i];
        md_symkind k = md_is_scalar(E) ? MD_SYM_SCALAR : E->cols == MD_DIM_ONE ? MD_SYM_VECTOR : MD_SYM_MATRIX;
        int s = md_ctx_add_sym(ctx, subst_name(ctx, 0), k, E->rows, E->cols);
        /* a sum is named with the sign that makes its first term positive
           (M = XUVᵀ - Y rather than Y - XUVᵀ); the function uses -M */
        int neg = E->kind == MD_ADD && E->args[0]->kind == MD_MUL && E->args[0]->args[0]->kind == MD_NUM &&
                  mpq_sgn(E->args[0]->args[0]->q) < 0;
        md_expr *named = neg ? md_neg(ctx, E) : E;
        syms[i] = neg ? md_neg(ctx, md_sym(ctx, s)) : md_sym(ctx, s);
        d->subst[d->nsubst++] = (md_subst){s, named};
        md_line *l = add_line(d, MD_LINE_DEF, ctx->syms[s].name, -1);
        l->expr = named;
    }
    md_expr *fs = nsubs ? replace(ctx, f, nsubs, subs, syms) : f;
    md_line *lf = add_line(d, MD_LINE_EQ, d->fname, -1);
    lf->expr = fs;

    /* 2. df in terms of the names and of the variables used directly */
    md_expr **terms = md_xcalloc((size_t)(nsubs + n) + 1, sizeof *terms);
    int nterms = 0;
    for (int i = 0; i < nsubs; i++) terms[nterms++] = md_differential(ctx, fs, d->subst[i].sym);
    for (int i = 0; i < n; i++) terms[nterms++] = md_differential(ctx, fs, wrt[i]);
    md_expr *dfs = md_add(ctx, nterms, terms);
    free(terms);
    if (nsubs) {
        md_pairs p0 = {0};
        to_pairs(ctx, dfs, &p0);
        md_line *l = add_line(d, MD_LINE_PAIRS, d->dfname, -1);
        set_pairs(l, &p0);
        free(p0.v);
    }

    int rc = 0;
    for (int b = 0; b < n && rc == 0; b++) {
        int X = wrt[b];
        md_expr *dX = md_diff_of(ctx, X);
        if (n > 1) {
            md_line *t = add_line(d, MD_LINE_TEXT, NULL, b);
            md_buf s = {0};
            md_buf_printf(&s, "with respect to %s, the other variables held constant:", ctx->syms[X].name);
            t->why = md_buf_take(&s);
        }
        /* the differentials of the names, and of the other variables (0) */
        int nf = nsubs + n;
        md_expr **from = md_xcalloc((size_t)nf + 1, sizeof *from), **to = md_xcalloc((size_t)nf + 1, sizeof *to);
        int m = 0;
        for (int i = 0; i < nsubs; i++) {
            md_expr *dE = md_differential(ctx, d->subst[i].expr, X);
            from[m] = md_diff_of(ctx, d->subst[i].sym);
            to[m++] = dE;
            if (!md_is_zero(dE)) {
                md_buf s = {0};
                md_buf_printf(&s, "d%s", ctx->syms[d->subst[i].sym].name);
                md_line *l = add_line(d, MD_LINE_EQ, s.s, b);
                l->expr = dE;
                md_buf_free(&s);
            }
        }
        for (int i = 0; i < n; i++)
            if (i != b) {
                from[m] = md_diff_of(ctx, wrt[i]);
                to[m++] = md_zero(ctx, ctx->syms[wrt[i]].rows, ctx->syms[wrt[i]].cols);
            }
        md_pairs p = {0};
        md_pairs p0 = {0};
        to_pairs(ctx, dfs, &p0);
        for (int i = 0; i < p0.n; i++) {
            /* a number the substitution brought out of e goes to a:
               -1 : -(dx'*y) would print as --dx'y */
            md_expr *a = p0.v[i].a, *e = replace(ctx, p0.v[i].e, m, from, to);
            if (e->kind == MD_MUL && e->args[0]->kind == MD_NUM) {
                a = md_scale(ctx, e->args[0]->q, a);
                e = md_mul(ctx, e->nargs - 1, e->args + 1);
            }
            pairs_push(&p, a, e);
        }
        free(p0.v);
        free(from);
        free(to);
        pairs_collect(ctx, &p);
        md_line *l = add_line(d, MD_LINE_PAIRS, d->dfname, b);
        set_pairs(l, &p);
        if (nsubs) l->why = md_xstrdup("chain rule");

        /* 3. the identities, one level per line (the same step md_identify takes) */
        rc = rewrite_lines(ctx, d, &p, dX, b, MD_LINE_PAIRS, rewrite);
        if (rc == 0) {
            /* the result is md_gradient's node, written with the names: the
               derivation ends in exactly what the gradient printer prints.
               The identification reaches that node itself almost always; if
               it spells it differently (-a - b against -(a + b)), the last
               line says so before the result. */
            md_expr *G = p.n ? p.v[0].a : md_zero(ctx, ctx->syms[X].rows, ctx->syms[X].cols);
            int sym = md_sym_is_symmetric(ctx, X);
            if (sym) G = md_sym_part(ctx, G);
            md_expr *want = md_gradient(ctx, f, X);
            if (want && want != md_steps_expand(ctx, d, G)) {
                if (nsubs) want = replace(ctx, want, nsubs, subs, syms);
                md_pairs q = {0};
                pairs_push(&q, want, dX);
                md_line *l2 = add_line(d, MD_LINE_PAIRS, NULL, b);
                set_pairs(l2, &q);
                l2->why = md_xstrdup(sym ? "sym(G), rearranged" : "rearranged");
                free(q.v);
                G = want;
                sym = 0;
            }
            md_line *r = add_line(d, MD_LINE_RESULT, NULL, b);
            r->expr = G;
            if (sym) {   /* named after the variable: "S symmetric: ..." */
                md_buf wb = {0};
                md_buf_printf(&wb, "%s symmetric: sym(G) = (G + Gᵀ)/2", ctx->syms[X].name);
                r->why = md_buf_take(&wb);
            }
            d->grads[b] = G;
        }
        free(p.v);
    }
    free(subs);
    free(syms);
    return rc;
}

/* ---- deriving Jacobians and Hessians ---------------------------------- */

typedef struct md_vstep {
    md_ctx *ctx;
    md_pairs *out;
    md_expr *c;          /* the coefficient of the term being rewritten */
} md_vstep;

/* c vec(N) with vec(N) = sum_k C_k vec(E_k): the terms (c C_k, E_k) */
static void vpairs_emit(void *arg, md_expr *Ck, md_expr *child)
{
    md_vstep *v = arg;
    pairs_push(v->out, md_mul2(v->ctx, v->c, Ck), child);
}

/* c vec(e) one vec identity down (md_vec_step, the table md_vec_jacobian uses) */
static const char *vrewrite(md_ctx *ctx, md_expr *c, md_expr *e, md_pairs *out)
{
    md_vstep v = {ctx, out, c};
    return md_vec_step(ctx, e, vpairs_emit, &v);
}

/*
 * The lines of one block: dF, then d vec F = c_1 vec(e_1) + ..., one
 * level of md_vec_step per line, until every e_i is dX; then the result,
 * which is want (what the text output prints), with a "rearranged" line
 * if the identification spelled it differently.  By a scalar x there is
 * nothing to vectorise: dF = C dx.
 */
static int vec_block(md_ctx *ctx, md_derivation *d, md_expr *F, int X, int b, const char *dflhs, md_expr *want)
{
    md_expr *dX = md_diff_of(ctx, X);
    md_expr *dF = md_differential(ctx, F, X);
    md_line *l = add_line(d, MD_LINE_EQ, dflhs, b);
    l->expr = dF;
    const md_symbol *x = &ctx->syms[X];
    md_pairs p = {0};
    if (x->rows == MD_DIM_ONE && x->cols == MD_DIM_ONE) {
        pairs_push(&p, want, dX);
        l = add_line(d, MD_LINE_VPAIRS, dflhs, b);
        set_pairs(l, &p);
        l->why = md_xstrdup("the differential is a scalar: its coefficient");
        free(p.v);
        md_line *r = add_line(d, MD_LINE_RESULT, NULL, b);
        r->expr = want;
        d->grads[b] = want;
        return 0;
    }
    /* d vec F = vec(dF) (for a column vector F that is the line above) */
    pairs_push(&p, md_eye(ctx, md_ctx_dim_mul(ctx, F->rows, F->cols)), dF);
    if (F->cols != MD_DIM_ONE) {
        md_buf lhs = {0};
        md_buf_printf(&lhs, "d vec %s", dflhs + 1);
        l = add_line(d, MD_LINE_VPAIRS, lhs.s, b);
        md_buf_free(&lhs);
        set_pairs(l, &p);
    }
    int rc = rewrite_lines(ctx, d, &p, dX, b, MD_LINE_VPAIRS, vrewrite);
    if (rc == 0) {
        int xsize = md_ctx_dim_mul(ctx, x->rows, x->cols);
        md_expr *J = p.n ? p.v[0].a : md_zero(ctx, md_ctx_dim_mul(ctx, F->rows, F->cols), xsize);
        const char *why = NULL;
        if (md_sym_is_symmetric(ctx, X)) {
            J = md_mul2(ctx, J, md_scale_si(ctx, 1, 2, md_add2(ctx, md_eye(ctx, xsize), md_comm(ctx, x->rows, x->rows))));
            why = "symmetric directions only, JN = J(I + K)/2";
        }
        if (want && want != J) {
            md_pairs q = {0};
            pairs_push(&q, want, dX);
            md_line *l2 = add_line(d, MD_LINE_VPAIRS, NULL, b);
            set_pairs(l2, &q);
            l2->why = md_xstrdup(why ? "symmetric directions only, JN = J(I + K)/2, rearranged" : "rearranged");
            free(q.v);
            J = want;
            why = NULL;
        }
        md_line *r = add_line(d, MD_LINE_RESULT, NULL, b);
        r->expr = J;
        if (why) r->why = md_xstrdup(why);
        d->grads[b] = J;
    }
    free(p.v);
    return rc;
}

int md_steps_derive_vec(md_ctx *ctx, md_expr *f, int hessian, int n, const int *wrt, md_derivation *d)
{
    memset(d, 0, sizeof *d);
    d->nwrt = n;
    d->wrt = wrt;
    d->kind = hessian ? 3 : 2;
    d->fname = md_function_name(ctx, 0);
    d->dfname = d->fname[0] == 'f' ? "df" : "dℓ";
    d->fname_latex = md_function_name(ctx, 1);
    int nb = hessian ? n * n : n;
    d->grads = md_xcalloc((size_t)nb + 1, sizeof *d->grads);
    d->blockf = md_xcalloc((size_t)nb + 1, sizeof *d->blockf);
    add_line(d, MD_LINE_SHAPES, NULL, -1);
    md_line *lf = add_line(d, MD_LINE_EQ, d->fname, -1);
    lf->expr = f;
    int rc = 0;
    for (int b = 0; b < nb && rc == 0; b++) {
        int xi = wrt[hessian ? b / n : b], xj = hessian ? wrt[b % n] : -1;
        md_buf s = {0};
        md_expr *F = f;
        if (hessian) {
            /* the gradient by X (once per X), then its derivative by Y */
            F = md_gradient(ctx, f, xi);
            if (!F) return -1;
            if (b % n == 0) {
                md_line *t = add_line(d, MD_LINE_TEXT, NULL, b);
                md_buf_printf(&s, "the gradient with respect to %s:", ctx->syms[xi].name);
                t->why = md_buf_take(&s);
                md_line *g = add_line(d, MD_LINE_GRADIENT, NULL, b);
                g->expr = F;
            }
            md_line *t = add_line(d, MD_LINE_TEXT, NULL, b);
            md_buf_printf(&s, "its derivative with respect to %s, d vec g = H d vec %s:", ctx->syms[xj].name,
                          ctx->syms[xj].name);
            t->why = md_buf_take(&s);
        } else if (n > 1) {
            md_line *t = add_line(d, MD_LINE_TEXT, NULL, b);
            md_buf_printf(&s, "with respect to %s, the other variables held constant:", ctx->syms[xi].name);
            t->why = md_buf_take(&s);
        }
        d->blockf[b] = F;
        md_expr *want = hessian ? md_vec_jacobian(ctx, F, xj) : md_derivative(ctx, f, xi);
        rc = vec_block(ctx, d, F, hessian ? xj : xi, b, hessian ? "dg" : d->dfname, want);
    }
    return rc;
}

md_expr *md_steps_expand(md_ctx *ctx, const md_derivation *d, md_expr *e)
{
    md_expr **from = md_xcalloc((size_t)d->nsubst + 1, sizeof *from);
    md_expr **to = md_xcalloc((size_t)d->nsubst + 1, sizeof *to);
    /* later names may stand for expressions of earlier ones: expand the
       last first */
    md_expr *r = e;
    for (int k = d->nsubst - 1; k >= 0; k--) {
        from[0] = md_sym(ctx, d->subst[k].sym);
        to[0] = d->subst[k].expr;
        r = replace(ctx, r, 1, from, to);
    }
    free(from);
    free(to);
    return r;
}

/* ---- rendering -------------------------------------------------------- */

/* Is symbol s a substitution (M), not a variable of the program? */
static int is_subst_sym(const md_derivation *d, int s)
{
    for (int k = 0; k < d->nsubst; k++)
        if (d->subst[k].sym == s) return 1;
    return 0;
}

/*
 * Temporaries.  A deep composition repeats its inner layers on every
 * line (the derivation of a 100-layer network would otherwise be
 * quadratic in its depth on each line, cubic in all), so the lines share
 * temporaries as the gradient output does: every subexpression of at
 * least MD_STEPS_TEMP_WEIGHT nodes that occurs twice gets a name T1, T2,
 * ..., defined on a line of its own just before the first line that
 * uses it.  Short derivations have no such subexpressions and read as
 * before.
 */
enum { MD_STEPS_TEMP_WEIGHT = 40 };

/* The left side of a pair as printed: a leading negative number becomes
   the sign of the term (-2A : B prints as - 2A : B). */
static md_expr *pair_shown(md_ctx *ctx, md_expr *a, int *neg)
{
    *neg = a->kind == MD_NUM ? mpq_sgn(a->q) < 0
                             : a->kind == MD_MUL && a->args[0]->kind == MD_NUM && mpq_sgn(a->args[0]->q) < 0;
    return *neg ? md_neg(ctx, a) : a;
}

/*
 * A pair as printed.  A negative number leading e moves to a (1 : -exp(X)
 * is -1 : exp(X), never ": -"), and a leading negative number of a becomes
 * the term's sign (pair_shown).  Two scalars without a differential (a
 * term of the function) are no Frobenius product to a reader
 * (λ : (‖U‖² + ‖V‖²)): they print as their product, *prod (NULL
 * otherwise), which has the same value.  In the df chain a scalar pair
 * keeps its colon: a : dx is the form the gradient is read from.
 */
static md_expr *pair_view(md_ctx *ctx, const md_pair *p, md_expr **e, int *neg, md_expr **prod)
{
    md_expr *a = p->a;
    *e = p->e;
    if ((*e)->kind == MD_MUL && (*e)->args[0]->kind == MD_NUM && mpq_sgn((*e)->args[0]->q) < 0) {
        a = md_neg(ctx, a);
        *e = md_neg(ctx, *e);
    }
    a = pair_shown(ctx, a, neg);
    *prod = md_is_scalar(a) && md_is_scalar(*e) && !(*e)->has_diff && !md_is_num(a, 1) ? md_mul2(ctx, a, *e) : NULL;
    return a;
}

typedef struct md_render {
    md_ctx *ctx;
    md_temps t;
    char *done;                  /* done[k]: temporary k is defined */
    int latex;
    const md_latex_style *st;
    md_buf *out;
    int *open;                   /* LaTeX: inside align* */
} md_render;

static void latex_row(md_render *rd)
{
    if (!*rd->open) md_buf_puts(rd->out, "\\begin{align*}\n");
    else md_buf_puts(rd->out, " \\\\\n");
    *rd->open = 1;
}

static int temp_index(const md_render *rd, md_expr *e)
{
    for (int k = 0; k < rd->t.ndefs; k++)
        if (rd->t.defs[k] == e) return k;
    return -1;
}

static void def_refs(md_render *rd, md_expr *e, int top);

/* The line "T = ..." of temporary e, after those it uses. */
static void def_emit(md_render *rd, md_expr *e)
{
    int k = temp_index(rd, e);
    if (k < 0 || rd->done[k]) return;
    rd->done[k] = 1;
    def_refs(rd, e, 1);
    if (rd->latex) {
        latex_row(rd);
        md_buf lhs = {0}, body = {0};
        md_latex_name(rd->ctx, rd->t.owned[k], &lhs);
        md_latex_expr(rd->ctx, e, rd->st, &rd->t, &body);
        md_latex_row(rd->out, lhs.s, body.s ? body.s : "", NULL);
        md_buf_free(&lhs);
        md_buf_free(&body);
    } else {
        md_buf_printf(rd->out, "%s = ", rd->t.owned[k]);
        md_print_styled_def(rd->ctx, e, 1, &rd->t, rd->out);
        md_buf_putc(rd->out, '\n');
    }
}

/* Defines the temporaries e refers to (e itself too unless top). */
static void def_refs(md_render *rd, md_expr *e, int top)
{
    if (e->id < rd->t.n) {
        if (!top && rd->t.name[e->id]) {
            def_emit(rd, e);
            return;
        }
        md_expr *r = rd->t.transof[e->id];
        if (!top && r && rd->t.name[r->id]) {
            def_emit(rd, r);
            return;
        }
    }
    for (int i = 0; i < e->nargs; i++) def_refs(rd, e->args[i], 0);
}

/* Every temporary line l uses, defined before it. */
static void def_line(md_render *rd, const md_line *l)
{
    if (l->expr) def_refs(rd, l->expr, 1);
    for (int k = 0; k < l->npairs; k++) {
        int neg;
        md_expr *e, *prod;
        def_refs(rd, pair_view(rd->ctx, &l->pairs[k], &e, &neg, &prod), 0);
        def_refs(rd, e, 0);
    }
}

static void render_init(md_render *rd, md_ctx *ctx, const md_derivation *d, int latex,
                        const md_latex_style *st, md_buf *out, int *open)
{
    memset(rd, 0, sizeof *rd);
    rd->ctx = ctx;
    rd->latex = latex;
    rd->st = st;
    rd->out = out;
    rd->open = open;
    /* the sides of pairs as printed, and the arguments of the
       expressions other lines write out in full (dM = ..., ∂f/∂X = ...) */
    int n = 0;
    for (int i = 0; i < d->nlines; i++) n += (d->lines[i].expr ? d->lines[i].expr->nargs + 1 : 0) + 2 * d->lines[i].npairs;
    md_expr **roots = md_xcalloc((size_t)n + 1, sizeof *roots);
    n = 0;
    for (int i = 0; i < d->nlines; i++) {
        const md_line *l = &d->lines[i];
        for (int k = 0; l->expr && k < l->expr->nargs; k++) roots[n++] = l->expr->args[k];
        /* a substitution may be a user's name among other terms (M = z - y) */
        if (l->expr && l->kind == MD_LINE_DEF && l->expr->kind == MD_ADD && ctx->nbound) roots[n++] = l->expr;
        for (int k = 0; k < l->npairs; k++) {
            int neg;
            md_expr *e, *prod;
            roots[n++] = pair_view(ctx, &l->pairs[k], &e, &neg, &prod);
            roots[n++] = e;
        }
    }
    md_temps_find_ex(ctx, n, roots, NULL, MD_STEPS_TEMP_WEIGHT, 1, &rd->t);
    rd->done = md_xcalloc((size_t)rd->t.ndefs + 1, 1);
    free(roots);
}

static void render_free(md_render *rd)
{
    md_temps_free(&rd->t);
    free(rd->done);
}

static void print_pair_side(md_ctx *ctx, const md_temps *t, md_expr *e, md_buf *out)
{
    /* ':' binds looser than products and ∘, tighter than + */
    md_print_styled(ctx, e, 1, t, MD_LEVEL_PROD, out);
}

static void latex_side(md_ctx *ctx, md_expr *e, const md_latex_style *st, const md_temps *t, md_buf *out);

/* a, when the printer writes it as a negative multiple of a user's name
   (-2r for 2y - 2Xw with r = Xw - y): that multiple without its sign,
   which goes to the term (*neg flips), so that no "+ -2r" is written. */
static md_expr *scaled_sign(md_ctx *ctx, const md_temps *t, md_expr *a, int *neg)
{
    if (!t || !t->scaled || a->id >= t->n || !t->scaled[a->id]) return a;
    md_expr *s = t->scaled[a->id];
    if (s->kind != MD_MUL || mpq_sgn(s->args[0]->q) >= 0) return a;
    *neg = !*neg;
    mpq_t c;
    mpq_init(c);
    mpq_neg(c, s->args[0]->q);
    md_expr *r = mpq_cmp_ui(c, 1, 1) == 0 ? s->args[1]
                                          : md_expr_make(ctx, MD_MUL, s->rows, s->cols, 0, 0, 0, 2,
                                                         (md_expr *[]){md_num(ctx, c), s->args[1]}, NULL);
    mpq_clear(c);
    return r;
}

/* a_1 : e_1 + a_2 : e_2 - ..., as Unicode text or (latex) LaTeX */
static void render_pairs(md_ctx *ctx, const md_temps *t, const md_pair *v, int n, const md_latex_style *st,
                         int latex, md_buf *out)
{
    if (n == 0) {
        md_buf_puts(out, "0");
        return;
    }
    for (int i = 0; i < n; i++) {
        int neg;
        md_expr *e, *prod;
        md_expr *a = pair_view(ctx, &v[i], &e, &neg, &prod);
        if (!prod) a = scaled_sign(ctx, t, a, &neg);
        if (i) md_buf_puts(out, neg ? " - " : " + ");
        else if (neg) md_buf_puts(out, "-");
        if (prod) {
            if (latex) latex_side(ctx, prod, st, t, out);
            else print_pair_side(ctx, t, prod, out);
            continue;
        }
        for (int side = 0; side < 2; side++) {
            md_expr *x = side ? e : a;
            if (!side && md_is_num(a, 1)) continue;
            if (latex) latex_side(ctx, x, st, t, out);
            else print_pair_side(ctx, t, x, out);
            if (!side) md_buf_puts(out, " : ");
        }
    }
}

static void print_pairs(md_ctx *ctx, const md_temps *t, const md_pair *v, int n, md_buf *out)
{
    render_pairs(ctx, t, v, n, NULL, 0, out);
}

/* An expression in Frobenius form where it has one: the terms of a sum
   that are c*(B:C) print as cB : C. */
static void print_frob(md_ctx *ctx, const md_temps *tt, md_expr *e, md_buf *out)
{
    md_pairs p = {0};
    if (md_is_scalar(e)) {
        md_expr **t = e->kind == MD_ADD ? e->args : &e;
        int nt = e->kind == MD_ADD ? e->nargs : 1;
        for (int i = 0; i < nt; i++) {
            md_expr *a, *b;
            frob_split(ctx, t[i], &a, &b);
            if (p.n == p.cap) {
                p.cap = p.cap ? 2 * p.cap : 8;
                p.v = md_xrealloc(p.v, (size_t)p.cap * sizeof *p.v);
            }
            p.v[p.n++] = (md_pair){a, b};
        }
        print_pairs(ctx, tt, p.v, p.n, out);
        free(p.v);
        return;
    }
    md_print_styled_def(ctx, e, 1, tt, out);
}

/* c_1 vec(e_1) + c_2 vec(e_2) - ...: an identity coefficient is not
   written, a column vector e is its own vec. */
static void render_vpairs(md_ctx *ctx, const md_temps *t, const md_pair *v, int n, const md_latex_style *st,
                          int latex, md_buf *out)
{
    if (n == 0) {
        md_buf_puts(out, "0");
        return;
    }
    for (int i = 0; i < n; i++) {
        int neg;
        md_expr *a = pair_shown(ctx, v[i].a, &neg);
        if (i) md_buf_puts(out, neg ? " - " : " + ");
        else if (neg) md_buf_puts(out, "-");
        if (!md_is_num(a, 1) && a->kind != MD_EYE) {
            if (latex) latex_side(ctx, a, st, t, out);
            else md_print_styled(ctx, a, 1, t, MD_LEVEL_PROD, out);
            md_buf_puts(out, latex ? "\\," : " ");
        }
        md_expr *e = v[i].e;
        int col = e->cols == MD_DIM_ONE;
        if (latex) {
            md_buf_puts(out, col ? "" : "\\operatorname{vec}");
            if (!col || md_print_level(ctx, e) <= MD_LEVEL_PROD) {
                md_buf_puts(out, "\\left(");
                md_latex_expr(ctx, e, st, t, out);
                md_buf_puts(out, "\\right)");
            } else {
                md_latex_expr(ctx, e, st, t, out);
            }
        } else {
            md_buf_puts(out, col ? "" : "vec");
            if (!col) {
                md_buf_putc(out, '(');
                md_print_styled(ctx, e, 1, t, 0, out);
                md_buf_putc(out, ')');
            } else {
                md_print_styled(ctx, e, 1, t, MD_LEVEL_POST, out);
            }
        }
    }
}

/* The left side of a result line: ∂f/∂X, ∂f/∂xᵀ, ∂vec f/∂(vec X)ᵀ,
   ∂²f/∂x∂yᵀ, ∂²f/∂vec X∂(vec Y)ᵀ (the vec forms where a matrix is
   involved), in Unicode or LaTeX. */
static void result_lhs(md_ctx *ctx, const md_derivation *d, int b, int latex, md_buf *out)
{
    const char *part = latex ? "\\partial " : "∂";
    const char *tr = latex ? "^\\top" : "ᵀ";
    if (d->kind == 1) {
        md_buf_printf(out, latex ? "\\frac{\\partial %s}{\\partial " : "∂%s/∂", latex ? d->fname_latex : d->fname);
        if (latex) md_latex_name(ctx, ctx->syms[d->wrt[b]].name, out);
        else md_print_styled(ctx, md_sym(ctx, d->wrt[b]), 1, NULL, 0, out);
        if (latex) md_buf_puts(out, "}");
        return;
    }
    int n = d->nwrt;
    int xs[2] = {d->kind == 3 ? d->wrt[b / n] : -1, d->kind == 3 ? d->wrt[b % n] : d->wrt[b]};
    md_expr *F = d->blockf[b];
    if (latex) md_buf_puts(out, "\\frac{");
    md_buf_printf(out, "%s%s", part, d->kind == 3 ? (latex ? "^2" : "²") : "");
    int fmat = F->rows != MD_DIM_ONE && F->cols != MD_DIM_ONE && d->kind == 2;
    int xscalar = ctx->syms[xs[1]].rows == MD_DIM_ONE && ctx->syms[xs[1]].cols == MD_DIM_ONE;
    if (fmat && !xscalar) md_buf_puts(out, latex ? "\\operatorname{vec} " : "vec ");
    md_buf_puts(out, latex ? d->fname_latex : d->fname);
    md_buf_puts(out, latex ? "}{" : "/");
    for (int k = 0; k < 2; k++) {
        if (xs[k] < 0) continue;
        const md_symbol *x = &ctx->syms[xs[k]];
        int mat = x->rows != MD_DIM_ONE && x->cols != MD_DIM_ONE, sc = x->rows == MD_DIM_ONE && x->cols == MD_DIM_ONE;
        int transposed = k == 1 && !(d->kind == 2 && xscalar) && !sc;
        md_buf_puts(out, part);
        if (mat && transposed) md_buf_puts(out, "(");
        if (mat) md_buf_puts(out, latex ? "\\operatorname{vec} " : "vec ");
        if (latex) md_latex_name(ctx, x->name, out);
        else md_print_styled(ctx, md_sym(ctx, xs[k]), 1, NULL, 0, out);
        if (mat && transposed) md_buf_puts(out, ")");
        if (transposed) md_buf_puts(out, tr);
        if (latex && k == 0) md_buf_puts(out, "\\,");
    }
    if (latex) md_buf_puts(out, "}");
}

void md_steps_text(md_ctx *ctx, const md_derivation *d, md_buf *out)
{
    enum { MARGIN = 44 };
    char *typed_text = NULL;
    md_render rd;
    int open = 0;
    render_init(&rd, ctx, d, 0, NULL, out, &open);
    const md_temps *t = &rd.t;
    for (int i = 0; i < d->nlines; i++) {
        const md_line *l = &d->lines[i];
        def_line(&rd, l);
        size_t start = out->len;
        switch (l->kind) {
        case MD_LINE_SHAPES: {
            int first = 1;
            for (int s = 0; s < ctx->nsyms; s++) {
                if (is_subst_sym(d, s)) continue;
                md_symbol *y = &ctx->syms[s];
                md_buf_puts(out, first ? "" : ", ");
                first = 0;
                md_print_styled(ctx, md_sym(ctx, s), 1, NULL, 0, out);
                /* ℝ^n, ℝ^{n_obs} (md_print_script), ℝ^{n×p} */
                if (y->rows == MD_DIM_ONE && y->cols == MD_DIM_ONE) md_buf_puts(out, " ∈ ℝ");
                else if (y->cols == MD_DIM_ONE) {
                    md_buf_puts(out, " ∈ ℝ");
                    md_print_script(out, '^', ctx->dims[y->rows].name);
                } else md_buf_printf(out, " ∈ ℝ^{%s×%s}%s", ctx->dims[y->rows].name, ctx->dims[y->cols].name,
                                     y->kind == MD_SYM_SYMMETRIC ? ", symmetric" : "");
            }
            md_buf_putc(out, '\n');
            continue;
        }
        case MD_LINE_TEXT:
            md_buf_printf(out, "\n%s\n", l->why);
            continue;
        case MD_LINE_DEF:
            md_buf_printf(out, "%s = ", l->lhs);
            md_print_styled_def(ctx, l->expr, 1, t, out);
            break;
        case MD_LINE_EQ:
            md_buf_printf(out, "%s = ", l->lhs);
            if (l->typed) {
                md_print_styled_def(ctx, l->expr, 1, t, out);
                free(typed_text);
                typed_text = md_xstrdup(out->s + start);
                break;
            }
            print_frob(ctx, t, l->expr, out);
            if (typed_text && !strcmp(l->lhs, d->fname) && !strcmp(out->s + start, typed_text)) {
                /* the Frobenius form reads as typed: once is enough */
                out->len = start;
                out->s[start] = 0;
                continue;
            }
            if (i > 0 && d->lines[i - 1].typed && out->len == start + strlen(out->s + start) &&
                !strncmp(out->s + start, l->lhs, strlen(l->lhs))) {
                /* right after the function as typed: a continuation, "  = " */
                size_t k = strlen(l->lhs);
                memset(out->s + start, ' ', k);
                if (k < 2) {
                    md_buf_putc(out, ' ');
                    memmove(out->s + start + 1, out->s + start, out->len - start - 1);
                }
            }
            break;
        case MD_LINE_PAIRS:
            md_buf_printf(out, "%s = ", l->lhs ? l->lhs : "  ");
            print_pairs(ctx, t, l->pairs, l->npairs, out);
            break;
        case MD_LINE_RESULT:
            result_lhs(ctx, d, l->block, 0, out);
            md_buf_puts(out, " = ");
            /* a value the user named is that name (∂f/∂v = h) */
            if (md_user_name_of(ctx, l->expr) >= 0) md_print_styled(ctx, l->expr, 1, t, 0, out);
            else md_print_styled_def(ctx, l->expr, 1, t, out);
            break;
        case MD_LINE_VPAIRS:
            md_buf_printf(out, "%s = ", l->lhs ? l->lhs : "  ");
            render_vpairs(ctx, t, l->pairs, l->npairs, NULL, 0, out);
            break;
        case MD_LINE_GRADIENT:
            md_buf_printf(out, "g = ∂%s/∂", d->fname);
            md_print_styled(ctx, md_sym(ctx, d->wrt[l->block / d->nwrt]), 1, NULL, 0, out);
            md_buf_puts(out, " = ");
            md_print_styled_def(ctx, l->expr, 1, t, out);
            break;
        }
        if (l->why) {
            /* the identity in the margin, aligned when the line is short */
            size_t width = 0;
            for (size_t k = start; k < out->len; k++)
                if (((unsigned char)out->s[k] & 0xC0) != 0x80) width++;
            do md_buf_putc(out, ' ');
            while (++width < MARGIN);
            md_buf_printf(out, " [%s]", l->why);
        }
        md_buf_putc(out, '\n');
    }
    free(typed_text);
    render_free(&rd);
}

/* ---- LaTeX ------------------------------------------------------------ */

static void latex_side(md_ctx *ctx, md_expr *e, const md_latex_style *st, const md_temps *t, md_buf *out)
{
    /* ':' binds looser than products and \circ, tighter than + (a
       temporary is an atom) */
    int named = t && e->id < t->n && (t->name[e->id] || (t->transof[e->id] && t->name[t->transof[e->id]->id]));
    if (named) {
        md_latex_ref(ctx, e, st, t, out);   /* T_{1}, T_{1}^\top, h */
        return;
    }
    int paren = md_print_level(ctx, e) <= MD_LEVEL_SUM;
    if (paren) md_buf_puts(out, "\\left(");
    md_latex_expr(ctx, e, st, t, out);
    if (paren) md_buf_puts(out, "\\right)");
}

static void latex_pairs(md_ctx *ctx, const md_temps *t, const md_pair *v, int n, const md_latex_style *st, md_buf *out)
{
    render_pairs(ctx, t, v, n, st, 1, out);
}

static void latex_frob(md_ctx *ctx, const md_temps *tt, md_expr *e, const md_latex_style *st, md_buf *out)
{
    if (!md_is_scalar(e)) {
        md_latex_expr(ctx, e, st, tt, out);
        return;
    }
    md_expr **t = e->kind == MD_ADD ? e->args : &e;
    int nt = e->kind == MD_ADD ? e->nargs : 1;
    md_pair *p = md_xmalloc((size_t)nt * sizeof *p);
    for (int i = 0; i < nt; i++) frob_split(ctx, t[i], &p[i].a, &p[i].e);
    latex_pairs(ctx, tt, p, nt, st, out);
    free(p);
}

/* One identity or formula of a margin note in math mode. */
static void latex_why_math(const char *p, size_t n, const md_latex_style *st, md_buf *out)
{
    for (size_t i = 0; i < n;) {
        if (!strncmp(p + i, "ᵀ", strlen("ᵀ"))) {
            md_buf_puts(out, st && st->transpose_T ? "^T" : "^\\top ");
            i += strlen("ᵀ");
        } else if (!strncmp(p + i, "∘", strlen("∘"))) {
            md_buf_puts(out, st && st->odot ? "\\odot " : "\\circ ");
            i += strlen("∘");
        } else if (!strncmp(p + i, "⊗", strlen("⊗"))) {
            md_buf_puts(out, "\\otimes ");
            i += strlen("⊗");
        } else if ((!strncmp(p + i, "vec", 3) || !strncmp(p + i, "diag", 4) || !strncmp(p + i, "sym", 3)) &&
                   (i == 0 || !isalpha((unsigned char)p[i - 1]))) {
            int k = p[i] == 'd' ? 4 : 3;
            md_buf_printf(out, "\\operatorname{%.*s}", k, p + i);
            i += (size_t)k;
            if (p[i] == ' ') {
                md_buf_putc(out, ' ');
                i++;
            }
        } else if (!strncmp(p + i, "1ᵀ", strlen("1ᵀ"))) {
            md_buf_puts(out, "\\mathbf{1}");
            i += 1;
        } else {
            md_buf_putc(out, p[i]);
            i++;
        }
    }
}

/*
 * "A:BC = BᵀA:C, collect terms" as the text of a \tag*: identities and
 * formulas in math ($A:BC = B^\top A:C$), words as text ("collect
 * terms").  A note "X symmetric: sym(G) = ..." is words up to ": " and a
 * formula after it, and sym(G) alone is a formula.
 */
static void latex_why(const char *why, const md_latex_style *st, md_buf *out)
{
    const char *p = why;
    int first = 1;
    while (*p) {
        const char *q = strstr(p, ", ");
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (!first) md_buf_puts(out, ", ");
        first = 0;
        const char *colon = NULL;
        for (size_t i = 0; i + 1 < n; i++)
            if (p[i] == ':' && p[i + 1] == ' ') colon = p + i;
        if (colon) {
            /* "X symmetric: " -- a one-letter name in math, the rest words */
            const char *sp = memchr(p, ' ', (size_t)(colon - p));
            if (sp && sp - p == 1) md_buf_printf(out, "$%c$%.*s: ", p[0], (int)(colon - sp), sp);
            else md_buf_printf(out, "%.*s: ", (int)(colon - p), p);
            n -= (size_t)(colon + 2 - p);
            p = colon + 2;
        }
        int math = memchr(p, '=', n) != NULL || memchr(p, ':', n) != NULL || !strncmp(p, "sym(", 4);
        if (math) {
            md_buf_putc(out, '$');
            latex_why_math(p, n, st, out);
            md_buf_putc(out, '$');
        } else {
            md_buf_printf(out, "%.*s", (int)n, p);
        }
        p += n;
        if (q) p += 2;
    }
}

static void latex_lhs(const md_ctx *ctx, const md_derivation *d, const char *lhs, md_buf *out)
{
    if (!strncmp(lhs, "d vec ", 6)) {
        md_buf_puts(out, "\\mathrm{d}\\operatorname{vec} ");
        md_buf_puts(out, !strcmp(lhs + 6, d->fname) ? d->fname_latex : lhs + 6);
    } else if (!strcmp(lhs, d->fname) || !strcmp(lhs, d->dfname)) {
        md_buf_puts(out, lhs[0] == 'd' ? "\\mathrm{d}" : "");
        md_buf_puts(out, d->fname_latex);
    } else if (lhs[0] == 'd' && lhs[1]) {
        md_buf_puts(out, "\\mathrm{d}");
        md_latex_name(ctx, lhs + 1, out);
    } else {
        md_latex_name(ctx, lhs, out);
    }
}

void md_steps_latex(md_ctx *ctx, const md_derivation *d, const md_latex_style *st, md_buf *out)
{
    int open = 0;
    char *typed_body = NULL;
    md_render rd;
    render_init(&rd, ctx, d, 1, st, out, &open);
    const md_temps *t = &rd.t;
    for (int i = 0; i < d->nlines; i++) {
        const md_line *l = &d->lines[i];
        if (l->kind != MD_LINE_SHAPES && l->kind != MD_LINE_TEXT) def_line(&rd, l);
        if (l->kind == MD_LINE_SHAPES) {
            md_buf_puts(out, "\\[\n");
            int first = 1;
            for (int s = 0; s < ctx->nsyms; s++) {
                if (is_subst_sym(d, s)) continue;
                md_symbol *y = &ctx->syms[s];
                md_buf_puts(out, first ? "" : ",\\quad ");
                first = 0;
                md_latex_name(ctx, y->name, out);
                /* dimensions are names too: n_obs is n_{\mathit{obs}}, not
                   n_obs (n_o, then bs) or a double subscript (n_a_b) */
                md_buf_puts(out, " \\in \\mathbb{R}");
                if (y->rows == MD_DIM_ONE && y->cols == MD_DIM_ONE) continue;
                md_buf_puts(out, "^{");
                md_latex_name(ctx, ctx->dims[y->rows].name, out);
                if (y->cols != MD_DIM_ONE) {
                    md_buf_puts(out, "\\times ");
                    md_latex_name(ctx, ctx->dims[y->cols].name, out);
                }
                md_buf_puts(out, "}");
                if (y->kind == MD_SYM_SYMMETRIC) md_buf_puts(out, "\\text{ symmetric}");
            }
            md_buf_puts(out, "\n\\]\n");
            continue;
        }
        if (l->kind == MD_LINE_TEXT) {
            if (open) md_buf_puts(out, "\n\\end{align*}\n");
            open = 0;
            if (d->kind == 3) {
                /* the sentence as text, names with their _ escaped */
                for (const char *c = l->why; *c; c++) {
                    if (*c == '_') md_buf_putc(out, '\\');
                    md_buf_putc(out, *c);
                }
                md_buf_putc(out, '\n');
                continue;
            }
            md_buf_printf(out, "With respect to $");
            md_latex_name(ctx, ctx->syms[d->wrt[l->block]].name, out);
            md_buf_puts(out, "$, the other variables held constant:\n");
            continue;
        }
        md_buf lhs = {0}, body = {0}, tag = {0};
        int skip_row = 0;
        switch (l->kind) {
        case MD_LINE_DEF:
            latex_lhs(ctx, d, l->lhs, &lhs);
            md_latex_expr(ctx, l->expr, st, t, &body);
            break;
        case MD_LINE_EQ:
            latex_lhs(ctx, d, l->lhs, &lhs);
            if (l->typed) {
                md_latex_expr(ctx, l->expr, st, t, &body);
                free(typed_body);
                typed_body = md_xstrdup(body.s ? body.s : "");
                break;
            }
            latex_frob(ctx, t, l->expr, st, &body);
            if (i > 0 && d->lines[i - 1].typed) md_buf_free(&lhs);   /* a continuation */
            if (typed_body && !strcmp(l->lhs, d->fname) && body.s && !strcmp(body.s, typed_body)) {
                /* the Frobenius form reads as typed: once is enough */
                md_buf_free(&lhs);
                md_buf_free(&body);
                skip_row = 1;
            }
            break;
        case MD_LINE_PAIRS:
            if (l->lhs) latex_lhs(ctx, d, l->lhs, &lhs);
            latex_pairs(ctx, t, l->pairs, l->npairs, st, &body);
            break;
        case MD_LINE_RESULT:
            result_lhs(ctx, d, l->block, 1, &lhs);
            if (md_user_name_of(ctx, l->expr) >= 0) md_latex_ref(ctx, l->expr, st, t, &body);
            else md_latex_expr(ctx, l->expr, st, t, &body);
            break;
        case MD_LINE_VPAIRS:
            if (l->lhs) latex_lhs(ctx, d, l->lhs, &lhs);
            render_vpairs(ctx, t, l->pairs, l->npairs, st, 1, &body);
            break;
        case MD_LINE_GRADIENT:
            md_buf_printf(&lhs, "g = \\frac{\\partial %s}{\\partial ", d->fname_latex);
            md_latex_name(ctx, ctx->syms[d->wrt[l->block / d->nwrt]].name, &lhs);
            md_buf_puts(&lhs, "}");
            md_latex_expr(ctx, l->expr, st, t, &body);
            break;
        case MD_LINE_SHAPES:
        case MD_LINE_TEXT: break;
        }
        if (l->why) latex_why(l->why, st, &tag);
        if (!skip_row) {
            latex_row(&rd);
            md_latex_row(out, lhs.s ? lhs.s : "", body.s ? body.s : "", tag.s);
        }
        md_buf_free(&lhs);
        md_buf_free(&body);
        md_buf_free(&tag);
    }
    if (open) md_buf_puts(out, "\n\\end{align*}\n");
    free(typed_body);
    render_free(&rd);
}

/* ---- the numerical check ---------------------------------------------- */

/* sum_i a_i : e_i at env; *mag gets sum_i |a_i : e_i|, the size of the
   terms, which is what rounding is relative to when they cancel. */
static double pairs_value(md_ctx *ctx, const md_env *env, const md_pair *v, int n, int *ok, double *mag)
{
    double s = 0;
    *mag = 0;
    for (int i = 0; i < n; i++) {
        md_mat m[2];
        md_expr *ae[2] = {v[i].a, v[i].e};
        if (md_eval_many(env, 2, ae, m)) {
            *ok = 0;
            return 0;
        }
        if (m[0].rows == m[1].rows && m[0].cols == m[1].cols) {
            /* A : E entry by entry; its size is sum |A .* E| (A : dS
               with A antisymmetric and dS symmetric is 0 by cancellation) */
            for (long k = 0; k < m[0].rows * m[0].cols; k++) {
                s += m[0].v[k] * m[1].v[k];
                *mag += fabs(m[0].v[k] * m[1].v[k]);
            }
        } else {
            md_mat t;
            if (md_eval(env, md_frob(ctx, v[i].a, v[i].e), &t)) {
                *ok = 0;
                md_mat_free(&m[0]);
                md_mat_free(&m[1]);
                return 0;
            }
            s += t.v[0];
            *mag += fabs(t.v[0]);
            md_mat_free(&t);
        }
        md_mat_free(&m[0]);
        md_mat_free(&m[1]);
    }
    return s;
}

/* The relative difference of two values of df, against the larger of
   them, of the sizes of the terms that made them, and of what rounding
   can do to them (noise: how far the same lines move when every value is
   rounded to double, times 1e13, so that 1e-9 of it is 1e4 times the
   noise; cancellation inside one term shows there and nowhere else). */
static double rel(double a, double b, double mag, double noise)
{
    double scale = fmax(fmax(fmax(fabs(a), fabs(b)), mag), 1e13 * noise);
    return scale > 0 ? fabs(a - b) / scale : 0;
}

/* pairs_value, and how far its value moves when computed in double. */
static double pairs_value_noise(md_ctx *ctx, md_env *env, const md_pair *v, int n, int *ok, double *mag,
                                double *noise)
{
    double got = pairs_value(ctx, env, v, n, ok, mag);
    if (!*ok) return 0;
    double m2;
    env->doubles = 1;
    double got_d = pairs_value(ctx, env, v, n, ok, &m2);
    env->doubles = 0;
    *noise = *ok ? fabs(got - got_d) : 0;
    *ok = 1;
    return got;
}

static double steps_check_once(md_ctx *ctx, md_expr *f, const md_derivation *d, unsigned long seed, int equal);

/*
 * Every line of the derivation, evaluated on random data along a random
 * direction of its variable (the other variables fixed), against G : dX
 * from md_gradient.  A point where a line cannot be evaluated (det(A*W)
 * with A*W singular, the inverse in its gradient) is redrawn, up to five
 * times.  The lines are different spellings of one number, so they agree
 * to rounding; at an ill-conditioned point (det(R)^9 inside an inverse)
 * rounding is amplified, so when the first point shows more than 1e-9
 * two more are tried and the best counts: an identity applied wrongly
 * is wrong at every point.  As in md_check_with, when three draws with
 * distinct sizes worked nowhere, the rest make every dimension equal:
 * logdet(X*Y) + logdet(Y*X) is defined for X n x p, but its derivation
 * has inv(X*Y) and inv(Y*X), which need p = n.  Returns the worst
 * relative difference at that point, or -1 when no point worked.
 */
static double steps_check_vec_once(md_ctx *ctx, md_expr *f, const md_derivation *d, unsigned long seed, int equal);

double md_steps_check(md_ctx *ctx, md_expr *f, const md_derivation *d, unsigned long seed)
{
    if (d->kind != 1) {
        double best = -1;
        int tried = 0;
        for (unsigned long k = 0; k < 6 && tried < 3; k++) {
            int equal = k >= 3 && tried == 0 && ctx->ndims > 2;
            double w = steps_check_vec_once(ctx, f, d, seed + 7919ul * k, equal);
            if (w < 0) continue;
            tried++;
            if (best < 0 || w < best) best = w;
            if (best <= 1e-9) break;
        }
        return best;
    }
    double best = -1;
    int tried = 0;
    for (unsigned long k = 0; k < 6 && tried < 3; k++) {
        int equal = k >= 3 && tried == 0 && ctx->ndims > 2;
        double w = steps_check_once(ctx, f, d, seed + 7919ul * k, equal);
        if (w < 0) continue;
        tried++;
        if (best < 0 || w < best) best = w;
        if (best <= 1e-9) break;
    }
    return best;
}

/* The worst relative difference between f and the lines "f = ..." of d
   (the function as typed, and in Frobenius form) at env, with the
   substitutions set; -1 when one cannot be evaluated. */
static double fn_lines_error(md_ctx *ctx, md_env *env, md_expr *f, const md_derivation *d)
{
    (void)ctx;
    md_mat fv;
    double worst = 0;
    if (md_eval(env, f, &fv)) return -1;
    for (int i = 0; i < d->nlines; i++) {
        const md_line *l = &d->lines[i];
        md_mat lv;
        if (l->kind != MD_LINE_EQ || !l->lhs || strcmp(l->lhs, d->fname)) continue;
        if (md_eval(env, l->expr, &lv)) {
            md_mat_free(&fv);
            return -1;
        }
        double dd = 0, mag = 1;
        for (long k = 0; k < fv.rows * fv.cols && k < lv.rows * lv.cols; k++) {
            dd = fmax(dd, fabs(fv.v[k] - lv.v[k]));
            mag = fmax(mag, fabs(fv.v[k]));
        }
        if (lv.rows != fv.rows || lv.cols != fv.cols) dd = INFINITY;
        worst = fmax(worst, dd / mag);
        md_mat_free(&lv);
    }
    md_mat_free(&fv);
    return worst;
}

static double steps_check_once(md_ctx *ctx, md_expr *f, const md_derivation *d, unsigned long seed, int equal)
{
    md_env env;
    if (md_env_random_ex(ctx, f, seed, equal, &env)) {
        md_env_free(&env);
        return -1;
    }
    /* the random directions, one variable at a time */
    md_mat *dirs = md_xcalloc((size_t)ctx->nsyms + 1, sizeof *dirs);
    for (int s = 0; s < ctx->nsyms; s++) {
        dirs[s] = md_mat_new(env.dir[s].rows, env.dir[s].cols);
        memcpy(dirs[s].v, env.dir[s].v, (size_t)(dirs[s].rows * dirs[s].cols) * sizeof(double));
    }
    double worst = 0;
    for (int b = 0; b < d->nwrt; b++) {
        /* directions: dX random, the other variables fixed */
        int X = d->wrt[b];
        for (int s = 0; s < ctx->nsyms; s++)
            if (!is_subst_sym(d, s))
                for (long i = 0; i < env.dir[s].rows * env.dir[s].cols; i++)
                    env.dir[s].v[i] = s == X ? dirs[s].v[i] : 0;
        /* names: their values and their differentials along dX */
        for (int k = 0; k < d->nsubst; k++) {
            md_mat v, dv;
            if (md_eval(&env, d->subst[k].expr, &v)) goto fail;
            md_expr *dE = md_differential(ctx, d->subst[k].expr, X);
            if (md_eval(&env, dE, &dv)) {
                md_mat_free(&v);
                goto fail;
            }
            md_mat_free(&env.val[d->subst[k].sym]);
            md_mat_free(&env.dir[d->subst[k].sym]);
            env.val[d->subst[k].sym] = v;
            env.dir[d->subst[k].sym] = dv;
        }
        /* the lines of the function itself (as typed, in Frobenius form
           with the names) equal f */
        if (b == 0) {
            double e = fn_lines_error(ctx, &env, f, d);
            if (e < 0) goto fail;
            worst = fmax(worst, e);
        }
        /* the reference: df along dX from the gradient md_gradient gives,
           and the size of its terms, sum |G .* dX| */
        md_expr *G = md_gradient(ctx, f, X);
        int ok = 1;
        md_pair ref = {G, md_diff_of(ctx, X)};
        double refmag, noise = 0, nz;
        double want = pairs_value_noise(ctx, &env, &ref, 1, &ok, &refmag, &nz);
        if (!ok) goto fail;
        noise = fmax(noise, nz);
        md_mat gv;
        if (md_eval(&env, G, &gv)) goto fail;
        refmag = 0;
        for (long i = 0; i < gv.rows * gv.cols && i < env.dir[X].rows * env.dir[X].cols; i++)
            refmag += fabs(gv.v[i] * env.dir[X].v[i]);
        md_mat_free(&gv);
        /* this variable's lines, and the shared df line (the other
           directions are zero); the scale is the largest size of terms
           over all of them, since one line's terms may cancel inside a
           single product that a later line splits */
        double *got = md_xcalloc((size_t)d->nlines + 1, sizeof *got);
        char *used = md_xcalloc((size_t)d->nlines + 1, 1);
        double scale = refmag;
        for (int i = 0; i < d->nlines && ok; i++) {
            const md_line *l = &d->lines[i];
            if (l->block != b && !(l->block == -1 && l->kind == MD_LINE_PAIRS)) continue;
            double mag = 0;
            if (l->kind == MD_LINE_PAIRS) got[i] = pairs_value_noise(ctx, &env, l->pairs, l->npairs, &ok, &mag, &nz);
            else if (l->kind == MD_LINE_RESULT) {
                md_pair r = {l->expr, md_diff_of(ctx, X)};
                got[i] = pairs_value_noise(ctx, &env, &r, 1, &ok, &mag, &nz);
            } else continue;
            used[i] = 1;
            scale = fmax(scale, mag);
            noise = fmax(noise, nz);
        }
        for (int i = 0; i < d->nlines && ok; i++) {
            if (!used[i]) continue;
            double e = rel(got[i], want, scale, noise);
            if (e > worst) worst = e;
        }
        free(got);
        free(used);
        if (!ok) goto fail;
    }
    for (int s = 0; s < ctx->nsyms; s++) md_mat_free(&dirs[s]);
    free(dirs);
    md_env_free(&env);
    return worst;
fail:
    for (int s = 0; s < ctx->nsyms; s++) md_mat_free(&dirs[s]);
    free(dirs);
    md_env_free(&env);
    return -1;
}

/* The value of a vec line, sum_i vec(c_i * vec(e_i)), into *v (length
   m); -1 when it cannot be evaluated.  *mag gets the largest entry of any
   term, what rounding is relative to. */
static int vpairs_value(md_ctx *ctx, const md_env *env, const md_pair *p, int n, long m, double *v, double *mag)
{
    for (long k = 0; k < m; k++) v[k] = 0;
    for (int i = 0; i < n; i++) {
        md_expr *t = md_vec_of(ctx, md_mul2(ctx, p[i].a, md_vec_of(ctx, p[i].e)));
        md_mat x;
        if (md_eval(env, t, &x)) return -1;
        if (x.rows * x.cols != m) {
            md_mat_free(&x);
            return -1;
        }
        for (long k = 0; k < m; k++) {
            v[k] += x.v[k];
            *mag = fmax(*mag, fabs(x.v[k]));
        }
        md_mat_free(&x);
    }
    return 0;
}

/*
 * Every vec line of every block against vec(dF) itself (md_differential
 * of the block's function, evaluated along a random direction of the
 * block's variable, the others fixed), and the result line as J vec(dX).
 * Returns the worst relative difference (against the largest entry of
 * the terms or of vec(dF)), or -1 when the point is outside a line's
 * domain.
 */
static double steps_check_vec_once(md_ctx *ctx, md_expr *f, const md_derivation *d, unsigned long seed, int equal)
{
    md_env env;
    if (md_env_random_ex(ctx, f, seed, equal, &env)) {
        md_env_free(&env);
        return -1;
    }
    md_mat *dirs = md_xcalloc((size_t)ctx->nsyms + 1, sizeof *dirs);
    for (int s = 0; s < ctx->nsyms; s++) {
        dirs[s] = md_mat_new(env.dir[s].rows, env.dir[s].cols);
        memcpy(dirs[s].v, env.dir[s].v, (size_t)(dirs[s].rows * dirs[s].cols) * sizeof(double));
    }
    int nb = d->kind == 3 ? d->nwrt * d->nwrt : d->nwrt;
    double worst = d->nsubst ? 0 : fn_lines_error(ctx, &env, f, d);
    int ok = worst >= 0;
    worst = fmax(worst, 0);
    for (int b = 0; b < nb && ok; b++) {
        int X = d->kind == 3 ? d->wrt[b % d->nwrt] : d->wrt[b];
        for (int s = 0; s < ctx->nsyms; s++)
            for (long i = 0; i < env.dir[s].rows * env.dir[s].cols; i++) env.dir[s].v[i] = s == X ? dirs[s].v[i] : 0;
        md_expr *ref = md_vec_of(ctx, md_differential(ctx, d->blockf[b], X));
        md_mat r;
        if (md_eval(&env, ref, &r)) {
            ok = 0;
            break;
        }
        long m = r.rows * r.cols;
        double *v = md_xcalloc((size_t)m + 1, sizeof *v), mag = 0;
        for (long k = 0; k < m; k++) mag = fmax(mag, fabs(r.v[k]));
        double *got = md_xcalloc((size_t)(m + 1) * (size_t)(d->nlines + 1), sizeof *got);
        char *used = md_xcalloc((size_t)d->nlines + 1, 1);
        for (int i = 0; i < d->nlines && ok; i++) {
            const md_line *l = &d->lines[i];
            if (l->block != b) continue;
            if (l->kind == MD_LINE_VPAIRS) {
                if (vpairs_value(ctx, &env, l->pairs, l->npairs, m, got + (size_t)i * (size_t)m, &mag)) ok = 0;
            } else if (l->kind == MD_LINE_RESULT) {
                md_pair p = {l->expr, md_diff_of(ctx, X)};
                if (vpairs_value(ctx, &env, &p, 1, m, got + (size_t)i * (size_t)m, &mag)) ok = 0;
            } else {
                continue;
            }
            used[i] = 1;
        }
        for (int i = 0; i < d->nlines && ok; i++) {
            if (!used[i]) continue;
            for (long k = 0; k < m; k++) {
                double e = fabs(got[(size_t)i * (size_t)m + (size_t)k] - r.v[k]) / (mag > 0 ? mag : 1);
                if (e > worst) worst = e;
            }
        }
        free(v);
        free(got);
        free(used);
        md_mat_free(&r);
    }
    for (int s = 0; s < ctx->nsyms; s++) md_mat_free(&dirs[s]);
    free(dirs);
    md_env_free(&env);
    return ok ? worst : -1;
}
