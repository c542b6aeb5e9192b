"""scripts/bench_suite.py: the Markdown table rebuilt from a results JSON
(``--rebuild``; the benchmarks themselves are too slow for a test)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FAKE = {
    "quick": True,
    "date": "2026-12-01 20:00 UTC",
    "seconds": 12.5,
    "machine": {
        "backend": "cpu",
        "device_kind": "cpu",
        "num_devices": 1,
        "cpu_count": 2,
        "platform": "Linux",
        "processor": "x86_64",
        "python": "3.11.7",
        "versions": {"jax": "0.10.2", "fooljax": "0.1.0"},
    },
    "load_average": {"before": [0.5, 0.4, 0.3], "after": [1.5, 0.6, 0.3]},
    "jobs": [
        {
            "name": "map_elites_direct",
            "command": "python scripts/bench_map_elites.py --encoding=direct",
            "seconds": 3.0,
            "status": "ok",
            "result": {
                "encoding": "direct",
                "model": "lenet",
                "population": 200,
                "generation_seconds": 0.0125,
                "overhead_ratio": 0.97,
            },
        },
        {
            "name": "one_pixel",
            "command": "python scripts/bench_one_pixel.py --art=false",
            "seconds": 4.0,
            "status": "ok",
            "result": {
                "fooljax_seconds_per_image": 0.25,
                "fooljax_cold_seconds_per_image": 1.5,
                "fooljax_success_rate": 0.8,
            },
        },
        {
            "name": "attacks",
            "command": "python scripts/bench_attacks.py",
            "seconds": 5.0,
            "status": "failed (1)",
            "result": None,
            "error": "Traceback ... | boom",
        },
        {
            "name": "forward",
            "command": "python scripts/bench_forward.py --json=x",
            "seconds": 6.0,
            "status": "ok",
            "result": {
                "rows": [
                    {
                        "model": "lenet",
                        "weights": "init",
                        "batch": 50,
                        "input": [28, 28, 1],
                        "plain_images_per_s": 12345.6,
                        "fast_images_per_s": 23456.7,
                    },
                    {
                        "model": "cifar_lenet",
                        "weights": "lenet.h5",
                        "batch": 100,
                        "input": [32, 32, 3],
                        "plain_images_per_s": 2000.0,
                        "tf_images_per_s": 3000.0,
                    },
                ]
            },
        },
    ],
}


def test_rebuild_writes_one_table_row_per_result(tmp_path):
    (tmp_path / "bench_suite.json").write_text(json.dumps(FAKE))
    p = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "bench_suite.py"),
            "--rebuild",
            f"--out={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    last = json.loads(p.stdout.strip().splitlines()[-1])
    assert last["jobs"]["attacks"] == "failed (1)"
    md = (tmp_path / "bench_suite.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3 + 2  # header, three jobs, two forward rows
    assert "2 CPU cores" in md and "load average [0.5, 0.4, 0.3]" in md
    assert "80 generations/s" in md and "0.97" in md  # 1 / 0.0125 s
    assert "fooljax 0.25 s/image" in md and "ART not run" in md
    assert "boom" in md and "/ boom" in md  # a failed job shows its error, no '|'
    assert "plain 12,346, fast 23,457 images/s" in md
    assert "TF 3,000" in md and "28x28x1" in md
