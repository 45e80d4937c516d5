/*
 * emit_names.c -- the C names of the emitted code: the function, its
 * dims struct and fields, the parameters, the generic-function callbacks,
 * and the size expressions every statement writes (dims->n * dims->p).
 *
 * The emitted file is compiled in someone else's project, next to their
 * names and their headers, so every name it makes up is checked here
 * against one table, em_reserved: C's and C++'s keywords, what the
 * emitted code itself calls or declares (sin, memcpy, dims, work, ...),
 * the prefixes it keeps to itself, and the macros of the headers it
 * includes or sits next to (I and complex from <complex.h>, which
 * OpenBLAS's <cblas.h> includes; FP_NAN, isnan, M_PI from <math.h>;
 * EOF, errno, offsetof, unix, ...), which no scope can shadow:
 *
 *  - everything internal starts with md_ (md_t12, md_lu3, md_mm); the
 *    loop indices are md_i and md_j, so no variable can shadow them;
 *  - a variable whose name is reserved gets a trailing underscore
 *    (double_, exp_, I_, EOF_); one in a family of reserved names that no
 *    suffix leaves (md_..., _..., FP_..., M_PI...) gets a v_ prefix
 *    (v_md_x, v_FP_NAN); a character outside [A-Za-z0-9_] (a Greek
 *    letter) is spelled _xHH;
 *  - a dimension is a field of NAME_dims: its declared name, else named
 *    after the first variable that carries it (X_rows, X_cols, x_len).
 *    Fields live in the struct's namespace, so parameters may reuse them;
 *  - generic functions (`function h`) have no definition, so they become
 *    callbacks the caller defines: double NAME_h(double) for h and
 *    NAME_h_d<k>(double) for its k-th derivative.  Prefixing them with
 *    NAME keeps them from clashing with the function itself (the default
 *    NAME is f, and so is the usual name of a generic function).
 *
 * A --name that is not a usable C identifier, or is reserved (a keyword,
 * a macro), is a usage error reported here, not renamed: the caller calls
 * the function by the name they chose.  A callback that would clash is an
 * error too.  --size reads the same field names (md_emit_dim_fields), so
 * it accepts exactly what the struct declares.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "emit_internal.h"

/* ---- names ------------------------------------------------------------ */

/*
 * The one table of names the emitted code must not use for a name it
 * makes up (a parameter, a dims field, the function, a callback), in
 * groups; `what` says where a group comes from, and the message for a
 * --name in it quotes it.  An entry with a * is a family, the * standing
 * for any characters.  A variable in a family whose * ends the entry gets
 * a v_ prefix (no suffix leaves the family), any other reserved name a
 * trailing underscore; no entry starts with v_, so the prefix always
 * gets out.
 *
 * The preprocessor replaces a macro's name wherever it stands, shadowing
 * does not apply, so every macro that can be in scope counts: those of the
 * headers the .c includes (<math.h>, <stddef.h>, <string.h>, and <cblas.h>
 * in BLAS mode, which in OpenBLAS includes <complex.h>, <stdio.h>,
 * <stdint.h> and on Linux <sched.h>), with GCC's default GNU mode, with
 * _GNU_SOURCE and with C23; those of the standard headers a caller is
 * likely to include next to the header (<stdlib.h> with glibc's
 * extras, <assert.h>, <errno.h>, <stdbool.h>, ...); and the lowercase
 * macros GCC and Clang predefine.  Function-like macros only expand before
 * a "(", which a variable never is, but the function and the callbacks
 * are, so they are here too.  Functions and types need to be here only
 * when the body of the function refers to them (a parameter named exp
 * would hide exp()), and C++ keywords because the header is C++ too.
 */
static const struct {
    const char *what;
    const char *names;   /* separated by spaces */
} em_reserved[] = {
    {"a C keyword (C23 and GNU C included)",
     "auto break case char const continue default do double else enum extern float for goto if "
     "inline int long register restrict return short signed sizeof static struct switch typedef "
     "union unsigned void volatile while alignas alignof bool constexpr false nullptr static_assert "
     "thread_local true typeof typeof_unqual asm fortran"},
    {"a C++ keyword (the header is C++ too)",
     "and and_eq bitand bitor catch char8_t char16_t char32_t class compl concept consteval constinit "
     "const_cast co_await co_return co_yield decltype delete dynamic_cast explicit export friend "
     "mutable namespace new noexcept not not_eq operator or or_eq private protected public "
     "reinterpret_cast requires static_cast template this throw try typeid typename using virtual "
     "wchar_t xor xor_eq"},
    {"a name the emitted code calls or declares",
     "sin cos tan asin acos atan exp log tanh fabs fmax sqrt pow log1p memcpy memset size_t dims work "
     "main dgetrf_ dgetrs_ dgetri_"},
    {"reserved for the emitted code's own names", "md_* MD_*"},
    {"reserved for the C implementation", "_*"},
    {"a name of <cblas.h> (CBLAS, OpenBLAS)",
     "cblas_* Cblas* CBLAS* OPENBLAS_* openblas_* BLASFUNC FLOATRET xdouble"},
    {"a macro of <math.h>",
     "NAN INFINITY HUGE_VAL* SNAN* FP_* MATH_ERRNO MATH_ERREXCEPT math_errhandling fpclassify "
     "isfinite isinf isnan isnormal signbit isgreater isgreaterequal isless islessequal islessgreater "
     "isunordered iscanonical iseqsig issignaling issubnormal iszero MAXFLOAT M_E* M_LOG* M_LN* "
     "M_PI* M_1_PI* M_2_PI* M_2_SQRTPI* M_SQRT*"},
    {"a macro of <complex.h> (OpenBLAS's <cblas.h> includes it)", "I complex imaginary CMPLX*"},
    {"a macro of <stddef.h> or <string.h>", "NULL offsetof unreachable strdupa strndupa"},
    {"a macro of <limits.h> (the size checks use it)",
     "CHAR_BIT SCHAR_* UCHAR_* CHAR_MIN CHAR_MAX CHAR_WIDTH SHRT_* USHRT_* INT_MAX INT_MIN INT_WIDTH UINT_MAX "
     "UINT_WIDTH LONG_* ULONG_* LLONG_* ULLONG_* MB_LEN_MAX BOOL_WIDTH BITINT_MAXWIDTH"},
    {"a macro of <stdio.h> (OpenBLAS's <cblas.h> includes it; with Clang, so is <stdarg.h>)",
     "EOF BUFSIZ FILENAME_MAX FOPEN_MAX TMP_MAX L_tmpnam L_ctermid L_cuserid P_tmpdir SEEK_* "
     "RENAME_* stdin stdout stderr va_arg va_copy va_end va_start"},
    {"a macro of <stdint.h> (OpenBLAS's <cblas.h> includes it)",
     "INT*_MAX INT*_MIN INT*_WIDTH INT*_C UINT*_MAX UINT*_WIDTH UINT*_C PTRDIFF_MAX PTRDIFF_MIN "
     "PTRDIFF_WIDTH SIZE_MAX SIZE_WIDTH SIG_ATOMIC_MAX SIG_ATOMIC_MIN SIG_ATOMIC_WIDTH WCHAR_MAX "
     "WCHAR_MIN WCHAR_WIDTH WINT_MAX WINT_MIN WINT_WIDTH"},
    {"a macro of <sched.h> or <time.h> (OpenBLAS's <cblas.h> includes them on Linux)",
     "sched_priority CPU_* CLONE_* SCHED_* CSIGNAL CLOCKS_PER_SEC TIME_UTC"},
    {"a macro of <stdlib.h> (with glibc's additions)",
     "EXIT_SUCCESS EXIT_FAILURE RAND_MAX MB_CUR_MAX alloca BYTE_ORDER BIG_ENDIAN LITTLE_ENDIAN "
     "PDP_ENDIAN FD_SETSIZE NFDBITS FD_SET FD_CLR FD_ISSET FD_ZERO WNOHANG WUNTRACED WSTOPPED WEXITED "
     "WCONTINUED WNOWAIT WEXITSTATUS WTERMSIG WSTOPSIG WIFEXITED WIFSIGNALED WIFSTOPPED WIFCONTINUED "
     "htobe16 htobe32 htobe64 htole16 htole32 htole64 be16toh be32toh be64toh le16toh le32toh "
     "le64toh"},
    {"a macro of <assert.h>, <errno.h>, <stdalign.h> or <stdnoreturn.h>",
     "assert errno EDOM ERANGE EILSEQ noreturn"},
    {"a macro GCC and Clang predefine (in their default GNU modes)", "linux unix i386"},
};

/* Whether s matches entry p (len n) of em_reserved: the characters
   before a * begin s, those after it end s. */
static int em_entry_matches(const char *p, size_t n, const char *s)
{
    const char *star = memchr(p, '*', n);
    size_t len = strlen(s);
    if (!star) return len == n && !strncmp(s, p, n);
    size_t pre = (size_t)(star - p), post = n - pre - 1;
    return len >= pre + post && !strncmp(s, p, pre) && !strncmp(s + len - post, star + 1, post);
}

/* The group of em_reserved s is in, or -1; *family tells whether an entry
   ending in * matched (appending to s cannot leave that one). */
static int em_reserved_group(const char *s, int *family)
{
    for (size_t g = 0; g < sizeof em_reserved / sizeof em_reserved[0]; g++)
        for (const char *p = em_reserved[g].names; *p;) {
            size_t n = strcspn(p, " ");
            if (em_entry_matches(p, n, s)) {
                if (family) *family = p[n - 1] == '*';
                return (int)g;
            }
            p += n;
            p += *p == ' ';
        }
    return -1;
}

/* Reserved by the table, or taken by a name already made up. */
static int em_is_reserved(const emitter *E, const char *s)
{
    if (em_reserved_group(s, NULL) >= 0) return 1;
    for (int i = 0; i < E->nreserved; i++)
        if (!strcmp(s, E->reserved[i])) return 1;
    return 0;
}

static void em_reserve(emitter *E, char *s)
{
    if (E->nreserved == E->capreserved) {
        E->capreserved = E->capreserved ? 2 * E->capreserved : 32;
        E->reserved = md_xrealloc(E->reserved, (size_t)E->capreserved * sizeof *E->reserved);
    }
    E->reserved[E->nreserved++] = s;
}

/* A C identifier for base: characters outside [A-Za-z0-9_] become _xHH;
   a name that starts with a digit or is in a family of em_reserved gets
   a v_ prefix, and underscores are appended until it is neither reserved
   nor taken.  The result is reserved (owned by E). */
static char *em_ident(emitter *E, const char *base)
{
    md_buf b = {0};
    for (const unsigned char *p = (const unsigned char *)base; *p; p++) {
        if (isalnum(*p) || *p == '_') md_buf_putc(&b, (char)*p);
        else md_buf_printf(&b, "_x%02X", *p);
    }
    for (;;) {
        int family = 0;
        if (!b.len || isdigit((unsigned char)b.s[0]) || (em_reserved_group(b.s, &family) >= 0 && family)) {
            char *t = md_buf_take(&b);
            md_buf_printf(&b, "v_%s", t);
            free(t);
        } else if (em_is_reserved(E, b.s)) {
            md_buf_putc(&b, '_');
        } else {
            break;
        }
    }
    char *s = md_buf_take(&b);
    em_reserve(E, s);
    return s;
}

static int em_valid_name(const char *s)
{
    if (!s || !*s || !(isalpha((unsigned char)*s) || *s == '_')) return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_')) return 0;
    return 1;
}

/* Adds the callback for generic function func, derivative order. */
void em_add_gen(emitter *E, int func, int order)
{
    for (int i = 0; i < E->ngens; i++)
        if (E->gens[i].func == func && E->gens[i].order == order) return;
    md_buf b = {0};
    md_buf_printf(&b, "%s_%s", E->name, E->ctx->funcs[func]);
    if (order) md_buf_printf(&b, "_d%d", order);
    E->gens = md_xrealloc(E->gens, (size_t)(E->ngens + 1) * sizeof *E->gens);
    E->gens[E->ngens].name = md_buf_take(&b);
    E->gens[E->ngens].func = func;
    E->gens[E->ngens].order = order;
    E->ngens++;
}

static int em_gen_cmp(const void *a, const void *b)
{
    const em_gen *x = a, *y = b;
    return x->func != y->func ? x->func - y->func : x->order - y->order;
}

/*
 * The names of the interface: callbacks (already collected), dimension
 * fields, parameters.  Returns -2 after a message on err when --name is
 * not usable, -1 when a callback's name clashes.
 */
int em_names(emitter *E)
{
    md_ctx *ctx = E->ctx;
    if (!em_valid_name(E->name)) {
        fprintf(E->err, "matdiff: --name '%s' is not usable as a C function name "
                        "(letters, digits and _, not a keyword, not starting with md_ or _)\n", E->name);
        return -2;
    }
    /* a reserved name is refused like a keyword, not renamed: the caller
       calls the function by the name they gave */
    int g = em_reserved_group(E->name, NULL);
    if (g >= 0) {
        fprintf(E->err, "matdiff: --name '%s' is not usable as a C function name: it is %s\n", E->name,
                em_reserved[g].what);
        return -2;
    }
    if (E->ngens > 1) qsort(E->gens, (size_t)E->ngens, sizeof *E->gens, em_gen_cmp);
    md_buf b = {0};
    md_buf_printf(&b, "%s_dims", E->name);
    em_reserve(E, md_buf_take(&b));
    md_buf_printf(&b, "%s_workspace", E->name);
    em_reserve(E, md_buf_take(&b));
    md_buf_printf(&b, "%s_MATDIFF_H", E->name);   /* the include guard, a macro */
    em_reserve(E, md_buf_take(&b));
    em_reserve(E, md_xstrdup(E->name));
    if (E->map) {   /* a non-scalar function's file: every emitter reserves these */
        static const char *const sfx[] = {"_jvp", "_vjp", "_jac", "_jac_workspace"};
        for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
            md_buf_printf(&b, "%s%s", E->name, sfx[i]);
            em_reserve(E, md_buf_take(&b));
        }
    }
    if (E->o->hvp) {   /* every emitter of the file reserves the same names */
        md_buf_printf(&b, "%s_hvp", E->name);
        em_reserve(E, md_buf_take(&b));
        md_buf_printf(&b, "%s_hess", E->name);
        em_reserve(E, md_buf_take(&b));
        md_buf_printf(&b, "%s_hess_workspace", E->name);
        em_reserve(E, md_buf_take(&b));
        md_buf_printf(&b, "%s_hess_blocks", E->name);
        em_reserve(E, md_buf_take(&b));
    }
    for (int i = 0; i < E->ngens; i++) {
        if (em_is_reserved(E, E->gens[i].name)) {
            fprintf(E->err, "matdiff: the callback %s for generic function '%s' would clash with "
                            "another name of the emitted code; rename the function or use --name\n",
                    E->gens[i].name, ctx->funcs[E->gens[i].func]);
            return -1;
        }
        em_reserve(E, md_xstrdup(E->gens[i].name));
    }

    /* dimensions: declared names, else after the first variable carrying them */
    E->dimfield = md_xcalloc((size_t)ctx->ndims + 1, sizeof *E->dimfield);
    E->dimnote = md_xcalloc((size_t)ctx->ndims + 1, sizeof *E->dimnote);
    int ndimreserved = E->nreserved;
    for (int d = 1; d < ctx->ndims; d++) {
        /* a product dimension (n*p: vec, kron, a Hessian block of a matrix
           variable) is never a field: the emitted code does not reach
           one (md_emit_check) */
        if (md_dim_is_product(ctx, d)) continue;
        const char *carrier = NULL, *what = NULL;
        for (int s = 0; s < ctx->nsyms && !carrier; s++) {
            const md_symbol *sy = &ctx->syms[s];
            int vec = sy->rows == MD_DIM_ONE || sy->cols == MD_DIM_ONE;
            if (sy->rows == d) carrier = sy->name, what = vec ? "len" : "rows";
            else if (sy->cols == d) carrier = sy->name, what = vec ? "len" : "cols";
        }
        md_buf_free(&b);
        if (ctx->dims[d].declared || !carrier) {
            md_buf_puts(&b, ctx->dims[d].name);
            E->dimnote[d] = md_xstrdup(ctx->dims[d].declared ? "declared in the program" : "");
        } else {
            md_buf_printf(&b, "%s_%s", carrier, what);
            md_buf nb = {0};
            md_buf_printf(&nb, "%s of %s", !strcmp(what, "len") ? "length" : what, carrier);
            E->dimnote[d] = md_buf_take(&nb);
        }
        E->dimfield[d] = em_ident(E, b.s);
    }
    md_buf_free(&b);
    /* field names live in the struct's namespace: parameters may reuse
       them (dimfield keeps ownership) */
    E->nreserved = ndimreserved;

    E->pname = md_xcalloc((size_t)ctx->nsyms + 1, sizeof *E->pname);
    for (int s = 0; s < ctx->nsyms; s++) E->pname[s] = em_ident(E, ctx->syms[s].name);
    E->gname = md_xcalloc((size_t)E->n + 1, sizeof *E->gname);
    for (int i = 0; i < E->n; i++) {
        if (E->onames) md_buf_puts(&b, E->onames[i]);
        else md_buf_printf(&b, "%s%s", E->oprefix, ctx->syms[E->wrt[i]].name);
        E->gname[i] = em_ident(E, b.s);
        md_buf_free(&b);
    }
    return 0;
}

/* ---- sizes ------------------------------------------------------------ */

/* Dimension d as C: dims->FIELD, or 1. */
void em_dim(const emitter *E, int d, md_buf *b)
{
    const md_dim *dm = &E->ctx->dims[d];
    if (d == MD_DIM_ONE) {
        md_buf_puts(b, "1");
    } else if (dm->nfac) {   /* a product dimension (vec, kron): its factors' product */
        md_buf_putc(b, '(');
        for (int k = 0; k < dm->nfac; k++) md_buf_printf(b, "%sdims->%s", k ? " * " : "", E->dimfield[dm->fac[k]]);
        md_buf_putc(b, ')');
    } else {
        md_buf_printf(b, "dims->%s", E->dimfield[d]);
    }
}

/* Dimension d as a C double: "(double)dims->n", "1.0", or for a product
   "((double)dims->n * (double)dims->p)", which cannot overflow. */
void em_dim_d(const emitter *E, int d, md_buf *b)
{
    const md_dim *dm = &E->ctx->dims[d];
    if (d == MD_DIM_ONE) {
        md_buf_puts(b, "1.0");
    } else if (dm->nfac) {
        md_buf_putc(b, '(');
        for (int k = 0; k < dm->nfac; k++)
            md_buf_printf(b, "%s(double)dims->%s", k ? " * " : "", E->dimfield[dm->fac[k]]);
        md_buf_putc(b, ')');
    } else {
        md_buf_printf(b, "(double)dims->%s", E->dimfield[d]);
    }
}

/* "dims->n * dims->p", "dims->n" or "1" (as long). */
char *em_size(const emitter *E, int r, int c)
{
    md_buf b = {0};
    if (r == MD_DIM_ONE && c == MD_DIM_ONE) md_buf_puts(&b, "1");
    else if (r == MD_DIM_ONE) em_dim(E, c, &b);
    else if (c == MD_DIM_ONE) em_dim(E, r, &b);
    else {
        em_dim(E, r, &b);
        md_buf_puts(&b, " * ");
        em_dim(E, c, &b);
    }
    return md_buf_take(&b);
}

/* The same as a size_t expression. */
char *em_size_t(const emitter *E, int r, int c)
{
    md_buf b = {0};
    if (r == MD_DIM_ONE && c == MD_DIM_ONE) md_buf_puts(&b, "1");
    else if (r == MD_DIM_ONE || c == MD_DIM_ONE) {
        md_buf_puts(&b, "(size_t)");
        em_dim(E, r == MD_DIM_ONE ? c : r, &b);
    } else {
        md_buf_puts(&b, "(size_t)");
        em_dim(E, r, &b);
        md_buf_puts(&b, " * (size_t)");
        em_dim(E, c, &b);
    }
    return md_buf_take(&b);
}
