"""Peer benchmark: MAP-Elites fooling images with QDax on the paper's Caffe LeNet.

  pip install -e '.[peers]'   # a separate venv: QDax pins its own stack
  python scripts/peers/qdax_map_elites.py [--generations=1000] [--chunk=50]

The task of issue 19's acceptance 1 (Nguyen et al. 2015, MNIST direct
encoding): genomes are 28x28 pixels in [0, 255]; each generation draws 200
parents uniformly from the occupied cells (QDax's ``repertoire.select``),
mutates them with QDax's ``polynomial_mutation`` (10 % of the genes, eta 15)
and offers every child to every one of the 10 class cells (QDax's
``MapElitesRepertoire.add`` on the children tiled 10 times, descriptor = the
class, fitness = log p(class)). Generations run in a jitted ``lax.scan`` of
``--chunk`` (QDax's ``scan_update`` style); the first chunk compiles and is not
timed, then ``--generations`` are. The network: the Caffe LeNet weights read by
``fooljax.runs.common.load_classifier`` (``caffe_deploy``, the mean image), run
by a hand-written NHWC ``lax`` forward (``--forward=plain``, what a QDax user
writes) or fooljax's own ``logits_fn`` (``--forward=fooljax``). Never run in
CI. Last line JSON: ``generations_per_second``, ``seconds``, the archive.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from _shared import CAFFE, NUM_CLASSES, plain_lenet, print_result
from qdax.core.containers.mapelites_repertoire import MapElitesRepertoire
from qdax.core.emitters.mutation_operators import polynomial_mutation

from fooljax.io.caffe import load_binaryproto
from fooljax.runs.common import load_classifier


def make_log_probs(forward: str):
    """``log_probs(params, genomes [B, 784] in [0, 255]) -> [B, 10]`` and params."""
    clf = load_classifier(
        "lenet",
        os.path.join(CAFFE, "lenet_iter_10000"),
        "caffe_deploy",
        os.path.join(CAFFE, "mnist_mean.binaryproto"),
    )
    mean = jnp.asarray(load_binaryproto(os.path.join(CAFFE, "mnist_mean.binaryproto")))

    def plain(params, g):
        x = (g.reshape(-1, 28, 28, 1) - mean.reshape(1, 28, 28, 1)) * (1.0 / 256.0)
        return jax.nn.log_softmax(plain_lenet(params, x))

    def own(params, g):
        return jax.nn.log_softmax(clf.logits_fn(params, g.reshape(-1, 28, 28, 1) / 255))

    g = jax.random.uniform(jax.random.key(1), (64, 784), maxval=255.0)
    diff = float(jnp.max(jnp.abs(jax.jit(plain)(clf.params, g) - own(clf.params, g))))
    return (plain if forward == "plain" else own), clf.params, diff


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=50, help="generations per scan")
    ap.add_argument("--population", type=int, default=200)
    ap.add_argument("--mutation_rate", type=float, default=0.1)
    ap.add_argument("--eta", type=float, default=15.0)
    ap.add_argument("--forward", default="plain", choices=["plain", "fooljax"])
    ap.add_argument(
        "--offer",
        default="tiled",
        choices=["tiled", "best"],
        help="tiled: every child to every cell through add (QDax's API as "
        "documented); best: each class's best child only (the same archive, "
        "2,000 -> 10 rows scattered)",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    log_probs, params, diff = make_log_probs(args.forward)
    pop = args.population
    classes = jnp.arange(NUM_CLASSES, dtype=jnp.float32)
    centroids = classes[:, None]
    descriptors = jnp.repeat(classes, pop)[:, None]  # class-major, as lp.T

    def offer(repertoire, genomes, params):
        lp = log_probs(params, genomes)  # [pop, K]
        if args.offer == "best":  # each class's best child only: same archive
            best = jnp.argmax(lp, axis=0)  # [K]
            return repertoire.add(
                genomes[best], centroids, lp[best, jnp.arange(NUM_CLASSES)]
            )
        tiled = jnp.tile(genomes, (NUM_CLASSES, 1))  # [K * pop, 784]
        return repertoire.add(tiled, descriptors, lp.T.reshape(-1))

    @jax.jit
    def init(key, params):
        genomes = jax.random.uniform(key, (pop, 784), maxval=255.0)
        rep = MapElitesRepertoire.init_default(genomes[0], centroids)
        return offer(rep, genomes, params)

    @jax.jit
    def run_chunk(repertoire, params, key):
        def step(rep, k):
            k_sel, k_mut = jax.random.split(k)
            parents = rep.select(k_sel, pop).genotypes
            children = polynomial_mutation(
                parents, k_mut, args.mutation_rate, args.eta, 0.0, 255.0
            )
            return offer(rep, children, params), None

        return jax.lax.scan(step, repertoire, jax.random.split(key, args.chunk))[0]

    key = jax.random.key(args.seed)
    rep = init(jax.random.fold_in(key, 0), params)
    t0 = time.perf_counter()
    rep = jax.block_until_ready(run_chunk(rep, params, jax.random.fold_in(key, 1)))
    compile_s = time.perf_counter() - t0
    n = -(-args.generations // args.chunk)
    t0 = time.perf_counter()
    for i in range(n):
        rep = run_chunk(rep, params, jax.random.fold_in(key, 2 + i))
    jax.block_until_ready(rep)
    seconds = time.perf_counter() - t0
    conf = np.exp(np.asarray(rep.fitnesses).ravel())
    print_result(
        "qdax",
        n * args.chunk,
        seconds,
        conf,
        forward=args.forward,
        offer=args.offer,
        forward_max_abs_diff_vs_fooljax=diff,
        population=pop,
        first_chunk_seconds=compile_s,
    )


if __name__ == "__main__":
    main()
