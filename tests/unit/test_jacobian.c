/*
 * test_jacobian.c -- derivatives of every shape by every shape, of every
 * built-in, first and second order, each checked against finite
 * differences through the printed text.
 *
 * Each case is one md_run (exactly what the command line runs) with
 * --check: the printed derivative is read back and compared with
 * directional differences of the function (a Jacobian through random
 * weightings w'vec(F), a Hessian as u'Hv against mixed second differences
 * of f).  The cases are generated, not picked:
 *
 *   - every elementwise built-in f of md_builtins.def, applied to an
 *     argument of each shape (scalar, vector, matrix) that depends on a
 *     variable of each shape (scalar, vector, matrix): nine Jacobians per
 *     function, kept inside the function's domain by the table's domain
 *     (exp(...) under log and sqrt, tanh(...)/2 under arcsin);
 *   - the Hessian of sum(f(...)) by each shape of variable: the second
 *     derivative of every built-in;
 *   - the reductions and matrix functions (sum, norm1, norm2, tr, det,
 *     logdet, inv, diag, vec, kron, powers, transposes) in the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_builtins.h"
#include "md_driver.h"
#include "md_test.h"

static int nruns;

/* md_run with --check by one variable; fails the test unless exit 0 and
   every check line ok. */
static void run_checked(const char *prog, const char *var, int order)
{
    nruns++;
    md_request rq;
    md_request_init(&rq);
    rq.check = 1;
    rq.order = order;
    rq.wrt = &var;
    rq.nwrt = 1;
    md_buf out = {0};
    char *errs = NULL;
    size_t elen = 0;
    FILE *err = open_memstream(&errs, &elen);
    int rc = md_run(&rq, "<test>", prog, strlen(prog), &out, err);
    fclose(err);
    ck_assert_msg(rc == 0 && (!out.s || !strstr(out.s, "FAILED")),
                  "--order %d --wrt %s --check '%s': exit %d\n%s%s", order, var, prog, rc, out.s ? out.s : "",
                  errs ? errs : "");
    md_buf_free(&out);
    free(errs);
}

/* The argument of f: an expression of the shape asked for (0 scalar, 1
   vector, 2 matrix) in the variable of the shape asked for (a, x, X),
   inside f's domain. */
static void argument(md_domain dom, int fshape, int vshape, char *buf, size_t n)
{
    static const char *const inner[3][3] = {
        /* by a scalar a      by a vector x        by a matrix X */
        {"a*b + c",           "y'*x",              "y'*X*z"},        /* scalar */
        {"a*y",               "A*x",               "X*z"},           /* vector */
        {"a*B",               "x*z'",              "A*X"},           /* matrix */
    };
    const char *e = inner[fshape][vshape];
    switch (dom) {
    case MD_DOM_POS: snprintf(buf, n, "exp(%s)", e); break;
    case MD_DOM_UNIT: snprintf(buf, n, "tanh(%s)/2", e); break;
    case MD_DOM_ANY:
    case MD_DOM_SPD: snprintf(buf, n, "%s", e); break;
    }
}

static const char *const vars[3] = {"a", "x", "X"};
/* declarations that fix every shape the arguments above use */
static const char decls[] = "scalar a, b, c; vector x(n), y(n), z(m); matrix X(n, m), A(n, n), B(n, m); ";

START_TEST(test_elementwise_every_shape)
{
    for (int fn = 0; fn < MD_FN_GENERIC; fn++) {
        const md_fn_info *fi = &md_fns[fn];
        for (int fs = 0; fs < 3; fs++)
            for (int vs = 0; vs < 3; vs++) {
                char arg[128], prog[512];
                argument(fi->domain, fs, vs, arg, sizeof arg);
                /* kinks (abs, relu, ...) are smooth away from 0, where the
                   random points are */
                snprintf(prog, sizeof prog, "%s%s(%s)", decls, fi->name, arg);
                run_checked(prog, vars[vs], 1);
            }
    }
}
END_TEST

START_TEST(test_elementwise_second_order)
{
    for (int fn = 0; fn < MD_FN_GENERIC; fn++) {
        const md_fn_info *fi = &md_fns[fn];
        if (fi->flags & MD_FNF_KINK) continue;   /* no second derivative at the kink; 0 elsewhere */
        for (int vs = 0; vs < 3; vs++) {
            char arg[128], prog[512];
            argument(fi->domain, vs == 0 ? 0 : 1, vs, arg, sizeof arg);
            snprintf(prog, sizeof prog, "%ssum(%s(%s))", decls, fi->name, arg);
            run_checked(prog, vars[vs], 2);
        }
    }
}
END_TEST

START_TEST(test_matrix_functions)
{
    /* first derivatives of every reduction and matrix function, by the
       shapes it takes; S positive definite under det, logdet and inv */
    static const struct {
        const char *prog, *var;
    } cases[] = {
        {"sum(X)*x", "X"},          {"norm1(X)*y", "X"},         {"norm2(X)*X", "X"},
        {"tr(A*A)*A", "A"},         {"det(A*A' + eye)*x", "A"},  {"logdet(A*A' + eye)*X", "A"},
        {"inv(A*A' + eye)", "A"},   {"inv(A*A' + eye)*x", "x"},  {"diag(x)*X", "x"},
        {"diag(A)", "A"},           {"diag(diag(A))", "A"},      {"vec(y*z')", "z"},
        {"kron(X, A)", "X"},        {"kron(x, y)", "y"},         {"kron(A, B)*vec(X)", "X"},
        {"A^3", "A"},               {"inv(A*A' + eye)^2", "A"},  {"X.^3", "X"},
        {"X'", "X"},                {"x'", "x"},                 {"(A*x)'*B", "x"},
        {"a.^x", "x"},               {"x.^a", "a"},               {"exp(a)*X'*A", "a"},
        {"commutation(n, m)*vec(X)", "X"}, {"eye(n*m)*vec(X.*X)", "X"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char prog[512];
        snprintf(prog, sizeof prog, "%s%s", decls, cases[i].prog);
        run_checked(prog, cases[i].var, 1);
    }
}
END_TEST

START_TEST(test_matrix_functions_second_order)
{
    static const struct {
        const char *prog, *var;
    } cases[] = {
        {"norm2(X)", "X"},               {"norm2(A*x)^2", "x"},          {"tr(A*A*A)", "A"},
        {"det(A*A' + eye)", "A"},        {"logdet(A*A' + eye)", "A"},    {"tr(inv(A*A' + eye))", "A"},
        {"sum(diag(x)*X)", "x"},         {"x'*diag(x)*A*x", "x"},        {"sum(kron(X, X))", "X"},
        {"vec(X)'*vec(X.^3)", "X"},      {"a^4*b", "a"},                 {"sum(a.^x)", "x"},
        {"y'*inv(A*A' + eye)*y", "A"},   {"norm1(X*z)", "X"},            {"tr(A^-2*A')", "A"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char prog[512];
        snprintf(prog, sizeof prog, "%s%s", decls, cases[i].prog);
        run_checked(prog, cases[i].var, 2);
    }
}
END_TEST

START_TEST(test_symmetric_and_generic)
{
    run_checked("symmetric S; vector x; S*x*x'*S", "S", 1);
    run_checked("symmetric S; vector x; logdet(S*S + eye) + x'*S*x", "S", 2);
    run_checked("function f; matrix A; vector x; f(A*x)", "x", 1);
    run_checked("function f; matrix A; vector x; sum(f''(A*x))", "x", 2);
    run_checked("function f; matrix X, A; f(X*A)", "X", 1);
    fprintf(stderr, "test_jacobian: %d checked runs in this test process\n", nruns);
}
END_TEST

static Suite *jacobian_suite(void)
{
    Suite *s = suite_create("jacobian");
    TCase *t = tcase_create("jacobian");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_elementwise_every_shape);
    tcase_add_test(t, test_elementwise_second_order);
    tcase_add_test(t, test_matrix_functions);
    tcase_add_test(t, test_matrix_functions_second_order);
    tcase_add_test(t, test_symmetric_and_generic);
    suite_add_tcase(s, t);
    return s;
}

MD_TEST_MAIN(jacobian_suite)
