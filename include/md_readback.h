/*
 * md_readback.h -- a printed result read back, the way a user reads it.
 *
 * matdiff's text output is a program.  Whatever a printer gets wrong -- a
 * dropped parenthesis, a temporary used before its definition, a size
 * nothing fixes -- shows when that text is parsed again and evaluated, and
 * nowhere else.  So every printed result is read back: the driver (and
 * --check, and the random tester) parse it into a fresh context and
 * evaluate it on the same data as the function it came from, with
 * variables, dimensions and generic functions matched by name.
 *
 *     md_readback rb;
 *     if (md_readback_open(&rb, ctx, text, n, names) < 0) ... rb.why ...
 *     md_readback_eval(&rb, env, n, out);     env: data for ctx's variables
 *     md_readback_close(&rb);
 *
 * The roots are the named statements names[i] (dX = ... lines), or the
 * program's last expression where names is NULL or names[i] is NULL.
 */
#ifndef MD_READBACK_H
#define MD_READBACK_H

#include "md_ast.h"
#include "md_eval.h"
#include "md_shape.h"

typedef struct md_readback {
    md_ctx *orig;        /* the context the text was printed from */
    md_source src;
    char *text;
    md_program *prog;
    md_ctx *ctx;         /* the text's own context */
    md_typed typed;
    int n;
    md_expr **roots;     /* the results, nodes of ctx */
    int *symmap;         /* ctx symbol -> orig symbol */
    int *funcmap;        /* ctx function -> orig function */
    char why[512];       /* why it does not read back (md_readback_open < 0) */
} md_readback;

/* Parses and typechecks text; returns 0, or -1 with rb->why set (and rb
   still safe to close). */
int md_readback_open(md_readback *rb, md_ctx *orig, const char *text, int n,
                     const char *const *names);

/* Evaluates the roots on env's data (an environment of orig); same
   returns as md_eval.  A shape of the text that disagrees with the
   original's sizes is MD_EVAL_BUG, with the reason in md_eval_bug().
   Has the md_grad_eval signature, so md_check_with can call it. */
int md_readback_eval(void *rb, const md_env *env, int n, md_mat *out);

void md_readback_close(md_readback *rb);

#endif
