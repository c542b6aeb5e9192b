"""Fooling-image experiments (Nguyen et al. 2015, Sec. 2-3): MAP-Elites over a
classifier's classes with the direct or the CPPN encoding, MNIST or ImageNet.

``run(FoolingConfig(...), workdir)`` loads the classifier, builds the encoding
and runs (or resumes) MAP-Elites in ``workdir``; the generations run in
compiled ``lax.scan`` chunks (``evolution.map_elites.make_run_chunk``) and this
host loop only logs, checkpoints and writes pictures:

- ``config.json``: the settings (a run with other settings is refused).
- ``metrics.jsonl``: one line per generation (from the compiled chunk's
  metrics): elite min/median/max probability, classes >= 0.99 / 0.9999,
  QD-score (sum of the cells' probabilities), coverage, each class's "nines"
  -log10(1 - p) (up to 100 classes; quantiles over classes beyond); each
  chunk's last line also holds its generations/s and evaluations/s.
- ``checkpoints/``: orbax, atomic, every ``checkpoint_every`` generations; a
  restarted run resumes from the latest one, bit-identical to an uninterrupted
  run (keys are ``fold_in(key, generation)``; chunking does not change results).
- at the end: ``archive.png``, ``classes/*.png``, ``confidence.png``,
  ``nines.png`` (confidence in nines per class, 0.99 / 0.9999 lines),
  ``qd.png`` (QD-score / K and coverage) (and ``archive.html`` for more than
  100 classes) and, last, ``summary.json``.

The four entry points ``experiments.{mnist,imagenet}_{direct,cppn}`` are this
module's ``define_flags`` + ``main`` with their own default work directory and
encoding; the CPPN's settings are the ``--cppn_*`` flags, generated from
``encodings.cppn.make_spec``'s defaults.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from fooljax import models
from fooljax.encodings import cppn, make_encoding
from fooljax.errors import FooljaxError
from fooljax.evolution import emitters as em
from fooljax.evolution import map_elites as me
from fooljax.io import images as imageio
from fooljax.io import integrity
from fooljax.io.checkpoint import Checkpointer
from fooljax.io.checkpoint import preload as checkpoint_preload
from fooljax.io.events import EventWriter
from fooljax.io.plot import line_chart
from fooljax.io.workdir import (
    atomic_write_text,
    prepare_workdir,
    rewrite_jsonl,
    write_summary,
)
from fooljax.models.crops import ten_crop_log_probs
from fooljax.runs import PROCESS_T0, config, distributed
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import load_classifier, save_artifact

log = logging.getLogger("fooljax")
FLAGS = flags.FLAGS

METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"  # event files of the metrics rows, for live curves
opt = config.opt


@dataclasses.dataclass(frozen=True)
class FoolingConfig:
    model: str = opt("lenet", "Registered model name.")
    weights: str = opt("default", "default, a checkpoint dir or a file.")
    preprocess: str | None = opt(None, "identity, unit or caffe_deploy.")
    mean_file: str | None = opt(None, "Caffe mean .binaryproto (caffe_deploy).")
    encoding: str = opt("direct", "Genome encoding: direct or cppn.")
    # CPPN settings (capacities, probabilities, ...) as (name, value) pairs so
    # the config stays hashable; filled from the --cppn_* flags.
    encoding_options: tuple = ()
    image_shape: tuple[int, ...] | None = opt(
        None, "H,W,C of genomes (default: the model's)."
    )
    population: int = opt(200, "Offspring per generation (paper: 200).")
    generations: int = opt(1000, "Generations to run (paper, MNIST: 1000).")
    mutation_rate: float = opt(0.1, "Per-gene mutation probability (paper: 0.1).")
    mutation_eta: float = opt(15.0, "Polynomial mutation index (paper: 15).")
    mutation_halving: int = opt(
        0, "Halve the mutation rate every N generations (0 = never; paper: 1000)."
    )
    crossover_rate: float = opt(0.0, "SBX crossover probability (original code: 0.5).")
    crossover_eta: float = opt(10.0, "SBX distribution index.")
    seed: int = opt(0, "Random seed (run r of --num_runs uses seed + r).")
    num_runs: int = opt(
        1, "Independent runs as one compiled step (seeds seed..seed+num_runs-1)."
    )
    checkpoint_every: int = opt(250, "Generations between checkpoints.")
    log_every: int = opt(50, "Generations per compiled chunk (one log line each).")
    num_devices: int = opt(0, "Devices to shard over; 0 = all that divide it.")
    eval_batch: int = opt(50, "Images per model call (same on every device).")
    ten_crop: bool = opt(False, "Score the mean softmax over 10 crops of input size.")
    emitters: str = opt(
        "mutation",
        "Offspring makers, counts summing to --population: 'mutation' (the "
        "paper's) or a mix, e.g. mutation:150,gradient:50 or "
        "mutation:100,cmame:100 (CMA-ME improvement emitters, evosax); "
        "mutation_needy:N draws parents with weight 1 - p; gradient_any:N "
        "ascends from any elite, gradient_mut:N from a mutated copy of the "
        "needy class's elite; tune:N perturbs only the continuous genes of "
        "needy elites finely (--tune_eta); mutation_depth:N mutates parents "
        "from a second class x --depth_descriptor archive, gradient_depth:N "
        "ascends from such a parent mutated.",
    )
    gradient_steps: int = opt(
        3, "Gradient emitter: ascent steps on log p(class) per offspring."
    )
    gradient_step_size: float = opt(
        0.02, "Gradient emitter: largest sign step, a fraction of the genes' range."
    )
    gradient_optimizer: str = opt(
        "sign",
        "Gradient emitter: 'sign' (projected sign steps) or 'adam' (Adam "
        "steps, the drawn step size as its learning rate).",
        choices=em.OPTIMIZERS,
    )
    gradient_objective: str = opt(
        "log_p",
        "Gradient emitter: ascend 'log_p' (log p(class)) or 'margin' (log p - "
        "logsumexp of the other classes: its gradient does not fade as p -> 1).",
        choices=em.OBJECTIVES,
    )
    gradient_grow_edges: int = opt(
        0,
        "Gradient emitter, CPPN: before the steps, add the N new connections "
        "whose weight's gradient is largest (of a random candidate in every "
        "free edge slot); 0 = none.",
    )
    tune_eta: float = opt(
        60.0,
        "tune:N emitter: polynomial mutation index of the continuous genes "
        "(larger = finer steps; the paper's mutation uses --mutation_eta).",
    )
    tune_rate: float = opt(0.1, "tune:N emitter: per-gene mutation probability.")
    depth_descriptor: str = opt(
        "auto",
        "mutation_depth/gradient_depth: the second descriptor of their class x bin "
        "archive: 'nodes', 'edges' or both ('structure') a CPPN uses, "
        "'brightness' (direct); "
        "'auto' = nodes (cppn) or brightness (direct).",
        choices=("auto", *em.DESCRIPTORS),
    )
    cmame_instances: int = opt(
        1, "CMA-ME: emitter instances (vmapped); each gets cmame_count / instances."
    )
    cmame_sigma: float = opt(
        0.05, "CMA-ME: initial step, a fraction of the genes' range."
    )
    cmame_strategy: str = opt(
        "sep_cma_es",
        "CMA-ME: the evosax strategy (sep_cma_es: diagonal, for large genomes; "
        "cma_es: full covariance).",
        choices=tuple(em.STRATEGIES),
    )
    cmame_restart_from: str = opt(
        "uniform",
        "CMA-ME: (re)start from a uniformly drawn elite, or 'needy': weight 1 - p.",
        choices=("uniform", "needy"),
    )
    forward_backward_cost: float = opt(
        0.0,
        "Forward-equivalents of one forward+backward pass in the accounting "
        "(0 = measure on the model at start).",
    )
    max_minutes: float = opt(
        0.0,
        "Wall-time budget: finish after the first chunk that ends past this "
        "many minutes of the run (start-up included, summed over resumes); "
        "0 = none.",
    )

    def validate(self) -> None:
        config.check_fields(
            self,
            population=(2, None),
            generations=(1, None),
            checkpoint_every=(1, None),
            log_every=(1, None),
            num_devices=(0, None),
            eval_batch=(1, None),
            num_runs=(1, None),
            mutation_rate=(0, 1),
            mutation_eta=(0, None),
            mutation_halving=(0, None),
            crossover_rate=(0, 1),
            crossover_eta=(0, None),
            gradient_steps=(1, None),
            gradient_grow_edges=(0, None),
            gradient_step_size=dict(lo=0, lo_open=True),
            tune_eta=(0, None),
            tune_rate=dict(lo=0, hi=1, lo_open=True),
            cmame_instances=(1, None),
            cmame_sigma=dict(lo=0, lo_open=True),
            forward_backward_cost=(0, None),
            max_minutes=(0, None),
        )
        self.emitter_mix()
        if self.population < 2:
            raise FooljaxError(f"population must be >= 2, got {self.population}")
        if self.generations <= 0:
            raise FooljaxError(f"generations must be > 0, got {self.generations}")
        if self.checkpoint_every <= 0 or self.log_every <= 0:
            raise FooljaxError("checkpoint_every and log_every must be > 0")
        if self.num_devices < 0:
            raise FooljaxError("num_devices must be >= 0")
        if self.mutation_halving < 0:
            raise FooljaxError("mutation_halving must be >= 0")
        if self.image_shape is not None and (
            len(self.image_shape) != 3 or min(self.image_shape) <= 0
        ):
            raise FooljaxError("--image_shape must be three positive integers H,W,C")

    def emitter_mix(self) -> tuple | None:
        """The ``evolution.emitters`` of ``--emitters`` (``None``: the paper's
        mutation alone, the code path of runs before emitters existed)."""
        mix = em.parse(
            self.emitters,
            self.population,
            steps=int(self.gradient_steps),
            step_size=float(self.gradient_step_size),
            optimizer=self.gradient_optimizer,
            objective=self.gradient_objective,
            grow_edges=int(self.gradient_grow_edges),
            genes="cppn" if self.encoding == "cppn" else "direct",
            tune_options={
                "genes": "cppn" if self.encoding == "cppn" else "direct",
                "eta": float(self.tune_eta),
                "rate": float(self.tune_rate),
            },
            depth_options={
                "descriptor": em.depth_descriptor(self.depth_descriptor, self.encoding)
            },
            cmame_options={
                "instances": int(self.cmame_instances),
                "sigma": float(self.cmame_sigma),
                "strategy": self.cmame_strategy,
                "restart_from": self.cmame_restart_from,
                "genes": "cppn" if self.encoding == "cppn" else "direct",
            },
        )
        return None if em.is_default(mix, self.population) else mix


# The CPPN's own flags, ``--cppn_<option>``; defaults from cppn.make_spec. The
# weight mutation uses --mutation_rate/--mutation_eta.
CPPN_HELP = {
    "max_nodes": "Node capacity (4 inputs + outputs + hidden).",
    "max_edges": "Connection capacity.",
    "activations": "sine,sigmoid,gaussian,identity.",
    "p_add_conn": "P(add a connection).",
    "p_del_conn": "P(delete a connection).",
    "p_change_conn": "P(rewire one connection endpoint).",
    "p_add_node": "P(split a connection).",
    "p_del_node": "P(delete a hidden node).",
    "activation_rate": "Per-node probability of redrawing the activation function.",
    "coords": "CPPN x, y inputs: 'centered' in [-1, 1], or 'pixel' = column/row "
    "indices as in the paper's Sferes2 code.",
    "output_map": "Output o -> pixel: 'affine' (o + 1) / 2, or 'abs' |o| as in "
    "the Sferes2 code.",
}
_FROM_MUTATION = {"weight_rate": "mutation_rate", "weight_eta": "mutation_eta"}
_CPPN_CHOICES = {"coords": cppn.COORDS, "output_map": cppn.OUTPUT_MAPS}


def define_flags(*, default_workdir: str, encoding: str = "direct") -> None:
    """The flags of a fooling entry point: --workdir, --overwrite, every
    ``FoolingConfig`` field and the ``--cppn_*`` options."""
    config.define_workdir_flags(default_workdir)
    config.define_flags(FoolingConfig, encoding=encoding)
    define_cppn_flags()


def define_cppn_flags() -> None:
    """The ``--cppn_*`` flags (defaults from ``cppn.make_spec``); read them
    back with ``cppn_options``."""
    defaults = cppn.make_spec.__kwdefaults__
    for name in cppn.OPTIONS:
        if name in _FROM_MUTATION:
            continue
        default = defaults[name]
        config.define_flag(
            f"cppn_{name}",
            default,
            type(default),
            CPPN_HELP[name],
            _CPPN_CHOICES.get(name),
        )


def config_from_flags(**overrides) -> FoolingConfig:
    """The ``FoolingConfig`` of the parsed flags; with ``--encoding=cppn`` its
    ``encoding_options`` are the ``--cppn_*`` flags."""
    values = config.flag_values(FoolingConfig)
    values.update(overrides)
    if values["encoding"] == "cppn" and "encoding_options" not in overrides:
        values["encoding_options"] = cppn_options(values)
    cfg = FoolingConfig(**values)
    cfg.validate()
    return cfg


def cppn_options(values: dict) -> tuple:
    """The ``--cppn_*`` flags as ``FoolingConfig.encoding_options`` pairs."""
    out = []
    for name in cppn.OPTIONS:
        if name in _FROM_MUTATION:
            v = values[_FROM_MUTATION[name]]
        else:
            v = FLAGS[f"cppn_{name}"].value
            v = ",".join(v) if isinstance(v, list) else v
        out.append((name, v))
    return tuple(out)


def _check_image_shape(clf: models.Classifier, shape) -> None:
    try:
        out = jax.eval_shape(
            clf.logits_fn, clf.params, jax.ShapeDtypeStruct((2, *shape), jnp.float32)
        )
    except Exception as e:  # shape errors surface as many exception types
        raise FooljaxError(
            f"model '{clf.name}' does not accept images of shape {tuple(shape)} "
            f"(it takes {clf.input_shape}): {type(e).__name__}"
        ) from None
    if out.shape != (2, clf.num_classes):
        raise FooljaxError(
            f"model '{clf.name}' maps {tuple(shape)} images to {out.shape[1:]}, "
            f"expected ({clf.num_classes},) class scores"
        )


def load_for(cfg: FoolingConfig) -> models.Classifier:
    return load_classifier(cfg.model, cfg.weights, cfg.preprocess, cfg.mean_file)


def run(
    cfg: FoolingConfig,
    workdir: str,
    *,
    overwrite: bool = False,
    classifier: models.Classifier | None = None,
    t_start: float | None = None,
    stop_after: int | None = None,
) -> dict:
    """Evolves fooling images for every class of the model; returns summary.json.

    ``classifier``: pass your own ``models.Classifier(logits_fn, params, ...)``
    to fool a model that is not registered (``cfg.model`` is then a label).
    ``stop_after``: stop unfinished after this many generations (tests).
    """
    t_start = time.time() if t_start is None else t_start
    cfg.validate()
    clf = classifier if classifier is not None else load_for(cfg)
    shape = tuple(cfg.image_shape or clf.input_shape)
    _check_image_shape(clf, shape)
    encoding, _ = make_encoding(
        cfg.encoding,
        shape,
        mutation_rate0=cfg.mutation_rate,
        mutation_eta=cfg.mutation_eta,
        halve_every=cfg.mutation_halving,
        crossover_rate=cfg.crossover_rate,
        crossover_eta=cfg.crossover_eta,
        options=dict(cfg.encoding_options),
    )
    log_probs_fn = me.log_probs_from(logits_fn=clf.logits_fn)
    if cfg.ten_crop:
        crop_h, crop_w, _ = clf.input_shape
        if (crop_h, crop_w) == tuple(shape[:2]):
            raise FooljaxError(
                f"--ten_crop needs genomes larger than the model's input "
                f"{clf.input_shape[:2]}; set --image_shape (e.g. 256,256,3)"
            )
        log_probs_fn = ten_crop_log_probs(clf.logits_fn, crop_h, crop_w)
        _check_image_shape(clf, (crop_h, crop_w, shape[2]))
    emitters = cfg.emitter_mix()
    cost = forward_backward_cost(
        emitters,
        cfg.forward_backward_cost,
        log_probs_fn,
        clf.params,
        encoding,
        cfg.eval_batch,
    )
    return run_map_elites(
        workdir=workdir,
        config=dataclasses.asdict(cfg),
        log_probs_fn=log_probs_fn,
        params=clf.params,
        encoding=encoding,
        num_classes=clf.num_classes,
        population=cfg.population,
        num_generations=cfg.generations,
        seed=cfg.seed,
        class_names=list(clf.class_names) if clf.class_names else None,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        overwrite=overwrite,
        mesh=default_mesh(cfg.population * cfg.num_runs, cfg.num_devices),
        eval_batch=cfg.eval_batch,
        num_runs=cfg.num_runs,
        t_start=t_start,
        stop_after=stop_after,
        summary_extra={"encoding": cfg.encoding, "weights": cfg.weights},
        emitters=emitters,
        forward_backward=cost,
        max_minutes=cfg.max_minutes,
    )


def measure_forward_backward(
    log_probs_fn, params, encoding, eval_batch: int, genes: str, reps: int = 25
) -> dict:
    """Times one micro-batch of ``eval_batch`` genomes: the scoring forward
    (decode + model) and the gradient emitter's forward + backward
    (``emitters.target_grad``), each jitted, warm, best of ``reps``
    interleaved. ``ratio`` is that of the process CPU times (all threads):
    the work done, which a loaded shared machine disturbs far less than the
    wall times (``wall_ratio``, also returned, varied 4.5-15 in one minute on
    the project's loaded 2-core CPU)."""
    keys = jax.random.split(jax.random.key(0), eval_batch)
    genomes = jax.vmap(encoding.init)(keys)
    g = em.GENES[genes]
    x = jax.vmap(g.get)(genomes)
    targets = jnp.arange(eval_batch, dtype=jnp.int32) % 2

    def fwd(params, genomes):
        return log_probs_fn(params, jax.vmap(encoding.decode)(genomes))

    def fwd_bwd(params, genomes, x):
        ctx = em.Context(encoding, log_probs_fn, params, eval_batch, jnp.int32(1))
        return em.target_grad(ctx, g, genomes, x, targets)

    f_jit, fb_jit = jax.jit(fwd), jax.jit(fwd_bwd)
    jax.block_until_ready(f_jit(params, genomes))
    jax.block_until_ready(fb_jit(params, genomes, x))

    def timed(fn, *args):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        return time.perf_counter() - t0, time.process_time() - c0

    # interleaved, best of each: a shared machine's load hits both alike
    f_runs, fb_runs = [], []
    for _ in range(reps):
        f_runs.append(timed(f_jit, params, genomes))
        fb_runs.append(timed(fb_jit, params, genomes, x))
    f, fb = min(w for w, _ in f_runs), min(w for w, _ in fb_runs)
    f_cpu, fb_cpu = min(c for _, c in f_runs), min(c for _, c in fb_runs)
    return {
        "ratio": fb_cpu / f_cpu,
        "wall_ratio": fb / f,
        "forward_ms": 1e3 * f,
        "forward_backward_ms": 1e3 * fb,
        "forward_cpu_ms": 1e3 * f_cpu,
        "forward_backward_cpu_ms": 1e3 * fb_cpu,
        "batch": eval_batch,
    }


def forward_backward_cost(
    emitters, flag_value: float, log_probs_fn, params, encoding, eval_batch: int
) -> dict | None:
    """The forward-equivalents of one forward + backward pass for the
    accounting: ``None`` without gradient emitters, the flag's value when it is
    > 0, else measured on the model (``measure_forward_backward``)."""
    if not em.uses_gradients(emitters):
        return None
    if flag_value > 0:
        return {"ratio": float(flag_value), "source": "--forward_backward_cost"}
    genes = next(e.genes for e in emitters if e.forward_backwards)
    m = measure_forward_backward(log_probs_fn, params, encoding, eval_batch, genes)
    m["source"] = (
        f"measured at start on {jax.default_backend()}: process CPU time of "
        f"forward+backward {m['forward_backward_cpu_ms']:.2f} ms / forward "
        f"{m['forward_cpu_ms']:.2f} ms per micro-batch of {m['batch']} (best of "
        f"25; wall {m['forward_backward_ms']:.2f} / {m['forward_ms']:.2f} ms)"
    )
    log.info("forward+backward = %.2f forwards (%s)", m["ratio"], m["source"])
    return m


def accounting(emitters, population: int, cost: dict | None) -> dict:
    """The cost model of a run: forward-equivalents of the initial batch and
    of each generation, and how a forward + backward was counted."""
    ratio = None if cost is None else float(cost["ratio"])
    return {
        "emitters": em.describe(emitters or (em.Mutation(population),)),
        "forward_backward_cost": ratio,
        "forward_backward_cost_source": None if cost is None else cost["source"],
        "forward_equivalents_initial": float(population),
        "forward_equivalents_per_generation": em.forward_equivalents_per_generation(
            emitters, population, ratio or 0.0
        ),
    }


def _forward_equivalents(acc: dict, generation):
    """Forward-equivalents spent by the end of ``generation`` (0 = the initial
    batch; ``None`` stays ``None``)."""
    if generation is None:
        return None
    return (
        acc["forward_equivalents_initial"]
        + generation * acc["forward_equivalents_per_generation"]
    )


def main(argv) -> None:
    """Entry point of ``experiments.{mnist,imagenet}_{direct,cppn}``."""
    del argv
    summary = run(
        config_from_flags(),
        FLAGS.workdir,
        overwrite=FLAGS.overwrite,
        t_start=PROCESS_T0,
    )
    c, n = np.ravel(summary["confidence"]), summary["num_classes_at_least"]
    print(
        f"{summary['generations']} generations in {summary['wall_seconds']:.1f} s: "
        f"min confidence {min(c):.6f}, median {summary['median_confidence']:.4f}, "
        f"{n['0.99']} classes >= 0.99, {n['0.9999']}/{len(summary['class_names'])} "
        ">= 0.9999, all >= "
        f"0.9999 at generation {summary['first_generation_all_at_least']['0.9999']}"
    )
    print(
        f"results in {FLAGS.workdir} (summary.json, archive.png, confidence.png, "
        "nines.png, qd.png)"
    )


def seed_study(seeds, workdir: str, **overrides) -> dict:
    """One full run per seed (``workdir/seed<k>``, replaced if there) with the
    parsed flags; the median over seeds of the first generation at which every
    class reaches 0.99 and 0.9999 (``None``: not within the generations)."""
    firsts, firsts99, walls, mins = [], [], [], []
    for seed in seeds:
        cfg = config_from_flags(seed=int(seed), checkpoint_every=10**9, **overrides)
        s = run(cfg, os.path.join(workdir, f"seed{seed}"), overwrite=True)
        g = s["first_generation_all_at_least"]["0.9999"]
        g99 = s["first_generation_all_at_least"]["0.99"]
        firsts.append(g)
        firsts99.append(g99)
        walls.append(s["wall_seconds"])
        mins.append(min(s["confidence"]))
        print(
            f"seed {seed}: all >= 0.99 at {g99}, all >= 0.9999 at {g}, "
            f"min conf {mins[-1]:.6f}, {s['wall_seconds']:.1f} s",
            flush=True,
        )

    return {
        "encoding": cfg.encoding,
        "encoding_options": dict(cfg.encoding_options),
        "first_all_0.9999": firsts,
        "median_first_all_0.9999": median_first(firsts),
        "first_all_0.99": firsts99,
        "median_first_all_0.99": median_first(firsts99),
        "min_confidence_at_end": mins,
        "median_min_confidence_at_end": statistics.median(mins),
        **{
            k: getattr(cfg, k)
            for k in ("population", "generations", "mutation_rate", "mutation_eta")
        },
        **{k: getattr(cfg, k) for k in ("crossover_rate", "weights", "preprocess")},
        "mean_wall_seconds": sum(walls) / len(walls),
    }


def seed_study_main(argv) -> None:
    """``scripts/seed_study.py``: the fooling flags plus ``--seeds``."""
    del argv
    logging.getLogger("fooljax").setLevel(logging.WARNING)
    print_json_line(seed_study(FLAGS.seeds, FLAGS.workdir))


def evolve_runs(
    log_probs_fn: Callable,
    params: Any,
    encoding: me.Encoding,
    *,
    num_classes: int,
    population: int,
    seeds,
    generations: int,
    eval_batch: int = 1000,
    log_every: int = 50,
    label: str = "",
) -> dict:
    """Independent MAP-Elites runs, one per seed, as one compiled step
    (``map_elites.make_init_many``/``make_run_chunk_many``): no work directory
    (callers such as the retraining loop save the result whole). Returns
    ``images [R, K, H, W, C]`` (the elites), ``confidence [R, K]`` (0 for an
    empty cell) and ``first_all [R, len(THRESHOLDS)]`` (-1 = not reached)."""
    seeds = [int(s) for s in seeds]
    num_runs = len(seeds)
    layout = me.make_layout(num_runs * population, None, eval_batch)
    kw = dict(
        log_probs_fn=log_probs_fn,
        encoding=encoding,
        population=population,
        num_runs=num_runs,
        layout=layout,
    )
    init = me.make_init_many(num_classes=num_classes, **kw)
    run_chunk = me.make_run_chunk_many(**kw)
    states = init(jnp.stack([jax.random.key(s) for s in seeds]), params)
    done, t0 = 0, time.perf_counter()
    while done < generations:
        n = min(log_every, generations - done)
        states, m = run_chunk(states, params, n)
        done += n
        m = jax.device_get(m)
        log.info(
            "%s%d runs, gen %d/%d: elite conf median %.4f, classes >= 0.9999 per "
            "run %.2f (%.0f eval/s)",
            label,
            num_runs,
            done,
            generations,
            float(np.median(m["median"][-1])),
            float(np.mean(m["num_at_least_0.9999"][-1])),
            done * num_runs * population / (time.perf_counter() - t0),
        )
    fitness = np.asarray(states.archive.fitness)
    decode = jax.jit(jax.vmap(jax.vmap(encoding.decode)))
    return {
        "images": np.asarray(decode(states.archive.genomes)),
        "confidence": np.where(np.isfinite(fitness), np.exp(fitness), 0.0),
        "first_all": np.asarray(states.first_all),
    }


def _read_metrics(path: str, up_to_generation: int | None = None) -> list[dict]:
    """The rows of ``metrics.jsonl`` up to ``up_to_generation``; a damaged row
    (crc32 mismatch) ends them with one warning."""
    rows, problem = integrity.read_jsonl_verified(path)
    if problem:
        log.warning("%s; later rows dropped", problem)
    if up_to_generation is not None:
        rows = [r for r in rows if r["generation"] <= up_to_generation]
    return rows


def _rewrite_metrics(path: str, rows: list[dict]) -> None:
    rewrite_jsonl(path, rows)


def default_mesh(population: int, num_devices: int = 0):
    """A 1-D mesh over the devices of every process (``jax.devices()``) for
    sharding the population (``None`` for 1).

    ``num_devices=0``: as many devices as evenly divide ``population``. With
    several processes the mesh must hold all their devices.
    """
    devices = jax.devices()
    n = num_devices or len(devices)
    n = min(n, len(devices))
    while n > 1 and population % n:
        n -= 1
    if distributed.is_multiprocess() and n != len(devices):
        raise FooljaxError(
            f"with {jax.process_count()} processes the population ({population}) "
            f"must be sharded over all {len(devices)} devices: make it a multiple "
            f"of {len(devices)} (and --num_devices 0 or {len(devices)})"
        )
    if n <= 1:
        return None
    return jax.sharding.Mesh(np.array(devices[:n]), ("pop",))


def run_map_elites(
    *,
    workdir: str,
    config: dict,
    log_probs_fn: Callable,
    params: Any,
    encoding: me.Encoding,
    num_classes: int,
    population: int,
    num_generations: int,
    seed: int,
    class_names: list[str] | None = None,
    checkpoint_every: int = 250,
    log_every: int = 50,
    overwrite: bool = False,
    mesh=None,
    eval_batch: int = 50,
    t_start: float | None = None,
    max_grid: int = 100,
    summary_extra: dict | None = None,
    stop_after: int | None = None,
    num_runs: int = 1,
    emitters: tuple | None = None,
    forward_backward: dict | None = None,
    max_minutes: float = 0.0,
) -> dict:
    """Runs (or resumes) MAP-Elites in ``workdir``; returns the summary dict.

    ``emitters``: ``evolution.emitters`` mix (``None``: the paper's mutation);
    ``forward_backward``: ``forward_backward_cost``'s result (needed with
    gradient emitters). The summary counts model forward-equivalents
    (``forward_equivalents``, ``first_forward_equivalents_all_at_least``: the
    initial batch included; a forward + backward as its measured ratio).

    ``num_runs > 1``: that many independent runs (seeds ``seed + r``) as one
    compiled step (``map_elites.make_init_many``); log lines and metrics rows
    then pool the runs (min of mins, median of medians, max of maxes, mean
    counts per run). ``stop_after``: stop (without finishing) once this many
    generations are done; for tests that interrupt a run. ``max_minutes`` >
    0: finish (summary, pictures) after the first chunk that ends past this
    wall time. Every metrics row has ``wall_seconds`` since the run's start,
    summed over resumes (the curve against time: ``confidence_time.png``).
    """
    t_start = time.time() if t_start is None else t_start
    # several processes: process 0 alone reads and writes the work directory
    # (checkpoints excepted: orbax writes them with every process)
    main = distributed.is_main()
    resume = distributed.main_first(
        prepare_workdir, workdir, config, overwrite=overwrite
    )
    metrics_path = os.path.join(workdir, METRICS)
    wall_before = 0.0  # wall seconds of earlier sessions of a resumed run
    class_names = class_names or [str(i) for i in range(num_classes)]

    layout = me.make_layout(population * num_runs, mesh, eval_batch)
    if em.uses_gradients(emitters) and forward_backward is None:
        raise FooljaxError("gradient emitters need forward_backward (its cost)")
    acc = accounting(emitters, population, forward_backward)
    kw = dict(
        log_probs_fn=log_probs_fn,
        encoding=encoding,
        population=population,
        layout=layout,
    )
    if num_runs == 1:
        init = me.make_init(num_classes=num_classes, emitters=emitters, **kw)
        run_chunk = me.make_run_chunk(emitters=emitters, **kw)
        key = jax.random.key(seed)
    else:
        init = me.make_init_many(
            num_classes=num_classes, num_runs=num_runs, emitters=emitters, **kw
        )
        run_chunk = me.make_run_chunk_many(num_runs=num_runs, emitters=emitters, **kw)
        key = jnp.stack([jax.random.key(seed + r) for r in range(num_runs)])
    state = init(key, params)
    with Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        restored = ckpt.restore_latest_good(state) if resume else None
        if restored is not None:
            latest, state = restored
            rows = _read_metrics(metrics_path, latest) if main else []
            if main:
                _rewrite_metrics(metrics_path, rows)
            if rows and "wall_seconds" in rows[-1]:
                wall_before = rows[-1]["wall_seconds"]
            log.info("resumed %s at generation %d", workdir, latest)
        else:  # no checkpoint of generation 0: a run stopped before its first
            # checkpoint starts again from the seed, bit for bit
            if main and os.path.exists(metrics_path):
                os.remove(metrics_path)
        generation = int(np.max(state.generation))
        log.info(
            "MAP-Elites: %d run(s), %d classes, population %d, %d generations, "
            "%d device(s) -> %s",
            num_runs,
            num_classes,
            population,
            num_generations,
            1 if layout.mesh is None else layout.mesh.size,
            workdir,
        )
        tb = EventWriter(os.path.join(workdir, TENSORBOARD)) if main else None

        def write_rows(rows):
            """A chunk's metrics rows, TensorBoard events and log line. Runs
            while the next chunk computes (dispatch is asynchronous), so host
            writing overlaps the device's generations."""
            row = rows[-1]
            if main:
                _append_rows(metrics_path, rows)
                tb.write(
                    [
                        (r["generation"], tensorboard_scalars(r, class_names))
                        for r in rows
                    ]
                )
            log.info(
                "gen %d/%d: elite conf min %.4f median %.4f max %.6f, >=0.99: %d, "
                ">=0.9999: %d, QD-score %.3f, coverage %.3f (%.1f gen/s, %.0f "
                "eval/s)",
                row["generation"],
                num_generations,
                row["min"],
                row["median"],
                row["max"],
                row["num_at_least_0.99"],
                row["num_at_least_0.9999"],
                row["qd_score"],
                row["coverage"],
                row["generations_per_second"],
                row["evaluations_per_second"],
            )

        over_time = False
        pending = None  # the last chunk's rows, written during the next chunk
        to_save = None  # (generation, a copy of its state), saved likewise
        preload = None
        t_loop = time.time()
        chunk_seconds = []  # compiled chunks, results on the host
        chunk_sizes = []  # their generations

        def flush():
            """Rows, then the checkpoint, of the chunk before (in that order:
            rows up to a checkpoint are on disk first)."""
            nonlocal pending, to_save
            if pending is not None:
                write_rows(pending)
                pending = None
            if to_save is not None:
                ckpt.save(*to_save)
                to_save = None

        while generation < num_generations:
            if stop_after is not None and generation >= stop_after:
                flush()
                return {"stopped_at": generation}
            n = min(log_every, num_generations - generation)
            t0 = time.perf_counter()
            state, m = run_chunk(state, params, n)  # dispatched, not awaited
            if preload is None:  # orbax, for the first checkpoint
                preload = threading.Thread(target=checkpoint_preload, daemon=True)
                preload.start()
            flush()
            m = distributed.fetch(m)
            dt = time.perf_counter() - t0
            chunk_seconds.append(dt)
            chunk_sizes.append(n)
            rows = generation_rows(m, generation + 1, num_classes)
            generation = int(np.max(state.generation))
            row = rows[-1]
            row["generations_per_second"] = n / dt
            row["evaluations_per_second"] = n * population * num_runs / dt
            wall = wall_before + time.time() - t_start
            for r in rows:
                r["wall_seconds"] = round(wall, 3)
            pending = rows
            over_time = max_minutes > 0 and wall >= 60.0 * max_minutes
            over_time = distributed.broadcast_json(over_time)  # process 0's
            if generation == num_generations or over_time:
                flush()
                ckpt.save(generation, state)
            elif generation % checkpoint_every == 0:
                # a device copy (the next chunk donates ``state``), written
                # while the next chunk computes
                to_save = (generation, jax.tree.map(jnp.copy, state))
            if over_time:
                log.info(
                    "wall-time budget of %g min spent after %d generations: finishing",
                    max_minutes,
                    generation,
                )
                break
        flush()
        t_loop = (t_loop, time.time())
    if over_time:
        summary_extra = {**(summary_extra or {}), "stopped_by": "max_minutes"}
    if distributed.is_multiprocess():  # a host copy, then process 0 writes
        state = distributed.fetch(state)
    return distributed.main_first(
        _finish,
        state,
        workdir=workdir,
        config=config,
        encoding=encoding,
        class_names=class_names,
        seed=seed,
        t_start=t_start,
        max_grid=max_grid,
        summary_extra=summary_extra or {},
        layout=layout,
        acc=acc,
        timing=(t_loop, chunk_seconds, chunk_sizes),
    )


def phase_seconds(t_start, t_loop, chunk_seconds, now, chunk_sizes=None) -> dict:
    """Where this session's wall time went: ``start_up`` (process start or
    ``run``'s call to the first chunk: imports, model, compilation, restore),
    ``generations`` (the compiled chunks, metrics on the host; the first also
    traces and loads or compiles its program, and imports orbax on a thread:
    ``first_chunk`` vs ``chunk_median``; a chunk's time includes the previous
    chunk's rows, events, log line and checkpoint, written while it computes),
    ``between_chunks`` (the last checkpoint, and the rows written before it),
    ``finishing`` (pictures, artifact, summary) and
    ``outside_generations_fraction``. ``steady_generations``: the median
    chunk's seconds per generation times the generations run (``chunk_sizes``),
    what the generations cost without the first chunk's compilation;
    ``outside_steady_fraction``: everything else (the strict count)."""
    (t0, t1), gen = t_loop, float(sum(chunk_seconds))
    wall = now - t_start
    out = {
        "start_up": round(t0 - t_start, 3),
        "generations": round(gen, 3),
        "between_chunks": round(t1 - t0 - gen, 3),
        "finishing": round(now - t1, 3),
        "first_chunk": round(chunk_seconds[0], 3) if chunk_seconds else None,
        "chunk_median": (
            round(statistics.median(chunk_seconds), 3) if chunk_seconds else None
        ),
        "outside_generations_fraction": round(1.0 - gen / wall, 4) if wall else None,
    }
    if chunk_sizes and len(chunk_sizes) == len(chunk_seconds) and wall:
        per_gen = statistics.median(
            t / n for t, n in zip(chunk_seconds, chunk_sizes, strict=True)
        )
        steady = per_gen * sum(chunk_sizes)
        out["steady_generations"] = round(steady, 3)
        out["outside_steady_fraction"] = round(1.0 - steady / wall, 4)
    return out


def _count(c):
    """A class count of one run (int), or its mean over many runs (float)."""
    return int(c) if np.ndim(c) == 0 else float(np.mean(c))


# float32 holds no probability between 1 - 2**-24 and 1: a log-prob of exactly
# 0 (p == 1.0) is drawn at this many nines, the most float32 can tell apart
NINES_CAP = float(-np.log10(np.finfo(np.float32).epsneg))
NINES_MAX_CLASSES = 100  # per-class nines in each row up to this many classes
NINES_QUANTILES = (0, 10, 50, 90, 100)  # over classes, beyond it
_COUNTS = ("num_at_least_0.99", "num_at_least_0.9999")


def nines(log_probs) -> np.ndarray:
    """``-log10(1 - p)`` of log-probs (any shape): 2 at p = 0.99, 4 at 0.9999;
    0 for an empty cell (-inf), at most ``NINES_CAP``. From ``1 - p =
    -expm1(log p)`` in float64, which keeps the digits ``1 - exp`` loses."""
    lp = np.asarray(log_probs, np.float64)
    with np.errstate(divide="ignore"):
        out = -np.log10(-np.expm1(lp))
    return np.minimum(out, NINES_CAP) + 0.0  # + 0.0: no -0.0 in the rows


def generation_rows(m: dict, first_generation: int, num_classes: int) -> list[dict]:
    """The ``metrics.jsonl`` rows of one chunk, one per generation, from
    ``run_chunk``'s metrics ``m`` (leaves ``[n]``, ``fitness [n, K]``; many
    runs ``[n, R]``, ``[n, R, K]``). Many runs are pooled: min of mins, median
    of medians, max of maxes, mean counts, QD-score and coverage per run, and
    ``nines`` each class's median over runs. ``nines``: ``[K]`` up to
    ``NINES_MAX_CLASSES`` classes, else ``nines_quantiles`` (``NINES_QUANTILES``
    percent over classes and runs), 4 decimals. Vectorised over the chunk:
    the host loop's cost per generation stays a few microseconds."""
    n = len(m["min"])

    def over_runs(fn, k):  # [n] or [n, R] -> [n]
        return fn(np.reshape(m[k], (n, -1)), axis=1).tolist()

    cols = {
        "min": over_runs(np.min, "min"),
        "median": over_runs(np.median, "median"),
        "max": over_runs(np.max, "max"),
        "qd_score": over_runs(np.mean, "qd_score"),
        "coverage": over_runs(np.mean, "coverage"),
    }
    for k in _COUNTS:  # a run's count (int), the mean over many runs (float)
        c = np.asarray(m[k])
        cols[k] = c.tolist() if c.ndim == 1 else np.mean(c, axis=1).tolist()
    n9 = nines(np.reshape(m["fitness"], (n, -1, num_classes)))  # [n, R, K]
    if num_classes <= NINES_MAX_CLASSES:
        name, n9 = "nines", np.median(n9, axis=1)
    else:
        name = "nines_quantiles"
        n9 = np.percentile(n9.reshape(n, -1), NINES_QUANTILES, axis=1).T
    cols[name] = np.round(n9, 4).tolist()
    return [
        {"generation": first_generation + i, **{k: v[i] for k, v in cols.items()}}
        for i in range(n)
    ]


def tensorboard_scalars(row: dict, class_names) -> dict:
    """A metrics row as TensorBoard scalars: ``confidence/{min,median,max}``,
    ``qd/{score,coverage}``, ``classes_at_least/{0.99,0.9999}``, speed, and
    ``nines/<class>`` for up to 20 classes."""
    out = {f"confidence/{k}": row[k] for k in ("min", "median", "max")}
    out["qd/score"], out["qd/coverage"] = row["qd_score"], row["coverage"]
    for k in _COUNTS:
        out[f"classes_at_least/{k.rsplit('_', 1)[-1]}"] = row[k]
    for k in ("generations_per_second", "evaluations_per_second"):
        if k in row:
            out[f"speed/{k}"] = row[k]
    if "nines" in row and len(row["nines"]) <= 20:
        for name, v in zip(class_names, row["nines"], strict=False):
            out[f"nines/{name}"] = v
    return out


def _append_rows(path: str, rows: list[dict]) -> None:
    """Appends ``rows`` to a jsonl file in one write, each with its crc32."""
    with open(path, "a") as f:
        f.write("".join(integrity.jsonl_line(r) for r in rows))


def _plot_qd(workdir: str, rows: list[dict], class_names, num_runs: int) -> None:
    """``nines.png`` (each class's confidence in nines over generations; past
    20 classes quantile lines over them) and ``qd.png`` (QD-score / K and
    coverage), from the rows that have them (an old run's rows may not)."""
    rows = [r for r in rows if "qd_score" in r]
    if not rows:
        return
    k_all = len(class_names)
    gens = [r["generation"] for r in rows]
    over = f", median over {num_runs} runs" if num_runs > 1 else ""
    if "nines" in rows[-1]:
        per_class = np.array([r["nines"] for r in rows])  # [T, K]
        if k_all <= 20:
            lines = {class_names[k][:14]: (gens, per_class[:, k]) for k in range(k_all)}
        else:
            q = np.percentile(per_class, NINES_QUANTILES, axis=1)  # [5, T]
            lines = None
    else:
        q = np.array([r["nines_quantiles"] for r in rows]).T
        lines = None
    if lines is None:
        names = ("min", "10%", "median", "90%", "max")
        lines = {f"{n} over classes": (gens, q[j]) for j, n in enumerate(names)}
    line_chart(
        os.path.join(workdir, "nines.png"),
        lines,
        xlabel="generation",
        ylabel="nines = -log10(1 - p)",
        title=f"elite confidence in nines, {k_all} classes{over}\n"
        f"(p = 1.0 in float32 drawn at {NINES_CAP:.1f})",
        guides={"p = 0.99": 2.0, "p = 0.9999": 4.0},
    )
    per_run = " (mean over runs)" if num_runs > 1 else ""
    line_chart(
        os.path.join(workdir, "qd.png"),
        {
            f"QD-score / {k_all} (mean elite p)": (
                gens,
                [r["qd_score"] / k_all for r in rows],
            ),
            "coverage (occupied cells)": (gens, [r["coverage"] for r in rows]),
        },
        xlabel="generation",
        ylabel="fraction",
        title=f"QD-score and coverage{per_run}",
    )


def _write_archive_page(workdir, class_names, conf, found_at) -> None:
    """``archive.html``: every class's elite, most confident first (for 1000
    classes, where one grid picture would be unreadable)."""
    order = np.argsort(-np.asarray(conf), kind="stable")
    rows = []
    for k in order:
        name = class_names[k]
        safe = "".join(ch if ch.isalnum() else "_" for ch in name)[:40]
        rows.append(
            f'<figure><img src="classes/{k:04d}_{safe}.png" width="112" '
            f'loading="lazy"><figcaption>{k}: {html.escape(name)}<br>'
            f"{100 * conf[k]:.3f}% (gen {int(found_at[k])})</figcaption></figure>"
        )
    page = (
        "<!doctype html><meta charset=utf-8><title>fooljax archive</title>"
        "<style>figure{display:inline-block;margin:4px;width:120px;"
        "font:11px sans-serif;text-align:center}</style>"
        f"<h3>{len(conf)} classes, median confidence "
        f"{100 * float(np.median(conf)):.2f}%, "
        f"{int(np.sum(np.asarray(conf) >= 0.99))} classes &ge; 99%</h3>" + "".join(rows)
    )
    atomic_write_text(os.path.join(workdir, "archive.html"), page)


def _run_stats(
    conf, found_at, first_all, seed, acc=None, generation=0, occupied=None
) -> dict:
    """The per-run part of the summary: ``conf``/``found_at``/``occupied``
    ``[K]`` (``occupied`` default: ``conf > 0``); with
    ``acc`` (``accounting``) also the forward-equivalents spent by
    ``generation`` and by the first generation with all classes >= t."""
    out = {
        "seed": seed,
        "confidence": [float(c) for c in conf],
        "found_at_generation": [int(g) for g in found_at],
        "median_confidence": float(np.median(conf)),
        # the last generation's QD-score (sum of the cells' p) and coverage
        "qd_score": float(np.sum(conf)),
        "coverage": float(np.mean(conf > 0 if occupied is None else occupied)),
        "num_classes_at_least": {
            str(t): int(np.sum(conf >= t)) for t in (0.9, 0.99, 0.9999)
        },
        "first_generation_all_at_least": {
            str(t): (int(g) if g >= 0 else None)
            for t, g in zip(me.THRESHOLDS, first_all, strict=True)
        },
    }
    if acc is not None:
        out["forward_equivalents"] = _forward_equivalents(acc, generation)
        out["first_forward_equivalents_all_at_least"] = {
            t: _forward_equivalents(acc, g)
            for t, g in out["first_generation_all_at_least"].items()
        }
    return out


def median_first(gs) -> float | None:
    """Median generation over runs (``None`` / negative: never reached, counted
    as later than any that did); ``None`` when the median run did not get
    there (with an even count, when either middle run did not)."""
    m = float(np.median([np.inf if g is None or g < 0 else g for g in gs]))
    return None if not np.isfinite(m) else m


def _finish(
    state,
    *,
    workdir,
    config,
    encoding,
    class_names,
    seed,
    t_start,
    max_grid,
    summary_extra,
    layout,
    acc=None,
    timing=None,
) -> dict:
    archive = jax.device_get(state.archive)
    k_all = len(class_names)
    fitness = np.asarray(archive.fitness).reshape(-1, k_all)  # [R, K]
    num_runs = len(fitness)
    conf_all = np.where(np.isfinite(fitness), np.exp(fitness), 0.0)
    genomes = state.archive.genomes
    if num_runs > 1:  # [R, K, ...] -> [R * K, ...]
        genomes = jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:]), genomes)
    imgs_all = np.asarray(jax.jit(jax.vmap(encoding.decode))(genomes))
    imgs_all = imgs_all.reshape(num_runs, k_all, *imgs_all.shape[1:])
    occupied = np.isfinite(fitness)
    save_artifact(
        workdir,
        imgs_all[occupied],
        np.nonzero(occupied)[1],
        conf_all[occupied],
        kind="fooling",
        model=str(config.get("model")),
        weights=str(config.get("weights")),
    )
    found_all = np.asarray(archive.found_at).reshape(num_runs, k_all)
    first_all = np.asarray(state.first_all).reshape(num_runs, -1)
    generation = int(np.max(state.generation))
    runs = [
        _run_stats(
            conf_all[r],
            found_all[r],
            first_all[r],
            seed + r,
            acc,
            generation,
            occupied[r],
        )
        for r in range(num_runs)
    ]
    conf, imgs = conf_all[0], imgs_all[0]  # the pictures show run 0
    classes_dir = os.path.join(workdir, "classes")
    os.makedirs(classes_dir, exist_ok=True)
    for k, name in enumerate(class_names):
        safe = "".join(ch if ch.isalnum() else "_" for ch in name)[:40]
        imageio.save_png(
            os.path.join(classes_dir, f"{k:04d}_{safe}.png"), imgs[k], min_size=112
        )
    shown = np.arange(k_all)
    if k_all > max_grid:  # evenly spaced sample; every class has its own PNG
        shown = np.linspace(0, k_all - 1, max_grid).round().astype(int)
    titles = [f"{class_names[k][:17]}\n{100 * conf[k]:.5f}%" for k in shown]
    run0 = f" (run 0 of {num_runs})" if num_runs > 1 else ""
    imageio.save_grid(
        os.path.join(workdir, "archive.png"),
        imgs[shown],
        titles,
        ncols=5 if len(shown) <= 10 else 10,
        suptitle=f"elites after {generation} generations{run0}",
    )
    if num_runs > 1 and k_all <= 20:
        shown_runs = min(num_runs, 20)
        imageio.save_grid(
            os.path.join(workdir, "runs.png"),
            imgs_all[:shown_runs].reshape(-1, *imgs.shape[1:]),
            [
                f"{class_names[k][:8]} (seed {seed + r})\n{100 * conf_all[r, k]:.3f}%"
                for r in range(shown_runs)
                for k in range(k_all)
            ],
            ncols=k_all,
            suptitle=f"elites of runs 0..{shown_runs - 1} (seed {seed}..)",
        )
    if k_all > max_grid:
        _write_archive_page(workdir, class_names, conf, found_all[0])
    rows = _read_metrics(os.path.join(workdir, METRICS))
    if rows:
        gens = [r["generation"] for r in rows]
        imageio.save_curves(
            os.path.join(workdir, "confidence.png"),
            gens,
            {s: [r[s] for r in rows] for s in ("min", "median", "max")},
            xlabel="generation",
            ylabel="elite confidence",
            title="MAP-Elites elite confidence over classes",
        )
        _plot_qd(workdir, rows, class_names, num_runs)
        timed = [r for r in rows if "wall_seconds" in r]
        if timed:
            imageio.save_curves(
                os.path.join(workdir, "confidence_time.png"),
                [r["wall_seconds"] / 60.0 for r in timed],
                {s: [r[s] for r in timed] for s in ("min", "median", "max")},
                xlabel="wall time since the run's start (min)",
                ylabel="elite confidence",
                title="MAP-Elites elite confidence over classes against wall time",
            )
    now = time.time()
    summary = {
        **{k: v for k, v in runs[0].items() if k != "seed"},
        "class_names": list(class_names),
        "generations": generation,
        "wall_seconds": now - t_start,
        "model": config.get("model"),
        "seed": seed,
        "flags": config,
        "backend": jax.default_backend(),
        "num_devices": 1 if layout.mesh is None else layout.mesh.size,
        "eval_batch": layout.eval_batch,
        **acc,
        **summary_extra,
    }
    if timing is not None:
        t_loop, chunk_seconds, chunk_sizes = timing
        summary["phase_seconds"] = phase_seconds(
            t_start, t_loop, chunk_seconds, now, chunk_sizes
        )
    if num_runs > 1:
        # pooled over runs: the keys of one run mean "over all runs' elites"
        summary.update(
            {
                "num_runs": num_runs,
                "runs": runs,
                "confidence": [r["confidence"] for r in runs],
                "found_at_generation": [r["found_at_generation"] for r in runs],
                "median_confidence": float(np.median(conf_all)),
                "qd_score": float(np.mean([r["qd_score"] for r in runs])),
                "coverage": float(np.mean([r["coverage"] for r in runs])),
                "num_classes_at_least": {
                    t: statistics.median(r["num_classes_at_least"][t] for r in runs)
                    for t in runs[0]["num_classes_at_least"]
                },
                "first_generation_all_at_least": {
                    t: median_first(
                        [r["first_generation_all_at_least"][t] for r in runs]
                    )
                    for t in runs[0]["first_generation_all_at_least"]
                },
                # per run (every run spends the same); the median run's first
                "first_forward_equivalents_all_at_least": {
                    t: _forward_equivalents(
                        acc,
                        median_first(
                            [r["first_generation_all_at_least"][t] for r in runs]
                        ),
                    )
                    for t in runs[0]["first_generation_all_at_least"]
                },
            }
        )
    write_summary(workdir, summary)
    log.info(
        "done: %d generations, median confidence %.6f, %d/%d classes >= 0.9999, "
        "%.1f s; results in %s",
        summary["generations"],
        summary["median_confidence"],
        summary["num_classes_at_least"]["0.9999"],
        k_all,
        summary["wall_seconds"],
        workdir,
    )
    return summary
