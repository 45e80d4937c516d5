"""The array backends run in their real runtimes (make test-arrays).

    run.py --format numpy|torch|octave --tool build/tests/arraycase
           [--golden FILE.test ...] [--program TEXT --wrt W --order K ...]

For every golden case that prints a derivative (tests/golden/*.test: exit
0, a header "# d/d...", "# gradient ...", "# derivative ..." or
"# Hessian ..."), arraycase writes the emitted code and random data with
the internal evaluator's answers.  The code is then run -- NumPy and
PyTorch here, in this interpreter; Octave in one octave process
(run_octave.m) -- and every result is compared with the evaluator's
(relative 1e-10) and every derivative with central differences of the
emitted code itself (relative 1e-5, Richardson-extrapolated, the best of
three steps).  A case the format refuses is counted, with the refusal;
a wrong number is a failure.  The Python files must also pass
py_compile, pyflakes and pycodestyle (when installed); the Octave files
must pass matlab_lint.py (no Octave-only syntax: MATLAB is not run).

Exit status 0 when nothing failed.
"""
import argparse
import importlib.util
import json
import math
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# Cases built to be ill-conditioned (a product of 30 matrices inside a
# logdet): any two bracketings of them differ in the 7th digit, so they
# are compared to this looser tolerance, and finite differences of them
# say nothing (the golden case's --check redraws such points).
ILL_CONDITIONED = {
    "regressions.test:check-ill-conditioned-inverse-is-redrawn": 1e-5,
}


def golden_cases(files):
    """(name, program, wrt, order) of every golden case with a derivative."""
    out = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        case = None
        sec = None
        for line in lines + ["%%case end"]:
            if line.startswith("%%"):
                word = line.split()[0]
                rest = line[len(word):].strip()
                if word == "%%case":
                    if case:
                        out.append(case)
                    case = {"name": os.path.basename(path) + ":" + rest,
                            "args": "", "program": [], "exit": None,
                            "stdout": []}
                    sec = None
                elif case is None:
                    continue
                elif word == "%%args":
                    case["args"] = rest
                elif word == "%%exit":
                    case["exit"] = rest
                elif word in ("%%program", "%%stdout"):
                    sec = word[2:]
                else:
                    sec = None
            elif case is not None and sec:
                case[sec].append(line)
    res = []
    for c in out:
        head = c["stdout"][0] if c["stdout"] else ""
        if c["exit"] != "0" or not c["program"]:
            continue
        if not re.match(r"# (d/d|gradient|derivative|Hessian)", head):
            continue
        args = c["args"].split()
        if "-s" in args or "--simplify" in args or "--format" in args:
            continue
        if "--" in args or any(a.startswith("-wx") for a in args):
            continue
        wrt, order = [], 1
        for i, a in enumerate(args):
            if a in ("-w", "--wrt") and i + 1 < len(args):
                wrt += [w for w in args[i + 1].split(",") if w]
            elif a.startswith("--wrt="):
                wrt += a[6:].split(",")
            elif a == "--order" and i + 1 < len(args):
                order = int(args[i + 1])
        prog = "\n".join(c["program"]).rstrip("\n") + "\n"
        # --wrt λ: the program's name for it (main.c does this for matdiff)
        wrt = [greek(w) for w in wrt]
        res.append((c["name"], prog, ",".join(wrt) or "-", order))
    return res


def greek(name):
    """A Greek letter as the language spells it (λ is lambda)."""
    import unicodedata
    out = ""
    for ch in name:
        if ord(ch) > 127:
            w = unicodedata.name(ch, "").split()[-1].lower()
            ch = {"lamda": "lambda"}.get(w, w)
        out += ch
    return out


def family(k):
    """The evaluator's generic function k: sin(a x + b), every derivative."""
    a, b = 0.7 + 0.3 * k, 0.4 + 0.5 * k

    def h(x, m):
        return a ** m * np.sin(a * x + b + m * math.pi / 2)
    return h


def torch_family(k):
    import torch
    a, b = 0.7 + 0.3 * k, 0.4 + 0.5 * k

    def h(x, m):
        return a ** m * torch.sin(a * x + b + m * math.pi / 2)
    return h


def as_array(m):
    v = np.array(m["v"], dtype=float)
    if m["scalar"]:
        return float(v[0])
    if m["column"]:
        return v
    return v.reshape((m["rows"], m["cols"]), order="F")


def to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=float)


def rel_err(got, want):
    got, want = to_numpy(got), np.asarray(want, dtype=float)
    if got.shape != want.shape:
        return math.inf, "shape %s, expected %s" % (got.shape, want.shape)
    if want.size == 0:
        return 0.0, ""
    d = np.max(np.abs(got - want))
    # relative, and absolute below 1e-4 (a zero computed as 1e-17)
    scale = max(np.max(np.abs(want)), 1e-4)
    return d / scale, ""


class PyRunner:
    def __init__(self, fmt):
        self.fmt = fmt
        if fmt == "torch":
            import torch
            self.torch = torch

    def load(self, path):
        spec = importlib.util.spec_from_file_location(
            "case_%d" % abs(hash(path)), path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.f

    def inputs(self, data, values):
        if self.fmt == "torch":
            return [self.torch.tensor(v, dtype=self.torch.float64)
                    for v in values]
        return values

    def callbacks(self, data):
        fam = torch_family if self.fmt == "torch" else family
        return [fam(k) for k in range(data["funcs"])]


def vec(x):
    return np.reshape(to_numpy(x), -1, order="F")


def fd_check(call, values, data, out, nres):
    """Derivatives against central differences of the code's own outputs.

    Returns the worst relative error over the derivatives."""
    nv = data["nwrt"]
    pairs = [(1 + i, 0, data["wrt"][i]) for i in range(nv)]
    if data["kind"] == "hessian":
        pairs += [(1 + nv + i * nv + j, 1 + i, data["wrt"][j])
                  for i in range(nv) for j in range(nv)]
    rng = np.random.default_rng(7)
    # at most 6 derivatives per case (each costs 12 calls): a random
    # program has up to 20 variables, and all are compared with the
    # evaluator anyway
    if len(pairs) > 6:
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), 6,
                                                     replace=False))]
    worst = 0.0
    for res, o, j in pairs:
        x = values[j]
        d = rng.standard_normal(np.shape(x))
        if data["inputs"][j]["kind"] == "symmetric":
            d = (d + d.T) / 2
        nout = vec(out[o]).size
        nin = np.size(x)
        m = np.reshape(vec(out[res]), (nout, nin), order="F")
        pred = m @ np.reshape(d, -1, order="F")
        best = math.inf
        ests = []
        for h in (1e-2, 1e-3, 1e-4):
            def at(t):
                v = list(values)
                v[j] = np.asarray(x) + t * d
                if np.ndim(x) == 0:
                    v[j] = float(v[j])
                return vec(call(v)[o])
            try:
                f4 = [at(t) for t in (h, -h, h / 2, -h / 2)]
            except (ValueError, FloatingPointError, np.linalg.LinAlgError):
                continue
            fd1 = (f4[0] - f4[1]) / (2 * h)
            fd2 = (f4[2] - f4[3]) / h
            fd = (4 * fd2 - fd1) / 3
            scale = max(np.max(np.abs(pred), initial=0),
                        np.max(np.abs(fd), initial=0), 1e-8)
            # the rounding of the values alone moves fd by about
            # 3 eps |f| / h: a derivative far smaller than the value
            # (logsumexp(p) beside a huge term) is checked to that floor
            floor = 8 * np.finfo(float).eps * max(
                np.max(np.abs(v), initial=0) for v in f4) / h
            e = max(np.max(np.abs(fd - pred), initial=0) - floor, 0) / scale
            if np.isfinite(e):
                best = min(best, e)
                ests.append((fd, scale))
        # differences that never settle (two steps agreeing to 1e-8) say
        # nothing: too steep, or rounding amplified (a product of 40
        # matrices); the evaluator comparison stands alone then
        settled = any(np.max(np.abs(a - b), initial=0) <= 1e-8 * max(s1, s2)
                      for (a, s1), (b, s2) in zip(ests, ests[1:]))
        if best > 1e-5 and not settled:
            continue
        worst = max(worst, best)
    return worst


CHOOSER = {
    # the line that picks the plan, and the list of plans (emit_array.c's
    # em_chooser): Python, then Octave
    "py": (re.compile(r"^(\s*\w+ = \w+)\[\w+\.index\(min\(\w+\)\)\]$", re.M),
           re.compile(r"^\s*\w+ = \(((?:_\w+, )*_\w+)\)$", re.M)),
    "m": (re.compile(r"^(\s*\w+ = \w+)\{find\(\w+ == min\(\w+\), 1\)\};$",
                     re.M),
          re.compile(r"^\s*\w+ = \{((?:@\w+, )*@\w+)\};$", re.M)),
}


def forced_plans(fmt, made):
    """Copies of each file with several plans, one per plan, whose chooser
    line is replaced by that plan (as MD_FORCE_PLAN does for the C code):
    the run-time choice tests only the plan it picks, these test them
    all.  Returns (name, prefix) entries like made's."""
    ext = "m" if fmt == "octave" else "py"
    pick, listed = CHOOSER[ext]
    extra = []
    for name, prefix in made:
        with open(prefix + "." + ext) as fh:
            text = fh.read()
        m, lst = pick.search(text), listed.search(text)
        if not m or not lst:
            continue
        base = os.path.basename(prefix)
        for k in range(len(lst.group(1).split(", "))):
            new = "%sp%d" % (prefix, k + 1)
            t = text[:m.start()] + m.group(1) + \
                ("{%d};" % (k + 1) if ext == "m" else "[%d]" % k) + \
                text[m.end():]
            if ext == "m":   # the function file's name is its function's
                t = re.sub(r"(?<![A-Za-z0-9_])%s(?![0-9A-Za-z])" % base,
                           os.path.basename(new), t)
            with open(new + "." + ext, "w") as fh:
                fh.write(t)
            shutil.copyfile(prefix + ".json", new + ".json")
            extra.append(("%s, plan %d forced" % (name, k + 1), new))
    return extra


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--format", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--golden", nargs="*", default=[])
    ap.add_argument("--case", nargs=3, action="append", default=[],
                    metavar=("PROGRAM", "WRT", "ORDER"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--random", type=int, default=0, metavar="N",
                    help="also N programs of tests/random.c (-p)")
    ap.add_argument("--random-tool", default="build/tests/random")
    ap.add_argument("--keep", help="keep the files in this directory")
    ap.add_argument("--octave", default="octave")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    cases = golden_cases(a.golden)
    for i, (p, w, o) in enumerate(a.case):
        cases.append(("case-%d" % i, p + "\n", w, int(o)))
    if a.random:
        r = subprocess.run([a.random_tool, str(a.random), str(a.seed), "-p"],
                           capture_output=True, text=True, check=True)
        for block in r.stdout.split("# seed ")[1:]:
            seed, _, prog = block.partition("\n")
            # every variable; a third of them to second order by the
            # first two
            order = 2 if int(seed) % 3 == 0 else 1
            cases.append(("random seed %s" % seed, prog,
                          "-2" if order == 2 else "-", order))
    work = a.keep or tempfile.mkdtemp(prefix="matdiff-arrays.")
    os.makedirs(work, exist_ok=True)
    made, refused, failed = [], [], []
    for n, (name, prog, wrt, order) in enumerate(cases):
        prefix = os.path.join(work, "c%04d" % n)
        r = subprocess.run([a.tool, a.format, wrt, str(order),
                            str(a.seed + n), prefix], input=prog.encode(),
                           capture_output=True)
        msg = r.stderr.decode(errors="replace").strip()
        if r.returncode == 10:
            first = [m for m in msg.splitlines() if "matdiff" in m or "error" in m]
            refused.append((name, (first or [msg])[0]))
        elif r.returncode == 11:
            refused.append((name, "no point in the domain"))
        elif r.returncode == 3 and name.startswith("random"):
            refused.append((name, "not a program for the array test "
                                  "(no derivative: %s)" % msg[-200:]))
        elif r.returncode != 0:
            failed.append((name, "arraycase exit %d: %s"
                           % (r.returncode, msg)))
        else:
            made.append((name, prefix))
    forced = forced_plans(a.format, made)
    made += forced
    checked = 0
    if a.format in ("numpy", "torch"):
        # (the forced copies leave the plans' costs unused: not linted)
        copies = set(p for _, p in forced)
        files = [p + ".py" for _, p in made if p not in copies]
        for f in files:
            try:
                py_compile.compile(f, doraise=True)
            except py_compile.PyCompileError as e:
                failed.append((f, "py_compile: %s" % e))
        lint = []
        for tool in (["-m", "pyflakes"], ["-m", "pycodestyle"]):
            try:
                __import__(tool[1])
            except ImportError:
                continue
            for i in range(0, len(files), 200):
                r = subprocess.run([sys.executable] + tool + files[i:i + 200],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    lint.append(r.stdout + r.stderr)
        for t in lint:
            failed.append(("lint", t.strip()[:2000]))
        runner = PyRunner(a.format)
        np.seterr(all="ignore")
        for name, prefix in made:
            if a.verbose:
                print("run %s %s" % (name, prefix), flush=True)
            with open(prefix + ".json") as fh:
                data = json.load(fh)
            try:
                fn = runner.load(prefix + ".py")
                values = [as_array(m["value"]) for m in data["inputs"]]
                cbs = runner.callbacks(data)

                def call(v, fn=fn, cbs=cbs):
                    return fn(*runner.inputs(data, v), *cbs)
                out = call(values)
            except Exception as e:  # a crash of the emitted code is a failure
                failed.append((name, "raised %s: %s" % (type(e).__name__, e)))
                continue
            bad = []
            if len(out) != len(data["results"]):
                bad.append("returned %d values, expected %d"
                           % (len(out), len(data["results"])))
            else:
                for i, (g, w) in enumerate(zip(out, data["results"])):
                    e, why = rel_err(g, as_array(w))
                    # ill-conditioned: as accurate as the evaluator rounding
                    # every node to double
                    tol = ILL_CONDITIONED.get(name, 1e-10)
                    if not e <= max(tol, 100 * w["cond"]):
                        bad.append("result %d: %s relative error %.2e"
                                   % (i, why, e))
                if not bad and name not in ILL_CONDITIONED:
                    try:
                        e = fd_check(call, values, data, out, len(out))
                    except Exception as ex:
                        e = math.inf
                        bad.append("finite differences raised %s" % ex)
                    if not e <= 1e-5:
                        bad.append("finite differences: %.2e" % e)
            if bad:
                failed.append((name, "; ".join(bad) + " (" + prefix + ")"))
            checked += 1
    else:
        # MATLAB itself is not run: the Octave-only syntax it would reject
        # is looked for in every file (matlab_lint.py)
        sys.path.insert(0, HERE)
        import matlab_lint
        for name, prefix in made:
            for no, what in matlab_lint.lint(prefix + ".m"):
                failed.append((name, "not MATLAB: %s.m:%d: %s"
                               % (prefix, no, what)))
        listing = os.path.join(work, "cases.txt")
        with open(listing, "w") as fh:
            for name, prefix in made:
                fh.write("%s %g %d\n" % (os.path.basename(prefix),
                                          ILL_CONDITIONED.get(name, 1e-10),
                                          name not in ILL_CONDITIONED))
        r = subprocess.run([a.octave, "--no-gui", "--quiet", "--norc",
                            "--eval", "cd('%s'); addpath('%s'); run_octave('%s')"
                            % (work, HERE, listing)],
                           capture_output=True, text=True)
        byprefix = {os.path.basename(p): n for n, p in made}
        for line in r.stdout.splitlines():
            if line.startswith("FAIL "):
                _, pfx, why = line.split(" ", 2)
                failed.append((byprefix.get(pfx, pfx), why))
            elif line.startswith("OK "):
                checked += 1
        if r.returncode != 0:
            failed.append(("octave", "exit %d: %s" % (r.returncode,
                                                      r.stderr[-2000:])))
    for name, why in failed:
        print("FAIL %s: %s" % (name, why))
    if a.verbose:
        for name, why in refused:
            print("refused %s: %s" % (name, why))
    print("arrays %s: %d cases run and compared (%d golden, %d random, "
          "%d with a plan forced), %d refused by the format, %d failed"
          % (a.format, checked, len(cases) - a.random, a.random, len(forced),
             len(refused), len(failed)))
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
