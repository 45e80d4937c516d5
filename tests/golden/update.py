#!/usr/bin/env python3
"""tests/golden/update.py -- rewrite expected outputs of golden cases.

    python3 tests/golden/update.py [--matdiff ./matdiff] FILE.test [CASE ...]

For every case of FILE.test (or only the named cases) that has a %%program
section and a %%stdout or %%stderr section, runs matdiff the way
tests/golden/run.sh does and replaces those sections with what it printed.
%%exit is left alone: a changed exit status is reported, never rewritten.
Cases built with %%program-gen or %%program-printf, or whose %%args use
@FILE, are skipped (run.sh is the reference for them).

This is a tool for intended changes of output.  Review the result with
`git diff tests/golden/` before committing: every changed line is a claim
that the new output is right.
"""
import argparse
import re
import shlex
import subprocess
import sys


def parse(text):
    """Splits a .test file into (preamble, [case lines...]) keeping every line."""
    lines = text.split("\n")
    cases, cur, pre = [], None, []
    for ln in lines:
        if ln.startswith("%%case"):
            if cur is not None:
                cases.append(cur)
            cur = [ln]
        elif cur is None:
            pre.append(ln)
        else:
            cur.append(ln)
    if cur is not None:
        cases.append(cur)
    return pre, cases


def sections(case):
    """Maps section name -> (start, end) line indices of its body."""
    out, name, start = {}, None, 0
    for i, ln in enumerate(case):
        m = re.match(r"^%%([a-z-]*)", ln)
        if m:
            if name:
                out[name] = (start, i)
            name = m.group(1)
            start = i + 1
            if name not in ("program", "stdout", "stderr"):
                name = None
    if name:
        out[name] = (start, len(case))
    return out


def body(case, rng):
    b = case[rng[0]:rng[1]]
    while b and b[-1] == "":
        b.pop()
    return b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--matdiff", default="./matdiff")
    ap.add_argument("file")
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args()
    text = open(a.file).read()
    pre, cases = parse(text)
    changed = 0
    for ci, case in enumerate(cases):
        name = case[0].split(None, 1)[1].strip() if len(case[0].split(None, 1)) > 1 else ""
        if a.cases and name not in a.cases:
            continue
        secs = sections(case)
        if "program" not in secs or not ({"stdout", "stderr"} & set(secs)):
            continue
        args = ""
        want_exit = "0"
        skip = False
        for ln in case:
            if ln.startswith("%%args"):
                args = ln[len("%%args"):].strip()
            elif ln.startswith("%%exit"):
                want_exit = ln.split(None, 1)[1].strip()
            elif ln.startswith("%%program-gen") or ln.startswith("%%program-printf"):
                skip = True
        if skip or "@FILE" in args:
            continue
        prog = "\n".join(body(case, secs["program"])) + "\n"
        argv = [a.matdiff]
        stdin = prog
        for w in shlex.split(args):
            if w == "@PROG":
                argv.append(prog.rstrip("\n"))
                stdin = ""
            else:
                argv.append(w)
        p = subprocess.run(argv, input=stdin.encode(), capture_output=True)
        if str(p.returncode) not in want_exit.split("|"):
            print(f"{a.file}: {name}: exit {p.returncode}, want {want_exit} (not rewritten)",
                  file=sys.stderr)
            continue
        outs = {"stdout": p.stdout.decode(errors="replace"), "stderr": p.stderr.decode(errors="replace")}
        # rewrite from the last section backwards so indices stay valid
        for sec in sorted((s for s in ("stdout", "stderr") if s in secs),
                          key=lambda s: -secs[s][0]):
            new = outs[sec].rstrip("\n").split("\n") if outs[sec] else []
            old = body(case, secs[sec])
            if new != old:
                st, en = secs[sec]
                # keep the blank lines that separate cases
                blanks = (en - st) - len(old)
                case[st:en] = new + [""] * blanks
                changed += 1
        cases[ci] = case
    out = "\n".join(pre + [ln for c in cases for ln in c])
    open(a.file, "w").write(out)
    print(f"{a.file}: {changed} section(s) rewritten", file=sys.stderr)


if __name__ == "__main__":
    main()
