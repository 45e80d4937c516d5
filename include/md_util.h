/*
 * md_util.h -- memory and string helpers shared by every stage.
 *
 * matdiff is a batch compiler: it reads one program, builds a few
 * thousand nodes, prints, and exits.  Following chibicc, nothing is freed
 * one node at a time.  Everything a run allocates comes from an arena
 * (md_arena) owned by the context and released in one call at the end, so
 * valgrind stays clean without per-node reference counts.  The few
 * growable arrays live in md_buf (a byte buffer with printf) and plain
 * realloc'd arrays managed by their owners.
 *
 * Allocation failure is fatal: md_xmalloc prints a message and calls the
 * handler the program set (main.c exits with status 3), or abort()s.
 */
#ifndef MD_UTIL_H
#define MD_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

void *md_xmalloc(size_t n);
void md_set_oom_handler(void (*handler)(void));   /* called on allocation failure */
void *md_xcalloc(size_t n, size_t size);
void *md_xrealloc(void *p, size_t n);
char *md_xstrdup(const char *s);

/* A bump allocator made of chunks; md_arena_free releases every chunk. */
typedef struct md_arena_chunk md_arena_chunk;
typedef struct md_arena {
    md_arena_chunk *head;
} md_arena;

void *md_arena_alloc(md_arena *a, size_t n);          /* zeroed, 16-aligned */
char *md_arena_strdup(md_arena *a, const char *s);
char *md_arena_strndup(md_arena *a, const char *s, size_t n);
void md_arena_free(md_arena *a);

/* A growable NUL-terminated byte buffer. */
typedef struct md_buf {
    char *s;
    size_t len, cap;
} md_buf;

void md_buf_puts(md_buf *b, const char *s);
void md_buf_putc(md_buf *b, char c);
void md_buf_printf(md_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void md_buf_vprintf(md_buf *b, const char *fmt, va_list ap);
char *md_buf_take(md_buf *b);   /* returns the malloc'd string; buffer becomes empty */
void md_buf_free(md_buf *b);

/* A map from names to non-negative ints (open addressing; the keys are
   not copied: they must outlive the map, as arena strings do).  Lookups
   of names are everywhere (variables, dimensions, functions) and a
   program read back can have thousands of temporaries. */
typedef struct md_strmap {
    const char **keys;
    int *vals;
    unsigned cap, count;
} md_strmap;

void md_strmap_put(md_strmap *m, const char *key, int val);   /* replaces */
int md_strmap_get(const md_strmap *m, const char *key);        /* -1 if absent */
void md_strmap_free(md_strmap *m);

#endif
