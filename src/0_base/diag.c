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
 * a report is rare and a program is small, so no line table is kept.
 *
 * Columns count characters, as the lexer does (grammar/lexer.l): a
 * well-formed UTF-8 sequence is one column, and so is every byte that
 * starts none (md_utf8_decode decides, for both).  So `λ − x` reports the
 * minus at column 3, as the user counts, not at byte 4.
 *
 * The echoed line is the source line without its newline (and without a
 * CRLF's '\r'), its UTF-8 as it is, so the user sees what was typed.  What
 * a terminal might misdraw or obey is shown as one '?' each: bytes that are
 * not UTF-8, NUL and the other control characters except tab, and the
 * invisible characters that reorder a line (the bidirectional overrides
 * and isolates, the line and paragraph separators), which would make the
 * echo differ from the text matdiff read.
 *
 * The caret line copies the source's tabs and turns every other character
 * into as many blanks as the terminal gives it cells, so the caret lands
 * under the culprit whatever the tab width: one cell for most characters,
 * none for combining marks and zero-width ones (a byte-order mark), two
 * for the wide East Asian ones.  md_diag_cells is the one table of those
 * widths; it is approximate (Unicode's East Asian Width and a terminal's
 * wcwidth differ in corners), which only matters for characters that the
 * language rejects anyway.
 *
 * A location may point one past the end of its line (an unexpected end of
 * input or of line): the caret is then drawn just after the text.
 */
#include "md_diag.h"

#include <limits.h>
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

int md_utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) return 0;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    /* Unicode's table of well-formed byte sequences (3-7): the second
       byte's range depends on the first; the others are 0x80..0xBF. */
    size_t len;
    uint32_t c;
    unsigned char lo = 0x80, hi = 0xBF;
    if (u[0] >= 0xC2 && u[0] <= 0xDF) {
        len = 2, c = u[0] & 0x1Fu;
    } else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
        len = 3, c = u[0] & 0x0Fu;
        if (u[0] == 0xE0) lo = 0xA0;        /* overlong */
        if (u[0] == 0xED) hi = 0x9F;        /* surrogates */
    } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
        len = 4, c = u[0] & 0x07u;
        if (u[0] == 0xF0) lo = 0x90;        /* overlong */
        if (u[0] == 0xF4) hi = 0x8F;        /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || u[1] < lo || u[1] > hi) return 0;
    c = c << 6 | (u[1] & 0x3Fu);
    for (size_t i = 2; i < len; i++) {
        if (u[i] < 0x80 || u[i] > 0xBF) return 0;
        c = c << 6 | (u[i] & 0x3Fu);
    }
    *cp = c;
    return (int)len;
}

size_t md_utf8_len(const char *s, size_t n)
{
    uint32_t cp;
    int k = md_utf8_decode(s, n, &cp);
    return k ? (size_t)k : n ? 1 : 0;
}

size_t md_loc_offset(const md_source *src, int line, int col)
{
    size_t i = 0;
    for (int l = 1; l < line && i < src->len; i++)
        if (src->text[i] == '\n') l++;
    for (int c = 1; c < col && i < src->len; c++)
        i += md_utf8_len(src->text + i, src->len - i);
    return i;
}

/* How many terminal cells a character takes, by ranges of code points;
   -1: not shown as it is but as '?'.  Everything else takes one cell. */
static const struct md_diag_cells {
    uint32_t lo, hi;
    int cells;
} md_diag_cells[] = {
    { 0x0000, 0x0008, -1 }, { 0x000A, 0x001F, -1 }, { 0x007F, 0x009F, -1 },  /* controls */
    { 0x0300, 0x036F, 0 },    /* combining diacritical marks */
    { 0x061C, 0x061C, -1 },   /* ARABIC LETTER MARK */
    { 0x1100, 0x115F, 2 },    /* Hangul Jamo */
    { 0x200B, 0x200D, 0 },    /* zero width space, non-joiner, joiner */
    { 0x200E, 0x200F, -1 },   /* left-to-right and right-to-left marks */
    { 0x2028, 0x202E, -1 },   /* line and paragraph separators, embeddings, overrides */
    { 0x2060, 0x2064, 0 },    /* word joiner, invisible operators */
    { 0x2066, 0x2069, -1 },   /* isolates */
    { 0x20D0, 0x20FF, 0 },    /* combining marks for symbols */
    { 0x2E80, 0x303E, 2 },    /* CJK radicals, punctuation, ideographic space */
    { 0x3041, 0xA4CF, 2 },    /* kana, CJK ideographs, Yi */
    { 0xAC00, 0xD7A3, 2 },    /* Hangul syllables */
    { 0xF900, 0xFAFF, 2 },    /* CJK compatibility ideographs */
    { 0xFE00, 0xFE0F, 0 },    /* variation selectors */
    { 0xFE30, 0xFE4F, 2 },    /* CJK compatibility forms */
    { 0xFEFF, 0xFEFF, 0 },    /* ZERO WIDTH NO-BREAK SPACE (byte-order mark) */
    { 0xFF00, 0xFF60, 2 },    /* fullwidth forms */
    { 0xFFE0, 0xFFE6, 2 },
    { 0x1F300, 0x1F64F, 2 },  /* pictographs, emoticons */
    { 0x1F900, 0x1F9FF, 2 },
    { 0x20000, 0x3FFFD, 2 },  /* CJK ideographs beyond the BMP */
};

/* The cells of the character at s (len bytes, md_utf8_len's), -1 for '?'. */
static int md_diag_width(const char *s, size_t len)
{
    uint32_t cp;
    if (md_utf8_decode(s, len, &cp) == 0) return -1;
    for (size_t i = 0; i < sizeof md_diag_cells / sizeof md_diag_cells[0]; i++)
        if (cp >= md_diag_cells[i].lo && cp <= md_diag_cells[i].hi) return md_diag_cells[i].cells;
    return 1;
}

/* Under the character at s (len bytes): a tab for a tab, else fill once
   per cell it takes. */
static void md_diag_under(FILE *f, const char *s, size_t len, char fill)
{
    if (*s == '\t') {
        fputc('\t', f);
        return;
    }
    int w = md_diag_width(s, len);
    for (int i = 0; i < (w < 0 ? 1 : w); i++) fputc(fill, f);
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
    for (size_t i = 0, k; i < n; i += k) {
        k = md_utf8_len(s + i, n - i);
        if (s[i] != '\t' && md_diag_width(s + i, k) < 0) fputc('?', f);
        else fwrite(s + i, 1, k, f);
    }
    fputc('\n', f);

    /* Blanks under the columns before loc.col (past the text, one each),
       the caret, then tildes under the rest of the range on this line. */
    size_t i = 0, k = 0;
    int col = 1;
    for (; col < loc.col; col++, i += k) {
        k = md_utf8_len(s + i, n - i);
        if (k) md_diag_under(f, s + i, k, ' ');
        else fputc(' ', f);
    }
    fputc('^', f);
    i += md_utf8_len(s + i, n - i);
    int last = loc.end_line == loc.line && loc.end_col > 0 ? loc.end_col : INT_MAX;
    if (loc.end_line > loc.line) last = INT_MAX;
    for (col++; col <= last && i < n; col++, i += k) {
        k = md_utf8_len(s + i, n - i);
        md_diag_under(f, s + i, k, '~');
    }
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
