/*
 * emit.c -- C code generation (see md_emit.h and docs/codegen.md).
 *
 * The input is the function f and its gradients as one shared DAG.  The
 * output is one C99 translation unit whose main function evaluates that
 * DAG once: every node reachable from the roots becomes one statement (or
 * one loop, or one BLAS call), in a topological order, writing into its
 * own slice of the caller's workspace.  Because the graph is hash-consed,
 * a subexpression shared by f and several gradients is computed once,
 * and the gradients reuse f's values, as reverse mode does.
 *
 * Design decisions, in the order a reader meets them in the output:
 *
 *  - Values.  A 1x1 node is a local double (md_s<id>); any other node is a
 *    pointer to rows*cols doubles (md_t<id>), laid out in the workspace
 *    in topological order; offsets are computed at run time from dims.
 *    Inputs are used in place.  The transpose of a vector is the same
 *    memory (an alias); the transpose of a matrix that is only ever a
 *    factor of products is a view (a transpose flag of the BLAS call);
 *    any other transpose is copied.  A gradient root used nowhere else is
 *    computed straight into d_<name>; the others are copied there at the
 *    end.
 *
 *  - NULL gradients.  Every node knows which roots need it (a bitset over
 *    f and the gradients).  Nodes that f needs run unconditionally; the
 *    others run under `if (d_U || d_V)`, so a NULL gradient skips all the
 *    work that only it needed.
 *
 *  - Layout.  All helpers are column-major.  Row-major memory of an r x c
 *    matrix is column-major memory of its c x r transpose, so row-major
 *    code is the same code on transposed values: elementwise loops, sums,
 *    traces, determinants, inverses and powers need no change (inv(A') =
 *    inv(A)', det(A') = det(A)); a product chain is reversed and each
 *    factor's shape swapped ((AB)' = B'A'); a transpose copy swaps its
 *    two sizes.  No input is ever converted.
 *
 *  - Products.  A MUL node is alpha * F1 * ... * FL: alpha is the product
 *    of its scalar factors, passed to the BLAS call.  One product of two
 *    operands is md_mm, which picks ddot, dgemv or dgemm at run time from
 *    the sizes (loops with --no-blas).  Longer chains are bracketed by the
 *    matrix-chain dynamic programme: at run time by the emitted helper
 *    md_chain from dims (so the same code is fast for every size), or at
 *    emit time when every dimension of the chain has a size hint (then
 *    the chosen bracketing is straight-line md_mm calls).  Intermediate
 *    products live in a scratch area shared by all nodes (each uses it
 *    only while it runs); its size bounds every bracketing: the sum of
 *    the sizes of all proper sub-chains.
 *
 *  - LU factorisations.  Every matrix that det, logdet or an inverse of it
 *    (or of its transpose) needs is factored once (em_lu), just before
 *    its first user, under the union of its users' conditions: LAPACK's
 *    dgetrf in BLAS mode (through the Fortran interface: LAPACKE would
 *    allocate), a built-in LU with partial pivoting otherwise.  The
 *    pivots live in the double workspace (MD_PIVOTS) and are read back
 *    with memcpy, so no integer lvalue aliases the caller's doubles.
 *
 *  - Solves.  An inverse used only as a factor of products (EM_SOLVE) is
 *    never formed: a product applies it with its LU (md_sm: dgetrs from
 *    the left, dtrsm and column swaps from the right), and the bracketing
 *    prices a solve like the product it replaces, never pairing two
 *    inverses.  Otherwise (a gradient, a term of a sum) the inverse is
 *    formed from the factors (dgetri).  Matrix powers use binary powering.
 *
 *  - Traces.  A product used only by a trace (EM_TRACED) is not formed:
 *    tr(PQ) = sum(P .* Q') (md_trdot), and a longer chain is split where
 *    its two halves cost least (md_chain_trace).
 *
 *  - Generic functions (`function h`) have no definition, so they become
 *    callbacks the caller defines: double NAME_h(double) for h and
 *    NAME_h_d<k>(double) for its k-th derivative.  Prefixing them with
 *    NAME keeps them from clashing with the function itself (the default
 *    NAME is f, and so is the usual name of a generic function).
 *
 *  - Names.  Everything internal starts with md_; a variable whose name is
 *    a C keyword or a function the code calls gets a trailing underscore
 *    (double_, exp_), one that starts with md_ or _ gets a v_ prefix.  Loop indices are md_i, md_j, so no variable
 *    name can shadow them.
 *
 * Nothing here allocates nodes: emission reads the graph, it never builds.
 */
#include "md_emit.h"
#include "md_costopt.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "md_builtins.h"
#include "md_print.h"
#include "md_simplify.h"

enum { EM_CHAIN_MAX = 16 };   /* longest chain md_chain brackets at run time */

/* How a node's value is held. */
typedef enum {
    EM_LEAF,      /* an input, a number: val names it, no statement */
    EM_COMPUTED,  /* a statement writes val (a local double or a slice) */
    EM_INLINE,    /* elementwise, used once by an elementwise node: val is
                     an expression in md_i, written into that node's loop */
    EM_ALIAS,     /* the transpose of a vector: the argument's memory */
    EM_VIEW,      /* a transpose used only as a product factor: no memory */
    EM_SOLVE,     /* an inverse used only as a product factor: no memory;
                     products apply it by solving with its LU factors */
    EM_TRACED     /* a product used only by a trace: never formed, the
                     trace is computed from its factors */
} em_mode;

/* The LU factorisation of one matrix, shared by the det, logdet and
   inverse nodes of that matrix and of its transpose (inv(A') solves with
   A's factors, transposed). */
typedef struct em_lu {
    md_expr *base;       /* the matrix factored, as stored */
    int first;           /* topo index of the first node that uses it */
    uint64_t *need;      /* the union of its users' needs */
    char *val, *piv;     /* its slices: n*n factors, the pivots */
} em_lu;

typedef struct em_node {
    int seen;
    int scalar;          /* 1x1: a double */
    em_mode mode;
    int other_use;       /* used other than as a factor of a product chain */
    int uses;            /* number of argument slots that use it */
    int root_of;         /* number of roots equal to it (f counts) */
    int dest;            /* >= 0: computed straight into gradient dest */
    int isrep;           /* some other node is computed as its transpose */
    md_expr *tof;        /* non-NULL: this node is tof', computed as a
                            transpose of tof instead of from its arguments */
    md_expr *user;       /* the (last) node that uses it */
    int lu;              /* det, logdet, negative power: 1 + its LU's index */
    int lut;             /* ... of the transpose of the LU's base */
    char *val;           /* C expression: the double, or the pointer */
    uint64_t *need;      /* bit 0: f; bit 1 + i: gradient i */
} em_node;

typedef struct em_gen {
    char *name;          /* C identifier of the callback */
    int func, order;
} em_gen;

typedef struct emitter {
    md_ctx *ctx;
    const md_emit_opts *o;
    FILE *err;
    const char *name;
    int n;
    const int *wrt;
    int row;             /* row-major */
    /* names */
    char **dimfield;     /* per dim id (0 unused) */
    char **dimnote;      /* what each dimension is, for the comment */
    char **pname;        /* per symbol: the parameter */
    char **gname;        /* per gradient: the parameter */
    char **reserved;
    int nreserved, capreserved;
    em_gen *gens;
    int ngens;
    /* the graph */
    em_node *nd;
    md_expr **topo;
    int ntopo, captopo;
    em_lu *lus;
    int nlus;
    int nwords;          /* of each need bitset */
    /* output pieces */
    md_buf decl;         /* slice and scalar declarations */
    md_buf body;
    md_buf ws;           /* workspace: slices */
    char **scr;          /* scratch candidates (size expressions) */
    int nscr, capscr;
    int use_mm, use_chain, use_chain_plain, use_chain_trace, use_trdot, use_tcopy, use_det, use_sm, use_inv, use_mpow;
    int fail;
} emitter;

/* ---- names ------------------------------------------------------------ */

static const char *const em_keywords[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do",
    "double", "else", "enum", "extern", "float", "for", "goto", "if", "inline",
    "int", "long", "register", "restrict", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned",
    "void", "volatile", "while", "bool", "true", "false", "asm", "fortran",
    /* what the emitted code calls or declares */
    "sin", "cos", "tan", "asin", "acos", "atan", "exp", "log", "tanh", "fabs",
    "sqrt", "pow", "memcpy", "memset", "size_t", "NAN", "HUGE_VAL", "dims",
    "work", "NULL", "main", NULL
};

/* Prefixes the emitted code and the headers it includes keep to themselves. */
static int em_reserved_prefix(const char *s)
{
    return !strncmp(s, "md_", 3) || !strncmp(s, "MD_", 3) || !strncmp(s, "cblas_", 6) ||
           !strncmp(s, "Cblas", 5) || !strncmp(s, "CBLAS", 5) || s[0] == '_';
}

static int em_is_reserved(const emitter *E, const char *s)
{
    if (em_reserved_prefix(s)) return 1;
    for (int i = 0; em_keywords[i]; i++)
        if (!strcmp(s, em_keywords[i])) return 1;
    for (int i = 0; i < E->nreserved; i++)
        if (!strcmp(s, E->reserved[i])) return 1;
    return 0;
}

static void em_reserve(emitter *E, char *s)
{
    if (E->nreserved == E->capreserved) {
        E->capreserved = E->capreserved ? 2 * E->capreserved : 32;
        E->reserved = md_xrealloc(E->reserved, (size_t)E->capreserved * sizeof *E->reserved);
    }
    E->reserved[E->nreserved++] = s;
}

/* A C identifier for base: characters outside [A-Za-z0-9_] become _xHH,
   and underscores are appended until it is neither reserved nor taken.
   The result is reserved (owned by E). */
static char *em_ident(emitter *E, const char *base)
{
    md_buf b = {0};
    for (const unsigned char *p = (const unsigned char *)base; *p; p++) {
        if (isalnum(*p) || *p == '_') md_buf_putc(&b, (char)*p);
        else md_buf_printf(&b, "_x%02X", *p);
    }
    if (!b.len || isdigit((unsigned char)b.s[0]) || em_reserved_prefix(b.s)) {
        char *t = md_buf_take(&b);
        md_buf_printf(&b, "v_%s", t);
        free(t);
    }
    while (em_is_reserved(E, b.s)) md_buf_putc(&b, '_');
    char *s = md_buf_take(&b);
    em_reserve(E, s);
    return s;
}

static int em_valid_name(const char *s)
{
    if (!s || !*s || !(isalpha((unsigned char)*s) || *s == '_')) return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_')) return 0;
    return 1;
}

/* Adds the callback for generic function func, derivative order. */
static void em_add_gen(emitter *E, int func, int order)
{
    for (int i = 0; i < E->ngens; i++)
        if (E->gens[i].func == func && E->gens[i].order == order) return;
    md_buf b = {0};
    md_buf_printf(&b, "%s_%s", E->name, E->ctx->funcs[func]);
    if (order) md_buf_printf(&b, "_d%d", order);
    E->gens = md_xrealloc(E->gens, (size_t)(E->ngens + 1) * sizeof *E->gens);
    E->gens[E->ngens].name = md_buf_take(&b);
    E->gens[E->ngens].func = func;
    E->gens[E->ngens].order = order;
    E->ngens++;
}

static int em_gen_cmp(const void *a, const void *b)
{
    const em_gen *x = a, *y = b;
    return x->func != y->func ? x->func - y->func : x->order - y->order;
}

/*
 * The names of the interface: callbacks (already collected), dimension
 * fields, parameters.  Returns -1 after a message on err.
 */
static int em_names(emitter *E)
{
    md_ctx *ctx = E->ctx;
    if (!em_valid_name(E->name) || em_is_reserved(E, E->name)) {
        fprintf(E->err, "matdiff: --name '%s' is not usable as a C function name "
                        "(letters, digits and _, not a keyword, not starting with md_ or _)\n", E->name);
        return -1;
    }
    if (E->ngens > 1) qsort(E->gens, (size_t)E->ngens, sizeof *E->gens, em_gen_cmp);
    md_buf b = {0};
    md_buf_printf(&b, "%s_dims", E->name);
    em_reserve(E, md_buf_take(&b));
    md_buf_printf(&b, "%s_workspace", E->name);
    em_reserve(E, md_buf_take(&b));
    em_reserve(E, md_xstrdup(E->name));
    for (int i = 0; i < E->ngens; i++) {
        if (em_is_reserved(E, E->gens[i].name)) {
            fprintf(E->err, "matdiff: the callback %s for generic function '%s' would clash with "
                            "another name of the emitted code; rename the function or use --name\n",
                    E->gens[i].name, ctx->funcs[E->gens[i].func]);
            return -1;
        }
        em_reserve(E, md_xstrdup(E->gens[i].name));
    }

    /* dimensions: declared names, else after the first variable carrying them */
    E->dimfield = md_xcalloc((size_t)ctx->ndims + 1, sizeof *E->dimfield);
    E->dimnote = md_xcalloc((size_t)ctx->ndims + 1, sizeof *E->dimnote);
    int ndimreserved = E->nreserved;
    for (int d = 1; d < ctx->ndims; d++) {
        const char *carrier = NULL, *what = NULL;
        for (int s = 0; s < ctx->nsyms && !carrier; s++) {
            const md_symbol *sy = &ctx->syms[s];
            int vec = sy->rows == MD_DIM_ONE || sy->cols == MD_DIM_ONE;
            if (sy->rows == d) carrier = sy->name, what = vec ? "len" : "rows";
            else if (sy->cols == d) carrier = sy->name, what = vec ? "len" : "cols";
        }
        md_buf_free(&b);
        if (ctx->dims[d].declared || !carrier) {
            md_buf_puts(&b, ctx->dims[d].name);
            E->dimnote[d] = md_xstrdup(ctx->dims[d].declared ? "declared in the program" : "");
        } else {
            md_buf_printf(&b, "%s_%s", carrier, what);
            md_buf nb = {0};
            md_buf_printf(&nb, "%s of %s", !strcmp(what, "len") ? "length" : what, carrier);
            E->dimnote[d] = md_buf_take(&nb);
        }
        E->dimfield[d] = em_ident(E, b.s);
    }
    md_buf_free(&b);
    /* field names live in the struct's namespace: parameters may reuse
       them (dimfield keeps ownership) */
    E->nreserved = ndimreserved;

    E->pname = md_xcalloc((size_t)ctx->nsyms + 1, sizeof *E->pname);
    for (int s = 0; s < ctx->nsyms; s++) E->pname[s] = em_ident(E, ctx->syms[s].name);
    E->gname = md_xcalloc((size_t)E->n + 1, sizeof *E->gname);
    for (int i = 0; i < E->n; i++) {
        md_buf_printf(&b, "d_%s", ctx->syms[E->wrt[i]].name);
        E->gname[i] = em_ident(E, b.s);
        md_buf_free(&b);
    }
    return 0;
}

/* ---- sizes ------------------------------------------------------------ */

static void em_dim(const emitter *E, int d, md_buf *b)
{
    if (d == MD_DIM_ONE) md_buf_puts(b, "1");
    else md_buf_printf(b, "dims->%s", E->dimfield[d]);
}

/* "dims->n * dims->p", "dims->n" or "1" (as long). */
static char *em_size(const emitter *E, int r, int c)
{
    md_buf b = {0};
    if (r == MD_DIM_ONE && c == MD_DIM_ONE) md_buf_puts(&b, "1");
    else if (r == MD_DIM_ONE) em_dim(E, c, &b);
    else if (c == MD_DIM_ONE) em_dim(E, r, &b);
    else {
        em_dim(E, r, &b);
        md_buf_puts(&b, " * ");
        em_dim(E, c, &b);
    }
    return md_buf_take(&b);
}

/* The same as a size_t expression. */
static char *em_size_t(const emitter *E, int r, int c)
{
    md_buf b = {0};
    if (r == MD_DIM_ONE && c == MD_DIM_ONE) md_buf_puts(&b, "1");
    else if (r == MD_DIM_ONE || c == MD_DIM_ONE) {
        md_buf_puts(&b, "(size_t)");
        em_dim(E, r == MD_DIM_ONE ? c : r, &b);
    } else {
        md_buf_puts(&b, "(size_t)");
        em_dim(E, r, &b);
        md_buf_puts(&b, " * (size_t)");
        em_dim(E, c, &b);
    }
    return md_buf_take(&b);
}

static void em_add_scratch(emitter *E, char *expr)
{
    for (int i = 0; i < E->nscr; i++)
        if (!strcmp(E->scr[i], expr)) {
            free(expr);
            return;
        }
    if (E->nscr == E->capscr) {
        E->capscr = E->capscr ? 2 * E->capscr : 8;
        E->scr = md_xrealloc(E->scr, (size_t)E->capscr * sizeof *E->scr);
    }
    E->scr[E->nscr++] = expr;
}

/* ---- the graph -------------------------------------------------------- */

/* The graph as emitted: a node that is the transpose of another one
   (E->nd[id].tof) is a transpose of that node, with it as only argument. */
static md_kind em_kind(const emitter *E, const md_expr *e)
{
    return E->nd[e->id].tof ? MD_TRANS : e->kind;
}

static int em_nargs(const emitter *E, const md_expr *e)
{
    return E->nd[e->id].tof ? 1 : e->nargs;
}

static md_expr *em_arg(const emitter *E, const md_expr *e, int i)
{
    const em_node *x = &E->nd[e->id];
    if (x->tof) return x->tof;
    if (x->lu) return E->lus[x->lu - 1].base;   /* the matrix factored */
    return e->args[i];
}

/* Does e work from an LU factorisation of its argument? */
static int em_factored(const md_expr *e)
{
    return (e->kind == MD_DET || e->kind == MD_LOGDET || (e->kind == MD_MPOW && e->ival < 0)) &&
           !md_is_scalar(e->args[0]);
}

/* Gives e the LU of its argument, or of the argument's transpose (then
   e->lut: the factors are used transposed), created on first need. */
static void em_assign_lu(emitter *E, md_expr *e)
{
    md_expr *base = e->args[0];
    int t = 0;
    if (em_kind(E, base) == MD_TRANS) {
        base = em_arg(E, base, 0);
        t = 1;
    }
    int k = 0;
    while (k < E->nlus && E->lus[k].base != base) k++;
    if (k == E->nlus) {
        E->lus = md_xrealloc(E->lus, (size_t)(E->nlus + 1) * sizeof *E->lus);
        E->lus[E->nlus++] = (em_lu){base, -1, NULL, NULL, NULL};
    }
    E->nd[e->id].lu = k + 1;
    E->nd[e->id].lut = t;
}

static void em_collect(emitter *E, md_expr *e)
{
    em_node *x = &E->nd[e->id];
    if (x->seen) return;
    x->seen = 1;
    if (!x->tof && em_factored(e)) em_assign_lu(E, e);
    for (int i = 0; i < em_nargs(E, e); i++) em_collect(E, em_arg(E, e, i));
    if (x->lu && E->lus[x->lu - 1].first < 0) E->lus[x->lu - 1].first = E->ntopo;
    if (E->ntopo == E->captopo) {
        E->captopo = E->captopo ? 2 * E->captopo : 64;
        E->topo = md_xrealloc(E->topo, (size_t)E->captopo * sizeof *E->topo);
    }
    E->topo[E->ntopo++] = e;
}

static int em_is_vector(const md_expr *e)
{
    return e->rows == MD_DIM_ONE || e->cols == MD_DIM_ONE;
}

static void em_reach(md_expr *e, char *seen, md_expr ***order, uint32_t *len, uint32_t *cap)
{
    if (seen[e->id]) return;
    seen[e->id] = 1;
    for (int i = 0; i < e->nargs; i++) em_reach(e->args[i], seen, order, len, cap);
    if (*len == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *order = md_xrealloc(*order, *cap * sizeof **order);
    }
    (*order)[(*len)++] = e;
}


/*
 * Transposed twins: gradients often hold both T and T' built separately
 * (X'*(X*U*V' - Y) for dU, (V*U'*X' - Y')*X for dV).  Of each such pair
 * reachable from the roots, one is computed and the other becomes its
 * transpose (a view, an alias or a copy), as the text printer writes
 * T and T'.  Equal depth (transposes add none) rules out a node that
 * contains its own twin, so the substitution never makes a cycle.
 */
static void em_twins(emitter *E, int nroots, md_expr **roots)
{
    md_ctx *ctx = E->ctx;
    uint32_t n0 = ctx->nnodes, len = 0, cap = 0;
    char *seen = md_xcalloc(n0, 1);
    md_expr **order = NULL;
    for (int i = 0; i < nroots; i++) em_reach(roots[i], seen, &order, &len, &cap);
    md_expr **tr = md_xcalloc(len ? len : 1, sizeof *tr);
    for (uint32_t i = 0; i < len; i++) {
        md_expr *a = order[i];
        int leafish = a->nargs == 0 || (a->kind == MD_TRANS && a->args[0]->nargs == 0);
        /* inv(A) and inv(A') share A's LU instead */
        int inverse = a->kind == MD_MPOW && a->ival < 0;
        if (!leafish && !inverse && !md_is_scalar(a) && !a->has_diff) tr[i] = md_trans(ctx, a);   /* may add nodes */
    }
    E->nd = md_xcalloc(ctx->nnodes, sizeof *E->nd);
    for (uint32_t i = 0; i < ctx->nnodes; i++) E->nd[i].dest = -1;
    /* the printers' pairing (md_twins_pair): the same node is written out */
    md_expr **transof = md_xcalloc(ctx->nnodes, sizeof *transof);
    md_twins_pair(ctx, n0, len, order, tr, seen, transof);
    for (uint32_t i = 0; i < ctx->nnodes; i++)
        if (transof[i]) {
            E->nd[i].tof = transof[i];
            E->nd[transof[i]->id].isrep = 1;
        }
    free(transof);
    free(tr);
    free(order);
    free(seen);
}

/* Can e's value be an expression in md_i inside its user's loop? */
static int em_elementwise(const emitter *E, const md_expr *e)
{
    if (E->nd[e->id].tof) return 0;
    switch (e->kind) {
    case MD_ADD:
    case MD_HAD:
    case MD_POW:
    case MD_FUNC: return 1;
    case MD_MUL: {   /* scalars times one matrix factor, not transposed */
        int L = 0;
        for (int i = 0; i < e->nargs; i++)
            if (!md_is_scalar(e->args[i])) {
                L++;
                if (E->nd[e->args[i]->id].mode == EM_VIEW || E->nd[e->args[i]->id].mode == EM_SOLVE) return 0;
            }
        return L == 1;
    }
    case MD_NUM: case MD_SYM: case MD_DIFF: case MD_ZERO: case MD_ONES: case MD_EYE:
    case MD_MPOW: case MD_TRANS: case MD_SUM: case MD_NORM1: case MD_NORM2: case MD_TR:
    case MD_DET: case MD_LOGDET: case MD_DIAGM: case MD_DIAGV: case MD_NKINDS: return 0;
    }
    return 0;
}

static int em_traceable(const emitter *E, const md_expr *e);

/* Scans the graph: kinds we cannot emit, uses, modes, generic callbacks. */
static int em_scan(emitter *E, md_expr *f, md_expr **grads)
{
    md_ctx *ctx = E->ctx;
    md_expr **roots = md_xcalloc((size_t)E->n + 1, sizeof *roots);
    roots[0] = f;
    for (int i = 0; i < E->n; i++) roots[i + 1] = grads[i];
    em_twins(E, E->n + 1, roots);
    free(roots);
    em_collect(E, f);
    for (int i = 0; i < E->n; i++) em_collect(E, grads[i]);
    E->nwords = (E->n + 1 + 63) / 64;
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        em_node *x = &E->nd[e->id];
        x->scalar = md_is_scalar(e);
        x->need = md_xcalloc((size_t)E->nwords, sizeof(uint64_t));
        if (e->kind == MD_DIFF) {
            fprintf(E->err, "matdiff: internal error: a differential d%s is left in a gradient; "
                            "no C code was emitted\n", ctx->syms[e->ival].name);
            return -1;
        }
        if (e->kind == MD_NUM) {
            double v = mpq_get_d(e->q);
            if (!isfinite(v)) {
                fprintf(E->err, "matdiff: a constant of the function is outside the range of double; "
                                "no C code was emitted\n");
                return -1;
            }
        }
        if (e->kind == MD_FUNC && e->ival == MD_FN_GENERIC) em_add_gen(E, e->aux, e->order);
        for (int i = 0; i < em_nargs(E, e); i++) {
            md_expr *arg = em_arg(E, e, i);
            em_node *a = &E->nd[arg->id];
            a->uses++;
            a->user = e;
            if (!(em_kind(E, e) == MD_MUL && !md_is_scalar(arg))) a->other_use = 1;
        }
    }
    E->nd[f->id].root_of++;
    E->nd[f->id].other_use = 1;
    for (int i = 0; i < E->n; i++) {
        E->nd[grads[i]->id].root_of++;
        E->nd[grads[i]->id].other_use = 1;
    }
    /* needs, from the roots down; an LU is needed by whatever needs one
       of its users */
    E->nd[f->id].need[0] |= 1;
    for (int i = 0; i < E->n; i++) E->nd[grads[i]->id].need[(i + 1) / 64] |= (uint64_t)1 << ((i + 1) % 64);
    for (int k = E->ntopo - 1; k >= 0; k--) {
        md_expr *e = E->topo[k];
        for (int i = 0; i < em_nargs(E, e); i++)
            for (int w = 0; w < E->nwords; w++) E->nd[em_arg(E, e, i)->id].need[w] |= E->nd[e->id].need[w];
    }
    for (int k = 0; k < E->nlus; k++) E->lus[k].need = md_xcalloc((size_t)E->nwords, sizeof(uint64_t));
    for (int k = 0; k < E->ntopo; k++) {
        const em_node *x = &E->nd[E->topo[k]->id];
        if (x->lu)
            for (int w = 0; w < E->nwords; w++) E->lus[x->lu - 1].need[w] |= x->need[w];
    }
    /* An inverse used only as a product factor is applied by solving with
       its LU.  A solve needs a right-hand side, so a product whose matrix
       factors are all inverses computes all of them but the last (all of
       one) explicitly. */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        if (em_kind(E, e) != MD_MUL) continue;
        int L = 0, ninv = 0, last = -1;
        for (int i = 0; i < e->nargs; i++) {
            const md_expr *a = e->args[i];
            if (md_is_scalar(a)) continue;
            L++;
            if (a->kind == MD_MPOW && a->ival == -1 && E->nd[a->id].lu) ninv++, last = i;
        }
        if (L == 0 || ninv < L) continue;
        for (int i = 0; i < e->nargs; i++)
            if (!md_is_scalar(e->args[i]) && (L == 1 || i != last)) E->nd[e->args[i]->id].other_use = 1;
    }
    /* modes */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        em_node *x = &E->nd[e->id];
        switch (em_kind(E, e)) {
        case MD_NUM:
        case MD_SYM: x->mode = EM_LEAF; break;
        case MD_TRANS:
            if (em_is_vector(e)) x->mode = EM_ALIAS;
            else if (!x->other_use) x->mode = EM_VIEW;
            else x->mode = EM_COMPUTED;
            break;
        case MD_MPOW:
            x->mode = e->ival == -1 && x->lu && !x->other_use ? EM_SOLVE : EM_COMPUTED;
            break;
        case MD_DIFF: case MD_ZERO: case MD_ONES: case MD_EYE: case MD_ADD: case MD_MUL:
        case MD_HAD: case MD_POW: case MD_FUNC: case MD_SUM: case MD_NORM1: case MD_NORM2:
        case MD_TR: case MD_DET: case MD_LOGDET: case MD_DIAGM: case MD_DIAGV:
        case MD_NKINDS: x->mode = EM_COMPUTED; break;
        }
    }
    /* fusion: an elementwise node used once, by an elementwise node of its
       shape or by a sum, is written inside that node's loop */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        em_node *x = &E->nd[e->id];
        if (x->mode != EM_COMPUTED || x->scalar || x->uses != 1 || x->root_of || !em_elementwise(E, e)) continue;
        md_expr *u = x->user;
        int ok = (em_elementwise(E, u) && u->rows == e->rows && u->cols == e->cols) ||
                 (!E->nd[u->id].tof && (u->kind == MD_SUM || u->kind == MD_NORM1));
        if (ok) x->mode = EM_INLINE;
    }
    /* a product used only by a trace is not formed (em_traceable) */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        if (em_kind(E, e) != MD_TR) continue;
        md_expr *m = em_arg(E, e, 0);
        em_node *y = &E->nd[m->id];
        if (em_kind(E, m) == MD_MUL && y->mode == EM_COMPUTED && y->uses == 1 && !y->root_of &&
            em_traceable(E, m))
            y->mode = EM_TRACED;
    }
    /* gradient roots used nowhere else are computed into d_<name> */
    for (int i = 0; i < E->n; i++) {
        md_expr *g = grads[i];
        em_node *x = &E->nd[g->id];
        if (x->mode == EM_COMPUTED && !x->scalar && x->uses == 0 && x->root_of == 1) x->dest = i;
    }
    return 0;
}

/* ---- values ----------------------------------------------------------- */

static char *em_number(const md_expr *e)
{
    char buf[64];
    double v = mpq_get_d(e->q);
    snprintf(buf, sizeof buf, "%.17g", v);
    if (!strpbrk(buf, ".e")) strcat(buf, ".0");
    md_buf b = {0};
    if (v < 0) md_buf_printf(&b, "(%s)", buf);
    else md_buf_puts(&b, buf);
    return md_buf_take(&b);
}

/* Element md_i of a (scalars broadcast; inline nodes are expressions). */
static char *em_el(const emitter *E, const md_expr *a)
{
    const em_node *x = &E->nd[a->id];
    md_buf b = {0};
    if (x->scalar || x->mode == EM_INLINE) md_buf_puts(&b, x->val);
    else md_buf_printf(&b, "%s[md_i]", x->val);
    return md_buf_take(&b);
}

static void em_rhs(emitter *E, const md_expr *e, md_buf *b);

/* An LU's two slices: the factors and the pivots (MD_PIVOTS(n) doubles:
   LAPACK integers in BLAS mode, row indices stored as doubles otherwise). */
static void em_lu_slices(emitter *E, em_lu *lu)
{
    md_buf b = {0};
    md_buf_printf(&b, "md_lu%u", (unsigned)lu->base->id);
    lu->val = md_buf_take(&b);
    md_buf_printf(&b, "md_piv%u", (unsigned)lu->base->id);
    lu->piv = md_buf_take(&b);
    char *sz = em_size_t(E, lu->base->rows, lu->base->cols);
    md_buf nn = {0};
    em_dim(E, lu->base->rows, &nn);
    md_buf_printf(&E->decl, "    double *const %s = md_w;\n    md_w += %s;\n", lu->val, sz);
    md_buf_printf(&E->decl, "    double *const %s = md_w;\n    md_w += MD_PIVOTS(%s);\n", lu->piv, nn.s);
    md_buf_printf(&E->ws, "    md_n += %s;   /* %s */\n", sz, lu->val);
    md_buf_printf(&E->ws, "    md_n += MD_PIVOTS(%s);   /* %s */\n", nn.s, lu->piv);
    md_buf_free(&nn);
    free(sz);
}

/* Assigns every node its C value: names, slices, aliases. */
static void em_values(emitter *E)
{
    md_ctx *ctx = E->ctx;
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        em_node *x = &E->nd[e->id];
        md_buf b = {0};
        for (int l = 0; l < E->nlus; l++)
            if (E->lus[l].first == k) em_lu_slices(E, &E->lus[l]);
        switch (x->mode) {
        case EM_SOLVE:
            x->val = md_xstrdup(E->lus[x->lu - 1].val);
            break;
        case EM_TRACED: break;   /* never formed */
        case EM_LEAF:
            if (e->kind == MD_NUM) x->val = em_number(e);
            else x->val = md_xstrdup(E->pname[e->ival]);
            break;
        case EM_ALIAS:
        case EM_VIEW:
            x->val = md_xstrdup(E->nd[em_arg(E, e, 0)->id].val);
            break;
        case EM_INLINE:
            md_buf_putc(&b, '(');
            em_rhs(E, e, &b);
            md_buf_putc(&b, ')');
            x->val = md_buf_take(&b);
            break;
        case EM_COMPUTED:
            if (x->scalar) {
                md_buf_printf(&b, "md_s%u", (unsigned)e->id);
                x->val = md_buf_take(&b);
                md_buf_printf(&E->decl, "    double %s = 0.0;\n", x->val);
            } else if (x->dest >= 0) {
                x->val = md_xstrdup(E->gname[x->dest]);
            } else {
                md_buf_printf(&b, "md_t%u", (unsigned)e->id);
                x->val = md_buf_take(&b);
                char *sz = em_size_t(E, e->rows, e->cols);
                md_buf_printf(&E->decl, "    double *const %s = md_w;\n    md_w += %s;\n", x->val, sz);
                md_buf_printf(&E->ws, "    md_n += %s;   /* %s */\n", sz, x->val);
                free(sz);
            }
            break;
        }
    }
    (void)ctx;
}

/* ---- statements ------------------------------------------------------- */

static void em_loop(emitter *E, const md_expr *e, const char *rhs)
{
    char *n = em_size(E, e->rows, e->cols);
    md_buf_printf(&E->body, "    for (long md_i = 0; md_i < %s; md_i++) %s[md_i] = %s;\n", n,
                  E->nd[e->id].val, rhs);
    free(n);
}

/* The statement that assigns rhs to e, elementwise or as a scalar. */
static void em_assign(emitter *E, const md_expr *e, const char *rhs)
{
    if (E->nd[e->id].scalar) md_buf_printf(&E->body, "    %s = %s;\n", E->nd[e->id].val, rhs);
    else em_loop(E, e, rhs);
}

static void em_fn(emitter *E, const md_expr *e, const char *x, md_buf *b)
{
    if (e->ival != MD_FN_GENERIC) {
        md_buf_printf(b, md_fns[e->ival].c, x);   /* the table's C, %1$s the argument */
        return;
    }
    for (int i = 0; i < E->ngens; i++)
        if (E->gens[i].func == e->aux && E->gens[i].order == e->order) md_buf_printf(b, "%s(%s)", E->gens[i].name, x);
}

/* a .^ b for the elements a and b; exponent node ex. */
static void em_pow(const md_expr *ex, const char *a, const char *b, md_buf *out)
{
    if (ex->kind == MD_NUM && md_is_num(ex, 2)) md_buf_printf(out, "%s * %s", a, a);
    else if (ex->kind == MD_NUM && md_is_num(ex, 3)) md_buf_printf(out, "%s * %s * %s", a, a, a);
    else if (ex->kind == MD_NUM && md_is_num(ex, 1)) md_buf_printf(out, "%s", a);
    else if (ex->kind == MD_NUM && md_is_num(ex, -1)) md_buf_printf(out, "1.0 / %s", a);
    else if (ex->kind == MD_NUM && md_is_num(ex, -2)) md_buf_printf(out, "1.0 / (%s * %s)", a, a);
    else if (ex->kind == MD_NUM && mpz_cmp_ui(mpq_numref(ex->q), 1) == 0 &&
             mpz_cmp_ui(mpq_denref(ex->q), 2) == 0)
        md_buf_printf(out, "sqrt(%s)", a);
    else md_buf_printf(out, "pow(%s, %s)", a, b);
}

/* The right-hand side of an elementwise node (ADD, HAD, POW, FUNC, or a
   MUL of scalars and one matrix), element md_i. */
static void em_rhs(emitter *E, const md_expr *e, md_buf *b)
{
    switch (e->kind) {
    case MD_ADD:
    case MD_HAD:
        for (int i = 0; i < e->nargs; i++) {
            char *el = em_el(E, e->args[i]);
            md_buf_printf(b, "%s%s", i ? (e->kind == MD_ADD ? " + " : " * ") : "", el);
            free(el);
        }
        break;
    case MD_POW: {
        char *x = em_el(E, e->args[0]), *y = em_el(E, e->args[1]);
        em_pow(e->args[1], x, y, b);
        free(x);
        free(y);
        break;
    }
    case MD_FUNC: {
        char *x = em_el(E, e->args[0]);
        em_fn(E, e, x, b);
        free(x);
        break;
    }
    case MD_MUL: {
        int k = 0;
        for (int i = 0; i < e->nargs; i++) {
            char *el = em_el(E, e->args[i]);
            md_buf_printf(b, "%s%s", k++ ? " * " : "", el);
            free(el);
        }
        break;
    }
    case MD_NUM: case MD_SYM: case MD_DIFF: case MD_ZERO: case MD_ONES: case MD_EYE:
    case MD_MPOW: case MD_TRANS: case MD_SUM: case MD_NORM1: case MD_NORM2: case MD_TR:
    case MD_DET: case MD_LOGDET: case MD_DIAGM: case MD_DIAGV: case MD_NKINDS:
        md_buf_puts(b, "NAN");   /* never: em_elementwise admits only the kinds above */
        break;
    }
}

/* A factor of a product chain: op(ptr) is r x c (dim ids); with piv, the
   factor is inv(op(A)) and ptr, piv are A's LU factors. */
typedef struct em_fac {
    const char *ptr;
    int t, r, c;
    const char *piv;
} em_fac;

/* md_mm(ta, tb, m, n, k, alpha, A, B, C): C = alpha op(A) op(B), col-major. */
static void em_mm(emitter *E, const em_fac *a, const em_fac *b, const char *alpha, const char *dst)
{
    md_buf *o = &E->body;
    E->use_mm = 1;
    md_buf_printf(o, "    md_mm(%d, %d, ", a->t, b->t);
    em_dim(E, a->r, o);
    md_buf_puts(o, ", ");
    em_dim(E, b->c, o);
    md_buf_puts(o, ", ");
    em_dim(E, a->c, o);
    md_buf_printf(o, ", %s, %s, %s, %s);\n", alpha, a->ptr, b->ptr, dst);
}

/* dst = alpha a b: a product, or a solve when a or b is an inverse
   (md_sm(side, tA, tB, m, n, alpha, LU, piv, B, C)); never both. */
static void em_pair(emitter *E, const em_fac *a, const em_fac *b, const char *alpha, const char *dst)
{
    if (!a->piv && !b->piv) {
        em_mm(E, a, b, alpha, dst);
        return;
    }
    const em_fac *inv = a->piv ? a : b, *rhs = a->piv ? b : a;
    md_buf *o = &E->body;
    E->use_sm = 1;
    md_buf_printf(o, "    md_sm(%d, %d, %d, ", a->piv ? 0 : 1, inv->t, rhs->t);
    em_dim(E, a->r, o);
    md_buf_puts(o, ", ");
    em_dim(E, b->c, o);
    md_buf_printf(o, ", %s, %s, %s, %s, %s);\n", alpha, inv->ptr, inv->piv, rhs->ptr, dst);
}

/* Emit-time matrix-chain DP over sizes sz[0..L]; split[i*L + j].  A solve
   costs what the product costs; two inverses cannot meet (a solve needs a
   right-hand side). */
static void em_chain_dp(int L, const double *sz, const em_fac *f, int *split)
{
    double *cost = md_xcalloc((size_t)(L * L), sizeof *cost);
    for (int len = 2; len <= L; len++)
        for (int i = 0; i + len - 1 < L; i++) {
            int j = i + len - 1;
            cost[i * L + j] = INFINITY;
            split[i * L + j] = i;
            for (int k = i; k < j; k++) {
                double c = cost[i * L + k] + cost[(k + 1) * L + j] + sz[i] * sz[k + 1] * sz[j + 1];
                if (k == i && k + 1 == j && f[i].piv && f[j].piv) c = INFINITY;
                if (c < cost[i * L + j]) cost[i * L + j] = c, split[i * L + j] = k;
            }
        }
    free(cost);
}

/* Emits factors i..j into dst with the emit-time bracketing; scratch from
   md_scr + *off (off grows by the temporaries used). */
static void em_chain_static(emitter *E, const em_fac *f, const int *split, int L, int i, int j,
                            const char *alpha, const char *dst, md_buf *off)
{
    int k = split[i * L + j];
    em_fac lf = f[i], rf = f[j];
    char *lname = NULL, *rname = NULL;
    if (k > i) {
        md_buf b = {0};
        md_buf_printf(&b, "md_scr + %s", off->s);
        lname = md_buf_take(&b);
        char *sz = em_size(E, f[i].r, f[k].c);
        md_buf_printf(off, " + %s", sz);
        free(sz);
        em_chain_static(E, f, split, L, i, k, "1.0", lname, off);
        lf = (em_fac){lname, 0, f[i].r, f[k].c, NULL};
    }
    if (j > k + 1) {
        md_buf b = {0};
        md_buf_printf(&b, "md_scr + %s", off->s);
        rname = md_buf_take(&b);
        char *sz = em_size(E, f[k + 1].r, f[j].c);
        md_buf_printf(off, " + %s", sz);
        free(sz);
        em_chain_static(E, f, split, L, k + 1, j, "1.0", rname, off);
        rf = (em_fac){rname, 0, f[k + 1].r, f[j].c, NULL};
    }
    em_pair(E, &lf, &rf, alpha, dst);
    free(lname);
    free(rname);
}

/* The factors of product e: its scalars multiplied into alpha ("1.0" if
   none), its matrix factors into f (as stored: row-major code works on
   the transposed chain, (F1...FL)' = FL'...F1').  Returns L. */
static int em_factors(emitter *E, const md_expr *e, md_buf *alpha, em_fac *f)
{
    int L = 0;
    for (int i = 0; i < e->nargs; i++) {
        const md_expr *a = e->args[i];
        const em_node *ax = &E->nd[a->id];
        if (ax->scalar) {
            md_buf_printf(alpha, "%s%s", alpha->len ? " * " : "", ax->val);
        } else if (ax->mode == EM_VIEW) {
            f[L++] = (em_fac){ax->val, 1, a->rows, a->cols, NULL};
        } else if (ax->mode == EM_SOLVE) {
            const em_lu *lu = &E->lus[ax->lu - 1];
            f[L++] = (em_fac){lu->val, ax->lut, a->rows, a->cols, lu->piv};
        } else {
            f[L++] = (em_fac){ax->val, 0, a->rows, a->cols, NULL};
        }
    }
    if (!alpha->len) md_buf_puts(alpha, "1.0");
    if (E->row && L > 1) {
        for (int i = 0; i < L / 2; i++) {
            em_fac t = f[i];
            f[i] = f[L - 1 - i];
            f[L - 1 - i] = t;
        }
        for (int i = 0; i < L; i++) {
            int t = f[i].r;
            f[i].r = f[i].c;
            f[i].c = t;
        }
    }
    return L;
}

/* A chain f[0..L) of L >= 3 factors: its dims (dd[0..L]) and the scratch
   bound of any bracketing, the sizes of all its proper sub-chains. */
static int *em_chain_dims(emitter *E, const em_fac *f, int L)
{
    int *dd = md_xcalloc((size_t)L + 1, sizeof *dd);
    dd[0] = f[0].r;
    for (int i = 0; i < L; i++) dd[i + 1] = f[i].c;
    md_buf sb = {0};
    for (int len = 2; len < L; len++)
        for (int i = 0; i + len <= L; i++) {
            char *s = em_size_t(E, dd[i], dd[i + len]);
            md_buf_printf(&sb, "%s%s", sb.len ? " + " : "", s);
            free(s);
        }
    em_add_scratch(E, md_buf_take(&sb));
    return dd;
}

/* Opens a block declaring the chain's arrays for md_chain and
   md_chain_trace: md_d, md_a, md_p (with solves), md_tr.  Returns "md_p"
   or "NULL". */
static const char *em_chain_arrays(emitter *E, const em_fac *f, const int *dd, int L)
{
    md_buf *o = &E->body;
    E->use_chain = 1;
    md_buf_printf(o, "    {\n        const long md_d[%d] = {", L + 1);
    for (int i = 0; i <= L; i++) {
        if (i) md_buf_puts(o, ", ");
        em_dim(E, dd[i], o);
    }
    md_buf_printf(o, "};\n        const double *const md_a[%d] = {", L);
    for (int i = 0; i < L; i++) md_buf_printf(o, "%s%s", i ? ", " : "", f[i].ptr);
    int solves = 0;
    for (int i = 0; i < L; i++) solves |= f[i].piv != NULL;
    if (solves) {
        E->use_sm = 1;
        md_buf_printf(o, "};\n        const double *const md_p[%d] = {", L);
        for (int i = 0; i < L; i++) md_buf_printf(o, "%s%s", i ? ", " : "", f[i].piv ? f[i].piv : "NULL");
    }
    md_buf_printf(o, "};\n        static const int md_tr[%d] = {", L);
    for (int i = 0; i < L; i++) md_buf_printf(o, "%s%d", i ? ", " : "", f[i].t);
    md_buf_puts(o, "};\n");
    return solves ? "md_p" : "NULL";
}

static void em_mul(emitter *E, const md_expr *e)
{
    const em_node *x = &E->nd[e->id];
    md_buf alpha = {0};
    em_fac *f = md_xcalloc((size_t)e->nargs + 1, sizeof *f);
    int L = em_factors(E, e, &alpha, f);
    if (L == 0) {
        md_buf_printf(&E->body, "    %s = %s;\n", x->val, alpha.s);
    } else if (L == 1) {
        if (f[0].t) {
            /* alpha * A' for a matrix A: a scaled transpose copy */
            E->use_tcopy = 1;
            md_buf_puts(&E->body, "    md_tcopy(");
            em_dim(E, E->row ? e->cols : e->rows, &E->body);
            md_buf_puts(&E->body, ", ");
            em_dim(E, E->row ? e->rows : e->cols, &E->body);
            md_buf_printf(&E->body, ", %s, %s, %s);\n", alpha.s, f[0].ptr, x->val);
        } else {
            md_buf rhs = {0};
            em_rhs(E, e, &rhs);
            em_assign(E, e, rhs.s);
            md_buf_free(&rhs);
        }
    } else {
        md_buf dst = {0};
        if (x->scalar) md_buf_printf(&dst, "&%s", x->val);
        else md_buf_puts(&dst, x->val);
        if (L == 2) {
            em_pair(E, &f[0], &f[1], alpha.s, dst.s);
        } else {
            int *dd = em_chain_dims(E, f, L);
            int hinted = 1;
            for (int i = 0; i <= L; i++)
                if (dd[i] != MD_DIM_ONE && !(E->o->size_hint && E->o->size_hint[dd[i]] > 0)) hinted = 0;
            if (hinted || L > EM_CHAIN_MAX) {
                double *sz = md_xcalloc((size_t)L + 1, sizeof *sz);
                for (int i = 0; i <= L; i++)
                    sz[i] = dd[i] == MD_DIM_ONE ? 1.0
                            : E->o->size_hint && E->o->size_hint[dd[i]] > 0 ? (double)E->o->size_hint[dd[i]]
                                                                            : 100.0;
                int *split = md_xcalloc((size_t)(L * L), sizeof *split);
                em_chain_dp(L, sz, f, split);
                md_buf off = {0};
                md_buf_puts(&off, "0");
                em_chain_static(E, f, split, L, 0, L - 1, alpha.s, dst.s, &off);
                md_buf_free(&off);
                free(split);
                free(sz);
            } else {
                const char *p = em_chain_arrays(E, f, dd, L);
                E->use_chain_plain = 1;
                md_buf_printf(&E->body, "        md_chain(%d, md_d, md_a, %s, md_tr, %s, %s, md_scr);\n    }\n", L, p,
                              alpha.s, dst.s);
            }
            free(dd);
        }
        md_buf_free(&dst);
    }
    md_buf_free(&alpha);
    free(f);
}

/*
 * Can tr(e) for the product e skip forming e?  tr(PQ) = sum(P .* Q') needs
 * P (r x k) and Q (k x r), not the r x r product: two factors that are
 * not inverses (the dot of md_trdot), or a chain of at most EM_CHAIN_MAX
 * that splits into two computable parts (md_chain_trace).  A sub-chain
 * is computable when it is one factor that is not an inverse, or has a
 * factor that is not.
 */
static int em_traceable(const emitter *E, const md_expr *e)
{
    int L = 0, ninv = 0, first_inv = 0, last_inv = 0;
    for (int i = 0; i < e->nargs; i++) {
        const md_expr *a = e->args[i];
        if (md_is_scalar(a)) continue;
        int inv = E->nd[a->id].mode == EM_SOLVE;
        if (L == 0) first_inv = inv;
        last_inv = inv;
        ninv += inv;
        L++;
    }
    if (L < 2 || L > EM_CHAIN_MAX) return 0;
    if (L == 2) return ninv == 0;
    /* some split k: both sides computable (row-major reverses the chain,
       which keeps the condition) */
    for (int k = 0; k < L - 1; k++) {
        int left = k == 0 ? !first_inv : 1, right = k == L - 2 ? !last_inv : 1;
        if (left && right && ninv < L) return 1;
    }
    return 0;
}

/* v = tr(e) for the product e, fused (em_traceable). */
static void em_trace_mul(emitter *E, const char *v, const md_expr *e)
{
    md_buf alpha = {0};
    em_fac *f = md_xcalloc((size_t)e->nargs + 1, sizeof *f);
    int L = em_factors(E, e, &alpha, f);
    md_buf *o = &E->body;
    E->use_trdot = 1;
    if (L == 2) {
        md_buf_printf(o, "    %s = ", v);
        if (strcmp(alpha.s, "1.0") != 0) md_buf_printf(o, "%s * ", alpha.s);
        md_buf_printf(o, "md_trdot(%d, %d, ", f[0].t, f[1].t);
        em_dim(E, f[0].r, o);
        md_buf_puts(o, ", ");
        em_dim(E, f[0].c, o);
        md_buf_printf(o, ", %s, %s);\n", f[0].ptr, f[1].ptr);
    } else {
        int *dd = em_chain_dims(E, f, L);
        const char *p = em_chain_arrays(E, f, dd, L);
        E->use_chain_trace = 1;
        md_buf_printf(o, "        %s = md_chain_trace(%d, md_d, md_a, %s, md_tr, %s, md_scr);\n    }\n", v, L, p,
                      alpha.s);
        free(dd);
    }
    md_buf_free(&alpha);
    free(f);
}

/* One node's statement(s). */
static void em_node_code(emitter *E, const md_expr *e)
{
    const em_node *x = &E->nd[e->id];
    md_buf rhs = {0};
    md_buf *o = &E->body;
    const char *v = x->val;
    char *n = em_size(E, e->rows, e->cols);
    const char *a0 = em_nargs(E, e) ? E->nd[em_arg(E, e, 0)->id].val : NULL;
    switch (em_kind(E, e)) {
    case MD_ZERO:
        md_buf_printf(o, "    memset(%s, 0, (size_t)(%s) * sizeof(double));\n", v, n);
        break;
    case MD_ONES: em_loop(E, e, "1.0"); break;
    case MD_EYE:
        md_buf_printf(o, "    memset(%s, 0, (size_t)(%s) * sizeof(double));\n", v, n);
        md_buf_puts(o, "    for (long md_i = 0; md_i < ");
        em_dim(E, e->rows, o);
        md_buf_puts(o, "; md_i++) ");
        md_buf_printf(o, "%s[md_i * (", v);
        em_dim(E, e->rows, o);
        md_buf_puts(o, " + 1)] = 1.0;\n");
        break;
    case MD_ADD:
    case MD_HAD:
    case MD_POW:
    case MD_FUNC:
        em_rhs(E, e, &rhs);
        em_assign(E, e, rhs.s);
        break;
    case MD_MUL: em_mul(E, e); break;
    case MD_TRANS:
        /* a copy: e is r x c, a0 c x r (row-major: the sizes swap) */
        E->use_tcopy = 1;
        md_buf_puts(o, "    md_tcopy(");
        em_dim(E, E->row ? e->cols : e->rows, o);
        md_buf_puts(o, ", ");
        em_dim(E, E->row ? e->rows : e->cols, o);
        md_buf_printf(o, ", 1.0, %s, %s);\n", a0, v);
        break;
    case MD_MPOW: {
        md_buf nn = {0};
        em_dim(E, e->rows, &nn);
        const char *sq = nn.s;
        char *n2 = em_size_t(E, e->rows, e->rows);
        md_buf sb = {0};
        if (e->ival < 0) {
            /* inverse from the LU (dgetri: 64n doubles of scratch) */
            const em_lu *lu = &E->lus[x->lu - 1];
            E->use_inv = 1;
            if (e->ival == -1) {
                md_buf_printf(o, "    md_lu_inv(%d, %s, %s, %s, %s, %s);\n", x->lut, sq, lu->val, lu->piv, v,
                              E->o->blas ? "md_scr" : "NULL");
                if (E->o->blas) md_buf_printf(&sb, "64 * (size_t)%s", sq);
            } else {
                E->use_mpow = 1;
                md_buf_printf(o, "    md_lu_inv(%d, %s, %s, %s, md_scr, md_scr + %s * %s);\n", x->lut, sq, lu->val,
                              lu->piv, sq, sq);
                md_buf_printf(o, "    md_mpow(%s, %d, md_scr, %s, md_scr + %s * %s);\n", sq, -e->ival, v, sq, sq);
                if (E->o->blas) md_buf_printf(&sb, "%s + 64 * (size_t)%s", n2, sq);
                md_buf sb3 = {0};
                md_buf_printf(&sb3, "3 * %s", n2);
                em_add_scratch(E, md_buf_take(&sb3));
            }
        } else if (e->ival == 0) {
            md_buf_printf(o, "    memset(%s, 0, (size_t)(%s) * sizeof(double));\n", v, n);
            md_buf_printf(o, "    for (long md_i = 0; md_i < %s; md_i++) %s[md_i * (%s + 1)] = 1.0;\n", sq, v, sq);
        } else {
            E->use_mpow = 1;
            md_buf_printf(o, "    md_mpow(%s, %d, %s, %s, md_scr);\n", sq, e->ival, a0, v);
            md_buf_printf(&sb, "2 * %s", n2);
        }
        if (sb.len) em_add_scratch(E, md_buf_take(&sb));
        md_buf_free(&sb);
        free(n2);
        md_buf_free(&nn);
        break;
    }
    case MD_SUM:
    case MD_NORM1:
    case MD_NORM2: {
        const md_expr *a = e->args[0];
        char *an = em_size(E, a->rows, a->cols), *el = em_el(E, a);
        if (E->nd[a->id].scalar)   /* not produced by the simplifier, but harmless */
            md_buf_printf(o, "    %s = %s%s%s;\n", v, e->kind == MD_SUM ? "" : "fabs(", a0,
                          e->kind == MD_SUM ? "" : ")");
        else if (e->kind == MD_SUM)
            md_buf_printf(o, "    %s = 0.0;\n    for (long md_i = 0; md_i < %s; md_i++) %s += %s;\n", v, an, v, el);
        else if (e->kind == MD_NORM1)
            md_buf_printf(o, "    %s = 0.0;\n    for (long md_i = 0; md_i < %s; md_i++) %s += fabs(%s);\n", v, an, v,
                          el);
        else
            md_buf_printf(o, "    %s = 0.0;\n    for (long md_i = 0; md_i < %s; md_i++) %s += %s * %s;\n"
                             "    %s = sqrt(%s);\n", v, an, v, el, el, v, v);
        free(an);
        free(el);
        break;
    }
    case MD_TR: {
        if (E->nd[em_arg(E, e, 0)->id].mode == EM_TRACED) {
            em_trace_mul(E, v, em_arg(E, e, 0));
            break;
        }
        md_buf nn = {0};
        em_dim(E, e->args[0]->rows, &nn);
        md_buf_printf(o, "    %s = 0.0;\n", v);
        md_buf_printf(o, "    for (long md_i = 0; md_i < %s; md_i++) %s += %s[md_i * (%s + 1)];\n", nn.s, v, a0,
                      nn.s);
        md_buf_free(&nn);
        break;
    }
    case MD_DET:
    case MD_LOGDET: {
        if (!x->lu) {   /* of a 1x1 matrix: not produced by the simplifier */
            md_buf_printf(o, "    %s = %s%s%s;\n", v, e->kind == MD_LOGDET ? "log(" : "", a0,
                          e->kind == MD_LOGDET ? ")" : "");
            break;
        }
        const em_lu *lu = &E->lus[x->lu - 1];
        md_buf nn = {0};
        em_dim(E, e->args[0]->rows, &nn);
        E->use_det = 1;
        md_buf_printf(o, "    %s = md_lu_det(%s, %s, %s, %d);\n", v, nn.s, lu->val, lu->piv, e->kind == MD_LOGDET);
        md_buf_free(&nn);
        break;
    }
    case MD_DIAGM: {
        md_buf nn = {0};
        em_dim(E, e->rows, &nn);
        char *el = em_el(E, e->args[0]);
        md_buf_printf(o, "    memset(%s, 0, (size_t)(%s) * sizeof(double));\n", v, n);
        md_buf_printf(o, "    for (long md_i = 0; md_i < %s; md_i++) %s[md_i * (%s + 1)] = %s;\n", nn.s, v, nn.s, el);
        free(el);
        md_buf_free(&nn);
        break;
    }
    case MD_DIAGV: {
        md_buf nn = {0};
        em_dim(E, e->rows, &nn);
        md_buf_printf(o, "    for (long md_i = 0; md_i < %s; md_i++) %s[md_i] = %s[md_i * (%s + 1)];\n", nn.s, v,
                      a0, nn.s);
        md_buf_free(&nn);
        break;
    }
    case MD_NUM: case MD_SYM: case MD_DIFF: case MD_NKINDS:
        md_buf_printf(o, "    /* kind %d */\n", (int)e->kind);   /* leaves are not computed */
        break;
    }
    free(n);
    md_buf_free(&rhs);
}

/* The condition under which a statement with needs need runs: "" (always)
   or "d_U || d_V". */
static char *em_cond(const emitter *E, const uint64_t *need)
{
    md_buf b = {0};
    if (need[0] & 1) return md_xstrdup("");
    for (int i = 0; i < E->n; i++)
        if (need[(i + 1) / 64] >> ((i + 1) % 64) & 1)
            md_buf_printf(&b, "%s%s", b.len ? " || " : "", E->gname[i]);
    if (!b.s) return md_xstrdup("");
    return md_buf_take(&b);
}

/* Opens the condition of a statement with needs need (closing the open
   one, *open, if it differs); returns where the statement starts. */
static size_t em_open(emitter *E, char **open, const uint64_t *need)
{
    char *c = em_cond(E, need);
    if (strcmp(c, *open) != 0) {
        if ((*open)[0]) md_buf_puts(&E->body, "    }\n");
        if (c[0]) md_buf_printf(&E->body, "    if (%s) {\n", c);
        free(*open);
        *open = c;
    } else {
        free(c);
    }
    return E->body.len;
}

/* Inside a condition, indents the statement's lines by four more spaces. */
static void em_indent(emitter *E, const char *open, size_t start)
{
    if (!open[0]) return;
    char *chunk = md_xstrdup(E->body.s + start);
    E->body.len = start;
    E->body.s[start] = 0;
    for (char *s = chunk, *nl; *s; s = nl + 1) {
        nl = strchr(s, '\n');
        md_buf_printf(&E->body, "    %.*s\n", (int)(nl - s), s);
    }
    free(chunk);
}

/* ---- the helpers of the emitted file ---------------------------------- */

static const char em_helper_mm_blas[] =
    "/* C (m x n) = alpha op(A) op(B), op(A) m x k, op(B) k x n, column-major;\n"
    "   ta, tb: the operand is stored transposed.  Vectors use ddot and dgemv. */\n"
    "static void md_mm(int ta, int tb, long m, long n, long k, double alpha,\n"
    "                  const double *A, const double *B, double *C)\n"
    "{\n"
    "    long lda = ta ? k : m, ldb = tb ? n : k;\n"
    "    if (lda < 1) lda = 1;\n"
    "    if (ldb < 1) ldb = 1;\n"
    "    if (m == 1 && n == 1)\n"
    "        C[0] = alpha * cblas_ddot((int)k, A, 1, B, 1);\n"
    "    else if (n == 1)\n"
    "        cblas_dgemv(CblasColMajor, ta ? CblasTrans : CblasNoTrans, (int)(ta ? k : m), (int)(ta ? m : k),\n"
    "                    alpha, A, (int)lda, B, 1, 0.0, C, 1);\n"
    "    else if (m == 1)\n"
    "        cblas_dgemv(CblasColMajor, tb ? CblasNoTrans : CblasTrans, (int)(tb ? n : k), (int)(tb ? k : n),\n"
    "                    alpha, B, (int)ldb, A, 1, 0.0, C, 1);\n"
    "    else if (A == B && ta != tb) {   /* A A' or A' A: symmetric, half the work */\n"
    "        cblas_dsyrk(CblasColMajor, CblasLower, ta ? CblasTrans : CblasNoTrans, (int)m, (int)k, alpha, A,\n"
    "                    (int)lda, 0.0, C, (int)m);\n"
    "        for (long md_j = 0; md_j < m; md_j++)\n"
    "            for (long md_i = md_j + 1; md_i < m; md_i++) C[md_j + md_i * m] = C[md_i + md_j * m];\n"
    "    } else\n"
    "        cblas_dgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,\n"
    "                    (int)m, (int)n, (int)k, alpha, A, (int)lda, B, (int)ldb, 0.0, C, (int)m);\n"
    "}\n\n";

static const char em_helper_mm_loops[] =
    "/* C (m x n) = alpha op(A) op(B), op(A) m x k, op(B) k x n, column-major;\n"
    "   ta, tb: the operand is stored transposed. */\n"
    "static void md_mm(int ta, int tb, long m, long n, long k, double alpha,\n"
    "                  const double *A, const double *B, double *C)\n"
    "{\n"
    "    const long ai = ta ? k : 1, al = ta ? 1 : m;   /* op(A)(i,l) = A[i*ai + l*al] */\n"
    "    const long bl = tb ? n : 1, bj = tb ? 1 : k;   /* op(B)(l,j) = B[l*bl + j*bj] */\n"
    "    if (m == 1 || ta) {\n"
    "        for (long md_j = 0; md_j < n; md_j++)\n"
    "            for (long md_i = 0; md_i < m; md_i++) {\n"
    "                double s = 0.0;\n"
    "                for (long l = 0; l < k; l++) s += A[md_i * ai + l * al] * B[l * bl + md_j * bj];\n"
    "                C[md_i + md_j * m] = alpha * s;\n"
    "            }\n"
    "        return;\n"
    "    }\n"
    "    for (long md_j = 0; md_j < n; md_j++) {\n"
    "        double *c = C + md_j * m;\n"
    "        for (long md_i = 0; md_i < m; md_i++) c[md_i] = 0.0;\n"
    "        for (long l = 0; l < k; l++) {\n"
    "            const double b = B[l * bl + md_j * bj];\n"
    "            const double *a = A + l * m;\n"
    "            for (long md_i = 0; md_i < m; md_i++) c[md_i] += a[md_i] * b;\n"
    "        }\n"
    "        for (long md_i = 0; md_i < m; md_i++) c[md_i] *= alpha;\n"
    "    }\n"
    "}\n\n";

/* The run-time bracketing helpers; with solves, factor i with p[i] is the
   inverse of the matrix whose LU is a[i], p[i]; with chain (md_chain) and
   trace (md_chain_trace) the two entry points used. */
static void em_helper_chain(md_buf *out, int solves, int chain, int trace)
{
    md_buf_puts(out,
        "/* The matrix-chain dynamic programme on the actual sizes: factor i is\n"
        "   d[i] x d[i+1]");
    if (solves) md_buf_puts(out, " (the inverse of the matrix whose LU factors are a[i],\n"
                                 "   p[i] when p && p[i]; two inverses cannot meet)");
    md_buf_puts(out,
        "; cost[i][j] is the cheapest (i..j), split[i][j]\n"
        "   where it splits. */\n"
        "static void md_chain_dp(int L, const long *d, const double *const *p, double cost[][MD_CHAIN_MAX],\n"
        "                        int split[][MD_CHAIN_MAX])\n"
        "{\n");
    if (!solves) md_buf_puts(out, "    (void)p;\n");
    md_buf_puts(out,
        "    for (int i = 0; i < L; i++) cost[i][i] = 0.0;\n"
        "    for (int len = 2; len <= L; len++)\n"
        "        for (int i = 0; i + len - 1 < L; i++) {\n"
        "            int j = i + len - 1;\n"
        "            cost[i][j] = HUGE_VAL;\n"
        "            split[i][j] = i;\n"
        "            for (int k = i; k < j; k++) {\n"
        "                double c = cost[i][k] + cost[k + 1][j] + (double)d[i] * (double)d[k + 1] * (double)d[j + 1];\n");
    if (solves)
        md_buf_puts(out,
            "                if (p && k == i && k + 1 == j && p[i] && p[j]) c = HUGE_VAL;\n");
    md_buf_puts(out,
        "                if (c < cost[i][j]) {\n"
        "                    cost[i][j] = c;\n"
        "                    split[i][j] = k;\n"
        "                }\n"
        "            }\n"
        "        }\n"
        "}\n\n"
        "/* C = alpha a[i] ... a[j] bracketed by split (stored transposed when\n"
        "   t[k]); scr holds the intermediate products. */\n"
        "static void md_chain_run(const long *d, const double *const *a, const double *const *p, const int *t,\n"
        "                         int split[][MD_CHAIN_MAX], int i, int j, double alpha,\n"
        "                         double *C, double *scr)\n"
        "{\n"
        "    int k = split[i][j];\n"
        "    const double *l = a[i], *r = a[j];\n"
        "    int tl = t[i], tr = t[j];\n"
        "    if (k > i) {\n"
        "        double *q = scr;\n"
        "        scr += d[i] * d[k + 1];\n"
        "        md_chain_run(d, a, p, t, split, i, k, 1.0, q, scr);\n"
        "        l = q;\n"
        "        tl = 0;\n"
        "    }\n"
        "    if (j > k + 1) {\n"
        "        double *q = scr;\n"
        "        scr += d[k + 1] * d[j + 1];\n"
        "        md_chain_run(d, a, p, t, split, k + 1, j, 1.0, q, scr);\n"
        "        r = q;\n"
        "        tr = 0;\n"
        "    }\n");
    if (solves)
        md_buf_puts(out,
            "    if (k == i && p && p[i])\n"
            "        md_sm(0, tl, tr, d[i], d[j + 1], alpha, l, p[i], r, C);\n"
            "    else if (j == k + 1 && p && p[j])\n"
            "        md_sm(1, tr, tl, d[i], d[j + 1], alpha, r, p[j], l, C);\n"
            "    else\n"
            "        md_mm(tl, tr, d[i], d[j + 1], d[k + 1], alpha, l, r, C);\n");
    else
        md_buf_puts(out, "    md_mm(tl, tr, d[i], d[j + 1], d[k + 1], alpha, l, r, C);\n");
    md_buf_puts(out, "}\n\n");
    if (chain)
        md_buf_puts(out,
            "/* C = alpha a[0] a[1] ... a[L-1], 3 <= L <= MD_CHAIN_MAX; scr holds the\n"
            "   intermediate products (at most the sizes of all proper sub-chains). */\n"
            "static void md_chain(int L, const long *d, const double *const *a, const double *const *p,\n"
            "                     const int *t, double alpha, double *C, double *scr)\n"
            "{\n"
            "    double cost[MD_CHAIN_MAX][MD_CHAIN_MAX];\n"
            "    int split[MD_CHAIN_MAX][MD_CHAIN_MAX];\n"
            "    md_chain_dp(L, d, p, cost, split);\n"
            "    md_chain_run(d, a, p, t, split, 0, L - 1, alpha, C, scr);\n"
            "}\n\n");
    if (trace) {
        md_buf_puts(out,
            "/* tr(alpha a[0] ... a[L-1]) of a square chain, 3 <= L <= MD_CHAIN_MAX,\n"
            "   without forming it: the cheapest split into P = a[0..k] and Q =\n"
            "   a[k+1..L-1], then sum(P .* Q').  scr as for md_chain. */\n"
            "static double md_chain_trace(int L, const long *d, const double *const *a, const double *const *p,\n"
            "                             const int *t, double alpha, double *scr)\n"
            "{\n"
            "    double cost[MD_CHAIN_MAX][MD_CHAIN_MAX], best = HUGE_VAL;\n"
            "    int split[MD_CHAIN_MAX][MD_CHAIN_MAX], k = 0;\n"
            "    md_chain_dp(L, d, p, cost, split);\n"
            "    for (int s = 0; s < L - 1; s++) {\n"
            "        double c = cost[0][s] + cost[s + 1][L - 1] + (double)d[0] * (double)d[s + 1];\n");
        if (solves)
            md_buf_puts(out,
                "        if (p && ((s == 0 && p[0]) || (s == L - 2 && p[L - 1]))) continue;   /* an inverse */\n");
        md_buf_puts(out,
            "        if (c < best) {\n"
            "            best = c;\n"
            "            k = s;\n"
            "        }\n"
            "    }\n"
            "    const double *P = a[0], *Q = a[L - 1];\n"
            "    int tp = t[0], tq = t[L - 1];\n"
            "    double *q = scr + (k > 0 ? d[0] * d[k + 1] : 0);\n"
            "    if (k > 0) {\n"
            "        md_chain_run(d, a, p, t, split, 0, k, 1.0, scr, q);\n"
            "        P = scr;\n"
            "        tp = 0;\n"
            "    }\n"
            "    if (k < L - 2) {\n"
            "        md_chain_run(d, a, p, t, split, k + 1, L - 1, 1.0, q, q + d[k + 1] * d[0]);\n"
            "        Q = q;\n"
            "        tq = 0;\n"
            "    }\n"
            "    return alpha * md_trdot(tp, tq, d[0], d[k + 1], P, Q);\n"
            "}\n\n");
    }
}

static const char em_helper_trdot_blas[] =
    "/* tr(op(A) op(B)) = sum(op(A) .* op(B)'), op(A) r x c, op(B) c x r: a dot\n"
    "   product, without forming the r x r product. */\n"
    "static double md_trdot(int ta, int tb, long r, long c, const double *A, const double *B)\n"
    "{\n"
    "    if (ta != tb) return cblas_ddot((int)(r * c), A, 1, B, 1);   /* same layout */\n"
    "    double s = 0.0;\n"
    "    if (ta) {   /* A c x r, B r x c */\n"
    "        const double *T = A;\n"
    "        A = B;\n"
    "        B = T;\n"
    "    }\n"
    "    for (long md_j = 0; md_j < c; md_j++) s += cblas_ddot((int)r, A + md_j * r, 1, B + md_j, (int)c);\n"
    "    return s;\n"
    "}\n\n";

static const char em_helper_trdot_loops[] =
    "/* tr(op(A) op(B)) = sum(op(A) .* op(B)'), op(A) r x c, op(B) c x r,\n"
    "   without forming the r x r product. */\n"
    "static double md_trdot(int ta, int tb, long r, long c, const double *A, const double *B)\n"
    "{\n"
    "    double s = 0.0;\n"
    "    if (ta != tb) {   /* same layout */\n"
    "        for (long md_i = 0; md_i < r * c; md_i++) s += A[md_i] * B[md_i];\n"
    "        return s;\n"
    "    }\n"
    "    if (ta) {   /* A c x r, B r x c */\n"
    "        const double *T = A;\n"
    "        A = B;\n"
    "        B = T;\n"
    "    }\n"
    "    for (long md_j = 0; md_j < c; md_j++)\n"
    "        for (long md_i = 0; md_i < r; md_i++) s += A[md_i + md_j * r] * B[md_j + md_i * c];\n"
    "    return s;\n"
    "}\n\n";

static const char em_helper_tcopy[] =
    "/* B (r x c) = alpha A' for A c x r, column-major. */\n"
    "static void md_tcopy(long r, long c, double alpha, const double *A, double *B)\n"
    "{\n"
    "    for (long md_j = 0; md_j < c; md_j++)\n"
    "        for (long md_i = 0; md_i < r; md_i++) B[md_i + md_j * r] = alpha * A[md_j + md_i * c];\n"
    "}\n\n";

/*
 * LU factorisations.  Both backends have the same interface: md_lu
 * factors, md_lu_det reads the determinant off the factors, md_lu_solve
 * and md_lu_rsolve apply inv(A) or inv(A') from the left or the right,
 * md_lu_inv forms an inverse explicitly.  The pivots live in the workspace
 * (MD_PIVOTS(n) doubles); md_pivot reads the row swapped with row k.
 */
static const char em_helper_lapack[] =
    "/* LAPACK through its Fortran interface, which OpenBLAS provides (LAPACKE\n"
    "   would allocate).  MD_LAPACK_INT is LAPACK's integer: define it as a\n"
    "   64-bit type (long on LP64 systems) for an ILP64 LAPACK. */\n"
    "#ifndef MD_LAPACK_INT\n"
    "#define MD_LAPACK_INT int\n"
    "#endif\n"
    "void dgetrf_(const MD_LAPACK_INT *m, const MD_LAPACK_INT *n, double *a, const MD_LAPACK_INT *lda,\n"
    "             MD_LAPACK_INT *ipiv, MD_LAPACK_INT *info);\n"
    "void dgetrs_(const char *trans, const MD_LAPACK_INT *n, const MD_LAPACK_INT *nrhs, const double *a,\n"
    "             const MD_LAPACK_INT *lda, const MD_LAPACK_INT *ipiv, double *b, const MD_LAPACK_INT *ldb,\n"
    "             MD_LAPACK_INT *info, size_t trans_len);\n"
    "void dgetri_(const MD_LAPACK_INT *n, double *a, const MD_LAPACK_INT *lda, const MD_LAPACK_INT *ipiv,\n"
    "             double *work, const MD_LAPACK_INT *lwork, MD_LAPACK_INT *info);\n\n"
    "/* The pivots of an n x n LU: MD_PIVOTS(n) doubles of the workspace hold n\n"
    "   LAPACK integers (read with memcpy, so work may be any double array). */\n"
    "#define MD_PIVOTS(n) (((size_t)(n) * sizeof(MD_LAPACK_INT) + sizeof(double) - 1) / sizeof(double))\n\n"
    "/* LU (n x n) = the LU factors of A with partial pivoting: dgetrf on a copy.\n"
    "   A singular A leaves a zero on U's diagonal. */\n"
    "static void md_lu(long n, const double *A, double *LU, double *piv)\n"
    "{\n"
    "    const MD_LAPACK_INT nn = (MD_LAPACK_INT)n;\n"
    "    MD_LAPACK_INT info = 0;\n"
    "    memcpy(LU, A, (size_t)(n * n) * sizeof(double));\n"
    "    dgetrf_(&nn, &nn, LU, &nn, (MD_LAPACK_INT *)(void *)piv, &info);\n"
    "}\n\n";

static const char em_helper_pivot_lapack[] =
    "/* The row (0-based) that the LU's pivoting swapped with row k. */\n"
    "static long md_pivot(const double *piv, long k)\n"
    "{\n"
    "    MD_LAPACK_INT p;\n"
    "    memcpy(&p, (const char *)piv + (size_t)k * sizeof p, sizeof p);\n"
    "    return (long)p - 1;\n"
    "}\n\n";

static const char em_helper_lu_loops[] =
    "/* The pivots of an n x n LU: n doubles of the workspace, row indices. */\n"
    "#define MD_PIVOTS(n) ((size_t)(n))\n\n"
    "/* LU (n x n) = the LU factors of A with partial pivoting, on a copy: P A =\n"
    "   L U, L unit lower below the diagonal, U on and above it; piv[k] is the\n"
    "   row swapped with row k at step k.  A column with no nonzero candidate\n"
    "   is skipped (U gets a zero pivot). */\n"
    "static void md_lu(long n, const double *A, double *LU, double *piv)\n"
    "{\n"
    "    memcpy(LU, A, (size_t)(n * n) * sizeof(double));\n"
    "    for (long k = 0; k < n; k++) {\n"
    "        long p = k;\n"
    "        for (long i = k + 1; i < n; i++)\n"
    "            if (fabs(LU[i + k * n]) > fabs(LU[p + k * n])) p = i;\n"
    "        piv[k] = (double)p;\n"
    "        if (p != k)\n"
    "            for (long j = 0; j < n; j++) {\n"
    "                const double s = LU[k + j * n];\n"
    "                LU[k + j * n] = LU[p + j * n];\n"
    "                LU[p + j * n] = s;\n"
    "            }\n"
    "        const double d = LU[k + k * n];\n"
    "        if (d == 0.0) continue;\n"
    "        for (long i = k + 1; i < n; i++) LU[i + k * n] /= d;\n"
    "        for (long j = k + 1; j < n; j++) {\n"
    "            const double u = LU[k + j * n];\n"
    "            if (u == 0.0) continue;\n"
    "            for (long i = k + 1; i < n; i++) LU[i + j * n] -= LU[i + k * n] * u;\n"
    "        }\n"
    "    }\n"
    "}\n\n";

static const char em_helper_pivot_loops[] =
    "/* The row that the LU's pivoting swapped with row k. */\n"
    "static long md_pivot(const double *piv, long k)\n"
    "{\n"
    "    return (long)piv[k];\n"
    "}\n\n";

static const char em_helper_lu_det[] =
    "/* det(A), or log det(A) when logdet, from A's LU (n x n).  log det of a\n"
    "   matrix whose determinant is not positive is NaN. */\n"
    "static double md_lu_det(long n, const double *LU, const double *piv, int logdet)\n"
    "{\n"
    "    double det = 1.0, logabs = 0.0;\n"
    "    int neg = 0;\n"
    "    for (long k = 0; k < n; k++) {\n"
    "        const double d = LU[k + k * n];\n"
    "        neg ^= md_pivot(piv, k) != k;\n"
    "        if (!logdet) {\n"
    "            det *= d;\n"
    "        } else if (d == 0.0) {\n"
    "            return NAN;\n"
    "        } else {\n"
    "            neg ^= d < 0.0;\n"
    "            logabs += log(fabs(d));\n"
    "        }\n"
    "    }\n"
    "    if (!logdet) return neg ? -det : det;\n"
    "    return neg ? NAN : logabs;\n"
    "}\n\n";

static const char em_helper_solve_lapack[] =
    "/* B (n x m) = inv(op(A)) B, op(A) = A' when t, from A's LU: dgetrs. */\n"
    "static void md_lu_solve(int t, long n, long m, const double *LU, const double *piv, double *B)\n"
    "{\n"
    "    const MD_LAPACK_INT nn = (MD_LAPACK_INT)n, mm = (MD_LAPACK_INT)m;\n"
    "    MD_LAPACK_INT info = 0;\n"
    "    dgetrs_(t ? \"T\" : \"N\", &nn, &mm, LU, &nn, (const MD_LAPACK_INT *)(const void *)piv, B, &nn, &info, 1);\n"
    "}\n\n";

static const char em_helper_rsolve_lapack[] =
    "/* B (m x n) = B inv(op(A)), op(A) = A' when t, from A's LU = P L U: the\n"
    "   triangular solves from the right (dtrsm) and the pivots' column swaps\n"
    "   (inv(A) = inv(U) inv(L) P', inv(A') = P inv(L') inv(U')). */\n"
    "static void md_lu_rsolve(int t, long m, long n, const double *LU, const double *piv, double *B)\n"
    "{\n"
    "    if (m == 1) {   /* a row: the transposed solve of its column */\n"
    "        md_lu_solve(!t, n, 1, LU, piv, B);\n"
    "        return;\n"
    "    }\n"
    "    if (t) {\n"
    "        for (long k = 0; k < n; k++) {\n"
    "            const long p = md_pivot(piv, k);\n"
    "            if (p != k) cblas_dswap((int)m, B + k * m, 1, B + p * m, 1);\n"
    "        }\n"
    "        cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasUnit, (int)m, (int)n, 1.0, LU,\n"
    "                    (int)n, B, (int)m);\n"
    "        cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, (int)m, (int)n, 1.0, LU,\n"
    "                    (int)n, B, (int)m);\n"
    "        return;\n"
    "    }\n"
    "    cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, (int)m, (int)n, 1.0, LU,\n"
    "                (int)n, B, (int)m);\n"
    "    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasUnit, (int)m, (int)n, 1.0, LU,\n"
    "                (int)n, B, (int)m);\n"
    "    for (long k = n - 1; k >= 0; k--) {\n"
    "        const long p = md_pivot(piv, k);\n"
    "        if (p != k) cblas_dswap((int)m, B + k * m, 1, B + p * m, 1);\n"
    "    }\n"
    "}\n\n";

static const char em_helper_solve_loops[] =
    "/* B (n x m) = inv(op(A)) B, op(A) = A' when t, from A's LU = P L U:\n"
    "   the row swaps and the two triangular solves, column by column. */\n"
    "static void md_lu_solve(int t, long n, long m, const double *LU, const double *piv, double *B)\n"
    "{\n"
    "    for (long c = 0; c < m; c++) {\n"
    "        double *b = B + c * n;\n"
    "        if (!t) {   /* L U x = P' b */\n"
    "            for (long k = 0; k < n; k++) {\n"
    "                const long p = md_pivot(piv, k);\n"
    "                const double s = b[k];\n"
    "                b[k] = b[p];\n"
    "                b[p] = s;\n"
    "            }\n"
    "            for (long k = 0; k < n; k++)\n"
    "                for (long i = k + 1; i < n; i++) b[i] -= LU[i + k * n] * b[k];\n"
    "            for (long k = n - 1; k >= 0; k--) {\n"
    "                b[k] /= LU[k + k * n];\n"
    "                for (long i = 0; i < k; i++) b[i] -= LU[i + k * n] * b[k];\n"
    "            }\n"
    "        } else {    /* U' L' P' x = b */\n"
    "            for (long k = 0; k < n; k++) {\n"
    "                double s = b[k];\n"
    "                for (long i = 0; i < k; i++) s -= LU[i + k * n] * b[i];\n"
    "                b[k] = s / LU[k + k * n];\n"
    "            }\n"
    "            for (long k = n - 1; k >= 0; k--) {\n"
    "                double s = b[k];\n"
    "                for (long i = k + 1; i < n; i++) s -= LU[i + k * n] * b[i];\n"
    "                b[k] = s;\n"
    "            }\n"
    "            for (long k = n - 1; k >= 0; k--) {\n"
    "                const long p = md_pivot(piv, k);\n"
    "                const double s = b[k];\n"
    "                b[k] = b[p];\n"
    "                b[p] = s;\n"
    "            }\n"
    "        }\n"
    "    }\n"
    "}\n\n";

static const char em_helper_rsolve_loops[] =
    "/* B (m x n) = B inv(op(A)), op(A) = A' when t, from A's LU = P L U, on\n"
    "   columns: inv(A) = inv(U) inv(L) P', inv(A') = P inv(L') inv(U'). */\n"
    "static void md_lu_rsolve(int t, long m, long n, const double *LU, const double *piv, double *B)\n"
    "{\n"
    "    if (!t) {\n"
    "        for (long j = 0; j < n; j++) {              /* B inv(U) */\n"
    "            double *bj = B + j * m;\n"
    "            for (long k = 0; k < j; k++) {\n"
    "                const double u = LU[k + j * n];\n"
    "                for (long i = 0; i < m; i++) bj[i] -= B[i + k * m] * u;\n"
    "            }\n"
    "            const double d = LU[j + j * n];\n"
    "            for (long i = 0; i < m; i++) bj[i] /= d;\n"
    "        }\n"
    "        for (long j = n - 1; j >= 0; j--)           /* inv(L) */\n"
    "            for (long k = j + 1; k < n; k++) {\n"
    "                const double l = LU[k + j * n];\n"
    "                for (long i = 0; i < m; i++) B[i + j * m] -= B[i + k * m] * l;\n"
    "            }\n"
    "    }\n"
    "    for (long q = 0; q < n; q++) {                  /* the column swaps */\n"
    "        const long k = t ? q : n - 1 - q, p = md_pivot(piv, k);\n"
    "        if (p == k) continue;\n"
    "        for (long i = 0; i < m; i++) {\n"
    "            const double s = B[i + k * m];\n"
    "            B[i + k * m] = B[i + p * m];\n"
    "            B[i + p * m] = s;\n"
    "        }\n"
    "    }\n"
    "    if (t) {\n"
    "        for (long j = 0; j < n; j++)                /* inv(L') */\n"
    "            for (long k = 0; k < j; k++) {\n"
    "                const double l = LU[j + k * n];\n"
    "                for (long i = 0; i < m; i++) B[i + j * m] -= B[i + k * m] * l;\n"
    "            }\n"
    "        for (long j = n - 1; j >= 0; j--) {         /* inv(U') */\n"
    "            double *bj = B + j * m;\n"
    "            for (long k = j + 1; k < n; k++) {\n"
    "                const double u = LU[j + k * n];\n"
    "                for (long i = 0; i < m; i++) bj[i] -= B[i + k * m] * u;\n"
    "            }\n"
    "            const double d = LU[j + j * n];\n"
    "            for (long i = 0; i < m; i++) bj[i] /= d;\n"
    "        }\n"
    "    }\n"
    "}\n\n";

static const char em_helper_sm[] =
    "/* C (m x n) = alpha inv(op(A)) op(B) (side 0, A m x m) or alpha op(B)\n"
    "   inv(op(A)) (side 1, A n x n), from A's LU; op(A) = A' when ta, op(B) =\n"
    "   B' (stored n x m) when tb.  A solve: the inverse is never formed. */\n"
    "static void md_sm(int side, int ta, int tb, long m, long n, double alpha, const double *LU,\n"
    "                  const double *piv, const double *B, double *C)\n"
    "{\n"
    "    if (tb) md_tcopy(m, n, alpha, B, C);\n"
    "    else\n"
    "        for (long md_i = 0; md_i < m * n; md_i++) C[md_i] = alpha * B[md_i];\n"
    "    if (side) md_lu_rsolve(ta, m, n, LU, piv, C);\n"
    "    else md_lu_solve(ta, m, n, LU, piv, C);\n"
    "}\n\n";

static const char em_helper_inv_lapack[] =
    "/* C = inv(op(A)), op(A) = A' when t, from A's LU: dgetri on a copy (scr:\n"
    "   64n doubles, for its blocked code), transposed in place when t.  A\n"
    "   singular A gives NaN. */\n"
    "static void md_lu_inv(int t, long n, const double *LU, const double *piv, double *C, double *scr)\n"
    "{\n"
    "    const MD_LAPACK_INT nn = (MD_LAPACK_INT)n, lwork = (MD_LAPACK_INT)(64 * n);\n"
    "    MD_LAPACK_INT info = 0;\n"
    "    memcpy(C, LU, (size_t)(n * n) * sizeof(double));\n"
    "    dgetri_(&nn, C, &nn, (const MD_LAPACK_INT *)(const void *)piv, scr, &lwork, &info);\n"
    "    if (info != 0) {\n"
    "        for (long i = 0; i < n * n; i++) C[i] = NAN;\n"
    "        return;\n"
    "    }\n"
    "    if (t)\n"
    "        for (long j = 0; j < n; j++)\n"
    "            for (long i = j + 1; i < n; i++) {\n"
    "                const double s = C[i + j * n];\n"
    "                C[i + j * n] = C[j + i * n];\n"
    "                C[j + i * n] = s;\n"
    "            }\n"
    "}\n\n";

static const char em_helper_inv_loops[] =
    "/* C = inv(op(A)), op(A) = A' when t, from A's LU: the solves of the\n"
    "   identity's columns.  A singular A gives infinities or NaN. */\n"
    "static void md_lu_inv(int t, long n, const double *LU, const double *piv, double *C, double *scr)\n"
    "{\n"
    "    (void)scr;\n"
    "    memset(C, 0, (size_t)(n * n) * sizeof(double));\n"
    "    for (long i = 0; i < n; i++) C[i + i * n] = 1.0;\n"
    "    md_lu_solve(t, n, n, LU, piv, C);\n"
    "}\n\n";

static const char em_helper_mpow[] =
    "/* C = A^k for the n x n A and k >= 1, by binary powering; scr holds\n"
    "   2*n*n doubles. */\n"
    "static void md_mpow(long n, long k, const double *A, double *C, double *scr)\n"
    "{\n"
    "    double *base = scr, *tmp = scr + n * n;\n"
    "    const size_t bytes = (size_t)(n * n) * sizeof(double);\n"
    "    int have = 0;\n"
    "    memcpy(base, A, bytes);\n"
    "    while (k > 0) {\n"
    "        if (k & 1) {\n"
    "            if (!have) {\n"
    "                memcpy(C, base, bytes);\n"
    "                have = 1;\n"
    "            } else {\n"
    "                md_mm(0, 0, n, n, n, 1.0, C, base, tmp);\n"
    "                memcpy(C, tmp, bytes);\n"
    "            }\n"
    "        }\n"
    "        k >>= 1;\n"
    "        if (k > 0) {\n"
    "            md_mm(0, 0, n, n, n, 1.0, base, base, tmp);\n"
    "            memcpy(base, tmp, bytes);\n"
    "        }\n"
    "    }\n"
    "}\n\n";

/* ---- the interface text ----------------------------------------------- */

static void em_comment_program(md_ctx *ctx, md_buf *out, int n, md_expr **roots, const char *const *names)
{
    md_buf p = {0};
    md_print_program(ctx, &p, n, roots, names, NULL);
    int lines = 0;
    for (char *s = p.s, *nl; s && *s && lines < 40; s = nl + 1, lines++) {
        nl = strchr(s, '\n');
        if (!nl) nl = s + strlen(s);
        md_buf_puts(out, " *     ");
        for (char *c = s; c < nl; c++) {
            md_buf_putc(out, *c);
            if (*c == '*' && c + 1 < nl && c[1] == '/') md_buf_putc(out, ' ');   /* never end the comment */
        }
        md_buf_putc(out, '\n');
        if (!*nl) break;
    }
    if (lines >= 40) md_buf_puts(out, " *     ...\n");
    md_buf_free(&p);
}

static const char *em_kind_text(const md_symbol *s)
{
    switch (s->kind) {
    case MD_SYM_SCALAR: return "scalar";
    case MD_SYM_VECTOR: return "vector";
    case MD_SYM_SYMMETRIC: return "symmetric matrix";
    case MD_SYM_MATRIX: return "matrix";
    }
    return "matrix";
}

static void em_shape_text(const emitter *E, int r, int c, md_buf *b)
{
    if (r == MD_DIM_ONE && c == MD_DIM_ONE) md_buf_puts(b, "1");
    else if (c == MD_DIM_ONE) md_buf_puts(b, E->dimfield[r]);
    else if (r == MD_DIM_ONE) md_buf_printf(b, "1 x %s", E->dimfield[c]);
    else md_buf_printf(b, "%s x %s", E->dimfield[r], E->dimfield[c]);
}

/* "double NAME(const NAME_dims *dims, ..., double *work)", wrapped. */
static void em_proto(const emitter *E, md_buf *out)
{
    md_ctx *ctx = E->ctx;
    md_buf b = {0};
    md_buf_printf(&b, "double %s(", E->name);
    size_t indent = b.len;
    md_buf_printf(&b, "const %s_dims *dims", E->name);
    md_buf line = {0};
    md_buf_puts(out, b.s);
    size_t col = b.len;
    md_buf_free(&b);
    for (int k = 0; k < ctx->nsyms + E->n + 1; k++) {
        if (k < ctx->nsyms) {
            const md_symbol *s = &ctx->syms[k];
            int sc = s->rows == MD_DIM_ONE && s->cols == MD_DIM_ONE;
            md_buf_printf(&line, "%s%s", sc ? "double " : "const double *", E->pname[k]);
        } else if (k < ctx->nsyms + E->n) {
            md_buf_printf(&line, "double *%s", E->gname[k - ctx->nsyms]);
        } else {
            md_buf_puts(&line, "double *work");
        }
        if (col + line.len + 2 > 96) {
            md_buf_printf(out, ",\n%*s", (int)indent, "");
            col = indent;
        } else {
            md_buf_puts(out, ", ");
            col += 2;
        }
        md_buf_puts(out, line.s);
        col += line.len;
        md_buf_free(&line);
    }
    md_buf_putc(out, ')');
}

/* The declarations (the header, and the top of the .c), with guard. */
static void em_decls(const emitter *E, md_buf *out)
{
    md_ctx *ctx = E->ctx;
    md_buf_printf(out, "#ifndef %s_MATDIFF_H\n#define %s_MATDIFF_H\n\n#include <stddef.h>\n\n", E->name, E->name);
    md_buf_printf(out, "typedef struct %s_dims {\n", E->name);
    if (ctx->ndims <= 1) md_buf_puts(out, "    long unused;   /* every input is a scalar */\n");
    for (int d = 1; d < ctx->ndims; d++) {
        md_buf_printf(out, "    long %s;", E->dimfield[d]);
        if (E->dimnote[d][0]) md_buf_printf(out, "   /* %s */", E->dimnote[d]);
        md_buf_putc(out, '\n');
    }
    md_buf_printf(out, "} %s_dims;\n\n", E->name);
    md_buf_printf(out, "/* Doubles of scratch space %s needs at work. */\n", E->name);
    md_buf_printf(out, "size_t %s_workspace(const %s_dims *dims);\n\n", E->name, E->name);
    md_buf_puts(out, "/* Returns f; writes each non-NULL gradient. */\n");
    em_proto(E, out);
    md_buf_puts(out, ";\n");
    if (E->ngens) {
        md_buf_puts(out, "\n/* Generic functions: callbacks the caller defines. */\n");
        for (int i = 0; i < E->ngens; i++) {
            md_buf_printf(out, "double %s(double x);", E->gens[i].name);
            if (E->gens[i].order) md_buf_printf(out, "   /* derivative %d of %s */", E->gens[i].order,
                                                ctx->funcs[E->gens[i].func]);
            else md_buf_printf(out, "   /* %s */", ctx->funcs[E->gens[i].func]);
            md_buf_putc(out, '\n');
        }
    }
    md_buf_printf(out, "\n#endif\n");
}

/* The comment at the top of each emitted file. */
static void em_top_comment(const emitter *E, md_expr *f, md_expr **grads, int header, md_buf *out)
{
    md_ctx *ctx = E->ctx;
    const char *nm = E->name;
    md_buf_printf(out, "/*\n * %s -- generated by matdiff (--format c%s).  Do not edit.\n *\n", nm,
                  header ? " --header" : "");
    if (f) {
        md_buf_puts(out, " * f =\n");
        em_comment_program(ctx, out, 1, &f, NULL);
        md_buf_puts(out, " * and its gradients:\n");
        const char **names = md_xcalloc((size_t)E->n + 1, sizeof *names);
        for (int i = 0; i < E->n; i++) names[i] = E->gname[i];
        em_comment_program(ctx, out, E->n, grads, names);
        free(names);
        md_buf_puts(out, " *\n");
    }
    md_buf_printf(out,
                  " * Interface:\n"
                  " *     size_t %s_workspace(const %s_dims *dims);\n"
                  " *     double %s(const %s_dims *dims, <inputs>, <gradients>, double *work);\n"
                  " *\n", nm, nm, nm, nm);
    md_buf_printf(out, " * dims: the size of every dimension (each at least 1):\n");
    if (ctx->ndims <= 1) md_buf_puts(out, " *     none: every input is a scalar\n");
    for (int d = 1; d < ctx->ndims; d++)
        md_buf_printf(out, " *     %-10s %s\n", E->dimfield[d], E->dimnote[d][0] ? E->dimnote[d] : "");
    md_buf_printf(out, " * inputs, in order (matrices %s-major, double for scalars):\n",
                  E->row ? "row" : "column");
    for (int s = 0; s < ctx->nsyms; s++) {
        md_buf b = {0};
        em_shape_text(E, ctx->syms[s].rows, ctx->syms[s].cols, &b);
        md_buf_printf(out, " *     %-10s %s %s%s\n", E->pname[s], em_kind_text(&ctx->syms[s]), b.s,
                      ctx->syms[s].kind == MD_SYM_SYMMETRIC ? " (pass a symmetric matrix)" : "");
        md_buf_free(&b);
    }
    md_buf_puts(out, " * gradients, written where the pointer is not NULL (NULL skips the work\n"
                     " * only that gradient needs), each of its variable's shape and layout:\n");
    for (int i = 0; i < E->n; i++) {
        int s = E->wrt[i];
        md_buf_printf(out, " *     %-10s df/d%s%s\n", E->gname[i], ctx->syms[s].name,
                      ctx->syms[s].kind == MD_SYM_SYMMETRIC ? " on the symmetric matrices, (G + G')/2" : "");
    }
    md_buf_printf(out,
                  " * work: at least %s_workspace(dims) doubles of scratch.  No allocation, no\n"
                  " * global state: reentrant and thread-safe with separate work arrays.\n"
                  " * Returns f.  Outside f's domain (log of a negative number, a singular\n"
                  " * matrix) the results are NaN or infinite.\n", nm);
    if (!header) {
        if (E->o->blas && E->nlus)
            md_buf_puts(out, " * Products call CBLAS, and det, logdet and inverses LAPACK (dgetrf, dgetrs,\n"
                             " * dgetri): link with -lopenblas (or a CBLAS and a LAPACK).\n");
        else if (E->o->blas)
            md_buf_puts(out, " * Products call CBLAS: link with -lopenblas (or any CBLAS).\n");
        else
            md_buf_puts(out, " * Plain C99 loops: link with -lm only.\n");
        if (E->nlus)
            md_buf_puts(out, " * Inverses used only in products are applied as solves with LU factors.\n");
        md_buf_puts(out, " * Product chains are bracketed by cost ");
        int hints = 0;
        for (int d = 1; d < ctx->ndims && E->o->size_hint; d++) hints |= E->o->size_hint[d] > 0;
        md_buf_puts(out, hints ? "(at emit time where every size has a hint,\n * at run time from dims otherwise).\n"
                               : "at run time, from dims.\n");
    }
    if (E->ngens) {
        md_buf_puts(out, " * Generic functions are callbacks you define (double -> double):\n");
        for (int i = 0; i < E->ngens; i++) {
            if (E->gens[i].order)
                md_buf_printf(out, " *     %-10s derivative %d of %s\n", E->gens[i].name, E->gens[i].order,
                              ctx->funcs[E->gens[i].func]);
            else md_buf_printf(out, " *     %-10s %s\n", E->gens[i].name, ctx->funcs[E->gens[i].func]);
        }
    }
    md_buf_puts(out, " */\n");
}

/* ---- driver ----------------------------------------------------------- */

static void em_free(emitter *E)
{
    if (E->nd) {
        for (int k = 0; k < E->ntopo; k++) {
            em_node *x = &E->nd[E->topo[k]->id];
            free(x->val);
            free(x->need);
        }
    }
    free(E->nd);
    free(E->topo);
    for (int i = 0; i < E->nlus; i++) {
        free(E->lus[i].need);
        free(E->lus[i].val);
        free(E->lus[i].piv);
    }
    free(E->lus);
    for (int i = 0; i < E->nreserved; i++) free(E->reserved[i]);
    free(E->reserved);
    /* dimfield, pname and gname point into reserved (dims were released
       from it, so free those) */
    if (E->dimfield)
        for (int d = 1; d < E->ctx->ndims; d++) free(E->dimfield[d]);
    if (E->dimnote)
        for (int d = 1; d < E->ctx->ndims; d++) free(E->dimnote[d]);
    free(E->dimfield);
    free(E->dimnote);
    free(E->pname);
    free(E->gname);
    for (int i = 0; i < E->ngens; i++) free(E->gens[i].name);
    free(E->gens);
    for (int i = 0; i < E->nscr; i++) free(E->scr[i]);
    free(E->scr);
    md_buf_free(&E->decl);
    md_buf_free(&E->body);
    md_buf_free(&E->ws);
}

static void em_init(emitter *E, md_ctx *ctx, int n, const int *wrt, const md_emit_opts *o, FILE *err)
{
    static const md_emit_opts defaults = {NULL, 0, 1, NULL};
    memset(E, 0, sizeof *E);
    E->ctx = ctx;
    E->o = o ? o : &defaults;
    E->err = err ? err : stderr;
    E->name = E->o->name ? E->o->name : "f";
    E->n = n;
    E->wrt = wrt;
    E->row = E->o->row_major;
}

char **md_emit_dim_fields(md_ctx *ctx, int n, const int *wrt, const md_emit_opts *o)
{
    emitter E;
    em_init(&E, ctx, n, wrt, o, NULL);
    for (uint32_t i = 0; i < ctx->nnodes; i++) {
        const md_expr *e = ctx->nodes[i];
        if (e->kind == MD_FUNC && e->ival == MD_FN_GENERIC) em_add_gen(&E, e->aux, e->order);
    }
    char **fields = NULL;
    FILE *devnull = fopen("/dev/null", "w");
    E.err = devnull ? devnull : stderr;
    if (em_names(&E) == 0) {
        fields = md_xcalloc((size_t)ctx->ndims + 1, sizeof *fields);
        for (int d = 1; d < ctx->ndims; d++) fields[d] = md_xstrdup(E.dimfield[d]);
    }
    if (devnull) fclose(devnull);
    em_free(&E);
    return fields;
}

int md_emit_header(md_ctx *ctx, int n, const int *wrt, const md_emit_opts *o, md_buf *out, FILE *err)
{
    emitter E;
    em_init(&E, ctx, n, wrt, o, err);
    for (uint32_t i = 0; i < ctx->nnodes; i++) {
        const md_expr *e = ctx->nodes[i];
        if (e->kind == MD_FUNC && e->ival == MD_FN_GENERIC) em_add_gen(&E, e->aux, e->order);
    }
    int rc = em_names(&E);
    if (rc == 0) {
        em_top_comment(&E, NULL, NULL, 1, out);
        md_buf_putc(out, '\n');
        em_decls(&E, out);
    }
    em_free(&E);
    return rc;
}

int md_emit_c(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_expr **grads, const md_emit_opts *o,
              md_buf *out, FILE *err)
{
    emitter E;
    em_init(&E, ctx, n, wrt, o, err);
    int rc = -1;
    md_expr **roots = NULL;
    if (!md_is_scalar(f)) {
        fprintf(E.err, "matdiff: the function must be scalar-valued to emit C code\n");
        goto done;
    }
    /* with every size known: products bracketed by cost, shared
       sub-products, Gram matrices for norms of products (costopt.c) */
    roots = md_xmalloc((size_t)(n + 1) * sizeof *roots);
    roots[0] = f;
    for (int i = 0; i < n; i++) roots[i + 1] = grads[i];
    md_cost_rewrite(ctx, o ? o->size_hint : NULL, n + 1, roots);
    f = roots[0];
    grads = roots + 1;
    if (em_scan(&E, f, grads) < 0) goto done;
    if (em_names(&E) < 0) goto done;
    em_values(&E);

    /* the body, node by node (each LU just before its first user),
       grouped by condition */
    char *open = md_xstrdup("");
    for (int k = 0; k < E.ntopo; k++) {
        md_expr *e = E.topo[k];
        em_node *x = &E.nd[e->id];
        for (int l = 0; l < E.nlus; l++) {
            const em_lu *lu = &E.lus[l];
            if (lu->first != k) continue;
            size_t start = em_open(&E, &open, lu->need);
            md_buf_puts(&E.body, "    md_lu(");
            em_dim(&E, lu->base->rows, &E.body);
            md_buf_printf(&E.body, ", %s, %s, %s);\n", E.nd[lu->base->id].val, lu->val, lu->piv);
            em_indent(&E, open, start);
        }
        if (x->mode != EM_COMPUTED) continue;
        size_t start = em_open(&E, &open, x->need);
        em_node_code(&E, e);
        em_indent(&E, open, start);
    }
    if (open[0]) md_buf_puts(&E.body, "    }\n");
    free(open);

    /* gradients that were not computed in place */
    for (int i = 0; i < E.n; i++) {
        const md_expr *g = grads[i];
        const em_node *x = &E.nd[g->id];
        if (x->dest == i) continue;
        if (x->scalar) {
            md_buf_printf(&E.body, "    if (%s) *%s = %s;\n", E.gname[i], E.gname[i], x->val);
        } else {
            char *sz = em_size(&E, g->rows, g->cols);
            md_buf_printf(&E.body, "    if (%s) memcpy(%s, %s, (size_t)(%s) * sizeof(double));\n", E.gname[i],
                          E.gname[i], x->val, sz);
            free(sz);
        }
    }
    md_buf_printf(&E.body, "    return %s;\n", E.nd[f->id].val);

    /* assemble: the helpers the body calls, each after what it calls */
    int blas = E.o->blas;
    E.use_mm |= E.use_mpow | E.use_chain;
    E.use_tcopy |= E.use_sm;
    int use_solve = E.use_sm || (E.use_inv && !blas);
    int use_pivot = E.use_det || E.use_sm || use_solve;
    em_top_comment(&E, f, grads, 0, out);
    md_buf_puts(out, "#include <math.h>\n#include <stddef.h>\n#include <string.h>\n");
    if (blas && (E.use_mm || E.use_sm || E.use_trdot)) md_buf_puts(out, "#include <cblas.h>\n");
    md_buf_putc(out, '\n');
    em_decls(&E, out);
    md_buf_putc(out, '\n');
    if (E.use_mm) md_buf_puts(out, blas ? em_helper_mm_blas : em_helper_mm_loops);
    if (E.use_tcopy) md_buf_puts(out, em_helper_tcopy);
    if (E.nlus) md_buf_puts(out, blas ? em_helper_lapack : em_helper_lu_loops);
    if (E.nlus && use_pivot) md_buf_puts(out, blas ? em_helper_pivot_lapack : em_helper_pivot_loops);
    if (E.use_det) md_buf_puts(out, em_helper_lu_det);
    if (use_solve) md_buf_puts(out, blas ? em_helper_solve_lapack : em_helper_solve_loops);
    if (E.use_sm) md_buf_puts(out, blas ? em_helper_rsolve_lapack : em_helper_rsolve_loops);
    if (E.use_sm) md_buf_puts(out, em_helper_sm);
    if (E.use_inv) md_buf_puts(out, blas ? em_helper_inv_lapack : em_helper_inv_loops);
    if (E.use_trdot) md_buf_puts(out, blas ? em_helper_trdot_blas : em_helper_trdot_loops);
    if (E.use_chain) {
        md_buf_printf(out, "#define MD_CHAIN_MAX %d\n\n", EM_CHAIN_MAX);
        em_helper_chain(out, E.use_sm, E.use_chain_plain, E.use_chain_trace);
    }
    if (E.use_mpow) md_buf_puts(out, em_helper_mpow);

    /* workspace */
    int dims_used = strstr(E.ws.s ? E.ws.s : "", "dims->") != NULL;
    for (int i = 0; i < E.nscr; i++) dims_used |= strstr(E.scr[i], "dims->") != NULL;
    md_buf_printf(out, "size_t %s_workspace(const %s_dims *dims)\n{\n", E.name, E.name);
    md_buf_puts(out, "    size_t md_n = 0;\n");
    if (!dims_used) md_buf_puts(out, "    (void)dims;\n");
    if (E.ws.s) md_buf_puts(out, E.ws.s);
    if (E.nscr) {
        md_buf_puts(out, "    /* scratch for products, inverses and determinants: the largest need */\n");
        md_buf_puts(out, "    size_t md_scr = 0, md_k;\n");
        for (int i = 0; i < E.nscr; i++)
            md_buf_printf(out, "    md_k = %s;\n    if (md_k > md_scr) md_scr = md_k;\n", E.scr[i]);
        md_buf_puts(out, "    md_n += md_scr;\n");
    }
    md_buf_puts(out, "    return md_n;\n}\n\n");

    /* the function */
    em_proto(&E, out);
    md_buf_puts(out, "\n{\n");
    int used_dims = strstr(E.body.s, "dims->") || strstr(E.decl.s ? E.decl.s : "", "dims->");
    if (!used_dims) md_buf_puts(out, "    (void)dims;\n");
    int used_work = E.decl.s && strstr(E.decl.s, "md_w");
    used_work |= E.nscr > 0;
    if (used_work) md_buf_puts(out, "    double *md_w = work;\n");
    else md_buf_puts(out, "    (void)work;\n");
    /* parameters the code never reads */
    for (int s = 0; s < ctx->nsyms; s++) {
        int used = 0;
        for (int k = 0; k < E.ntopo && !used; k++)
            if (E.topo[k]->kind == MD_SYM && E.topo[k]->ival == s) used = 1;
        if (!used) md_buf_printf(out, "    (void)%s;\n", E.pname[s]);
    }
    if (E.decl.s) md_buf_puts(out, E.decl.s);
    if (E.nscr) md_buf_puts(out, "    double *const md_scr = md_w;\n");
    md_buf_puts(out, "\n");
    md_buf_puts(out, E.body.s);
    md_buf_puts(out, "}\n");
    rc = 0;
done:
    free(roots);
    em_free(&E);
    return rc;
}
