/*
 * emit_text.c -- the interface text of the emitted code: the comment at
 * the top of every emitted file, the dims struct and the prototypes (the
 * header of --header, and the top of the .c, behind the same guard).
 *
 * The comment is the documentation the caller reads: f and its gradients
 * as matdiff prints them (md_print_program, at most 40 lines each, with
 * every "*" "/" broken so that it cannot end the comment), the interface,
 * what each dims field is, every input's kind, shape and layout, which
 * gradients are written, the workspace, what to link with, and the
 * callbacks of generic functions.  The names are emit_names.c's; nothing
 * here decides anything, it only spells what the earlier stages decided,
 * so --header and --format c always agree.
 */
#include <stdlib.h>
#include <string.h>

#include "emit_internal.h"
#include "md_print.h"

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

/* Dimension d by its dims fields: "n", or "n*p" for a product. */
static void em_dim_text(const emitter *E, int d, md_buf *b)
{
    const md_dim *dm = &E->ctx->dims[d];
    if (!dm->nfac) md_buf_puts(b, E->dimfield[d]);
    for (int k = 0; k < dm->nfac; k++) md_buf_printf(b, "%s%s", k ? "*" : "", E->dimfield[dm->fac[k]]);
}

static void em_shape_text(const emitter *E, int r, int c, md_buf *b)
{
    if (r == MD_DIM_ONE && c == MD_DIM_ONE) {
        md_buf_puts(b, "1");
        return;
    }
    if (r == MD_DIM_ONE) md_buf_puts(b, "1 x ");
    em_dim_text(E, r == MD_DIM_ONE ? c : r, b);
    if (r != MD_DIM_ONE && c != MD_DIM_ONE) {
        md_buf_puts(b, " x ");
        em_dim_text(E, c, b);
    }
}

/* HEAD FNAME(const NAME_dims *dims, <E's inputs>, extra...), wrapped at 96
   columns under the first parameter. */
static void em_proto_wrapped(const emitter *E, const char *head, const char *fname, const char *const *extra,
                             int nextra, md_buf *out)
{
    md_ctx *ctx = E->ctx;
    md_buf b = {0};
    md_buf_printf(&b, "%s%s(", head, fname);
    size_t indent = b.len, col = b.len;
    md_buf_puts(out, b.s);
    md_buf_free(&b);
    md_buf_printf(out, "const %s_dims *dims", E->name);
    col += strlen(E->name) + 17;
    for (int k = 0; k < E->nin + nextra; k++) {
        md_buf line = {0};
        if (k < E->nin) {
            const md_symbol *y = &ctx->syms[em_in(E, k)];
            int sc = y->rows == MD_DIM_ONE && y->cols == MD_DIM_ONE;
            md_buf_printf(&line, "%s%s", sc ? "double " : "const double *", E->pname[em_in(E, k)]);
        } else {
            md_buf_puts(&line, extra[k - E->nin]);
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

/* "double NAME(const NAME_dims *dims, ..., double *work)", wrapped; with
   fname, "static double fname(...)". */
void em_proto(const emitter *E, const char *fname, md_buf *out)
{
    char **extra = md_xcalloc((size_t)E->n + 2, sizeof *extra);
    for (int i = 0; i < E->n; i++) {
        md_buf b = {0};
        md_buf_printf(&b, "double *%s", E->gname[i]);
        extra[i] = md_buf_take(&b);
    }
    extra[E->n] = md_xstrdup("double *work");
    em_proto_wrapped(E, fname ? "static double " : "double ", fname ? fname : E->fname, (const char *const *)extra,
                     E->n + 1, out);
    for (int i = 0; i <= E->n; i++) free(extra[i]);
    free(extra);
}

void em_proto_extra(const emitter *E, const char *fname, const char *const *extra, int nextra, md_buf *out)
{
    em_proto_wrapped(E, "double ", fname, extra, nextra, out);
}

/* The declarations (the header, and the top of the .c), with guard. */
void em_decls(const emitter *E, const emitter *H, md_buf *out)
{
    md_ctx *ctx = E->ctx;
    md_buf_printf(out, "#ifndef %s_MATDIFF_H\n#define %s_MATDIFF_H\n\n#include <stddef.h>\n\n", E->name, E->name);
    /* C linkage, so that a C++ project can include the header and link the object. */
    md_buf_puts(out, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    md_buf_printf(out, "typedef struct %s_dims {\n", E->name);
    if (ctx->ndims <= 1) md_buf_puts(out, "    long unused;   /* every input is a scalar */\n");
    for (int d = 1; d < ctx->ndims; d++) {
        if (!E->dimfield[d]) continue;   /* a product dimension */
        md_buf_printf(out, "    long %s;", E->dimfield[d]);
        if (E->dimnote[d][0]) md_buf_printf(out, "   /* %s */", E->dimnote[d]);
        md_buf_putc(out, '\n');
    }
    md_buf_printf(out, "} %s_dims;\n\n", E->name);
    if (E->map) {
        md_buf_printf(out, "/* Doubles of scratch space %s, %s_jvp and %s_vjp need at work. */\n", E->name, E->name,
                      E->name);
        md_buf_printf(out, "size_t %s_workspace(const %s_dims *dims);\n\n", E->name, E->name);
        md_buf_puts(out, "/* Writes F (when not NULL); returns 0. */\n");
        em_proto(E, NULL, out);
        md_buf_puts(out, ";\n\n/* Writes F and J v (each when not NULL); returns 0. */\n");
        em_proto(E->jvpE, NULL, out);
        md_buf_puts(out, ";\n\n/* Writes F and J' u, the gradients of u : F (each when not NULL); returns 0. */\n");
        em_proto(E->vjpE, NULL, out);
        md_buf_printf(out, ";\n\n/* Doubles of scratch space %s_jac needs at work. */\n"
                           "size_t %s_jac_workspace(const %s_dims *dims);\n\n"
                           "/* Writes F (when not NULL) and the dense Jacobian J (M x N, M the size of F, N the\n"
                           "   sum of the variables' sizes); returns 0. */\n"                      , E->name, E->name, E->name);
        md_buf fb = {0}, jn = {0};
        md_buf_printf(&fb, "double *%s", E->gname[0]);
        md_buf_printf(&jn, "%s_jac", E->name);
        const char *extra[3] = {fb.s, "double *J", "double *work"};
        em_proto_extra(E, jn.s, extra, 3, out);
        md_buf_puts(out, ";\n");
        md_buf_free(&fb);
        md_buf_free(&jn);
    } else {
        md_buf_printf(out, "/* Doubles of scratch space %s needs at work. */\n", E->name);
        md_buf_printf(out, "size_t %s_workspace(const %s_dims *dims);\n\n", E->name, E->name);
        md_buf_puts(out, "/* Returns f; writes each non-NULL gradient. */\n");
        em_proto(E, NULL, out);
        md_buf_puts(out, ";\n");
    }
    if (H) {
        md_buf_puts(out, "\n/* Returns f; writes each non-NULL block of the Hessian times the directions. */\n");
        em_proto(H, NULL, out);
        md_buf_puts(out, ";\n");
        md_buf_printf(out, "\n/* Doubles of scratch space %s_hess needs at work. */\n"
                           "size_t %s_hess_workspace(const %s_dims *dims);\n\n"
                           "/* Returns f; writes the dense Hessian H (N x N, N the sum of the variables' sizes). */\n",
                      E->name, E->name, E->name);
        md_buf hn = {0};
        md_buf_printf(&hn, "%s_hess", E->name);
        static const char *const extra[2] = {"double *H", "double *work"};
        em_proto_extra(E, hn.s, extra, 2, out);
        md_buf_puts(out, ";\n");
        md_buf_free(&hn);
        if (H->hessE && H->n > 1) {
            md_buf_printf(out, "\n/* Returns f; writes each non-NULL block H_x_y of the Hessian's upper triangle\n"
                               "   (x's size by y's, in the layout), from which %s_hess fills H. */\n", E->name);
            em_proto(H->hessE, NULL, out);
            md_buf_puts(out, ";\n");
        }
    }
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
    md_buf_printf(out, "\n#ifdef __cplusplus\n}\n#endif\n\n#endif /* %s_MATDIFF_H */\n", E->name);
}

/* The comment's lines on dims and the inputs of E's function. */
static void em_comment_inputs(const emitter *E, md_buf *out)
{
    md_ctx *ctx = E->ctx;
    md_buf_printf(out, " * dims: the size of every dimension (each at least 1):\n");
    if (ctx->ndims <= 1) md_buf_puts(out, " *     none: every input is a scalar\n");
    for (int d = 1; d < ctx->ndims; d++)
        if (E->dimfield[d]) md_buf_printf(out, " *     %-10s %s\n", E->dimfield[d], E->dimnote[d][0] ? E->dimnote[d] : "");
    md_buf_printf(out, " * inputs, in order (matrices %s-major, double for scalars):\n",
                  E->row ? "row" : "column");
    for (int j = 0; j < E->nin; j++) {
        md_buf b = {0};
        int s = em_in(E, j);
        em_shape_text(E, ctx->syms[s].rows, ctx->syms[s].cols, &b);
        md_buf_printf(out, " *     %-10s %s %s%s\n", E->pname[s], em_kind_text(&ctx->syms[s]), b.s,
                      ctx->syms[s].kind == MD_SYM_SYMMETRIC ? " (pass a symmetric matrix)" : "");
        md_buf_free(&b);
    }
}

/* The comment's closing lines: work, sizes, the backend, the plans, the
   callbacks; returns says what the functions return. */
static void em_comment_notes(const emitter *E, int header, const char *returns, md_buf *out)
{
    md_ctx *ctx = E->ctx;
    md_buf_printf(out,
                  " * work: at least %s_workspace(dims) doubles of scratch.  No allocation, no\n"
                  " * global state: reentrant and thread-safe with separate work arrays.\n"
                  " * Sizes it cannot handle (a dimension below 1 or above INT_MAX, an array or\n"
                  " * the workspace too large to index with long or to count in bytes):\n"
                  " * the workspace function returns SIZE_MAX and the function NaN, writing\n"
                  " * nothing.\n"
                  " * %s\n"
                  " * Outside the function's domain (log of a negative number, a singular\n"
                  " * matrix) the results are NaN or infinite.\n", E->name, returns);
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
        int hints = E->o->size_hint != NULL;
        for (int d = 1; d < ctx->ndims && hints; d++) hints = !E->dimfield[d] || E->o->size_hint[d] > 0;
        if (E->nplans > 1)
            md_buf_printf(out, " * Products are bracketed and shared by one of %d plans, each the best for\n"
                               " * some sizes; every call runs the one with the fewest flops for its dims.\n",
                          E->nplans);
        else if (hints)
            md_buf_puts(out, " * Products are bracketed by cost for the sizes given with --size.\n");
        else
            md_buf_puts(out, " * Products are bracketed by cost; the same bracketing is the best for every\n"
                             " * size regime.\n");
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

/* The comment of a non-scalar function's file (E->map): F, J v and J' u
   as derived (exprs: [jvp, vjp_0, ...]), the interface, the inputs. */
static void em_map_comment(const emitter *E, md_expr *F, md_expr **exprs, int header, md_buf *out)
{
    md_ctx *ctx = E->ctx;
    const char *nm = E->name;
    const emitter *Q = E->jvpE, *R = E->vjpE;
    int n = R->n - 1;
    if (F) {
        const char *fn[1] = {E->gname[0]};
        md_buf_puts(out, " * the function\n");
        em_comment_program(ctx, out, 1, &F, fn);
        md_buf_puts(out, " * its Jacobian-vector product, J v with v the directions v_<variable>:\n");
        em_comment_program(ctx, out, 1, exprs, (const char *const *)Q->gname + 1);
        md_buf_puts(out, " * and its vector-Jacobian product J' u, the gradients of u : F:\n");
        em_comment_program(ctx, out, n, exprs + 1, (const char *const *)R->gname + 1);
        md_buf_puts(out, " *\n");
    }
    md_buf_printf(out,
                  " * Interface:\n"
                  " *     size_t %s_workspace(const %s_dims *dims);\n"
                  " *     double %s(const %s_dims *dims, <inputs>, double *%s, double *work);\n"
                  " *     double %s_jvp(const %s_dims *dims, <inputs>, <directions>, double *%s,\n"
                  " *                 double *%s, double *work);\n"
                  " *     double %s_vjp(const %s_dims *dims, <inputs>, const double *%s, double *%s,\n"
                  " *                 <gradients>, double *work);\n"
                  " *     size_t %s_jac_workspace(const %s_dims *dims);\n"
                  " *     double %s_jac(const %s_dims *dims, <inputs>, double *%s, double *J, double *work);\n"
                  " *\n",
                  nm, nm, nm, nm, E->gname[0], nm, nm, Q->gname[0], Q->gname[1], nm, nm,
                  R->pname[em_in(R, R->nin - 1)], R->gname[0], nm, nm, nm, nm, E->gname[0]);
    em_comment_inputs(E, out);
    md_buf b = {0};
    const md_expr *Fe = E->mapF;
    em_shape_text(E, Fe->rows, Fe->cols, &b);
    md_buf_printf(out, " * %s: the function's value%s%s, in the layout; NULL skips it.\n", E->gname[0],
                  b.s ? ", " : "", b.s ? b.s : "");
    md_buf_free(&b);
    md_buf_printf(out, " * %s_jvp: the same inputs, then one direction per variable (its shape and\n"
                       " * layout; symmetric for a symmetric variable):\n", nm);
    for (int i = 0; i < n; i++)
        md_buf_printf(out, " *     %-10s the direction of %s\n", Q->pname[em_in(Q, E->nin + i)],
                      ctx->syms[E->wrt[i]].name);
    md_buf_printf(out, " * then %s and %s = J v (the derivative of %s along v, %s's shape), each\n"
                       " * written where the pointer is not NULL.\n", Q->gname[0], Q->gname[1], E->gname[0],
                  E->gname[0]);
    md_buf_printf(out, " * %s_vjp: the same inputs, then %s (%s's shape and layout); writes %s and\n"
                       " * the gradients of u : F = sum(%s .* %s), J' %s (NULL skips one):\n", nm,
                  R->pname[em_in(R, R->nin - 1)], E->gname[0], R->gname[0], R->pname[em_in(R, R->nin - 1)],
                  E->gname[0], R->pname[em_in(R, R->nin - 1)]);
    for (int i = 0; i < n; i++) {
        int s = E->wrt[i];
        md_buf_printf(out, " *     %-10s d(u : F)/d%s%s\n", R->gname[1 + i], ctx->syms[s].name,
                      ctx->syms[s].kind == MD_SYM_SYMMETRIC ? " on the symmetric matrices, (G + G')/2" : "");
    }
    md_buf_printf(out, " * %s_jac: the dense Jacobian J, M x N column-major: M the size of %s (rows in\n"
                       " * its memory order), N the sum of the variables' sizes (columns in their\n"
                       " * memory order, variable after variable); N calls of %s_jvp with unit\n"
                       " * directions (symmetrised for a symmetric variable), or M calls of %s_vjp\n"
                       " * when M < N; work: %s_jac_workspace(dims) doubles.\n", nm, E->gname[0], nm, nm, nm);
    md_buf buf = {0};
    md_buf_printf(&buf, "Each function returns 0.");
    em_comment_notes(E, header, buf.s, out);
    md_buf_free(&buf);
}

/* The comment at the top of each emitted file. */
void em_top_comment(const emitter *E, const emitter *H, md_expr *f, md_expr **grads, int header, md_buf *out)
{
    md_ctx *ctx = E->ctx;
    const char *nm = E->name;
    md_buf_printf(out, "/*\n * %s -- generated by matdiff (--format c%s).  Do not edit.\n *\n", nm,
                  header ? " --header" : "");
    if (E->map) {
        em_map_comment(E, f, grads, header, out);
        return;
    }
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
                  " *     double %s(const %s_dims *dims, <inputs>, <gradients>, double *work);\n", nm, nm, nm, nm);
    if (H)
        md_buf_printf(out, " *     double %s_hvp(const %s_dims *dims, <inputs>, <directions>, <products>,\n"
                           " *                   double *work);\n"
                           " *     size_t %s_hess_workspace(const %s_dims *dims);\n"
                           " *     double %s_hess(const %s_dims *dims, <inputs>, double *H, double *work);\n",
                      nm, nm, nm, nm, nm, nm);
    if (H && H->hessE && H->n > 1)
        md_buf_printf(out, " *     double %s_hess_blocks(const %s_dims *dims, <inputs>, <blocks>, double *work);\n",
                      nm, nm);
    md_buf_puts(out, " *\n");
    em_comment_inputs(E, out);
    md_buf_puts(out, " * gradients, written where the pointer is not NULL (NULL skips the work\n"
                     " * only that gradient needs), each of its variable's shape and layout:\n");
    for (int i = 0; i < E->n; i++) {
        int s = E->wrt[i];
        md_buf_printf(out, " *     %-10s df/d%s%s\n", E->gname[i], ctx->syms[s].name,
                      ctx->syms[s].kind == MD_SYM_SYMMETRIC ? " on the symmetric matrices, (G + G')/2" : "");
    }
    if (H) {
        md_buf_printf(out, " * %s_hvp: the same inputs, then one direction v per gradient (its variable's\n"
                           " * shape and layout; symmetric for a symmetric variable), then the blocks of\n"
                           " * the Hessian times v, written where the pointer is not NULL, without\n"
                           " * forming the Hessian (directional derivatives of the gradients):\n", nm);
        for (int i = 0; i < H->n; i++)
            md_buf_printf(out, " *     %-10s -> %-10s the %s block of H v\n", H->pname[E->nin + i], H->gname[i],
                          ctx->syms[E->wrt[i]].name);
        md_buf_printf(out, " * %s_hess: the dense Hessian H, N x N for N the sum of the variables' sizes\n"
                           " * (each in its memory order), block (i, j) d2f/d vec(X_i) d vec(X_j)'; ", nm);
        if (H->hessE && H->n > 1)
            md_buf_printf(out, "from the\n * Hessian's expression: %s_hess_blocks writes the blocks of the upper\n"
                               " * triangle (NULL skips one), %s_hess copies them into H;\n", nm, nm);
        else if (H->hessE)
            md_buf_puts(out, "from the\n * Hessian's expression;\n");
        else
            md_buf_printf(out, "N calls\n * of %s_hvp with unit directions (symmetrised for a symmetric variable);\n", nm);
        md_buf_printf(out, " * work: %s_hess_workspace(dims) doubles.\n", nm);
    }
    em_comment_notes(E, header, "Returns f.", out);
}
