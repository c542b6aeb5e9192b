"""One pixel attack on tiny shapes: 8x8 images, population 8, a tiny Flax model."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.attacks import one_pixel as op
from fooljax.errors import FooljaxError

H = W = 8


class Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3), name="c")(x))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(3, name="d")(x)


@pytest.fixture(scope="module")
def tiny():
    model = Tiny()
    params = model.init(jax.random.key(0), jnp.zeros((1, H, W, 3)))
    probs_fn = op.probs_from_logits(model.apply)
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (5, H, W, 3)).astype(np.float32) / 255
    labels = np.asarray(jax.jit(probs_fn)(params, images)).argmax(-1)
    return probs_fn, params, images, labels


def _bright_probs(params, images):
    """Class 1 gets more likely the brighter the image's brightest pixel, so one
    white pixel flips a dark image from class 0 to class 1."""
    m = images.max(axis=(1, 2, 3))
    logits = jnp.stack([jnp.full_like(m, 0.0), 40.0 * (m - 0.5), -1 + 0 * m], -1)
    return jax.nn.softmax(logits, -1)


CFG = op.OnePixelConfig(population_size=8, max_generations=4)
EXE = op.Execution(compact_every=2)


def test_apply_candidate_matches_numpy_and_last_pixel_wins():
    img = np.zeros((H, W, 3), np.float32)
    cand = np.asarray(
        [[2.7, 5.2, 255.0, 10.4, 0.0], [7.99, 0.0, 1.0, 2.0, 3.0], [2.1, 5.9, 9, 9, 9]],
        np.float32,
    )
    out = np.asarray(op.apply_candidate(jnp.asarray(img), jnp.asarray(cand.ravel())))
    ref = img.copy()
    ref[0, 7] = np.asarray([1, 2, 3]) / 255
    ref[5, 2] = np.asarray([9, 9, 9]) / 255  # same pixel as the first: last wins
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-7)
    one = np.asarray(op.apply_candidate(jnp.asarray(img), jnp.asarray(cand[0])))
    ref1 = img.copy()
    ref1[5, 2] = np.asarray([255, 10, 0]) / 255  # colours rounded
    np.testing.assert_allclose(one, ref1, rtol=0, atol=1e-7)


def test_result_is_consistent(tiny):
    probs_fn, params, images, labels = tiny
    cfg = op.OnePixelConfig(
        num_pixels=2, population_size=8, max_generations=3, early_stop="none"
    )
    r = op.attack(jax.random.key(0), probs_fn, params, images, labels, config=cfg)
    b = len(images)
    assert r.adversarial_images.shape == images.shape
    assert r.candidates.shape == (b, 2, 5)
    np.testing.assert_array_equal(r.generations, 3)
    # the initial population and each generation's new painted images
    assert ((8 <= r.queries) & (r.queries <= 8 * 4)).all()
    changed = (r.adversarial_images != images).any(-1).sum(axis=(1, 2))
    assert (changed <= 2).all()
    # reported probabilities are the model's output on the returned images
    p = np.asarray(probs_fn(params, jnp.asarray(r.adversarial_images)))
    np.testing.assert_allclose(r.probabilities, p, atol=1e-5)
    np.testing.assert_array_equal(r.success, p.argmax(-1) != labels)
    # adversarial pixels are 8-bit colours
    q = r.adversarial_images * 255
    np.testing.assert_allclose(q, np.round(q), atol=1e-3)


def test_more_generations_never_worse(tiny):
    probs_fn, params, images, labels = tiny
    cfg = op.OnePixelConfig(population_size=8, max_generations=0, early_stop="none")
    r0 = op.attack(jax.random.key(1), probs_fn, params, images, labels, config=cfg)
    cfg5 = op.OnePixelConfig(population_size=8, max_generations=6, early_stop="none")
    r5 = op.attack(jax.random.key(1), probs_fn, params, images, labels, config=cfg5)
    p0 = r0.probabilities[np.arange(5), labels]
    p5 = r5.probabilities[np.arange(5), labels]
    assert (p5 <= p0 + 1e-6).all()


@pytest.mark.parametrize(
    "eval_batch, memoize", [(None, True), (0, True), (3, True), (3, False)]
)
def test_same_seed_same_result_and_batch_independent(tiny, eval_batch, memoize):
    # eval_batch 3 does not divide the population (8): model calls mix images
    # and the last one of each generation is padded; with memoize, the calls
    # pack the new trials of all images
    CFG = op.OnePixelConfig(population_size=8, max_generations=12)
    EXE = op.Execution(compact_every=2, eval_batch=eval_batch, memoize=memoize)
    run = functools.partial(op.attack, config=CFG, execution=EXE)
    probs_fn, params, images, labels = tiny
    key = jax.random.key(7)
    a = run(key, probs_fn, params, images, labels)
    b = run(key, probs_fn, params, images, labels)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    # each image alone, and a batch of three with other neighbours, keyed by
    # its index: identical to the full batch
    for i in range(len(images)):
        s = run(
            key,
            probs_fn,
            params,
            images[i : i + 1],
            labels[i : i + 1],
            image_indices=[i],
        )
        np.testing.assert_array_equal(s.candidates[0], a.candidates[i])
        np.testing.assert_array_equal(s.queries[0], a.queries[i])
        np.testing.assert_array_equal(s.adversarial_images[0], a.adversarial_images[i])
    sub = [4, 1, 2]
    s = run(key, probs_fn, params, images[sub], labels[sub], image_indices=sub)
    np.testing.assert_array_equal(s.candidates, a.candidates[sub])
    other = run(jax.random.key(8), probs_fn, params, images, labels)
    assert not np.array_equal(other.candidates, a.candidates)


def test_early_stop_per_image_without_stalling_the_batch():
    images = np.full((4, H, W, 3), 0.1, np.float32)
    images[2] = 1.0  # already class 1: stops after the initial population
    labels = np.asarray([0, 0, 1, 0])
    labels[2] = 0
    cfg = op.OnePixelConfig(population_size=8, max_generations=20)
    r = op.attack(
        jax.random.key(0),
        _bright_probs,
        None,
        images,
        labels,
        config=cfg,
        execution=op.Execution(compact_every=3),
    )
    assert r.success.all()
    assert r.generations[2] == 0 and r.queries[2] == 8
    np.testing.assert_array_equal(r.queries, 8 * (1 + r.generations))
    assert (r.generations < 20).all()
    p_true = r.probabilities[np.arange(4), labels]
    assert (p_true < 0.05).all()
    # compaction on or off gives the same per-image result
    r2 = op.attack(
        jax.random.key(0),
        _bright_probs,
        None,
        images,
        labels,
        config=cfg,
        execution=op.Execution(compact_every=0),
    )
    np.testing.assert_array_equal(r.candidates, r2.candidates)
    np.testing.assert_array_equal(r.queries, r2.queries)


def test_targeted_reaches_target():
    images = np.full((2, H, W, 3), 0.1, np.float32)
    labels = np.asarray([0, 0])
    targets = np.asarray([1, 1])
    cfg = op.OnePixelConfig(population_size=8, max_generations=20)
    r = op.attack(
        jax.random.key(0),
        _bright_probs,
        None,
        images,
        labels,
        targets=targets,
        config=cfg,
    )
    assert r.success.all()
    assert (r.probabilities[:, 1] >= 0.9).all()
    assert (r.predicted == 1).all()


@pytest.mark.parametrize(
    "kwargs, images_shape, message",
    [
        (dict(num_pixels=0), (2, H, W, 3), "pixel count"),
        (dict(num_pixels=H * W + 1), (2, H, W, 3), "pixel count"),
        (dict(population_size=3), (2, H, W, 3), "population"),
        (dict(), (H, W, 3), "[B, H, W, C]"),
        (dict(early_stop="never"), (2, H, W, 3), "early_stop"),
    ],
)
def test_bad_input(kwargs, images_shape, message):
    cfg = op.OnePixelConfig(**{"population_size": 8, "max_generations": 1, **kwargs})
    with pytest.raises(FooljaxError, match=message.replace("[", r"\[")):
        op.attack(
            jax.random.key(0),
            _bright_probs,
            None,
            np.zeros(images_shape, np.float32),
            np.zeros(images_shape[:1], int),
            config=cfg,
        )


def test_bad_target_and_shape():
    imgs = np.zeros((2, H, W, 3), np.float32)
    with pytest.raises(FooljaxError, match="target class equals the true label"):
        op.attack(
            jax.random.key(0),
            _bright_probs,
            None,
            imgs,
            np.asarray([0, 1]),
            targets=np.asarray([2, 1]),
            config=CFG,
        )
    with pytest.raises(FooljaxError, match="the model takes"):
        op.attack(
            jax.random.key(0),
            _bright_probs,
            None,
            imgs,
            np.asarray([0, 1]),
            config=CFG,
            input_shape=(32, 32, 3),
        )


@pytest.mark.parametrize("eval_batch", [1, 3, 8, 16, 100])
def test_micro_batched_evaluation_matches_one_call(tiny, eval_batch):
    probs_fn, params, images, _ = tiny
    rng = np.random.RandomState(1)
    cands = np.concatenate(
        [rng.uniform(0, H, (5, 8, 2)), rng.uniform(0, 255, (5, 8, 3))], -1
    ).astype(np.float32)
    whole = op.evaluate(probs_fn, params, jnp.asarray(images), jnp.asarray(cands))
    micro = op.evaluate(
        probs_fn, params, jnp.asarray(images), jnp.asarray(cands), eval_batch=eval_batch
    )
    assert micro.shape == whole.shape == (5, 8, 3)
    np.testing.assert_allclose(np.asarray(micro), np.asarray(whole), atol=1e-6)
    # and each entry is the model on that image with that candidate painted in
    one = probs_fn(
        params, op.apply_candidate(jnp.asarray(images[3]), cands[3, 5])[None]
    )
    np.testing.assert_allclose(np.asarray(micro[3, 5]), np.asarray(one[0]), atol=1e-6)


def test_eval_batch_defaults_and_bad_value():
    assert op.resolve_eval_batch(None, "cpu") == op.AUTO_EVAL_BATCH_CPU
    assert op.resolve_eval_batch(None, "gpu") == 0
    assert op.resolve_eval_batch(None, "tpu") == 0
    assert op.resolve_eval_batch(40, "gpu") == 40
    with pytest.raises(FooljaxError, match="eval_batch"):
        op.attack(
            jax.random.key(0),
            _bright_probs,
            None,
            np.zeros((2, H, W, 3), np.float32),
            np.zeros((2,), int),
            config=op.OnePixelConfig(population_size=8),
            execution=op.Execution(eval_batch=-1),
        )


def test_calls_of_stopped_images_are_skipped(tiny):
    probs_fn, params, images, _ = tiny
    rng = np.random.RandomState(2)
    cands = np.concatenate(
        [rng.uniform(0, H, (5, 8, 2)), rng.uniform(0, 255, (5, 8, 3))], -1
    ).astype(np.float32)
    active = jnp.asarray([True, False, True, False, False])
    whole = op.evaluate(probs_fn, params, jnp.asarray(images), jnp.asarray(cands))
    micro = op.evaluate(
        probs_fn, params, jnp.asarray(images), jnp.asarray(cands), active, eval_batch=8
    )
    np.testing.assert_allclose(
        np.asarray(micro)[[0, 2]], np.asarray(whole)[[0, 2]], atol=1e-6
    )
    np.testing.assert_array_equal(np.asarray(micro)[[1, 3, 4]], 0.0)
    # a call holding an active image's candidates is made whole (calls of 3 mix
    # images 0 and 1): image 1's rows in that call are real probabilities
    mixed = np.asarray(
        op.evaluate(
            probs_fn,
            params,
            jnp.asarray(images),
            jnp.asarray(cands),
            active,
            eval_batch=3,
        )
    )
    np.testing.assert_allclose(mixed[1, :1], np.asarray(whole)[1, :1], atol=1e-6)
    np.testing.assert_array_equal(mixed[3, 3:], 0.0)


def _rand_cands(rng, shape, pos_hi=H, colours=(0.0, 255.0)):
    """Candidates with integer cells/colours drawn from few values, jittered
    within their rounding cells (so different vectors paint the same pixels)."""
    pos = rng.randint(0, pos_hi, shape + (2,)) + rng.uniform(0.05, 0.95, shape + (2,))
    col = rng.choice(np.asarray(colours), shape + (3,))
    col = col + rng.uniform(-0.45, 0.45, col.shape)
    return np.concatenate([pos, np.clip(col, 0, 255)], -1).astype(np.float32)


@pytest.mark.parametrize("k", [1, 3])
def test_pixel_keys_name_the_painted_image(k):
    rng = np.random.RandomState(3)
    img = jnp.asarray(rng.uniform(0, 1, (H, W, 3)).astype(np.float32))
    # few positions and colours: many different vectors paint the same image
    cands = _rand_cands(rng, (60, k), pos_hi=2, colours=(0.0, 255.0))
    cands = cands.reshape(60, -1)
    cands[30:] = cands[:30] + rng.uniform(-0.04, 0.04, cands[:30].shape)
    keys = np.asarray(op.pixel_keys(jnp.asarray(cands), (H, W, 3)))
    assert keys.shape == (60, 2 * k) and keys.dtype == np.int32
    painted = np.asarray(jax.vmap(op.apply_candidate, (None, 0))(img, cands))
    same_key = (keys[:, None] == keys[None]).all(-1)
    same_img = (painted[:, None] == painted[None]).all((2, 3, 4))
    assert (same_img | ~same_key).all()  # equal keys => equal images
    assert same_key.sum() > 60  # the test does exercise collisions
    if k == 1:  # one pixel: the converse holds too, but for repaints of a colour
        assert (same_key | ~same_img).all()
    grey = op.pixel_keys(jnp.asarray(np.asarray([[1.2, 0.9, 7.6]])), (H, W, 1))
    np.testing.assert_array_equal(np.asarray(grey), [[1, 8]])  # y * W + x, colour


def test_memoised_evaluation_reuses_members_and_earlier_trials(tiny):
    probs_fn, params, images, _ = tiny
    rng = np.random.RandomState(4)
    many = np.arange(256.0)  # (chance duplicates: negligible)
    pop = _rand_cands(rng, (5, 8, 1), colours=many).reshape(5, 8, 5)
    trials = _rand_cands(rng, (5, 8, 1), colours=many).reshape(5, 8, 5)
    trials[:, 1] = pop[:, 6] + 0.01  # same pixels as a member (rounding)
    trials[:, 5] = trials[:, 2]  # same as an earlier trial
    trials[:, 7] = pop[:, 0]
    active = jnp.asarray([True, True, False, True, True])
    pop_probs = op.evaluate(probs_fn, params, jnp.asarray(images), jnp.asarray(pop))
    whole = op.evaluate(probs_fn, params, jnp.asarray(images), jnp.asarray(trials))
    for eval_batch in (1, 3, 40):
        probs, new = op.evaluate_memo(
            probs_fn,
            params,
            jnp.asarray(images),
            jnp.asarray(trials),
            jnp.asarray(pop),
            pop_probs,
            active,
            eval_batch=eval_batch,
        )
        new = np.asarray(new)
        expect = np.ones((5, 8), bool)
        expect[:, [1, 5, 7]] = False
        expect[2] = False  # inactive image: nothing queried
        np.testing.assert_array_equal(new, expect)
        keep = np.asarray(active)
        np.testing.assert_allclose(
            np.asarray(probs)[keep], np.asarray(whole)[keep], rtol=0, atol=1e-6
        )


def test_memoise_changes_queries_only(tiny):
    probs_fn, params, images, labels = tiny
    cfg = op.OnePixelConfig(population_size=8, max_generations=30, early_stop="none")
    key = jax.random.key(5)
    on = op.attack(
        key,
        probs_fn,
        params,
        images,
        labels,
        config=cfg,
        execution=op.Execution(eval_batch=3),
    )
    off = op.attack(
        key,
        probs_fn,
        params,
        images,
        labels,
        config=cfg,
        execution=op.Execution(eval_batch=3, memoize=False),
    )
    for f in on._fields:
        if f != "queries":
            np.testing.assert_array_equal(getattr(on, f), getattr(off, f))
    np.testing.assert_array_equal(off.queries, 8 * 31)
    assert (on.queries <= off.queries).all() and on.queries.sum() < off.queries.sum()
    assert (on.queries >= 8).all()  # the initial population is always queried


def test_probs_from_logits_is_equal_for_the_same_model():
    def logits(params, x):
        return x.reshape(x.shape[0], -1)[:, :3] * params

    def other(params, x):
        return -logits(params, x)

    a, b = op.probs_from_logits(logits), op.probs_from_logits(logits)
    assert a == b and hash(a) == hash(b)  # one compilation for both (static arg)
    assert a != op.probs_from_logits(other)
    x = jnp.asarray(np.random.RandomState(0).uniform(0, 1, (2, H, W, 3)), jnp.float32)
    np.testing.assert_allclose(
        np.asarray(a(2.0, x)), np.asarray(jax.nn.softmax(logits(2.0, x))), rtol=1e-6
    )


def test_bad_execution_is_refused():
    with pytest.raises(FooljaxError, match="compact_every"):
        op.attack(
            jax.random.key(0),
            _bright_probs,
            None,
            np.zeros((2, H, W, 3), np.float32),
            np.zeros((2,), int),
            config=CFG,
            execution=op.Execution(compact_every=-1),
        )


@pytest.mark.parametrize("targeted", [False, True])
def test_pure_cores_by_hand_equal_attack_and_chunking(tiny, targeted):
    """init + run_chunk (one chunk, or several) + best == the host driver."""
    probs_fn, params, images, labels = tiny
    targets = (labels + 1) % 3 if targeted else None
    cfg = op.OnePixelConfig(population_size=8, max_generations=6, early_stop="none")
    key = jax.random.key(3)
    ref = op.attack(
        key,
        probs_fn,
        params,
        images,
        labels,
        targets=targets,
        config=cfg,
        execution=op.Execution(eval_batch=3, compact_every=0),
    )
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(len(images)))
    args = (
        probs_fn,
        params,
        jnp.asarray(images),
        jnp.asarray(labels, jnp.int32),
        None if targets is None else jnp.asarray(targets, jnp.int32),
        keys,
    )
    valid = jnp.ones(len(images), bool)
    for stops in ([6], [2, 5, 6]):
        state = op.init(*args, config=cfg, eval_batch=3)
        for stop in stops:
            state = op.run_chunk(
                *args, state, valid, jnp.int32(stop), config=cfg, eval_batch=3
            )
        adv, cand, probs = op.best(jnp.asarray(images), state)
        np.testing.assert_array_equal(np.asarray(adv), ref.adversarial_images)
        np.testing.assert_array_equal(np.asarray(probs), ref.probabilities)
        np.testing.assert_array_equal(np.asarray(state.queries), ref.queries)
        np.testing.assert_array_equal(np.asarray(state.generations), 6)
