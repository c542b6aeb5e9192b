"""Every public pure function of ``fooljax.attacks`` under ``jit``, ``vmap`` and
(where differentiable) ``grad``, each variant equal to the plain call, as optax
tests its transformations. Tiny shapes: 8x8x3 images, 3 classes, population 8.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fooljax.attacks import (
    fgsm,
    gradient_ascent,
    input_gradient,
    per_example_loss,
    pgd,
    pgd_step,
    project_linf_box,
)
from fooljax.attacks import one_pixel as op

H = W = 8
C = 3
K = 3
B = 3
P = 8
SHAPE = (H, W, C)


def logits_fn(params, images):
    h = jnp.tanh(images.reshape(images.shape[0], -1) @ params["w1"])
    return h @ params["w2"] + params["b"]


PROBS = op.probs_from_logits(logits_fn)
CFG = op.OnePixelConfig(population_size=P, untargeted_threshold=0.3)


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w1": jnp.asarray(rng.normal(0, 0.3, (H * W * C, 6)), jnp.float32),
        "w2": jnp.asarray(rng.normal(0, 1.0, (6, K)), jnp.float32),
        "b": jnp.asarray(rng.normal(0, 0.1, K), jnp.float32),
    }


def make_data(seed, b=B):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.uniform(0, 1, (b,) + SHAPE), jnp.float32)
    return x, jnp.asarray(rng.integers(0, K, b), jnp.int32)


def make_cands(seed, lead=(B, P), k=1):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, W, lead + (k, 2))
    col = rng.choice([0.0, 128.0, 255.0], lead + (k, C)) + rng.uniform(-0.4, 0.4)
    cands = np.concatenate([pos, np.clip(col, 0, 255)], -1).reshape(lead + (-1,))
    return jnp.asarray(cands, jnp.float32)


def assert_trees_close(a, b, atol=1e-6):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=atol)
        else:
            np.testing.assert_array_equal(x, y)


def stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def check_variants(fn, arg_sets, atol=1e-6):
    """``jit(fn)`` on each argument set, and ``vmap(fn)`` on them stacked, equal
    ``fn`` called plainly on each."""
    plain = [fn(*args) for args in arg_sets]
    jitted = jax.jit(fn)
    for args, ref in zip(arg_sets, plain, strict=True):
        assert_trees_close(jitted(*args), ref, atol)
    batched = jax.vmap(fn)(*stack(arg_sets))
    assert_trees_close(batched, stack(plain), atol)
    return plain


# ------------------------------------------------------------------ one pixel


@pytest.mark.parametrize("k", [1, 3])
def test_apply_candidate_variants_and_grad(k):
    imgs, _ = make_data(0, 2)
    cands = make_cands(1, (2,), k)
    check_variants(op.apply_candidate, [(imgs[i], cands[i]) for i in range(2)])
    # d <w, apply(img)> / d img = w off the painted pixels, 0 on them
    w = jnp.asarray(np.random.default_rng(2).normal(size=SHAPE), jnp.float32)
    grad_fn = jax.grad(lambda img, c: jnp.sum(w * op.apply_candidate(img, c)))
    g = grad_fn(imgs[0], cands[0])
    painted = np.asarray(op.apply_candidate(jnp.full(SHAPE, -1.0), cands[0])) >= 0
    np.testing.assert_array_equal(np.asarray(g), np.where(painted, 0.0, w))
    np.testing.assert_array_equal(np.asarray(jax.jit(grad_fn)(imgs[0], cands[0])), g)


def test_pixel_keys_variants():
    check_variants(
        lambda c: op.pixel_keys(c, SHAPE),
        [(make_cands(3, (P,), 2),), (make_cands(4, (P,), 2),)],
    )


def test_initial_population_variants():
    pops = check_variants(
        lambda key: op.initial_population(key, SHAPE, CFG),
        [(jax.random.key(0),), (jax.random.key(1),)],
    )
    p = np.asarray(pops[0]).reshape(P, 1, 2 + C)
    assert p.shape == (P, 1, 5) and (p[..., :2] < W).all() and (p[..., 2:] <= 255).all()


@pytest.mark.parametrize("eval_batch", [0, 5])
def test_evaluate_variants(eval_batch):
    params = make_params()
    sets = []
    for s in range(2):
        x, _ = make_data(10 + s)
        active = jnp.asarray([True, s == 0, True])
        sets.append((params, x, make_cands(20 + s), active))
    fn = functools.partial(op.evaluate, PROBS, eval_batch=eval_batch)
    plain = check_variants(lambda p, x, c, a: fn(p, x, c, a), sets)
    # each entry is the model on that image with that candidate painted in
    _, x, c, _ = sets[0]
    one = PROBS(params, op.apply_candidate(x[2], c[2, 5])[None])[0]
    np.testing.assert_allclose(np.asarray(plain[0][2, 5]), np.asarray(one), atol=1e-6)


def test_evaluate_memo_variants():
    params = make_params()
    sets = []
    for s in range(2):
        x, _ = make_data(30 + s)
        pop = make_cands(40 + s)
        trials = make_cands(50 + s).at[:, 1].set(pop[:, 4]).at[:, 6].set(pop[:, 2])
        pop_probs = op.evaluate(PROBS, params, x, pop)
        sets.append(
            (params, x, trials, pop, pop_probs, jnp.asarray([True, True, s == 0]))
        )
    fn = functools.partial(op.evaluate_memo, PROBS, eval_batch=4)
    plain = check_variants(fn, sets)
    probs, new = plain[0]
    assert not np.asarray(new)[:, [1, 6]].any()  # reused, not queried
    params, x, trials, *_ = sets[0]
    np.testing.assert_allclose(probs, op.evaluate(PROBS, params, x, trials), atol=1e-6)


def _one_pixel_args(seed, targeted):
    x, y = make_data(seed)
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(seed), jnp.arange(B))
    t = (y + 1) % K if targeted else None
    return make_params(), x, y, t, keys


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("eval_batch, memoize", [(0, False), (5, True), (5, False)])
def test_init_run_chunk_best_variants(targeted, eval_batch, memoize):
    sets = [_one_pixel_args(s, targeted) for s in (60, 61)]
    init = functools.partial(op.init, PROBS, config=CFG, eval_batch=eval_batch)
    states = check_variants(init, sets)

    def run(params, x, y, t, keys, state):
        state = op.run_chunk(
            PROBS,
            params,
            x,
            y,
            t,
            keys,
            state,
            jnp.ones(B, bool),
            jnp.int32(4),
            config=CFG,
            eval_batch=eval_batch,
            memoize=memoize,
        )
        return state, op.best(x, state)

    out = check_variants(run, [(*a, s) for a, s in zip(sets, states, strict=True)])
    for (state, (adv, cand, probs)), (params, *_) in zip(out, sets, strict=True):
        assert np.asarray(state.de_state.generation)[0] == 4 or not np.any(state.active)
        # best's probabilities are the model's output on its adversarial images
        np.testing.assert_allclose(probs, PROBS(params, adv), atol=1e-6)
        assert cand.shape == (B, 2 + C)


# ------------------------------------------------------------ gradient attacks


def test_per_example_loss_and_input_gradient_variants_and_grad():
    params = make_params()
    sets = [(params, *make_data(70)), (params, *make_data(71))]
    loss = functools.partial(per_example_loss, logits_fn)
    grad_x = functools.partial(input_gradient, logits_fn)
    check_variants(loss, sets)
    plain = check_variants(grad_x, sets)
    # input_gradient is the gradient of the summed per-example loss
    p, x, y = sets[0]
    g = jax.grad(lambda xx: loss(p, xx, y).sum())(x)
    np.testing.assert_allclose(plain[0], g, atol=1e-6)
    # second order, w.r.t. the parameters: jit == plain
    f = jax.grad(lambda pp: jnp.sum(grad_x(pp, x, y) ** 2))
    assert_trees_close(jax.jit(f)(p), f(p))


def test_project_linf_box_variants_and_grad():
    x, _ = make_data(80)
    z = x + jnp.asarray(np.random.default_rng(81).normal(0, 0.2, x.shape), jnp.float32)
    fn = lambda z, x, e: project_linf_box(z, x, epsilon=e)  # noqa: E731
    plain = check_variants(fn, [(z, x, 0.1), (z[::-1], x[::-1], 0.25)])
    out = np.asarray(plain[0])
    assert out.min() >= 0 and out.max() <= 1 and np.abs(out - x).max() <= 0.1 + 1e-6
    g = jax.grad(lambda zz: fn(zz, x, 0.1).sum())(z)
    np.testing.assert_array_equal(
        np.asarray(g), (np.asarray(z) == out).astype(np.float32)
    )


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_variants(targeted):
    params = make_params()
    fn = lambda p, x, y, e: fgsm(logits_fn, p, x, y, epsilon=e, targeted=targeted)  # noqa: E731
    sets = [(params, *make_data(90), 0.1), (params, *make_data(91), 0.25)]
    check_variants(fn, sets)


def test_fgsm_epsilon_sweep_vmapped_equals_loop():
    params, (x, y) = make_params(), make_data(92)
    eps = jnp.asarray([0.0, 0.1, 0.25])
    swept = jax.vmap(lambda e: fgsm(logits_fn, params, x, y, epsilon=e))(eps)
    for i, e in enumerate([0.0, 0.1, 0.25]):
        np.testing.assert_array_equal(
            swept[i], fgsm(logits_fn, params, x, y, epsilon=e)
        )
    jitted = jax.jit(lambda e: fgsm(logits_fn, params, x, y, epsilon=e))
    np.testing.assert_array_equal(jitted(0.1), swept[1])


def test_fgsm_grad_wrt_params_is_that_of_the_fixed_adversarial_loss():
    """Adversarial training's term: the attack is a constant for the gradient."""
    params, (x, y) = make_params(), make_data(93)

    def adv_loss(p):
        xa = jax.lax.stop_gradient(fgsm(logits_fn, p, x, y, epsilon=0.1))
        return per_example_loss(logits_fn, p, xa, y).mean()

    xa = fgsm(logits_fn, params, x, y, epsilon=0.1)
    ref = jax.grad(lambda p: per_example_loss(logits_fn, p, xa, y).mean())(params)
    assert_trees_close(jax.grad(adv_loss)(params), ref)
    assert_trees_close(jax.jit(jax.grad(adv_loss))(params), ref)


# under vmap over epsilon the first step's x is unbatched and its batched
# output cannot reuse the donated buffer: JAX warns, harmlessly
@pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")
@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_variants_and_epsilon_sweep(random_start):
    params = make_params()

    def fn(p, x, y, e, step, key):
        return pgd(
            logits_fn,
            p,
            x,
            y,
            epsilon=e,
            step_size=step,
            num_steps=3,
            random_start=random_start,
            key=key,
        )

    sets = [
        (params, *make_data(100), 0.1, 0.04, jax.random.key(0)),
        (params, *make_data(101), 0.2, 0.1, jax.random.key(1)),
    ]
    check_variants(fn, sets)
    # an epsilon curve in one call; default step size traced too
    _, x, y, *_ = sets[0]
    eps = [0.05, 0.1, 0.3]
    curve = lambda e: pgd(logits_fn, params, x, y, epsilon=e, num_steps=3)  # noqa: E731
    swept = jax.vmap(curve)(jnp.asarray(eps))
    for i, e in enumerate(eps):
        np.testing.assert_allclose(swept[i], curve(e), atol=1e-6)


def test_pgd_step_variants():
    params = make_params()

    def fn(p, xs, x, y, e, step):
        # pgd_step donates its x: hand it a copy
        return pgd_step(logits_fn, p, xs + 0.0, x, y, e, step, targeted=False)

    sets = []
    for s in range(2):
        x, y = make_data(110 + s)
        sets.append((params, jnp.clip(x + 0.03, 0, 1), x, y, 0.1, 0.05))
    check_variants(fn, sets)


def test_gradient_ascent_variants():
    params = make_params()

    def fn(p, x0, classes):
        return gradient_ascent(
            logits_fn, p, x0, classes, step_size=0.5, num_steps=5, l2_decay=1e-3
        )

    sets = [(params, make_data(s)[0], jnp.asarray([0, 1, 2])) for s in (120, 121)]
    plain = check_variants(fn, sets, atol=1e-5)
    imgs, conf = plain[0]
    p0 = jax.nn.softmax(logits_fn(params, sets[0][1]))[jnp.arange(K), jnp.arange(K)]
    assert np.all(np.asarray(conf) > np.asarray(p0))  # it climbed
