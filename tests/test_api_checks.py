"""Every input checked: the public API refuses meaningless inputs before it
compiles anything, with one ``FooljaxError`` line naming the culprit.

Tiny models (tests/tiny.py) and 8x8 images. Positive tests: MAP-Elites pads
populations that are not multiples of the micro-batch (every offspring scored,
multiples unchanged bit for bit).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax import models
from fooljax.attacks import fgsm, gradient_ascent, lbfgs_attack, pgd, pgd_step
from fooljax.attacks import one_pixel as op
from fooljax.encodings import cppn, direct, make_encoding
from fooljax.errors import ConsumedStateError, FooljaxError, TooLargeError
from fooljax.evolution import de
from fooljax.evolution import map_elites as me
from tests.tiny import direct_encoding, tiny_classifier

K = 4
SHAPE = (8, 8, 1)


@functools.cache
def _model():
    _, params, logits_fn = tiny_classifier(K, SHAPE)
    return params, logits_fn


def _logits_fn(params, images):  # module level: one compilation for all tests
    return _model()[1](params, images)


PROBS = op.probs_from_logits(_logits_fn)


def _params():
    return _model()[0]


def _nan_params():
    return jax.tree_util.tree_map(lambda a: jnp.full_like(a, jnp.nan), _params())


def _x(b=3, seed=0, shape=SHAPE):
    return np.random.default_rng(seed).uniform(0, 1, (b, *shape)).astype(np.float32)


def _y(b=3):
    return np.arange(b, dtype=np.int32) % K


def _with(a, idx, value):
    a = np.array(a, copy=True)
    a[idx] = value
    return a


NAN = float("nan")
OP_CFG = op.OnePixelConfig(population_size=8, max_generations=1)
OP_EXE = op.Execution(eval_batch=8)


def _op(**kw):
    args = dict(
        key=jax.random.key(0),
        probs_fn=PROBS,
        params=_params(),
        images=_x(),
        labels=_y(),
        config=OP_CFG,
        execution=OP_EXE,
    )
    cfg = kw.pop("cfg", None)
    if cfg:
        args["config"] = dataclasses.replace(OP_CFG, **cfg)
    args.update(kw)
    key, fn, params, images, labels = (
        args.pop(k) for k in ("key", "probs_fn", "params", "images", "labels")
    )
    return op.attack(key, fn, params, images, labels, **args)


def _op_core(which, **cfg):
    images = jnp.asarray(_x())
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
        jax.random.key(0), jnp.arange(3)
    )
    config = dataclasses.replace(OP_CFG, **cfg)
    labels = jnp.asarray(_y())
    if which == "init":
        return op.init(PROBS, _params(), images, labels, None, keys, config=config)
    if which == "init_labels":
        return op.init(PROBS, _params(), images, labels[:2], None, keys, config=OP_CFG)
    state = op._init_jit(PROBS, _params(), images, labels, None, keys, config=OP_CFG)
    run = functools.partial(
        op._run_chunk_jit,
        PROBS,
        _params(),
        images,
        labels,
        None,
        keys,
        valid=jnp.ones(3, bool),
        stop_generation=jnp.int32(1),
        config=OP_CFG,
    )
    run(state)
    if which == "run_chunk_jit":
        return run(state)  # consumed by the call above
    return op.run_chunk(
        PROBS,
        _params(),
        images,
        labels,
        None,
        keys,
        state,
        jnp.ones(3, bool),
        jnp.int32(1),
        config=OP_CFG,
    )


def _pgd_step_twice():
    x = jnp.asarray(_x())
    xs = x + 0.0
    args = (jnp.asarray(_y()), 0.1, 0.05)
    pgd_step(_logits_fn, _params(), xs, x, *args, targeted=False)
    return pgd_step(_logits_fn, _params(), xs, x, *args, targeted=False)


def _de(**kw):
    params = de.DEParams(lower=-jnp.ones(3), upper=jnp.ones(3), **kw)
    pop = jnp.zeros((8, 3))
    state = de.init(pop, jnp.zeros(8), params)
    return de.ask(jax.random.key(0), state, params)


def _me_kw(population=8, eval_batch=4, log_probs_fn=None, **enc):
    return dict(
        log_probs_fn=log_probs_fn or me.log_probs_from(logits_fn=_logits_fn),
        encoding=direct_encoding(SHAPE, **enc),
        population=population,
        layout=me.make_layout(population, None, eval_batch),
    )


def _me_init(params=None, num_classes=K, **kw):
    init = me.make_init(num_classes=num_classes, **_me_kw(**kw))
    return init(jax.random.key(0), _params() if params is None else params)


def _me_run_twice(num_generations=1):
    kw = _me_kw()
    state = me.make_init(num_classes=K, **kw)(jax.random.key(0), _params())
    run = me.make_run_chunk(**kw)
    run(state, _params(), 1)
    return run(state, _params(), num_generations)


def _me_run_bad_generations():
    kw = _me_kw()
    state = me.make_init(num_classes=K, **kw)(jax.random.key(0), _params())
    return me.make_run_chunk(**kw)(state, _params(), -1)


def _model_logits(name, shape, weights="init"):
    clf = models.load_classifier(name, weights)
    images = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    return jax.eval_shape(clf.logits_fn, clf.params, images)


# (id, call, regex the one-line message must match)
CASES = [
    # ---- fgsm
    (
        "fgsm-eps-nan",
        lambda: fgsm(_logits_fn, _params(), _x(), _y(), epsilon=NAN),
        r"epsilon must be in \[0, 1\]",
    ),
    (
        "fgsm-eps-neg",
        lambda: fgsm(_logits_fn, _params(), _x(), _y(), epsilon=-0.1),
        r"epsilon must be in",
    ),
    (
        "fgsm-nan-pixel",
        lambda: fgsm(
            _logits_fn, _params(), _with(_x(), (1, 2, 3, 0), NAN), _y(), epsilon=0.1
        ),
        r"images must be finite.*image 1 holds NaN",
    ),
    (
        "fgsm-pixel-box",
        lambda: fgsm(_logits_fn, _params(), _x() * 2, _y(), epsilon=0.1),
        r"pixel box \[0, 1\]",
    ),
    (
        "fgsm-3d",
        lambda: fgsm(_logits_fn, _params(), _x()[0], _y(), epsilon=0.1),
        r"images must be \[B, H, W, C\]",
    ),
    (
        "fgsm-uint8",
        lambda: fgsm(
            _logits_fn, _params(), (_x() * 255).astype(np.uint8), _y(), epsilon=0.1
        ),
        r"dtype uint8",
    ),
    (
        "fgsm-label-big",
        lambda: fgsm(_logits_fn, _params(), _x(), _with(_y(), 0, K), epsilon=0.1),
        r"unknown label 4.*0\.\.3",
    ),
    (
        "fgsm-label-neg",
        lambda: fgsm(_logits_fn, _params(), _x(), _with(_y(), 0, -1), epsilon=0.1),
        r"unknown label -1",
    ),
    (
        "fgsm-label-float",
        lambda: fgsm(_logits_fn, _params(), _x(), _y().astype(np.float32), epsilon=0.1),
        r"labels must be integers",
    ),
    (
        "fgsm-label-len",
        lambda: fgsm(_logits_fn, _params(), _x(), _y(2), epsilon=0.1),
        r"labels must be \[3\]",
    ),
    (
        "fgsm-nan-weights",
        lambda: fgsm(_logits_fn, _nan_params(), _x(), _y(), epsilon=0.1),
        r"non-finite outputs \(NaN/inf\) on the first image: check its weights",
    ),
    (
        "fgsm-input-shape",
        lambda: fgsm(
            _logits_fn, _params(), _x(), _y(), epsilon=0.1, input_shape=(8, 8, 3)
        ),
        r"images are \[8, 8, 1\], the model takes \[8, 8, 3\]",
    ),
    # ---- pgd / pgd_step
    (
        "pgd-step-nan",
        lambda: pgd(_logits_fn, _params(), _x(), _y(), epsilon=0.1, step_size=NAN),
        r"step_size must be in",
    ),
    (
        "pgd-steps-neg",
        lambda: pgd(_logits_fn, _params(), _x(), _y(), epsilon=0.1, num_steps=-1),
        r"num_steps must be an integer >= 0",
    ),
    (
        "pgd-steps-float",
        lambda: pgd(_logits_fn, _params(), _x(), _y(), epsilon=0.1, num_steps=2.5),
        r"num_steps must be an integer",
    ),
    (
        "pgd-nan-weights",
        lambda: pgd(_logits_fn, _nan_params(), _x(), _y(), epsilon=0.1),
        r"non-finite outputs",
    ),
    (
        "pgd-target-big",
        lambda: pgd(
            _logits_fn, _params(), _x(), _with(_y(), 2, 9), epsilon=0.1, targeted=True
        ),
        r"unknown target label 9",
    ),
    (
        "pgd-no-key",
        lambda: pgd(_logits_fn, _params(), _x(), _y(), epsilon=0.1, random_start=True),
        r"needs a PRNG key",
    ),
    ("pgd-step-consumed", _pgd_step_twice, r"x \(pgd_step's iterate\) was consumed"),
    # ---- gradient ascent
    (
        "ascent-step-nan",
        lambda: gradient_ascent(_logits_fn, _params(), _x(), _y(), step_size=NAN),
        r"step_size must be",
    ),
    (
        "ascent-step-zero",
        lambda: gradient_ascent(_logits_fn, _params(), _x(), _y(), step_size=0.0),
        r"step_size must be in \(0, inf\)",
    ),
    (
        "ascent-decay-nan",
        lambda: gradient_ascent(_logits_fn, _params(), _x(), _y(), l2_decay=NAN),
        r"l2_decay must be",
    ),
    (
        "ascent-decay-neg",
        lambda: gradient_ascent(_logits_fn, _params(), _x(), _y(), l2_decay=-1.0),
        r"l2_decay must be",
    ),
    (
        "ascent-class-big",
        lambda: gradient_ascent(_logits_fn, _params(), _x(), _with(_y(), 1, 9)),
        r"unknown class 9",
    ),
    (
        "ascent-nan-weights",
        lambda: gradient_ascent(_logits_fn, _nan_params(), _x(), _y()),
        r"non-finite outputs",
    ),
    (
        "ascent-nan-image",
        lambda: gradient_ascent(_logits_fn, _params(), _with(_x(), 0, NAN), _y()),
        r"image 0 holds NaN",
    ),
    # ---- L-BFGS
    (
        "lbfgs-c-nan",
        lambda: lbfgs_attack(_logits_fn, _params(), _x(), _y(), initial_c=NAN),
        r"initial_c must be",
    ),
    (
        "lbfgs-c-zero",
        lambda: lbfgs_attack(_logits_fn, _params(), _x(), _y(), initial_c=0.0),
        r"initial_c must be",
    ),
    (
        "lbfgs-steps",
        lambda: lbfgs_attack(_logits_fn, _params(), _x(), _y(), num_search_steps=0),
        r"num_search_steps must be an integer >= 1",
    ),
    (
        "lbfgs-target-big",
        lambda: lbfgs_attack(_logits_fn, _params(), _x(), _with(_y(), 0, 7)),
        r"unknown target label 7",
    ),
    (
        "lbfgs-nan-weights",
        lambda: lbfgs_attack(_logits_fn, _nan_params(), _x(), _y()),
        r"non-finite outputs",
    ),
    # ---- one-pixel attack
    (
        "op-logits-as-probs",
        lambda: _op(probs_fn=_logits_fn),
        r"probs_fn does not return probabilities \(row sums .*, min .*\): pass "
        r"op\.probs_from_logits\(logits_fn\)",
    ),
    (
        "op-nan-weights",
        lambda: _op(params=_nan_params()),
        r"probs_fn returns non-finite outputs \(NaN/inf\) on the first image",
    ),
    (
        "op-label-big",
        lambda: _op(labels=_with(_y(), 0, 7)),
        r"unknown label 7: the model has classes 0\.\.3",
    ),
    ("op-label-neg", lambda: _op(labels=_with(_y(), 0, -2)), r"unknown label -2"),
    (
        "op-target-big",
        lambda: _op(targets=np.asarray([1, 2, 9], np.int32)),
        r"unknown target 9",
    ),
    (
        "op-nan-pixel",
        lambda: _op(images=_with(_x(), (0, 0, 0, 0), NAN)),
        r"image 0 holds NaN",
    ),
    (
        "op-F-nan",
        lambda: _op(cfg=dict(differential_weight=NAN)),
        r"differential_weight \(F\) must be in \(0, 2\]",
    ),
    (
        "op-F-neg",
        lambda: _op(cfg=dict(differential_weight=-0.5)),
        r"differential_weight \(F\)",
    ),
    ("op-CR-nan", lambda: _op(cfg=dict(crossover_rate=NAN)), r"crossover_rate must"),
    ("op-CR-big", lambda: _op(cfg=dict(crossover_rate=1.5)), r"crossover_rate must"),
    (
        "op-thr-nan",
        lambda: _op(cfg=dict(untargeted_threshold=NAN)),
        r"untargeted_threshold must",
    ),
    (
        "op-thr-big",
        lambda: _op(cfg=dict(targeted_threshold=2.0)),
        r"targeted_threshold must",
    ),
    ("op-colour-std", lambda: _op(cfg=dict(colour_std=-1.0)), r"colour_std must"),
    ("op-colour-mean", lambda: _op(cfg=dict(colour_mean=NAN)), r"colour_mean must"),
    (
        "op-population-huge",
        lambda: _op(cfg=dict(population_size=10**8)),
        r"one-pixel attack of 3 images x population 100000000 needs about .* GiB, "
        r"more than the .* GiB of",
    ),
    (
        "op-population-float",
        lambda: _op(cfg=dict(population_size=8.5)),
        r"population_size must be an integer",
    ),
    (
        "op-eval-batch",
        lambda: _op(execution=op.Execution(eval_batch=-1)),
        r"eval_batch must be >= 0",
    ),
    (
        "op-compact",
        lambda: _op(execution=op.Execution(compact_every=-1)),
        r"compact_every must be an integer >= 0",
    ),
    (
        "op-input-shape",
        lambda: _op(input_shape=(16, 16, 1)),
        r"images are \[8, 8, 1\], the model takes \[16, 16, 1\]",
    ),
    (
        "op-num-classes",
        lambda: _op(num_classes=5),
        r"num_classes is 5 but probs_fn returns 4 classes",
    ),
    ("op-indices", lambda: _op(image_indices=[0, 1]), r"image_indices must be \[3\]"),
    (
        "op-init-F",
        lambda: _op_core("init", differential_weight=NAN),
        r"differential_weight \(F\)",
    ),
    ("op-init-labels", lambda: _op_core("init_labels"), r"labels must be \[3\]"),
    (
        "op-run-chunk-consumed",
        lambda: _op_core("run_chunk"),
        r"this OnePixelState was consumed by an earlier run_chunk call",
    ),
    (
        "op-run-chunk-jit-consumed",
        lambda: _op_core("run_chunk_jit"),
        r"OnePixelState was consumed",
    ),
    # ---- differential evolution
    ("de-F-nan", lambda: _de(differential_weight=NAN), r"differential_weight \(F\)"),
    ("de-F-neg", lambda: _de(differential_weight=-1.0), r"differential_weight \(F\)"),
    ("de-CR-nan", lambda: _de(crossover_rate=NAN), r"crossover_rate \(CR\)"),
    (
        "de-bounds",
        lambda: de.init(
            jnp.zeros((8, 2)),
            jnp.zeros(8),
            de.DEParams(lower=jnp.ones(2), upper=jnp.zeros(2)),
        ),
        r"lower > upper in dimension 0",
    ),
    (
        "de-box-nan",
        lambda: de.init(
            jnp.zeros((8, 2)),
            jnp.zeros(8),
            de.DEParams(lower=jnp.zeros(2), upper=jnp.asarray([1.0, NAN])),
        ),
        r"search box .* must be finite",
    ),
    (
        "de-fitness-shape",
        lambda: de.init(
            jnp.zeros((8, 2)),
            jnp.zeros(7),
            de.DEParams(lower=jnp.zeros(2), upper=jnp.ones(2)),
        ),
        r"fitness must be \[8\]",
    ),
    (
        "de-tiny-population",
        lambda: de.distinct_donors(jax.random.key(0), 3, 3),
        r"population must be at least 4",
    ),
    (
        "de-bound-rule",
        lambda: _de(bound_handling="wrap"),
        r"unknown bound_handling 'wrap'",
    ),
    # ---- MAP-Elites
    (
        "me-log-probs-both",
        lambda: me.log_probs_from(_logits_fn, _logits_fn),
        r"exactly one of logits_fn or probs_fn",
    ),
    (
        "me-nan-weights",
        lambda: _me_init(params=_nan_params()),
        r"the model returns non-finite outputs \(NaN/inf\) on the first 4 initial",
    ),
    (
        "me-logits-as-probs",
        lambda: _me_init(log_probs_fn=me.log_probs_from(probs_fn=_logits_fn)),
        r"probs_fn does not return probabilities \(row sums",
    ),
    (
        "me-num-classes",
        lambda: _me_init(num_classes=5),
        r"num_classes is 5 but the model gives (outputs of shape \[)?4",
    ),
    (
        "me-layout-eval-batch",
        lambda: me.make_layout(8, None, 0),
        r"eval_batch must be an integer >= 1",
    ),
    (
        "me-layout-population",
        lambda: me.make_layout(0, None, 4),
        r"population must be an integer >= 1",
    ),
    (
        "me-run-consumed",
        _me_run_twice,
        r"this MapElitesState was consumed by an earlier run_chunk call \(its buffers "
        r"are donated\); pass the state that call returned",
    ),
    (
        "me-run-generations",
        _me_run_bad_generations,
        r"num_generations must be an integer >= 0",
    ),
    (
        "me-population-huge",
        lambda: me.make_init(num_classes=K, **_me_kw(10**10)),
        r"MAP-Elites with population 10000000000 .* needs about",
    ),
    (
        "me-crossover-rate",
        lambda: _me_init(crossover_rate=NAN),
        r"crossover_rate nan is not in \[0, 1\]",
    ),
    # ---- encodings
    (
        "enc-mutation-eta-nan",
        lambda: make_encoding("direct", SHAPE, mutation_eta=NAN),
        r"mutation_eta \(distribution index\) must be in \[0, inf\)",
    ),
    (
        "enc-crossover-eta-neg",
        lambda: make_encoding("direct", SHAPE, crossover_eta=-1.0),
        r"crossover_eta",
    ),
    (
        "enc-rate-nan",
        lambda: make_encoding("direct", SHAPE, mutation_rate0=NAN),
        r"mutation probability nan is not in \[0, 1\]",
    ),
    (
        "enc-crossover-big",
        lambda: make_encoding("direct", SHAPE, crossover_rate=2.0),
        r"crossover probability 2.0",
    ),
    (
        "enc-colour",
        lambda: make_encoding("direct", SHAPE, colour="cmyk"),
        r"unknown colour 'cmyk'",
    ),
    (
        "enc-halve",
        lambda: make_encoding("direct", SHAPE, halve_every=-1),
        r"halve_every \(0 = constant rate\) must be an integer >= 0",
    ),
    ("enc-shape", lambda: make_encoding("direct", (8, 0, 1)), r"image shape must be"),
    (
        "enc-cppn-eta-nan",
        lambda: make_encoding("cppn", SHAPE, mutation_eta=NAN),
        r"mutation_eta",
    ),
    (
        "direct-eta-nan",
        lambda: direct.polynomial_mutation(
            jax.random.key(0), jnp.zeros(4), rate=0.1, eta=NAN
        ),
        r"mutation eta must be",
    ),
    (
        "direct-rate-nan",
        lambda: direct.polynomial_mutation(
            jax.random.key(0), jnp.zeros(4), rate=NAN, eta=15.0
        ),
        r"mutation rate must",
    ),
    (
        "direct-sbx-eta",
        lambda: direct.sbx_crossover(
            jax.random.key(0), jnp.zeros(4), jnp.ones(4), eta=NAN
        ),
        r"crossover eta",
    ),
    (
        "cppn-weight-eta-nan",
        lambda: cppn.make_spec(SHAPE, weight_eta=NAN),
        r"cppn weight_eta must be in \[0, inf\)",
    ),
    (
        "cppn-p-nan",
        lambda: cppn.make_spec(SHAPE, p_add_node=NAN),
        r"cppn p_add_node=nan is not a probability in \[0, 1\]",
    ),
    (
        "cppn-max-nodes",
        lambda: cppn.make_spec(SHAPE, max_nodes=16.5),
        r"cppn max_nodes must be an integer",
    ),
    # ---- registered models: shapes at trace time
    (
        "model-hw",
        lambda: _model_logits("lenet", (32, 32, 3)),
        r"images are \[32, 32, 3\], model 'lenet' takes \[28, 28, 1\]",
    ),
    (
        "model-channels",
        lambda: _model_logits("cifar_lenet", (32, 32, 1)),
        r"images are \[32, 32, 1\], model 'cifar_lenet' takes \[32, 32, 3\]",
    ),
    (
        "model-resizes-channels",
        lambda: _model_logits("mobilenet_v1_025", (64, 64, 1)),
        r"images are \[64, 64, 1\], model 'mobilenet_v1_025' takes 3-channel images",
    ),
]


@pytest.mark.parametrize(
    "call, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_with_one_line(call, pattern):
    with pytest.raises(FooljaxError, match=pattern) as e:
        call()
    assert "\n" not in str(e.value), str(e.value)


def test_at_least_fifty_cases():
    assert len(CASES) >= 50 and len({c[0] for c in CASES}) == len(CASES)


def test_documented_subclasses():
    with pytest.raises(ConsumedStateError):
        _me_run_twice()
    with pytest.raises(TooLargeError):
        _op(cfg=dict(population_size=10**8))
    with pytest.raises(ValueError):  # InputError is a ValueError too
        de.distinct_donors(jax.random.key(0), 3, 3)


def test_model_that_resizes_takes_any_size_with_its_channels():
    out = _model_logits("mobilenet_v1_025", (64, 64, 3))
    assert out.shape == (1, 1001) or out.shape[0] == 1


def test_nan_on_some_images_is_allowed():
    # a model that is NaN on some images only: those never enter the archive
    def some_nan(p, x):
        out = _logits_fn(p, x)
        return jnp.where(jnp.mean(x, (1, 2, 3))[:, None] > 0.5, jnp.nan, out)

    kw = _me_kw(log_probs_fn=me.log_probs_from(logits_fn=some_nan))
    state = me.make_init(num_classes=K, **kw)(jax.random.key(0), _params())
    assert np.isfinite(np.asarray(state.archive.fitness)).any()


# ------------------------------------------------------------ padding (positive)


def _score_local_unpadded(log_probs_fn, params, encoding, genomes, eval_batch):
    """The micro-batching before padding existed (needs ``eval_batch | n``)."""
    n = jax.tree_util.tree_leaves(genomes)[0].shape[0]
    eb = min(eval_batch, n)
    batches = jax.tree_util.tree_map(
        lambda a: a.reshape(n // eb, eb, *a.shape[1:]), genomes
    )
    lp = jax.lax.map(
        lambda g: log_probs_fn(params, jax.vmap(encoding.decode)(g)), batches
    )
    lp = lp.reshape(n, lp.shape[-1])
    return jnp.where(jnp.isnan(lp), -jnp.inf, lp)


def test_micro_batch_sizes():
    assert me.make_layout(200, None, 50).eval_batch == 50  # the default run
    assert me.make_layout(8, None, 4).eval_batch == 4
    assert me.make_layout(8, None, 50).eval_batch == 8
    assert me.make_layout(120, None, 50).eval_batch == 40  # a divisor, as before
    assert me.make_layout(101, None, 50).eval_batch == 34  # was 1; now padded


def test_multiples_score_bit_identically_to_the_unpadded_code(monkeypatch):
    enc = direct_encoding(SHAPE)
    lp_fn = me.log_probs_from(logits_fn=_logits_fn)
    genomes = jax.vmap(enc.init)(jax.random.split(jax.random.key(3), 12))

    def score(eb):  # a fresh function each time: nothing traced is reused
        fn = jax.jit(lambda p, g: me._score_local(lp_fn, p, enc, g, eb))
        return np.asarray(fn(_params(), genomes))

    old = {
        eb: np.asarray(
            jax.jit(lambda p, g, eb=eb: _score_local_unpadded(lp_fn, p, enc, g, eb))(
                _params(), genomes
            )
        )
        for eb in (1, 4, 6, 12)
    }
    # 12 micro-batches of 1 are past UNROLL_BATCHES: the lax.map, bit for bit
    assert 12 > me.UNROLL_BATCHES
    np.testing.assert_array_equal(score(1), old[1])
    # 1-3 micro-batches: straight-line code; the same rows, up to XLA's fusion
    for eb in (4, 6, 12):
        np.testing.assert_allclose(score(eb), old[eb], rtol=1e-6, atol=1e-6)
    # with unrolling off, every layout is the lax.map, bit for bit
    monkeypatch.setattr(me, "UNROLL_BATCHES", 0)
    for eb in (4, 6, 12):
        np.testing.assert_array_equal(score(eb), old[eb])


def test_non_multiple_population_is_padded_and_every_offspring_scored():
    enc = direct_encoding(SHAPE)
    lp_fn = me.log_probs_from(logits_fn=_logits_fn)
    genomes = jax.vmap(enc.init)(jax.random.split(jax.random.key(4), 10))
    lp = np.asarray(me._score_local(lp_fn, _params(), enc, genomes, 4))
    assert lp.shape == (10, K) and np.all(np.isfinite(lp))
    ref = np.asarray(lp_fn(_params(), jax.vmap(enc.decode)(genomes)))
    np.testing.assert_allclose(lp, ref, rtol=1e-5, atol=1e-5)
    # the pure pieces run with a Layout whose micro-batch does not divide
    layout = me.Layout(None, 4)
    kw = dict(log_probs_fn=lp_fn, encoding=enc, population=10, layout=layout)
    state = me.make_init(num_classes=K, **kw)(jax.random.key(0), _params())
    state, metrics = me.make_run_chunk(**kw)(state, _params(), 3)
    assert state.archive.fitness.shape == (K,)
    assert int(state.generation) == 3 and metrics["max"].shape == (3,)
    # generation 0 offered all 10 genomes: the archive equals a plain reference
    g0 = jax.vmap(enc.init)(
        jax.random.split(jax.random.fold_in(jax.random.key(0), 0), 10)
    )
    lp0 = np.asarray(lp_fn(_params(), jax.vmap(enc.decode)(g0)))
    s0 = me.make_init(num_classes=K, **kw)(jax.random.key(0), _params())
    np.testing.assert_allclose(s0.archive.fitness, lp0.max(0), rtol=1e-5, atol=1e-5)
