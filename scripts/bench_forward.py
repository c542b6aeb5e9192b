"""Forward throughput of a registered model on CPU/GPU (random weights unless given).

  python scripts/bench_forward.py --model=mobilenet_v2 --batch=64 [--weights=FILE]

Prints one JSON line: compile seconds, median seconds per batch, images/second.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from fooljax import models


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mobilenet_v2")
    ap.add_argument("--weights", default="init")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument(
        "--size", type=int, default=None, help="input H=W (default: model's)"
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--grouped_conv", action="store_true", help="lax grouped depthwise")
    args = ap.parse_args()

    clf = models.load_classifier(args.model, args.weights)
    logits_fn = clf.logits_fn
    if args.grouped_conv:
        model = models.get_spec(args.model).build().clone(use_grouped_conv=True)
        logits_fn = model.apply
    h = args.size or clf.input_shape[0]
    c = clf.input_shape[-1]  # 1 for the MNIST nets, 3 for the others
    x = jnp.asarray(
        np.random.default_rng(0).random((args.batch, h, h, c), dtype=np.float32)
    )
    f = jax.jit(logits_fn)
    t0 = time.perf_counter()
    f(clf.params, x).block_until_ready()
    compile_s = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        f(clf.params, x).block_until_ready()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = float(np.median(times))
    print(
        json.dumps(
            {
                "model": args.model,
                "batch": args.batch,
                "input": h,
                "grouped_conv": args.grouped_conv,
                "device": str(jax.devices()[0].platform),
                "compile_s": round(compile_s, 2),
                "forward_s_median": round(med, 4),
                "forward_s_min": round(min(times), 4),
                "images_per_s": round(args.batch / med, 1),
                # CPU seconds of this process per forward (all threads): less
                # sensitive than wall time to other jobs on a shared machine.
                "cpu_s_median": round(float(np.median(cpu)), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
