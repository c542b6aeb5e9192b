"""Few-pixel baselines of the one-pixel paper's comparison (Su et al. 2019,
Sec. "Comparison with other methods"): the local-search attack and FGSM
restricted to ``k`` pixels.

**Local search (LSA)**, Narodytska & Kasiviswanathan, "Simple Black-Box
Adversarial Perturbations for Deep Networks" (2017), Algorithm LocSearchAdv.
Black box (probabilities only). Images are centred to ``u = x - 0.5`` in
``[LB, UB] = [-0.5, 0.5]``. Each round:

1. score every candidate pixel ``(a, b)`` by the true-class probability of the
   probe image ``PERT(u, p, a, b)`` (all channels of that pixel set to
   ``p * sign(u)``; with ``p > 0.5`` the probe leaves the box, as in the paper:
   it measures sensitivity, it is never returned);
2. take the ``t`` candidates with the lowest score (the largest drop of the
   true class) and apply ``CYCLIC``: ``r * u`` wrapped back into
   ``[LB, UB]`` by adding/subtracting ``UB - LB``, on all their channels;
3. stop when the image is misclassified (top-1), else the next candidates are
   the ``(2d + 1)^2`` squares around the ``t`` pixels.

The first candidates are ``int(0.1 * H * W)`` random pixels. Defaults are
foolbox's ``LocalSearchAttack`` (``r = 1.5, p = 10, d = 5, t = 5, R = 150``),
with the paper's ordering (foolbox sorts the scores descending, picking the
pixels that *raise* the true class).

Fixed shapes: the candidates of a round are the indices of a ``[H * W]``
neighbourhood mask (``jnp.nonzero(size=C)``, duplicates merged), ``C =
max(int(0.1 H W), min(H W, t (2d + 1)^2))``, padding masked to ``+inf``; one
round is one ``probs_fn`` call on the ``[C, H, W, ch]`` probes (``vmap`` over
candidate pixels); rounds run in ``lax.while_loop``. ``local_search`` is
written for one image and ``vmap``-ed over the batch (the batch then runs
until its last image stops).

**Sparse FGSM**: one FGSM step (Goodfellow et al. 2015) applied only at the
``k`` pixels whose input gradient is largest (``|g|`` summed over channels;
``selection="gain"``: the first-order loss increase of the clipped step,
which skips pixels already at the box edge), with step ``epsilon`` (1.0: the
chosen channels go to 0 or 1, the strongest change of ``k`` pixels, as the
one-pixel attack may paint any colour).

Example::

    from fooljax.attacks import local_search as ls
    from fooljax.attacks.one_pixel import probs_from_logits
    res = ls.local_search_batch(key, probs_from_logits(clf.logits_fn),
                                clf.params, images, labels)
    x_adv = ls.sparse_fgsm(clf.logits_fn, clf.params, images, labels,
                           num_pixels=3)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.attacks.common import check_attack_inputs, input_gradient, probe_model
from fooljax.checks import (
    check_finite,
    check_images,
    check_input_shape,
    check_int,
    check_labels,
)
from fooljax.errors import InputError

LB, UB = -0.5, 0.5
SELECTIONS = ("gradient", "gain")


@dataclasses.dataclass(frozen=True)
class LocalSearchConfig:
    """LocSearchAdv settings (hashable: static in the compiled search)."""

    perturbation: float = 1.5  # r: CYCLIC multiplier, in (0, 2]
    probe: float = 10.0  # p: probe value p * sign(u), > 0
    half_side: int = 5  # d: neighbourhood square half side
    pixels_per_round: int = 5  # t
    max_rounds: int = 150  # R
    seed_fraction: float = 0.1  # first candidates: this fraction of pixels

    def validate(self, image_shape=None) -> None:
        check_finite("perturbation", self.perturbation, 0.0, 2.0, lo_open=True)
        check_finite("probe", self.probe, 0.0, None, lo_open=True)
        check_int("half_side", self.half_side, 0)
        check_int("pixels_per_round", self.pixels_per_round, 1)
        check_int("max_rounds", self.max_rounds, 1)
        check_finite("seed_fraction", self.seed_fraction, 0.0, 1.0, lo_open=True)
        if image_shape is not None:
            h, w = image_shape[0], image_shape[1]
            if self.pixels_per_round > min(
                self.num_seeds(h, w), (self.half_side + 1) ** 2
            ):
                raise InputError(
                    f"pixels_per_round {self.pixels_per_round} exceeds the "
                    f"smallest candidate set ({self.num_seeds(h, w)} seeds, "
                    f"{(self.half_side + 1) ** 2} neighbours at a corner)"
                )

    def num_seeds(self, h: int, w: int) -> int:
        return max(1, int(self.seed_fraction * h * w))

    def num_candidates(self, h: int, w: int) -> int:
        square = (2 * self.half_side + 1) ** 2
        return max(self.num_seeds(h, w), min(h * w, self.pixels_per_round * square))


class LocalSearchResult(NamedTuple):
    """One image's search (leading ``[B]`` after ``vmap``)."""

    adversarial_image: jax.Array  # [H, W, C] in [0, 1], the last image
    success: jax.Array  # bool: the last image is misclassified
    rounds: jax.Array  # int32 rounds run
    queries: jax.Array  # int32 model evaluations of real candidates + checks
    probabilities: jax.Array  # [K] of the last image


def _cyclic(v, r):
    v = r * v
    span = UB - LB
    return jnp.where(v < LB, v + span, jnp.where(v > UB, v - span, v))


def local_search(key, probs_fn, params, image, label, config: LocalSearchConfig):
    """LocSearchAdv on one image; pure and jittable.

    Args:
      key: PRNG key (the random seed pixels).
      probs_fn: ``probs_fn(params, images [N, H, W, C]) -> [N, K]``.
      image: ``[H, W, C]`` float32 in [0, 1]; label: int true class.
      config: ``LocalSearchConfig`` (static).

    Returns:
      ``LocalSearchResult``; ``adversarial_image`` stays in ``[0, 1]``.
    """
    h, w, ch = image.shape
    n = h * w
    c = config.num_candidates(h, w)
    t = config.pixels_per_round
    d = config.half_side
    rows = jnp.arange(n) // w
    cols = jnp.arange(n) % w

    seeds = jax.random.permutation(key, n)[: config.num_seeds(h, w)]
    cand0 = jnp.zeros(c, jnp.int32).at[: seeds.shape[0]].set(seeds.astype(jnp.int32))
    valid0 = jnp.arange(c) < seeds.shape[0]

    def scores(u, cand, valid):
        flat = u.reshape(n, ch)

        def probe(pixel):
            painted = flat.at[pixel].set(config.probe * jnp.sign(flat[pixel]))
            return painted.reshape(h, w, ch) + 0.5

        probs = probs_fn(params, jax.vmap(probe)(cand))  # [C, K]
        return jnp.where(valid, probs[:, label], jnp.inf)

    def body(state):
        i, u, cand, valid, _, queries, _ = state
        queries = queries + valid.sum(dtype=jnp.int32) + 1  # probes + the check
        s = scores(u, cand, valid)
        _, top = jax.lax.top_k(-s, t)
        chosen = cand[top]  # [t]
        chosen_ok = valid[top]
        hit = jnp.any((jnp.arange(n)[:, None] == chosen[None]) & chosen_ok[None], 1)
        flat = u.reshape(n, ch)
        u = jnp.where(hit[:, None], _cyclic(flat, config.perturbation), flat)
        u = u.reshape(h, w, ch)
        probs = probs_fn(params, (u + 0.5)[None])[0]
        done = jnp.argmax(probs) != label
        near = (jnp.abs(rows[:, None] - rows[chosen][None]) <= d) & (
            jnp.abs(cols[:, None] - cols[chosen][None]) <= d
        )
        mask = jnp.any(near & chosen_ok[None], 1)
        (cand,) = jnp.nonzero(mask, size=c, fill_value=0)
        valid = jnp.arange(c) < mask.sum()
        return i + 1, u, cand.astype(jnp.int32), valid, done, queries, probs

    def cond(state):
        i, _, _, _, done, _, _ = state
        return (i < config.max_rounds) & ~done

    u0 = image.astype(jnp.float32) - 0.5
    probs0 = probs_fn(params, image[None].astype(jnp.float32))[0]
    state = (
        jnp.int32(0),
        u0,
        cand0,
        valid0,
        jnp.argmax(probs0) != label,
        jnp.int32(1),
        probs0,
    )
    i, u, _, _, done, queries, probs = jax.lax.while_loop(cond, body, state)
    return LocalSearchResult(
        adversarial_image=jnp.clip(u + 0.5, 0.0, 1.0),
        success=done,
        rounds=i,
        queries=queries,
        probabilities=probs,
    )


@functools.partial(jax.jit, static_argnames=("probs_fn", "config"))
def _local_search_batch(keys, probs_fn, params, images, labels, config):
    one = functools.partial(
        local_search, probs_fn=probs_fn, params=params, config=config
    )
    return jax.vmap(lambda k, x, y: one(k, image=x, label=y))(keys, images, labels)


def local_search_batch(
    key,
    probs_fn,
    params,
    images,
    labels,
    *,
    config: LocalSearchConfig = LocalSearchConfig(),
    image_indices=None,
    input_shape=None,
) -> LocalSearchResult:
    """``local_search`` on ``images [B, H, W, C]`` at once (one compile per
    shape); image ``i`` uses ``fold_in(key, image_indices[i])`` (default
    ``i``), so results do not depend on batching."""
    images = (
        np.asarray(images, np.float32) if not isinstance(images, jax.Array) else images
    )
    if input_shape is not None:
        check_input_shape(np.shape(images), input_shape)
    config.validate(np.shape(images)[1:])
    check_images(images)
    check_labels(labels, None, "label", batch=np.shape(images)[0])
    k = probe_model(probs_fn, params, images, name="probs_fn", probabilities=True)
    if k is not None:
        check_labels(labels, k, "label")
    b = np.shape(images)[0]
    idx = np.arange(b) if image_indices is None else np.asarray(image_indices)
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.asarray(idx, jnp.uint32))
    return _local_search_batch(
        keys,
        probs_fn,
        params,
        jnp.asarray(images, jnp.float32),
        jnp.asarray(labels, jnp.int32),
        config,
    )


def sparse_fgsm_step(grad, images, *, num_pixels: int, epsilon, selection="gradient"):
    """FGSM's sign step kept at the ``num_pixels`` pixels of each image with
    the largest score; pure.

    ``grad, images: [B, H, W, C]`` (``grad`` of the loss to raise);
    ``num_pixels`` static; ``epsilon`` may be traced. Returns ``[B, H, W, C]``
    in ``[0, 1]``, differing from ``images`` in at most ``num_pixels`` pixels.
    """
    b, h, w, ch = images.shape
    step = jnp.clip(images + epsilon * jnp.sign(grad), 0.0, 1.0)
    if selection == "gradient":
        score = jnp.abs(grad).sum(-1)
    elif selection == "gain":
        score = (grad * (step - images)).sum(-1)
    else:
        raise InputError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    _, top = jax.lax.top_k(score.reshape(b, h * w), num_pixels)  # [B, k]
    keep = jnp.zeros((b, h * w), bool).at[jnp.arange(b)[:, None], top].set(True)
    return jnp.where(keep.reshape(b, h, w, 1), step, images)


@functools.partial(jax.jit, static_argnames=("logits_fn", "num_pixels", "selection"))
def _sparse_fgsm(logits_fn, params, images, labels, epsilon, *, num_pixels, selection):
    grad = input_gradient(logits_fn, params, images, labels)
    return sparse_fgsm_step(
        grad, images, num_pixels=num_pixels, epsilon=epsilon, selection=selection
    )


def sparse_fgsm(
    logits_fn,
    params,
    images,
    labels,
    *,
    num_pixels: int,
    epsilon: float = 1.0,
    selection: str = "gradient",
    input_shape=None,
):
    """Untargeted FGSM changing only ``num_pixels`` pixels per image.

    Args:
      logits_fn: ``logits_fn(params, images) -> [B, K]`` (differentiable).
      images: ``[B, H, W, C]`` float32 in [0, 1]; labels ``[B]`` true classes.
      num_pixels: ``k``, pixels changed (all their channels).
      epsilon: step at those pixels (1.0: to the box corner).
      selection: ``"gradient"`` (largest ``sum_c |g|``) or ``"gain"``.

    Returns:
      ``[B, H, W, C]`` in ``[0, 1]``.
    """
    if selection not in SELECTIONS:
        raise InputError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    epsilon = check_finite("epsilon", epsilon, 0.0, 1.0)
    if input_shape is not None:
        check_input_shape(np.shape(images), input_shape)
    shape = np.shape(images)
    if len(shape) != 4:
        raise InputError(f"images must be [B, H, W, C], got shape {list(shape)}")
    check_int("num_pixels", num_pixels, 1, shape[1] * shape[2])
    check_attack_inputs(logits_fn, params, images, labels, "label")
    return _sparse_fgsm(
        logits_fn,
        params,
        jnp.asarray(images, jnp.float32),
        jnp.asarray(labels, jnp.int32),
        jnp.asarray(epsilon, jnp.float32),
        num_pixels=int(num_pixels),
        selection=selection,
    )
