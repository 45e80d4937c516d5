/*
 * emit_array.c -- f and its derivatives as array code: a NumPy module, a
 * PyTorch module or an Octave/MATLAB function file (--format numpy,
 * torch, octave; docs/arrays.md).
 *
 * Most people who need a matrix gradient work in Python or MATLAB, where
 * the array library does the loops and the BLAS calls: the emitted code
 * only has to say which products, solves and reductions to make, in what
 * order, and make each shared value once.  The three targets differ in
 * spelling only, so there is one emitter and one table of spellings,
 * em_langs (the elementwise functions are spelled in md_builtins.def,
 * columns py, pt, m).
 *
 * The code works on 2-D arrays inside the function: a vector is an n x 1
 * column (reshaped at entry, flattened at return in Python), so that
 * transposes and products translate one to one; a 1 x 1 value is a
 * scalar (a product that yields 1 x 1 is indexed [0, 0]).  The graph is
 * hash-consed, so a node used more than once is one temporary (t1, t2,
 * ...); a long argument becomes a temporary too, which keeps the Python
 * lines within PEP 8's 79 columns (the rest are wrapped inside
 * brackets, aligned with the bracket, or with hanging indents where the
 * brackets nest too deep for that; a number of over 40 digits is its
 * double, a message too long for the line adjacent literals).
 *
 * Plans.  Which bracketing of the products is cheapest depends on sizes
 * known only when the function is called, so the graph is rewritten as
 * the C backend's is (md_cost_plans, costopt.c): one plan per size regime
 * that wins, each with its chains bracketed by cost into two-factor
 * products, a sub-product that two chains can share formed once (seed
 * 003's X*U in E and in d_V), norm2(A*B')^2 as the sum of the two Gram
 * matrices' elementwise product when they are smaller than A*B', a
 * trace split where its two halves cost least (tr(P*Q) is then the sum
 * of P .* Q', never P*Q).  With one plan, it is the function's body; with
 * several, each is a private function (_plan1, ...; Octave: subfunctions
 * NAME_plan1, ...) of the same arguments, and the function checks the
 * inputs and calls the plan with the fewest flops for the shapes it was
 * given (the first of equal ones), by the cost model of the C file's
 * chooser written in the target language (em_plan_flops: r*k*c for a
 * product, r*k for a trace of two factors, n^3 for a solve, one per
 * element for the rest).
 *
 * Products.  A product node holds its scalar factors and one matrix
 * chain (after the plans, of two factors but where the scalars ride on a
 * single product).  In the chain, inv(A) (that nothing else needs as a
 * matrix) becomes a solve, solve(A, B) for inv(A)*B and solve(A', C')'
 * for C*inv(A); diag(v) scales the rows or the columns of its neighbour
 * (v * B, C * v'); a vector of ones next to a matrix is a sum over its
 * rows or columns; eye disappears.  A longer chain of dense factors, if
 * one is left, is multiplied by numpy.linalg.multi_dot
 * (torch.linalg.multi_dot), which brackets by the shapes at run time, or
 * for Octave by the matrix-chain DP of costopt.c at representative sizes
 * (1 for the dimension 1, 1000 for the others).
 *
 * Kronecker products and commutation matrices (Jacobians and Hessians of
 * matrix functions are full of them) are applied, never formed, as the C
 * backend's md_kron_mv does: in a chain, kron(A, B)*M is, column by
 * column, vec(B*X*A') for X the cB x cA matrix whose vec is the column
 * (_kron_mm: two batched products, no loop); commutation(m, n)*M is a
 * transpose of each column reshaped m x n (_commutation_mm: a reshape and
 * a swap of axes); M*K is (K'*M')', with kron(A, B)' = kron(A', B') and
 * commutation(m, n)' = commutation(n, m).  A commutation matrix is
 * applied first, so next to a Kronecker product that has to be formed it
 * only permutes its columns.  A sum of them in a product is distributed
 * before the analysis (em_distribute): (K1 + K2)*M is K1*M + K2*M.  The
 * helpers are written into the module only when used.
 *
 * Only where nothing else can use it (diag(v) + A, an inverse returned as
 * a result, a Kronecker product that is a Jacobian or Hessian block
 * itself or a term of a sum with a dense matrix) is a structured matrix
 * formed densely.
 *
 * Every node kind is handled in em_node; a construct that has no faithful
 * spelling is an error with a message (exit 1), never approximate code.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "md_builtins.h"
#include "md_costopt.h"
#include "md_emit.h"
#include "md_simplify.h"
#include "md_util.h"

/* Precedence of a piece of text: how tightly it holds together. */
enum { P_ADD = 1, P_MUL, P_NEG, P_POW, P_ATOM };

/* ---- the one table of spellings --------------------------------------- */

/*
 * The formats take their operands as %1$s, %2$s; an operand that is not
 * an atom (a name, a call, a subscript) is parenthesised before it goes
 * in wherever it is not the whole argument of a call.
 */
typedef struct em_lang {
    const char *format;     /* the --format name */
    int python;             /* Python syntax (else Octave/MATLAB) */
    const char *indent;     /* one level */
    const char *end;        /* statement terminator */
    const char *comment;    /* line comment */
    const char *matmul;     /* binary matrix product */
    const char *had;        /* elementwise product */
    const char *pow;        /* elementwise power */
    const char *trans;      /* %1$s' (an atom) */
    const char *zeros, *ones, *eye;        /* %1$s rows, %2$s cols (eye: n) */
    const char *sum, *norm1, *norm2, *sumsq; /* of all entries; sumsq needs a name */
    const char *trace, *det, *logdet, *inv, *mpow;
    const char *trdot;      /* tr(%1$s * %2$s) without the product (atoms) */
    const char *solve;      /* inv(%1$s) * %2$s */
    const char *rsolve;     /* %2$s * inv(%1$s) */
    const char *diagm;      /* the diagonal matrix of column %1$s */
    const char *diagv;      /* the diagonal of %1$s as a column */
    const char *vec, *kron, *comm;
    const char *kron_mm;    /* kron(A, B) * %2$s, never formed; %1$s: "A, B" */
    const char *comm_mm;    /* commutation(m, n) * %2$s, never formed; %1$s: "m, n" */
    const char *softmax, *lse;   /* of a column %1$s, shifted by its largest entry (%3$s: NAME) */
    const char *colsum;     /* ones' * %1$s: the row of column sums */
    const char *rowsum;     /* %1$s * ones: the column of row sums */
    const char *scale_rows; /* diag(%1$s) * %2$s */
    const char *scale_cols; /* %2$s * diag(%1$s) */
    const char *multidot;   /* the product of the list %1$s, or NULL: bracket here */
    const char *elem00;     /* the scalar of a 1 x 1 product %1$s */
    const char *generic;    /* derivative %3$d of generic function %1$s at %2$s */
    const char *ravel;      /* a column %1$s as the result's vector */
    const char *plan;       /* the private function of plan %2$s (1, 2, ...) of %1$s */
    const char *fref;       /* plan function %1$s as a value */
    const char *seq;        /* the list %1$s of the plans' flop counts */
    const char *fseq;       /* the list %1$s of the plan functions */
    const char *argmin;     /* the index of the first least entry of list %1$s */
    const char *pick;       /* entry %2$s (an argmin) of list %1$s */
    const char *const *reserved;   /* names the code calls or keeps */
} em_lang;

static const char *const em_py_reserved[] = {
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
    "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global",
    "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return",
    "try", "while", "with", "yield", "np", "torch", "ValueError", "float", "dtype", "device",
    "isinstance", "range", "len", "print", "min",
    /* PEP 8 (E741): never l, O or I as a name */
    "l", "O", "I", NULL};

static const char *const em_m_reserved[] = {
    "break", "case", "catch", "classdef", "continue", "do", "else", "elseif", "end",
    "end_try_catch", "end_unwind_protect", "endfor", "endfunction", "endif", "endparfor",
    "endswitch", "endwhile", "enumeration", "events", "for", "function", "global", "if",
    "methods", "otherwise", "parfor", "persistent", "properties", "return", "switch", "try",
    "until", "unwind_protect", "unwind_protect_cleanup", "while",
    /* what the code calls: a variable of that name would shadow it */
    "sin", "cos", "tan", "asin", "acos", "atan", "exp", "log", "tanh", "abs", "sign", "max",
    "double", "sqrt", "log1p", "sum", "norm", "trace", "det", "inv", "diag", "reshape", "kron",
    "zeros", "ones", "eye", "size", "numel", "isvector", "isscalar", "ismatrix", "error", "lu",
    "prod", "NaN", "ndims", "mpower", "min", "find",
    /* Octave-only functions: MATLAB has none of them, and the MATLAB lint
       (tests/arrays/matlab_lint.py) rejects the words */
    "printf", "puts", "fputs", "fdisp", NULL};

enum { EM_NUMPY, EM_TORCH, EM_OCTAVE };

static const em_lang em_langs[] = {
    [EM_NUMPY] = {
        "numpy", 1, "    ", "", "#", " @ ", " * ", " ** ", "%1$s.T",
        "np.zeros((%1$s, %2$s))", "np.ones((%1$s, %2$s))", "np.eye(%1$s)",
        "np.sum(%1$s)", "np.sum(np.abs(%1$s))", "np.linalg.norm(%1$s)", "np.vdot(%1$s, %1$s)",
        "np.trace(%1$s)", "np.linalg.det(%1$s)", "_logdet(%1$s)", "np.linalg.inv(%1$s)",
        "np.linalg.matrix_power(%1$s, %2$s)", "np.vdot(%1$s, %2$s.T)",
        "np.linalg.solve(%1$s, %2$s)", "np.linalg.solve(%1$s.T, %2$s.T).T",
        "np.diag(%1$s[:, 0])", "np.diagonal(%1$s)[:, None]",
        "%1$s.T.reshape(-1, 1)", "np.kron(%1$s, %2$s)", "_commutation(%1$s, %2$s)",
        "_kron_mm(%1$s, %2$s)", "_commutation_mm(%1$s, %2$s)",
        "_softmax(%1$s)", "_logsumexp(%1$s)",
        "%1$s.sum(axis=0, keepdims=True)", "%1$s.sum(axis=1, keepdims=True)",
        "%1$s * %2$s", "%2$s * %1$s.T", "np.linalg.multi_dot([%1$s])", "%1$s[0, 0]",
        "%1$s(%2$s, %3$d)", "%1$s.reshape(-1)",
        "_plan%2$s", "%1$s", "(%1$s)", "(%1$s)", "%1$s.index(min(%1$s))", "%1$s[%2$s]",
        em_py_reserved},
    [EM_TORCH] = {
        "torch", 1, "    ", "", "#", " @ ", " * ", " ** ", "%1$s.T",
        "torch.zeros(%1$s, %2$s, dtype=dtype, device=device)",
        "torch.ones(%1$s, %2$s, dtype=dtype, device=device)",
        "torch.eye(%1$s, dtype=dtype, device=device)",
        "torch.sum(%1$s)", "torch.sum(torch.abs(%1$s))", "torch.linalg.vector_norm(%1$s)",
        "torch.sum(%1$s * %1$s)",
        "torch.trace(%1$s)", "torch.linalg.det(%1$s)", "_logdet(%1$s)", "torch.linalg.inv(%1$s)",
        "torch.linalg.matrix_power(%1$s, %2$s)", "torch.sum(%1$s * %2$s.T)",
        "torch.linalg.solve(%1$s, %2$s)", "torch.linalg.solve(%1$s.T, %2$s.T).T",
        "torch.diag(%1$s[:, 0])", "torch.diagonal(%1$s)[:, None]",
        "%1$s.T.reshape(-1, 1)", "_kron(%1$s, %2$s)", "_commutation(%1$s, %2$s, dtype, device)",
        "_kron_mm(%1$s, %2$s)", "_commutation_mm(%1$s, %2$s)",
        "_softmax(%1$s)", "_logsumexp(%1$s)",
        "%1$s.sum(dim=0, keepdim=True)", "%1$s.sum(dim=1, keepdim=True)",
        "%1$s * %2$s", "%2$s * %1$s.T", "torch.linalg.multi_dot([%1$s])", "%1$s[0, 0]",
        "%1$s(%2$s, %3$d)", "%1$s.reshape(-1)",
        "_plan%2$s", "%1$s", "(%1$s)", "(%1$s)", "%1$s.index(min(%1$s))", "%1$s[%2$s]",
        em_py_reserved},
    [EM_OCTAVE] = {
        "octave", 0, "  ", ";", "%", " * ", " .* ", " .^ ", "%1$s'",
        "zeros(%1$s, %2$s)", "ones(%1$s, %2$s)", "eye(%1$s)",
        "sum(sum(%1$s))", "sum(sum(abs(%1$s)))", "norm(%1$s, 'fro')", "sum(%1$s(:) .^ 2)",
        "trace(%1$s)", "det(%1$s)", "%3$s_logdet(%1$s)", "inv(%1$s)", "%1$s ^ %2$s",
        "sum(sum(%1$s .* %2$s'))",
        "%1$s \\ %2$s", "%2$s / %1$s",
        "diag(%1$s)", "diag(%1$s)",
        "reshape(%1$s, [], 1)", "kron(%1$s, %2$s)", "%3$s_commutation(%1$s, %2$s)",
        "%3$s_kron_mm(%1$s, %2$s)", "%3$s_commutation_mm(%1$s, %2$s)",
        "%3$s_softmax(%1$s)", "%3$s_logsumexp(%1$s)",
        "sum(%1$s, 1)", "sum(%1$s, 2)",
        "%1$s .* %2$s", "%2$s .* %1$s'", NULL, "%1$s",
        "%1$s(%2$s, %3$d)", "%1$s",
        "%1$s_plan%2$s", "@%1$s", "[%1$s]", "{%1$s}", "find(%1$s == min(%1$s), 1)", "%1$s{%2$s}",
        em_m_reserved},
};

/* ---- state ---------------------------------------------------------------- */

typedef struct em_txt {
    char *s;
    int prec;
} em_txt;

typedef struct em_state {
    md_ctx *ctx;
    const em_lang *L;
    int lang;
    const char *fname;
    int *uses;           /* per node id: references from reachable parents and roots */
    int *nonchain;       /* uses other than as a factor of a product chain */
    char *temp;          /* becomes a temporary */
    md_expr **alias;     /* per node id: the node whose transpose it is, computed instead */
    char *viaalias;      /* per node id: being written through its alias (em_node) */
    uint32_t nn;         /* nodes covered by the tables */
    char **tname;        /* its name once defined */
    char **dimname;      /* per dim id: the local holding its size */
    char **dimexpr;      /* per dim id: where the inputs carry it (X.shape[0]) */
    char *dimused;       /* the body needs the local */
    char **symname;      /* per symbol: its name in the code */
    char **fnname;       /* per generic function: the callback's name */
    const char **taken;  /* every name in use */
    int ntaken, takencap;
    int ntemp;
    md_buf body;
    int need_logdet, need_comm, need_softmax, need_lse;
    int need_kron_mm, need_comm_mm;   /* the helpers that apply them */
    int need_kron;       /* torch: _kron, a formed Kronecker product */
    int nformed;         /* Kronecker products and commutation matrices formed */
    md_strmap solves;    /* a solve's text -> index of its temporary in taken */
    char **keys;         /* the map's keys (it keeps the pointers) */
    int nkeys;
    int failed;
    FILE *err;
} em_state;

static char *em_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *r = md_xmalloc(n);
    memcpy(r, s, n);
    return r;
}

static char *em_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *em_fmt(const char *fmt, ...)
{
    md_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    md_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    return b.s ? md_buf_take(&b) : em_strdup("");
}

static em_txt em_mk(char *s, int prec) { return (em_txt){s, prec}; }

static void em_fail(em_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void em_fail(em_state *st, const char *fmt, ...)
{
    if (st->failed) return;
    st->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    fprintf(st->err, "matdiff: --format %s: ", st->L->format);
    vfprintf(st->err, fmt, ap);
    fputc('\n', st->err);
    va_end(ap);
}

/* ---- names ------------------------------------------------------------- */

static int em_is_taken(em_state *st, const char *s)
{
    for (const char *const *r = st->L->reserved; *r; r++)
        if (!strcmp(*r, s)) return 1;
    for (int i = 0; i < st->ntaken; i++)
        if (!strcmp(st->taken[i], s)) return 1;
    /* the module's helpers and the Octave file's subfunctions */
    if (st->L->python && s[0] == '_') return 1;
    size_t fl = strlen(st->fname);
    if (!st->L->python && !strncmp(s, st->fname, fl) && (!strcmp(s + fl, "_logdet") || !strcmp(s + fl, "_commutation") ||
                                                        !strncmp(s + fl, "_plan", 5) || !strcmp(s + fl, "_kron_mm") ||
                                                        !strcmp(s + fl, "_commutation_mm") || !strcmp(s + fl, "_softmax") ||
                                                        !strcmp(s + fl, "_logsumexp")))
        return 1;
    return 0;
}

/* A fresh name from base: characters outside [A-Za-z0-9_] spelled _xHH, a
   trailing _ while it is taken; recorded as taken.  Owned by the caller. */
static char *em_name(em_state *st, const char *base)
{
    md_buf b = {0};
    for (const unsigned char *p = (const unsigned char *)base; *p; p++) {
        if (isalnum(*p) || *p == '_') md_buf_putc(&b, (char)*p);
        else md_buf_printf(&b, "_x%02X", *p);
    }
    /* a leading _ is the helpers' in Python (em_is_taken would add _ for
       ever) and no identifier in MATLAB: v in front */
    if (!b.len || isdigit((unsigned char)b.s[0]) || b.s[0] == '_') {
        md_buf c = {0};
        md_buf_printf(&c, "v%s", b.s ? b.s : "");
        md_buf_free(&b);
        b = c;
    }
    while (em_is_taken(st, b.s)) md_buf_putc(&b, '_');
    char *s = md_buf_take(&b);
    if (st->ntaken == st->takencap) {
        st->takencap = st->takencap ? 2 * st->takencap : 32;
        st->taken = md_xrealloc(st->taken, (size_t)st->takencap * sizeof *st->taken);
    }
    st->taken[st->ntaken++] = s;
    return s;
}

/* ---- text helpers ------------------------------------------------------ */

/* Is s one parenthesised group from its first character to its last? */
static int em_wrapped(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || s[0] != '(' || s[n - 1] != ')') return 0;
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '(' || s[i] == '[') depth++;
        else if (s[i] == ')' || s[i] == ']') depth--;
        if (depth == 0 && i + 1 < n) return 0;
    }
    return 1;
}

/* t as an operand needing precedence at least prec: parenthesised if
   weaker.  Consumes t. */
static char *em_op(em_txt t, int prec)
{
    if (t.prec >= prec) return t.s;
    char *r = em_fmt("(%s)", t.s);
    free(t.s);
    return r;
}

/* Fills a format whose %1$s, %2$s (and %3$s) are strings, %3$d an int: a
   tiny subset of printf's positional syntax, enough for the table. */
static char *em_fill(const char *fmt, const char *a, const char *b, const char *c)
{
    md_buf o = {0};
    for (const char *p = fmt; *p; p++) {
        if (p[0] == '%' && p[1] >= '1' && p[1] <= '3' && p[2] == '$' && (p[3] == 's' || p[3] == 'd')) {
            const char *v = p[1] == '1' ? a : p[1] == '2' ? b : c;
            md_buf_puts(&o, v ? v : "");
            p += 3;
        } else {
            md_buf_putc(&o, *p);
        }
    }
    return o.s ? md_buf_take(&o) : em_strdup("");
}

/* Does every %1$s of fmt stand as the whole argument of a call (after
   "(" or ", ", before ")" or ",")?  Then any text can go in unparenthesised. */
static int em_call_arg(const char *fmt)
{
    for (const char *p = strstr(fmt, "%1$s"); p; p = strstr(p + 4, "%1$s")) {
        int before = p > fmt && (p[-1] == '(' || (p - fmt >= 2 && p[-1] == ' ' && p[-2] == ','));
        int after = p[4] == ')' || p[4] == ',';
        if (!before || !after) return 0;
    }
    return 1;
}

static int em_count(const char *fmt, const char *what)
{
    int n = 0;
    for (const char *p = strstr(fmt, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

/* A call-like format applied to one operand: the result is an atom. */
static em_txt em_apply1(const char *fmt, em_txt a)
{
    char *arg = em_call_arg(fmt) ? a.s : em_op(a, P_ATOM);
    char *r = em_fill(fmt, arg, NULL, NULL);
    free(arg);
    return em_mk(r, P_ATOM);
}

/* ---- statements -------------------------------------------------------- */

static void em_break(md_buf *out, const char *full);
static void em_hang(md_buf *out, const char *s, size_t n, int ind);

/* One statement, Python lines wrapped at 79 columns inside brackets (the
   right-hand side put in parentheses when it has none to break in). */
static void em_stmt(em_state *st, md_buf *out, const char *indent, const char *lhs, const char *rhs)
{
    md_buf line = {0};
    md_buf_printf(&line, "%s%s%s%s", indent, lhs, rhs, st->L->end);
    if (!st->L->python || line.len <= 79) {
        md_buf_puts(out, line.s);
        md_buf_putc(out, '\n');
        md_buf_free(&line);
        return;
    }
    md_buf_free(&line);
    /* rhs needs a bracket spanning it to break at its top-level operators */
    int depth0 = 0;
    {
        int d = 0;
        for (const char *p = rhs; *p; p++) {
            if (*p == '(' || *p == '[') d++;
            else if (*p == ')' || *p == ']') d--;
            else if (*p == ' ' && d == 0) depth0 = 1;
        }
    }
    char *r = depth0 && !em_wrapped(rhs) ? em_fmt("(%s)", rhs) : em_strdup(rhs);
    char *full = em_fmt("%s%s%s", indent, lhs, r);
    md_buf v = {0};
    em_break(&v, full);
    int fits = 1;
    for (const char *p = v.s; p && *p;) {
        const char *e = strchr(p, '\n');
        if (e - p > 79) fits = 0;
        p = e + 1;
    }
    if (fits) {
        md_buf_puts(out, v.s);
    } else {
        /* brackets nested so deep that aligning with them leaves no room:
           hanging indents, one level per bracket broken (PEP 8) */
        char *w = em_wrapped(r) ? em_strdup(r) : em_fmt("(%s)", r);
        int ind = (int)strlen(indent);
        md_buf_printf(out, "%s%s(\n", indent, lhs);
        em_hang(out, w + 1, strlen(w) - 2, ind + 4);
        md_buf_printf(out, "%s)\n", indent);
        free(w);
    }
    md_buf_free(&v);
    free(r);
    free(full);
}

/* s[0..n) laid out with hanging indents at column ind: split at the
   spaces outside brackets and strings, the pieces filled into lines of
   at most 79 columns; a piece too long for a line of its own is broken
   after its first bracket, the bracket's contents one level deeper and
   its closing bracket (with what follows it) on a line of its own. */
static void em_hang(md_buf *out, const char *s, size_t n, int ind)
{
    md_buf line = {0};
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        for (int d = 0, instr = 0; j < n; j++) {
            char c = s[j];
            if (c == '"') instr = !instr;
            if (instr) continue;
            if (c == '(' || c == '[') d++;
            else if (c == ')' || c == ']') d--;
            else if (c == ' ' && d == 0) break;
        }
        size_t len = j - i;
        if (line.len && ind + line.len + 1 + len <= 79) {
            md_buf_putc(&line, ' ');
            md_buf_printf(&line, "%.*s", (int)len, s + i);
        } else {
            if (line.len) md_buf_printf(out, "%*s%s\n", ind, "", line.s);
            md_buf_free(&line);
            /* the piece's first bracket and its match */
            size_t k = j, m = 0;
            int instr = 0;
            for (size_t q = i; q < j; q++) {
                if (s[q] == '"') instr = !instr;
                if (instr || (s[q] != '(' && s[q] != '[')) continue;
                k = q;
                break;
            }
            for (size_t q = k, d = 0; q < j; q++) {
                if (s[q] == '(' || s[q] == '[') d++;
                else if ((s[q] == ')' || s[q] == ']') && --d == 0) {
                    m = q;
                    break;
                }
            }
            if (ind + (int)len <= 79 || !m || m == k + 1) {
                md_buf_printf(&line, "%.*s", (int)len, s + i);
            } else {
                md_buf_printf(out, "%*s%.*s\n", ind, "", (int)(k + 1 - i), s + i);
                em_hang(out, s + k + 1, m - k - 1, ind + 4);
                md_buf_printf(&line, "%.*s", (int)(j - m), s + m);
            }
        }
        i = j + 1;
    }
    if (line.len) md_buf_printf(out, "%*s%s\n", ind, "", line.s);
    md_buf_free(&line);
}

/* A Python line broken at 79 columns: greedy, at the shallowest space
   inside brackets (and outside strings) that leaves a line of some
   length; continuation lines align with the innermost open bracket
   (PEP 8's visual indent). */
static void em_break(md_buf *out, const char *full)
{

    /* greedy: the last space inside brackets (and outside strings)
       before column 79; the next line aligns with the innermost open
       bracket (PEP 8's visual indent) */
    size_t n = strlen(full);
    int *col = md_xcalloc(n + 1, sizeof *col);
    size_t start = 0;
    int col0 = 0;
    while (start < n) {
        if (col0 + (int)(n - start) <= 79) {
            md_buf_printf(out, "%*s%s\n", col0, "", full + start);
            break;
        }
        int stack[256], nopen = 0, instr = 0;
        char breakable[256];
        size_t best = 0;
        int bestcol = 0, bestdepth = 1 << 30;
        /* the shallowest break that leaves a line of some length, the last
           of those; else the last break */
        int minlen = col0 + 30 < 60 ? col0 + 30 : 60;
        for (size_t i = 0; i < n; i++) {
            if (i >= start) col[i] = col0 + (int)(i - start);
            if (i >= start && col[i] > 79 && best) break;
            char c = full[i];
            if (c == '"') instr = !instr;
            if (instr) continue;
            if (c == '(' || c == '[') {
                if (nopen < 256) {
                    stack[nopen] = col[i] + 1;
                    /* a subscript (x[:, 0], after a name or a bracket)
                       is no place to break; a list ([a, b] in a call, wrt
                       = [0, 1]) is */
                    char pc = i > 0 ? full[i - 1] : ' ';
                    breakable[nopen] = c == '(' || !(isalnum((unsigned char)pc) || pc == '_' || pc == ')' || pc == ']');
                }
                nopen++;
            } else if (c == ')' || c == ']') {
                nopen--;
            } else if (c == ' ' && i > start && nopen > 0 && nopen <= 256 && breakable[nopen - 1] && col[i] <= 79) {
                /* the next line starts at the bracket's column: a break
                   after which a piece of the rest of the bracket (between
                   spaces at its depth, the last one to the next space
                   outside) does not fit there is the last resort, the
                   shallowest of those first */
                size_t ps = i + 1, j = i + 1;
                int longest = 0;
                for (int rd = 0; j < n; j++) {
                    if (full[j] == '(' || full[j] == '[') rd++;
                    else if (full[j] == ')' || full[j] == ']') rd--;
                    else if (full[j] == ' ' && rd <= 0) {
                        if ((int)(j - ps) > longest) longest = (int)(j - ps);
                        if (rd < 0) break;
                        ps = j + 1;
                    }
                }
                if (j == n && (int)(n - ps) > longest) longest = (int)(n - ps);
                int fits = stack[nopen - 1] + longest <= 79;
                int later = n - i < 999999 ? (int)(n - i) : 999999;
                int depth = !fits ? 1000000 * (1 + nopen) + later : col[i] >= minlen ? nopen : 1000 + later;
                if (depth <= bestdepth || !best) {
                    best = i;
                    bestcol = stack[nopen - 1];
                    bestdepth = depth;
                }
            }
        }
        if (!best) {
            md_buf_printf(out, "%*s%s\n", col0, "", full + start);
            break;
        }
        md_buf_printf(out, "%*s%.*s\n", col0, "", (int)(best - start), full + start);
        start = best + 1;
        col0 = bestcol;
    }
    free(col);
}

static void em_line(em_state *st, const char *lhs, const char *rhs)
{
    em_stmt(st, &st->body, st->L->indent, lhs, rhs);
}

/* ---- dimensions and numbers --------------------------------------------- */

static char *em_dim(em_state *st, int d)
{
    if (d == MD_DIM_ONE) return em_strdup("1");
    md_dim *dm = &st->ctx->dims[d];
    if (st->dimname[d]) {
        /* carried by an input (a product too: vector beta(r*r)) */
        st->dimused[d] = 1;
        return em_strdup(st->dimname[d]);
    }
    if (dm->nfac > 0) {
        md_buf b = {0};
        for (int i = 0; i < dm->nfac; i++) {
            char *f = em_dim(st, dm->fac[i]);
            md_buf_printf(&b, "%s%s", i ? " * " : "", f);
            free(f);
        }
        return md_buf_take(&b);
    }
    em_fail(st, "the size of dimension %s is fixed by no input (a constant's size that no "
                "variable carries); declare a variable with it",
            dm->name ? dm->name : "?");
    return em_strdup("1");
}

/* A rational as code: an exact decimal when there is a short one, else
   p / q (true division in Python), else (over 40 characters) the nearest
   double; exponent: integers without ".0". */
static em_txt em_number(em_state *st, const mpq_t q, int exponent)
{
    int neg = mpq_sgn(q) < 0;
    mpq_t a;
    mpq_init(a);
    mpq_abs(a, q);
    char *s;
    int prec = P_ATOM;
    if (mpz_cmp_ui(mpq_denref(a), 1) == 0) {
        char *z = mpz_get_str(NULL, 10, mpq_numref(a));
        s = em_fmt("%s%s", z, st->L->python && !exponent ? ".0" : "");
        free(z);
    } else {
        double d = mpq_get_d(a);
        char buf[64] = "";
        int exact = 0;
        /* (beyond the doubles, d is infinite: mpq_set_d would trap) */
        for (int p = 1; p <= 17 && !exact && isfinite(d); p++) {
            snprintf(buf, sizeof buf, "%.*g", p, d);
            mpq_t back;
            mpq_init(back);
            mpq_set_d(back, strtod(buf, NULL));
            exact = mpq_equal(back, a) && !strchr(buf, 'e');
            mpq_clear(back);
        }
        if (exact) {
            s = em_strdup(buf);
        } else {
            char *nu = mpz_get_str(NULL, 10, mpq_numref(a)), *de = mpz_get_str(NULL, 10, mpq_denref(a));
            s = em_fmt(st->L->python ? "%s / %s" : "%s / %s", nu, de);
            free(nu);
            free(de);
            prec = P_MUL;
        }
    }
    if (strlen(s) > 40) {
        /* a huge or tiny rational (1e-3269^5) in the double the code
           computes with anyway: digits no line can hold, and Python's
           true division of such integers overflows */
        double d = mpq_get_d(a);
        char buf[64];
        free(s);
        if (isfinite(d)) {
            snprintf(buf, sizeof buf, "%.17g", d);
            if (!strpbrk(buf, ".e") && st->L->python && !exponent) strcat(buf, ".0");
            s = em_strdup(buf);
        } else {
            s = em_strdup(st->L->python ? "float(\"inf\")" : "Inf");
        }
        prec = P_ATOM;
    }
    mpq_clear(a);
    if (neg) {
        char *o = em_op(em_mk(s, prec), P_POW);
        s = em_fmt("-%s", o);
        free(o);
        prec = P_NEG;
    }
    return em_mk(s, prec);
}

/* ---- nodes -------------------------------------------------------------- */

static em_txt em_node(em_state *st, md_expr *e);

/* A temporary holding text t for node e (e == NULL: for nobody). */
static char *em_define(em_state *st, md_expr *e, em_txt t)
{
    char base[32];
    snprintf(base, sizeof base, "t%d", ++st->ntemp);
    char *nm = em_name(st, base);
    char *lhs = em_fmt("%s = ", nm);
    em_line(st, lhs, t.s);
    free(lhs);
    free(t.s);
    if (e) st->tname[e->id] = nm;
    return em_strdup(nm);
}

/* The text of e as an operand: its temporary, or its text, made a
   temporary when it is long (readable lines, PEP 8). */
static em_txt em_arg(em_state *st, md_expr *e)
{
    em_txt t = em_node(st, e);
    if (strlen(t.s) > 48 && !st->tname[e->id]) return em_mk(em_define(st, e, t), P_ATOM);
    return t;
}

/* e's value in a name: for formats that repeat their operand. */
static char *em_named(em_state *st, md_expr *e)
{
    em_txt t = em_node(st, e);
    int plain = 1;
    for (const char *p = t.s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') plain = 0;
    if (plain && !isdigit((unsigned char)t.s[0])) return t.s;
    if (st->tname[e->id]) return t.s;
    return em_define(st, e, t);
}

/* A product's chain, after the structured factors are taken out. */
typedef enum { IT_DENSE, IT_INV, IT_DIAG, IT_ONES, IT_KRON, IT_COMM } em_itkind;
typedef struct em_item {
    em_itkind kind;
    char *s;           /* DENSE: the text (an operand, P_ATOM or not); INV: A
                          (an atom); DIAG: v (an atom); KRON: A (an atom) */
    int prec;
    int rows, cols;    /* dims */
    char *s2;          /* KRON: B (an atom) of kron(A, B) */
    int m, n;          /* COMM: commutation(m, n)'s dims */
} em_item;

static em_item em_dense_item(char *s, int prec, int rows, int cols)
{
    return (em_item){IT_DENSE, s, prec, rows, cols, NULL, 0, 0};
}

static long em_rep(em_state *st, int d)
{
    if (d == MD_DIM_ONE) return 1;
    md_dim *dm = &st->ctx->dims[d];
    if (dm->nfac > 0) {
        long r = 1;
        for (int i = 0; i < dm->nfac; i++) r *= em_rep(st, dm->fac[i]);
        return r;
    }
    return 1000;
}

/* The product of it[i..j] bracketed by the chain DP's split table (n
   items): the text of the chosen bracketing only (building every
   sub-chain's took cubic time in a chain of 39 matrices).  Consumes the
   texts. */
static em_item em_bracket(em_state *st, em_item *it, const int *split, int n, int i, int j)
{
    if (i == j) return it[i];
    int k = split[i * n + j];
    em_item a = em_bracket(st, it, split, n, i, k), b = em_bracket(st, it, split, n, k + 1, j);
    char *as = em_op(em_mk(a.s, a.prec), P_MUL);
    char *bs = em_op(em_mk(b.s, b.prec), P_ATOM);
    em_item r = em_dense_item(em_fmt("%s%s%s", as, st->L->matmul, bs), P_MUL, a.rows, b.cols);
    free(as);
    free(bs);
    return r;
}

/* The product of dense items it[0..n) (n >= 1); consumes their texts. */
static em_item em_dense_product(em_state *st, em_item *it, int n)
{
    if (n == 1) return it[0];
    int rows = it[0].rows, cols = it[n - 1].cols;
    if (n == 2 || !st->L->multidot) {
        if (n == 2) {
            char *a = em_op(em_mk(it[0].s, it[0].prec), P_MUL), *b = em_op(em_mk(it[1].s, it[1].prec), P_ATOM);
            char *r = em_fmt("%s%s%s", a, st->L->matmul, b);
            free(a);
            free(b);
            return em_dense_item(r, P_MUL, rows, cols);
        }
        /* the chain DP at representative sizes, bracketed explicitly */
        long *d = md_xcalloc((size_t)n + 1, sizeof *d);
        for (int i = 0; i < n; i++) d[i] = em_rep(st, it[i].rows);
        d[n] = em_rep(st, it[n - 1].cols);
        double *cost = md_xcalloc((size_t)n * n, sizeof *cost);
        int *split = md_xcalloc((size_t)n * n, sizeof *split);
        md_cost_chain(n, d, NULL, cost, split);
        em_item out = em_bracket(st, it, split, n, 0, n - 1);
        free(d);
        free(cost);
        free(split);
        return out;
    }
    md_buf b = {0};
    for (int i = 0; i < n; i++) {
        md_buf_printf(&b, "%s%s", i ? ", " : "", it[i].s);
        free(it[i].s);
    }
    char *r = em_fill(st->L->multidot, b.s, NULL, NULL);
    md_buf_free(&b);
    if (strlen(r) > 60) r = em_define(st, NULL, em_mk(r, P_ATOM));
    return em_dense_item(r, P_ATOM, rows, cols);
}

static em_item em_items_product(em_state *st, em_item *it, int n);

/* A solve in a temporary, one per distinct solve: x'*inv(S)*x and
   2*inv(S)*x solve S x once.  Consumes s. */
static char *em_solve_temp(em_state *st, char *s)
{
    int k = md_strmap_get(&st->solves, s);
    if (k >= 0) {
        free(s);
        return em_strdup(st->taken[k]);
    }
    char *key = em_strdup(s);
    char *nm = em_define(st, NULL, em_mk(s, P_ATOM));
    md_strmap_put(&st->solves, key, st->ntaken - 1);
    st->keys = md_xrealloc(st->keys, (size_t)(st->nkeys + 1) * sizeof *st->keys);
    st->keys[st->nkeys++] = key;
    return nm;
}

static em_item em_applied_product(em_state *st, em_item *it, int n, int k);

/* Structured items (DIAG, ONES) absorbed into dense neighbours, KRON and
   COMM applied to them (em_applied_product), no INV in it[0..n). */
static em_item em_plain_product(em_state *st, em_item *it, int n)
{
    /* a commutation matrix first: applied to a Kronecker product that
       has to be formed (kron(X', eye(m))*commutation(n, m)), it only
       permutes its columns */
    for (int k = 0; k < n; k++)
        if (it[k].kind == IT_COMM) return em_applied_product(st, it, n, k);
    for (int k = 0; k < n; k++)
        if (it[k].kind == IT_KRON) return em_applied_product(st, it, n, k);
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < n; i++) {
            em_item *c = &it[i];
            if (c->kind == IT_DIAG) {
                if (i + 1 < n && it[i + 1].kind == IT_DIAG) {
                    /* diag(u) diag(v) = diag(u .* v) */
                    char *a = em_op(em_mk(c->s, c->prec), P_MUL), *b = em_op(em_mk(it[i + 1].s, it[i + 1].prec), P_ATOM);
                    char *r = em_fmt("(%s%s%s)", a, st->L->had, b);
                    free(a);
                    free(b);
                    it[i + 1].s = r;
                    it[i + 1].prec = P_ATOM;
                } else if (i + 1 < n && it[i + 1].kind == IT_DENSE) {
                    char *b = em_op(em_mk(it[i + 1].s, it[i + 1].prec), P_ATOM);
                    it[i + 1].s = em_fill(st->L->scale_rows, c->s, b, NULL);
                    it[i + 1].prec = P_MUL;
                    free(b);
                    free(c->s);
                } else if (i > 0 && it[i - 1].kind == IT_DENSE) {
                    char *a = em_op(em_mk(it[i - 1].s, it[i - 1].prec), P_MUL);
                    it[i - 1].s = em_fill(st->L->scale_cols, c->s, a, NULL);
                    it[i - 1].prec = P_MUL;
                    free(a);
                    free(c->s);
                } else if (n == 1 || (i + 1 < n && it[i + 1].kind == IT_ONES) || (i > 0 && it[i - 1].kind == IT_ONES)) {
                    /* alone (or beside ones): formed */
                    char *d = em_fill(st->L->diagm, c->s, NULL, NULL);
                    free(c->s);
                    *c = em_dense_item(d, P_ATOM, c->rows, c->cols);
                    changed = 1;
                    continue;
                } else {
                    continue;
                }
                memmove(&it[i], &it[i + 1], (size_t)(n - i - 1) * sizeof *it);
                n--;
                changed = 1;
                break;
            }
            if (c->kind == IT_ONES) {
                if (c->rows == MD_DIM_ONE && i + 1 < n && it[i + 1].kind == IT_DENSE) {
                    char *b = em_op(em_mk(it[i + 1].s, it[i + 1].prec), P_ATOM);
                    it[i + 1].s = em_fill(st->L->colsum, b, NULL, NULL);
                    it[i + 1].prec = P_ATOM;
                    it[i + 1].rows = MD_DIM_ONE;
                    free(b);
                } else if (c->cols == MD_DIM_ONE && i > 0 && it[i - 1].kind == IT_DENSE) {
                    char *a = em_op(em_mk(it[i - 1].s, it[i - 1].prec), P_ATOM);
                    it[i - 1].s = em_fill(st->L->rowsum, a, NULL, NULL);
                    it[i - 1].prec = P_ATOM;
                    it[i - 1].cols = MD_DIM_ONE;
                    free(a);
                } else {
                    /* a ones matrix with no neighbour to sum: formed */
                    char *r = em_dim(st, c->rows), *cc = em_dim(st, c->cols);
                    char *d = em_fill(st->L->ones, r, cc, NULL);
                    free(r);
                    free(cc);
                    if (st->L->python && strlen(d) > 30) d = em_define(st, NULL, em_mk(d, P_ATOM));   /* as em_constant */
                    *c = em_dense_item(d, P_ATOM, c->rows, c->cols);
                    changed = 1;
                    continue;
                }
                memmove(&it[i], &it[i + 1], (size_t)(n - i - 1) * sizeof *it);
                n--;
                changed = 1;
                break;
            }
        }
    }
    return em_dense_product(st, it, n);
}

/* A Kronecker product or commutation matrix item K formed: alone in its
   chain, there is nothing to apply it to.  Consumes its texts. */
static em_item em_struct_formed(em_state *st, em_item K)
{
    char *s;
    st->nformed++;
    if (K.kind == IT_COMM) {
        st->need_comm = 1;
        char *m = em_dim(st, K.m), *n = em_dim(st, K.n);
        s = em_fill(st->L->comm, m, n, st->fname);
        free(m);
        free(n);
    } else {
        st->need_kron = 1;
        s = em_fill(st->L->kron, K.s, K.s2, NULL);
        free(K.s);
        free(K.s2);
    }
    return em_dense_item(s, P_ATOM, K.rows, K.cols);
}

/* K applied to the dense M (K*M, right) or M to K (M*K, !right), K never
   formed: kron(A, B)*M is, column by column, vec(B*X*A') for X the cB x
   cA matrix whose vec is M's column (L->kron_mm), commutation(m, n)*M a
   transpose of each column reshaped m x n (L->comm_mm); M*K is (K'*M')'
   with kron(A, B)' = kron(A', B') and commutation(m, n)' =
   commutation(n, m).  Consumes the texts. */
static em_item em_apply_struct(em_state *st, em_item K, em_item M, int right)
{
    const em_lang *L = st->L;
    char *ms = em_op(em_mk(M.s, M.prec), P_ATOM), *r;
    /* the operand and the result in temporaries when long: the calls nest
       deep, and a Python line breaks only inside brackets */
    if (strlen(ms) > 24) ms = em_define(st, NULL, em_mk(ms, P_ATOM));
    if (!right) {
        char *t = em_fill(L->trans, ms, NULL, NULL);
        free(ms);
        ms = t;
    }
    if (K.kind == IT_COMM) {
        st->need_comm_mm = 1;
        char *m = em_dim(st, right ? K.m : K.n), *n = em_dim(st, right ? K.n : K.m);
        char *dims = em_fmt("%s, %s", m, n);
        r = em_fill(L->comm_mm, dims, ms, st->fname);
        free(dims);
        free(m);
        free(n);
    } else {
        st->need_kron_mm = 1;
        char *a = K.s, *b = K.s2;
        if (!right) {
            a = em_fill(L->trans, K.s, NULL, NULL);
            b = em_fill(L->trans, K.s2, NULL, NULL);
            free(K.s);
            free(K.s2);
        }
        char *ab = em_fmt("%s, %s", a, b);
        r = em_fill(L->kron_mm, ab, ms, st->fname);
        free(ab);
        free(a);
        free(b);
    }
    free(ms);
    if (!right) {
        char *t = em_fill(L->trans, r, NULL, NULL);
        free(r);
        r = t;
    }
    if (strlen(r) > 40) r = em_define(st, NULL, em_mk(r, P_ATOM));
    return em_dense_item(r, right || L->python ? P_ATOM : P_POW, right ? K.rows : M.rows, right ? M.cols : K.cols);
}

/* The product of it[0..n) (no INV) whose item k is a KRON or COMM: it is
   applied to the product of its right neighbours (or, when there are
   none, or a row on the left meets a matrix on the right, of its left
   ones), never formed; alone it is formed. */
static em_item em_applied_product(em_state *st, em_item *it, int n, int k)
{
    if (n == 1) return em_struct_formed(st, it[0]);
    int right = k + 1 < n && !(k > 0 && it[0].rows == MD_DIM_ONE && it[n - 1].cols != MD_DIM_ONE);
    em_item *rest = md_xcalloc((size_t)n, sizeof *rest);
    em_item out;
    if (right) {
        em_item R = em_plain_product(st, it + k + 1, n - k - 1);
        memcpy(rest, it, (size_t)k * sizeof *rest);
        rest[k] = em_apply_struct(st, it[k], R, 1);
        out = em_plain_product(st, rest, k + 1);
    } else {
        em_item Lp = em_plain_product(st, it, k);
        rest[0] = em_apply_struct(st, it[k], Lp, 0);
        memcpy(rest + 1, it + k + 1, (size_t)(n - k - 1) * sizeof *rest);
        out = em_plain_product(st, rest, n - k);
    }
    free(rest);
    return out;
}

/* The product of items it[0..n): inverses become solves. */
static em_item em_items_product(em_state *st, em_item *it, int n)
{
    int inv = -1;
    for (int i = 0; i < n && inv < 0; i++)
        if (it[i].kind == IT_INV) inv = i;
    if (inv < 0) return em_plain_product(st, it, n);
    em_item A = it[inv];
    if (inv + 1 < n) {
        /* a row on the left and a matrix on the right: solve from the left */
        int left_first = inv > 0 && it[0].rows == MD_DIM_ONE && it[n - 1].cols != MD_DIM_ONE;
        if (!left_first) {
            em_item R = em_items_product(st, it + inv + 1, n - inv - 1);
            char *rs = em_op(em_mk(R.s, R.prec), P_ATOM);
            char *s = em_solve_temp(st, em_fill(st->L->solve, A.s, rs, NULL));
            free(rs);
            free(A.s);
            em_item *rest = md_xcalloc((size_t)inv + 2, sizeof *rest);
            memcpy(rest, it, (size_t)inv * sizeof *rest);
            rest[inv] = em_dense_item(s, P_ATOM, A.rows, R.cols);
            em_item out = em_plain_product(st, rest, inv + 1);
            free(rest);
            return out;
        }
    }
    if (inv == 0) {
        /* inv(A) alone */
        char *s = em_fill(st->L->inv, A.s, NULL, NULL);
        free(A.s);
        return em_dense_item(s, P_ATOM, A.rows, A.cols);
    }
    em_item Lp = em_plain_product(st, it, inv);
    char *ls = em_op(em_mk(Lp.s, Lp.prec), P_ATOM);
    char *s = em_solve_temp(st, em_fill(st->L->rsolve, A.s, ls, NULL));
    free(ls);
    free(A.s);
    em_item *rest = md_xcalloc((size_t)(n - inv) + 1, sizeof *rest);
    rest[0] = em_dense_item(s, P_ATOM, Lp.rows, A.cols);
    memcpy(rest + 1, it + inv + 1, (size_t)(n - inv - 1) * sizeof *rest);
    em_item out = em_items_product(st, rest, n - inv);
    free(rest);
    return out;
}

static int em_is_inverse(md_expr *e) { return e->kind == MD_MPOW && e->ival == -1; }

/* The chain args[first..nargs) of product e as one text. */
static em_txt em_chain(em_state *st, md_expr *e, int first)
{
    int n = e->nargs - first;
    em_item *it = md_xcalloc((size_t)n + 1, sizeof *it);
    int m = 0;
    for (int i = first; i < e->nargs; i++) {
        md_expr *f = e->args[i];
        md_expr *g = f->kind == MD_TRANS ? f->args[0] : f;
        int tr = f != g;
        if (f->kind == MD_EYE) continue;
        if (em_is_inverse(g) && !st->nonchain[g->id] && (!tr || !st->nonchain[f->id])) {
            em_txt a = em_arg(st, g->args[0]);
            char *as = em_op(a, P_ATOM);
            if (tr) {
                char *t = em_fill(st->L->trans, as, NULL, NULL);
                free(as);
                as = t;
            }
            it[m++] = (em_item){IT_INV, as, P_ATOM, f->rows, f->cols, NULL, 0, 0};
        } else if (g->kind == MD_COMM) {
            /* commutation(m, n)' = commutation(n, m) */
            it[m++] = (em_item){IT_COMM, NULL, P_ATOM, f->rows, f->cols, NULL, tr ? g->aux : g->ival, tr ? g->ival : g->aux};
        } else if (g->kind == MD_KRON && !md_is_scalar(g->args[0]) && !md_is_scalar(g->args[1])) {
            /* kron(A, B)' = kron(A', B') */
            char *ab[2];
            for (int k = 0; k < 2; k++) {
                ab[k] = em_op(em_arg(st, g->args[k]), P_ATOM);
                if (tr) {
                    char *t = em_fill(st->L->trans, ab[k], NULL, NULL);
                    free(ab[k]);
                    ab[k] = em_op(em_mk(t, st->L->python ? P_ATOM : P_POW), P_ATOM);
                }
            }
            it[m++] = (em_item){IT_KRON, ab[0], P_ATOM, f->rows, f->cols, ab[1], 0, 0};
        } else if (g->kind == MD_DIAGM) {
            em_txt v = em_arg(st, g->args[0]);
            if (strlen(v.s) > 30 && !st->tname[g->args[0]->id]) v = em_mk(em_define(st, g->args[0], v), P_ATOM);
            it[m++] = (em_item){IT_DIAG, em_op(v, P_ATOM), P_ATOM, f->rows, f->cols, NULL, 0, 0};
        } else if (f->kind == MD_ONES) {
            it[m++] = (em_item){IT_ONES, NULL, P_ATOM, f->rows, f->cols, NULL, 0, 0};
        } else {
            em_txt t = em_arg(st, f);
            it[m++] = em_dense_item(t.s, t.prec, f->rows, f->cols);
        }
    }
    em_txt r;
    if (m == 0) {
        /* only identities: eye */
        char *d = em_dim(st, e->rows);
        r = em_mk(em_fill(st->L->eye, d, NULL, NULL), P_ATOM);
        free(d);
    } else {
        em_item p = em_items_product(st, it, m);
        r = em_mk(p.s, p.prec);
    }
    free(it);
    if (md_is_scalar(e) && st->L->python) {
        char *o = em_op(r, P_ATOM);
        r = em_mk(em_fill(st->L->elem00, o, NULL, NULL), P_ATOM);
        free(o);
    }
    return r;
}

/* Is a product's term negative (a leading negative number)?  Then a sum
   writes it with a minus. */
static int em_negative(md_expr *e)
{
    if (e->kind == MD_NUM) return mpq_sgn(e->q) < 0;
    return e->kind == MD_MUL && e->args[0]->kind == MD_NUM && mpq_sgn(e->args[0]->q) < 0;
}

/* A product e without the sign of its leading number (negate = 1), or e. */
static em_txt em_mul(em_state *st, md_expr *e, int negate)
{
    md_buf b = {0};
    int first = 0, nterms = 0;
    int prec = P_ATOM;
    for (; first < e->nargs && md_is_scalar(e->args[first]); first++) {
        md_expr *a = e->args[first];
        char *s;
        if (a->kind == MD_NUM) {
            mpq_t q;
            mpq_init(q);
            mpq_set(q, a->q);
            if (negate && first == 0) mpq_neg(q, q);
            int one = mpq_cmp_ui(q, 1, 1) == 0;
            int minus_one = mpq_cmp_si(q, -1, 1) == 0;
            if ((one || minus_one) && e->nargs > 1) {
                if (minus_one) md_buf_puts(&b, "-");
                mpq_clear(q);
                if (minus_one) prec = P_NEG;
                continue;
            }
            em_txt t = em_number(st, q, 0);
            mpq_clear(q);
            s = em_op(t, nterms ? P_POW : P_MUL);
        } else {
            s = em_op(em_arg(st, a), nterms ? P_POW : P_MUL);
        }
        md_buf_printf(&b, "%s%s", nterms ? " * " : "", s);
        free(s);
        nterms++;
    }
    if (first < e->nargs) {
        em_txt c = em_chain(st, e, first);
        char *s = em_op(c, nterms ? P_POW : P_MUL);
        md_buf_printf(&b, "%s%s", nterms ? " * " : "", s);
        free(s);
        nterms++;
    }
    if (nterms > 1) prec = P_MUL;
    else if (prec != P_NEG) prec = P_MUL;
    if (nterms == 1 && prec == P_MUL && b.s && b.s[0] != '-') {
        /* one factor: keep its own precedence when it is an atom */
        int atom = 1, depth = 0;
        for (const char *p = b.s; *p; p++) {
            if (*p == '(' || *p == '[') depth++;
            else if (*p == ')' || *p == ']') depth--;
            else if (*p == ' ' && depth == 0) atom = 0;
        }
        if (atom) prec = P_ATOM;
    }
    if (prec == P_NEG && nterms > 1) prec = P_NEG;
    return em_mk(b.s ? md_buf_take(&b) : em_strdup("1.0"), prec);
}

static em_txt em_formed(em_state *st, md_expr *e);

/* Is trace e = tr(s * P * Q) to be written without forming P*Q (the
   product used nowhere else, P and Q plain matrices, as costopt.c's
   trace split leaves it)?  Then it is the sum of P .* Q'. */
static int em_trdot(em_state *st, md_expr *e)
{
    md_expr *m = e->args[0];
    if (m->kind != MD_MUL || md_is_scalar(m) || st->temp[m->id] || st->tname[m->id] || st->alias[m->id] ||
        st->uses[m->id] != 1)
        return 0;
    int L = 0;
    for (int i = 0; i < m->nargs; i++) {
        md_expr *f = m->args[i], *g = f->kind == MD_TRANS ? f->args[0] : f;
        if (md_is_scalar(f)) continue;
        if (g->kind == MD_DIAGM || g->kind == MD_ONES || g->kind == MD_EYE || em_is_inverse(g)) return 0;
        L++;
    }
    return L == 2;
}

/* tr(m) for a product m that em_trdot accepts: its scalars times the
   sum of P .* Q'. */
static em_txt em_trdot_text(em_state *st, md_expr *m)
{
    md_buf b = {0};
    md_expr *f[2];
    int L = 0;
    for (int i = 0; i < m->nargs; i++) {
        md_expr *a = m->args[i];
        if (!md_is_scalar(a)) {
            f[L++] = a;
            continue;
        }
        char *s = em_op(a->kind == MD_NUM ? em_number(st, a->q, 0) : em_arg(st, a), P_POW);
        md_buf_printf(&b, "%s * ", s);
        free(s);
    }
    char *p = em_op(em_arg(st, f[0]), P_ATOM), *q = em_op(em_arg(st, f[1]), P_ATOM);
    char *t = em_fill(st->L->trdot, p, q, NULL);
    md_buf_puts(&b, t);
    free(p);
    free(q);
    free(t);
    return em_mk(md_buf_take(&b), L == 2 && m->nargs == 2 ? P_ATOM : P_MUL);
}

/* The text of node e: its temporary when it has one. */
static em_txt em_node(em_state *st, md_expr *e)
{
    if (st->tname[e->id]) return em_mk(em_strdup(st->tname[e->id]), P_ATOM);
    if (e->id < st->nn && st->alias[e->id] && !st->viaalias[e->id]) {
        /* the transpose of a node computed anyway: (X*U*V' - Y)' is t1'.
           Unless e is met again while that node is written (aliases can
           form a cycle through symmetric matrices, S' = S: dS of
           logdet(S) - sqrt(A) recursed until the stack overflowed,
           fuzz_array): then e is written from its own arguments */
        st->viaalias[e->id] = 1;
        em_txt via = em_node(st, st->alias[e->id]);
        st->viaalias[e->id] = 0;
        char *a = em_op(via, P_ATOM);
        char *t = em_fill(st->L->trans, a, NULL, NULL);
        free(a);
        return em_mk(t, st->L->python ? P_ATOM : P_POW);
    }
    em_txt t = em_formed(st, e);
    if (st->temp[e->id] && !st->failed) {
        /* a name already (a solve's temporary): not named twice */
        for (int i = 0; i < st->ntaken && t.prec == P_ATOM; i++)
            if (!strcmp(st->taken[i], t.s)) {
                st->tname[e->id] = (char *)st->taken[i];
                return t;
            }
        return em_mk(em_define(st, e, t), P_ATOM);
    }
    return t;
}

/* A constant matrix s (zeros, ones, eye) for node e: in a temporary when
   it is long (torch.ones(n, m, dtype=dtype, device=device)), which a
   Python line cannot break deep inside a product. */
static em_txt em_constant(em_state *st, md_expr *e, char *s)
{
    if (!st->L->python || strlen(s) <= 30 || e->id >= st->nn) return em_mk(s, P_ATOM);
    return em_mk(em_define(st, e, em_mk(s, P_ATOM)), P_ATOM);
}

static em_txt em_formed(em_state *st, md_expr *e)
{
    const em_lang *L = st->L;
    switch (e->kind) {
    case MD_NUM:
        return em_number(st, e->q, 0);
    case MD_SYM:
        if (e->ival < 0 || !st->symname[e->ival]) {
            em_fail(st, "internal error: %s is not an input of the function", e->name);
            return em_mk(em_strdup("0"), P_ATOM);
        }
        return em_mk(em_strdup(st->symname[e->ival]), P_ATOM);
    case MD_DIFF:
        em_fail(st, "internal error: a differential d%s left in a result", e->name);
        return em_mk(em_strdup("0"), P_ATOM);
    case MD_ZERO:
    case MD_ONES: {
        char *r = em_dim(st, e->rows), *c = em_dim(st, e->cols);
        char *s = em_fill(e->kind == MD_ZERO ? L->zeros : L->ones, r, c, NULL);
        free(r);
        free(c);
        return em_constant(st, e, s);
    }
    case MD_EYE: {
        char *r = em_dim(st, e->rows);
        char *s = em_fill(L->eye, r, NULL, NULL);
        free(r);
        return em_constant(st, e, s);
    }
    case MD_ADD: {
        md_buf b = {0};
        int any_full = 0;
        for (int i = 0; i < e->nargs; i++) any_full |= e->args[i]->kind != MD_ONES;
        for (int i = 0; i < e->nargs; i++) {
            md_expr *a = e->args[i];
            int neg = i > 0 && em_negative(a);
            em_txt t;
            if (a->kind == MD_ONES && any_full && !md_is_scalar(e)) t = em_mk(em_strdup(L->python ? "1.0" : "1"), P_ATOM);
            else if (neg && a->kind == MD_NUM) {
                mpq_t q;
                mpq_init(q);
                mpq_neg(q, a->q);
                t = em_number(st, q, 0);
                mpq_clear(q);
            } else if (neg && !st->tname[a->id] && !st->temp[a->id]) t = em_mul(st, a, 1);
            else {
                neg = 0;
                t = em_arg(st, a);
            }
            char *s = em_op(t, i == 0 ? P_ADD : P_MUL);
            md_buf_printf(&b, "%s%s", i == 0 ? "" : neg ? " - " : " + ", s);
            free(s);
        }
        return em_mk(md_buf_take(&b), P_ADD);
    }
    case MD_MUL:
        return em_mul(st, e, 0);
    case MD_HAD: {
        md_buf b = {0};
        for (int i = 0; i < e->nargs; i++) {
            char *s = em_op(em_arg(st, e->args[i]), i == 0 ? P_MUL : P_POW);
            md_buf_printf(&b, "%s%s", i ? (md_is_scalar(e) ? " * " : L->had) : "", s);
            free(s);
        }
        return em_mk(md_buf_take(&b), P_MUL);
    }
    case MD_POW: {
        md_expr *base = e->args[0], *ex = e->args[1];
        if (base->kind == MD_NORM2 && md_is_num(ex, 2)) {
            /* norm2(E)^2: the sum of squares, no square root */
            char *nm = em_named(st, base->args[0]);
            char *s = em_fill(L->sumsq, nm, NULL, NULL);
            free(nm);
            return em_mk(s, P_ATOM);
        }
        char *bs = em_op(em_arg(st, base), P_ATOM);
        char *xs;
        if (ex->kind == MD_NUM) {
            em_txt t = em_number(st, ex->q, 1);
            xs = em_op(t, P_ATOM);
        } else {
            xs = em_op(em_arg(st, ex), P_ATOM);
        }
        char *s = em_fmt("%s%s%s", bs, md_is_scalar(e) && !L->python ? " ^ " : L->pow, xs);
        free(bs);
        free(xs);
        return em_mk(s, P_POW);
    }
    case MD_MPOW: {
        char *a = em_op(em_arg(st, e->args[0]), P_ATOM);
        char *s;
        if (e->ival == -1) {
            s = em_fill(L->inv, a, NULL, NULL);
        } else {
            char k[32];
            snprintf(k, sizeof k, e->ival < 0 && !L->python ? "(%d)" : "%d", e->ival);
            s = em_fill(L->mpow, a, k, NULL);
        }
        free(a);
        return em_mk(s, L->python || e->ival == -1 ? P_ATOM : P_POW);
    }
    case MD_TRANS: {
        if (md_is_scalar(e)) return em_node(st, e->args[0]);
        char *a = em_op(em_arg(st, e->args[0]), P_ATOM);
        char *s = em_fill(L->trans, a, NULL, NULL);
        free(a);
        /* MATLAB's ' has the precedence of .^ and ^, left to right: x .^ t'
           is (x .^ t)', so a transpose is no atom there */
        return em_mk(s, L->python ? P_ATOM : P_POW);
    }
    case MD_FUNC: {
        if (st->lang == EM_TORCH && e->args[0]->kind == MD_NUM) {
            /* torch's functions take tensors, not numbers */
            char *c = em_node(st, e->args[0]).s;
            char *t = em_fmt("torch.full((), %s, dtype=dtype, device=device)", c);
            free(c);
            /* this number is that tensor from now on (its name is kept
               in taken, the copy returned is not needed) */
            free(em_define(st, e->args[0], em_mk(t, P_ATOM)));
        }
        if (e->ival == MD_FN_GENERIC) {
            char *a = em_node(st, e->args[0]).s;
            char ord[16];
            snprintf(ord, sizeof ord, "%d", e->order);
            char *s = em_fill(L->generic, st->fnname[e->aux], a, ord);
            free(a);
            return em_mk(s, P_ATOM);
        }
        const char *fmt = md_fns[e->ival].arr[st->lang];
        if (em_count(fmt, "%1$s") > 1) {
            char *nm = em_named(st, e->args[0]);
            char *s = em_fill(fmt, nm, NULL, NULL);
            free(nm);
            return em_mk(s, P_ATOM);
        }
        return em_apply1(fmt, em_arg(st, e->args[0]));
    }
    case MD_SUM:
        return em_apply1(L->sum, em_arg(st, e->args[0]));
    case MD_NORM1:
        return em_apply1(L->norm1, em_arg(st, e->args[0]));
    case MD_NORM2:
        return em_apply1(L->norm2, em_arg(st, e->args[0]));
    case MD_TR:
        if (em_trdot(st, e)) return em_trdot_text(st, e->args[0]);
        return em_apply1(L->trace, em_arg(st, e->args[0]));
    case MD_DET:
        return em_apply1(L->det, em_arg(st, e->args[0]));
    case MD_LOGDET: {
        st->need_logdet = 1;
        char *a = em_arg(st, e->args[0]).s;
        char *s = em_fill(L->logdet, a, NULL, st->fname);
        free(a);
        return em_mk(s, P_ATOM);
    }
    case MD_DIAGM: {
        em_txt v = em_arg(st, e->args[0]);
        if (strlen(v.s) > 30 && !st->tname[e->args[0]->id]) v = em_mk(em_define(st, e->args[0], v), P_ATOM);
        char *a = em_op(v, P_ATOM);
        char *s = em_fill(L->diagm, a, NULL, NULL);
        free(a);
        return em_mk(s, P_ATOM);
    }
    case MD_DIAGV:
        return em_apply1(L->diagv, em_arg(st, e->args[0]));
    case MD_VEC:
        if (e->args[0]->cols == MD_DIM_ONE) return em_node(st, e->args[0]);
        return em_apply1(L->vec, em_arg(st, e->args[0]));
    case MD_KRON: {
        st->need_kron = 1;
        st->nformed++;
        int plain = em_call_arg(L->kron);
        em_txt ta = em_arg(st, e->args[0]), tb = em_arg(st, e->args[1]);
        char *a = plain ? ta.s : em_op(ta, P_ATOM), *b = plain ? tb.s : em_op(tb, P_ATOM);
        char *s = em_fill(L->kron, a, b, NULL);
        free(a);
        free(b);
        return em_mk(s, P_ATOM);
    }
    case MD_COMM: {
        st->need_comm = 1;
        st->nformed++;
        char *m = em_dim(st, e->ival), *n = em_dim(st, e->aux);
        char *s = em_fill(L->comm, m, n, st->fname);
        free(m);
        free(n);
        return em_mk(s, P_ATOM);
    }
    case MD_SOFTMAX:
    case MD_LSE: {
        if (e->kind == MD_SOFTMAX) st->need_softmax = 1;
        else st->need_lse = 1;
        char *a = em_arg(st, e->args[0]).s;
        char *s = em_fill(e->kind == MD_SOFTMAX ? L->softmax : L->lse, a, NULL, st->fname);
        free(a);
        return em_mk(s, P_ATOM);
    }
    case MD_NKINDS:
        break;
    }
    em_fail(st, "internal error: node kind %d has no spelling", (int)e->kind);
    return em_mk(em_strdup("0"), P_ATOM);
}

/* ---- the analysis: uses, chain-only uses, temporaries ----------------- */

static void em_reach(em_state *st, md_expr *e, char *seen)
{
    st->uses[e->id]++;
    if (seen[e->id]) return;
    seen[e->id] = 1;
    for (int i = 0; i < e->nargs; i++) em_reach(st, e->args[i], seen);
}

static int em_cheap(em_state *st, md_expr *e)
{
    switch (e->kind) {
    case MD_SYM: case MD_NUM: case MD_ZERO: case MD_ONES: case MD_EYE:
        return 1;
    case MD_DIAGM:
        return st->nonchain[e->id] <= 1;
    case MD_MPOW:
        return e->ival == -1 && st->nonchain[e->id] == 0;
    case MD_TRANS:
        return em_cheap(st, e->args[0]) || st->temp[e->args[0]->id];
    case MD_VEC:
        return e->args[0]->cols == MD_DIM_ONE && (em_cheap(st, e->args[0]) || st->temp[e->args[0]->id]);
    default:
        return 0;
    }
}

/* The uses once the aliases are known: an aliased node is written as its
   representative's transpose, so its arguments are not needed; seen
   marks what is written. */
static void em_reach_live(em_state *st, md_expr *e, char *seen)
{
    st->uses[e->id]++;
    if (seen[e->id]) return;
    seen[e->id] = 1;
    if (st->alias[e->id]) {
        em_reach_live(st, st->alias[e->id], seen);
        return;
    }
    for (int i = 0; i < e->nargs; i++) em_reach_live(st, e->args[i], seen);
}

static void em_analyse(em_state *st, int nroots, md_expr *const *roots)
{
    md_ctx *ctx = st->ctx;
    uint32_t nn = st->nn;
    char *seen = md_xcalloc(nn + 1, 1);
    for (int i = 0; i < nroots; i++) em_reach(st, roots[i], seen);
    /* a node and its transpose both needed (the gradients of a norm of a
       product often hold E and E'): the transpose is written as one of
       the other; md_trans gives the canonical transpose, so equal
       structure is the same node */
    for (uint32_t id = 0; id < nn; id++) {
        md_expr *e = ctx->nodes[id];
        if (!seen[id] || md_is_scalar(e) || st->alias[id]) continue;
        if (e->kind != MD_ADD && e->kind != MD_MUL && e->kind != MD_HAD && e->kind != MD_FUNC && e->kind != MD_POW)
            continue;
        md_expr *t = md_trans(ctx, e);
        if (t == e || t->id >= nn || !seen[t->id] || st->alias[t->id]) continue;
        st->alias[t->id] = e;
    }
    memset(seen, 0, nn + 1);
    memset(st->uses, 0, (nn + 1) * sizeof *st->uses);
    for (int i = 0; i < nroots; i++) {
        em_reach_live(st, roots[i], seen);
        st->nonchain[roots[i]->id]++;
    }
    /* parents before children: ids grow from arguments to the nodes made of them */
    for (uint32_t id = nn; id-- > 0;) {
        if (!seen[id]) continue;
        md_expr *p = ctx->nodes[id];
        if (st->alias[id]) {
            st->nonchain[st->alias[id]->id]++;
            continue;
        }
        for (int i = 0; i < p->nargs; i++) {
            md_expr *a = p->args[i];
            int chain = (p->kind == MD_MUL && !md_is_scalar(a)) ||
                        (p->kind == MD_TRANS && st->nonchain[p->id] == 0);
            if (!chain) st->nonchain[a->id]++;
        }
    }
    for (uint32_t id = 0; id < nn; id++)
        if (seen[id]) st->temp[id] = st->uses[id] > 1 && !st->alias[id] && !em_cheap(st, ctx->nodes[id]);
    free(seen);
}

/* ---- plans and their cost ----------------------------------------------- */

/*
 * The flops of one plan as a monomial sum in the base dimensions, for the
 * run-time choice between plans (the model of em_cost in emit_plan.c): a
 * product of an r x k and a k x c operand costs r*k*c (a chain left to
 * run time at most its left-to-right cost), a trace of two factors r*k,
 * a solve or a determinant n^3 more, anything else one operation per
 * element; a transpose written as a view costs nothing.
 */
enum { EM_TERM_MAX = 12 };

typedef struct em_term {
    int d[EM_TERM_MAX], n;   /* base dimensions, sorted */
    long coef;
} em_term;

typedef struct em_poly {
    em_term *t;
    int nt;
} em_poly;

/* Appends dimension d (its base factors for a product) to x. */
static void em_term_dim(em_state *st, em_term *x, int d)
{
    if (d == MD_DIM_ONE) return;
    const md_dim *dm = &st->ctx->dims[d];
    if (dm->nfac > 0 && !st->dimname[d]) {
        for (int i = 0; i < dm->nfac; i++) em_term_dim(st, x, dm->fac[i]);
        return;
    }
    if (x->n == EM_TERM_MAX) return;
    int j = x->n++;
    while (j > 0 && x->d[j - 1] > d) x->d[j] = x->d[j - 1], j--;
    x->d[j] = d;
}

/* Adds coef * d[0] * ... * d[n-1] to p, equal monomials collected. */
static void em_poly_add(em_state *st, em_poly *p, long coef, int n, const int *d)
{
    em_term x = {{0}, 0, coef};
    for (int i = 0; i < n; i++) em_term_dim(st, &x, d[i]);
    for (int i = 0; i < p->nt; i++)
        if (p->t[i].n == x.n && !memcmp(p->t[i].d, x.d, sizeof x.d)) {
            p->t[i].coef += coef;
            return;
        }
    p->t = md_xrealloc(p->t, (size_t)(p->nt + 1) * sizeof *p->t);
    p->t[p->nt++] = x;
}

/* The flops of the nodes the last em_analyse found live. */
static em_poly em_plan_flops(em_state *st)
{
    em_poly p = {NULL, 0};
    char *traced = md_xcalloc((size_t)st->nn + 1, 1);
    for (uint32_t id = 0; id < st->nn; id++) {
        md_expr *e = st->ctx->nodes[id];
        if (st->uses[id] && !st->alias[id] && e->kind == MD_TR && em_trdot(st, e)) {
            md_expr *m = e->args[0];
            traced[m->id] = 1;
            int d[2] = {m->rows, m->args[m->nargs - 1]->rows};   /* P is r x k */
            em_poly_add(st, &p, 1, 2, d);
        }
    }
    for (uint32_t id = 0; id < st->nn; id++) {
        md_expr *e = st->ctx->nodes[id];
        if (!st->uses[id] || st->alias[id] || traced[id] || e->nargs == 0 || e->kind == MD_TRANS) continue;
        /* a diagonal or an inverse only in products: a scaling, a solve */
        if ((e->kind == MD_DIAGM || em_is_inverse(e)) && !st->nonchain[id]) continue;
        if (e->kind == MD_MUL) {
            md_expr *f[64];
            int L = 0;
            for (int i = 0; i < e->nargs && L < 64; i++) {
                md_expr *a = e->args[i], *g = a->kind == MD_TRANS ? a->args[0] : a;
                if (md_is_scalar(a) || g->kind == MD_EYE) continue;
                if (g->kind == MD_DIAGM) {
                    /* a scaling of its neighbour's rows or columns */
                    int d[2] = {e->rows, e->cols};
                    em_poly_add(st, &p, 1, 2, d);
                    continue;
                }
                f[L++] = a;
            }
            for (int i = 1; i < L; i++) {
                int d[3] = {f[0]->rows, f[i]->rows, f[i]->cols};
                em_poly_add(st, &p, 1, 3, d);
            }
            for (int i = 0; i < L; i++)
                if (em_is_inverse(f[i]->kind == MD_TRANS ? f[i]->args[0] : f[i])) {
                    int d[3] = {f[i]->rows, f[i]->rows, f[i]->rows};
                    em_poly_add(st, &p, 1, 3, d);
                }
            if (L >= 2) continue;
        }
        if (e->kind == MD_MPOW || e->kind == MD_DET || e->kind == MD_LOGDET) {
            md_expr *a = e->kind == MD_MPOW ? e : e->args[0];
            int d[3] = {a->rows, a->rows, a->rows};
            em_poly_add(st, &p, 1, 3, d);
        }
        int d[2] = {e->rows, e->cols};
        em_poly_add(st, &p, 1, 2, d);
    }
    free(traced);
    return p;
}

/* p as an expression of the target language in the sizes' locals (which
   it marks used); frees p. */
static char *em_poly_text(em_state *st, em_poly p)
{
    /* the largest terms first (a stable sort by degree) */
    for (int i = 1; i < p.nt; i++)
        for (int j = i; j > 0 && p.t[j - 1].n < p.t[j].n; j--) {
            em_term x = p.t[j];
            p.t[j] = p.t[j - 1];
            p.t[j - 1] = x;
        }
    md_buf b = {0};
    for (int i = 0; i < p.nt; i++) {
        const em_term *x = &p.t[i];
        if (i) md_buf_puts(&b, " + ");
        if (x->coef != 1 || !x->n) md_buf_printf(&b, "%ld%s", x->coef, x->n ? " * " : "");
        for (int j = 0; j < x->n; j++) {
            char *s = em_dim(st, x->d[j]);
            md_buf_printf(&b, "%s%s", j ? " * " : "", s);
            free(s);
        }
    }
    free(p.t);
    return b.s ? md_buf_take(&b) : em_strdup("0");
}

/* ---- sums of Kronecker products, distributed ---------------------------- */

/* Is term t of a sum a Kronecker product or commutation matrix (scaled,
   transposed or in a product), which a product could apply instead? */
static int em_struct_term(const md_expr *t)
{
    if (t->kind == MD_TRANS) t = t->args[0];
    if (t->kind == MD_KRON || t->kind == MD_COMM) return 1;
    if (t->kind != MD_MUL) return 0;
    for (int i = 0; i < t->nargs; i++)
        if (t->args[i]->kind == MD_KRON || t->args[i]->kind == MD_COMM) return 1;
    return 0;
}

typedef struct em_dist {
    md_ctx *ctx;
    uint32_t n;          /* nodes covered by memo */
    md_expr **memo;
} em_dist;

/* e with every product of a sum S holding Kronecker products or
   commutation matrices and other matrices distributed: (K1 + K2)*M is
   K1*M + K2*M, each applied to M (em_applied_product), none formed;
   likewise M*(K1 + K2) and L*(K1 + K2)*M (the rest of the chain made
   once per term: cheaper than a formed (m n) x (m n) matrix). */
static md_expr *em_distribute(em_dist *w, md_expr *e)
{
    if (e->nargs == 0) return e;
    if (e->id < w->n && w->memo[e->id]) return w->memo[e->id];
    md_expr **a = md_xmalloc((size_t)e->nargs * sizeof *a);
    int changed = 0, nm = 0, at = -1;
    for (int i = 0; i < e->nargs; i++) {
        a[i] = em_distribute(w, e->args[i]);
        changed |= a[i] != e->args[i];
        if (md_is_scalar(a[i])) continue;
        nm++;
        for (int t = 0; e->kind == MD_MUL && at < 0 && a[i]->kind == MD_ADD && a[i]->nargs <= 8 && t < a[i]->nargs; t++)
            if (em_struct_term(a[i]->args[t])) at = i;
    }
    md_expr *r = e;
    if (nm >= 2 && at >= 0) {
        md_expr *S = a[at], **terms = md_xmalloc((size_t)S->nargs * sizeof *terms);
        for (int t = 0; t < S->nargs; t++) {
            a[at] = S->args[t];
            terms[t] = em_distribute(w, md_mul(w->ctx, e->nargs, a));
        }
        r = md_add(w->ctx, S->nargs, terms);
        free(terms);
    } else if (changed) {
        r = md_rebuild(w->ctx, e, a);
    }
    free(a);
    if (e->id < w->n) w->memo[e->id] = r;
    return r;
}

/* ---- the file ----------------------------------------------------------- */

static const char *em_kind_word(md_symkind k)
{
    return k == MD_SYM_SCALAR ? "scalar" : k == MD_SYM_VECTOR ? "vector" : k == MD_SYM_SYMMETRIC ? "symmetric matrix" : "matrix";
}

/* The shape of symbol s in words: "p x q matrix". */
static char *em_shape_words(em_state *st, int s)
{
    const md_symbol *y = &st->ctx->syms[s];
    const char *r = st->ctx->dims[y->rows].name, *c = st->ctx->dims[y->cols].name;
    if (y->kind == MD_SYM_SCALAR) return em_strdup("scalar");
    if (y->kind == MD_SYM_VECTOR) return em_fmt("vector (%s)", r ? r : "?");
    return em_fmt("%s (%s x %s)", em_kind_word(y->kind), r ? r : "?", c ? c : "?");
}

/* Comment or docstring text wrapped at width, each line prefixed. */
static void em_wrap(md_buf *out, const char *prefix, const char *text, int width)
{
    int plen = (int)strlen(prefix);
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        int room = width - plen;
        int len = (int)strlen(p);
        int cut = len;
        if (len > room) {
            cut = room;
            while (cut > 0 && p[cut] != ' ') cut--;
            if (cut == 0) {
                /* a word longer than the line (a program without spaces):
                   cut, though not after a backslash, which would join
                   the lines of a docstring */
                cut = room > 1 ? room : 1;
                while (cut > 1 && p[cut - 1] == '\\') cut--;
            }
        }
        md_buf_printf(out, "%s%.*s\n", prefix, cut, p);
        p += cut;
    }
}

/* Escapes for a Python docstring (backslashes, quotes). */
static char *em_doc_escape(const char *s)
{
    md_buf b = {0};
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') md_buf_putc(&b, '\\');
        md_buf_putc(&b, *s);
    }
    return b.s ? md_buf_take(&b) : em_strdup("");
}

static void em_python_helpers(em_state *st, md_buf *out, int torch)
{
    const char *m = torch ? "torch" : "np";
    if (!torch) {
        md_buf_puts(out,
                    "\n\ndef _input(value, name, ndim, what):\n"
                    "    a = np.asarray(value, dtype=float)\n"
                    "    if ndim == 0 and a.size == 1:\n"
                    "        return a.reshape(())[()]\n"
                    "    if a.ndim != ndim:\n"
                    "        raise ValueError(\"%s must be %s, not an array of shape %s\"\n"
                    "                         % (name, what, a.shape))\n"
                    "    return a\n");
    } else {
        md_buf_puts(out,
                    "\n\ndef _dtype_device(*args):\n"
                    "    for a in args:\n"
                    "        if isinstance(a, torch.Tensor) and a.is_floating_point():\n"
                    "            return a.dtype, a.device\n"
                    "    return torch.float64, torch.device(\"cpu\")\n"
                    "\n\ndef _input(value, name, ndim, what, dtype, device):\n"
                    "    a = torch.as_tensor(value, dtype=dtype, device=device)\n"
                    "    if ndim == 0 and a.numel() == 1:\n"
                    "        return a.reshape(())\n"
                    "    if a.ndim != ndim:\n"
                    "        raise ValueError(\"%s must be %s, not an array of shape %s\"\n"
                    "                         % (name, what, tuple(a.shape)))\n"
                    "    return a\n");
    }
    if (st->need_logdet) {
        md_buf_printf(out,
                      "\n\ndef _logdet(a):\n"
                      "    # log(det(a)), NaN where det(a) <= 0 (as matdiff evaluates it)\n"
                      "    sign, logabs = %s.linalg.slogdet(a)\n", m);
        if (torch)
            md_buf_puts(out, "    return torch.where(sign > 0, logabs,\n"
                             "                       torch.full_like(logabs, float(\"nan\")))\n");
        else
            md_buf_puts(out, "    return logabs if sign > 0 else np.nan\n");
    }
    if (st->need_softmax)
        md_buf_printf(out,
                      "\n\ndef _softmax(z):\n"
                      "    # exp(z) / sum(exp(z)), shifted by the largest entry: no overflow\n"
                      "    e = %s.exp(z - %s.max(z))\n"
                      "    return e / %s.sum(e)\n", m, m, m);
    if (st->need_lse)
        md_buf_printf(out,
                      "\n\ndef _logsumexp(z):\n"
                      "    # log(sum(exp(z))), shifted by the largest entry: no overflow\n"
                      "    top = %s.max(z)\n"
                      "    return top + %s.log(%s.sum(%s.exp(z - top)))\n", m, m, m, m);
    if (st->need_kron && torch)
        md_buf_puts(out,
                    "\n\ndef _kron(a, b):\n"
                    "    # kron(a, b) formed by broadcasting (torch.kron views its\n"
                    "    # arguments, which fails on some transposed columns)\n"
                    "    k = a[:, None, :, None] * b[None, :, None, :]\n"
                    "    return k.reshape(a.shape[0] * b.shape[0], a.shape[1] * b.shape[1])\n");
    if (st->need_kron_mm)
        md_buf_puts(out,
                    "\n\ndef _kron_mm(a, b, m):\n"
                    "    # kron(a, b) @ m, never formed: column j is vec(b @ X @ a.T) for X\n"
                    "    # the b.shape[1] x a.shape[1] matrix whose vec is m[:, j]\n"
                    "    u = b @ m.reshape(a.shape[1], b.shape[1], -1)\n"
                    "    return (a @ u.reshape(a.shape[1], -1)).reshape(-1, m.shape[1])\n");
    if (st->need_comm_mm)
        md_buf_puts(out,
                    "\n\ndef _commutation_mm(m, n, x):\n"
                    "    # commutation(m, n) @ x, never formed: column j is vec(X.T) for X\n"
                    "    # the m x n matrix whose vec is x[:, j]\n"
                    "    return x.reshape(n, m, -1).swapaxes(0, 1).reshape(m * n, -1)\n");
    if (st->need_comm) {
        if (torch)
            md_buf_puts(out,
                        "\n\ndef _commutation(m, n, dtype, device):\n"
                        "    # K with K @ vec(A) = vec(A.T) for an m x n A (vec: columns stacked)\n"
                        "    k = torch.zeros(m * n, m * n, dtype=dtype, device=device)\n"
                        "    for i in range(m):\n"
                        "        for j in range(n):\n"
                        "            k[j + i * n, i + j * m] = 1.0\n"
                        "    return k\n");
        else
            md_buf_puts(out,
                        "\n\ndef _commutation(m, n):\n"
                        "    # K with K @ vec(A) = vec(A.T) for an m x n A (vec: columns stacked)\n"
                        "    k = np.zeros((m * n, m * n))\n"
                        "    for i in range(m):\n"
                        "        for j in range(n):\n"
                        "            k[j + i * n, i + j * m] = 1.0\n"
                        "    return k\n");
    }
}

static void em_octave_helpers(em_state *st, md_buf *out)
{
    if (st->need_kron_mm)
        md_buf_printf(out,
                      "\nfunction Y = %s_kron_mm(A, B, M)\n"
                      "  %% kron(A, B) * M, never formed: column j is vec(B * X * A') for X\n"
                      "  %% the size(B, 2) x size(A, 2) matrix whose vec is M(:, j)\n"
                      "  [rA, cA] = size(A);\n"
                      "  [rB, cB] = size(B);\n"
                      "  k = size(M, 2);\n"
                      "  U = B * reshape(M, cB, cA * k);\n"
                      "  U = reshape(permute(reshape(U, rB, cA, k), [2 1 3]), cA, rB * k);\n"
                      "  Y = reshape(permute(reshape(A * U, rA, rB, k), [2 1 3]), rA * rB, k);\n"
                      "end\n", st->fname);
    if (st->need_comm_mm)
        md_buf_printf(out,
                      "\nfunction Y = %s_commutation_mm(m, n, M)\n"
                      "  %% commutation(m, n) * M, never formed: column j is vec(X') for X\n"
                      "  %% the m x n matrix whose vec is M(:, j)\n"
                      "  Y = reshape(permute(reshape(M, m, n, []), [2 1 3]), m * n, []);\n"
                      "end\n", st->fname);
    if (st->need_logdet)
        md_buf_printf(out,
                      "\nfunction v = %s_logdet(A)\n"
                      "  %% log(det(A)) from an LU factorisation, NaN where det(A) <= 0\n"
                      "  [L, U, P] = lu(A);\n"
                      "  u = diag(U);\n"
                      "  if det(P) * prod(sign(u)) > 0\n"
                      "    v = sum(log(abs(u)));\n"
                      "  else\n"
                      "    v = NaN;\n"
                      "  end\n"
                      "end\n", st->fname);
    if (st->need_softmax)
        md_buf_printf(out,
                      "\nfunction s = %s_softmax(z)\n"
                      "  %% exp(z) / sum(exp(z)), shifted by the largest entry: no overflow\n"
                      "  e = exp(z - max(z));\n"
                      "  s = e / sum(e);\n"
                      "end\n", st->fname);
    if (st->need_lse)
        md_buf_printf(out,
                      "\nfunction v = %s_logsumexp(z)\n"
                      "  %% log(sum(exp(z))), shifted by the largest entry: no overflow\n"
                      "  top = max(z);\n"
                      "  v = top + log(sum(exp(z - top)));\n"
                      "end\n", st->fname);
    if (st->need_comm)
        md_buf_printf(out,
                      "\nfunction K = %s_commutation(m, n)\n"
                      "  %% K * A(:) == reshape(A', [], 1) for an m x n A\n"
                      "  K = zeros(m * n);\n"
                      "  for i = 0:m - 1\n"
                      "    for j = 0:n - 1\n"
                      "      K(j + i * n + 1, i + j * m + 1) = 1;\n"
                      "    end\n"
                      "  end\n"
                      "end\n", st->fname);
}

/* The --self-test helper (Python): central differences of the value
   along random directions against the returned gradients. */
static void em_python_selftest(em_state *st, md_buf *out, int nin, int nwrt, const int *wrt_arg, int torch)
{
    md_buf_printf(out, "\n\ndef check_%s(*args, seed=0, h=1e-6):\n", st->fname);
    md_buf_printf(out,
                  "    \"\"\"Compare the gradients of %s at args with central differences.\n"
                  "\n"
                  "    Returns the worst relative error per gradient (small, 1e-6 or\n"
                  "    less, when the gradients are right and f is smooth at args).\n"
                  "    \"\"\"\n", st->fname);
    /* the lists broken at 79 columns (many variables) */
    md_buf l = {0};
    md_buf_printf(&l, "    wrt = [");
    for (int i = 0; i < nwrt; i++) md_buf_printf(&l, "%s%d", i ? ", " : "", wrt_arg[i]);
    md_buf_printf(&l, "]");
    em_break(out, l.s);
    md_buf_free(&l);
    /* a symmetric variable's gradient is the one on symmetric matrices:
       its directions are symmetric */
    md_buf_printf(&l, "    sym = [");
    for (int i = 0; i < nwrt; i++)
        md_buf_printf(&l, "%s%s", i ? ", " : "", st->ctx->syms[wrt_arg[i]].kind == MD_SYM_SYMMETRIC ? "True" : "False");
    md_buf_printf(&l, "]");
    em_break(out, l.s);
    md_buf_free(&l);
    if (torch) {
        md_buf_printf(out,
                      "    gen = torch.Generator().manual_seed(seed)\n"
                      "    out = %s(*args)\n"
                      "    errors = []\n"
                      "    for k, i in enumerate(wrt):\n"
                      "        x = torch.as_tensor(out[1 + k])\n"
                      "        d = torch.randn(x.shape, generator=gen, dtype=torch.float64)\n"
                      "        d = d.to(dtype=x.dtype, device=x.device)\n"
                      "        if sym[k]:\n"
                      "            d = (d + d.T) / 2\n"
                      "        a = list(args)\n"
                      "        base = torch.as_tensor(args[i], dtype=x.dtype, device=x.device)\n"
                      "        a[i] = base + h * d\n"
                      "        fp = %s(*a)[0]\n"
                      "        a[i] = base - h * d\n"
                      "        fm = %s(*a)[0]\n"
                      "        fd = float((fp - fm) / (2 * h))\n"
                      "        g = float(torch.sum(x * d))\n"
                      "        errors.append(abs(fd - g) / max(abs(g), abs(fd), 1e-8))\n"
                      "    return errors\n", st->fname, st->fname, st->fname);
    } else {
        md_buf_printf(out,
                      "    rng = np.random.default_rng(seed)\n"
                      "    out = %s(*args)\n"
                      "    errors = []\n"
                      "    for k, i in enumerate(wrt):\n"
                      "        d = rng.standard_normal(np.shape(out[1 + k]))\n"
                      "        if sym[k]:\n"
                      "            d = (d + d.T) / 2\n"
                      "        a = list(args)\n"
                      "        base = np.asarray(args[i], dtype=float)\n"
                      "        a[i] = base + h * d\n"
                      "        fp = %s(*a)[0]\n"
                      "        a[i] = base - h * d\n"
                      "        fm = %s(*a)[0]\n"
                      "        fd = (fp - fm) / (2 * h)\n"
                      "        g = float(np.sum(out[1 + k] * d))\n"
                      "        errors.append(abs(fd - g) / max(abs(g), abs(fd), 1e-8))\n"
                      "    return errors\n", st->fname, st->fname, st->fname);
    }
    (void)nin;
}

/* msg as a Python string literal, in adjacent pieces of some 30
   characters split at its spaces ("y has %d entries " "but X has ..."),
   so that a line can break between them. */
static char *em_py_pieces(const char *msg)
{
    md_buf b = {0};
    md_buf_putc(&b, '"');
    int len = 0;
    for (const char *p = msg; *p; p++) {
        md_buf_putc(&b, *p);
        len++;
        if (*p == ' ' && len >= 24 && p[1]) {
            md_buf_puts(&b, "\" \"");
            len = 0;
        }
    }
    md_buf_putc(&b, '"');
    return md_buf_take(&b);
}

/* The sizes the body uses, in locals. */
static void em_dim_lines(em_state *st, md_buf *out)
{
    for (int d = 1; d < st->ctx->ndims; d++)
        if (st->dimused[d]) {
            char *lhs = em_fmt("%s = ", st->dimname[d]);
            em_stmt(st, out, st->L->indent, lhs, st->dimexpr[d]);
            free(lhs);
        }
}

/* Forgets the last plan's analysis, temporaries, solves, sizes used and
   statements: names from ntaken0 on were its own. */
static void em_reset(em_state *st, int ntaken0)
{
    size_t nn = (size_t)st->nn + 1;
    memset(st->uses, 0, nn * sizeof *st->uses);
    memset(st->nonchain, 0, nn * sizeof *st->nonchain);
    memset(st->temp, 0, nn);
    memset(st->tname, 0, nn * sizeof *st->tname);
    memset(st->alias, 0, nn * sizeof *st->alias);
    memset(st->dimused, 0, (size_t)st->ctx->ndims + 1);
    for (int i = ntaken0; i < st->ntaken; i++) free((char *)st->taken[i]);
    st->ntaken = ntaken0;
    md_strmap_free(&st->solves);
    for (int i = 0; i < st->nkeys; i++) free(st->keys[i]);
    free(st->keys);
    st->keys = NULL;
    st->nkeys = 0;
    st->ntemp = 0;
    md_buf_free(&st->body);
}

/* The statements of roots[0..nroots) (one plan) into st->body, each
   assigned to its name in rname. */
static void em_roots(em_state *st, int nroots, md_expr *const *roots, char *const *rname)
{
    const em_lang *L = st->L;
    em_analyse(st, nroots, roots);
    for (int i = 0; i < nroots && !st->failed; i++) {
        md_expr *r = roots[i];
        em_txt t = em_node(st, r);
        /* a vector result flattened (Python), a constant result of full size */
        char *s;
        if (L->python && r->cols == MD_DIM_ONE && r->rows != MD_DIM_ONE) {
            if (strlen(t.s) > 48) {
                char *lhs = em_fmt("%s = ", rname[i]);
                em_line(st, lhs, t.s);
                free(lhs);
                free(t.s);
                t = em_mk(em_strdup(rname[i]), P_ATOM);
            }
            char *o = em_op(t, P_ATOM);
            s = em_fill(L->ravel, o, NULL, NULL);
            free(o);
        } else if (st->lang == EM_TORCH && r->kind == MD_NUM) {
            /* a constant (d_c = 2 for 2*c) a tensor on the inputs' device
               and of their dtype, as every other result, not a float */
            s = em_fmt("torch.tensor(%s, dtype=dtype, device=device)", t.s);
            free(t.s);
        } else {
            s = t.s;
        }
        char *lhs = em_fmt("%s = ", rname[i]);
        em_line(st, lhs, s);
        free(lhs);
        free(s);
    }
}

/* The name of plan k (0-based) of the function. */
static char *em_plan_name(em_state *st, int k)
{
    char num[16];
    snprintf(num, sizeof num, "%d", k + 1);
    return em_fill(st->L->plan, st->fname, num, NULL);
}

/* Plan k of np as a private function (an Octave subfunction) of the
   inputs sig (and torch's dtype, device) returning rets: its sizes, the
   statements of st->body. */
static void em_plan_function(em_state *st, md_buf *out, int k, int np, const char *sig, const char *rets)
{
    const em_lang *L = st->L;
    char *pname = em_plan_name(st, k);
    char *about = em_fmt("Plan %d of %d of %s: its products bracketed, shared and reduced as the flop "
                         "count is least for some sizes (%s picks the plan for the sizes it is called with).",
                         k + 1, np, st->fname, st->fname);
    if (L->python) {
        char *line = em_fmt("def %s(%s%s):", pname, sig, st->lang == EM_TORCH ? ", dtype, device" : "");
        md_buf_puts(out, "\n\n");
        em_break(out, line);
        free(line);
        char *ind = em_fmt("%s# ", L->indent);
        em_wrap(out, ind, about, 79);
        free(ind);
    } else {
        md_buf_printf(out, "\nfunction [%s] = %s(%s)\n", rets, pname, sig);
        char *ind = em_fmt("%s%% ", L->indent);
        em_wrap(out, ind, about, 79);
        free(ind);
    }
    free(about);
    free(pname);
    em_dim_lines(st, out);
    md_buf_puts(out, st->body.s ? st->body.s : "");
    if (L->python) em_stmt(st, out, L->indent, "return ", rets);
    else md_buf_puts(out, "end\n");
}

/* The public function's choice (st->body): the flop count of each plan
   for the sizes it is called with, and the call of the first cheapest
   with args, its results rets. */
static void em_chooser(em_state *st, int np, em_poly *flops, const char *args, const char *rets)
{
    const em_lang *L = st->L;
    md_buf costs = {0}, fns = {0};
    for (int k = 0; k < np; k++) {   /* one line per plan's count: costK = ... */
        char *c = em_poly_text(st, flops[k]), *ck = em_fmt("cost%d", k + 1), *cn = em_name(st, ck);
        char *pname = em_plan_name(st, k), *ref = em_fill(L->fref, pname, NULL, NULL);
        char *lhs = em_fmt("%s = ", cn);
        em_line(st, lhs, c);
        md_buf_printf(&costs, "%s%s", k ? ", " : "", cn);
        md_buf_printf(&fns, "%s%s", k ? ", " : "", ref);
        free(lhs);
        free(c);
        free(ck);   /* cn is st's (em_name) */
        free(pname);
        free(ref);
    }
    char *cost = em_name(st, "cost"), *plans = em_name(st, "plans"), *plan = em_name(st, "plan");
    char *lhs = em_fmt("%s = ", cost), *rhs = em_fill(L->seq, costs.s, NULL, NULL);
    em_line(st, lhs, rhs);
    free(lhs);
    free(rhs);
    lhs = em_fmt("%s = ", plans);
    rhs = em_fill(L->fseq, fns.s, NULL, NULL);
    em_line(st, lhs, rhs);
    free(lhs);
    free(rhs);
    char *at = em_fill(L->argmin, cost, NULL, NULL);
    lhs = em_fmt("%s = ", plan);
    rhs = em_fill(L->pick, plans, at, NULL);
    em_line(st, lhs, rhs);
    free(at);
    free(lhs);
    free(rhs);
    lhs = L->python ? em_strdup("return ") : em_fmt("[%s] = ", rets);
    rhs = em_fmt("%s(%s%s)", plan, args, st->lang == EM_TORCH ? ", dtype, device" : "");
    em_line(st, lhs, rhs);
    free(lhs);
    free(rhs);
    md_buf_free(&costs);
    md_buf_free(&fns);
}

/* The plans of the roots: md_cost_plans (products bracketed by cost for
   each size regime that wins, shared sub-products, Gram matrices for
   norm2(A*B')^2), at most EM_PLANS_MAX; plans[k] is malloc'd. */
enum { EM_PLANS_MAX = 6 };

/* Drops the plans (of plans[0..np)) that form a Kronecker product or a
   commutation matrix when another forms fewer: a bracketing chosen for
   its flops (the Gram matrices of norm2(kron(A, B)*X)^2) can turn an
   applied Kronecker product into a formed one, which the cost model does
   not see.  A dry run of each plan counts them; the flags of what the
   module needs are restored.  Returns the plans kept, in order. */
static int em_plans_unformed(em_state *st, int np, md_expr **plans[], int nroots, char *const *rname, int ntaken0)
{
    if (np < 2) return np;
    int nf[EM_PLANS_MAX], least = -1;
    em_state saved = *st;
    for (int k = 0; k < np && !st->failed; k++) {
        em_reset(st, ntaken0);
        st->nformed = 0;
        em_roots(st, nroots, plans[k], rname);
        nf[k] = st->nformed;
        if (least < 0 || nf[k] < least) least = nf[k];
    }
    em_reset(st, ntaken0);
    st->need_logdet = saved.need_logdet, st->need_comm = saved.need_comm;
    st->need_softmax = saved.need_softmax, st->need_lse = saved.need_lse;
    st->need_kron_mm = saved.need_kron_mm, st->need_comm_mm = saved.need_comm_mm;
    st->need_kron = saved.need_kron;
    if (st->failed) return np;
    int kept = 0;
    for (int k = 0; k < np; k++) {
        if (nf[k] == least) plans[kept++] = plans[k];
        else free(plans[k]);
    }
    return kept;
}

static int em_plans(md_ctx *ctx, int n, md_expr *const *roots, md_expr ***plans)
{
    md_expr **r = md_xmalloc((size_t)(n + 1) * sizeof *r);
    memcpy(r, roots, (size_t)n * sizeof *r);
    int np = md_cost_plans(ctx, NULL, n, r, EM_PLANS_MAX, plans);
    free(r);
    return np;
}

int md_emit_array(md_ctx *ctx, const md_array_emit *a, md_buf *out, FILE *err)
{
    em_state S;
    memset(&S, 0, sizeof S);
    em_state *st = &S;
    st->ctx = ctx;
    st->lang = a->lang == MD_ARRAY_TORCH ? EM_TORCH : a->lang == MD_ARRAY_OCTAVE ? EM_OCTAVE : EM_NUMPY;
    st->L = &em_langs[st->lang];
    st->err = err;
    const em_lang *L = st->L;
    const char *nm = a->name ? a->name : "f";
    /* the function's name: an identifier, not reserved */
    int okname = (isalpha((unsigned char)nm[0]) || (nm[0] == '_' && L->python)) && strlen(nm) < 64;
    for (const char *p = nm; *p; p++) okname &= isalnum((unsigned char)*p) || *p == '_';
    for (const char *const *r = L->reserved; okname && *r; r++)
        if (!strcmp(*r, nm)) okname = 0;
    if (!okname || (L->python && nm[0] == '_')) {
        fprintf(err, "matdiff: --name '%s' is not usable as a %s function name (letters, digits and _, "
                     "starting with a letter; not a keyword or a name the code uses)\n",
                nm, L->python ? "Python" : "MATLAB");
        return -2;
    }
    if (a->self_test && !a->gradient) {
        fprintf(err, "matdiff: --self-test checks the gradients of a scalar function, and this function is a "
                     "vector or a matrix (its Jacobian is checked by --check)\n");
        return -2;
    }
    st->fname = nm;
    /* the roots with sums of Kronecker products distributed, before the
       tables are sized: that makes nodes */
    md_expr **roots = md_xcalloc((size_t)a->nroots + 1, sizeof *roots);
    {
        em_dist w = {ctx, ctx->nnodes, md_xcalloc((size_t)ctx->nnodes + 1, sizeof *w.memo)};
        for (int i = 0; i < a->nroots; i++) roots[i] = em_distribute(&w, a->roots[i]);
        free(w.memo);
    }
    /* the plans of the distributed roots */
    md_expr **plans[EM_PLANS_MAX];
    int np = em_plans(ctx, a->nroots, roots, plans);
    /* the function's own name may be reused inside it (a local shadows
       it there, and it does not call itself) */
    st->uses = md_xcalloc(ctx->nnodes + 1, sizeof *st->uses);
    st->nonchain = md_xcalloc(ctx->nnodes + 1, sizeof *st->nonchain);
    st->temp = md_xcalloc(ctx->nnodes + 1, 1);
    st->tname = md_xcalloc(ctx->nnodes + 1, sizeof *st->tname);
    st->alias = md_xcalloc(ctx->nnodes + 1, sizeof *st->alias);
    st->viaalias = md_xcalloc(ctx->nnodes + 1, 1);
    st->nn = ctx->nnodes;
    st->dimname = md_xcalloc((size_t)ctx->ndims + 1, sizeof *st->dimname);
    st->dimexpr = md_xcalloc((size_t)ctx->ndims + 1, sizeof *st->dimexpr);
    st->dimused = md_xcalloc((size_t)ctx->ndims + 1, 1);
    st->symname = md_xcalloc((size_t)ctx->nsyms + 1, sizeof *st->symname);
    st->fnname = md_xcalloc((size_t)ctx->nfuncs + 1, sizeof *st->fnname);

    /* names: inputs, callbacks, results, dimensions */
    for (int s = 0; s < a->nsyms; s++) st->symname[s] = em_name(st, ctx->syms[s].name);
    for (int k = 0; k < ctx->nfuncs; k++) st->fnname[k] = em_name(st, ctx->funcs[k]);
    char **rname = md_xcalloc((size_t)a->nroots + 1, sizeof *rname);
    for (int i = 0; i < a->nroots; i++) rname[i] = em_name(st, a->rootnames[i]);
    md_buf hdr = {0}, checks = {0};
    const char *ind = L->indent;
    char **fields = md_emit_dim_fields(ctx, a->nwrt, a->wrt, &(md_emit_opts){.name = "f", .blas = 1});
    /* the input statements: conversion, the shape checks, the sizes */
    char **binder = md_xcalloc((size_t)ctx->ndims + 1, sizeof *binder);
    if (L->python && st->lang == EM_TORCH) {
        md_buf args = {0};
        for (int s = 0; s < a->nsyms; s++) md_buf_printf(&args, "%s%s", s ? ", " : "", st->symname[s]);
        char *rhs = em_fmt("_dtype_device(%s)", args.s ? args.s : "");
        em_stmt(st, &checks, ind, "dtype, device = ", rhs);
        free(rhs);
        md_buf_free(&args);
    }
    for (int s = 0; s < a->nsyms; s++) {
        const md_symbol *y = &ctx->syms[s];
        const char *v = st->symname[s];
        int ndim = y->kind == MD_SYM_SCALAR ? 0 : y->kind == MD_SYM_VECTOR ? 1 : 2;
        if (L->python) {
            const char *what = ndim == 0 ? "a scalar" : ndim == 1 ? "a vector (a 1-D array)" : "a matrix (a 2-D array)";
            char *rhs = st->lang == EM_TORCH ? em_fmt("_input(%s, \"%s\", %d, \"%s\", dtype, device)", v, y->name, ndim, what)
                                             : em_fmt("_input(%s, \"%s\", %d, \"%s\")", v, y->name, ndim, what);
            char *lhs = em_fmt("%s = ", v);
            em_stmt(st, &checks, ind, lhs, rhs);
            free(lhs);
            free(rhs);
        } else {
            if (ndim == 0)
                md_buf_printf(&checks, "%sif ~isscalar(%s)\n%s%serror('%s must be a scalar');\n%send\n", ind, v, ind, ind, y->name, ind);
            else if (ndim == 1)
                md_buf_printf(&checks, "%sif ~isvector(%s)\n%s%serror('%s must be a vector');\n%send\n%s%s = %s(:);\n", ind, v, ind,
                              ind, y->name, ind, ind, v, v);
            else
                md_buf_printf(&checks, "%sif ndims(%s) ~= 2\n%s%serror('%s must be a matrix');\n%send\n", ind, v, ind, ind, y->name,
                              ind);
        }
        if (ndim == 0) continue;
        for (int ax = 0; ax < (ndim == 1 ? 1 : 2); ax++) {
            int d = ax == 0 ? y->rows : y->cols;
            const char *axw = ndim == 1 ? "entries" : ax == 0 ? "rows" : "columns";
            char *got = L->python ? em_fmt("%s.shape[%d]", v, ax) : ndim == 1 ? em_fmt("numel(%s)", v) : em_fmt("size(%s, %d)", v, ax + 1);
            const char *dn = ctx->dims[d].name ? ctx->dims[d].name : "?";
            if (!st->dimname[d]) {
                /* the dimension's own name (n, p), else the C field's (X_rows) */
                int plain = ctx->dims[d].name && (isalpha((unsigned char)dn[0]) || dn[0] == '_');
                for (const char *p = dn; plain && *p; p++) plain = isalnum((unsigned char)*p) || *p == '_';
                st->dimname[d] = em_name(st, plain ? dn : fields && fields[d] ? fields[d] : "dim");
                binder[d] = em_fmt("%s has %%d %s", y->name, axw);
                st->dimexpr[d] = em_strdup(got);
            } else {
                char *cond = em_fmt("%s != %s", got, st->dimexpr[d]);
                if (L->python) {
                    md_buf_printf(&checks, "%sif %s:\n", ind, cond);
                    char *msg = em_fmt("%s has %%d %s but %s (%s)", y->name, axw, binder[d], dn);
                    char *rhs = em_fmt("ValueError(\"%s\" %% (%s, %s))", msg, got, st->dimexpr[d]);
                    char *lit = NULL;
                    if (strlen(msg) > 50) {
                        /* the literal alone longer than what is left of
                           the line after "raise ValueError(": in pieces */
                        free(rhs);
                        lit = em_py_pieces(msg);
                        rhs = em_fmt("ValueError(%s %% (%s, %s))", lit, got, st->dimexpr[d]);
                    }
                    free(msg);
                    free(lit);
                    char *ind2 = em_fmt("%s%s", ind, ind);
                    em_stmt(st, &checks, ind2, "raise ", rhs);
                    free(ind2);
                    free(rhs);
                } else {
                    md_buf_printf(&checks, "%sif %s ~= %s\n%s%serror('%s has %%d %s but %s (%s)', %s, %s);\n%send\n", ind, got,
                                  st->dimexpr[d], ind, ind, y->name, axw, binder[d], dn, got, st->dimexpr[d], ind);
                }
                free(cond);
            }
            free(got);
        }
        if (L->python && ndim == 1) md_buf_printf(&checks, "%s%s = %s.reshape(-1, 1)\n", ind, v, v);
    }
    for (int d = 0; d < ctx->ndims; d++) free(binder[d]);
    free(binder);
    if (fields)
        for (int d = 1; d < ctx->ndims; d++) free(fields[d]);
    free(fields);

    /* the body: with one plan, the function's own; with several, each a
       private function, and the function's the choice */
    md_buf sig = {0};
    for (int s = 0; s < a->nsyms; s++) md_buf_printf(&sig, "%s%s", s ? ", " : "", st->symname[s]);
    for (int k = 0; k < ctx->nfuncs; k++) md_buf_printf(&sig, "%s%s", sig.len ? ", " : "", st->fnname[k]);
    md_buf rets = {0};
    for (int i = 0; i < a->nroots; i++) md_buf_printf(&rets, "%s%s", i ? ", " : "", rname[i]);
    md_buf planfns = {0};
    em_poly *flops = md_xcalloc((size_t)np, sizeof *flops);
    int ntaken0 = st->ntaken;
    np = em_plans_unformed(st, np, plans, a->nroots, rname, ntaken0);
    for (int k = 0; k < np && !st->failed; k++) {
        em_reset(st, ntaken0);
        em_roots(st, a->nroots, plans[k], rname);
        if (np == 1) break;
        flops[k] = em_plan_flops(st);
        em_plan_function(st, &planfns, k, np, sig.s ? sig.s : "", rets.s);
    }
    if (np > 1 && !st->failed) {
        em_reset(st, ntaken0);
        em_chooser(st, np, flops, sig.s ? sig.s : "", rets.s);
    }
    free(flops);
    for (int k = 0; k < np; k++) free(plans[k]);
    int rc = 0;
    if (st->failed) {
        rc = -1;
        md_buf_free(&sig);
        md_buf_free(&rets);
        md_buf_free(&planfns);
        goto done;
    }

    /* the file */
    md_buf about = {0};
    md_buf_printf(&about, "%s and its %s", a->ftext, a->what);
    for (int i = 0; i < a->nwrt; i++) md_buf_printf(&about, "%s%s", i ? ", " : " with respect to ", ctx->syms[a->wrt[i]].name);
    md_buf_puts(&about, ".");
    md_buf inputs = {0};
    for (int s = 0; s < a->nsyms; s++) {
        char *w = em_shape_words(st, s);
        md_buf_printf(&inputs, "%s%s: %s", s ? "; " : "", st->symname[s], w);
        free(w);
    }
    if (L->python) {
        int torch = st->lang == EM_TORCH;
        char *esc = em_doc_escape(about.s);
        md_buf_printf(out, "\"\"\"Generated by matdiff --format %s: %s.\n\n", L->format, nm);
        md_buf d = {0};
        char *sigesc = em_doc_escape(sig.s ? sig.s : "");
        char *first = em_fmt("%s(%s): %s", nm, sigesc, esc);
        free(sigesc);
        em_wrap(&d, "", first, 79);
        free(first);
        md_buf_puts(out, d.s ? d.s : "");
        md_buf_free(&d);
        md_buf_puts(out, "\"\"\"\n");
        free(esc);
        md_buf_printf(out, "import %s%s\n", torch ? "torch" : "numpy as np", "");
        em_python_helpers(st, out, torch);
        {
            md_buf_puts(out, "\n\n");
            char *line = em_fmt("def %s(%s):", nm, sig.s ? sig.s : "");
            em_break(out, line);
            free(line);
        }
        md_buf doc = {0};
        char *iesc = em_doc_escape(inputs.s ? inputs.s : "");
        md_buf_printf(&doc, "Return (%s): %s", rets.s, "");
        md_buf_free(&doc);
        md_buf ret = {0};
        md_buf_printf(&ret, "\"\"\"Return %s.", rets.s);
        em_wrap(out, ind, ret.s, 79);
        md_buf_free(&ret);
        md_buf_puts(out, "\n");
        md_buf w = {0};
        md_buf_printf(&w, "Inputs: %s.", iesc);
        for (int k = 0; k < ctx->nfuncs; k++)
            md_buf_printf(&w, " %s(x, k) is the k-th derivative of the function %s at the array x, entrywise.",
                          st->fnname[k], ctx->funcs[k]);
        md_buf_printf(&w, " Vectors are 1-D arrays, matrices 2-D%s; %s.",
                      torch ? " tensors (computed on the inputs' device and dtype)" : "",
                      !a->gradient ? "each derivative is the Jacobian d vec(F)/d vec(X)' (F's shape for a scalar X)"
                      : a->second ? "each gradient has its variable's shape, a Hessian block d2f/dvec(X)dvec(Y)' is 2-D"
                                  : "each derivative has its variable's shape");
        em_wrap(out, ind, w.s, 79);
        md_buf_free(&w);
        free(iesc);
        md_buf_printf(out, "%s\"\"\"\n", ind);
        md_buf_puts(out, checks.s ? checks.s : "");
        em_dim_lines(st, out);
        md_buf_puts(out, st->body.s ? st->body.s : "");
        if (np == 1) em_stmt(st, out, ind, "return ", rets.s);
        md_buf_puts(out, planfns.s ? planfns.s : "");
        if (a->self_test && a->nwrt > 0 && a->gradient) {   /* with --order 2: the gradients */
            int *wa = md_xcalloc((size_t)a->nwrt + 1, sizeof *wa);
            for (int i = 0; i < a->nwrt; i++) wa[i] = a->wrt[i];
            em_python_selftest(st, out, a->nsyms, a->nwrt, wa, torch);
            free(wa);
        }
    } else {
        md_buf_printf(out, "function [%s] = %s(%s)\n", rets.s, nm, sig.s ? sig.s : "");
        md_buf doc = {0};
        md_buf_printf(&doc, "%s  %s Generated by matdiff --format octave. Inputs: %s.", nm, about.s, inputs.s ? inputs.s : "");
        for (int k = 0; k < ctx->nfuncs; k++)
            md_buf_printf(&doc, " %s(x, k) is the k-th derivative of the function %s at the array x, entrywise.",
                          st->fnname[k], ctx->funcs[k]);
        md_buf_puts(&doc, !a->gradient ? " Vectors are columns; each derivative is the Jacobian d vec(F)/d vec(X)' (F's "
                                         "shape for a scalar X)."
                          : a->second ? " Vectors are columns; each gradient has its variable's shape, a Hessian block "
                                        "d2f/dvec(X)dvec(Y)' is a matrix."
                                      : " Vectors are columns; each derivative has its variable's shape.");
        em_wrap(out, "% ", doc.s, 79);
        md_buf_free(&doc);
        md_buf_puts(out, checks.s ? checks.s : "");
        em_dim_lines(st, out);
        md_buf_puts(out, st->body.s ? st->body.s : "");
        md_buf_puts(out, "end\n");
        md_buf_puts(out, planfns.s ? planfns.s : "");
        em_octave_helpers(st, out);
    }
    md_buf_free(&planfns);
    md_buf_free(&sig);
    md_buf_free(&rets);
    md_buf_free(&about);
    md_buf_free(&inputs);
done:
    md_buf_free(&hdr);
    md_buf_free(&checks);
    md_buf_free(&st->body);
    md_strmap_free(&st->solves);
    for (int i = 0; i < st->nkeys; i++) free(st->keys[i]);
    free(st->keys);
    for (int i = 0; i < st->ntaken; i++) free((char *)st->taken[i]);
    free(st->taken);
    free(rname);
    free(roots);
    free(st->uses);
    free(st->nonchain);
    free(st->temp);
    free(st->tname);
    free(st->alias);
    free(st->viaalias);
    free(st->dimname);
    for (int d = 0; d < ctx->ndims; d++) free(st->dimexpr[d]);
    free(st->dimexpr);
    free(st->dimused);
    free(st->symname);
    free(st->fnname);
    return rc;
}
