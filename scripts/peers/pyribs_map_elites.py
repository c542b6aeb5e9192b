"""Peer benchmark: MAP-Elites fooling images with pyribs on the paper's Caffe LeNet.

  pip install -e '.[peers]'   # a separate venv
  python scripts/peers/pyribs_map_elites.py [--generations=1000]

The task of issue 19's acceptance 1, as ``qdax_map_elites.py`` states it
(genomes 28x28 in [0, 255], 200 children per generation, polynomial mutation
rate 0.1 eta 15, every child offered to every class cell, fitness log
p(class)), in pyribs's way: a ``GridArchive`` of 10 cells (measure = the
class), parents from ``archive.sample_elites``, the mutation in NumPy (pyribs
has no polynomial-mutation operator; per gene with probability 0.1, as
Sferes2), the children scored by a jitted JAX forward (the same hand-written
NHWC LeNet as the QDax script, or ``--forward=fooljax``) and added with
``archive.add`` (tiled 10 times). A Python loop drives the generations, as in
pyribs's tutorials; the first ``--warmup`` generations compile and are not
timed. Never run in CI. Last line JSON: ``generations_per_second``.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from _shared import CAFFE, NUM_CLASSES, plain_lenet, print_result
from ribs.archives import GridArchive

from fooljax.io.caffe import load_binaryproto
from fooljax.runs.common import load_classifier


def polynomial_mutation(rng, x, rate, eta, lo=0.0, hi=255.0):
    """Deb's polynomial mutation, each gene with probability ``rate``."""
    u = rng.random(x.shape, dtype=np.float32)
    mutate = rng.random(x.shape, dtype=np.float32) < rate
    d1, d2 = (x - lo) / (hi - lo), (hi - x) / (hi - lo)
    p = 1.0 / (eta + 1.0)
    left = (2 * u + (1 - 2 * u) * (1 - d1) ** (eta + 1)) ** p - 1
    right = 1 - (2 * (1 - u) + 2 * (u - 0.5) * (1 - d2) ** (eta + 1)) ** p
    delta = np.where(u < 0.5, left, right)
    return np.clip(np.where(mutate, x + delta * (hi - lo), x), lo, hi)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--population", type=int, default=200)
    ap.add_argument("--mutation_rate", type=float, default=0.1)
    ap.add_argument("--eta", type=float, default=15.0)
    ap.add_argument("--forward", default="plain", choices=["plain", "fooljax"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    clf = load_classifier(
        "lenet",
        os.path.join(CAFFE, "lenet_iter_10000"),
        "caffe_deploy",
        os.path.join(CAFFE, "mnist_mean.binaryproto"),
    )
    mean = jnp.asarray(load_binaryproto(os.path.join(CAFFE, "mnist_mean.binaryproto")))

    if args.forward == "plain":

        def lp(params, g):
            x = (g.reshape(-1, 28, 28, 1) - mean.reshape(1, 28, 28, 1)) / 256.0
            return jax.nn.log_softmax(plain_lenet(params, x))
    else:

        def lp(params, g):
            x = g.reshape(-1, 28, 28, 1) / 255.0
            return jax.nn.log_softmax(clf.logits_fn(params, x))

    log_probs = jax.jit(lp)
    pop = args.population
    rng = np.random.default_rng(args.seed)
    archive = GridArchive(
        solution_dim=784,
        dims=[NUM_CLASSES],
        ranges=[(0, NUM_CLASSES)],
        seed=args.seed,
        dtype=np.float32,
    )
    measures = np.repeat(np.arange(NUM_CLASSES, dtype=np.float32) + 0.5, pop)[:, None]

    def offer(genomes):
        scores = np.asarray(log_probs(clf.params, genomes))  # [pop, K]
        archive.add(np.tile(genomes, (NUM_CLASSES, 1)), scores.T.reshape(-1), measures)

    offer(rng.random((pop, 784), dtype=np.float32) * 255.0)

    def generation():
        parents = archive.sample_elites(pop)["solution"]
        offer(polynomial_mutation(rng, parents, args.mutation_rate, args.eta))

    for _ in range(args.warmup):
        generation()
    t0 = time.perf_counter()
    for _ in range(args.generations):
        generation()
    seconds = time.perf_counter() - t0
    conf = np.exp(archive.data("objective"))
    print_result(
        "pyribs",
        args.generations,
        seconds,
        conf,
        forward=args.forward,
        population=pop,
        num_elites=len(archive),
    )


if __name__ == "__main__":
    main()
