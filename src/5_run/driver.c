/*
 * driver.c -- one run of the pipeline (see md_driver.h).
 *
 *     parse -> typecheck -> gradients -> one output mode -> read back
 *
 * The output modes are one function each: the function itself simplified
 * (run_simplify), a derivation (run_steps), C code (run_c), LaTeX
 * (run_latex) and the default text program (run_text).  What they share
 * -- resolving --wrt, naming the gradients, the header comment, the check
 * lines -- is here once.
 *
 * Reading back.  A result is only as good as its printed text, so
 * print_verified prints the program part of a result (declarations,
 * temporaries, the results), reads it back into a fresh context
 * (md_readback) and compares it with the internal graph on random data
 * inside the function's domain.  If the plain text does not read back
 * (nothing fixes the size of a constant after a variable cancelled), it
 * is printed again with every size explicit; if that fails too, the run
 * ends with an internal error rather than a wrong answer.  --check
 * compares the text read back with finite differences of the input (for
 * LaTeX and C, the text form of the same gradients).
 */
#include "md_driver.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "md_ast.h"
#include "md_diag.h"
#include "md_diff.h"
#include "md_eval.h"
#include "md_expr.h"
#include "md_print.h"
#include "md_readback.h"
#include "md_shape.h"
#include "md_simplify.h"
#include "md_steps.h"

void md_request_init(md_request *rq)
{
    memset(rq, 0, sizeof *rq);
    rq->seed = 1;
    rq->order = 1;
    rq->emit.name = "f";
    rq->emit.blas = 1;
}

/* What is printed: gradients of a scalar function, derivatives of a
   vector or matrix one (md_derivative), or Hessian blocks. */
typedef enum md_derivative_kind { MD_DER_GRADIENT, MD_DER_JACOBIAN, MD_DER_HESSIAN } md_derivative_kind;

/* Everything one run owns. */
typedef struct md_runstate {
    const md_request *rq;
    md_source src;
    FILE *err;
    md_buf *out;
    md_ctx *ctx;
    md_program *prog;
    md_typed typed;
    int nsyms_prog;        /* variables of the program (later stages may add symbols) */
    int nv;                /* the variables to differentiate by */
    int *wrt;
    md_derivative_kind kind;
    int nres;              /* results: nv, or nv*nv Hessian blocks */
    md_expr **grads;       /* the results (gradients, Jacobians, Hessian blocks) */
    const char **gnames;   /* their names when there are several, else NULL */
    char **owned;
    const char **avoid;    /* names temporaries must not take */
    const char **sbound;   /* --simplify: the user's names but the function's */
    md_expr **sbval;
} md_runstate;

/* ---- reading the printed text back ------------------------------------- */

/* Normwise relative difference of two results, or INFINITY when their
   shapes differ. */
static double mat_diff(const md_mat *a, const md_mat *b)
{
    if (a->rows != b->rows || a->cols != b->cols) return INFINITY;
    double d = 0, m = 1;
    for (long i = 0; i < a->rows * a->cols; i++) {
        d = fmax(d, fabs(a->v[i] - b->v[i]));
        m = fmax(m, fmax(fabs(a->v[i]), fabs(b->v[i])));
    }
    return d / m;
}

/*
 * Is root i's value at env too unstable for a difference d between two
 * spellings of it to mean anything?  Recomputed with every node rounded
 * to double, it moves by at least d: the long double values differ by
 * rounding amplified through an ill-conditioned step (the inverse of a
 * 25-factor chain times its transpose: 2e-8 between two bracketings of
 * the same text), the rule md_check applies to gradients (MD_INC_COND).
 */
static int unstable_at(md_env *env, int n, md_expr **roots, const md_mat *a, int i, double d)
{
    md_mat *ad = md_xcalloc((size_t)n + 1, sizeof *ad);
    env->doubles = 1;
    int rc = md_eval_many(env, n, roots, ad);
    env->doubles = 0;
    int unstable = rc < 0 || mat_diff(&a[i], &ad[i]) >= d;
    if (rc == 0)
        for (int k = 0; k < n; k++) md_mat_free(&ad[k]);
    free(ad);
    return unstable;
}

/*
 * Do the printed roots (rb) evaluate to what the graph's roots evaluate
 * to?  Compared at the first two points (of up to six drawn) where the
 * graph is defined; wrong only if both disagree, so that rounding
 * amplified at one unlucky point is not taken for a printer bug.  No point
 * inside the domain at all: nothing to compare, and the structural
 * read-back has to do.
 */
static int agrees(md_runstate *r, md_expr *f, int n, md_expr **roots, md_readback *rb, char *why,
                  size_t whylen)
{
    int compared = 0, bad = 0;
    for (unsigned long k = 0; k < 6 && compared < 2; k++) {
        md_env env;
        int erc = md_env_random(r->ctx, f, r->rq->seed + 104729ul * (k + 1), &env);
        if (erc < 0) {
            md_env_free(&env);
            if (erc == MD_EVAL_BUG) {
                snprintf(why, whylen, "cannot be compared: %s", md_eval_bug());
                bad = 2;
            }
            break;
        }
        md_mat *a = md_xcalloc((size_t)n + 1, sizeof *a), *b = md_xcalloc((size_t)n + 1, sizeof *b);
        int ra = md_eval_many(&env, n, roots, a);
        if (ra == 0) {
            int rbk = md_readback_eval(rb, &env, n, b);
            compared++;
            if (rbk == MD_EVAL_BUG) {
                snprintf(why, whylen, "does not fit the variables: %s", md_eval_bug());
                bad = 2;
            } else if (rbk < 0) {
                snprintf(why, whylen, "is not defined where the result is");
                bad++;
            } else {
                for (int i = 0; i < n; i++) {
                    double d = mat_diff(&a[i], &b[i]);
                    if (d > 1e-8 && !unstable_at(&env, n, roots, a, i, d)) {
                        if (getenv("MATDIFF_DEBUG")) {
                            char *t = md_expr_to_string(r->ctx, roots[i]);
                            fprintf(r->err, "matdiff: debug: result %d differs by %.3g: %s\n", i, d, t);
                            free(t);
                        }
                        snprintf(why, whylen, "evaluates to something else (difference %.1e)", d);
                        bad++;
                        break;
                    }
                }
            }
            for (int i = 0; i < n; i++) md_mat_free(&b[i]);
        } else if (ra == MD_EVAL_BUG) {
            snprintf(why, whylen, "cannot be compared: %s", md_eval_bug());
            bad = 2;
            compared = 2;
        }
        for (int i = 0; i < n; i++) md_mat_free(&a[i]);
        free(a);
        free(b);
        md_env_free(&env);
        if (bad >= 2) break;
    }
    return bad < 2 && !(compared == 1 && bad == 1);
}

/* The constants (matrix(1), eye, ...) reachable from the roots. */
static void collect_consts(md_expr *e, char *seen, md_expr ***v, int *n, int *cap)
{
    if (seen[e->id]) return;
    seen[e->id] = 1;
    if ((e->kind == MD_ONES || e->kind == MD_EYE || e->kind == MD_ZERO) && !md_is_scalar(e)) {
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 8;
            *v = md_xrealloc(*v, (size_t)*cap * sizeof **v);
        }
        (*v)[(*n)++] = e;
    }
    for (int i = 0; i < e->nargs; i++) collect_consts(e->args[i], seen, v, n, cap);
}

/* Does e print a dimension name of its own accord: commutation(m, n),
   or a constant inside kron or vec (kron(eye(q), A): nothing outside
   fixes its size)?  Then the declarations must name every dimension. */
static int names_dims(md_expr *e, char *seen)
{
    if (seen[e->id]) return 0;
    seen[e->id] = 1;
    if (e->kind == MD_COMM) return 1;
    if (e->kind == MD_KRON || e->kind == MD_VEC)
        for (int i = 0; i < e->nargs; i++)
            if (e->args[i]->kind == MD_EYE || e->args[i]->kind == MD_ONES || e->args[i]->kind == MD_ZERO) return 1;
    for (int i = 0; i < e->nargs; i++)
        if (names_dims(e->args[i], seen)) return 1;
    return 0;
}

/* The program text of the roots, with sizes on the constants marked in
   sized (NULL: none). */
static void print_with(md_runstate *r, int n, md_expr **roots, const char *const *names,
                       const char *sized, uint32_t nsized, md_buf *b)
{
    /* any size written: every dimension declared (the second attempt
       always declares them: vec(x0) - vec(sin(U)) only reads back when
       x0 and U are known to be of one shape) */
    int any = sized != NULL;
    if (!any) {
        char *seen = md_xcalloc(r->ctx->nnodes, 1);
        for (int i = 0; i < n && !any; i++) any = names_dims(roots[i], seen);
        free(seen);
    }
    md_print_decls_ex(r->ctx, b, any ? MD_PRINT_SIZED : 0);
    md_print_program_sized(r->ctx, b, n, roots, names, r->avoid, 0, sized, nsized);
}

/* Does the text read back (parse and typecheck), whatever its values? */
static int reads_back(md_runstate *r, int n, const char *const *names, const md_buf *b)
{
    md_readback rb;
    int ok = md_readback_open(&rb, r->ctx, b->s ? b->s : "", n, names) == 0;
    md_readback_close(&rb);
    return ok;
}

/*
 * Prints the program part of a result (declarations, temporaries, the n
 * roots, named names[i] when names is not NULL) into text, read back into
 * *rb (left open for --check).  When the plain text leaves the size of a
 * constant open, constants get their sizes written (eye(n),
 * matrix(1, n, p)): all of them first, then each one that the text does
 * not need sized goes back to the plain spelling (the first 32 are tried).
 * Returns 0, or MD_EXIT_INTERNAL after a message.
 */
static int print_verified(md_runstate *r, md_expr *f, int n, md_expr **roots,
                          const char *const *names, md_buf *text, md_readback *rb)
{
    char why[600] = "";
    char *sized = NULL;
    uint32_t nsized = 0;
    for (int t = 0; t < 2; t++) {
        md_buf b = {0};
        if (t == 1) {
            /* the sizes only where they are needed */
            char *seen = md_xcalloc(r->ctx->nnodes, 1);
            md_expr **consts = NULL;
            int nc = 0, cap = 0;
            for (int i = 0; i < n; i++) collect_consts(roots[i], seen, &consts, &nc, &cap);
            /* and in the user's named values, which the text may define
               as they are where the roots hold their transposes (T' for
               sin(vector(1)), T = sin(vector(1)')) */
            for (int k = 0; k < r->ctx->nbound; k++)
                if (r->ctx->bval[k]->id < r->ctx->nnodes) collect_consts(r->ctx->bval[k], seen, &consts, &nc, &cap);
            free(seen);
            nsized = r->ctx->nnodes;
            sized = md_xcalloc(nsized, 1);
            for (int i = 0; i < nc; i++) sized[consts[i]->id] = 1;
            for (int i = 0; i < nc && i < 32; i++) {
                sized[consts[i]->id] = 0;
                md_buf_free(&b);
                print_with(r, n, roots, names, sized, nsized, &b);
                if (!reads_back(r, n, names, &b)) sized[consts[i]->id] = 1;
            }
            free(consts);
            md_buf_free(&b);
        }
        print_with(r, n, roots, names, sized, nsized, &b);
        if (getenv("MATDIFF_DEBUG")) fprintf(r->err, "matdiff: debug: printed:\n%s", b.s ? b.s : "");
        if (md_readback_open(rb, r->ctx, b.s ? b.s : "", n, names) < 0) {
            if (t == 0) snprintf(why, sizeof why, "%s", rb->why);
        } else {
            char w[300];
            if (agrees(r, f, n, roots, rb, w, sizeof w)) {
                md_buf_puts(text, b.s);
                md_buf_free(&b);
                free(sized);
                return 0;
            }
            snprintf(why, sizeof why, "the printed text %s", w);
        }
        md_readback_close(rb);
        md_buf_free(&b);
    }
    free(sized);
    fprintf(r->err, "matdiff: internal error: the result cannot be printed faithfully: %s\n", why);
    return MD_EXIT_INTERNAL;
}

/*
 * The Jacobian check through the gradient check: for a weight w, a fresh
 * column vector of vec(F)'s length drawn at random like the other
 * variables, the scalar w'*vec(F) has gradient J'w by X (reshaped to X's
 * shape), or w'*vec(C) when X is a scalar and C (F's shape) is printed.
 * md_check_with compares it with central differences of w'*vec(F) along
 * random D, which is w' J vec(D) against the directional derivative of
 * F: every direction D and every weighting of F's entries is exercised
 * over the points drawn.
 */
typedef struct md_jac_check {
    md_readback *rb;
    md_ctx *ctx;
    md_expr *f;
    int wsym;              /* the weight W */
    int nv;
    const int *wrt;
} md_jac_check;

static int eval_jacobian_check(void *arg, const md_env *env, int n, md_mat *out)
{
    md_jac_check *jc = arg;
    md_mat *J = md_xcalloc((size_t)n + 1, sizeof *J);
    int rc = md_readback_eval(jc->rb, env, n, J);
    if (rc < 0) {
        free(J);
        for (int i = 0; i < n; i++) out[i] = (md_mat){0, 0, NULL};
        return rc;
    }
    const md_mat *W = &env->val[jc->wsym];
    long nf = W->rows * W->cols;
    for (int i = 0; i < n; i++) {
        const md_mat *X = &env->val[jc->wrt[i]];
        long nx = X->rows * X->cols;
        out[i] = md_mat_new(X->rows, X->cols);
        if (J[i].rows * J[i].cols != nf * nx || (nx > 1 && J[i].rows != nf)) {
            md_eval_note_bug("the printed derivative does not have the shape d vec(F)/d vec(X)'");
            rc = MD_EVAL_BUG;
        } else {
            /* J'vec(W); for a scalar X, J has F's shape and this is W:J */
            for (long k = 0; k < nx; k++) {
                long double a = 0.0L;
                for (long m = 0; m < nf; m++) a += (long double)J[i].v[m + k * nf] * W->v[m];
                out[i].v[k] = (double)a;
            }
        }
        md_mat_free(&J[i]);
    }
    free(J);
    if (rc < 0)
        for (int i = 0; i < n; i++) md_mat_free(&out[i]);
    return rc;
}

/* The check of the printed results against finite differences of f, as
   lines "<cm> check d/dX: ..."; returns 0 or MD_EXIT_CHECK. */
static int check_printed(md_runstate *r, md_readback *rb, const char *cm, md_buf *lines)
{
    md_ctx *ctx = r->ctx;
    md_check_result *res = md_xcalloc((size_t)r->nres + 1, sizeof *res);
    md_expr *f = r->typed.f;
    int crc;
    if (r->kind == MD_DER_HESSIAN) {
        crc = md_check_hessian_with(ctx, f, r->nv, r->wrt, md_readback_eval, rb, r->rq->seed, 1e-6, res, r->err);
    } else if (r->kind == MD_DER_JACOBIAN) {
        /* the weight: a column vector w of vec(F)'s length that no
           program can name, and the scalar w'*vec(F) */
        md_expr *vf = md_vec_of(ctx, f);
        int ws = md_ctx_find_sym(ctx, "%w");
        if (ws < 0) ws = md_ctx_add_sym(ctx, "%w", MD_SYM_VECTOR, vf->rows, MD_DIM_ONE);
        md_jac_check jc = {rb, ctx, f, ws, r->nv, r->wrt};
        md_expr *phi = md_frob(ctx, md_sym(ctx, ws), vf);
        crc = md_check_with(ctx, phi, r->nv, r->wrt, eval_jacobian_check, &jc, r->rq->seed, 1e-6, res, r->err);
    } else {
        crc = md_check_with(ctx, f, r->nv, r->wrt, md_readback_eval, rb, r->rq->seed, 1e-6, res, r->err);
    }
    const char *what = r->kind == MD_DER_GRADIENT ? "gradient" : r->kind == MD_DER_JACOBIAN ? "derivative"
                                                                                        : "second derivative";
    if (crc < 0) {
        md_buf_printf(lines, "%s check: no point inside the function's domain was found (where it is defined and its value fits in a double); nothing was checked\n", cm);
    } else {
        for (int i = 0; i < r->nres; i++) {
            /* "gradient", "derivative" or "second derivative" */
            static const char *const why[] = {
                [MD_INC_STEEP] = "at every point tried the function is too steep for finite differences to settle "
                                 "(try another --seed)",
                [MD_INC_GRAD] = "at every point tried the %s cannot be evaluated (a singular matrix inside it, "
                                "or an overflow; try another --seed)",
                [MD_INC_FLAT] = "the function does not change in floating point when this variable does (is it "
                                "swallowed by a much larger term?)",
                [MD_INC_COND] = "at every point tried the %s disagrees, but its value there is unstable "
                                "(rounded to double it moves by more than 1e-4: an ill-conditioned inverse, or "
                                "the sine of a huge number), so it cannot be judged (try another --seed)",
            };
            md_buf label = {0};
            if (r->kind == MD_DER_HESSIAN)
                md_buf_printf(&label, "d2/d%s d%s", ctx->syms[r->wrt[i / r->nv]].name, ctx->syms[r->wrt[i % r->nv]].name);
            else
                md_buf_printf(&label, "d/d%s", ctx->syms[r->wrt[i]].name);
            if (!res[i].ok && res[i].inconclusive) {
                md_buf_printf(lines, "%s check %s: inconclusive: ", cm, label.s);
                md_buf_printf(lines, why[res[i].inconclusive], what);
                md_buf_putc(lines, '\n');
            }
            else
                md_buf_printf(lines, "%s check %s: worst relative error %.1e against %s (%s)\n", cm, label.s,
                              res[i].worst_rel_err,
                              r->kind == MD_DER_HESSIAN ? "second differences of f" : "finite differences",
                              res[i].ok ? "ok" : "FAILED");
            md_buf_free(&label);
        }
    }
    int inconclusive = crc > 0;
    for (int i = 0; i < r->nres; i++)
        if (!res[i].ok && !res[i].inconclusive) inconclusive = 0;
    if (crc) {
        if (crc < 0)
            fprintf(r->err, "matdiff: --check failed: no point inside the function's domain was found (where it is "
                            "defined and its value fits in a double)\n");
        else if (inconclusive)
            fprintf(r->err, "matdiff: --check failed: some %s could not be judged at the points tried (inconclusive)\n",
                    what);
        else
            fprintf(r->err, "matdiff: --check failed: a %s disagrees with finite differences\n", what);
        free(res);
        return MD_EXIT_CHECK;
    }
    free(res);
    return 0;
}

/* The gradients printed as text and read back, then checked: for the
   modes whose own output is not text (LaTeX, C, --steps). */
static int check_text_form(md_runstate *r, const char *cm, md_buf *lines)
{
    md_buf text = {0};
    md_readback rb;
    int rc = print_verified(r, r->typed.f, r->nres, r->grads, r->gnames, &text, &rb);
    md_buf_free(&text);
    if (rc) return rc;
    rc = check_printed(r, &rb, cm, lines);
    md_readback_close(&rb);
    return rc;
}

/* ---- the output modes ---------------------------------------------------- */

static void header_shapes(md_runstate *r, md_buf *out)
{
    md_buf shp = {0};
    md_print_shapes(r->ctx, &shp);
    if (shp.len) md_buf_printf(out, "   (%s)", shp.s);
    md_buf_free(&shp);
    md_buf_putc(out, '\n');
}

/* --simplify: the function itself, simplified, as a program. */
static int run_simplify(md_runstate *r)
{
    md_buf text = {0};
    md_readback rb;
    int rc = print_verified(r, r->typed.f, 1, &r->typed.f, NULL, &text, &rb);
    if (rc == 0) {
        md_buf_printf(r->out, "# %s", r->typed.ftext);
        header_shapes(r, r->out);
        md_buf_puts(r->out, text.s);
        md_readback_close(&rb);
    }
    md_buf_free(&text);
    return rc;
}

/* --steps: the derivation, text or LaTeX; --check verifies every line and
   the printed gradients. */
static int run_steps(md_runstate *r)
{
    const md_request *rq = r->rq;
    md_derivation der;
    int drc = r->kind == MD_DER_GRADIENT ? md_steps_derive(r->ctx, r->typed.f, r->nv, r->wrt, &der)
                                         : md_steps_derive_vec(r->ctx, r->typed.f, r->kind == MD_DER_HESSIAN, r->nv,
                                                               r->wrt, &der);
    if (drc) {
        fprintf(r->err, "matdiff: internal error: the derivation left the identities it knows\n");
        md_steps_free(&der);
        return MD_EXIT_INTERNAL;
    }
    md_steps_typed(r->ctx, &der, r->typed.ftyped);
    int rc = 0;
    md_buf body = {0};
    if (rq->format == MD_FORMAT_LATEX) md_steps_latex(r->ctx, &der, &rq->style, &body);
    else md_steps_text(r->ctx, &der, &body);
    if (rq->check) {
        const char *cm = rq->format == MD_FORMAT_LATEX ? "%" : "#";
        double w = md_steps_check(r->ctx, r->typed.f, &der, rq->seed);
        if (w < 0) {
            md_buf_printf(&body, "%s check: no point was found where the function and every line of the derivation can be evaluated (in their domain, with values that fit in a double)\n", cm);
            fprintf(r->err, "matdiff: --check failed: no point was found where every line of the derivation can be evaluated\n");
            rc = MD_EXIT_CHECK;
        } else {
            md_buf_printf(&body, "%s check: every line agrees with the %s to %.1e (%s)\n", cm,
                          r->kind == MD_DER_GRADIENT ? "gradient" : "differential", w, w <= 1e-9 ? "ok" : "FAILED");
            if (w > 1e-9) {
                fprintf(r->err, "matdiff: --check failed: a line of the derivation disagrees with the gradient\n");
                rc = MD_EXIT_CHECK;
            }
        }
        int crc = check_text_form(r, cm, &body);
        if (crc == MD_EXIT_INTERNAL || !rc) rc = crc;
    }
    md_steps_free(&der);
    if (rc != MD_EXIT_INTERNAL) {
        if (rq->format == MD_FORMAT_LATEX && rq->standalone) md_latex_document(body.s ? body.s : "", r->out);
        else md_buf_puts(r->out, body.s ? body.s : "");
    }
    md_buf_free(&body);
    return rc;
}

/* --size n=1000,p=50: a size per dimension id, by dimension name or by
   the field name of the emitted NAME_dims struct (X_rows, x_len: the
   emitter's own names, md_emit_dim_fields); NULL after a message. */
static long *size_hints(md_runstate *r)
{
    md_ctx *ctx = r->ctx;
    long *hint = md_xcalloc((size_t)ctx->ndims + 1, sizeof *hint);
    char **fields = md_emit_dim_fields(ctx, r->nv, r->wrt, &r->rq->emit);
    for (const char *item = r->rq->sizes; item && *item;) {
        const char *comma = strchr(item, ',');
        const char *eq = strchr(item, '=');
        size_t ilen = comma ? (size_t)(comma - item) : strlen(item);
        const char *why = NULL;
        if (!eq || (size_t)(eq - item) >= ilen || eq == item) {
            why = "is not NAME=SIZE";
        } else {
            char nm[256];
            snprintf(nm, sizeof nm, "%.*s", (int)(eq - item), item);
            char *end;
            errno = 0;
            long v = strtol(eq + 1, &end, 10);
            int found = 0, twice = 0;
            if (end == eq + 1 || (size_t)(end - item) != ilen || !isdigit((unsigned char)eq[1]))
                why = "does not give a whole number as the size";
            else if (errno == ERANGE || v < 1 || v > INT_MAX)
                why = "gives a size out of range (1 to 2147483647)";
            for (int d = 1; !why && d < ctx->ndims; d++)
                if (!md_dim_is_product(ctx, d) && ((ctx->dims[d].name && !strcmp(ctx->dims[d].name, nm)) ||
                                                   (fields && fields[d] && !strcmp(fields[d], nm)))) {
                    if (hint[d] && hint[d] != v) twice = 1;
                    hint[d] = v, found = 1;
                }
            if (!why && twice) why = "gives a second, different size to a dimension";
            else if (!why && !found) why = "names no dimension of the program";
        }
        if (why) {
            md_buf dims = {0};
            for (int d = 1; d < ctx->ndims; d++)
                if (!md_dim_is_product(ctx, d))
                    md_buf_printf(&dims, "%s%s%s%s%s", dims.len ? ", " : "", ctx->dims[d].name,
                              fields ? " (" : "", fields ? fields[d] : "", fields ? ")" : "");
            fprintf(r->err, "matdiff: --size: '%.*s' %s (write NAME=SIZE, SIZE >= 1, NAME a dimension or its "
                            "dims field: %s)\n",
                    (int)ilen, item, why, dims.len ? dims.s : "the program has none");
            md_buf_free(&dims);
            free(hint);
            hint = NULL;
            break;
        }
        item = comma ? comma + 1 : item + ilen;
    }
    for (int d = 1; fields && d < ctx->ndims; d++) free(fields[d]);
    free(fields);
    return hint;
}

/* --format c: the C function (or with --header its declarations). */
/* --order 2: a direction v_<name> per variable (shaped like it; _
   appended while the name is taken), and the blocks of H v (md_hvp). */
/* A new symbol named name (with _ appended while that is taken). */
static int fresh_sym(md_ctx *ctx, const char *name, md_symkind kind, int rows, int cols)
{
    md_buf b = {0};
    md_buf_puts(&b, name);
    while (md_ctx_find_sym(ctx, b.s) >= 0 || md_ctx_find_func(ctx, b.s) >= 0 || md_is_reserved(b.s))
        md_buf_putc(&b, '_');
    int s = md_ctx_add_sym(ctx, b.s, kind, rows, cols);
    md_buf_free(&b);
    return s;
}

/* A direction v_<name> per variable, shaped like it (malloc'd). */
static int *make_dirs(md_runstate *r)
{
    md_ctx *ctx = r->ctx;
    int *dir = md_xcalloc((size_t)r->nv + 1, sizeof *dir);
    for (int i = 0; i < r->nv; i++) {
        const md_symbol *x = &ctx->syms[r->wrt[i]];
        md_buf b = {0};
        md_buf_printf(&b, "v_%s", x->name);
        dir[i] = fresh_sym(ctx, b.s, x->kind, x->rows, x->cols);
        md_buf_free(&b);
    }
    return dir;
}

static md_expr **make_hvp(md_runstate *r)
{
    md_ctx *ctx = r->ctx;
    int *dir = make_dirs(r);
    md_expr **hv = md_xcalloc((size_t)r->nv + 1, sizeof *hv);
    for (int i = 0; i < r->nv; i++) hv[i] = md_hvp(ctx, r->grads[i], r->nv, r->wrt, dir);
    free(dir);
    return hv;
}

static int run_c(md_runstate *r)
{
    long *hint = size_hints(r);
    if (!hint) return MD_EXIT_USAGE;
    md_emit_opts eo = r->rq->emit;
    eo.size_hint = hint;
    md_expr **hv = r->rq->order == 2 ? make_hvp(r) : NULL;
    md_expr **hs = r->rq->order == 2 ? md_emit_hess_blocks(r->ctx, r->typed.f, r->nv, r->wrt) : NULL;
    eo.hvp = hv;
    eo.hess = hs;
    md_buf code = {0};
    int erc = 0;
    if (r->rq->header) {
        md_expr **chk = md_xcalloc((size_t)r->nv + 1, sizeof *chk);
        chk[0] = r->typed.f;
        for (int i = 0; i < r->nv; i++) chk[i + 1] = r->grads[i];
        erc = md_emit_check(r->ctx, r->nv + 1, chk, r->err);
        free(chk);
    }
    if (!erc)
        erc = r->rq->header ? md_emit_header(r->ctx, r->nv, r->wrt, &eo, &code, r->err)
                            : md_emit_c(r->ctx, r->typed.f, r->nv, r->wrt, r->grads, &eo, &code, r->err);
    free(hint);
    int rc = erc == -2 ? MD_EXIT_USAGE : erc ? MD_EXIT_INPUT : 0;
    if (!rc && r->rq->check && !r->rq->header) {
        md_buf lines = {0};
        rc = check_text_form(r, "//", &lines);
        if (rc != MD_EXIT_INTERNAL) md_buf_puts(&code, lines.s ? lines.s : "");
        md_buf_free(&lines);
    }
    if (rc != MD_EXIT_INTERNAL && !erc) md_buf_puts(r->out, code.s ? code.s : "");
    md_buf_free(&code);
    free(hv);
    free(hs);
    return rc;
}

static int derive(md_runstate *r);

/* Would the function be a scalar with the names of list declared vectors
   ("vector c, b" before the program)?  Typechecked quietly in a context
   of its own. */
static int scalar_as_vectors(const md_runstate *r, const char *list)
{
    md_buf t = {0};
    md_buf_printf(&t, "vector %s\n", list);
    for (size_t i = 0; i < r->src.len; i++) md_buf_putc(&t, r->src.text[i]);
    FILE *quiet = fopen("/dev/null", "w");
    if (!quiet) {
        md_buf_free(&t);
        return 0;
    }
    md_source src;
    md_source_init(&src, "<note>", t.s, t.len);
    src.err = quiet;
    md_ctx *ctx = md_ctx_new();
    md_typed typed;
    memset(&typed, 0, sizeof typed);
    md_program *prog = md_parse(&src);
    int scalar = prog && md_typecheck(prog, ctx, &typed) == 0 && md_is_scalar(typed.f);
    if (prog) md_typed_free(&typed);
    md_program_free(prog);
    md_ctx_free(ctx);
    fclose(quiet);
    md_buf_free(&t);
    return scalar;
}

/* --format c for a vector or matrix function: F, its Jacobian-vector
   product (md_hvp of F along directions v_<name>), its vector-Jacobian
   product (the gradients of u : F, u shaped like F) and the dense
   Jacobian (md_emit_c_map).  With --check, the derivatives are also
   derived, printed and checked as text. */
static int run_c_map(md_runstate *r)
{
    md_ctx *ctx = r->ctx;
    md_expr *F = r->typed.f;
    long *hint = size_hints(r);
    if (!hint) return MD_EXIT_USAGE;
    int nprog = ctx->nsyms;
    int *dir = make_dirs(r);
    /* u shaped like F; a vector for a row vector F (symbols are never row
       vectors: the simplifier's canonical form writes those as x') */
    int row = F->rows == MD_DIM_ONE;
    int u = row ? fresh_sym(ctx, "u", MD_SYM_VECTOR, F->cols, MD_DIM_ONE)
                : fresh_sym(ctx, "u", F->cols == MD_DIM_ONE ? MD_SYM_VECTOR : MD_SYM_MATRIX, F->rows, F->cols);
    md_expr *uF = md_frob(ctx, row ? md_trans(ctx, md_sym(ctx, u)) : md_sym(ctx, u), F);
    md_expr **vjp = md_xcalloc((size_t)r->nv + 1, sizeof *vjp);
    int rc = 0;
    for (int i = 0; i < r->nv && !rc; i++) {
        vjp[i] = md_gradient(ctx, uF, r->wrt[i]);
        if (!vjp[i]) {
            md_error_at(&r->src, r->typed.floc,
                        "the derivative with respect to %s passes through vec() or kron(), and matdiff "
                        "cannot write it in the language yet (it would need a reshape)", ctx->syms[r->wrt[i]].name);
            rc = MD_EXIT_INPUT;
        }
    }
    md_buf code = {0};
    if (!rc) {
        md_emit_map m = {nprog, dir, u, md_hvp(ctx, F, r->nv, r->wrt, dir), vjp};
        md_emit_opts eo = r->rq->emit;
        eo.size_hint = hint;
        int erc = md_emit_c_map(ctx, F, r->nv, r->wrt, &m, &eo, r->rq->header, &code, r->err);
        rc = erc == -2 ? MD_EXIT_USAGE : erc ? MD_EXIT_INPUT : 0;
    }
    if (!rc && r->rq->check && !r->rq->header && !(rc = derive(r))) {
        md_buf lines = {0};
        rc = check_text_form(r, "//", &lines);
        if (rc != MD_EXIT_INTERNAL) md_buf_puts(&code, lines.s ? lines.s : "");
        md_buf_free(&lines);
    }
    if (!rc || rc == MD_EXIT_CHECK) md_buf_puts(r->out, code.s ? code.s : "");
    md_buf_free(&code);
    free(vjp);
    free(dir);
    free(hint);
    return rc;
}

/*
 * --format numpy, torch, octave: the value and the derivatives as array
 * code (md_emit_array).  With --order 2 the function returns the value,
 * the gradients and then the Hessian blocks (d2f/dvec(X)dvec(Y)', every
 * pair of --wrt variables), so the gradients are derived here too.
 * --check checks the text form of the same derivatives, as for C.
 */
static int run_array(md_runstate *r)
{
    md_ctx *ctx = r->ctx;
    const md_request *rq = r->rq;
    int nroots = 1 + r->nv + (r->kind == MD_DER_HESSIAN ? r->nres : 0);
    md_expr **roots = md_xcalloc((size_t)nroots + 1, sizeof *roots);
    const char **names = md_xcalloc((size_t)nroots + 1, sizeof *names);
    char **own = md_xcalloc((size_t)nroots + 1, sizeof *own);
    roots[0] = r->typed.f;
    names[0] = rq->format == MD_FORMAT_OCTAVE ? "f" : "value";
    for (int i = 0; i < r->nv; i++) {
        roots[1 + i] = r->kind == MD_DER_HESSIAN ? md_gradient(ctx, r->typed.f, r->wrt[i]) : r->grads[i];
        md_buf b = {0};
        md_buf_printf(&b, "d_%s", ctx->syms[r->wrt[i]].name);
        own[1 + i] = md_buf_take(&b);
        names[1 + i] = own[1 + i];
    }
    if (r->kind == MD_DER_HESSIAN)
        for (int i = 0; i < r->nres; i++) {
            roots[1 + r->nv + i] = r->grads[i];
            md_buf b = {0};
            md_buf_printf(&b, "H_%s_%s", ctx->syms[r->wrt[i / r->nv]].name, ctx->syms[r->wrt[i % r->nv]].name);
            own[1 + r->nv + i] = md_buf_take(&b);
            names[1 + r->nv + i] = own[1 + r->nv + i];
        }
    md_array_emit a = {
        .lang = rq->format == MD_FORMAT_TORCH ? MD_ARRAY_TORCH : rq->format == MD_FORMAT_OCTAVE ? MD_ARRAY_OCTAVE
                                                                                               : MD_ARRAY_NUMPY,
        .name = rq->emit.name,
        .nsyms = r->nsyms_prog,
        .nroots = nroots,
        .roots = roots,
        .rootnames = names,
        .nwrt = r->nv,
        .wrt = r->wrt,
        .ftext = r->typed.ftext,
        .what = r->kind == MD_DER_GRADIENT ? "gradient" : r->kind == MD_DER_JACOBIAN ? "derivative (Jacobian)"
                                                                                   : "gradient and Hessian",
        .gradient = r->kind != MD_DER_JACOBIAN,
        .second = r->kind == MD_DER_HESSIAN,
        .self_test = rq->self_test,
    };
    md_buf code = {0};
    int erc = md_emit_array(ctx, &a, &code, r->err);
    int rc = erc == -2 ? MD_EXIT_USAGE : erc ? MD_EXIT_INPUT : 0;
    if (!rc && rq->check) {
        md_buf lines = {0};
        rc = check_text_form(r, rq->format == MD_FORMAT_OCTAVE ? "%" : "#", &lines);
        if (rc != MD_EXIT_INTERNAL) md_buf_puts(&code, lines.s ? lines.s : "");
        md_buf_free(&lines);
    }
    if (rc != MD_EXIT_INTERNAL && !erc) md_buf_puts(r->out, code.s ? code.s : "");
    md_buf_free(&code);
    for (int i = 0; i < nroots; i++) free(own[i]);
    free(own);
    free(names);
    free(roots);
    return rc;
}

/* --format latex: the gradients in an align* environment. */
static int run_latex(md_runstate *r)
{
    md_buf body = {0};
    md_latex_derivatives(r->ctx, r->typed.f, r->typed.ftyped, r->kind == MD_DER_HESSIAN ? 2 : 1, r->nv, r->wrt, r->grads,
                         &r->rq->style, &body);
    int rc = 0;
    if (r->rq->check) rc = check_text_form(r, "%", &body);
    if (rc != MD_EXIT_INTERNAL) {
        if (r->rq->standalone) md_latex_document(body.s ? body.s : "", r->out);
        else md_buf_puts(r->out, body.s ? body.s : "");
    }
    md_buf_free(&body);
    return rc;
}

/* Is name written in an expression of the program (not only declared)?
   A variable that cancels out (a - b - a) is mentioned but has gradient 0. */
static int ast_mentions(const md_ast *a, const char *name)
{
    if (a->kind == MD_AST_NAME && !strcmp(a->text, name)) return 1;
    for (int i = 0; i < a->nkids; i++)
        if (ast_mentions(a->kids[i], name)) return 1;
    return 0;
}

/* In the function: the last expression statement, or a named expression
   it uses (an earlier expression statement is not part of it, nor is an
   assignment the function does not use). */
static int mentioned(const md_program *prog, const char *name)
{
    int last = -1;
    for (int i = 0; i < prog->nstmts; i++)
        if (prog->stmts[i]->kind == MD_STMT_EXPR) last = i;
    if (last < 0) return 0;
    /* the function's statement, and the assignments before it that it
       uses, directly or through other assignments (walking back: an
       assignment can only use earlier ones); an assignment nobody uses,
       or one after the function, does not count */
    char *used = md_xcalloc((size_t)prog->nstmts + 1, 1);
    used[last] = 1;
    for (int i = last - 1; i >= 0; i--) {
        const md_stmt *st = prog->stmts[i];
        if (st->kind != MD_STMT_ASSIGN) continue;
        for (int j = i + 1; j <= last && !used[i]; j++)
            if (used[j] && ast_mentions(prog->stmts[j]->expr, st->name)) used[i] = 1;
    }
    int found = 0;
    for (int i = 0; i <= last && !found; i++)
        if (used[i] && ast_mentions(prog->stmts[i]->expr, name)) found = 1;
    free(used);
    return found;
}

/* Is name in a declaration of the program (its type is then the user's)? */
static int declared(const md_program *prog, const char *name)
{
    for (int i = 0; i < prog->nstmts; i++)
        if (prog->stmts[i]->kind == MD_STMT_DECL)
            for (int k = 0; k < prog->stmts[i]->nitems; k++)
                if (!strcmp(prog->stmts[i]->items[k].name, name)) return 1;
    return 0;
}

/* The default: the results as a program that reads back. */
static int run_text(md_runstate *r)
{
    md_ctx *ctx = r->ctx;
    md_buf text = {0};
    md_readback rb;
    int rc = print_verified(r, r->typed.f, r->nres, r->grads, r->gnames, &text, &rb);
    if (rc) {
        md_buf_free(&text);
        return rc;
    }
    md_buf *out = r->out;
    md_buf_printf(out, "# ");
    if (r->kind == MD_DER_GRADIENT && r->nv == 1) {
        md_buf_printf(out, "d/d%s of %s", ctx->syms[r->wrt[0]].name, r->typed.ftext);
    } else {
        md_buf_printf(out, "%s of %s with respect to ",
                      r->kind == MD_DER_GRADIENT ? "gradient" : r->kind == MD_DER_JACOBIAN ? "derivative" : "Hessian",
                      r->typed.ftext);
        for (int i = 0; i < r->nv; i++) md_buf_printf(out, "%s%s", i ? ", " : "", ctx->syms[r->wrt[i]].name);
    }
    header_shapes(r, out);
    /* what the rows and columns are, where vec is involved (a matrix F
       or X) */
    int mat_x = 0;
    for (int i = 0; i < r->nv; i++) {
        const md_symbol *x = &ctx->syms[r->wrt[i]];
        mat_x |= x->rows != MD_DIM_ONE && x->cols != MD_DIM_ONE;
    }
    int mat_f = r->typed.f->rows != MD_DIM_ONE && r->typed.f->cols != MD_DIM_ONE;
    if (r->kind == MD_DER_JACOBIAN && (mat_x || mat_f))
        md_buf_puts(out, "# d vec(F)/d vec(X)': a row per entry of F, a column per entry of X (column-major; "
                         "F's shape for a scalar X)\n");
    if (r->kind == MD_DER_HESSIAN && (mat_x || r->nv > 1))
        md_buf_printf(out, "# d2f/d vec(X) d vec(Y)'%s%s\n", mat_x ? " (entries in column-major order)" : "",
                      r->nv > 1 ? "; H_X_Y is the block by X and Y" : "");
    for (int i = 0; i < r->nv; i++) {
        int zero = 1;
        for (int j = 0; j < (r->kind == MD_DER_HESSIAN ? r->nv : 1); j++)
            zero &= md_is_zero(r->grads[r->kind == MD_DER_HESSIAN ? i * r->nv + j : i]);
        if (!zero) continue;
        const char *what = r->kind == MD_DER_GRADIENT ? "gradient" : r->kind == MD_DER_JACOBIAN ? "derivative"
                                                                                            : "second derivative";
        if (!mentioned(r->prog, ctx->syms[r->wrt[i]].name))
            md_buf_printf(out, "# %s does not occur in the function: its %s is 0\n", ctx->syms[r->wrt[i]].name, what);
        else
            md_buf_printf(out, "# the %s with respect to %s is 0\n", what, ctx->syms[r->wrt[i]].name);
    }
    if (r->rq->check) rc = check_printed(r, &rb, "#", out);
    md_buf_puts(out, text.s);
    md_readback_close(&rb);
    md_buf_free(&text);
    return rc;
}

/* ---- the run --------------------------------------------------------------- */


/* Resolves --wrt (or takes every variable); 0 or an exit status. */
static int resolve_wrt(md_runstate *r)
{
    const md_request *rq = r->rq;
    md_ctx *ctx = r->ctx;
    if (rq->nwrt == 0) {
        r->nv = r->nsyms_prog;
        r->wrt = md_xcalloc((size_t)r->nv + 1, sizeof *r->wrt);
        for (int i = 0; i < r->nv; i++) r->wrt[i] = i;
        return 0;
    }
    r->wrt = md_xcalloc((size_t)rq->nwrt + 1, sizeof *r->wrt);
    for (int i = 0; i < rq->nwrt; i++) {
        const char *w = rq->wrt[i];
        int s = md_ctx_find_sym(ctx, w);
        if (s < 0) {
            if (md_ctx_find_func(ctx, w) >= 0 || md_is_builtin(w) || !strcmp(w, "eye")) {
                fprintf(r->err, "matdiff: --wrt %s: '%s' is a %s, not a variable\n", w, w,
                        md_ctx_find_func(ctx, w) >= 0 ? "function" : "built-in name");
                return MD_EXIT_USAGE;
            }
            if (md_typed_bound(&r->typed, w)) {
                fprintf(r->err, "matdiff: --wrt %s: '%s' is a named expression (name = expr), not a variable\n", w, w);
                return MD_EXIT_USAGE;
            }
            const char *best = NULL;
            for (int k = 0; k < r->nsyms_prog && !best; k++)
                if (strcasecmp(w, ctx->syms[k].name) == 0) best = ctx->syms[k].name;
            size_t wl = strlen(w);
            int bd = wl <= 1 ? 0 : wl <= 4 ? 2 : 3;
            for (int k = 0; k < r->nsyms_prog && !best; k++) {
                int d = md_edit_distance(w, ctx->syms[k].name);
                if (d < bd) bd = d, best = ctx->syms[k].name;
            }
            /* a name the program never mentions is most likely a typo
               (--wrt W for w): an error, not a zero derivative; a declared
               variable that f does not use has derivative 0 */
            md_symkind kind = md_default_kind(w);
            const char *kw = kind == MD_SYM_SCALAR ? "scalar" : kind == MD_SYM_VECTOR ? "vector" : "matrix";
            if (best)
                fprintf(r->err, "matdiff: --wrt %s: '%s' does not occur in the program (did you mean '%s'?); "
                                "declare it (%s %s) for its derivative, which is 0\n", w, w, best, kw, w);
            else
                fprintf(r->err, "matdiff: --wrt %s: '%s' does not occur in the program; declare it (%s %s) for "
                                "its derivative, which is 0\n", w, w, kw, w);
            return MD_EXIT_INPUT;
        }
        int dup = 0;
        for (int k = 0; k < r->nv; k++) dup |= r->wrt[k] == s;
        if (!dup) r->wrt[r->nv++] = s;
    }
    return 0;
}

/* Is name free for a result: not a symbol, function or reserved word,
   nor an earlier result's name? */
static int result_name_free(md_runstate *r, int upto, const char *name)
{
    md_ctx *ctx = r->ctx;
    if (md_ctx_find_sym(ctx, name) >= 0 || md_ctx_find_func(ctx, name) >= 0 || md_is_reserved(name)) return 0;
    if (md_typed_bound(&r->typed, name)) return 0;
    for (int k = 0; k < upto; k++)
        if (!strcmp(r->owned[k], name)) return 0;
    return 1;
}

/* The results, their names (dX for a gradient or derivative, H_X_Y for a
   Hessian block, with _ appended on a clash) and the names temporaries
   must avoid. */
static int derive(md_runstate *r)
{
    md_ctx *ctx = r->ctx;
    r->nres = r->kind == MD_DER_HESSIAN ? r->nv * r->nv : r->nv;
    r->grads = md_xcalloc((size_t)r->nres + 1, sizeof *r->grads);
    r->owned = md_xcalloc((size_t)r->nres + 1, sizeof *r->owned);
    r->avoid = md_xcalloc((size_t)r->nres + 1, sizeof *r->avoid);
    for (int i = 0; i < r->nres; i++) {
        int a = r->kind == MD_DER_HESSIAN ? r->wrt[i / r->nv] : r->wrt[i];
        int b = r->kind == MD_DER_HESSIAN ? r->wrt[i % r->nv] : -1;
        r->grads[i] = r->kind == MD_DER_GRADIENT   ? md_gradient(ctx, r->typed.f, a)
                      : r->kind == MD_DER_JACOBIAN ? md_derivative(ctx, r->typed.f, a)
                                                   : md_hessian_block(ctx, r->typed.f, a, b);
        if (!r->grads[i]) {
            md_error_at(&r->src, r->typed.floc,
                        "the derivative with respect to %s passes through vec() or kron(), and matdiff "
                        "cannot write it in the language yet (it would need a reshape)", ctx->syms[a].name);
            return MD_EXIT_INPUT;
        }
    }
    if (r->nres > 1) {
        r->gnames = md_xcalloc((size_t)r->nres + 1, sizeof *r->gnames);
        for (int i = 0; i < r->nres; i++) {
            md_buf b = {0};
            if (r->kind == MD_DER_HESSIAN)
                md_buf_printf(&b, "H_%s_%s", ctx->syms[r->wrt[i / r->nv]].name, ctx->syms[r->wrt[i % r->nv]].name);
            else
                md_buf_printf(&b, "d%s", ctx->syms[r->wrt[i]].name);
            /* taken: append _ (dx_ for x when dx exists, then x_) */
            while (!result_name_free(r, i, b.s)) md_buf_putc(&b, '_');
            r->owned[i] = md_buf_take(&b);
            r->gnames[i] = r->owned[i];
            r->avoid[i] = r->owned[i];
        }
    }
    return 0;
}

static int not_scalar(md_runstate *r)
{
    md_ctx *ctx = r->ctx;
    md_expr *f = r->typed.f;
    md_buf b = {0};
    const char *rn = ctx->dims[f->rows].name, *cn = ctx->dims[f->cols].name;
    if (f->cols == MD_DIM_ONE) md_buf_printf(&b, "a vector (%s)", rn);
    else if (f->rows == MD_DIM_ONE) md_buf_printf(&b, "a row vector (1×%s)", cn);
    else md_buf_printf(&b, "a matrix (%s×%s)", rn, cn);
    md_error_at(&r->src, r->typed.floc,
                "the function must be scalar-valued to have a Hessian (--order 2), but it is %s "
                "(without --order 2 matdiff prints its first derivative, d vec(F)/d vec(X)')", b.s);
    md_buf_free(&b);
    return MD_EXIT_INPUT;
}

int md_run(const md_request *rq, const char *name, const char *text, size_t len, md_buf *out,
           FILE *err)
{
    md_runstate r;
    memset(&r, 0, sizeof r);
    r.rq = rq;
    r.err = err ? err : stderr;
    r.out = out;
    md_source_init(&r.src, name, text, len);
    r.src.err = r.err;
    r.ctx = md_ctx_new();
    /* see md_ctx: factoring can make C (and array code) slower */
    r.ctx->no_factor = rq->format == MD_FORMAT_C || md_format_is_array(rq->format);
    int rc;
    r.prog = md_parse(&r.src);
    if (!r.prog || md_typecheck(r.prog, r.ctx, &r.typed)) {
        rc = MD_EXIT_INPUT;
        goto done;
    }
    r.nsyms_prog = r.ctx->nsyms;
    if (rq->format != MD_FORMAT_C) {
        /* the user's names are the printers' names for their values; with
           --simplify not the name of the function itself (a program that
           ends with dV = 2*T'*U prints 2*T'*U, not dV = ... and dV) */
        r.ctx->nbound = r.typed.nbound;
        r.ctx->bound = r.typed.bound;
        r.ctx->bval = r.typed.bval;
        if (rq->simplify) {
            const char **nb = md_xcalloc((size_t)r.typed.nbound + 1, sizeof *nb);
            md_expr **nv = md_xcalloc((size_t)r.typed.nbound + 1, sizeof *nv);
            int m = 0;
            for (int k = 0; k < r.typed.nbound; k++)
                if (r.typed.bval[k] != r.typed.f) nb[m] = r.typed.bound[k], nv[m++] = r.typed.bval[k];
            r.ctx->nbound = m;
            r.ctx->bound = r.sbound = nb;
            r.ctx->bval = r.sbval = nv;
        }
    }
    if (rq->simplify) {
        rc = run_simplify(&r);
        goto done;
    }
    r.kind = rq->order == 2 ? MD_DER_HESSIAN : md_is_scalar(r.typed.f) ? MD_DER_GRADIENT : MD_DER_JACOBIAN;
    if (rq->order == 2 && !md_is_scalar(r.typed.f)) {
        rc = not_scalar(&r);
        goto done;
    }
    /* --format c --order 2: the gradients, and from them the Hessian-vector
       product (run_c); the Hessian's blocks are not formed */
    if (r.kind == MD_DER_HESSIAN && rq->format == MD_FORMAT_C) r.kind = MD_DER_GRADIENT;
    if (r.kind == MD_DER_JACOBIAN) {
        /* a vector only because a misspelt Greek name took the default
           type of its first letter (lamda*norm2(w)^2): say so, the
           derivative printed is then not the one meant */
        for (int s = 0; s < r.nsyms_prog; s++) {
            const md_symbol *y = &r.ctx->syms[s];
            const char *g = y->kind != MD_SYM_SCALAR ? md_near_greek(y->name) : NULL;
            if (g && mentioned(r.prog, y->name) && !declared(r.prog, y->name))
                fprintf(r.err, "matdiff: note: '%s' is a %s because names starting with %s are (did you mean '%s'? "
                               "or declare 'scalar %s'); the function is not a scalar, so its derivative is a "
                               "Jacobian\n",
                        y->name, y->kind == MD_SYM_VECTOR ? "vector" : "matrix",
                        y->kind == MD_SYM_VECTOR ? "h-z" : "A-Z", g, y->name);
        }
        /* a vector because an undeclared scalar took its default type
           (c'*x - mu*sum(log(b - A*x)) meant c and b as vectors): when the
           function would be a scalar with them declared vectors, name the
           scalars that got their type from their first letter */
        md_buf sc = {0}, plain = {0};
        int nsc = 0;
        for (int s = 0; s < r.nsyms_prog; s++) {
            const md_symbol *y = &r.ctx->syms[s];
            if (y->kind != MD_SYM_SCALAR || !mentioned(r.prog, y->name) || declared(r.prog, y->name)) continue;
            if (!(y->name[0] >= 'a' && y->name[0] <= 'g')) continue;   /* Greek names are scalars anyway */
            md_buf_printf(&sc, "%s'%s'", nsc ? ", " : "", y->name);
            md_buf_printf(&plain, "%s%s", nsc ? ", " : "", y->name);
            nsc++;
        }
        if (nsc && scalar_as_vectors(&r, plain.s)) {
            const md_expr *f = r.typed.f;
            md_buf shape = {0};
            if (f->cols == MD_DIM_ONE) md_buf_printf(&shape, "a vector (%s)", r.ctx->dims[f->rows].name);
            else if (f->rows == MD_DIM_ONE) md_buf_printf(&shape, "a row vector (1×%s)", r.ctx->dims[f->cols].name);
            else md_buf_printf(&shape, "a matrix (%s×%s)", r.ctx->dims[f->rows].name, r.ctx->dims[f->cols].name);
            fprintf(r.err, "matdiff: note: the function is %s, so its derivative is a Jacobian; %s %s "
                           "because undeclared names starting with a-g are (declare 'vector %s' if %s)\n",
                    shape.s, sc.s, nsc > 1 ? "are scalars" : "is a scalar", plain.s,
                    nsc > 1 ? "they are vectors" : "it is a vector");
            md_buf_free(&shape);
        }
        md_buf_free(&sc);
        md_buf_free(&plain);
    }
    if ((rc = resolve_wrt(&r))) goto done;
    if (r.nv == 0) {
        md_error_at(&r.src, r.typed.floc, "the function has no variables to differentiate");
        rc = MD_EXIT_INPUT;
        goto done;
    }
    if (r.kind == MD_DER_JACOBIAN && rq->format == MD_FORMAT_C) {
        rc = run_c_map(&r);   /* J v and J' u: no Jacobian is derived */
        goto done;
    }
    if ((rc = derive(&r))) goto done;
    if (rq->steps) rc = run_steps(&r);
    else if (rq->format == MD_FORMAT_C) rc = run_c(&r);
    else if (md_format_is_array(rq->format)) rc = run_array(&r);
    else if (rq->format == MD_FORMAT_LATEX) rc = run_latex(&r);
    else rc = run_text(&r);
done:
    if (r.owned)
        for (int i = 0; i < r.nres; i++) free(r.owned[i]);
    free(r.owned);
    free(r.gnames);
    free(r.avoid);
    free(r.sbound);
    free(r.sbval);
    free(r.grads);
    free(r.wrt);
    md_typed_free(&r.typed);
    md_program_free(r.prog);
    md_ctx_free(r.ctx);
    return rc;
}
