/*
 * md_ast.h -- the untyped syntax tree the parser builds.
 *
 * The parser (grammar/parser.y, grammar/lexer.l) only records what was
 * written and where.  Types, shapes and meaning are assigned later by
 * src/1_front/shape.c, which turns this tree into the typed expression graph of
 * md_expr.h.  Keeping the two apart means the parser never needs to know
 * which names are scalars, and error messages can point at any node.
 *
 * Chains of the same operator level (`a + b - c`, `A*B*C/2`, `A.*B./C`)
 * are stored n-ary, left to right, so that a 1 MB sum does not become a
 * tree 250 000 levels deep.  A parenthesised node is never extended.
 *
 * All nodes live in the program's arena.
 */
#ifndef MD_AST_H
#define MD_AST_H

#include "md_diag.h"
#include "md_util.h"

typedef enum md_ast_kind {
    MD_AST_NUM,       /* text: the literal as written (digits, '.', e/E exponent) */
    MD_AST_NAME,      /* name */
    MD_AST_CHAIN,     /* kids[0] ops[1] kids[1] ops[2] kids[2] ...; ops[0] unused;
                         all ops of one level: "+-", "* /" or ".* ./" */
    MD_AST_NEG,       /* -kids[0] (unary plus is dropped by the parser) */
    MD_AST_POW,       /* kids[0] ^ kids[1] */
    MD_AST_EPOW,      /* kids[0] .^ kids[1] */
    MD_AST_TRANSPOSE, /* kids[0]'  (count primes: x'' has count 2) */
    MD_AST_CALL       /* name(kids...); primes = number of ' written after the
                         name (f'(x) has primes 1); builtin or generic */
} md_ast_kind;

typedef enum md_op {
    MD_OP_NONE = 0,
    MD_OP_ADD,   /* + */
    MD_OP_SUB,   /* - */
    MD_OP_MUL,   /* * */
    MD_OP_DIV,   /* / */
    MD_OP_HMUL,  /* .* */
    MD_OP_HDIV   /* ./ */
} md_op;

typedef struct md_ast md_ast;
struct md_ast {
    md_ast_kind kind;
    md_loc loc;        /* whole node */
    md_loc oploc;      /* the operator token (NEG, POW, EPOW, TRANSPOSE) or the
                          name (CALL) */
    int parens;        /* written inside ( ) */
    const char *text;  /* NUM literal, NAME, CALL function name */
    int count;         /* TRANSPOSE: number of primes; CALL: primes after name */
    int nkids;
    md_ast **kids;
    md_op *ops;        /* CHAIN only: ops[i] joins kids[i-1] and kids[i] */
    md_loc *oplocs;    /* CHAIN only: location of ops[i] */
};

typedef enum md_decl_kind {
    MD_DECL_SCALAR,
    MD_DECL_VECTOR,
    MD_DECL_MATRIX,
    MD_DECL_SYMMETRIC,
    MD_DECL_FUNCTION
} md_decl_kind;

typedef struct md_decl_item {
    const char *name;
    md_loc loc;
    int ndims;                 /* 0, 1 or 2 dimension names given */
    const char *dims[2];
    md_loc dimlocs[2];
} md_decl_item;

typedef enum md_stmt_kind {
    MD_STMT_EXPR,    /* expr */
    MD_STMT_ASSIGN,  /* name = expr */
    MD_STMT_DECL     /* scalar a, b | vector x(n) | matrix X(n, p) | symmetric S(n) | function f */
} md_stmt_kind;

typedef struct md_stmt {
    md_stmt_kind kind;
    md_loc loc;
    const char *name;      /* ASSIGN */
    md_loc nameloc;        /* ASSIGN */
    md_ast *expr;          /* EXPR, ASSIGN */
    md_decl_kind decl;     /* DECL */
    int nitems;            /* DECL */
    md_decl_item *items;   /* DECL */
} md_stmt;

typedef struct md_program {
    md_source *src;
    md_arena arena;        /* owns every node, statement and string */
    int nstmts;
    md_stmt **stmts;
} md_program;

/*
 * Parses src.  On success returns a program (free it with
 * md_program_free) and on a syntax error reports it through md_error_at
 * and returns NULL.  Never crashes on any byte string: NUL bytes, invalid
 * UTF-8, 1 MB inputs and 100 000 nested parentheses give clean errors.
 */
md_program *md_parse(md_source *src);
void md_program_free(md_program *prog);

/* Is cp a character beyond ASCII that the lexer skips as a blank (U+00A0
   NO-BREAK SPACE, U+2009 THIN SPACE, U+FEFF the byte-order mark, ...)? */
int md_lex_blank(uint32_t cp);

/* Nesting limit for expressions; deeper input is an error, not a crash. */
enum { MD_MAX_DEPTH = 10000 };

#endif
