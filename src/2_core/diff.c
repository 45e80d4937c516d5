/*
 * diff.c -- the differential and its identification (see md_diff.h).
 *
 * Both halves are tables that read like the identities they implement.
 *
 * md_differential walks f once (memoised by node id, so a shared
 * subexpression is differentiated once and its differential is shared
 * too) and applies, for each kind of node, the rule in the comment above
 * its case.  Nodes that do not depend on X have differential 0 and are
 * not visited twice.
 *
 * md_identify is reverse-mode accumulation on df.  Every node N of df that
 * contains dX receives an adjoint A with "A:N" being part of df; the rule
 * for N's kind passes an adjoint to each child that contains dX:
 *
 *     A:(B + C)        = A:B + A:C
 *     A:(s*B)          = (A:B):s                    s a scalar factor
 *     A:(L*F*R)        = (L'*A*R'):F                F a factor of a chain
 *     A:(B .* C)       = (A .* B):C
 *     A:B'             = A':B
 *     a:sum(B)         = (a*matrix(1)):B
 *     a:tr(B)          = (a*eye):B
 *     A:diag(v)        = diag(A):v                  (and back)
 *     A:dX             => G += A
 *
 * Adjoints from several parents are summed before a node passes them on,
 * which is what keeps the gradient of a shared DAG linear in its size.
 */
#include "md_diff.h"

#include <stdlib.h>
#include <string.h>

#include "md_builtins.h"
#include "md_simplify.h"

typedef struct md_dstate {
    md_ctx *ctx;
    int sym;
    uint32_t n;          /* nodes that existed when we started */
    md_expr **memo;      /* memo[id]: d(node) */
    signed char *dep;    /* dep[id]: -1 unknown, 0/1 */
} md_dstate;

static int md_depends(md_dstate *st, md_expr *e)
{
    if (e->id >= st->n) return 1;   /* cannot happen for nodes of f */
    if (st->dep[e->id] >= 0) return st->dep[e->id];
    int d = 0;
    if (e->kind == MD_SYM) d = e->ival == st->sym;
    for (int i = 0; i < e->nargs && !d; i++) d = md_depends(st, e->args[i]);
    st->dep[e->id] = (signed char)d;
    return d;
}

static md_expr *md_d(md_dstate *st, md_expr *e);

/*
 * f'(a) for an elementwise function f, as an expression of a's shape: one
 * rule per line of md_builtins.def, which points here (md_fns[f].fprime).
 * e is the node f(a).
 */
#define ARG (e->args[0])
#define ONE (md_ones(ctx, e->args[0]->rows, e->args[0]->cols))

/* d sin(a) = cos(a) .* da */
md_expr *md_fprime_SIN(md_ctx *ctx, md_expr *e) { return md_func(ctx, MD_FN_COS, ARG); }

/* d cos(a) = -sin(a) .* da */
md_expr *md_fprime_COS(md_ctx *ctx, md_expr *e) { return md_neg(ctx, md_func(ctx, MD_FN_SIN, ARG)); }

/* d tan(a) = (1 + tan(a).^2) .* da */
md_expr *md_fprime_TAN(md_ctx *ctx, md_expr *e) { return md_add2(ctx, ONE, md_pow_si(ctx, e, 2, 1)); }

/* d arcsin(a) = (1 - a.^2).^(-1/2) .* da */
md_expr *md_fprime_ARCSIN(md_ctx *ctx, md_expr *e)
{
    return md_pow_si(ctx, md_sub(ctx, ONE, md_pow_si(ctx, ARG, 2, 1)), -1, 2);
}

/* d arccos(a) = -(1 - a.^2).^(-1/2) .* da */
md_expr *md_fprime_ARCCOS(md_ctx *ctx, md_expr *e)
{
    return md_neg(ctx, md_pow_si(ctx, md_sub(ctx, ONE, md_pow_si(ctx, ARG, 2, 1)), -1, 2));
}

/* d arctan(a) = (1 + a.^2).^-1 .* da */
md_expr *md_fprime_ARCTAN(md_ctx *ctx, md_expr *e)
{
    return md_pow_si(ctx, md_add2(ctx, ONE, md_pow_si(ctx, ARG, 2, 1)), -1, 1);
}

/* d exp(a) = exp(a) .* da */
md_expr *md_fprime_EXP(md_ctx *ctx, md_expr *e)
{
    (void)ctx;
    return e;
}

/* d log(a) = da ./ a */
md_expr *md_fprime_LOG(md_ctx *ctx, md_expr *e) { return md_pow_si(ctx, ARG, -1, 1); }

/* d tanh(a) = (1 - tanh(a).^2) .* da */
md_expr *md_fprime_TANH(md_ctx *ctx, md_expr *e) { return md_sub(ctx, ONE, md_pow_si(ctx, e, 2, 1)); }

/* d abs(a) = sign(a) .* da          (at 0: sign(0) = 0, a subgradient) */
md_expr *md_fprime_ABS(md_ctx *ctx, md_expr *e) { return md_func(ctx, MD_FN_SIGN, ARG); }

/* d sign(a) = 0 away from 0 */
md_expr *md_fprime_SIGN(md_ctx *ctx, md_expr *e) { return md_zero(ctx, ARG->rows, ARG->cols); }

/* d relu(a) = step(a) .* da         (at 0: step(0) = 0, a subgradient) */
md_expr *md_fprime_RELU(md_ctx *ctx, md_expr *e) { return md_func(ctx, MD_FN_STEP, ARG); }

/* d step(a) = 0 away from 0 */
md_expr *md_fprime_STEP(md_ctx *ctx, md_expr *e) { return md_zero(ctx, ARG->rows, ARG->cols); }

/* d sqrt(a) = da ./ (2*sqrt(a)) */
md_expr *md_fprime_SQRT(md_ctx *ctx, md_expr *e) { return md_scale_si(ctx, 1, 2, md_pow_si(ctx, e, -1, 1)); }

/* d sigmoid(a) = sigmoid(a) .* (1 - sigmoid(a)) .* da */
md_expr *md_fprime_SIGMOID(md_ctx *ctx, md_expr *e) { return md_had2(ctx, e, md_sub(ctx, ONE, e)); }

/* d softplus(a) = sigmoid(a) .* da          (softplus(a) = log(1 + exp(a))) */
md_expr *md_fprime_SOFTPLUS(md_ctx *ctx, md_expr *e) { return md_func(ctx, MD_FN_SIGMOID, ARG); }

/* d log1p(a) = da ./ (1 + a)                 (log1p(a) = log(1 + a)) */
md_expr *md_fprime_LOG1P(md_ctx *ctx, md_expr *e) { return md_pow_si(ctx, md_add2(ctx, ONE, ARG), -1, 1); }

#undef ARG
#undef ONE

static md_expr *md_fprime(md_ctx *ctx, md_expr *e)
{
    /* d f^(k)(a) = f^(k+1)(a) .* da for a declared generic function */
    if (e->ival == MD_FN_GENERIC) return md_generic(ctx, e->aux, e->order + 1, e->args[0]);
    return md_fns[e->ival].fprime(ctx, e);
}

static md_expr *md_d_uncached(md_dstate *st, md_expr *e)
{
    md_ctx *ctx = st->ctx;
    md_expr *zero = md_zero(ctx, e->rows, e->cols);
    if (!md_depends(st, e)) return zero;
    md_expr **terms, **t, *r;
    int nt;
    switch (e->kind) {
    /* dX */
    case MD_SYM: return md_diff_of(ctx, e->ival);
    /* d(A + B) = dA + dB */
    case MD_ADD:
        terms = md_xmalloc((size_t)e->nargs * sizeof *terms);
        for (int i = 0; i < e->nargs; i++) terms[i] = md_d(st, e->args[i]);
        r = md_add(ctx, e->nargs, terms);
        free(terms);
        return r;
    /* d(A*B*C) = dA*B*C + A*dB*C + A*B*dC, and the same for .* */
    case MD_MUL:
    case MD_HAD:
        terms = md_xmalloc((size_t)e->nargs * sizeof *terms);
        t = md_xmalloc((size_t)e->nargs * sizeof *t);
        nt = 0;
        for (int i = 0; i < e->nargs; i++) {
            if (!md_depends(st, e->args[i])) continue;
            memcpy(t, e->args, (size_t)e->nargs * sizeof *t);
            t[i] = md_d(st, e->args[i]);
            terms[nt++] = e->kind == MD_MUL ? md_mul(ctx, e->nargs, t) : md_had(ctx, e->nargs, t);
        }
        r = md_add(ctx, nt, terms);
        if (nt == 0) r = zero;
        free(terms);
        free(t);
        return r;
    case MD_POW: {
        md_expr *b = e->args[0], *x = e->args[1];
        if (!md_depends(st, x)) {
            /* d(B.^K) = K .* B.^(K-1) .* dB   (K a scalar or of B's shape) */
            md_expr *km1 = md_sub(ctx, x, md_ones(ctx, x->rows, x->cols));
            return md_had(ctx, 3, (md_expr *[]){x, md_pow(ctx, b, km1), md_d(st, b)});
        }
        /* 0.^X is 0 wherever it is defined (X > 0), and so is its
           differential (log(0) .* dX would be -inf .* 0) */
        if (md_is_zero(b)) return zero;
        /* d(B.^X) = B.^X .* (log(B) .* dX + X .* dB ./ B) */
        md_expr *t1 = md_had2(ctx, md_func(ctx, MD_FN_LOG, b), md_d(st, x));
        md_expr *t2 = md_had(ctx, 3,
                             (md_expr *[]){x, md_pow_si(ctx, b, -1, 1), md_d(st, b)});
        return md_had2(ctx, e, md_add2(ctx, t1, t2));
    }
    case MD_MPOW: {
        md_expr *b = e->args[0];
        int k = e->ival;
        md_expr *db = md_d(st, b);
        if (k < 0) {
            /* d inv(B) = -inv(B)*dB*inv(B); then B^-k = inv(B)^k */
            md_expr *ib = md_inv(ctx, b);
            db = md_neg(ctx, md_mul3(ctx, ib, db, ib));
            b = ib;
            k = -k;
        }
        /* d(B^k) = sum_i B^i * dB * B^(k-1-i) */
        terms = md_xmalloc((size_t)k * sizeof *terms);
        for (int i = 0; i < k; i++)
            terms[i] = md_mul3(ctx, md_mpow(ctx, b, i), db, md_mpow(ctx, b, k - 1 - i));
        r = md_add(ctx, k, terms);
        free(terms);
        return r;
    }
    /* d(A') = (dA)' */
    case MD_TRANS: return md_trans(ctx, md_d(st, e->args[0]));
    /* d f(A) = f'(A) .* dA */
    case MD_FUNC: {
        md_expr *fp = md_fprime(ctx, e);
        return md_had2(ctx, fp, md_d(st, e->args[0]));
    }
    /* d sum(A) = sum(dA), d tr(A) = tr(dA), d diag(A) = diag(dA) */
    case MD_SUM:
    case MD_TR:
    case MD_DIAGM:
    case MD_DIAGV: return md_unary(ctx, e->kind, md_d(st, e->args[0]));
    /* d norm1(A) = sign(A):dA */
    case MD_NORM1:
        return md_frob(ctx, md_func(ctx, MD_FN_SIGN, e->args[0]), md_d(st, e->args[0]));
    /* d norm2(A) = (A:dA) / norm2(A) */
    case MD_NORM2:
        return md_mul2(ctx, md_frob(ctx, e->args[0], md_d(st, e->args[0])),
                       md_pow_si(ctx, e, -1, 1));
    /* d det(A) = det(A) * tr(inv(A)*dA) */
    case MD_DET:
        return md_mul2(ctx, e,
                       md_unary(ctx, MD_TR, md_mul2(ctx, md_inv(ctx, e->args[0]), md_d(st, e->args[0]))));
    /* d logdet(A) = tr(inv(A)*dA) */
    case MD_LOGDET:
        return md_unary(ctx, MD_TR, md_mul2(ctx, md_inv(ctx, e->args[0]), md_d(st, e->args[0])));
    /* d softmax(a) = s .* da - s*(s'*da)          s = softmax(a) */
    case MD_SOFTMAX: {
        md_expr *da = md_d(st, e->args[0]);
        return md_sub(ctx, md_had2(ctx, e, da), md_mul2(ctx, e, md_frob(ctx, e, da)));
    }
    /* d logsumexp(a) = softmax(a)'*da */
    case MD_LSE: return md_frob(ctx, md_unary(ctx, MD_SOFTMAX, e->args[0]), md_d(st, e->args[0]));
    /* d vec(A) = vec(dA) */
    case MD_VEC: return md_vec_of(ctx, md_d(st, e->args[0]));
    /* d kron(A, B) = kron(dA, B) + kron(A, dB) */
    case MD_KRON:
        return md_add2(ctx, md_kron(ctx, md_d(st, e->args[0]), e->args[1]),
                       md_kron(ctx, e->args[0], md_d(st, e->args[1])));
    case MD_NUM: case MD_DIFF: case MD_ZERO: case MD_ONES: case MD_EYE: case MD_COMM: case MD_NKINDS:
        return zero;
    }
    return zero;
}

static md_expr *md_d(md_dstate *st, md_expr *e)
{
    if (e->id < st->n && st->memo[e->id]) return st->memo[e->id];
    md_expr *r = md_d_uncached(st, e);
    if (e->id < st->n) st->memo[e->id] = r;
    return r;
}

md_expr *md_differential(md_ctx *ctx, md_expr *f, int sym)
{
    md_dstate st = {ctx, sym, ctx->nnodes, NULL, NULL};
    st.memo = md_xcalloc(st.n, sizeof *st.memo);
    st.dep = md_xmalloc(st.n);
    memset(st.dep, -1, st.n);
    md_expr *r = md_d(&st, f);
    free(st.memo);
    free(st.dep);
    return r;
}

/* ---- identification -------------------------------------------------- */


/* Post-order of the nodes of df that contain dX. */
static void md_topo(md_expr *e, uint32_t n, char *seen, md_expr ***order, uint32_t *len, uint32_t *cap)
{
    if (!e->has_diff || seen[e->id]) return;
    seen[e->id] = 1;
    for (int i = 0; i < e->nargs; i++) md_topo(e->args[i], n, seen, order, len, cap);
    if (*len == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *order = md_xrealloc(*order, *cap * sizeof **order);
    }
    (*order)[(*len)++] = e;
}

/*
 * The identification step: the term A : N, for a node N of df that
 * contains a differential, becomes sum_i A_i : C_i over N's children C_i
 * that contain one.  emit(arg, A_i, C_i) receives each; the return value
 * names the identity used (for --steps), or is NULL when N's kind has no
 * rule (an internal error: every df md_differential builds is covered).
 * md_identify and the derivations of --steps both take their steps here,
 * so the derivation shown and the gradient printed cannot drift apart.
 */
typedef struct md_unvec_arg {
    md_ctx *ctx;
    md_expr *va;                 /* vec(A), A the adjoint */
    md_emit_adjoint emit;
    void *arg;
} md_unvec_arg;

/* a term C vec(E) of vec(N): E's adjoint is unvec(C' vec(A)) */
static void md_unvec_emit(void *arg, md_expr *C, md_expr *child)
{
    md_unvec_arg *u = arg;
    u->emit(u->arg, md_unvec(u->ctx, md_mul2(u->ctx, md_trans(u->ctx, C), u->va), child->rows, child->cols), child);
}

const char *md_identify_step(md_ctx *ctx, md_expr *A, md_expr *N, md_emit_adjoint emit, void *arg)
{
    md_expr **t;
    const char *why = NULL;
    switch (N->kind) {
    /* A:(B + C) = A:B + A:C */
    case MD_ADD:
        for (int i = 0; i < N->nargs; i++)
            if (N->args[i]->has_diff) emit(arg, A, N->args[i]);
        return "A:(B + C) = A:B + A:C";
    case MD_MUL: {
        int s = 0;
        while (s < N->nargs && md_is_scalar(N->args[s])) s++;
        t = md_xmalloc((size_t)(N->nargs + 2) * sizeof *t);
        for (int i = 0; i < N->nargs; i++) {
            md_expr *F = N->args[i];
            if (!F->has_diff) continue;
            int m = 0;
            if (i < s) {
                /* A:(s*B) = (A:B):s   for a scalar factor s */
                for (int j = 0; j < N->nargs; j++)
                    if (j != i) t[m++] = N->args[j];
                emit(arg, md_frob(ctx, A, md_mul(ctx, m, t)), F);
                why = "A:(bC) = (A:C)b";
            } else {
                /* A:(S*L*F*R) = (S*L'*A*R'):F */
                for (int j = 0; j < s; j++) t[m++] = N->args[j];
                if (i > s) t[m++] = md_trans(ctx, md_mul(ctx, i - s, N->args + s));
                t[m++] = A;
                if (i + 1 < N->nargs) t[m++] = md_trans(ctx, md_mul(ctx, N->nargs - i - 1, N->args + i + 1));
                emit(arg, md_mul(ctx, m, t), F);
                int left = i > s, right = i + 1 < N->nargs;
                why = left && right ? "A:BCD = BᵀADᵀ:C"
                      : left        ? "A:BC = BᵀA:C"
                      : right       ? "A:BC = ACᵀ:B"
                                    : "A:(bC) = (bA):C";
            }
        }
        free(t);
        return why;
    }
    /* A:(B .* C) = (A .* B):C */
    case MD_HAD:
        t = md_xmalloc((size_t)N->nargs * sizeof *t);
        for (int i = 0; i < N->nargs; i++) {
            if (!N->args[i]->has_diff) continue;
            int m = 0;
            t[m++] = A;
            for (int j = 0; j < N->nargs; j++)
                if (j != i) t[m++] = N->args[j];
            emit(arg, md_had(ctx, m, t), N->args[i]);
        }
        free(t);
        return "A:(B∘C) = (A∘B):C";
    /* A:B' = A':B */
    case MD_TRANS: emit(arg, md_trans(ctx, A), N->args[0]); return "A:Bᵀ = Aᵀ:B";
    /* a:sum(B) = (a*matrix(1)):B */
    case MD_SUM:
        emit(arg, md_mul2(ctx, A, md_ones(ctx, N->args[0]->rows, N->args[0]->cols)), N->args[0]);
        return "sum(B) = 1:B";
    /* a:tr(B) = (a*eye):B */
    case MD_TR: emit(arg, md_mul2(ctx, A, md_eye(ctx, N->args[0]->rows)), N->args[0]); return "tr(B) = I:B";
    /* A:diag(v) = diag(A):v */
    case MD_DIAGM: emit(arg, md_unary(ctx, MD_DIAGV, A), N->args[0]); return "A:diag(v) = diag(A):v";
    /* A:diag(B) = diag(A):B */
    case MD_DIAGV: emit(arg, md_unary(ctx, MD_DIAGM, A), N->args[0]); return "A:diag(B) = diag(A):B";
    /* A:N for N = vec(B) or kron(B, C): with vec(N) = sum_k C_k vec(E_k)
       (md_vec_step), A:N = vec(A)'C_k vec(E_k) = unvec(C_k' vec(A)):E_k */
    case MD_VEC:
    case MD_KRON: {
        md_unvec_arg u = {ctx, md_vec_of(ctx, A), emit, arg};
        return md_vec_step(ctx, N, md_unvec_emit, &u) ? (N->kind == MD_VEC ? "A:vec(B) = unvec(A):B"
                                                                           : "A:(B ⊗ C) = unvec(Kᵀ vec A):B")
                                                      : NULL;
    }
    /* no rule: df never has these above its differentials */
    case MD_NUM: case MD_SYM: case MD_DIFF: case MD_ZERO: case MD_ONES: case MD_EYE: case MD_POW:
    case MD_MPOW: case MD_FUNC: case MD_NORM1: case MD_NORM2: case MD_DET: case MD_LOGDET:
    case MD_SOFTMAX: case MD_LSE: case MD_COMM: case MD_NKINDS: return NULL;
    }
    return NULL;
}

typedef struct md_adj {
    md_expr **v;
    int n, cap;
} md_adj;

static void md_adj_push(md_adj *a, md_expr *e)
{
    if (md_is_zero(e)) return;
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 4;
        a->v = md_xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = e;
}

static void md_adj_emit(void *arg, md_expr *A, md_expr *child)
{
    md_adj *adj = arg;
    md_adj_push(&adj[child->id], A);
}

md_expr *md_identify(md_ctx *ctx, md_expr *df, int sym)
{
    const md_symbol *X = &ctx->syms[sym];
    uint32_t n = ctx->nnodes;
    char *seen = md_xcalloc(n, 1);
    md_expr **order = NULL;
    uint32_t len = 0, cap = 0;
    md_topo(df, n, seen, &order, &len, &cap);
    free(seen);

    md_adj *adj = md_xcalloc(n, sizeof *adj);
    md_adj grad = {0};
    int ok = 1;
    if (len > 0) md_adj_push(&adj[df->id], md_num_si(ctx, 1, 1));

    for (uint32_t k = len; k-- > 0 && ok;) {
        md_expr *N = order[k];
        md_adj *a = &adj[N->id];
        if (a->n == 0) continue;
        md_expr *A = md_add(ctx, a->n, a->v);
        free(a->v);
        a->v = NULL;
        a->n = 0;
        /* A:dX  =>  G += A */
        if (N->kind == MD_DIFF) {
            if (N->ival == sym) md_adj_push(&grad, A);
            continue;
        }
        if (!md_identify_step(ctx, A, N, md_adj_emit, adj)) ok = 0;
    }
    for (uint32_t i = 0; i < n; i++) free(adj[i].v);
    free(adj);
    free(order);
    md_expr *G = NULL;
    if (ok) G = grad.n ? md_add(ctx, grad.n, grad.v) : md_zero(ctx, X->rows, X->cols);
    free(grad.v);
    return G;
}

md_expr *md_sym_part(md_ctx *ctx, md_expr *G)
{
    /* the gradient on the space of symmetric matrices: sym(G) = (G + G')/2 */
    return md_scale_si(ctx, 1, 2, md_add2(ctx, G, md_trans(ctx, G)));
}

md_expr *md_gradient(md_ctx *ctx, md_expr *f, int sym)
{
    md_expr *df = md_differential(ctx, f, sym);
    md_expr *G = md_identify(ctx, df, sym);
    if (G && md_sym_is_symmetric(ctx, sym)) G = md_sym_part(ctx, G);
    return G;
}

/* ---- derivatives of non-scalar functions: identification in vec form ---- */

/*
 * The Magnus-Neudecker identification: from dF, linear in dX, the matrix
 * J with vec(dF) = J vec(dX), so that J = d vec(F) / d vec(X)'.  It is
 * forward accumulation over the nodes of dF that hold dX, each node N
 * getting J(N) of size (rows*cols of N) x (rows*cols of X):
 *
 *     J(dX)            = eye
 *     J(A + B)         = J(A) + J(B)
 *     J(s*B)           = vec(B) J(s)            s a scalar factor holding dX
 *     J(S*L*F*R)       = S kron(R', L) J(F)     vec(L F R) = (R' ⊗ L) vec F
 *     J(B .* C)        = diag(vec(B)) J(C)      vec(B ∘ C) = diag(vec B) vec C
 *     J(B')            = K_rc J(B)              vec(B') = K vec(B), B r x c
 *     J(sum(B))        = vector(1)' J(B)        J(tr(B)) = vec(eye)' J(B)
 *     J(diag(v))       = D J(v)                 D = diag(vec(eye)) kron(1, eye)
 *     J(diag(B))       = D' J(B)                J(vec(B)) = J(B)
 *
 * Missing L or R is an identity of the right size; the constructors turn
 * kron(1, A) into A, so a vector function of a vector gives plain
 * products (tanh(A*x): diag(1 - tanh(A*x).^2)*A).  A Kronecker product
 * above dX has no rule (NULL: md_derivative reports it).  The table is
 * md_vec_step, one case per line above; --steps shows the same steps.
 */
typedef struct md_jstate {
    md_ctx *ctx;
    int sym;
    md_expr **memo;
    uint32_t n;
    int failed;
} md_jstate;

static md_expr *md_jac_node(md_jstate *st, md_expr *N);

/* D with vec(diag(v)) = D v, v of length n: diag(vec(eye(n))) * kron(vector(1, n), eye(n)). */
static md_expr *md_diag_selector(md_ctx *ctx, int n)
{
    md_expr *I = md_eye(ctx, n);
    return md_mul2(ctx, md_unary(ctx, MD_DIAGM, md_vec_of(ctx, I)), md_kron(ctx, md_ones(ctx, n, MD_DIM_ONE), I));
}

/*
 * A diagonal factor diag(u) (u holding dX) between L and R, straight to
 * u where that is shorter than (R' ⊗ L) D:
 *
 *     L diag(u) r   = L diag(r) u                 r a column
 *     l diag(u) R   = (R' diag(l') u)'            l a row: vec is R' diag(l') u
 *     diag(u) R     = (u 1') ∘ R:  vec = diag(vec R)(1 ⊗ I) u
 *     L diag(u)     = L ∘ (1 u'):  vec = diag(vec L)(I ⊗ 1) u
 *
 * (L or R NULL: absent).  Emits the coefficient of vec(u) and returns the
 * identity's name, or NULL for L and R both matrices (then the generic
 * rule and vec(diag u) = D u apply).
 */
static const char *md_diag_factor(md_ctx *ctx, md_expr *S, md_expr *L, md_expr *R, md_expr *F,
                                  md_emit_adjoint emit, void *arg)
{
    md_expr *u = F->args[0];
    int n = F->rows;
    if (R && R->cols == MD_DIM_ONE) {
        emit(arg, md_mul3(ctx, S, L ? L : md_eye(ctx, n), md_unary(ctx, MD_DIAGM, R)), u);
        return "A diag(u) b = A diag(b) u";
    }
    if (L && L->rows == MD_DIM_ONE) {
        emit(arg, md_mul3(ctx, S, R ? md_trans(ctx, R) : md_eye(ctx, n), md_unary(ctx, MD_DIAGM, md_trans(ctx, L))), u);
        return "vec(aᵀ diag(u) B) = Bᵀ diag(a) u";
    }
    if (!L) {
        md_expr *E = md_kron(ctx, md_ones(ctx, R->cols, MD_DIM_ONE), md_eye(ctx, n));
        emit(arg, md_mul3(ctx, S, md_unary(ctx, MD_DIAGM, md_vec_of(ctx, R)), E), u);
        return "vec(diag(u) B) = diag(vec B)(1 ⊗ I) u";
    }
    if (!R) {
        md_expr *E = md_kron(ctx, md_eye(ctx, n), md_ones(ctx, L->rows, MD_DIM_ONE));
        emit(arg, md_mul3(ctx, S, md_unary(ctx, MD_DIAGM, md_vec_of(ctx, L)), E), u);
        return "vec(A diag(u)) = diag(vec A)(I ⊗ 1) u";
    }
    return NULL;
}

const char *md_vec_step(md_ctx *ctx, md_expr *N, md_emit_adjoint emit, void *arg)
{
    md_expr **t;
    const char *why = NULL;
    switch (N->kind) {
    /* vec(A + B) = vec(A) + vec(B) */
    case MD_ADD: {
        md_expr *I = md_eye(ctx, md_ctx_dim_mul(ctx, N->rows, N->cols));
        for (int i = 0; i < N->nargs; i++)
            if (N->args[i]->has_diff) emit(arg, I, N->args[i]);
        return "vec(A + B) = vec A + vec B";
    }
    case MD_MUL: {
        int s = 0;
        while (s < N->nargs && md_is_scalar(N->args[s])) s++;
        t = md_xmalloc((size_t)(N->nargs + 1) * sizeof *t);
        for (int i = 0; i < N->nargs; i++) {
            md_expr *F = N->args[i];
            if (!F->has_diff) continue;
            if (i < s) {
                /* vec(s*B) = vec(B) s, s a scalar factor */
                int m = 0;
                for (int j = 0; j < N->nargs; j++)
                    if (j != i) t[m++] = N->args[j];
                emit(arg, md_vec_of(ctx, md_mul(ctx, m, t)), F);
                why = "vec(bC) = vec(C) b";
            } else {
                /* vec(S*L*F*R) = S (R' ⊗ L) vec(F) */
                md_expr *S = s > 0 ? md_mul(ctx, s, N->args) : md_num_si(ctx, 1, 1);
                int left = i > s, right = i + 1 < N->nargs;
                md_expr *L = left ? md_mul(ctx, i - s, N->args + s) : md_eye(ctx, F->rows);
                md_expr *R = right ? md_mul(ctx, N->nargs - i - 1, N->args + i + 1) : md_eye(ctx, F->cols);
                const char *dwhy = F->kind == MD_DIAGM && (left || right) ? md_diag_factor(ctx, S, left ? L : NULL,
                                                                                         right ? R : NULL, F, emit, arg)
                                                                        : NULL;
                if (dwhy) {
                    why = dwhy;
                    continue;
                }
                emit(arg, md_mul2(ctx, S, md_kron(ctx, md_trans(ctx, R), L)), F);
                why = left && right ? "vec(ABC) = (Cᵀ ⊗ A) vec B"
                      : left        ? "vec(AB) = (I ⊗ A) vec B"
                      : right       ? "vec(AB) = (Bᵀ ⊗ I) vec A"
                                    : "vec(bC) = b vec C";
            }
        }
        free(t);
        return why;
    }
    /* vec(B .* C) = diag(vec(B)) vec(C) */
    case MD_HAD:
        t = md_xmalloc((size_t)N->nargs * sizeof *t);
        for (int i = 0; i < N->nargs; i++) {
            if (!N->args[i]->has_diff) continue;
            int m = 0;
            for (int j = 0; j < N->nargs; j++)
                if (j != i) t[m++] = N->args[j];
            emit(arg, md_unary(ctx, MD_DIAGM, md_vec_of(ctx, md_had(ctx, m, t))), N->args[i]);
        }
        free(t);
        return "vec(A ∘ B) = diag(vec A) vec B";
    /* vec(B') = K vec(B) */
    case MD_TRANS: {
        md_expr *B = N->args[0];
        emit(arg, md_comm(ctx, B->rows, B->cols), B);
        return "vec(Aᵀ) = K vec A";
    }
    /* sum(B) = 1' vec(B) */
    case MD_SUM: {
        md_expr *B = N->args[0];
        emit(arg, md_trans(ctx, md_ones(ctx, md_ctx_dim_mul(ctx, B->rows, B->cols), MD_DIM_ONE)), B);
        return "sum(A) = 1ᵀ vec A";
    }
    /* tr(B) = vec(eye)' vec(B) */
    case MD_TR: {
        md_expr *B = N->args[0];
        emit(arg, md_trans(ctx, md_vec_of(ctx, md_eye(ctx, B->rows))), B);
        return "tr(A) = vec(I)ᵀ vec A";
    }
    /* vec(diag(v)) = D v, diag(B) = D' vec(B) */
    case MD_DIAGM: emit(arg, md_diag_selector(ctx, N->rows), N->args[0]); return "vec(diag v) = D v";
    case MD_DIAGV:
        emit(arg, md_trans(ctx, md_diag_selector(ctx, N->rows)), N->args[0]);
        return "diag(A) = Dᵀ vec A";
    /* vec(vec(B)) = vec(B) */
    case MD_VEC:
        emit(arg, md_eye(ctx, N->rows), N->args[0]);
        return "vec(vec A) = vec A";
    /* vec(kron(A, B)) = (I_n ⊗ K_qm ⊗ I_p)(vec A ⊗ vec B) for A m x n,
       B p x q (Magnus and Neudecker, theorem 3.10), and
       vec A ⊗ vec B = (I ⊗ vec B) vec A = (vec A ⊗ I) vec B */
    case MD_KRON: {
        md_expr *A = N->args[0], *B = N->args[1];
        md_expr *P = md_kron(ctx, md_kron(ctx, md_eye(ctx, A->cols), md_comm(ctx, B->cols, A->rows)),
                             md_eye(ctx, B->rows));
        if (A->has_diff)
            emit(arg, md_mul2(ctx, P, md_kron(ctx, md_eye(ctx, md_ctx_dim_mul(ctx, A->rows, A->cols)), md_vec_of(ctx, B))),
                 A);
        if (B->has_diff)
            emit(arg, md_mul2(ctx, P, md_kron(ctx, md_vec_of(ctx, A), md_eye(ctx, md_ctx_dim_mul(ctx, B->rows, B->cols)))),
                 B);
        return "vec(A ⊗ B) = (I ⊗ K ⊗ I)(vec A ⊗ vec B)";
    }
    /* kinds that never sit above a differential */
    case MD_NUM: case MD_SYM: case MD_DIFF: case MD_ZERO: case MD_ONES: case MD_EYE:
    case MD_POW: case MD_MPOW: case MD_FUNC: case MD_NORM1: case MD_NORM2: case MD_DET: case MD_LOGDET:
    case MD_SOFTMAX: case MD_LSE: case MD_COMM: case MD_NKINDS: return NULL;
    }
    return NULL;
}

typedef struct md_jsum {
    md_jstate *st;
    md_expr *acc;
} md_jsum;

/* C vec(child) contributes C J(child) */
static void md_jac_emit(void *arg, md_expr *C, md_expr *child)
{
    md_jsum *js = arg;
    js->acc = md_add2(js->st->ctx, js->acc, md_mul2(js->st->ctx, C, md_jac_node(js->st, child)));
}

static md_expr *md_jac_uncached(md_jstate *st, md_expr *N)
{
    md_ctx *ctx = st->ctx;
    const md_symbol *X = &ctx->syms[st->sym];
    int xsize = md_ctx_dim_mul(ctx, X->rows, X->cols);
    md_expr *zero = md_zero(ctx, md_ctx_dim_mul(ctx, N->rows, N->cols), xsize);
    if (!N->has_diff) return zero;
    if (N->kind == MD_DIFF) return N->ival == st->sym ? md_eye(ctx, xsize) : zero;
    md_jsum js = {st, zero};
    if (!md_vec_step(ctx, N, md_jac_emit, &js)) {
        st->failed = 1;
        return zero;
    }
    return js.acc;
}

static md_expr *md_jac_node(md_jstate *st, md_expr *N)
{
    if (N->id < st->n && st->memo[N->id]) return st->memo[N->id];
    md_expr *r = md_jac_uncached(st, N);
    if (N->id < st->n) st->memo[N->id] = r;
    return r;
}

/* dF with dX replaced by 1 (X a scalar): the coefficient of dX. */
static md_expr *md_coefficient(md_ctx *ctx, md_expr *e, int sym, md_expr **memo, uint32_t n)
{
    if (!e->has_diff) return e;
    if (e->id < n && memo[e->id]) return memo[e->id];
    md_expr *r;
    if (e->kind == MD_DIFF) {
        r = e->ival == sym ? md_num_si(ctx, 1, 1) : md_zero(ctx, e->rows, e->cols);
    } else {
        md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
        for (int i = 0; i < e->nargs; i++) a[i] = md_coefficient(ctx, e->args[i], sym, memo, n);
        r = md_rebuild(ctx, e, a);
        free(a);
    }
    if (e->id < n) memo[e->id] = r;
    return r;
}

/* N_n = (eye + K_nn)/2: vec(sym(D)) = N_n vec(D), the derivative along
   symmetric directions. */
static md_expr *md_symmetriser(md_ctx *ctx, int n)
{
    return md_scale_si(ctx, 1, 2, md_add2(ctx, md_eye(ctx, md_ctx_dim_mul(ctx, n, n)), md_comm(ctx, n, n)));
}

md_expr *md_vec_jacobian(md_ctx *ctx, md_expr *f, int sym)
{
    const md_symbol *X = &ctx->syms[sym];
    if (md_is_scalar(f)) {
        md_expr *G = md_gradient(ctx, f, sym);
        return G ? md_trans(ctx, md_vec_of(ctx, G)) : NULL;
    }
    md_expr *df = md_differential(ctx, f, sym);
    uint32_t n = ctx->nnodes;
    md_expr **memo = md_xcalloc(n, sizeof *memo);
    md_expr *J;
    if (md_is_scalar(md_sym(ctx, sym))) {
        J = md_vec_of(ctx, md_coefficient(ctx, df, sym, memo, n));
    } else {
        md_jstate st = {ctx, sym, memo, n, 0};
        J = md_jac_node(&st, df);
        if (st.failed) J = NULL;
        if (J && md_sym_is_symmetric(ctx, sym)) J = md_mul2(ctx, J, md_symmetriser(ctx, X->rows));
    }
    free(memo);
    return J;
}

md_expr *md_derivative(md_ctx *ctx, md_expr *f, int sym)
{
    if (md_is_scalar(f)) return md_gradient(ctx, f, sym);
    if (md_is_scalar(md_sym(ctx, sym))) {
        md_expr *df = md_differential(ctx, f, sym);
        uint32_t n = ctx->nnodes;
        md_expr **memo = md_xcalloc(n, sizeof *memo);
        md_expr *C = md_coefficient(ctx, df, sym, memo, n);
        free(memo);
        return C;
    }
    return md_vec_jacobian(ctx, f, sym);
}

md_expr *md_hessian_block(md_ctx *ctx, md_expr *f, int si, int sj)
{
    md_expr *g = md_gradient(ctx, f, si);
    return g ? md_vec_jacobian(ctx, g, sj) : NULL;
}

/* ---- Hessian-vector products ------------------------------------------ */

/*
 * H v for the C backend's NAME_hvp, never through the Hessian: block i of
 * H v is the directional derivative of the gradient G_i along v, D G_i[v]
 * = sum_j (the differential of G_i in X_j with dX_j := V_j).  So it is the
 * differential md_differential already takes, with the differential dX_j
 * replaced by the direction's symbol: an expression of X_i's shape, in the
 * language, with no vec, Kronecker product or commutation matrix, which
 * the emitter brackets and shares like any gradient.  For a symmetric X_j
 * the direction must be symmetric, as dX_j is.
 */
static md_expr *md_subst_diff(md_ctx *ctx, md_expr *e, int sym, md_expr *v, md_expr **memo, uint32_t n)
{
    if (!e->has_diff) return e;
    if (e->kind == MD_DIFF) return e->ival == sym ? v : e;
    if (e->id < n && memo[e->id]) return memo[e->id];
    md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
    for (int i = 0; i < e->nargs; i++) a[i] = md_subst_diff(ctx, e->args[i], sym, v, memo, n);
    md_expr *r = md_rebuild(ctx, e, a);
    free(a);
    if (e->id < n) memo[e->id] = r;
    return r;
}

md_expr *md_hvp(md_ctx *ctx, md_expr *G, int n, const int *wrt, const int *dir)
{
    md_expr *sum = NULL;
    for (int j = 0; j < n; j++) {
        md_expr *dG = md_differential(ctx, G, wrt[j]);
        uint32_t nn = ctx->nnodes;
        md_expr **memo = md_xcalloc(nn ? nn : 1, sizeof *memo);
        md_expr *t = md_subst_diff(ctx, dG, wrt[j], md_sym(ctx, dir[j]), memo, nn);
        free(memo);
        sum = sum ? md_add2(ctx, sum, t) : t;
    }
    return sum ? sum : md_zero(ctx, G->rows, G->cols);
}
