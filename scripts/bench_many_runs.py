"""Benchmark many independent MAP-Elites runs in one call against one at a time.

  python scripts/bench_many_runs.py --num_runs=100 --population=20 --generations=50

The paper's Caffe LeNet instead of the embedded one:

  python scripts/bench_many_runs.py \
    --weights=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/lenet_iter_10000 \
    --preprocess=caffe_deploy \
    --mean_file=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/mnist_mean.binaryproto

Direct encoding, ``num_runs`` runs of ``population`` offspring per generation.
Both sides time generations only (``init`` excluded) after compiling:

* many: ``make_run_chunk_many``, all runs in one call of ``generations``
  generations; the first call (compile + one chunk) is timed apart, then the
  median of ``repeats`` warm chunks;
* one at a time: ``make_run_chunk`` compiled once and reused, the first
  ``single_runs`` runs (default all) each run for ``generations`` generations,
  blocking after each (a host loop that looks at each run's result); run 0's
  call compiles, the others are the warm timings. With ``single_runs <
  num_runs`` the time for all runs is extrapolated from the per-run mean (the
  output says so).

Last output line: JSON with ``many`` and ``one_at_a_time`` (``evals_per_second``
= offspring scored per second, ``seconds_for_all_runs`` of ``generations``
generations, ``compile_seconds`` = first call minus a warm one), ``speedup``
(the ratio of the rates), and the equality of the two sides after the first
chunk: ``bit_identical`` (archive fitness and genomes of the compared runs)
and ``max_abs_fitness_diff``. The runs are bit-identical when both sides'
model sees the same micro-batch size (``--eval_batch`` equal to the single
run's ``min(eval_batch, population)``, e.g. ``--eval_batch=20``); the default
``--eval_batch=500`` is the fast setting, equal up to float rounding.
"""

import json
import statistics
import sys
import time

import jax
import numpy as np
from absl import app, flags

from fooljax import models
from fooljax.encodings import make_encoding
from fooljax.evolution import map_elites as me
from fooljax.runs.common import load_classifier

flags.DEFINE_string("model", "lenet", "Registered model.")
flags.DEFINE_string("weights", "default", "Weights (default, init, or a file).")
flags.DEFINE_string("preprocess", "", "Preprocessing (empty: the model's own).")
flags.DEFINE_string("mean_file", "", "Caffe mean .binaryproto for caffe_deploy.")
flags.DEFINE_integer("num_runs", 100, "Independent runs.")
flags.DEFINE_integer("population", 20, "Offspring per generation, per run.")
flags.DEFINE_integer("generations", 50, "Generations per timed chunk.")
flags.DEFINE_integer("repeats", 3, "Warm many-run chunks (median taken).")
flags.DEFINE_integer("eval_batch", 500, "Images per model call, many runs.")
flags.DEFINE_integer("single_eval_batch", 50, "Images per model call, one run.")
flags.DEFINE_integer("single_runs", 0, "Runs timed one at a time (0: all).")
flags.DEFINE_integer("seed", 0, "Run r uses split(key(seed), num_runs)[r].")
FLAGS = flags.FLAGS


def _timed(fn, *args):
    t = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t


def _compare(got, want):
    """(``got`` == ``want`` bit for bit, max |fitness difference| over the
    cells ``got`` holds)."""
    want = jax.tree.map(np.asarray, want)
    same = all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True)
    )
    finite = np.isfinite(got.fitness)
    diff = np.abs(got.fitness - want.fitness)[finite]
    return same, float(np.max(diff, initial=0.0))


def main(argv):
    del argv
    weights = FLAGS.weights
    if weights == "default" and models.get_spec(FLAGS.model).pretrained is None:
        weights = "init"
    clf = load_classifier(
        FLAGS.model, weights, FLAGS.preprocess or None, FLAGS.mean_file or None
    )
    encoding, _ = make_encoding("direct", clf.input_shape)
    num_runs, pop, gens = FLAGS.num_runs, FLAGS.population, FLAGS.generations
    single_runs = FLAGS.single_runs or num_runs
    if not 2 <= single_runs <= num_runs:
        raise app.UsageError("single_runs must be in 2..num_runs (or 0: all)")
    kw = dict(
        log_probs_fn=me.log_probs_from(logits_fn=clf.logits_fn), encoding=encoding
    )
    many_layout = me.make_layout(num_runs * pop, None, FLAGS.eval_batch)
    one_layout = me.make_layout(pop, None, FLAGS.single_eval_batch)
    keys = jax.random.split(jax.random.key(FLAGS.seed), num_runs)
    params, evals = clf.params, pop * gens

    # ---- many runs in one call
    init_many = me.make_init_many(
        num_classes=clf.num_classes,
        population=pop,
        num_runs=num_runs,
        layout=many_layout,
        **kw,
    )
    run_many = me.make_run_chunk_many(
        population=pop, num_runs=num_runs, layout=many_layout, **kw
    )
    states = jax.block_until_ready(init_many(keys, params))
    (states, _), first_many = _timed(run_many, states, params, gens)
    many_archive = jax.tree.map(lambda x: np.asarray(x[:single_runs]), states.archive)
    warm_many = []
    for _ in range(FLAGS.repeats):
        (states, _), t = _timed(run_many, states, params, gens)
        warm_many.append(t)
    many_s = statistics.median(warm_many)

    # ---- the same runs one at a time
    init = me.make_init(
        num_classes=clf.num_classes, population=pop, layout=one_layout, **kw
    )
    run = me.make_run_chunk(population=pop, layout=one_layout, **kw)
    times, same, diff = [], True, 0.0
    for r in range(single_runs):
        state = jax.block_until_ready(init(keys[r], params))
        (state, _), t = _timed(run, state, params, gens)
        times.append(t)
        run_same, run_diff = _compare(
            jax.tree.map(lambda x, r=r: x[r], many_archive), state.archive
        )
        same, diff = same and run_same, max(diff, run_diff)
    per_run = statistics.mean(times[1:])
    one_s = per_run * num_runs

    total = num_runs * evals
    out = {
        "model": FLAGS.model,
        "weights": FLAGS.weights,
        "backend": jax.default_backend(),
        "num_runs": num_runs,
        "population": pop,
        "generations": gens,
        "many": {
            "eval_batch": many_layout.eval_batch,
            "seconds_for_all_runs": many_s,
            "evals_per_second": total / many_s,
            "compile_seconds": first_many - many_s,
        },
        "one_at_a_time": {
            "eval_batch": one_layout.eval_batch,
            "seconds_for_all_runs": one_s,
            "evals_per_second": total / one_s,
            "compile_seconds": times[0] - per_run,
            "runs_timed": single_runs - 1,
            "extrapolated": single_runs < num_runs,
        },
        "speedup": one_s / many_s,
        "runs_compared": single_runs,
        "bit_identical": bool(same),
        "max_abs_fitness_diff": diff,
    }
    if single_runs < num_runs:
        out["note"] = (
            f"one_at_a_time timed {single_runs - 1} warm runs; seconds_for_all_runs"
            f" = their mean x {num_runs}"
        )
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    app.run(main, argv=sys.argv[:1] + [a for a in sys.argv[1:]])
