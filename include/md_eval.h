/*
 * md_eval.h -- numeric evaluation of expressions and the finite-difference
 * self-check.
 *
 * Correctness in matdiff is numeric.  The evaluator computes any md_expr
 * on dense double matrices (column-major), given a size for every
 * dimension and a value for every variable (and, for MD_DIFF nodes, a
 * direction for every variable).  md_check uses it to compare a symbolic
 * gradient with central finite differences of the function along random
 * directions, on random data chosen inside the function's domain.
 *
 * Generic functions (`function f`) are evaluated as a fixed smooth family
 * whose derivatives of every order are known in closed form:
 * f_k(x) = sin(a_k x + b_k) with a_k = 0.7 + 0.3 k, b_k = 0.4 + 0.5 k, so
 * the order-m derivative is a_k^m sin(a_k x + b_k + m pi/2).
 */
#ifndef MD_EVAL_H
#define MD_EVAL_H

#include <stdio.h>

#include "md_expr.h"

typedef struct md_mat {
    long rows, cols;
    double *v;           /* rows*cols doubles, column-major; malloc'd */
} md_mat;

md_mat md_mat_new(long rows, long cols);   /* zero-filled */
void md_mat_free(md_mat *m);

typedef struct md_env {
    md_ctx *ctx;
    long *dimsize;       /* dimsize[d] for every dim id; dimsize[0] == 1 */
    int ndims;           /* entries of dimsize (0: as many as ctx has); a
                            product dimension made after the env (by an
                            expression built later) gets its size from
                            its factors */
    md_mat *val;         /* val[s] for every symbol s */
    md_mat *dir;         /* dir[s]: the value of MD_DIFF of s; may be NULL
                            (then MD_DIFF evaluates to zero) */
    const int *funcmap;  /* generic function k of ctx is member funcmap[k] of
                            the family below; NULL: member k (a read-back
                            program maps its functions to the original's) */
    int doubles;         /* round every node's value to double, as code
                            computing in double would (to estimate how much
                            double rounding can move a result) */
} md_env;

/*
 * Evaluates e.  Returns 0 and fills *out (caller frees with md_mat_free),
 * or returns -1 when the value is not finite or an operation is outside
 * its domain (log of a negative number, singular inverse, ...), or
 * MD_EVAL_BUG when a node's arguments break its shape contract (a bug in
 * whoever built the graph; md_eval_bug() says which node).  Shared
 * subexpressions are evaluated once per call.
 */
enum { MD_EVAL_BUG = -2 };
int md_eval(const md_env *env, md_expr *e, md_mat *out);
/* A scalar e, as computed (long double, not rounded to double). */
int md_eval_real(const md_env *env, md_expr *e, long double *out);
const char *md_eval_bug(void);
void md_eval_note_bug(const char *what);   /* for evaluators built on md_eval */

/* Evaluates several expressions sharing one memo table (faster). */
int md_eval_many(const md_env *env, int n, md_expr **es, md_mat *outs);

/* Why a variable could not be judged (md_check_result.inconclusive). */
typedef enum md_inconclusive {
    MD_INC_NONE = 0,
    MD_INC_STEEP,   /* the finite differences never settled, or f is not
                       defined at x +- hD: too steep or too close to an edge */
    MD_INC_GRAD,    /* the gradient cannot be evaluated at any point tried
                       (a singular matrix inside it, or an overflow) */
    MD_INC_FLAT,    /* f did not change at all along D at any step, while
                       G : D is not 0: the variable is lost to rounding
                       (sin(a + 1e20)) */
    MD_INC_COND     /* the gradient disagrees, but its value is unstable
                       at the point: computed with every node rounded to
                       double it moves by more than 1e-4 (an inverse too
                       ill-conditioned, sin of a huge argument), so its
                       long double value is only known to about the
                       tolerance */
} md_inconclusive;

typedef struct md_check_result {
    double worst_rel_err;   /* over all directions tried */
    int ok;                 /* worst_rel_err <= tolerance */
    md_inconclusive inconclusive;   /* not ok, but not judged either */
} md_check_result;

/*
 * The numerical self-check.  f is the scalar function; grads[i] is the
 * claimed gradient with respect to variable wrt[i] (same shape as that
 * variable).  Picks dimension sizes (distinct, 2..6) and data inside the
 * domain of f from seed, then for each variable compares grads[i]:D with
 * the central finite difference of f along several random directions D
 * (symmetric D for symmetric variables), with Richardson extrapolation.
 * Fills res[i].  Returns 0 when every variable passes tol, 1 when some
 * variable fails, -1 when no point inside the domain could be found (a
 * message is written to err).
 */
int md_check(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_expr **grads,
             unsigned long seed, double tol, md_check_result *res, FILE *err);

/*
 * The same check with the gradients computed by ge(arg, env, n, out) at
 * each point md_check draws: out[i] is the gradient with respect to
 * wrt[i].  ge returns 0, -1 (not defined at this point: it is redrawn) or
 * MD_EVAL_BUG (the gradients do not fit the variables: the check fails).
 * --check uses it to evaluate the printed text read back (md_readback.h).
 */
typedef int (*md_grad_eval)(void *arg, const md_env *env, int n, md_mat *out);
int md_check_with(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_grad_eval ge, void *arg,
                  unsigned long seed, double tol, md_check_result *res, FILE *err);

/*
 * The second-order check: he(arg, env, nv*nv, out) evaluates the Hessian
 * blocks, out[i*nv + j] = d^2 f / d vec(X_i) d vec(X_j)' (wrt[i], wrt[j]),
 * and u' H_ij v is compared with mixed central second differences of f
 * along random u, v (symmetric for symmetric variables).  res has nv*nv
 * entries, in the same order.  Returns as md_check_with.
 */
int md_check_hessian_with(md_ctx *ctx, md_expr *f, int nv, const int *wrt, md_grad_eval he, void *arg,
                          unsigned long seed, double tol, md_check_result *res, FILE *err);

/*
 * Draws dimension sizes and variable values for f from seed, as md_check
 * does; exposed for tests.  Returns 0, or -1 if no point in f's domain
 * was found, or MD_EVAL_BUG if f breaks a shape contract.  Free with
 * md_env_free.
 */
int md_env_random(md_ctx *ctx, md_expr *f, unsigned long seed, md_env *env);
/* The same with every dimension of size 3 when equal_sizes (md_env_random
   falls back to it; md_check redraws with it where the gradients cannot be
   evaluated with distinct sizes). */
int md_env_random_ex(md_ctx *ctx, md_expr *f, unsigned long seed, int equal_sizes, md_env *env);
void md_env_free(md_env *env);

#endif
