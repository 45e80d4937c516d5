/*
 * arraycase.c -- one test case of the array backends (make test-arrays):
 * the emitted code and the data to run it on, with the answers.
 *
 *     arraycase FORMAT WRT ORDER SEED PREFIX < program
 *
 * writes PREFIX.py (numpy, torch) or PREFIX.m (octave; the function is
 * named after PREFIX's last component, as Octave requires), made by
 * md_run exactly as `matdiff --format FORMAT -w WRT --order ORDER` makes
 * it, and PREFIX.json: random inputs inside the function's domain
 * (md_env_random, as --check draws them) and, evaluated on them by the
 * internal evaluator, the value and every result the code returns (the
 * derivatives; with ORDER 2 the gradients then the Hessian blocks).  The
 * drivers (run_python.py, run_octave.m) call the code and compare.
 *
 * WRT is a comma-separated list, "-" for every variable, or "-K" for the
 * first K variables.  Exit status:
 * 0 written; 10 the format refuses the program (md_run's message on
 * stderr, nothing written); 11 no point in the domain was found; else an
 * error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "md_ast.h"
#include "md_diag.h"
#include "md_diff.h"
#include "md_driver.h"
#include "md_eval.h"
#include "md_expr.h"
#include "md_shape.h"
#include "md_util.h"

/* "cond": how far the value moves when every node is rounded to double
   (relative): the accuracy double-precision code can be held to. */
static void put_mat_cond(FILE *o, const md_mat *m, int scalar, int column, double cond)
{
    fprintf(o, "{\"rows\": %ld, \"cols\": %ld, \"scalar\": %d, \"column\": %d, \"cond\": %.3g, \"v\": [", m->rows,
            m->cols, scalar, column, cond);
    for (long i = 0; i < m->rows * m->cols; i++) fprintf(o, "%s%.17g", i ? ", " : "", m->v[i]);
    fprintf(o, "]}");
}

static void put_mat(FILE *o, const md_mat *m, int scalar, int column) { put_mat_cond(o, m, scalar, column, 0); }

static double rel_diff(const md_mat *a, const md_mat *b)
{
    double d = 0, m = 0;
    for (long i = 0; i < a->rows * a->cols; i++) {
        d = fmax(d, fabs(a->v[i] - b->v[i]));
        m = fmax(m, fabs(a->v[i]));
    }
    return m > 0 ? d / m : d;
}

/* An early end (a refusal, no point in the domain): at once, without the
   leak check of the ASan suite, which only the full path frees for. */
static int quit(int status)
{
    fflush(NULL);
    _exit(status);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: arraycase FORMAT WRT ORDER SEED PREFIX < program\n");
        return 2;
    }
    const char *fmt = argv[1], *wrtarg = argv[2], *prefix = argv[5];
    int order = atoi(argv[3]);
    unsigned long seed = strtoul(argv[4], NULL, 10);
    md_buf prog = {0};
    int ch;
    while ((ch = getchar()) != EOF) md_buf_putc(&prog, (char)ch);
    const char *text = prog.s ? prog.s : "";

    /* the code, as the command line makes it */
    md_request rq;
    md_request_init(&rq);
    rq.format = !strcmp(fmt, "torch") ? MD_FORMAT_TORCH : !strcmp(fmt, "octave") ? MD_FORMAT_OCTAVE : MD_FORMAT_NUMPY;
    rq.order = order;
    const char *base = strrchr(prefix, '/');
    base = base ? base + 1 : prefix;
    rq.emit.name = rq.format == MD_FORMAT_OCTAVE ? base : "f";
    int firstk = wrtarg[0] == '-' && wrtarg[1] ? atoi(wrtarg + 1) : 0;
    char *wcopy = wrtarg[0] != '-' ? strdup(wrtarg) : NULL;
    const char *wl[64];
    int nw = 0;
    for (char *t = wcopy ? strtok(wcopy, ",") : NULL; t && nw < 64; t = strtok(NULL, ",")) wl[nw++] = t;
    if (firstk > 0) {
        /* the names of the first K variables, from a typecheck of our own */
        md_ctx *c0 = md_ctx_new();
        md_source s0;
        md_source_init(&s0, "program", text, strlen(text));
        md_program *p0 = md_parse(&s0);
        md_typed t0;
        if (!p0 || md_typecheck(p0, c0, &t0)) return quit(10);
        for (int s = 0; s < c0->nsyms && nw < firstk; s++) wl[nw++] = strdup(c0->syms[s].name);
        md_typed_free(&t0);
        md_program_free(p0);
        md_ctx_free(c0);
    }
    rq.wrt = wl;
    rq.nwrt = nw;
    md_buf code = {0};
    int rc = md_run(&rq, "program", text, strlen(text), &code, stderr);
    if (rc == MD_EXIT_INPUT || rc == MD_EXIT_USAGE) return quit(10);
    if (rc) return quit(3);
    char path[4096];
    snprintf(path, sizeof path, "%s.%s", prefix, rq.format == MD_FORMAT_OCTAVE ? "m" : "py");
    FILE *o = fopen(path, "w");
    if (!o) return quit(3);
    fputs(code.s ? code.s : "", o);
    fclose(o);

    /* the answers, from the internal evaluator on a fresh graph */
    md_ctx *ctx = md_ctx_new();
    ctx->no_factor = 1;
    md_source src;
    md_source_init(&src, "program", text, strlen(text));
    md_program *p = md_parse(&src);
    md_typed typed;
    if (!p || md_typecheck(p, ctx, &typed)) return quit(3);
    int nsyms = ctx->nsyms;
    int wrt[64], nv = 0;
    if (nw == 0)
        for (int s = 0; s < nsyms && nv < 64; s++) wrt[nv++] = s;
    for (int i = 0; i < nw; i++) {
        int s = md_ctx_find_sym(ctx, wl[i]);
        if (s < 0) return quit(3);
        int dup = 0;
        for (int k = 0; k < nv; k++) dup |= wrt[k] == s;
        if (!dup) wrt[nv++] = s;
    }
    md_expr *f = typed.f;
    int jac = !md_is_scalar(f);
    int nroots = 1 + nv + (order == 2 ? nv * nv : 0);
    md_expr **roots = calloc((size_t)nroots, sizeof *roots);
    roots[0] = f;
    for (int i = 0; i < nv; i++) roots[1 + i] = jac ? md_derivative(ctx, f, wrt[i]) : md_gradient(ctx, f, wrt[i]);
    if (order == 2)
        for (int i = 0; i < nv * nv; i++) roots[1 + nv + i] = md_hessian_block(ctx, f, wrt[i / nv], wrt[i % nv]);
    for (int i = 0; i < nroots; i++)
        if (!roots[i]) return quit(10);
    md_env env;
    md_mat *val = calloc((size_t)nroots, sizeof *val);
    int ok = 0;
    for (unsigned long k = 0; k < 20 && !ok; k++) {
        if (md_env_random(ctx, f, seed + 7919ul * k, &env) == 0 && md_eval_many(&env, nroots, roots, val) == 0) {
            ok = 1;
            break;
        }
        md_env_free(&env);
    }
    if (!ok) return quit(11);
    /* --check draws the argument of an inverse, det or logdet symmetric
       positive definite, where A and A' cannot be told apart; a
       transposed solve must be caught, so square matrices (not declared
       symmetric) get an antisymmetric part, which keeps x'Ax > 0: still
       invertible with det > 0.  Kept only where every result is still
       defined. */
    {
        md_mat *saved = calloc((size_t)nsyms, sizeof *saved);
        int any = 0;
        unsigned long st = seed * 2654435761ul + 12345;
        for (int s = 0; s < nsyms; s++) {
            const md_symbol *y = &ctx->syms[s];
            md_mat *m = &env.val[s];
            saved[s] = md_mat_new(m->rows, m->cols);
            memcpy(saved[s].v, m->v, (size_t)(m->rows * m->cols) * sizeof *m->v);
            if (y->kind != MD_SYM_MATRIX || y->rows != y->cols || m->rows < 2) continue;
            any = 1;
            for (long i = 0; i < m->rows; i++)
                for (long j = 0; j < i; j++) {
                    st = st * 6364136223846793005ul + 1442695040888963407ul;
                    double r = ((double)(st >> 11) / 9007199254740992.0 - 0.5) * 0.6;
                    m->v[i + j * m->rows] += r;
                    m->v[j + i * m->rows] -= r;
                }
        }
        md_mat *tmp = calloc((size_t)nroots, sizeof *tmp);
        if (any && md_eval_many(&env, nroots, roots, tmp) == 0) {
            for (int i = 0; i < nroots; i++) {
                md_mat_free(&val[i]);
                val[i] = tmp[i];
            }
        } else if (any) {
            for (int s = 0; s < nsyms; s++) memcpy(env.val[s].v, saved[s].v,
                                                   (size_t)(saved[s].rows * saved[s].cols) * sizeof *saved[s].v);
        }
        for (int s = 0; s < nsyms; s++) md_mat_free(&saved[s]);
        free(saved);
        free(tmp);
    }
    md_mat *dbl = calloc((size_t)nroots, sizeof *dbl);
    env.doubles = 1;
    int drc = md_eval_many(&env, nroots, roots, dbl);
    env.doubles = 0;
    snprintf(path, sizeof path, "%s.json", prefix);
    o = fopen(path, "w");
    if (!o) return quit(3);
    fprintf(o, "{\"kind\": \"%s\", \"nwrt\": %d, \"wrt\": [", order == 2 ? "hessian" : jac ? "jacobian" : "gradient", nv);
    for (int i = 0; i < nv; i++) fprintf(o, "%s%d", i ? ", " : "", wrt[i]);
    fprintf(o, "],\n \"inputs\": [");
    for (int s = 0; s < nsyms; s++) {
        const md_symbol *y = &ctx->syms[s];
        fprintf(o, "%s\n  {\"name\": \"%s\", \"kind\": \"%s\", \"value\": ", s ? "," : "", y->name,
                y->kind == MD_SYM_SCALAR ? "scalar" : y->kind == MD_SYM_VECTOR ? "vector"
                                                    : y->kind == MD_SYM_SYMMETRIC ? "symmetric" : "matrix");
        put_mat(o, &env.val[s], y->kind == MD_SYM_SCALAR, y->kind == MD_SYM_VECTOR);
        fprintf(o, "}");
    }
    fprintf(o, "],\n \"funcs\": %d,\n \"results\": [", ctx->nfuncs);
    for (int i = 0; i < nroots; i++) {
        md_expr *r = roots[i];
        fprintf(o, "%s\n  ", i ? "," : "");
        put_mat_cond(o, &val[i], md_is_scalar(r), r->cols == MD_DIM_ONE && r->rows != MD_DIM_ONE,
                     drc == 0 ? rel_diff(&val[i], &dbl[i]) : INFINITY);
    }
    fprintf(o, "]}\n");
    fclose(o);
    /* everything freed: the ASan suite runs this with leak checking */
    for (int i = 0; i < nroots; i++) {
        md_mat_free(&val[i]);
        if (drc == 0) md_mat_free(&dbl[i]);
    }
    free(val);
    free(dbl);
    free(roots);
    md_env_free(&env);
    md_typed_free(&typed);
    md_program_free(p);
    md_ctx_free(ctx);
    md_buf_free(&code);
    md_buf_free(&prog);
    for (int i = 0; i < nw; i++)
        if (firstk) free((char *)wl[i]);
    free(wcopy);
    return 0;
}
