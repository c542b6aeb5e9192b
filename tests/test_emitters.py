"""Emitters: the gradient emitter climbs log p(class); a mix keeps shapes and
the population; the default is the paper's generation bit for bit; no
recompiles; the runs layer's forward-equivalent accounting."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax import models
from fooljax.encodings import cppn, make_encoding
from fooljax.errors import InputError
from fooljax.evolution import emitters as em
from fooljax.evolution import map_elites as me
from fooljax.runs import fooling
from tests.compile_count import count_compiles
from tests.tiny import direct_encoding, tiny_classifier

K, SHAPE = 4, (8, 8, 1)


def _linear():
    """A toy linear classifier on 8x8 grey images."""
    w = jax.random.normal(jax.random.key(1), (64, K))

    def logits_fn(p, x):
        return x.reshape(x.shape[0], -1) @ p

    return w, me.log_probs_from(logits_fn=logits_fn)


def _archive(genomes, lp):
    """A full archive: cell k holds genome k with log p(k) = lp[k, k]."""
    return me.Archive(
        genomes=genomes,
        fitness=jnp.diagonal(lp),
        found_at=jnp.zeros((K,), jnp.int32),
    )


@pytest.mark.parametrize("encoding_name", ["direct", "cppn"])
def test_gradient_emitter_raises_log_p_of_its_target(encoding_name):
    params, log_probs_fn = _linear()
    enc = (
        direct_encoding()
        if encoding_name == "direct"
        else make_encoding("cppn", SHAPE, options={"max_nodes": 6, "max_edges": 10})[0]
    )
    genomes = jax.vmap(enc.init)(jax.random.split(jax.random.key(0), K))
    lp0 = log_probs_fn(params, jax.vmap(enc.decode)(genomes))
    archive = _archive(genomes, lp0)
    ctx = em.Context(enc, log_probs_fn, params, 4, jnp.int32(1))
    steps = 3 if encoding_name == "direct" else 2  # the CPPN compiles slowly
    emitter = em.Gradient(8, steps=steps, step_size=0.002, genes=encoding_name)
    out = jax.jit(lambda key: emitter.emit(key, archive, ctx))(jax.random.key(2))
    assert jax.tree_util.tree_structure(out.offspring) == jax.tree_util.tree_structure(
        genomes
    )
    assert jax.tree_util.tree_leaves(out.offspring)[0].shape[0] == 8
    assert out.extra_lp.shape == (8 * (steps - 1), K)  # x_1.. of 8 offspring
    lp = log_probs_fn(params, jax.vmap(enc.decode)(out.offspring))
    # every offspring is its parent cell's elite moved up its own class
    parent_lp = np.asarray(jnp.diagonal(lp0))
    best = np.asarray(lp).max(0)
    gained = 0
    for k in range(K):
        # rows whose class-k score beat the elite's: at least one per class drawn
        gained += int(best[k] > parent_lp[k])
    assert gained >= 2
    # x_2's log-probs as the emitter reported them match a fresh forward
    extra_lp = log_probs_fn(params, jax.vmap(enc.decode)(out.extra))
    np.testing.assert_allclose(out.extra_lp, extra_lp, rtol=1e-4, atol=1e-4)
    # bounds hold
    x = jax.vmap(em.GENES[encoding_name].get)(out.offspring)
    lo, hi = em.GENES[encoding_name].low, em.GENES[encoding_name].high
    assert float(x.min()) >= lo and float(x.max()) <= hi


def test_gradient_step_climbs_each_target():
    """One step from each cell's elite towards its own class (all cells drawn):
    log p(target) goes up for every offspring."""
    params, log_probs_fn = _linear()
    enc = direct_encoding()
    genomes = jnp.full((K, *SHAPE), 127.5)
    genomes = genomes + jax.random.uniform(
        jax.random.key(3), genomes.shape, minval=-20, maxval=20
    )
    lp0 = log_probs_fn(params, jax.vmap(enc.decode)(genomes))
    ctx = em.Context(enc, log_probs_fn, params, 8, jnp.int32(1))
    g, lp = em.target_grad(ctx, em.GENES["direct"], genomes, genomes, jnp.arange(K))
    np.testing.assert_allclose(lp, lp0, rtol=1e-5)
    x1 = genomes + 1.0 * jnp.sign(g)
    lp1 = log_probs_fn(params, jax.vmap(enc.decode)(x1))
    assert np.all(np.diagonal(lp1) > np.diagonal(lp0))


def test_margin_objective_is_log_odds():
    lp = jax.nn.log_softmax(jax.random.normal(jax.random.key(4), (6, K)) * 5)
    t = jnp.arange(6) % K
    p = jnp.exp(jnp.take_along_axis(lp, t[:, None], 1)[:, 0])
    np.testing.assert_allclose(
        em.target_objective(lp, t, "margin"), jnp.log(p / (1 - p)), rtol=1e-4
    )
    np.testing.assert_allclose(
        em.target_objective(lp, t, "log_p"), jnp.log(p), rtol=1e-5
    )


def test_adam_gradient_emitter_takes_optax_adam_steps_on_the_margin():
    """``optimizer="adam"``: the offspring's path x_1, x_2, x_3 is optax.adam's
    on the negated margin (learning rate = the offspring's drawn step, read off
    its first step, which Adam makes +-lr in every moving gene)."""
    import optax

    params, log_probs_fn = _linear()
    enc = direct_encoding()
    genomes = jnp.full((K, *SHAPE), 127.5) + jax.random.uniform(
        jax.random.key(3), (K, *SHAPE), minval=-20, maxval=20
    )
    archive = _archive(genomes, log_probs_fn(params, jax.vmap(enc.decode)(genomes)))
    ctx = em.Context(enc, log_probs_fn, params, 8, jnp.int32(1))
    emitter = em.Gradient(
        3, steps=3, step_size=0.002, optimizer="adam", objective="margin"
    )
    out = jax.jit(lambda k: emitter.emit(k, archive, ctx))(jax.random.key(6))
    path = np.asarray(out.extra).reshape(2, 3, *SHAPE)  # x_1, x_2 per offspring
    targets = em.needy_cells(jax.random.split(jax.random.key(6), 3)[0], archive, 3)

    def margin(x, t):
        lp = log_probs_fn(params, enc.decode(x)[None])
        return em.target_objective(lp, t[None], "margin")[0]

    for i in range(3):
        x0, t = genomes[targets[i]], targets[i]
        lr = float(np.median(np.abs(path[0, i] - np.asarray(x0))))
        opt = optax.adam(lr)
        x, st = x0, opt.init(x0)
        got = [path[0, i], path[1, i], np.asarray(out.offspring[i])]
        for step in range(3):
            up, st = opt.update(-jax.grad(margin)(x, t), st)
            x = x + up
            np.testing.assert_allclose(got[step], x, rtol=1e-5, atol=1e-3 * lr)
        assert float(margin(x, t)) > float(margin(x0, t))
    with pytest.raises(InputError, match="optimizer"):
        em.Gradient(1, optimizer="lbfgs")
    with pytest.raises(InputError, match="objective"):
        em.Gradient(1, objective="hinge")


def test_grow_edges_adds_the_connection_with_the_largest_gradient():
    params, log_probs_fn = _linear()
    enc = make_encoding("cppn", SHAPE, options={"max_nodes": 6, "max_edges": 10})[0]
    genomes = jax.vmap(enc.init)(jax.random.split(jax.random.key(0), K))
    for i in range(6):  # hidden nodes, so that new connections are possible
        keys = jax.random.split(jax.random.key(10 + i), K)
        genomes = jax.vmap(enc.mutate, in_axes=(0, 0, None))(keys, genomes, 0)
    _, cand = jax.vmap(cppn.candidate_edges)(
        jax.random.split(jax.random.key(1), K), genomes
    )
    assert np.all(np.asarray(cand).sum(1) >= 1)
    archive = _archive(genomes, log_probs_fn(params, jax.vmap(enc.decode)(genomes)))
    ctx = em.Context(enc, log_probs_fn, params, 4, jnp.int32(1))
    emitter = em.Gradient(4, steps=1, step_size=1e-6, genes="cppn", grow_edges=1)
    assert emitter.forward_backwards == 4 * 2  # scoring the candidates + 1 step
    out = jax.jit(lambda k: emitter.emit(k, archive, ctx))(jax.random.key(2))
    before = np.asarray(genomes.edge_on).sum(1)
    targets = np.asarray(
        em.needy_cells(jax.random.split(jax.random.key(2), 3)[0], archive, 4)
    )
    after = np.asarray(out.offspring.edge_on).sum(1)
    np.testing.assert_array_equal(after, before[targets] + 1)  # one edge each
    with pytest.raises(InputError, match="grow_edges"):
        em.Gradient(1, genes="direct", grow_edges=1)


def _tiny_run(emitters, population=16, gens=4, many=None):
    _, params, logits_fn = tiny_classifier(num_classes=K, shape=SHAPE)
    kw = dict(
        log_probs_fn=me.log_probs_from(logits_fn=logits_fn),
        encoding=direct_encoding(),
        population=population,
        layout=me.make_layout(population, None, 8),
    )
    if many:
        keys = jax.random.split(jax.random.key(5), many)
        state = me.make_init_many(
            num_classes=K, num_runs=many, emitters=emitters, **kw
        )(keys, params)
        run = me.make_run_chunk_many(num_runs=many, emitters=emitters, **kw)
    else:
        state = me.make_init(num_classes=K, emitters=emitters, **kw)(
            jax.random.key(5), params
        )
        run = me.make_run_chunk(emitters=emitters, **kw)
    return state, run, params


def test_default_emitter_is_the_papers_generation_bit_for_bit():
    """``(Mutation(P),)`` equals a hand-written generation: key fold_in(key, g),
    ``ask`` (uniform parents, mutation), scoring, ``tell``."""
    state, run, params = _tiny_run((em.Mutation(16),))
    _, _, logits_fn = tiny_classifier(num_classes=K, shape=SHAPE)
    enc, lp_fn = direct_encoding(), me.log_probs_from(logits_fn=logits_fn)
    layout = me.make_layout(16, None, 8)

    @jax.jit
    def generation(archive, key, g):
        kids = me.ask(jax.random.fold_in(key, g), archive, enc, 16, g)
        return me.tell(archive, kids, me._score(lp_fn, params, enc, kids, layout), g)

    archive = state.archive
    for g in range(1, 4):
        archive = generation(archive, state.key, jnp.int32(g))
    out, _ = run(state, params, 3)
    np.testing.assert_array_equal(out.archive.genomes, archive.genomes)
    np.testing.assert_array_equal(out.archive.fitness, archive.fitness)
    # a mutation emitter, whatever its position, is ``ask`` with its key
    arch = out.archive
    a = em.Mutation(5).emit(
        jax.random.key(9), arch, em.Context(enc, lp_fn, params, 8, jnp.int32(4))
    )
    np.testing.assert_array_equal(
        a.offspring, me.ask(jax.random.key(9), arch, enc, 5, 4)
    )


def test_mix_keeps_shapes_and_population_and_does_not_recompile():
    mix = em.parse("mutation:12,gradient:4", 16, steps=2, step_size=0.02)
    assert [type(e).__name__ for e in mix] == ["Mutation", "Gradient"]
    assert sum(e.count for e in mix) == 16
    state, run, params = _tiny_run(mix, many=2)
    f0 = np.asarray(state.archive.fitness)
    shapes = jax.tree_util.tree_map(jnp.shape, state)
    state, m = run(state, params, 3)
    assert jax.tree_util.tree_map(jnp.shape, state) == shapes
    assert m["min"].shape == (3, 2)
    f1 = np.asarray(state.archive.fitness)
    assert np.all(f1 >= f0) and np.any(f1 > f0)
    with count_compiles() as c:
        state, _ = run(state, params, 3)
    assert c.count == 0, c.names
    assert int(state.generation[0]) == 6


def test_cmame_climbs_restarts_and_resumes_from_a_checkpoint_bit_for_bit(tmp_path):
    """A mutation + CMA-ME mix (evosax's full CMA-ES, 2 instances vmapped)
    climbs; its state lives in MapElitesState: 3 generations, a checkpoint
    round trip, 3 more equal 6 without one; the second chunk does not
    recompile; the first ask restarts every instance from an elite."""
    from fooljax.io.checkpoint import Checkpointer

    mix = em.parse(
        "mutation:8,cmame:8",
        16,
        cmame_options={"instances": 2, "sigma": 0.1, "strategy": "cma_es"},
    )
    assert mix[1] == em.CMAME(8, instances=2, sigma=0.1, strategy="cma_es")
    state, run, params = _tiny_run(mix)
    assert state.emitter_states[0] is None
    assert bool(jnp.all(state.emitter_states[1].restart))
    f0 = np.asarray(state.archive.fitness)
    template = jax.tree_util.tree_map(jnp.copy, state)
    a, _ = run(jax.tree_util.tree_map(jnp.copy, state), params, 3)
    with count_compiles() as c:
        a, m = run(a, params, 3)
    assert c.count == 0, c.names
    b, _ = run(state, params, 3)
    with Checkpointer(str(tmp_path / "ckpt")) as ckpt:
        ckpt.save(3, b)
    with Checkpointer(str(tmp_path / "ckpt")) as ckpt:
        step, b = ckpt.restore_latest_good(template)
    assert step == 3
    b, _ = run(b, params, 3)
    for x, y in zip(
        jax.tree_util.tree_leaves((a.archive, a.emitter_states)),
        jax.tree_util.tree_leaves((b.archive, b.emitter_states)),
        strict=True,
    ):
        np.testing.assert_array_equal(x, y)
    f1 = np.asarray(a.archive.fitness)
    assert np.all(f1 >= f0) and np.any(f1 > f0)
    cma = a.emitter_states[1]
    assert np.all(np.asarray(cma.restarts) >= 1)
    assert np.all(np.isfinite(np.asarray(cma.es.mean)))
    np.testing.assert_allclose(m["qd_score"][-1], np.exp(f1).sum(), rtol=1e-5)


def test_parse_and_check_refuse_bad_mixes():
    assert em.parse("mutation", 200) == (em.Mutation(200),)
    assert em.is_default(em.parse("mutation:200", 200), 200)
    for bad, msg in [
        ("mutation:150,gradient:40", "sum to 190"),
        ("mutation:150,cmaes:50", "unknown emitter"),
        ("mutation:150,gradient", "needs a count"),
        ("", "empty"),
    ]:
        with pytest.raises(InputError, match=msg):
            em.parse(bad, 200)
    with pytest.raises(InputError, match="steps"):
        em.Gradient(4, steps=0)
    with pytest.raises(InputError, match="multiple of its instances"):
        em.CMAME(10, instances=3)
    with pytest.raises(InputError, match="unknown CMA-ME strategy"):
        em.CMAME(10, strategy="nes")
    with pytest.raises(InputError, match="sum to 15"):
        me.make_run_chunk(
            log_probs_fn=_linear()[1],
            encoding=direct_encoding(),
            population=16,
            emitters=(em.Mutation(15),),
        )


def test_summary_counts_forward_equivalents(tmp_path):
    _, params, logits_fn = tiny_classifier(num_classes=K, shape=SHAPE)
    clf = models.Classifier(logits_fn, params, SHAPE, K, "tiny")
    cfg = fooling.FoolingConfig(
        population=16,
        eval_batch=8,
        generations=6,
        log_every=3,
        checkpoint_every=100,
        mutation_halving=0,
        emitters="mutation:12,gradient:4",
        gradient_steps=2,
        forward_backward_cost=3.0,
    )
    s = fooling.run(cfg, str(tmp_path / "w"), classifier=clf)
    assert s["forward_backward_cost"] == 3.0
    assert s["forward_equivalents_per_generation"] == 12 + 4 * (1 + 2 * 3.0)
    assert s["forward_equivalents"] == 16 + 6 * 40.0
    for t, g in s["first_generation_all_at_least"].items():
        fe = s["first_forward_equivalents_all_at_least"][t]
        assert fe == (None if g is None else 16 + g * 40.0)
    on_disk = json.load(open(os.path.join(tmp_path, "w", "summary.json")))
    assert on_disk["forward_equivalents"] == s["forward_equivalents"]
    # the paper's mutation alone: one forward per offspring, nothing measured
    s = fooling.run(
        fooling.FoolingConfig(**{**cfg.__dict__, "emitters": "mutation"}),
        str(tmp_path / "m"),
        classifier=clf,
    )
    assert s["forward_backward_cost"] is None
    assert s["forward_equivalents"] == 16 * 7
    # needy, gradient-from-a-mutant and fine-tuning emitters through the runs
    # layer: one forward per offspring, a forward+backward per gradient step
    s = fooling.run(
        fooling.FoolingConfig(
            **{
                **cfg.__dict__,
                "emitters": "mutation:6,mutation_needy:4,tune:4,gradient_mut:2",
                "tune_eta": 30.0,
            }
        ),
        str(tmp_path / "t"),
        classifier=clf,
    )
    assert s["forward_equivalents_per_generation"] == 14 + 2 * (1 + 2 * 3.0)
    assert min(s["confidence"]) > 0


def _resumes_bit_for_bit(tmp_path, **overrides):
    """Runs a 6-generation tiny fooling config whole and interrupted after 3
    then resumed; asserts equal confidences, returns the whole run's
    summary."""
    _, params, logits_fn = tiny_classifier(num_classes=K, shape=SHAPE)
    clf = models.Classifier(logits_fn, params, SHAPE, K, "tiny")
    cfg = fooling.FoolingConfig(
        population=16,
        eval_batch=8,
        generations=6,
        log_every=3,
        checkpoint_every=3,
        **overrides,
    )
    whole = fooling.run(cfg, str(tmp_path / "a"), classifier=clf)
    fooling.run(cfg, str(tmp_path / "b"), classifier=clf, stop_after=3)
    resumed = fooling.run(cfg, str(tmp_path / "b"), classifier=clf)
    assert resumed["confidence"] == whole["confidence"]
    return whole


def test_runs_layer_resumes_a_cmame_run_bit_for_bit(tmp_path):
    """``--emitters=mutation:8,cmame:8`` through the runs layer: an interrupted
    run resumed from its checkpoint ends with the archive of an uninterrupted
    one; the summary names the mix and counts one forward per offspring."""
    whole = _resumes_bit_for_bit(
        tmp_path,
        emitters="mutation:8,cmame:8",
        cmame_instances=2,
        cmame_restart_from="needy",
    )
    assert [e["emitter"] for e in whole["emitters"]] == ["mutation", "cmame"]
    assert whole["emitters"][1]["restart_from"] == "needy"
    assert whole["forward_equivalents"] == 16 * 7
    with pytest.raises(InputError, match="restart_from"):
        em.CMAME(8, restart_from="best")


def _grey_archive(levels, probs):
    """A main archive of K flat direct genomes of grey ``levels`` whose log p
    of their own class is log ``probs``."""
    return me.Archive(
        genomes=jnp.broadcast_to(jnp.asarray(levels)[:, None, None, None], (K, *SHAPE)),
        fitness=jnp.log(jnp.asarray(probs)),
        found_at=jnp.zeros((K,), jnp.int32),
    )


def test_depth_tell_keeps_the_best_genome_per_class_and_bin():
    """``DepthMutation.tell``: every (class, brightness bin) cell holds the
    best of the generation's offspring in that bin, and the main archive's
    elites enter their own class's row; strictly better replaces."""
    e = em.DepthMutation(4, descriptor="brightness")
    genome = jnp.zeros(SHAPE)
    state = e.init_state(genome, K)
    assert state.fitness.shape == (K, em.BRIGHTNESS_BINS)
    assert state.genomes.shape == (K, em.BRIGHTNESS_BINS, *SHAPE)
    assert not np.any(np.isfinite(np.asarray(state.fitness)))
    # four offspring: two dark (bin 0), two bright (bin 15)
    levels = jnp.array([1.0, 2.0, 250.0, 254.0])
    offspring = jnp.broadcast_to(levels[:, None, None, None], (4, *SHAPE))
    lp = jnp.log(
        jnp.array(
            [
                [0.5, 0.1, 0.2, 0.2],
                [0.6, 0.3, 0.05, 0.05],
                [0.1, 0.7, 0.1, 0.1],
                [0.3, 0.2, 0.25, 0.25],
            ]
        )
    )
    # the main archive: class 3's elite, mid grey (bin 8), p 0.9
    archive = _grey_archive([0.0, 0.0, 0.0, 130.0], [0.01, 0.01, 0.01, 0.9])
    new = e.tell(state, offspring, lp, archive)
    f = np.exp(np.asarray(new.fitness))
    np.testing.assert_allclose(f[:, 0], [0.6, 0.3, 0.2, 0.2], rtol=1e-6)
    np.testing.assert_allclose(f[:, 15], [0.3, 0.7, 0.25, 0.25], rtol=1e-6)
    np.testing.assert_allclose(f[3, 8], 0.9, rtol=1e-6)  # the elite, own row only
    assert not np.any(np.isfinite(np.asarray(new.fitness)[:3, 8]))
    g = np.asarray(new.genomes)[:, :, 0, 0, 0]
    assert list(g[:, 0]) == [2.0, 2.0, 1.0, 1.0]
    assert list(g[:, 15]) == [254.0, 250.0, 254.0, 254.0]
    # a worse offspring in an occupied cell changes nothing; ties keep
    again = e.tell(new, offspring[:1], lp[1:2], archive)
    for x, y in zip(
        jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(new), strict=True
    ):
        np.testing.assert_array_equal(x, y)


def test_depth_emits_mutants_of_its_own_rows_and_falls_back_to_the_elite():
    """With every needy row empty, parents are the cells' elites; once a row
    holds genomes, every parent comes from an occupied bin of it."""
    enc = direct_encoding()
    e = em.DepthMutation(64, descriptor="brightness")
    archive = _grey_archive([10.0, 60.0, 120.0, 200.0], [0.999, 0.999, 0.5, 0.999])
    elites = archive.genomes
    ctx = em.Context(enc, None, None, 8, jnp.asarray(1))
    state = e.init_state(elites[0], K)
    out, asked = e.emit(jax.random.key(0), archive, ctx, state)
    assert out.offspring.shape == (64, *SHAPE)
    means = np.asarray(out.offspring).reshape(64, -1).mean(axis=1)
    # mostly class 2's elite (grey 120), mutated: 10% of genes moved
    assert np.mean(np.abs(means - 120) < 25) > 0.5
    # class 2's row: two lineages, both far from its elite's brightness
    lineage = jnp.broadcast_to(
        jnp.array([3.0, 252.0])[:, None, None, None], (2, *SHAPE)
    )
    state = state._replace(
        genomes=state.genomes.at[2, 0].set(lineage[0]).at[2, 15].set(lineage[1]),
        fitness=state.fitness.at[2, 0].set(jnp.log(0.3)).at[2, 15].set(jnp.log(0.2)),
    )
    out, _ = e.emit(jax.random.key(1), archive, ctx, state)
    means = np.asarray(out.offspring).reshape(64, -1).mean(axis=1)
    from_row = (np.abs(means - 3) < 40) | (np.abs(means - 252) < 40)
    assert from_row.mean() > 0.8  # class 2 has ~all the need
    assert np.any(np.abs(means - 3) < 40) and np.any(np.abs(means - 252) < 40)
    with pytest.raises(InputError, match="depth descriptor"):
        em.DepthMutation(4, descriptor="size")
    # a descriptor of the other encoding: refused with its name, not a trace
    with pytest.raises(InputError, match="describes cppn genomes"):
        em.DepthMutation(4, descriptor="edges").init_state(elites[0], K)
    spec = cppn.make_spec(SHAPE)
    one_cppn = cppn.init(jax.random.key(0), spec)
    with pytest.raises(InputError, match="describes direct genomes"):
        em.DepthMutation(4, descriptor="brightness").init_state(one_cppn, K)
    assert em.depth_descriptor("auto", "cppn") == "nodes"
    assert em.depth_descriptor("edges", "cppn") == "edges"
    with pytest.raises(InputError, match="not direct ones"):
        em.depth_descriptor("edges", "direct")


def test_depth_mix_climbs_and_resumes_through_the_runs_layer(tmp_path):
    """``mutation:8,mutation_depth:8`` on a CPPN: its second archive fills
    (the elites' rows included), an interrupted run resumes bit for bit, the
    chunk does not recompile."""
    mix = em.parse("mutation:8,mutation_depth:4,gradient_depth:4", 16, steps=2)
    assert mix[1:] == (em.DepthMutation(4), em.GradientDepth(4, steps=2))
    state, run, params = _tiny_run(
        (
            em.Mutation(8),
            em.DepthMutation(4, descriptor="brightness"),
            em.GradientDepth(4, steps=2, descriptor="brightness"),
        )
    )
    # one second archive for both: gradient_depth uses mutation_depth's
    assert em.state_owners(mix) == (0, 1, 1)
    assert state.emitter_states[2] is None
    # over another descriptor, each keeps its own
    other = (
        em.Mutation(8),
        em.DepthMutation(4),
        em.GradientDepth(4, descriptor="edges"),
    )
    assert em.state_owners(other) == (0, 1, 2)
    for depth0 in state.emitter_states[1:2]:
        assert not np.any(np.isfinite(np.asarray(depth0.fitness)))
    f0 = np.asarray(state.archive.fitness)
    a, _ = run(state, params, 3)
    with count_compiles() as c:
        a, _ = run(a, params, 3)
    assert c.count == 0, c.names
    f1 = np.asarray(a.archive.fitness)
    assert np.all(f1 >= f0) and np.any(f1 > f0)
    assert a.emitter_states[2] is None
    for depth in a.emitter_states[1:2]:
        d = np.asarray(depth.fitness)
        # every class's row holds at least its elite, never better than it
        best = d.max(axis=1)
        assert np.all(np.isfinite(best))
        np.testing.assert_array_less(best, f1 + 1e-6)
        assert np.isfinite(d).sum() > K
    with pytest.raises(InputError, match="depth descriptor"):
        em.GradientDepth(4, descriptor="size")

    whole = _resumes_bit_for_bit(
        tmp_path, encoding="cppn", emitters="mutation:8,mutation_depth:8"
    )
    assert whole["emitters"][1] == {
        "emitter": "mutation_depth",
        "count": 8,
        "descriptor": "nodes",
    }
    assert whole["forward_equivalents"] == 16 * 7


def test_depth_insert_matches_a_loop_over_cells():
    """``depth_insert`` on random scores with ties and empty bins equals a
    plain loop: per (class, bin) the first best candidate, if strictly better
    than the cell's incumbent."""
    rng = np.random.default_rng(0)
    c, d = 30, em.BRIGHTNESS_BINS
    levels = rng.choice([5.0, 40.0, 100.0, 250.0], size=c)  # 4 of the 16 bins
    off = np.array(np.broadcast_to(levels[:, None, None, None], (c, *SHAPE)))
    off[:, 0, 1, 0] = levels + np.arange(c) / 8  # tells tied offspring apart
    offspring = jnp.asarray(off)
    lp = np.log(rng.choice([0.1, 0.2, 0.3], size=(c, K))).astype(np.float32)
    lp[3, 1] = np.nan  # a NaN log-prob never enters
    fit0 = np.full((K, d), -np.inf, np.float32)
    fit0[:, 1] = np.log(0.25)  # bin 1 (grey 16-31): incumbents
    fit0[2, 6] = np.log(0.5)  # an incumbent that beats every offspring
    state = em.DepthState(jnp.full((K, d, *SHAPE), -1.0), jnp.asarray(fit0))
    archive = me.Archive(
        genomes=jnp.full((K, *SHAPE), 20.0),  # bin 1
        fitness=jnp.log(jnp.array([0.2, 0.26, 0.3, 0.1])),
        found_at=jnp.zeros((K,), jnp.int32),
    )
    new = em.depth_insert("brightness", state, offspring, jnp.asarray(lp), archive)
    bins = np.floor(levels / 255 * d).astype(int)
    cand_bins = np.concatenate([bins, np.full(K, 1)])
    cand_gene = np.concatenate([off[:, 0, 1, 0], np.full(K, 20.0)])
    own = np.where(np.eye(K, dtype=bool), np.asarray(archive.fitness)[:, None], -np.inf)
    score = np.concatenate([np.where(np.isnan(lp), -np.inf, lp), own])
    want_f, want_g = fit0.copy(), np.full((K, d), -1.0)
    for k in range(K):
        for b in range(d):
            rows = [i for i in range(c + K) if cand_bins[i] == b]
            if not rows:
                continue
            i = max(rows, key=lambda r: (score[r, k], -r))
            if score[i, k] > fit0[k, b]:
                want_f[k, b], want_g[k, b] = score[i, k], cand_gene[i]
    np.testing.assert_array_equal(np.asarray(new.fitness), want_f)
    np.testing.assert_array_equal(np.asarray(new.genomes)[:, :, 0, 1, 0], want_g)
