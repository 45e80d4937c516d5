/*
 * expr.c -- the node table: hash consing, dimensions, symbols.
 *
 * md_expr_make is the only function that allocates an md_expr.  It hashes
 * the node's fields (kind, shape, integer payloads, the argument nodes'
 * hashes and, for numbers, the value), looks the node up in an
 * open-addressing table and returns the existing node when there is one.
 * Equality of arguments is pointer equality, because arguments are
 * themselves unique; so the lookup is O(nargs) and structurally equal
 * expressions are always the same pointer.
 *
 * The hash is structural (built from names, never from creation order) so
 * that md_expr_cmp, which orders the operands of commutative operators,
 * gives the same order in every run and for every input order.  Each node
 * also records its depth, its tree weight (for ordering sum terms: bigger
 * terms first, as a mathematician writes them) and whether a differential
 * occurs inside it (for the differentiation stage).
 *
 * Nodes are never freed individually; md_ctx_free releases everything
 * (including the GMP numbers) at once.
 */
#include "md_expr.h"

#include <stdlib.h>
#include <string.h>

md_ctx *md_ctx_new(void)
{
    md_ctx *ctx = md_xcalloc(1, sizeof *ctx);
    ctx->tcap = 1024;
    ctx->table = md_xcalloc(ctx->tcap, sizeof *ctx->table);
    md_ctx_add_dim(ctx, "1", 1);
    return ctx;
}

void md_ctx_free(md_ctx *ctx)
{
    if (!ctx) return;
    for (uint32_t i = 0; i < ctx->nnodes; i++) mpq_clear(ctx->nodes[i]->q);
    free(ctx->nodes);
    free(ctx->table);
    for (int d = 0; d < ctx->ndims; d++) free(ctx->dims[d].fac);
    free(ctx->dims);
    free(ctx->syms);
    free(ctx->funcs);
    md_strmap_free(&ctx->symmap);
    md_strmap_free(&ctx->funcmap);
    free(ctx->memo_trans);
    free(ctx->memo_simp);
    md_arena_free(&ctx->arena);
    free(ctx);
}

int md_ctx_add_dim(md_ctx *ctx, const char *name, int declared)
{
    if (ctx->ndims == ctx->dimcap) {
        ctx->dimcap = ctx->dimcap ? 2 * ctx->dimcap : 16;
        ctx->dims = md_xrealloc(ctx->dims, ctx->dimcap * sizeof *ctx->dims);
    }
    md_dim *d = &ctx->dims[ctx->ndims];
    d->name = name ? md_arena_strdup(&ctx->arena, name) : NULL;
    d->declared = declared;
    d->size = ctx->ndims == 0 ? 1 : 0;
    d->nfac = 0;
    d->fac = NULL;
    return ctx->ndims++;
}

static void dim_factors(const md_ctx *ctx, int d, int *out, int *n)
{
    if (d == MD_DIM_ONE) return;
    if (!ctx->dims[d].nfac) {
        out[(*n)++] = d;
        return;
    }
    for (int i = 0; i < ctx->dims[d].nfac; i++) out[(*n)++] = ctx->dims[d].fac[i];
}

static int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int md_ctx_dim_mul(md_ctx *ctx, int a, int b)
{
    if (a == MD_DIM_ONE) return b;
    if (b == MD_DIM_ONE) return a;
    int na = ctx->dims[a].nfac ? ctx->dims[a].nfac : 1, nb = ctx->dims[b].nfac ? ctx->dims[b].nfac : 1;
    int *f = md_xmalloc((size_t)(na + nb) * sizeof *f), n = 0;
    dim_factors(ctx, a, f, &n);
    dim_factors(ctx, b, f, &n);
    qsort(f, (size_t)n, sizeof *f, int_cmp);
    for (int d = 1; d < ctx->ndims; d++)
        if (ctx->dims[d].nfac == n && !memcmp(ctx->dims[d].fac, f, (size_t)n * sizeof *f)) {
            free(f);
            return d;
        }
    md_buf name = {0};
    for (int i = 0; i < n; i++) md_buf_printf(&name, "%s%s", i ? "*" : "", ctx->dims[f[i]].name);
    int d = md_ctx_add_dim(ctx, name.s, 0);
    md_buf_free(&name);
    ctx->dims[d].nfac = n;
    ctx->dims[d].fac = f;
    return d;
}

void md_ctx_product_sizes(const md_ctx *ctx, long *sizes)
{
    for (int d = 1; d < ctx->ndims; d++) {
        if (!ctx->dims[d].nfac) continue;
        long s = 1;
        for (int i = 0; i < ctx->dims[d].nfac; i++) s *= sizes[ctx->dims[d].fac[i]];
        sizes[d] = s;
    }
}

int md_ctx_add_sym(md_ctx *ctx, const char *name, md_symkind kind, int rows, int cols)
{
    if (ctx->nsyms == ctx->symcap) {
        ctx->symcap = ctx->symcap ? 2 * ctx->symcap : 16;
        ctx->syms = md_xrealloc(ctx->syms, ctx->symcap * sizeof *ctx->syms);
    }
    md_symbol *s = &ctx->syms[ctx->nsyms];
    s->name = md_arena_strdup(&ctx->arena, name);
    s->kind = kind;
    s->rows = rows;
    s->cols = cols;
    if (md_strmap_get(&ctx->symmap, s->name) < 0) md_strmap_put(&ctx->symmap, s->name, ctx->nsyms);
    return ctx->nsyms++;
}

int md_ctx_find_sym(const md_ctx *ctx, const char *name)
{
    return md_strmap_get(&ctx->symmap, name);
}

int md_ctx_add_func(md_ctx *ctx, const char *name)
{
    if (ctx->nfuncs == ctx->funccap) {
        ctx->funccap = ctx->funccap ? 2 * ctx->funccap : 8;
        ctx->funcs = md_xrealloc(ctx->funcs, ctx->funccap * sizeof *ctx->funcs);
    }
    ctx->funcs[ctx->nfuncs] = md_arena_strdup(&ctx->arena, name);
    if (md_strmap_get(&ctx->funcmap, ctx->funcs[ctx->nfuncs]) < 0)
        md_strmap_put(&ctx->funcmap, ctx->funcs[ctx->nfuncs], ctx->nfuncs);
    return ctx->nfuncs++;
}

int md_ctx_find_func(const md_ctx *ctx, const char *name)
{
    return md_strmap_get(&ctx->funcmap, name);
}

int md_sym_is_symmetric(const md_ctx *ctx, int sym)
{
    return ctx->syms[sym].kind == MD_SYM_SYMMETRIC;
}

/* ---- hashing ---------------------------------------------------------- */

static uint32_t md_mix(uint32_t h, uint32_t v)
{
    h ^= v + 0x9e3779b9u + (h << 6) + (h >> 2);
    return h;
}

static uint32_t md_hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static uint32_t md_hash_mpz(const mpz_t z)
{
    uint32_t h = (uint32_t)mpz_sgn(z) + 7u;
    size_t n = mpz_size(z);
    for (size_t i = 0; i < n; i++) {
        mp_limb_t l = mpz_getlimbn(z, i);
        h = md_mix(h, (uint32_t)l);
        h = md_mix(h, (uint32_t)((uint64_t)l >> 32));
    }
    return h;
}

/* The structural hash: names instead of indices, so it does not depend on
   the order in which symbols or dimensions were registered. */
static uint32_t md_node_hash(md_ctx *ctx, md_kind kind, int rows, int cols, int ival,
                             int aux, int order, int nargs, md_expr *const *args,
                             const mpq_t q)
{
    uint32_t h = md_mix(0x12345u, (uint32_t)kind);
    /* A variable's shape is the variable's: its hash is its name alone, so
       that it orders the same way whatever its dimensions are called (a
       program read back names them in its own order of appearance). */
    const char *rn = ctx->dims[rows].name, *cn = ctx->dims[cols].name;
    if (kind != MD_SYM && kind != MD_DIFF) {
        h = md_mix(h, rn ? md_hash_str(rn) : (uint32_t)rows);
        h = md_mix(h, cn ? md_hash_str(cn) : (uint32_t)cols);
    }
    if (kind == MD_SYM || kind == MD_DIFF)
        h = md_mix(h, md_hash_str(ctx->syms[ival].name));
    else if (kind == MD_FUNC && ival == MD_FN_GENERIC)
        h = md_mix(md_mix(h, md_hash_str(ctx->funcs[aux])), (uint32_t)order);
    else
        h = md_mix(h, (uint32_t)ival);
    if (kind == MD_NUM) {
        h = md_mix(h, md_hash_mpz(mpq_numref(q)));
        h = md_mix(h, md_hash_mpz(mpq_denref(q)));
    }
    for (int i = 0; i < nargs; i++) h = md_mix(h, args[i]->hash);
    return h;
}

static int md_node_equal(const md_expr *e, md_kind kind, int rows, int cols, int ival,
                         int aux, int order, int nargs, md_expr *const *args,
                         const mpq_t q)
{
    if (e->kind != kind || e->rows != rows || e->cols != cols || e->ival != ival ||
        e->aux != aux || e->order != order || e->nargs != nargs)
        return 0;
    for (int i = 0; i < nargs; i++)
        if (e->args[i] != args[i]) return 0;
    if (kind == MD_NUM && !mpq_equal(e->q, q)) return 0;
    return 1;
}

static void md_table_grow(md_ctx *ctx)
{
    uint32_t ncap = ctx->tcap * 2;
    md_expr **nt = md_xcalloc(ncap, sizeof *nt);
    for (uint32_t i = 0; i < ctx->tcap; i++) {
        md_expr *e = ctx->table[i];
        if (!e) continue;
        uint32_t j = e->hash & (ncap - 1);
        while (nt[j]) j = (j + 1) & (ncap - 1);
        nt[j] = e;
    }
    free(ctx->table);
    ctx->table = nt;
    ctx->tcap = ncap;
}

md_expr *md_expr_make(md_ctx *ctx, md_kind kind, int rows, int cols, int ival,
                      int aux, int order, int nargs, md_expr *const *args,
                      const mpq_t q)
{
    uint32_t h = md_node_hash(ctx, kind, rows, cols, ival, aux, order, nargs, args, q);
    uint32_t j = h & (ctx->tcap - 1);
    for (md_expr *e; (e = ctx->table[j]) != NULL; j = (j + 1) & (ctx->tcap - 1))
        if (e->hash == h && md_node_equal(e, kind, rows, cols, ival, aux, order, nargs, args, q))
            return e;

    md_expr *e = md_arena_alloc(&ctx->arena, sizeof *e);
    e->kind = kind;
    e->rows = rows;
    e->cols = cols;
    e->ival = ival;
    e->aux = aux;
    e->order = order;
    e->nargs = nargs;
    if (nargs) {
        e->args = md_arena_alloc(&ctx->arena, (size_t)nargs * sizeof *args);
        memcpy(e->args, args, (size_t)nargs * sizeof *args);
    }
    mpq_init(e->q);
    if (kind == MD_NUM) mpq_set(e->q, q);
    e->hash = h;
    e->has_diff = kind == MD_DIFF;
    if (kind == MD_SYM || kind == MD_DIFF) e->name = ctx->syms[ival].name;
    if (kind == MD_FUNC && ival == MD_FN_GENERIC) e->name = ctx->funcs[aux];
    uint64_t w = 1;
    uint32_t depth = 0;
    for (int i = 0; i < nargs; i++) {
        e->has_diff |= args[i]->has_diff;
        w += args[i]->weight;
        if (args[i]->depth > depth) depth = args[i]->depth;
    }
    e->weight = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
    e->depth = kind == MD_TRANS ? depth : depth + 1;

    if (ctx->nnodes == ctx->nodecap) {
        ctx->nodecap = ctx->nodecap ? 2 * ctx->nodecap : 1024;
        ctx->nodes = md_xrealloc(ctx->nodes, ctx->nodecap * sizeof *ctx->nodes);
    }
    e->id = ctx->nnodes;
    ctx->nodes[ctx->nnodes++] = e;

    ctx->table[j] = e;
    if (++ctx->tcount * 2 > ctx->tcap) md_table_grow(ctx);
    return e;
}

md_expr *md_num(md_ctx *ctx, mpq_srcptr q)
{
    return md_expr_make(ctx, MD_NUM, MD_DIM_ONE, MD_DIM_ONE, 0, 0, 0, 0, NULL, q);
}

md_expr *md_num_si(md_ctx *ctx, long num, unsigned long den)
{
    mpq_t q;
    mpq_init(q);
    mpq_set_si(q, num, den);
    mpq_canonicalize(q);
    md_expr *e = md_num(ctx, q);
    mpq_clear(q);
    return e;
}

md_expr *md_sym(md_ctx *ctx, int sym)
{
    const md_symbol *s = &ctx->syms[sym];
    return md_expr_make(ctx, MD_SYM, s->rows, s->cols, sym, 0, 0, 0, NULL, NULL);
}

md_expr *md_diff_of(md_ctx *ctx, int sym)
{
    const md_symbol *s = &ctx->syms[sym];
    return md_expr_make(ctx, MD_DIFF, s->rows, s->cols, sym, 0, 0, 0, NULL, NULL);
}

md_expr *md_zero(md_ctx *ctx, int rows, int cols)
{
    if (rows == MD_DIM_ONE && cols == MD_DIM_ONE) return md_num_si(ctx, 0, 1);
    return md_expr_make(ctx, MD_ZERO, rows, cols, 0, 0, 0, 0, NULL, NULL);
}

md_expr *md_ones(md_ctx *ctx, int rows, int cols)
{
    if (rows == MD_DIM_ONE && cols == MD_DIM_ONE) return md_num_si(ctx, 1, 1);
    return md_expr_make(ctx, MD_ONES, rows, cols, 0, 0, 0, 0, NULL, NULL);
}

md_expr *md_eye(md_ctx *ctx, int n)
{
    if (n == MD_DIM_ONE) return md_num_si(ctx, 1, 1);
    return md_expr_make(ctx, MD_EYE, n, n, 0, 0, 0, 0, NULL, NULL);
}

/* ---- ordering --------------------------------------------------------- */

static int md_cmp_int(long a, long b) { return (a > b) - (a < b); }

/*
 * Heavier expressions first, then by kind, then by names and values, then
 * argument by argument.  Only reaches into arguments when everything above
 * ties, and stops at the first pointer-equal pair, so it is cheap on the
 * shared DAGs the derivation builds.
 */
int md_expr_cmp(const md_expr *a, const md_expr *b)
{
    if (a == b) return 0;
    if (a->weight != b->weight) return a->weight > b->weight ? -1 : 1;
    if (a->kind != b->kind) return md_cmp_int(a->kind, b->kind);
    int c;
    switch (a->kind) {
    case MD_NUM:
        return mpq_cmp(a->q, b->q) < 0 ? -1 : mpq_cmp(a->q, b->q) > 0;
    case MD_FUNC:
        if ((c = md_cmp_int(a->ival, b->ival))) return c;
        if ((c = md_cmp_int(a->order, b->order))) return c;
        if (a->name && b->name && (c = strcmp(a->name, b->name))) return c < 0 ? -1 : 1;
        if ((c = md_cmp_int(a->aux, b->aux))) return c;
        break;
    case MD_SYM:
    case MD_DIFF:
        /* by name, which does not depend on the order in which variables
           were met nor on what their dimensions are called */
        if ((c = strcmp(a->name, b->name))) return c < 0 ? -1 : 1;
        return md_cmp_int(a->ival, b->ival);
    case MD_ZERO: case MD_ONES: case MD_EYE: case MD_ADD: case MD_MUL: case MD_HAD:
    case MD_POW: case MD_MPOW: case MD_TRANS: case MD_SUM: case MD_NORM1: case MD_NORM2:
    case MD_TR: case MD_DET: case MD_LOGDET: case MD_DIAGM: case MD_DIAGV:
    case MD_VEC: case MD_KRON: case MD_SOFTMAX: case MD_LSE: case MD_NKINDS:
        if ((c = md_cmp_int(a->ival, b->ival))) return c;
        break;
    case MD_COMM:
        if ((c = md_cmp_int(a->ival, b->ival))) return c;
        if ((c = md_cmp_int(a->aux, b->aux))) return c;
        break;
    }
    if ((c = md_cmp_int(a->nargs, b->nargs))) return c;
    for (int i = 0; i < a->nargs; i++)
        if ((c = md_expr_cmp(a->args[i], b->args[i]))) return c;
    if ((c = md_cmp_int(a->rows, b->rows))) return c;
    return md_cmp_int(a->cols, b->cols);
}
