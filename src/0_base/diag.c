/*
 * diag.c -- error reports that point into the source.
 *
 * Every report the user can cause goes through md_verror_at, which prints
 * the compiler-style three lines of md_diag.h:
 *
 *     <name>:<line>:<col>: error: <message>
 *     <the source line>
 *     <blanks>^~~~
 *
 * The source line is found by scanning the text from the start each time:
 * a report is rare and a program is small, so no line table is kept.  The
 * echoed line is the source line without its newline (and without a
 * CRLF's '\r'); bytes a terminal might misdraw -- NUL, control characters
 * other than tab, and everything from 0x7F up -- are shown as '?', one for
 * one, so columns still line up.  The caret line copies the source's tabs
 * and turns every other byte into a space, so the caret lands under the
 * culprit whatever the tab width.  Columns are bytes: a multi-byte UTF-8
 * character before the culprit shifts the caret, a known trade-off for
 * not decoding UTF-8 here.
 *
 * A location may point one past the end of its line (an unexpected end of
 * input or of line): the caret is then drawn just after the text.
 */
#include "md_diag.h"

#include <stdlib.h>
#include <string.h>

void md_source_init(md_source *src, const char *name, const char *text, size_t len)
{
    src->name = name;
    src->text = text ? text : "";
    src->len = text ? len : 0;
    src->err = stderr;
    src->nerrors = 0;
}

/* Finds line `line` (1-based): its first byte and its length without '\n'. */
static void md_find_line(const md_source *src, int line, const char **start, size_t *len)
{
    const char *s = src->text, *end = src->text + src->len;
    for (int l = 1; l < line && s < end; l++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        s = nl ? nl + 1 : end;
    }
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t n = (size_t)((nl ? nl : end) - s);
    if (n > 0 && s[n - 1] == '\r') n--;
    *start = s;
    *len = n;
}

static int md_printable(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c < 0x7f);
}

void md_verror_at(md_source *src, md_loc loc, const char *kind, const char *fmt, va_list ap)
{
    FILE *f = src->err ? src->err : stderr;
    if (strcmp(kind, "error") == 0) src->nerrors++;
    if (loc.line < 1) loc.line = 1;
    if (loc.col < 1) loc.col = 1;

    fprintf(f, "%s:%d:%d: %s: ", src->name, loc.line, loc.col, kind);
    vfprintf(f, fmt, ap);
    fputc('\n', f);

    const char *s;
    size_t n;
    md_find_line(src, loc.line, &s, &n);
    for (size_t i = 0; i < n; i++)
        fputc(md_printable((unsigned char)s[i]) ? s[i] : '?', f);
    fputc('\n', f);

    size_t col = (size_t)loc.col;
    for (size_t i = 0; i + 1 < col; i++)
        fputc(i < n && s[i] == '\t' ? '\t' : ' ', f);
    fputc('^', f);
    /* Tildes under the rest of the range, up to the end of this line. */
    size_t last = loc.end_line == loc.line && loc.end_col > 0 ? (size_t)loc.end_col : n;
    if (loc.end_line > loc.line) last = n;
    if (last > n) last = n;
    for (size_t i = col; i < last; i++)
        fputc(s[i] == '\t' ? '\t' : '~', f);
    fputc('\n', f);
}

void md_error_at(md_source *src, md_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    md_verror_at(src, loc, "error", fmt, ap);
    va_end(ap);
}

void md_note_at(md_source *src, md_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    md_verror_at(src, loc, "note", fmt, ap);
    va_end(ap);
}

void md_error(md_source *src, const char *fmt, ...)
{
    FILE *f = src->err ? src->err : stderr;
    src->nerrors++;
    fprintf(f, "%s: error: ", src->name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
}

md_loc md_loc_span(md_loc a, md_loc b)
{
    md_loc r = a;
    if (b.line < a.line || (b.line == a.line && b.col < a.col)) {
        r.line = b.line;
        r.col = b.col;
    }
    if (b.end_line > a.end_line || (b.end_line == a.end_line && b.end_col > a.end_col)) {
        r.end_line = b.end_line;
        r.end_col = b.end_col;
    }
    return r;
}

int md_edit_distance(const char *a, const char *b)
{
    /* optimal string alignment: insertions, deletions, substitutions and
       transpositions of neighbours each cost 1 (tahn is 1 from tanh) */
    size_t n = strlen(a), m = strlen(b);
    int *d = malloc((n + 1) * (m + 1) * sizeof *d);
    if (!d) return (int)(n > m ? n : m);
#define D(i, j) d[(i) * (m + 1) + (j)]
    for (size_t i = 0; i <= n; i++) D(i, 0) = (int)i;
    for (size_t j = 0; j <= m; j++) D(0, j) = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = D(i - 1, j - 1) + (a[i - 1] != b[j - 1]);
            if (D(i - 1, j) + 1 < best) best = D(i - 1, j) + 1;
            if (D(i, j - 1) + 1 < best) best = D(i, j - 1) + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && D(i - 2, j - 2) + 1 < best)
                best = D(i - 2, j - 2) + 1;
            D(i, j) = best;
        }
    int r = D(n, m);
#undef D
    free(d);
    return r;
}
