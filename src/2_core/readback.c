/*
 * readback.c -- reading a printed result back (see md_readback.h).
 *
 * The printed text goes through the same front end as any user program:
 * md_parse, then md_typecheck in a fresh context.  Parse errors, shape
 * errors and undetermined sizes are collected into rb->why instead of
 * being printed, because here they are matdiff's own bugs.
 *
 * Matching by name is the whole point: a temporary printed after its use
 * reads back as a new variable (which the original does not have), a
 * dropped parenthesis changes a shape or a value, a lost size is an error
 * of md_typecheck.  Dimensions are matched through the variables that
 * carry them, per evaluation, because md_check draws new sizes for each
 * point: a dimension of the text takes the size of the original dimension
 * of every variable that has it, and two different sizes for one
 * dimension of the text means the text unified what the original kept
 * apart.
 */
#include "md_readback.h"

#include <stdlib.h>
#include <string.h>

static void first_line(char *dst, size_t n, const char *src)
{
    size_t k = 0;
    while (src && src[k] && src[k] != '\n' && k + 1 < n) {
        dst[k] = src[k];
        k++;
    }
    dst[k] = 0;
}

int md_readback_open(md_readback *rb, md_ctx *orig, const char *text, int n,
                     const char *const *names)
{
    memset(rb, 0, sizeof *rb);
    rb->orig = orig;
    rb->n = n;
    rb->text = md_xstrdup(text);
    md_source_init(&rb->src, "<printed>", rb->text, strlen(rb->text));
    char *errs = NULL;
    size_t errlen = 0;
    FILE *ef = open_memstream(&errs, &errlen);
    rb->src.err = ef;
    rb->ctx = md_ctx_new();
    rb->ctx->no_factor = orig->no_factor;
    rb->prog = md_parse(&rb->src);
    int ok = rb->prog && md_typecheck(rb->prog, rb->ctx, &rb->typed) == 0;
    if (ef) fclose(ef);
    rb->src.err = stderr;
    if (!ok) {
        char line[400];
        first_line(line, sizeof line, errs ? errs : "");
        snprintf(rb->why, sizeof rb->why, "it does not read back: %s", line);
        free(errs);
        return -1;
    }
    free(errs);

    rb->roots = md_xcalloc((size_t)n + 1, sizeof *rb->roots);
    for (int i = 0; i < n; i++) {
        rb->roots[i] = names && names[i] ? md_typed_bound(&rb->typed, names[i]) : rb->typed.f;
        if (!rb->roots[i]) {
            snprintf(rb->why, sizeof rb->why, "it does not define '%s'", names[i]);
            return -1;
        }
    }
    rb->symmap = md_xcalloc((size_t)rb->ctx->nsyms + 1, sizeof *rb->symmap);
    for (int s = 0; s < rb->ctx->nsyms; s++) {
        rb->symmap[s] = md_ctx_find_sym(orig, rb->ctx->syms[s].name);
        if (rb->symmap[s] < 0) {
            snprintf(rb->why, sizeof rb->why, "it uses '%s', which is not a variable of the function",
                     rb->ctx->syms[s].name);
            return -1;
        }
    }
    rb->funcmap = md_xcalloc((size_t)rb->ctx->nfuncs + 1, sizeof *rb->funcmap);
    for (int k = 0; k < rb->ctx->nfuncs; k++) {
        rb->funcmap[k] = md_ctx_find_func(orig, rb->ctx->funcs[k]);
        if (rb->funcmap[k] < 0) {
            snprintf(rb->why, sizeof rb->why, "it declares a function '%s' the input does not have",
                     rb->ctx->funcs[k]);
            return -1;
        }
    }
    return 0;
}

/* One dimension of the text gets size v; 0, or -1 on a clash. */
static int set_size(long *size, int d, long v)
{
    if (d == MD_DIM_ONE) return v == 1 ? 0 : -1;
    if (size[d] && size[d] != v) return -1;
    size[d] = v;
    return 0;
}

int md_readback_eval(void *arg, const md_env *env, int n, md_mat *out)
{
    md_readback *rb = arg;
    md_ctx *c = rb->ctx;
    const md_ctx *o = rb->orig;
    md_env e2;
    memset(&e2, 0, sizeof e2);
    e2.ctx = c;
    e2.doubles = env->doubles;
    e2.dimsize = md_xcalloc((size_t)c->ndims + 1, sizeof *e2.dimsize);
    e2.ndims = c->ndims;
    e2.dimsize[MD_DIM_ONE] = 1;
    e2.val = md_xcalloc((size_t)c->nsyms + 1, sizeof *e2.val);
    e2.dir = env->dir ? md_xcalloc((size_t)c->nsyms + 1, sizeof *e2.dir) : NULL;
    int *fm = md_xcalloc((size_t)c->nfuncs + 1, sizeof *fm);
    for (int k = 0; k < c->nfuncs; k++)
        fm[k] = env->funcmap ? env->funcmap[rb->funcmap[k]] : rb->funcmap[k];
    e2.funcmap = fm;
    int rc = 0;
    for (int s = 0; s < c->nsyms && rc == 0; s++) {
        const md_symbol *y = &c->syms[s], *x = &o->syms[rb->symmap[s]];
        if (set_size(e2.dimsize, y->rows, env->dimsize[x->rows]) ||
            set_size(e2.dimsize, y->cols, env->dimsize[x->cols])) {
            rc = MD_EVAL_BUG;
            break;
        }
        e2.val[s] = env->val[rb->symmap[s]];
        if (e2.dir) e2.dir[s] = env->dir[rb->symmap[s]];
    }
    /* a base dimension that only occurs inside products (vector v(n*p))
       has the size of the input's dimension of that name; every product
       must then agree with what the variables gave it */
    for (int d = 1; d < c->ndims && rc == 0; d++) {
        if (c->dims[d].nfac || e2.dimsize[d]) continue;
        for (int od = 1; od < o->ndims; od++)
            if (!o->dims[od].nfac && o->dims[od].name && c->dims[d].name && !strcmp(o->dims[od].name, c->dims[d].name) &&
                (!env->ndims || od < env->ndims))
                e2.dimsize[d] = env->dimsize[od];
    }
    if (rc == 0) {
        long *given = md_xcalloc((size_t)c->ndims + 1, sizeof *given);
        memcpy(given, e2.dimsize, (size_t)c->ndims * sizeof *given);
        md_ctx_product_sizes(c, e2.dimsize);
        for (int d = 1; d < c->ndims && rc == 0; d++)
            if (c->dims[d].nfac && given[d] && given[d] != e2.dimsize[d]) rc = MD_EVAL_BUG;
        free(given);
    }
    for (int d = 1; d < c->ndims && rc == 0; d++)
        if (!e2.dimsize[d]) rc = MD_EVAL_BUG;
    if (rc == 0) {
        rc = md_eval_many(&e2, n < rb->n ? n : rb->n, rb->roots, out);
    } else {
        md_eval_note_bug("the printed text's shapes disagree with the function's");
        for (int i = 0; i < n; i++) out[i] = (md_mat){0, 0, NULL};
    }
    free(fm);
    free(e2.dimsize);
    free(e2.val);
    free(e2.dir);
    return rc;
}

void md_readback_close(md_readback *rb)
{
    free(rb->roots);
    free(rb->symmap);
    free(rb->funcmap);
    md_typed_free(&rb->typed);
    md_program_free(rb->prog);
    if (rb->ctx) md_ctx_free(rb->ctx);
    free(rb->text);
    memset(rb, 0, sizeof *rb);
}
