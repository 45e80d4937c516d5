/*
 * test_latex.c -- the LaTeX printer (src/3_print/latex.c).
 *
 * seed_*: the gradients of the five seed questions, as md_latex_gradients
 * writes the whole answer (function, one line per variable, temporaries).
 * The exact strings were read as a mathematician would before they were
 * pinned: they are the published answers, in the seeds' notation.
 *
 * kinds_* and functions: one expression per node kind and per function,
 * written with md_latex_to_string from a parsed program; names: Greek
 * letters and subscripts; rationals; style: ^T and \odot; temps: T and
 * T^\top through md_latex_expr with an md_temps; document: --standalone.
 *
 * pdflatex: every string above, in one standalone document, compiled with
 * pdflatex -halt-on-error (skipped with a message when pdflatex is not
 * installed; CI installs texlive-latex-base).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_ast.h"
#include "md_diff.h"
#include "md_latex.h"
#include "md_print.h"
#include "md_shape.h"
#include "md_simplify.h"
#include "md_test.h"

/* ---- programs ---- */

/* tprog, load, unload and find come from md_test.h */

/* Every string the tests pin is appended to a file that the pdflatex test
   compiles: a file, because with CK_FORK each test runs in its own process.
   The directory is made and removed by unchecked fixtures, in the parent. */
static char collect_dir[64], collect_path[128];

static void collect_setup(void)
{
    snprintf(collect_dir, sizeof collect_dir, "/tmp/md_latex_XXXXXX");
    if (!mkdtemp(collect_dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(collect_path, sizeof collect_path, "%s/body.tex", collect_dir);
}

static void collect_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", collect_dir);
    (void)!system(cmd);
}

static void keep(const char *s, int display)
{
    if (!collect_path[0]) return;   /* CK_RUN_CASE=pdflatex alone */
    FILE *f = fopen(collect_path, "a");
    ck_assert_ptr_nonnull(f);
    fprintf(f, display ? "%s\n" : "\\[ %s \\]\n", s);
    fclose(f);
}

/* The whole answer for the comma-separated variables of wrt. */
static void answer(const char *text, const char *wrt, const md_latex_style *st, const char *want)
{
    tprog *p = load(text);
    int n = 0, vars[8];
    md_expr *grads[8];
    char names[256];
    snprintf(names, sizeof names, "%s", wrt);
    for (char *tok = strtok(names, ","); tok; tok = strtok(NULL, ",")) {
        vars[n] = find(p, tok);
        grads[n] = md_gradient(p->ctx, p->typed.f, vars[n]);
        ck_assert_ptr_nonnull(grads[n]);
        n++;
    }
    md_buf out = {0};
    md_latex_gradients(p->ctx, p->typed.f, n, vars, grads, st, &out);
    ck_assert_msg(!strcmp(out.s, want), "%s wrt %s:\n--- got\n%s--- want\n%s", text, wrt, out.s, want);
    keep(out.s, 1);
    md_buf_free(&out);
    unload(p);
}

/* The function of text itself. */
static void expr_st(const char *text, const md_latex_style *st, const char *want)
{
    tprog *p = load(text);
    char *got = md_latex_to_string(p->ctx, p->typed.f, st);
    ck_assert_msg(!strcmp(got, want), "%s: got '%s', want '%s'", text, got, want);
    keep(got, 0);
    free(got);
    unload(p);
}

static void expr(const char *text, const char *want) { expr_st(text, NULL, want); }

/* The differential df of text with respect to var. */
static void differential(const char *text, const char *var, const char *want)
{
    tprog *p = load(text);
    md_expr *d = md_differential(p->ctx, p->typed.f, find(p, var));
    char *got = md_latex_to_string(p->ctx, d, NULL);
    ck_assert_msg(!strcmp(got, want), "d(%s): got '%s', want '%s'", text, got, want);
    keep(got, 0);
    free(got);
    unload(p);
}

static void name(const char *id, const char *want)
{
    md_buf b = {0};
    md_latex_name(NULL, id, &b);
    ck_assert_msg(!strcmp(b.s, want), "%s: got '%s', want '%s'", id, b.s, want);
    keep(b.s, 0);
    md_buf_free(&b);
}

/* ---- the seeds ---- */

START_TEST(seed_001_low_rank)
{
    answer("scalar lambda; norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2", "U,V", NULL,
           "\\begin{align*}\n"
           "f &= \\|XUV^\\top - Y\\|_F^{2} + \\lambda\\|UV^\\top\\|_F^{2} \\\\\n"
           "\\frac{\\partial f}{\\partial U} &= 2TV \\\\\n"
           "\\frac{\\partial f}{\\partial V} &= 2T^\\top U\n"
           "\\end{align*}\n"
           "where $T = X^\\top(XUV^\\top - Y) + \\lambda UV^\\top$.\n");
}
END_TEST

START_TEST(seed_002_hadamard)
{
    /* 2(P o M + P' o M')gamma with M = (gamma gamma') o P - R */
    answer("matrix gamma; norm2(R - P.*(gamma*gamma'))^2", "gamma", NULL,
           "\\begin{align*}\n"
           "f &= \\|(\\gamma\\gamma^\\top) \\circ P - R\\|_F^{2} \\\\\n"
           "\\frac{\\partial f}{\\partial \\gamma} &= 2(T^\\top + T)\\gamma\n"
           "\\end{align*}\n"
           "where $T = [(\\gamma\\gamma^\\top) \\circ P - R] \\circ P$.\n");
}
END_TEST

START_TEST(seed_003_generic_function)
{
    /* the program declares f, so the function is called \ell */
    answer("function f; norm2(vector(1)'*f(X*V))^2", "V", NULL,
           "\\begin{align*}\n"
           "\\ell &= \\|\\mathbf{1}^\\top f(XV)\\|_2^{2} \\\\\n"
           "\\frac{\\partial \\ell}{\\partial V} &= "
           "2X^\\top[(\\mathbf{1}\\mathbf{1}^\\top f(XV)) \\circ f'(XV)]\n"
           "\\end{align*}\n");
}
END_TEST

START_TEST(seed_004_network)
{
    answer("vector alpha; function h; norm2(h(X*W)*alpha - y)^2", "W", NULL,
           "\\begin{align*}\n"
           "f &= \\|h(XW)\\alpha - y\\|_2^{2} \\\\\n"
           "\\frac{\\partial f}{\\partial W} &= "
           "2X^\\top\\{[(h(XW)\\alpha - y)\\alpha^\\top] \\circ h'(XW)\\}\n"
           "\\end{align*}\n");
}
END_TEST

START_TEST(seed_005_abs)
{
    answer("scalar beta; matrix Phi; beta*sum(abs(Phi'*Phi - eye))", "Phi", NULL,
           "\\begin{align*}\n"
           "f &= \\beta\\operatorname{sum}(\\lvert \\Phi^\\top\\Phi - I\\rvert) \\\\\n"
           "\\frac{\\partial f}{\\partial \\Phi} &= 2\\beta\\Phi\\operatorname{sign}(\\Phi^\\top\\Phi - I)\n"
           "\\end{align*}\n");
}
END_TEST

START_TEST(seed_style_T_odot)
{
    md_latex_style st = {1, 1};
    answer("matrix gamma; norm2(R - P.*(gamma*gamma'))^2", "gamma", &st,
           "\\begin{align*}\n"
           "f &= \\|(\\gamma\\gamma^T) \\odot P - R\\|_F^{2} \\\\\n"
           "\\frac{\\partial f}{\\partial \\gamma} &= 2(T^T + T)\\gamma\n"
           "\\end{align*}\n"
           "where $T = [(\\gamma\\gamma^T) \\odot P - R] \\odot P$.\n");
    expr_st("sum(A.^2)", &st, "\\operatorname{sum}(A^{\\odot 2})");
}
END_TEST

START_TEST(several_temporaries)
{
    /* in dependency order, in their own align*; T_{1}^\top for a transpose */
    answer("norm2(W3*tanh(W2*tanh(W1*x)) - y)^2", "W1,W2,W3", NULL,
           "\\begin{align*}\n"
           "f &= \\|W_{3}\\tanh(W_{2}\\tanh(W_{1}x)) - y\\|_2^{2} \\\\\n"
           "\\frac{\\partial f}{\\partial W_{1}} &= "
           "2[(W_{2}^\\top T_{4}) \\circ (\\mathbf{1} - T_{1}^{\\circ 2})]x^\\top \\\\\n"
           "\\frac{\\partial f}{\\partial W_{2}} &= 2T_{4}T_{1}^\\top \\\\\n"
           "\\frac{\\partial f}{\\partial W_{3}} &= 2T_{3}T_{2}^\\top\n"
           "\\end{align*}\n"
           "where\n"
           "\\begin{align*}\n"
           "T_{1} &= \\tanh(W_{1}x) \\\\\n"
           "T_{2} &= \\tanh(W_{2}T_{1}) \\\\\n"
           "T_{3} &= W_{3}T_{2} - y \\\\\n"
           "T_{4} &= (W_{3}^\\top T_{3}) \\circ (\\mathbf{1} - T_{2}^{\\circ 2})\n"
           "\\end{align*}\n");
}
END_TEST

START_TEST(temporaries_avoid_variables)
{
    /* a variable T takes the name T; one called T_1 would print like T1 */
    answer("scalar T_1; T_1*norm2(X*A*X' - B)^2", "X", NULL,
           "\\begin{align*}\n"
           "f &= T_{1}\\|XAX^\\top - B\\|_F^{2} \\\\\n"
           "\\frac{\\partial f}{\\partial X} &= 2T_{1}(T^\\top XA + TXA^\\top)\n"
           "\\end{align*}\n"
           "where $T = XAX^\\top - B$.\n");
    answer("scalar T; T*norm2(X*A*X' - B)^2", "X", NULL,
           "\\begin{align*}\n"
           "f &= T\\|XAX^\\top - B\\|_F^{2} \\\\\n"
           "\\frac{\\partial f}{\\partial X} &= 2T(T_{1}^\\top XA + T_{1}XA^\\top)\n"
           "\\end{align*}\n"
           "where $T_{1} = XAX^\\top - B$.\n");
}
END_TEST

START_TEST(temps_through_expr)
{
    /* md_latex_expr with the md_temps of md_temps_find: names and T^\top,
       and the definition itself written out */
    tprog *p = load("scalar lambda; norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2");
    md_expr *g[2] = {md_gradient(p->ctx, p->typed.f, find(p, "U")),
                     md_gradient(p->ctx, p->typed.f, find(p, "V"))};
    md_temps t;
    md_temps_find(p->ctx, 2, g, NULL, &t);
    ck_assert_int_eq(t.ndefs, 1);
    md_buf b = {0};
    md_latex_expr(p->ctx, g[1], NULL, &t, &b);
    ck_assert_str_eq(b.s, "2T^\\top U");
    md_buf_free(&b);
    md_latex_expr(p->ctx, t.defs[0], NULL, &t, &b);
    ck_assert_str_eq(b.s, "X^\\top(XUV^\\top - Y) + \\lambda UV^\\top");
    md_buf_free(&b);
    md_latex_expr(p->ctx, g[1], NULL, NULL, &b);
    ck_assert_str_eq(b.s, "2[(VU^\\top X^\\top - Y^\\top)X + \\lambda VU^\\top]U");
    md_buf_free(&b);
    md_temps_free(&t);
    unload(p);
}
END_TEST

START_TEST(zero_gradient)
{
    answer("matrix B; sum(A*x)", "B", NULL,
           "\\begin{align*}\n"
           "f &= \\operatorname{sum}(Ax) \\\\\n"
           "\\frac{\\partial f}{\\partial B} &= 0\n"
           "\\end{align*}\n");
}
END_TEST

/* ---- kinds ---- */

START_TEST(kinds_products)
{
    expr("2*A.*B", "2A \\circ B");                   /* after scalars: no parentheses */
    expr("A*(B.*C)", "A(B \\circ C)");               /* Hadamard as a matrix factor */
    expr("(A*B).*C", "(AB) \\circ C");               /* product as a Hadamard operand */
    expr("x'*y*(A.*B)", "(x^\\top y)(A \\circ B)");
    expr("(x'*y)*A*B", "(x^\\top y)AB");
    expr("2*(A + B)*C", "2(A + B)C");
    expr("(A+B)*(C-D)'", "(A + B)(C^\\top - D^\\top)");
    expr("x*x'", "xx^\\top");
    expr("a*x'*y", "ax^\\top y");
    expr("scalar lambda; lambda*U", "\\lambda U");   /* a space after a control word */
    expr("3*2^a", "3 \\cdot 2^{a}");                 /* two numbers side by side */
    expr("vector w1; matrix Wt; x'*Wt*w1", "x^\\top\\,\\mathit{Wt}\\,w_{1}");
}
END_TEST

START_TEST(kinds_sums)
{
    expr("Y - X*U", "Y - XU");
    expr("-x - y", "-x - y");
    expr("A - matrix(1)*2", "A - 2\\mathbf{1}\\mathbf{1}^\\top");
    expr("x - vector(1)", "x - \\mathbf{1}");
    expr("1 - tanh(X*W).^2", "\\mathbf{1}\\mathbf{1}^\\top - \\tanh(XW)^{\\circ 2}");
    expr("1 - tanh(x).^2", "\\mathbf{1} - \\tanh(x)^{\\circ 2}");
    expr("sum(-A.*B)", "-\\operatorname{sum}(A \\circ B)");
    expr("a - 1/2", "a - \\frac{1}{2}");
}
END_TEST

START_TEST(kinds_rationals)
{
    expr("X/2", "\\frac{1}{2}X");
    expr("-1/2*A", "-\\frac{1}{2}A");
    expr("a/2", "\\frac{a}{2}");
    expr("2/3*a*A", "\\frac{2a}{3}A");
    expr("a/(2*b)", "\\frac{a}{2b}");
    expr("X/(a+b)", "\\frac{1}{a + b}X");
    expr("(a+b)/(c*d)", "\\frac{a + b}{cd}");
    expr("a^-1", "\\frac{1}{a}");
    expr("exp(a)^-2", "\\frac{1}{\\exp(a)^{2}}");
    expr("(A/b)'", "\\frac{1}{b}A^\\top");
    expr("log(a/2)", "\\log\\left(\\frac{a}{2}\\right)");   /* \left( around a fraction */
    expr("norm2(A/2)", "\\frac{\\|A\\|_F}{2}");
}
END_TEST

START_TEST(kinds_powers)
{
    expr("a^(1/2)", "a^{1/2}");
    expr("(a+b)^2", "(a + b)^{2}");
    expr("(x'*y)^2", "(x^\\top y)^{2}");
    expr("A.^(1/2)", "A^{\\circ 1/2}");
    expr("A.^-2", "A^{\\circ -2}");
    expr("A.^a", "A^{\\circ a}");
    expr("A.^B", "A^{\\circ B}");
    expr("X'.^2", "(X^\\top)^{\\circ 2}");           /* no double superscript */
    expr("A./B", "A \\circ B^{\\circ -1}");
    expr("1./B", "B^{\\circ -1}");
    expr("A^3", "A^{3}");
    expr("inv(A)", "A^{-1}");
    expr("inv(A)^2 + A^-2", "2A^{-2}");
    expr("inv(X')", "(X^\\top)^{-1}");
    expr("2^a", "2^{a}");
}
END_TEST

START_TEST(kinds_constants_and_reductions)
{
    expr("vector x(n); vector(1, n)'", "\\mathbf{1}^\\top");
    expr("matrix X(n, n); sum(eye(n))", "\\operatorname{sum}(I)");
    expr("sum(A*x)", "\\operatorname{sum}(Ax)");
    expr("tr(A) + det(A) + logdet(A) + norm1(A) + norm2(x) + norm1(x) + norm2(a) + norm1(a)",
         "2\\lvert a\\rvert + \\|A\\|_1 + \\|x\\|_1 + \\|x\\|_2 + \\operatorname{tr}(A) + \\det(A) + "
         "\\log\\det(A)");
    expr("norm2(X)^2", "\\|X\\|_F^{2}");
    expr("diag(x)", "\\operatorname{diag}(x)");
    expr("diag(A)'*x", "\\operatorname{diag}(A)^\\top x");
    expr("a*(x'*A*x)*sum(X)", "a\\operatorname{sum}(X)x^\\top Ax");
}
END_TEST

START_TEST(kinds_differentials)
{
    differential("x'*A*x", "x", "x^\\top A\\,\\mathrm{d}x + (\\mathrm{d}x)^\\top Ax");
    differential("tr(X'*A*X)", "X", "\\operatorname{tr}(X^\\top A\\,\\mathrm{d}X + (\\mathrm{d}X)^\\top AX)");
    differential("scalar mu; sum(mu*X)", "X", "\\mu\\operatorname{sum}(\\mathrm{d}X)");
}
END_TEST

START_TEST(functions)
{
    expr("sqrt(x) + abs(x) + sign(x) + relu(x) + step(x) + exp(x) + log(x) + sin(x) + cos(x) + "
         "tan(x) + arcsin(x) + arccos(x) + arctan(x) + tanh(x)",
         "\\sin(x) + \\cos(x) + \\tan(x) + \\arcsin(x) + \\arccos(x) + \\arctan(x) + \\exp(x) + "
         "\\log(x) + \\tanh(x) + \\lvert x\\rvert + \\operatorname{sign}(x) + \\operatorname{relu}(x) + "
         "\\operatorname{step}(x) + \\sqrt{x}");
    expr("function smoothstep, sigma_2, g1; sum(smoothstep(X)) + sum(sigma_2(X)) + sum(g1(X))",
         "\\operatorname{sum}(g_{1}(X)) + \\operatorname{sum}(\\sigma_{2}(X)) + "
         "\\operatorname{sum}(\\operatorname{smoothstep}(X))");
    expr("sum(exp(-A))", "\\operatorname{sum}(\\exp(-A))");
    expr("abs(a/2)", "\\left\\lvert \\frac{a}{2}\\right\\rvert");
}
END_TEST

START_TEST(generic_derivatives)
{
    /* f'' and f''' from a second and third derivative */
    tprog *p = load("function g; sum(g(X))");
    md_expr *x = md_sym(p->ctx, find(p, "X"));
    const char *want[] = {"g(X)", "g'(X)", "g''(X)", "g'''(X)", "g^{(4)}(X)"};
    for (int k = 0; k <= 4; k++) {
        char *s = md_latex_to_string(p->ctx, md_generic(p->ctx, 0, k, x), NULL);
        ck_assert_str_eq(s, want[k]);
        keep(s, 0);
        free(s);
    }
    unload(p);
}
END_TEST

START_TEST(names)
{
    name("x", "x");
    name("alpha", "\\alpha");
    name("Phi", "\\Phi");
    name("varepsilon", "\\varepsilon");
    name("Omega", "\\Omega");
    name("Alpha", "\\mathit{Alpha}");   /* no capital alpha in LaTeX */
    name("omicron", "o");
    name("W1", "W_{1}");
    name("W10", "W_{10}");
    name("W_10", "W_{10}");
    name("x_i", "x_{i}");
    name("x_hat", "x_{\\mathit{hat}}");
    name("alpha_2", "\\alpha_{2}");
    name("x_alpha", "x_{\\alpha}");
    name("W1_a", "W_{1,a}");
    name("lr", "\\mathit{lr}");
    name("lr2", "\\mathit{lr}_{2}");
    name("my_var_x", "\\mathit{my\\_var}_{x}");
    name("a_", "\\mathit{a\\_}");
    name("_x", "\\mathit{\\_x}");
    expr("scalar Theta, omicron; Theta*omicron", "\\Theta o");
    expr("scalar lr, lr2; lr*lr2", "\\mathit{lr}\\,\\mathit{lr}_{2}");
}
END_TEST

START_TEST(document)
{
    md_buf b = {0};
    md_latex_document("$x$", &b);
    ck_assert_str_eq(b.s, "\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n"
                          "\\begin{document}\n$x$\n\\end{document}\n");
    md_buf_free(&b);
    md_latex_document("$x$\n", &b);
    ck_assert_str_eq(b.s, "\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n"
                          "\\begin{document}\n$x$\n\\end{document}\n");
    md_buf_free(&b);
}
END_TEST

/* Runs last: everything the other tests pinned, through pdflatex. */
START_TEST(pdflatex_compiles)
{
    if (system("command -v pdflatex >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_latex: pdflatex not installed; skipping the compile test "
                        "(apt-get install texlive-latex-base)\n");
        return;
    }
    FILE *f = collect_path[0] ? fopen(collect_path, "r") : NULL;
    if (!f) {
        fprintf(stderr, "test_latex: nothing collected (run the whole suite); skipping the compile test\n");
        return;
    }
    md_buf body = {0};
    char chunk[4096];
    while (fgets(chunk, sizeof chunk, f)) md_buf_puts(&body, chunk);
    fclose(f);
    ck_assert_msg(body.len > 1000, "too little LaTeX was collected: %zu bytes", body.len);
    md_buf doc = {0};
    md_latex_document(body.s, &doc);
    char path[160], cmd[512];
    snprintf(path, sizeof path, "%s/t.tex", collect_dir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(doc.s, f);
    fclose(f);
    md_buf_free(&doc);
    md_buf_free(&body);
    snprintf(cmd, sizeof cmd,
             "cd %s && pdflatex -halt-on-error -interaction=nonstopmode t.tex >t.out 2>&1", collect_dir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "grep -A3 '^!' %s/t.out >&2", collect_dir);
        (void)!system(cmd);
    }
    ck_assert_msg(rc == 0, "pdflatex failed on the collected document");
}
END_TEST

/* md_latex_row: a short row is one line; a long sum breaks before a + at
   the top level, never inside a TeX group; a too-wide bracket breaks
   inside it with \right. and \left. */
START_TEST(row_breaking)
{
    md_buf b = {0};
    md_latex_row(&b, "f", "a + b", NULL);
    ck_assert_str_eq(b.s, "f &= a + b");
    md_buf_free(&b);
    md_latex_row(&b, "f", "a", "$A:B$");
    ck_assert_str_eq(b.s, "f &= a \\tag*{$A:B$}");
    md_buf_free(&b);

    md_buf body = {0};
    for (int i = 0; i < 40; i++) md_buf_printf(&body, "%sX_{%d}^{a + b}", i ? " + " : "", i);
    md_latex_row(&b, "f", body.s, NULL);
    ck_assert_ptr_nonnull(strstr(b.s, " \\\\\n &\\quad {}+ X_{"));
    ck_assert_ptr_null(strstr(b.s, "{a \\\\"));   /* not inside the script */
    md_buf_free(&b);
    md_buf_free(&body);

    md_buf_puts(&body, "2A - \\left[");
    for (int i = 0; i < 40; i++) md_buf_printf(&body, "%sX_{%d}", i ? " - " : "", i);
    md_buf_puts(&body, "\\right]B");
    md_latex_row(&b, "g", body.s, NULL);
    ck_assert_ptr_nonnull(strstr(b.s, "\\right. \\\\\n &\\quad \\left.{}- X_{"));
    md_buf_free(&b);
    md_buf_free(&body);
    ck_assert(md_latex_width("XUV^\\top") > md_latex_width("xuv"));
}
END_TEST

static Suite *latex_suite(void)
{
    Suite *s = suite_create("latex");
    TCase *t = tcase_create("latex");
    tcase_add_unchecked_fixture(t, collect_setup, NULL);
    tcase_add_test(t, seed_001_low_rank);
    tcase_add_test(t, seed_002_hadamard);
    tcase_add_test(t, seed_003_generic_function);
    tcase_add_test(t, seed_004_network);
    tcase_add_test(t, seed_005_abs);
    tcase_add_test(t, seed_style_T_odot);
    tcase_add_test(t, several_temporaries);
    tcase_add_test(t, temporaries_avoid_variables);
    tcase_add_test(t, temps_through_expr);
    tcase_add_test(t, zero_gradient);
    tcase_add_test(t, kinds_products);
    tcase_add_test(t, kinds_sums);
    tcase_add_test(t, kinds_rationals);
    tcase_add_test(t, kinds_powers);
    tcase_add_test(t, kinds_constants_and_reductions);
    tcase_add_test(t, kinds_differentials);
    tcase_add_test(t, functions);
    tcase_add_test(t, generic_derivatives);
    tcase_add_test(t, names);
    tcase_add_test(t, document);
    tcase_add_test(t, row_breaking);
    suite_add_tcase(s, t);
    TCase *c = tcase_create("pdflatex");
    tcase_add_unchecked_fixture(c, NULL, collect_teardown);
    tcase_set_timeout(c, 120);
    tcase_add_test(c, pdflatex_compiles);
    suite_add_tcase(s, c);
    return s;
}

MD_TEST_MAIN(latex_suite)
