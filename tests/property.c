/*
 * property.c -- random-expression property tests, in the style of FLINT's
 * fexpr_randtest: many small random cases, each checking laws that must
 * hold for every expression, each reproducible from one seed.
 *
 *     build-prop/tests/property N [SEED]   runs N cases, seeds SEED..SEED+N-1
 *                                          (SEED defaults to 1)
 *     build-prop/tests/property 1 SEED     reruns one case, verbosely
 *
 * A case sets up a context with 2-4 named dimensions (n, m, p, q) and the
 * variables that fit them (scalars a, b; vectors x, y over n, z over m, ...;
 * matrices A (n x n), B (n x m), C (m x n), ...; symmetric S (n), T (m)).
 * It then generates one random well-shaped expression twice from the same
 * stream of random choices: once through the simplifying constructors of
 * md_simplify.h (e) and once through the raw md_expr_make (r), so r is e
 * before simplification.  Because the choices depend only on the random
 * stream and the requested shapes, never on the nodes built, the two runs
 * make the same decisions.  The generator keeps every argument provably
 * inside its domain (log(exp(X) + 1), sqrt(X.^2 + 1), arcsin(tanh(X)/2),
 * inverses and log-determinants of M*M' + eye, ...), reuses earlier
 * subexpressions (so hash-consed sharing matters) and mixes scalars,
 * vectors, row vectors, products whose inner dimension is 1, transposes
 * of products and symmetric variables.
 *
 * The properties:
 *
 *   P1 the generated expressions have the shape that was asked for;
 *   P2 printing round-trips: the declarations plus md_expr_to_string(e),
 *      parsed and typechecked into a fresh context, print to the same
 *      text, and both evaluate to the same values on the same data
 *      (variables and dimensions matched by name);
 *   P3 the simplifier is idempotent and sound: s1 = md_simplify(r),
 *      md_simplify(s1) == s1 (pointer equality), s1 == e (the raw tree
 *      simplified is what the constructors built directly),
 *      md_simplify(e) == e, and r and s1 evaluate to the same values
 *      (cases where r is outside its domain are skipped);
 *   P4 every gradient md_gradient gives for a scalar function f made from
 *      e (e itself, sum(e .* K) or norm2(e)^2) agrees with finite
 *      differences (md_check with tolerance 1e-6).  md_check returning -1
 *      (no point inside f's domain) counts as a skip.  When md_check
 *      fails, the failure stands unless one of these explains it (each is
 *      counted in the summary): f is not differentiable at the point (a
 *      relu/abs/sign/step/norm1 argument with an entry exactly 0, a
 *      norm2 argument exactly 0); a more careful finite difference (same
 *      data, steps 1e-2 .. 1e-9, rounding noise allowed for) agrees; f or
 *      its gradient is numerically chaotic at the point, or works at the
 *      edge of the double range.  See p4_verdict.
 *   P5 the gradients printed as one program (md_print_program: shared
 *      temporaries, dX = ... lines) read back (md_readback) and evaluate
 *      to the gradients' values;
 *   P6 for a vector or matrix e, d vec(e)/d vec(X)' (md_vec_jacobian) by
 *      every variable agrees with finite differences of w'vec(e) for a
 *      random weight w (md_check_with on its gradient J'w);
 *   P7 for every third case, the Hessian of f by its first variable
 *      (md_hessian_block) agrees with mixed second differences of f
 *      (md_check_hessian_with).  P6 and P7 count a check that is
 *      inconclusive, or at a kink, as the gradient check does.
 *   P8 for the other cases, the Hessian-vector product of the C backend
 *      (md_hvp: the differential of the gradient along a direction v)
 *      by f's first variable equals that Hessian times vec(v), evaluated
 *      at a random point (two derivations: the directional derivative of
 *      an expression, and the vec/Kronecker identification).
 *
 * Every generated node is first checked against the shape contracts of
 * md_expr.h (wf_check), because the evaluator refuses malformed graphs.
 * Values are compared with a normwise relative error:
 * max |u - v| / max(1, max |u|, max |v|) < 1e-9.
 *
 * A failure prints the seed, the program (declarations and e) and what
 * went wrong; `property 1 SEED` prints the raw tree, the node tree of e
 * with shapes and the finite-difference details as well.  The last line
 * is always "property: N passed, N failed"; the exit status is 1 when a
 * case failed.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_ast.h"
#include "md_builtins.h"
#include "md_diag.h"
#include "md_diff.h"
#include "md_eval.h"
#include "md_expr.h"
#include "md_print.h"
#include "md_readback.h"
#include "md_shape.h"
#include "md_simplify.h"

enum { MAXDIMS = 4, MAXVARS = 20, POOLCAP = 512 };

static int verbose;

/* ---- random numbers: splitmix64 --------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- the variables a case may use ------------------------------------- */

typedef struct var_spec {
    const char *name;
    md_symkind kind;
    int r, c;            /* index into the case's dimensions, -1 for 1 */
} var_spec;

static const var_spec all_vars[] = {
    {"a", MD_SYM_SCALAR, -1, -1},   {"b", MD_SYM_SCALAR, -1, -1},
    {"c", MD_SYM_SCALAR, -1, -1},
    {"x", MD_SYM_VECTOR, 0, -1},    {"y", MD_SYM_VECTOR, 0, -1},
    {"z", MD_SYM_VECTOR, 1, -1},    {"w", MD_SYM_VECTOR, 2, -1},
    {"v", MD_SYM_VECTOR, 3, -1},
    {"A", MD_SYM_MATRIX, 0, 0},     {"B", MD_SYM_MATRIX, 0, 1},
    {"C", MD_SYM_MATRIX, 1, 0},     {"S", MD_SYM_SYMMETRIC, 0, 0},
    {"D", MD_SYM_MATRIX, 1, 1},     {"T", MD_SYM_SYMMETRIC, 1, 1},
    {"E", MD_SYM_MATRIX, 1, 2},     {"F", MD_SYM_MATRIX, 2, 0},
    {"G", MD_SYM_MATRIX, 3, 1},
};

static const char *const dim_names[MAXDIMS] = {"n", "m", "p", "q"};

typedef struct pool_item {
    md_expr *e;
    int r, c;
} pool_item;

/* The generator.  raw selects md_expr_make over the simplifying constructors. */
typedef struct gen {
    md_ctx *ctx;
    uint64_t rng;
    int raw;
    int ndims;
    int dims[MAXDIMS + 1];   /* dims[0] = MD_DIM_ONE, dims[1..ndims] the named ones */
    int nvars;
    int sym[MAXVARS];        /* ctx symbol of each variable */
    pool_item pool[POOLCAP];
    int npool;
    int budget;              /* interior nodes still allowed */
} gen;

static int rn(gen *g, int n) { return (int)(rnd(&g->rng) % (uint64_t)n); }
static int chance(gen *g, int percent) { return rn(g, 100) < percent; }

static int is_one(int d) { return d == MD_DIM_ONE; }

/* A random dimension id; with_one also allows the dimension 1. */
static int rdim(gen *g, int with_one)
{
    if (with_one && chance(g, 25)) return MD_DIM_ONE;
    return g->dims[1 + rn(g, g->ndims)];
}

/* ---- construction, raw or simplifying --------------------------------- */

static md_expr *mk(gen *g, md_kind k, int r, int c, int ival, int n, md_expr **a)
{
    return md_expr_make(g->ctx, k, r, c, ival, 0, 0, n, a, NULL);
}

static md_expr *mk1(gen *g, md_kind k, int r, int c, int ival, md_expr *a)
{
    return mk(g, k, r, c, ival, 1, &a);
}

static md_expr *mk2(gen *g, md_kind k, int r, int c, md_expr *a, md_expr *b)
{
    md_expr *t[2] = {a, b};
    return mk(g, k, r, c, 0, 2, t);
}

static md_expr *g_scale(gen *g, long num, unsigned long den, md_expr *a)
{
    if (!g->raw) return md_scale_si(g->ctx, num, den, a);
    return mk2(g, MD_MUL, a->rows, a->cols, md_num_si(g->ctx, num, den), a);
}

static md_expr *g_add(gen *g, md_expr *a, md_expr *b)
{
    if (!g->raw) return md_add2(g->ctx, a, b);
    return mk2(g, MD_ADD, a->rows, a->cols, a, b);
}

static md_expr *g_sub(gen *g, md_expr *a, md_expr *b)
{
    if (!g->raw) return md_sub(g->ctx, a, b);
    return g_add(g, a, g_scale(g, -1, 1, b));
}

static md_expr *g_mul(gen *g, md_expr *a, md_expr *b)
{
    if (!g->raw) return md_mul2(g->ctx, a, b);
    /* the raw contract: scalar factors first, then the chain */
    if (md_is_scalar(b) && !md_is_scalar(a)) return mk2(g, MD_MUL, a->rows, a->cols, b, a);
    if (md_is_scalar(a)) return mk2(g, MD_MUL, b->rows, b->cols, a, b);
    return mk2(g, MD_MUL, a->rows, b->cols, a, b);
}

static md_expr *g_had(gen *g, md_expr *a, md_expr *b)
{
    if (!g->raw) return md_had2(g->ctx, a, b);
    if (md_is_scalar(a) || md_is_scalar(b)) return g_mul(g, a, b);
    return mk2(g, MD_HAD, a->rows, a->cols, a, b);
}

static md_expr *g_pow(gen *g, md_expr *a, long num, unsigned long den)
{
    if (!g->raw) return md_pow_si(g->ctx, a, num, den);
    return mk2(g, MD_POW, a->rows, a->cols, a, md_num_si(g->ctx, num, den));
}

static md_expr *g_mpow(gen *g, md_expr *a, int k)
{
    if (!g->raw) return k == -1 && chance(g, 50) ? md_inv(g->ctx, a) : md_mpow(g->ctx, a, k);
    if (k == -1) (void)chance(g, 50);   /* same random stream as above */
    return mk1(g, MD_MPOW, a->rows, a->cols, k, a);
}

static md_expr *g_trans(gen *g, md_expr *a)
{
    if (!g->raw) return md_trans(g->ctx, a);
    return mk1(g, MD_TRANS, a->cols, a->rows, 0, a);
}

static md_expr *g_func(gen *g, md_fn fn, md_expr *a)
{
    if (!g->raw) return md_func(g->ctx, fn, a);
    return mk1(g, MD_FUNC, a->rows, a->cols, (int)fn, a);
}

static md_expr *g_unary(gen *g, md_kind k, md_expr *a)
{
    if (!g->raw) return md_unary(g->ctx, k, a);
    int r = MD_DIM_ONE, c = MD_DIM_ONE;
    if (k == MD_DIAGM) r = c = a->rows;
    if (k == MD_DIAGV || k == MD_SOFTMAX) r = a->rows;
    return mk1(g, k, r, c, 0, a);
}

/* ---- the generator ---------------------------------------------------- */

static md_expr *gen_expr(gen *g, int r, int c, int depth);

static md_expr *gen_const(gen *g, int r, int c)
{
    if (is_one(r) && is_one(c)) {
        long p = rn(g, 7) - 3;
        unsigned long q = 1 + (unsigned long)rn(g, 3);
        if (p == 0 && chance(g, 70)) p = 2;
        return md_num_si(g->ctx, p, q);
    }
    int k = rn(g, 100);
    if (k < 2) return md_zero(g->ctx, r, c);
    if (r == c && k < 50) return md_eye(g->ctx, r);
    md_expr *o = md_ones(g->ctx, r, c);
    if (chance(g, 40)) {
        long p = rn(g, 5) - 2;
        o = g_scale(g, p ? p : 3, 1 + (unsigned long)rn(g, 2), o);
    }
    return o;
}

static md_expr *leaf(gen *g, int r, int c)
{
    int cand[2 * MAXVARS], trans[2 * MAXVARS], n = 0;
    for (int i = 0; i < g->nvars; i++) {
        const md_symbol *s = &g->ctx->syms[g->sym[i]];
        if (s->rows == r && s->cols == c) cand[n] = i, trans[n++] = 0;
        if (s->rows == c && s->cols == r && r == c && !is_one(r)) cand[n] = i, trans[n++] = 1;
        else if (s->rows == c && s->cols == r && !(is_one(r) && is_one(c))) cand[n] = i, trans[n++] = 1;
    }
    if (n == 0 || chance(g, 15)) return gen_const(g, r, c);
    int k = rn(g, n);
    md_expr *v = md_sym(g->ctx, g->sym[cand[k]]);
    return trans[k] ? g_trans(g, v) : v;
}

/* Something provably positive, of shape r x c. */
static md_expr *gen_pos(gen *g, int r, int c, int depth)
{
    md_expr *x = gen_expr(g, r, c, depth);
    switch (rn(g, 3)) {
    case 0: return g_func(g, MD_FN_EXP, x);
    case 1: return g_add(g, g_pow(g, x, 2, 1), md_ones(g->ctx, r, c));
    default: return g_add(g, g_func(g, MD_FN_EXP, x), md_ones(g->ctx, r, c));
    }
}

/*
 * Something symmetric positive definite and well conditioned:
 * M*M'/(norm2(M)^2 + 1) + eye, whose eigenvalues lie in [1, 2) whatever
 * the size of M.  Without the scaling, a big M (det(...)^2 * C.^3 ...)
 * makes M*M' + eye so ill conditioned that logdet and inv lose most of
 * their digits, and two equivalent forms (raw and simplified) then differ
 * far beyond 1e-9 for no fault of the simplifier.
 */
static md_expr *gen_spd(gen *g, int n, int depth)
{
    int k = rdim(g, 1);
    md_expr *m = gen_expr(g, n, k, depth);
    md_expr *mm = g_mul(g, m, g_trans(g, m));
    md_expr *s = g_add(g, g_pow(g, g_unary(g, MD_NORM2, m), 2, 1), md_num_si(g->ctx, 1, 1));
    mm = g_mul(g, g_pow(g, s, -1, 1), mm);
    return g_add(g, mm, md_eye(g->ctx, n));
}

/* Every elementwise function of the table (md_builtins.def), its
   argument kept inside the function's domain: positive forms under log
   and sqrt, tanh(x)/2 under arcsin, arccos and tan; exp sometimes of a
   bounded argument. */
static md_expr *gen_func(gen *g, int r, int c, int d)
{
    md_fn fn = (md_fn)rn(g, MD_FN_GENERIC);
    switch (md_fns[fn].domain) {
    case MD_DOM_POS: return g_func(g, fn, gen_pos(g, r, c, d));
    case MD_DOM_UNIT: return g_func(g, fn, g_scale(g, 1, 2, g_func(g, MD_FN_TANH, gen_expr(g, r, c, d))));
    case MD_DOM_ANY:
    case MD_DOM_SPD: break;
    }
    if (fn == MD_FN_EXP && chance(g, 30))
        return g_func(g, fn, g_func(g, chance(g, 50) ? MD_FN_TANH : MD_FN_SIN, gen_expr(g, r, c, d)));
    return g_func(g, fn, gen_expr(g, r, c, d));
}

static md_expr *gen_pow(gen *g, int r, int c, int d)
{
    switch (rn(g, 7)) {
    case 0:
    case 1: return g_pow(g, gen_expr(g, r, c, d), 2, 1);
    case 2: return g_pow(g, gen_expr(g, r, c, d), 3, 1);
    case 3: return g_pow(g, gen_pos(g, r, c, d), -1, 1);
    case 4: return g_pow(g, gen_pos(g, r, c, d), 1, 2);
    case 5: return g_pow(g, gen_pos(g, r, c, d), -1, 2);
    default: return g_pow(g, gen_pos(g, r, c, d), 3, 2);
    }
}

/*
 * A square matrix that is invertible and well conditioned for all data:
 * X/(norm2(X) + 1) + 3*eye (singular values in (2, 4)).  det only gets
 * arguments like this or like gen_spd.  A generic square expression is
 * often singular for every value of its variables (x*y', B'*C' when
 * n < m, matrix(1)*E'), and there the gradient det(X)*inv(X)' that the
 * differential method gives cannot be evaluated although det is smooth:
 * a known limit of the det rule (see the report), which a random test
 * should not trip over on every tenth case.
 */
static md_expr *gen_regular(gen *g, int n, int d)
{
    md_expr *x = gen_expr(g, n, n, d);
    md_expr *s = g_add(g, g_unary(g, MD_NORM2, x), md_num_si(g->ctx, 1, 1));
    x = g_mul(g, g_pow(g, s, -1, 1), x);
    return g_add(g, x, g_scale(g, 3, 1, md_eye(g->ctx, n)));
}

/* A scalar made from a non-scalar: sum, norms, trace, determinants. */
static md_expr *gen_reduce(gen *g, int d)
{
    int k = rn(g, 10), n = rdim(g, 0);
    switch (k) {
    case 9: return g_unary(g, MD_LSE, gen_expr(g, rdim(g, 0), MD_DIM_ONE, d));
    case 0:
    case 1: return g_unary(g, MD_SUM, gen_expr(g, rdim(g, 1), rdim(g, 1), d));
    case 2: return g_unary(g, MD_NORM1, gen_expr(g, rdim(g, 1), rdim(g, 1), d));
    case 3:
    case 4: return g_unary(g, MD_NORM2, gen_expr(g, rdim(g, 1), rdim(g, 1), d));
    case 5: return g_unary(g, MD_TR, gen_expr(g, n, n, d));
    case 6: return g_unary(g, MD_DET, gen_regular(g, n, d));
    case 7: return g_unary(g, MD_LOGDET, gen_spd(g, n, d));
    default: return g_unary(g, MD_DET, gen_spd(g, n, d));
    }
}

static md_expr *pool_pick(gen *g, int r, int c)
{
    int idx[POOLCAP], n = 0;
    for (int i = 0; i < g->npool; i++)
        if ((g->pool[i].r == r && g->pool[i].c == c) || (g->pool[i].r == c && g->pool[i].c == r))
            idx[n++] = i;
    if (n == 0) return NULL;
    pool_item *p = &g->pool[idx[rn(g, n)]];
    if (p->r == r && p->c == c && (r != c || chance(g, 70))) return p->e;
    return g_trans(g, p->e);
}

static md_expr *gen_node(gen *g, int r, int c, int d)
{
    int scalar = is_one(r) && is_one(c), square = r == c && !is_one(r);
    for (;;) {
        switch (rn(g, 16)) {
        case 0:
        case 1: return g_add(g, gen_expr(g, r, c, d), gen_expr(g, r, c, d));
        case 2: return g_sub(g, gen_expr(g, r, c, d), gen_expr(g, r, c, d));
        case 3: {
            long p = rn(g, 7) - 3;
            return g_scale(g, p ? p : -1, 1 + (unsigned long)rn(g, 3), gen_expr(g, r, c, d));
        }
        case 4:
        case 5: {
            int k = rdim(g, 1);
            md_expr *x = gen_expr(g, r, k, d);
            return g_mul(g, x, gen_expr(g, k, c, d));
        }
        case 6: {
            md_expr *s = gen_expr(g, MD_DIM_ONE, MD_DIM_ONE, d);
            md_expr *m = gen_expr(g, r, c, d);
            return chance(g, 50) ? g_mul(g, s, m) : g_mul(g, m, s);
        }
        case 7: {
            md_expr *x = gen_expr(g, r, c, d);
            if (chance(g, 20)) return g_had(g, x, gen_expr(g, MD_DIM_ONE, MD_DIM_ONE, d));
            return g_had(g, x, gen_expr(g, r, c, d));
        }
        case 8: return g_trans(g, gen_expr(g, c, r, d));
        case 9: return gen_pow(g, r, c, d);
        case 10:
        case 11: return gen_func(g, r, c, d);
        case 12:
            if (scalar) return gen_reduce(g, d);
            if (!square) break;
            switch (rn(g, 4)) {
            case 0: return g_mpow(g, gen_expr(g, r, r, d), 2);
            case 1: return g_mpow(g, gen_spd(g, r, d), -2);
            default: return g_mpow(g, gen_spd(g, r, d), -1);
            }
        case 13:
            if (scalar) return gen_reduce(g, d);
            if (square) return g_unary(g, MD_DIAGM, gen_expr(g, r, MD_DIM_ONE, d));
            if (is_one(c)) {
                if (chance(g, 30)) return g_unary(g, MD_SOFTMAX, gen_expr(g, r, MD_DIM_ONE, d));
                return g_unary(g, MD_DIAGV, gen_expr(g, r, r, d));
            }
            break;
        case 14:
            /* neutral elements inside products and sums */
            if (square && chance(g, 50))
                return g_mul(g, md_eye(g->ctx, r), gen_expr(g, r, c, d));
            return g_add(g, gen_expr(g, r, c, d), gen_const(g, r, c));
        default:
            if (scalar) return gen_reduce(g, d);
            break;
        }
    }
}

static md_expr *gen_expr(gen *g, int r, int c, int depth)
{
    if (depth <= 0 || g->budget <= 0 || chance(g, 8)) return leaf(g, r, c);
    if (chance(g, 12)) {
        md_expr *e = pool_pick(g, r, c);
        if (e) return e;
    }
    g->budget--;
    md_expr *e = gen_node(g, r, c, depth - 1);
    if (g->npool < POOLCAP) g->pool[g->npool++] = (pool_item){e, r, c};
    return e;
}

/* ---- well-formedness: the contracts of md_expr.h ---------------------- */

/*
 * Returns NULL when every node of e keeps the shape contract of its kind
 * (md_expr.h), or the first offending node, with *why set.  The evaluator
 * aborts on a malformed graph, so everything is checked here first.
 */
/* the canonical form of md_simplify.h too (checked on what the
   constructors build, not on the generator's raw trees) */
static int wf_canonical;

static md_expr *wf_walk(md_ctx *ctx, md_expr *e, char *seen, const char **why)
{
    if (seen[e->id]) return NULL;
    seen[e->id] = 1;
    for (int i = 0; i < e->nargs; i++) {
        md_expr *bad = wf_walk(ctx, e->args[i], seen, why);
        if (bad) return bad;
    }
    int r = e->rows, c = e->cols, one = MD_DIM_ONE;
    md_expr *a = e->nargs ? e->args[0] : NULL;
#define WF(cond, msg)      \
    do {                   \
        if (!(cond)) {     \
            *why = msg;    \
            return e;      \
        }                  \
    } while (0)
    switch (e->kind) {
    case MD_NUM: WF(r == one && c == one, "a number that is not 1x1"); break;
    case MD_SYM:
    case MD_DIFF:
        WF(r == ctx->syms[e->ival].rows && c == ctx->syms[e->ival].cols, "a variable of the wrong shape");
        break;
    case MD_ZERO:
    case MD_ONES: WF(!(r == one && c == one), "a 1x1 zero or ones node"); break;
    case MD_EYE: WF(r == c && r != one, "eye that is not square or is 1x1"); break;
    case MD_ADD:
    case MD_HAD:
        WF(e->nargs >= 2, "a sum or .* with fewer than 2 arguments");
        for (int i = 0; i < e->nargs; i++)
            WF(e->args[i]->rows == r && e->args[i]->cols == c, "a sum or .* argument of another shape");
        break;
    case MD_MUL: {
        WF(e->nargs >= 2, "a product with fewer than 2 factors");
        for (int i = 1; i < e->nargs && wf_canonical; i++)
            WF(e->args[i]->kind != MD_NUM, "a product with a number after its first factor");
        for (int i = 0; i < e->nargs && wf_canonical; i++)
            WF(e->args[i]->kind != MD_MUL || e->args[i]->args[0]->kind != MD_NUM,
               "a product with a factor that carries its own coefficient");
        int i = 0, cr = -1, cc = -1;
        while (i < e->nargs && md_is_scalar(e->args[i])) i++;
        for (; i < e->nargs; i++) {
            md_expr *x = e->args[i];
            WF(!md_is_scalar(x), "a 1x1 factor after the matrix chain started");
            if (cr < 0) cr = x->rows;
            else WF(cc == x->rows, "inner dimensions of the chain differ");
            cc = x->cols;
        }
        if (cr < 0) cr = cc = one;
        WF(cr == r && cc == c, "the chain's product has another shape than the node");
        break;
    }
    case MD_POW:
        WF((a->rows == r && a->cols == c) || md_is_scalar(a), "a power whose base has another shape");
        WF((e->args[1]->rows == r && e->args[1]->cols == c) || md_is_scalar(e->args[1]),
           "a power whose exponent has another shape");
        break;
    case MD_MPOW:
        WF(r == c && a->rows == r && a->cols == c, "a matrix power of a non-square or differently shaped base");
        WF(e->ival != 0 && e->ival != 1, "a matrix power 0 or 1");
        break;
    case MD_TRANS: WF(a->rows == c && a->cols == r, "a transpose of the wrong shape"); break;
    case MD_FUNC: WF(a->rows == r && a->cols == c, "a function of another shape"); break;
    case MD_SUM:
    case MD_NORM1:
    case MD_NORM2: WF(r == one && c == one, "a reduction that is not 1x1"); break;
    case MD_TR:
    case MD_DET:
    case MD_LOGDET: WF(r == one && c == one && a->rows == a->cols, "tr/det/logdet of a non-square"); break;
    case MD_DIAGM: WF(a->cols == one && r == a->rows && c == a->rows, "diag(vector) of the wrong shape"); break;
    case MD_SOFTMAX: WF(a->cols == one && a->rows != one && r == a->rows && c == one, "softmax of the wrong shape"); break;
    case MD_LSE: WF(a->cols == one && a->rows != one && r == one && c == one, "logsumexp of the wrong shape"); break;
    case MD_DIAGV: WF(a->rows == a->cols && r == a->rows && c == one, "diag(matrix) of the wrong shape"); break;
    case MD_VEC:
        WF(c == one && r == md_ctx_dim_mul(ctx, a->rows, a->cols) && a->rows != one && a->cols != one,
           "vec of the wrong shape, or of a vector (its own vec)");
        break;
    case MD_KRON:
        WF(r == md_ctx_dim_mul(ctx, a->rows, e->args[1]->rows) && c == md_ctx_dim_mul(ctx, a->cols, e->args[1]->cols),
           "kron of the wrong shape");
        break;
    case MD_COMM:
        WF(r == c && r == md_ctx_dim_mul(ctx, e->ival, e->aux) && e->ival != one && e->aux != one,
           "a commutation matrix of the wrong size, or of a vector (eye)");
        break;
    default: WF(0, "an unknown kind");
    }
#undef WF
    return NULL;
}

static const char *const kind_names[MD_NKINDS] = {
    "NUM", "SYM", "DIFF", "ZERO", "ONES", "EYE", "ADD", "MUL", "HAD", "POW", "MPOW",
    "TRANS", "FUNC", "SUM", "NORM1", "NORM2", "TR", "DET", "LOGDET", "DIAGM", "DIAGV", "VEC", "KRON", "COMM", "SOFTMAX", "LSE"};

/* The tree of e, one node a line with its kind and shape (verbose mode). */
static void dump_tree(md_ctx *ctx, md_expr *e, int indent)
{
    char *t = md_expr_to_string(ctx, e);
    printf("%*s%s %s x %s", indent, "", kind_names[e->kind], ctx->dims[e->rows].name, ctx->dims[e->cols].name);
    if (e->kind == MD_MPOW || e->kind == MD_FUNC) printf(" [%d]", e->ival);
    printf(": %s\n", t);
    free(t);
    for (int i = 0; i < e->nargs; i++) dump_tree(ctx, e->args[i], indent + 2);
}

/* NULL if e is well formed, else a malloc'd description of the first bad node. */
static char *wf_check(md_ctx *ctx, md_expr *e)
{
    char *seen = md_xcalloc(ctx->nnodes, 1);
    const char *why = NULL;
    md_expr *bad = wf_walk(ctx, e, seen, &why);
    free(seen);
    if (!bad) return NULL;
    md_buf b = {0};
    char *t = md_expr_to_string(ctx, bad);
    md_buf_printf(&b, "%s: %s node %s x %s: %s", why, kind_names[bad->kind], ctx->dims[bad->rows].name,
                  ctx->dims[bad->cols].name, t);
    for (int i = 0; i < bad->nargs; i++)
        md_buf_printf(&b, "\n      arg %d: %s x %s", i, ctx->dims[bad->args[i]->rows].name,
                      ctx->dims[bad->args[i]->cols].name);
    free(t);
    return md_buf_take(&b);
}

/* ---- helpers: values, symbols, text ----------------------------------- */

/* Normwise relative difference of two values; INFINITY for shape clashes. */
static double mat_diff(const md_mat *u, const md_mat *v)
{
    if (u->rows != v->rows || u->cols != v->cols) return INFINITY;
    double scale = 1.0, err = 0.0;
    for (long i = 0; i < u->rows * u->cols; i++) {
        scale = fmax(scale, fmax(fabs(u->v[i]), fabs(v->v[i])));
        err = fmax(err, fabs(u->v[i] - v->v[i]));
    }
    return err / scale;
}

static void collect_syms(md_expr *e, char *seen, int *used)
{
    if (seen[e->id]) return;
    seen[e->id] = 1;
    if (e->kind == MD_SYM) used[e->ival] = 1;
    for (int i = 0; i < e->nargs; i++) collect_syms(e->args[i], seen, used);
}

static void decls(md_ctx *ctx, md_buf *b)
{
    static const char *const kw[] = {"scalar", "vector", "matrix", "symmetric"};
    for (int i = 0; i < ctx->nsyms; i++) {
        const md_symbol *s = &ctx->syms[i];
        md_buf_printf(b, "%s %s", kw[s->kind], s->name);
        if (s->kind == MD_SYM_VECTOR || s->kind == MD_SYM_SYMMETRIC)
            md_buf_printf(b, "(%s)", ctx->dims[s->rows].name);
        else if (s->kind == MD_SYM_MATRIX)
            md_buf_printf(b, "(%s, %s)", ctx->dims[s->rows].name, ctx->dims[s->cols].name);
        md_buf_putc(b, '\n');
    }
}

static char *shape_str(md_ctx *ctx, md_expr *e)
{
    md_buf b = {0};
    md_buf_printf(&b, "%s x %s", ctx->dims[e->rows].name, ctx->dims[e->cols].name);
    return md_buf_take(&b);
}

/* ---- one case --------------------------------------------------------- */

typedef struct tally {
    long passed, failed;
    long skip_eval2, skip_eval3, skip_check, kinks, coarse, ambiguous, chaotic;
    long jacobians, hessians;   /* P6, P7 checks that ran */
    long hvps;                  /* P8 */
} tally;

typedef struct kase {
    unsigned long seed;
    md_ctx *ctx;
    char *prog;          /* declarations + the printed e */
    int failed;
    tally *t;
} kase;

static void fail(kase *k, const char *prop, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(kase *k, const char *prop, const char *fmt, ...)
{
    if (!k->failed) printf("FAIL seed %lu: program:\n%s\n", k->seed, k->prog);
    k->failed = 1;
    printf("  %s: ", prop);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/*
 * Matches the dimensions of e2 (another context) with those of e node by
 * node while the two graphs have the same structure: map[d2] = d1.
 * Returns -1 when a dimension would have to match two different ones.
 */
static int map_dims(md_expr *e1, md_expr *e2, int *map, char *seen2)
{
    if (seen2[e2->id]) return 0;
    seen2[e2->id] = 1;
    int d1[2] = {e1->rows, e1->cols}, d2[2] = {e2->rows, e2->cols};
    for (int i = 0; i < 2; i++) {
        if ((d1[i] == MD_DIM_ONE) != (d2[i] == MD_DIM_ONE)) return -1;
        if (map[d2[i]] < 0) map[d2[i]] = d1[i];
        else if (map[d2[i]] != d1[i]) return -1;
    }
    if (e1->kind != e2->kind || e1->nargs != e2->nargs) return 0;
    for (int i = 0; i < e1->nargs; i++)
        if (map_dims(e1->args[i], e2->args[i], map, seen2) < 0) return -1;
    return 0;
}

static int find_dim(const md_ctx *ctx, const char *name)
{
    for (int d = 0; d < ctx->ndims; d++)
        if (strcmp(ctx->dims[d].name, name) == 0) return d;
    return -1;
}

/* Does the program, read back, have a dimension the context has not? */
/* The typechecker's message for a constant whose size nothing fixes. */
static int is_size_error(const char *msg)
{
    return msg && strstr(msg, "cannot be inferred") != NULL;
}

static int text_leaves_size_free(md_ctx *ctx, const char *text)
{
    char *ebuf = NULL;
    size_t elen = 0;
    FILE *errf = open_memstream(&ebuf, &elen);
    md_source src;
    md_source_init(&src, "<property>", text, strlen(text));
    src.err = errf;
    md_ctx *c2 = md_ctx_new();
    md_typed t = {0};
    md_program *prog = md_parse(&src);
    int fresh = 0;
    if (prog && md_typecheck(prog, c2, &t) == 0) {
        for (int d = 1; d < c2->ndims; d++)
            if (find_dim(ctx, c2->dims[d].name) < 0) fresh = 1;
    }
    fclose(errf);
    if (is_size_error(ebuf)) fresh = 1;
    free(ebuf);
    md_typed_free(&t);
    md_program_free(prog);
    md_ctx_free(c2);
    return fresh;
}

/* P2: parse(print(e)) prints as e, and evaluates to e's value. */
static void prop_roundtrip(kase *k, md_expr *e, const char *etext)
{
    md_ctx *ctx = k->ctx;
    char *ebuf = NULL;
    size_t elen = 0;
    FILE *errf = open_memstream(&ebuf, &elen);
    md_source src;
    md_source_init(&src, "<property>", k->prog, strlen(k->prog));
    src.err = errf;
    md_ctx *c2 = md_ctx_new();
    md_typed t = {0};
    md_program *prog = md_parse(&src);
    int ok = prog && md_typecheck(prog, c2, &t) == 0;
    fclose(errf);
    if (!ok && is_size_error(ebuf)) {
        /* the text does not carry a constant's size (see below) */
        k->t->ambiguous++;
        goto out;
    }
    if (!ok) {
        fail(k, "P2 round trip", "the printed expression does not parse back:\n%s", ebuf);
        goto out;
    }
    /* A constant whose size nothing else in the text pins down (the k of
       matrix(1)*matrix(1), a vector(1) under sum(...) with no variable
       of its size) reads back with a fresh dimension: the text does not
       carry that size, so neither the printed form (which may depend on
       whether two sizes are equal) nor the value can be compared. */
    for (int d = 1; d < c2->ndims; d++)
        if (find_dim(ctx, c2->dims[d].name) < 0) {
            k->t->ambiguous++;
            if (verbose) printf("seed %lu: P2 skipped: the text leaves the size '%s' of a constant free\n",
                                k->seed, c2->dims[d].name);
            goto out;
        }
    char *text2 = md_expr_to_string(c2, t.f);
    if (strcmp(text2, etext) != 0)
        fail(k, "P2 round trip", "reparsed expression prints differently:\n    was  %s\n    now  %s",
             etext, text2);
    free(text2);

    char *bad = wf_check(c2, t.f);
    if (bad) {
        fail(k, "P2 round trip", "the reparsed expression is malformed: %s", bad);
        free(bad);
        goto out;
    }

    /* the values, on the same data */
    md_env env;
    if (md_env_random(ctx, e, k->seed, &env) < 0) {
        md_env_free(&env);
        k->t->skip_eval2++;
        goto out;
    }
    md_env env2 = {.ctx = c2};
    env2.dimsize = md_xcalloc((size_t)c2->ndims, sizeof(long));
    env2.val = md_xcalloc((size_t)c2->nsyms + 1, sizeof(md_mat));
    int mapped = 1;
    /* Dimensions correspond node by node; a printed constant (matrix(1),
       eye, ...) whose shape nothing in the text pins down gets a fresh
       name when reparsed, and this is the only way to know its size. */
    int *map = md_xmalloc((size_t)c2->ndims * sizeof *map);
    for (int d = 0; d < c2->ndims; d++) map[d] = -1;
    char *seen2 = md_xcalloc(c2->nnodes, 1);
    if (map_dims(e, t.f, map, seen2) < 0) {
        fail(k, "P2 round trip", "the reparsed expression has other shapes than the original");
        mapped = 0;
    }
    free(seen2);
    for (int d = 0; mapped && d < c2->ndims; d++) {
        int found = map[d];
        for (int d1 = 0; found < 0 && d1 < ctx->ndims; d1++)
            if (strcmp(ctx->dims[d1].name, c2->dims[d].name) == 0) found = d1;
        if (found < 0) {
            fail(k, "P2 round trip", "the reparsed expression has a dimension '%s' the original has not",
                 c2->dims[d].name);
            mapped = 0;
            break;
        }
        env2.dimsize[d] = env.dimsize[found];
    }
    free(map);
    for (int s = 0; mapped && s < c2->nsyms; s++) {
        int s1 = md_ctx_find_sym(ctx, c2->syms[s].name);
        if (s1 < 0) {
            fail(k, "P2 round trip", "the reparsed expression has a variable '%s' the original has not",
                 c2->syms[s].name);
            mapped = 0;
            break;
        }
        const md_mat *v = &env.val[s1];
        env2.val[s] = md_mat_new(v->rows, v->cols);
        memcpy(env2.val[s].v, v->v, (size_t)(v->rows * v->cols) * sizeof(double));
    }
    if (mapped) {
        md_mat u, w;
        int ru = md_eval(&env, e, &u);
        int rw = md_eval(&env2, t.f, &w);
        if (ru == 0 && rw == 0) {
            double err = mat_diff(&u, &w);
            if (!(err < 1e-9))
                fail(k, "P2 round trip", "values differ: relative error %.3g (%ldx%ld vs %ldx%ld)", err,
                     u.rows, u.cols, w.rows, w.cols);
        } else if (ru != rw) {
            fail(k, "P2 round trip", "the original %s but the reparsed one %s",
                 ru ? "cannot be evaluated" : "evaluates", rw ? "cannot" : "can");
        }
        if (ru == 0) md_mat_free(&u);
        if (rw == 0) md_mat_free(&w);
    }
    md_env_free(&env2);
    md_env_free(&env);
out:
    free(ebuf);
    md_typed_free(&t);
    md_program_free(prog);
    md_ctx_free(c2);
}

/* P3: idempotence and soundness of md_simplify. */
static void prop_simplify(kase *k, md_expr *e, md_expr *r)
{
    md_ctx *ctx = k->ctx;
    md_expr *s1 = md_simplify(ctx, r);
    md_expr *s2 = md_simplify(ctx, s1);
    if (s1 != s2) {
        char *a = md_expr_to_string(ctx, s1), *b = md_expr_to_string(ctx, s2);
        fail(k, "P3 idempotence", "simplify(simplify(r)) != simplify(r):\n    once   %s\n    twice  %s", a, b);
        free(a);
        free(b);
    }
    md_expr *se = md_simplify(ctx, e);
    if (se != e) {
        char *a = md_expr_to_string(ctx, e), *b = md_expr_to_string(ctx, se);
        fail(k, "P3 canonical", "simplify(e) != e for a constructor-built e:\n    e            %s\n    simplify(e)  %s",
             a, b);
        free(a);
        free(b);
    }
    if (s1 != e) {
        char *a = md_expr_to_string(ctx, e), *b = md_expr_to_string(ctx, s1), *c = md_expr_to_string(ctx, r);
        fail(k, "P3 raw vs constructors",
             "simplify(raw r) differs from the constructor-built e:\n    r            %s\n    e            %s\n    simplify(r)  %s",
             c, a, b);
        free(a);
        free(b);
        free(c);
    }

    char *bad = wf_check(ctx, s1);
    if (bad) {
        fail(k, "P3 soundness", "simplify(r) is malformed: %s", bad);
        free(bad);
        return;
    }
    md_env env;
    if (md_env_random(ctx, r, k->seed ^ 0x5151u, &env) < 0) {
        md_env_free(&env);
        k->t->skip_eval3++;
        return;
    }
    md_mat u, w;
    int ru = md_eval(&env, r, &u);
    int rw = md_eval(&env, s1, &w);
    if (ru == 0 && rw == 0) {
        double err = mat_diff(&u, &w);
        if (!(err < 1e-9)) {
            char *c = md_expr_to_string(ctx, r), *b = md_expr_to_string(ctx, s1);
            fail(k, "P3 soundness", "raw and simplified values differ: relative error %.3g\n    r            %s\n    simplify(r)  %s",
                 err, c, b);
            free(b);
            free(c);
        }
    } else if (ru == 0) {
        char *b = md_expr_to_string(ctx, s1);
        fail(k, "P3 soundness", "r evaluates but simplify(r) cannot be evaluated: %s", b);
        free(b);
    }
    if (ru == 0) md_mat_free(&u);
    if (rw == 0) md_mat_free(&w);
    md_env_free(&env);
}

/*
 * A second, more careful finite-difference check, run only when md_check
 * fails with a finite error.  md_check uses one step (h = 1e-3) and a
 * noise floor of 1e-8 (1 + |f|), but the rounding noise of a central
 * difference is about 1e-13 |f| / h, so it reports false failures when
 * |f| is much larger than the directional derivative (a + 10^9 fails
 * d/da), and its fixed step is too coarse for steep functions such as
 * exp(exp(...)).  Here the same data (md_env_random with the same seed)
 * and several steps are tried per direction; a direction passes when at
 * some step the Richardson difference agrees with G:D within 1e-6
 * relative plus the rounding noise of that step.  A wrong gradient is
 * off by the same amount at every step and still fails.
 * Returns 0 when every direction of every variable passes.
 */
static double eval_scalar_at(md_env *env, md_expr *f, int s, const md_mat *d, double t, int *ok)
{
    md_mat x = env->val[s], moved = md_mat_new(x.rows, x.cols), out;
    for (long i = 0; i < x.rows * x.cols; i++) moved.v[i] = x.v[i] + t * d->v[i];
    env->val[s] = moved;
    int rc = md_eval(env, f, &out);
    env->val[s] = x;
    md_mat_free(&moved);
    if (rc < 0) {
        *ok = 0;
        return 0.0;
    }
    double y = out.v[0];
    md_mat_free(&out);
    return y;
}

/*
 * Are f or its claimed gradients numerically chaotic at md_check's point?
 * When a relative change of 1e-12 in the data moves f by more than 1e-6
 * of its size, or a gradient by more than 1e-3 of its size (cos of
 * exp(det(...))^(3/2) ~ 1e52, where every digit of the argument is
 * rounding), no finite difference can say anything about the gradient.
 */
static int ill_conditioned(md_ctx *ctx, md_expr *f, int n, md_expr **grads, unsigned long seed)
{
    md_env env;
    if (md_env_random(ctx, f, seed, &env) < 0) {
        md_env_free(&env);
        return 0;
    }
    int m = n + 1, chaotic = 0;
    md_expr **es = md_xcalloc((size_t)m, sizeof *es);
    md_mat *v0 = md_xcalloc((size_t)m, sizeof *v0), *v1 = md_xcalloc((size_t)m, sizeof *v1);
    es[0] = f;
    for (int i = 0; i < n; i++) es[i + 1] = grads[i];
    if (md_eval_many(&env, m, es, v0) == 0) {
        uint64_t rng = seed ^ 0xC4A05ull;
        for (int s = 0; s < ctx->nsyms; s++) {
            md_mat *x = &env.val[s];
            for (long j = 0; j < x->rows * x->cols; j++)
                x->v[j] *= 1.0 + 1e-12 * ((double)(rnd(&rng) >> 11) * 0x1.0p-52 - 1.0);
            if (md_sym_is_symmetric(ctx, s))
                for (long c = 0; c < x->cols; c++)
                    for (long r = c + 1; r < x->rows; r++) x->v[r + c * x->rows] = x->v[c + r * x->rows];
        }
        if (md_eval_many(&env, m, es, v1) == 0) {
            for (int i = 0; i < m && !chaotic; i++)
                chaotic = !(mat_diff(&v0[i], &v1[i]) <= (i == 0 ? 1e-6 : 1e-3));
        } else {
            chaotic = 1;
        }
    }
    for (int i = 0; i < m; i++) {
        md_mat_free(&v0[i]);
        md_mat_free(&v1[i]);
    }
    free(v0);
    free(v1);
    free(es);
    md_env_free(&env);
    return chaotic;
}

/* The arguments of the nodes of f where f may fail to be differentiable. */
static void collect_kinks(md_expr *e, char *seen, md_expr ***v, int *n, int *cap)
{
    if (seen[e->id]) return;
    seen[e->id] = 1;
    int kink = e->kind == MD_NORM1 || e->kind == MD_NORM2 ||
               (e->kind == MD_FUNC && e->ival != MD_FN_GENERIC && (md_fns[e->ival].flags & MD_FNF_KINK));
    if (kink) {
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 16;
            *v = md_xrealloc(*v, (size_t)*cap * sizeof **v);
        }
        (*v)[(*n)++] = e;
    }
    for (int i = 0; i < e->nargs; i++) collect_kinks(e->args[i], seen, v, n, cap);
}

/*
 * Is md_check's point one where f is not differentiable: an argument of
 * abs, sign, relu, step or norm1 with an entry exactly 0, or an argument
 * of norm2 that is all zeros?  That happens by construction, not by bad
 * luck: relu(-matrix(1)) is 0 everywhere, and md_env_random draws a
 * variable under det as a symmetric matrix, so norm2(A - A') is 0.  The
 * gradient the differential method gives (A/norm2(A), ...) is then not
 * defined, and neither is the derivative.
 */
static int at_kink(md_ctx *ctx, md_expr *f, unsigned long seed)
{
    char *seen = md_xcalloc(ctx->nnodes, 1);
    md_expr **v = NULL;
    int n = 0, cap = 0, kink = 0;
    collect_kinks(f, seen, &v, &n, &cap);
    free(seen);
    md_env env;
    if (n > 0 && md_env_random(ctx, f, seed, &env) == 0) {
        for (int i = 0; i < n && !kink; i++) {
            md_mat a;
            if (md_eval(&env, v[i]->args[0], &a) < 0) continue;
            long len = a.rows * a.cols, zeros = 0;
            for (long j = 0; j < len; j++) zeros += a.v[j] == 0.0;
            kink = v[i]->kind == MD_NORM2 ? zeros == len : zeros > 0;
            md_mat_free(&a);
        }
        md_env_free(&env);
    } else if (n > 0) {
        md_env_free(&env);
    }
    free(v);
    return kink;
}

static int confirm_gradient(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_expr **grads,
                            unsigned long seed)
{
    md_env env;
    if (md_env_random(ctx, f, seed, &env) < 0) {
        md_env_free(&env);
        return 1;
    }
    md_mat *g = md_xcalloc((size_t)n + 1, sizeof *g);
    int bad = md_eval_many(&env, n, grads, g) < 0;
    uint64_t rng = seed ^ 0xFEEDull;
    for (int i = 0; i < n && !bad; i++) {
        int s = wrt[i];
        md_mat *x = &env.val[s];
        long len = x->rows * x->cols;
        double xmax = 1.0;
        for (long j = 0; j < len; j++) xmax = fmax(xmax, fabs(x->v[j]));
        md_mat d = md_mat_new(x->rows, x->cols);
        for (int dir = 0; dir < 4 && !bad; dir++) {
            for (long j = 0; j < len; j++) d.v[j] = (double)(rnd(&rng) >> 11) * 0x1.0p-52 - 1.0;
            if (md_sym_is_symmetric(ctx, s))
                for (long c = 0; c < d.cols; c++)
                    for (long r = c + 1; r < d.rows; r++) d.v[r + c * d.rows] = d.v[c + r * d.rows];
            double an = 0.0;
            for (long j = 0; j < len; j++) an += g[i].v[j] * d.v[j];
            int pass = 0;
            for (double h = 1e-2 * xmax; h > 1e-10 * xmax && !pass; h /= 10) {
                int ok = 1;
                double fp = eval_scalar_at(&env, f, s, &d, h, &ok), fm = eval_scalar_at(&env, f, s, &d, -h, &ok);
                double fp2 = eval_scalar_at(&env, f, s, &d, h / 2, &ok), fm2 = eval_scalar_at(&env, f, s, &d, -h / 2, &ok);
                if (!ok) continue;
                double fd = (4 * (fp2 - fm2) / h - (fp - fm) / (2 * h)) / 3;
                double fmag = fmax(fmax(fabs(fp), fabs(fm)), fmax(fabs(fp2), fabs(fm2)));
                double noise = 1e-13 * (1.0 + fmag) / h;
                pass = fabs(fd - an) <= 1e-6 * fmax(fabs(fd), fabs(an)) + noise;
                if (verbose)
                    printf("  careful d/d%s dir %d h %.1e: fd %.17g G:D %.17g noise %.3g%s\n", ctx->syms[s].name,
                           dir, h, fd, an, noise, pass ? " ok" : "");
            }
            if (!pass) bad = 1;
        }
        md_mat_free(&d);
    }
    for (int i = 0; i < n; i++) md_mat_free(&g[i]);
    free(g);
    md_env_free(&env);
    return bad;
}

static void collect_exps(md_expr *e, char *seen, md_expr ***v, int *n, int *cap)
{
    if (seen[e->id]) return;
    seen[e->id] = 1;
    if (e->kind == MD_FUNC && e->ival == MD_FN_EXP) {
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 16;
            *v = md_xrealloc(*v, (size_t)*cap * sizeof **v);
        }
        (*v)[(*n)++] = e;
    }
    for (int i = 0; i < e->nargs; i++) collect_exps(e->args[i], seen, v, n, cap);
}

/*
 * Does f work at the edge of the double range at md_check's point: |f|
 * above 1e100, or some exp(...) in f above 1e100 or below 1e-100?  Then a
 * correct gradient may overflow or underflow where f does not
 * (norm2(w - sqrt(exp(X)))^2 has exp(X)./sqrt(exp(X)) in its gradient,
 * 0/0 once exp(X) underflows), and "cannot be evaluated" says nothing
 * about its correctness.
 */
static int huge_value(md_ctx *ctx, md_expr *f, unsigned long seed)
{
    char *seen = md_xcalloc(ctx->nnodes, 1);
    md_expr **v = NULL;
    int n = 0, cap = 0, edge = 0;
    collect_exps(f, seen, &v, &n, &cap);
    free(seen);
    md_env env;
    if (md_env_random(ctx, f, seed, &env) == 0) {
        md_mat m;
        if (md_eval(&env, f, &m) == 0) {
            edge = fabs(m.v[0]) > 1e100;
            md_mat_free(&m);
        }
        for (int i = 0; i < n && !edge; i++) {
            if (md_eval(&env, v[i], &m) < 0) continue;
            for (long j = 0; j < m.rows * m.cols; j++) edge |= m.v[j] > 1e100 || m.v[j] < 1e-100;
            md_mat_free(&m);
        }
    }
    md_env_free(&env);
    free(v);
    return edge;
}

enum { P4_PASS, P4_SKIP, P4_KINK, P4_COARSE, P4_CHAOTIC, P4_FAIL };

/* md_check at one seed, and when it fails, why. */
static int p4_verdict(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_expr **grads,
                      unsigned long seed, md_check_result *res, FILE *errf)
{
    int rc = md_check(ctx, f, n, wrt, grads, seed, 1e-6, res, errf);
    if (rc < 0) return P4_SKIP;
    if (rc == 0) return P4_PASS;
    if (at_kink(ctx, f, seed)) return P4_KINK;
    int finite = 1;
    for (int i = 0; i < n; i++) finite &= isfinite(res[i].worst_rel_err) != 0;
    if (finite && confirm_gradient(ctx, f, n, wrt, grads, seed) == 0) return P4_COARSE;
    if (finite && ill_conditioned(ctx, f, n, grads, seed)) return P4_CHAOTIC;
    if (!finite && huge_value(ctx, f, seed)) return P4_CHAOTIC;
    return P4_FAIL;
}

/* P5: the gradients printed as one program (temporaries shared, dX = ...
   lines), read back as a user would (md_readback), evaluate to the
   graph's gradients.  Constants whose size the plain text leaves open
   are printed with their sizes, as md_run does. */
static void prop_printed(kase *k, int n, const int *wrt, md_expr **grads, md_expr *f)
{
    md_ctx *ctx = k->ctx;
    char **names = md_xcalloc((size_t)n + 1, sizeof *names);
    for (int i = 0; i < n; i++) {
        md_buf b = {0};
        md_buf_printf(&b, "d%s", ctx->syms[wrt[i]].name);
        names[i] = md_buf_take(&b);
    }
    md_readback rb;
    md_buf text = {0};
    int opened = -1;
    for (unsigned flags = 0; flags <= MD_PRINT_SIZED && opened < 0; flags += MD_PRINT_SIZED) {
        md_buf_free(&text);
        decls(ctx, &text);
        md_print_program_ex(ctx, &text, n, grads, (const char *const *)names,
                            (const char *const *)names, flags);
        opened = md_readback_open(&rb, ctx, text.s, n, (const char *const *)names);
        if (opened < 0 && flags == 0) md_readback_close(&rb);
    }
    if (opened < 0) {
        fail(k, "P5 printed gradients", "the printed gradients %s:\n%s", rb.why, text.s);
    } else {
        md_env env;
        if (md_env_random(ctx, f, k->seed + 5, &env) == 0) {
            md_mat *a = md_xcalloc((size_t)n + 1, sizeof *a), *b = md_xcalloc((size_t)n + 1, sizeof *b);
            if (md_eval_many(&env, n, grads, a) == 0) {
                int rc = md_readback_eval(&rb, &env, n, b);
                if (rc != 0) {
                    fail(k, "P5 printed gradients", "the printed gradients cannot be evaluated (%s):\n%s",
                         rc == MD_EVAL_BUG ? md_eval_bug() : "outside the domain", text.s);
                } else {
                    for (int i = 0; i < n; i++) {
                        double e = mat_diff(&a[i], &b[i]);
                        if (!(e < 1e-9)) {
                            fail(k, "P5 printed gradients", "d%s printed evaluates to something else "
                                 "(relative %.3g):\n%s", ctx->syms[wrt[i]].name, e, text.s);
                            break;
                        }
                    }
                }
                for (int i = 0; i < n; i++) md_mat_free(&b[i]);
            }
            for (int i = 0; i < n; i++) md_mat_free(&a[i]);
            free(a);
            free(b);
        }
        md_env_free(&env);
    }
    md_readback_close(&rb);
    md_buf_free(&text);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* P4: symbolic gradients against finite differences. */
static void prop_gradient(kase *k, md_expr *f, const char *how)
{
    md_ctx *ctx = k->ctx;
    char *badf = wf_check(ctx, f);
    if (badf) {
        fail(k, "P4 gradient", "the function f (%s) is malformed: %s", how, badf);
        free(badf);
        return;
    }
    char *seen = md_xcalloc(ctx->nnodes, 1);
    int *used = md_xcalloc((size_t)ctx->nsyms, sizeof *used);
    collect_syms(f, seen, used);
    int n = 0;
    int *wrt = md_xcalloc((size_t)ctx->nsyms + 1, sizeof *wrt);
    for (int s = 0; s < ctx->nsyms; s++)
        if (used[s]) wrt[n++] = s;
    md_expr **grads = md_xcalloc((size_t)n + 1, sizeof *grads);
    md_check_result *res = md_xcalloc((size_t)n + 1, sizeof *res);
    for (int i = 0; i < n; i++) {
        grads[i] = md_gradient(ctx, f, wrt[i]);
        if (!grads[i]) {
            char *ft = md_expr_to_string(ctx, f);
            fail(k, "P4 gradient", "md_gradient returned NULL for d/d%s of f = %s", ctx->syms[wrt[i]].name, ft);
            free(ft);
            goto out;
        }
    }
    for (int i = 0; i < n; i++) {
        char *bad = wf_check(ctx, grads[i]);
        if (bad) {
            char *ft = md_expr_to_string(ctx, f);
            fail(k, "P4 gradient", "d/d%s of f = %s is malformed: %s", ctx->syms[wrt[i]].name, ft, bad);
            free(ft);
            free(bad);
            goto out;
        }
    }
    if (n > 0) prop_printed(k, n, wrt, grads, f);
    if (n > 0) {
        char *ebuf = NULL;
        size_t elen = 0;
        FILE *errf = open_memstream(&ebuf, &elen);
        int v = p4_verdict(ctx, f, n, wrt, grads, k->seed, res, errf);
        fclose(errf);
        if (verbose && *ebuf) printf("seed %lu: md_check says: %s", k->seed, ebuf);
        if (v == P4_SKIP) {
            k->t->skip_check++;
        } else if (v == P4_KINK) {
            k->t->kinks++;
            if (verbose) printf("seed %lu: P4: f is not differentiable at the chosen point\n", k->seed);
        } else if (v == P4_CHAOTIC) {
            k->t->chaotic++;
            if (verbose) printf("seed %lu: P4: f is numerically chaotic at the chosen point\n", k->seed);
        } else if (v == P4_COARSE) {
            k->t->coarse++;
            if (verbose) printf("seed %lu: P4: md_check failed but the careful check passes\n", k->seed);
        } else if (v == P4_FAIL) {
            char *ft = md_expr_to_string(ctx, f);
            md_buf b = {0};
            for (int i = 0; i < n; i++) {
                if (res[i].ok) continue;
                char *gt = md_expr_to_string(ctx, grads[i]);
                md_buf_printf(&b, "\n    d/d%s (rel err %.3g) = %s", ctx->syms[wrt[i]].name,
                              res[i].worst_rel_err, gt);
                free(gt);
            }
            fail(k, "P4 gradient", "finite differences disagree for f = %s (%s)%s%s%s", ft, how,
                 b.s ? b.s : "", *ebuf ? "\n    " : "", ebuf);
            md_buf_free(&b);
            free(ft);
        }
        free(ebuf);
    }
out:
    free(res);
    free(grads);
    free(wrt);
    free(used);
    free(seen);
}

/* ---- P6, P7: Jacobians and Hessians ------------------------------------ */

typedef struct jac_arg {
    md_expr **J;         /* d vec(e)/d vec(X_i)' */
    const int *wrt;
    int wsym;            /* the weight w */
} jac_arg;

/* The gradient of w'vec(e) by X_i: J_i'w, which is vec of that gradient,
   so X_i's shape with the same numbers. */
static int jac_ge(void *arg, const md_env *env, int n, md_mat *out)
{
    jac_arg *ja = arg;
    md_mat *J = md_xcalloc((size_t)n + 1, sizeof *J);
    int rc = md_eval_many(env, n, ja->J, J);
    if (rc < 0) {
        free(J);
        return rc;
    }
    const md_mat *w = &env->val[ja->wsym];
    for (int i = 0; i < n; i++) {
        const md_mat *x = &env->val[ja->wrt[i]];
        out[i] = md_mat_new(x->rows, x->cols);
        if (J[i].rows != w->rows || J[i].cols != x->rows * x->cols) rc = MD_EVAL_BUG;
        for (long c = 0; c < J[i].cols && rc == 0; c++) {
            long double a = 0;
            for (long r = 0; r < J[i].rows; r++) a += (long double)J[i].v[r + c * J[i].rows] * w->v[r];
            out[i].v[c] = (double)a;
        }
        md_mat_free(&J[i]);
    }
    free(J);
    return rc;
}

/* P6: d vec(e)/d vec(X)' for a non-scalar e, by every variable it uses,
   against directional differences of w'vec(e) for a random weight w. */
static void prop_jacobian(kase *k, md_expr *e)
{
    md_ctx *ctx = k->ctx;
    char *seen = md_xcalloc(ctx->nnodes, 1);
    int *used = md_xcalloc((size_t)ctx->nsyms + 1, sizeof *used);
    collect_syms(e, seen, used);
    free(seen);
    int n = 0;
    int *wrt = md_xcalloc((size_t)ctx->nsyms + 1, sizeof *wrt);
    for (int s = 0; s < ctx->nsyms; s++)
        if (used[s]) wrt[n++] = s;
    free(used);
    md_expr **J = md_xcalloc((size_t)n + 1, sizeof *J);
    for (int i = 0; i < n; i++) {
        J[i] = md_vec_jacobian(ctx, e, wrt[i]);
        char *bad = J[i] ? wf_check(ctx, J[i]) : NULL;
        if (!J[i] || bad) {
            char *et = md_expr_to_string(ctx, e);
            fail(k, "P6 Jacobian", "d vec(e)/d vec(%s)' of e = %s is %s", ctx->syms[wrt[i]].name, et,
                 bad ? bad : "NULL");
            free(et);
            free(bad);
            goto out;
        }
    }
    if (n > 0) {
        md_expr *ve = md_vec_of(ctx, e);
        int ws = md_ctx_add_sym(ctx, "%w", MD_SYM_VECTOR, ve->rows, MD_DIM_ONE);
        md_expr *phi = md_frob(ctx, md_sym(ctx, ws), ve);
        jac_arg ja = {J, wrt, ws};
        md_check_result *res = md_xcalloc((size_t)n + 1, sizeof *res);
        char *ebuf = NULL;
        size_t elen = 0;
        FILE *errf = open_memstream(&ebuf, &elen);
        int rc = md_check_with(ctx, phi, n, wrt, jac_ge, &ja, k->seed, 1e-6, res, errf);
        fclose(errf);
        k->t->jacobians += n;
        if (rc < 0) {
            k->t->skip_check++;
        } else if (rc > 0 && at_kink(ctx, phi, k->seed)) {
            k->t->kinks++;
        } else if (rc > 0) {
            md_buf b = {0};
            int real = 0;
            for (int i = 0; i < n; i++) {
                if (res[i].ok) continue;
                if (res[i].inconclusive) continue;
                real = 1;
                char *jt = md_expr_to_string(ctx, J[i]);
                md_buf_printf(&b, "\n    d/d%s (rel err %.3g) = %s", ctx->syms[wrt[i]].name, res[i].worst_rel_err, jt);
                free(jt);
            }
            if (real) {
                char *et = md_expr_to_string(ctx, e);
                fail(k, "P6 Jacobian", "finite differences of w'vec(e) disagree for e = %s%s%s%s", et,
                     b.s ? b.s : "", *ebuf ? "\n    " : "", ebuf);
                free(et);
            } else {
                k->t->chaotic++;
            }
            md_buf_free(&b);
        }
        free(ebuf);
        free(res);
    }
out:
    free(J);
    free(wrt);
}

/* P7: the Hessian of the scalar f by its first variable, u'Hv against
   mixed second differences of f. */
static int hess_ge(void *arg, const md_env *env, int n, md_mat *out) { return md_eval_many(env, n, arg, out); }

static void prop_hessian(kase *k, md_expr *f)
{
    md_ctx *ctx = k->ctx;
    char *seen = md_xcalloc(ctx->nnodes, 1);
    int *used = md_xcalloc((size_t)ctx->nsyms + 1, sizeof *used);
    collect_syms(f, seen, used);
    free(seen);
    int s = -1;
    for (int i = 0; i < ctx->nsyms && s < 0; i++)
        if (used[i]) s = i;
    free(used);
    if (s < 0) return;
    md_expr *H = md_hessian_block(ctx, f, s, s);
    char *bad = H ? wf_check(ctx, H) : NULL;
    if (!H || bad) {
        char *ft = md_expr_to_string(ctx, f);
        fail(k, "P7 Hessian", "the Hessian by %s of f = %s is %s", ctx->syms[s].name, ft, bad ? bad : "NULL");
        free(ft);
        free(bad);
        return;
    }
    md_check_result res;
    char *ebuf = NULL;
    size_t elen = 0;
    FILE *errf = open_memstream(&ebuf, &elen);
    int rc = md_check_hessian_with(ctx, f, 1, &s, hess_ge, &H, k->seed, 1e-6, &res, errf);
    fclose(errf);
    k->t->hessians++;
    if (rc < 0) {
        k->t->skip_check++;
    } else if (rc > 0 && at_kink(ctx, f, k->seed)) {
        k->t->kinks++;
    } else if (rc > 0 && res.inconclusive) {
        k->t->chaotic++;
    } else if (rc > 0) {
        char *ft = md_expr_to_string(ctx, f), *ht = md_expr_to_string(ctx, H);
        fail(k, "P7 Hessian", "second differences disagree for f = %s by %s (rel err %.3g): H = %s%s%s", ft,
             ctx->syms[s].name, res.worst_rel_err, ht, *ebuf ? "\n    " : "", ebuf);
        free(ft);
        free(ht);
    }
    free(ebuf);
}

/* P8: H v by md_hvp against the Hessian times vec(v), by f's first
   variable (adds the direction to the context: after P7, before P6). */
static void prop_hvp(kase *k, md_expr *f)
{
    md_ctx *ctx = k->ctx;
    char *seen = md_xcalloc(ctx->nnodes, 1);
    int *used = md_xcalloc((size_t)ctx->nsyms + 1, sizeof *used);
    collect_syms(f, seen, used);
    free(seen);
    int s = -1;
    for (int i = 0; i < ctx->nsyms && s < 0; i++)
        if (used[i]) s = i;
    free(used);
    if (s < 0) return;
    md_expr *G = md_gradient(ctx, f, s), *H = md_hessian_block(ctx, f, s, s);
    if (!G || !H) return;   /* P7 reports a missing Hessian */
    const md_symbol *x = &ctx->syms[s];
    int v = md_ctx_add_sym(ctx, "v_p8", x->kind, x->rows, x->cols);
    md_expr *Hv = md_hvp(ctx, G, 1, &s, &v);
    char *bad = wf_check(ctx, Hv);
    if (bad) {
        char *ft = md_expr_to_string(ctx, f);
        fail(k, "P8 Hessian-vector product", "H v by %s of f = %s is %s", x->name, ft, bad);
        free(ft);
        free(bad);
        return;
    }
    md_env env = {0};
    if (md_env_random(ctx, f, k->seed, &env) != 0) {
        k->t->skip_check++;
        return;
    }
    md_mat hv = {0}, h = {0};
    int erc = md_eval(&env, Hv, &hv) || md_eval(&env, H, &h);
    k->t->hvps++;
    if (!erc) {
        const md_mat *vv = &env.val[v];
        long na = hv.rows * hv.cols, nb = vv->rows * vv->cols;
        double d = 0, m = 0, scale = 0;
        for (long i = 0; i < na && h.rows * h.cols == na * nb; i++) {
            double acc = 0, mag = 0;
            for (long j = 0; j < nb; j++) acc += h.v[i + j * na] * vv->v[j], mag += fabs(h.v[i + j * na] * vv->v[j]);
            d = fmax(d, fabs(acc - hv.v[i]));
            m = fmax(m, fabs(acc));
            scale = fmax(scale, mag);
        }
        /* a Hessian that is zero (f linear in x along every direction:
           3*norm2(F*F'*matrix(1)*E'*z) is |1'*E'*z| times a constant) has
           entries and a product that are rounding noise: the floor is the
           second-order size the gradient suggests, |G| |v| / |x| */
        md_mat g = {0};
        double gs = 0, xs = 0, vs = 0;
        if (md_eval(&env, G, &g) == 0) {
            for (long i = 0; i < g.rows * g.cols; i++) gs += g.v[i] * g.v[i];
            for (long i = 0; i < nb; i++) xs += env.val[s].v[i] * env.val[s].v[i], vs += vv->v[i] * vv->v[i];
        }
        md_mat_free(&g);
        double floor2 = sqrt(gs) * sqrt(vs) / fmax(sqrt(xs), 1e-300);
        /* ... and when the gradient is rounding noise too (f constant:
           abs(log(sin(z).^2 + 1)) - log(sin(z).^2 + 1), seed 8896; half
           the sum of softmax(w), seed 9643), the data's own scale: inputs
           are drawn of size 1, so a Hessian below 1e-14 |v| is zero */
        floor2 = fmax(floor2, sqrt(vs));
        /* normwise, against the sizes of the terms summed (cancellation) */
        if (h.rows * h.cols != na * nb || !(d <= 1e-8 * fmax(fmax(m, 1e-3 * scale), 1e-6 * floor2) + 1e-300)) {
            if (!(isfinite(d) && isfinite(scale))) {
                k->t->skip_check++;
            } else {
                char *ft = md_expr_to_string(ctx, f), *ht = md_expr_to_string(ctx, Hv);
                fail(k, "P8 Hessian-vector product", "H v by %s of f = %s differs from the Hessian times v by "
                     "%.3g (of %.3g): H v = %s", x->name, ft, d, m, ht);
                free(ft);
                free(ht);
            }
        }
    } else {
        k->t->skip_check++;
    }
    md_mat_free(&hv);
    md_mat_free(&h);
    md_env_free(&env);
}

static void run_case(unsigned long seed, tally *t)
{
    uint64_t rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull ^ 0xD1B54A32D192ED03ull;
    md_ctx *ctx = md_ctx_new();
    gen *g = md_xcalloc(1, sizeof *g);
    g->ctx = ctx;
    g->ndims = 2 + (int)(rnd(&rng) % 3);
    g->dims[0] = MD_DIM_ONE;
    for (int d = 0; d < g->ndims; d++) g->dims[d + 1] = md_ctx_add_dim(ctx, dim_names[d], 1);
    for (size_t i = 0; i < sizeof all_vars / sizeof *all_vars; i++) {
        const var_spec *v = &all_vars[i];
        if (v->r >= g->ndims || v->c >= g->ndims) continue;
        int r = v->r < 0 ? MD_DIM_ONE : g->dims[v->r + 1];
        int c = v->c < 0 ? MD_DIM_ONE : g->dims[v->c + 1];
        g->sym[g->nvars++] = md_ctx_add_sym(ctx, v->name, v->kind, r, c);
    }

    /* the shape of e */
    g->rng = rng;
    int r = MD_DIM_ONE, c = MD_DIM_ONE, same_stream = 1;
    md_expr *e = NULL, *raw = NULL;
    char *etext = NULL;
    md_buf pb = {0};
    /* An expression whose text leaves the size of a constant free (see
       prop_roundtrip) cannot be compared after reparsing; draw again, a
       few times, rather than lose the round trip for the case. */
    for (int attempt = 0; attempt < 8; attempt++) {
        switch (rn(g, 5)) {
        case 0:
        case 1: r = c = MD_DIM_ONE; break;
        case 2: r = rdim(g, 0), c = MD_DIM_ONE; break;
        case 3: r = MD_DIM_ONE, c = rdim(g, 0); break;
        default: r = rdim(g, 0), c = rdim(g, 0); break;
        }
        int depth = 3 + rn(g, 4);
        uint64_t start = g->rng;

        g->raw = 0;
        g->budget = 40;
        g->npool = 0;
        e = gen_expr(g, r, c, depth);
        uint64_t after = g->rng;
        g->rng = start;
        g->raw = 1;
        g->budget = 40;
        g->npool = 0;
        raw = gen_expr(g, r, c, depth);
        same_stream = g->rng == after;
        g->raw = 0;
        g->npool = 0;

        free(etext);
        md_buf_free(&pb);
        etext = md_expr_to_string(ctx, e);
        decls(ctx, &pb);
        md_buf_puts(&pb, etext);
        if (!text_leaves_size_free(ctx, pb.s)) break;
    }
    kase k = {seed, ctx, md_buf_take(&pb), 0, t};
    if (verbose) {
        char *rt = md_expr_to_string(ctx, raw);
        printf("seed %lu: program:\n%s\nraw tree: %s\nthe tree of e:\n", seed, k.prog, rt);
        free(rt);
        dump_tree(ctx, e, 2);
    }

    /* P1 */
    if (e->rows != r || e->cols != c || raw->rows != r || raw->cols != c) {
        char *want = shape_str(ctx, md_zero(ctx, r, c)), *got = shape_str(ctx, e), *gr = shape_str(ctx, raw);
        fail(&k, "P1 shape", "asked for %s, the constructors built %s and the raw tree is %s", want, got, gr);
        free(want);
        free(got);
        free(gr);
    }
    if (!same_stream) fail(&k, "P1 generator", "the raw and simplifying runs drew different random streams");

    wf_canonical = 1;
    char *bad = wf_check(ctx, e);
    wf_canonical = 0;
    char *badr = wf_check(ctx, raw);
    wf_canonical = 1;
    if (bad) fail(&k, "P1 shape", "the constructors built a malformed expression: %s", bad);
    if (badr) fail(&k, "P1 shape", "the generator built a malformed raw tree: %s", badr);
    int skip = bad || badr;
    free(bad);
    free(badr);
    if (skip) goto done;

    prop_roundtrip(&k, e, etext);
    prop_simplify(&k, e, raw);

    /* P4: a scalar function of e */
    md_expr *f;
    const char *how;
    if (md_is_scalar(e)) {
        f = e;
        how = "e itself";
    } else if (rn(g, 3) == 0) {
        f = md_pow_si(ctx, md_unary(ctx, MD_NORM2, e), 2, 1);
        how = "norm2(e)^2";
    } else {
        g->budget = 4;
        md_expr *K = gen_expr(g, r, c, 2);
        f = md_unary(ctx, MD_SUM, md_had2(ctx, e, K));
        char *kt = md_expr_to_string(ctx, K);
        md_buf hb = {0};
        md_buf_printf(&hb, "sum(e .* K), K = %s", kt);
        free(kt);
        how = NULL;
        char *h = md_buf_take(&hb);
        prop_gradient(&k, f, h);
        if (seed % 3 == 0) prop_hessian(&k, f);
        else prop_hvp(&k, f);
        free(h);
        /* P6 last: it adds the weight w to the context */
        prop_jacobian(&k, e);
        goto done;
    }
    prop_gradient(&k, f, how);
    /* P7: the Hessian, every third case; P6 last (it adds a variable) */
    if (seed % 3 == 0) prop_hessian(&k, f);
    else prop_hvp(&k, f);
    if (!md_is_scalar(e)) prop_jacobian(&k, e);
done:
    if (k.failed) t->failed++;
    else t->passed++;
    free(k.prog);
    free(etext);
    free(g);
    md_ctx_free(ctx);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 300;
    unsigned long seed0 = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
    if (n <= 0) {
        fprintf(stderr, "usage: %s [CASES [FIRST-SEED]]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    verbose = n == 1;
    tally t = {0};
    for (long i = 0; i < n; i++) run_case(seed0 + (unsigned long)i, &t);
    printf("property: not compared: %ld round trips (a constant's size is free in the text), "
           "%ld round-trip and %ld simplifier evaluations (outside the domain), "
           "%ld gradient checks (no point in the domain), %ld (f not differentiable at the point), "
           "%ld (f or its gradient numerically chaotic there); "
           "%ld gradient checks passed only with the careful finite differences\n",
           t.ambiguous, t.skip_eval2, t.skip_eval3, t.skip_check, t.kinks, t.chaotic, t.coarse);
    printf("property: %ld Jacobians (P6) and %ld Hessians (P7) checked against finite differences, %ld Hessian-vector "
           "products (P8) against the Hessian\n", t.jacobians, t.hessians, t.hvps);
    printf("property: %ld passed, %ld failed\n", t.passed, t.failed);
    return t.failed ? 1 : 0;
}
