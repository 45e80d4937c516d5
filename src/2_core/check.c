/*
 * check.c -- the finite-difference self-check (--check).
 *
 * A symbolic gradient G of a scalar function f with respect to a variable
 * X is right when, for every direction D of X's shape, the directional
 * derivative of f along D equals G : D = sum(G .* D).  md_check tests
 * that on random data (md_env_random, which also keeps the point inside
 * f's domain) along a few random directions per variable.
 *
 * The numeric side is a central difference with one step of Richardson
 * extrapolation,
 *
 *     D(h) = (f(x + hD) - f(x - hD)) / 2h,    fd = (4 D(h/2) - D(h)) / 3,
 *
 * whose truncation error is O(h^4), at six steps h = 1, 0.1, ..., 1e-5
 * (times the size of X's entries); the best agreement counts.  A steep
 * function needs a small step, a function with a large value (a + 1e9) a
 * large one, and a wrong gradient agrees at none of them.  The comparison
 * is relative to the larger of the two values, with a floor of
 * 1e-6 (1 + |f(x)|): below it, rounding noise (about 1e-16 |f| / h)
 * dominates, so tiny directional derivatives are compared in absolute
 * terms, to 1e-12 (1 + |f(x)|).  G : D is taken along the steps actually
 * made (x + hD is rounded to double).  A point where a gradient cannot be
 * evaluated (inv of a singular A*X) is redrawn up to five times.
 *
 * Symmetric variables get symmetric directions: their gradient is only
 * defined up to its antisymmetric part, and G : D with symmetric D sees
 * exactly the symmetric part.  Near a domain boundary x +- hD may fall
 * outside; the step then shrinks tenfold, up to three times, before the
 * direction is reported as impossible to check.
 */
#include "md_eval.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { CHECK_DIRS = 4 };

static uint64_t check_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);   /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double check_uniform(uint64_t *s)
{
    return -1.0 + 2.0 * ((double)(check_rng(s) >> 11) * 0x1.0p-53);
}

/* f at val[s] = x + t d, unrounded (see md_eval_real); 0 or -1 outside
   the domain.  x + t d is rounded to double, so the point moved by
   slightly less or more than t d: *along gets g : (the move), in long
   double, for the comparison to be with the step actually taken. */
static int eval_at(md_env *env, md_expr *f, int s, const md_mat *d, const md_mat *g, double t,
                   long double *y, long double *along)
{
    md_mat x = env->val[s];
    md_mat moved = md_mat_new(x.rows, x.cols);
    long double a = 0.0L;
    for (long i = 0; i < x.rows * x.cols; i++) {
        moved.v[i] = x.v[i] + t * d->v[i];
        a += (long double)g->v[i] * ((long double)moved.v[i] - (long double)x.v[i]);
    }
    env->val[s] = moved;
    int rc = md_eval_real(env, f, y);
    env->val[s] = x;
    md_mat_free(&moved);
    *along = a;
    return rc;
}

/* Richardson-extrapolated central difference of f along d with step h,
   in long double: the rounding noise of f(x + hd) - f(x - hd) is then
   about 1e-19 |f| / h rather than 1e-16 |f| / h.  *an is what the
   gradient g predicts for the same four points: at h = 1e-9 the rounding
   of x + hd to double alone changes the step by 1e-7 of itself, which
   for a steep f is more than the tolerance. */
static int fd_along(md_env *env, md_expr *f, int s, const md_mat *d, const md_mat *g, double h,
                    double *fd, double *an)
{
    long double fp, fm, fp2, fm2, ap, am, ap2, am2;
    if (eval_at(env, f, s, d, g, h, &fp, &ap) < 0 || eval_at(env, f, s, d, g, -h, &fm, &am) < 0 ||
        eval_at(env, f, s, d, g, h / 2, &fp2, &ap2) < 0 || eval_at(env, f, s, d, g, -h / 2, &fm2, &am2) < 0)
        return -1;
    long double d1 = (fp - fm) / (2 * (long double)h), d2 = (fp2 - fm2) / (long double)h;
    long double a1 = (ap - am) / (2 * (long double)h), a2 = (ap2 - am2) / (long double)h;
    *fd = (double)((4 * d2 - d1) / 3);
    *an = (double)((4 * a2 - a1) / 3);
    return isfinite(*fd) && isfinite(*an) ? 0 : -1;
}

/*
 * Checks grad g of variable s along CHECK_DIRS random directions.  For
 * each direction the steps h = h0, h0/10, ... are tried, larger first
 * (h0 = 1 scaled by X's largest entry); the best agreement counts, and
 * smaller steps are only taken while no step has agreed to well within
 * tol: a steep function (sin of a large determinant) needs h = 1e-8, a
 * large value (f = a + 1e9) a large h, and a wrong gradient agrees at
 * none of them.
 *
 * A disagreement only means something if the finite differences
 * themselves settled: two consecutive steps that agree with each other
 * (to 1e-7) and not with the gradient are a wrong gradient.  If they
 * never settle, the point is too steep to judge: *inconclusive is set and
 * md_check draws another point; so does a direction along which f cannot
 * be evaluated at any step.  Returns the worst relative error.
 */
static double check_var(md_env *env, md_expr *f, int s, const md_mat *g,
                        double scale, double tol, uint64_t *rng, md_inconclusive *inconclusive)
{
    const md_ctx *ctx = env->ctx;
    const md_mat *x = &env->val[s];
    long n = x->rows * x->cols;
    double xmax = 0.0;
    for (long i = 0; i < n; i++)
        if (fabs(x->v[i]) > xmax) xmax = fabs(x->v[i]);
    double worst = 0.0;
    *inconclusive = MD_INC_NONE;
    md_mat d = md_mat_new(x->rows, x->cols);
    for (int k = 0; k < CHECK_DIRS; k++) {
        for (long i = 0; i < n; i++) d.v[i] = check_uniform(rng);
        if (md_sym_is_symmetric(ctx, s) && d.rows == d.cols)
            for (long j = 0; j < d.cols; j++)
                for (long i = j + 1; i < d.rows; i++)
                    d.v[i + j * d.rows] = d.v[j + i * d.rows];
        double h0 = xmax > 1.0 ? xmax : 1.0, best = INFINITY, prev = NAN;
        int rc = -1, settled = 0, flat = 1;
        /* steps 1 .. 1e-5 always (the error reported is the best of
           them), smaller ones only while no step has agreed */
        for (int t = 0; t < 10 && (t < 6 || best > tol * 1e-2); t++) {
            double fd = 0.0, analytic = 0.0, h = h0 * pow(10.0, -t);
            if (fd_along(env, f, s, &d, g, h, &fd, &analytic) < 0) {
                prev = NAN;
                continue;
            }
            rc = 0;
            if (fd != 0.0) flat = 0;
            /* the floor: rounding noise of a difference of f is about
               1e-16 |f| / h, so a directional derivative below 1e-6 (1 + |f|)
               is compared in absolute terms, to 1e-12 (1 + |f|) */
            double denom = fmax(fmax(fabs(fd), fabs(analytic)), 1e-6 * scale);
            double r = fabs(fd - analytic) / denom;
            if (r < best) best = r;
            /* two steps at which f did not change at all agree, but only
               because the step is below f's precision (x + 1e15): that
               is no convergence */
            if (!isnan(prev) && !(fd == 0.0 && prev == 0.0) &&
                fabs(fd - prev) / fmax(fmax(fabs(fd), fabs(prev)), 1e-6 * scale) <= 1e-7)
                settled = 1;
            prev = fd;
        }
        if (rc < 0) {
            /* f is defined at x but not at any x +- hD (log near 0, exp
               near overflow): nothing can be said here */
            *inconclusive = MD_INC_STEEP;
            worst = INFINITY;
            break;
        }
        if (best > tol && flat) *inconclusive = MD_INC_FLAT;
        else if (best > tol && !settled) *inconclusive = MD_INC_STEEP;
        if (best > worst) worst = best;
    }
    md_mat_free(&d);
    return worst;
}

static int md_check_once(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_grad_eval ge,
                         void *arg, unsigned long seed, int equal, double tol,
                         md_check_result *res, FILE *err, int quiet, int *redraw);

/*
 * A gradient that disagrees is only wrong if its value at the point is a
 * number: computed again with every node rounded to double (env.doubles),
 * a stable gradient moves by about its condition times 1e-16.  If it moves
 * by more than 1e-4 of its size, the long double value compared with the
 * finite differences is itself uncertain to the order of the tolerance
 * (LDBL_EPSILON is 2000 times smaller), and the point proves nothing:
 * the random tester found an inverse of condition 4e12 (a 36-factor chain
 * inside inv) whose gradient was 5.7e-6 off while every finite difference
 * agreed to 1e-11, and sin(T) of a chain T near 1e30, where the printed
 * text, bracketed differently, rounds T to another period.  Those
 * variables become MD_INC_COND, and md_check draws another point.
 */
static int disagrees(const md_check_result *r)
{
    return !r->ok && !r->inconclusive && isfinite(r->worst_rel_err);
}

static void unstable_gradients(md_env *env, int n, md_grad_eval ge, void *arg, const md_mat *g,
                               md_check_result *res)
{
    int any = 0;
    for (int i = 0; i < n; i++) any |= disagrees(&res[i]);
    if (!any) return;
    md_mat *gd = md_xcalloc((size_t)n, sizeof *gd);
    env->doubles = 1;
    int rc = ge(arg, env, n, gd);
    env->doubles = 0;
    for (int i = 0; i < n; i++) {
        if (!disagrees(&res[i])) continue;
        double big = 0.0, diff = 0.0;
        if (rc == 0 && gd[i].rows == g[i].rows && gd[i].cols == g[i].cols) {
            for (long k = 0; k < g[i].rows * g[i].cols; k++) {
                big = fmax(big, fabs(g[i].v[k]));
                diff = fmax(diff, fabs(gd[i].v[k] - g[i].v[k]));
            }
        } else {
            diff = INFINITY;   /* not even computable in double */
        }
        if (!(diff <= 1e-4 * big)) res[i].inconclusive = MD_INC_COND;
    }
    if (rc == 0)
        for (int i = 0; i < n; i++) md_mat_free(&gd[i]);
    free(gd);
}

/* The gradients as graphs of ctx. */
static int eval_graphs(void *arg, const md_env *env, int n, md_mat *out)
{
    return md_eval_many(env, n, arg, out);
}

int md_check(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_expr **grads,
             unsigned long seed, double tol, md_check_result *res, FILE *err)
{
    return md_check_with(ctx, f, n, wrt, eval_graphs, grads, seed, tol, res, err);
}

/* A point where some gradient cannot be evaluated (det(A*X) with a
   singular A*X: the gradient has inv(A*X) in it), or where the finite
   differences do not settle, is redrawn, up to 5 times, before that is
   reported.  If the gradients could not be evaluated with distinct sizes,
   the last two draws make every dimension equal: det(X*Y)*det(Y*X) is
   defined everywhere, but its gradient (with inv(X*Y)) only where X and Y
   are square. */
int md_check_with(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_grad_eval ge, void *arg,
                  unsigned long seed, double tol, md_check_result *res, FILE *err)
{
    int rc = -1, equal = 0;
    for (int k = 0; k < 5; k++) {
        int redraw = 0;
        int krc = md_check_once(ctx, f, n, wrt, ge, arg, seed + 7919ul * (unsigned long)k, equal, tol,
                                res, err, k < 4, &redraw);
        if (equal && krc < 0) break;   /* no point with equal sizes: res keeps the last draw's */
        rc = krc;
        if (!redraw) break;
        if (k >= 2 && redraw == 2 && ctx->ndims > 2) equal = 1;
    }
    return rc;
}

static int md_check_once(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_grad_eval ge,
                         void *arg, unsigned long seed, int equal, double tol,
                         md_check_result *res, FILE *err, int quiet, int *redraw)
{
    md_env env;
    int erc = equal ? md_env_random_ex(ctx, f, seed, 1, &env) : md_env_random(ctx, f, seed, &env);
    if (erc == MD_EVAL_BUG) {
        if (err) fprintf(err, "matdiff: --check: the function cannot be evaluated: %s\n", md_eval_bug());
        md_env_free(&env);
        for (int i = 0; i < n; i++) res[i].worst_rel_err = INFINITY, res[i].ok = 0, res[i].inconclusive = MD_INC_NONE;
        return 1;
    }
    if (erc < 0) {
        if (err && !equal)
            fputs("matdiff: --check: could not find a point inside the domain "
                  "of the function (where its value fits in a double) after 20 tries\n", err);
        md_env_free(&env);
        return -1;
    }
    md_mat fx;
    if (md_eval(&env, f, &fx) < 0) {      /* md_env_random just evaluated it */
        md_env_free(&env);
        return -1;
    }
    double scale = 1.0 + fabs(fx.v[0]);
    md_mat_free(&fx);

    md_mat *g = md_xcalloc((size_t)(n > 0 ? n : 1), sizeof(md_mat));
    int grc = ge(arg, &env, n, g);
    uint64_t rng = (uint64_t)seed ^ 0xC0FFEE5EEDull;
    int allok = 1;
    if (grc == MD_EVAL_BUG) {
        /* a gradient whose shapes do not fit the variables: never right */
        if (err) fprintf(err, "matdiff: --check: the gradients cannot be evaluated: %s\n", md_eval_bug());
        for (int i = 0; i < n; i++) res[i].worst_rel_err = INFINITY, res[i].ok = 0, res[i].inconclusive = MD_INC_NONE;
        free(g);
        md_env_free(&env);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        int s = wrt[i];
        const char *name = ctx->syms[s].name;
        res[i].worst_rel_err = INFINITY;
        res[i].ok = 0;
        res[i].inconclusive = MD_INC_NONE;
        if (grc < 0) {
            /* defined at the point but not representable (the gradient
               overflows): nothing to compare here */
            res[i].inconclusive = MD_INC_GRAD;
            *redraw = 2;
            if (err && !quiet)
                fprintf(err, "matdiff: --check: the gradient with respect to %s "
                        "cannot be evaluated at the chosen point\n", name);
            allok = 0;
            continue;
        }
        if (g[i].rows != env.val[s].rows || g[i].cols != env.val[s].cols) {
            if (err)
                fprintf(err, "matdiff: --check: the gradient with respect to %s is "
                        "%ldx%ld but %s is %ldx%ld\n", name, g[i].rows, g[i].cols,
                        name, env.val[s].rows, env.val[s].cols);
            allok = 0;
            continue;
        }
        res[i].worst_rel_err = check_var(&env, f, s, &g[i], scale, tol, &rng, &res[i].inconclusive);
        res[i].ok = res[i].worst_rel_err <= tol;
        if (!res[i].ok) allok = 0;
    }
    unstable_gradients(&env, n, ge, arg, g, res);
    for (int i = 0; i < n; i++)
        if (!res[i].ok && res[i].inconclusive && !*redraw) *redraw = 1;
    for (int i = 0; i < n; i++) md_mat_free(&g[i]);
    free(g);
    md_env_free(&env);
    return allok ? 0 : 1;
}

/* ---- second derivatives ------------------------------------------------ */

/*
 * The Hessian check: for blocks H_ij = d^2 f / d vec(X_i) d vec(X_j)',
 * u' H_ij v (u of X_i's shape, v of X_j's) against the mixed central
 * second difference of f itself,
 *
 *   D(h) = (f(x + hu + hv) - f(x + hu - hv) - f(x - hu + hv) + f(x - hu - hv)) / 4h^2
 *
 * (u and v move X_i and X_j; when i = j both move the same variable), with
 * one Richardson step, (4 D(h/2) - D(h)) / 3, whose error is O(h^4).  The
 * steps are h0, h0/10, ..., h0 * 1e-4 (after two steps, only while none has
 * agreed to within tol/1000); the best agreement counts, and a
 * disagreement counts only when two consecutive steps agree with each
 * other (the finite differences settled).  Values are long double, so the
 * rounding noise of D(h) is about 1e-19 |f| / h^2.  Points are redrawn as
 * md_check_with redraws them.
 */
enum { HESS_DIRS = 3 };

static void random_dir(const md_ctx *ctx, int s, md_mat *d, uint64_t *rng)
{
    for (long i = 0; i < d->rows * d->cols; i++) d->v[i] = check_uniform(rng);
    if (md_sym_is_symmetric(ctx, s) && d->rows == d->cols)
        for (long j = 0; j < d->cols; j++)
            for (long i = j + 1; i < d->rows; i++) d->v[i + j * d->rows] = d->v[j + i * d->rows];
}

/* f with X_si moved by a u and X_sj by b v. */
static int eval_at2(md_env *env, md_expr *f, int si, const md_mat *u, double a, int sj, const md_mat *v,
                    double b, long double *y)
{
    md_mat xi = env->val[si], xj = env->val[sj];
    md_mat mi = md_mat_new(xi.rows, xi.cols), mj = {0, 0, NULL};
    for (long k = 0; k < xi.rows * xi.cols; k++) mi.v[k] = xi.v[k] + a * u->v[k];
    if (si == sj) {
        for (long k = 0; k < xi.rows * xi.cols; k++) mi.v[k] += b * v->v[k];
    } else {
        mj = md_mat_new(xj.rows, xj.cols);
        for (long k = 0; k < xj.rows * xj.cols; k++) mj.v[k] = xj.v[k] + b * v->v[k];
        env->val[sj] = mj;
    }
    env->val[si] = mi;
    int rc = md_eval_real(env, f, y);
    env->val[si] = xi;
    env->val[sj] = xj;
    md_mat_free(&mi);
    md_mat_free(&mj);
    return rc;
}

static int second_diff(md_env *env, md_expr *f, int si, const md_mat *u, int sj, const md_mat *v, double h,
                       long double *out)
{
    long double pp, pm, mp, mm;
    if (eval_at2(env, f, si, u, h, sj, v, h, &pp) < 0 || eval_at2(env, f, si, u, h, sj, v, -h, &pm) < 0 ||
        eval_at2(env, f, si, u, -h, sj, v, h, &mp) < 0 || eval_at2(env, f, si, u, -h, sj, v, -h, &mm) < 0)
        return -1;
    *out = (pp - pm - mp + mm) / (4.0L * (long double)h * (long double)h);
    return isfinite((double)*out) ? 0 : -1;
}

static double check_block(md_env *env, md_expr *f, int si, int sj, const md_mat *H, double scale, double tol,
                          uint64_t *rng, md_inconclusive *inconclusive)
{
    const md_ctx *ctx = env->ctx;
    const md_mat *xi = &env->val[si], *xj = &env->val[sj];
    long ni = xi->rows * xi->cols, nj = xj->rows * xj->cols;
    double xmax = 0.0;
    for (long k = 0; k < ni; k++) xmax = fmax(xmax, fabs(xi->v[k]));
    for (long k = 0; k < nj; k++) xmax = fmax(xmax, fabs(xj->v[k]));
    double worst = 0.0;
    *inconclusive = MD_INC_NONE;
    md_mat u = md_mat_new(xi->rows, xi->cols), v = md_mat_new(xj->rows, xj->cols);
    for (int k = 0; k < HESS_DIRS; k++) {
        random_dir(ctx, si, &u, rng);
        random_dir(ctx, sj, &v, rng);
        long double an = 0.0L;
        for (long a = 0; a < ni; a++) {
            long double row = 0.0L;
            for (long b = 0; b < nj; b++) row += (long double)H->v[a + b * ni] * v.v[b];
            an += (long double)u.v[a] * row;
        }
        double h0 = xmax > 1.0 ? xmax * 0.1 : 0.1, best = INFINITY, prev = NAN;
        int rc = -1, settled = 0, flat = 1;
        /* smaller steps only while no step has agreed to well within tol
           (each step costs 8 evaluations of f) */
        for (int t = 0; t < 5 && !(best <= tol * 1e-3 && t >= 2); t++) {
            double h = h0 * pow(10.0, -t);
            long double d1, d2;
            if (second_diff(env, f, si, &u, sj, &v, h, &d1) < 0 || second_diff(env, f, si, &u, sj, &v, h / 2, &d2) < 0) {
                prev = NAN;
                continue;
            }
            rc = 0;
            double fd = (double)((4.0L * d2 - d1) / 3.0L);
            if (fd != 0.0) flat = 0;
            double denom = fmax(fmax(fabs(fd), fabs((double)an)), 1e-6 * scale);
            double r = fabs(fd - (double)an) / denom;
            if (r < best) best = r;
            /* two steps at which f did not change at all agree only
               because the step is below f's precision (sin(a + 1e20)) */
            if (!isnan(prev) && !(fd == 0.0 && prev == 0.0) &&
                fabs(fd - prev) / fmax(fmax(fabs(fd), fabs(prev)), 1e-6 * scale) <= 1e-7)
                settled = 1;
            prev = fd;
        }
        if (rc < 0) {
            *inconclusive = MD_INC_STEEP;
            worst = INFINITY;
            break;
        }
        if (best > tol && flat) *inconclusive = MD_INC_FLAT;
        else if (best > tol && !settled) *inconclusive = MD_INC_STEEP;
        if (best > worst) worst = best;
        if (*inconclusive) break;   /* this point is no verdict either way: another is drawn */
    }
    md_mat_free(&u);
    md_mat_free(&v);
    return worst;
}

static int hessian_once(md_ctx *ctx, md_expr *f, int nv, const int *wrt, md_grad_eval he, void *arg,
                        unsigned long seed, int equal, double tol, md_check_result *res, FILE *err, int *redraw)
{
    int nb = nv * nv;
    md_env env;
    int erc = equal ? md_env_random_ex(ctx, f, seed, 1, &env) : md_env_random(ctx, f, seed, &env);
    if (erc == MD_EVAL_BUG) {
        if (err) fprintf(err, "matdiff: --check: the function cannot be evaluated: %s\n", md_eval_bug());
        md_env_free(&env);
        for (int i = 0; i < nb; i++) res[i].worst_rel_err = INFINITY, res[i].ok = 0, res[i].inconclusive = MD_INC_NONE;
        return 1;
    }
    md_mat fx;
    if (erc < 0 || md_eval(&env, f, &fx) < 0) {
        md_env_free(&env);
        return -1;
    }
    double scale = 1.0 + fabs(fx.v[0]);
    md_mat_free(&fx);
    md_mat *H = md_xcalloc((size_t)nb + 1, sizeof *H);
    int hrc = he(arg, &env, nb, H);
    uint64_t rng = (uint64_t)seed ^ 0x5EC0DD1FFull;
    int allok = 1;
    for (int b = 0; b < nb; b++) {
        int si = wrt[b / nv], sj = wrt[b % nv];
        res[b].worst_rel_err = INFINITY;
        res[b].ok = 0;
        res[b].inconclusive = MD_INC_NONE;
        if (hrc == MD_EVAL_BUG) continue;
        if (hrc < 0) {
            res[b].inconclusive = MD_INC_GRAD;
            *redraw = 2;
            continue;
        }
        long ni = env.val[si].rows * env.val[si].cols, nj = env.val[sj].rows * env.val[sj].cols;
        if (H[b].rows != ni || H[b].cols != nj) {
            if (err)
                fprintf(err, "matdiff: --check: the second derivative by %s and %s is %ldx%ld, not %ldx%ld\n",
                        ctx->syms[si].name, ctx->syms[sj].name, H[b].rows, H[b].cols, ni, nj);
            continue;
        }
        res[b].worst_rel_err = check_block(&env, f, si, sj, &H[b], scale, tol, &rng, &res[b].inconclusive);
        res[b].ok = res[b].worst_rel_err <= tol;
    }
    if (hrc == 0) {
        for (int b = 0; b < nb; b++) allok &= res[b].ok;
        unstable_gradients(&env, nb, he, arg, H, res);
        for (int b = 0; b < nb; b++) md_mat_free(&H[b]);
    } else {
        allok = 0;
        if (hrc == MD_EVAL_BUG && err)
            fprintf(err, "matdiff: --check: the second derivatives cannot be evaluated: %s\n", md_eval_bug());
    }
    for (int b = 0; b < nb; b++)
        if (!res[b].ok && res[b].inconclusive && !*redraw) *redraw = 1;
    free(H);
    md_env_free(&env);
    return allok ? 0 : 1;
}

int md_check_hessian_with(md_ctx *ctx, md_expr *f, int nv, const int *wrt, md_grad_eval he, void *arg,
                          unsigned long seed, double tol, md_check_result *res, FILE *err)
{
    int rc = -1, equal = 0;
    for (int k = 0; k < 5; k++) {
        int redraw = 0;
        int krc = hessian_once(ctx, f, nv, wrt, he, arg, seed + 7919ul * (unsigned long)k, equal, tol, res,
                               k == 4 ? err : NULL, &redraw);
        if (equal && krc < 0) break;
        rc = krc;
        if (!redraw) break;
        if (k >= 2 && redraw == 2 && ctx->ndims > 2) equal = 1;
    }
    return rc;
}
