/*
 * test_parser.c -- the parser stage: grammar, tree shape, locations and
 * the exact text of its error reports.
 *
 * Trees are compared as strings written by a small dumper, so a test
 * reads like the tree it expects:
 *
 *     (a + b - c)      a CHAIN with its operators in between
 *     (- x)            NEG
 *     (^ a b)  (.^ a b)
 *     (' x)  ('' x)  ('5 x)   TRANSPOSE with count 1, 2, 5
 *     (call f x y)  (call f'' x)   CALL, with its primes
 *     [e]              e was written in parentheses
 *
 * Statements are joined by " ; ", declarations written as
 * "matrix X(n,p) Y".  Error tests capture src.err in a memory stream and
 * compare the whole report.  The stress tests (1 MB sum, 100 000 nested
 * parentheses, unary minuses and primes) check for clean results rather
 * than exact echoes of megabyte lines.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "md_ast.h"
#include "md_test.h"

static void dump(md_buf *b, const md_ast *a)
{
    static const char *const ops[] = { "?", "+", "-", "*", "/", ".*", "./" };
    if (a->parens) md_buf_putc(b, '[');
    switch (a->kind) {
    case MD_AST_NUM:
    case MD_AST_NAME:
        md_buf_puts(b, a->text);
        break;
    case MD_AST_CHAIN:
        md_buf_putc(b, '(');
        for (int i = 0; i < a->nkids; i++) {
            if (i) md_buf_printf(b, " %s ", ops[a->ops[i]]);
            dump(b, a->kids[i]);
        }
        md_buf_putc(b, ')');
        break;
    case MD_AST_NEG:
        md_buf_puts(b, "(- ");
        dump(b, a->kids[0]);
        md_buf_putc(b, ')');
        break;
    case MD_AST_POW:
    case MD_AST_EPOW:
        md_buf_puts(b, a->kind == MD_AST_POW ? "(^ " : "(.^ ");
        dump(b, a->kids[0]);
        md_buf_putc(b, ' ');
        dump(b, a->kids[1]);
        md_buf_putc(b, ')');
        break;
    case MD_AST_TRANSPOSE:
        if (a->count <= 2) md_buf_printf(b, "(%s ", a->count == 1 ? "'" : "''");
        else md_buf_printf(b, "('%d ", a->count);
        dump(b, a->kids[0]);
        md_buf_putc(b, ')');
        break;
    case MD_AST_CALL:
        md_buf_printf(b, "(call %s", a->text);
        for (int i = 0; i < a->count; i++) md_buf_putc(b, '\'');
        for (int i = 0; i < a->nkids; i++) {
            md_buf_putc(b, ' ');
            dump(b, a->kids[i]);
        }
        md_buf_putc(b, ')');
        break;
    }
    if (a->parens) md_buf_putc(b, ']');
}

static const char *const decl_words[] = { "scalar", "vector", "matrix", "symmetric", "function" };

static char *dump_program(const md_program *prog)
{
    md_buf b = { 0 };
    for (int i = 0; i < prog->nstmts; i++) {
        const md_stmt *s = prog->stmts[i];
        if (i) md_buf_puts(&b, " ; ");
        switch (s->kind) {
        case MD_STMT_EXPR:
            dump(&b, s->expr);
            break;
        case MD_STMT_ASSIGN:
            md_buf_printf(&b, "%s = ", s->name);
            dump(&b, s->expr);
            break;
        case MD_STMT_DECL:
            md_buf_puts(&b, decl_words[s->decl]);
            for (int j = 0; j < s->nitems; j++) {
                const md_decl_item *it = &s->items[j];
                md_buf_printf(&b, " %s", it->name);
                if (it->ndims == 1) md_buf_printf(&b, "(%s)", it->dims[0]);
                if (it->ndims == 2) md_buf_printf(&b, "(%s,%s)", it->dims[0], it->dims[1]);
            }
            break;
        }
    }
    return md_buf_take(&b);
}

/* Parses text (len bytes) and returns the error output (malloc'd); *out
   gets the program or NULL. */
static char *parse_capture(const char *text, size_t len, md_program **out)
{
    char *err = NULL;
    size_t errlen = 0;
    md_source src;
    md_source_init(&src, "<t>", text, len);
    src.err = open_memstream(&err, &errlen);
    ck_assert_ptr_nonnull(src.err);
    md_program *prog = md_parse(&src);
    fclose(src.err);
    if (prog) ck_assert_int_eq(src.nerrors, 0);
    else ck_assert_int_eq(src.nerrors, 1);
    *out = prog;
    return err;
}

/* Asserts that text parses without a report and dumps to want. */
static void ok_len(const char *text, size_t len, const char *want)
{
    md_program *prog;
    char *err = parse_capture(text, len, &prog);
    ck_assert_msg(prog != NULL, "parse of \"%s\" failed:\n%s", text, err);
    ck_assert_str_eq(err, "");
    char *got = dump_program(prog);
    ck_assert_msg(strcmp(got, want) == 0, "\"%s\": got %s, want %s", text, got, want);
    free(got);
    free(err);
    md_program_free(prog);
}

static void ok(const char *text, const char *want)
{
    ok_len(text, strlen(text), want);
}

/* Asserts that text fails with exactly the report want. */
static void fails_len(const char *text, size_t len, const char *want)
{
    md_program *prog;
    char *err = parse_capture(text, len, &prog);
    ck_assert_msg(prog == NULL, "\"%s\" should not parse", text);
    ck_assert_str_eq(err, want);
    free(err);
}

static void fails(const char *text, const char *want)
{
    fails_len(text, strlen(text), want);
}

/* Parses text and returns the first statement's expression. */
static md_program *parse_ok(const char *text)
{
    md_program *prog;
    char *err = parse_capture(text, strlen(text), &prog);
    ck_assert_msg(prog != NULL, "%s", err);
    free(err);
    return prog;
}

#define ck_assert_loc(l, a, b, c, d)                                          \
    do {                                                                      \
        md_loc l_ = (l);                                                      \
        ck_assert_msg(l_.line == (a) && l_.col == (b) && l_.end_line == (c) && \
                          l_.end_col == (d),                                  \
                      "loc %d:%d-%d:%d, want %d:%d-%d:%d", l_.line, l_.col,   \
                      l_.end_line, l_.end_col, a, b, c, d);                   \
    } while (0)

/* ---- grammar ---------------------------------------------------------- */

START_TEST(test_precedence)
{
    ok("a + b * c", "(a + (b * c))");
    ok("a * b + c", "((a * b) + c)");
    ok("A*B.*C", "(A * (B .* C))");
    ok("A.*B*C", "((A .* B) * C)");
    ok("A./B/C", "((A ./ B) / C)");
    ok("-x^2", "(- (^ x 2))");
    ok("-x.^2", "(- (.^ x 2))");
    ok("2*-x", "(2 * (- x))");
    ok("-a*b", "((- a) * b)");
    ok("-a.*b", "((- a) .* b)");
    ok("a - -b", "(a - (- b))");
    ok("--a", "(- (- a))");
    ok("+x", "x");
    ok("+-+x", "(- x)");
    ok("a^b^c", "(^ a (^ b c))");
    ok("a.^b.^c", "(.^ a (.^ b c))");
    ok("a^b.^c", "(^ a (.^ b c))");
    ok("X^-1", "(^ X (- 1))");
    ok("x.^-2", "(.^ x (- 2))");
    ok("a^-b^c", "(^ a (- (^ b c)))");
    ok("a^+b", "(^ a b)");
    ok("x'^2", "(^ (' x) 2)");
    ok("x^2'", "(^ x (' 2))");
    ok("-x'", "(- (' x))");
    ok("(a+b)*c", "([(a + b)] * c)");
    ok("a*b^c.*d", "(a * ((^ b c) .* d))");
}
END_TEST

START_TEST(test_chains)
{
    ok("a + b - c + d", "(a + b - c + d)");
    ok("a * b / c * d", "(a * b / c * d)");
    ok("a .* b ./ c .* d", "(a .* b ./ c .* d)");
    ok("(a + b) + c", "([(a + b)] + c)");
    ok("a + (b + c)", "(a + [(b + c)])");
    ok("a*b + c*d - e", "((a * b) + (c * d) - e)");
    md_program *prog = parse_ok("a + b-c");
    md_ast *c = prog->stmts[0]->expr;
    ck_assert_int_eq(c->kind, MD_AST_CHAIN);
    ck_assert_int_eq(c->nkids, 3);
    ck_assert_int_eq(c->ops[1], MD_OP_ADD);
    ck_assert_int_eq(c->ops[2], MD_OP_SUB);
    ck_assert_loc(c->loc, 1, 1, 1, 7);
    ck_assert_loc(c->oplocs[1], 1, 3, 1, 3);
    ck_assert_loc(c->oplocs[2], 1, 6, 1, 6);
    md_program_free(prog);

    prog = parse_ok("a .* b");
    c = prog->stmts[0]->expr;
    ck_assert_int_eq(c->ops[1], MD_OP_HMUL);
    ck_assert_loc(c->oplocs[1], 1, 3, 1, 4);
    md_program_free(prog);
}
END_TEST

START_TEST(test_transpose_and_calls)
{
    ok("x'", "(' x)");
    ok("x''", "('' x)");
    ok("x'''''", "('5 x)");
    ok("x' '", "('' x)");
    ok("(x')'", "(' [(' x)])");
    ok("(A*B)'", "(' [(A * B)])");
    ok("f'(x)", "(call f' x)");
    ok("f''(x)", "(call f'' x)");
    ok("f' (x)", "(call f' x)");
    ok("x'*(y)", "((' x) * [y])");
    ok("sum(X)'", "(' (call sum X))");
    ok("f(x, y + 1, g(z))", "(call f x (y + 1) (call g z))");
    ok("vector(1) + matrix(0.5)", "((call vector 1) + (call matrix 0.5))");
    ok("eye", "eye");
    ok("f'(x)'", "(' (call f' x))");

    md_program *prog = parse_ok("x ''");
    md_ast *t = prog->stmts[0]->expr;
    ck_assert_int_eq(t->kind, MD_AST_TRANSPOSE);
    ck_assert_int_eq(t->count, 2);
    ck_assert_loc(t->loc, 1, 1, 1, 4);
    ck_assert_loc(t->oploc, 1, 3, 1, 4);
    md_program_free(prog);

    prog = parse_ok("  f''(x, y)");
    t = prog->stmts[0]->expr;
    ck_assert_int_eq(t->kind, MD_AST_CALL);
    ck_assert_str_eq(t->text, "f");
    ck_assert_int_eq(t->count, 2);
    ck_assert_int_eq(t->nkids, 2);
    ck_assert_loc(t->loc, 1, 3, 1, 11);
    ck_assert_loc(t->oploc, 1, 3, 1, 5);
    md_program_free(prog);

    prog = parse_ok("-a^b");
    t = prog->stmts[0]->expr;
    ck_assert_int_eq(t->kind, MD_AST_NEG);
    ck_assert_loc(t->loc, 1, 1, 1, 4);
    ck_assert_loc(t->oploc, 1, 1, 1, 1);
    ck_assert_loc(t->kids[0]->loc, 1, 2, 1, 4);
    ck_assert_loc(t->kids[0]->oploc, 1, 3, 1, 3);
    md_program_free(prog);
}
END_TEST

START_TEST(test_numbers)
{
    ok("12", "12");
    ok("0.5", "0.5");
    ok(".5", ".5");
    ok("3.", "3.");
    ok("1e-3", "1e-3");
    ok("2.5E+4", "2.5E+4");
    ok("1.e5", "1.e5");
    ok(".5e2", ".5e2");
    ok("2.*x", "(2 .* x)");
    ok("2./x", "(2 ./ x)");
    ok("2.^x", "(.^ 2 x)");
    ok("2. * x", "(2. * x)");
    ok("1.5.*x", "(1.5 .* x)");
    md_program *prog = parse_ok("x + 2.5E+4");
    md_ast *n = prog->stmts[0]->expr->kids[1];
    ck_assert_int_eq(n->kind, MD_AST_NUM);
    ck_assert_loc(n->loc, 1, 5, 1, 10);
    md_program_free(prog);
}
END_TEST

START_TEST(test_statements)
{
    ok("", "");
    ok("\n\n;;\n", "");
    ok("a; b\nc", "a ; b ; c");
    ok(";;a;;\n\nb;", "a ; b");
    ok("# only a comment", "");
    ok("a # comment ; b\n# another\nc", "a ; c");
    ok("a\r\n\tb\r\n", "a ; b");
    /* inside parentheses a newline is a blank */
    ok("norm2(Y -\n  X*W)^2; b", "(^ (call norm2 (Y - (X * W))) 2) ; b");
    ok("(a\n+ b)\nc", "[(a + b)] ; c");
    ok("y = x + 1", "y = (x + 1)");
    ok("scalar a, b", "scalar a b");
    ok("vector x, w(n)", "vector x w(n)");
    ok("matrix X(n, p), Y", "matrix X(n,p) Y");
    ok("symmetric S(n); symmetric T(n, n), U", "symmetric S(n) ; symmetric T(n,n) U");
    ok("function f, h", "function f h");
    ok("matrix X(n,p)\nvector y(n)\nnorm2(X*w - y)^2",
       "matrix X(n,p) ; vector y(n) ; (^ (call norm2 ((X * w) - y)) 2)");
    /* keywords are names away from a statement's start */
    ok("x + matrix", "(x + matrix)");
    ok("matrix(0.5) + X", "((call matrix 0.5) + X)");

    md_program *prog = parse_ok("\nmatrix X(n, p), Y\ny = 1");
    ck_assert_int_eq(prog->nstmts, 2);
    md_stmt *s = prog->stmts[0];
    ck_assert_int_eq(s->kind, MD_STMT_DECL);
    ck_assert_int_eq(s->decl, MD_DECL_MATRIX);
    ck_assert_int_eq(s->nitems, 2);
    ck_assert_loc(s->loc, 2, 1, 2, 17);
    ck_assert_loc(s->items[0].loc, 2, 8, 2, 8);
    ck_assert_int_eq(s->items[0].ndims, 2);
    ck_assert_loc(s->items[0].dimlocs[0], 2, 10, 2, 10);
    ck_assert_loc(s->items[0].dimlocs[1], 2, 13, 2, 13);
    ck_assert_int_eq(s->items[1].ndims, 0);
    s = prog->stmts[1];
    ck_assert_int_eq(s->kind, MD_STMT_ASSIGN);
    ck_assert_str_eq(s->name, "y");
    ck_assert_loc(s->nameloc, 3, 1, 3, 1);
    ck_assert_loc(s->loc, 3, 1, 3, 5);
    md_program_free(prog);
}
END_TEST

/* ---- errors ----------------------------------------------------------- */

START_TEST(test_syntax_errors)
{
    fails(")", "<t>:1:1: error: unexpected ')', expected an expression\n)\n^\n");
    fails("(a", "<t>:1:3: error: unexpected end of input, expected ')'\n(a\n  ^\n");
    fails("f(a", "<t>:1:4: error: unexpected end of input, expected ',' or ')'\nf(a\n   ^\n");
    fails("a + = b", "<t>:1:5: error: unexpected '=', expected an expression\na + = b\n    ^\n");
    fails("a b",
          "<t>:1:3: error: unexpected name 'b', expected an operator, '=' or end of statement\n"
          "a b\n  ^\n");
    fails("x = 2 3.5", "<t>:1:7: error: unexpected number '3.5', expected an operator or "
                       "end of statement\nx = 2 3.5\n      ^~~\n");
    fails("a +\nb", "<t>:1:4: error: unexpected end of line, expected an expression\na +\n   ^\n");
    fails("a +\n", "<t>:1:4: error: unexpected end of line, expected an expression\na +\n   ^\n");
    fails("a .* ", "<t>:1:6: error: unexpected end of input, expected an expression\na .* \n     ^\n");
    fails("matrix", "<t>:1:7: error: unexpected end of input, expected a name after 'matrix'\n"
                    "matrix\n      ^\n");
    fails("vector 2", "<t>:1:8: error: unexpected number '2', expected a name after 'vector'\n"
                      "vector 2\n       ^\n");
    fails("matrix X(n p)", "<t>:1:12: error: unexpected name 'p', expected ',' or ')'\n"
                           "matrix X(n p)\n           ^\n");
    fails("x = 'a'", "<t>:1:5: error: unexpected \"'\", expected an expression\nx = 'a'\n    ^\n");
    fails("eye()", "<t>:1:5: error: unexpected ')', expected an expression\neye()\n    ^\n");
    fails("scalar a(n)", "<t>:1:10: error: a scalar takes no dimensions: write 'scalar a'\n"
                         "scalar a(n)\n         ^\n");
    fails("function f(n, m)", "<t>:1:12: error: a function takes no dimensions: write "
                              "'function f'\nfunction f(n, m)\n           ^~~~\n");
    fails("vector x(n, p)", "<t>:1:10: error: a vector takes one dimension: write "
                            "'vector x(n)'\nvector x(n, p)\n         ^~~~\n");
    fails("symmetric S(n, p)", "<t>:1:16: error: a symmetric matrix is square: write "
                               "'symmetric S(n)'\nsymmetric S(n, p)\n               ^\n");
    /* on line 2, after a tab: the caret line copies the tab */
    fails("y = 1\n\tx *  )\nz",
          "<t>:2:7: error: unexpected ')', expected an expression\n\tx *  )\n\t     ^\n");
    fails("a\n\tf(x,\ty", "<t>:2:8: error: unexpected end of input, expected ',' or ')'\n"
                          "\tf(x,\ty\n\t    \t ^\n");
}
END_TEST

START_TEST(test_lexical_errors)
{
    fails("a @ b", "<t>:1:3: error: unexpected character '@'\na @ b\n  ^\n");
    fails("$", "<t>:1:1: error: unexpected character '$'\n$\n^\n");
    fails_len("a + \0b", 6, "<t>:1:5: error: unexpected byte 0x00\na + ?b\n    ^\n");
    fails("x\n\xff y", "<t>:2:1: error: invalid UTF-8 byte 0xFF\n? y\n^\n");
    fails("\ta\t\x01", "<t>:1:4: error: unexpected byte 0x01\n\ta\t?\n\t \t^\n");
    fails("1e", "<t>:1:1: error: malformed number '1e'\n1e\n^~\n");
    fails("x + 1e+", "<t>:1:5: error: malformed number '1e+'\nx + 1e+\n    ^~~\n");
    fails("2.5E-x", "<t>:1:1: error: malformed number '2.5E-'\n2.5E-x\n^~~~~\n");
    fails("x..y", "<t>:1:2: error: stray '.': expected a digit or one of .* ./ .^\nx..y\n ^\n");
    fails("a .", "<t>:1:3: error: stray '.': expected a digit or one of .* ./ .^\na .\n  ^\n");
}
END_TEST

/* UTF-8 input: Greek letters are names spelt in ASCII, the operators of
   matdiff's Unicode output are its ASCII ones, blanks beyond ASCII are
   blanks, and columns count characters. */
START_TEST(test_unicode)
{
    ok("\u03bb*x + lambda", "((lambda * x) + lambda)");
    ok("x_\u03bb2 + \u0393 + \u03a3", "(x_lambda2 + Gamma + Sigma)");
    ok("\u03b5 + \u03f5 + \u03b8 + \u03d1 + \u03c6 + \u03d5",
       "(epsilon + varepsilon + theta + vartheta + phi + varphi)");
    ok("\u03b1\u03b2", "alphabeta");
    ok("scalar \u03bb; vector x(\u03bd); \u03bb", "scalar lambda ; vector x(nu) ; lambda");
    ok("function \u03c6; \u03c6''(x)", "function phi ; (call phi'' x)");
    ok("A\u2218B\u2299C\u2298D", "(A .* B .* C ./ D)");
    ok("A\u00b7B\u00d7C", "(A * B * C)");
    ok("X\u1d40", "(' X)");
    ok("X\u1d40\u1d40'", "('3 X)");
    ok("f'\u1d40", "('' f)");
    ok("A\u2297B", "(call kron A B)");
    ok("A*B \u2297 C*D", "((call kron (A * B) C) * D)");
    ok("A\u2297B\u2297C", "(call kron (call kron A B) C)");
    ok("A\u2297B.*C + D", "((call kron A (B .* C)) + D)");
    /* a byte-order mark, no-break, thin and narrow spaces */
    ok("\xef\xbb\xbfx\u00a0+\u2009y\u202f", "(x + y)");
    ok("\xef\xbb\xbfscalar a; vector\u00a0(1)", "scalar a ; (call vector 1)");
    ok("function f; f'\u00a0(x)", "function f ; (call f' x)");

    md_program *prog = parse_ok("\u03bb\u00b7x \u2218 y\u1d40");
    const md_ast *e = prog->stmts[0]->expr;
    ck_assert_loc(e->loc, 1, 1, 1, 8);
    ck_assert_loc(e->oplocs[1], 1, 2, 1, 2);
    ck_assert_loc(e->kids[1]->loc, 1, 3, 1, 8);
    ck_assert_loc(e->kids[1]->oplocs[1], 1, 5, 1, 5);
    ck_assert_loc(e->kids[1]->kids[1]->oploc, 1, 8, 1, 8);
    md_program_free(prog);

    fails("\u03bb \u2212 x",
          "<t>:1:3: error: unexpected character U+2212 MINUS SIGN; did you mean '-'?\n"
          "\u03bb \u2212 x\n  ^\n");
    fails("\u201cx\u201d", "<t>:1:1: error: unexpected character U+201C LEFT DOUBLE QUOTATION MARK\n"
                           "\u201cx\u201d\n^\n");
    fails("\u03b8\u2218x\u00b2", "<t>:1:4: error: unexpected character U+00B2 SUPERSCRIPT TWO; "
                                 "did you mean '^2'?\n\u03b8\u2218x\u00b2\n   ^\n");
    fails("x\u4e2d", "<t>:1:2: error: unexpected character U+4E2D\nx\u4e2d\n ^\n");
    /* a letter of the Greek block that is no name, inside a name */
    fails("\u03b1\u0386", "<t>:1:2: error: unexpected character U+0386\n\u03b1\u0386\n ^\n");
    fails("\u03c2", "<t>:1:1: error: unexpected character U+03C2 GREEK SMALL LETTER FINAL SIGMA; "
                    "did you mean 'sigma'?\n\u03c2\n^\n");
    /* the token that does not fit, as written */
    fails("A \u2297\u2297 B", "<t>:1:4: error: unexpected '\u2297', expected an expression\n"
                             "A \u2297\u2297 B\n   ^\n");
    fails("\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb"
          "\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb x",
          "<t>:1:23: error: unexpected name 'x', expected an operator, '=' or end of statement\n"
          "\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb"
          "\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb\u03bb x\n"
          "                      ^\n");
    /* invalid UTF-8: a lone, truncated, overlong or surrogate sequence is
       one column per byte, each echoed as '?' */
    fails("x\xce", "<t>:1:2: error: invalid UTF-8 byte 0xCE\nx?\n ^\n");
    fails("\u03bb\xe2\x88 y", "<t>:1:2: error: invalid UTF-8 byte 0xE2\n\u03bb?? y\n ^\n");
    fails("\xc0\xaf", "<t>:1:1: error: invalid UTF-8 byte 0xC0\n??\n^\n");
    fails("a+\xed\xa0\x80", "<t>:1:3: error: invalid UTF-8 byte 0xED\na+???\n  ^\n");
    /* characters that would disturb the echo are '?' there */
    fails("x\xc2\x85", "<t>:1:2: error: unexpected character U+0085\nx?\n ^\n");
    fails("x \u202e y", "<t>:1:3: error: unexpected character U+202E\nx ? y\n  ^\n");
}
END_TEST

/* ---- stress ----------------------------------------------------------- */

static char *repeat(const char *head, const char *unit, size_t n, const char *tail, size_t *len)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    *len = hl + ul * n + tl;
    char *s = malloc(*len + 1);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++) memcpy(s + hl + i * ul, unit, ul);
    memcpy(s + hl + ul * n, tail, tl + 1);
    return s;
}

static void fails_deep(const char *text, size_t len)
{
    md_program *prog;
    char *err = parse_capture(text, len, &prog);
    ck_assert_ptr_null(prog);
    const char *want = "error: expression nested too deeply (more than 10000 levels)\n";
    ck_assert_msg(strstr(err, want) != NULL, "got %.200s", err);
    ck_assert_int_eq(strncmp(err, "<t>:1:", 6), 0);
    free(err);
}

START_TEST(test_deep_parens)
{
    size_t len;
    char *open = repeat("", "(", 100000, "x", &len);
    char *s = malloc(2 * len);
    memcpy(s, open, len);
    memset(s + len, ')', 100000);
    fails_deep(s, len + 100000);
    free(s);
    free(open);

    /* 5000 levels are fine and add no depth */
    s = repeat("", "(", 5000, "x", &len);
    char *t = malloc(len + 5001);
    memcpy(t, s, len);
    memset(t + len, ')', 5000);
    t[len + 5000] = 0;
    ok(t, "[x]");
    free(t);
    free(s);
}
END_TEST

START_TEST(test_deep_unary)
{
    size_t len;
    char *s = repeat("", "-", 100000, "x", &len);
    fails_deep(s, len);
    free(s);
    /* below the stack limit but over MD_MAX_DEPTH: the tree check fires */
    s = repeat("", "-", 20000, "x", &len);
    fails_deep(s, len);
    free(s);
    s = repeat("", "a^-", 20000, "x", &len);
    fails_deep(s, len);
    free(s);
    s = repeat("", "-(", 11000, "x", &len);
    char *t = malloc(len + 11001);
    memcpy(t, s, len);
    memset(t + len, ')', 11000);
    t[len + 11000] = 0;
    fails_deep(t, len + 11000);
    free(t);
    free(s);
    s = repeat("", "-", 9000, "x", &len);
    md_program *prog = parse_ok(s);
    ck_assert_int_eq(prog->stmts[0]->expr->kind, MD_AST_NEG);
    md_program_free(prog);
    free(s);
}
END_TEST

START_TEST(test_many_primes)
{
    size_t len;
    char *s = repeat("x", "'", 100000, "", &len);
    md_program *prog = parse_ok(s);
    md_ast *t = prog->stmts[0]->expr;
    ck_assert_int_eq(t->kind, MD_AST_TRANSPOSE);
    ck_assert_int_eq(t->count, 100000);
    ck_assert_int_eq(t->kids[0]->kind, MD_AST_NAME);
    md_program_free(prog);
    free(s);
    s = repeat("x", "' ", 100000, "", &len);
    prog = parse_ok(s);
    ck_assert_int_eq(prog->stmts[0]->expr->count, 100000);
    md_program_free(prog);
    free(s);
}
END_TEST

START_TEST(test_long_sum)
{
    size_t len;
    char *s = repeat("a", "+a", 500000, "", &len);   /* 1 MB */
    clock_t t0 = clock();
    md_program *prog = parse_ok(s);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    md_ast *c = prog->stmts[0]->expr;
    ck_assert_int_eq(c->kind, MD_AST_CHAIN);
    ck_assert_int_eq(c->nkids, 500001);
    ck_assert_int_eq(c->ops[500000], MD_OP_ADD);
    ck_assert_loc(c->loc, 1, 1, 1, 1000001);
    ck_assert_loc(c->oplocs[500000], 1, 1000000, 1, 1000000);
    ck_assert_msg(secs < 30, "1 MB sum took %.1f s", secs);
    md_program_free(prog);
    free(s);

    s = repeat("a", "*a-a", 100000, "", &len);      /* many short chains */
    prog = parse_ok(s);
    ck_assert_int_eq(prog->stmts[0]->expr->nkids, 100001);
    md_program_free(prog);
    free(s);
}
END_TEST

START_TEST(test_diag)
{
    char *err = NULL;
    size_t n = 0;
    md_source src;
    const char text[] = "ab\n  xyz + w\nlast";
    md_source_init(&src, "f.md", text, sizeof text - 1);
    src.err = open_memstream(&err, &n);
    md_error_at(&src, (md_loc){ 2, 3, 2, 5 }, "bad %s", "xyz");
    md_note_at(&src, (md_loc){ 2, 7, 3, 2 }, "here");
    md_error(&src, "no place");
    md_error_at(&src, (md_loc){ 3, 5, 3, 5 }, "at end");
    fclose(src.err);
    ck_assert_str_eq(err, "f.md:2:3: error: bad xyz\n  xyz + w\n  ^~~\n"
                          "f.md:2:7: note: here\n  xyz + w\n      ^~~\n"
                          "f.md: error: no place\n"
                          "f.md:3:5: error: at end\nlast\n    ^\n");
    ck_assert_int_eq(src.nerrors, 3);
    free(err);

    /* Columns are characters; the caret line gives each as many blanks as
       it takes cells: none for a byte-order mark or a combining accent,
       two for a wide character, one for a '?' and anything else. */
    const char wide[] = "\xef\xbb\xbf\u4e2d\u03bb\u0301\t\xff\u00b7x + y\nz";
    md_source_init(&src, "w.md", wide, sizeof wide - 1);
    src.err = open_memstream(&err, &n);
    md_error_at(&src, (md_loc){ 1, 7, 1, 11 }, "range");
    md_error_at(&src, (md_loc){ 1, 3, 2, 1 }, "to the end");
    md_error_at(&src, (md_loc){ 1, 13, 1, 13 }, "past the end");
    fclose(src.err);
    ck_assert_str_eq(err, "w.md:1:7: error: range\n"
                          "\xef\xbb\xbf\u4e2d\u03bb\u0301\t?\u00b7x + y\n"
                          "   \t ^~~~~\n"
                          "w.md:1:3: error: to the end\n"
                          "\xef\xbb\xbf\u4e2d\u03bb\u0301\t?\u00b7x + y\n"
                          "  ^\t~~~~~~~\n"
                          "w.md:1:13: error: past the end\n"
                          "\xef\xbb\xbf\u4e2d\u03bb\u0301\t?\u00b7x + y\n"
                          "   \t       ^\n");
    /* the byte offsets of columns, for the source text of a location */
    ck_assert_uint_eq(md_loc_offset(&src, 1, 1), 0);
    ck_assert_uint_eq(md_loc_offset(&src, 1, 3), 6);
    ck_assert_uint_eq(md_loc_offset(&src, 1, 7), 12);
    ck_assert_uint_eq(md_loc_offset(&src, 2, 1), sizeof wide - 2);
    free(err);

    uint32_t cp = 0;
    ck_assert_int_eq(md_utf8_decode("\u03bb", 2, &cp), 2);
    ck_assert_uint_eq(cp, 0x3bb);
    ck_assert_int_eq(md_utf8_decode("\U0010ffff", 4, &cp), 4);
    ck_assert_uint_eq(cp, 0x10ffff);
    ck_assert_int_eq(md_utf8_decode("\u03bb", 1, &cp), 0);       /* truncated */
    ck_assert_int_eq(md_utf8_decode("\xf4\x90\x80\x80", 4, &cp), 0); /* above U+10FFFF */
    ck_assert_int_eq(md_utf8_decode("\xe0\x9f\xbf", 3, &cp), 0);     /* overlong */
    ck_assert_int_eq(md_utf8_decode("\xbf", 1, &cp), 0);
    ck_assert_uint_eq(md_utf8_len("\xbf\xbf", 2), 1);
    ck_assert_uint_eq(md_utf8_len("", 0), 0);

    md_loc a = { 1, 4, 1, 6 }, b = { 2, 1, 2, 3 };
    md_loc s = md_loc_span(a, b);
    ck_assert_loc(s, 1, 4, 2, 3);
    s = md_loc_span(b, a);
    ck_assert_loc(s, 1, 4, 2, 3);

    ck_assert_int_eq(md_edit_distance("", ""), 0);
    ck_assert_int_eq(md_edit_distance("norm2", "norm2"), 0);
    /* a swapped pair is one edit (optimal string alignment) */
    ck_assert_int_eq(md_edit_distance("nrom2", "norm2"), 1);
    ck_assert_int_eq(md_edit_distance("tahn", "tanh"), 1);
    ck_assert_int_eq(md_edit_distance("ca", "abc"), 3);
    ck_assert_int_eq(md_edit_distance("kitten", "sitting"), 3);
    ck_assert_int_eq(md_edit_distance("", "abc"), 3);
}
END_TEST

static Suite *parser_suite(void)
{
    Suite *s = suite_create("parser");
    TCase *tc = tcase_create("grammar");
    tcase_add_test(tc, test_precedence);
    tcase_add_test(tc, test_chains);
    tcase_add_test(tc, test_transpose_and_calls);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_statements);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_lexical_errors);
    tcase_add_test(tc, test_unicode);
    tcase_add_test(tc, test_diag);
    suite_add_tcase(s, tc);
    tc = tcase_create("stress");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_deep_parens);
    tcase_add_test(tc, test_deep_unary);
    tcase_add_test(tc, test_many_primes);
    tcase_add_test(tc, test_long_sum);
    suite_add_tcase(s, tc);
    return s;
}

MD_TEST_MAIN(parser_suite)
