"""Many independent MAP-Elites runs as one compiled step.

``make_init_many`` / ``make_run_chunk_many`` must give, run by run, exactly
what each seed gives alone with ``make_init`` / ``make_run_chunk`` when the
model sees the same micro-batch size (here ``eval_batch`` 4 divides the
population 8 in both), for the direct encoding (with crossover) and the CPPN.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.encodings import make_encoding
from fooljax.errors import ConsumedStateError, InputError, TooLargeError
from fooljax.evolution import map_elites as me
from tests.compile_count import count_compiles
from tests.tiny import direct_encoding, tiny_classifier

K = 4
POP = 8
SEEDS = (3, 5, 7, 11)
R = len(SEEDS)


@pytest.fixture(scope="module")
def classifier():
    return tiny_classifier(num_classes=K, shape=(8, 8, 1))


def _encoding(name):
    if name == "direct":
        return direct_encoding((8, 8, 1), crossover_rate=0.5)
    return make_encoding("cppn", (8, 8, 1), options={"max_nodes": 8, "max_edges": 12})[
        0
    ]


def _kw(classifier, name="direct", eval_batch=4):
    return dict(
        log_probs_fn=me.log_probs_from(logits_fn=classifier[2]),
        encoding=_encoding(name),
        population=POP,
        layout=me.make_layout(POP, None, eval_batch),
    )


def _keys(seeds=SEEDS):
    return jnp.stack([jax.random.key(s) for s in seeds])


def _makers(kw, num_runs=R):
    return (
        me.make_init_many(num_classes=K, num_runs=num_runs, **kw),
        me.make_run_chunk_many(num_runs=num_runs, **kw),
    )


def _run(r, state):
    """Run ``r`` of a many-run state: the fields compared with a single run."""
    return _fields(jax.tree.map(lambda x: x[r], state))


def _fields(state):
    return {
        "genomes": state.archive.genomes,
        "fitness": state.archive.fitness,
        "found_at": state.archive.found_at,
        "first_all": state.first_all,
        "generation": state.generation,
        "key": jax.random.key_data(state.key),
    }


def _assert_equal(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


@pytest.mark.parametrize("name", ["direct", "cppn"])
def test_many_runs_equal_each_seed_run_alone(classifier, name):
    params = classifier[1]
    kw = _kw(classifier, name)
    init_many, run_many = _makers(kw)
    states = init_many(_keys(), params)
    _assert_equal(states.generation, np.zeros(R, np.int32))
    states, metrics = run_many(states, params, 5)
    init, run = me.make_init(num_classes=K, **kw), me.make_run_chunk(**kw)
    for r, seed in enumerate(SEEDS):
        alone = init(jax.random.key(seed), params)
        _assert_equal(_run(r, init_many(_keys(), params)), _fields(alone))
        alone, alone_metrics = run(alone, params, 5)
        _assert_equal(_run(r, states), _fields(alone))
        _assert_equal({k: v[:, r] for k, v in metrics.items()}, alone_metrics)
    assert np.any(np.asarray(states.archive.found_at) > 0)  # evolution happened
    # the runs are independent: every seed its own archive
    fitness = np.asarray(states.archive.fitness)
    assert len({f.tobytes() for f in fitness}) == R


def test_metrics_are_generations_by_runs(classifier):
    params = classifier[1]
    kw = _kw(classifier)
    init_many, run_many = _makers(kw)
    _, metrics = run_many(init_many(_keys(), params), params, 3)
    _, alone = me.make_run_chunk(**kw)(
        me.make_init(num_classes=K, **kw)(jax.random.key(0), params), params, 3
    )
    assert set(metrics) == set(alone)
    for k, v in metrics.items():
        assert v.shape == (3, R, *alone[k].shape[1:]), k
        assert v.dtype == alone[k].dtype, k


def test_chunking_does_not_change_results(classifier):
    params = classifier[1]
    init_many, run_many = _makers(_kw(classifier))
    a, ma = run_many(init_many(_keys(), params), params, 5)
    b, mb1 = run_many(init_many(_keys(), params), params, 2)
    b, mb2 = run_many(b, params, 3)
    _assert_equal(_fields(a), _fields(b))
    _assert_equal(ma, {k: jnp.concatenate([mb1[k], mb2[k]]) for k in ma})


def test_consumed_or_mismatched_state_is_refused(classifier):
    params = classifier[1]
    kw = _kw(classifier)
    init_many, run_many = _makers(kw)
    states = init_many(_keys(), params)
    run_many(states, params, 1)
    with pytest.raises(ConsumedStateError, match="consumed by an earlier run_chunk"):
        run_many(states, params, 1)
    one = me.make_init(num_classes=K, **kw)(jax.random.key(0), params)
    with pytest.raises(
        InputError, match=r"run_chunk_many needs the state of num_runs=4 runs"
    ):
        run_many(one, params, 1)
    with pytest.raises(InputError, match=r"run_chunk needs the state of one run"):
        me.make_run_chunk(**kw)(init_many(_keys(), params), params, 1)
    _, run_three = _makers(kw, num_runs=3)
    with pytest.raises(InputError, match=r"generation of shape \[3\]\), got .*\[4\]"):
        run_three(init_many(_keys(), params), params, 1)


def test_second_call_with_same_shapes_compiles_nothing(classifier):
    _, params, _ = classifier
    init_many, run_many = _makers(_kw(classifier))
    with count_compiles() as first:
        run_many(init_many(_keys(), params), params, 2)
    assert first.count > 0
    other_params = jax.tree.map(lambda p: p * 0.5, params)
    with count_compiles() as second:  # other seeds, other weights, same shapes
        states, _ = run_many(init_many(_keys((1, 2, 3, 4)), other_params), params, 2)
        run_many(states, other_params, 2)
    assert second.count == 0, second.names
    assert run_many._cache_size() == 1


def test_larger_eval_batch_equals_up_to_rounding(classifier):
    """The fast setting: the model sees all 32 rows at once, the single runs 4."""
    params = classifier[1]
    kw = _kw(classifier)
    fast = dict(kw, layout=me.make_layout(R * POP, None, R * POP))
    states = me.make_init_many(num_classes=K, num_runs=R, **fast)(_keys(), params)
    init = me.make_init(num_classes=K, **kw)
    for r, seed in enumerate(SEEDS):
        alone = init(jax.random.key(seed), params)
        np.testing.assert_allclose(
            states.archive.fitness[r], alone.archive.fitness, rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize(
    "make, pattern",
    [
        (
            lambda kw: me.make_init_many(num_classes=K, num_runs=0, **kw),
            r"num_runs must be an integer >= 1, got 0",
        ),
        (
            lambda kw: me.make_run_chunk_many(num_runs=0, **kw),
            r"num_runs must be an integer >= 1, got 0",
        ),
        (
            lambda kw: me.make_run_chunk_many(num_runs=2.0, **kw),
            r"num_runs must be an integer, got 2.0",
        ),
    ],
)
def test_bad_num_runs_is_refused(classifier, make, pattern):
    with pytest.raises(InputError, match=pattern):
        make(_kw(classifier))


@pytest.mark.parametrize(
    "keys, got",
    [
        (lambda: jax.random.split(jax.random.key(0), 3), r"shape \[3\]"),
        (lambda: jax.random.key(0), r"shape \[\]"),
        (lambda: jax.random.split(jax.random.key(0), (4, 2)), r"shape \[4, 2\]"),
        (lambda: [jax.random.key(s) for s in SEEDS], r"list"),
    ],
)
def test_keys_of_wrong_length_are_refused(classifier, keys, got):
    init_many = me.make_init_many(num_classes=K, num_runs=R, **_kw(classifier))
    with pytest.raises(
        InputError,
        match=r"keys must be \[num_runs=4\] typed keys \(e\.g\. "
        r"jax\.random\.split\(key, 4\)\), got " + got,
    ):
        init_many(keys(), classifier[1])


def test_init_many_checks_the_model_outputs(classifier):
    nan_params = jax.tree.map(lambda p: p * jnp.nan, classifier[1])
    init_many = me.make_init_many(num_classes=K, num_runs=R, **_kw(classifier))
    with pytest.raises(InputError, match=r"non-finite outputs .* first 4 initial"):
        init_many(_keys(), nan_params)
    with pytest.raises(InputError, match=r"num_classes is 5 but the model gives 4"):
        me.make_init_many(num_classes=5, num_runs=R, **_kw(classifier))(
            _keys(), classifier[1]
        )


def test_memory_estimate_counts_every_run(classifier):
    kw = _kw(classifier)
    enc, layout = kw["encoding"], kw["layout"]
    one = me.estimate_bytes(enc, K, POP, layout)
    many = me.estimate_bytes(enc, K, POP, layout, num_runs=R)
    assert one == me.estimate_bytes(enc, K, POP, layout, num_runs=1)
    assert R * one - 3 * 4 * 8 * 8 * 4 == many  # the micro-batch is shared
    with pytest.raises(TooLargeError, match=r"MAP-Elites with 10000000000 runs of"):
        me.make_init_many(num_classes=K, num_runs=10**10, **kw)
