/*
 * main.c -- the matdiff command line.
 *
 * Reads a program (argument, -f FILE or standard input), runs the pipeline
 * parse -> shapes -> differentiate -> print, and optionally checks every
 * gradient numerically.  All of the work happens in md_run, on a thread
 * with a large stack: the stages recurse over expressions up to
 * MD_MAX_DEPTH levels deep and the default 8 MB main stack is not enough
 * for the deepest legal inputs.
 *
 * Exit codes: 0 success, 1 an error in the input, 2 a usage error,
 * 3 out of memory or an internal error, 4 --check found a gradient that
 * disagrees with finite differences.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "md_ast.h"
#include "md_diag.h"
#include "md_diff.h"
#include "md_eval.h"
#include "md_expr.h"
#include "md_print.h"
#include "md_shape.h"
#include "md_simplify.h"
#include "md_emit.h"
#include "md_latex.h"
#include "md_steps.h"

#define MD_VERSION "0.1.0"

enum { EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3, EXIT_CHECK = 4 };

static const char md_usage[] =
    "Usage: matdiff [OPTIONS] [PROGRAM]\n"
    "Symbolic gradients of matrix expressions, derived with the differential method.\n"
    "\n"
    "The program comes from the PROGRAM argument, from -f FILE, or from standard input.\n"
    "\n"
    "Options:\n"
    "  -w, --wrt NAME[,NAME...]  differentiate with respect to these variables\n"
    "                            (repeatable; default: every variable, in order of appearance)\n"
    "  -f, --file FILE           read the program from FILE ('-' for standard input)\n"
    "  -c, --check               verify every gradient against central finite differences\n"
    "                            on random data inside the function's domain; fails (exit 4)\n"
    "                            when the worst relative error exceeds 1e-6\n"
    "      --seed N              random seed for --check (default 1)\n"
    "      --format FORMAT       text (default: a program matdiff reads back), latex, or c\n"
    "                            (\\frac{\\partial f}{\\partial X} = ... in an align* environment)\n"
    "      --standalone          with --format latex: a complete document for pdflatex\n"
    "                            (amsmath and amssymb only)\n"
    "      --transpose top|T     LaTeX transposes as ^\\top (default) or ^T\n"
    "      --hadamard circ|odot  LaTeX Hadamard products as \\circ (default) or \\odot\n"
    "      --steps               show the derivation step by step (Unicode text: ∘ : ᵀ ∂),\n"
    "                            each identity named; with --check every line is verified\n"
    "                            numerically against the gradient\n"
    "  With --format c (a C99 function computing f and its gradients; docs/codegen.md):\n"
    "      --name NAME           the function's name (default f)\n"
    "      --header              print the matching declarations instead\n"
    "      --layout col|row      matrices column-major (default) or row-major\n"
    "      --no-blas             plain loops instead of CBLAS and LAPACK calls (no dependency)\n"
    "      --size n=1000,p=50    dimension sizes to choose product bracketings at emit time\n"
    "  -s, --simplify            print the function itself, simplified, instead of a gradient\n"
    "                            (any shape; the output is again a valid program)\n"
    "  -h, --help                show this help and exit\n"
    "  -V, --version             show the version and exit\n"
    "\n"
    "The language (matrixcalculus.org dialect; see docs/language.md):\n"
    "  statements are separated by newlines or ';', '#' starts a comment;\n"
    "  the last expression is the function; 'name = expr' names a subexpression;\n"
    "  names starting with a-g are scalars, h-z vectors, A-Z matrices, Greek names scalars;\n"
    "  declarations override: scalar a; vector x(n); matrix X(n, p); symmetric S(n); function f\n"
    "  operators, loosest first: + -   * /   .* ./   unary -   ^ .^   ' (transpose)\n"
    "  functions: sin cos tan arcsin arccos arctan exp log tanh abs sign relu step sqrt\n"
    "             sum norm1 norm2 tr det logdet inv diag vector(c) matrix(c) eye\n"
    "             and declared generic functions f(x), with derivatives f'(x), f''(x)\n"
    "\n"
    "Output: text that is itself a valid program: '#' comments (the function and the\n"
    "shapes inferred), declarations where needed, named temporaries 'T = ...', then the\n"
    "gradient (with several variables, one 'dX = ...' line each).\n"
    "\n"
    "Examples:\n"
    "  matdiff --wrt U \"scalar lambda; norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2\"\n"
    "  matdiff -w x --check \"x'*A*x\"\n"
    "  echo 'logdet(X)' | matdiff -w X\n"
    "\n"
    "Exit status: 0 success, 1 error in the input, 2 usage error, 3 internal error,\n"
    "4 --check failed.\n";

typedef struct md_opts {
    char **wrt;
    int nwrt;
    const char *file;
    const char *program;
    int check;
    int simplify;
    int steps;
    int latex;          /* --format latex */
    int c;              /* --format c */
    int header;         /* --header: the declarations only */
    md_emit_opts emit;
    char *sizes;        /* --size n=1000,p=50 */
    int standalone;
    md_latex_style style;
    unsigned long seed;
} md_opts;

typedef struct md_job {
    md_opts *o;
    int rc;
} md_job;

static void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "matdiff: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'matdiff --help' for more information.\n");
}

static char *read_all(FILE *f, size_t *len)
{
    md_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        size_t old = b.len;
        for (size_t i = 0; i < n; i++) md_buf_putc(&b, 'x');
        memcpy(b.s + old, chunk, n);
    }
    *len = b.len;
    return md_buf_take(&b);
}

static int valid_name(const char *s)
{
    if (!*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Is name written in an expression of the program (not only declared)?
   A variable that cancels out (a - b - a) is mentioned but has gradient 0. */
static int md_ast_mentions(const md_ast *a, const char *name)
{
    if ((a->kind == MD_AST_NAME) && !strcmp(a->text, name)) return 1;
    for (int i = 0; i < a->nkids; i++)
        if (md_ast_mentions(a->kids[i], name)) return 1;
    return 0;
}

static int md_mentioned(const md_program *prog, const char *name)
{
    for (int i = 0; i < prog->nstmts; i++)
        if (prog->stmts[i]->expr && md_ast_mentions(prog->stmts[i]->expr, name)) return 1;
    return 0;
}

/* Writes the result; --standalone wraps LaTeX in a document. */
static void md_emit_output(const md_opts *o, md_buf *out)
{
    if (o->latex && o->standalone) {
        md_buf doc = {0};
        md_latex_document(out->s ? out->s : "", &doc);
        fputs(doc.s, stdout);
        md_buf_free(&doc);
    } else if (out->s) {
        fputs(out->s, stdout);
    }
}

static int md_run(md_opts *o)
{
    size_t len = 0;
    char *text = NULL;
    const char *name = "<cmdline>";
    if (o->program) {
        text = md_xstrdup(o->program);
        len = strlen(text);
    } else if (o->file && strcmp(o->file, "-") != 0) {
        FILE *f = fopen(o->file, "rb");
        if (!f) {
            fprintf(stderr, "matdiff: cannot open '%s': %s\n", o->file, strerror(errno));
            return EXIT_USAGE;
        }
        text = read_all(f, &len);
        int bad = ferror(f);
        int e = errno;
        fclose(f);
        if (bad) {
            fprintf(stderr, "matdiff: cannot read '%s': %s\n", o->file, strerror(e));
            free(text);
            return EXIT_USAGE;
        }
        name = o->file;
    } else {
        text = read_all(stdin, &len);
        name = "<stdin>";
    }

    md_source src;
    md_source_init(&src, name, text, len);
    int rc = 0;
    md_ctx *ctx = md_ctx_new();
    ctx->no_factor = o->c;   /* see md_ctx: factoring can make emitted code slower */
    md_typed typed = {0};
    md_program *prog = md_parse(&src);
    int *wrt = NULL;
    md_expr **grads = NULL;
    const char **gnames = NULL;
    char **owned = NULL;
    int nv = 0;
    int check_no_domain = 0;
    md_buf out = {0};
    if (!prog || md_typecheck(prog, ctx, &typed)) {
        rc = EXIT_INPUT;
        goto done;
    }
    if (o->simplify) {
        /* no derivative: the function itself, simplified, as a program */
        md_buf_printf(&out, "# %s", typed.ftext);
        md_buf shp = {0};
        md_print_shapes(ctx, &shp);
        if (shp.len) md_buf_printf(&out, "   (%s)", shp.s);
        md_buf_free(&shp);
        md_buf_putc(&out, '\n');
        md_print_decls(ctx, &out);
        md_print_program(ctx, &out, 1, &typed.f, NULL, NULL);
        fputs(out.s, stdout);
        goto done;
    }
    if (!md_is_scalar(typed.f)) {
        char *sh = NULL;
        md_buf b = {0};
        const char *r = ctx->dims[typed.f->rows].name, *c = ctx->dims[typed.f->cols].name;
        if (typed.f->cols == MD_DIM_ONE) md_buf_printf(&b, "a vector (%s)", r);
        else if (typed.f->rows == MD_DIM_ONE) md_buf_printf(&b, "a row vector (1×%s)", c);
        else md_buf_printf(&b, "a matrix (%s×%s)", r, c);
        sh = md_buf_take(&b);
        md_error_at(&src, typed.floc,
                    "the function must be scalar-valued to have a gradient, but it is %s "
                    "(wrap it in sum(), norm2(), tr(), ...)", sh);
        free(sh);
        rc = EXIT_INPUT;
        goto done;
    }

    /* the variables */
    int nsyms_prog = ctx->nsyms;
    if (o->nwrt == 0) {
        nv = nsyms_prog;
        wrt = md_xcalloc((size_t)nv + 1, sizeof *wrt);
        for (int i = 0; i < nv; i++) wrt[i] = i;
    } else {
        wrt = md_xcalloc((size_t)o->nwrt + 1, sizeof *wrt);
        for (int i = 0; i < o->nwrt; i++) {
            const char *w = o->wrt[i];
            int s = md_ctx_find_sym(ctx, w);
            if (s < 0) {
                if (md_ctx_find_func(ctx, w) >= 0 || md_is_builtin(w) || !strcmp(w, "eye")) {
                    fprintf(stderr, "matdiff: --wrt %s: '%s' is a %s, not a variable\n", w, w,
                            md_ctx_find_func(ctx, w) >= 0 ? "function" : "built-in name");
                    rc = EXIT_USAGE;
                    goto done;
                }
                /* named expressions are not variables */
                int bound = 0;
                for (int k = 0; k < prog->nstmts; k++)
                    if (prog->stmts[k]->kind == MD_STMT_ASSIGN && !strcmp(prog->stmts[k]->name, w)) bound = 1;
                if (bound) {
                    fprintf(stderr, "matdiff: --wrt %s: '%s' is a named expression (name = expr), not a variable\n", w, w);
                    rc = EXIT_USAGE;
                    goto done;
                }
                const char *best = NULL;
                for (int k = 0; k < nsyms_prog && !best; k++)
                    if (strcasecmp(w, ctx->syms[k].name) == 0) best = ctx->syms[k].name;
                size_t wl = strlen(w);
                int bd = wl <= 1 ? 0 : wl <= 4 ? 2 : 3;
                for (int k = 0; k < nsyms_prog && !best; k++) {
                    int d = md_edit_distance(w, ctx->syms[k].name);
                    if (d < bd) bd = d, best = ctx->syms[k].name;
                }
                md_symkind kind = md_default_kind(w);
                char dn[300];
                snprintf(dn, sizeof dn, "%s_rows", w);
                int r = kind == MD_SYM_SCALAR ? MD_DIM_ONE : md_ctx_add_dim(ctx, dn, 0);
                snprintf(dn, sizeof dn, "%s_cols", w);
                int c = kind == MD_SYM_MATRIX ? md_ctx_add_dim(ctx, dn, 0) : MD_DIM_ONE;
                s = md_ctx_add_sym(ctx, w, kind, r, c);
                if (best)
                    fprintf(stderr, "matdiff: note: '%s' does not occur in the function (did you mean '%s'?); its gradient is 0\n", w, best);
                else
                    fprintf(stderr, "matdiff: note: '%s' does not occur in the function; its gradient is 0\n", w);
            }
            int dup = 0;
            for (int k = 0; k < nv; k++) dup |= wrt[k] == s;
            if (!dup) wrt[nv++] = s;
        }
    }

    if (nv == 0) {
        md_error_at(&src, typed.floc, "the function has no variables to differentiate");
        rc = EXIT_INPUT;
        goto done;
    }
    grads = md_xcalloc((size_t)nv + 1, sizeof *grads);
    gnames = md_xcalloc((size_t)nv + 1, sizeof *gnames);
    owned = md_xcalloc((size_t)nv + 1, sizeof *owned);
    for (int i = 0; i < nv; i++) {
        grads[i] = md_gradient(ctx, typed.f, wrt[i]);
        if (!grads[i]) {
            fprintf(stderr, "matdiff: internal error: could not identify the gradient with respect to %s\n",
                    ctx->syms[wrt[i]].name);
            rc = EXIT_INTERNAL;
            goto done;
        }
    }

    if (o->steps) {
        md_derivation der;
        if (md_steps_derive(ctx, typed.f, nv, wrt, &der)) {
            fprintf(stderr, "matdiff: internal error: the derivation left the identities it knows\n");
            md_steps_free(&der);
            rc = EXIT_INTERNAL;
            goto done;
        }
        if (o->latex) md_steps_latex(ctx, &der, &o->style, &out);
        else md_steps_text(ctx, &der, &out);
        const char *cm = o->latex ? "%" : "#";
        if (o->check) {
            double w = md_steps_check(ctx, typed.f, &der, o->seed);
            if (w < 0) {
                md_buf_printf(&out, "%s check: no point inside the function's domain was found\n", cm);
                rc = EXIT_CHECK;
            } else {
                md_buf_printf(&out, "%s check: every line agrees with the gradient to %.1e (%s)\n", cm, w,
                              w <= 1e-9 ? "ok" : "FAILED");
                if (w > 1e-9) rc = EXIT_CHECK;
            }
        }
        md_steps_free(&der);
        md_emit_output(o, &out);
        goto done;
    }

    if (o->c) {
        /* size hints: --size n=1000,p=50 by dimension name */
        long *hint = md_xcalloc((size_t)ctx->ndims + 1, sizeof *hint);
        for (char *item = o->sizes; item && *item;) {
            char *comma = strchr(item, ',');
            char *eq = strchr(item, '=');
            size_t ilen = comma ? (size_t)(comma - item) : strlen(item);
            int found = 0;
            if (eq && (size_t)(eq - item) < ilen) {
                /* a dimension by its name (n), or by the generated field
                   name of the first variable that carries it (X_rows) */
                char nm[256];
                snprintf(nm, sizeof nm, "%.*s", (int)(eq - item), item);
                long v = strtol(eq + 1, NULL, 10);
                for (int d = 1; d < ctx->ndims; d++)
                    if (ctx->dims[d].name && !strcmp(ctx->dims[d].name, nm)) hint[d] = v, found = 1;
                for (int k = 0; k < ctx->nsyms && !found; k++) {
                    const md_symbol *y = &ctx->syms[k];
                    char f1[300], f2[300], f3[300];
                    snprintf(f1, sizeof f1, "%s_rows", y->name);
                    snprintf(f2, sizeof f2, "%s_cols", y->name);
                    snprintf(f3, sizeof f3, "%s_len", y->name);
                    if (!strcmp(nm, f1) || !strcmp(nm, f3)) hint[y->rows] = v, found = y->rows != MD_DIM_ONE;
                    else if (!strcmp(nm, f2)) hint[y->cols] = v, found = y->cols != MD_DIM_ONE;
                }
                if (v < 1) found = 0;
            }
            if (!found) {
                fprintf(stderr, "matdiff: --size: '%.*s' names no dimension of the program (write NAME=SIZE, SIZE >= 1)\n",
                        (int)ilen, item);
                free(hint);
                rc = EXIT_USAGE;
                goto done;
            }
            item = comma ? comma + 1 : item + ilen;
        }
        md_emit_opts eo = o->emit;
        eo.size_hint = hint;
        int erc = o->header ? md_emit_header(ctx, nv, wrt, &eo, &out, stderr)
                            : md_emit_c(ctx, typed.f, nv, wrt, grads, &eo, &out, stderr);
        free(hint);
        if (erc) {
            rc = EXIT_INPUT;
            goto done;
        }
        fputs(out.s ? out.s : "", stdout);
        goto done;
    }
    if (o->latex) {
        md_latex_gradients(ctx, typed.f, nv, wrt, grads, &o->style, &out);
        if (o->check) {
            md_check_result *res = md_xcalloc((size_t)nv + 1, sizeof *res);
            int crc = md_check(ctx, typed.f, nv, wrt, grads, o->seed, 1e-6, res, stderr);
            check_no_domain = crc < 0;
            for (int i = 0; i < nv && crc >= 0; i++)
                md_buf_printf(&out, "%% check d/d%s: worst relative error %.1e against finite differences (%s)\n",
                              ctx->syms[wrt[i]].name, res[i].worst_rel_err, res[i].ok ? "ok" : "FAILED");
            if (crc) rc = EXIT_CHECK;
            free(res);
        }
        md_emit_output(o, &out);
        if (rc == EXIT_CHECK)
            fprintf(stderr, "matdiff: --check failed: %s\n",
                    check_no_domain ? "no point inside the function's domain was found"
                                    : "a gradient disagrees with finite differences");
        goto done;
    }

    /* the output */
    md_buf_printf(&out, "# ");
    if (nv == 1) md_buf_printf(&out, "d/d%s of %s", ctx->syms[wrt[0]].name, typed.ftext);
    else {
        md_buf_printf(&out, "gradient of %s with respect to ", typed.ftext);
        for (int i = 0; i < nv; i++) md_buf_printf(&out, "%s%s", i ? ", " : "", ctx->syms[wrt[i]].name);
    }
    md_buf shapes = {0};
    md_print_shapes(ctx, &shapes);
    if (shapes.len) md_buf_printf(&out, "   (%s)", shapes.s);
    md_buf_free(&shapes);
    md_buf_putc(&out, '\n');
    for (int i = 0; i < nv; i++)
        if (md_is_zero(grads[i]))
            md_buf_printf(&out, wrt[i] >= nsyms_prog || !md_mentioned(prog, ctx->syms[wrt[i]].name)
                                    ? "# %s does not occur in the function: its gradient is 0\n"
                                    : "# the gradient with respect to %s is 0\n",
                          ctx->syms[wrt[i]].name);

    if (o->check) {
        md_check_result *res = md_xcalloc((size_t)nv + 1, sizeof *res);
        int crc = md_check(ctx, typed.f, nv, wrt, grads, o->seed, 1e-6, res, stderr);
        check_no_domain = crc < 0;
        if (crc < 0) {
            rc = EXIT_CHECK;
            md_buf_puts(&out, "# check: no point inside the function's domain was found; nothing was checked\n");
        } else {
            for (int i = 0; i < nv; i++)
                md_buf_printf(&out, "# check d/d%s: worst relative error %.1e against finite differences (%s)\n",
                              ctx->syms[wrt[i]].name, res[i].worst_rel_err, res[i].ok ? "ok" : "FAILED");
            if (crc) rc = EXIT_CHECK;
        }
        free(res);
    }
    md_print_decls(ctx, &out);
    const char **avoid = md_xcalloc((size_t)nv + prog->nstmts + 1, sizeof *avoid);
    int na = 0;
    if (nv > 1) {
        for (int i = 0; i < nv; i++) {
            md_buf b = {0};
            const char *sn = ctx->syms[wrt[i]].name;
            md_buf_printf(&b, "d%s", sn);
            while (md_ctx_find_sym(ctx, b.s) >= 0 || md_ctx_find_func(ctx, b.s) >= 0) md_buf_putc(&b, '_');
            owned[i] = md_buf_take(&b);
            gnames[i] = owned[i];
            avoid[na++] = owned[i];
        }
    }
    md_print_program(ctx, &out, nv, grads, nv > 1 ? gnames : NULL, avoid);
    free(avoid);
    fputs(out.s, stdout);
    if (rc == EXIT_CHECK)
        fprintf(stderr, "matdiff: --check failed: %s\n",
                check_no_domain ? "no point inside the function's domain was found"
                                : "a gradient disagrees with finite differences");

done:
    if (owned)
        for (int i = 0; i < nv; i++) free(owned[i]);
    free(owned);
    free(gnames);
    free(grads);
    free(wrt);
    md_buf_free(&out);
    md_typed_free(&typed);
    md_program_free(prog);
    md_ctx_free(ctx);
    free(text);
    return rc;
}

static void *md_thread(void *arg)
{
    md_job *job = arg;
    job->rc = md_run(job->o);
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"wrt", required_argument, NULL, 'w'},   {"file", required_argument, NULL, 'f'},
        {"check", no_argument, NULL, 'c'},       {"seed", required_argument, NULL, 'S'},
        {"simplify", no_argument, NULL, 's'},     {"steps", no_argument, NULL, 'D'},
        {"format", required_argument, NULL, 'F'}, {"standalone", no_argument, NULL, 'L'},
        {"transpose", required_argument, NULL, 'T'}, {"hadamard", required_argument, NULL, 'H'},
        {"name", required_argument, NULL, 'N'},  {"header", no_argument, NULL, 'E'},
        {"layout", required_argument, NULL, 'Y'}, {"no-blas", no_argument, NULL, 'B'},
        {"size", required_argument, NULL, 'Z'},
        {"help", no_argument, NULL, 'h'},        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    md_opts o = {0};
    o.seed = 1;
    o.emit.name = "f";
    o.emit.blas = 1;
    int c, rc = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":w:f:cshV", longopts, NULL)) != -1) {
        switch (c) {
        case 'w': {
            char *list = optarg;
            for (char *p = list;;) {
                char *comma = strchr(p, ',');
                size_t n = comma ? (size_t)(comma - p) : strlen(p);
                char *nm = md_xmalloc(n + 1);
                memcpy(nm, p, n);
                nm[n] = 0;
                /* allow spaces after commas: "U, V" */
                char *t = nm;
                while (*t == ' ') t++;
                memmove(nm, t, strlen(t) + 1);
                while (*nm && nm[strlen(nm) - 1] == ' ') nm[strlen(nm) - 1] = 0;
                if (!valid_name(nm)) {
                    usage_error("--wrt: '%s' is not a variable name", nm);
                    free(nm);
                    rc = EXIT_USAGE;
                    goto out;
                }
                o.wrt = md_xrealloc(o.wrt, (size_t)(o.nwrt + 1) * sizeof *o.wrt);
                o.wrt[o.nwrt++] = nm;
                if (!comma) break;
                p = comma + 1;
            }
            break;
        }
        case 'f': o.file = optarg; break;
        case 'c': o.check = 1; break;
        case 's': o.simplify = 1; break;
        case 'D': o.steps = 1; break;
        case 'F':
            o.latex = o.c = 0;
            if (!strcmp(optarg, "latex")) o.latex = 1;
            else if (!strcmp(optarg, "c")) o.c = 1;
            else if (!strcmp(optarg, "text")) o.latex = 0;
            else {
                usage_error("--format: '%s' is not a format (text, latex, c)", optarg);
                rc = EXIT_USAGE;
                goto out;
            }
            break;
        case 'L': o.standalone = 1; break;
        case 'N': o.emit.name = optarg; break;
        case 'E': o.header = 1; break;
        case 'Y':
            if (!strcmp(optarg, "row")) o.emit.row_major = 1;
            else if (!strcmp(optarg, "col")) o.emit.row_major = 0;
            else {
                usage_error("--layout: '%s' is not a layout (col, row)", optarg);
                rc = EXIT_USAGE;
                goto out;
            }
            break;
        case 'B': o.emit.blas = 0; break;
        case 'Z': o.sizes = optarg; break;
        case 'T':
            if (!strcmp(optarg, "T")) o.style.transpose_T = 1;
            else if (!strcmp(optarg, "top")) o.style.transpose_T = 0;
            else {
                usage_error("--transpose: '%s' is not a style (top for ^\\top, T for ^T)", optarg);
                rc = EXIT_USAGE;
                goto out;
            }
            break;
        case 'H':
            if (!strcmp(optarg, "odot")) o.style.odot = 1;
            else if (!strcmp(optarg, "circ")) o.style.odot = 0;
            else {
                usage_error("--hadamard: '%s' is not a style (circ, odot)", optarg);
                rc = EXIT_USAGE;
                goto out;
            }
            break;
        case 'S': {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno == ERANGE) {
                usage_error("--seed: '%s' is too large", optarg);
                rc = EXIT_USAGE;
                goto out;
            }
            if (errno || *end || !*optarg || optarg[0] == '-') {
                usage_error("--seed: '%s' is not a non-negative integer", optarg);
                rc = EXIT_USAGE;
                goto out;
            }
            o.seed = v;
            break;
        }
        case 'h': fputs(md_usage, stdout); goto out;
        case 'V': printf("matdiff %s\n", MD_VERSION); goto out;
        case ':': {
            char opt[64];
            const char *written = argv[optind - 1];
            if (!strncmp(written, "--", 2)) snprintf(opt, sizeof opt, "%.60s", written);
            else snprintf(opt, sizeof opt, "-%c", optopt);
            usage_error("option '%s' needs an argument", opt);
            rc = EXIT_USAGE;
            goto out;
        }
        default: {
            char opt[64];
            const char *written = argv[optind - 1];
            if (!strncmp(written, "--", 2)) {
                snprintf(opt, sizeof opt, "%.60s", written);
                char *eq = strchr(opt, '=');
                if (eq && optopt) {
                    *eq = 0;
                    usage_error("option '%s' takes no argument", opt);
                    rc = EXIT_USAGE;
                    goto out;
                }
                if (eq) *eq = 0;
            } else {
                snprintf(opt, sizeof opt, "-%c", optopt);
            }
            usage_error("unknown option '%s'", opt);
            rc = EXIT_USAGE;
            goto out;
        }
        }
    }
    if (optind < argc) o.program = argv[optind++];
    if (optind < argc) {
        usage_error("unexpected argument '%s' (quote the program as one argument)", argv[optind]);
        rc = EXIT_USAGE;
        goto out;
    }
    if ((o.header || o.emit.row_major || !o.emit.blas || o.sizes || strcmp(o.emit.name, "f")) && !o.c) {
        usage_error("%s", "--name, --header, --layout, --no-blas and --size go with --format c");
        rc = EXIT_USAGE;
        goto out;
    }
    if (o.c && (o.steps || o.simplify)) {
        usage_error("%s", "--format c emits the function and its gradients: no --steps or --simplify");
        rc = EXIT_USAGE;
        goto out;
    }
    if (o.standalone && !o.latex) {
        usage_error("%s", "--standalone makes a LaTeX document: use it with --format latex");
        rc = EXIT_USAGE;
        goto out;
    }
    if (o.simplify && o.latex) {
        usage_error("%s", "--simplify prints a program: it has no LaTeX form (use --format text)");
        rc = EXIT_USAGE;
        goto out;
    }
    if (o.simplify && (o.check || o.nwrt)) {
        usage_error("%s", "--simplify prints the function itself: it takes no --wrt or --check");
        rc = EXIT_USAGE;
        goto out;
    }
    if (o.program && o.file) {
        usage_error("%s", "give the program either as an argument or with -f, not both");
        rc = EXIT_USAGE;
        goto out;
    }

    {
        md_job job = {&o, 0};
        pthread_attr_t attr;
        pthread_t th;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, (size_t)1 << 30);
        if (pthread_create(&th, &attr, md_thread, &job) != 0) {
            /* no big stack to be had: run here and hope the input is shallow */
            rc = md_run(&o);
        } else {
            pthread_join(th, NULL);
            rc = job.rc;
        }
        pthread_attr_destroy(&attr);
    }
out:
    for (int i = 0; i < o.nwrt; i++) free(o.wrt[i]);
    free(o.wrt);
    return rc;
}
