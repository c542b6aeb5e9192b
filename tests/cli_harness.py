"""Runs many argument lists through one fooljax entry point in one process.

  python -m tests.cli_harness MODULE MAIN CASES_JSON OUT_JSON

``MODULE`` is the experiment module (its import defines the flags), ``MAIN``
an expression for its main in the namespace of ``fooljax.runs`` (e.g.
``fooling.main``; ``m`` is the module itself, for scripts). For each argument list the flags are reset and the entry
point's own edge (``cli.parse_flags`` then ``cli.guarded``) runs it; the exit
status, stderr and whether a traceback escaped are written to ``OUT_JSON``.
"""

import contextlib
import importlib
import io
import json
import sys
import traceback

from absl import flags

from fooljax import runs
from fooljax.runs import cli, fooling, gradient, one_pixel, train, transfer  # noqa: F401


def run_case(main, prog, args):
    err = io.StringIO()
    code, tb = 0, False
    flags.FLAGS.unparse_flags()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            argv = cli.parse_flags([prog, *args])
            code = cli.guarded(main, argv)
        except SystemExit as e:
            code = e.code
        except Exception:  # a bug: the CLI would show this traceback
            traceback.print_exc()
            code, tb = 1, True
    return {"code": code, "stderr": err.getvalue(), "traceback": tb}


def run_in_subprocess(module, main_expr, argvs, tmp_path, env):
    """Runs every argv of ``argvs`` through ``main_expr`` of ``module`` in one
    fresh interpreter (this module as ``-m``); returns ``run_case``'s dicts."""
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cases_json, out_json = tmp_path / "cases.json", tmp_path / "out.json"
    cases_json.write_text(json.dumps(argvs))
    r = subprocess.run(
        [sys.executable, "-m", "tests.cli_harness", module, main_expr]
        + [str(cases_json), str(out_json)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out_json.read_text())


def main():
    module, main_expr, cases_path, out_path = sys.argv[1:5]
    namespace = {k: getattr(runs, k) for k in dir(runs) if not k.startswith("_")}
    namespace["m"] = importlib.import_module(module)
    main_fn = eval(main_expr, namespace)  # noqa: S307  (test input)
    cases = json.load(open(cases_path))
    out = [run_case(main_fn, module, args) for args in cases]
    json.dump(out, open(out_path, "w"))


if __name__ == "__main__":
    main()


def one_line_problems(cases, results, tmp_path, workdirs=None):
    """What is wrong with ``results`` (``run_in_subprocess``'s) for ``cases``
    (``[(argv, pattern)]``): each must exit 2 with exactly one ``error`` line
    that matches ``pattern``, no traceback, and no work directory
    (``tmp_path / f"w{i}"``, or ``workdirs[i]``) written. Empty when all hold."""
    import os
    import re

    problems = []
    for i, ((argv, pattern), res) in enumerate(zip(cases, results, strict=True)):
        errors = [ln for ln in res["stderr"].splitlines() if ln.startswith("error")]
        if res["code"] != 2 or res["traceback"] or len(errors) != 1:
            problems.append(f"{argv}: exit {res['code']}, {res['stderr'][-300:]}")
        elif not re.search(pattern, errors[0]):
            problems.append(f"{argv}: {errors[0]!r} !~ {pattern!r}")
        wd = tmp_path / f"w{i}" if workdirs is None else workdirs[i]
        if os.path.exists(wd):
            problems.append(f"{argv}: wrote its work directory")
    return problems
