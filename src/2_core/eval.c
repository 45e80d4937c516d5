/*
 * eval.c -- numeric evaluation of expression graphs on dense matrices.
 *
 * matdiff's answers are checked numerically, so this file is the ground
 * truth every other stage is measured against.  It is deliberately
 * plain: column-major doubles, naive triple-loop products, LU with
 * partial pivoting for det, logdet and inverse.  Dimensions are small
 * (2..6), so clarity beats speed everywhere.
 *
 * Evaluation walks the DAG once per call.  A memo table indexed by node
 * id (e->id < ctx->nnodes) holds every value computed so far, so a
 * subexpression shared by a thousand parents is computed once; the values
 * are released at the end of the call (only the ones computed, so a big
 * context costs nothing for the nodes a call never reaches).  The walk is recursive: graphs can
 * be chains of thousands of nodes, so the recursive function (eval_node)
 * only visits the arguments and hands the arithmetic to a separate
 * non-inlined function (compute), keeping each recursion frame a few
 * words deep.
 *
 * Failure is a value, not an exit: any operation outside its domain (log
 * of a non-positive number, a singular inverse, ...) or any non-finite
 * entry makes the whole evaluation return -1.  md_check relies on that to
 * look for a point inside the function's domain.  A shape that does not
 * match the node is a bug in whoever built the graph, not a domain
 * error: it is reported as an internal error and the process exits with
 * status 3.
 *
 * md_env_random chooses the data: distinct dimension sizes (so a
 * forgotten transpose shows as a size clash or a wrong number; equal ones
 * only where f is defined nowhere else, as logdet(X*Y) + logdet(Y*X)), and
 * variable values shaped by where each variable occurs: positive under
 * log, sqrt and fractional powers, inside [0.1, 0.6] under arcsin and
 * arccos, away from zero under negative powers (divisions), symmetric
 * positive definite under det, logdet and inverses.
 * The classification is a heuristic (log(1 - x) defeats it), so the draw
 * is retried a few times before giving up.
 */
#include "md_eval.h"

#include "md_builtins.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

md_mat md_mat_new(long rows, long cols)
{
    md_mat m;
    m.rows = rows;
    m.cols = cols;
    m.v = md_xcalloc((size_t)(rows * cols), sizeof(double));
    return m;
}

void md_mat_free(md_mat *m)
{
    free(m->v);
    m->v = NULL;
    m->rows = m->cols = 0;
}

/*
 * The arithmetic is done in long double (64-bit significands on x86-64):
 * this evaluator is what every derivative is judged by, and a correct
 * formula evaluated with cancellation (1 - tanh(x).^2 for x = 12 loses
 * six digits in double) must not look wrong.  Data come in and results
 * go out as double (md_mat); md_eval_real gives a scalar unrounded, for
 * the finite differences of md_check.
 */
typedef long double real;

typedef struct lmat {
    long rows, cols;
    real *v;
} lmat;

static lmat lmat_new(long rows, long cols)
{
    lmat m;
    m.rows = rows;
    m.cols = cols;
    m.v = md_xcalloc((size_t)(rows * cols) + 1, sizeof(real));
    return m;
}

static void lmat_free(lmat *m)
{
    free(m->v);
    m->v = NULL;
    m->rows = m->cols = 0;
}

static lmat mat_copy(const lmat *a)
{
    lmat m = lmat_new(a->rows, a->cols);
    memcpy(m.v, a->v, (size_t)(a->rows * a->cols) * sizeof(real));
    return m;
}

static lmat mat_in(const md_mat *a)
{
    lmat m = lmat_new(a->rows, a->cols);
    for (long i = 0; i < a->rows * a->cols; i++) m.v[i] = a->v[i];
    return m;
}

static md_mat mat_out(const lmat *a)
{
    md_mat m = md_mat_new(a->rows, a->cols);
    for (long i = 0; i < a->rows * a->cols; i++) m.v[i] = (double)a->v[i];
    return m;
}

/* A rational as a long double, to more digits than mpq_get_d gives. */
static real q_real(const mpq_t q)
{
    if (mpz_sizeinbase(mpq_numref(q), 2) < 60 && mpz_sizeinbase(mpq_denref(q), 2) < 60 &&
        mpz_fits_slong_p(mpq_numref(q)) && mpz_fits_slong_p(mpq_denref(q)))
        return (real)mpz_get_si(mpq_numref(q)) / (real)mpz_get_si(mpq_denref(q));
    return mpq_get_d(q);
}

/* The last shape bug met (md_eval returned MD_EVAL_BUG), for the message. */
static _Thread_local char eval_bug_msg[160];

static void eval_bug(const char *what, const md_expr *e)
{
    snprintf(eval_bug_msg, sizeof eval_bug_msg, "evaluator: %s (node %u, kind %d)", what,
             (unsigned)e->id, (int)e->kind);
}

const char *md_eval_bug(void) { return eval_bug_msg; }

void md_eval_note_bug(const char *what) { snprintf(eval_bug_msg, sizeof eval_bug_msg, "%s", what); }

/* ---- dense linear algebra ---- */

/* c = a * b; shapes already checked. */
static lmat mat_mul(const lmat *a, const lmat *b)
{
    lmat c = lmat_new(a->rows, b->cols);
    for (long j = 0; j < b->cols; j++)
        for (long k = 0; k < a->cols; k++) {
            real bkj = b->v[k + j * b->rows];
            if (bkj == 0.0) continue;
            for (long i = 0; i < a->rows; i++)
                c.v[i + j * c.rows] += a->v[i + k * a->rows] * bkj;
        }
    return c;
}

/*
 * In-place LU factorisation with partial pivoting of the n x n
 * column-major a: P a = L U, L unit lower.  piv[k] is the row swapped
 * with row k at step k; *sign is the permutation's sign.  A column whose
 * candidates are all zero is skipped (U gets a zero pivot).  Returns the
 * smallest |pivot|.
 */
static real lu_factor(long n, real *a, long *piv, int *sign)
{
    real minpiv = INFINITY;
    *sign = 1;
    for (long k = 0; k < n; k++) {
        long p = k;
        for (long i = k + 1; i < n; i++)
            if (fabsl(a[i + k * n]) > fabsl(a[p + k * n])) p = i;
        piv[k] = p;
        if (p != k) {
            *sign = -*sign;
            for (long j = 0; j < n; j++) {
                real t = a[k + j * n];
                a[k + j * n] = a[p + j * n];
                a[p + j * n] = t;
            }
        }
        real d = a[k + k * n];
        if (fabsl(d) < minpiv) minpiv = fabsl(d);
        if (d == 0.0) continue;
        for (long i = k + 1; i < n; i++) {
            real l = a[i + k * n] /= d;
            if (l == 0.0) continue;
            for (long j = k + 1; j < n; j++)
                a[i + j * n] -= l * a[k + j * n];
        }
    }
    return minpiv;
}

static real mat_det(const lmat *m)
{
    long n = m->rows;
    lmat a = mat_copy(m);
    long *piv = md_xmalloc((size_t)n * sizeof(long));
    int sign;
    lu_factor(n, a.v, piv, &sign);
    real d = sign;
    for (long k = 0; k < n; k++) d *= a.v[k + k * n];
    free(piv);
    lmat_free(&a);
    return d;
}

/* *out = m^-1; -1 when m is singular to working precision. */
static int mat_inv(const lmat *m, lmat *out)
{
    long n = m->rows;
    real norm = 0.0;
    for (long i = 0; i < n * n; i++)
        if (fabsl(m->v[i]) > norm) norm = fabsl(m->v[i]);
    lmat a = mat_copy(m);
    long *piv = md_xmalloc((size_t)n * sizeof(long));
    int sign;
    real minpiv = lu_factor(n, a.v, piv, &sign);
    if (norm == 0.0 || minpiv < 1e-13 * norm) {
        free(piv);
        lmat_free(&a);
        return -1;
    }
    lmat x = lmat_new(n, n);
    for (long j = 0; j < n; j++) {
        real *b = x.v + j * n;
        b[j] = 1.0;
        for (long k = 0; k < n; k++) {           /* apply P */
            real t = b[k];
            b[k] = b[piv[k]];
            b[piv[k]] = t;
        }
        for (long i = 0; i < n; i++)             /* L y = P e_j */
            for (long k = 0; k < i; k++) b[i] -= a.v[i + k * n] * b[k];
        for (long i = n - 1; i >= 0; i--) {      /* U x = y */
            for (long k = i + 1; k < n; k++) b[i] -= a.v[i + k * n] * b[k];
            b[i] /= a.v[i + i * n];
        }
    }
    free(piv);
    lmat_free(&a);
    *out = x;
    return 0;
}

/* m^p for p >= 1 by repeated squaring. */
static lmat mat_pow(const lmat *m, long p)
{
    lmat result = mat_copy(m), base = mat_copy(m);
    p--;
    while (p > 0) {
        if (p & 1) {
            lmat t = mat_mul(&result, &base);
            lmat_free(&result);
            result = t;
        }
        p >>= 1;
        if (p > 0) {
            lmat t = mat_mul(&base, &base);
            lmat_free(&base);
            base = t;
        }
    }
    lmat_free(&base);
    return result;
}

/* ---- elementwise functions ---- */

/* The generic function family of md_eval.h: f_k^(m)(x). */
static real generic_fn(int k, int m, real x)
{
    real a = 0.7 + 0.3 * k, b = 0.4 + 0.5 * k;
    real t = a * x + b, s;
    switch (m & 3) {     /* sinl(t + m pi/2) without rounding pi/2 */
    case 0: s = sinl(t); break;
    case 1: s = cosl(t); break;
    case 2: s = -sinl(t); break;
    default: s = -cosl(t); break;
    }
    return powl(a, m) * s;
}

/* Applies e's function to x; returns 0 or -1 outside the domain. */
static int apply_fn(const md_env *env, const md_expr *e, real x, real *y)
{
    if (e->ival == MD_FN_GENERIC)
        *y = generic_fn(env->funcmap ? env->funcmap[e->aux] : e->aux, e->order, x);
    else
        *y = md_fns[e->ival].eval(x);   /* NaN or inf outside the domain: caught below */
    return 0;
}

static int elem_pow(real a, real b, real *y)
{
    if (a < 0.0 && b != floorl(b)) return -1;
    *y = powl(a, b);     /* exact sign for integral b and negative a */
    return 0;
}

/* ---- the walk ---- */

typedef struct eval_state {
    const md_env *env;
    lmat *memo;        /* memo[id].v != NULL once computed */
    uint32_t nmemo;
    uint32_t *done;      /* the ids computed, to free only those: a big
                            context's untouched memo pages stay untouched */
    uint32_t ndone;
} eval_state;

static long dsize(const eval_state *st, int dim)
{
    const md_env *env = st->env;
    if (!env->ndims || dim < env->ndims) return env->dimsize[dim];
    const md_dim *d = &env->ctx->dims[dim];
    long s = d->nfac ? 1 : 0;   /* a base dimension made after the env has no size: a shape bug */
    for (int i = 0; i < d->nfac; i++) s *= dsize(st, d->fac[i]);
    return s;
}

/* Entry i of m read as if it had n entries: a 1x1 m broadcasts. */
static real bget(const lmat *m, long i)
{
    return m->rows * m->cols == 1 ? m->v[0] : m->v[i];
}

/* Shape contracts of md_expr.h; a broken one is a bug in whoever built
   the graph (or a read-back program whose sizes disagree), never a domain
   error: compute returns MD_EVAL_BUG. */
#define want_shape(e, m, r, c)                                                      \
    do {                                                                            \
        if ((m)->rows != (r) || (m)->cols != (c)) {                                 \
            eval_bug("argument of the wrong shape", e);                             \
            goto bug;                                                               \
        }                                                                           \
    } while (0)
#define want_square(e, m)                                                           \
    do {                                                                            \
        if ((m)->rows != (m)->cols) {                                               \
            eval_bug("argument is not square", e);                                  \
            goto bug;                                                               \
        }                                                                           \
    } while (0)

/* Computes node e (its arguments are in the memo) into *out. */
__attribute__((noinline)) static int compute(eval_state *st, const md_expr *e,
                                             lmat *out)
{
    const md_env *env = st->env;
    long r = dsize(st, e->rows), c = dsize(st, e->cols), n = r * c;
    lmat *a0 = e->nargs > 0 ? &st->memo[e->args[0]->id] : NULL;
    lmat m = {0, 0, NULL};
    int rc = -1;

    switch (e->kind) {
    case MD_NUM:
        m = lmat_new(1, 1);
        m.v[0] = q_real(e->q);
        break;
    case MD_SYM:
        want_shape(e, &env->val[e->ival], r, c);
        m = mat_in(&env->val[e->ival]);
        break;
    case MD_DIFF:
        if (env->dir) {
            want_shape(e, &env->dir[e->ival], r, c);
            m = mat_in(&env->dir[e->ival]);
        } else {
            m = lmat_new(r, c);
        }
        break;
    case MD_ZERO:
        m = lmat_new(r, c);
        break;
    case MD_ONES:
        m = lmat_new(r, c);
        for (long i = 0; i < n; i++) m.v[i] = 1.0;
        break;
    case MD_EYE:
        m = lmat_new(r, c);
        for (long i = 0; i < r && i < c; i++) m.v[i + i * r] = 1.0;
        break;
    case MD_ADD:
    case MD_HAD:
        m = lmat_new(r, c);
        for (long i = 0; i < n; i++) m.v[i] = e->kind == MD_ADD ? 0.0 : 1.0;
        for (int k = 0; k < e->nargs; k++) {
            const lmat *ak = &st->memo[e->args[k]->id];
            if (ak->rows * ak->cols != 1) want_shape(e, ak, r, c);
            for (long i = 0; i < n; i++) {
                if (e->kind == MD_ADD) m.v[i] += bget(ak, i);
                else m.v[i] *= bget(ak, i);
            }
        }
        break;
    case MD_MUL: {
        real scale = 1.0;
        lmat chain = {0, 0, NULL};
        for (int k = 0; k < e->nargs; k++) {
            const md_expr *x = e->args[k];
            const lmat *ak = &st->memo[x->id];
            if (md_is_scalar(x)) {
                scale *= ak->v[0];
            } else if (!chain.v) {
                chain = mat_copy(ak);
            } else {
                if (chain.cols != ak->rows) {
                    lmat_free(&chain);
                    eval_bug("product of mismatched shapes", e);
                    goto bug;
                }
                lmat t = mat_mul(&chain, ak);
                lmat_free(&chain);
                chain = t;
            }
        }
        if (!chain.v) {          /* all factors were scalars */
            chain = lmat_new(1, 1);
            chain.v[0] = 1.0;
        }
        want_shape(e, &chain, r, c);
        for (long i = 0; i < n; i++) chain.v[i] *= scale;
        m = chain;
        break;
    }
    case MD_POW: {
        const lmat *b = &st->memo[e->args[1]->id];
        if (a0->rows * a0->cols != 1) want_shape(e, a0, r, c);
        if (b->rows * b->cols != 1) want_shape(e, b, r, c);
        m = lmat_new(r, c);
        for (long i = 0; i < n; i++)
            if (elem_pow(bget(a0, i), bget(b, i), &m.v[i]) < 0) goto fail;
        break;
    }
    case MD_MPOW:
        want_square(e, a0);
        if (e->ival < 0) {
            lmat inv;
            if (mat_inv(a0, &inv) < 0) return -1;
            m = e->ival == -1 ? inv : mat_pow(&inv, -(long)e->ival);
            if (e->ival != -1) lmat_free(&inv);
        } else if (e->ival == 0) {
            m = lmat_new(r, c);
            for (long i = 0; i < r; i++) m.v[i + i * r] = 1.0;
        } else {
            m = mat_pow(a0, e->ival);
        }
        break;
    case MD_TRANS:
        m = lmat_new(a0->cols, a0->rows);
        for (long j = 0; j < a0->cols; j++)
            for (long i = 0; i < a0->rows; i++)
                m.v[j + i * m.rows] = a0->v[i + j * a0->rows];
        break;
    case MD_FUNC:
        want_shape(e, a0, r, c);
        m = lmat_new(r, c);
        for (long i = 0; i < n; i++)
            if ((rc = apply_fn(env, e, a0->v[i], &m.v[i])) < 0) goto fail;
        break;
    case MD_SUM:
    case MD_NORM1:
    case MD_NORM2: {
        real s = 0.0;
        for (long i = 0; i < a0->rows * a0->cols; i++) {
            real x = a0->v[i];
            s += e->kind == MD_SUM ? x : e->kind == MD_NORM1 ? fabsl(x) : x * x;
        }
        m = lmat_new(1, 1);
        m.v[0] = e->kind == MD_NORM2 ? sqrtl(s) : s;
        break;
    }
    case MD_SOFTMAX:
    case MD_LSE: {
        /* shifted by the largest entry, so that no exp overflows:
           softmax(a) = exp(a - max)/sum(exp(a - max)),
           logsumexp(a) = max + log(sum(exp(a - max))) */
        want_shape(e, a0, a0->rows, 1);
        long len = a0->rows;
        real mx = a0->v[0], s = 0.0;
        for (long i = 1; i < len; i++)
            if (a0->v[i] > mx) mx = a0->v[i];
        for (long i = 0; i < len; i++) s += expl(a0->v[i] - mx);
        if (e->kind == MD_LSE) {
            m = lmat_new(1, 1);
            m.v[0] = mx + logl(s);
        } else {
            m = lmat_new(len, 1);
            for (long i = 0; i < len; i++) m.v[i] = expl(a0->v[i] - mx) / s;
        }
        break;
    }
    case MD_TR:
        want_square(e, a0);
        m = lmat_new(1, 1);
        for (long i = 0; i < a0->rows; i++) m.v[0] += a0->v[i + i * a0->rows];
        break;
    case MD_DET:
    case MD_LOGDET: {
        want_square(e, a0);
        real d = mat_det(a0);
        if (e->kind == MD_LOGDET) {
            if (!(d > 0.0)) return -1;
            d = logl(d);
        }
        m = lmat_new(1, 1);
        m.v[0] = d;
        break;
    }
    case MD_DIAGM:
        want_shape(e, a0, r, 1);
        m = lmat_new(r, r);
        for (long i = 0; i < r; i++) m.v[i + i * r] = a0->v[i];
        break;
    case MD_DIAGV:
        want_square(e, a0);
        m = lmat_new(a0->rows, 1);
        for (long i = 0; i < a0->rows; i++) m.v[i] = a0->v[i + i * a0->rows];
        break;
    case MD_VEC:
        /* column-major: the same numbers */
        want_shape(e, a0, a0->rows, a0->cols);
        if (a0->rows * a0->cols != r) {
            eval_bug("argument of the wrong shape", e);
            goto bug;
        }
        m = lmat_new(r, 1);
        for (long i = 0; i < r; i++) m.v[i] = a0->v[i];
        break;
    case MD_KRON: {
        lmat *a1 = &st->memo[e->args[1]->id];
        long ar = a0->rows, ac = a0->cols, br = a1->rows, bc = a1->cols;
        if (ar * br != r || ac * bc != c) {
            eval_bug("argument of the wrong shape", e);
            goto bug;
        }
        m = lmat_new(r, c);
        for (long j = 0; j < ac; j++)
            for (long i = 0; i < ar; i++)
                for (long l = 0; l < bc; l++)
                    for (long k = 0; k < br; k++)
                        m.v[(i * br + k) + (j * bc + l) * r] = a0->v[i + j * ar] * a1->v[k + l * br];
        break;
    }
    case MD_COMM: {
        /* K*vec(A) = vec(A') for A p x q: entry (i, j) of A is vec(A)[i + j p]
           and vec(A')[j + i q] */
        long p = dsize(st, e->ival), q = dsize(st, e->aux);
        if (p * q != r || r != c) {
            eval_bug("commutation matrix of the wrong size", e);
            goto bug;
        }
        m = lmat_new(r, r);
        for (long i = 0; i < p; i++)
            for (long j = 0; j < q; j++) m.v[(j + i * q) + (i + j * p) * r] = 1.0L;
        break;
    }
    case MD_NKINDS:
        eval_bug("unknown node kind", e);
        goto bug;
    }
    want_shape(e, &m, r, c);
    for (long i = 0; i < n; i++)
        if (!isfinite((double)m.v[i])) goto fail;   /* every value must be a double */
    if (env->doubles)
        for (long i = 0; i < n; i++) m.v[i] = (double)m.v[i];
    *out = m;
    return 0;
bug:
    rc = MD_EVAL_BUG;
fail:
    lmat_free(&m);
    return rc < 0 ? rc : -1;
}

/* Evaluates e into st->memo[e->id]; 0 or -1.  Keep this frame small. */
static int eval_node(eval_state *st, md_expr *e)
{
    if (e->id >= st->nmemo) {
        eval_bug("node from another context", e);
        return MD_EVAL_BUG;
    }
    if (st->memo[e->id].v) return 0;
    for (int i = 0; i < e->nargs; i++) {
        int rc = eval_node(st, e->args[i]);
        if (rc < 0) return rc;
    }
    int rc = compute(st, e, &st->memo[e->id]);
    if (rc < 0) return rc;
    st->done[st->ndone++] = e->id;
    return 0;
}

/* Evaluates es into the memo of st (which the caller releases). */
static int eval_into(eval_state *st, const md_env *env, int n, md_expr **es)
{
    st->env = env;
    st->nmemo = env->ctx->nnodes;
    st->memo = md_xcalloc(st->nmemo, sizeof(lmat));
    st->done = md_xmalloc((size_t)st->nmemo * sizeof(uint32_t));
    st->ndone = 0;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = eval_node(st, es[i]);
    return rc;
}

static void eval_release(eval_state *st)
{
    for (uint32_t i = 0; i < st->ndone; i++) free(st->memo[st->done[i]].v);
    free(st->done);
    free(st->memo);
}

int md_eval_many(const md_env *env, int n, md_expr **es, md_mat *outs)
{
    eval_state st;
    int rc = eval_into(&st, env, n, es);
    for (int i = 0; i < n; i++) {
        if (rc == 0) outs[i] = mat_out(&st.memo[es[i]->id]);
        else outs[i] = (md_mat){0, 0, NULL};
    }
    eval_release(&st);
    return rc;
}

int md_eval(const md_env *env, md_expr *e, md_mat *out)
{
    return md_eval_many(env, 1, &e, out);
}

int md_eval_real(const md_env *env, md_expr *e, long double *out)
{
    eval_state st;
    int rc = eval_into(&st, env, 1, &e);
    if (rc == 0) {
        const lmat *m = &st.memo[e->id];
        if (m->rows * m->cols != 1) {
            eval_bug("not a scalar", e);
            rc = MD_EVAL_BUG;
        } else {
            *out = m->v[0];
        }
    }
    eval_release(&st);
    return rc;
}

/* ---- random environments ---- */

/* splitmix64 (Steele, Lea, Flood): tiny, fast, and good enough here. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(rng_next(s) >> 11) * 0x1.0p-53);
}

/* Where a variable occurs, as far as choosing its values goes. */
enum {
    NEED_POS = 1,    /* under log, sqrt, a fractional or variable power */
    NEED_UNIT = 2,   /* under arcsin / arccos */
    NEED_SPD = 4,    /* under det, logdet, a negative matrix power */
    NEED_AWAY = 8    /* under a negative power: keep |entries| >= 0.5 */
};

typedef struct classify_state {
    unsigned char *seen;     /* per node: the needs it was visited with */
    unsigned char *needs;    /* per symbol */
} classify_state;

static void classify(classify_state *cs, const md_expr *e, unsigned need)
{
    if ((cs->seen[e->id] | need) == cs->seen[e->id] && cs->seen[e->id] & 0x80)
        return;
    need |= cs->seen[e->id] & 0x7f;
    cs->seen[e->id] = (unsigned char)(need | 0x80);
    if (e->kind == MD_SYM) {
        cs->needs[e->ival] |= (unsigned char)need;
        return;
    }
    unsigned sub = need;
    /* the table says what each built-in needs of its argument */
    md_domain dom = e->kind == MD_FUNC ? (e->ival == MD_FN_GENERIC ? MD_DOM_ANY : md_fns[e->ival].domain)
                    : e->kind == MD_MPOW ? (e->ival < 0 ? MD_DOM_SPD : MD_DOM_ANY)
                                         : md_kind_domain(e->kind);
    switch (dom) {
    case MD_DOM_ANY: break;
    case MD_DOM_POS: sub |= NEED_POS; break;
    case MD_DOM_UNIT: sub |= NEED_UNIT; break;
    case MD_DOM_SPD: sub |= NEED_SPD; break;
    }
    if (e->kind == MD_POW) {
        const md_expr *b = e->args[1];
        if (b->kind != MD_NUM || mpz_cmp_ui(mpq_denref(b->q), 1) != 0)
            classify(cs, e->args[0], sub | NEED_POS);
        else if (mpq_sgn(b->q) < 0)
            classify(cs, e->args[0], sub | NEED_AWAY);
        else
            classify(cs, e->args[0], sub);
        classify(cs, b, sub);
        return;
    }
    for (int i = 0; i < e->nargs; i++) classify(cs, e->args[i], sub);
}

/* Mirrors the upper triangle (rather than averaging with it, which
   would pull entries of either sign towards zero). */
static void symmetrise(md_mat *m)
{
    for (long j = 0; j < m->cols; j++)
        for (long i = j + 1; i < m->rows; i++)
            m->v[i + j * m->rows] = m->v[j + i * m->rows];
}

/* Fills m (already shaped) for a variable with the given needs. */
static void draw_value(uint64_t *rng, md_mat *m, unsigned need, int symmetric)
{
    long r = m->rows, c = m->cols;
    if ((need & NEED_SPD) && r == c) {
        /* B B'/n + I: symmetric, eigenvalues >= 1; positive if B >= 0 */
        int pos = (need & (NEED_POS | NEED_UNIT)) != 0;
        double shrink = need & NEED_UNIT ? 0.3 : 1.0;   /* entries in (0, 0.6] */
        md_mat b = md_mat_new(r, r);
        for (long i = 0; i < r * r; i++)
            b.v[i] = rng_uniform(rng, pos ? 0.0 : -1.0, 1.0);
        for (long j = 0; j < r; j++)
            for (long i = 0; i < r; i++) {
                double s = i == j ? 1.0 : 0.0;
                for (long k = 0; k < r; k++)
                    s += b.v[i + k * r] * b.v[j + k * r] / (double)r;
                m->v[i + j * r] = shrink * s;
            }
        md_mat_free(&b);
        return;
    }
    double lo = -1.0, hi = 1.0;
    if (need & NEED_UNIT) lo = 0.1, hi = 0.6;
    else if (need & NEED_POS) lo = 0.5, hi = 1.5;
    int away = !(need & (NEED_UNIT | NEED_POS)) && (need & NEED_AWAY);
    if (away) lo = 0.5, hi = 1.5;
    for (long i = 0; i < r * c; i++) {
        m->v[i] = rng_uniform(rng, lo, hi);
        if (away && (rng_next(rng) & 1)) m->v[i] = -m->v[i];
    }
    if (symmetric && r == c) symmetrise(m);
}

enum { MD_ENV_TRIES = 20 };

int md_env_random_ex(md_ctx *ctx, md_expr *f, unsigned long seed, int equal_sizes, md_env *env)
{
    uint64_t rng = (uint64_t)seed * 0x2545F4914F6CDD1Dull + 0x1234567ull;
    memset(env, 0, sizeof *env);
    env->ctx = ctx;
    env->dimsize = md_xcalloc((size_t)ctx->ndims, sizeof(long));
    env->ndims = ctx->ndims;
    /* one spare zeroed entry: md_env_free stops there even if symbols
       were added to ctx since */
    env->val = md_xcalloc((size_t)ctx->nsyms + 1, sizeof(md_mat));
    env->dir = md_xcalloc((size_t)ctx->nsyms + 1, sizeof(md_mat));

    /* distinct sizes 2..6 in shuffled order, reshuffled if dims run out;
       or every dimension 3 */
    /* with product dimensions (kron, vec, Jacobians by matrices) the sizes
       multiply: 2..4 then, so that a 4-factor product stays below 100 and
       a dense kron below 10^4 entries */
    enum { NSIZES = 5 };
    int nsizes = NSIZES;
    for (int d = 1; d < ctx->ndims; d++)
        if (md_dim_is_product(ctx, d)) nsizes = 3;
    long sizes[NSIZES];
    env->dimsize[0] = 1;
    for (int d = 1, b = 0; d < ctx->ndims; d++) {
        if (md_dim_is_product(ctx, d)) continue;   /* below, from its factors */
        int k = b++ % nsizes;
        if (k == 0) {
            for (int i = 0; i < nsizes; i++) sizes[i] = 2 + i;
            for (int i = nsizes - 1; i > 0; i--) {
                int j = (int)(rng_next(&rng) % (uint64_t)(i + 1));
                long t = sizes[i]; sizes[i] = sizes[j]; sizes[j] = t;
            }
        }
        env->dimsize[d] = equal_sizes ? 3 : sizes[k];
    }
    md_ctx_product_sizes(ctx, env->dimsize);
    for (int d = 0; d < ctx->ndims; d++) ctx->dims[d].size = env->dimsize[d];

    classify_state cs;
    cs.seen = md_xcalloc(ctx->nnodes, 1);
    cs.needs = md_xcalloc((size_t)ctx->nsyms, 1);
    classify(&cs, f, 0);

    for (int s = 0; s < ctx->nsyms; s++) {
        long r = env->dimsize[ctx->syms[s].rows], c = env->dimsize[ctx->syms[s].cols];
        env->val[s] = md_mat_new(r, c);
        env->dir[s] = md_mat_new(r, c);
        for (long i = 0; i < r * c; i++) env->dir[s].v[i] = rng_uniform(&rng, -1.0, 1.0);
        if (md_sym_is_symmetric(ctx, s)) symmetrise(&env->dir[s]);
    }

    int rc = -1;
    for (int attempt = 0; attempt < MD_ENV_TRIES && rc < 0; attempt++) {
        /* later attempts shrink the data towards zero: log(1 - x) needs
           small x, and so do many other domains written by hand */
        double scale = attempt < 7 ? 1.0 : attempt < 14 ? 0.3 : 0.05;
        for (int s = 0; s < ctx->nsyms; s++) {
            md_mat *m = &env->val[s];
            draw_value(&rng, m, cs.needs[s], md_sym_is_symmetric(ctx, s));
            if (!(cs.needs[s] & NEED_SPD))
                for (long i = 0; i < m->rows * m->cols; i++) m->v[i] *= scale;
        }
        md_mat fv;
        rc = md_eval(env, f, &fv);
        if (rc == 0) md_mat_free(&fv);
        if (rc == MD_EVAL_BUG) break;   /* no data will help */
    }
    free(cs.seen);
    free(cs.needs);
    if (rc < 0) md_env_free(env);   /* leaves env safe to free again */
    return rc;
}

/* Distinct sizes first; if f is defined nowhere with them, equal ones:
   logdet(X*Y) + logdet(Y*X) needs X and Y square (X*Y of rank m < n is
   singular). */
int md_env_random(md_ctx *ctx, md_expr *f, unsigned long seed, md_env *env)
{
    int rc = md_env_random_ex(ctx, f, seed, 0, env);
    if (rc == -1 && ctx->ndims > 2) rc = md_env_random_ex(ctx, f, seed, 1, env);
    return rc;
}

void md_env_free(md_env *env)
{
    /* Entries end at ctx->nsyms or at the first empty one, whichever
       comes first (md_env_random leaves an empty one at the end). */
    int nsyms = env->ctx ? env->ctx->nsyms : 0;
    for (int s = 0; env->val && s < nsyms && env->val[s].v; s++)
        md_mat_free(&env->val[s]);
    for (int s = 0; env->dir && s < nsyms && env->dir[s].v; s++)
        md_mat_free(&env->dir[s]);
    free(env->val);
    free(env->dir);
    free(env->dimsize);
    env->val = env->dir = NULL;
    env->dimsize = NULL;
}
