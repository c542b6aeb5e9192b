"""Benchmark the gradient attacks against the model's own forward+backward pass.

  python scripts/bench_attacks.py --model=lenet --batch_size=256

``fwd_bwd``: one jitted ``grad_x sum CE(f(x), y)`` on the batch (the least work
any gradient attack must do per step). ``fgsm``: the public ``fgsm`` call
(input checks included). ``overhead_ratio = fgsm / fwd_bwd`` (target <= 1.1).
``pgd``: ``pgd(num_steps=--pgd_steps)``, reported per step against fwd_bwd.
``lbfgs``: ``lbfgs_attack`` with the lbfgs_tables settings on an MLP
(``--lbfgs_model``, zoo weights if present, else random init).

The machine is shared, so every timing is the minimum over ``--repeats``
interleaved rounds (the least disturbed one). The last line is JSON.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from fooljax import models
from fooljax.attacks import fgsm, lbfgs_attack, per_example_loss, pgd, random_targets
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import load_mnist_test
from fooljax.train.zoo import LENET_CONFIG as LENET
from fooljax.train.zoo import zoo_config

flags.DEFINE_string("model", "lenet", "Registered model for FGSM/PGD.")
flags.DEFINE_string("weights", "default", "Weights of --model.")
flags.DEFINE_integer("batch_size", 256, "Images per batch.")
flags.DEFINE_integer("repeats", 20, "Timing rounds (minimum is reported).")
flags.DEFINE_integer("pgd_steps", 10, "PGD steps.")
flags.DEFINE_string("lbfgs_model", "fc100_100_10", "Model for the L-BFGS timing.")
flags.DEFINE_integer("lbfgs_images", 100, "Images for the L-BFGS timing.")
flags.DEFINE_string("zoo_dir", "runs/zoo", "Zoo cache (for the L-BFGS model).")
FLAGS = flags.FLAGS


def _time(fn):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


def main(argv):
    del argv
    clf = models.load_classifier(FLAGS.model, FLAGS.weights)
    b = FLAGS.batch_size
    key = jax.random.key(0)
    x = jax.random.uniform(key, (b, *clf.input_shape), jnp.float32)
    y = jax.random.randint(jax.random.fold_in(key, 1), (b,), 0, clf.num_classes)
    f, p = clf.logits_fn, clf.params

    fwd_bwd = jax.jit(
        lambda p, x, y: jax.grad(lambda xx: per_example_loss(f, p, xx, y).sum())(x)
    )
    runs = {
        "fwd_bwd": lambda: fwd_bwd(p, x, y),
        "fgsm": lambda: fgsm(f, p, x, y, epsilon=0.25),
        "pgd": lambda: pgd(f, p, x, y, epsilon=0.1, num_steps=FLAGS.pgd_steps),
    }
    for fn in runs.values():  # compile
        jax.block_until_ready(fn())
    times = {k: [] for k in runs}
    for _ in range(FLAGS.repeats):
        for k, fn in runs.items():
            times[k].append(_time(fn))
    best = {k: min(v) for k, v in times.items()}

    lb_model = (zoo_config(FLAGS.lbfgs_model) or LENET).model
    zoo_params = os.path.join(FLAGS.zoo_dir, FLAGS.lbfgs_model, "params.npz")
    weights = zoo_params if os.path.exists(zoo_params) else "init"
    lb_clf = models.load_classifier(lb_model, weights)
    n = FLAGS.lbfgs_images
    try:  # real test images when the data are here, else uniform noise
        xl, yl = load_mnist_test(None, n)
        data = "mnist test"
    except Exception:  # noqa: BLE001
        xl = np.asarray(jax.random.uniform(key, (n, *lb_clf.input_shape)))
        yl = np.asarray(jax.random.randint(key, (n,), 0, lb_clf.num_classes))
        data = "uniform noise"
    tl = random_targets(key, yl, lb_clf.num_classes)
    lbfgs_attack(lb_clf.logits_fn, lb_clf.params, xl[:2], tl[:2], num_search_steps=1)
    t = time.perf_counter()
    res = lbfgs_attack(
        lb_clf.logits_fn,
        lb_clf.params,
        xl,
        tl,
        num_search_steps=10,
        max_iterations=50,
    )
    lbfgs_s = time.perf_counter() - t

    print_json_line(
        {
            "model": FLAGS.model,
            "batch_size": b,
            "fwd_bwd_ms": 1e3 * best["fwd_bwd"],
            "fgsm_ms": 1e3 * best["fgsm"],
            "fgsm_images_per_s": b / best["fgsm"],
            "overhead_ratio": best["fgsm"] / best["fwd_bwd"],
            "pgd_steps": FLAGS.pgd_steps,
            "pgd_images_per_s": b / best["pgd"],
            "pgd_step_overhead_ratio": best["pgd"]
            / (FLAGS.pgd_steps * best["fwd_bwd"]),
            "lbfgs_model": FLAGS.lbfgs_model,
            "lbfgs_weights": weights,
            "lbfgs_images": f"{n} {data}",
            "lbfgs_images_per_s": n / lbfgs_s,
            "lbfgs_success_rate": float(res.success.mean()),
            "devices": str(jax.devices()),
        }
    )


if __name__ == "__main__":
    app.run(main)
