/*
 * latex.c -- the LaTeX printer (see md_latex.h).
 *
 * It walks the same canonical expressions as the text printer (print.c)
 * and shares its analysis of temporaries (md_temps), but writes them the
 * way a paper would.  The conventions, chosen once:
 *
 *   products      juxtaposition, scalar coefficient first: 2\lambda UV^\top V.
 *                 A thin space \, only where juxtaposition would be
 *                 ambiguous: next to a multi-letter \mathit name, and
 *                 on both sides of a differential (S^{-1}\,\mathrm{d}S\,S^{-1},
 *                 not \mathrm{d}SS^{-1}); \cdot before a factor
 *                 that starts with a digit (3 \cdot 2^{x}).
 *   fractions     the scalar part of a product is one fraction, the matrix
 *                 chain follows it: \frac{1}{2}X, \frac{\lambda}{2x}A^\top B,
 *                 \frac{1}{x^{2}} for a lone negative power.  Exponents stay
 *                 inline (x^{1/2}) so that superscripts do not grow tall.
 *   transposes    ^\top (or ^T); (X^\top)^{-1} rather than a double superscript,
 *                 (\mathrm{d}X)^\top for the transpose of a differential.
 *   Hadamard      A \circ B (or \odot); B.^k is the Hadamard power B^{\circ k}
 *                 and B.^-1 is B^{\circ -1}.  A matrix product that is an
 *                 operand of \circ, and a \circ product that is a factor
 *                 next to other matrices, get parentheses: there is no
 *                 agreed precedence between the two.  After scalars only
 *                 (2A \circ B) both readings agree and none are needed.
 *   constants     \mathbf{1}, \mathbf{1}^\top, \mathbf{1}\mathbf{1}^\top for
 *                 any matrix of ones (LaTeX has no broadcasting, so
 *                 1 - T.^2 is \mathbf{1}\mathbf{1}^\top - T^{\circ 2}), I, 0.
 *                 When a variable or function would print as I (matrix I),
 *                 the identity has its size, I_{n}, or I_{n\times n} if a
 *                 variable I_n is there too (md_eye_form_of).
 *   names         md_latex_name for variables, temporaries and dimensions
 *                 alike: W_{1}, x_{i}, \mathit{x\_i}_{j}, \alpha, so that a
 *                 dimension n_a_b is \mathit{n\_a}_{b} in \mathbb{R}^{...}.
 *   functions     \sin(X) ... \tanh, \operatorname{sign}, relu, step, \sqrt{X},
 *                 \lvert X\rvert, f'(XV), \operatorname{sum}, \operatorname{tr},
 *                 \det, \log\det, \operatorname{diag}; norms \|A\|_F for
 *                 matrices, \|x\|_2 for vectors, |a| for scalars, \|A\|_1.
 *                 A superscript on a call is on its value, \det(A)^{2},
 *                 except on \log\det(A), whose \log has no parentheses:
 *                 (\log\det(A))^{2}.
 *   grouping      the fewest parentheses that keep the meaning; nested groups
 *                 cycle ( ), [ ], \{ \} from the inside out, as in
 *                 2X^\top[(\mathbf{1}\mathbf{1}^\top f(XV)) \circ f'(XV)];
 *                 \left \right only around content with a \frac in it.
 *
 * Each operand is rendered into its own buffer first (render), so that a
 * group can choose its bracket and its size after seeing its content, and
 * a product can choose the separator between two factors.  This copies
 * each character once per enclosing group; named temporaries keep the
 * nesting shallow.  All output goes through put, which inserts the one
 * space TeX needs between a control word and a following letter
 * (\lambda U, X^\top V).
 */
#include "md_latex.h"

#include <stdlib.h>
#include <string.h>

#include "md_builtins.h"
#include "md_simplify.h"

/* L_PREFIX: \log\det(A), an operator applied without parentheses of its
   own, which reaches over a superscript or a factor to its right. */
enum { L_SUM = 1, L_NEG, L_PROD, L_HAD, L_PREFIX, L_POST, L_ATOM };

typedef struct lx {
    md_ctx *ctx;
    md_buf *out;
    const md_temps *t;
    md_expr *top;          /* the node being written (never by its own name) */
    const char *tr;        /* "^\\top" or "^T" */
    const char *had;       /* "\\circ" or "\\odot" */
    int gmax;              /* deepest group written inside the current one */
    int eye_plain;         /* the identity is I (1), is not (2), unknown (0) */
} lx;

static void emit(lx *p, md_expr *e, int need);
static void pr(lx *p, md_expr *e);

/* ---- output ----------------------------------------------------------- */

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Does the buffer end with a control word (\alpha, ^\top)? */
static int ends_in_control_word(const md_buf *b)
{
    size_t i = b->len;
    while (i > 0 && is_alpha(b->s[i - 1])) i--;
    if (i == b->len) return 0;
    int n = 0;
    while (i > 0 && b->s[i - 1] == '\\') n++, i--;
    return n % 2 == 1;
}

static void put(lx *p, const char *s)
{
    if (is_alpha(s[0]) && ends_in_control_word(p->out)) md_buf_putc(p->out, ' ');
    md_buf_puts(p->out, s);
}

static void put_mpz(lx *p, mpz_srcptr z)
{
    char *s = mpz_get_str(NULL, 10, z);
    put(p, s);
    void (*freefn)(void *, size_t);
    mp_get_memory_functions(NULL, NULL, &freefn);
    freefn(s, strlen(s) + 1);
}

/* q inline, for exponents: 2, -1, 1/2, -3/2. */
static void put_rat_inline(lx *p, mpq_srcptr q)
{
    put_mpz(p, mpq_numref(q));
    if (mpz_cmp_ui(mpq_denref(q), 1) != 0) {
        put(p, "/");
        put_mpz(p, mpq_denref(q));
    }
}

/* q >= 0 as a number or \frac{a}{b}. */
static void put_rat_frac(lx *p, mpq_srcptr q)
{
    if (mpz_cmp_ui(mpq_denref(q), 1) == 0) {
        put_mpz(p, mpq_numref(q));
        return;
    }
    put(p, "\\frac{");
    put_mpz(p, mpq_numref(q));
    put(p, "}{");
    put_mpz(p, mpq_denref(q));
    put(p, "}");
}

/* e (in a group if its level is below need) as a fresh string. */
static char *render(lx *p, md_expr *e, int need)
{
    md_buf b = {0};
    md_buf *save = p->out;
    p->out = &b;
    emit(p, e, need);
    p->out = save;
    return md_buf_take(&b);
}

static int starts_with(const char *s, const char *pre) { return strncmp(s, pre, strlen(pre)) == 0; }

/* Does s end with a whole \mathit{...} (a multi-letter name)? */
static int ends_mathit(const char *s)
{
    const char *m = NULL;
    for (const char *q = strstr(s, "\\mathit{"); q; q = strstr(q + 1, "\\mathit{")) m = q;
    if (!m) return 0;
    const char *close = strchr(m, '}');
    return close && close[1] == 0;
}

/* Writes factors side by side with the separator each pair needs. */
static void join(lx *p, char **f, int n)
{
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            if (is_digit(f[i][0])) put(p, " \\cdot ");
            else if (ends_mathit(f[i - 1]) || starts_with(f[i], "\\mathit{") ||
                     starts_with(f[i], "\\mathrm{d}") || starts_with(f[i - 1], "\\mathrm{d}"))
                put(p, "\\,");
        }
        put(p, f[i]);
    }
}

/* open content close, with \left \right when the content is tall. */
static void delimit(lx *p, const char *open, const char *s, const char *close)
{
    int tall = strstr(s, "\\frac") != NULL;
    if (tall) put(p, "\\left");
    put(p, open);
    put(p, s);
    if (tall) put(p, "\\right");
    put(p, close);
}

/* e in a group: ( ), [ ] or \{ \} by how deeply groups nest inside it. */
static void group(lx *p, md_expr *e)
{
    static const char *const open[] = {"(", "[", "\\{"}, *const close[] = {")", "]", "\\}"};
    int saved = p->gmax;
    p->gmax = 0;
    char *s = render(p, e, 0);
    int d = p->gmax;
    delimit(p, open[d % 3], s, close[d % 3]);
    free(s);
    p->gmax = saved > d + 1 ? saved : d + 1;
}

/* head(arg): function calls; their parentheses are not groups. */
static void call(lx *p, const char *head, md_expr *arg)
{
    put(p, head);
    char *s = render(p, arg, 0);
    delimit(p, "(", s, ")");
    free(s);
}

/* ---- names ------------------------------------------------------------ */

static const char *const greek[][2] = {
    {"alpha", "\\alpha"}, {"beta", "\\beta"}, {"gamma", "\\gamma"}, {"delta", "\\delta"},
    {"epsilon", "\\epsilon"}, {"varepsilon", "\\varepsilon"}, {"zeta", "\\zeta"},
    {"eta", "\\eta"}, {"theta", "\\theta"}, {"vartheta", "\\vartheta"}, {"iota", "\\iota"},
    {"kappa", "\\kappa"}, {"lambda", "\\lambda"}, {"mu", "\\mu"}, {"nu", "\\nu"},
    {"xi", "\\xi"}, {"omicron", "o"}, {"pi", "\\pi"}, {"rho", "\\rho"},
    {"sigma", "\\sigma"}, {"tau", "\\tau"}, {"upsilon", "\\upsilon"}, {"phi", "\\phi"},
    {"varphi", "\\varphi"}, {"chi", "\\chi"}, {"psi", "\\psi"}, {"omega", "\\omega"},
    {"Gamma", "\\Gamma"}, {"Delta", "\\Delta"}, {"Theta", "\\Theta"}, {"Lambda", "\\Lambda"},
    {"Xi", "\\Xi"}, {"Pi", "\\Pi"}, {"Sigma", "\\Sigma"}, {"Upsilon", "\\Upsilon"},
    {"Phi", "\\Phi"}, {"Psi", "\\Psi"}, {"Omega", "\\Omega"}, {NULL, NULL}};

static const char *greek_of(const char *s, size_t n)
{
    for (int i = 0; greek[i][0]; i++)
        if (strlen(greek[i][0]) == n && strncmp(greek[i][0], s, n) == 0) return greek[i][1];
    return NULL;
}

/* s[0..n) as one symbol: Greek, a letter, or \mathit / \operatorname. */
static void name_word(const char *s, size_t n, int op, md_buf *out)
{
    const char *g = greek_of(s, n);
    if (g) {
        md_buf_puts(out, g);
        return;
    }
    if (n == 1 && is_alpha(s[0])) {
        md_buf_putc(out, s[0]);
        return;
    }
    md_buf_puts(out, op ? "\\operatorname{" : "\\mathit{");
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') md_buf_putc(out, '\\');
        md_buf_putc(out, s[i]);
    }
    md_buf_putc(out, '}');
}

/* A subscript: digits and single letters as they are, Greek names as
   Greek, other words in \mathit. */
static void name_sub(const char *s, md_buf *out)
{
    size_t n = strlen(s), i = 0;
    while (i < n && is_digit(s[i])) i++;
    if (i == n) md_buf_puts(out, s);
    else name_word(s, n, 0, out);
}

/* op: generic functions, whose multi-letter names are operators. */
static void name_ident(const char *name, int op, md_buf *out)
{
    size_t n = strlen(name);
    const char *us = strrchr(name, '_');
    const char *sub = NULL;
    size_t base = n;
    if (us && us > name && us[1]) {
        base = (size_t)(us - name);
        sub = us + 1;
    }
    /* trailing digits of the base are a subscript too: W1 -> W_{1} */
    size_t k = base;
    while (k > 0 && is_digit(name[k - 1])) k--;
    if (k == 0 || name[k - 1] == '_') k = base;
    name_word(name, k, op, out);
    if (k == base && !sub) return;
    md_buf_puts(out, "_{");
    for (size_t i = k; i < base; i++) md_buf_putc(out, name[i]);
    if (k < base && sub) md_buf_putc(out, ',');
    if (sub) name_sub(sub, out);
    md_buf_putc(out, '}');
}

/* Two names of the program that the rules above would spell alike (W1 and
   W_1 are both W_{1}, T_1 and a temporary T1 too) are both spelled as
   written instead, \mathit{W1} and \mathit{W\_1}: LaTeX must not merge
   what the program keeps apart.  Alike means equal without underscores,
   which covers every way the rules can merge two names (md_temps_find
   avoids temporaries that are alike a variable the same way, and the
   identity yields to them too: md_eye_form_of).  Dimensions are names
   of the program here as well (X \in \mathbb{R}^{n_{1}\times p}), so
   dimensions n1 and n_1 are spelled as written, and so is a variable
   n1 next to a dimension n_1. */
static int spelled_alike(const md_ctx *ctx, const char *name)
{
    if (!ctx) return 0;
    for (int pass = 0; pass < 3; pass++) {
        int n = pass == 0 ? ctx->nsyms : pass == 1 ? ctx->nfuncs : ctx->ndims;
        for (int i = pass == 2; i < n; i++) {
            const char *o = pass == 0 ? ctx->syms[i].name : pass == 1 ? ctx->funcs[i] : ctx->dims[i].name;
            if (o && strcmp(o, name) != 0 && md_names_alike(o, name)) return 1;
        }
    }
    return 0;
}

static void name_spelled(const md_ctx *ctx, const char *name, int op, md_buf *out)
{
    if (spelled_alike(ctx, name)) name_word(name, strlen(name), op, out);
    else name_ident(name, op, out);
}

void md_latex_name(const md_ctx *ctx, const char *name, md_buf *out) { name_spelled(ctx, name, 0, out); }

static void put_name(lx *p, const char *name, int op)
{
    md_buf b = {0};
    name_spelled(p->ctx, name, op, &b);
    put(p, b.s);
    md_buf_free(&b);
}

/* ---- levels ----------------------------------------------------------- */

static const char *tmp_name(lx *p, md_expr *e)
{
    if (e == p->top || !p->t || !p->t->name || e->id >= p->t->n) return NULL;
    return p->t->name[e->id];
}

static md_expr *trans_rep(lx *p, md_expr *e)
{
    if (e == p->top || !p->t || !p->t->transof || e->id >= p->t->n) return NULL;
    md_expr *r = p->t->transof[e->id];
    return r && r->id < p->t->n && p->t->name[r->id] ? r : NULL;
}

static int chain_first(const md_expr *e)
{
    int i = 0;
    while (i < e->nargs && md_is_scalar(e->args[i])) i++;
    return i;
}

static int is_neg_power(const md_expr *a)
{
    return a->kind == MD_POW && a->args[1]->kind == MD_NUM && mpq_sgn(a->args[1]->q) < 0;
}

/* The node e prints as, a number times a user's name (md_temps.scaled). */
static md_expr *scaled_as(lx *p, md_expr *e)
{
    if (!p->t || !p->t->scaled || e->id >= p->t->n) return NULL;
    return p->t->scaled[e->id];
}

static int level(lx *p, md_expr *e)
{
    if (scaled_as(p, e)) return level(p, scaled_as(p, e));
    if (tmp_name(p, e)) return L_ATOM;
    if (trans_rep(p, e)) return L_POST;
    switch (e->kind) {
    case MD_NUM:
        if (mpq_sgn(e->q) < 0) return L_NEG;
        return mpz_cmp_ui(mpq_denref(e->q), 1) == 0 ? L_ATOM : L_PROD;
    case MD_DIFF: return L_POST;
    case MD_ONES:
        if (e->cols == MD_DIM_ONE) return L_ATOM;
        return e->rows == MD_DIM_ONE ? L_POST : L_PROD;
    case MD_ADD: return L_SUM;
    case MD_MUL:
        return e->args[0]->kind == MD_NUM && mpq_sgn(e->args[0]->q) < 0 ? L_NEG : L_PROD;
    case MD_HAD: return L_HAD;
    case MD_POW: return md_is_scalar(e) && is_neg_power(e) ? L_PROD : L_POST;
    case MD_MPOW:
    case MD_TRANS: return L_POST;
    case MD_LOGDET:
        /* \log applies to \det(A) without parentheses of its own, so what
           follows the call would be read inside the \log:
           \log\det(A)^{2} as \log(\det(A)^{2}), \log\det(A)a^{2} as
           \log(\det(A)a^{2}).  A power of it is grouped,
           (\log\det(A))^{2}, and so is a factor with another one after it,
           (\log\det(A))a^{2}; 2a\log\det(A) needs nothing.  Calls with one
           head (\det(A)^{2}, \sin(x)^{2}, \operatorname{tr}(A)^{2},
           f(XV)^\top) are atoms: their closing parenthesis ends the
           application, so the superscript is on it. */
        return L_PREFIX;
    case MD_SYM: case MD_ZERO: case MD_EYE: case MD_FUNC: case MD_SUM: case MD_NORM1:
    case MD_NORM2: case MD_TR: case MD_DET: case MD_DIAGM:
    case MD_DIAGV: case MD_VEC: case MD_KRON: case MD_COMM: case MD_SOFTMAX: case MD_LSE:
    case MD_NKINDS: return L_ATOM;
    }
    return L_ATOM;
}

static void emit(lx *p, md_expr *e, int need)
{
    if (level(p, e) < need) group(p, e);
    else pr(p, e);
}

/* ---- products, sums, powers ------------------------------------------ */

/* base^{k} or base^{\circ k} for a rational k. */
static void pr_power_q(lx *p, md_expr *base, mpq_srcptr k, int elementwise)
{
    emit(p, base, L_ATOM);
    put(p, "^{");
    if (elementwise) {
        put(p, p->had);
        put(p, " ");
    }
    put_rat_inline(p, k);
    put(p, "}");
}

/* A denominator factor: b for b^-1 (grouped if its level is below need),
   b^{k} for b^-k. */
static char *den_factor(lx *p, md_expr *a, int need)
{
    mpq_t k;
    mpq_init(k);
    mpq_neg(k, a->args[1]->q);
    char *s;
    if (mpq_cmp_ui(k, 1, 1) == 0) {
        s = render(p, a->args[0], need);
    } else {
        md_buf b = {0};
        md_buf *save = p->out;
        p->out = &b;
        pr_power_q(p, a->args[0], k, 0);
        p->out = save;
        s = md_buf_take(&b);
    }
    mpq_clear(k);
    return s;
}

static char *mpz_string(mpz_srcptr z)
{
    char *t = mpz_get_str(NULL, 10, z);
    char *s = md_xstrdup(t);
    void (*freefn)(void *, size_t);
    mp_get_memory_functions(NULL, NULL, &freefn);
    freefn(t, strlen(t) + 1);
    return s;
}

/* The joined factors as one string. */
static char *join_string(lx *p, char **f, int n)
{
    md_buf b = {0};
    md_buf *save = p->out;
    p->out = &b;
    join(p, f, n);
    p->out = save;
    return md_buf_take(&b);
}

/* A product without its sign; c is |coefficient|.  The scalar factors
   form one fraction when there is a denominator, then the chain follows. */
static void pr_product(lx *p, md_expr *e, mpq_srcptr c)
{
    int n = e->nargs, s = chain_first(e);
    char **f = md_xcalloc((size_t)n + 2, sizeof *f);
    char **num = md_xcalloc((size_t)n + 2, sizeof *num);
    char **den = md_xcalloc((size_t)n + 2, sizeof *den);
    int nf = 0, nn = 0, nd = 0;
    int c_num1 = mpz_cmp_ui(mpq_numref(c), 1) == 0, c_den1 = mpz_cmp_ui(mpq_denref(c), 1) == 0;
    int nsn = 0, nsd = 0, scalar_products = 0;
    for (int i = 0; i < s; i++) {
        md_expr *a = e->args[i];
        if (a->kind == MD_NUM) continue;
        if (is_neg_power(a) && !tmp_name(p, a) && !trans_rep(p, a)) nsd++;
        else nsn++;
        if (level(p, a) == L_PROD) scalar_products = 1;
    }
    if (nsd > 0 || !c_den1) {
        int items_n = (!c_num1 || nsn == 0) + nsn, items_d = !c_den1 + nsd;
        if (!c_num1 || nsn == 0) num[nn++] = mpz_string(mpq_numref(c));
        if (!c_den1) den[nd++] = mpz_string(mpq_denref(c));
        /* each part's factors as in a product: grouped below L_POST, the
           last one below L_PREFIX (\frac{a\log\det(A)}{b}) */
        int rest_n = nsn, rest_d = nsd;
        for (int i = 0; i < s; i++) {
            md_expr *a = e->args[i];
            if (a->kind == MD_NUM) continue;
            if (is_neg_power(a) && !tmp_name(p, a) && !trans_rep(p, a))
                den[nd++] = den_factor(p, a, items_d == 1 ? 0 : --rest_d ? L_POST : L_PREFIX);
            else num[nn++] = render(p, a, items_n == 1 ? 0 : --rest_n ? L_POST : L_PREFIX);
        }
        char *ns = join_string(p, num, nn), *ds = join_string(p, den, nd);
        md_buf b = {0};
        md_buf_printf(&b, "\\frac{%s}{%s}", ns, ds);
        f[nf++] = md_buf_take(&b);
        free(ns);
        free(ds);
    } else {
        if (!c_num1) f[nf++] = mpz_string(mpq_numref(c));
        /* an inner product among other scalars is grouped, (x^\top y)A,
           except at the very end: 2ax^\top y (and so is \log\det, L_PREFIX) */
        for (int i = 0; i < s; i++)
            if (e->args[i]->kind != MD_NUM)
                f[nf++] = render(p, e->args[i], i == n - 1 ? L_PROD : L_POST);
    }
    for (int i = s; i < n; i++) {
        md_expr *a = e->args[i];
        int need = L_POST;
        if (a->kind == MD_ONES) need = L_PROD;   /* 11^T inside a chain */
        else if (n - s == 1 && !scalar_products) need = L_HAD;   /* 2A \circ B */
        f[nf++] = render(p, a, need);
    }
    if (nf == 0) f[nf++] = md_xstrdup("1");
    join(p, f, nf);
    for (int i = 0; i < nf; i++) free(f[i]);
    for (int i = 0; i < nn; i++) free(num[i]);
    for (int i = 0; i < nd; i++) free(den[i]);
    free(f);
    free(num);
    free(den);
}

/* Positive terms first, then the negative ones, each group in order
   (md_sum_order, as the text printer). */
static void pr_sum(lx *p, md_expr *e)
{
    int *order = md_xmalloc((size_t)e->nargs * sizeof *order);
    char *negs = md_xmalloc((size_t)e->nargs), *named = md_xcalloc((size_t)e->nargs, 1);
    for (int i = 0; i < e->nargs; i++) named[i] = tmp_name(p, e->args[i]) || trans_rep(p, e->args[i]);
    int m = md_sum_order(e, named, 0, order, negs);
    mpq_t c;
    mpq_init(c);
    for (int k = 0; k < m; k++) {
        md_expr *t = e->args[order[k]];
        if (named[order[k]]) mpq_set_ui(c, 1, 1);
        else md_term_coef(t, c);
        if (negs[k]) put(p, k == 0 ? "-" : " - ");
        else if (k) put(p, " + ");
        mpq_abs(c, c);
        if (named[order[k]]) emit(p, t, L_NEG);
        else if (t->kind == MD_NUM) put_rat_frac(p, c);
        else if (t->kind == MD_MUL) pr_product(p, t, c);
        else emit(p, t, L_NEG);
    }
    mpq_clear(c);
    free(order);
    free(negs);
    free(named);
}

/* Reciprocals (B^{\circ -1}) last, as the text printer writes A./B. */
static void pr_had(lx *p, md_expr *e)
{
    int first = 1;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < e->nargs; i++) {
            md_expr *a = e->args[i];
            int inv = is_neg_power(a) && !tmp_name(p, a) && !trans_rep(p, a);
            if (inv != pass) continue;
            if (!first) {
                put(p, " ");
                put(p, p->had);
                put(p, " ");
            }
            first = 0;
            emit(p, a, L_POST);
        }
}

static void pr_pow(lx *p, md_expr *e)
{
    md_expr *b = e->args[0], *x = e->args[1];
    int scalar = md_is_scalar(e);
    if (x->kind == MD_NUM) {
        if (scalar && mpq_sgn(x->q) < 0) {
            /* 1/x, 1/x^{k} */
            mpq_t k;
            mpq_init(k);
            mpq_neg(k, x->q);
            put(p, "\\frac{1}{");
            if (mpq_cmp_ui(k, 1, 1) == 0) emit(p, b, 0);
            else pr_power_q(p, b, k, 0);
            put(p, "}");
            mpq_clear(k);
            return;
        }
        pr_power_q(p, b, x->q, !scalar);
        return;
    }
    emit(p, b, L_ATOM);
    put(p, "^{");
    if (!scalar) {
        put(p, p->had);
        put(p, " ");
    }
    char *s = render(p, x, 0);
    put(p, s);
    free(s);
    put(p, "}");
}

/* ---- everything else ------------------------------------------------- */

static void pr_func(lx *p, md_expr *e)
{
    md_expr *a = e->args[0];
    if (e->ival == MD_FN_GENERIC) {
        put_name(p, p->ctx->funcs[e->aux], 1);
        if (e->order <= 3) {
            for (int i = 0; i < e->order; i++) put(p, "'");
        } else {
            char b[32];
            snprintf(b, sizeof b, "^{(%d)}", e->order);
            put(p, b);
        }
        call(p, "", a);
        return;
    }
    const md_fn_info *fi = &md_fns[e->ival];
    char *s;
    switch (fi->lstyle) {
    case MD_LX_ABS:
        s = render(p, a, 0);
        delimit(p, "\\lvert ", s, "\\rvert");
        free(s);
        return;
    case MD_LX_SQRT:
        s = render(p, a, 0);
        put(p, "\\sqrt{");
        put(p, s);
        put(p, "}");
        free(s);
        return;
    case MD_LX_CALL:
        call(p, fi->latex, a);
        return;
    }
}

/* \|A\|_F, \|x\|_2, \|A\|_1; |a| for a scalar.  A norm does not see a
   transpose: the argument is written the way round with fewer of them
   (\|\mathbf{1}^\top f(XV)\|_2, not \|f(V^\top X^\top)\mathbf{1}\|_2), unless
   the temporaries were found without that form. */
static void pr_norm(lx *p, md_expr *e)
{
    md_expr *a = e->args[0];
    if (!md_is_scalar(a) && !tmp_name(p, a) && !trans_rep(p, a)) {
        md_expr *b = md_trans(p->ctx, a);
        if ((!p->t || b->id < p->t->n) && md_count_trans(b, 64) < md_count_trans(a, 64)) a = b;
    }
    char *s = render(p, a, 0);
    if (md_is_scalar(a)) {
        delimit(p, "\\lvert ", s, "\\rvert");
    } else {
        delimit(p, "\\|", s, "\\|");
        int vec = a->rows == MD_DIM_ONE || a->cols == MD_DIM_ONE;
        put(p, e->kind == MD_NORM1 ? "_1" : vec ? "_2" : "_F");
    }
    free(s);
}

/* A dimension as a subscript: its name (md_latex_name), a product's
   factors side by side (nq), or with \cdot when a name is longer than a
   letter. */
static void latex_dim(md_ctx *ctx, int d, md_buf *out)
{
    const md_dim *dm = &ctx->dims[d];
    if (!dm->nfac) {
        md_latex_name(ctx, dm->name ? dm->name : "?", out);
        return;
    }
    int long_names = 0;
    for (int i = 0; i < dm->nfac; i++) long_names |= strlen(ctx->dims[dm->fac[i]].name) > 1;
    for (int i = 0; i < dm->nfac; i++) {
        if (i && long_names) md_buf_puts(out, "\\cdot ");
        md_latex_name(ctx, ctx->dims[dm->fac[i]].name, out);
    }
}

/* I, or I_{n} or I_{n\times n} when a name of the program would print
   as I (md_eye_form_of); the size is spelled as a name (md_latex_name).
   always: I_{n} in every case (inside a Kronecker product). */
static void pr_eye_ex(lx *p, md_expr *e, int always)
{
    md_eye_form form = md_eye_form_of(p->ctx, e->rows, &p->eye_plain);
    /* an identity of a product size (n*p) is written with it: I_{np} */
    if (p->ctx->dims[e->rows].nfac) always = 1;
    if (form == MD_EYE_PLAIN && !always) {
        put(p, "I");
        return;
    }
    if (always && form == MD_EYE_PLAIN) form = MD_EYE_SIZED;
    md_buf n = {0}, b = {0};
    latex_dim(p->ctx, e->rows, &n);
    if (form == MD_EYE_SIZED) md_buf_printf(&b, "I_{%s}", n.s);
    else md_buf_printf(&b, "I_{%s\\times %s}", n.s, n.s);
    put(p, b.s);
    md_buf_free(&n);
    md_buf_free(&b);
}

static void pr_eye(lx *p, md_expr *e) { pr_eye_ex(p, e, 0); }

static void pr(lx *p, md_expr *e)
{
    if (scaled_as(p, e)) {
        pr(p, scaled_as(p, e));
        return;
    }
    const char *tn = tmp_name(p, e);
    if (tn) {
        put_name(p, tn, 0);
        return;
    }
    md_expr *rep = trans_rep(p, e);
    if (rep) {
        put_name(p, tmp_name(p, rep), 0);
        put(p, p->tr);
        return;
    }
    switch (e->kind) {
    case MD_NUM:
        if (mpq_sgn(e->q) < 0) {
            mpq_t c;
            mpq_init(c);
            mpq_abs(c, e->q);
            put(p, "-");
            put_rat_frac(p, c);
            mpq_clear(c);
        } else {
            put_rat_frac(p, e->q);
        }
        break;
    case MD_SYM: put_name(p, p->ctx->syms[e->ival].name, 0); break;
    case MD_DIFF:
        put(p, "\\mathrm{d}");
        put_name(p, p->ctx->syms[e->ival].name, 0);
        break;
    case MD_ZERO: put(p, "0"); break;
    case MD_EYE: pr_eye(p, e); break;
    case MD_ONES:
        if (e->cols == MD_DIM_ONE) put(p, "\\mathbf{1}");
        else if (e->rows == MD_DIM_ONE) {
            put(p, "\\mathbf{1}");
            put(p, p->tr);
        } else {
            put(p, "\\mathbf{1}\\mathbf{1}");
            put(p, p->tr);
        }
        break;
    case MD_ADD: pr_sum(p, e); break;
    case MD_MUL: {
        mpq_t c;
        mpq_init(c);
        md_term_coef(e, c);
        if (mpq_sgn(c) < 0) put(p, "-");
        mpq_abs(c, c);
        pr_product(p, e, c);
        mpq_clear(c);
        break;
    }
    case MD_HAD: pr_had(p, e); break;
    case MD_POW: pr_pow(p, e); break;
    case MD_MPOW: {
        char b[32];
        emit(p, e->args[0], L_ATOM);
        snprintf(b, sizeof b, "^{%d}", e->ival);
        put(p, b);
        break;
    }
    case MD_TRANS:
        emit(p, e->args[0], L_ATOM);
        put(p, p->tr);
        break;
    case MD_FUNC: pr_func(p, e); break;
    case MD_SUM: call(p, "\\operatorname{sum}", e->args[0]); break;
    case MD_NORM1:
    case MD_NORM2: pr_norm(p, e); break;
    case MD_TR: call(p, "\\operatorname{tr}", e->args[0]); break;
    case MD_DET: call(p, "\\det", e->args[0]); break;
    case MD_LOGDET: call(p, "\\log\\det", e->args[0]); break;
    case MD_DIAGM:
    case MD_DIAGV: call(p, "\\operatorname{diag}", e->args[0]); break;
    case MD_VEC: call(p, "\\operatorname{vec}", e->args[0]); break;
    case MD_SOFTMAX: call(p, "\\operatorname{softmax}", e->args[0]); break;
    case MD_LSE: call(p, "\\operatorname{logsumexp}", e->args[0]); break;
    case MD_KRON:
        /* (A \otimes B), grouped; an identity inside has its size */
        put(p, "(");
        for (int i = 0; i < 2; i++) {
            if (i) put(p, " \\otimes ");
            if (e->args[i]->kind == MD_EYE && !tmp_name(p, e->args[i])) pr_eye_ex(p, e->args[i], 1);
            else emit(p, e->args[i], L_PROD);
        }
        put(p, ")");
        break;
    case MD_COMM: {
        md_buf b = {0};
        md_buf_puts(&b, "K_{");
        latex_dim(p->ctx, e->ival, &b);
        md_buf_puts(&b, strlen(p->ctx->dims[e->ival].name) > 1 || strlen(p->ctx->dims[e->aux].name) > 1 ? "," : "");
        latex_dim(p->ctx, e->aux, &b);
        md_buf_puts(&b, "}");
        put(p, b.s);
        md_buf_free(&b);
        break;
    }
    case MD_NKINDS: put(p, "?"); break;
    }
}

/* ---- the API ---------------------------------------------------------- */

static lx lx_make(md_ctx *ctx, const md_latex_style *st, const md_temps *t, md_buf *out)
{
    lx p = {ctx, out, t, NULL, "^\\top", "\\circ", 0, 0};
    if (st && st->transpose_T) p.tr = "^T";
    if (st && st->odot) p.had = "\\odot";
    return p;
}

void md_latex_expr(md_ctx *ctx, md_expr *e, const md_latex_style *st, const md_temps *t, md_buf *out)
{
    lx p = lx_make(ctx, st, t, out);
    p.top = e;
    pr(&p, e);
}

void md_latex_ref(md_ctx *ctx, md_expr *e, const md_latex_style *st, const md_temps *t, md_buf *out)
{
    lx p = lx_make(ctx, st, t, out);
    pr(&p, e);
}

char *md_latex_to_string(md_ctx *ctx, md_expr *e, const md_latex_style *st)
{
    md_buf b = {0};
    md_latex_expr(ctx, e, st, NULL, &b);
    return md_buf_take(&b);
}

/* Temporaries are T, T1, T2, ... and print as T, T_{1}, T_{2}: a variable
   T_1 would print like T1, so T1 is avoided too. */
static char **temp_avoid(md_ctx *ctx)
{
    char **avoid = md_xcalloc((size_t)ctx->nsyms + 1, sizeof *avoid);
    int k = 0;
    for (int i = 0; i < ctx->nsyms; i++) {
        const char *s = ctx->syms[i].name;
        if (s[0] != 'T' || s[1] != '_' || !s[2]) continue;
        size_t j = 2;
        while (is_digit(s[j])) j++;
        if (s[j]) continue;
        md_buf b = {0};
        md_buf_printf(&b, "T%s", s + 2);
        avoid[k++] = md_buf_take(&b);
    }
    return avoid;
}

/* X, or \operatorname{vec}X for a matrix; then ^\top when transposed
   ((\operatorname{vec}X)^\top), for the denominators of derivatives. */
static void put_vec_name(lx *p, const md_expr *x, const char *name, int transposed)
{
    int matrix = x->rows != MD_DIM_ONE && x->cols != MD_DIM_ONE;
    int row = x->rows == MD_DIM_ONE && x->cols != MD_DIM_ONE;
    if (matrix) {
        put(p, transposed ? "(\\operatorname{vec}" : "\\operatorname{vec}");
    }
    if (name) put_name(p, name, 0);
    else put(p, md_function_name(p->ctx, 1));
    if (matrix) {
        if (transposed) {
            put(p, ")");
            put(p, p->tr);
        }
        return;
    }
    /* a row vector's vec is its transpose */
    if (!md_is_scalar(x) && transposed != row) put(p, p->tr);
}

/* The left-hand side of result i: df/dX, d vec F/d (vec X)', or
   d^2 f/d vec X d (vec Y)'. */
static void put_lhs(lx *p, md_expr *f, int order, int n, const int *wrt, int i)
{
    md_ctx *ctx = p->ctx;
    const char *fn = md_function_name(ctx, 1);
    if (order == 2) {
        int a = wrt[i / n], b = wrt[i % n];
        md_expr *xa = md_sym(ctx, a), *xb = md_sym(ctx, b);
        put(p, "\\frac{\\partial^2 ");
        put(p, fn);
        put(p, "}{\\partial ");
        put_vec_name(p, xa, ctx->syms[a].name, 0);
        put(p, "\\,\\partial ");
        put_vec_name(p, xb, ctx->syms[b].name, 1);
        put(p, "}");
        return;
    }
    md_expr *x = md_sym(ctx, wrt[i]);
    put(p, "\\frac{\\partial ");
    if (md_is_scalar(f) || md_is_scalar(x)) {
        put(p, fn);
        put(p, "}{\\partial ");
        put_name(p, ctx->syms[wrt[i]].name, 0);
    } else {
        put_vec_name(p, f, NULL, 0);
        put(p, "}{\\partial ");
        put_vec_name(p, x, ctx->syms[wrt[i]].name, 1);
    }
    put(p, "}");
}

void md_latex_gradients(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_expr **grads,
                        const md_latex_style *st, md_buf *out)
{
    md_latex_derivatives(ctx, f, NULL, 1, n, wrt, grads, st, out);
}

/* One row "name &= definition" of a named value. */
static void def_row(lx *p, md_buf *out, const md_temps *t, int k)
{
    md_buf lhs = {0}, body = {0};
    const md_temps *save = p->t;
    p->t = t;
    p->out = &lhs;
    put_name(p, t->owned[k], 0);
    p->out = &body;
    p->top = t->defs[k];
    pr(p, t->defs[k]);
    p->out = out;
    p->t = save;
    md_latex_row(out, lhs.s, body.s ? body.s : "", NULL);
    md_buf_free(&lhs);
    md_buf_free(&body);
}

void md_latex_derivatives(md_ctx *ctx, md_expr *f, md_expr *typed, int order, int nv, const int *wrt,
                          md_expr **grads, const md_latex_style *st, md_buf *out)
{
    int n = order == 2 ? nv * nv : nv;
    /* a function that is a large DAG shares temporaries too, so that it
       does not print as an exponentially large tree */
    int with_f = f->weight > 20000;
    md_expr **roots = md_xcalloc((size_t)n + 1, sizeof *roots);
    for (int i = 0; i < n; i++) roots[i] = grads[i];
    if (with_f) roots[n] = f;
    char **avoid = temp_avoid(ctx);
    md_temps t, tf;
    md_temps_find(ctx, n + with_f, roots, (const char *const *)avoid, &t);
    /* the function as typed, with the user's names only (r = Xw - y) */
    md_expr *fshow = with_f || !typed ? f : typed;
    md_temps_find_ex(ctx, 1, &fshow, (const char *const *)avoid, UINT32_MAX, 0, &tf);
    const char *fn = md_function_name(ctx, 1);

    lx p = lx_make(ctx, st, NULL, out);
    put(&p, "\\begin{align*}\n");
    /* the user's names first, as the text output defines them */
    int rows = 0;
    for (int k = 0; k < tf.ndefs; k++, rows++) {
        if (with_f) break;
        def_row(&p, out, &tf, k);
        md_buf_puts(out, " \\\\\n");
    }
    int nauto = 0;
    for (int k = 0; k < t.ndefs; k++) {
        if (md_user_name_of(ctx, t.defs[k]) < 0) {
            nauto++;
            continue;
        }
        int dup = 0;
        for (int j = 0; j < tf.ndefs && !with_f; j++) dup |= tf.defs[j] == t.defs[k];
        if (dup) continue;
        def_row(&p, out, &t, k);
        md_buf_puts(out, " \\\\\n");
        rows++;
    }
    md_buf lhs = {0}, body = {0};
    p.t = with_f ? &t : &tf;
    p.out = &body;
    p.top = fshow;
    pr(&p, fshow);
    md_latex_row(out, fn, body.s, NULL);
    md_buf_free(&body);
    p.t = &t;
    for (int i = 0; i < n; i++) {
        md_buf_puts(out, " \\\\\n");
        p.out = &lhs;
        put_lhs(&p, f, order, nv, wrt, i);
        p.out = &body;
        p.top = grads[i];
        /* a result that is a value the user named is that name */
        if (md_user_name_of(ctx, grads[i]) >= 0 && t.name[grads[i]->id]) p.top = NULL;
        pr(&p, grads[i]);
        md_latex_row(out, lhs.s, body.s, NULL);
        md_buf_free(&lhs);
        md_buf_free(&body);
    }
    p.out = out;
    put(&p, "\n\\end{align*}\n");
    if (nauto == 1) {
        for (int k = 0; k < t.ndefs; k++) {
            if (md_user_name_of(ctx, t.defs[k]) >= 0) continue;
            put(&p, "where $");
            put_name(&p, t.owned[k], 0);
            put(&p, " = ");
            p.top = t.defs[k];
            pr(&p, t.defs[k]);
            put(&p, "$.\n");
        }
    } else if (nauto > 1) {
        put(&p, "where\n\\begin{align*}\n");
        for (int k = 0, first = 1; k < t.ndefs; k++) {
            if (md_user_name_of(ctx, t.defs[k]) >= 0) continue;
            if (!first) put(&p, " \\\\\n");
            first = 0;
            def_row(&p, out, &t, k);
        }
        put(&p, "\n\\end{align*}\n");
    }
    (void)rows;
    md_temps_free(&t);
    md_temps_free(&tf);
    for (int i = 0; avoid[i]; i++) free(avoid[i]);
    free(avoid);
    free(roots);
}

void md_latex_document(const char *body, md_buf *out)
{
    md_buf_puts(out, "\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n\\begin{document}\n");
    md_buf_puts(out, body);
    if (body[0] && body[strlen(body) - 1] != '\n') md_buf_putc(out, '\n');
    md_buf_puts(out, "\\end{document}\n");
}

/* ---- line breaking ------------------------------------------------------ */

/*
 * How wide a formula sets, estimated in points of 10 pt Computer Modern,
 * so that rows of an align* can be broken before they run into the margin
 * (article's \textwidth is 345 pt).  The estimate errs on the wide side:
 * a letter is 5.8 pt (capitals 9), a binary operator 12.5 with its
 * spaces, a relation 14, a script 0.75 of its content, \frac its wider
 * part at script size, and a tenth more.  tests/latex.sh checks the result: no golden
 * derivation gives an "Overfull \hbox".
 */
static double lw_group(const char **s, int script);

static double lw_arg(const char **s, int script)
{
    /* a {group} or one token */
    while (**s == ' ') (*s)++;
    if (**s == '{') {
        (*s)++;
        double w = lw_group(s, script);
        if (**s == '}') (*s)++;
        return w;
    }
    if (**s == '\\') {
        const char *t = *s + 1;
        if (is_alpha(*t))
            while (is_alpha(*t)) t++;
        else if (*t)
            t++;
        size_t n = (size_t)(t - *s);
        char tok[32];
        snprintf(tok, sizeof tok, "%.*s", (int)(n < 31 ? n : 31), *s);
        const char *u = tok;
        double w = lw_group(&u, script);   /* a single control word */
        *s = t;
        return w;
    }
    if (**s) {
        char tok[2] = {**s, 0};
        const char *u = tok;
        (*s)++;
        return lw_group(&u, script);
    }
    return 0;
}

static double lw_group(const char **s, int script)
{
    static const struct { const char *w; double pt; } words[] = {
        {"mathrm", -1}, {"mathbf", -1}, {"mathit", -1}, {"operatorname", -1}, {"text", -1},
        {"mathbb", -1}, {"left", 0}, {"right", 0}, {"top", 7.8}, {"circ", 10}, {"odot", 12.5},
        {"otimes", 12.5}, {"cdot", 8}, {"times", 12.5}, {"in", 14}, {"partial", 6}, {"ell", 4.5},
        {"quad", 10}, {"qquad", 20}, {"lvert", 3}, {"rvert", 3}, {"log", 13}, {"det", 15},
        {"exp", 16}, {"sqrt", 10}, {"frac", -2}, {"tag", -3}, {NULL, 0}};
    double w = 0, k = script ? 0.75 : 1;
    while (**s && **s != '}') {
        char c = **s;
        if (c == '\\') {
            const char *t = *s + 1;
            if (!is_alpha(*t)) {
                /* \, \; \! \{ \} \| \\ */
                w += k * (*t == ',' ? 1.7 : *t == ';' ? 2.8 : *t == '!' ? -1.7 : *t == '\\' ? 0 : 5);
                *s = *t ? t + 1 : t;
                continue;
            }
            while (is_alpha(*t)) t++;
            size_t n = (size_t)(t - *s - 1);
            *s = t;
            double pt = 6.5;   /* Greek letters and anything not listed */
            for (int i = 0; words[i].w; i++)
                if (strlen(words[i].w) == n && !strncmp(words[i].w, t - n, n)) pt = words[i].pt;
            if (pt == -1) {
                /* a font or \text: its argument upright, letters narrower */
                w += 0.9 * lw_arg(s, script);
            } else if (pt == -2) {
                double a = lw_arg(s, 1), b = lw_arg(s, 1);
                w += (a > b ? a : b) * k + 2;
            } else if (pt == -3) {
                lw_arg(s, script);
            } else if (n >= 3 && pt == 6.5 && (!strncmp(t - n, "tanh", 4) || !strncmp(t - n, "sin", 3) ||
                                                !strncmp(t - n, "cos", 3))) {
                w += k * 5 * (double)n;
            } else {
                w += k * pt;
            }
            continue;
        }
        (*s)++;
        if (c == '^' || c == '_') {
            w += lw_arg(s, 1) * (script ? 1 : 0.75) + 0.5;
        } else if (c == '{') {
            w += lw_group(s, script);
            if (**s == '}') (*s)++;
        } else if (c == '+' || c == '-') {
            w += script ? 6 : 12.5;
        } else if (c == '=' || c == ':' || c == '<' || c == '>') {
            w += script ? 6 : (c == ':' ? 9 : 14);
        } else if (c == ',') {
            w += k * 4.5;
        } else if (c >= 'A' && c <= 'Z') {
            w += k * 9;
        } else if (is_alpha(c) || is_digit(c)) {
            w += k * 5.8;
        } else if (c == '(' || c == ')' || c == '[' || c == ']' || c == '|' || c == '/') {
            w += k * (c == '/' ? 5 : 4);
        } else if (c != ' ' && c != '&') {
            w += k * 5.8;
        }
    }
    return w;
}

double md_latex_width(const char *s)
{
    double w = 0;
    while (*s) {
        w += lw_group(&s, 0);
        if (*s == '}') s++;   /* an unbalanced brace: keep going */
    }
    return 1.1 * w;
}

/* A place where a row may break: before the " + " or " - " at offset at,
   inside depth groups of which lefts are \left ... \right pairs. */
typedef struct lbreak {
    size_t at;
    int depth, lefts;
} lbreak;

/*
 * The binary + and - of body where a line may break: outside every TeX
 * group { } (a \frac's parts, a script, a \sqrt) and every pair of bars
 * (| |, \| \|, \lvert \rvert), but possibly inside brackets ( ), [ ],
 * \{ \}, sized by \left \right or not.  Returns how many (at most max).
 */
static int row_breaks(const char *body, lbreak *b, int max)
{
    enum { BRACE, BRACKET, LEFT, BAR, NORM };
    char stack[256];
    int sp = 0, n = 0, over = 0;
#define PUSH(k) do { if (sp < 256) stack[sp++] = (char)(k); else over++; } while (0)
#define POP() do { if (over) over--; else if (sp) sp--; } while (0)
    for (size_t i = 0; body[i]; i++) {
        char c = body[i];
        if (c == '\\') {
            const char *t = body + i + 1;
            if (!strncmp(t, "left", 4) && !is_alpha(t[4])) {
                PUSH(LEFT);
                i += 4 + (t[4] == '\\');
                i += t[4] || t[5] ? 1 : 0;
            } else if (!strncmp(t, "right", 5) && !is_alpha(t[5])) {
                POP();
                i += 5 + (t[5] == '\\');
                i += t[5] || t[6] ? 1 : 0;
            } else if (!strncmp(t, "lvert", 5)) {
                PUSH(BAR);
                i += 5;
            } else if (!strncmp(t, "rvert", 5)) {
                POP();
                i += 5;
            } else if (*t == '{' || *t == '}' || *t == '|') {
                if (*t == '{') PUSH(BRACKET);
                else if (*t == '}') POP();
                else if (sp && !over && stack[sp - 1] == NORM) POP();
                else PUSH(NORM);
                i++;
            } else {
                while (is_alpha(body[i + 1])) i++;
                if (i == (size_t)(t - body) - 1 && body[i + 1]) i++;   /* \, \; \\ */
            }
            continue;
        }
        if (c == '{') PUSH(BRACE);
        else if (c == '(' || c == '[') PUSH(BRACKET);
        else if (c == '}' || c == ')' || c == ']') POP();
        else if (c == '|') {
            if (sp && !over && stack[sp - 1] == BAR) POP();
            else PUSH(BAR);
        } else if ((c == '+' || c == '-') && i > 0 && body[i - 1] == ' ' && body[i + 1] == ' ' && !over && n < max) {
            int ok = 1, lefts = 0;
            for (int k = 0; k < sp; k++) {
                ok &= stack[k] == BRACKET || stack[k] == LEFT;
                lefts += stack[k] == LEFT;
            }
            if (ok) b[n++] = (lbreak){i - 1, sp, lefts};
        }
    }
#undef PUSH
#undef POP
    return n;
}

void md_latex_row(md_buf *out, const char *lhs, const char *body, const char *tag)
{
    const double width = 330;   /* of article's 345 pt, a little to spare */
    size_t len = strlen(body);
    int max = 0;
    for (size_t i = 0; i < len; i++) max += body[i] == '+' || body[i] == '-';
    lbreak *b = md_xmalloc(((size_t)max + 2) * sizeof *b);
    int n = row_breaks(body, b + 1, max);
    b[0] = (lbreak){0, 0, 0};
    b[n + 1] = (lbreak){len, 0, 0};
    /* seg[i]: the width from break i to break i + 1 */
    double *seg = md_xmalloc(((size_t)n + 1) * sizeof *seg);
    for (int i = 0; i <= n; i++) {
        size_t m = b[i + 1].at - b[i].at;
        char *piece = md_xmalloc(m + 1);
        memcpy(piece, body + b[i].at, m);
        piece[m] = 0;
        seg[i] = md_latex_width(piece);
        free(piece);
    }
    md_buf_puts(out, lhs);
    md_buf_puts(out, " &= ");
    double indent = md_latex_width(lhs) + 14, avail = width - indent;
    int s = 0;
    while (s <= n) {
        /* the line from break s: all the rest if it fits, else up to the
           shallowest break in its second half that fits, else the last
           break that fits, else the first */
        double w = 0, rest = 0;
        for (int i = s; i <= n; i++) rest += seg[i];
        int j = n + 1;
        if (rest > avail) {
            int best = -1, last = -1;
            for (int i = s + 1; i <= n; i++) {
                w += seg[i - 1];
                if (w > avail) break;
                last = i;
                if (w >= avail / 2 && (best < 0 || b[i].depth <= b[best].depth)) best = i;
            }
            j = best >= 0 ? best : last >= 0 ? last : s + 1 <= n ? s + 1 : n + 1;
        }
        size_t from = b[s].at, to = b[j].at;
        if (s > 0) {
            /* a new line, indented past the = sign; {} keeps the sign binary */
            md_buf_puts(out, " \\\\\n &\\quad ");
            for (int k = 0; k < b[s].lefts; k++) md_buf_puts(out, "\\left.");
            md_buf_puts(out, "{}");
            from++;   /* the blank before the sign */
        }
        md_buf_printf(out, "%.*s", (int)(to - from), body + from);
        if (j <= n)
            for (int k = 0; k < b[j].lefts; k++) md_buf_puts(out, "\\right.");
        if (s == 0) avail = width - indent - 10;
        s = j;
    }
    if (tag && tag[0]) {
        md_buf_puts(out, " \\tag*{");
        md_buf_puts(out, tag);
        md_buf_puts(out, "}");
    }
    free(seg);
    free(b);
}
