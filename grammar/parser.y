/*
 * parser.y -- the grammar of the matrixcalculus.org dialect.
 *
 * A pure (reentrant) Bison LALR(1) parser with locations, LAC and custom
 * syntax error messages.  It builds the untyped md_ast tree of md_ast.h;
 * the node constructors live in src/1_front/parse.c so that this file stays a
 * grammar.  The grammar is stratified by hand instead of using %left /
 * %right, because the dialect's precedence is unusual and a reader should
 * see it spelled out (loosest first):
 *
 *     sum     = prod  (("+" | "-") prod)*          -> one n-ary CHAIN
 *     prod    = hprod (("*" | "/" | "⊗") hprod)*   -> one n-ary CHAIN
 *     hprod   = unary ((".*" | "./") unary)*       -> one n-ary CHAIN
 *     unary   = ("-" | "+") unary | power          (unary + is dropped)
 *     power   = postfix (("^" | ".^") unary)?      (right-assoc; X^-1 ok)
 *     postfix = primary "'"*                       (primes collapse)
 *     primary = NUM | NAME | "(" sum ")" | NAME "(" args ")"
 *             | CALLNAME "(" args ")"              (f'(x), f''(x))
 *
 * So `.*` binds tighter than `*`, unary minus binds tighter than `*` and
 * `.*` but looser than `^` (`-x^2` is -(x^2), `2*-x` is legal) and
 * `a^-b^c` is a^(-(b^c)).
 *
 * `A ⊗ B` is the call kron(A, B), at the level of `*` and like it
 * left-associative: `A*B ⊗ C` is kron(A*B, C) and `A ⊗ B*C` is
 * kron(A, B)*C.  The other Unicode operators are ASCII tokens to the
 * grammar (the lexer reads `∘` as `.*`, `ᵀ` as a prime).
 *
 * Statements are separated by newlines or `;` and may be empty.  A
 * statement is an expression, `name = expr` or a declaration.  All nodes
 * go to the program's arena, so no %destructor is needed: on an error the
 * half-built tree is simply freed with the arena.  There is no error
 * recovery: the first error is reported and parsing stops.
 *
 * Depth is bounded twice: YYMAXDEPTH caps Bison's stack (a "memory
 * exhausted" becomes "expression nested too deeply"), and every
 * constructor checks the tree depth against MD_MAX_DEPTH, because later
 * stages recurse on the tree.
 */
%define api.pure full
%define api.prefix {md_yy}
%define api.token.prefix {MD_TOK_}
%define api.location.type {md_loc}
%define parse.error custom
%define parse.lac full
%locations
%expect 0

%param {yyscan_t scanner}
%parse-param {md_parser *p}

%code requires {
#include "md_ast.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* A primed call name: f'( gives name "f", count 1. */
typedef struct md_callname {
    const char *name;
    int count;
} md_callname;

/* A growable array of pointers in the program's arena. */
typedef struct md_list {
    void **v;
    int n, cap;
} md_list;

/* Everything the parser and scanner share for one md_parse call. */
typedef struct md_parser {
    md_source *src;
    md_program *prog;
    /* scanner cursor: the next byte */
    int line, col;
    size_t off;
    int nl_line, nl_col;       /* the last newline seen */
    int at_start;              /* the next token starts a statement */
    int parens;                /* open parentheses: newlines inside are blanks */
    const char *cur_kw;        /* the current token if a keyword */
    const char *prev_kw;       /* the token before it if a keyword */
    size_t tok_off, tok_len;   /* the current token's bytes */
    /* statements parsed so far (malloc'd, moved to the arena at the end) */
    md_stmt **stmts;
    int nstmts, cap;
} md_parser;
}

%code provides {
#define YYSTYPE MD_YYSTYPE
#define YYLTYPE MD_YYLTYPE

#define YYLLOC_DEFAULT(Cur, Rhs, N)                                      \
    do {                                                                \
        if (N) {                                                        \
            (Cur).line = YYRHSLOC(Rhs, 1).line;                         \
            (Cur).col = YYRHSLOC(Rhs, 1).col;                           \
            (Cur).end_line = YYRHSLOC(Rhs, N).end_line;                 \
            (Cur).end_col = YYRHSLOC(Rhs, N).end_col;                   \
        } else {                                                        \
            (Cur).line = (Cur).end_line = YYRHSLOC(Rhs, 0).end_line;    \
            (Cur).col = (Cur).end_col = YYRHSLOC(Rhs, 0).end_col;       \
        }                                                               \
    } while (0)

/* Node and statement constructors (src/1_front/parse.c).  Those returning a
   pointer return NULL after reporting an error (too deep, bad dims). */
md_ast *md_parser_leaf(md_parser *p, md_ast_kind kind, const char *text, md_loc loc);
md_ast *md_parser_chain(md_parser *p, md_ast *l, md_op op, md_loc oploc, md_ast *r);
md_ast *md_parser_neg(md_parser *p, md_loc oploc, md_ast *kid);
md_ast *md_parser_pow(md_parser *p, md_ast_kind kind, md_ast *l, md_loc oploc, md_ast *r);
md_ast *md_parser_transpose(md_parser *p, md_ast *kid, int count, md_loc oploc);
md_ast *md_parser_call(md_parser *p, const char *name, int primes, md_loc nameloc,
                       md_list *args, md_loc loc);
md_ast *md_parser_parens(md_parser *p, md_ast *inner, md_loc loc);
md_ast *md_parser_kron(md_parser *p, md_ast *l, md_loc oploc, md_ast *r);
md_list *md_parser_list(md_parser *p, void *first);
md_list *md_parser_push(md_parser *p, md_list *l, void *x);
md_decl_item *md_parser_item(md_parser *p, const char *name, md_loc loc,
                             const char *d0, md_loc l0, const char *d1, md_loc l1, int ndims);
md_stmt *md_parser_expr_stmt(md_parser *p, md_ast *e, md_loc loc);
md_stmt *md_parser_assign(md_parser *p, const char *name, md_loc nameloc, md_ast *e, md_loc loc);
md_stmt *md_parser_decl(md_parser *p, md_decl_kind kind, md_list *items, md_loc loc);
const char *md_parser_dim_product(md_parser *p, const char *a, const char *b);
void md_parser_add_stmt(md_parser *p, md_stmt *s);
}

%code {
#include <string.h>

#include "lexer.h"

/* 10 stack entries per nesting level is generous: a level of `(`, `-` or
   `a^-` takes 1 to 3, so a full stack means more than MD_MAX_DEPTH levels. */
#define YYMAXDEPTH (10 * MD_MAX_DEPTH)

static void md_yyerror(md_loc *loc, yyscan_t scanner, md_parser *p, const char *msg);

#define CHECK(x) do { if (!(x)) YYABORT; } while (0)
}

%union {
    md_ast *ast;
    const char *str;
    md_callname call;
    int count;
    int kind;
    md_list *list;
    md_decl_item *item;
    md_stmt *stmt;
}

%initial-action {
    @$.line = @$.col = @$.end_line = @$.end_col = 1;
}

%token <str> NUM "number" NAME "name"
%token <call> CALLNAME "primed name"
%token <count> PRIMES "'"
%token NEWLINE "end of line" SEMI ";" COMMA "," ASSIGN "=" LPAREN "(" RPAREN ")"
%token PLUS "+" MINUS "-" STAR "*" SLASH "/" KRON "⊗" HMUL ".*" HDIV "./"
%token CARET "^" ECARET ".^"
%token KW_SCALAR "scalar" KW_VECTOR "vector" KW_MATRIX "matrix"
%token KW_SYMMETRIC "symmetric" KW_FUNCTION "function"

%type <ast> expr sum prod hprod unary power postfix primary
%type <list> args items
%type <item> item
%type <kind> declkw
%type <str> dim
%type <stmt> stmt

%%

program:
    stmts
;

stmts:
    optstmt
|   stmts sep optstmt
;

sep:
    NEWLINE
|   SEMI
;

optstmt:
    %empty
|   stmt                        { md_parser_add_stmt(p, $1); }
;

stmt:
    expr                        { $$ = md_parser_expr_stmt(p, $1, @$); }
|   NAME "=" expr               { $$ = md_parser_assign(p, $1, @1, $3, @$); }
|   declkw items                { CHECK($$ = md_parser_decl(p, $1, $2, @$)); }
;

declkw:
    "scalar"                    { $$ = MD_DECL_SCALAR; }
|   "vector"                    { $$ = MD_DECL_VECTOR; }
|   "matrix"                    { $$ = MD_DECL_MATRIX; }
|   "symmetric"                 { $$ = MD_DECL_SYMMETRIC; }
|   "function"                  { $$ = MD_DECL_FUNCTION; }
;

items:
    item                        { $$ = md_parser_list(p, $1); }
|   items "," item              { $$ = md_parser_push(p, $1, $3); }
;

item:
    NAME                        { $$ = md_parser_item(p, $1, @1, NULL, @1, NULL, @1, 0); }
|   NAME "(" dim ")"            { $$ = md_parser_item(p, $1, @1, $3, @3, NULL, @3, 1); }
|   NAME "(" dim "," dim ")"    { $$ = md_parser_item(p, $1, @1, $3, @3, $5, @5, 2); }
;

/* a dimension: a name, or a product of names (vector v(n*p), the vec of
   an n×p matrix), kept as the text "n*p" */
dim:
    NAME
|   dim "*" NAME                { $$ = md_parser_dim_product(p, $1, $3); }
;

expr:
    sum
;

sum:
    prod
|   sum "+" prod                { CHECK($$ = md_parser_chain(p, $1, MD_OP_ADD, @2, $3)); }
|   sum "-" prod                { CHECK($$ = md_parser_chain(p, $1, MD_OP_SUB, @2, $3)); }
;

prod:
    hprod
|   prod "*" hprod              { CHECK($$ = md_parser_chain(p, $1, MD_OP_MUL, @2, $3)); }
|   prod "/" hprod              { CHECK($$ = md_parser_chain(p, $1, MD_OP_DIV, @2, $3)); }
|   prod "⊗" hprod              { CHECK($$ = md_parser_kron(p, $1, @2, $3)); }
;

hprod:
    unary
|   hprod ".*" unary            { CHECK($$ = md_parser_chain(p, $1, MD_OP_HMUL, @2, $3)); }
|   hprod "./" unary            { CHECK($$ = md_parser_chain(p, $1, MD_OP_HDIV, @2, $3)); }
;

unary:
    power
|   "-" unary                   { CHECK($$ = md_parser_neg(p, @1, $2)); }
|   "+" unary                   { $$ = $2; }
;

power:
    postfix
|   postfix "^" unary           { CHECK($$ = md_parser_pow(p, MD_AST_POW, $1, @2, $3)); }
|   postfix ".^" unary          { CHECK($$ = md_parser_pow(p, MD_AST_EPOW, $1, @2, $3)); }
;

postfix:
    primary
|   postfix PRIMES              { CHECK($$ = md_parser_transpose(p, $1, $2, @2)); }
;

primary:
    NUM                         { $$ = md_parser_leaf(p, MD_AST_NUM, $1, @1); }
|   NAME                        { $$ = md_parser_leaf(p, MD_AST_NAME, $1, @1); }
|   "(" expr ")"                { $$ = md_parser_parens(p, $2, @$); }
|   NAME "(" args ")"           { CHECK($$ = md_parser_call(p, $1, 0, @1, $3, @$)); }
|   CALLNAME "(" args ")"       { CHECK($$ = md_parser_call(p, $1.name, $1.count, @1, $3, @$)); }
;

args:
    expr                        { $$ = md_parser_list(p, $1); }
|   args "," expr               { $$ = md_parser_push(p, $1, $3); }
;

%%

/* Bison calls this only when its stack is full ("memory exhausted"). */
static void md_yyerror(md_loc *loc, yyscan_t scanner, md_parser *p, const char *msg)
{
    (void)scanner;
    if (strcmp(msg, "memory exhausted") == 0)
        md_error_at(p->src, *loc, "expression nested too deeply (more than %d levels)",
                    MD_MAX_DEPTH);
    else
        md_error_at(p->src, *loc, "%s", msg);
}

/* How the token that did not fit is named: with its text for numbers and
   names (cut at 40 bytes, at a character's start), quoted for
   punctuation, as written for the Unicode operators (`∘` rather than its
   `.*`). */
static void md_describe_unexpected(md_buf *b, const md_parser *p, yysymbol_kind_t t)
{
    const char *text = p->src->text + p->tok_off;
    size_t len = 0;
    while (len < p->tok_len && len + md_utf8_len(text + len, p->tok_len - len) <= 40)
        len += md_utf8_len(text + len, p->tok_len - len);
    const char *more = len < p->tok_len ? "..." : "";
    switch (t) {
    case YYSYMBOL_YYEOF:   md_buf_puts(b, "end of input"); break;
    case YYSYMBOL_NEWLINE: md_buf_puts(b, "end of line"); break;
    case YYSYMBOL_NUM:     md_buf_printf(b, "number '%.*s%s'", (int)len, text, more); break;
    case YYSYMBOL_NAME:
    case YYSYMBOL_CALLNAME: md_buf_printf(b, "name '%.*s%s'", (int)len, text, more); break;
    case YYSYMBOL_PRIMES:
        if ((unsigned char)text[0] >= 0x80) md_buf_printf(b, "'%.*s'", (int)len, text);
        else md_buf_puts(b, "\"'\"");
        break;
    default:
        if (p->tok_len && (unsigned char)text[0] >= 0x80) md_buf_printf(b, "'%.*s'", (int)len, text);
        else md_buf_printf(b, "'%s'", yysymbol_name(t));
        break;
    }
}

/*
 * "unexpected X, expected Y": Y summarises what LAC says could follow.
 * Any token that can start an operand becomes "an expression"; binary
 * operators become "an operator" (left out when ',' or ')' may follow,
 * where they are rarely what the user missed); newline, ';' and end of
 * input become "end of statement" (left out when an expression may
 * follow).  A lone expected name after a declaration keyword says so.
 */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, md_parser *p)
{
    (void)scanner;
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
    if (n < 0) return n;
    int has[YYNTOKENS] = { 0 };
    for (int i = 0; i < n; i++) has[exp[i]] = 1;

    const char *items[6];
    int k = 0;
    int expr = has[YYSYMBOL_NUM];
    int closing = has[YYSYMBOL_RPAREN] || has[YYSYMBOL_COMMA];
    int ops = has[YYSYMBOL_STAR] || has[YYSYMBOL_PLUS] || has[YYSYMBOL_HMUL] ||
              has[YYSYMBOL_CARET] || has[YYSYMBOL_PRIMES];
    md_buf name = { 0 };
    if (expr)
        items[k++] = "an expression";
    else if (has[YYSYMBOL_NAME]) {
        if (p->prev_kw) md_buf_printf(&name, "a name after '%s'", p->prev_kw);
        else md_buf_puts(&name, "a name");
        items[k++] = name.s;
    }
    if (ops && !expr && !closing) items[k++] = "an operator";
    if (has[YYSYMBOL_ASSIGN]) items[k++] = "'='";
    if (has[YYSYMBOL_COMMA]) items[k++] = "','";
    if (has[YYSYMBOL_RPAREN]) items[k++] = "')'";
    if (!expr && (has[YYSYMBOL_YYEOF] || has[YYSYMBOL_NEWLINE] || has[YYSYMBOL_SEMI]))
        items[k++] = "end of statement";

    md_buf msg = { 0 };
    md_buf_puts(&msg, "unexpected ");
    md_describe_unexpected(&msg, p, yypcontext_token(ctx));
    for (int i = 0; i < k; i++)
        md_buf_printf(&msg, "%s%s", i == 0 ? ", expected " : i == k - 1 ? " or " : ", ",
                      items[i]);
    md_error_at(p->src, *yypcontext_location(ctx), "%s", msg.s);
    md_buf_free(&msg);
    md_buf_free(&name);
    return 0;
}
