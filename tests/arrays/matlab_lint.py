"""MATLAB compatibility of the emitted Octave code (make test-octave).

    matlab_lint.py FILE.m ...

MATLAB is not installable here, so --format octave is run in GNU Octave
only; this lint rejects, in every emitted file, the Octave extensions that
MATLAB refuses (syntax errors there, or functions it does not have).
Outside comments and single-quoted strings:

  - '#' (a comment in Octave), '!' ('!x', '!='): MATLAB has % and ~;
  - double-quoted strings (Octave's escapes; a string object in MATLAB);
  - endfunction, endif, endfor, endwhile, endswitch, endparfor,
    end_try_catch, end_unwind_protect, unwind_protect, do ... until: MATLAB
    ends every block with end;
  - ++, --, +=, -=, *=, /=, ^=: no increments or compound assignment;
  - '**' (power): MATLAB has ^ and .^;
  - printf, puts, fputs, fdisp, fflush(stdout), sumsq, columns, rows,
    nthargout, print_usage: Octave-only functions;
  - a default argument in a function line (function f(a = 1));
  - indexing a call's or a bracket's result, f(x)(1), (A*B)(1, 1), x'(1):
    MATLAB indexes only variables;
  - a backslash line continuation: MATLAB has ...;
  - a file whose functions mix end-terminated and unterminated ones, and a
    function line that is not "function [outs] = name(args)" or
    "function out = name(args)".

Prints "FILE:LINE: what" per finding; exit status 1 when there is one.
"""
import re
import sys

KEYWORDS = ("endfunction", "endif", "endfor", "endwhile", "endswitch",
            "endparfor", "end_try_catch", "end_unwind_protect",
            "unwind_protect", "unwind_protect_cleanup", "until", "do")
FUNCTIONS = ("printf", "puts", "fputs", "fdisp", "sumsq", "columns", "rows",
             "nthargout", "print_usage")
OPERATORS = (("++", "an increment"), ("--", "a decrement"),
             ("+=", "a compound assignment"), ("-=", "a compound assignment"),
             ("*=", "a compound assignment"), ("/=", "a compound assignment"),
             ("^=", "a compound assignment"), ("**", "** (MATLAB: ^, .^)"),
             ("!", "! (MATLAB: ~, ~=)"), ("#", "a # comment (MATLAB: %)"),
             ('"', "a double-quoted string"))
FUNCTION_LINE = re.compile(
    r"function\s+(\[[\w, ]*\]|\w+)\s*=\s*\w+\s*\(([\w, ~]*)\)\s*$")


def code_of(line):
    """The line with comments dropped and the insides of single-quoted
    strings blanked (a quote after a value is a transpose)."""
    out = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "%":
            break
        if c == "'":
            prev = "".join(out).rstrip()[-1:]
            if prev and (prev.isalnum() or prev in "_)]}'."):
                out.append(c)      # a transpose
                i += 1
                continue
            j = i + 1
            while j < n:
                if line[j] == "'" and j + 1 < n and line[j + 1] == "'":
                    j += 2
                elif line[j] == "'":
                    break
                else:
                    j += 1
            out.append("''")       # the string, emptied
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def lint(path):
    """The findings of one file, as (line number, what)."""
    found = []
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    functions = ends = 0
    for no, line in enumerate(lines, 1):
        code = code_of(line)
        if code.startswith("function"):
            functions += 1
            if not FUNCTION_LINE.match(code.strip()):
                found.append((no, "a function line MATLAB may not accept "
                                  "(default arguments?): " + code.strip()))
        if code.rstrip() == "end":
            ends += 1
        for op, what in OPERATORS:
            if op in code:
                found.append((no, what))
        for w in re.findall(r"[A-Za-z_]\w*", code):
            if w in KEYWORDS:
                found.append((no, "the Octave keyword " + w))
        for w in FUNCTIONS:
            if re.search(r"(?<![\w.])" + w + r"\s*\(", code):
                found.append((no, "the Octave-only function " + w))
        if re.search(r"fflush\s*\(\s*stdout", code):
            found.append((no, "fflush(stdout)"))
        if re.search(r"[)\]]\s*\(", code) or re.search(r"'\(", code):
            found.append((no, "indexing a result, not a variable"))
        if code.rstrip().endswith("\\"):
            found.append((no, "a backslash continuation (MATLAB: ...)"))
    if ends and ends != functions:
        found.append((0, "%d functions but %d closing end lines (MATLAB: "
                         "all or none end-terminated)" % (functions, ends)))
    return found


def main(paths):
    bad = 0
    for p in paths:
        for no, what in lint(p):
            print("%s:%d: %s" % (p, no, what))
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
