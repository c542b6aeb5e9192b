"""scripts.reproduce: the job table, the report built from a work directory
(deterministic, 'not run' where a summary is missing, --from_existing gives
the same bytes), bad flags, and the README's generated headline block."""

import json
import os

from PIL import Image

from fooljax.runs import report, reproduce
from tests.cli_harness import one_line_problems, run_in_subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_job_table_covers_the_four_papers_and_its_flagfiles_exist():
    papers = {j.paper for j in reproduce.JOBS}
    assert set(reproduce.PAPERS) <= papers
    names = [j.name for j in reproduce.JOBS]
    assert len(names) == len(set(names))
    for j in reproduce.JOBS:
        assert j.steps, j.name
        for s in j.steps:
            if s.flagfile:
                path = os.path.join(ROOT, reproduce.CONFIGS, s.flagfile)
                assert os.path.isfile(path), (j.name, s.flagfile)
            if s.kind == "script":
                assert os.path.isfile(os.path.join(ROOT, s.module)), s.module
            else:
                module = s.module.replace(".", "/") + ".py"
                assert os.path.isfile(os.path.join(ROOT, module)), s.module
            for tier_args in s.tiers.values():  # a tier's extra flagfiles too
                for a in tier_args:
                    if a.startswith("--flagfile="):
                        assert os.path.isfile(os.path.join(ROOT, a.split("=", 1)[1]))
        for d in j.deps:  # dependencies run first
            assert names.index(d) < names.index(j.name), (j.name, d)
        assert set(j.tiers) <= set(reproduce.TIERS)
        if set(j.tiers) != set(reproduce.TIERS):
            assert j.not_in_tier, j.name
    for r in report.ROWS:  # every report row reads a job of the table
        assert reproduce.job(r.job).paper in (r.paper, "shared")
    for paper in reproduce.PAPERS:
        assert sum(r.paper == paper for r in report.ROWS) >= 5, paper
    argv = reproduce.command(
        reproduce.job("fgsm"),
        reproduce.job("fgsm").steps[0],
        "quick",
        root="R",
        data="D",
    )
    assert argv[:3] == ["python", "-m", "experiments.fgsm"]
    assert "--zoo_dir=R/zoo" in argv and argv[-1] == "--workdir=R/fgsm"


def _png(path):
    Image.new("RGB", (600, 4), (200, 30, 30)).save(path)  # shrunk when inlined


def _synthetic_root(root):
    (root / "mnist_direct").mkdir(parents=True)
    (root / "mnist_direct" / "summary.json").write_text(
        json.dumps(
            {
                "confidence": [0.99999] * 9 + [0.99995],
                "first_generation_all_at_least": {"0.99": 20, "0.9999": 121},
                "num_classes_at_least": {"0.99": 10, "0.9999": 10},
                "generations": 300,
            }
        )
    )
    _png(root / "mnist_direct" / "archive.png")
    (root / "fgsm").mkdir()
    (root / "fgsm" / "summary.json").write_text(
        json.dumps(
            {
                "models": {
                    "softmax_regression": {"error": 0.998, "mean_confidence": 0.81},
                    "maxout": {"error": 0.97, "mean_confidence": 0.9},
                }
            }
        )
    )
    state = {
        "tier": "quick",
        "device": "cpu (cpu) × 1, 2 CPU cores",
        "versions": {"jax": "0.0", "flax": "0.0", "numpy": "0.0", "python": "3"},
        "jobs": {
            "mnist_direct": {"status": "done", "wall_seconds": 12.5, "command": "c1"},
            "fgsm": {"status": "done", "wall_seconds": 61.0, "command": "c2"},
            "one_pixel_imagenet": {
                "status": "skipped",
                "reason": "FOOLJAX_DATA unset (needs x)",
                "wall_seconds": None,
            },
        },
    }
    reproduce.write_json_atomic(str(root / reproduce.STATE), state)


def test_report_from_a_synthetic_root_is_deterministic_and_says_not_run(tmp_path):
    root = tmp_path / "run"
    _synthetic_root(root)
    md, page, data = report.build_report(str(root))
    md2, page2, data2 = report.build_report(str(root))
    assert (md, page, data) == (md2, page2, data2)
    assert "10/10 classes ≥ 0.9999 (all by gen 121; 300 gens), min 0.99995" in md
    assert "error 99.8 %, mean confidence 81.0 %" in md
    assert "[archive.png](mnist_direct/archive.png)" in md
    assert "not run: FOOLJAX_DATA unset (needs x)" in md  # skipped job
    assert "not run: not in this run's jobs" in md  # job absent from the run
    assert "data:image/png;base64," in page and "<table>" in page
    for text in (md, page, json.dumps(data)):
        assert str(tmp_path) not in text  # relative paths only
    assert "Rows with a result: Nguyen 1/" in md
    # The README block is the headline table of the same data.
    assert "| Goodfellow | FGSM ε 0.25, softmax regression" in report.headline_markdown(
        data
    )


def test_cli_from_existing_gives_identical_bytes_and_bad_flags_exit_2(tmp_path):
    root = tmp_path / "run"
    _synthetic_root(root)
    md, page, _ = report.build_report(str(root))
    empty = tmp_path / "empty"
    cases = [
        ["--tier=quick", f"--workdir={root}", "--from_existing"],
        ["--tier=fast", f"--workdir={tmp_path}/w1"],
        ["--tier=quick", "--only=mnist_direct,nope", f"--workdir={tmp_path}/w2"],
        ["--tier=quick", f"--workdir={empty}", "--from_existing"],
    ]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    results = run_in_subprocess("scripts.reproduce", "m.main", cases, tmp_path, env)
    assert results[0]["code"] == 0, results[0]["stderr"]
    assert (root / report.REPORT_MD).read_text(encoding="utf-8") == md
    assert (root / report.REPORT_HTML).read_text(encoding="utf-8") == page
    bad = [
        (cases[1], r"--tier must be one of quick, full, paper"),
        (cases[2], r"unknown job 'nope'"),
        (cases[3], r"has no reproduce.json"),
    ]
    workdirs = [tmp_path / "w1", tmp_path / "w2", empty]
    assert not one_line_problems(bad, results[1:], tmp_path, workdirs=workdirs)


def test_readme_headline_block_is_the_generated_table():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    data = report.read_report_json(os.path.join(ROOT, "docs", "report", "report.json"))
    assert report.readme_block(text) == report.headline_markdown(data)
