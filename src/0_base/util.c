/*
 * util.c -- the arena, the byte buffer and checked allocation.
 *
 * The arena hands out zeroed memory from 64 KiB chunks (larger requests
 * get a chunk of their own).  Chunks are linked and released together by
 * md_arena_free.  md_strmap maps names to ints.  Nothing here knows about
 * expressions.
 */
#include "md_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Out of memory halfway through a derivation there is nothing sensible
   to do but stop; how is the program's choice (main.c exits with status
   3), the library's default is abort(). */
static void (*md_oom_handler)(void);

void md_set_oom_handler(void (*handler)(void)) { md_oom_handler = handler; }

static void md_oom(void)
{
    fputs("matdiff: out of memory\n", stderr);
    if (md_oom_handler) md_oom_handler();
    abort();
}

void *md_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) md_oom();
    return p;
}

void *md_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) md_oom();
    return p;
}

void *md_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) md_oom();
    return p;
}

char *md_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(md_xmalloc(n), s, n);
}

struct md_arena_chunk {
    md_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

enum { MD_CHUNK = 64 * 1024 };

void *md_arena_alloc(md_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    md_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > MD_CHUNK ? n : MD_CHUNK;
        c = md_xmalloc(sizeof *c + cap);
        c->used = 0;
        c->cap = cap;
        /* A big private chunk goes behind the current one so the current
           chunk's free space is not wasted. */
        if (a->head && n > MD_CHUNK) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *md_arena_strndup(md_arena *a, const char *s, size_t n)
{
    char *p = md_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *md_arena_strdup(md_arena *a, const char *s)
{
    return md_arena_strndup(a, s, strlen(s));
}

void md_arena_free(md_arena *a)
{
    md_arena_chunk *c = a->head;
    while (c) {
        md_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
}

static void md_buf_grow(md_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    b->s = md_xrealloc(b->s, cap);
    b->cap = cap;
}

void md_buf_puts(md_buf *b, const char *s)
{
    size_t n = strlen(s);
    md_buf_grow(b, n);
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

void md_buf_putc(md_buf *b, char c)
{
    md_buf_grow(b, 1);
    b->s[b->len++] = c;
    b->s[b->len] = 0;
}

void md_buf_vprintf(md_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    md_buf_grow(b, (size_t)n);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void md_buf_printf(md_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    md_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

char *md_buf_take(md_buf *b)
{
    char *s = b->s ? b->s : md_xstrdup("");
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

void md_buf_free(md_buf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

/* ---- name maps ---------------------------------------------------------- */

static unsigned md_strhash(const char *s)
{
    unsigned h = 2166136261u;   /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

void md_strmap_put(md_strmap *m, const char *key, int val)
{
    if (2 * (m->count + 1) > m->cap) {
        unsigned ncap = m->cap ? 2 * m->cap : 64;
        const char **nk = md_xcalloc(ncap, sizeof *nk);
        int *nv = md_xcalloc(ncap, sizeof *nv);
        for (unsigned i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            unsigned j = md_strhash(m->keys[i]) & (ncap - 1);
            while (nk[j]) j = (j + 1) & (ncap - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = ncap;
    }
    unsigned j = md_strhash(key) & (m->cap - 1);
    while (m->keys[j] && strcmp(m->keys[j], key) != 0) j = (j + 1) & (m->cap - 1);
    if (!m->keys[j]) m->count++;
    m->keys[j] = key;
    m->vals[j] = val;
}

int md_strmap_get(const md_strmap *m, const char *key)
{
    if (!m->cap) return -1;
    unsigned j = md_strhash(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (strcmp(m->keys[j], key) == 0) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void md_strmap_free(md_strmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}
