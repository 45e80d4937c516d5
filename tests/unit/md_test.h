/*
 * md_test.h -- shared helpers for the Check unit tests in tests/unit/.
 *
 * Each test file is its own Check suite with its own main (MD_TEST_MAIN),
 * so a failing stage is visible by the binary's name.
 */
#ifndef MD_TEST_H
#define MD_TEST_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_ast.h"
#include "md_expr.h"
#include "md_shape.h"

#define MD_TEST_MAIN(suite_fn)                                         \
    int main(void)                                                     \
    {                                                                  \
        SRunner *sr = srunner_create(suite_fn());                      \
        srunner_run_all(sr, CK_NORMAL);                                \
        int nfailed = srunner_ntests_failed(sr);                       \
        srunner_free(sr);                                              \
        return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;             \
    }

/* A program parsed and typechecked, with everything it reported. */
typedef struct tprog {
    md_source src;
    md_program *prog;
    md_ctx *ctx;
    md_typed typed;
    FILE *errf;
    char *err;        /* everything reported, NUL-terminated */
    size_t errlen;
    int rc;           /* 0: parsed and typechecked */
} tprog;

/* Parses and typechecks text; rc says whether that worked.  no_factor
   builds the graph as the C backend does (md_ctx.no_factor). */
static inline tprog *load_with(const char *text, int no_factor)
{
    tprog *p = calloc(1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    md_source_init(&p->src, "<t>", text, strlen(text));
    p->errf = open_memstream(&p->err, &p->errlen);
    ck_assert_ptr_nonnull(p->errf);
    p->src.err = p->errf;
    p->ctx = md_ctx_new();
    p->ctx->no_factor = no_factor;
    p->prog = md_parse(&p->src);
    p->rc = p->prog && md_typecheck(p->prog, p->ctx, &p->typed) == 0 ? 0 : -1;
    fflush(p->errf);
    return p;
}

static inline tprog *load_any(const char *text) { return load_with(text, 0); }

/* The same for a text that must be valid. */
static inline tprog *load(const char *text)
{
    tprog *p = load_any(text);
    ck_assert_msg(p->rc == 0, "'%s' failed: %s", text, p->err);
    return p;
}

static inline void unload(tprog *p)
{
    fclose(p->errf);
    free(p->err);
    md_typed_free(&p->typed);
    md_program_free(p->prog);
    md_ctx_free(p->ctx);
    free(p);
}

/*
 * The programs of the golden cases (tests/golden/FILE.test for the files
 * listed) that exit 0 and take no option changing what is computed: for
 * each, fn(name, program, args, arg).  Programs made by printf or a
 * generator are left out.
 */
static inline int golden_usable(const char *args, const char *prog)
{
    static const char *const bad[] = {"-s", "--simplify", "--format", "--steps", "@PROG", "@FILE", "-h",
                                      "--help", "-V", "--version", "-f", NULL};
    char buf[512];
    snprintf(buf, sizeof buf, " %s ", args);
    for (int i = 0; bad[i]; i++) {
        char w[64];
        snprintf(w, sizeof w, " %s ", bad[i]);
        if (strstr(buf, w)) return 0;
    }
    return strlen(prog) > 0 && strlen(prog) < 2000;
}

static inline void golden_programs(const char *const *files,
                                   void (*fn)(const char *name, const char *prog, const char *args, void *arg),
                                   void *arg)
{
    for (int k = 0; files[k]; k++) {
        char path[128];
        snprintf(path, sizeof path, "tests/golden/%s.test", files[k]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        char line[4096], name[256] = "", args[512] = "";
        md_buf prog = {0};
        int in_prog = 0, exit0 = 0, have = 0;
        for (;;) {
            char *l = fgets(line, sizeof line, f);
            int is_dir = l && !strncmp(l, "%%", 2);
            if (in_prog && l && !is_dir) {
                md_buf_puts(&prog, l);
                continue;
            }
            in_prog = 0;
            if (!l || !strncmp(l, "%%case ", 7)) {
                if (have && exit0 && prog.s && golden_usable(args, prog.s)) fn(name, prog.s, args, arg);
                if (!l) break;
                snprintf(name, sizeof name, "%s", l + 7);
                name[strcspn(name, "\n")] = 0;
                args[0] = 0;
                md_buf_free(&prog);
                exit0 = 0;
                have = 1;
                continue;
            }
            if (!strncmp(l, "%%args ", 7)) {
                snprintf(args, sizeof args, "%s", l + 7);
                args[strcspn(args, "\n")] = 0;
            } else if (!strncmp(l, "%%program", 9)) {
                if (strcmp(l, "%%program\n") != 0) have = 0;   /* printf / generated programs */
                else in_prog = 1;
            } else if (!strncmp(l, "%%exit 0", 8) && (l[8] == '\n' || l[8] == 0)) {
                exit0 = 1;
            }
        }
        md_buf_free(&prog);
        fclose(f);
    }
}

static inline int find(const tprog *p, const char *name)
{
    int s = md_ctx_find_sym(p->ctx, name);
    ck_assert_msg(s >= 0, "no variable '%s'", name);
    return s;
}

#endif
