/*
 * emit.c -- C code generation (see md_emit.h and docs/codegen.md): the
 * driver of the stage files, and the run-time helpers of the emitted file.
 *
 * The input is the function f and its gradients as one shared DAG.  The
 * output is one C99 translation unit that evaluates that DAG once: every
 * node reachable from the roots becomes one statement (or one loop, or
 * one BLAS call), in a topological order, writing into a slot of the
 * caller's workspace.  Because the graph is hash-consed, a subexpression
 * shared by f and several gradients is computed once, and the gradients
 * reuse f's values, as reverse mode does.
 *
 * Which bracketing of the products is best depends on sizes that only
 * the caller knows, so the graph is rewritten into a few plans
 * (md_cost_plans, costopt.c: one per size regime that wins, one with
 * --size for every dimension), and md_emit_c runs the stages on each,
 * each stage in its own file and all sharing the emitter of
 * emit_internal.h:
 *
 *     costopt.c     diagonals as scalings; the plans: products bracketed
 *                   by cost, shared sub-products, Gram matrices; norm2^2
 *                   as a sum of squares
 *     emit_plan.c   em_scan: twins, LUs, needs, modes, fusion
 *     emit_names.c  em_names: the C names of the interface
 *     emit_plan.c   em_values: values and workspace slots
 *     emit_code.c   em_body: the statements
 *     emit_text.c   the top comment and the declarations
 *
 * and then assembles the file: the comment, the includes, the
 * declarations, the run-time helpers the statements call, md_sizes_ok
 * (the dims every plan can handle), and per plan a workspace function
 * (the slots and the largest scratch need, SIZE_MAX for unusable dims)
 * and the function, whose prologue voids what it does not read (dims,
 * work, unused inputs), so that the file compiles cleanly under -Wall
 * -Wextra -Wpedantic.  With one plan those are NAME_workspace and NAME;
 * with several they are static md_planK, and NAME_workspace and NAME run
 * the one md_plan picks by its flop count for the dims (em_cost).
 *
 * With --order 2 (o->hvp) the file has a second public function,
 * NAME_hvp: f and the blocks of H v (md_hvp: directional derivatives of
 * the gradients, ordinary expressions), through the same stages and plans
 * (md_hvp_planK), its inputs the program's and the directions v_<name>
 * (the last symbols of ctx), its outputs Hv_<name>; NAME_workspace is the
 * larger of the two functions' needs.
 * md_emit_header and md_emit_dim_fields run only the naming stage.
 *
 * The run-time helpers (md_mm, md_lu, md_sm, md_chain, ...) are C sources
 * in runtime/, one helper per file, each with a plain-loop and, where it
 * matters, a BLAS or LAPACK variant.  The build compiles them with the
 * project's warnings and -Werror and embeds their text in
 * $(B)/md_runtime.h (emit.mk; runtime/prelude.h says how they are
 * written); em_helpers picks the ones the statements used, in an order
 * where each comes after what it calls, and em_runtime_put copies them,
 * keeping or dropping their MD_SEL sections.  All helpers are
 * column-major and have the same interface in both backends:
 *
 *  - md_mm: C = alpha op(A) op(B), ddot, dgemv, dsyrk or dgemm by shape;
 *  - LU factorisations: md_lu factors (dgetrf in BLAS mode, through the
 *    Fortran interface: LAPACKE would allocate), md_lu_det reads the
 *    determinant off the factors, md_lu_solve and md_lu_rsolve apply
 *    inv(A) or inv(A') from the left or the right, md_sm is a product
 *    with an inverse factor as a solve, md_lu_inv forms an inverse;
 *    md_lu_sym factors a symmetric matrix by Cholesky when it can
 *    (md_chol_lu rewrites L as pivot-free LU factors, so the rest reads
 *    them as any LU's) and md_lu_qf computes B'*inv(S)*B from them with
 *    one triangular solve.  The
 *    pivots live in the double workspace (MD_PIVOTS(n) doubles) and are
 *    read back with memcpy (md_pivot), so no integer lvalue aliases the
 *    caller's doubles;
 *  - md_chain_dp, md_chain_run, md_chain, md_chain_trace: run-time
 *    bracketing of chains of up to MD_CHAIN_MAX factors (md_chain_dp is
 *    also the generator's DP, md_cost_chain in costopt.c);
 *  - md_trdot, md_tcopy, md_mpow: traces of products, transposed copies,
 *    matrix powers.
 *
 *  - md_wsyrk: A' diag(u) A as one dsyrk of sqrt(|u|) .* A (the Hessian
 *    of a generalised linear model); md_kron_mv: kron(A, B) x applied as
 *    vec(B X A'), never formed.
 *
 * For a vector or matrix function (md_emit_c_map) the file has NAME (F),
 * NAME_jvp, NAME_vjp and NAME_jac instead, through the same stages.
 *
 * Nothing here allocates nodes: emission reads the graph, it never builds
 * (costopt.c does, before).
 */
#include "md_emit.h"
#include "md_costopt.h"
#include "md_diff.h"
#include "md_simplify.h"

#include <stdlib.h>
#include <string.h>

#include "emit_internal.h"
#include "md_runtime.h"

/* ---- the run-time helpers --------------------------------------------- */

/* The MD_SEL flags of runtime/ sections (runtime/prelude.h).  GEN is for
   the generator's own compile of chain_dp.c and never set here. */
enum { EM_SEL_SOLVES = 1, EM_SEL_GEN = 2 };

static const struct {
    const char *name;
    unsigned bit;
} em_sel_flags[] = {{"SOLVES", EM_SEL_SOLVES}, {"GEN", EM_SEL_GEN}};

/* The flag a directive line names after its MD_SEL_ (the name runs to
   the end of the line). */
static unsigned em_sel_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof em_sel_flags / sizeof em_sel_flags[0]; i++)
        if (strlen(em_sel_flags[i].name) == len && !strncmp(name, em_sel_flags[i].name, len))
            return em_sel_flags[i].bit;
    abort();   /* a runtime/ file names a flag this table lacks */
}

/*
 * Appends run-time helper h (md_runtime.h) to out with its MD_SEL
 * sections resolved by flags: the lines between `#if MD_SEL_X` (or `#if
 * !MD_SEL_X`) and `#else // MD_SEL_X` or `#endif // MD_SEL_X` are kept
 * when X is set (not set), those between `#else` and `#endif` when not;
 * the directive lines are dropped.  Other lines, preprocessor lines
 * included, are copied as they are.
 */
static void em_runtime_put(md_buf *out, int h, unsigned flags)
{
    static const char pif[] = "#if MD_SEL_", pifn[] = "#if !MD_SEL_", pelse[] = "#else // MD_SEL_",
                      pend[] = "#endif // MD_SEL_";
    const char *text = em_runtime[h];
    if (!strstr(text, "MD_SEL_")) {
        md_buf_puts(out, text);
        return;
    }
    int keep[16], depth = 0;   /* per open section: whether its current branch is kept */
    for (const char *s = text, *nl; *s; s = nl + 1) {
        nl = strchr(s, '\n');   /* every line of the text ends with one */
        size_t len = (size_t)(nl - s);
        int on = 1;
        for (int i = 0; i < depth; i++) on &= keep[i];
        if (!strncmp(s, pif, sizeof pif - 1) || !strncmp(s, pifn, sizeof pifn - 1)) {
            size_t at = s[4] == '!' ? sizeof pifn - 1 : sizeof pif - 1;
            unsigned set = (flags & em_sel_flag(s + at, len - at)) != 0;
            if (depth == (int)(sizeof keep / sizeof keep[0])) abort();
            keep[depth++] = s[4] == '!' ? !set : set;
        } else if (!strncmp(s, pelse, sizeof pelse - 1)) {
            if (!depth) abort();
            keep[depth - 1] = !keep[depth - 1];
        } else if (!strncmp(s, pend, sizeof pend - 1)) {
            if (!depth) abort();
            depth--;
        } else if (on) {
            md_buf_printf(out, "%.*s\n", (int)len, s);
        }
    }
    if (depth) abort();
}

/* The helpers the statements call (E->use_*, with what those call
   folded in by md_emit_c), each after what it calls, in the backend's
   variant. */
static void em_helpers(const emitter *E, md_buf *out)
{
    int blas = E->o->blas;
    int use_solve = E->use_sm || E->use_qf || (E->use_inv && !blas);
    int use_pivot = E->use_det || E->use_sm || use_solve;
    const struct {
        int used;
        int rt_blas, rt_loops;   /* em_runtime[] in BLAS mode, with --no-blas */
    } order[] = {
        {E->use_maxz, EM_RT_MAXZ, EM_RT_MAXZ},
        {E->use_mm, EM_RT_MM_BLAS, EM_RT_MM_LOOPS},
        {E->use_wsyrk, EM_RT_WSYRK_BLAS, EM_RT_WSYRK_LOOPS},
        {E->use_tcopy, EM_RT_TCOPY, EM_RT_TCOPY},
        {E->use_kron, EM_RT_KRON, EM_RT_KRON},
        {E->nlus > 0, EM_RT_LU_LAPACK, EM_RT_LU_LOOPS},
        {E->use_lusym, EM_RT_CHOL_LU, EM_RT_CHOL_LU},
        {E->use_lusym, EM_RT_LUSYM_LAPACK, EM_RT_LUSYM_LOOPS},
        {E->nlus && use_pivot, EM_RT_PIVOT_LAPACK, EM_RT_PIVOT_LOOPS},
        {E->use_det, EM_RT_LU_DET, EM_RT_LU_DET},
        {use_solve, EM_RT_SOLVE_LAPACK, EM_RT_SOLVE_LOOPS},
        {E->use_sm || E->use_qf, EM_RT_RSOLVE_LAPACK, EM_RT_RSOLVE_LOOPS},
        {E->use_sm, EM_RT_SM, EM_RT_SM},
        {E->use_qf, EM_RT_QF_BLAS, EM_RT_QF_LOOPS},
        {E->use_inv, EM_RT_INV_LAPACK, EM_RT_INV_LOOPS},
        {E->use_trdot, EM_RT_TRDOT_BLAS, EM_RT_TRDOT_LOOPS},
        {E->use_chain, EM_RT_CHAIN_DP, EM_RT_CHAIN_DP},   /* after #define MD_CHAIN_MAX */
        {E->use_chain, EM_RT_CHAIN_RUN, EM_RT_CHAIN_RUN},
        {E->use_chain_plain, EM_RT_CHAIN, EM_RT_CHAIN},
        {E->use_chain_trace, EM_RT_CHAIN_TRACE, EM_RT_CHAIN_TRACE},
        {E->use_mpow, EM_RT_MPOW, EM_RT_MPOW},
    };
    /* the chain helpers' solves (md_sm) exactly when some chain has an
       inverse factor */
    unsigned flags = E->use_sm ? EM_SEL_SOLVES : 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (!order[i].used) continue;
        int h = blas ? order[i].rt_blas : order[i].rt_loops;
        if (h == EM_RT_CHAIN_DP) md_buf_printf(out, "#define MD_CHAIN_MAX %d\n\n", EM_CHAIN_MAX);
        em_runtime_put(out, h, flags);
    }
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
    free(E->own_fname);
}

static void em_init(emitter *E, md_ctx *ctx, int n, const int *wrt, const md_emit_opts *o, FILE *err)
{
    static const md_emit_opts defaults = {NULL, 0, 1, NULL, NULL, NULL};
    memset(E, 0, sizeof *E);
    E->ctx = ctx;
    E->o = o ? o : &defaults;
    E->err = err ? err : stderr;
    E->name = E->o->name ? E->o->name : "f";
    E->fname = E->name;
    E->pfx = "md_plan";
    E->oprefix = "d_";
    E->nin = ctx->nsyms - (E->o->hvp ? n : 0);   /* the directions are the last symbols */
    E->n = n;
    E->wrt = wrt;
    E->row = E->o->row_major;
}

/*
 * What one public function of the file computes, besides NAME: its name
 * (NAME + suffix), its plans' prefix, its outputs (onames, or oprefix and
 * the variables' names) and its inputs (in[0..nin), NULL: the first nin
 * symbols; nin < 0: em_init's).  map: the file is a non-scalar
 * function's (md_emit_c_map), whose names every emitter reserves.
 */
typedef struct em_role {
    const char *suffix, *pfx, *oprefix;
    const char *const *onames;
    int nin;
    const int *in;
    int map;
} em_role;

static void em_apply_role(emitter *E, const em_role *r)
{
    if (!r) return;
    if (r->suffix[0]) {
        md_buf b = {0};
        md_buf_printf(&b, "%s%s", E->name, r->suffix);
        E->own_fname = md_buf_take(&b);
        E->fname = E->own_fname;
    }
    E->pfx = r->pfx;
    E->oprefix = r->oprefix;
    E->onames = r->onames;
    if (r->nin >= 0) E->nin = r->nin;
    E->in = r->in;
    E->map = r->map;
}

/* NAME_hvp: every symbol an input (the directions are the last n), the
   outputs Hv_<name>, its plans md_hvp_plan<k>. */
static em_role em_role_hvp(const md_ctx *ctx)
{
    return (em_role){"_hvp", "md_hvp_plan", "Hv_", NULL, ctx->nsyms, NULL, 0};
}

/* The names of the Hessian's outputs: "H" for one variable, else
   H_<x>_<y> per block of the upper triangle (i <= j). */
static char **em_hess_names(md_ctx *ctx, int n, const int *wrt)
{
    char **names = md_xcalloc((size_t)n * (n + 1) / 2 + 1, sizeof *names);
    for (int i = 0, k = 0; i < n; i++)
        for (int j = i; j < n; j++) {
            md_buf b = {0};
            if (n == 1) md_buf_puts(&b, "H");
            else md_buf_printf(&b, "H_%s_%s", ctx->syms[wrt[i]].name, ctx->syms[wrt[j]].name);
            names[k++] = md_buf_take(&b);
        }
    return names;
}

/* The Hessian's blocks: the program's inputs (the nwrt directions of
   NAME_hvp follow them in ctx and are not inputs), the outputs names[0..),
   the function NAME_hess (one variable: its one block is H) or
   NAME_hess_blocks, its plans md_hess_plan<k>. */
static em_role em_role_hess(const md_ctx *ctx, int nwrt, const char *const *names)
{
    return (em_role){nwrt == 1 ? "_hess" : "_hess_blocks", "md_hess_plan", "H_", names, ctx->nsyms - nwrt, NULL, 0};
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
        for (int d = 1; d < ctx->ndims; d++) fields[d] = E.dimfield[d] ? md_xstrdup(E.dimfield[d]) : NULL;
    }
    if (devnull) fclose(devnull);
    em_free(&E);
    return fields;
}

/* Does e reach vec, kron, commutation or a product dimension? */
static int em_reaches_product(md_ctx *ctx, const md_expr *e, char *seen)
{
    if (seen[e->id]) return 0;
    seen[e->id] = 1;
    if (md_dim_is_product(ctx, e->rows) || md_dim_is_product(ctx, e->cols) || e->kind == MD_VEC ||
        e->kind == MD_KRON || e->kind == MD_COMM)
        return 1;
    for (int i = 0; i < e->nargs; i++)
        if (em_reaches_product(ctx, e->args[i], seen)) return 1;
    return 0;
}

static int em_any_reaches_product(md_ctx *ctx, int n, md_expr *const *roots)
{
    char *seen = md_xcalloc(ctx->nnodes + 1, 1);
    int bad = 0;
    for (int i = 0; i < n && !bad; i++) bad = roots[i] && em_reaches_product(ctx, roots[i], seen);
    free(seen);
    return bad;
}

/* Does e reach a Kronecker product or a commutation matrix that is not a
   factor of a product (where md_kron_mv and md_tcopy apply it), or a
   matrix with a product dimension that would be formed from one (kron(A,
   B)' * kron(A, B) is kron(A'*A, B'*B), a Kronecker product alone)? */
static int em_reaches_kron(const md_expr *e, const md_expr *user, char *seen)
{
    if ((e->kind == MD_KRON || e->kind == MD_COMM) && (!user || (user->kind != MD_MUL && user->kind != MD_ADD)))
        return 1;   /* in a sum: (K1 + K2)*v is distributed (md_struct_rewrite); em_scan has the last word */
    if (seen[e->id]) return 0;
    seen[e->id] = 1;
    for (int i = 0; i < e->nargs; i++)
        if (em_reaches_kron(e->args[i], e, seen)) return 1;
    return 0;
}

int md_emit_check(md_ctx *ctx, int n, md_expr *const *roots, FILE *err)
{
    char *seen = md_xcalloc(ctx->nnodes + 1, 1);
    int bad = 0;
    for (int i = 0; i < n && !bad; i++) bad = roots[i] && em_reaches_kron(roots[i], NULL, seen);
    free(seen);
    if (bad && err)
        fprintf(err, "matdiff: --format c: a Kronecker product or commutation matrix is emitted only as a factor of a "
                     "product with a vector (kron(A, B)*x, applied as vec(B*X*A')); the text and LaTeX formats "
                     "handle this one\n");
    return bad ? -1 : 0;
}

md_expr **md_emit_hess_blocks(md_ctx *ctx, md_expr *f, int n, const int *wrt)
{
    for (int i = 0; i < n; i++) {
        const md_symbol *x = &ctx->syms[wrt[i]];
        if (x->rows != MD_DIM_ONE && x->cols != MD_DIM_ONE) return NULL;
    }
    md_expr **h = md_xcalloc((size_t)n * n + 1, sizeof *h);
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) {
            md_expr *b = md_hessian_block(ctx, f, wrt[i], wrt[j]);
            if (!b || em_any_reaches_product(ctx, 1, &b)) {
                free(h);
                return NULL;
            }
            h[i * n + j] = b;
            h[j * n + i] = md_trans(ctx, b);
        }
    return h;
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
    emitter H, R;   /* NAME_hvp's names, NAME_hess_blocks' */
    int hvp = o && o->hvp, hess = hvp && o->hess, nb = n * (n + 1) / 2;
    char **bnames = NULL;
    if (hvp) {
        em_init(&H, ctx, n, wrt, o, err);
        em_role rh = em_role_hvp(ctx);
        em_apply_role(&H, &rh);
        if (rc == 0) rc = em_names(&H);
    }
    if (hess) {
        bnames = em_hess_names(ctx, n, wrt);
        em_init(&R, ctx, nb, wrt, o, err);
        em_role rs = em_role_hess(ctx, n, (const char *const *)bnames);
        em_apply_role(&R, &rs);
        if (rc == 0) rc = em_names(&R);
        H.hess_expr = 1;
        H.hessE = &R;
    }
    if (rc == 0) {
        em_top_comment(&E, hvp ? &H : NULL, NULL, NULL, 1, out);
        md_buf_putc(out, '\n');
        em_decls(&E, hvp ? &H : NULL, out);
    }
    em_free(&E);
    if (hvp) em_free(&H);
    if (hess) {
        em_free(&R);
        for (int k = 0; k < nb; k++) free(bnames[k]);
        free(bnames);
    }
    return rc;
}

/* s with its size_t arithmetic as double: the workspace sum computed
   without overflow, to compare with the limit first.  malloc'd. */
static char *em_as_double(const char *s)
{
    static const char *const from[] = {"(size_t)", "md_maxz(", "MD_PIVOTS("},
                             *const to[] = {"(double)", "fmax(", "(double)("};
    md_buf b = {0};
    while (*s) {
        size_t i = 0;
        while (i < 3 && strncmp(s, from[i], strlen(from[i]))) i++;
        if (i < 3) {
            md_buf_puts(&b, to[i]);
            s += strlen(from[i]);
        } else {
            md_buf_putc(&b, *s++);
        }
    }
    return md_buf_take(&b);
}

/* The workspace sum, as size_t (md_n) or, dbl, as double (md_nd). */
static void em_ws_sum(const emitter *E, int dbl, md_buf *out)
{
    const char *n = dbl ? "md_nd" : "md_n";
    md_buf_printf(out, "    %s %s = 0;\n", dbl ? "double" : "size_t", n);
    for (const char *l = E->ws.s ? E->ws.s : "", *nl; *l; l = nl + 1) {
        nl = strchr(l, '\n');   /* "    md_n += EXPR;   comment" */
        if (!dbl) {
            md_buf_printf(out, "%.*s\n", (int)(nl - l), l);
            continue;
        }
        const char *a = strstr(l, " += ") + 4, *z = strchr(a, ';');
        md_buf eb = {0};
        md_buf_printf(&eb, "%.*s", (int)(z - a), a);
        char *expr = md_buf_take(&eb), *d = em_as_double(expr);
        md_buf_printf(out, "    md_nd += %s;\n", d);
        free(expr);
        free(d);
    }
    if (E->nscr) {
        if (!dbl) md_buf_puts(out, "    /* scratch for products, inverses and determinants: the largest need */\n");
        md_buf_printf(out, "    %s md_scr%s = 0, md_k%s;\n", dbl ? "double" : "size_t", dbl ? "d" : "", dbl ? "d" : "");
        for (int i = 0; i < E->nscr; i++) {
            char *x = dbl ? em_as_double(E->scr[i]) : md_xstrdup(E->scr[i]);
            md_buf_printf(out, "    md_k%s = %s;\n    if (md_k%s > md_scr%s) md_scr%s = md_k%s;\n", dbl ? "d" : "", x,
                          dbl ? "d" : "", dbl ? "d" : "", dbl ? "d" : "", dbl ? "d" : "");
            free(x);
        }
        md_buf_printf(out, "    %s += md_scr%s;\n", n, dbl ? "d" : "");
    }
}

/* md_sizes_ok: the dims are usable -- every dimension at least 1 and at
   most INT_MAX (BLAS and LAPACK take int sizes), every array of the plans
   (rows x cols) small enough for a long index and a ptrdiff_t of bytes.
   The workspace functions add their own sum's limit (em_function). */
static void em_sizes_ok(emitter *const *P, int np, md_buf *out)
{
    const emitter *E = P[0];
    md_ctx *ctx = E->ctx;
    md_buf_puts(out, "/* The largest array, in elements, the code indexes: long indices, sizes in\n"
                     "   bytes within ptrdiff_t (half of either, for the rounding of doubles). */\n"
                     "#define MD_MAX_ELEMS (0.5 * (double)(PTRDIFF_MAX / 8 < LONG_MAX ? PTRDIFF_MAX / 8 : LONG_MAX))\n\n");
    md_buf_printf(out, "/* 1 when dims are usable (see NAME_workspace in the comment at the top). */\n"
                       "static int md_sizes_ok(const %s_dims *dims)\n{\n", E->name);
    if (ctx->ndims <= 1) md_buf_puts(out, "    (void)dims;\n");
    for (int d = 1; d < ctx->ndims; d++)
        if (E->dimfield[d])
            md_buf_printf(out, "    if (dims->%s < 1 || dims->%s > INT_MAX) return 0;\n", E->dimfield[d],
                          E->dimfield[d]);
    /* the distinct shapes of the arrays of every plan */
    int (*pairs)[2] = NULL, npairs = 0;
    for (int k = 0; k < np; k++)
        for (int t = 0; t < P[k]->ntopo; t++) {
            const md_expr *e = P[k]->topo[t];
            int prod = md_dim_is_product(ctx, e->rows) || md_dim_is_product(ctx, e->cols);
            if (!prod && (e->rows == MD_DIM_ONE || e->cols == MD_DIM_ONE)) continue;
            int a = e->rows < e->cols ? e->rows : e->cols, b = e->rows < e->cols ? e->cols : e->rows, j = 0;
            while (j < npairs && (pairs[j][0] != a || pairs[j][1] != b)) j++;
            if (j < npairs) continue;
            pairs = md_xrealloc(pairs, (size_t)(npairs + 1) * sizeof *pairs);
            pairs[npairs][0] = a;
            pairs[npairs++][1] = b;
        }
    for (int j = 0; j < npairs; j++) {
        md_buf a = {0}, b = {0};
        em_dim_d(E, pairs[j][0], &a);
        em_dim_d(E, pairs[j][1], &b);
        md_buf_printf(out, "    if (%s * %s > MD_MAX_ELEMS) return 0;\n", a.s, b.s);
        md_buf_free(&a);
        md_buf_free(&b);
    }
    free(pairs);
    md_buf_puts(out, "    return 1;\n}\n\n");
}

/* The workspace function and the function of one plan, as fname (NULL:
   the public NAME_workspace and NAME).  Both check the sizes: the
   workspace function returns SIZE_MAX and the function NaN (writing
   nothing) when dims are not usable or the workspace would not fit. */
static void em_function(const emitter *E, const char *fname, md_buf *out)
{
    md_ctx *ctx = E->ctx;
    (void)ctx;
    if (fname) md_buf_printf(out, "static size_t %s_workspace(const %s_dims *dims)\n{\n", fname, E->name);
    else md_buf_printf(out, "size_t %s_workspace(const %s_dims *dims)\n{\n", E->name, E->name);
    md_buf_puts(out, "    if (!md_sizes_ok(dims)) return SIZE_MAX;\n");
    em_ws_sum(E, 1, out);
    md_buf_puts(out, "    if (md_nd > MD_MAX_ELEMS) return SIZE_MAX;\n");
    em_ws_sum(E, 0, out);
    md_buf_puts(out, "    return md_n;\n}\n\n");

    em_proto(E, fname, out);
    md_buf_puts(out, "\n{\n");
    if (!fname) md_buf_printf(out, "    if (%s_workspace(dims) == SIZE_MAX) return NAN;\n", E->name);
    int used_dims = !fname || strstr(E->body.s, "dims->") || strstr(E->decl.s ? E->decl.s : "", "dims->");
    if (!used_dims) md_buf_puts(out, "    (void)dims;\n");
    int used_work = E->decl.s && strstr(E->decl.s, "md_w");
    used_work |= E->nscr > 0;
    if (used_work) md_buf_puts(out, "    double *md_w = work;\n");
    else md_buf_puts(out, "    (void)work;\n");
    /* parameters the code never reads */
    for (int j = 0; j < E->nin; j++) {
        int used = 0, s = em_in(E, j);
        for (int k = 0; k < E->ntopo && !used; k++)
            if (E->topo[k]->kind == MD_SYM && E->topo[k]->ival == s) used = 1;
        if (!used) md_buf_printf(out, "    (void)%s;\n", E->pname[s]);
    }
    if (E->decl.s) md_buf_puts(out, E->decl.s);
    if (E->nscr) md_buf_puts(out, "    double *const md_scr = md_w;\n");
    md_buf_puts(out, "\n");
    md_buf_puts(out, E->body.s);
    md_buf_puts(out, "}\n");
}

/* static int PFX(dims) (PFX = P's md_plan or md_hvp_plan): the plan of
   P[0..np) with the fewest flops for these sizes (ties: the earlier);
   compiled with -DMD_FORCE_PLAN=k, plan k (0-based) whatever the sizes,
   when k < np. */
static void em_chooser(const emitter *P, int np, md_buf *out)
{
    md_buf_printf(out, "/* The plan with the fewest flops for these sizes (ties: the earlier);\n"
                       "   compiled with -DMD_FORCE_PLAN=k, plan k (0-based) whatever the sizes. */\n"
                       "static int %s(const %s_dims *dims)\n{\n"
                       "#ifdef MD_FORCE_PLAN\n"
                       "    if (MD_FORCE_PLAN >= 0 && MD_FORCE_PLAN < %d) {\n"
                       "        (void)dims;\n        return MD_FORCE_PLAN;\n    }\n"
                       "#endif\n"
                       "    const double md_c[%d] = {\n",
                  P[0].pfx, P[0].name, np, np);
    int used_dims = 0;
    for (int k = 0; k < np; k++) {
        char *c = em_cost(&P[k]);
        used_dims |= strstr(c, "dims->") != NULL;
        md_buf_printf(out, "        %s,\n", c);
        free(c);
    }
    md_buf_puts(out, "    };\n");
    if (!used_dims) md_buf_puts(out, "    (void)dims;\n");
    md_buf_printf(out, "    int md_k = 0;\n    for (int md_j = 1; md_j < %d; md_j++)\n"
                       "        if (md_c[md_j] < md_c[md_k]) md_k = md_j;\n    return md_k;\n}\n\n", np);
}

/* "return PFX<k>suffix(args);" for the plan k that PFX(dims) picks, or
   for the one plan. */
static void em_call_plan(md_buf *out, const char *pfx, int np, const char *suffix, const char *args)
{
    if (np == 1) {
        md_buf_printf(out, "    return %s0%s(%s);\n", pfx, suffix, args);
        return;
    }
    md_buf_printf(out, "    switch (%s(dims)) {\n", pfx);
    for (int k = 0; k < np; k++) {
        if (k + 1 < np) md_buf_printf(out, "    case %d: ", k);
        else md_buf_puts(out, "    default: ");
        md_buf_printf(out, "return %s%d%s(%s);\n", pfx, k, suffix, args);
    }
    md_buf_puts(out, "    }\n");
}

/* The plans P[0..np) of one public function as static PFX0, PFX1, ...,
   their chooser PFX and their workspace PFX_workspace, then the public
   function (run NULL; or static double run(...)), which runs the plan PFX
   picks for its dims (em_cost).  With P->fonly, the public function runs
   f alone by those plans (PFX_run, written before) when every output
   pointer is NULL. */
static void em_plans_text(const emitter *P, int np, const char *run, md_buf *out)
{
    const emitter *E = &P[0];
    md_ctx *ctx = E->ctx;
    for (int k = 0; k < np; k++) {
        char nm[48];
        snprintf(nm, sizeof nm, "%s%d", E->pfx, k);
        md_buf_printf(out, "/* %s%s: plan %d of %d. */\n", E->fname, run ? " alone (every gradient pointer NULL)" : "",
                      k + 1, np);
        em_function(&P[k], nm, out);
        md_buf_putc(out, '\n');
    }
    if (np > 1) em_chooser(P, np, out);
    md_buf_printf(out, "static size_t %s_workspace(const %s_dims *dims)\n{\n", E->pfx, E->name);
    em_call_plan(out, E->pfx, np, "_workspace", "dims");
    md_buf_puts(out, "}\n\n");
    /* the call, with the parameters forwarded */
    md_buf args = {0};
    md_buf_puts(&args, "dims");
    for (int j = 0; j < E->nin; j++) md_buf_printf(&args, ", %s", E->pname[em_in(E, j)]);
    for (int i = 0; i < E->n; i++) md_buf_printf(&args, ", %s", E->gname[i]);
    md_buf_puts(&args, ", work");
    (void)ctx;
    em_proto(E, run, out);
    md_buf_printf(out, "\n{\n    if (%s_workspace(dims) == SIZE_MAX) return NAN;\n", E->pfx);
    if (!run && E->fonly) {   /* every output pointer NULL: f alone, by its own plans */
        md_buf_puts(out, "    if (");
        for (int i = 0; i < E->n; i++) md_buf_printf(out, "%s!%s", i ? " && " : "", E->gname[i]);
        md_buf_printf(out, ")\n        return %s_run(dims", E->fonly->pfx);
        for (int j = 0; j < E->nin; j++) md_buf_printf(out, ", %s", E->pname[em_in(E, j)]);
        md_buf_puts(out, ", work);\n");
    }
    em_call_plan(out, E->pfx, np, "", args.s);
    md_buf_puts(out, "}\n\n");
    md_buf_free(&args);
}

/* "const long md_n0 = <size of the first variable>, md_o0 = 0, md_n1 = ...,
   md_o1 = md_o0 + md_n0, ..., md_N = <their sum>" (no ';'): the sizes
   and offsets of E's n variables in a vector of all of them. */
static void em_offsets(const emitter *E, int n, md_buf *out)
{
    for (int i = 0; i < n; i++) {
        const md_symbol *x = &E->ctx->syms[E->wrt[i]];
        char *z = em_size(E, x->rows, x->cols);
        md_buf_printf(out, "    const long md_n%d = %s, md_o%d = %s", i, z, i, i ? "" : "0");
        if (i) md_buf_printf(out, "md_o%d + md_n%d", i - 1, i - 1);
        md_buf_puts(out, ";\n");
        free(z);
    }
    md_buf_printf(out, "    const long md_N = md_o%d + md_n%d", n - 1, n - 1);
}

/* The body's start of a loop over unit directions md_c (0 <= c < N) in
   md_v: entry c set to 1, or for a symmetric variable c and its partner
   (the transposed entry) to 1/2 each, (E_ij + E_ji)/2, so that the
   products are those of the derivatives on the symmetric matrices; the
   loop resets md_v[md_c] and md_v[md_p] after its call. */
static void em_unit_dir(const emitter *E, int n, md_buf *out)
{
    md_buf_puts(out, "        long md_p = md_c;   /* the symmetric partner of c, or c */\n");
    for (int i = 0; i < n; i++) {
        const md_symbol *x = &E->ctx->syms[E->wrt[i]];
        if (x->kind != MD_SYM_SYMMETRIC) continue;
        md_buf r = {0};
        em_dim(E, x->rows, &r);
        md_buf_printf(out, "        if (md_c >= md_o%d && md_c < md_o%d + md_n%d) {   /* %s symmetric */\n"
                           "            const long md_l = md_c - md_o%d, md_q = %s;\n"
                           "            md_p = md_o%d + md_l / md_q + md_l %% md_q * md_q;\n        }\n",
                      i, i, i, x->name, i, r.s, i);
        md_buf_free(&r);
    }
    md_buf_puts(out, "        md_v[md_c] += md_p == md_c ? 1.0 : 0.5;\n"
                     "        if (md_p != md_c) md_v[md_p] += 0.5;\n");
}

/* "double NAME_hess(const NAME_dims *dims, <inputs>, double *H, double
   *work)" (E: an emitter of the file, nin: the program's inputs). */
static void em_hess_proto(const emitter *E, int nin, md_buf *out)
{
    emitter I = *E;   /* the program's inputs */
    I.nin = nin;
    I.in = NULL;
    md_buf hn = {0};
    md_buf_printf(&hn, "%s_hess", E->name);
    static const char *const extra[2] = {"double *H", "double *work"};
    em_proto_extra(&I, hn.s, extra, 2, out);
    md_buf_free(&hn);
}

/*
 * NAME_hess: the dense Hessian of f by all the --wrt variables together,
 * N x N (N the sum of their sizes, each in the memory order of the
 * layout), as N Hessian-vector products with unit directions (for a
 * symmetric variable the symmetrised unit (E_ij + E_ji)/2, so that the
 * columns are those of --order 2's Hessian on the symmetric matrices).
 * H v costs about what f and its gradients cost, so H costs N of those;
 * work: NAME_hess_workspace(dims) = NAME_workspace(dims) + N doubles (the
 * directions).  H's columns are written one by one; H is symmetric, so
 * its layout does not matter.  Q: NAME_hvp's emitter.
 */
static void em_hess_text(const emitter *Q, md_buf *out)
{
    md_ctx *ctx = Q->ctx;
    const char *nm = Q->name;
    int n = Q->n, nin = Q->nin - n;
    md_buf_printf(out, "size_t %s_hess_workspace(const %s_dims *dims)\n{\n    size_t md_w = %s_workspace(dims);\n"
                       "    if (md_w == SIZE_MAX) return SIZE_MAX;\n    return md_w + (size_t)(", nm, nm, nm);
    for (int i = 0; i < n; i++) {
        const md_symbol *x = &ctx->syms[Q->wrt[i]];
        char *z = em_size(Q, x->rows, x->cols);
        md_buf_printf(out, "%s(%s)", i ? " + " : "", z);
        free(z);
    }
    md_buf_puts(out, ");\n}\n\n");
    em_hess_proto(Q, nin, out);
    md_buf_puts(out, "\n{\n");
    md_buf_printf(out, "    if (%s_workspace(dims) == SIZE_MAX) return NAN;\n", nm);
    /* the blocks' sizes and offsets */
    em_offsets(Q, n, out);
    md_buf_puts(out, ";\n");
    md_buf_puts(out, "    if ((double)md_N * (double)md_N > MD_MAX_ELEMS) return NAN;\n"
                     "    double *const md_v = work, *const md_wk = work + md_N;\n"
                     "    double md_f = NAN;\n"
                     "    for (long md_i = 0; md_i < md_N; md_i++) md_v[md_i] = 0.0;\n"
                     "    for (long md_c = 0; md_c < md_N; md_c++) {\n");
    em_unit_dir(Q, n, out);
    /* the call: inputs, directions, products, one group per line */
    md_buf_printf(out, "        md_f = %s(dims", Q->fname);
    for (int k = 0; k < nin; k++) md_buf_printf(out, ", %s", Q->pname[k]);
    md_buf_printf(out, ",\n%*s", (int)strlen(Q->fname) + 15, "");
    for (int i = 0; i < n; i++) {
        const md_symbol *x = &ctx->syms[Q->wrt[i]];
        int sc = x->rows == MD_DIM_ONE && x->cols == MD_DIM_ONE;
        md_buf_printf(out, sc ? "%smd_v[md_o%d]" : "%smd_v + md_o%d", i ? ", " : "", i);
    }
    md_buf_printf(out, ",\n%*s", (int)strlen(Q->fname) + 15, "");
    for (int i = 0; i < n; i++) md_buf_printf(out, "%sH + md_c * md_N + md_o%d", i ? ", " : "", i);
    md_buf_puts(out, ", md_wk);\n"
                     "        md_v[md_c] = md_v[md_p] = 0.0;\n    }\n    return md_f;\n}\n\n");
}

/*
 * NAME_hess from the Hessian's blocks (o->hess), R the emitter of their
 * plans.  One variable: the plans' public function is NAME_hess itself
 * (its one output is H), and NAME_hess_workspace theirs.  Several:
 * NAME_hess_blocks writes the blocks of the upper triangle into the work
 * array, and NAME_hess copies each into H and its transpose into the
 * lower triangle (reading a block in the layout it was written in; H is
 * symmetric, so its own layout does not matter).  n: the variables.
 */
static void em_hess_blocks_text(const emitter *R, int n, md_buf *out)
{
    md_ctx *ctx = R->ctx;
    const char *nm = R->name;
    md_buf_printf(out, "size_t %s_hess_workspace(const %s_dims *dims)\n{\n", nm, nm);
    if (n == 1) {
        md_buf_printf(out, "    return %s_workspace(dims);\n}\n\n", R->pfx);
        return;
    }
    md_buf_printf(out, "    size_t md_w = %s_workspace(dims);\n    if (md_w == SIZE_MAX) return SIZE_MAX;\n", R->pfx);
    md_buf sz = {0}, szd = {0};
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) {
            const md_symbol *x = &ctx->syms[R->wrt[i]], *y = &ctx->syms[R->wrt[j]];
            char *a = em_size_t(R, x->rows, x->cols), *b = em_size_t(R, y->rows, y->cols);
            md_buf_printf(&sz, "%s(%s) * (%s)", sz.len ? " + " : "", a, b);
            char *ad = em_as_double(a), *bd = em_as_double(b);
            md_buf_printf(&szd, "%s(double)(%s) * (double)(%s)", szd.len ? " + " : "", ad, bd);
            free(a), free(b), free(ad), free(bd);
        }
    md_buf_printf(out, "    if ((double)md_w + %s > MD_MAX_ELEMS) return SIZE_MAX;\n", szd.s ? szd.s : "0");
    md_buf_printf(out, "    return md_w + %s;\n}\n\n", sz.s ? sz.s : "0");
    md_buf_free(&sz);
    md_buf_free(&szd);
    em_hess_proto(R, R->nin, out);
    md_buf_puts(out, "\n{\n");
    md_buf_printf(out, "    if (%s_hess_workspace(dims) == SIZE_MAX) return NAN;\n", nm);
    em_offsets(R, n, out);
    md_buf_puts(out, ";\n");
    /* the blocks, one after the other at the start of work */
    md_buf_puts(out, "    double *md_b[1 + ");
    md_buf_printf(out, "%d];\n    md_b[0] = work;\n", n * (n + 1) / 2);
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++, k++)
            md_buf_printf(out, "    md_b[%d] = md_b[%d] + md_n%d * md_n%d;\n", k + 1, k, i, j);
    md_buf_printf(out, "    const double md_f = %s(dims", R->fname);
    for (int s = 0; s < R->nin; s++) md_buf_printf(out, ", %s", R->pname[s]);
    for (k = 0; k < n * (n + 1) / 2; k++) md_buf_printf(out, ", md_b[%d]", k);
    md_buf_printf(out, ", md_b[%d]);\n", k);
    k = 0;
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++, k++) {
            char at[64];   /* element (md_r, md_c) of the n_i x n_j block */
            if (R->row) snprintf(at, sizeof at, "md_r * md_n%d + md_c", j);
            else snprintf(at, sizeof at, "md_r + md_c * md_n%d", i);
            md_buf_printf(out, "    for (long md_c = 0; md_c < md_n%d; md_c++)\n"
                               "        for (long md_r = 0; md_r < md_n%d; md_r++) {\n"
                               "            const double md_v = md_b[%d][%s];\n"
                               "            H[(md_o%d + md_r) + (md_o%d + md_c) * md_N] = md_v;\n"
                               "            H[(md_o%d + md_c) + (md_o%d + md_r) * md_N] = md_v;\n"
                               "        }\n",
                          j, i, k, at, i, j, j, i);
        }
    md_buf_puts(out, "    return md_f;\n}\n\n");
}

/* Runs the stages on plan roots r (f, then n outputs) into E, the
   emitter of NAME (role NULL: outputs d_<name>) or of another public
   function of the file. */
static int em_plan(emitter *E, md_ctx *ctx, int n, const int *wrt, const md_emit_opts *o, FILE *err, md_expr **r,
                   const em_role *role)
{
    md_norm_rewrite(ctx, n + 1, r);
    md_had_share(ctx, n + 1, r);
    em_init(E, ctx, n, wrt, o, err);
    em_apply_role(E, role);
    if (em_scan(E, r[0], r + 1) < 0) return -1;
    int rc = em_names(E);
    if (rc < 0) return rc;
    em_values(E);
    em_body(E, r[0], r + 1);
    E->use_mm |= E->use_mpow | E->use_chain;
    E->use_tcopy |= E->use_sm;
    return 0;
}

/* The plans of f and outs[0..n): struct rewrite, md_cost_plans, and the
   stages on each into *P (malloc'd, *np of them; every one to be freed
   with em_free, a zeroed one too).  0, or em_plan's error. */
static int em_function_plans(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_expr *const *outs,
                             const md_emit_opts *o, FILE *err, const em_role *role, emitter **P, int *np,
                             md_expr ***roots)
{
    md_expr **r = md_xmalloc((size_t)(n + 1) * sizeof *r);
    r[0] = f;
    for (int i = 0; i < n; i++) r[i + 1] = outs[i];
    md_struct_rewrite(ctx, n + 1, r);
    md_factor_rewrite(ctx, n + 1, r);
    *roots = r;
    md_expr **plans[EM_MAX_PLANS];
    *np = md_cost_plans(ctx, o ? o->size_hint : NULL, n + 1, r, EM_MAX_PLANS, plans);
    *P = md_xcalloc((size_t)*np, sizeof **P);
    int rc = 0;
    for (int k = 0; k < *np && !rc; k++) rc = em_plan(&(*P)[k], ctx, n, wrt, o, err, plans[k], role);
    for (int k = 0; k < *np; k++) free(plans[k]);
    return rc;
}

/* The emitter the file's text is written from: all[0] (NAME's first
   plan) with the callbacks and run-time helpers of every plan of every
   function in all[0..nall) (those call what they call); np: NAME's plans.
   Shares all[0]'s storage. */
static emitter em_merge(emitter *const *all, int nall, int np)
{
    for (int k = 1; k < nall; k++)
        for (int i = 0; i < all[k]->ngens; i++) em_add_gen(all[0], all[k]->gens[i].func, all[k]->gens[i].order);
    emitter M = *all[0];
    for (int k = 1; k < nall; k++) {
        const emitter *A = all[k];
        M.use_mm |= A->use_mm, M.use_wsyrk |= A->use_wsyrk, M.use_kron |= A->use_kron, M.use_chain |= A->use_chain;
        M.use_chain_plain |= A->use_chain_plain;
        M.use_chain_trace |= A->use_chain_trace, M.use_trdot |= A->use_trdot;
        M.use_tcopy |= A->use_tcopy, M.use_det |= A->use_det, M.use_sm |= A->use_sm;
        M.use_inv |= A->use_inv, M.use_mpow |= A->use_mpow, M.use_maxz |= A->use_maxz;
        M.use_lusym |= A->use_lusym, M.use_qf |= A->use_qf;
        if (A->nlus > M.nlus) M.nlus = A->nlus;
    }
    M.nplans = np;
    return M;
}

/* Does f alone deserve plans of its own?  When some plan of f and its
   gradients forms an inverse (the gradients need it) that no plan of f
   alone forms: f alone then takes solves, and NAME with every gradient
   pointer NULL runs those.  Otherwise each plan computes f as a plan of f
   alone would (costopt brackets f before the gradients) and a NULL
   gradient skips the rest. */
static int em_fonly_pays(const emitter *P, int np, const emitter *F, int nf)
{
    int pinv = 0, finv = 0;
    for (int k = 0; k < np; k++) pinv |= P[k].use_inv;
    for (int k = 0; k < nf; k++) finv |= F[k].use_inv;
    return pinv && !finv;
}

/* The static function that runs f alone's plans: PFX_run (malloc'd). */
static char *em_fonly_name(const emitter *F)
{
    md_buf b = {0};
    md_buf_printf(&b, "%s_run", F->pfx);
    return md_buf_take(&b);
}

/* The includes: the C library, and cblas.h when a helper calls it. */
static void em_includes(const emitter *M, md_buf *out)
{
    md_buf_puts(out, "#include <limits.h>\n#include <math.h>\n#include <stddef.h>\n#include <stdint.h>\n"
                     "#include <string.h>\n");
    if (M->o->blas && (M->use_mm || M->use_wsyrk || M->use_sm || M->use_trdot || M->use_qf))
        md_buf_puts(out, "#include <cblas.h>\n");
    md_buf_putc(out, '\n');
}

int md_emit_c(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_expr **grads, const md_emit_opts *o,
              md_buf *out, FILE *err)
{
    md_expr **chk = md_xcalloc((size_t)n * n + 2 * n + 2, sizeof *chk);
    chk[0] = f;
    for (int i = 0; i < n; i++) {
        chk[1 + i] = grads[i];
        chk[1 + n + i] = o && o->hvp ? o->hvp[i] : NULL;
    }
    for (int i = 0; i < n * n; i++) chk[1 + 2 * n + i] = o && o->hvp && o->hess ? o->hess[i] : NULL;
    int bad = md_emit_check(ctx, n * n + 2 * n + 1, chk, err ? err : stderr);
    free(chk);
    if (bad) return -1;
    if (!md_is_scalar(f)) {
        fprintf(err ? err : stderr, "matdiff: the function must be scalar-valued to emit C code\n");
        return -1;
    }
    /* structure first (diagonals as scalings), then the plans: products
       bracketed by cost, shared sub-products, Gram matrices for norms of
       products -- one plan when every size has a hint, else the few that
       win for some sizes (costopt.c).  f alone has plans of its own only
       when the gradients' would form an inverse f does not need
       (em_fonly_pays).  With o->hvp, the same for NAME_hvp: f and the blocks of H v */
    emitter *P = NULL, *Q = NULL, *R = NULL, *F = NULL;
    int np = 0, nq = 0, nr = 0, nf = 0;
    md_expr **roots = NULL, **hroots = NULL, **rroots = NULL, **froots = NULL, **blk = NULL;
    char **bnames = NULL;
    int hvp = o && o->hvp, hess = hvp && o->hess, nb = n * (n + 1) / 2;
    int rc = em_function_plans(ctx, f, n, wrt, grads, o, err, NULL, &P, &np, &roots);
    em_role rh = em_role_hvp(ctx);
    if (!rc && hvp) rc = em_function_plans(ctx, f, n, wrt, o->hvp, o, err, &rh, &Q, &nq, &hroots);
    if (!rc && hess) {
        blk = md_xcalloc((size_t)nb + 1, sizeof *blk);
        bnames = em_hess_names(ctx, n, wrt);
        for (int i = 0, k = 0; i < n; i++)
            for (int j = i; j < n; j++) blk[k++] = o->hess[i * n + j];
        em_role rs = em_role_hess(ctx, n, (const char *const *)bnames);
        rc = em_function_plans(ctx, f, nb, wrt, blk, o, err, &rs, &R, &nr, &rroots);
    }
    /* f alone by its own plans when the gradients' form an inverse that f
       alone would not (it takes solves: inv(S)*Y as a solve, tr(Y'*inv(S)*Y)
       as a quadratic form) */
    if (!rc && n > 0) {
        em_role rf = {"", "md_fplan", "d_", NULL, P[0].nin, P[0].in, 0};
        rc = em_function_plans(ctx, f, 0, wrt, NULL, o, err, &rf, &F, &nf, &froots);
        if (!rc && !em_fonly_pays(P, np, F, nf)) {
            for (int k = 0; k < nf; k++) em_free(&F[k]);
            nf = 0;
        }
    }
    if (rc) goto done;
    rc = -1;
    if (hess) Q[0].hess_expr = 1;
    if (nf)
        for (int k = 0; k < np; k++) P[k].fonly = &F[0];

    /* assemble: the callbacks and helpers any plan calls (and those they
       call); NAME_hvp calls derivatives of generic functions one order up */
    int nall = np + nq + nr + nf;
    emitter **all = md_xcalloc((size_t)nall + 1, sizeof *all);
    for (int k = 0; k < np; k++) all[k] = &P[k];
    for (int k = 0; k < nq; k++) all[np + k] = &Q[k];
    for (int k = 0; k < nr; k++) all[np + nq + k] = &R[k];
    for (int k = 0; k < nf; k++) all[np + nq + nr + k] = &F[k];
    emitter M = em_merge(all, nall, np);
    /* the comment shows f and the gradients as derived (diagonals as
       scalings), not one plan's bracketing */
    if (hess) Q[0].hessE = &R[0];
    em_top_comment(&M, hvp ? &Q[0] : NULL, roots[0], roots + 1, 0, out);
    em_includes(&M, out);
    em_decls(&M, hvp ? &Q[0] : NULL, out);
    md_buf_putc(out, '\n');
    em_helpers(&M, out);
    em_sizes_ok(all, nall, out);
    free(all);
    if (np == 1 && !hvp && !nf) {
        em_function(&P[0], NULL, out);   /* the common case, without indirection */
    } else {
        if (nf) {
            char *run = em_fonly_name(&F[0]);
            em_plans_text(F, nf, run, out);
            free(run);
        }
        em_plans_text(P, np, NULL, out);
        if (hvp) {
            em_plans_text(Q, nq, NULL, out);
            if (hess) {
                em_plans_text(R, nr, NULL, out);
                em_hess_blocks_text(&R[0], n, out);
            } else {
                em_hess_text(&Q[0], out);
            }
        }
        md_buf_printf(out, "size_t %s_workspace(const %s_dims *dims)\n{\n    size_t md_n = %s_workspace(dims);\n",
                      M.name, M.name, P[0].pfx);
        if (hvp)
            md_buf_printf(out, "    size_t md_h = %s_workspace(dims);   /* SIZE_MAX stays the larger */\n"
                               "    if (md_h > md_n) md_n = md_h;\n", Q[0].pfx);
        if (nf)
            md_buf_printf(out, "    size_t md_f = %s_workspace(dims);   /* f alone */\n"
                               "    if (md_f > md_n) md_n = md_f;\n", F[0].pfx);
        md_buf_puts(out, "    return md_n;\n}\n");
    }
    rc = 0;
done:
    for (int k = 0; k < np; k++) em_free(&P[k]);
    for (int k = 0; k < nq; k++) em_free(&Q[k]);
    for (int k = 0; k < nr; k++) em_free(&R[k]);
    for (int k = 0; k < nf; k++) em_free(&F[k]);
    free(F);
    free(froots);
    free(P);
    free(Q);
    free(R);
    free(roots);
    free(hroots);
    free(rroots);
    free(blk);
    if (bnames)
        for (int k = 0; k < nb; k++) free(bnames[k]);
    free(bnames);
    return rc;
}

/* ---- non-scalar functions: F, J v, J' u and J ---------------------------- */

/*
 * NAME_jac: the dense Jacobian J (M x N, column-major), as N calls of
 * NAME_jvp with unit directions (symmetrised for a symmetric variable,
 * as for NAME_hess) or, when M < N, as M calls of NAME_vjp with unit u,
 * each row scattered into J.  P, Q, R: the emitters of NAME, NAME_jvp,
 * NAME_vjp; F: the function (its size M).
 */
static void em_jac_text(const emitter *P, const emitter *Q, const emitter *R, const md_expr *F, md_buf *out)
{
    md_ctx *ctx = P->ctx;
    const char *nm = P->name;
    int n = Q->n ? R->n - 1 : 0, nin = P->nin;
    char *m = em_size(P, F->rows, F->cols);
    md_buf_printf(out, "size_t %s_jac_workspace(const %s_dims *dims)\n{\n    size_t md_w = %s_workspace(dims);\n"
                       "    if (md_w == SIZE_MAX) return SIZE_MAX;\n    return md_w + (size_t)(%s) + (size_t)(",
                  nm, nm, nm, m);
    for (int i = 0; i < n; i++) {
        const md_symbol *x = &ctx->syms[P->wrt[i]];
        char *z = em_size(P, x->rows, x->cols);
        md_buf_printf(out, "%s(%s)", i ? " + " : "", z);
        free(z);
    }
    md_buf_puts(out, ");\n}\n\n");
    md_buf fb = {0}, jn = {0};
    md_buf_printf(&fb, "double *%s", P->gname[0]);
    md_buf_printf(&jn, "%s_jac", nm);
    const char *extra[3] = {fb.s, "double *J", "double *work"};
    em_proto_extra(P, jn.s, extra, 3, out);
    md_buf_free(&fb);
    md_buf_free(&jn);
    md_buf_puts(out, "\n{\n");
    md_buf_printf(out, "    if (%s_jac_workspace(dims) == SIZE_MAX) return NAN;\n", nm);
    em_offsets(P, n, out);
    md_buf_printf(out, ", md_M = %s;\n", m);
    free(m);
    md_buf_puts(out, "    if ((double)md_M * (double)md_N > MD_MAX_ELEMS) return NAN;\n"
                     "    double *const md_v = work, *const md_u = work + md_N, *const md_wk = md_u + md_M;\n"
                     "    for (long md_i = 0; md_i < md_N; md_i++) md_v[md_i] = 0.0;\n"
                     "    for (long md_i = 0; md_i < md_M; md_i++) md_u[md_i] = 0.0;\n");
    /* F once */
    md_buf_printf(out, "    if (%s) %s(dims", P->gname[0], P->fname);
    for (int k = 0; k < nin; k++) md_buf_printf(out, ", %s", P->pname[k]);
    md_buf_printf(out, ", %s, md_wk);\n", P->gname[0]);
    /* rows: J' e_r */
    md_buf_puts(out, "    if (md_M < md_N) {   /* row r: the gradients of e_r : F */\n"
                     "        for (long md_r = 0; md_r < md_M; md_r++) {\n            md_u[md_r] = 1.0;\n");
    md_buf_printf(out, "            %s(dims", R->fname);
    for (int k = 0; k < nin; k++) md_buf_printf(out, ", %s", P->pname[k]);
    md_buf_puts(out, ", md_u, NULL");
    for (int i = 0; i < n; i++) md_buf_printf(out, ", md_v + md_o%d", i);
    md_buf_puts(out, ", md_wk);\n            md_u[md_r] = 0.0;\n"
                     "            for (long md_c = 0; md_c < md_N; md_c++) J[md_r + md_c * md_M] = md_v[md_c];\n"
                     "        }\n        return 0.0;\n    }\n");
    /* columns: J e_c */
    md_buf_puts(out, "    for (long md_c = 0; md_c < md_N; md_c++) {   /* column c: J along e_c */\n");
    em_unit_dir(P, n, out);
    md_buf_printf(out, "        %s(dims", Q->fname);
    for (int k = 0; k < nin; k++) md_buf_printf(out, ", %s", P->pname[k]);
    for (int i = 0; i < n; i++) {
        const md_symbol *x = &ctx->syms[P->wrt[i]];
        int sc = x->rows == MD_DIM_ONE && x->cols == MD_DIM_ONE;
        md_buf_printf(out, sc ? ", md_v[md_o%d]" : ", md_v + md_o%d", i);
    }
    md_buf_puts(out, ", NULL, J + md_c * md_M, md_wk);\n"
                     "        md_v[md_c] = md_v[md_p] = 0.0;\n    }\n    return 0.0;\n}\n\n");
}

int md_emit_c_map(md_ctx *ctx, md_expr *F, int n, const int *wrt, const md_emit_map *m, const md_emit_opts *o,
                  int header, md_buf *out, FILE *err)
{
    md_expr **chk = md_xcalloc((size_t)n + 3, sizeof *chk);
    chk[0] = F, chk[1] = m->jvp;
    for (int i = 0; i < n; i++) chk[2 + i] = m->vjp[i];
    int bad = md_emit_check(ctx, n + 2, chk, err ? err : stderr);
    free(chk);
    if (bad) return -1;
    /* the three functions' inputs and outputs */
    int *inQ = md_xcalloc((size_t)m->nprog + n + 1, sizeof *inQ), *inR = md_xcalloc((size_t)m->nprog + 2, sizeof *inR);
    for (int k = 0; k < m->nprog; k++) inQ[k] = inR[k] = k;
    for (int i = 0; i < n; i++) inQ[m->nprog + i] = m->dir[i];
    inR[m->nprog] = m->u;
    static const char *const onP[] = {"F"}, *const onQ[] = {"F", "Jv"};
    char **onR = md_xcalloc((size_t)n + 2, sizeof *onR);
    onR[0] = md_xstrdup("F");
    for (int i = 0; i < n; i++) {
        md_buf b = {0};
        md_buf_printf(&b, "d_%s", ctx->syms[wrt[i]].name);
        onR[1 + i] = md_buf_take(&b);
    }
    em_role role[3] = {{"", "md_plan", "d_", onP, m->nprog, NULL, 1},
                       {"_jvp", "md_jvp_plan", "d_", onQ, m->nprog + n, inQ, 1},
                       {"_vjp", "md_vjp_plan", "d_", (const char *const *)onR, m->nprog + 1, inR, 1}};
    md_expr *zero = md_num_si(ctx, 0, 1);
    md_expr *outs[3][2] = {{F, NULL}, {F, m->jvp}, {F, NULL}};
    md_expr **routs = md_xcalloc((size_t)n + 2, sizeof *routs);
    routs[0] = F;
    for (int i = 0; i < n; i++) routs[1 + i] = m->vjp[i];
    int nout[3] = {1, 2, 1 + n};
    md_expr *fr[3] = {zero, zero, zero};   /* each returns 0: J' u needs no F */
    emitter *S[3] = {NULL, NULL, NULL};
    int ns[3] = {0, 0, 0}, rc = 0;
    md_expr **roots[3] = {NULL, NULL, NULL};
    if (header) {
        for (int k = 0; k < 3; k++) {
            S[k] = md_xcalloc(1, sizeof *S[k]);
            ns[k] = 1;
            em_init(S[k], ctx, nout[k], wrt, o, err);
            em_apply_role(S[k], &role[k]);
            for (uint32_t i = 0; i < ctx->nnodes; i++) {
                const md_expr *e = ctx->nodes[i];
                if (e->kind == MD_FUNC && e->ival == MD_FN_GENERIC) em_add_gen(S[k], e->aux, e->order);
            }
            if (!rc) rc = em_names(S[k]);
        }
    } else {
        for (int k = 0; k < 3 && !rc; k++)
            rc = em_function_plans(ctx, fr[k], nout[k], wrt, k == 2 ? routs : outs[k], o, err, &role[k], &S[k], &ns[k],
                                   &roots[k]);
    }
    if (!rc) {
        S[0][0].jvpE = &S[1][0];
        S[0][0].vjpE = &S[2][0];
        S[0][0].mapF = F;
        if (header) {
            em_top_comment(&S[0][0], NULL, NULL, NULL, 1, out);
            md_buf_putc(out, '\n');
            em_decls(&S[0][0], NULL, out);
        } else {
            int nall = ns[0] + ns[1] + ns[2], j = 0;
            emitter **all = md_xcalloc((size_t)nall + 1, sizeof *all);
            for (int k = 0; k < 3; k++)
                for (int p = 0; p < ns[k]; p++) all[j++] = &S[k][p];
            emitter M = em_merge(all, nall, ns[0]);
            md_expr **ex = md_xcalloc((size_t)n + 2, sizeof *ex);
            ex[0] = roots[1][2];
            for (int i = 0; i < n; i++) ex[1 + i] = roots[2][2 + i];
            em_top_comment(&M, NULL, roots[0][1], ex, 0, out);
            free(ex);
            em_includes(&M, out);
            em_decls(&M, NULL, out);
            md_buf_putc(out, '\n');
            em_helpers(&M, out);
            em_sizes_ok(all, nall, out);
            free(all);
            for (int k = 0; k < 3; k++) em_plans_text(S[k], ns[k], NULL, out);
            em_jac_text(&S[0][0], &S[1][0], &S[2][0], F, out);
            md_buf_printf(out, "size_t %s_workspace(const %s_dims *dims)\n{\n    size_t md_n = %s_workspace(dims), md_k;\n",
                          M.name, M.name, S[0][0].pfx);
            for (int k = 1; k < 3; k++)
                md_buf_printf(out, "    md_k = %s_workspace(dims);   /* SIZE_MAX stays the larger */\n"
                                   "    if (md_k > md_n) md_n = md_k;\n", S[k][0].pfx);
            md_buf_puts(out, "    return md_n;\n}\n");
        }
    }
    for (int k = 0; k < 3; k++) {
        for (int p = 0; p < ns[k]; p++) em_free(&S[k][p]);
        free(S[k]);
        free(roots[k]);
    }
    for (int i = 0; i <= n; i++) free(onR[i]);
    free(onR);
    free(routs);
    free(inQ);
    free(inR);
    return rc;
}
