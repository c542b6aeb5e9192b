"""One command for every experiment of the four papers: the job table and its
runner (``python -m scripts.reproduce``).

Each ``Job`` is one table or figure family of a paper: the ``experiments.X``
main it runs, its flagfile, the flag overrides of each tier (``quick``: all of
them in <= 30 min on the project's 2-core CPU; ``full``: the settings
BUILD_NOTES.md reports; ``paper``: the papers' own budgets, for an
accelerator), what it needs under ``$FOOLJAX_DATA`` and which other jobs' work
directories it reads. The runner starts every step as a subprocess
``python -m experiments.X --flagfile=F <overrides> --workdir=ROOT/<job>``
(log in ``ROOT/<job>.log``), skips what already has a ``summary.json`` (an
interrupted experiment resumes its own work directory), skips with a reason
what lacks data, weights or a dependency, goes on after a failure, and records
every job's status and wall time, the device and the versions in
``ROOT/reproduce.json`` (written atomically after each job). The report
(``fooljax.runs.report``) is built from ROOT alone.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

import flax
import jax
import numpy

from fooljax.errors import FooljaxError
from fooljax.io.workdir import SUMMARY
from fooljax.train import zoo

TIERS = ("quick", "full", "paper")
PAPERS = ("Nguyen", "Szegedy", "Goodfellow", "Su")
STATE = "reproduce.json"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = "experiments/configs"
_DATA = "{data}"
_ROOT = "{root}"
_W = _DATA + "/cifar10-keras-one-pixel"
_MOBILENET = (
    _DATA + "/imagenet-mobilenet-tflite-coral/mobilenet_v2_1.0_224_quant.tflite"
)
_CAFFE = (
    f"--weights={_DATA}/lenet-mnist-caffe-fooling/lenet_iter_10000",
    "--preprocess=caffe_deploy",
    f"--mean_file={_DATA}/lenet-mnist-caffe-fooling/mnist_mean.binaryproto",
)
_ZOO = f"--zoo_dir={_ROOT}/zoo"


@dataclasses.dataclass(frozen=True)
class Step:
    """One subprocess: ``python -m <module> --flagfile=<flagfile> <args>
    <tier args> --workdir=ROOT/<workdir>`` (``kind="script"``: ``python
    <module> <args>``, whose last output line, JSON, becomes the summary)."""

    module: str
    flagfile: str = ""
    args: tuple[str, ...] = ()
    tiers: dict = dataclasses.field(default_factory=dict)  # tier -> extra args
    workdir: str = ""  # relative to ROOT; default: the job's name
    kind: str = "experiment"


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    paper: str  # one of PAPERS, or "shared"
    reproduces: str  # the paper's tables/figures
    steps: tuple[Step, ...]
    needs: tuple[str, ...] = ()  # paths under $FOOLJAX_DATA
    deps: tuple[str, ...] = ()  # jobs whose work directories it reads
    tiers: tuple[str, ...] = TIERS  # where it runs at all
    not_in_tier: str = ""  # why it is absent from the other tiers
    modules: tuple[str, ...] = ()  # optional Python packages it needs


def _one(module, flagfile, *args, quick=(), full=(), paper=(), **kw) -> tuple:
    tiers = {"quick": tuple(quick), "full": tuple(full), "paper": tuple(paper)}
    return (Step(module, flagfile, tuple(args), tiers, **kw),)


def _zoo_steps() -> tuple[Step, ...]:
    """The MNIST zoo trained into ROOT/zoo/<name> once, read by every job
    with ``--zoo_dir=ROOT/zoo``: the zoo's own settings in full/paper, one
    epoch in quick (FC10s two)."""
    steps = []
    for name in ZOO_MODELS:
        c = zoo.zoo_config(name)
        args = (
            f"--model={c.model}",
            f"--batch_size={c.batch_size}",
            f"--learning_rate={c.learning_rate}",
            f"--optimizer={c.optimizer}",
            f"--weight_decay={c.weight_decay}",
            f"--adv_alpha={c.adv_alpha}",
            f"--adv_epsilon={c.adv_epsilon}",
            f"--seed={c.seed}",
        )
        quick = ("--epochs=2",) if c.model == "fc10" else ("--epochs=1",)
        full = (f"--epochs={c.epochs}",)
        steps.append(
            Step(
                "experiments.train_classifier",
                "",
                args,
                {"quick": quick, "full": full, "paper": full},
                workdir=f"zoo/{name}",
            )
        )
    return tuple(steps)


ZOO_MODELS = (
    "fc10_1e-4",
    "fc10_1e-2",
    "fc10_1",
    "fc100_100_10",
    "fc200_200_10",
    "ae400_10",
    "maxout",
    "maxout_dropout",
    "lenet_adv",
)


def _one_pixel_lenet(k: int) -> Job:
    return Job(
        f"one_pixel_lenet_{k}px",
        "Su",
        f"success rate, {k} pixel(s), CIFAR-10",
        _one(
            "experiments.one_pixel",
            "one_pixel_lenet.flags",
            f"--weights={_W}/lenet.h5",
            f"--pixels={k}",
            quick=("--num_images=20", "--batch_size=20"),
        ),
        needs=("cifar10-keras-one-pixel/lenet.h5", "cifar10"),
    )


def _one_pixel_resnet(k: int) -> Job:
    return Job(
        f"one_pixel_resnet32_{k}px",
        "Su",
        f"success rate, {k} pixel(s), ResNet-32",
        _one(
            "experiments.one_pixel",
            "one_pixel_resnet32.flags",
            f"--weights={_W}/resnet.h5",
            f"--pixels={k}",
            quick=("--num_images=8", "--batch_size=8", "--max_generations=12"),
            full=("--batch_size=25",),
            paper=("--batch_size=25",),
        ),
        needs=("cifar10-keras-one-pixel/resnet.h5", "cifar10"),
        tiers=TIERS if k == 1 else ("full", "paper"),
        not_in_tier="≈20–50 min per pixel count on this CPU" if k > 1 else "",
    )


def _jobs() -> tuple[Job, ...]:
    mnist = ("mnist",)
    caffe = ("lenet-mnist-caffe-fooling/lenet_iter_10000", "mnist")
    mobilenet = ("imagenet-mobilenet-tflite-coral/mobilenet_v2_1.0_224_quant.tflite",)
    return (
        Job(
            "zoo",
            "shared",
            "the MNIST models of Szegedy Tables 1–2 and Goodfellow §5–6",
            _zoo_steps(),
            needs=mnist,
        ),
        # ---- Nguyen et al. 2015 ----
        Job(
            "mnist_direct",
            "Nguyen",
            "MNIST direct encoding (Fig. 4)",
            _one(
                "experiments.mnist_direct",
                "mnist_direct.flags",
                quick=("--generations=300",),
            ),
        ),
        Job(
            "mnist_direct_caffe",
            "Nguyen",
            "MNIST direct encoding, the paper's Caffe LeNet",
            _one(
                "experiments.mnist_direct",
                "mnist_direct.flags",
                *_CAFFE,
                quick=("--generations=300",),
            ),
            needs=caffe,
        ),
        Job(
            "mnist_cppn",
            "Nguyen",
            "MNIST CPPN encoding (Fig. 5)",
            _one(
                "experiments.mnist_cppn",
                "mnist_cppn.flags",
                quick=("--generations=100",),
            ),
        ),
        Job(
            "mnist_cppn_caffe",
            "Nguyen",
            "MNIST CPPN, the paper's Caffe LeNet (median by gen 200)",
            _one(
                "experiments.mnist_cppn",
                "mnist_cppn.flags",
                *_CAFFE,
                full=("--generations=200",),
                quick=("--generations=200",),
            ),
            needs=caffe,
        ),
        Job(
            "imagenet_direct",
            "Nguyen",
            "ImageNet direct encoding (Fig. 6)",
            _one(
                "experiments.imagenet_direct",
                "imagenet_direct_cpu.flags",
                quick=("--generations=10",),
                paper=(f"--flagfile={CONFIGS}/imagenet_direct_paper.flags",),
            ),
            needs=mobilenet,
        ),
        Job(
            "imagenet_cppn",
            "Nguyen",
            "ImageNet CPPN encoding (Figs. 1, 7)",
            _one(
                "experiments.imagenet_cppn",
                "imagenet_cppn_cpu.flags",
                quick=("--generations=10",),
                paper=(f"--flagfile={CONFIGS}/imagenet_cppn_paper.flags",),
            ),
            needs=mobilenet,
        ),
        Job(
            "gradient_ascent",
            "Nguyen",
            "gradient-ascent fooling images, MNIST (§3.9)",
            _one("experiments.gradient_ascent", "gradient_ascent.flags"),
        ),
        Job(
            "gradient_ascent_imagenet",
            "Nguyen",
            "gradient-ascent fooling images, ImageNet (Fig. 13)",
            _one(
                "experiments.gradient_ascent",
                "gradient_ascent_imagenet.flags",
                quick=("--classes=15,79,84", "--num_steps=20"),
            ),
            needs=mobilenet,
        ),
        Job(
            "nguyen_ascent_vs_cppn",
            "Nguyen",
            "ascent images beside CPPN elites (Fig. 13)",
            _one(
                "experiments.nguyen_figures",
                "nguyen_ascent_vs_cppn.flags",
                f"--cppn={_ROOT}/imagenet_cppn",
                f"--ascent={_ROOT}/gradient_ascent_imagenet",
                quick=("--classes=15,79,84",),
            ),
            needs=mobilenet,
            deps=("imagenet_cppn", "gradient_ascent_imagenet"),
        ),
        Job(
            "nguyen_repetition",
            "Nguyen",
            "repetition ablation (Fig. 9)",
            _one(
                "experiments.nguyen_figures",
                "nguyen_repetition.flags",
                f"--cppn={_ROOT}/imagenet_cppn",
                quick=("--num_shown=4",),
            ),
            needs=mobilenet,
            deps=("imagenet_cppn",),
        ),
        Job(
            "nguyen_per_class",
            "Nguyen",
            "per-class confidence, dogs and cats (Figs. 6–8)",
            _one(
                "experiments.nguyen_figures",
                "nguyen_per_class.flags",
                f"--cppn={_ROOT}/imagenet_cppn",
                f"--direct={_ROOT}/imagenet_direct",
            ),
            needs=mobilenet,
            deps=("imagenet_cppn", "imagenet_direct"),
        ),
        Job(
            "transfer",
            "Nguyen",
            "transfer of fooling images between LeNets (§3.5)",
            _one(
                "experiments.transfer",
                "transfer.flags",
                f"--sources={_ROOT}/mnist_direct,{_ROOT}/gradient_ascent",
            ),
            needs=caffe,
            deps=("mnist_direct", "gradient_ascent"),
        ),
        Job(
            "fooling_retrain",
            "Nguyen",
            "n+1-class retraining, MNIST (§3.6, Fig. 10)",
            _one(
                "experiments.fooling_retrain",
                "fooling_retrain.flags",
                quick=(
                    f"--flagfile={CONFIGS}/fooling_retrain_quick.flags",
                    "--iterations=2",
                    "--measure_runs=1",
                    "--measure_generations=200",
                    "--num_train_examples=10000",
                ),
            ),
            needs=mnist,
        ),
        Job(
            "fooling_retrain_cifar10",
            "Nguyen",
            "n+1-class retraining, ImageNet iteration (§3.7; CIFAR-10 stand-in)",
            _one(
                "experiments.fooling_retrain",
                "fooling_retrain_cifar10.flags",
                quick=(
                    "--first_images=400",
                    "--images_per_iteration=200",
                    "--generations=30",
                    "--measure_runs=1",
                    "--measure_generations=60",
                    "--epochs=1",
                ),
            ),
            needs=("cifar10-keras-one-pixel/lenet.h5", "cifar10"),
        ),
        # ---- Szegedy et al. 2014 ----
        Job(
            "lbfgs_tables",
            "Szegedy",
            "Tables 1 and 2: L-BFGS distortion and cross-model transfer",
            _one(
                "experiments.lbfgs_tables",
                "lbfgs_tables.flags",
                _ZOO,
                quick=(
                    "--num_images=40",
                    "--num_search_steps=5",
                    "--max_iterations=20",
                ),
            ),
            needs=mnist,
            deps=("zoo",),
        ),
        Job(
            "table2_cell",
            "Szegedy",
            "Table 2, the FC10 → FC100 cell examined",
            _one(
                "experiments.table2_cell",
                "table2_cell.flags",
                _ZOO,
                quick=(
                    "--num_images=50",
                    "--batch_size=50",
                    "--c_values=",
                    "--num_search_steps=5",
                    "--max_iterations=20",
                ),
            ),
            needs=mnist,
            deps=("zoo",),
        ),
        Job(
            "cross_training",
            "Szegedy",
            "Tables 3–4: disjoint training halves",
            _one(
                "experiments.cross_training",
                "cross_training.flags",
                quick=(
                    "--epochs=8",
                    "--num_train_per_half=10000",
                    "--num_test=100",
                    "--attack_batch_size=100",
                    "--num_search_steps=4",
                    "--max_iterations=20",
                ),
            ),
            needs=mnist,
        ),
        Job(
            "adversarial_pool",
            "Szegedy",
            "training on a regenerated adversarial pool (§4.2)",
            _one(
                "experiments.adversarial_pool",
                "adversarial_pool.flags",
                quick=(
                    "--epochs=5",
                    "--num_train=10000",
                    "--pool_size=100",
                    "--num_test=100",
                    "--attack_batch_size=100",
                    "--num_search_steps=4",
                    "--max_iterations=20",
                ),
            ),
            needs=mnist,
        ),
        Job(
            "lipschitz_bounds",
            "Szegedy",
            "Table 5: layer operator norms (upper Lipschitz bounds)",
            _one(
                "experiments.lipschitz_bounds",
                "lipschitz_bounds.flags",
                quick=(
                    "--num_iters=20",
                    "--lbfgs_images=2",
                    "--lbfgs_imagenet_images=0",
                    "--lbfgs_search_steps=3",
                    "--lbfgs_max_iterations=20",
                    "--lbfgs_batch_size=2",
                ),
            ),
            needs=mnist + mobilenet + caffe[:1],
        ),
        Job(
            "unit_semantics_mnist",
            "Szegedy",
            "§3 unit vs random directions (Figs. 1–2), MNIST",
            _one("experiments.unit_semantics", "unit_semantics_mnist.flags"),
            needs=mnist,
        ),
        Job(
            "unit_semantics_cifar10",
            "Szegedy",
            "§3 unit vs random directions (Figs. 3–4 stand-in), CIFAR-10 ResNet-32",
            _one(
                "experiments.unit_semantics",
                "unit_semantics_cifar10.flags",
                f"--weights={_W}/resnet.h5",
                quick=("--num_images=2000",),
            ),
            needs=("cifar10-keras-one-pixel/resnet.h5", "cifar10"),
        ),
        # ---- Goodfellow et al. 2015 ----
        Job(
            "fgsm",
            "Goodfellow",
            "§4 FGSM on MNIST (softmax regression, maxout), ε 0.25",
            _one("experiments.fgsm", "fgsm.flags", _ZOO, quick=("--num_images=1000",)),
            needs=mnist,
            deps=("zoo",),
        ),
        Job(
            "fgsm_maxout_dropout",
            "Goodfellow",
            "§4 maxout trained with dropout",
            _one(
                "experiments.fgsm",
                "fgsm_maxout_dropout.flags",
                _ZOO,
                quick=("--num_images=1000",),
            ),
            needs=mnist,
            deps=("zoo",),
        ),
        Job(
            "adversarial_training",
            "Goodfellow",
            "§6 adversarial training and FGSM transfer",
            _one(
                "experiments.adversarial_training",
                "adversarial_training.flags",
                _ZOO,
                quick=("--num_images=1000",),
            ),
            needs=mnist,
            deps=("zoo",),
        ),
        Job(
            "cifar_fgsm",
            "Goodfellow",
            "§4 FGSM on a CIFAR-10 conv net, ε 0.1",
            _one(
                "experiments.cifar_fgsm",
                "cifar_fgsm.flags",
                quick=("--num_images=200", "--batch_size=100"),
            ),
            needs=(
                "cifar10-keras-one-pixel/lenet.h5",
                "cifar10-keras-one-pixel/resnet.h5",
                "cifar10",
            ),
        ),
        Job(
            "fgsm_logit_sweep",
            "Goodfellow",
            "Fig. 4: logits along the FGSM direction",
            _one(
                "experiments.fgsm_logit_sweep",
                "fgsm_logit_sweep.flags",
                _ZOO,
                quick=("--num_images=100", "--num_epsilons=41"),
            ),
            needs=mnist,
            deps=("zoo",),
        ),
        Job(
            "linear_adversarial",
            "Goodfellow",
            "§5, Fig. 2: logistic regression 3 vs 7",
            _one(
                "experiments.linear_adversarial",
                "linear_adversarial.flags",
            ),
            needs=mnist,
        ),
        Job(
            "rbf_fgsm",
            "Goodfellow",
            "§7: shallow RBF network under FGSM",
            _one(
                "experiments.rbf_fgsm",
                "rbf_fgsm.flags",
                quick=("--num_images=1000",),
            ),
            needs=mnist,
        ),
        Job(
            "rubbish_images",
            "Goodfellow",
            "appendix: rubbish-class (noise) examples",
            _one(
                "experiments.rubbish_images",
                "rubbish_images.flags",
                _ZOO,
                quick=("--num_images=200",),
            ),
            needs=mnist,
            deps=("zoo",),
        ),
        # ---- Su et al. 2019 ----
        _one_pixel_lenet(1),
        _one_pixel_lenet(3),
        _one_pixel_lenet(5),
        _one_pixel_resnet(1),
        _one_pixel_resnet(3),
        _one_pixel_resnet(5),
        Job(
            "one_pixel_allconv",
            "Su",
            "success rate, 1 pixel, All-conv (Table 2)",
            (
                Step(
                    "experiments.train_classifier",
                    "allconv_cifar10.flags",
                    workdir="one_pixel_allconv/net",
                ),
                Step(
                    "experiments.one_pixel",
                    "one_pixel_lenet.flags",
                    (
                        "--model=cifar_allconv",
                        f"--weights={_ROOT}/one_pixel_allconv/net/params.npz",
                        "--dataset=cifar10_files",
                        "--num_images=20",
                        "--batch_size=20",
                    ),
                    workdir="one_pixel_allconv/attack",
                ),
            ),
            needs=("cifar10",),
            tiers=("full", "paper"),
            not_in_tier="training All-CNN-C takes ≈42 min on this CPU",
        ),
        Job(
            "one_pixel_targeted_lenet",
            "Su",
            "targeted one-pixel runs (for the heat map)",
            _one(
                "experiments.one_pixel",
                "one_pixel_analysis_targeted_lenet.flags",
                quick=("--num_images=10", "--batch_size=90", "--max_generations=20"),
            ),
            needs=("cifar10-keras-one-pixel/lenet.h5", "cifar10"),
        ),
        Job(
            "one_pixel_targeted_resnet32",
            "Su",
            "targeted one-pixel runs (for the heat map)",
            _one(
                "experiments.one_pixel",
                "one_pixel_analysis_targeted_resnet32.flags",
                quick=(
                    "--num_images=3",
                    "--batch_size=27",
                    "--population=20",
                    "--max_generations=5",
                ),
            ),
            needs=("cifar10-keras-one-pixel/resnet.h5", "cifar10"),
        ),
        Job(
            "one_pixel_analysis",
            "Su",
            "Fig. 3 heat map and classes per image (Table 3)",
            _one(
                "experiments.one_pixel_analysis",
                "",
                f"--sources={_ROOT}/one_pixel_targeted_lenet,"
                f"{_ROOT}/one_pixel_targeted_resnet32",
            ),
            deps=("one_pixel_targeted_lenet", "one_pixel_targeted_resnet32"),
        ),
        Job(
            "one_pixel_compare",
            "Su",
            "vs local search and FGSM on k pixels (§5)",
            _one(
                "experiments.one_pixel_compare",
                "one_pixel_analysis_compare.flags",
                f"--sources={_ROOT}/one_pixel_lenet_1px,{_ROOT}/one_pixel_lenet_3px,"
                f"{_ROOT}/one_pixel_lenet_5px,{_ROOT}/one_pixel_resnet32_1px",
                quick=(
                    "--max_images=cifar_lenet=8,cifar_resnet32=2",
                    "--lsa_rounds=10",
                ),
            ),
            deps=(
                "one_pixel_lenet_1px",
                "one_pixel_lenet_3px",
                "one_pixel_lenet_5px",
                "one_pixel_resnet32_1px",
            ),
        ),
        Job(
            "one_pixel_imagenet",
            "Su",
            "ImageNet, 1 pixel (§4.3)",
            _one(
                "experiments.one_pixel",
                "one_pixel_imagenet.flags",
                f"--weights={_MOBILENET}",
                quick=(
                    "--num_images=2",
                    "--batch_size=2",
                    "--population=100",
                    "--max_generations=4",
                ),
                paper=("--max_generations=100",),
            ),
            needs=mobilenet + ("foolbox-samples",),
        ),
        Job(
            "bench_art",
            "peer",
            "IBM ART PixelAttack vs fooljax one-pixel",
            (
                Step(
                    "scripts/bench_one_pixel.py",
                    "",
                    ("--model=cifar_lenet", f"--weights={_W}/lenet.h5"),
                    kind="script",
                ),
            ),
            needs=("cifar10-keras-one-pixel/lenet.h5",),
            modules=("art",),
        ),
    )


JOBS: tuple[Job, ...] = _jobs()
JOB_NAMES = tuple(j.name for j in JOBS)


def job(name: str) -> Job:
    for j in JOBS:
        if j.name == name:
            return j
    raise FooljaxError(f"unknown job '{name}' (known: {', '.join(JOB_NAMES)})")


def parse_only(only: str | None) -> tuple[str, ...]:
    """The jobs named in ``--only`` (comma list), checked; empty: all."""
    names = tuple(n.strip() for n in (only or "").split(",") if n.strip())
    for n in names:
        job(n)
    return names


def check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise FooljaxError(f"--tier must be one of {', '.join(TIERS)}, got '{tier}'")


def step_workdir(j: Job, s: Step) -> str:
    return s.workdir or j.name


def command(j: Job, s: Step, tier: str, *, root: str, data: str) -> list[str]:
    """The argv of step ``s`` of job ``j`` at ``tier`` (placeholders filled)."""
    fill = lambda a: a.replace(_ROOT, root).replace(_DATA, data)  # noqa: E731
    if s.kind == "script":
        return ["python", s.module, *[fill(a) for a in s.args + s.tiers.get(tier, ())]]
    argv = ["python", "-m", s.module]
    if s.flagfile:
        argv.append(f"--flagfile={CONFIGS}/{s.flagfile}")
    argv += [fill(a) for a in s.args + s.tiers.get(tier, ())]
    argv.append(f"--workdir={root}/{step_workdir(j, s)}")
    return argv


def display_command(j: Job, tier: str) -> str:
    """The job's commands as a reader types them (``$ROOT``, ``$FOOLJAX_DATA``)."""
    return " && ".join(
        " ".join(command(j, s, tier, root="$ROOT", data="$FOOLJAX_DATA"))
        for s in j.steps
    )


def missing(j: Job, data: str | None) -> str:
    """Why ``j`` cannot run here ('' if it can)."""
    for m in j.modules:
        if importlib.util.find_spec(m) is None:
            return f"Python package '{m}' not installed (pip install -e '.[bench]')"
    if not j.needs:
        return ""
    if not data:
        return f"FOOLJAX_DATA unset (needs {j.needs[0]})"
    for n in j.needs:
        if not os.path.exists(os.path.join(data, n)):
            return f"$FOOLJAX_DATA/{n} not found"
    return ""


def finished(root: str, j: Job) -> bool:
    return all(
        os.path.exists(os.path.join(root, step_workdir(j, s), SUMMARY)) for s in j.steps
    )


def write_json_atomic(path: str, obj) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def read_state(root: str) -> dict | None:
    path = os.path.join(root, STATE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        raise FooljaxError(f"{path} is not readable JSON ({e})") from e
    if not isinstance(state, dict) or "jobs" not in state:
        raise FooljaxError(f"{path} is not a reproduce.json (no 'jobs')")
    return state


def environment() -> dict:
    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", "") or dev.platform
    name = dev.platform if kind.lower() == dev.platform else f"{dev.platform} ({kind})"
    return {
        "device": f"{jax.device_count()} × {name}, {os.cpu_count()} host CPU cores",
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "numpy": numpy.__version__,
        },
    }


def _run_step(argv: list[str], log_path: str, summary_dir: str, kind: str) -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    argv = [sys.executable] + argv[1:]
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        if kind == "script":
            p = subprocess.run(
                argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True
            )
            log.write(p.stdout)
            lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
            if p.returncode == 0 and lines:
                try:
                    result = json.loads(lines[-1])
                except ValueError:
                    log.write("last output line is not JSON\n")
                    return 1
                os.makedirs(summary_dir, exist_ok=True)
                write_json_atomic(os.path.join(summary_dir, SUMMARY), result)
            return p.returncode
        p = subprocess.run(argv, cwd=REPO, env=env, stdout=log, stderr=log)
        return p.returncode


def _load() -> float | None:
    """The host's 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run(tier: str, root: str, only: tuple[str, ...] = (), log=print) -> dict:
    """Runs the jobs of ``tier`` (``only``: these) into ``root``; returns the
    state also written to ``root/reproduce.json``."""
    check_tier(tier)
    state = read_state(root)
    if state is not None and state.get("tier") != tier:
        raise FooljaxError(
            f"{root} holds a '{state.get('tier')}' tier run; use another --workdir"
        )
    os.makedirs(root, exist_ok=True)
    data = os.environ.get("FOOLJAX_DATA", "")
    data = os.path.abspath(data) if data else ""
    state = state or {"tier": tier, "jobs": {}}
    state.update(environment())
    state["tier"] = tier
    path = os.path.join(root, STATE)
    selected = [j for j in JOBS if not only or j.name in only]
    status: dict[str, str] = {}
    for j in JOBS:  # jobs not selected count as they stand on disk
        if j not in selected:
            status[j.name] = "done" if finished(root, j) else "absent"
    t_all = time.time()
    load = {"start": _load()}
    for j in selected:
        rec = {
            "paper": j.paper,
            "reproduces": j.reproduces,
            "command": display_command(j, tier),
        }
        old = state["jobs"].get(j.name, {})
        reason = ""
        if tier not in j.tiers:
            reason = f"{'/'.join(j.tiers)} tier only: {j.not_in_tier}"
        reason = reason or missing(j, data)
        bad = [d for d in j.deps if status.get(d) not in ("done",)]
        if not reason and bad:
            reason = f"needs the work of {', '.join(bad)} (not finished)"
        if reason and not finished(root, j):
            rec.update(status="skipped", reason=reason, wall_seconds=None)
            status[j.name] = "skipped"
            log(f"[reproduce] {j.name}: skipped: {reason}")
        elif finished(root, j):
            rec.update(
                status="done",
                reason=old.get("reason", ""),
                wall_seconds=old.get("wall_seconds"),
            )
            status[j.name] = "done"
            log(f"[reproduce] {j.name}: already finished")
        else:
            log(f"[reproduce] {j.name}: running ({len(j.steps)} step(s))")
            t0 = time.time()
            rc = 0
            log_path = os.path.join(root, f"{j.name}.log")
            for s in j.steps:
                wd = os.path.join(root, step_workdir(j, s))
                if os.path.exists(os.path.join(wd, SUMMARY)):
                    continue
                os.makedirs(os.path.dirname(wd), exist_ok=True)
                argv = command(j, s, tier, root=root, data=data)
                rc = _run_step(argv, log_path, wd, s.kind)
                if rc != 0:
                    break
            wall = round(time.time() - t0, 1)
            if rc == 0 and finished(root, j):
                rec.update(status="done", reason="", wall_seconds=wall)
                status[j.name] = "done"
            else:
                why = f"exit status {rc}" if rc else "no summary.json written"
                rec.update(
                    status="failed",
                    reason=f"{why}; see {j.name}.log",
                    wall_seconds=wall,
                )
                status[j.name] = "failed"
            log(f"[reproduce] {j.name}: {rec['status']} in {wall:.0f} s")
        state["jobs"][j.name] = rec
        write_json_atomic(path, state)
    state["last_invocation_seconds"] = round(time.time() - t_all, 1)
    load["end"] = _load()
    state["load_average"] = load
    times = [r.get("wall_seconds") or 0 for r in state["jobs"].values()]
    state["total_job_seconds"] = round(sum(times), 1)
    write_json_atomic(path, state)
    return state
