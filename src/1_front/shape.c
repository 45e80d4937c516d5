/*
 * shape.c -- name resolution and shape inference (see md_shape.h).
 *
 * Two passes over the statements.
 *
 * Pass 1 infers shapes.  Every dimension is a variable of a union-find
 * structure.  Variable 0 is the constant 1.  A dimension may carry a user
 * name (`matrix X(n, p)`: two different names never unify) and may be
 * marked "not one" (the dimensions of declared or defaulted vectors and
 * matrices: a vector is never silently a scalar).  Dimensions of the
 * constants eye, vector(c) and matrix(c) are free: they unify with
 * anything, including 1.  Each operator unifies what it requires (inner
 * dimensions of *, both dimensions of + and .*, rows and columns of det)
 * and a failed unification is reported at the operator with both shapes.
 * Whether an operand is a scalar (so that * scales and + broadcasts) is
 * decided from what is known when the operator is met, left to right, as
 * a reader would.
 *
 * Between the passes every dimension class gets its final id and name:
 * declared names first, then letters n, m, p, q, ... in order of first
 * appearance.
 *
 * Pass 2 builds md_expr nodes bottom-up through the simplifying
 * constructors, with the final shapes.  Long chains (a 1 MB sum) become one
 * n-ary constructor call, so the work stays linear.
 */
#include "md_shape.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "md_builtins.h"
#include "md_diag.h"
#include "md_simplify.h"

/* ---- dimension variables ---------------------------------------------- */

typedef struct md_dvar {
    int parent;
    const char *name;   /* user name, or NULL (later: a letter for messages) */
    int user;           /* the name is the user's (matrix X(n, p)) */
    int nonone;         /* may not be 1 */
    int final;          /* pass 2: the md_ctx dimension id */
    int fa, fb;         /* a product dimension fa*fb (vec, kron,
                           commutation, eye(n*p)); -1 for the others */
    int has_loc;        /* made by a constant (eye, vector(c), matrix(c)) or
                           named in a size argument (eye(n)) at loc */
    md_loc loc;
} md_dvar;

/* What a name stands for. */
typedef enum { MD_NAME_SYM, MD_NAME_BOUND, MD_NAME_FUNC } md_name_kind;

typedef struct md_name {
    const char *name;
    md_name_kind kind;
    md_loc loc;           /* where it was declared, bound or first used */
    int declared;
    md_symkind symkind;
    int r, c;             /* dimension variables (SYM, BOUND) */
    md_ast *bound;        /* BOUND: the expression */
    md_expr *value;       /* BOUND: built expression (pass 2) */
    int index;            /* SYM: ctx symbol; FUNC: ctx function */
} md_name;

typedef struct md_shape_entry {
    const md_ast *ast;
    int r, c;
} md_shape_entry;

typedef struct md_st {
    md_program *prog;
    md_source *src;
    md_ctx *ctx;
    md_dvar *dv;
    int ndv, dvcap;
    md_name *names;
    int nnames, namecap;
    md_shape_entry *map;  /* AST node -> shape, open addressing */
    uint32_t mapcap, mapcount;
    md_strmap namemap;    /* name -> its (latest) index in names */
    md_strmap dimmap;     /* user dimension name -> its dimension variable */
    int raw;              /* build the function as typed (raw_*), not canonical */
} md_st;

static int dv_new(md_st *st, const char *name, int nonone)
{
    if (st->ndv == st->dvcap) {
        st->dvcap = st->dvcap ? 2 * st->dvcap : 64;
        st->dv = md_xrealloc(st->dv, (size_t)st->dvcap * sizeof *st->dv);
    }
    st->dv[st->ndv] = (md_dvar){st->ndv, name, name != NULL, nonone, -1, -1, -1, 0, {0, 0, 0, 0}};
    return st->ndv++;
}

/* A dimension of a constant written at loc: free, remembered for the
   "size cannot be inferred" message. */
static int dv_const(md_st *st, md_loc loc)
{
    int d = dv_new(st, NULL, 0);
    st->dv[d].has_loc = 1;
    st->dv[d].loc = loc;
    return d;
}

static int dv_find(md_st *st, int d)
{
    while (st->dv[d].parent != d) {
        st->dv[d].parent = st->dv[st->dv[d].parent].parent;
        d = st->dv[d].parent;
    }
    return d;
}

/*
 * Product dimensions.  vec(X) has X_rows*X_cols rows, kron multiplies
 * both dimensions, eye(n*p) is written so.  A product is a variable too,
 * with two factors; its canonical form is the sorted list of the base
 * roots it multiplies (ones dropped), so n*q and q*n are equal, and a
 * product whose factors turned out to be 1 but one is that one.  Two
 * products unify when their lists agree after the factors they share are
 * cancelled and what is left pairs up (one factor each side), is 1, or is
 * a single free variable on one side (which becomes the other product).
 * Anything else is reported as a shape error, never guessed.
 */
typedef struct md_dlist {
    int v[64];
    int n;
} md_dlist;

static int dv_is_prod(md_st *st, int d) { return st->dv[d].fa >= 0; }

/* Appends d's base roots; -1 when there are too many to list. */
static int dv_flat(md_st *st, int d, md_dlist *l)
{
    d = dv_find(st, d);
    if (d == 0) return 0;
    if (dv_is_prod(st, d)) return dv_flat(st, st->dv[d].fa, l) || dv_flat(st, st->dv[d].fb, l) ? -1 : 0;
    if (l->n == (int)(sizeof l->v / sizeof l->v[0])) return -1;
    l->v[l->n++] = d;
    return 0;
}

static int dlist_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int dv_canon(md_st *st, int d, md_dlist *l)
{
    l->n = 0;
    if (dv_flat(st, d, l)) return -1;
    qsort(l->v, (size_t)l->n, sizeof l->v[0], dlist_cmp);
    return 0;
}

/* d's root, with a product of at most one factor that is not 1 replaced
   by that factor (or by 1). */
static int dv_norm(md_st *st, int d)
{
    d = dv_find(st, d);
    while (dv_is_prod(st, d)) {
        md_dlist l;
        if (dv_canon(st, d, &l) || l.n > 1) break;
        st->dv[d].parent = l.n ? l.v[0] : 0;
        d = dv_find(st, d);
    }
    return d;
}

static int dv_prod(md_st *st, int a, int b)
{
    a = dv_norm(st, a);
    b = dv_norm(st, b);
    if (a == 0) return b;
    if (b == 0) return a;
    int d = dv_new(st, NULL, 0);
    st->dv[d].fa = a;
    st->dv[d].fb = b;
    return d;
}

/* Unifies two base variables; returns 0 or -1 when they cannot be equal. */
static int dv_unify_base(md_st *st, int a, int b)
{
    a = dv_find(st, a);
    b = dv_find(st, b);
    if (a == b) return 0;
    if (a == 0 || b == 0) {
        int o = a == 0 ? b : a;
        if (st->dv[o].nonone || st->dv[o].name) return -1;
        st->dv[o].parent = 0;
        return 0;
    }
    if (st->dv[a].name && st->dv[b].name) return -1;
    /* keep the older variable as the root so names follow first appearance;
       a user name always wins */
    if (st->dv[b].name || (!st->dv[a].name && b < a)) {
        int t = a;
        a = b;
        b = t;
    }
    st->dv[b].parent = a;
    st->dv[a].nonone |= st->dv[b].nonone;
    return 0;
}

/* Unifies; returns 0 or -1 when the two cannot be equal. */
static int dv_unify(md_st *st, int a, int b)
{
    for (int round = 0; round < 64; round++) {
        a = dv_norm(st, a);
        b = dv_norm(st, b);
        if (a == b) return 0;
        if (!dv_is_prod(st, a) && !dv_is_prod(st, b)) return dv_unify_base(st, a, b);
        md_dlist la, lb, ra = {.n = 0}, rb = {.n = 0};
        if (dv_canon(st, a, &la) || dv_canon(st, b, &lb)) return -1;
        /* the multiset differences */
        int i = 0, j = 0;
        while (i < la.n || j < lb.n) {
            if (j == lb.n || (i < la.n && la.v[i] < lb.v[j])) ra.v[ra.n++] = la.v[i++];
            else if (i == la.n || lb.v[j] < la.v[i]) rb.v[rb.n++] = lb.v[j++];
            else i++, j++;
        }
        if (ra.n == 0 && rb.n == 0) {
            /* equal products: one class */
            if (dv_is_prod(st, b)) st->dv[b].parent = a;
            else st->dv[a].parent = b;
            return 0;
        }
        if (ra.n == 1 && rb.n == 1) {
            if (dv_unify_base(st, ra.v[0], rb.v[0])) return -1;
            continue;
        }
        if (ra.n == 0 || rb.n == 0) {
            md_dlist *r = ra.n ? &ra : &rb;
            for (int k = 0; k < r->n; k++)
                if (dv_unify_base(st, r->v[k], 0)) return -1;
            continue;
        }
        /* a free variable equal to a product (vec(x) = kron(y, z)) */
        int x = !dv_is_prod(st, a) ? a : !dv_is_prod(st, b) ? b : -1;
        if (x < 0 || st->dv[x].name) return -1;
        st->dv[x].parent = x == a ? b : a;
        return 0;
    }
    return -1;
}

static int dv_is_one(md_st *st, int d) { return dv_norm(st, d) == 0; }

/* ---- the AST -> shape map --------------------------------------------- */

static uint32_t ptr_hash(const void *p)
{
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17;
    x *= 0xed5ad4bbu;
    x ^= x >> 11;
    return (uint32_t)x;
}

static void map_put(md_st *st, const md_ast *a, int r, int c)
{
    if (2 * (st->mapcount + 1) > st->mapcap) {
        uint32_t ncap = st->mapcap ? 2 * st->mapcap : 1024;
        md_shape_entry *nm = md_xcalloc(ncap, sizeof *nm);
        for (uint32_t i = 0; i < st->mapcap; i++) {
            if (!st->map[i].ast) continue;
            uint32_t j = ptr_hash(st->map[i].ast) & (ncap - 1);
            while (nm[j].ast) j = (j + 1) & (ncap - 1);
            nm[j] = st->map[i];
        }
        free(st->map);
        st->map = nm;
        st->mapcap = ncap;
    }
    uint32_t j = ptr_hash(a) & (st->mapcap - 1);
    while (st->map[j].ast && st->map[j].ast != a) j = (j + 1) & (st->mapcap - 1);
    if (!st->map[j].ast) st->mapcount++;
    st->map[j] = (md_shape_entry){a, r, c};
}

static md_shape_entry *map_get(md_st *st, const md_ast *a)
{
    if (!st->mapcap) return NULL;
    uint32_t j = ptr_hash(a) & (st->mapcap - 1);
    while (st->map[j].ast) {
        if (st->map[j].ast == a) return &st->map[j];
        j = (j + 1) & (st->mapcap - 1);
    }
    return NULL;
}

/* ---- names ------------------------------------------------------------ */

/* The names of the built-in functions, i = 0, 1, ... until NULL: the
   table's elementwise functions and node kinds (md_builtins.def), then
   the constructors vector(c) and matrix(c). */
static const char *builtin_name(int i)
{
    if (i < MD_FN_GENERIC) return md_fns[i].name;
    i -= MD_FN_GENERIC;
    if (i < md_nops) return md_ops[i].name;
    i -= md_nops;
    static const char *const constructors[] = {"vector", "matrix", NULL};
    return i < 2 ? constructors[i] : NULL;
}

static int md_is_keyword(const char *name)
{
    return !strcmp(name, "scalar") || !strcmp(name, "vector") || !strcmp(name, "matrix") ||
           !strcmp(name, "symmetric") || !strcmp(name, "function");
}

int md_is_builtin(const char *name)
{
    for (int i = 0; builtin_name(i); i++)
        if (strcmp(builtin_name(i), name) == 0) return 1;
    return 0;
}

int md_is_reserved(const char *name)
{
    return md_is_builtin(name) || md_is_keyword(name) || !strcmp(name, "eye");
}

/*
 * The Greek letters: the ASCII name a program spells a letter with and
 * the letter itself, which the lexer reads as that name (grammar/lexer.l),
 * so `λ` and `lambda` are one variable and every printed result spells
 * it `lambda`.  The lower-case names are scalars by default; the capitals
 * start with a capital like any matrix name.  Each letter has one name
 * and each name one letter: the plain letters are the plain names (ε is
 * epsilon, φ phi, θ theta) and Unicode's symbol variants the `var` names
 * (ϵ U+03F5 varepsilon, ϕ U+03D5 varphi, ϑ U+03D1 vartheta), whatever a
 * LaTeX font draws for \epsilon and \phi.  Final ς is no name of its own
 * (the lexer suggests sigma), and µ MICRO SIGN is not μ.
 */
static const struct md_greek_letter {
    const char *name;
    uint32_t cp;
} md_greek[] = {
    {"alpha", 0x03B1}, {"beta", 0x03B2}, {"gamma", 0x03B3}, {"delta", 0x03B4},
    {"epsilon", 0x03B5}, {"varepsilon", 0x03F5}, {"zeta", 0x03B6}, {"eta", 0x03B7},
    {"theta", 0x03B8}, {"vartheta", 0x03D1}, {"iota", 0x03B9}, {"kappa", 0x03BA},
    {"lambda", 0x03BB}, {"mu", 0x03BC}, {"nu", 0x03BD}, {"xi", 0x03BE},
    {"omicron", 0x03BF}, {"pi", 0x03C0}, {"rho", 0x03C1}, {"sigma", 0x03C3},
    {"tau", 0x03C4}, {"upsilon", 0x03C5}, {"phi", 0x03C6}, {"varphi", 0x03D5},
    {"chi", 0x03C7}, {"psi", 0x03C8}, {"omega", 0x03C9},
    {"Alpha", 0x0391}, {"Beta", 0x0392}, {"Gamma", 0x0393}, {"Delta", 0x0394},
    {"Epsilon", 0x0395}, {"Zeta", 0x0396}, {"Eta", 0x0397}, {"Theta", 0x0398},
    {"Iota", 0x0399}, {"Kappa", 0x039A}, {"Lambda", 0x039B}, {"Mu", 0x039C},
    {"Nu", 0x039D}, {"Xi", 0x039E}, {"Omicron", 0x039F}, {"Pi", 0x03A0},
    {"Rho", 0x03A1}, {"Sigma", 0x03A3}, {"Tau", 0x03A4}, {"Upsilon", 0x03A5},
    {"Phi", 0x03A6}, {"Chi", 0x03A7}, {"Psi", 0x03A8}, {"Omega", 0x03A9},
};
#define MD_NGREEK (sizeof md_greek / sizeof md_greek[0])

/* A lower-case Greek name: a scalar by default. */
static int md_greek_scalar(size_t i)
{
    return md_greek[i].name[0] >= 'a' && md_greek[i].name[0] <= 'z';
}

const char *md_greek_name(uint32_t cp)
{
    for (size_t i = 0; i < MD_NGREEK; i++)
        if (md_greek[i].cp == cp) return md_greek[i].name;
    return NULL;
}

const char *md_near_greek(const char *name)
{
    size_t len = strlen(name);
    if (len < 3) return NULL;   /* eta, mu, nu, pi, xi: short names are anything */
    const char *best = NULL;
    int bd = (len <= 4 ? 1 : 2) + 1;
    for (size_t i = 0; i < MD_NGREEK; i++) {
        if (!md_greek_scalar(i)) continue;
        if (!strcmp(md_greek[i].name, name)) return NULL;
        int d = md_edit_distance(name, md_greek[i].name);
        if (d < bd) bd = d, best = md_greek[i].name;
    }
    return best;
}

md_symkind md_default_kind(const char *name)
{
    for (size_t i = 0; i < MD_NGREEK; i++)
        if (md_greek_scalar(i) && strcmp(md_greek[i].name, name) == 0) return MD_SYM_SCALAR;
    unsigned char c = (unsigned char)name[0];
    if (c >= 'A' && c <= 'Z') return MD_SYM_MATRIX;
    if (c >= 'h' && c <= 'z') return MD_SYM_VECTOR;
    return MD_SYM_SCALAR;
}

static md_name *name_find(md_st *st, const char *name)
{
    int i = md_strmap_get(&st->namemap, name);
    return i < 0 ? NULL : &st->names[i];
}

static md_name *name_add(md_st *st, const char *name, md_name_kind kind, md_loc loc)
{
    if (st->nnames == st->namecap) {
        st->namecap = st->namecap ? 2 * st->namecap : 32;
        st->names = md_xrealloc(st->names, (size_t)st->namecap * sizeof *st->names);
    }
    md_strmap_put(&st->namemap, name, st->nnames);
    md_name *n = &st->names[st->nnames++];
    memset(n, 0, sizeof *n);
    n->name = name;
    n->kind = kind;
    n->loc = loc;
    n->index = -1;
    return n;
}

static md_name *sym_add(md_st *st, const char *name, md_symkind kind, md_loc loc,
                        const char *d1, const char *d2)
{
    md_name *n = name_add(st, name, MD_NAME_SYM, loc);
    n->symkind = kind;
    switch (kind) {
    case MD_SYM_SCALAR: n->r = n->c = 0; break;
    case MD_SYM_VECTOR:
        n->r = dv_new(st, d1, 1);
        n->c = 0;
        break;
    case MD_SYM_MATRIX:
        n->r = dv_new(st, d1, 1);
        n->c = dv_new(st, d2, 1);
        break;
    case MD_SYM_SYMMETRIC:
        n->r = n->c = dv_new(st, d1, 1);
        break;
    }
    return n;
}

/* Dimension names: the same user name is the same dimension everywhere. */
static int named_dim(md_st *st, const char *name)
{
    int i = md_strmap_get(&st->dimmap, name);
    if (i >= 0) return dv_find(st, i);
    i = dv_new(st, name, 1);
    md_strmap_put(&st->dimmap, name, i);
    return i;
}

/* ---- error helpers ---------------------------------------------------- */

static void shape_str(md_st *st, int r, int c, char *buf, size_t n);

static const char *dim_str(md_st *st, int d, char *buf, size_t n)
{
    d = dv_norm(st, d);
    md_dlist l;
    if (dv_is_prod(st, d) && !dv_canon(st, d, &l)) {
        size_t k = 0;
        buf[0] = 0;
        for (int i = 0; i < l.n && k < n; i++) {
            char one[64];
            dim_str(st, l.v[i], one, sizeof one);
            k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? "*" : "", one);
        }
        return buf;
    }
    if (d == 0) snprintf(buf, n, "1");
    else if (st->dv[d].name) snprintf(buf, n, "%s", st->dv[d].name);
    else snprintf(buf, n, "?%d", d);
    return buf;
}

/* "scalar", "vector(n)", "row vector(1×n)", "n×p matrix" */
static void shape_str(md_st *st, int r, int c, char *buf, size_t n)
{
    char a[64], b[64];
    int r1 = dv_is_one(st, r), c1 = dv_is_one(st, c);
    if (r1 && c1) snprintf(buf, n, "a scalar");
    else if (c1) snprintf(buf, n, "a vector (%s)", dim_str(st, r, a, sizeof a));
    else if (r1) snprintf(buf, n, "a row vector (1×%s)", dim_str(st, c, b, sizeof b));
    else snprintf(buf, n, "a matrix (%s×%s)", dim_str(st, r, a, sizeof a), dim_str(st, c, b, sizeof b));
}

/* Unnamed dimensions print as ?N in messages; give them provisional names
   first so messages read "n×m" instead. */
static void name_dims_for_message(md_st *st);

/* ---- pass 1 ----------------------------------------------------------- */

typedef struct md_shp {
    int r, c;
} md_shp;

static int infer(md_st *st, md_ast *a, md_shp *out);

static int is_scalar(md_st *st, md_shp s) { return dv_is_one(st, s.r) && dv_is_one(st, s.c); }

/* Try to make s a scalar (constants with free dims can be); 0 on success. */
static int make_scalar(md_st *st, md_shp s)
{
    if (is_scalar(st, s)) return 0;
    int r = dv_norm(st, s.r), c = dv_norm(st, s.c);
    if ((r && (st->dv[r].nonone || st->dv[r].name)) || (c && (st->dv[c].nonone || st->dv[c].name)))
        return -1;
    return dv_unify(st, s.r, 0) || dv_unify(st, s.c, 0) ? -1 : 0;
}

/* 1 when a is an integer literal (with any number of unary minuses) that
   fits in 9 digits, setting *k; 2 when it is an integer too long for
   that; 0 when it is not an integer literal. */
static int literal_value(const char *text, mpq_t q);

static int integer_literal(md_ast *a, long *k)
{
    int neg = 0;
    while (a->kind == MD_AST_NEG) {
        neg = !neg;
        a = a->kids[0];
    }
    if (a->kind != MD_AST_NUM) return 0;
    /* 2, 0004, and also 2.0, 2. and 20e-1: literals are exact rationals */
    mpq_t q;
    mpq_init(q);
    int rc = literal_value(a->text, q) < 0 ? 2 : mpz_cmp_ui(mpq_denref(q), 1) != 0 ? 0
             : mpz_sizeinbase(mpq_numref(q), 10) > 9                ? 2
                                                                    : 1;
    if (rc == 1) *k = mpz_get_si(mpq_numref(q)) * (neg ? -1 : 1);
    mpq_clear(q);
    return rc;
}

static char *loc_text(const md_source *src, md_loc loc);

/* The operand's source text when it is short, else "the operand". */
static const char *describe_loc(md_st *st, md_loc loc, char *buf, size_t n)
{
    char *t = loc_text(st->src, loc);
    if (strlen(t) <= 24) snprintf(buf, n, "'%s'", t);
    else snprintf(buf, n, "the operand");
    free(t);
    return buf;
}

/*
 * Why an operand that must be a scalar is not, when the answer is "by its
 * first letter": for the bare name of an undeclared variable, a sentence
 * for the end of the error naming the default-type rule and the
 * declaration that makes it a scalar ("sum(x.^2)/n": 'n' is a vector
 * because undeclared names starting with h-z are).  Appended to buf;
 * nothing for any other operand.  Only where a scalar is required (a
 * divisor, an exponent, a size): in other shape errors both shapes are
 * usually what the user meant.
 */
static const char *default_note(md_st *st, md_loc loc, char *buf, size_t n)
{
    char *t = loc_text(st->src, loc);
    const md_name *nm = name_find(st, t);
    size_t len = strlen(buf);
    if (nm && nm->kind == MD_NAME_SYM && !nm->declared && len < n) {
        md_symkind k = md_default_kind(t);
        const char *rule = k == MD_SYM_MATRIX   ? "starting with A-Z are matrices"
                           : k == MD_SYM_VECTOR ? "starting with h-z are vectors"
                                                : "starting with a-g, and Greek names, are scalars";
        const char *kind = k == MD_SYM_MATRIX ? "matrix" : k == MD_SYM_VECTOR ? "vector" : "scalar";
        const char *other = k == MD_SYM_SCALAR ? "vector" : "scalar";
        snprintf(buf + len, n - len, "%s'%s' is a %s because undeclared names %s; declare '%s %s' for a %s",
                 len ? "; " : ". ", t, kind, rule, other, t, other);
    }
    free(t);
    return buf;
}

static const char *describe(md_st *st, md_ast *a, char *buf, size_t n)
{
    return describe_loc(st, a->loc, buf, n);
}

static int shape_error(md_st *st, md_loc at, const char *what, md_loc l, md_shp ls, md_loc r, md_shp rs)
{
    char d1[64], d2[64], s1[96], s2[96];
    name_dims_for_message(st);
    shape_str(st, ls.r, ls.c, s1, sizeof s1);
    shape_str(st, rs.r, rs.c, s2, sizeof s2);
    md_error_at(st->src, at, "%s: %s is %s but %s is %s", what, describe_loc(st, l, d1, sizeof d1), s1,
                describe_loc(st, r, d2, sizeof d2), s2);
    return -1;
}

static int suggest(md_st *st, const char *name, md_loc loc)
{
    const char *best = NULL;
    /* a hint only when the name is long enough for a typo to be likely */
    size_t len = strlen(name);
    int bd = len <= 1 ? 0 : len <= 4 ? 2 : 3;
    /* the nearest; between equally near ones, one of the name's length
       (tahn: tanh, a transposition, rather than tan) */
    for (int i = 0; builtin_name(i); i++) {
        int d = md_edit_distance(name, builtin_name(i));
        if (d < bd || (d == bd && best && strlen(builtin_name(i)) == len && strlen(best) != len))
            bd = d, best = builtin_name(i);
    }
    for (int i = 0; i < st->nnames; i++)
        if (st->names[i].kind == MD_NAME_FUNC) {
            int d = md_edit_distance(name, st->names[i].name);
            if (d < bd || (d == bd && best && strlen(st->names[i].name) == len && strlen(best) != len))
                bd = d, best = st->names[i].name;
        }
    if (!strcmp(name, "trace")) best = "tr";
    if (!strcmp(name, "ln")) best = "log";
    if (!strcmp(name, "norm") || !strcmp(name, "fro")) best = "norm2";
    if (!strcmp(name, "asin")) best = "arcsin";
    if (!strcmp(name, "acos")) best = "arccos";
    if (!strcmp(name, "atan")) best = "arctan";
    if (!strcmp(name, "inverse")) best = "inv";
    if (best)
        md_error_at(st->src, loc, "unknown function '%s'; did you mean '%s'?", name, best);
    else
        md_error_at(st->src, loc, "unknown function '%s' (declare it with 'function %s' for a generic elementwise function)", name, name);
    return -1;
}

static int use_name(md_st *st, md_ast *a, md_shp *out)
{
    const char *name = a->text;
    md_name *n = name_find(st, name);
    if (n && n->kind == MD_NAME_FUNC) {
        md_error_at(st->src, a->loc, "'%s' is a function; call it as %s(...)", name, name);
        return -1;
    }
    if (!n && strcmp(name, "eye") == 0) {
        int d = dv_const(st, a->loc);
        *out = (md_shp){d, d};
        return 0;
    }
    if (!n && md_is_keyword(name)) {
        md_error_at(st->src, a->loc, "'%s' is a keyword and cannot name a variable", name);
        return -1;
    }
    if (!n && md_is_builtin(name)) {
        md_error_at(st->src, a->loc, "'%s' is a built-in function and cannot name a variable; call it as %s(...)",
                    name, name);
        return -1;
    }
    if (!n) n = sym_add(st, name, md_default_kind(name), a->loc, NULL, NULL);
    *out = (md_shp){n->r, n->c};
    return 0;
}

/* A size argument: a dimension name (eye(n)) or a product of them
   (eye(n*p)); its dimension variable, or -1 after a message. */
static int size_arg(md_st *st, md_ast *d)
{
    /* dimension names are a namespace of their own: q may name both a
       vector and a dimension */
    if (d->kind == MD_AST_NAME) {
        int k = named_dim(st, d->text);
        if (!st->dv[k].has_loc) {
            st->dv[k].has_loc = 1;
            st->dv[k].loc = d->loc;
        }
        return k;
    }
    if (d->kind == MD_AST_CHAIN) {
        int ok = 1;
        for (int i = 1; i < d->nkids; i++) ok &= d->ops[i] == MD_OP_MUL;
        if (ok) {
            int p = 0;
            for (int i = 0; i < d->nkids; i++) {
                int k = size_arg(st, d->kids[i]);
                if (k < 0) return -1;
                p = dv_prod(st, p, k);
            }
            return p;
        }
    }
    md_error_at(st->src, d->loc, "a size is a dimension name, as declared in 'vector x(n)' or "
                "'matrix X(n, p)', or a product of them (n*p)");
    return -1;
}

static int final_dim(md_st *st, int d);

/* The final dimension of a size argument (pass 2). */
static int size_final(md_st *st, md_ast *d)
{
    if (d->kind == MD_AST_NAME) return final_dim(st, named_dim(st, d->text));
    int f = MD_DIM_ONE;
    for (int i = 0; i < d->nkids; i++) f = md_ctx_dim_mul(st->ctx, f, size_final(st, d->kids[i]));
    return f;
}

static int infer_call(md_st *st, md_ast *a, md_shp *out)
{
    const char *f = a->text;
    md_name *n = name_find(st, f);
    if (n && n->kind != MD_NAME_FUNC) {
        md_error_at(st->src, a->oploc, "'%s' is a %s, not a function", f,
                    n->kind == MD_NAME_BOUND ? "named expression" : "variable");
        return -1;
    }
    int generic = n != NULL;
    if (!generic && !md_is_builtin(f) && strcmp(f, "eye") != 0) return suggest(st, f, a->oploc);
    if (a->count > 0 && !generic) {
        md_error_at(st->src, a->oploc,
                    "only declared generic functions can be primed; '%s' is built in (its derivative is applied automatically)", f);
        return -1;
    }
    if (!generic && !strcmp(f, "commutation")) {
        /* commutation(m, n): K with K*vec(A) = vec(A') for A m x n */
        if (a->nkids != 2) {
            md_error_at(st->src, a->loc, "commutation takes two dimension names: commutation(m, n) is the "
                        "mn×mn matrix K with K*vec(A) = vec(A') for an m×n matrix A");
            return -1;
        }
        int dm = size_arg(st, a->kids[0]), dn = dm < 0 ? -1 : size_arg(st, a->kids[1]);
        if (dn < 0) return -1;
        int p = dv_prod(st, dm, dn);
        *out = (md_shp){p, p};
        return 0;
    }
    /* explicit sizes: eye(n), vector(c, n), matrix(c, n, p) */
    int ndims = !generic && !strcmp(f, "eye") ? 1 : !generic && !strcmp(f, "vector") ? 1
              : !generic && !strcmp(f, "matrix") ? 2 : 0;
    int nvalues = !generic && !strcmp(f, "eye") ? 0 : !generic && !strcmp(f, "kron") ? 2 : 1;
    if (a->nkids != nvalues && !(ndims && a->nkids == nvalues + ndims)) {
        if (!strcmp(f, "eye"))
            md_error_at(st->src, a->loc, "eye takes no argument (its size is inferred) or one dimension name: eye(n) or eye(n*p)");
        else if (ndims)
            md_error_at(st->src, a->loc, "%s takes 1 argument (the value) or %d: %s", f, 1 + ndims,
                        ndims == 1 ? "vector(c, n)" : "matrix(c, n, p)");
        else
            md_error_at(st->src, a->loc, "%s takes %d argument%s, %d given", f, nvalues, nvalues > 1 ? "s" : "", a->nkids);
        return -1;
    }
    int sized[2] = {-1, -1};
    for (int k = 0; k < ndims && a->nkids > nvalues; k++)
        if ((sized[k] = size_arg(st, a->kids[nvalues + k])) < 0) return -1;
    if (!strcmp(f, "eye")) {
        int d = sized[0] >= 0 ? sized[0] : dv_const(st, a->loc);
        *out = (md_shp){d, d};
        return 0;
    }
    md_shp s;
    if (infer(st, a->kids[0], &s)) return -1;
    char d1[64], s1[96];
    /* elementwise: the argument's shape */
    if (generic || md_fn_by_name(f) != MD_FN_GENERIC) {
        *out = s;
        return 0;
    }
    const md_op_info *op = md_op_by_name(f);
    switch (op ? op->shape : MD_SHP_DIAG) {
    case MD_SHP_SCALAR:
        *out = (md_shp){0, 0};
        return 0;
    case MD_SHP_SQUARE_SCALAR:
    case MD_SHP_SQUARE:
        if (dv_unify(st, s.r, s.c)) {
            name_dims_for_message(st);
            shape_str(st, s.r, s.c, s1, sizeof s1);
            md_error_at(st->src, a->loc, "%s needs a square matrix, but %s is %s", f,
                        describe(st, a->kids[0], d1, sizeof d1), s1);
            return -1;
        }
        *out = op->shape == MD_SHP_SQUARE ? s : (md_shp){0, 0};
        return 0;
    case MD_SHP_VEC:
        *out = (md_shp){dv_prod(st, s.r, s.c), 0};
        return 0;
    case MD_SHP_KRON: {
        md_shp t;
        if (infer(st, a->kids[1], &t)) return -1;
        *out = (md_shp){dv_prod(st, s.r, t.r), dv_prod(st, s.c, t.c)};
        return 0;
    }
    case MD_SHP_COLUMN:
    case MD_SHP_COLUMN_SCALAR: {
        /* softmax, logsumexp: of a column vector (a scalar is one of length 1) */
        int c = dv_norm(st, s.c);
        if (c && (st->dv[c].nonone || st->dv[c].name || dv_unify(st, s.c, 0))) {
            name_dims_for_message(st);
            shape_str(st, s.r, s.c, s1, sizeof s1);
            md_error_at(st->src, a->loc, "%s needs a column vector, but %s is %s", f,
                        describe(st, a->kids[0], d1, sizeof d1), s1);
            return -1;
        }
        *out = op->shape == MD_SHP_COLUMN ? s : (md_shp){0, 0};
        return 0;
    }
    case MD_SHP_COMM:   /* handled above */
    case MD_SHP_DIAG: break;
    }
    if (op) {   /* MD_SHP_DIAG */
        if (is_scalar(st, s)) *out = s;
        else if (dv_is_one(st, s.c)) *out = (md_shp){s.r, s.r};
        else if (dv_is_one(st, s.r)) {
            name_dims_for_message(st);
            md_error_at(st->src, a->loc, "diag needs a column vector or a square matrix, but %s is a row vector",
                        describe(st, a->kids[0], d1, sizeof d1));
            return -1;
        } else {
            if (dv_unify(st, s.r, s.c)) {
                name_dims_for_message(st);
                shape_str(st, s.r, s.c, s1, sizeof s1);
                md_error_at(st->src, a->loc, "diag needs a column vector or a square matrix, but %s is %s",
                            describe(st, a->kids[0], d1, sizeof d1), s1);
                return -1;
            }
            *out = (md_shp){s.r, 0};
        }
        return 0;
    }
    /* vector(c), matrix(c) */
    if (make_scalar(st, s)) {
        name_dims_for_message(st);
        shape_str(st, s.r, s.c, s1, sizeof s1);
        char why[200] = "";
        default_note(st, a->kids[0]->loc, why, sizeof why);
        md_error_at(st->src, a->kids[0]->loc, "the argument of %s must be a scalar, but it is %s%s", f, s1,
                    why);
        return -1;
    }
    if (!strcmp(f, "vector")) *out = (md_shp){sized[0] >= 0 ? sized[0] : dv_const(st, a->loc), 0};
    else *out = (md_shp){sized[0] >= 0 ? sized[0] : dv_const(st, a->loc),
                         sized[1] >= 0 ? sized[1] : dv_const(st, a->loc)};
    return 0;
}

static int infer_chain(md_st *st, md_ast *a, md_shp *out)
{
    md_shp acc;
    if (infer(st, a->kids[0], &acc)) return -1;
    md_loc left = a->kids[0]->loc;
    for (int i = 1; i < a->nkids; i++) {
        md_shp k;
        md_ast *kid = a->kids[i];
        if (infer(st, kid, &k)) return -1;
        md_op op = a->ops[i];
        md_loc at = a->oplocs[i];
        int as = is_scalar(st, acc), ks = is_scalar(st, k);
        switch (op) {
        case MD_OP_ADD:
        case MD_OP_SUB:
        case MD_OP_HMUL:
        case MD_OP_HDIV:
            if (as && !ks) acc = k;
            else if (!as && !ks) {
                if (dv_unify(st, acc.r, k.r) || dv_unify(st, acc.c, k.c))
                    return shape_error(st, at,
                                       op == MD_OP_ADD   ? "cannot add"
                                       : op == MD_OP_SUB ? "cannot subtract"
                                                         : "elementwise operands differ in shape",
                                       left, acc, kid->loc, k);
            }
            break;
        case MD_OP_MUL:
            if (as) acc = k;
            else if (!ks) {
                if (dv_unify(st, acc.c, k.r))
                    return shape_error(st, at, "inner dimensions differ in '*'", left, acc, kid->loc, k);
                acc.c = k.c;
            }
            break;
        case MD_OP_DIV:
            if (make_scalar(st, k)) {
                char d1[64], s1[96];
                name_dims_for_message(st);
                shape_str(st, k.r, k.c, s1, sizeof s1);
                char why[200] = "";
                default_note(st, kid->loc, why, sizeof why);
                md_error_at(st->src, at,
                            "division by a %s: %s is %s; '/' divides by scalars only (use './' "
                            "for elementwise division%s)%s",
                            dv_is_one(st, k.c) || dv_is_one(st, k.r) ? "vector" : "matrix",
                            describe(st, kid, d1, sizeof d1), s1,
                            dv_is_one(st, k.c) || dv_is_one(st, k.r) ? "" : " or inv() for the inverse",
                            why);
                return -1;
            }
            break;
        case MD_OP_NONE: break;
        }
        /* the left operand of the next operator is the chain so far */
        left = md_loc_span(a->kids[0]->loc, kid->loc);
        map_put(st, kid, k.r, k.c);
    }
    *out = acc;
    return 0;
}

static int infer(md_st *st, md_ast *a, md_shp *out)
{
    md_shp s, e;
    char d1[64], s1[96];
    switch (a->kind) {
    case MD_AST_NUM: *out = (md_shp){0, 0}; break;
    case MD_AST_NAME:
        if (use_name(st, a, out)) return -1;
        break;
    case MD_AST_CHAIN:
        if (infer_chain(st, a, out)) return -1;
        break;
    case MD_AST_NEG:
        if (infer(st, a->kids[0], out)) return -1;
        break;
    case MD_AST_TRANSPOSE:
        if (infer(st, a->kids[0], &s)) return -1;
        *out = a->count % 2 ? (md_shp){s.c, s.r} : s;
        break;
    case MD_AST_POW:
    case MD_AST_EPOW:
        if (infer(st, a->kids[0], &s) || infer(st, a->kids[1], &e)) return -1;
        if (a->kind == MD_AST_EPOW) {
            if (!is_scalar(st, e)) {
                if (is_scalar(st, s)) s = e;
                else if (dv_unify(st, s.r, e.r) || dv_unify(st, s.c, e.c))
                    return shape_error(st, a->oploc, "elementwise power operands differ in shape",
                                       a->kids[0]->loc, s, a->kids[1]->loc, e);
            }
            *out = s;
            break;
        }
        if (make_scalar(st, e)) {
            name_dims_for_message(st);
            shape_str(st, e.r, e.c, s1, sizeof s1);
            char why[200] = "";
            default_note(st, a->kids[1]->loc, why, sizeof why);
            md_error_at(st->src, a->kids[1]->loc,
                        "the exponent of '^' must be a scalar, but it is %s (use '.^' for elementwise powers)%s", s1,
                        why);
            return -1;
        }
        if (!is_scalar(st, s)) {
            long k = 0;
            int lit = integer_literal(a->kids[1], &k);
            if (lit == 0) {
                md_error_at(st->src, a->oploc,
                            "a matrix power needs an integer exponent; use '.^' for elementwise powers");
                return -1;
            }
            if (lit == 2 || k > MD_MPOW_MAX || k < -MD_MPOW_MAX) {
                char buf[64];
                md_error_at(st->src, a->kids[1]->loc, "matrix power %s is too large (at most %d in absolute value)",
                            describe(st, a->kids[1], buf, sizeof buf), MD_MPOW_MAX);
                return -1;
            }
            if (dv_unify(st, s.r, s.c)) {
                name_dims_for_message(st);
                shape_str(st, s.r, s.c, s1, sizeof s1);
                md_error_at(st->src, a->oploc, "a matrix power needs a square matrix, but %s is %s",
                            describe(st, a->kids[0], d1, sizeof d1), s1);
                return -1;
            }
        }
        *out = s;
        break;
    case MD_AST_CALL:
        if (infer_call(st, a, out)) return -1;
        break;
    }
    map_put(st, a, out->r, out->c);
    return 0;
}

/* ---- naming dimensions ------------------------------------------------ */

static void name_dims_for_message(md_st *st)
{
    static const char *const pool[] = {"n", "m", "p", "q", "r", "s", "t", "k", "l", "u", "v", "w", NULL};
    int next = 0, extra = 0;
    /* the names dimension classes have already */
    md_strmap taken = {0};
    for (int i = 1; i < st->ndv; i++)
        if (st->dv[i].name && dv_find(st, i) == i) md_strmap_put(&taken, st->dv[i].name, i);
    for (int i = 1; i < st->ndv; i++) {
        int r = dv_find(st, i);
        if (r == 0 || st->dv[r].name || dv_is_prod(st, r)) continue;
        const char *nm = NULL;
        while (!nm) {
            if (pool[next]) {
                if (md_strmap_get(&taken, pool[next]) < 0) nm = pool[next];
                next++;
            } else {
                char buf[32];
                snprintf(buf, sizeof buf, "n%d", ++extra);
                if (md_strmap_get(&taken, buf) < 0) nm = md_arena_strdup(&st->prog->arena, buf);
            }
        }
        st->dv[r].name = nm;
        md_strmap_put(&taken, nm, r);
    }
    md_strmap_free(&taken);
}

/* Every size must follow from a variable: the dimensions of eye,
   vector(c) and matrix(c) are inferred from what they are combined with,
   and one that nothing fixes (sum(vector(1)), tr(eye)) would make the
   function's value depend on a size nobody gave.  Reported at the first
   constant of that size. */
static int undetermined_sizes(md_st *st)
{
    char *anchored = md_xcalloc((size_t)st->ndv, 1);
    anchored[0] = 1;
    for (int i = 0; i < st->nnames; i++) {
        md_name *n = &st->names[i];
        if (n->kind != MD_NAME_SYM) continue;
        /* a variable fixes its dimensions, and the factors of a product
           one (vector v(n*p) fixes n and p) */
        for (int k = 0; k < 2; k++) {
            int r = dv_norm(st, k ? n->c : n->r);
            anchored[r] = 1;
            md_dlist l;
            if (dv_is_prod(st, r) && !dv_canon(st, r, &l))
                for (int j = 0; j < l.n; j++) anchored[l.v[j]] = 1;
        }
    }
    int rc = 0;
    for (int i = 1; i < st->ndv && !rc; i++) {
        if (!st->dv[i].has_loc) continue;
        /* a product is fixed when each of its factors is; the first that
           is not is the one to report */
        md_dlist l = {.n = 0};
        int r = dv_norm(st, i);
        if (dv_is_prod(st, r)) dv_canon(st, r, &l);
        else l.v[l.n++] = r;
        for (int k = 0; k < l.n && !rc; k++) {
            r = l.v[k];
            if (anchored[r]) continue;
            if (st->dv[r].user)
                md_error_at(st->src, st->dv[i].loc,
                            "the dimension '%s' belongs to no variable, so its size is unknown "
                            "(declare one, as in 'vector x(%s)')", st->dv[r].name, st->dv[r].name);
            else
                md_error_at(st->src, st->dv[i].loc,
                            "the size of this constant cannot be inferred: no variable fixes it "
                            "(give it, as in eye(n), vector(1, n) or matrix(1, n, p), with n and p "
                            "named in a declaration such as 'matrix X(n, p)')");
            rc = -1;
        }
    }
    free(anchored);
    return rc;
}

/* ---- pass 2 ----------------------------------------------------------- */

static int final_dim(md_st *st, int d)
{
    d = dv_norm(st, d);
    if (d == 0) return MD_DIM_ONE;
    if (st->dv[d].final < 0) {
        md_dlist l;
        if (dv_is_prod(st, d) && !dv_canon(st, d, &l)) {
            int f = MD_DIM_ONE;
            for (int i = 0; i < l.n; i++) f = md_ctx_dim_mul(st->ctx, f, final_dim(st, l.v[i]));
            st->dv[d].final = f;
        } else {
            st->dv[d].final = md_ctx_add_dim(st->ctx, st->dv[d].name, st->dv[d].user);
        }
    }
    return st->dv[d].final;
}

static md_expr *build(md_st *st, md_ast *a);

/* The exact value of a number literal (digits, an optional point, an
   optional exponent) into q; -1 when its exponent is beyond +-10000. */
static int literal_value(const char *text, mpq_t q)
{
    const char *p = text;
    mpz_t num;
    long frac = 0, ex = 0;
    int seen_dot = 0;
    /* the digits without the point, converted at once: mpz_set_str is
       subquadratic, digit-by-digit multiplication took 53 s for a
       literal of a million digits */
    char *digits = md_xmalloc(strlen(p) + 2);
    size_t nd = 0;
    for (; *p && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            seen_dot = 1;
            continue;
        }
        digits[nd++] = *p;
        if (seen_dot) frac++;
    }
    if (nd == 0) digits[nd++] = '0';
    digits[nd] = 0;
    mpz_init_set_str(num, digits, 10);
    free(digits);
    if (*p) {
        p++;
        int neg = *p == '-';
        if (*p == '+' || *p == '-') p++;
        for (; *p; p++) {
            ex = ex * 10 + (*p - '0');
            if (ex > 100000) break;
        }
        if (neg) ex = -ex;
    }
    ex -= frac;
    if (ex > 10000 || ex < -10000) {
        mpz_clear(num);
        return -1;
    }
    mpz_t pw;
    mpz_init(pw);
    mpz_ui_pow_ui(pw, 10, (unsigned long)(ex < 0 ? -ex : ex));
    mpq_set_z(q, num);
    if (ex >= 0) mpz_mul(mpq_numref(q), mpq_numref(q), pw);
    else mpz_set(mpq_denref(q), pw);
    mpq_canonicalize(q);
    mpz_clears(num, pw, NULL);
    return 0;
}

static int parse_number(md_st *st, md_ast *a, mpq_t q)
{
    if (literal_value(a->text, q) < 0) {
        md_error_at(st->src, a->loc, "number '%s' is out of range (exponents up to 10000 are exact)", a->text);
        return -1;
    }
    return 0;
}

/* Dividing by an exact zero (x/0, A./(B - B), inv(0*A), 0^-1) has no
   value anywhere: an error at the operator, not a gradient full of 1/0. */
static void division_by_zero(md_st *st, md_loc at, md_ast *by)
{
    char d[64];
    md_error_at(st->src, at, "division by zero: %s is exactly 0", describe(st, by, d, sizeof d));
}

/*
 * The function as typed.  For the derivations' first line and LaTeX, the
 * function is also built without the canonical form (md_typed.ftyped):
 * sums, products and Hadamard products keep their operands in the order
 * written, x - mu stays x - mu, a transpose stays on what it transposes,
 * elementwise functions and reductions are not rewritten.  Only what the
 * printers and the evaluator need is normalised: numbers and other
 * scalars come first in a product (2*X*w/3 is (2/3)Xw), scalars leave a
 * Hadamard product, a scalar term of a matrix sum is broadcast.  A name
 * the user bound is its canonical value, so the printers name it.
 */
static md_expr *raw_make(md_ctx *ctx, md_kind k, int r, int c, int ival, int aux, int order, int n,
                         md_expr *const *a)
{
    return md_expr_make(ctx, k, r, c, ival, aux, order, n, a, NULL);
}

static md_expr *raw_mul(md_ctx *ctx, int n, md_expr *const *t0)
{
    /* a product among the factors is flattened into this one ((-X)*w is
       -Xw), except a scalar chain x'*y, which is one scalar factor; its
       number joins the coefficient */
    int nt = 0;
    for (int i = 0; i < n; i++) nt += t0[i]->kind == MD_MUL ? t0[i]->nargs : 1;
    md_expr **t = md_xmalloc(((size_t)nt + 1) * sizeof *t);
    nt = 0;
    for (int i = 0; i < n; i++) {
        md_expr *x = t0[i];
        if (x->kind != MD_MUL) {
            t[nt++] = x;
        } else if (!md_is_scalar(x)) {
            for (int k = 0; k < x->nargs; k++) t[nt++] = x->args[k];
        } else if (x->args[0]->kind == MD_NUM) {
            t[nt++] = x->args[0];
            t[nt++] = x->nargs == 2 ? x->args[1] : raw_make(ctx, MD_MUL, MD_DIM_ONE, MD_DIM_ONE, 0, 0, 0, x->nargs - 1, x->args + 1);
        } else {
            t[nt++] = x;
        }
    }
    n = nt;
    md_expr **f = md_xmalloc(((size_t)n + 1) * sizeof *f);
    mpq_t q;
    mpq_init(q);
    mpq_set_ui(q, 1, 1);
    int m = 1, rows = MD_DIM_ONE, cols = MD_DIM_ONE, mats = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            md_expr *x = t[i];
            if (md_is_scalar(x) != (pass == 0)) continue;
            if (x->kind == MD_NUM) {
                mpq_mul(q, q, x->q);
                continue;
            }
            if (!md_is_scalar(x)) {
                if (!mats++) rows = x->rows;
                cols = x->cols;
            }
            f[m++] = x;
        }
    md_expr *r;
    if (m == 1) r = md_num(ctx, q);
    else if (mpq_cmp_ui(q, 1, 1) == 0 && m == 2) r = f[1];
    else if (mpq_cmp_ui(q, 1, 1) == 0) r = raw_make(ctx, MD_MUL, rows, cols, 0, 0, 0, m - 1, f + 1);
    else {
        f[0] = md_num(ctx, q);
        r = raw_make(ctx, MD_MUL, rows, cols, 0, 0, 0, m, f);
    }
    mpq_clear(q);
    free(f);
    free(t);
    return r;
}

static md_expr *raw_neg(md_ctx *ctx, md_expr *x)
{
    if (x->kind == MD_NUM) return md_neg(ctx, x);
    md_expr *m1 = md_num_si(ctx, -1, 1);
    if (x->kind != MD_MUL) return raw_mul(ctx, 2, (md_expr *[]){m1, x});
    md_expr **f = md_xmalloc(((size_t)x->nargs + 1) * sizeof *f);
    f[0] = m1;
    memcpy(f + 1, x->args, (size_t)x->nargs * sizeof *f);
    md_expr *r = raw_mul(ctx, x->nargs + 1, f);
    free(f);
    return r;
}

static md_expr *raw_had(md_ctx *ctx, int n, md_expr *const *t)
{
    md_expr **sc = md_xmalloc(((size_t)n + 1) * sizeof *sc), **mt = md_xmalloc(((size_t)n + 1) * sizeof *mt);
    int ns = 0, nm = 0;
    for (int i = 0; i < n; i++) {
        md_expr *x = t[i];
        if (md_is_scalar(x)) {
            sc[ns++] = x;
        } else if (x->kind == MD_MUL && x->args[0]->kind == MD_NUM) {
            /* (-y).*z is -y∘z: the number leaves the Hadamard product */
            sc[ns++] = x->args[0];
            mt[nm++] = x->nargs == 2 ? x->args[1] : raw_mul(ctx, x->nargs - 1, x->args + 1);
        } else {
            mt[nm++] = x;
        }
    }
    md_expr *h = nm == 0   ? NULL
                 : nm == 1 ? mt[0]
                           : raw_make(ctx, MD_HAD, mt[0]->rows, mt[0]->cols, 0, 0, 0, nm, mt);
    if (h) sc[ns++] = h;
    md_expr *r = raw_mul(ctx, ns, sc);
    free(sc);
    free(mt);
    return r;
}

static md_expr *raw_add(md_ctx *ctx, int n, md_expr *const *t)
{
    if (n == 1) return t[0];
    return raw_make(ctx, MD_ADD, t[0]->rows, t[0]->cols, 0, 0, 0, n, t);
}

static md_expr *build_chain(md_st *st, md_ast *a)
{
    int n = a->nkids;
    md_expr **t = md_xmalloc((size_t)n * sizeof *t);
    md_expr *r = NULL;
    for (int i = 0; i < n; i++) {
        t[i] = build(st, a->kids[i]);
        if (!t[i]) goto out;
    }
    md_op op = a->ops[1];
    if (op == MD_OP_ADD || op == MD_OP_SUB) {
        int rows = MD_DIM_ONE, cols = MD_DIM_ONE;
        for (int i = 0; i < n; i++)
            if (!md_is_scalar(t[i])) rows = t[i]->rows, cols = t[i]->cols;
        for (int i = 0; i < n; i++) {
            if (i > 0 && a->ops[i] == MD_OP_SUB) t[i] = st->raw ? raw_neg(st->ctx, t[i]) : md_neg(st->ctx, t[i]);
            if (md_is_scalar(t[i]) && !(rows == MD_DIM_ONE && cols == MD_DIM_ONE))
                t[i] = md_mul2(st->ctx, t[i], md_ones(st->ctx, rows, cols));
        }
        r = st->raw ? raw_add(st->ctx, n, t) : md_add(st->ctx, n, t);
    } else {
        for (int i = 1; i < n; i++) {
            if (a->ops[i] != MD_OP_DIV && a->ops[i] != MD_OP_HDIV) continue;
            if (md_is_zero(t[i])) {
                division_by_zero(st, a->oplocs[i], a->kids[i]);
                goto out;
            }
            t[i] = md_pow_si(st->ctx, t[i], -1, 1);   /* A/b = A*b^-1, A./B = A.*B.^-1 */
        }
        if (st->raw) r = op == MD_OP_MUL || op == MD_OP_DIV ? raw_mul(st->ctx, n, t) : raw_had(st->ctx, n, t);
        else r = op == MD_OP_MUL || op == MD_OP_DIV ? md_mul(st->ctx, n, t) : md_had(st->ctx, n, t);
    }
out:
    free(t);
    return r;
}

static md_expr *build(md_st *st, md_ast *a)
{
    md_ctx *ctx = st->ctx;
    md_shape_entry *sh = map_get(st, a);
    md_expr *x, *y;
    switch (a->kind) {
    case MD_AST_NUM: {
        mpq_t q;
        mpq_init(q);
        md_expr *r = parse_number(st, a, q) ? NULL : md_num(ctx, q);
        mpq_clear(q);
        return r;
    }
    case MD_AST_NAME: {
        md_name *n = name_find(st, a->text);
        if (!n) return md_eye(ctx, final_dim(st, sh->r));
        if (n->kind == MD_NAME_BOUND) {
            if (!n->value) n->value = build(st, n->bound);
            return n->value;
        }
        return md_sym(ctx, n->index);
    }
    case MD_AST_CHAIN: return build_chain(st, a);
    case MD_AST_NEG:
        x = build(st, a->kids[0]);
        return x ? st->raw ? raw_neg(ctx, x) : md_neg(ctx, x) : NULL;
    case MD_AST_TRANSPOSE:
        x = build(st, a->kids[0]);
        if (x && a->count % 2 && st->raw && x->nargs > 0 && !md_is_scalar(x))
            return raw_make(ctx, MD_TRANS, x->cols, x->rows, 0, 0, 0, 1, &x);
        return x && a->count % 2 ? md_trans(ctx, x) : x;
    case MD_AST_POW:
    case MD_AST_EPOW:
        x = build(st, a->kids[0]);
        y = x ? build(st, a->kids[1]) : NULL;
        if (!y) return NULL;
        if (md_is_zero(x) && y->kind == MD_NUM && mpq_sgn(y->q) < 0) {
            division_by_zero(st, a->oploc, a->kids[0]);
            return NULL;
        }
        if (a->kind == MD_AST_POW && !md_is_scalar(x)) {
            long k = 0;
            integer_literal(a->kids[1], &k);
            return md_mpow(ctx, x, (int)k);
        }
        if (st->raw && x->kind != MD_NUM && (md_is_scalar(y) || (y->rows == x->rows && y->cols == x->cols)))
            return raw_make(ctx, MD_POW, x->rows, x->cols, 0, 0, 0, 2, (md_expr *[]){x, y});
        return md_pow(ctx, x, y);
    case MD_AST_CALL: {
        md_name *n = name_find(st, a->text);
        if (!n && !strcmp(a->text, "eye")) return md_eye(ctx, final_dim(st, sh->r));
        if (!n && !strcmp(a->text, "commutation"))
            return md_comm(ctx, size_final(st, a->kids[0]), size_final(st, a->kids[1]));
        x = build(st, a->kids[0]);
        if (!x) return NULL;
        if (n && n->kind == MD_NAME_FUNC) return md_generic(ctx, n->index, a->count, x);
        const char *f = a->text;
        md_fn fn = md_fn_by_name(f);
        if (fn != MD_FN_GENERIC && st->raw && x->kind != MD_NUM)
            return raw_make(ctx, MD_FUNC, x->rows, x->cols, (int)fn, 0, 0, 1, &x);
        if (fn != MD_FN_GENERIC) return md_func(ctx, fn, x);
        const md_op_info *op = md_op_by_name(f);
        if (op && op->kind == MD_MPOW) {   /* inv */
            if (md_is_zero(x)) {
                division_by_zero(st, a->oploc, a->kids[0]);
                return NULL;
            }
            return md_inv(ctx, x);
        }
        if (op && op->kind == MD_DIAGM) {
            if (md_is_scalar(x)) return x;
            return md_unary(ctx, x->cols == MD_DIM_ONE ? MD_DIAGM : MD_DIAGV, x);
        }
        if (op && op->kind == MD_KRON) {
            y = build(st, a->kids[1]);
            return y ? md_kron(ctx, x, y) : NULL;
        }
        if (op && st->raw && x->kind != MD_NUM && !md_is_scalar(x) &&
            (op->kind == MD_SUM || op->kind == MD_NORM1 || op->kind == MD_NORM2 || op->kind == MD_TR ||
             op->kind == MD_DET || op->kind == MD_LOGDET))
            return raw_make(ctx, op->kind, MD_DIM_ONE, MD_DIM_ONE, 0, 0, 0, 1, &x);
        if (op) return md_unary(ctx, op->kind, x);
        /* vector(c), matrix(c) */
        return md_mul2(ctx, x, md_ones(ctx, final_dim(st, sh->r), final_dim(st, sh->c)));
    }
    }
    return NULL;
}

/* ---- statements ------------------------------------------------------- */

/* The source text of loc on one line, runs of white space (and of the
   blanks the lexer skips, a no-break space) made one space. */
static char *loc_text(const md_source *src, md_loc loc)
{
    size_t s = md_loc_offset(src, loc.line, loc.col);
    size_t e = md_loc_offset(src, loc.end_line, loc.end_col);
    e += e < src->len ? md_utf8_len(src->text + e, src->len - e) : 1;
    if (e > src->len) e = src->len;
    md_buf b = {0};
    int space = 0;
    for (size_t i = s, k; i < e; i += k) {
        k = md_utf8_len(src->text + i, e - i);
        char c = src->text[i];
        uint32_t cp;
        if (c == '\n' || c == '\t' || c == '\r' || c == ' ' ||
            (md_utf8_decode(src->text + i, k, &cp) > 1 && md_lex_blank(cp))) {
            space = 1;
            continue;
        }
        if (space && b.len) md_buf_putc(&b, ' ');
        space = 0;
        for (size_t j = 0; j < k; j++) md_buf_putc(&b, c ? src->text[i + j] : '?');
    }
    return md_buf_take(&b);
}

/* A declared dimension: a name, or a product of names "n*p" (the
   parser keeps it as that text). */
static int spec_dim(md_st *st, const char *text)
{
    const char *star = strchr(text, '*');
    if (!star) return named_dim(st, text);
    char *first = md_arena_strdup(&st->prog->arena, text);
    first[star - text] = 0;
    int a = named_dim(st, first);   /* first: dimensions are numbered in order of appearance */
    return dv_prod(st, a, spec_dim(st, star + 1));
}

static int declare(md_st *st, md_stmt *s)
{
    for (int i = 0; i < s->nitems; i++) {
        md_decl_item *it = &s->items[i];
        md_name *old = name_find(st, it->name);
        if (old) {
            md_error_at(st->src, it->loc, "'%s' is already %s", it->name,
                        old->kind == MD_NAME_FUNC    ? "declared as a function"
                        : old->kind == MD_NAME_BOUND ? "defined by an assignment"
                        : old->declared              ? "declared"
                                                     : "used as a variable before this declaration");
            md_note_at(st->src, old->loc, "'%s' first appears here", it->name);
            return -1;
        }
        if (!strcmp(it->name, "eye") || md_is_builtin(it->name)) {
            md_error_at(st->src, it->loc, "'%s' is a built-in name and cannot be declared", it->name);
            return -1;
        }
        if (s->decl == MD_DECL_FUNCTION || s->decl == MD_DECL_SCALAR) {
            if (it->ndims) {
                md_error_at(st->src, it->dimlocs[0], "a %s has no dimensions",
                            s->decl == MD_DECL_SCALAR ? "scalar" : "function");
                return -1;
            }
            if (s->decl == MD_DECL_FUNCTION) {
                md_name *n = name_add(st, it->name, MD_NAME_FUNC, it->loc);
                n->declared = 1;
                n->index = md_ctx_add_func(st->ctx, it->name);
            } else {
                sym_add(st, it->name, MD_SYM_SCALAR, it->loc, NULL, NULL)->declared = 1;
            }
            continue;
        }
        int want = s->decl == MD_DECL_VECTOR ? 1 : 2;
        if (s->decl == MD_DECL_SYMMETRIC && it->ndims == 2 && strcmp(it->dims[0], it->dims[1])) {
            md_error_at(st->src, it->dimlocs[1], "a symmetric matrix is square: write %s(%s)", it->name, it->dims[0]);
            return -1;
        }
        if (s->decl == MD_DECL_MATRIX && it->ndims == 1) {
            md_error_at(st->src, it->dimlocs[0], "a matrix has two dimensions: write %s(%s, p)", it->name, it->dims[0]);
            return -1;
        }
        if (it->ndims > want) {
            md_error_at(st->src, it->dimlocs[want], "a %s has %d dimension%s", s->decl == MD_DECL_VECTOR ? "vector" : "matrix",
                        want, want > 1 ? "s" : "");
            return -1;
        }
        md_symkind k = s->decl == MD_DECL_VECTOR ? MD_SYM_VECTOR
                       : s->decl == MD_DECL_MATRIX ? MD_SYM_MATRIX
                                                   : MD_SYM_SYMMETRIC;
        md_name *n = sym_add(st, it->name, k, it->loc, NULL, NULL);
        n->declared = 1;
        if (it->ndims >= 1 && dv_unify(st, n->r, spec_dim(st, it->dims[0]))) return -1;
        if (it->ndims >= 2 && k == MD_SYM_MATRIX && dv_unify(st, n->c, spec_dim(st, it->dims[1]))) return -1;
    }
    return 0;
}

int md_typecheck(md_program *prog, md_ctx *ctx, md_typed *out)
{
    md_st st;
    memset(&st, 0, sizeof st);
    st.prog = prog;
    st.src = prog->src;
    st.ctx = ctx;
    memset(out, 0, sizeof *out);
    dv_new(&st, NULL, 0);   /* the constant 1 */
    int rc = -1;
    md_stmt *last = NULL, *last_assign = NULL;

    for (int i = 0; i < prog->nstmts; i++) {
        md_stmt *s = prog->stmts[i];
        md_shp sh;
        switch (s->kind) {
        case MD_STMT_DECL:
            if (declare(&st, s)) goto done;
            break;
        case MD_STMT_ASSIGN: {
            md_name *old = name_find(&st, s->name);
            if (old || md_is_reserved(s->name)) {
                md_error_at(st.src, s->nameloc, "cannot assign to '%s': %s", s->name,
                            !old ? "it is a built-in name"
                            : old->kind == MD_NAME_BOUND ? "it is already defined"
                            : old->kind == MD_NAME_FUNC  ? "it is a declared function"
                                                         : "it is a variable of the program");
                if (old) md_note_at(st.src, old->loc, "'%s' first appears here", s->name);
                goto done;
            }
            if (infer(&st, s->expr, &sh)) goto done;
            md_name *self = name_find(&st, s->name);
            if (self) {
                /* a = a, r = A*x - r: the use made a variable of that name */
                md_error_at(st.src, self->loc, "'%s' is used in its own definition", s->name);
                md_note_at(st.src, s->nameloc, "'%s' is defined here; a name can only use names defined before it", s->name);
                goto done;
            }
            md_name *n = name_add(&st, s->name, MD_NAME_BOUND, s->nameloc);
            n->r = sh.r;
            n->c = sh.c;
            n->bound = s->expr;
            last_assign = s;
            break;
        }
        case MD_STMT_EXPR:
            if (infer(&st, s->expr, &sh)) goto done;
            last = s;
            break;
        }
    }
    if (!last) last = last_assign;
    if (!last) {
        md_error(st.src, "the program has no expression to differentiate");
        goto done;
    }

    if (undetermined_sizes(&st)) goto done;

    /* final dimensions and symbols, in order of first appearance */
    name_dims_for_message(&st);
    for (int i = 0; i < st.nnames; i++) {
        md_name *n = &st.names[i];
        if (n->kind != MD_NAME_SYM) continue;
        int r = final_dim(&st, n->r), c = final_dim(&st, n->c);
        md_symkind k = n->symkind;
        n->index = md_ctx_add_sym(ctx, n->name, k, r, c);
    }
    for (int i = 0; i < st.nnames; i++) {
        md_name *n = &st.names[i];
        if (n->kind == MD_NAME_BOUND && !n->value) {
            n->value = build(&st, n->bound);
            if (!n->value) goto done;
        }
    }
    out->f = build(&st, last->expr);
    if (!out->f) goto done;
    st.raw = 1;
    out->ftyped = build(&st, last->expr);
    st.raw = 0;
    for (int i = 0; i < st.nnames; i++)
        if (st.names[i].kind == MD_NAME_BOUND) out->nbound++;
    out->bound = md_xcalloc((size_t)out->nbound + 1, sizeof *out->bound);
    out->bval = md_xcalloc((size_t)out->nbound + 1, sizeof *out->bval);
    for (int i = 0, k = 0; i < st.nnames; i++)
        if (st.names[i].kind == MD_NAME_BOUND) {
            out->bound[k] = st.names[i].name;
            out->bval[k++] = st.names[i].value;
        }
    out->floc = last->expr->loc;
    /* the statement's end: a parenthesised last operand ends after its ')' */
    md_loc whole = last->expr->loc;
    if (last->loc.end_line > whole.end_line ||
        (last->loc.end_line == whole.end_line && last->loc.end_col > whole.end_col)) {
        whole.end_line = last->loc.end_line;
        whole.end_col = last->loc.end_col;
    }
    out->ftext = loc_text(st.src, whole);
    if (strlen(out->ftext) > 300) strcpy(out->ftext + 290, " ...");   /* a 1 MB program */
    rc = 0;
done:
    free(st.dv);
    free(st.names);
    free(st.map);
    md_strmap_free(&st.namemap);
    md_strmap_free(&st.dimmap);
    return rc;
}

void md_typed_free(md_typed *t)
{
    free(t->ftext);
    free(t->bound);
    free(t->bval);
    t->ftext = NULL;
    t->bound = NULL;
    t->bval = NULL;
    t->nbound = 0;
}

md_expr *md_typed_bound(const md_typed *t, const char *name)
{
    for (int i = 0; i < t->nbound; i++)
        if (!strcmp(t->bound[i], name)) return t->bval[i];
    return NULL;
}
