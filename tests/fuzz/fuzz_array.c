/*
 * fuzz_array.c -- libFuzzer harness for the array formats: --format
 * numpy, torch and octave (src/4_emit/emit_array.c, docs/arrays.md).
 *
 * Every input is one program (no mode byte), run in all three formats
 * for the gradients (Jacobians; NumPy also with --self-test), then, for
 * inputs of at most 200 bytes (as fuzz_grad), with --order 2 in one of
 * them, chosen by the input's length: a Hessian has a block per pair of
 * variables, and a 235-byte chain of 117 factors in 30 variables makes
 * 900 blocks, 4 MB of code and 3-4 s in the release build (13 s as text);
 * the derivation is the same for every format, only the spelling
 * differs.  Besides the rules of fuzz_common.h (no internal error, an
 * input error says why, success prints something; what ASan, UBSan and
 * LeakSanitizer report), a construct the emitter cannot write must be a
 * clean refusal, exit 1 with a message.  On success the code must pass
 * cheap checks of its text (fa_check_python, fa_check_octave):
 *
 *   - brackets balanced outside strings and comments, never closed
 *     before they are opened, each closed by its own kind;
 *   - Python: every line at most 79 columns (PEP 8; make arrays runs
 *     pycodestyle on the golden cases, this on everything the fuzzer
 *     makes), no tab; unless the program has a name of over 24
 *     characters, with which some lines cannot fit;
 *   - Octave: none of the Octave-only syntax MATLAB rejects outside
 *     comments and strings (tests/arrays/matlab_lint.py has the full
 *     list for the emitted files): no '#' or '!' (comments, not, !=),
 *     no double-quoted strings, no endfunction/endif/endfor/endwhile,
 *     no ++, +=, -=, *=, /=, no **, no printf or puts (the emitter
 *     renames a variable of such a name, as it does the keywords).
 *
 * The emitted code is not run (make arrays runs it for the golden cases
 * and random programs in NumPy, PyTorch and Octave).
 */
#include <ctype.h>

#include "fuzz_common.h"

/* Are the brackets of s balanced outside strings (Python: " and ', and
   docstrings; Octave: ' where it opens a string) and comments (# or %)?
   A reason or NULL. */
static const char *fa_brackets(const char *s, int python)
{
    char stack[512];
    int depth = 0;
    const char *p = s;
    while (*p) {
        char c = *p;
        if (python && !strncmp(p, "\"\"\"", 3)) {
            const char *q = strstr(p + 3, "\"\"\"");
            if (!q) return "an unterminated docstring";
            p = q + 3;
            continue;
        }
        if ((python && c == '#') || (!python && c == '%')) {
            while (*p && *p != '\n') p++;
            continue;
        }
        int opens_string = python ? c == '"' || c == '\'' : 0;
        if (!python && c == '\'') {
            /* a quote after a value is a transpose; elsewhere a string */
            const char *b = p;
            while (b > s && b[-1] == ' ') b--;
            char prev = b > s ? b[-1] : '\n';
            opens_string = !(isalnum((unsigned char)prev) || prev == '_' || prev == ')' || prev == ']' ||
                             prev == '\'' || prev == '.');
            if (!opens_string) {
                p++;
                continue;
            }
        }
        if (opens_string) {
            p++;
            while (*p && *p != c && *p != '\n') {
                if (python && *p == '\\' && p[1]) p++;
                p++;
            }
            if (*p != c) return "an unterminated string";
            if (!python && p[1] == '\'') {   /* '' inside an Octave string */
                p += 2;
                while (*p && *p != '\'' && *p != '\n') p++;
                if (*p != '\'') return "an unterminated string";
            }
            p++;
            continue;
        }
        if (c == '(' || c == '[' || c == '{') {
            if (depth == (int)sizeof stack) return "brackets nested too deep for the check";
            stack[depth++] = c;
        } else if (c == ')' || c == ']' || c == '}') {
            char want = c == ')' ? '(' : c == ']' ? '[' : '{';
            if (depth == 0) return "a bracket closed that is not open";
            if (stack[--depth] != want) return "a bracket closed by the wrong kind";
        }
        p++;
    }
    return depth ? "a bracket left open" : NULL;
}

/* Python: brackets, PEP 8's 79 columns, no tab.  A reason or NULL. */
static const char *fa_check_python(const char *s)
{
    const char *why = fa_brackets(s, 1);
    if (why) return why;
    for (const char *line = s; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n > 79) return "a Python line longer than 79 columns";
        if (memchr(line, '\t', n)) return "a tab in the Python code";
        line += n + (end != NULL);
    }
    return NULL;
}

/* Does word w start at p, delimited as an identifier? */
static int fa_word(const char *s, const char *p, const char *w)
{
    size_t n = strlen(w);
    if (strncmp(p, w, n)) return 0;
    if (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) return 0;
    return !(isalnum((unsigned char)p[n]) || p[n] == '_');
}

/* Octave: brackets, and no Octave-only syntax outside comments and
   strings.  A reason or NULL. */
static const char *fa_check_octave(const char *s)
{
    const char *why = fa_brackets(s, 0);
    if (why) return why;
    static const char *const words[] = {"endfunction", "endif", "endfor", "endwhile", "endswitch",
                                        "end_try_catch", "unwind_protect", "printf", "puts", "fputs",
                                        "fdisp", NULL};
    static const char *const ops[] = {"++", "+=", "-=", "*=", "/=", "**", "!", "#", "\"", NULL};
    for (const char *p = s; *p;) {
        if (*p == '%') {   /* a comment to the end of the line */
            while (*p && *p != '\n') p++;
            continue;
        }
        if (*p == '\'') {
            const char *b = p;
            while (b > s && b[-1] == ' ') b--;
            char prev = b > s ? b[-1] : '\n';
            if (!(isalnum((unsigned char)prev) || prev == '_' || prev == ')' || prev == ']' || prev == '\'' ||
                  prev == '.')) {
                p++;   /* a string: to its closing quote ('' inside) */
                while (*p && *p != '\n') {
                    if (*p == '\'' && p[1] == '\'') p += 2;
                    else if (*p == '\'') break;
                    else p++;
                }
                if (*p == '\'') p++;
                continue;
            }
        }
        for (int i = 0; words[i]; i++)
            if (fa_word(s, p, words[i])) return "Octave-only syntax (a keyword or function MATLAB lacks)";
        for (int i = 0; ops[i]; i++)
            if (!strncmp(p, ops[i], strlen(ops[i]))) return "Octave-only syntax (an operator MATLAB rejects)";
        p++;
    }
    return NULL;
}

static const char *const fmt_name[] = {"numpy", "torch", "octave"};
static const md_format fmt_of[] = {MD_FORMAT_NUMPY, MD_FORMAT_TORCH, MD_FORMAT_OCTAVE};

/* The longest name the program could give the code: its longest run of
   identifier bytes, a byte outside ASCII counted 4 (the emitter spells it
   _xHH). */
static size_t fa_longest_name(const uint8_t *data, size_t size)
{
    size_t best = 0, run = 0;
    for (size_t i = 0; i < size; i++) {
        if (isalnum(data[i]) || data[i] == '_') run += 1;
        else if (data[i] >= 0x80) run += 4;
        else run = 0;
        if (run > best) best = run;
    }
    return best;
}

/* One format and order on the program, judged. */
static void fa_run(int f, int order, const uint8_t *data, size_t size)
{
    md_request rq;
    md_request_init(&rq);
    rq.format = fmt_of[f];
    char opts[96];
    snprintf(opts, sizeof opts, "--format %s", fmt_name[f]);
    if (order == 2) rq.order = 2, strcat(opts, " --order 2");
    else if (f == 0) rq.self_test = 1, strcat(opts, " --self-test");
    md_buf out = {0};
    int rc = fuzz_md_run(&rq, opts, 0, data, size, &out);
    if (rc == MD_EXIT_OK) {
        /* names over 24 characters cannot keep a line within 79 columns
           (if X.shape[1] != Y.shape[0]: is not broken): brackets only */
        const char *why = f == 2 ? fa_check_octave(out.s)
                          : fa_longest_name(data, size) > 24 ? fa_brackets(out.s, 1) : fa_check_python(out.s);
        if (why) fuzz_fail(why, opts, data, size, "", out.s);
    }
    md_buf_free(&out);
}

/* The identifiers of the input (runs of letters, digits, _ starting
   with a letter): a bound on the variables and factors. */
static int fa_words(const uint8_t *data, size_t size)
{
    int n = 0;
    for (size_t i = 0; i < size; i++)
        if (isalpha(data[i]) && (i == 0 || !(isalnum(data[i - 1]) || data[i - 1] == '_'))) n++;
    return n;
}

static void one(const uint8_t *data, size_t size)
{
    for (int f = 0; f < 3; f++) fa_run(f, 1, data, size);
    /* the Hessians in one format, by the input's length: the derivation is
       the same for all three, and the slowest seeds take seconds each.
       Only for small programs: sum(A*B*...*H) of 39 factors in 31
       variables is 80 bytes but 961 Hessian blocks, 1 MB of code and
       1.5-4.5 s released (a minute instrumented): the size of the answer,
       not a bug */
    if (size <= 200 && fa_words(data, size) <= 16) fa_run((int)(size % 3), 2, data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_LEN) return 0;
    fuzz_on_big_stack(one, data, size);
    return 0;
}
