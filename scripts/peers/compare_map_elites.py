"""fooljax vs QDax vs pyribs on issue 19's acceptance-1 task, side by side.

  pip install -e '.[peers]'   # a separate venv (README: peers)
  python scripts/peers/compare_map_elites.py [--generations=1000] [--rounds=2]

Runs ``fooljax_map_elites.py``, ``qdax_map_elites.py`` and
``pyribs_map_elites.py`` (this directory) in fresh processes of the same Python,
interleaved (round r runs them in turn, every other round in reverse order), so
a shared machine's load falls on all of them alike; each times
``--generations`` generations after its compilation. Prints each run's
generations/s, then the ratios fooljax / QDax and fooljax / pyribs of the
best run of each and of each round's runs, and the load average; the last line
is JSON. ``--forward=fooljax`` makes the peers score with fooljax's own LeNet
forward instead of their hand-written ``lax`` one (isolates the search
machinery). Never run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = {
    "fooljax": "fooljax_map_elites.py",
    "qdax": "qdax_map_elites.py",
    "pyribs": "pyribs_map_elites.py",
}


def run(name: str, args) -> dict:
    cmd = [
        sys.executable,
        os.path.join(HERE, SCRIPTS[name]),
        f"--generations={args.generations}",
    ]
    if name != "fooljax":
        cmd.append(f"--forward={args.forward}")
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{name} failed:\n{p.stderr[-2000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["process_seconds"] = round(time.time() - t0, 1)
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--forward", default="plain", choices=["plain", "fooljax"])
    ap.add_argument("--peers", default="fooljax,qdax,pyribs")
    args = ap.parse_args()
    names = args.peers.split(",")
    if "fooljax" not in names or any(n not in SCRIPTS for n in names):
        sys.exit(f"--peers must name fooljax and some of {', '.join(SCRIPTS)}")
    results = {n: [] for n in names}
    load_before = [round(x, 2) for x in os.getloadavg()]
    for r in range(args.rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            res = run(n, args)
            results[n].append(res)
            print(
                f"round {r + 1} {n}: {res['generations_per_second']:.1f} "
                f"generations/s ({res['generations']} in {res['seconds']:.1f} s, "
                f"min elite confidence {res['min_confidence']:.6f}; load "
                f"{res['load_average'][0]})",
                flush=True,
            )
    rate = {n: [x["generations_per_second"] for x in results[n]] for n in names}
    ratios = {}
    for n in names:
        if n == "fooljax":
            continue
        ratios[f"fooljax/{n}"] = {
            "best": round(max(rate["fooljax"]) / max(rate[n]), 3),
            "per_round": [
                round(f / p, 3) for f, p in zip(rate["fooljax"], rate[n], strict=True)
            ],
        }
        print(
            f"fooljax / {n}: {ratios[f'fooljax/{n}']['best']:.2f}x (best runs), "
            f"per round {ratios[f'fooljax/{n}']['per_round']}",
            flush=True,
        )
    print(
        json.dumps(
            {
                "generations": args.generations,
                "peer_forward": args.forward,
                "generations_per_second": rate,
                "ratios": ratios,
                "load_average_before": load_before,
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
                "cpu_count": os.cpu_count(),
            },
            sort_keys=True,
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
