"""Every fooljax benchmark in one command: one JSON and one Markdown table.

  python scripts/bench_suite.py [--quick] [--out=runs/bench_suite] [--only=NAMES]

Runs, each in its own process (so compilation and memory do not leak from one
into the next), ``scripts/bench_map_elites.py`` (direct and CPPN encodings on
the embedded LeNet), ``scripts/bench_attacks.py`` (FGSM/PGD on LeNet, L-BFGS on
an MLP), ``scripts/bench_one_pixel.py`` (CIFAR-10 Keras LeNet; needs
``$FOOLJAX_DATA``; the IBM ART comparison only where ``art`` is importable) and
``scripts/bench_forward.py`` for every registered network, each at a small
default size (``--quick``: smaller still, a subset of the networks; about
2 min on an idle 2-core CPU). Each benchmark's last output line is its JSON
result; the suite writes ``OUT/bench_suite.json`` (the machine: backend, device
kind, CPU count, load average before and after, versions; every job's command,
seconds, exit status and result) and ``OUT/bench_suite.md`` (one table).
``--rebuild`` rewrites the Markdown from an existing ``bench_suite.json``.
The last output line is JSON: the path of both files and the jobs' statuses.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata

import jax

from fooljax import models

HERE = os.path.dirname(os.path.abspath(__file__))
# networks whose forward is cheap to compile: the --quick subset
QUICK_FORWARD = ("lenet", "fc100_100_10", "cifar_lenet")
VERSIONS = ("jax", "jaxlib", "flax", "numpy", "fooljax")


def have_art() -> bool:
    """IBM ART installed (``pip install -e '.[bench]'``): found, not imported."""
    return importlib.util.find_spec("art") is not None


def jobs(
    quick: bool, data_dir: str | None, zoo_dir: str, art: bool, out_dir: str
) -> list[tuple[str, list[str]]]:
    """``[(name, argv)]``: every benchmark with its small default size (a
    ``--json=PATH`` argument: the result is that file, else the last JSON line
    of the output)."""
    me_size = (
        ["--population=200", "--chunk=10", "--repeats=3"]
        if quick
        else ["--population=200", "--chunk=50", "--repeats=5"]
    )
    out = [
        ("map_elites_direct", ["bench_map_elites.py", "--encoding=direct", *me_size]),
        ("map_elites_cppn", ["bench_map_elites.py", "--encoding=cppn", *me_size]),
        (
            "attacks",
            [
                "bench_attacks.py",
                "--model=lenet",
                f"--batch_size={64 if quick else 256}",
                f"--repeats={3 if quick else 10}",
                f"--pgd_steps={5 if quick else 10}",
                f"--lbfgs_images={10 if quick else 100}",
                f"--zoo_dir={zoo_dir}",
            ],
        ),
    ]
    weights = os.path.join(data_dir or "", "cifar10-keras-one-pixel", "lenet.h5")
    if data_dir and os.path.exists(weights):
        n = 3 if quick else 10
        out.append(
            (
                "one_pixel",
                [
                    "bench_one_pixel.py",
                    "--model=cifar_lenet",
                    f"--weights={weights}",
                    f"--num_images={n}",
                    f"--max_generations={10 if quick else 100}",
                    f"--repeats={1 if quick else 2}",
                    f"--art={'true' if art else 'false'}",
                    *([f"--art_images={n}"] if art else []),
                ],
            )
        )
    names = QUICK_FORWARD if quick else models.model_names()
    tf = not quick and importlib.util.find_spec("tensorflow") is not None
    out.append(
        (
            "forward",
            [
                "bench_forward.py",
                f"--model={','.join(names)}",
                *(["--batch=100"] if quick else []),
                f"--rounds={2 if quick else 3}",
                f"--min_seconds={0.2 if quick else 0.5}",
                f"--tf={'true' if tf else 'false'}",
                f"--json={os.path.join(out_dir, 'forward.json')}",
            ],
        )
    )
    return out


def last_json(text: str) -> dict | None:
    """The last line of ``text`` that parses as a JSON object."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def run_job(name: str, argv: list[str], timeout: float, env: dict) -> dict:
    cmd = [sys.executable, os.path.join(HERE, argv[0]), *argv[1:]]
    t0 = time.time()
    try:
        p = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env
        )
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout", e.stdout or "", e.stderr or ""
        out = out.decode() if isinstance(out, bytes) else out
        err = err.decode() if isinstance(err, bytes) else err
    seconds = time.time() - t0
    json_file = next((a[7:] for a in argv if a.startswith("--json=")), None)
    result = None
    if rc == 0 and json_file:
        with open(json_file) as f:
            result = json.load(f)
    elif rc == 0:
        result = last_json(out)
    job = {
        "name": name,
        "command": "python scripts/" + shlex.join(argv),
        "seconds": round(seconds, 1),
        "status": "ok" if result is not None else f"failed ({rc})",
        "result": result,
    }
    if result is None:
        job["error"] = (err or out).strip()[-600:]
    return job


def machine() -> dict:
    d = jax.devices()[0]
    versions = {}
    for pkg in VERSIONS:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "backend": jax.default_backend(),
        "device_kind": d.device_kind,
        "num_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _fmt(v, digits=3):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def headline(name: str, r: dict) -> tuple[str, str]:
    """(what, numbers) of one job's result for the table."""
    if name.startswith("map_elites"):
        g = r.get("generation_seconds")
        return (
            f"MAP-Elites {r.get('encoding')}, {r.get('model')}, population "
            f"{r.get('population')}",
            f"{_fmt(1 / g if g else None)} generations/s; generation / forward "
            f"{_fmt(r.get('overhead_ratio'))}",
        )
    if name == "attacks":
        return (
            f"FGSM/PGD on {r.get('model')} (batch {r.get('batch_size')}); L-BFGS "
            f"on {r.get('lbfgs_model')}",
            f"FGSM {_fmt(r.get('fgsm_images_per_s'))} img/s (/ fwd+bwd "
            f"{_fmt(r.get('overhead_ratio'))}); PGD-{r.get('pgd_steps')} "
            f"{_fmt(r.get('pgd_images_per_s'))} img/s (step / fwd+bwd "
            f"{_fmt(r.get('pgd_step_overhead_ratio'))}); L-BFGS "
            f"{_fmt(r.get('lbfgs_images_per_s'))} img/s, success "
            f"{_fmt(r.get('lbfgs_success_rate'))}",
        )
    if name == "one_pixel":
        art = (
            f"; ART {_fmt(r.get('art_seconds_per_image'))} s/image, speed-up "
            f"{_fmt(r.get('speedup'))} warm, {_fmt(r.get('speedup_cold'))} cold"
            if r.get("art_seconds_per_image") is not None
            else "; ART not run"
        )
        return (
            "one-pixel, CIFAR-10 Keras LeNet",
            f"fooljax {_fmt(r.get('fooljax_seconds_per_image'))} s/image "
            f"(cold {_fmt(r.get('fooljax_cold_seconds_per_image'))}), success "
            f"{_fmt(r.get('fooljax_success_rate'))}{art}",
        )
    return name, json.dumps(r)[:120]


def forward_lines(job: dict) -> list[str]:
    """One table row per (network, batch) of ``bench_forward.py --json``."""
    out = []
    for r in job["result"].get("rows", []):
        h, w, c = r["input"]
        tf = r.get("tf_images_per_s")
        out.append(
            f"| forward | {r['model']} ({r.get('weights')}), batch {r['batch']}, "
            f"{h}x{w}x{c} | plain {_fmt(r.get('plain_images_per_s'))}, fast "
            f"{_fmt(r.get('fast_images_per_s'))}"
            + (f", TF {_fmt(tf)}" if tf else "")
            + f" images/s | {job['seconds']} | {job['status']} |"
        )
    return out


def markdown(report: dict) -> str:
    """The suite's report as one Markdown table under a machine line."""
    m = report["machine"]
    load = report.get("load_average", {})
    v = ", ".join(f"{k} {x}" for k, x in m["versions"].items() if x)
    lines = [
        f"# fooljax benchmark suite ({'quick' if report.get('quick') else 'default'})",
        "",
        f"{m['backend']} ({m['device_kind']}, {m['num_devices']} device(s)), "
        f"{m['cpu_count']} CPU cores, load average {load.get('before')} before / "
        f"{load.get('after')} after; {m['platform']}; Python {m['python']}, {v}; "
        f"{report.get('date', '')}, {report.get('seconds')} s in all.",
        "",
        "| benchmark | what | result | s | status |",
        "|---|---|---|---|---|",
    ]
    for job in report["jobs"]:
        if job["name"] == "forward" and job["result"] is not None:
            lines.extend(forward_lines(job))
            continue
        if job["result"] is not None:
            what, numbers = headline(job["name"], job["result"])
        else:
            what, numbers = job["command"], job.get("error", "")[-160:]
        numbers = " ".join(str(numbers).replace("|", "/").split())
        lines.append(
            f"| {job['name']} | {what} | {numbers} | {job['seconds']} | "
            f"{job['status']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench_suite")
    ap.add_argument("--quick", action="store_true", help="smallest sizes (~2 min)")
    ap.add_argument("--only", default="", help="comma-separated job names/prefixes")
    ap.add_argument("--data_dir", default=os.environ.get("FOOLJAX_DATA"))
    ap.add_argument("--zoo_dir", default="runs/zoo", help="zoo models for L-BFGS")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per job")
    ap.add_argument(
        "--rebuild", action="store_true", help="Markdown from OUT/bench_suite.json"
    )
    args = ap.parse_args()
    json_path = os.path.join(args.out, "bench_suite.json")
    md_path = os.path.join(args.out, "bench_suite.md")
    if args.rebuild:
        with open(json_path) as f:
            report = json.load(f)
    else:
        selected = jobs(args.quick, args.data_dir, args.zoo_dir, have_art(), args.out)
        if args.only:
            wanted = [w.strip() for w in args.only.split(",") if w.strip()]
            selected = [j for j in selected if any(j[0].startswith(w) for w in wanted)]
            if not selected:
                print(f"error: --only={args.only} selects no job", file=sys.stderr)
                return 2
        os.makedirs(args.out, exist_ok=True)
        env = dict(os.environ)
        if args.data_dir:
            env["FOOLJAX_DATA"] = args.data_dir
        t0 = time.time()
        report = {
            "quick": args.quick,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine(),
            "load_average": {"before": [round(x, 2) for x in os.getloadavg()]},
            "jobs": [],
        }
        for name, argv in selected:
            print(f"{name}: python scripts/{shlex.join(argv)}", flush=True)
            job = run_job(name, argv, args.timeout, env)
            print(f"  {job['status']} in {job['seconds']} s", flush=True)
            report["jobs"].append(job)
        report["load_average"]["after"] = [round(x, 2) for x in os.getloadavg()]
        report["seconds"] = round(time.time() - t0, 1)
        tmp = json_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
        os.replace(tmp, json_path)
    with open(md_path, "w") as f:
        f.write(markdown(report))
    print(
        json.dumps(
            {
                "json": json_path,
                "markdown": md_path,
                "jobs": {j["name"]: j["status"] for j in report["jobs"]},
            },
            sort_keys=True,
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
