/*
 * md_driver.h -- one run of matdiff on one program: the whole pipeline
 * behind the command line, as a library call.
 *
 * main.c only reads options and the program; md_run does the rest and
 * reports through its arguments (the output text, the messages, the exit
 * status), never by exiting.  The random tester and the fuzz harnesses
 * call the same function, so what they test is what users run.
 *
 * Every result printed as text is read back (md_readback.h) before it is
 * returned: it must parse, typecheck with the original's shapes, and
 * evaluate to what the internal graph evaluates to on random data.  If it
 * does not, md_run reports an internal error instead of printing a wrong
 * answer.  --check goes further and compares the printed text with
 * finite differences of the input.
 */
#ifndef MD_DRIVER_H
#define MD_DRIVER_H

#include <stdio.h>

#include "md_emit.h"
#include "md_latex.h"
#include "md_util.h"

/* Exit statuses. */
enum { MD_EXIT_OK = 0, MD_EXIT_INPUT = 1, MD_EXIT_USAGE = 2, MD_EXIT_INTERNAL = 3, MD_EXIT_CHECK = 4 };

typedef enum md_format {
    MD_FORMAT_TEXT, MD_FORMAT_LATEX, MD_FORMAT_C,
    MD_FORMAT_NUMPY, MD_FORMAT_TORCH, MD_FORMAT_OCTAVE   /* array code (md_emit_array) */
} md_format;

/* Is the format one of the array targets? */
static inline int md_format_is_array(md_format f)
{
    return f == MD_FORMAT_NUMPY || f == MD_FORMAT_TORCH || f == MD_FORMAT_OCTAVE;
}

typedef struct md_request {
    const char *const *wrt;  /* --wrt names; nwrt == 0: every variable */
    int nwrt;
    md_format format;
    int check;               /* --check */
    unsigned long seed;      /* --seed (default 1) */
    int simplify;            /* --simplify: the function itself */
    int order;               /* --order: 1 (gradients, Jacobians; default) or 2 (Hessians) */
    int steps;               /* --steps */
    int standalone;          /* --standalone (LaTeX) */
    md_latex_style style;    /* --transpose, --hadamard */
    int header;              /* --header (C) */
    md_emit_opts emit;       /* --name, --layout, --no-blas */
    const char *sizes;       /* --size n=1000,p=50 (C) */
    int self_test;           /* --self-test (numpy, torch): also check_NAME */
} md_request;

/* The defaults of the command line: text, seed 1, C function "f" with BLAS. */
void md_request_init(md_request *rq);

/*
 * Runs rq on the program text (len bytes, NULs allowed) called name in
 * messages.  Appends the result to out and every message to err; returns
 * the exit status (MD_EXIT_*).  Needs a deep stack for deeply nested
 * programs (main.c runs it on a thread with 1 GiB).
 */
int md_run(const md_request *rq, const char *name, const char *text, size_t len, md_buf *out,
           FILE *err);

#endif
