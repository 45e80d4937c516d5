/*
 * print.c -- the text printer (see md_print.h).
 *
 * Precedence levels, loosest first, match the grammar:
 *
 *     SUM  a + b, a - b
 *     PROD a*b, a/b
 *     (PREFIX  log det(A), in the Unicode style only: see md_level)
 *     HAD  a.*b, a./b
 *     NEG  -a
 *     POW  a^b, a.^b        (right-associative)
 *     POST a'
 *     ATOM names, numbers, calls, parenthesised expressions
 *
 * Each node knows its own level (md_level); an operand is wrapped in
 * parentheses exactly when its level is below what its position needs.
 * Some canonical forms print in their familiar spelling: c*A with c < 0
 * inside a sum prints as "- c*A", A .* B.^-1 as A./B, a scalar factor
 * with a negative exponent as a division, c*matrix(1) inside a sum as just
 * c (the sum's other terms fix the shape), inv(X) for X^-1.
 *
 * Temporaries: md_print_program counts, over the graph as it will be
 * printed, how often each node is used.  A node and its transpose count as
 * the same node (T and T').  Nodes used twice or more whose depth is at
 * least 3 (so X*V or x'*y stay inline) get a name.
 */
#include "md_print.h"

#include <stdlib.h>
#include <string.h>

#include "md_builtins.h"
#include "md_shape.h"
#include "md_simplify.h"

enum { L_SUM = MD_LEVEL_SUM, L_PROD, L_PREFIX, L_HAD, L_NEG, L_POW, L_POST, L_ATOM };

typedef struct md_pr {
    md_ctx *ctx;
    md_buf *out;
    const char **name;     /* name[id]: temporary name, or NULL */
    md_expr **transof;     /* transof[id]: print as (transof[id])' */
    uint32_t n;            /* size of the arrays */
    md_expr *top;          /* the node being defined (not replaced by its name) */
    int uni;               /* Unicode style for derivations: ∘ ᵀ λ, juxtaposition */
    md_expr *negated;      /* a sum printed with its signs flipped: -2*(x - y) as 2*(y - x) */
    int sized;             /* constants with their sizes: eye(n), matrix(1, n, m) */
    const char *sized_ids; /* or only the constants with sized_ids[id] set */
    uint32_t nsized;
    int eye_plain;         /* Unicode: the identity is I (1), is not (2), unknown (0) */
    md_expr **scaled;      /* scaled[id]: print this instead (md_temps.scaled) */
} md_pr;

/* ---- the Unicode style ---------------------------------------------- */

static const char *const md_greek_names[][2] = {
    {"alpha", "α"}, {"beta", "β"}, {"gamma", "γ"}, {"delta", "δ"}, {"epsilon", "ε"},
    {"varepsilon", "ε"}, {"zeta", "ζ"}, {"eta", "η"}, {"theta", "θ"}, {"vartheta", "ϑ"},
    {"iota", "ι"}, {"kappa", "κ"}, {"lambda", "λ"}, {"mu", "μ"}, {"nu", "ν"}, {"xi", "ξ"},
    {"omicron", "ο"}, {"pi", "π"}, {"rho", "ρ"}, {"sigma", "σ"}, {"tau", "τ"}, {"upsilon", "υ"},
    {"phi", "φ"}, {"varphi", "φ"}, {"chi", "χ"}, {"psi", "ψ"}, {"omega", "ω"},
    {"Gamma", "Γ"}, {"Delta", "Δ"}, {"Theta", "Θ"}, {"Lambda", "Λ"}, {"Xi", "Ξ"}, {"Pi", "Π"},
    {"Sigma", "Σ"}, {"Upsilon", "Υ"}, {"Phi", "Φ"}, {"Psi", "Ψ"}, {"Omega", "Ω"}, {NULL, NULL}};

static void pr_name(md_pr *p, const char *name)
{
    if (p->uni)
        for (int i = 0; md_greek_names[i][0]; i++)
            if (!strcmp(md_greek_names[i][0], name)) {
                md_buf_puts(p->out, md_greek_names[i][1]);
                return;
            }
    md_buf_puts(p->out, name);
}

static void pr_tr(md_pr *p) { md_buf_puts(p->out, p->uni ? "ᵀ" : "'"); }

static int is_ident_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Does the factor written at b->s[from..at) end in an inline exponent
   (a^2, a^-1, X^∘2, a^b)?  Its exponent is not raised, so a factor
   juxtaposed after it would read as part of it: a^2x as a^(2x). */
static int ends_in_exponent(const md_buf *b, size_t from, size_t at)
{
    size_t l = at;
    while (l > from && (is_ident_byte(b->s[l - 1]) || b->s[l - 1] == '-')) l--;
    if (l == at) return 0;
    static const char had[] = "^∘";
    size_t k = sizeof had - 1;
    if (l - from >= k && !memcmp(b->s + l - k, had, k)) return 1;
    return l > from && b->s[l - 1] == '^';
}

/* Unicode products are juxtaposed (2Xᵀ(XU - Y)V); a space separates two
   factors only where juxtaposition would glue ASCII names together, or
   an exponent to the next factor (a^2 x). */
static void pr_join(md_pr *p, size_t from, size_t at)
{
    md_buf *b = p->out;
    if (at == 0 || at >= b->len) return;
    size_t l = at, r = at;
    while (l > from && is_ident_byte(b->s[l - 1])) l--;
    while (r < b->len && is_ident_byte(b->s[r])) r++;
    int digit_l = b->s[at - 1] >= '0' && b->s[at - 1] <= '9', digit_r = b->s[at] >= '0' && b->s[at] <= '9';
    const char *sep = NULL;
    if (ends_in_exponent(b, from, at)) sep = " ";           /* a^2 x, not a^2x */
    else if (digit_l && digit_r) sep = "·";                  /* 2·1, not 21 */
    else if ((at - l > 1 && !(b->s[l] >= '0' && b->s[l] <= '9')) || r - at > 1) sep = " ";   /* β sign(A), W1 x */
    if (!sep) return;
    size_t k = strlen(sep);
    for (size_t i = 0; i < k; i++) md_buf_putc(b, ' ');
    memmove(b->s + at + k, b->s + at, b->len - at - k);
    memcpy(b->s + at, sep, k);
}

/* (Also for the node being written: a result c*r is written so.) */
static md_expr *scaled_as(md_pr *p, md_expr *e)
{
    if (!p->scaled || e->id >= p->n) return NULL;
    return p->scaled[e->id];
}

static const char *tmp_name(md_pr *p, md_expr *e)
{
    if (e == p->top || !p->name || e->id >= p->n) return NULL;
    return p->name[e->id];
}

/* The named node e is the transpose of, if any: e prints as T'. */
static md_expr *trans_rep(md_pr *p, md_expr *e)
{
    if (e == p->top || !p->transof || e->id >= p->n) return NULL;
    md_expr *r = p->transof[e->id];
    return r && p->name[r->id] ? r : NULL;
}


static void pr(md_pr *p, md_expr *e, int need);
static int pr_unicode_special(md_pr *p, md_expr *e);

static int num_level(const mpq_t q)
{
    if (mpz_cmp_ui(mpq_denref(q), 1) != 0) return L_PROD;
    return mpq_sgn(q) < 0 ? L_NEG : L_ATOM;
}

/* Splits a product into coefficient, numerator and denominator factors. */
typedef struct md_parts {
    mpq_t coef;
    md_expr *num[64];
    md_expr *den[64];
    int nn, nd;
    md_expr **bnum, **bden;   /* heap when more than 64 */
} md_parts;

static int md_chain_first(const md_expr *e)
{
    int i = 0;
    while (i < e->nargs && md_is_scalar(e->args[i])) i++;
    return i;
}

static int md_level(md_pr *p, md_expr *e)
{
    if (scaled_as(p, e)) return md_level(p, scaled_as(p, e));
    if (tmp_name(p, e)) return L_ATOM;
    if (trans_rep(p, e)) return L_POST;
    switch (e->kind) {
    case MD_NUM: return num_level(e->q);
    case MD_SYM:
    case MD_DIFF:
    case MD_EYE: return L_ATOM;
    case MD_ZERO:
    case MD_ONES: return e->cols == MD_DIM_ONE || e->rows != MD_DIM_ONE ? L_ATOM : L_POST;
    case MD_ADD: return L_SUM;
    case MD_MUL:
        if (e->args[0]->kind == MD_NUM && e->nargs == 2 && md_is_num(e->args[0], -1)) {
            /* -x is a negation, but -1/b (b^-1 a scalar factor) a division */
            md_expr *x = e->args[1];
            int div = md_is_scalar(x) && x->kind == MD_POW && x->args[1]->kind == MD_NUM &&
                      mpq_sgn(x->args[1]->q) < 0 && !tmp_name(p, x);
            return !div && md_level(p, x) >= L_NEG ? L_NEG : L_PROD;
        }
        return L_PROD;
    case MD_HAD: return L_HAD;
    case MD_POW:
        /* a reciprocal B.^-1 prints as 1./B */
        return md_is_num(e->args[1], -1) && !md_is_scalar(e) ? L_HAD : L_POW;
    case MD_MPOW: return e->ival == -1 ? L_ATOM : L_POW;
    case MD_TRANS: return L_POST;
    case MD_LOGDET:
        /* the Unicode log det(A) is an operator applied to a call without
           parentheses between them, so log reaches over whatever follows:
           log det(A)^2 would read as log(det(A)^2), log det(A)a as
           log(det(A)a).  Its level is below every operator that can follow
           it, and it is grouped except where nothing does: (log det(A))^2,
           a^(log det(A)), (log det(A))a, 1/(log det(A)), but
           2a log det(A) and 1/(b log det(A)) (pr_product lowers the need
           of the last factor to L_PREFIX).  logdet(A) is an atom. */
        return p->uni ? L_PREFIX : L_ATOM;
    case MD_FUNC: case MD_SUM: case MD_NORM1: case MD_NORM2: case MD_TR: case MD_DET:
    case MD_DIAGM: case MD_DIAGV: case MD_VEC: case MD_KRON: case MD_COMM: case MD_SOFTMAX: case MD_LSE:
    case MD_NKINDS: return L_ATOM;
    }
    return L_ATOM;
}

static void pr_num(md_pr *p, const mpq_t q)
{
    char *s = mpq_get_str(NULL, 10, q);
    md_buf_puts(p->out, s);
    void (*freefn)(void *, size_t);
    mp_get_memory_functions(NULL, NULL, &freefn);
    freefn(s, strlen(s) + 1);
}

static void pr_wrap(md_pr *p, md_expr *e, int need)
{
    if (md_level(p, e) < need) {
        md_buf_putc(p->out, '(');
        pr(p, e, 0);
        md_buf_putc(p->out, ')');
    } else {
        pr(p, e, need);
    }
}

/* Prints a product without its sign; coef is |coefficient|.  skip_ones
   leaves out a trailing matrix(1) factor (broadcast inside a sum). */
static void pr_product(md_pr *p, md_expr *e, const mpq_t coef, int skip_ones)
{
    int s = e->kind == MD_MUL ? md_chain_first(e) : 0;
    int n = e->kind == MD_MUL ? e->nargs : 1;
    md_expr **args = e->kind == MD_MUL ? e->args : &e;
    if (e->kind != MD_MUL) s = md_is_scalar(e) ? 1 : 0;
    int first = 1;
    mpz_srcptr cn = mpq_numref(coef), cd = mpq_denref(coef);
    if (mpz_cmp_ui(cn, 1) != 0) {
        char *t = mpz_get_str(NULL, 10, cn);
        md_buf_puts(p->out, t);
        void (*freefn)(void *, size_t);
        mp_get_memory_functions(NULL, NULL, &freefn);
        freefn(t, strlen(t) + 1);
        first = 0;
    }
    /* c./B for c*B.^-1 (below): then a scalar chain before it is
       parenthesised, (x'*y)./B, because x'*y./B would divide y */
    md_expr *last = args[n - 1];
    int shortcut = !p->uni && n - s == 1 && last->kind == MD_POW && md_is_num(last->args[1], -1) &&
                   !md_is_scalar(last) && !tmp_name(p, last);
    /* the factor printed last in the numerator and in the denominator:
       nothing follows them, so they need only L_PREFIX where the others
       need L_HAD (log det(A), md_level) */
    int last_num = -1, last_den = -1;
    for (int i = 0; i < n; i++) {
        md_expr *a = args[i];
        if (a->kind == MD_NUM || (skip_ones && i == n - 1 && a->kind == MD_ONES)) continue;
        if (i < s && a->kind == MD_POW && a->args[1]->kind == MD_NUM && mpq_sgn(a->args[1]->q) < 0) last_den = i;
        else last_num = i;
    }
    int has_den = last_den >= 0 || mpz_cmp_ui(cd, 1) != 0;
    /* numerator: args with positive exponents */
    int nden = 0, seen_matrix = 0, bare_chain = 0;
    size_t prev_at = p->out->len;
    for (int i = 0; i < n; i++) {
        md_expr *a = args[i];
        if (a->kind == MD_NUM) continue;
        if (i < s && a->kind == MD_POW && a->args[1]->kind == MD_NUM && mpq_sgn(a->args[1]->q) < 0) {
            nden++;
            continue;
        }
        if (skip_ones && i == n - 1 && a->kind == MD_ONES) continue;
        size_t at = p->out->len;
        if (!first && !p->uni) md_buf_putc(p->out, '*');
        /* scalar factors that are products (x'*y) need no parentheses:
           the chain re-reads to the same canonical product */
        /* a .* product after a matrix factor gets parentheses although .*
           binds tighter: readers coming from MATLAB give .* and * one
           level, and X*A.*B would mean (X*A).*B to them.  After scalars
           only, both readings agree, so 2*A.*B needs none. */
        int after_scalars = !seen_matrix;
        int need = (i < s && a->kind == MD_MUL && md_level(p, a) == L_PROD &&
                    !(a->args[0]->kind == MD_NUM))
                       ? (shortcut ? L_HAD : L_PROD)
                   : seen_matrix ? L_NEG
                                 : L_HAD;
        if (!md_is_scalar(a)) seen_matrix = 1;
        if (p->uni && a->kind == MD_HAD && n - s > 1) need = L_NEG;   /* (P∘M)γ */
        if (i == last_num && !has_den && need == L_HAD) need = L_PREFIX;
        if (!first && after_scalars && !bare_chain && !p->uni && a->kind == MD_POW && md_is_num(a->args[1], -1) &&
            !md_is_scalar(a) && !tmp_name(p, a) && i == n - 1) {
            /* c./B rather than c*1./B: after scalars both readings agree
               (not after x'*y written bare: x'*y./B would divide y) */
            p->out->len = at;
            p->out->s[at] = 0;
            md_buf_puts(p->out, "./");
            pr_wrap(p, a->args[0], L_NEG);
            prev_at = at;
            seen_matrix = 1;
            continue;
        }
        if (need == L_PROD && md_level(p, a) == L_PROD) bare_chain = 1;
        pr_wrap(p, a, need);
        if (!first && p->uni) pr_join(p, prev_at, at);
        prev_at = at;
        first = 0;
    }
    if (first) md_buf_putc(p->out, '1');
    int dn = mpz_cmp_ui(cd, 1) != 0;
    if (nden + dn == 0) return;
    md_buf_putc(p->out, '/');
    int paren = nden + dn > 1;
    if (paren) md_buf_putc(p->out, '(');
    int f = 1;
    size_t den_prev = p->out->len;   /* where the previous factor starts */
    if (dn) {
        char *t = mpz_get_str(NULL, 10, cd);
        md_buf_puts(p->out, t);
        void (*freefn)(void *, size_t);
        mp_get_memory_functions(NULL, NULL, &freefn);
        freefn(t, strlen(t) + 1);
        f = 0;
    }
    for (int i = 0; i < s; i++) {
        md_expr *a = args[i];
        if (!(a->kind == MD_POW && a->args[1]->kind == MD_NUM && mpq_sgn(a->args[1]->q) < 0)) continue;
        size_t at = p->out->len;
        if (!f && !p->uni) md_buf_putc(p->out, '*');
        int joined = !f;
        f = 0;
        mpq_t k;
        mpq_init(k);
        mpq_neg(k, a->args[1]->q);
        if (mpq_cmp_ui(k, 1, 1) == 0) {
            pr_wrap(p, a->args[0], nden + dn == 1 ? L_NEG + 1 : i == last_den ? L_PREFIX : L_HAD);
        } else {
            pr_wrap(p, a->args[0], L_POST);
            md_buf_putc(p->out, '^');
            if (mpz_cmp_ui(mpq_denref(k), 1) != 0) md_buf_putc(p->out, '(');
            pr_num(p, k);
            if (mpz_cmp_ui(mpq_denref(k), 1) != 0) md_buf_putc(p->out, ')');
        }
        if (joined && p->uni) pr_join(p, den_prev, at);   /* 1/(a^2 b), 1/(2·3) */
        den_prev = at;
        mpq_clear(k);
    }
    if (paren) md_buf_putc(p->out, ')');
}

void md_term_coef(const md_expr *e, mpq_t c)
{
    if (e->kind == MD_NUM) mpq_set(c, e->q);
    else if (e->kind == MD_MUL && e->args[0]->kind == MD_NUM) mpq_set(c, e->args[0]->q);
    else mpq_set_ui(c, 1, 1);
}

#define term_coef md_term_coef

int md_sum_order(const md_expr *sum, const char *named, int flip, int *order, char *neg)
{
    mpq_t c;
    mpq_init(c);
    int m = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < sum->nargs; i++) {
            if (named && named[i]) mpq_set_ui(c, 1, 1);
            else md_term_coef(sum->args[i], c);
            if (flip) mpq_neg(c, c);
            int ng = mpq_sgn(c) < 0;
            if (ng != pass) continue;
            order[m] = i;
            neg[m++] = (char)ng;
        }
    mpq_clear(c);
    return m;
}

/* c*matrix(1) with a scalar c: the scalar broadcast over the sum */
static int is_broadcast(md_expr *e, md_expr *sum)
{
    if (e->kind == MD_ONES) return 1;
    if (e->kind != MD_MUL) return 0;
    md_expr *last = e->args[e->nargs - 1];
    if (last->kind != MD_ONES || last->rows != sum->rows || last->cols != sum->cols) return 0;
    for (int i = 0; i < e->nargs - 1; i++)
        if (!md_is_scalar(e->args[i])) return 0;
    return 1;
}

static void pr_sum(md_pr *p, md_expr *e)
{
    /* positive terms first, then the negative ones, each group in order
       (md_sum_order); a term printed by name carries its sign inside it */
    int has_full = 0;
    for (int i = 0; i < e->nargs; i++)
        if (!is_broadcast(e->args[i], e)) has_full = 1;
    int *order = md_xmalloc((size_t)e->nargs * sizeof *order);
    char *negs = md_xmalloc((size_t)e->nargs), *named = md_xcalloc((size_t)e->nargs, 1);
    for (int i = 0; i < e->nargs; i++) named[i] = tmp_name(p, e->args[i]) || trans_rep(p, e->args[i]);
    int m = md_sum_order(e, named, e == p->negated, order, negs);
    mpq_t c;
    mpq_init(c);
    int first = 1;
    for (int k = 0; k < m; k++) {
        md_expr *t = e->args[order[k]];
        if (named[order[k]]) mpq_set_ui(c, 1, 1);
        else term_coef(t, c);
        if (negs[k]) md_buf_puts(p->out, first ? "-" : " - ");
        else if (!first) md_buf_puts(p->out, " + ");
        first = 0;
        mpq_abs(c, c);
        int bc = has_full && is_broadcast(t, e) && !named[order[k]];
        if (named[order[k]]) {
            pr(p, t, L_PROD);
        } else if (t->kind == MD_NUM) {
            pr_num(p, c);
        } else if (t->kind == MD_MUL && (t->args[0]->kind == MD_NUM || bc)) {
            pr_product(p, t, c, bc);
        } else if (bc) {
            md_buf_putc(p->out, '1');
        } else {
            pr_wrap(p, t, L_PROD);
        }
    }
    mpq_clear(c);
    free(order);
    free(negs);
    free(named);
}

static void pr_had(md_pr *p, md_expr *e)
{
    int first = 1;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < e->nargs; i++) {
            md_expr *a = e->args[i];
            int inv = a->kind == MD_POW && a->args[1]->kind == MD_NUM && mpq_sgn(a->args[1]->q) < 0 &&
                      !tmp_name(p, a);
            if (inv != pass) continue;
            if (inv) {
                md_buf_puts(p->out, first ? (p->uni ? "1⊘" : "1./") : (p->uni ? "⊘" : "./"));
                if (md_is_num(a->args[1], -1)) {
                    pr_wrap(p, a->args[0], L_NEG);
                } else {
                    /* ./B.^k for B.^-k */
                    mpq_t k;
                    mpq_init(k);
                    mpq_neg(k, a->args[1]->q);
                    pr_wrap(p, a->args[0], L_POST);
                    md_buf_puts(p->out, p->uni ? "^∘" : ".^");
                    int frac = mpz_cmp_ui(mpq_denref(k), 1) != 0;
                    if (frac) md_buf_putc(p->out, '(');
                    pr_num(p, k);
                    if (frac) md_buf_putc(p->out, ')');
                    mpq_clear(k);
                }
            } else {
                if (!first) md_buf_puts(p->out, p->uni ? "∘" : ".*");
                pr_wrap(p, a, L_NEG);
            }
            first = 0;
        }
}

static void pr_const(md_pr *p, md_expr *e, const char *v)
{
    const char *r = p->ctx->dims[e->rows].name, *c = p->ctx->dims[e->cols].name;
    int sized = p->sized || (e->id < p->nsized && p->sized_ids[e->id]);
    if (e->kind == MD_EYE) {
        if (sized) md_buf_printf(p->out, "eye(%s)", r);
        else md_buf_puts(p->out, "eye");
        return;
    }
    if (!sized) {
        if (e->cols == MD_DIM_ONE) md_buf_printf(p->out, "vector(%s)", v);
        else if (e->rows == MD_DIM_ONE) md_buf_printf(p->out, "vector(%s)'", v);
        else md_buf_printf(p->out, "matrix(%s)", v);
    } else {
        if (e->cols == MD_DIM_ONE) md_buf_printf(p->out, "vector(%s, %s)", v, r);
        else if (e->rows == MD_DIM_ONE) md_buf_printf(p->out, "vector(%s, %s)'", v, c);
        else md_buf_printf(p->out, "matrix(%s, %s, %s)", v, r, c);
    }
}

/* Unicode spellings that differ in shape from the ASCII ones. */
static int pr_unicode_special(md_pr *p, md_expr *e)
{
    md_buf *b = p->out;
    switch (e->kind) {
    case MD_EYE: {
        /* I, I_n or I_{n×n} (md_eye_form_of) */
        const char *n = p->ctx->dims[e->rows].name ? p->ctx->dims[e->rows].name : "?";
        md_buf_putc(b, 'I');
        switch (md_eye_form_of(p->ctx, e->rows, &p->eye_plain)) {
        case MD_EYE_PLAIN: break;
        case MD_EYE_SIZED: md_print_script(b, '_', n); break;
        case MD_EYE_SQUARE: md_buf_printf(b, "_{%s×%s}", n, n); break;
        }
        return 1;
    }
    case MD_ZERO: md_buf_puts(b, "0"); return 1;
    case MD_ONES:
        md_buf_puts(b, e->cols == MD_DIM_ONE ? "1" : e->rows == MD_DIM_ONE ? "1ᵀ" : "11ᵀ");
        return 1;
    case MD_NORM2:
    case MD_NORM1:
        md_buf_puts(b, "‖");
        pr(p, e->args[0], 0);
        md_buf_puts(b, e->kind == MD_NORM2 ? "‖" : "‖₁");
        return 1;
    case MD_MPOW:
        if (e->ival > 0) return 0;
        pr_wrap(p, e->args[0], L_ATOM);
        md_buf_puts(b, "⁻¹");
        if (e->ival != -1) md_buf_printf(b, "^%d", -e->ival);
        return 1;
    case MD_FUNC:
        if (e->ival != MD_FN_GENERIC && md_fns[e->ival].lstyle == MD_LX_ABS) {
            md_buf_putc(b, '|');
            pr(p, e->args[0], 0);
            md_buf_putc(b, '|');
            return 1;
        }
        if (e->ival == MD_FN_GENERIC) {
            /* f'(x) prints with primes, not transposes */
            md_buf_puts(b, p->ctx->funcs[e->aux]);
            for (int i = 0; i < e->order; i++) md_buf_putc(b, '\'');
            md_buf_putc(b, '(');
            pr(p, e->args[0], 0);
            md_buf_putc(b, ')');
            return 1;
        }
        return 0;
    case MD_LOGDET:
        md_buf_puts(b, "log det(");
        pr(p, e->args[0], 0);
        md_buf_putc(b, ')');
        return 1;
    case MD_KRON:
        /* (A ⊗ B), always grouped */
        md_buf_putc(b, '(');
        pr_wrap(p, e->args[0], L_PROD);
        md_buf_puts(b, " ⊗ ");
        pr_wrap(p, e->args[1], L_PROD);
        md_buf_putc(b, ')');
        return 1;
    case MD_COMM:
        md_buf_printf(b, "K_{%s,%s}", p->ctx->dims[e->ival].name, p->ctx->dims[e->aux].name);
        return 1;
    case MD_NUM: case MD_SYM: case MD_DIFF: case MD_ADD: case MD_MUL: case MD_HAD:
    case MD_POW: case MD_TRANS: case MD_SUM: case MD_TR: case MD_DET: case MD_DIAGM:
    case MD_DIAGV: case MD_VEC: case MD_SOFTMAX: case MD_LSE: case MD_NKINDS: return 0;
    }
    return 0;
}

static void pr(md_pr *p, md_expr *e, int need)
{
    md_ctx *ctx = p->ctx;
    if (scaled_as(p, e)) {
        pr_wrap(p, scaled_as(p, e), need);
        return;
    }
    const char *tn = tmp_name(p, e);
    if (tn) {
        md_buf_puts(p->out, tn);
        return;
    }
    md_expr *rep = trans_rep(p, e);
    if (rep) {
        pr_wrap(p, rep, L_ATOM);
        pr_tr(p);
        return;
    }
    if (p->uni && pr_unicode_special(p, e)) return;
    mpq_t c;
    switch (e->kind) {
    case MD_NUM: pr_num(p, e->q); break;
    case MD_SYM: pr_name(p, ctx->syms[e->ival].name); break;
    case MD_DIFF:
        md_buf_putc(p->out, 'd');
        pr_name(p, ctx->syms[e->ival].name);
        break;
    case MD_ZERO: pr_const(p, e, "0"); break;
    case MD_ONES: pr_const(p, e, "1"); break;
    case MD_EYE: pr_const(p, e, "1"); break;
    case MD_ADD: pr_sum(p, e); break;
    case MD_MUL: {
        mpq_init(c);
        term_coef(e, c);
        md_expr *saved = p->negated;
        if (mpq_sgn(c) < 0) {
            /* -2*(x - y) reads better as 2*(y - x): with exactly one sum
               among the factors, the sign goes into the sum */
            md_expr *sum = NULL;
            int nsums = 0;
            for (int i = 0; i < e->nargs; i++)
                if (e->args[i]->kind == MD_ADD && !tmp_name(p, e->args[i]) && !trans_rep(p, e->args[i]) &&
                    !scaled_as(p, e->args[i]))
                    sum = e->args[i], nsums++;
            int npos = 0, nneg = 0;
            if (nsums == 1) {
                mpq_t k;
                mpq_init(k);
                for (int i = 0; i < sum->nargs; i++) {
                    term_coef(sum->args[i], k);
                    if (mpq_sgn(k) < 0) nneg++;
                    else npos++;
                }
                mpq_clear(k);
            }
            /* only when that leaves fewer minus signs: not (-A' - A)*x */
            /* (not for -(a - b) alone: that must read back as the same node) */
            if (nsums == 1 && nneg >= npos && !(e->nargs == 2 && md_is_num(e->args[0], -1)))
                p->negated = sum;
            else md_buf_putc(p->out, '-');
        }
        mpq_abs(c, c);
        pr_product(p, e, c, 0);
        p->negated = saved;
        mpq_clear(c);
        break;
    }
    case MD_HAD: pr_had(p, e); break;
    case MD_POW: {
        md_expr *b = e->args[0], *x = e->args[1];
        if (md_is_num(x, -1) && !md_is_scalar(e)) {
            md_buf_puts(p->out, p->uni ? "1⊘" : "1./");
            pr_wrap(p, b, L_NEG);
            break;
        }
        pr_wrap(p, b, L_POST);
        md_buf_puts(p->out, md_is_scalar(b) && md_is_scalar(x) ? "^" : p->uni ? "^∘" : ".^");
        if (x->kind == MD_NUM && mpz_cmp_ui(mpq_denref(x->q), 1) == 0) pr_num(p, x->q);
        else pr_wrap(p, x, L_NEG);
        break;
    }
    case MD_MPOW:
        if (e->ival < 0) {
            md_buf_puts(p->out, "inv(");
            pr(p, e->args[0], 0);
            md_buf_putc(p->out, ')');
            if (e->ival != -1) md_buf_printf(p->out, "^%d", -e->ival);
        } else {
            pr_wrap(p, e->args[0], L_POST);
            md_buf_printf(p->out, "^%d", e->ival);
        }
        break;
    case MD_TRANS:
        pr_wrap(p, e->args[0], L_ATOM);
        pr_tr(p);
        break;
    case MD_FUNC:
        if (e->ival == MD_FN_GENERIC) {
            md_buf_puts(p->out, ctx->funcs[e->aux]);
            for (int i = 0; i < e->order; i++) md_buf_putc(p->out, '\'');
        } else {
            md_buf_puts(p->out, p->uni ? md_fns[e->ival].unicode : md_fns[e->ival].name);
        }
        md_buf_putc(p->out, '(');
        pr(p, e->args[0], 0);
        md_buf_putc(p->out, ')');
        break;
    case MD_KRON:
        /* kron(A, B); a constant inside has its size written: nothing
           outside the kron fixes it */
        md_buf_puts(p->out, "kron(");
        for (int i = 0; i < 2; i++) {
            md_expr *a = e->args[i];
            if (i) md_buf_puts(p->out, ", ");
            if ((a->kind == MD_EYE || a->kind == MD_ONES || a->kind == MD_ZERO) && !tmp_name(p, a)) {
                int saved = p->sized;
                p->sized = 1;
                pr(p, a, 0);
                p->sized = saved;
            } else {
                pr(p, a, 0);
            }
        }
        md_buf_putc(p->out, ')');
        break;
    case MD_COMM:
        md_buf_printf(p->out, "commutation(%s, %s)", ctx->dims[e->ival].name, ctx->dims[e->aux].name);
        break;
    case MD_SUM: case MD_NORM1: case MD_NORM2: case MD_TR: case MD_DET: case MD_LOGDET:
    case MD_DIAGM: case MD_DIAGV: case MD_VEC: case MD_SOFTMAX: case MD_LSE: case MD_NKINDS: {
        static const char *const names[MD_NKINDS] = {
            [MD_SUM] = "sum", [MD_NORM1] = "norm1", [MD_NORM2] = "norm2", [MD_TR] = "tr",
            [MD_DET] = "det", [MD_LOGDET] = "logdet", [MD_DIAGM] = "diag", [MD_DIAGV] = "diag",
            [MD_VEC] = "vec", [MD_SOFTMAX] = "softmax", [MD_LSE] = "logsumexp"};
        md_buf_printf(p->out, "%s(", names[e->kind] ? names[e->kind] : "?");
        pr(p, e->args[0], 0);
        md_buf_putc(p->out, ')');
        break;
    }
    }
    (void)need;
}

void md_print_expr(md_ctx *ctx, md_expr *e, md_buf *out)
{
    md_pr p = {ctx, out, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, NULL};
    pr(&p, e, 0);
}

void md_print_styled(md_ctx *ctx, md_expr *e, int unicode, const md_temps *t, int need, md_buf *out)
{
    md_pr p = {ctx, out, t ? t->name : NULL, t ? t->transof : NULL, t ? t->n : 0, NULL, unicode, NULL, 0, NULL, 0, 0,
               t ? t->scaled : NULL};
    pr_wrap(&p, e, need);
}

void md_print_styled_def(md_ctx *ctx, md_expr *e, int unicode, const md_temps *t, md_buf *out)
{
    md_pr p = {ctx, out, t ? t->name : NULL, t ? t->transof : NULL, t ? t->n : 0, e, unicode, NULL, 0, NULL, 0, 0,
               t ? t->scaled : NULL};
    pr(&p, e, 0);
}

int md_print_level(md_ctx *ctx, md_expr *e)
{
    md_pr p = {ctx, NULL, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, NULL};
    return md_level(&p, e);
}

char *md_expr_to_string(md_ctx *ctx, md_expr *e)
{
    md_buf b = {0};
    md_print_expr(ctx, e, &b);
    return md_buf_take(&b);
}

/* ---- temporaries ------------------------------------------------------ */

typedef struct md_walk {
    md_ctx *ctx;
    uint32_t n;
    char *seen;
    md_expr **order;     /* post-order of reachable nodes */
    uint32_t len, cap;
    unsigned *uses;
    md_expr **transof;
    char *visited;
    md_expr **scaled;    /* md_temps.scaled */
} md_walk;

static void collect(md_walk *w, md_expr *e)
{
    if (w->seen[e->id]) return;
    w->seen[e->id] = 1;
    for (int i = 0; i < e->nargs; i++) collect(w, e->args[i]);
    if (w->len == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        w->order = md_xrealloc(w->order, w->cap * sizeof *w->order);
    }
    w->order[w->len++] = e;
}

static int is_leafish(md_expr *e)
{
    if (e->nargs == 0) return 1;
    return e->kind == MD_TRANS && e->args[0]->nargs == 0;
}

unsigned md_count_trans(const md_expr *e, int budget)
{
    if (budget <= 0) return 0;
    unsigned c = e->kind == MD_TRANS;
    for (int i = 0; i < e->nargs; i++) c += md_count_trans(e->args[i], budget - 1);
    return c;
}

void md_twins_pair(md_ctx *ctx, uint32_t n0, uint32_t len, md_expr *const *order, md_expr *const *tr,
                   const char *reach, md_expr **transof)
{
    (void)ctx;
    for (uint32_t i = 0; i < len; i++) {
        md_expr *a = order[i], *b = tr[i];
        if (!b || b == a || b->id >= n0 || !reach[b->id] || a->depth != b->depth) continue;
        if (transof[a->id] || transof[b->id]) continue;
        /* the one with fewer transposes inside is written out; ties go by
           md_expr_cmp, so the choice does not depend on creation order */
        unsigned ta = md_count_trans(a, 64), tb = md_count_trans(b, 64);
        if (ta < tb || (ta == tb && md_expr_cmp(a, b) < 0)) transof[b->id] = a;
        else transof[a->id] = b;
    }
}

/* Clears transof[d] == v for every node d under e (stamp[d] == mark once
   visited). */
static void untwin_inside(md_walk *w, md_expr *e, md_expr *v, uint32_t n0, unsigned *stamp, unsigned mark)
{
    for (int i = 0; i < e->nargs; i++) {
        md_expr *d = e->args[i];
        if (d->id >= n0 || stamp[d->id] == mark) continue;
        stamp[d->id] = mark;
        if (w->transof[d->id] == v) w->transof[d->id] = NULL;
        untwin_inside(w, d, v, n0, stamp, mark);
    }
}

/* Counts uses over the graph as printed: a node printed as rep' uses rep. */
static void count_uses(md_walk *w, md_expr *e)
{
    if (w->scaled[e->id]) {
        /* printed as 2*r, exp(y) - 2*r: what that refers to */
        count_uses(w, w->scaled[e->id]);
        return;
    }
    md_expr *rep = w->transof[e->id];
    if (rep) {
        w->uses[rep->id]++;
        if (!w->visited[rep->id]) {
            w->visited[rep->id] = 1;
            for (int i = 0; i < rep->nargs; i++) count_uses(w, rep->args[i]);
        }
        return;
    }
    w->uses[e->id]++;
    if (w->visited[e->id]) return;
    w->visited[e->id] = 1;
    for (int i = 0; i < e->nargs; i++) {
        md_expr *a = e->args[i];
        /* what the printer writes for the operand: a/b and A./B write b
           and B, not the power node */
        int as_div = a->kind == MD_POW && a->args[1]->kind == MD_NUM && mpq_sgn(a->args[1]->q) < 0 &&
                     ((e->kind == MD_MUL && md_is_scalar(a)) ||
                      e->kind == MD_HAD);
        count_uses(w, as_div ? a->args[0] : a);
    }
}

/* Appends the named nodes under e to t->defs in the order the printer
   needs them: a node printed as rep' refers to rep, every other node to
   its arguments. */
static void order_defs(md_walk *w, const char *named, md_expr *e, md_temps *t)
{
    if (w->visited[e->id]) return;
    w->visited[e->id] = 1;
    if (w->scaled[e->id]) {
        order_defs(w, named, w->scaled[e->id], t);
        return;
    }
    md_expr *rep = w->transof[e->id];
    if (rep && !named[e->id]) {
        order_defs(w, named, rep, t);
        if (named[rep->id]) return;
    }
    for (int i = 0; i < e->nargs; i++) order_defs(w, named, e->args[i], t);
    if (named[e->id]) t->defs[t->ndefs++] = e;
}

const char *md_function_name(const md_ctx *ctx, int latex)
{
    int taken = md_ctx_find_sym(ctx, "f") >= 0 || md_ctx_find_func(ctx, "f") >= 0;
    return !taken ? "f" : latex ? "\\ell" : "ℓ";
}

int md_names_alike(const char *a, const char *b)
{
    for (;;) {
        while (*a == '_') a++;
        while (*b == '_') b++;
        if (*a != *b) return 0;
        if (!*a) return 1;
        a++, b++;
    }
}

int md_name_alike_taken(const md_ctx *ctx, const char *s)
{
    for (int i = 0; i < ctx->nsyms; i++)
        if (md_names_alike(ctx->syms[i].name, s)) return 1;
    for (int i = 0; i < ctx->nfuncs; i++)
        if (md_names_alike(ctx->funcs[i], s)) return 1;
    return 0;
}

/* A temporary's name must differ from every name of the program, and not
   only by underscores: LaTeX spells T1 and T_1 alike (md_latex_name). */
static int name_taken(md_ctx *ctx, const char *s, const char *const *avoid)
{
    if (md_ctx_find_sym(ctx, s) >= 0 || md_ctx_find_func(ctx, s) >= 0 || md_is_reserved(s)) return 1;
    if (md_name_alike_taken(ctx, s)) return 1;
    for (int i = 0; i < ctx->nbound; i++)
        if (md_names_alike(ctx->bound[i], s)) return 1;
    for (int i = 0; avoid && avoid[i]; i++)
        if (!strcmp(avoid[i], s)) return 1;
    return 0;
}

/* The identity is a name too in the styles for reading, and it yields to
   the program's names the way temporaries do (md_eye_form in md_print.h):
   I, else I_n, else I_{n×n}.  The first answer depends on the program
   only, so a printer asks once (cache). */
md_eye_form md_eye_form_of(const md_ctx *ctx, int dim, int *cache)
{
    int plain = cache && *cache ? *cache == 1 : !md_name_alike_taken(ctx, "I");
    if (cache) *cache = plain ? 1 : 2;
    if (plain) return MD_EYE_PLAIN;
    md_buf b = {0};
    md_buf_printf(&b, "I_%s", ctx->dims[dim].name ? ctx->dims[dim].name : "");
    int taken = md_name_alike_taken(ctx, b.s);
    md_buf_free(&b);
    return taken ? MD_EYE_SQUARE : MD_EYE_SIZED;
}

void md_print_script(md_buf *out, char op, const char *s)
{
    md_buf_printf(out, strlen(s) == 1 ? "%c%s" : "%c{%s}", op, s);
}

/* Does the user's name k get printed for its value?  Not for a leaf
   (a = X, c = 2: the value is as short as the name), and only the first
   of several names for one value. */
static int user_nameable(const md_ctx *ctx, int k)
{
    md_expr *v = ctx->bval[k];
    if (!v || is_leafish(v)) return 0;
    for (int j = 0; j < k; j++)
        if (ctx->bval[j] == v) return 0;
    return 1;
}

/* Term k of the sum e as a coefficient and a core, the factors after the
   number (the term itself when it has none). */
static void term_core(md_expr *e, int k, mpq_srcptr *c, md_expr *const **f, int *nf, mpq_srcptr one)
{
    md_expr *x = e->args[k];
    if (x->kind == MD_MUL && x->args[0]->kind == MD_NUM) {
        *c = x->args[0]->q;
        *f = x->args + 1;
        *nf = x->nargs - 1;
    } else if (x->kind == MD_MUL) {
        *c = one;
        *f = x->args;
        *nf = x->nargs;
    } else {
        *c = one;
        *f = e->args + k;
        *nf = 1;
    }
}

/*
 * The sum e written with the named sum v: c*v when e is c times v (c not
 * 1; a negative c only when neg_ok), or the other terms plus c*v (plus v
 * when c is 1) when c times v's terms are among e's.  Terms are matched by
 * their factors after the number, in any order.  NULL when v is not there.
 */
static md_expr *sum_with(md_ctx *ctx, md_expr *e, md_expr *v, int neg_ok)
{
    if (e == v || e->kind != MD_ADD || v->kind != MD_ADD || e->nargs < v->nargs || e->nargs > 64 ||
        e->rows != v->rows || e->cols != v->cols)
        return NULL;
    mpq_t one, r, c;
    mpq_inits(one, r, c, NULL);
    mpq_set_ui(one, 1, 1);
    char used[64] = {0};
    int ok = 1;
    for (int j = 0; j < v->nargs && ok; j++) {
        mpq_srcptr ce, cv;
        md_expr *const *fe, *const *fv;
        int ne, nvv;
        term_core(v, j, &cv, &fv, &nvv, one);
        int found = 0;
        for (int i = 0; i < e->nargs && !found; i++) {
            if (used[i]) continue;
            term_core(e, i, &ce, &fe, &ne, one);
            if (ne != nvv || memcmp(fe, fv, (size_t)ne * sizeof *fe)) continue;
            mpq_div(r, ce, cv);
            if (j == 0) mpq_set(c, r);
            else if (!mpq_equal(c, r)) continue;
            used[i] = 1;
            found = 1;
        }
        ok = found;
    }
    md_expr *res = NULL;
    int whole = e->nargs == v->nargs;
    if (ok && (!whole || (mpq_cmp_ui(c, 1, 1) != 0 && (neg_ok || mpq_sgn(c) > 0)))) {
        md_expr *cv = mpq_cmp_ui(c, 1, 1) == 0
                          ? v
                          : md_expr_make(ctx, MD_MUL, e->rows, e->cols, 0, 0, 0, 2, (md_expr *[]){md_num(ctx, c), v},
                                         NULL);
        if (whole) {
            res = cv;
        } else {
            md_expr **t = md_xmalloc((size_t)e->nargs * sizeof *t);
            int m = 0;
            for (int i = 0; i < e->nargs; i++)
                if (!used[i]) t[m++] = e->args[i];
            t[m++] = cv;
            res = md_expr_make(ctx, MD_ADD, e->rows, e->cols, 0, 0, 0, m, t, NULL);
            free(t);
        }
    }
    mpq_clears(one, r, c, NULL);
    return res;
}

int md_user_name_of(const md_ctx *ctx, const md_expr *e)
{
    for (int k = 0; k < ctx->nbound; k++)
        if (ctx->bval[k] == e && user_nameable(ctx, k)) return k;
    return -1;
}

void md_temps_find(md_ctx *ctx, int n, md_expr **roots, const char *const *avoid, md_temps *t)
{
    md_temps_find_ex(ctx, n, roots, avoid, 0, 0, t);
}

void md_temps_find_ex(md_ctx *ctx, int n, md_expr **roots, const char *const *avoid,
                      uint32_t min_weight, int name_roots, md_temps *t)
{
    /* transposes of every reachable node are made first, so that the
       arrays below cover them */
    md_walk w;
    memset(&w, 0, sizeof w);
    memset(t, 0, sizeof *t);
    uint32_t n0 = ctx->nnodes;
    w.seen = md_xcalloc(n0, 1);
    for (int i = 0; i < n; i++) collect(&w, roots[i]);
    md_expr **tr = md_xcalloc(w.len ? w.len : 1, sizeof *tr);
    for (uint32_t i = 0; i < w.len; i++)
        if (!is_leafish(w.order[i]) && !md_is_scalar(w.order[i])) tr[i] = md_trans(ctx, w.order[i]);
    /* the user's names (r = X*w - y): the value, or its transpose, where
       either is printed */
    md_expr **btr = md_xcalloc((size_t)ctx->nbound + 1, sizeof *btr);
    for (int k = 0; k < ctx->nbound; k++)
        if (user_nameable(ctx, k) && !md_is_scalar(ctx->bval[k])) btr[k] = md_trans(ctx, ctx->bval[k]);
    /* and multiples of a named sum (2Xw - 2y is 2*r), also among other
       terms (exp(y) + 2y - 2Xw is exp(y) - 2*r, Z + x - log(Z) with
       Z = T1 + x); the number times the name is printed instead, a
       negative number alone only for a whole result (dy = -2*r), where
       no sign can clash */
    md_expr **sfrom = NULL, **sto = NULL;
    int nsc = 0;
    char *bused = md_xcalloc((size_t)ctx->nbound + 1, 1);
    for (uint32_t i = 0; i < w.len && ctx->nbound; i++) {
        md_expr *e = w.order[i];
        /* (a named value is written as defined: T14 = T13' + T13 is not
           T8/9, nor T8 9*T14) */
        if (e->kind != MD_ADD || md_user_name_of(ctx, e) >= 0) continue;
        int is_root = 0;
        for (int r = 0; r < n; r++) is_root |= roots[r] == e;
        for (int k = 0; k < ctx->nbound; k++) {
            md_expr *to = user_nameable(ctx, k) ? sum_with(ctx, e, ctx->bval[k], is_root) : NULL;
            if (!to) continue;
            sfrom = md_xrealloc(sfrom, (size_t)(nsc + 1) * sizeof *sfrom);
            sto = md_xrealloc(sto, (size_t)(nsc + 1) * sizeof *sto);
            sfrom[nsc] = e;
            sto[nsc++] = to;
            bused[k] = 1;
            break;
        }
    }
    uint32_t N = ctx->nnodes;
    w.seen = md_xrealloc(w.seen, N);
    memset(w.seen + n0, 0, N - n0);
    w.uses = md_xcalloc(N, sizeof *w.uses);
    w.transof = md_xcalloc(N, sizeof *w.transof);
    w.visited = md_xcalloc(N, 1);
    w.scaled = md_xcalloc(N, sizeof *w.scaled);
    for (int k = 0; k < nsc; k++) w.scaled[sfrom[k]->id] = sto[k];
    free(sfrom);
    free(sto);

    /* pair X with X' when both are printed; the one with fewer transposes
       inside is written out, the other prints as its transpose */
    md_twins_pair(ctx, n0, w.len, w.order, tr, w.seen, w.transof);
    const char **nm = md_xcalloc(N, sizeof *nm);
    char *named = md_xcalloc(N, 1);
    for (int k = 0; k < ctx->nbound; k++) {
        md_expr *v = ctx->bval[k], *vt = btr[k];
        if (!user_nameable(ctx, k) || v->id >= n0) continue;
        int here = w.seen[v->id] || bused[k], there = vt && vt != v && vt->id < n0 && w.seen[vt->id];
        if (!here && !there) continue;
        named[v->id] = 1;
        nm[v->id] = ctx->bound[k];
        w.transof[v->id] = NULL;
        if (there) w.transof[vt->id] = v;
    }
    free(btr);
    free(bused);
    /* a part of a named value never prints as that value's transpose:
       v = -e with e' = v (an antisymmetric part) would print v as -v' */
    if (ctx->nbound) {
        unsigned *stamp = md_xcalloc(n0 + 1, sizeof *stamp);
        for (int k = 0; k < ctx->nbound; k++) {
            md_expr *v = ctx->bval[k];
            if (v->id < n0 && named[v->id]) untwin_inside(&w, v, v, n0, stamp, (unsigned)k + 1);
        }
        free(stamp);
    }
    for (int i = 0; i < n; i++) {
        w.transof[roots[i]->id] = NULL;
        count_uses(&w, roots[i]);
    }

    /* name the shared, non-trivial nodes */
    for (uint32_t i = 0; i < w.len; i++) {
        md_expr *e = w.order[i];
        if (named[e->id]) continue;
        int is_root = 0;
        for (int r = 0; r < n; r++) is_root |= roots[r] == e;
        if ((is_root && !name_roots) || w.transof[e->id] || w.uses[e->id] < 2 || e->depth < 3 ||
            is_leafish(e) || e->weight < min_weight)
            continue;
        named[e->id] = 1;
    }
    /* and order them as they will be printed: each after every temporary
       its text refers to, including those it refers to as T' */
    t->defs = md_xcalloc(w.len ? w.len : 1, sizeof *t->defs);
    memset(w.visited, 0, N);
    for (int i = 0; i < n; i++) order_defs(&w, named, roots[i], t);
    free(named);
    t->owned = md_xcalloc((size_t)t->ndefs + 1, sizeof *t->owned);
    int ntemps = 0;
    for (int k = 0; k < t->ndefs; k++) ntemps += nm[t->defs[k]->id] == NULL;
    for (int k = 0, idx = 0; k < t->ndefs; k++) {
        char buf[32];
        if (nm[t->defs[k]->id]) {
            t->owned[k] = md_xstrdup(nm[t->defs[k]->id]);
            nm[t->defs[k]->id] = t->owned[k];
            continue;
        }
        do {
            if (ntemps == 1 && idx == 0) snprintf(buf, sizeof buf, "T");
            else snprintf(buf, sizeof buf, "T%d", idx + (ntemps == 1 ? 0 : 1));
            idx++;
        } while (name_taken(ctx, buf, avoid));
        t->owned[k] = md_xstrdup(buf);
        nm[t->defs[k]->id] = t->owned[k];
    }
    t->n = N;
    t->name = nm;
    t->transof = w.transof;
    t->scaled = w.scaled;
    free(tr);
    free(w.order);
    free(w.seen);
    free(w.uses);
    free(w.visited);
}

void md_temps_free(md_temps *t)
{
    for (int k = 0; k < t->ndefs; k++) free(t->owned[k]);
    free(t->owned);
    free(t->defs);
    free((void *)t->name);
    free(t->transof);
    free(t->scaled);
    memset(t, 0, sizeof *t);
}

void md_print_program(md_ctx *ctx, md_buf *out, int n, md_expr **roots,
                      const char *const *names, const char *const *avoid)
{
    md_print_program_ex(ctx, out, n, roots, names, avoid, 0);
}

void md_print_program_ex(md_ctx *ctx, md_buf *out, int n, md_expr **roots,
                         const char *const *names, const char *const *avoid, unsigned flags)
{
    md_print_program_sized(ctx, out, n, roots, names, avoid, flags, NULL, 0);
}

void md_print_program_sized(md_ctx *ctx, md_buf *out, int n, md_expr **roots,
                            const char *const *names, const char *const *avoid, unsigned flags,
                            const char *sized_ids, uint32_t nsized)
{
    md_temps t;
    md_temps_find(ctx, n, roots, avoid, &t);
    md_pr p = {ctx, out, t.name, t.transof, t.n, NULL, 0, NULL, (flags & MD_PRINT_SIZED) != 0,
               sized_ids, sized_ids ? nsized : 0, 0, t.scaled};
    for (int k = 0; k < t.ndefs; k++) {
        md_buf_printf(out, "%s = ", t.owned[k]);
        p.top = t.defs[k];
        pr(&p, t.defs[k], 0);
        md_buf_putc(out, '\n');
    }
    for (int i = 0; i < n; i++) {
        if (names && names[i]) md_buf_printf(out, "%s = ", names[i]);
        /* a result that is a value the user named is that name (dv = h) */
        p.top = md_user_name_of(ctx, roots[i]) >= 0 && roots[i]->id < t.n && t.name[roots[i]->id] ? NULL : roots[i];
        pr(&p, roots[i], 0);
        md_buf_putc(out, '\n');
    }
    md_temps_free(&t);
}

void md_print_shapes(md_ctx *ctx, md_buf *out)
{
    int first = 1;
    for (int i = 0; i < ctx->nsyms; i++) {
        md_symbol *s = &ctx->syms[i];
        if (s->rows == MD_DIM_ONE && s->cols == MD_DIM_ONE) continue;
        md_buf_puts(out, first ? "" : ", ");
        first = 0;
        const char *r = ctx->dims[s->rows].name, *c = ctx->dims[s->cols].name;
        if (s->cols == MD_DIM_ONE) md_buf_printf(out, "%s: %s", s->name, r);
        else md_buf_printf(out, "%s: %s×%s%s", s->name, r, c, s->kind == MD_SYM_SYMMETRIC ? " symmetric" : "");
    }
}

void md_print_decls(md_ctx *ctx, md_buf *out) { md_print_decls_ex(ctx, out, 0); }

void md_print_decls_ex(md_ctx *ctx, md_buf *out, unsigned flags)
{
    static const char *const kw[] = {"scalar", "vector", "matrix", "symmetric"};
    int sized = (flags & MD_PRINT_SIZED) != 0;
    for (int k = 0; k < 4; k++) {
        int first = 1;
        for (int i = 0; i < ctx->nsyms; i++) {
            md_symbol *s = &ctx->syms[i];
            if ((int)s->kind != k) continue;
            /* with sizes, every vector and matrix names its dimensions, so
               that eye(n) and matrix(1, n, p) in the output read back */
            if (md_default_kind(s->name) == s->kind && !(sized && k != MD_SYM_SCALAR)) continue;
            if (first) md_buf_printf(out, "%s ", kw[k]);
            md_buf_printf(out, "%s%s", first ? "" : ", ", s->name);
            if (sized && k == MD_SYM_MATRIX)
                md_buf_printf(out, "(%s, %s)", ctx->dims[s->rows].name, ctx->dims[s->cols].name);
            else if (sized && k != MD_SYM_SCALAR)
                md_buf_printf(out, "(%s)", ctx->dims[s->rows].name);
            first = 0;
        }
        if (!first) md_buf_putc(out, '\n');
    }
    if (ctx->nfuncs) {
        md_buf_puts(out, "function ");
        for (int i = 0; i < ctx->nfuncs; i++) md_buf_printf(out, "%s%s", i ? ", " : "", ctx->funcs[i]);
        md_buf_putc(out, '\n');
    }
}
