"""Benchmark: fooljax's one pixel attack against IBM ART's ``PixelAttack``.

  python scripts/bench_one_pixel.py --model=cifar_lenet \
      --weights=../shared/data/cifar10-keras-one-pixel/lenet.h5 --num_images=20

Same model (fooljax's Flax port of the Keras weights; ART sees it through a
NumPy predict function wrapped as ``BlackBoxClassifierNeuralNetwork``, so no
TensorFlow is needed), the same correctly classified images among the exact
first ``--num_images`` CIFAR-10 test PNGs, the same DE budget (population 400,
``--max_generations`` generations, ``--pixels`` pixels), in one process. Both
stop an image as soon as it is misclassified (``--early_stop=success``, ART's
rule; ``threshold`` gives fooljax the paper's p < 0.05 rule instead).

Also measures fooljax's limit: the pure forward time of the queries it made
(the model's best throughput on the ``num_images x population`` images, called
at once or in calls of ``--eval_batch`` images as the attack does, times the
number of queries).

``--art_backend=tf`` gives ART the original Keras ``.h5`` model run by
TensorFlow (needs ``pip install tensorflow-cpu tf_keras``; checked against the
Flax port), the issue's peer setting; the default gives ART fooljax's own jitted
forward pass, isolating the search machinery.

The last output line is JSON: ``fooljax_success_rate``, ``art_success_rate``,
``fooljax_seconds_per_image`` (warm: compiled functions reused),
``fooljax_cold_seconds_per_image`` (first call, compilation included),
``art_seconds_per_image``, ``speedup`` (ART / fooljax warm), ``speedup_cold``,
``forward_seconds`` and ``attack_over_forward``.

Needs ART: ``pip install adversarial-robustness-toolbox==1.20.1``
(``--art=false`` runs fooljax alone).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from fooljax import data, models
from fooljax.attacks import one_pixel as op
from fooljax.models.keras_cifar import HYPERPARTICLE_MEAN, HYPERPARTICLE_STD
from fooljax.runs.one_pixel import OnePixelRunConfig, select_images
from fooljax.train.evaluate import predict_logits


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cifar_lenet")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--dataset", default="cifar10_files")
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--num_images", type=int, default=20)
    ap.add_argument(
        "--interleave_classes",
        action="store_true",
        help="the first --num_images *correctly classified* images, classes in "
        "turn (fooljax.runs.one_pixel's selection, e.g. with --dataset=cifar10)",
    )
    ap.add_argument("--pixels", type=int, default=1)
    ap.add_argument("--population", type=int, default=400)
    ap.add_argument("--max_generations", type=int, default=100)
    ap.add_argument("--early_stop", default="success")
    ap.add_argument("--compact_every", type=int, default=10)
    ap.add_argument(
        "--eval_batch",
        type=int,
        default=None,
        help="images per model call inside the attack (default: 100 on CPU, "
        "0 = one call per generation elsewhere)",
    )
    ap.add_argument(
        "--memoize",
        default="true",
        choices=["true", "false"],
        help="fooljax reuses the probabilities of trials that paint the same "
        "pixels as a population member or an earlier trial (exact)",
    )
    ap.add_argument("--art", default="true", choices=["true", "false"])
    ap.add_argument("--art_images", type=int, default=None, help="ART on the first N")
    ap.add_argument(
        "--art_backend",
        default="xla",
        choices=["xla", "tf"],
        help="the forward pass ART queries: xla = fooljax's own jitted Flax model "
        "(isolates the search machinery); tf = the original Keras .h5 model run by "
        "TensorFlow (needs tensorflow-cpu and tf_keras; the issue's peer setting)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--repeats", type=int, default=2, help="1: time the first (cold) call only"
    )
    ap.add_argument(
        "--split_devices",
        default="false",
        choices=["true", "false"],
        help="split fooljax's model calls over every local device "
        "(models.split_batch); on a CPU with XLA_FLAGS="
        "--xla_force_host_platform_device_count=2, both cores run a share",
    )
    args = ap.parse_args()

    clf = models.load_classifier(args.model, args.weights)
    if args.split_devices == "true":
        clf = clf._replace(logits_fn=models.split_batch(clf.logits_fn))
        print(f"fooljax's model calls split over {jax.local_device_count()} devices")
    if args.interleave_classes:
        sel_cfg = OnePixelRunConfig(
            model=args.model,
            weights=args.weights,
            dataset=args.dataset,
            data_dir=args.data_dir,
            interleave_classes=True,
            num_images=args.num_images,
        )
        x_u8, y, index = select_images(sel_cfg, clf)
        n = len(y)
        print(
            f"{args.model}: {n} correctly classified images, dataset indices "
            f"{index[:5].tolist()}...",
            flush=True,
        )
    else:
        x_u8, y = data.load_dataset(args.dataset, "test", data_dir=args.data_dir)
        x_u8, y = x_u8[: args.num_images], y[: args.num_images]
        pred = predict_logits(clf.logits_fn, clf.params, x_u8).argmax(-1)
        ok = pred == y
        x_u8, y = x_u8[ok], y[ok]
        n = len(y)
        print(f"{args.model}: {n} of {len(ok)} images correctly classified", flush=True)
    images = x_u8.astype(np.float32) / 255.0
    probs_fn = op.probs_from_logits(clf.logits_fn)
    cfg = op.OnePixelConfig(
        num_pixels=args.pixels,
        population_size=args.population,
        max_generations=args.max_generations,
        early_stop=args.early_stop,
    )
    execution = op.Execution(
        compact_every=args.compact_every,
        eval_batch=args.eval_batch,
        memoize=args.memoize == "true",
    )
    eval_batch = op.resolve_eval_batch(args.eval_batch)
    key = jax.random.key(args.seed)
    t0 = time.perf_counter()
    res = op.attack(
        key, probs_fn, clf.params, images, y, config=cfg, execution=execution
    )
    cold = time.perf_counter() - t0
    warm = cold
    if args.repeats > 1:
        t0 = time.perf_counter()
        res = op.attack(
            key, probs_fn, clf.params, images, y, config=cfg, execution=execution
        )
        warm = time.perf_counter() - t0
    queries = int(res.queries.sum())
    print(
        f"fooljax: success {int(res.success.sum())}/{n}, {queries} queries, "
        f"cold {cold:.2f} s, warm {warm:.2f} s",
        flush=True,
    )

    # the limit: pure forward time of those queries, the model called on the
    # whole images x population batch at once, and in calls of eval_batch
    # images (what the attack does); the faster of the two is the limit
    fwd = jax.jit(probs_fn)
    batch = jnp.asarray(np.repeat(images, args.population, axis=0))

    def rate(f):
        f(clf.params, batch).block_until_ready()
        reps, t0 = 0, time.perf_counter()
        while reps < 2 or time.perf_counter() - t0 < 3.0:
            f(clf.params, batch).block_until_ready()
            reps += 1
        return reps * batch.shape[0] / (time.perf_counter() - t0)

    rate_one_call = rate(fwd)
    rate_micro = None
    if eval_batch and batch.shape[0] % eval_batch == 0:
        micro = jax.jit(
            lambda p, x: jax.lax.map(
                lambda c: probs_fn(p, c), x.reshape(-1, eval_batch, *x.shape[1:])
            )
        )
        rate_micro = rate(micro)
    best_rate = max(rate_one_call, rate_micro or 0.0)
    forward_seconds = queries / best_rate
    print(
        f"forward: {rate_one_call:.0f} images/s in one call of {batch.shape[0]}"
        + (
            f", {rate_micro:.0f} images/s in calls of {eval_batch}"
            if rate_micro
            else ""
        )
        + f"; {forward_seconds:.2f} s for fooljax's queries at the faster; "
        f"attack/forward {warm / forward_seconds:.3f}",
        flush=True,
    )

    out = {
        "model": args.model,
        "device": jax.devices()[0].platform,
        "num_images": n,
        "pixels": args.pixels,
        "population": args.population,
        "max_generations": args.max_generations,
        "early_stop": args.early_stop,
        "fooljax_success_rate": float(res.success.mean()),
        "fooljax_queries": queries,
        "fooljax_seconds_per_image": warm / n,
        "timed_call": "warm" if args.repeats > 1 else "cold (compilation included)",
        "fooljax_cold_seconds_per_image": cold / n,
        "eval_batch": eval_batch,
        "memoize": execution.memoize,
        "forward_images_per_second": best_rate,
        "forward_images_per_second_one_call": rate_one_call,
        "forward_images_per_second_eval_batch": rate_micro,
        "forward_seconds": forward_seconds,
        "attack_over_forward": warm / forward_seconds,
    }

    if args.art == "true":
        from art.attacks.evasion import PixelAttack
        from art.estimators.classification import BlackBoxClassifierNeuralNetwork

        counter = {"rows": 0, "calls": 0}

        if args.art_backend == "tf":
            tf_probs, tf_rate = _keras_forward(args, clf, fwd, images)
            out.update(art_forward_images_per_second=tf_rate)

            def predict(x):  # ART hands NHWC float images in 0..255
                counter["rows"] += len(x)
                counter["calls"] += 1
                return tf_probs(x)

        else:

            def predict(x):  # ART hands NHWC float images in 0..255
                counter["rows"] += len(x)
                counter["calls"] += 1
                return np.asarray(fwd(clf.params, jnp.asarray(x, jnp.float32) / 255.0))

        class WholeBatch(BlackBoxClassifierNeuralNetwork):
            # one model call per DE generation (ART's default splits into 128s)
            def predict(self, x, batch_size=args.population, **kw):
                return super().predict(x, batch_size=batch_size, **kw)

        art_clf = WholeBatch(
            predict,
            input_shape=clf.input_shape,
            nb_classes=clf.num_classes,
            clip_values=(0.0, 255.0),
            # NHWC; ART's default (channels first) reads (H, W, C) as (C, H, W)
            # and then paints whole 32-value columns instead of one pixel
            channels_first=False,
        )
        attack = PixelAttack(
            art_clf,
            th=args.pixels,
            es=1,
            max_iter=args.max_generations,
            targeted=False,
            verbose=False,
        )
        m = args.art_images or n
        np.random.seed(args.seed)  # ART's DE draws from NumPy's global state
        predict(x_u8[:1].astype(np.float32))  # compile outside the timing
        counter.update(rows=0, calls=0)
        t0 = time.perf_counter()
        adv = attack.generate(x_u8[:m].astype(np.float32), y=y[:m])
        art_secs = time.perf_counter() - t0
        art_pred = predict(adv).argmax(-1)
        art_success = art_pred != y[:m]
        changed = (adv != x_u8[:m]).any(-1).reshape(m, -1).sum(-1)
        if changed.max() > args.pixels:
            raise SystemExit(f"ART changed {changed.max()} pixels: wrapper bug")
        print(
            f"ART: success {int(art_success.sum())}/{m}, {counter['rows']} model rows "
            f"in {counter['calls']} calls, {art_secs:.2f} s",
            flush=True,
        )
        out.update(
            art_backend=args.art_backend,
            art_images=m,
            art_success_rate=float(art_success.mean()),
            art_seconds_per_image=art_secs / m,
            art_queries=int(counter["rows"]),
            fooljax_success_rate_same_images=float(res.success[:m].mean()),
            speedup=(art_secs / m) / (warm / n),
            speedup_cold=(art_secs / m) / (cold / n),
        )
    sys.stdout.flush()
    print(json.dumps(out, sort_keys=True), flush=True)


def _keras_forward(args, clf, fwd, images):
    """The original ``.h5`` model in TensorFlow (tf_keras reads Keras-2 files),
    with its repo's preprocessing, as a NumPy function of 0..255 images; checked
    against the Flax port on the benchmark images. Returns it and its
    throughput (images/s) at ART's call size (the population)."""
    import tensorflow as tf
    import tf_keras

    # the original models' preprocessing (their repos' predict functions)
    mean_std = {
        "cifar_lenet": (HYPERPARTICLE_MEAN, HYPERPARTICLE_STD),
        "cifar_resnet32": (HYPERPARTICLE_MEAN, HYPERPARTICLE_STD),
        "cifar_resnet8": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # raw 0..255
    }
    if args.model not in mean_std:
        raise SystemExit(f"--art_backend=tf: no Keras preprocessing for {args.model}")
    mean, std = (np.asarray(v, np.float32) for v in mean_std[args.model])
    keras_model = tf_keras.models.load_model(args.weights, compile=False)

    @tf.function(jit_compile=False, reduce_retracing=True)
    def probs(x):
        return keras_model((x - mean) / std, training=False)

    def tf_probs(x):
        return probs(tf.constant(np.asarray(x, np.float32))).numpy()

    check = images[:16] * 255.0
    ours = np.asarray(fwd(clf.params, check / 255.0))
    diff = float(np.abs(tf_probs(check) - ours).max())
    if diff > 1e-3:
        raise SystemExit(f"Keras model disagrees with the Flax port: |dp| {diff:.2e}")
    batch = np.repeat(images[:1] * 255.0, args.population, axis=0)
    tf_probs(batch)
    reps, t0 = 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - t0 < 3.0:
        tf_probs(batch)
        reps += 1
    rate = reps * len(batch) / (time.perf_counter() - t0)
    print(
        f"TensorFlow {tf.__version__}: Keras model agrees with the Flax port "
        f"(|dp| {diff:.1e}); forward {rate:.0f} images/s at batch {len(batch)}",
        flush=True,
    )
    return tf_probs, rate


if __name__ == "__main__":
    main()
