"""fooljax's side of the peer comparison: the task of ``qdax_map_elites.py``
with fooljax's own MAP-Elites (``evolution.map_elites``) and LeNet.

  python scripts/peers/fooljax_map_elites.py [--generations=1000] [--chunk=50]

The Caffe LeNet (``caffe_deploy``, mean image) through
``fooljax.runs.common.load_classifier``; the direct encoding (genes in [0, 1],
i.e. [0, 255] / 255), 200 children per generation, per-gene polynomial
mutation rate 0.1 eta 15 (no halving, no crossover), every child offered to
every class cell, fitness log p(class); ``make_run_chunk`` scans ``--chunk``
generations per call with micro-batches of ``--eval_batch`` images (default
200: the whole population in one forward, as the QDax and pyribs scripts score
it; the library's default of 50 ran 71-78 vs 82 gen/s here). The first
chunk compiles and is not timed. Last line JSON: ``generations_per_second``.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
from _shared import CAFFE, print_result

from fooljax.encodings import make_encoding
from fooljax.evolution import map_elites as me
from fooljax.runs.common import load_classifier


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=50, help="generations per scan")
    ap.add_argument("--population", type=int, default=200)
    ap.add_argument("--eval_batch", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    clf = load_classifier(
        "lenet",
        os.path.join(CAFFE, "lenet_iter_10000"),
        "caffe_deploy",
        os.path.join(CAFFE, "mnist_mean.binaryproto"),
    )
    encoding, _ = make_encoding("direct", clf.input_shape, mutation_eta=15.0)
    log_probs = me.log_probs_from(logits_fn=clf.logits_fn)
    pop = args.population
    layout = me.make_layout(pop, None, args.eval_batch)
    kw = dict(log_probs_fn=log_probs, encoding=encoding, population=pop, layout=layout)
    init = me.make_init(num_classes=clf.num_classes, **kw)
    run_chunk = me.make_run_chunk(**kw)
    state = init(jax.random.key(args.seed), clf.params)
    t0 = time.perf_counter()
    state, _ = jax.block_until_ready(run_chunk(state, clf.params, args.chunk))
    compile_s = time.perf_counter() - t0
    n = -(-args.generations // args.chunk)
    t0 = time.perf_counter()
    for _ in range(n):
        state, _ = run_chunk(state, clf.params, args.chunk)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - t0
    conf = np.exp(np.asarray(state.archive.fitness))
    print_result(
        "fooljax",
        n * args.chunk,
        seconds,
        conf,
        forward="fooljax",
        population=pop,
        eval_batch=args.eval_batch,
        first_chunk_seconds=compile_s,
    )


if __name__ == "__main__":
    main()
