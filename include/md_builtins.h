/*
 * md_builtins.h -- the table of built-in functions (md_builtins.def), as
 * data every stage reads.
 *
 * md_fns[fn] describes the elementwise function fn (enum md_fn, itself
 * generated from md_builtins.def): its names in the text, Unicode, LaTeX
 * and C outputs, its value for the evaluator, the domain --check draws
 * from, its exact values on rationals, and its derivative rule.  md_ops
 * lists the built-ins that are node kinds of their own (sum, tr, det,
 * ...) with their names, LaTeX heads and shape rules.  The table is
 * instantiated once, in src/2_core/builtins.c.
 */
#ifndef MD_BUILTINS_H
#define MD_BUILTINS_H

#include <gmp.h>

#include "md_expr.h"

/* How LaTeX writes f(x). */
typedef enum md_lstyle {
    MD_LX_CALL,   /* the head, then (x): \sin(x) */
    MD_LX_ABS,    /* |x| */
    MD_LX_SQRT    /* \sqrt{x} */
} md_lstyle;

/* Where --check draws the values of a variable that occurs under it. */
typedef enum md_domain {
    MD_DOM_ANY,
    MD_DOM_POS,   /* x > 0: log, sqrt */
    MD_DOM_UNIT,  /* |x| < 1: arcsin, arccos */
    MD_DOM_SPD    /* a positive definite matrix: det, logdet, inverses */
} md_domain;

/* The shape rule of a built-in that is a node kind. */
typedef enum md_shape_rule {
    MD_SHP_SCALAR,         /* any -> 1x1 */
    MD_SHP_SQUARE_SCALAR,  /* square -> 1x1 */
    MD_SHP_SQUARE,         /* square -> the same shape */
    MD_SHP_DIAG,           /* vector -> diagonal matrix, square -> its diagonal */
    MD_SHP_VEC,            /* m x n -> mn x 1 */
    MD_SHP_KRON,           /* m x n, p x q -> mp x nq */
    MD_SHP_COMM,           /* dimension names m, n -> mn x mn */
    MD_SHP_COLUMN,         /* column vector -> itself (softmax) */
    MD_SHP_COLUMN_SCALAR   /* column vector -> 1x1 (logsumexp) */
} md_shape_rule;

enum { MD_FNF_IDEMPOTENT = 1, MD_FNF_KINK = 2 };

typedef struct md_fn_info {
    const char *name;        /* in the language */
    const char *unicode;     /* in --steps */
    const char *latex;       /* LaTeX head (MD_LX_CALL) */
    md_lstyle lstyle;
    const char *c;           /* emitted C: a printf format, %1$s the argument */
    const char *arr[3];      /* the same for NumPy, PyTorch and Octave/MATLAB
                                (md_array_lang order, src/4_emit/emit_array.c) */
    long double (*eval)(long double x);       /* NaN or inf outside the domain */
    md_domain domain;
    const char *at0, *at1;                     /* f(0), f(1) when rational, else NULL */
    int (*fold)(mpq_t out, const mpq_t x);     /* 1 and f(x) in out when rational */
    unsigned flags;
    /* f'(a) as an expression of a's shape, for e = f(a) (src/2_core/diff.c) */
    md_expr *(*fprime)(md_ctx *ctx, md_expr *e);
} md_fn_info;

typedef struct md_op_info {
    md_kind kind;
    const char *name;
    const char *latex;
    int arity;
    md_shape_rule shape;
    md_domain domain;
} md_op_info;

extern const md_fn_info md_fns[MD_NFNS];   /* MD_FN_GENERIC: a placeholder */
extern const md_op_info md_ops[];
extern const int md_nops;

/* The elementwise function called name, or MD_FN_GENERIC. */
md_fn md_fn_by_name(const char *name);
/* f(x) exactly for the rational x, when it is rational (the table's
   at0, at1 and fold): 1 with the value in out, else 0. */
int md_fn_exact(md_fn fn, mpq_t out, const mpq_t x);
/* The node-kind built-in called name, or NULL. */
const md_op_info *md_op_by_name(const char *name);
/* The domain the arguments of a node of this kind need (MD_DOM_ANY for
   most). */
md_domain md_kind_domain(md_kind kind);

/* The derivative rules the table points to (src/2_core/diff.c). */
#define MD_FN(ID, name, unicode, latex, lstyle, c, py, pt, m, eval, domain, at0, at1, fold, flags) \
    md_expr *md_fprime_##ID(md_ctx *ctx, md_expr *e);
#define MD_OP(KIND, name, latex, arity, shape, domain)
#include "md_builtins.def"
#undef MD_FN
#undef MD_OP

#endif
