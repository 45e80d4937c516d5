/*
 * parse.c -- md_parse and the syntax tree constructors the grammar calls.
 *
 * md_parse wires the reentrant scanner (grammar/lexer.l) to the pure
 * parser (grammar/parser.y) through one md_parser struct, runs them over
 * the source buffer with its explicit length (NUL bytes included), and
 * always destroys the scanner, whatever happened.
 *
 * The constructors keep two promises of md_ast.h:
 *
 *  - Chains are n-ary.  `a + b - c` extends the left chain in place when
 *    it is a chain of the same level that was not written in parentheses.
 *    Arrays grow by doubling, copied within the arena (the old copy is
 *    wasted, at most as much again), so a 1 MB sum is linear.  The
 *    capacity is not stored: it is the smallest power of two >= nkids
 *    (at least 4), so it can be recomputed from nkids.
 *  - Nothing deeper than MD_MAX_DEPTH reaches later stages, which recurse.
 *    Each node is allocated inside an md_node that also records its depth
 *    (md_ast has no such field and other stages do not need one); the
 *    constructors report "expression nested too deeply" and return NULL.
 *    Parentheses add no node and so no depth; consecutive primes collapse
 *    into one TRANSPOSE node.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "parser.h"
#include "lexer.h"

typedef struct md_node {
    md_ast ast;   /* first, so an md_ast * is an md_node * */
    int depth;
} md_node;

static int md_depth(const md_ast *a)
{
    return ((const md_node *)a)->depth;
}

static md_ast *md_node_new(md_parser *p, md_ast_kind kind, md_loc loc, int depth)
{
    if (depth > MD_MAX_DEPTH) {
        md_error_at(p->src, loc, "expression nested too deeply (more than %d levels)",
                    MD_MAX_DEPTH);
        return NULL;
    }
    md_node *n = md_arena_alloc(&p->prog->arena, sizeof *n);
    n->ast.kind = kind;
    n->ast.loc = loc;
    n->depth = depth;
    return &n->ast;
}

static int md_max(int a, int b)
{
    return a > b ? a : b;
}

md_ast *md_parser_leaf(md_parser *p, md_ast_kind kind, const char *text, md_loc loc)
{
    md_ast *a = md_node_new(p, kind, loc, 1);
    a->text = text;
    return a;
}

/* A parenthesised expression: its location includes the parentheses, so
   that the source text of an operand (in messages, in the echoed
   function) is what was written. */
md_ast *md_parser_parens(md_parser *p, md_ast *inner, md_loc loc)
{
    inner->parens = 1;
    inner->loc = loc;
    return inner;
}

static md_op md_chain_level(md_op op)
{
    switch (op) {
    case MD_OP_SUB: return MD_OP_ADD;
    case MD_OP_DIV: return MD_OP_MUL;
    case MD_OP_HDIV: return MD_OP_HMUL;
    case MD_OP_NONE: case MD_OP_ADD: case MD_OP_MUL: case MD_OP_HMUL: return op;
    }
    return op;
}

static int md_chain_cap(int n)
{
    int cap = 4;
    while (cap < n) cap *= 2;
    return cap;
}

/* chain = l op r, extending l when it is an unparenthesised chain of op's level. */
md_ast *md_parser_chain(md_parser *p, md_ast *l, md_op op, md_loc oploc, md_ast *r)
{
    md_arena *ar = &p->prog->arena;
    md_ast *c;
    if (l->kind == MD_AST_CHAIN && !l->parens &&
        md_chain_level(l->ops[1]) == md_chain_level(op)) {
        c = l;
        md_node *cn = (md_node *)c;
        if (1 + md_depth(r) > cn->depth) {
            if (1 + md_depth(r) > MD_MAX_DEPTH) {
                md_error_at(p->src, r->loc,
                            "expression nested too deeply (more than %d levels)", MD_MAX_DEPTH);
                return NULL;
            }
            cn->depth = 1 + md_depth(r);
        }
        if (c->nkids == INT_MAX / 32) {
            md_error_at(p->src, oploc, "expression too long");
            return NULL;
        }
        int cap = md_chain_cap(c->nkids);
        if (c->nkids == cap) {
            size_t ncap = (size_t)cap * 2;
            md_ast **kids = md_arena_alloc(ar, ncap * sizeof *kids);
            md_op *ops = md_arena_alloc(ar, ncap * sizeof *ops);
            md_loc *oplocs = md_arena_alloc(ar, ncap * sizeof *oplocs);
            memcpy(kids, c->kids, (size_t)c->nkids * sizeof *kids);
            memcpy(ops, c->ops, (size_t)c->nkids * sizeof *ops);
            memcpy(oplocs, c->oplocs, (size_t)c->nkids * sizeof *oplocs);
            c->kids = kids;
            c->ops = ops;
            c->oplocs = oplocs;
        }
    } else {
        c = md_node_new(p, MD_AST_CHAIN, l->loc, 1 + md_max(md_depth(l), md_depth(r)));
        if (!c) return NULL;
        int cap = md_chain_cap(2);
        c->kids = md_arena_alloc(ar, (size_t)cap * sizeof *c->kids);
        c->ops = md_arena_alloc(ar, (size_t)cap * sizeof *c->ops);
        c->oplocs = md_arena_alloc(ar, (size_t)cap * sizeof *c->oplocs);
        c->kids[0] = l;
        c->ops[0] = MD_OP_NONE;
        c->oplocs[0] = l->loc;
        c->nkids = 1;
    }
    c->kids[c->nkids] = r;
    c->ops[c->nkids] = op;
    c->oplocs[c->nkids] = oploc;
    c->nkids++;
    c->loc = md_loc_span(c->loc, r->loc);
    return c;
}

md_ast *md_parser_neg(md_parser *p, md_loc oploc, md_ast *kid)
{
    md_ast *a = md_node_new(p, MD_AST_NEG, md_loc_span(oploc, kid->loc), 1 + md_depth(kid));
    if (!a) return NULL;
    a->oploc = oploc;
    a->nkids = 1;
    a->kids = md_arena_alloc(&p->prog->arena, sizeof *a->kids);
    a->kids[0] = kid;
    return a;
}

md_ast *md_parser_pow(md_parser *p, md_ast_kind kind, md_ast *l, md_loc oploc, md_ast *r)
{
    md_ast *a = md_node_new(p, kind, md_loc_span(l->loc, r->loc),
                            1 + md_max(md_depth(l), md_depth(r)));
    if (!a) return NULL;
    a->oploc = oploc;
    a->nkids = 2;
    a->kids = md_arena_alloc(&p->prog->arena, 2 * sizeof *a->kids);
    a->kids[0] = l;
    a->kids[1] = r;
    return a;
}

/* kid' with count primes; x' ' adds to x' instead of nesting. */
md_ast *md_parser_transpose(md_parser *p, md_ast *kid, int count, md_loc oploc)
{
    if (kid->kind == MD_AST_TRANSPOSE && !kid->parens) {
        if (kid->count > INT_MAX - count) {
            md_error_at(p->src, oploc, "too many primes");
            return NULL;
        }
        kid->count += count;
        kid->oploc = md_loc_span(kid->oploc, oploc);
        kid->loc = md_loc_span(kid->loc, oploc);
        return kid;
    }
    md_ast *a = md_node_new(p, MD_AST_TRANSPOSE, md_loc_span(kid->loc, oploc),
                            1 + md_depth(kid));
    if (!a) return NULL;
    a->oploc = oploc;
    a->count = count;
    a->nkids = 1;
    a->kids = md_arena_alloc(&p->prog->arena, sizeof *a->kids);
    a->kids[0] = kid;
    return a;
}

md_ast *md_parser_call(md_parser *p, const char *name, int primes, md_loc nameloc,
                       md_list *args, md_loc loc)
{
    int depth = 0;
    for (int i = 0; i < args->n; i++)
        depth = md_max(depth, md_depth(args->v[i]));
    md_ast *a = md_node_new(p, MD_AST_CALL, loc, 1 + depth);
    if (!a) return NULL;
    a->text = name;
    a->oploc = nameloc;
    a->count = primes;
    a->nkids = args->n;
    a->kids = (md_ast **)args->v;
    return a;
}

/* l ⊗ r: the call kron(l, r), named at the operator. */
md_ast *md_parser_kron(md_parser *p, md_ast *l, md_loc oploc, md_ast *r)
{
    md_list *args = md_parser_list(p, l);
    md_parser_push(p, args, r);
    return md_parser_call(p, "kron", 0, oploc, args, md_loc_span(l->loc, r->loc));
}

md_list *md_parser_list(md_parser *p, void *first)
{
    md_list *l = md_arena_alloc(&p->prog->arena, sizeof *l);
    l->cap = 4;
    l->v = md_arena_alloc(&p->prog->arena, (size_t)l->cap * sizeof *l->v);
    l->v[l->n++] = first;
    return l;
}

md_list *md_parser_push(md_parser *p, md_list *l, void *x)
{
    if (l->n == l->cap) {
        void **v = md_arena_alloc(&p->prog->arena, (size_t)l->cap * 2 * sizeof *v);
        memcpy(v, l->v, (size_t)l->n * sizeof *v);
        l->v = v;
        l->cap *= 2;
    }
    l->v[l->n++] = x;
    return l;
}

md_decl_item *md_parser_item(md_parser *p, const char *name, md_loc loc,
                             const char *d0, md_loc l0, const char *d1, md_loc l1, int ndims)
{
    md_decl_item *it = md_arena_alloc(&p->prog->arena, sizeof *it);
    it->name = name;
    it->loc = loc;
    it->ndims = ndims;
    it->dims[0] = d0;
    it->dims[1] = d1;
    it->dimlocs[0] = l0;
    it->dimlocs[1] = l1;
    return it;
}

const char *md_parser_dim_product(md_parser *p, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = md_arena_alloc(&p->prog->arena, la + lb + 2);
    memcpy(s, a, la);
    s[la] = '*';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

static md_stmt *md_stmt_new(md_parser *p, md_stmt_kind kind, md_loc loc)
{
    md_stmt *s = md_arena_alloc(&p->prog->arena, sizeof *s);
    s->kind = kind;
    s->loc = loc;
    return s;
}

md_stmt *md_parser_expr_stmt(md_parser *p, md_ast *e, md_loc loc)
{
    md_stmt *s = md_stmt_new(p, MD_STMT_EXPR, loc);
    s->expr = e;
    return s;
}

md_stmt *md_parser_assign(md_parser *p, const char *name, md_loc nameloc, md_ast *e, md_loc loc)
{
    md_stmt *s = md_stmt_new(p, MD_STMT_ASSIGN, loc);
    s->name = name;
    s->nameloc = nameloc;
    s->expr = e;
    return s;
}

static const char *md_decl_word(md_decl_kind k)
{
    static const char *const words[] = { "scalar", "vector", "matrix", "symmetric", "function" };
    return words[k];
}

/*
 * A declaration; the dimensions must fit the kind: none for scalars and
 * functions, at most one for vectors, and a symmetric matrix is square.
 */
md_stmt *md_parser_decl(md_parser *p, md_decl_kind kind, md_list *items, md_loc loc)
{
    md_stmt *s = md_stmt_new(p, MD_STMT_DECL, loc);
    s->decl = kind;
    s->nitems = items->n;
    s->items = md_arena_alloc(&p->prog->arena, (size_t)items->n * sizeof *s->items);
    for (int i = 0; i < items->n; i++) {
        md_decl_item *it = items->v[i];
        s->items[i] = *it;
        if (it->ndims > 0 && (kind == MD_DECL_SCALAR || kind == MD_DECL_FUNCTION)) {
            md_error_at(p->src, md_loc_span(it->dimlocs[0], it->dimlocs[it->ndims - 1]),
                        "a %s takes no dimensions: write '%s %s'", md_decl_word(kind),
                        md_decl_word(kind), it->name);
            return NULL;
        }
        if (it->ndims == 2 && kind == MD_DECL_VECTOR) {
            md_error_at(p->src, md_loc_span(it->dimlocs[0], it->dimlocs[1]),
                        "a vector takes one dimension: write 'vector %s(%s)'", it->name,
                        it->dims[0]);
            return NULL;
        }
        if (it->ndims == 2 && kind == MD_DECL_SYMMETRIC && strcmp(it->dims[0], it->dims[1]) != 0) {
            md_error_at(p->src, it->dimlocs[1],
                        "a symmetric matrix is square: write 'symmetric %s(%s)'", it->name,
                        it->dims[0]);
            return NULL;
        }
    }
    return s;
}

void md_parser_add_stmt(md_parser *p, md_stmt *s)
{
    if (p->nstmts == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 16;
        p->stmts = md_xrealloc(p->stmts, (size_t)p->cap * sizeof *p->stmts);
    }
    p->stmts[p->nstmts++] = s;
}

md_program *md_parse(md_source *src)
{
    md_program *prog = md_xcalloc(1, sizeof *prog);
    prog->src = src;
    if (src->len > INT_MAX / 2) {
        md_error(src, "program too large (%zu bytes)", src->len);
        md_program_free(prog);
        return NULL;
    }
    md_parser p = { .src = src, .prog = prog, .line = 1, .col = 1, .at_start = 1 };
    int nerrors = src->nerrors;

    yyscan_t scanner;
    if (md_yylex_init_extra(&p, &scanner) != 0) {
        md_error(src, "cannot start the scanner");
        md_program_free(prog);
        return NULL;
    }
    YY_BUFFER_STATE buf = md_yy_scan_bytes(src->len ? src->text : "", (int)src->len, scanner);
    int rc = md_yyparse(scanner, &p);
    md_yy_delete_buffer(buf, scanner);
    md_yylex_destroy(scanner);

    if (rc != 0 || src->nerrors != nerrors) {
        if (src->nerrors == nerrors) md_error(src, "syntax error");
        free(p.stmts);
        md_program_free(prog);
        return NULL;
    }
    prog->nstmts = p.nstmts;
    prog->stmts = md_arena_alloc(&prog->arena, (size_t)p.nstmts * sizeof *prog->stmts);
    if (p.nstmts) memcpy(prog->stmts, p.stmts, (size_t)p.nstmts * sizeof *prog->stmts);
    free(p.stmts);
    return prog;
}

void md_program_free(md_program *prog)
{
    if (!prog) return;
    md_arena_free(&prog->arena);
    free(prog);
}
