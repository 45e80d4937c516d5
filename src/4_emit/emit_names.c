/*
 * emit_names.c -- the C names of the emitted code: the function, its
 * dims struct and fields, the parameters, the generic-function callbacks,
 * and the size expressions every statement writes (dims->n * dims->p).
 *
 * The emitted file is compiled in someone else's project, next to their
 * names and their headers, so every name it makes up is checked here
 * against C's keywords, what the emitted code itself calls or declares
 * (sin, memcpy, dims, work, ...) and the prefixes it keeps to itself:
 *
 *  - everything internal starts with md_ (md_t12, md_lu3, md_mm); the
 *    loop indices are md_i and md_j, so no variable can shadow them;
 *  - a variable whose name is a C keyword or a function the code calls
 *    gets a trailing underscore (double_, exp_), one that starts with md_
 *    or _ gets a v_ prefix, and a character outside [A-Za-z0-9_] (a Greek
 *    letter) is spelled _xHH;
 *  - a dimension is a field of NAME_dims: its declared name, else named
 *    after the first variable that carries it (X_rows, X_cols, x_len).
 *    Fields live in the struct's namespace, so parameters may reuse them;
 *  - generic functions (`function h`) have no definition, so they become
 *    callbacks the caller defines: double NAME_h(double) for h and
 *    NAME_h_d<k>(double) for its k-th derivative.  Prefixing them with
 *    NAME keeps them from clashing with the function itself (the default
 *    NAME is f, and so is the usual name of a generic function).
 *
 * A --name that is not a usable C identifier, or a callback that would
 * clash, is an error reported here; --size reads the same field names
 * (md_emit_dim_fields), so it accepts exactly what the struct declares.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "emit_internal.h"

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
void em_add_gen(emitter *E, int func, int order)
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
 * fields, parameters.  Returns -2 after a message on err when --name is
 * not usable, -1 when a callback's name clashes.
 */
int em_names(emitter *E)
{
    md_ctx *ctx = E->ctx;
    if (!em_valid_name(E->name) || em_is_reserved(E, E->name)) {
        fprintf(E->err, "matdiff: --name '%s' is not usable as a C function name "
                        "(letters, digits and _, not a keyword, not starting with md_ or _)\n", E->name);
        return -2;
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

/* Dimension d as C: dims->FIELD, or 1. */
void em_dim(const emitter *E, int d, md_buf *b)
{
    if (d == MD_DIM_ONE) md_buf_puts(b, "1");
    else md_buf_printf(b, "dims->%s", E->dimfield[d]);
}

/* "dims->n * dims->p", "dims->n" or "1" (as long). */
char *em_size(const emitter *E, int r, int c)
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
char *em_size_t(const emitter *E, int r, int c)
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
