"""Benchmark foreign models (``fooljax.models.foreign``) against their own
framework and their Flax twin.

  nice -n 5 python scripts/bench_foreign.py --batch_size=256 --population=100

Rows (seconds, minimum over ``--repeats`` interleaved rounds; the machine is
shared):

- ``torch_forward``: LeNet (MNIST) one batch: ``own`` = the PyTorch module on
  the batch (NumPy in, NumPy out, ``no_grad``), ``callback`` = fooljax's jitted
  ``logits_fn`` around the same module, ``flax`` = the Flax twin.
- ``torch_grad``: the input gradient of the summed cross-entropy on the batch
  (``own``: torch forward + backward; ``callback``: ``jax.grad`` through the
  ``custom_vjp``).
- ``map_elites``: one generation (``--population`` direct-encoded images,
  ``--eval_batch`` per model call) with the callback model and with the Flax
  twin; ``own`` = the torch forward of the same number of batches of the same
  size, the least work the generation needs from the model.
- ``keras_forward`` (when TensorFlow is installed and ``$FOOLJAX_DATA`` holds
  the one-pixel ``lenet.h5``): the Keras CIFAR LeNet on a batch (``own`` = its
  ``tf.function`` forward) against ``cifar_lenet`` in Flax.

``ratio`` = callback / own (target <= 1.2). torch runs with
``--torch_threads`` (default 1) in both. The last line is JSON.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from fooljax.encodings import direct
from fooljax.evolution import map_elites as me
from fooljax.models import foreign
from fooljax.models.keras_cifar import HYPERPARTICLE_MEAN, HYPERPARTICLE_STD
from fooljax.models.loading import load_classifier
from fooljax.runs.cli import print_json_line

flags.DEFINE_integer("batch_size", 256, "Images per forward batch.")
flags.DEFINE_integer("population", 100, "MAP-Elites images per generation.")
flags.DEFINE_integer("eval_batch", 50, "MAP-Elites images per model call.")
flags.DEFINE_integer("generations", 10, "MAP-Elites generations per timed chunk.")
flags.DEFINE_integer("repeats", 5, "Timing rounds (minimum is reported).")
flags.DEFINE_integer(
    "torch_threads",
    1,
    "torch.set_num_threads for both the own and the callback timings (0: "
    "torch's default); on a loaded 2-core machine 2 threads made both 2-3x "
    "slower and noisy.",
)
FLAGS = flags.FLAGS


def _best(fns: dict, repeats: int) -> dict:
    """Minimum seconds of each ``fn()`` over interleaved rounds (after a warm-up)."""
    for f in fns.values():
        f()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def _row(name, times, **extra) -> dict:
    row = {"row": name, **{k: round(v, 5) for k, v in times.items()}, **extra}
    if "own" in times:
        row["ratio"] = round(times["callback"] / times["own"], 3)
    if "flax" in times:
        row["vs_flax"] = round(times["callback"] / times["flax"], 3)
    print(
        f"{name:14s} "
        + "  ".join(f"{k} {v * 1e3:8.2f} ms" for k, v in times.items())
        + (f"  callback/own {row['ratio']:.2f}" if "ratio" in row else "")
        + (f"  callback/flax {row['vs_flax']:.2f}" if "vs_flax" in row else ""),
        flush=True,
    )
    return row


def torch_rows(batch: int, repeats: int) -> list[dict]:
    import torch

    if FLAGS.torch_threads:
        torch.set_num_threads(FLAGS.torch_threads)

    flax_clf = load_classifier("lenet", "default")
    net = foreign.torch_lenet(flax_clf.params)
    clf = foreign.from_torch(net, (28, 28, 1), 10)
    x = np.random.default_rng(0).random((batch, 28, 28, 1), np.float32)
    y = np.random.default_rng(1).integers(0, 10, batch).astype(np.int32)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def own_forward(xn=x_nchw):
        with torch.no_grad():
            return net(torch.from_numpy(xn)).numpy()

    cb = jax.jit(clf.logits_fn)
    fl = jax.jit(flax_clf.logits_fn)
    rows = [
        _row(
            "torch_forward",
            _best(
                {
                    "own": own_forward,
                    "callback": lambda: cb({}, xj).block_until_ready(),
                    "flax": lambda: fl(flax_clf.params, xj).block_until_ready(),
                },
                repeats,
            ),
            batch=batch,
        )
    ]

    def ce(fn, p):
        def loss(z):
            lp = jax.nn.log_softmax(fn(p, z))
            return -jnp.take_along_axis(lp, yj[:, None], 1).sum()

        return jax.jit(jax.grad(loss))

    g_cb, g_fl = ce(clf.logits_fn, {}), ce(flax_clf.logits_fn, flax_clf.params)
    yt = torch.from_numpy(y.astype(np.int64))

    def own_grad():
        xt = torch.from_numpy(x_nchw.copy()).requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(net(xt), yt, reduction="sum")
        (g,) = torch.autograd.grad(loss, xt)
        return g.numpy()

    rows.append(
        _row(
            "torch_grad",
            _best(
                {
                    "own": own_grad,
                    "callback": lambda: g_cb(xj).block_until_ready(),
                    "flax": lambda: g_fl(xj).block_until_ready(),
                },
                repeats,
            ),
            batch=batch,
        )
    )
    rows.append(map_elites_row(clf, flax_clf, net, repeats))
    return rows


def map_elites_row(clf, flax_clf, net, repeats: int) -> dict:
    import torch

    pop, eb, gens = FLAGS.population, FLAGS.eval_batch, FLAGS.generations
    enc = me.Encoding(
        init=lambda k: direct.init(k, (28, 28, 1)),
        mutate=lambda k, g, gen: direct.polynomial_mutation(k, g, rate=0.1, eta=15.0),
        decode=direct.decode_grey,
    )
    layout = me.make_layout(pop, None, eb)
    runs = {}
    for key, c in (("callback", clf), ("flax", flax_clf)):
        lp = me.log_probs_from(logits_fn=c.logits_fn)
        init = me.make_init(
            log_probs_fn=lp, encoding=enc, num_classes=10, population=pop, layout=layout
        )
        run = me.make_run_chunk(
            log_probs_fn=lp, encoding=enc, population=pop, layout=layout
        )
        # run_chunk donates its state: each timed chunk continues the last
        held = {"state": init(jax.random.key(0), c.params)}

        def chunk(run=run, held=held, p=c.params):
            held["state"], _ = run(held["state"], p, gens)
            jax.block_until_ready(held["state"].archive.fitness)

        runs[key] = chunk
    per_call = layout.eval_batch
    calls = -(-pop // per_call)
    xb = np.random.default_rng(2).random((per_call, 1, 28, 28), np.float32)

    def own():  # the same model calls of one generation, gens times
        for _ in range(gens * calls):
            with torch.no_grad():
                net(torch.from_numpy(xb)).numpy()

    t = _best({"own": own, **runs}, repeats)
    t = {k: v / gens for k, v in t.items()}  # per generation
    return _row(
        "map_elites",
        t,
        population=pop,
        eval_batch=per_call,
        calls_per_generation=calls,
    )


def keras_rows(batch: int, repeats: int) -> list[dict]:
    root = os.environ.get("FOOLJAX_DATA", "")
    path = os.path.join(root, "cifar10-keras-one-pixel", "lenet.h5")
    try:
        import tensorflow as tf  # noqa: F401
    except ImportError:
        print("keras rows skipped: tensorflow is not installed", flush=True)
        return []
    if not os.path.exists(path):
        print(f"keras rows skipped: {path} not found (set FOOLJAX_DATA)", flush=True)
        return []
    pre = {"scale": 255, "mean": HYPERPARTICLE_MEAN, "std": HYPERPARTICLE_STD}
    clf = foreign.from_keras(path, preprocess=pre)
    flax_clf = load_classifier("cifar_lenet", path)
    keras = __import__("keras")
    model, _ = foreign._keras_softmax_split(
        keras, foreign._load_keras(keras, path, "bench")
    )
    x = np.random.default_rng(0).random((batch, 32, 32, 3), np.float32)
    xn = (x * 255 - np.asarray(HYPERPARTICLE_MEAN, np.float32)) / np.asarray(
        HYPERPARTICLE_STD, np.float32
    )
    own_fn = tf.function(lambda z: model(z, training=False), reduce_retracing=True)
    xj = jnp.asarray(x)
    cb, fl = jax.jit(clf.logits_fn), jax.jit(flax_clf.logits_fn)
    times = _best(
        {
            "own": lambda: own_fn(tf.constant(xn)).numpy(),
            "callback": lambda: cb({}, xj).block_until_ready(),
            "flax": lambda: fl(flax_clf.params, xj).block_until_ready(),
        },
        repeats,
    )
    return [_row("keras_forward", times, batch=batch)]


def main(argv):
    del argv
    rows = torch_rows(FLAGS.batch_size, FLAGS.repeats)
    rows += keras_rows(FLAGS.batch_size, FLAGS.repeats)
    print_json_line({"rows": rows})


if __name__ == "__main__":
    app.run(main)
