/*
 * test_eval.c -- the numeric evaluator and the finite-difference check.
 *
 * Expressions are built with the raw constructors of md_expr.h (no
 * simplification), so each test pins down the value of one node kind on
 * small hand-computed data.  md_check is then run on hand-built gradients,
 * right and deliberately wrong.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_eval.h"
#include "md_test.h"

/* ---- helpers ---- */

#define MD_PI 3.14159265358979323846
#define MD_E 2.71828182845904523536

static md_expr *mk1(md_ctx *c, md_kind k, int r, int cl, int ival, md_expr *a)
{
    return md_expr_make(c, k, r, cl, ival, 0, 0, 1, &a, NULL);
}

static md_expr *mk2(md_ctx *c, md_kind k, int r, int cl, md_expr *a, md_expr *b)
{
    md_expr *args[2] = {a, b};
    return md_expr_make(c, k, r, cl, 0, 0, 0, 2, args, NULL);
}

static md_expr *fn(md_ctx *c, md_fn f, md_expr *a)
{
    return mk1(c, MD_FUNC, a->rows, a->cols, (int)f, a);
}

static md_expr *scal(md_ctx *c, md_kind k, md_expr *a)   /* SUM, TR, DET, ... */
{
    return mk1(c, k, MD_DIM_ONE, MD_DIM_ONE, 0, a);
}

/* An env with the given dimension sizes (sizes[0] is ignored) and zero
   values for every symbol; freed with md_env_free. */
static void env_init(md_env *env, md_ctx *c, const long *sizes)
{
    memset(env, 0, sizeof *env);
    env->ctx = c;
    env->dimsize = calloc((size_t)c->ndims, sizeof(long));
    env->dimsize[0] = 1;
    for (int d = 1; d < c->ndims; d++) env->dimsize[d] = sizes[d];
    env->val = calloc((size_t)c->nsyms + 1, sizeof(md_mat));   /* see md_env_free */
    env->dir = NULL;
    for (int s = 0; s < c->nsyms; s++)
        env->val[s] = md_mat_new(env->dimsize[c->syms[s].rows],
                                 env->dimsize[c->syms[s].cols]);
}

static void set_val(md_env *env, int s, const double *v)
{
    md_mat *m = &env->val[s];
    memcpy(m->v, v, (size_t)(m->rows * m->cols) * sizeof(double));
}

/* Evaluates e and compares with the column-major r x cl array want. */
static void expect(const md_env *env, md_expr *e, long r, long cl, const double *want)
{
    md_mat m;
    ck_assert_int_eq(md_eval(env, e, &m), 0);
    ck_assert_int_eq(m.rows, r);
    ck_assert_int_eq(m.cols, cl);
    for (long i = 0; i < r * cl; i++)
        ck_assert_msg(fabs(m.v[i] - want[i]) <= 1e-12 * (1 + fabs(want[i])),
                      "entry %ld: got %.17g, want %.17g", i, m.v[i], want[i]);
    md_mat_free(&m);
}

static double eval1(const md_env *env, md_expr *e)
{
    md_mat m;
    ck_assert_int_eq(md_eval(env, e, &m), 0);
    ck_assert_int_eq(m.rows * m.cols, 1);
    double v = m.v[0];
    md_mat_free(&m);
    return v;
}

static void expect_fail(const md_env *env, md_expr *e)
{
    md_mat m;
    ck_assert_int_eq(md_eval(env, e, &m), -1);
    ck_assert_ptr_null(m.v);
}

/*
 * The common fixture: dims n=2, p=3, k=2 (a second size-2 dimension, so
 * square 2x2 symbols share n), symbols
 *   A: n x p = [1 2 3; 4 5 6]      B: p x n = [1 0; 0 1; 1 1]
 *   X: n x n = [2 1; 1 3]          S: n x n singular [1 2; 2 4]
 *   x: n x 1 = [1; -2]             a: scalar = 3
 */
static md_ctx *c;
static md_env env;
static int n, p, sA, sB, sX, sS, sx, sa;
static md_expr *A, *B, *X, *S, *x, *a;

static void setup(void)
{
    c = md_ctx_new();
    n = md_ctx_add_dim(c, "n", 1);
    p = md_ctx_add_dim(c, "p", 1);
    sA = md_ctx_add_sym(c, "A", MD_SYM_MATRIX, n, p);
    sB = md_ctx_add_sym(c, "B", MD_SYM_MATRIX, p, n);
    sX = md_ctx_add_sym(c, "X", MD_SYM_MATRIX, n, n);
    sS = md_ctx_add_sym(c, "S", MD_SYM_MATRIX, n, n);
    sx = md_ctx_add_sym(c, "x", MD_SYM_VECTOR, n, MD_DIM_ONE);
    sa = md_ctx_add_sym(c, "a", MD_SYM_SCALAR, MD_DIM_ONE, MD_DIM_ONE);
    A = md_sym(c, sA); B = md_sym(c, sB); X = md_sym(c, sX);
    S = md_sym(c, sS); x = md_sym(c, sx); a = md_sym(c, sa);
    long sizes[3] = {1, 2, 3};
    env_init(&env, c, sizes);
    set_val(&env, sA, (double[]){1, 4, 2, 5, 3, 6});
    set_val(&env, sB, (double[]){1, 0, 1, 0, 1, 1});
    set_val(&env, sX, (double[]){2, 1, 1, 3});
    set_val(&env, sS, (double[]){1, 2, 2, 4});
    set_val(&env, sx, (double[]){1, -2});
    set_val(&env, sa, (double[]){3});
}

static void teardown(void)
{
    md_env_free(&env);
    md_ctx_free(c);
}

/* ---- leaves ---- */

START_TEST(test_leaves)
{
    expect(&env, md_num_si(c, 3, 4), 1, 1, (double[]){0.75});
    expect(&env, md_num_si(c, -7, 1), 1, 1, (double[]){-7});
    expect(&env, A, 2, 3, (double[]){1, 4, 2, 5, 3, 6});
    expect(&env, a, 1, 1, (double[]){3});
    expect(&env, md_expr_make(c, MD_ZERO, n, p, 0, 0, 0, 0, NULL, NULL), 2, 3,
           (double[]){0, 0, 0, 0, 0, 0});
    expect(&env, md_expr_make(c, MD_ONES, p, MD_DIM_ONE, 0, 0, 0, 0, NULL, NULL), 3, 1,
           (double[]){1, 1, 1});
    expect(&env, md_expr_make(c, MD_EYE, p, p, 0, 0, 0, 0, NULL, NULL), 3, 3,
           (double[]){1, 0, 0, 0, 1, 0, 0, 0, 1});
}
END_TEST

START_TEST(test_diff)
{
    md_expr *dA = md_diff_of(c, sA);
    expect(&env, dA, 2, 3, (double[]){0, 0, 0, 0, 0, 0});    /* no dir: zero */
    env.dir = calloc((size_t)c->nsyms + 1, sizeof(md_mat));
    for (int s = 0; s < c->nsyms; s++)
        env.dir[s] = md_mat_new(env.val[s].rows, env.val[s].cols);
    env.dir[sA].v[1] = 5;
    expect(&env, dA, 2, 3, (double[]){0, 5, 0, 0, 0, 0});
}
END_TEST

/* ---- arithmetic ---- */

START_TEST(test_add_had)
{
    /* A + A + A: the same node three times */
    md_expr *args[3] = {A, A, A};
    expect(&env, md_expr_make(c, MD_ADD, n, p, 0, 0, 0, 3, args, NULL), 2, 3,
           (double[]){3, 12, 6, 15, 9, 18});
    md_expr *Bt = mk1(c, MD_TRANS, n, p, 0, B);             /* [1 0 1; 0 1 1] */
    expect(&env, mk2(c, MD_ADD, n, p, A, Bt), 2, 3, (double[]){2, 4, 2, 6, 4, 7});
    expect(&env, mk2(c, MD_HAD, n, p, A, Bt), 2, 3, (double[]){1, 0, 0, 5, 3, 6});
    /* a 1x1 factor of a Hadamard product broadcasts */
    expect(&env, mk2(c, MD_HAD, n, p, a, A), 2, 3, (double[]){3, 12, 6, 15, 9, 18});
    expect(&env, mk2(c, MD_HAD, MD_DIM_ONE, MD_DIM_ONE, a, a), 1, 1, (double[]){9});
}
END_TEST

START_TEST(test_mul)
{
    /* A B = [1 2 3; 4 5 6][1 0; 0 1; 1 1] = [4 5; 10 11] */
    expect(&env, mk2(c, MD_MUL, n, n, A, B), 2, 2, (double[]){4, 10, 5, 11});
    /* B A is 3x3 */
    expect(&env, mk2(c, MD_MUL, p, p, B, A), 3, 3,
           (double[]){1, 4, 5, 2, 5, 7, 3, 6, 9});
    /* scalar factors first, then the chain: 2 * a * A * B */
    md_expr *args[4] = {md_num_si(c, 2, 1), a, A, B};
    expect(&env, md_expr_make(c, MD_MUL, n, n, 0, 0, 0, 4, args, NULL), 2, 2,
           (double[]){24, 60, 30, 66});
    /* a scalar in the middle of the chain still scales */
    md_expr *mid[3] = {A, md_num_si(c, 1, 2), B};
    expect(&env, md_expr_make(c, MD_MUL, n, n, 0, 0, 0, 3, mid, NULL), 2, 2,
           (double[]){2, 5, 2.5, 5.5});
    /* all scalars */
    expect(&env, mk2(c, MD_MUL, MD_DIM_ONE, MD_DIM_ONE, a, md_num_si(c, -1, 3)), 1, 1,
           (double[]){-1});
    /* x' x = 5 and x x' */
    md_expr *xt = mk1(c, MD_TRANS, MD_DIM_ONE, n, 0, x);
    expect(&env, mk2(c, MD_MUL, MD_DIM_ONE, MD_DIM_ONE, xt, x), 1, 1, (double[]){5});
    expect(&env, mk2(c, MD_MUL, n, n, x, xt), 2, 2, (double[]){1, -2, -2, 4});
    /* x' X x = [1 -2][2 1; 1 3][1; -2] = 2 - 4 + 12 = 10 */
    md_expr *q[3] = {xt, X, x};
    expect(&env, md_expr_make(c, MD_MUL, MD_DIM_ONE, MD_DIM_ONE, 0, 0, 0, 3, q, NULL),
           1, 1, (double[]){10});
}
END_TEST

START_TEST(test_trans)
{
    expect(&env, mk1(c, MD_TRANS, p, n, 0, A), 3, 2, (double[]){1, 2, 3, 4, 5, 6});
    expect(&env, mk1(c, MD_TRANS, MD_DIM_ONE, n, 0, x), 1, 2, (double[]){1, -2});
}
END_TEST

START_TEST(test_pow)
{
    expect(&env, mk2(c, MD_POW, n, p, A, md_num_si(c, 2, 1)), 2, 3,
           (double[]){1, 16, 4, 25, 9, 36});
    expect(&env, mk2(c, MD_POW, n, MD_DIM_ONE, x, md_num_si(c, 3, 1)), 2, 1,
           (double[]){1, -8});
    expect(&env, mk2(c, MD_POW, n, MD_DIM_ONE, x, md_num_si(c, -1, 1)), 2, 1,
           (double[]){1, -0.5});
    /* 1x1 base broadcasts over the exponent: 2 .^ A */
    expect(&env, mk2(c, MD_POW, n, p, md_num_si(c, 2, 1), A), 2, 3,
           (double[]){2, 16, 4, 32, 8, 64});
    /* same-shape exponent */
    expect(&env, mk2(c, MD_POW, n, p, A, A), 2, 3,
           (double[]){1, 256, 4, 3125, 27, 46656});
    expect(&env, mk2(c, MD_POW, MD_DIM_ONE, MD_DIM_ONE, a, md_num_si(c, 1, 2)), 1, 1,
           (double[]){sqrt(3.0)});
    /* fractional power of a negative entry; 0 to a negative power */
    expect_fail(&env, mk2(c, MD_POW, n, MD_DIM_ONE, x, md_num_si(c, 1, 2)));
    md_expr *z = md_expr_make(c, MD_ZERO, n, p, 0, 0, 0, 0, NULL, NULL);
    expect_fail(&env, mk2(c, MD_POW, n, p, z, md_num_si(c, -1, 1)));
}
END_TEST

START_TEST(test_mpow)
{
    /* X = [2 1; 1 3]: X^2 = [5 5; 5 10], det 5, inv = [3 -1; -1 2]/5 */
    expect(&env, mk1(c, MD_MPOW, n, n, 2, X), 2, 2, (double[]){5, 5, 5, 10});
    expect(&env, mk1(c, MD_MPOW, n, n, 3, X), 2, 2, (double[]){15, 20, 20, 35});
    expect(&env, mk1(c, MD_MPOW, n, n, -1, X), 2, 2,
           (double[]){0.6, -0.2, -0.2, 0.4});
    expect(&env, mk1(c, MD_MPOW, n, n, -2, X), 2, 2,
           (double[]){0.4, -0.2, -0.2, 0.2});
    /* a non-symmetric matrix needing a row swap: [0 1; 2 3]^-1 = [-1.5 .5; 1 0] */
    set_val(&env, sX, (double[]){0, 2, 1, 3});
    expect(&env, mk1(c, MD_MPOW, n, n, -1, X), 2, 2, (double[]){-1.5, 1, 0.5, 0});
    /* a 3x3 inverse checked by multiplying back */
    md_expr *BA = mk2(c, MD_MUL, p, p, B, A);     /* singular: rank 2 */
    expect_fail(&env, mk1(c, MD_MPOW, p, p, -1, BA));
    expect_fail(&env, mk1(c, MD_MPOW, n, n, -1, S));
    md_expr *zero = md_expr_make(c, MD_ZERO, n, n, 0, 0, 0, 0, NULL, NULL);
    expect_fail(&env, mk1(c, MD_MPOW, n, n, -1, zero));
}
END_TEST

START_TEST(test_inverse_3x3)
{
    md_ctx *c3 = md_ctx_new();
    int m = md_ctx_add_dim(c3, "m", 1);
    int sM = md_ctx_add_sym(c3, "M", MD_SYM_MATRIX, m, m);
    md_env e3;
    env_init(&e3, c3, (long[]){1, 3});
    set_val(&e3, sM, (double[]){0, 4, 7, 2, 5, 8, 3, 6, 10});  /* det = -5 */
    md_expr *M = md_sym(c3, sM);
    md_expr *prod = mk2(c3, MD_MUL, m, m, M, mk1(c3, MD_MPOW, m, m, -1, M));
    md_mat r;
    ck_assert_int_eq(md_eval(&e3, prod, &r), 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            ck_assert_double_eq_tol(r.v[i + 3 * j], i == j, 1e-12);
    md_mat_free(&r);
    ck_assert_double_eq_tol(eval1(&e3, scal(c3, MD_DET, M)), -5.0, 1e-12);
    expect_fail(&e3, scal(c3, MD_LOGDET, M));                   /* det < 0 */
    md_env_free(&e3);
    md_ctx_free(c3);
}
END_TEST

/* ---- functions ---- */

START_TEST(test_functions)
{
    md_ctx *cf = md_ctx_new();
    int m = md_ctx_add_dim(cf, "m", 1);
    int sv = md_ctx_add_sym(cf, "v", MD_SYM_VECTOR, m, MD_DIM_ONE);
    md_env ef;
    env_init(&ef, cf, (long[]){1, 4});
    double v[4] = {-0.5, 0, 0.25, 0.75};
    set_val(&ef, sv, v);
    md_expr *V = md_sym(cf, sv);
    static double (*const f[])(double) = {sin, cos, tan, asin, acos, atan, exp,
                                          NULL, tanh, fabs};
    for (int k = 0; k < 10; k++) {
        if (!f[k]) continue;
        double want[4];
        for (int i = 0; i < 4; i++) want[i] = f[k](v[i]);
        expect(&ef, fn(cf, (md_fn)k, V), 4, 1, want);
    }
    expect(&ef, fn(cf, MD_FN_SIGN, V), 4, 1, (double[]){-1, 0, 1, 1});
    expect(&ef, fn(cf, MD_FN_RELU, V), 4, 1, (double[]){0, 0, 0.25, 0.75});
    expect(&ef, fn(cf, MD_FN_STEP, V), 4, 1, (double[]){0, 0, 1, 1});
    /* domains */
    expect_fail(&ef, fn(cf, MD_FN_LOG, V));                    /* log(-0.5), log 0 */
    expect_fail(&ef, fn(cf, MD_FN_SQRT, V));
    set_val(&ef, sv, (double[]){0, 0.25, 1, 4});
    expect(&ef, fn(cf, MD_FN_SQRT, V), 4, 1, (double[]){0, 0.5, 1, 2});
    expect_fail(&ef, fn(cf, MD_FN_ARCSIN, V));                 /* asin(4) */
    expect_fail(&ef, fn(cf, MD_FN_ARCCOS, V));
    expect_fail(&ef, fn(cf, MD_FN_LOG, V));                    /* log 0 */
    set_val(&ef, sv, (double[]){0.5, 1, 2, MD_E});
    expect(&ef, fn(cf, MD_FN_LOG, V), 4, 1, (double[]){log(0.5), 0, log(2.0), 1});
    /* non-finite results */
    set_val(&ef, sv, (double[]){1, 2, 3, 1000});
    expect_fail(&ef, fn(cf, MD_FN_EXP, V));
    md_env_free(&ef);
    md_ctx_free(cf);
}
END_TEST

START_TEST(test_generic)
{
    int g0 = md_ctx_add_func(c, "f"), g1 = md_ctx_add_func(c, "g");
    for (int k = 0; k < 2; k++) {
        int gk = k == 0 ? g0 : g1;
        double ak = 0.7 + 0.3 * gk, bk = 0.4 + 0.5 * gk;
        for (int ord = 0; ord <= 3; ord++) {
            md_expr *e = md_expr_make(c, MD_FUNC, n, MD_DIM_ONE, MD_FN_GENERIC, gk,
                                      ord, 1, &x, NULL);
            double want[2];
            for (int i = 0; i < 2; i++) {
                double xi = env.val[sx].v[i];
                want[i] = pow(ak, ord) * sin(ak * xi + bk + ord * MD_PI / 2);
            }
            expect(&env, e, 2, 1, want);
        }
    }
    /* order 2 by hand for k = 0: -0.49 sin(0.7 + 0.4) at x = 1 */
    md_expr *e2 = md_expr_make(c, MD_FUNC, n, MD_DIM_ONE, MD_FN_GENERIC, g0, 2, 1, &x, NULL);
    md_mat m;
    ck_assert_int_eq(md_eval(&env, e2, &m), 0);
    ck_assert_double_eq_tol(m.v[0], -0.49 * sin(1.1), 1e-14);
    md_mat_free(&m);
}
END_TEST

/* ---- reductions and diagonals ---- */

START_TEST(test_reductions)
{
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_SUM, A)), 21, 1e-14);
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_SUM, x)), -1, 1e-14);
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_NORM1, x)), 3, 1e-14);
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_NORM2, x)), sqrt(5.0), 1e-14);
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_NORM2, A)), sqrt(91.0), 1e-14);
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_TR, X)), 5, 1e-14);
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_DET, X)), 5, 1e-14);
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_LOGDET, X)), log(5.0), 1e-14);
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_DET, S)), 0, 1e-14);
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_DET, a)), 3, 1e-14);
    /* det(B A) of a rank-2 3x3 is 0; logdet of a singular matrix fails */
    md_expr *BA = mk2(c, MD_MUL, p, p, B, A);
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_DET, BA)), 0, 1e-12);
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_TR, BA)), 15, 1e-14);
    expect_fail(&env, scal(c, MD_LOGDET, S));
    set_val(&env, sX, (double[]){1, 3, 2, 4});                 /* det -2 */
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_DET, X)), -2, 1e-14);
    expect_fail(&env, scal(c, MD_LOGDET, X));
}
END_TEST

/* softmax and logsumexp, shifted by the largest entry: exp(1000) overflows
   a double, softmax([1000; 998]) does not */
START_TEST(test_softmax)
{
    double e1 = exp(1.0), e2 = exp(-2.0);
    expect(&env, mk1(c, MD_SOFTMAX, n, MD_DIM_ONE, 0, x), 2, 1, (double[]){e1 / (e1 + e2), e2 / (e1 + e2)});
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_LSE, x)), log(e1 + e2), 1e-14);
    set_val(&env, sx, (double[]){1000, 998});
    double r = 1 / (1 + exp(-2.0));
    expect(&env, mk1(c, MD_SOFTMAX, n, MD_DIM_ONE, 0, x), 2, 1, (double[]){r, 1 - r});
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_LSE, x)), 1000 + log(1 + exp(-2.0)), 1e-11);
    set_val(&env, sx, (double[]){-1000, -1001});
    ck_assert_double_eq_tol(eval1(&env, scal(c, MD_LSE, x)), -1000 + log(1 + exp(-1.0)), 1e-11);
}
END_TEST

START_TEST(test_diag)
{
    expect(&env, mk1(c, MD_DIAGM, n, n, 0, x), 2, 2, (double[]){1, 0, 0, -2});
    expect(&env, mk1(c, MD_DIAGV, n, MD_DIM_ONE, 0, X), 2, 1, (double[]){2, 3});
    md_expr *BA = mk2(c, MD_MUL, p, p, B, A);
    expect(&env, mk1(c, MD_DIAGV, p, MD_DIM_ONE, 0, BA), 3, 1, (double[]){1, 5, 9});
}
END_TEST

/* ---- memoisation and deep graphs ---- */

START_TEST(test_memo)
{
    /* t_{k+1} = t_k + t_k, 100 levels: 2^100 evaluations without a memo */
    md_expr *t = a;
    for (int k = 0; k < 100; k++) t = mk2(c, MD_ADD, MD_DIM_ONE, MD_DIM_ONE, t, t);
    ck_assert_double_eq_tol(eval1(&env, t), 3 * ldexp(1.0, 100), 1e-3 * ldexp(1.0, 100));
    /* 2000 more levels overflow: not finite is a failure */
    for (int k = 0; k < 2000; k++) t = mk2(c, MD_ADD, MD_DIM_ONE, MD_DIM_ONE, t, t);
    expect_fail(&env, t);
}
END_TEST

START_TEST(test_deep_chain)
{
    /* tanh(W tanh(W ... x)) 5000 levels deep */
    md_expr *t = x;
    double want[2] = {1, -2};
    for (int k = 0; k < 5000; k++) {
        t = fn(c, MD_FN_TANH, mk2(c, MD_MUL, n, MD_DIM_ONE, X, t));
        double y0 = 2 * want[0] + 1 * want[1], y1 = 1 * want[0] + 3 * want[1];
        want[0] = tanh(y0);
        want[1] = tanh(y1);
    }
    expect(&env, t, 2, 1, want);
}
END_TEST

START_TEST(test_eval_many)
{
    md_expr *AB = mk2(c, MD_MUL, n, n, A, B);
    md_expr *es[3] = {AB, scal(c, MD_TR, AB), mk1(c, MD_TRANS, n, n, 0, AB)};
    md_mat out[3];
    ck_assert_int_eq(md_eval_many(&env, 3, es, out), 0);
    ck_assert_double_eq(out[0].v[2], 5);
    ck_assert_double_eq(out[1].v[0], 15);
    ck_assert_double_eq(out[2].v[1], 5);
    for (int i = 0; i < 3; i++) md_mat_free(&out[i]);
    /* one failure fails them all, and nothing is left to free */
    es[1] = fn(c, MD_FN_LOG, x);
    ck_assert_int_eq(md_eval_many(&env, 3, es, out), -1);
    for (int i = 0; i < 3; i++) ck_assert_ptr_null(out[i].v);
}
END_TEST

/* ---- random environments ---- */

START_TEST(test_env_random)
{
    md_ctx *cr = md_ctx_new();
    int d[6];
    for (int i = 0; i < 6; i++) {
        char name[2] = {(char)('a' + i), 0};
        d[i] = md_ctx_add_dim(cr, name, 1);
    }
    int sP = md_ctx_add_sym(cr, "P", MD_SYM_MATRIX, d[0], d[1]);    /* under log */
    int sQ = md_ctx_add_sym(cr, "Q", MD_SYM_MATRIX, d[2], d[2]);    /* logdet */
    int sY = md_ctx_add_sym(cr, "Y", MD_SYM_SYMMETRIC, d[3], d[3]);
    int su = md_ctx_add_sym(cr, "u", MD_SYM_VECTOR, d[4], MD_DIM_ONE); /* arcsin */
    int sR = md_ctx_add_sym(cr, "R", MD_SYM_SYMMETRIC, d[0], d[0]); /* inverse */
    int sw = md_ctx_add_sym(cr, "w", MD_SYM_VECTOR, d[5], MD_DIM_ONE); /* 1 ./ w */
    md_expr *P = md_sym(cr, sP), *Q = md_sym(cr, sQ), *Y = md_sym(cr, sY);
    md_expr *u = md_sym(cr, su), *R = md_sym(cr, sR), *wv = md_sym(cr, sw);
    md_expr *terms[6] = {
        scal(cr, MD_SUM, fn(cr, MD_FN_LOG, P)),
        scal(cr, MD_LOGDET, Q),
        scal(cr, MD_SUM, Y),
        scal(cr, MD_SUM, fn(cr, MD_FN_ARCSIN, u)),
        scal(cr, MD_TR, mk1(cr, MD_MPOW, d[0], d[0], -1, R)),
        scal(cr, MD_SUM, mk2(cr, MD_POW, d[5], MD_DIM_ONE, wv, md_num_si(cr, -1, 1))),
    };
    md_expr *f = md_expr_make(cr, MD_ADD, MD_DIM_ONE, MD_DIM_ONE, 0, 0, 0, 6, terms, NULL);

    md_env e1, e2;
    ck_assert_int_eq(md_env_random(cr, f, 42, &e1), 0);
    ck_assert_int_eq(md_env_random(cr, f, 42, &e2), 0);
    ck_assert_int_eq(e1.dimsize[0], 1);
    for (int i = 0; i < 6; i++) {
        long si = e1.dimsize[d[i]];
        ck_assert(si >= 2 && si <= 6);
        ck_assert_int_eq(si, e2.dimsize[d[i]]);
        ck_assert_int_eq(cr->dims[d[i]].size, si);
        for (int j = 0; j < i && j < 5; j++)          /* the first five distinct */
            if (i < 5) ck_assert_int_ne(si, e1.dimsize[d[j]]);
    }
    for (int s = 0; s < cr->nsyms; s++) {
        md_mat *m = &e1.val[s];
        ck_assert_int_eq(m->rows, e1.dimsize[cr->syms[s].rows]);
        ck_assert_int_eq(m->cols, e1.dimsize[cr->syms[s].cols]);
        ck_assert_int_eq(memcmp(m->v, e2.val[s].v, (size_t)(m->rows * m->cols) * sizeof(double)), 0);
        ck_assert_ptr_nonnull(e1.dir);
        ck_assert_int_eq(e1.dir[s].rows, m->rows);
        ck_assert_int_eq(e1.dir[s].cols, m->cols);
    }
    md_mat *mp = &e1.val[sP], *mu = &e1.val[su];
    for (long i = 0; i < mp->rows * mp->cols; i++)
        ck_assert(mp->v[i] >= 0.5 && mp->v[i] <= 1.5);
    for (long i = 0; i < mu->rows; i++) ck_assert(mu->v[i] >= 0.1 && mu->v[i] <= 0.6);
    for (long i = 0; i < e1.val[sw].rows; i++)
        ck_assert(fabs(e1.val[sw].v[i]) >= 0.5 && fabs(e1.val[sw].v[i]) <= 1.5);
    int sym[3] = {sQ, sY, sR};
    for (int k = 0; k < 3; k++) {
        md_mat *m = &e1.val[sym[k]], *dm = &e1.dir[sym[k]];
        for (long i = 0; i < m->rows; i++)
            for (long j = 0; j < m->rows; j++) {
                ck_assert_double_eq(m->v[i + j * m->rows], m->v[j + i * m->rows]);
                if (sym[k] == sY)
                    ck_assert_double_eq(dm->v[i + j * m->rows], dm->v[j + i * m->rows]);
            }
    }
    ck_assert(eval1(&e1, scal(cr, MD_DET, Q)) >= 1.0);   /* B B'/n + I */
    ck_assert(eval1(&e1, scal(cr, MD_DET, R)) >= 1.0);
    /* a different seed gives different data */
    md_env e3;
    ck_assert_int_eq(md_env_random(cr, f, 43, &e3), 0);
    ck_assert_int_ne(memcmp(e1.val[sY].v, e3.val[sY].v, sizeof(double)), 0);
    md_env_free(&e1);
    md_env_free(&e2);
    md_env_free(&e3);

    /* no point in the domain: log(-1) */
    md_expr *bad = fn(cr, MD_FN_LOG, md_num_si(cr, -1, 1));
    md_env e4;
    ck_assert_int_eq(md_env_random(cr, bad, 1, &e4), -1);
    md_env_free(&e4);
    md_ctx_free(cr);
}
END_TEST

START_TEST(test_env_random_combined_needs)
{
    /* log(det(M)) and arcsin(M) both: positive SPD entries below 0.6 */
    md_ctx *cr = md_ctx_new();
    int m = md_ctx_add_dim(cr, "m", 1);
    int sM = md_ctx_add_sym(cr, "M", MD_SYM_MATRIX, m, m);
    md_expr *M = md_sym(cr, sM);
    md_expr *t[2] = {fn(cr, MD_FN_LOG, scal(cr, MD_DET, M)),
                     scal(cr, MD_SUM, fn(cr, MD_FN_ARCSIN, M))};
    md_expr *f = md_expr_make(cr, MD_ADD, MD_DIM_ONE, MD_DIM_ONE, 0, 0, 0, 2, t, NULL);
    for (unsigned long seed = 0; seed < 20; seed++) {
        md_env e;
        ck_assert_int_eq(md_env_random(cr, f, seed, &e), 0);
        md_env_free(&e);
    }
    md_ctx_free(cr);
}
END_TEST

/* ---- md_check ---- */

static int check1(md_ctx *cc, md_expr *f, int s, md_expr *g, double *worst)
{
    md_check_result r;
    int rc = md_check(cc, f, 1, &s, &g, 7, 1e-6, &r, NULL);
    *worst = r.worst_rel_err;
    if (rc >= 0) ck_assert_int_eq(r.ok, rc == 0);
    return rc;
}

START_TEST(test_check_linear)
{
    double w;
    /* f = sum(A .* X2) wrt X2 (A-shaped) has gradient A */
    int sY = md_ctx_add_sym(c, "Y", MD_SYM_MATRIX, n, p);
    md_expr *Y = md_sym(c, sY);
    md_expr *f = scal(c, MD_SUM, mk2(c, MD_HAD, n, p, A, Y));
    ck_assert_int_eq(check1(c, f, sY, A, &w), 0);
    ck_assert(w < 1e-8);
    ck_assert_int_eq(check1(c, f, sY, Y, &w), 1);
    ck_assert(w > 1e-2);
    /* both variables at once; the second gradient wrong */
    int wrt[2] = {sA, sY};
    md_expr *g[2] = {Y, Y};
    md_check_result r[2];
    ck_assert_int_eq(md_check(c, f, 2, wrt, g, 3, 1e-6, r, NULL), 1);
    ck_assert(r[0].ok);
    ck_assert(!r[1].ok);
    g[1] = A;
    ck_assert_int_eq(md_check(c, f, 2, wrt, g, 3, 1e-6, r, NULL), 0);
    /* f = tr(X): gradient I; the zero gradient is wrong */
    md_expr *eye = md_eye(c, n);
    ck_assert_int_eq(check1(c, scal(c, MD_TR, X), sX, eye, &w), 0);
    md_expr *zero = md_zero(c, n, n);
    ck_assert_int_eq(check1(c, scal(c, MD_TR, X), sX, zero, &w), 1);
    /* a gradient of the wrong shape fails with a message */
    ck_assert_int_eq(check1(c, scal(c, MD_TR, X), sX, A, &w), 1);
    /* a variable f does not depend on: zero gradient passes */
    ck_assert_int_eq(check1(c, scal(c, MD_TR, X), sA, md_zero(c, n, p), &w), 0);
    ck_assert_double_eq(w, 0);
}
END_TEST

START_TEST(test_check_quadratic)
{
    double w;
    md_expr *xt = mk1(c, MD_TRANS, MD_DIM_ONE, n, 0, x);
    md_expr *f = mk2(c, MD_MUL, MD_DIM_ONE, MD_DIM_ONE, xt, x);          /* x'x */
    md_expr *g = mk2(c, MD_MUL, n, MD_DIM_ONE, md_num_si(c, 2, 1), x);  /* 2x */
    ck_assert_int_eq(check1(c, f, sx, g, &w), 0);
    ck_assert(w < 1e-8);
    ck_assert_int_eq(check1(c, f, sx, x, &w), 1);
    /* x'Xx: gradient (X + X')x; 2Xx is wrong for non-symmetric X */
    md_expr *q[3] = {xt, X, x};
    md_expr *fq = md_expr_make(c, MD_MUL, MD_DIM_ONE, MD_DIM_ONE, 0, 0, 0, 3, q, NULL);
    md_expr *XXt = mk2(c, MD_ADD, n, n, X, mk1(c, MD_TRANS, n, n, 0, X));
    ck_assert_int_eq(check1(c, fq, sx, mk2(c, MD_MUL, n, MD_DIM_ONE, XXt, x), &w), 0);
    md_expr *twoXx[3] = {md_num_si(c, 2, 1), X, x};
    ck_assert_int_eq(check1(c, fq, sx, md_expr_make(c, MD_MUL, n, MD_DIM_ONE, 0, 0, 0,
                                                    3, twoXx, NULL), &w), 1);
    /* wrt X: x x' */
    ck_assert_int_eq(check1(c, fq, sX, mk2(c, MD_MUL, n, n, x, xt), &w), 0);
}
END_TEST

START_TEST(test_check_symmetric)
{
    /* f = sum(X .* Y) with Y symmetric: gradient X passes (only its
       symmetric part is seen), X' too, but 2X does not */
    double w;
    int sY = md_ctx_add_sym(c, "Y", MD_SYM_SYMMETRIC, n, n);
    md_expr *Y = md_sym(c, sY);
    md_expr *f = scal(c, MD_SUM, mk2(c, MD_HAD, n, n, X, Y));
    ck_assert_int_eq(check1(c, f, sY, X, &w), 0);
    ck_assert_int_eq(check1(c, f, sY, mk1(c, MD_TRANS, n, n, 0, X), &w), 0);
    ck_assert_int_eq(check1(c, f, sY, mk2(c, MD_MUL, n, n, md_num_si(c, 2, 1), X), &w), 1);
}
END_TEST

START_TEST(test_check_nonlinear)
{
    double w;
    /* logdet(X): gradient X^-T */
    md_expr *f = scal(c, MD_LOGDET, X);
    md_expr *inv = mk1(c, MD_MPOW, n, n, -1, X);
    ck_assert_int_eq(check1(c, f, sX, mk1(c, MD_TRANS, n, n, 0, inv), &w), 0);
    ck_assert(w < 1e-7);
    ck_assert_int_eq(check1(c, f, sX, X, &w), 1);
    /* sum(log(x)): gradient x.^-1 */
    md_expr *fl = scal(c, MD_SUM, fn(c, MD_FN_LOG, x));
    ck_assert_int_eq(check1(c, fl, sx, mk2(c, MD_POW, n, MD_DIM_ONE, x,
                                           md_num_si(c, -1, 1)), &w), 0);
    ck_assert_int_eq(check1(c, fl, sx, fn(c, MD_FN_SQRT, x), &w), 1);
    /* sum(g(x)) for a generic g: gradient g'(x); g''(x) is wrong */
    int gi = md_ctx_add_func(c, "g");
    md_expr *gx = md_expr_make(c, MD_FUNC, n, MD_DIM_ONE, MD_FN_GENERIC, gi, 0, 1, &x, NULL);
    md_expr *g1 = md_expr_make(c, MD_FUNC, n, MD_DIM_ONE, MD_FN_GENERIC, gi, 1, 1, &x, NULL);
    md_expr *g2 = md_expr_make(c, MD_FUNC, n, MD_DIM_ONE, MD_FN_GENERIC, gi, 2, 1, &x, NULL);
    ck_assert_int_eq(check1(c, scal(c, MD_SUM, gx), sx, g1, &w), 0);
    ck_assert_int_eq(check1(c, scal(c, MD_SUM, g1), sx, g2, &w), 0);
    ck_assert_int_eq(check1(c, scal(c, MD_SUM, gx), sx, g2, &w), 1);
    /* sqrt(a): 1/(2 sqrt(a)) */
    md_expr *sq = fn(c, MD_FN_SQRT, a);
    md_expr *half_inv[2] = {md_num_si(c, 1, 2),
                            mk2(c, MD_POW, MD_DIM_ONE, MD_DIM_ONE, a, md_num_si(c, -1, 2))};
    ck_assert_int_eq(check1(c, sq, sa, md_expr_make(c, MD_MUL, MD_DIM_ONE, MD_DIM_ONE, 0,
                                                    0, 0, 2, half_inv, NULL), &w), 0);
}
END_TEST

START_TEST(test_check_no_domain)
{
    md_expr *f = mk2(c, MD_ADD, MD_DIM_ONE, MD_DIM_ONE, a,
                     fn(c, MD_FN_LOG, md_num_si(c, -1, 1)));
    md_expr *g = md_num_si(c, 1, 1);
    md_check_result r;
    char buf[256] = {0};
    FILE *err = tmpfile();
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(md_check(c, f, 1, &sa, &g, 1, 1e-6, &r, err), -1);
    rewind(err);
    ck_assert_uint_gt(fread(buf, 1, sizeof buf - 1, err), 0);
    fclose(err);
    ck_assert_str_eq(buf, "matdiff: --check: could not find a point inside the domain "
                          "of the function (where its value fits in a double) after 20 tries\n");
}
END_TEST

static Suite *eval_suite(void)
{
    Suite *s = suite_create("eval");
    TCase *t = tcase_create("eval");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_leaves);
    tcase_add_test(t, test_diff);
    tcase_add_test(t, test_add_had);
    tcase_add_test(t, test_mul);
    tcase_add_test(t, test_trans);
    tcase_add_test(t, test_pow);
    tcase_add_test(t, test_mpow);
    tcase_add_test(t, test_inverse_3x3);
    tcase_add_test(t, test_functions);
    tcase_add_test(t, test_generic);
    tcase_add_test(t, test_reductions);
    tcase_add_test(t, test_softmax);
    tcase_add_test(t, test_diag);
    tcase_add_test(t, test_memo);
    tcase_add_test(t, test_deep_chain);
    tcase_add_test(t, test_eval_many);
    tcase_add_test(t, test_env_random);
    tcase_add_test(t, test_env_random_combined_needs);
    tcase_add_test(t, test_check_linear);
    tcase_add_test(t, test_check_quadratic);
    tcase_add_test(t, test_check_symmetric);
    tcase_add_test(t, test_check_nonlinear);
    tcase_add_test(t, test_check_no_domain);
    suite_add_tcase(s, t);
    return s;
}

MD_TEST_MAIN(eval_suite)
