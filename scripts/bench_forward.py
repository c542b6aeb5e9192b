"""Forward throughput of registered models: fooljax plain and fast, and TensorFlow.

  python scripts/bench_forward.py --model=all --json=forward.json
  python scripts/bench_forward.py --model=lenet,cifar_resnet32 --batch=50,200
  python scripts/bench_forward.py --model=mobilenet_v2 --batch=64 --weights=FILE
  python scripts/bench_forward.py --model=all --split_devices=2   # + split column

For every model and batch size, three forms of the same network, timed in
interleaved rounds (so a loaded machine slows them alike):

- ``plain``: the Flax module with XLA's own convolutions everywhere
  (``conv_impl="lax"``, the reference the fast forms are tested against);
- ``fast``: the module as registered (``conv_impl="auto"``: row/Toeplitz
  convolutions and folded batch norm where they are faster on this backend);
  the same as ``plain`` for models without a fast form;
- ``tf``: a TensorFlow twin with the same weights where one exists (the
  original Keras ``.h5`` for the CIFAR nets, a Keras twin of the Caffe LeNet
  built from its weights, the ``.tflite`` file in TFLite's interpreter for the
  MobileNets: int8 kernels, not the same arithmetic), run eagerly-compiled by
  ``tf.function(jit_compile=False)``; checked against fooljax's output first;
- ``tf_f32`` (MobileNets only): Keras's own float32 MobileNet of the same
  architecture (``tf_keras.applications``, random weights: throughput only),
  the float arithmetic fooljax runs;
- ``split`` (with ``--split_devices=N``, N > 1): the fast form wrapped in
  ``models.split_batch``, each call's batch split over N host devices
  (``XLA_FLAGS=--xla_force_host_platform_device_count=N``, set by this script
  before JAX starts); batches that N does not divide are padded.

Weights: the real files under ``$FOOLJAX_DATA`` where the model has one (and
``--weights=data``, the default), random (``init``) otherwise; throughput does
not depend on the values. Each form reports its best images/s (wall) over the
rounds and images per CPU-second of this process (less sensitive to other jobs
on a shared machine). Prints one JSON line per (model, batch), then a Markdown
table; ``--json=PATH`` writes ``{"device", "device_kind", "rows": [...]}``.
Needs ``tensorflow-cpu`` and ``tf_keras`` for the ``tf`` column (``--tf=false``
skips it; missing TF leaves it empty).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _force_host_devices(argv) -> int:
    """``--split_devices=N`` must act before JAX starts: the host is split into
    N devices through ``XLA_FLAGS``."""
    n = 0
    for a in argv:
        if a.startswith("--split_devices="):
            try:
                n = int(a.split("=", 1)[1])
            except ValueError:
                sys.exit(f"--split_devices must be an integer, got {a!r}")
    if n > 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={n}".strip()
        )
    return n


if __name__ == "__main__":
    _force_host_devices(sys.argv[1:])

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from fooljax import models  # noqa: E402
from fooljax.io.caffe import load_binaryproto  # noqa: E402
from fooljax.models.preprocess import make_preprocess  # noqa: E402

DATA = os.environ.get("FOOLJAX_DATA", "")
CAFFE = "lenet-mnist-caffe-fooling"
KERAS = "cifar10-keras-one-pixel"
TFLITE = "imagenet-mobilenet-tflite-coral"
# model -> (weights file under $FOOLJAX_DATA, preprocess, mean file or None)
DATA_WEIGHTS = {
    "lenet": (
        f"{CAFFE}/lenet_iter_10000",
        "caffe_deploy",
        f"{CAFFE}/mnist_mean.binaryproto",
    ),
    "cifar_lenet": (f"{KERAS}/lenet.h5", None, None),
    "cifar_resnet32": (f"{KERAS}/resnet.h5", None, None),
    "cifar_resnet8": ("cifar10-resnet8-mlperf-tiny/pretrainedResnet.h5", None, None),
    "mobilenet_v2": (f"{TFLITE}/mobilenet_v2_1.0_224_quant.tflite", None, None),
    "mobilenet_v1_025": (f"{TFLITE}/mobilenet_v1_0.25_128_quant.tflite", None, None),
}
# Keras preprocessing of the .h5 nets: x in 0..255, (x - mean) / std per channel
HYPER = ((125.307, 122.95, 113.865), (62.9932, 62.0887, 66.7048))
KERAS_PRE = {
    "cifar_lenet": HYPER,
    "cifar_resnet32": HYPER,
    "cifar_resnet8": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


def default_batches(shape) -> list[int]:
    """MAP-Elites sizes for MNIST nets, the one-pixel sizes (eval_batch 100,
    population 400) for CIFAR, small batches for ImageNet nets."""
    if shape[0] <= 28:
        return [50, 200, 1000]
    if shape[0] <= 32:
        return [100, 400]
    return [16, 64]


def build(name: str, weights: str):
    """``(spec, model, params, preprocess, weights file or None)``."""
    spec = models.get_spec(name)
    pre_name, mean, path = None, None, None
    if weights == "data" and name in DATA_WEIGHTS and DATA:
        rel, pre_name, mean_rel = DATA_WEIGHTS[name]
        path = os.path.join(DATA, rel)
        if mean_rel:
            mean = load_binaryproto(os.path.join(DATA, mean_rel))
        weights = path if os.path.exists(path) else "init"
        path = path if weights == path else None
    elif weights == "data":
        weights = "init"
    elif weights != "init":
        path = weights
    params = models.load_params(spec, weights)
    pre = make_preprocess(
        pre_name or spec.default_preprocess, mean=mean, image_shape=spec.input_shape
    )
    return spec, spec.build(), params, pre, path


def fooljax_forms(model, pre, grouped_conv=False, split=False):
    """``{"plain": f, "fast": f[, "split": f]}`` (``fast`` is None when the
    model has no ``conv_impl`` field: nothing to choose; ``split``: the fast
    form's batch split over the local devices)."""
    fields = getattr(model, "__dataclass_fields__", {})
    if grouped_conv:
        model = model.clone(use_grouped_conv=True)
    plain = model.clone(conv_impl="lax") if "conv_impl" in fields else model

    def apply_fn(m):
        return jax.jit(lambda p, x: m.apply(p, pre(x)))

    forms = {"plain": apply_fn(plain)}
    forms["fast"] = apply_fn(model) if "conv_impl" in fields else None
    if split:
        m = model if "conv_impl" in fields else plain
        forms["split"] = jax.jit(models.split_batch(lambda p, x: m.apply(p, pre(x))))
    return forms


def tf_twin(name, params, path, mean_image):
    """A NumPy ``f(images [B, H, W, C] in [0, 1]) -> logits or probabilities``
    run by TensorFlow, and what it is; ``(None, reason)`` where none exists."""
    try:
        import tensorflow as tf
    except ImportError:
        return None, "tensorflow not installed"
    if name in KERAS_PRE and path:
        try:
            import tf_keras
        except ImportError:
            return None, "tf_keras not installed"
        mean, std = (np.asarray(v, np.float32) for v in KERAS_PRE[name])
        net = tf_keras.models.load_model(path, compile=False)

        @tf.function(jit_compile=False, reduce_retracing=True)
        def probs(x):
            return net((x * 255.0 - mean) / std, training=False)

        return (lambda x: probs(tf.constant(x)).numpy()), "Keras .h5 (probs)"
    if name == "lenet" and mean_image is not None:
        p = jax.tree.map(np.asarray, params["params"])
        L = tf.keras.layers
        net = tf.keras.Sequential(
            [
                tf.keras.Input((28, 28, 1)),
                L.Conv2D(20, 5),
                L.MaxPool2D(2),
                L.Conv2D(50, 5),
                L.MaxPool2D(2),
                L.Flatten(),  # NHWC order, as fooljax's ip1 rows
                L.Dense(500, activation="relu"),
                L.Dense(10),
            ]
        )
        for layer, key in zip(
            [la for la in net.layers if la.weights],
            ["conv1", "conv2", "ip1", "ip2"],
            strict=True,
        ):
            layer.set_weights([p[key]["kernel"], p[key]["bias"]])
        m = np.asarray(mean_image, np.float32)

        @tf.function(jit_compile=False, reduce_retracing=True)
        def logits(x):
            return net((x * 255.0 - m) * (1.0 / 256.0), training=False)

        return (lambda x: logits(tf.constant(x)).numpy()), "Keras twin (logits)"
    if name.startswith("mobilenet") and path:
        return _tflite(tf, path), "TFLite interpreter, int8 (probs)"
    return None, "no TensorFlow twin"


# Keras applications of the same architecture as the MobileNet .tflite graphs
KERAS_APPS = {
    "mobilenet_v2": ("MobileNetV2", 1.0),
    "mobilenet_v1_025": ("MobileNet", 0.25),
}


def tf_float_twin(name, input_shape):
    """Keras's float32 network of ``name``'s architecture (random weights),
    ``f(images) -> probs``; ``None`` where there is none or no TF."""
    if name not in KERAS_APPS:
        return None
    try:
        import tensorflow as tf
        import tf_keras
    except ImportError:
        return None
    app, alpha = KERAS_APPS[name]
    net = getattr(tf_keras.applications, app)(
        weights=None, input_shape=tuple(input_shape), alpha=alpha, classes=1000
    )

    @tf.function(jit_compile=False, reduce_retracing=True)
    def probs(x):
        return net(x * 2.0 - 1.0, training=False)

    return lambda x: probs(tf.constant(x)).numpy()


def _tflite(tf, path):
    """The .tflite graph has a fixed batch of 1 (a reshape to [1, classes]):
    one invoke per image, as TFLite runs it; dequantized probabilities, the
    background class of 1001-way graphs dropped."""
    it = tf.lite.Interpreter(model_path=path, num_threads=os.cpu_count())
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]

    def run(x):
        res = []
        for img in np.round(x * 255.0).astype(inp["dtype"]):
            it.set_tensor(inp["index"], img[None])
            it.invoke()
            res.append(it.get_tensor(out["index"])[0])
        scale, zero = out["quantization"]
        probs = (np.stack(res).astype(np.float32) - zero) * (scale or 1.0)
        return probs[:, 1:] if probs.shape[-1] == 1001 else probs  # background

    return run


def time_forms(fns: dict, x, rounds: int, min_seconds: float):
    """Interleaved rounds; per form the best images/s (wall) and images per
    CPU-second."""
    best = {k: [0.0, 0.0] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            reps, t0, c0 = 0, time.perf_counter(), time.process_time()
            while reps < 1 or time.perf_counter() - t0 < min_seconds:
                f(x)
                reps += 1
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            n = reps * x.shape[0]
            best[k][0] = max(best[k][0], n / wall)
            best[k][1] = max(best[k][1], n / max(cpu, 1e-9))
    return best


def bench_model(name, args):
    spec, model, params, pre, path = build(name, args.weights)
    mean = None
    if name == "lenet" and path:
        mean = load_binaryproto(os.path.join(DATA, DATA_WEIGHTS["lenet"][2]))
    split = args.split_devices > 1
    if split and jax.local_device_count() < args.split_devices:
        sys.exit(
            f"--split_devices={args.split_devices} but JAX sees "
            f"{jax.local_device_count()} devices (XLA_FLAGS set too late?)"
        )
    forms = fooljax_forms(model, pre, args.grouped_conv, split)
    twin, twin_kind = (None, "skipped (--tf=false)")
    twin_f32 = None
    if args.tf == "true":
        twin, twin_kind = tf_twin(name, params, path, mean)
        twin_f32 = tf_float_twin(name, spec.input_shape)
    h, w, c = spec.input_shape
    if args.size:
        h = w = args.size
    rows = []
    for b in args.batch or default_batches(spec.input_shape):
        x_np = np.random.default_rng(0).random((b, h, w, c), dtype=np.float32)
        x = jnp.asarray(x_np)
        fns, compile_s = {}, {}
        for k, f in forms.items():
            if f is None:
                continue
            t0 = time.perf_counter()
            ref = f(params, x).block_until_ready()
            compile_s[k] = time.perf_counter() - t0
            fns[k] = (lambda f: lambda x: f(params, x).block_until_ready())(f)
            if k == "plain":
                plain_out = np.asarray(ref)
            elif k == "fast":
                fast_err = float(np.abs(np.asarray(ref) - plain_out).max())
            else:
                split_err = float(np.abs(np.asarray(ref) - plain_out).max())
        twin_err = None
        if twin is not None:
            try:
                got = twin(x_np)
            except Exception as e:  # a twin that cannot run is a row note
                twin, twin_kind = None, f"{twin_kind}: failed ({type(e).__name__})"
        if twin is not None:
            ours = plain_out
            if "probs" in twin_kind:
                ours = np.asarray(jax.nn.softmax(plain_out, -1))
            twin_err = float(np.abs(got - ours).max())
            fns["tf"] = twin
        if twin_f32 is not None and (h, w, c) == tuple(spec.input_shape):
            twin_f32(x_np)  # traces
            fns["tf_f32"] = twin_f32
        best = time_forms(
            {
                k: (lambda f: lambda _: f(x_np if f in (twin, twin_f32) else x))(f)
                for k, f in fns.items()
            },
            x,
            args.rounds,
            args.min_seconds,
        )
        row = {
            "model": name,
            "batch": b,
            "input": [h, w, c],
            "weights": os.path.basename(path) if path else "init",
            "plain_images_per_s": round(best["plain"][0], 1),
            "plain_images_per_cpu_s": round(best["plain"][1], 1),
            "plain_compile_s": round(compile_s["plain"], 2),
        }
        if "fast" in best:
            row.update(
                fast_images_per_s=round(best["fast"][0], 1),
                fast_images_per_cpu_s=round(best["fast"][1], 1),
                fast_compile_s=round(compile_s["fast"], 2),
                fast_max_abs_diff=fast_err,
            )
        if "split" in best:
            row.update(
                split_devices=args.split_devices,
                split_images_per_s=round(best["split"][0], 1),
                split_images_per_cpu_s=round(best["split"][1], 1),
                split_compile_s=round(compile_s["split"], 2),
                split_max_abs_diff=split_err,
            )
        ours = list(best.get("fast", best["plain"]))
        if "split" in best:  # the best form fooljax offers for this batch
            ours = [max(ours[0], best["split"][0]), max(ours[1], best["split"][1])]
        row["tf_twin"] = twin_kind
        if "tf" in best:
            row.update(
                tf_images_per_s=round(best["tf"][0], 1),
                tf_images_per_cpu_s=round(best["tf"][1], 1),
                tf_max_abs_diff=twin_err,
            )
        if "tf_f32" in best:
            row.update(
                tf_f32_images_per_s=round(best["tf_f32"][0], 1),
                tf_f32_images_per_cpu_s=round(best["tf_f32"][1], 1),
            )
        peak = max(b[0] for k, b in best.items() if k in ("plain", "tf", "tf_f32"))
        peak_cpu = max(b[1] for k, b in best.items() if k in ("plain", "tf", "tf_f32"))
        # acceptance 5: fooljax (best of fast and split) over the best of
        # plain XLA and TF
        row["ratio_vs_best"] = round(ours[0] / peak, 3)
        row["ratio_vs_best_cpu"] = round(ours[1] / peak_cpu, 3)
        if "tf_f32" in best:  # the .tflite twin is int8: vs float arithmetic only
            peak_f32 = max(best["plain"][0], best["tf_f32"][0])
            row["ratio_vs_best_float"] = round(ours[0] / peak_f32, 3)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def markdown(rows) -> str:
    def f(v):
        return "–" if v is None else f"{v:,.0f}"

    out = [
        "| model | batch | plain img/s | fast img/s | split img/s | TF img/s | "
        "TF f32 img/s | ours / best | (per CPU-s) | (vs f32) | TF twin |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['model']} | {r['batch']} | {f(r['plain_images_per_s'])} | "
            f"{f(r.get('fast_images_per_s'))} | {f(r.get('split_images_per_s'))} | "
            f"{f(r.get('tf_images_per_s'))} | {f(r.get('tf_f32_images_per_s'))} | "
            f"{r['ratio_vs_best']:.2f} | {r['ratio_vs_best_cpu']:.2f} | "
            f"{r.get('ratio_vs_best_float', r['ratio_vs_best']):.2f} | {r['tf_twin']} |"
        )
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all", help="comma list of models, or all")
    ap.add_argument(
        "--weights",
        default="data",
        help="data (files under $FOOLJAX_DATA where known, else init), init, "
        "or a file (one --model only)",
    )
    ap.add_argument(
        "--batch", default=None, help="comma list (default: per model's input size)"
    )
    ap.add_argument("--size", type=int, default=None, help="input H=W override")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    ap.add_argument("--min_seconds", type=float, default=0.5, help="per form per round")
    ap.add_argument("--tf", default="true", choices=["true", "false"])
    ap.add_argument("--grouped_conv", action="store_true", help="lax grouped depthwise")
    ap.add_argument(
        "--split_devices",
        type=int,
        default=0,
        help="N > 1: add the split column (models.split_batch over N host devices)",
    )
    ap.add_argument("--json", default=None, help="write all rows to this file")
    args = ap.parse_args(argv)
    names = models.model_names() if args.model == "all" else args.model.split(",")
    for n in names:
        models.get_spec(n)  # unknown names fail before any work
    if args.weights not in ("data", "init") and len(names) != 1:
        sys.exit("--weights=FILE needs exactly one --model")
    try:
        args.batch = [int(b) for b in args.batch.split(",")] if args.batch else None
    except ValueError:
        sys.exit(f"--batch must be a comma list of integers, got {args.batch!r}")
    if args.batch and min(args.batch) < 1:
        sys.exit("--batch sizes must be >= 1")
    rows = []
    for n in names:
        rows.extend(bench_model(n, args))
    table = markdown(rows)
    print(table)
    if args.json:
        dev = jax.devices()[0]
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "device": dev.platform,
                    "device_kind": dev.device_kind,
                    "local_devices": jax.local_device_count(),
                    "load_average": list(os.getloadavg()),
                    "rows": rows,
                    "markdown": table,
                },
                fh,
                indent=1,
            )


if __name__ == "__main__":
    main()
