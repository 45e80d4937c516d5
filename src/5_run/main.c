/*
 * main.c -- the matdiff command line.
 *
 * Reads the options and the program (argument, -f FILE or standard input)
 * and hands both to md_run (src/5_run/driver.c), which runs the pipeline parse ->
 * shapes -> differentiate -> print and returns the text to write.  md_run
 * runs on a thread with a large stack: the stages recurse over expressions
 * up to MD_MAX_DEPTH levels deep and the default 8 MB main stack is not
 * enough for the deepest legal inputs.
 *
 * Exit codes: 0 success, 1 an error in the input, 2 a usage error,
 * 3 out of memory or an internal error, 4 --check found a gradient that
 * disagrees with finite differences, or could verify nothing.
 */
#include <errno.h>
#include <ctype.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_builtins.h"
#include "md_diag.h"
#include "md_driver.h"
#include "md_shape.h"

#define MD_VERSION "0.1.0"


static const char md_usage[] =
    "Usage: matdiff [OPTIONS] [PROGRAM]\n"
    "Symbolic gradients, Jacobians and Hessians of matrix expressions, derived with the\n"
    "differential method.\n"
    "\n"
    "The program comes from the PROGRAM argument, from -f FILE, or from standard input.\n"
    "A PROGRAM that starts with '-' and holds an operator or a parenthesis (\"-sum(log(p))\")\n"
    "is the program wherever it stands; any other goes after '--' (matdiff -w x -- -lambda).\n"
    "\n"
    "Options:\n"
    "  -w, --wrt NAME[,NAME...]  differentiate with respect to these variables\n"
    "                            (repeatable; default: every variable, in order of appearance)\n"
    "                            A scalar function gets its gradient (the variable's shape);\n"
    "                            a vector or matrix function F its Jacobian d vec(F)/d vec(X)'\n"
    "                            (F's shape when X is a scalar)\n"
    "      --order 1|2           2: the Hessian d2f/d vec(X) d vec(Y)' of a scalar function,\n"
    "                            one block per pair of variables (default 1); with --format c,\n"
    "                            also NAME_hvp (Hessian-vector product) and NAME_hess\n"
    "  -f, --file FILE           read the program from FILE ('-' for standard input)\n"
    "  -c, --check               verify every derivative against central finite differences\n"
    "                            on random data inside the function's domain; fails (exit 4)\n"
    "                            when the worst relative error exceeds 1e-6 or nothing\n"
    "                            could be verified (the line then says 'inconclusive')\n"
    "      --seed N              random seed for --check (default 1)\n"
    "      --format FORMAT       text (default: a program matdiff reads back), latex\n"
    "                            (\\frac{\\partial f}{\\partial X} = ... in an align* environment),\n"
    "                            c, numpy, torch or octave (code; see below)\n"
    "      --standalone          with --format latex: a complete document for pdflatex\n"
    "                            (amsmath and amssymb only)\n"
    "      --transpose top|T     LaTeX transposes as ^\\top (default) or ^T\n"
    "      --hadamard circ|odot  LaTeX Hadamard products as \\circ (default) or \\odot\n"
    "      --steps               show the derivation step by step (Unicode text: ∘ : ᵀ ∂),\n"
    "                            each identity named; with --check every line is verified\n"
    "                            numerically against the gradient\n"
    "  With --format c (C99: f and its gradients; for a vector or matrix F, F, J v, J'u\n"
    "  and the Jacobian J; docs/codegen.md):\n"
    "      --name NAME           the function's name (default f)\n"
    "      --header              print the matching declarations instead\n"
    "      --layout col|row      matrices column-major (default) or row-major\n"
    "      --no-blas             plain loops instead of CBLAS and LAPACK calls (no dependency)\n"
    "      --size n=1000,p=50    known sizes: one plan for them instead of one per size regime\n"
    "  With --format numpy, torch or octave (a Python module or an Octave/MATLAB function\n"
    "  file returning the value and the derivatives; docs/arrays.md):\n"
    "      --name NAME           the function's name (default f)\n"
    "      --self-test           numpy, torch: also check_NAME(*args), which compares the\n"
    "                            gradients with central finite differences\n"
    "  -s, --simplify            print the function itself, simplified, instead of a gradient\n"
    "                            (any shape; the output is again a valid program)\n"
    "  -h, --help                show this help and exit\n"
    "  -V, --version             show the version and exit\n"
    "\n"
    "The language (matrixcalculus.org dialect; see docs/language.md):\n"
    "  statements are separated by newlines or ';', '#' starts a comment;\n"
    "  the last expression is the function; 'name = expr' names a subexpression;\n"
    "  names starting with a-g are scalars, h-z vectors, A-Z matrices, Greek names scalars;\n"
    "  declarations override: scalar a; vector x(n); matrix X(n, p); symmetric S(n); function f\n"
    "  operators, loosest first: + -   * /   .* ./   unary -   ^ .^   ' (transpose)\n"
    "@FUNCTIONS@"
    "             and declared generic functions f(x), with derivatives f'(x), f''(x)\n"
    "\n"
    "Output: text that is itself a valid program: '#' comments (the function and the\n"
    "shapes inferred), declarations where needed, named temporaries 'T = ...', then the\n"
    "gradient (with several variables, one 'dX = ...' line each).\n"
    "\n"
    "Examples:\n"
    "  matdiff --wrt U \"scalar lambda; norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2\"\n"
    "  matdiff -w x --check \"x'*A*x\"\n"
    "  echo 'logdet(X)' | matdiff -w X\n"
    "\n"
    "Exit status: 0 success, 1 error in the input, 2 usage error, 3 internal error,\n"
    "4 --check failed.\n";

typedef struct md_opts {
    char **wrt;
    int nwrt;
    const char *file;
    const char *program;
    md_request rq;
    int latex_style;   /* --transpose or --hadamard was given */
} md_opts;

typedef struct md_job {
    md_opts *o;
    int rc;
} md_job;

static void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "matdiff: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'matdiff --help' for more information.\n");
}

/* md_usage with its @FUNCTIONS@ line filled in from the table of
   built-ins (md_builtins.def), wrapped at 80 columns. */
static void print_usage(void)
{
    const char *at = strstr(md_usage, "@FUNCTIONS@");
    fwrite(md_usage, 1, (size_t)(at - md_usage), stdout);
    md_buf line = {0};
    md_buf_puts(&line, "  functions:");
    for (int i = 0;; i++) {
        const char *nm = i < MD_FN_GENERIC ? md_fns[i].name
                         : i - MD_FN_GENERIC < md_nops ? md_ops[i - MD_FN_GENERIC].name
                         : i - MD_FN_GENERIC - md_nops == 0 ? "vector(c)"
                         : i - MD_FN_GENERIC - md_nops == 1 ? "matrix(c)"
                         : i - MD_FN_GENERIC - md_nops == 2 ? "eye"
                                                             : NULL;
        if (!nm) break;
        if (line.len + 1 + strlen(nm) > 80) {
            printf("%s\n", line.s);
            line.len = 0;
            line.s[0] = 0;
            md_buf_puts(&line, "            ");
        }
        md_buf_printf(&line, " %s", nm);
    }
    printf("%s\n", line.s);
    md_buf_free(&line);
    fputs(at + strlen("@FUNCTIONS@"), stdout);
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0, k;
    char *s = md_xmalloc(cap + 1);
    while ((k = fread(s + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) s = md_xrealloc(s, (cap *= 2) + 1);
    }
    s[n] = 0;
    *len = n;
    return s;
}

static int valid_name(const char *s)
{
    if (!*s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Reads the program (argument, -f FILE or standard input) and runs it. */
static int md_main_run(md_opts *o)
{
    size_t len = 0;
    char *text = NULL;
    const char *name = "<cmdline>";
    if (o->program) {
        text = md_xstrdup(o->program);
        len = strlen(text);
    } else if (o->file && strcmp(o->file, "-") != 0) {
        FILE *f = fopen(o->file, "rb");
        if (!f) {
            fprintf(stderr, "matdiff: cannot open '%s': %s\n", o->file, strerror(errno));
            return MD_EXIT_USAGE;
        }
        text = read_all(f, &len);
        int bad = ferror(f);
        int e = errno;
        fclose(f);
        if (bad) {
            fprintf(stderr, "matdiff: cannot read '%s': %s\n", o->file, strerror(e));
            free(text);
            return MD_EXIT_USAGE;
        }
        name = o->file;
    } else {
        text = read_all(stdin, &len);
        name = "<stdin>";
    }
    o->rq.wrt = (const char *const *)o->wrt;
    o->rq.nwrt = o->nwrt;
    md_buf out = {0};
    int rc = md_run(&o->rq, name, text, len, &out, stderr);
    if (out.s) fputs(out.s, stdout);
    md_buf_free(&out);
    free(text);
    return rc;
}

static void *md_thread(void *arg)
{
    md_job *job = arg;
    job->rc = md_main_run(job->o);
    return NULL;
}

static void md_oom_exit(void) { exit(MD_EXIT_INTERNAL); }

/*
 * A program that starts with '-' (every negative log-likelihood) looks
 * like an option.  An argument is the PROGRAM, not options, when it starts
 * with a single '-' and holds a character no option has (an operator, a
 * parenthesis, a quote, a space, ...), and it is not the value of the
 * option before it: "-sum(Y .* log(P))", "-x'*y", "-2*x".  Returns its
 * index in argv, or 0.  Anything else starting with '-' stays an option;
 * "--" ends the options as usual.
 */
/* name with its Greek letters spelled as the lexer spells them (λ ->
   lambda, x_λ -> x_lambda); any other character is kept, for
   valid_name to refuse.  Takes and returns a malloc'd string. */
static char *ascii_greek(char *name)
{
    md_buf b = {0};
    size_t n = strlen(name);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = md_utf8_decode(name + i, n - i, &cp);
        const char *g = len > 1 ? md_greek_name(cp) : NULL;
        if (g) {
            md_buf_puts(&b, g);
            i += (size_t)len;
        } else {
            md_buf_putc(&b, name[i++]);
        }
    }
    free(name);
    return b.s ? md_buf_take(&b) : md_xstrdup("");
}

#define MD_SHORT_OPTS ":w:f:cshV"   /* getopt's; those with a value: */
#define MD_SHORT_WITH_VALUE "wf"

static int md_program_arg(int argc, char **argv, const struct option *longopts)
{
    for (int k = 1; k < argc; k++) {
        const char *a = argv[k];
        if (!strcmp(a, "--")) return 0;
        if (a[0] != '-' || a[1] == '-' || !a[1]) continue;
        int odd = 0;
        for (const char *q = a + 1; *q; q++)
            if (!isalnum((unsigned char)*q)) odd = 1;
        if (!odd) continue;
        /* the value of the option before it? */
        const char *p = argv[k - 1];
        int value = 0;
        if (p[0] == '-' && p[1] == '-' && p[2] && !strchr(p, '=')) {
            for (const struct option *o = longopts; o->name; o++)
                if (!strncmp(o->name, p + 2, strlen(p + 2)) && o->has_arg == required_argument) value = 1;
        } else if (p[0] == '-' && p[1] != '-' && p[1]) {
            /* a group of short options: the first that takes a value
               (-w, -f) takes the rest of the group, or else argv[k] */
            const char *q = p + 1;
            while (*q && !strchr(MD_SHORT_WITH_VALUE, *q)) q++;
            value = *q && !q[1];
        }
        if (!value) return k;
    }
    return 0;
}

int main(int argc, char **argv)
{
    md_set_oom_handler(md_oom_exit);
    static const struct option longopts[] = {
        {"wrt", required_argument, NULL, 'w'},   {"file", required_argument, NULL, 'f'},
        {"check", no_argument, NULL, 'c'},       {"seed", required_argument, NULL, 'S'},
        {"simplify", no_argument, NULL, 's'},     {"steps", no_argument, NULL, 'D'},
        {"format", required_argument, NULL, 'F'}, {"standalone", no_argument, NULL, 'L'},
        {"transpose", required_argument, NULL, 'T'}, {"hadamard", required_argument, NULL, 'H'},
        {"name", required_argument, NULL, 'N'},  {"header", no_argument, NULL, 'E'},
        {"layout", required_argument, NULL, 'Y'}, {"no-blas", no_argument, NULL, 'B'},
        {"size", required_argument, NULL, 'Z'},  {"order", required_argument, NULL, 'O'},
        {"self-test", no_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    md_opts o = {0};
    md_request_init(&o.rq);
    int c, rc = 0;
    opterr = 0;
    /* a program that starts with '-' is set aside before getopt sees it */
    int pk = md_program_arg(argc, argv, longopts);
    if (pk) {
        o.program = argv[pk];
        for (int k = pk; k < argc; k++) argv[k] = argv[k + 1];   /* argv[argc] is NULL */
        argc--;
    }
    while ((c = getopt_long(argc, argv, MD_SHORT_OPTS, longopts, NULL)) != -1) {
        switch (c) {
        case 'w': {
            char *list = optarg;
            for (char *p = list;;) {
                char *comma = strchr(p, ',');
                size_t n = comma ? (size_t)(comma - p) : strlen(p);
                char *nm = md_xmalloc(n + 1);
                memcpy(nm, p, n);
                nm[n] = 0;
                /* allow spaces after commas: "U, V" */
                char *t = nm;
                while (*t == ' ') t++;
                memmove(nm, t, strlen(t) + 1);
                while (*nm && nm[strlen(nm) - 1] == ' ') nm[strlen(nm) - 1] = 0;
                nm = ascii_greek(nm);   /* --wrt λ is --wrt lambda, as in the program */
                if (!valid_name(nm)) {
                    usage_error("--wrt: '%s' is not a variable name", nm);
                    free(nm);
                    rc = MD_EXIT_USAGE;
                    goto out;
                }
                o.wrt = md_xrealloc(o.wrt, (size_t)(o.nwrt + 1) * sizeof *o.wrt);
                o.wrt[o.nwrt++] = nm;
                if (!comma) break;
                p = comma + 1;
            }
            break;
        }
        case 'f': o.file = optarg; break;
        case 'c': o.rq.check = 1; break;
        case 's': o.rq.simplify = 1; break;
        case 'D': o.rq.steps = 1; break;
        case 'F':
            if (!strcmp(optarg, "latex")) o.rq.format = MD_FORMAT_LATEX;
            else if (!strcmp(optarg, "c")) o.rq.format = MD_FORMAT_C;
            else if (!strcmp(optarg, "text")) o.rq.format = MD_FORMAT_TEXT;
            else if (!strcmp(optarg, "numpy")) o.rq.format = MD_FORMAT_NUMPY;
            else if (!strcmp(optarg, "torch")) o.rq.format = MD_FORMAT_TORCH;
            else if (!strcmp(optarg, "octave")) o.rq.format = MD_FORMAT_OCTAVE;
            else {
                usage_error("--format: '%s' is not a format (text, latex, c, numpy, torch, octave)", optarg);
                rc = MD_EXIT_USAGE;
                goto out;
            }
            break;
        case 'L': o.rq.standalone = 1; break;
        case 'N': o.rq.emit.name = optarg; break;
        case 'K': o.rq.self_test = 1; break;
        case 'E': o.rq.header = 1; break;
        case 'Y':
            if (!strcmp(optarg, "row")) o.rq.emit.row_major = 1;
            else if (!strcmp(optarg, "col")) o.rq.emit.row_major = 0;
            else {
                usage_error("--layout: '%s' is not a layout (col, row)", optarg);
                rc = MD_EXIT_USAGE;
                goto out;
            }
            break;
        case 'B': o.rq.emit.blas = 0; break;
        case 'Z': o.rq.sizes = optarg; break;
        case 'O':
            if (!strcmp(optarg, "1")) o.rq.order = 1;
            else if (!strcmp(optarg, "2")) o.rq.order = 2;
            else {
                usage_error("--order: '%s' is not a derivative order matdiff computes (1: gradients and "
                            "Jacobians, 2: Hessians)", optarg);
                rc = MD_EXIT_USAGE;
                goto out;
            }
            break;
        case 'T':
            o.latex_style = 1;
            if (!strcmp(optarg, "T")) o.rq.style.transpose_T = 1;
            else if (!strcmp(optarg, "top")) o.rq.style.transpose_T = 0;
            else {
                usage_error("--transpose: '%s' is not a style (top for ^\\top, T for ^T)", optarg);
                rc = MD_EXIT_USAGE;
                goto out;
            }
            break;
        case 'H':
            o.latex_style = 1;
            if (!strcmp(optarg, "odot")) o.rq.style.odot = 1;
            else if (!strcmp(optarg, "circ")) o.rq.style.odot = 0;
            else {
                usage_error("--hadamard: '%s' is not a style (circ, odot)", optarg);
                rc = MD_EXIT_USAGE;
                goto out;
            }
            break;
        case 'S': {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno == ERANGE) {
                usage_error("--seed: '%s' is too large", optarg);
                rc = MD_EXIT_USAGE;
                goto out;
            }
            if (errno || *end || !*optarg || optarg[0] == '-') {
                usage_error("--seed: '%s' is not a non-negative integer", optarg);
                rc = MD_EXIT_USAGE;
                goto out;
            }
            o.rq.seed = v;
            break;
        }
        case 'h': print_usage(); goto out;
        case 'V': printf("matdiff %s\n", MD_VERSION); goto out;
        case ':': {
            char opt[64];
            const char *written = argv[optind - 1];
            if (!strncmp(written, "--", 2)) snprintf(opt, sizeof opt, "%.60s", written);
            else snprintf(opt, sizeof opt, "-%c", optopt);
            usage_error("option '%s' needs an argument", opt);
            rc = MD_EXIT_USAGE;
            goto out;
        }
        default: {
            /* getopt_long says which by optopt: 0 for an unknown long
               option (the argument just consumed, argv[optind - 1]); the
               value of a known long option given '=ARG' although it takes
               none; otherwise an unknown short option character, which may
               sit inside a group ("-a^2", a program starting with '-'),
               where optind has not moved and argv[optind - 1] is the
               previous argument. */
            const struct option *lo = NULL;
            for (const struct option *p = longopts; optopt && p->name; p++)
                if (p->val == optopt && p->has_arg == no_argument) lo = p;
            if (optopt == 0) {
                char opt[64];
                snprintf(opt, sizeof opt, "%.60s", argv[optind - 1]);
                char *eq = strchr(opt, '=');
                if (eq) *eq = 0;
                usage_error("unknown option '%s'", opt);
            } else if (lo && !strncmp(argv[optind - 1], "--", 2) && strchr(argv[optind - 1], '=') &&
                       !strncmp(lo->name, argv[optind - 1] + 2,
                                (size_t)(strchr(argv[optind - 1], '=') - argv[optind - 1] - 2))) {
                /* --check=1, or an abbreviation --che=1, of this option */
                usage_error("option '--%s' takes no argument", lo->name);
            } else {
                /* an unknown letter in a group ("-lambda", a negated
                   name) may be a program: say how to pass one (those with
                   an operator, "-sum(x)", md_program_arg already took) */
                int program = 0;
                for (int k = 1; k < argc && !program; k++)
                    if (argv[k][0] == '-' && argv[k][1] != '-' && strchr(argv[k], optopt) && strlen(argv[k]) > 2)
                        program = 1;
                char opt[3] = {'-', (char)optopt, 0};
                usage_error(program ? "unknown option '%s' (a program that starts with '-' goes after '--': "
                                      "matdiff [OPTIONS] -- PROGRAM)"
                                    : "unknown option '%s'",
                            opt);
            }
            rc = MD_EXIT_USAGE;
            goto out;
        }
        }
    }
    if (optind < argc && !o.program) o.program = argv[optind++];
    if (optind < argc) {
        usage_error("unexpected argument '%s' (quote the program as one argument)", argv[optind]);
        rc = MD_EXIT_USAGE;
        goto out;
    }
    int code = o.rq.format == MD_FORMAT_C || md_format_is_array(o.rq.format);
    if (strcmp(o.rq.emit.name, "f") && !code) {
        usage_error("%s", "--name goes with --format c, numpy, torch or octave");
        rc = MD_EXIT_USAGE;
        goto out;
    }
    if ((o.rq.header || o.rq.emit.row_major || !o.rq.emit.blas || o.rq.sizes) && o.rq.format != MD_FORMAT_C) {
        usage_error("%s", "--header, --layout, --no-blas and --size go with --format c");
        rc = MD_EXIT_USAGE;
        goto out;
    }
    if (o.rq.self_test && o.rq.format != MD_FORMAT_NUMPY && o.rq.format != MD_FORMAT_TORCH) {
        usage_error("%s", "--self-test adds check_NAME to the Python code: use it with --format numpy or torch");
        rc = MD_EXIT_USAGE;
        goto out;
    }
    if (code && (o.rq.steps || o.rq.simplify)) {
        usage_error("%s", "--format c, numpy, torch and octave emit the function and its derivatives: no --steps or --simplify");
        rc = MD_EXIT_USAGE;
        goto out;
    }
    if (o.latex_style && o.rq.format != MD_FORMAT_LATEX) {
        usage_error("%s", "--transpose and --hadamard choose LaTeX spellings: use them with --format latex");
        rc = MD_EXIT_USAGE;
        goto out;
    }
    if (o.rq.simplify && o.rq.steps) {
        usage_error("%s", "--simplify prints the function itself: it has no --steps");
        rc = MD_EXIT_USAGE;
        goto out;
    }
    if (o.rq.standalone && o.rq.format != MD_FORMAT_LATEX) {
        usage_error("%s", "--standalone makes a LaTeX document: use it with --format latex");
        rc = MD_EXIT_USAGE;
        goto out;
    }
    if (o.rq.simplify && o.rq.format == MD_FORMAT_LATEX) {
        usage_error("%s", "--simplify prints a program: it has no LaTeX form (use --format text)");
        rc = MD_EXIT_USAGE;
        goto out;
    }
    if (o.rq.simplify && (o.rq.check || o.nwrt || o.rq.order == 2)) {
        usage_error("%s", "--simplify prints the function itself: it takes no --wrt, --order or --check");
        rc = MD_EXIT_USAGE;
        goto out;
    }
    if (o.program && o.file) {
        usage_error("%s", "give the program either as an argument or with -f, not both");
        rc = MD_EXIT_USAGE;
        goto out;
    }

    {
        md_job job = {&o, 0};
        pthread_attr_t attr;
        pthread_t th;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, (size_t)1 << 30);
        if (pthread_create(&th, &attr, md_thread, &job) != 0) {
            /* no big stack to be had: run here and hope the input is shallow */
            rc = md_main_run(&o);
        } else {
            pthread_join(th, NULL);
            rc = job.rc;
        }
        pthread_attr_destroy(&attr);
    }
out:
    for (int i = 0; i < o.nwrt; i++) free(o.wrt[i]);
    free(o.wrt);
    /* A result that did not reach its destination (a full disk, a closed
       pipe or stdout) is not a success: the caller would use a truncated
       file. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "matdiff: cannot write the output: %s\n", strerror(errno ? errno : EIO));
        if (rc == MD_EXIT_OK) rc = MD_EXIT_USAGE;
    }
    return rc;
}
