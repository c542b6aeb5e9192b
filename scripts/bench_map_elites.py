"""Benchmark one MAP-Elites generation against the model's own forward pass.

  python scripts/bench_map_elites.py --encoding=direct --model=lenet --population=200

Last output line: JSON with ``generation_seconds`` (median seconds per generation,
measured inside the compiled ``lax.scan`` chunk), ``forward_seconds`` (median
seconds of the model's forward pass on a batch of the same size, also measured
inside a compiled ``lax.scan`` of the same length over fresh inputs, so both
numbers exclude dispatch), ``forward_call_seconds`` (one jitted call, dispatch
included) and ``overhead_ratio`` = generation_seconds / forward_seconds.
``render_seconds``: decoding alone (genome -> image: the CPPN's rendering, the
direct encoding's scaling) of a population of the same size, in the same
micro-batches as a generation, inside a compiled ``lax.scan`` of the same length
(each step renders a fresh random draw from a pool of real offspring), and
``render_overhead_ratio`` = generation_seconds / (forward_seconds +
render_seconds). Generation, forward and render chunks are timed interleaved so
background load hits all three.

With gradient emitters (``--emitters=mutation:100,mutation_needy:99,
gradient_mut:1 --gradient_steps=20 --gradient_optimizer=adam``) a generation is
one jitted call driven from the host, and ``gradient_seconds`` is the time of
its gradient emitters' model calls alone: each emitter's ``steps`` forward +
backward passes (``emitters.target_grad``, through the decoding) on ``count``
real offspring, one jitted call per generation laid out as the emitter lays
them out (unrolled up to ``emitters.UNROLL_STEPS``, else a scan).
The genomes are arguments of that call, as in a generation (constants would
let XLA fold a CPPN's structure into the steps: 1-2 ms of 25 faster).
``model_calls_ratio`` = generation_seconds / (forward_seconds + render_seconds
+ gradient_seconds): the generation against all of its model calls.
``*_ratio_paired`` and ``*_ratio_range``: the median and range over repeats of
each repeat's own ratio (its generation chunk against the model calls timed
right after it), steadier than the ratio of medians on a shared machine.
"""

import json
import statistics
import sys
import time

import jax
from absl import app, flags

from fooljax import models
from fooljax.encodings import make_encoding
from fooljax.evolution import emitters as em
from fooljax.evolution import map_elites as me

flags.DEFINE_string("encoding", "direct", "direct or cppn.")
flags.DEFINE_string("model", "lenet", "Registered model.")
flags.DEFINE_string("weights", "default", "Weights (default, init, file).")
flags.DEFINE_integer("population", 200, "Offspring per generation.")
flags.DEFINE_integer("chunk", 50, "Generations per timed chunk.")
flags.DEFINE_integer("repeats", 7, "Timed chunks (median taken).")
flags.DEFINE_float("crossover_rate", 0.0, "SBX crossover probability.")
flags.DEFINE_integer("eval_batch", 50, "Images per model call in the generation.")
flags.DEFINE_string(
    "emitters",
    "mutation",
    "Emitter mix (as the experiments' --emitters), e.g. mutation:100,cmame:100 "
    "or mutation:199,gradient_mut:1 (model_calls_ratio then counts its "
    "forward + backward passes too).",
)
flags.DEFINE_integer("cmame_instances", 10, "CMA-ME instances (vmapped).")
flags.DEFINE_integer("gradient_steps", 3, "Gradient emitters: steps.")
flags.DEFINE_string("gradient_optimizer", "sign", "Gradient emitters: sign or adam.")
flags.DEFINE_string(
    "gradient_objective", "log_p", "Gradient emitters: log_p or margin."
)
flags.DEFINE_integer("cppn_max_nodes", 16, "CPPN node capacity.")
flags.DEFINE_integer("cppn_max_edges", 48, "CPPN edge capacity.")
flags.DEFINE_string("cmame_strategy", "sep_cma_es", "CMA-ME evosax strategy.")
flags.DEFINE_string(
    "depth_descriptor",
    "auto",
    "mutation_depth/gradient_depth: nodes, edges, structure or brightness "
    "(auto: nodes for cppn, brightness for direct).",
)
FLAGS = flags.FLAGS


def _paired(out, name, gen, *calls):
    """``out[name + "_paired"]``: the median over repeats of each repeat's
    generation time over the model calls timed right after it (slow spells
    of a shared machine hit both sides of a pair), and its range."""
    paired = [g / sum(c) for g, *c in zip(gen, *calls, strict=True)]
    out[name + "_paired"] = statistics.median(paired)
    out[name + "_range"] = [min(paired), max(paired)]


def _time(fn, *args):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t


def main(argv):
    del argv
    weights = FLAGS.weights
    spec = models.get_spec(FLAGS.model)
    if weights == "default" and spec.pretrained is None:
        weights = "init"
    clf = models.load_classifier(FLAGS.model, weights)
    options = (
        {"max_nodes": FLAGS.cppn_max_nodes, "max_edges": FLAGS.cppn_max_edges}
        if FLAGS.encoding == "cppn"
        else None
    )
    encoding, extra = make_encoding(
        FLAGS.encoding,
        clf.input_shape,
        crossover_rate=FLAGS.crossover_rate,
        options=options,
    )
    lp = me.log_probs_from(logits_fn=clf.logits_fn)
    pop, n = FLAGS.population, FLAGS.chunk
    layout = me.make_layout(pop, None, FLAGS.eval_batch)
    mix = em.parse(
        FLAGS.emitters,
        pop,
        cmame_options={
            "instances": FLAGS.cmame_instances,
            "strategy": FLAGS.cmame_strategy,
            "genes": "cppn" if FLAGS.encoding == "cppn" else "direct",
        },
        depth_options={
            "descriptor": em.depth_descriptor(FLAGS.depth_descriptor, FLAGS.encoding)
        },
        steps=FLAGS.gradient_steps,
        optimizer=FLAGS.gradient_optimizer,
        objective=FLAGS.gradient_objective,
        genes="cppn" if FLAGS.encoding == "cppn" else "direct",
    )
    mix = None if em.is_default(mix, pop) else mix
    init = me.make_init(
        log_probs_fn=lp,
        encoding=encoding,
        num_classes=clf.num_classes,
        population=pop,
        layout=layout,
        emitters=mix,
    )
    run = me.make_run_chunk(
        log_probs_fn=lp, encoding=encoding, population=pop, layout=layout, emitters=mix
    )
    state = init(jax.random.key(0), clf.params)

    @jax.jit
    def forward_chunk(params, key):
        def body(c, k):
            x = jax.random.uniform(k, (pop, *clf.input_shape))
            return c + lp(params, x)[:, 0].sum(), None

        return jax.lax.scan(body, 0.0, jax.random.split(key, n))[0]

    @jax.jit
    def forward_once(params, x):
        return lp(params, x)

    pool = jax.jit(me.ask, static_argnums=(2, 3))(
        jax.random.key(3), state.archive, encoding, pop, 1
    )
    eb = layout.eval_batch

    @jax.jit
    def render_chunk(pool, key):
        def body(c, k):
            idx = jax.random.randint(k, (pop,), 0, pop)
            g = jax.tree_util.tree_map(
                lambda a: a[idx].reshape(pop // eb, eb, *a.shape[1:]), pool
            )
            imgs = jax.lax.map(jax.vmap(encoding.decode), g)
            return c + imgs[:, :, 0, 0, 0].sum(), None

        return jax.lax.scan(body, 0.0, jax.random.split(key, n))[0]

    grad_emitters = [e for e in mix or () if e.forward_backwards]

    def gradient_calls(e):
        """``e``'s model calls in one generation: its ``forward_backwards``
        (``steps`` per offspring, one more with ``grow_edges``) forward +
        backward passes on ``count`` offspring, laid out as ``e.emit`` lays
        them out."""
        genes = em.GENES[e.genes]
        calls_per_row = e.forward_backwards // e.count
        rows = jax.tree_util.tree_map(lambda a: a[: e.count], pool)
        targets = jax.numpy.arange(e.count, dtype=jax.numpy.int32) % clf.num_classes

        @jax.jit
        def calls(params, x, rows):
            ctx = em.Context(encoding, lp, params, FLAGS.eval_batch, 1)

            def one(x, _):
                g, _ = em.target_grad(ctx, genes, rows, x, targets, e.objective)
                return jax.numpy.clip(x + 1e-6 * g, genes.low, genes.high), None

            if calls_per_row <= em.UNROLL_STEPS:
                for _ in range(calls_per_row):
                    x, _ = one(x, None)
                return x
            return jax.lax.scan(one, x, None, calls_per_row)[0]

        x0 = jax.vmap(genes.get)(rows)
        # rows are an argument, not constants: in a generation the genomes
        # are data, so XLA cannot fold their structure (a CPPN's edges and
        # activations) into the compiled steps
        return lambda: calls(clf.params, x0, rows)

    grad_fns = [gradient_calls(e) for e in grad_emitters]

    def time_gradients():
        t = time.perf_counter()
        for f in grad_fns:
            jax.block_until_ready(f())
        return time.perf_counter() - t

    x = jax.random.uniform(jax.random.key(1), (pop, *clf.input_shape))
    time_gradients()  # compile
    state, _ = run(state, clf.params, n)  # compile
    forward_chunk(clf.params, jax.random.key(2)).block_until_ready()
    forward_once(clf.params, x).block_until_ready()
    render_chunk(pool, jax.random.key(4)).block_until_ready()
    gen, fwd, call, ren, grad = [], [], [], [], []
    for r in range(FLAGS.repeats):
        t = time.perf_counter()
        state, _ = run(state, clf.params, n)
        jax.block_until_ready(state)
        gen.append((time.perf_counter() - t) / n)
        fwd.append(_time(forward_chunk, clf.params, jax.random.key(10 + r)) / n)
        call.append(_time(forward_once, clf.params, x))
        ren.append(_time(render_chunk, pool, jax.random.key(100 + r)) / n)
        if grad_fns:
            grad.append(statistics.median(time_gradients() for _ in range(n)))
    out = {
        "encoding": FLAGS.encoding,
        "model": FLAGS.model,
        "population": pop,
        "emitters": FLAGS.emitters,
        "eval_batch": layout.eval_batch,
        "backend": jax.default_backend(),
        "generation_seconds": statistics.median(gen),
        "forward_seconds": statistics.median(fwd),
        "forward_call_seconds": statistics.median(call),
        "render_seconds": statistics.median(ren),
        **{k: v for k, v in extra.items() if k.endswith("_seconds")},
    }
    out["overhead_ratio"] = out["generation_seconds"] / out["forward_seconds"]
    out["render_overhead_ratio"] = out["generation_seconds"] / (
        out["forward_seconds"] + out["render_seconds"]
    )
    _paired(out, "render_overhead_ratio", gen, fwd, ren)
    if grad_fns:
        out["gradient_seconds"] = statistics.median(grad)
        out["model_calls_ratio"] = out["generation_seconds"] / (
            out["forward_seconds"] + out["render_seconds"] + out["gradient_seconds"]
        )
        _paired(out, "model_calls_ratio", gen, fwd, ren, grad)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    app.run(main, argv=sys.argv[:1] + [a for a in sys.argv[1:]])
