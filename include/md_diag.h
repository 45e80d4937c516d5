/*
 * md_diag.h -- source text, locations and error reports.
 *
 * Every error the user can cause is reported by one function,
 * md_error_at, in the form compilers use:
 *
 *     <cmdline>:1:9: error: cannot add X (n×p) and y (n)
 *     norm2(X + y)^2
 *             ^ ~
 *
 * The first line names the place, the second repeats the source line and
 * the third puts a caret under the culprit and tildes under the rest of
 * its range.  Notes and "did you mean" hints follow as `note:` lines.
 * Columns count characters from 1 (a well-formed UTF-8 sequence is one
 * character, and so is each byte of anything else); a location's end is
 * inclusive.
 */
#ifndef MD_DIAG_H
#define MD_DIAG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct md_loc {
    int line, col;          /* first character, 1-based */
    int end_line, end_col;  /* last character, inclusive */
} md_loc;

typedef struct md_source {
    const char *name;   /* "<cmdline>", "<stdin>" or a file name */
    const char *text;   /* the program; may contain NUL bytes */
    size_t len;
    FILE *err;          /* where reports go (stderr unless a test redirects) */
    int nerrors;        /* reports made so far */
} md_source;

void md_source_init(md_source *src, const char *name, const char *text, size_t len);

/* Reports "name:line:col: error: <fmt>" with the source line and a caret. */
void md_error_at(md_source *src, md_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void md_verror_at(md_source *src, md_loc loc, const char *kind, const char *fmt, va_list ap);
/* Reports "name:line:col: note: <fmt>" with the source line and a caret. */
void md_note_at(md_source *src, md_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reports "name: error: <fmt>" for problems with no place in the text. */
void md_error(md_source *src, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Decodes the character at s (n bytes available): returns its length 1-4
   and sets *cp when s starts a well-formed UTF-8 sequence (ASCII included;
   no overlong forms, surrogates or code points above U+10FFFF), else 0. */
int md_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* The bytes of the character at s, one column: md_utf8_decode's length,
   or 1 for a byte that starts no well-formed sequence; 0 when n is 0. */
size_t md_utf8_len(const char *s, size_t n);

/* The byte offset in src->text of column col of line line (clipped to
   src->len). */
size_t md_loc_offset(const md_source *src, int line, int col);

/* The location spanning a and b. */
md_loc md_loc_span(md_loc a, md_loc b);

/* Edit distance between two short names, for "did you mean" hints:
   insertions, deletions, substitutions and neighbour transpositions. */
int md_edit_distance(const char *a, const char *b);

#endif
