"""One pixel attack (Su, Vargas & Sakurai, IEEE TEVC 2019; arXiv 1710.08864).

Black box: only the model's output probabilities are used. A candidate is
``k`` pixels, each ``(x, y, c_1..c_C)`` (column, row, colour 0..255), so
``D = k (2 + C)`` (``(x, y, r, g, b)`` for RGB). Differential evolution (Sec.
III-B, ``fooljax.evolution.de``): DE/rand/1, ``F = 0.5``, no crossover,
population 400, up to 100 generations; initial ``x, y`` uniform over the image
and colours ``N(128, 127)`` clipped to 0..255 (Sec. IV-A). Fitness (maximised
inside fooljax): untargeted ``-p(true class)``, targeted ``p(target)``.
Early stop per image (Sec. IV-A): ``p(true) < 0.05`` untargeted, ``p(target) >=
0.9`` targeted (``early_stop="threshold"``), or as soon as the best candidate
fools the model (``"success"``, what ART and the Keras reimplementation do), or
never (``"none"``).

Optimiser (``OnePixelConfig.optimizer``): ``"de"`` (the paper's, above; the
default) or ``"cmaes"``, evosax's CMA-ES through ``fooljax.evolution.es`` (what
ART's ``PixelAttack(es=1)`` offers): the same candidates (encoding, rounding,
clipping), the same initial population and budget accounting (``P`` queries per
generation, early stop per image), ``cmaes_strategies`` CMA-ES of ``P / S``
candidates per image, each starting at the best of its share of the initial
population with step ``cmaes_sigma`` (box widths), restarted when its step
falls below ``cmaes_restart_sigma``. Memoised queries work for both (a trial
that paints a known image reuses its probabilities).

Two configurations: ``OnePixelConfig`` is the attack (what is searched and when
it stops); ``Execution`` is how it runs (``eval_batch``, ``memoize``,
``compact_every``) and never changes the results, up to the model's own
batch-size numerics.

Pure cores (un-jitted, jittable with ``probs_fn``, ``config``, ``eval_batch``
and ``memoize`` static, and vmappable): ``init`` evaluates each image's initial
population into an ``OnePixelState``; ``run_chunk`` runs generations in one
``lax.while_loop`` until every valid image has stopped or a generation bound is
reached; ``best`` paints each image's best candidate; ``evaluate`` and
``evaluate_memo`` are the generation's model queries. ``attack`` is the host
driver that calls cached ``jax.jit`` wrappers of them.

Batching: every image has its own DE population; images x population are
evaluated together every generation (in model calls of a fixed
``Execution.eval_batch`` images on CPU, one call on GPU/TPU; calls holding only
stopped images are skipped), and the generations of a batch run in one
compiled ``lax.while_loop`` that ends when all images have stopped or the
budget is spent. A stopped image keeps its result and stops counting queries.
Between chunks of ``Execution.compact_every`` generations the host drops
stopped images from the batch (padded to quarter-octave sizes to bound
recompilation), so late generations do not pay forward passes for finished
images.

Memoised queries (``Execution.memoize``, needs ``eval_batch > 0``): once DE's
population collapses most trials paint exactly the pixels of a current member
or of an earlier trial; those reuse the known probabilities, and only the new
images of all attacks are packed into the model calls. Exact: the results are
those of querying everything; ``queries`` counts the evaluations made.

Reproducibility: image ``i``'s key is ``fold_in(key, image_index[i])`` and its
generation ``g`` key ``fold_in(image_key, g)``; nothing else couples images, so
results do not depend on which images share a batch or how it is compacted
(up to the model's own batch-size numerics; see tests).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fooljax.attacks.common import probe_model
from fooljax.checks import (
    check_finite,
    check_images,
    check_int,
    check_labels,
    check_memory,
    check_not_consumed,
)
from fooljax.errors import InputError
from fooljax.evolution import de, es

_log = logging.getLogger("fooljax")

ProbsFn = Callable[[Any, jnp.ndarray], jnp.ndarray]
EARLY_STOP_MODES = ("threshold", "success", "none")
OPTIMIZERS = ("de", "cmaes")


@dataclasses.dataclass(frozen=True)
class OnePixelConfig:
    """Attack settings (hashable: a static argument of the compiled cores)."""

    num_pixels: int = 1  # k >= 1
    population_size: int = 400  # P >= 4
    max_generations: int = 100  # generations after the initial population
    differential_weight: float = 0.5  # F
    crossover_rate: float = 1.0  # 1 = no crossover, as the paper
    untargeted_threshold: float = 0.05  # stop when p(true) < this
    targeted_threshold: float = 0.90  # stop when p(target) >= this
    early_stop: str = "threshold"  # threshold | success | none
    colour_mean: float = 128.0
    colour_std: float = 127.0
    optimizer: str = "de"  # de | cmaes (evosax CMA-ES, fooljax.evolution.es)
    # (defaults: the best of those tried on cifar_lenet, one_pixel_cmaes.flags)
    cmaes_sigma: float = 0.5  # CMA-ES initial step, in box widths
    cmaes_strategies: int = 4  # CMA-ES per image (P / S candidates each)
    cmaes_restart_sigma: float = 0.05  # restart a CMA-ES below this step; 0 = never


@dataclasses.dataclass(frozen=True)
class Execution:
    """How ``attack`` runs; none of it changes the results (up to the model's
    batch-size numerics, bit-identical on XLA:CPU in the tests)."""

    # model calls of fixed size: the images x population candidates of a
    # generation are painted and evaluated ``eval_batch`` at a time (lax.map);
    # 0 = one call on the whole working batch; None = auto (CPU: 100, which
    # keeps the activations in cache: resnet32 1.6x the throughput of one
    # 4,000-image call on XLA:CPU, lenet within 8 %; GPU/TPU: 0, one call)
    eval_batch: int | None = None
    # a trial that paints the same pixels as a current member of its image's
    # population, or as an earlier trial of the same generation, reuses those
    # probabilities instead of querying the model (exact: same image, same
    # output). The remaining trials of all images are packed into the calls of
    # ``eval_batch`` images; ``queries`` counts only the model evaluations made.
    # Needs ``eval_batch > 0`` (with one call per generation nothing is skipped).
    memoize: bool = True
    # generations per compiled chunk, between which the host drops stopped
    # images from the working batch; 0 = one chunk
    compact_every: int = 10


AUTO_EVAL_BATCH_CPU = 100


def resolve_eval_batch(eval_batch: int | None, backend: str | None = None) -> int:
    """``eval_batch`` with ``None`` replaced by the backend's default."""
    if eval_batch is None:
        backend = backend or jax.default_backend()
        return AUTO_EVAL_BATCH_CPU if backend == "cpu" else 0
    if isinstance(eval_batch, bool) or not isinstance(eval_batch, (int, np.integer)):
        raise InputError(f"eval_batch must be an integer >= 0, got {eval_batch!r}")
    if eval_batch < 0:
        raise InputError(f"eval_batch must be >= 0 (0 = whole batch), got {eval_batch}")
    return int(eval_batch)


class OnePixelResult(NamedTuple):
    """Per image ``[B, ...]`` results (NumPy)."""

    adversarial_images: np.ndarray  # [B, H, W, C] float32 in [0, 1]
    success: np.ndarray  # [B] bool: misclassified / classified as the target
    probabilities: np.ndarray  # [B, K] model output on the adversarial image
    predicted: np.ndarray  # [B] int32 argmax of probabilities
    candidates: np.ndarray  # [B, k, 2 + C] best (x, y, colours...)
    generations: np.ndarray  # [B] int32 generations run (excl. the initial one)
    queries: np.ndarray  # [B] int32 model evaluations spent on the image


@dataclasses.dataclass(frozen=True)
class SoftmaxProbs:
    """``probs_fn(params, images) = softmax(logits_fn(params, images))``.

    A frozen dataclass rather than a lambda: two wrappers of the same
    ``logits_fn`` compare and hash equal, so as a static argument of the
    compiled cores they share one compilation."""

    logits_fn: Callable[[Any, jnp.ndarray], jnp.ndarray]

    def __call__(self, params, images):
        return jax.nn.softmax(self.logits_fn(params, images), axis=-1)


def probs_from_logits(logits_fn) -> SoftmaxProbs:
    """``probs_fn(params, images [N, H, W, C]) -> [N, K]``, softmax of a
    ``logits_fn``; equal (and equally hashed) for the same ``logits_fn``."""
    return SoftmaxProbs(logits_fn)


def search_box(image_shape, num_pixels: int) -> de.DEParams:
    h, w, c = image_shape
    lower = np.zeros((num_pixels, 2 + c), np.float32)
    upper = np.tile(np.asarray([w, h] + [255.0] * c, np.float32), (num_pixels, 1))
    # positions live in [0, W) and are floored; W itself is clipped to W - 1
    upper[:, :2] -= 1e-3
    return de.DEParams(
        lower=jnp.asarray(lower.ravel()), upper=jnp.asarray(upper.ravel())
    )


def es_params(image_shape, config: OnePixelConfig) -> es.ESParams:
    """The CMA-ES settings of ``config`` over the candidates' box."""
    box = search_box(image_shape, config.num_pixels)
    return es.ESParams(
        lower=box.lower,
        upper=box.upper,
        sigma_init=config.cmaes_sigma,
        restart_sigma=config.cmaes_restart_sigma,
        num_strategies=config.cmaes_strategies,
    )


def initial_population(key, image_shape, config: OnePixelConfig) -> jax.Array:
    """``[P, D]``: x, y uniform over the image, colours N(128, 127) in 0..255."""
    h, w, c = image_shape
    k, p = config.num_pixels, config.population_size
    key_pos, key_col = jax.random.split(key)
    pos = jax.random.uniform(key_pos, (p, k, 2)) * jnp.asarray([w, h], jnp.float32)
    pos = jnp.minimum(pos, jnp.asarray([w, h], jnp.float32) - 1e-3)
    col = config.colour_mean + config.colour_std * jax.random.normal(key_col, (p, k, c))
    col = jnp.clip(col, 0.0, 255.0)
    return jnp.concatenate([pos, col], axis=-1).reshape(p, -1)


def apply_candidate(image: jax.Array, candidate: jax.Array) -> jax.Array:
    """``image [H, W, C]`` in [0, 1], ``candidate [k (2 + C)]`` -> perturbed image.

    Positions are floored, colours rounded to integers 0..255 then divided by
    255, so adversarial images are exact 8-bit images. When pixels coincide the
    last one wins (done with masks: XLA leaves duplicate scatters unordered).
    """
    h, w, c = image.shape
    pix = candidate.reshape(-1, 2 + c)
    k = pix.shape[0]
    xs = jnp.clip(jnp.floor(pix[:, 0]).astype(jnp.int32), 0, w - 1)
    ys = jnp.clip(jnp.floor(pix[:, 1]).astype(jnp.int32), 0, h - 1)
    colours = jnp.round(jnp.clip(pix[:, 2:], 0.0, 255.0)) / 255.0  # [k, C]
    if k == 1:
        hit = (jnp.arange(h)[:, None] == ys[0]) & (jnp.arange(w)[None, :] == xs[0])
        return jnp.where(hit[..., None], colours[0].astype(image.dtype), image)
    hit = (jnp.arange(h)[None, :, None] == ys[:, None, None]) & (
        jnp.arange(w)[None, None, :] == xs[:, None, None]
    )  # [k, H, W]
    last = jnp.max(jnp.where(hit, jnp.arange(1, k + 1)[:, None, None], 0), axis=0)
    painted = colours.astype(image.dtype)[jnp.maximum(last - 1, 0)]  # [H, W, C]
    return jnp.where((last > 0)[..., None], painted, image)


def _fitness(probs, labels, targets):
    """Maximised. ``probs [B, P, K]`` -> ``[B, P]``; ``targets`` None: untargeted."""
    if targets is not None:
        return jnp.take_along_axis(probs, targets[:, None, None], axis=-1)[..., 0]
    return -jnp.take_along_axis(probs, labels[:, None, None], axis=-1)[..., 0]


def _stopped(best_probs, labels, targets, config: OnePixelConfig):
    """``best_probs [B, K]`` -> ``[B]`` bool: this image's search is over."""
    pred = jnp.argmax(best_probs, axis=-1)
    if config.early_stop == "none":
        return jnp.zeros(pred.shape, bool)
    if targets is not None:
        if config.early_stop == "success":
            return pred == targets
        p_t = jnp.take_along_axis(best_probs, targets[:, None], -1)[:, 0]
        return p_t >= config.targeted_threshold
    if config.early_stop == "success":
        return pred != labels
    p_y = jnp.take_along_axis(best_probs, labels[:, None], -1)[:, 0]
    return p_y < config.untargeted_threshold


class OnePixelState(NamedTuple):
    """The attack of a batch of ``B`` images between generations."""

    # the optimiser's state, batched over images: population [B, P, D], fitness
    # [B, P], generation [B], ... (de.DEState; es.ESState for "cmaes", whose
    # population is the archive of the best candidate seen at each slot)
    de_state: de.DEState | es.ESState
    pop_probs: jax.Array  # [B, P, K] model output for each current member
    active: jax.Array  # [B] bool: still searching
    generations: jax.Array  # [B] int32 generations run (excl. the initial one)
    queries: jax.Array  # [B] int32 model evaluations spent


def evaluate(probs_fn, params, images, candidates, active=None, *, eval_batch=0):
    """``images [B, H, W, C]``, ``candidates [B, P, D]`` -> probs ``[B, P, K]``.

    ``eval_batch > 0``: the ``B * P`` (image, candidate) pairs are painted and
    evaluated in consecutive calls of exactly ``eval_batch`` images (the last
    one padded with copies of the first pair), so each candidate's
    probabilities do not depend on the working-batch size. With ``active [B]``
    given, a call whose images are all inactive (stopped, or padding) is skipped
    (``lax.cond``; its rows are 0): no forward passes for finished attacks.
    ``eval_batch = 0``: one call on all ``B * P`` images (``active`` unused)."""
    b, p = candidates.shape[:2]
    if not eval_batch:
        perturbed = jax.vmap(
            lambda img, cands: jax.vmap(lambda cand: apply_candidate(img, cand))(cands)
        )(images, candidates)
        probs = probs_fn(params, perturbed.reshape(b * p, *images.shape[1:]))
        return probs.reshape(b, p, -1)
    n = b * p
    m = -(-n // eval_batch) * eval_batch
    cands = candidates.reshape(n, -1)
    owner = jnp.repeat(jnp.arange(b, dtype=jnp.int32), p)
    if m > n:
        cands = jnp.concatenate(
            [cands, jnp.broadcast_to(cands[:1], (m - n,) + cands.shape[1:])]
        )
        owner = jnp.concatenate([owner, jnp.zeros((m - n,), jnp.int32)])

    def one_call(chunk):
        idx, cs = chunk
        return probs_fn(params, jax.vmap(apply_candidate)(images[idx], cs))

    chunks = (
        owner.reshape(-1, eval_batch),
        cands.reshape(-1, eval_batch, cands.shape[-1]),
    )
    if active is None:
        active = jnp.ones((b,), bool)
    out = jax.eval_shape(one_call, jax.tree_util.tree_map(lambda a: a[0], chunks))

    def maybe_call(chunk):
        # (lax.cond also runs the call ~2x faster on XLA:CPU than the same code
        # straight in the loop body: 119 vs 270 ms for 6,800 lenet candidates)
        return jax.lax.cond(
            jnp.any(active[chunk[0]]),
            one_call,
            lambda _: jnp.zeros(out.shape, out.dtype),
            chunk,
        )

    probs = jax.lax.map(maybe_call, chunks)
    return probs.reshape(m, -1)[:n].reshape(b, p, -1)


def pixel_keys(candidates: jax.Array, image_shape) -> jax.Array:
    """``[..., k (2 + C)]`` -> ``[..., Q]`` int32 naming exactly what
    ``apply_candidate`` paints: per pixel its index ``y * W + x`` and its 8-bit
    colours packed three to an int32 (``Q = k (1 + ceil(C / 3))``). Equal keys
    => equal perturbed images."""
    h, w, c = image_shape
    pix = candidates.reshape(candidates.shape[:-1] + (-1, 2 + c))
    xs = jnp.clip(jnp.floor(pix[..., 0]).astype(jnp.int32), 0, w - 1)
    ys = jnp.clip(jnp.floor(pix[..., 1]).astype(jnp.int32), 0, h - 1)
    col = jnp.round(jnp.clip(pix[..., 2:], 0.0, 255.0)).astype(jnp.int32)
    pad = -c % 3
    if pad:
        col = jnp.concatenate([col, jnp.zeros(col.shape[:-1] + (pad,), jnp.int32)], -1)
    col = col.reshape(col.shape[:-1] + (-1, 3))
    packed = col[..., 0] | (col[..., 1] << 8) | (col[..., 2] << 16)
    keys = jnp.concatenate([(ys * w + xs)[..., None], packed], -1)
    return keys.reshape(keys.shape[:-2] + (-1,))


def _duplicate_sources(trial_keys: jax.Array, pop_keys: jax.Array):
    """One image: ``trial_keys, pop_keys [P, Q]`` -> ``(dup [P] bool, src [P])``.

    ``src`` indexes ``concat([population, trials])``: the first member, else
    the first earlier trial, with the same key. A trial's source is never a
    duplicate itself (a duplicate's own source would match first)."""
    p = trial_keys.shape[0]
    pool = jnp.concatenate([pop_keys, trial_keys], 0)  # [2P, Q]
    eq = jnp.ones((p, 2 * p), bool)
    for q in range(trial_keys.shape[-1]):  # static, Q = k (1 + ceil(C / 3))
        eq = eq & (trial_keys[:, q, None] == pool[None, :, q])
    earlier = jnp.arange(p)[None, :] < jnp.arange(p)[:, None]  # trial j' < j
    eq = eq & jnp.concatenate([jnp.ones((p, p), bool), earlier], 1)
    return jnp.any(eq, -1), jnp.argmax(eq, -1)


def evaluate_memo(
    probs_fn, params, images, trials, population, pop_probs, active, *, eval_batch
):
    """Like ``evaluate`` but only the *new* painted images are queried.

    ``images [B, H, W, C]``, ``trials, population [B, P, D]``, ``pop_probs
    [B, P, K]``, ``active [B]``, ``eval_batch >= 1``. Trials of active images
    that are not duplicates (``_duplicate_sources``) are packed, in a fixed
    order, into calls of exactly ``eval_batch`` images (calls past the last new
    trial are skipped by ``lax.cond``); duplicates copy their source's
    probabilities. Returns ``(probs [B, P, K], new [B, P] bool)``; rows of
    inactive images are 0 unless they duplicate a member. Results equal
    ``evaluate``'s when the model's output for an image does not depend on its
    row in the call (XLA:CPU: bit-identical, tested)."""
    b, p, d = trials.shape
    shape = images.shape[1:]
    # one image at a time: the [P, 2P] comparison stays small for big populations
    dup, src = jax.lax.map(
        lambda kp: _duplicate_sources(*kp),
        (pixel_keys(trials, shape), pixel_keys(population, shape)),
    )
    new = active[:, None] & ~dup
    n = b * p
    m = -(-n // eval_batch) * eval_batch
    flat_new = new.reshape(n)
    order = jnp.argsort(~flat_new, stable=True).astype(jnp.int32)  # new ones first
    order = jnp.concatenate([order, jnp.zeros((m - n,), jnp.int32)])
    cands = trials.reshape(n, d)

    def one_call(idx):
        return probs_fn(params, jax.vmap(apply_candidate)(images[idx // p], cands[idx]))

    out = jax.eval_shape(one_call, order[:eval_batch])
    num_calls = -(-jnp.sum(flat_new, dtype=jnp.int32) // eval_batch)

    def maybe_call(i):
        # (in lax.cond: ~2x faster on XLA:CPU, see evaluate)
        return jax.lax.cond(
            i < num_calls,
            one_call,
            lambda _: jnp.zeros(out.shape, out.dtype),
            jax.lax.dynamic_slice(order, (i * eval_batch,), (eval_batch,)),
        )

    buf = jax.lax.map(maybe_call, jnp.arange(m // eval_batch)).reshape(m, -1)
    computed = jnp.zeros((n,) + out.shape[1:], out.dtype).at[order[:n]].set(buf[:n])
    computed = computed.reshape(b, p, -1)
    pool = jnp.concatenate([pop_probs, computed], 1)  # [B, 2P, K]
    copied = jnp.take_along_axis(pool, src[..., None], 1)
    return jnp.where(dup[..., None], copied, computed), new


def init(
    probs_fn, params, images, labels, targets, image_keys, *, config, eval_batch=0
) -> OnePixelState:
    """Draws and evaluates every image's initial population.

    Args:
      probs_fn: ``probs_fn(params, [N, H, W, C]) -> [N, K]`` (static under jit).
      images: ``[B, H, W, C]`` float32 in [0, 1]; labels ``[B]`` int32.
      targets: ``[B]`` int32 target classes, or None (untargeted).
      image_keys: ``[B]`` PRNG keys, one per image (``fold_in(key, index)``);
        the population is drawn from ``fold_in(image_key, 0)``.
      config: ``OnePixelConfig`` (static; ``max_generations`` unused).
      eval_batch: images per model call, 0 = one call (static, >= 0).

    Returns:
      ``OnePixelState`` at generation 0, ``queries = P``; images whose best
      initial candidate already meets ``config.early_stop`` are inactive.
    """
    _check_core_args(images, labels, targets, image_keys, config, eval_batch)
    box = search_box(images.shape[1:], config.num_pixels)
    pop = jax.vmap(
        lambda k: initial_population(jax.random.fold_in(k, 0), images.shape[1:], config)
    )(image_keys)
    probs = evaluate(probs_fn, params, images, pop, eval_batch=eval_batch)
    fit = _fitness(probs, labels, targets)
    if config.optimizer == "cmaes":
        esp = es_params(images.shape[1:], config)
        state = jax.vmap(es.init, in_axes=(0, 0, None))(pop, fit, esp)
    else:
        state = jax.vmap(de.init, in_axes=(0, 0, None))(pop, fit, box)
    best_probs = jnp.take_along_axis(probs, jnp.argmax(fit, 1)[:, None, None], 1)[:, 0]
    stopped = _stopped(best_probs, labels, targets, config)
    b = images.shape[0]
    return OnePixelState(
        de_state=state,
        pop_probs=probs,
        active=~stopped,
        generations=jnp.zeros((b,), jnp.int32),
        queries=jnp.full((b,), config.population_size, jnp.int32),
    )


def run_chunk(
    probs_fn,
    params,
    images,
    labels,
    targets,
    image_keys,
    state: OnePixelState,
    valid,
    stop_generation,
    *,
    config,
    eval_batch=0,
    memoize=True,
) -> OnePixelState:
    """Runs generations while any valid image is active and the shared
    generation counter is below ``stop_generation`` (one ``lax.while_loop``).

    Args:
      images, labels, targets, image_keys: as for ``init`` (``[B, ...]``).
      state: ``OnePixelState`` from ``init`` or an earlier ``run_chunk``. All
        images of a batch are at the same generation
        (``state.de_state.generation``, shared; generation ``g`` of an image
        draws from ``fold_in(image_key, g)``, so chunking never changes
        results).
      valid: ``[B]`` bool, False for padding rows (they never keep it running).
      stop_generation: int32 scalar, the generation to stop at.
      config: static ``OnePixelConfig``. eval_batch: static images per model
        call (0 = one call). memoize: static; reuse the probabilities of trials
        that paint a known image (only with ``eval_batch > 0``).

    Returns:
      The next ``OnePixelState``; stopped images keep their state and stop
      counting generations and queries.
    """
    _check_core_args(images, labels, targets, image_keys, config, eval_batch)
    check_not_consumed(state, "OnePixelState")
    box = search_box(images.shape[1:], config.num_pixels).replace(
        differential_weight=config.differential_weight,
        crossover_rate=config.crossover_rate,
    )
    use_memo = bool(memoize and eval_batch)
    cmaes = config.optimizer == "cmaes"
    esp = es_params(images.shape[1:], config) if cmaes else None

    def cond(c: OnePixelState):
        gen = c.de_state.generation[0]
        return jnp.any(c.active & valid) & (gen < stop_generation)

    def body(c: OnePixelState):
        gen = c.de_state.generation[0] + 1  # 1-based; 0 keyed the initial population
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(image_keys, gen)
        if cmaes:
            trials, asked = jax.vmap(es.ask, in_axes=(0, 0, None))(
                keys, c.de_state, esp
            )
        else:
            trials = jax.vmap(de.ask, in_axes=(0, 0, None))(keys, c.de_state, box)
        if use_memo:
            probs, new = evaluate_memo(
                probs_fn,
                params,
                images,
                trials,
                c.de_state.population,
                c.pop_probs,
                c.active,
                eval_batch=eval_batch,
            )
            spent = jnp.sum(new, axis=1, dtype=jnp.int32)
        else:
            probs = evaluate(
                probs_fn, params, images, trials, c.active, eval_batch=eval_batch
            )
            spent = c.active.astype(jnp.int32) * config.population_size
        fit = _fitness(probs, labels, targets)
        if cmaes:
            new_state = jax.vmap(es.tell, in_axes=(0, 0, 0, None))(
                trials, fit, asked, esp
            )
        else:
            new_state = jax.vmap(de.tell, in_axes=(0, 0, 0, None))(
                trials, fit, c.de_state, box
            )
        better = fit > c.de_state.fitness
        new_probs = jnp.where(better[..., None], probs, c.pop_probs)
        act = c.active
        # stopped images keep their state (but the shared counter moves on)
        de_state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(
                act.reshape(act.shape + (1,) * (new.ndim - 1)), new, old
            ),
            new_state,
            c.de_state,
        )
        de_state = de_state.replace(generation=new_state.generation)
        pop_probs = jnp.where(act[:, None, None], new_probs, c.pop_probs)
        best_i = jnp.argmax(de_state.fitness, axis=1)
        best_probs = jnp.take_along_axis(pop_probs, best_i[:, None, None], 1)[:, 0]
        stopped = _stopped(best_probs, labels, targets, config)
        return OnePixelState(
            de_state=de_state,
            pop_probs=pop_probs,
            active=act & ~stopped,
            generations=c.generations + act.astype(jnp.int32),
            queries=c.queries + spent,
        )

    return jax.lax.while_loop(cond, body, state)


def best(images, state: OnePixelState):
    """Each image's best candidate painted in.

    ``images [B, H, W, C]`` -> ``(adversarial [B, H, W, C], candidate [B, D],
    probs [B, K])``, the model output on the adversarial image."""
    best_i = jnp.argmax(state.de_state.fitness, axis=1)
    best_cand = jnp.take_along_axis(
        state.de_state.population, best_i[:, None, None], 1
    )[:, 0]
    best_probs = jnp.take_along_axis(state.pop_probs, best_i[:, None, None], 1)[:, 0]
    adv = jax.vmap(apply_candidate)(images, best_cand)
    return adv, best_cand, best_probs


# Compiled once per module: ``attack`` calls these, so repeated attacks with
# equal static arguments and input shapes reuse the executables.
_init_jit = jax.jit(init, static_argnames=("probs_fn", "config", "eval_batch"))
_run_chunk_donating = jax.jit(
    run_chunk,
    static_argnames=("probs_fn", "config", "eval_batch", "memoize"),
    donate_argnums=(6,),
)


def _run_chunk_jit(*args, **kwargs):
    # the host sees a consumed (donated) state before XLA does
    check_not_consumed(args[6], "OnePixelState")
    return _run_chunk_donating(*args, **kwargs)


_best_jit = jax.jit(best)
_image_keys_jit = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(None, 0)))


def validate_execution(execution: Execution) -> None:
    """Raises ``InputError`` with one clear line for unusable settings."""
    resolve_eval_batch(execution.eval_batch, "cpu")
    check_int("compact_every", execution.compact_every, 0)


def validate_config(config: OnePixelConfig) -> None:
    """Raises ``InputError`` with one clear line for a meaningless attack
    (static settings: checked at trace time, free)."""
    if not isinstance(config, OnePixelConfig):
        raise InputError(
            f"config must be a OnePixelConfig, got {type(config).__name__}"
        )
    if check_int("num_pixels", config.num_pixels) < 1:
        raise InputError(
            f"pixel count (num_pixels) must be at least 1, got {config.num_pixels}"
        )
    if config.optimizer not in OPTIMIZERS:
        raise InputError(
            f"optimizer must be one of {', '.join(OPTIMIZERS)}, "
            f"got '{config.optimizer}'"
        )
    if check_int("population_size", config.population_size, 1) < 4:
        raise InputError(
            f"population must be at least 4 for DE/rand/1, got {config.population_size}"
        )
    if config.optimizer == "cmaes":
        check_int("cmaes_strategies", config.cmaes_strategies, 1)
        es.check_params(
            es.ESParams(
                lower=np.zeros(1, np.float32),
                upper=np.ones(1, np.float32),
                sigma_init=config.cmaes_sigma,
                restart_sigma=config.cmaes_restart_sigma,
                num_strategies=config.cmaes_strategies,
            ),
            config.population_size,
        )
    check_int("max_generations", config.max_generations, 0)
    check_finite(
        "differential_weight (F)", config.differential_weight, 0.0, 2.0, lo_open=True
    )
    check_finite("crossover_rate", config.crossover_rate, 0.0, 1.0)
    check_finite("untargeted_threshold", config.untargeted_threshold, 0.0, 1.0)
    check_finite("targeted_threshold", config.targeted_threshold, 0.0, 1.0)
    check_finite("colour_mean", config.colour_mean, 0.0, 255.0)
    check_finite("colour_std", config.colour_std, 0.0)
    if config.early_stop not in EARLY_STOP_MODES:
        raise InputError(
            f"early_stop must be one of {', '.join(EARLY_STOP_MODES)}, "
            f"got '{config.early_stop}'"
        )


def _check_core_args(images, labels, targets, image_keys, config, eval_batch):
    """Trace-time (static) checks of the pure cores ``init``/``run_chunk``."""
    validate_config(config)
    resolve_eval_batch(eval_batch)
    shape = tuple(np.shape(images))
    if len(shape) != 4:
        raise InputError(f"images must be [B, H, W, C], got shape {list(shape)}")
    b, h, w, _ = shape
    if config.num_pixels > h * w:
        raise InputError(
            f"pixel count (num_pixels) must be between 1 and the image's {h * w} "
            "pixels, "
            f"got {config.num_pixels}"
        )
    check_labels(labels, None, "label", batch=b)
    if targets is not None:
        check_labels(targets, None, "target", batch=b)
    if tuple(np.shape(image_keys))[:1] != (b,):
        raise InputError(
            f"image_keys must be [{b}] (one key per image), got shape "
            f"{list(np.shape(image_keys))}"
        )


def estimate_bytes(
    num_images: int,
    image_shape,
    num_classes: int,
    config: OnePixelConfig,
    eval_batch: int,
    memoize: bool,
) -> int:
    """A lower bound on the memory of ``attack``: the population, trials,
    fitness and probabilities of every image (a few live copies in the loop),
    the perturbed images of one model call (``eval_batch`` images, or all
    images x population when 0), and memoisation's ``[P, 2P]`` duplicate
    comparison. Activations come on top, so only sizes that certainly cannot
    fit are refused."""
    h, w, c = (int(v) for v in image_shape)
    b, p = int(num_images), int(config.population_size)
    d = config.num_pixels * (2 + c)
    per_member = 4 * (d + num_classes + 1)
    total = 4 * b * p * per_member
    calls = eval_batch if eval_batch else b * p
    total += calls * h * w * c * 4
    if memoize and eval_batch:
        total += 3 * p * 2 * p
    return total


def validate_inputs(
    images,
    labels,
    targets,
    config: OnePixelConfig,
    input_shape=None,
    *,
    execution: Execution | None = None,
    num_classes: int | None = None,
):
    """Raises ``InputError`` with one clear line for unusable inputs (and
    ``execution`` settings, when given): images ``[B, H, W, C]`` finite in [0,
    1] (of ``input_shape`` when given), labels/targets ``[B]`` integers (in
    ``0..num_classes - 1`` when given), the config's ranges."""
    check_images(images, input_shape)
    validate_config(config)
    b, h, w, _ = np.shape(images)
    if config.num_pixels > h * w:
        raise InputError(
            f"pixel count must be between 1 and the image's {h * w} pixels, "
            f"got {config.num_pixels}"
        )
    if execution is not None:
        validate_execution(execution)
    check_labels(labels, num_classes, "label", batch=b)
    if targets is not None:
        check_labels(targets, num_classes, "target", batch=b)
        labels, targets = np.asarray(labels), np.asarray(targets)
        same = np.nonzero(targets == labels)[0]
        if len(same):
            raise InputError(
                f"target class equals the true label for image {int(same[0])} "
                f"(class {int(labels[same[0]])}); a targeted attack needs another class"
            )


def _bucket(n: int, cap: int) -> int:
    """Working-batch size for ``n`` running attacks: ``n`` rounded up to a
    quarter-octave size (5, 6, 7 or 8 times a power of two), at most ``cap``.
    Pads at most 25 % (powers of two wasted up to 50 %) for at most four
    compiled shapes per octave."""
    n = max(n, 1)
    if n > 8:
        step = 1 << ((n - 1).bit_length() - 3)
        n = -(-n // step) * step
    return min(cap, n)


def attack(
    key: jax.Array,
    probs_fn: ProbsFn,
    params,
    images,
    labels,
    *,
    targets=None,
    config: OnePixelConfig = OnePixelConfig(),
    execution: Execution = Execution(),
    image_indices=None,
    input_shape=None,
    num_classes: int | None = None,
) -> OnePixelResult:
    """Attacks a batch of images at once (host driver over ``init``,
    ``run_chunk`` and ``best``).

    Args:
      key: PRNG key; image ``i`` uses ``fold_in(key, image_indices[i])``.
      probs_fn: ``probs_fn(params, images [N, H, W, C] in [0, 1]) -> [N, K]``
        probabilities (black box; see ``probs_from_logits``). Hashable: a
        static argument of the compiled cores.
      images: ``[B, H, W, C]`` float32 in [0, 1].
      labels: ``[B]`` true classes. targets: ``[B]`` target classes (targeted
        attack) or None (untargeted).
      config: the attack (``OnePixelConfig``).
      execution: how it runs (``Execution``); does not change the results.
      image_indices: ``[B]`` ints naming the images (default ``0..B-1``); pass
        dataset indices so an image's result does not depend on its batch.
      input_shape, num_classes: the model's, to refuse mismatched inputs.

    Returns:
      ``OnePixelResult`` of NumPy arrays.
    """
    validate_inputs(images, labels, targets, config, input_shape, execution=execution)
    b = np.shape(images)[0]
    idx = np.arange(b) if image_indices is None else np.asarray(image_indices)
    if idx.shape != (b,) or not np.issubdtype(idx.dtype, np.integer):
        raise InputError(
            f"image_indices must be [{b}] integers, got shape {list(idx.shape)} "
            f"dtype {idx.dtype}"
        )
    eval_batch = resolve_eval_batch(execution.eval_batch)
    memoize = bool(execution.memoize and eval_batch)
    # the model once on the caller's first image: finite probabilities, and
    # the class count the labels are checked against
    probed = probe_model(probs_fn, params, images, name="probs_fn", probabilities=True)
    if num_classes is not None and probed is not None and probed != num_classes:
        raise InputError(
            f"num_classes is {num_classes} but probs_fn returns {probed} classes"
        )
    num_classes = num_classes if num_classes is not None else probed
    validate_inputs(images, labels, targets, config, num_classes=num_classes)
    check_memory(
        estimate_bytes(
            b, np.shape(images)[1:], num_classes or 1000, config, eval_batch, memoize
        ),
        f"a one-pixel attack of {b} images x population {config.population_size}",
    )
    images = jnp.asarray(images, jnp.float32)
    labels_np = np.asarray(labels, np.int32)
    targeted = targets is not None
    targets_np = np.asarray(targets, np.int32) if targeted else None
    image_keys = _image_keys_jit(key, jnp.asarray(idx))
    labels_j = jnp.asarray(labels_np)
    targets_j = jnp.asarray(targets_np) if targeted else None
    # the budget is read by this host loop only: runs that differ in it share
    # the compiled functions
    kernel_cfg = dataclasses.replace(config, max_generations=0)

    state = _init_jit(
        probs_fn,
        params,
        images,
        labels_j,
        targets_j,
        image_keys,
        config=kernel_cfg,
        eval_batch=eval_batch,
    )
    # Host loop over chunks of generations; between chunks, stopped images leave
    # the working batch. ``rows`` maps working rows to the caller's images.
    final = jax.device_get(state)
    rows = np.arange(b)
    chunk = execution.compact_every or config.max_generations
    work_imgs, work_lab, work_tgt, work_keys, work = (
        images,
        labels_j,
        targets_j,
        image_keys,
        state,
    )
    gen = 0
    t_start = time.perf_counter()
    while gen < config.max_generations:
        active = np.asarray(work.active)[: len(rows)]
        if gen:
            _log.info(
                "one-pixel: generation %d/%d, %d of %d attacks still running, %.1f s",
                gen,
                config.max_generations,
                int(active.sum()),
                b,
                time.perf_counter() - t_start,
            )
        if not active.any():
            break
        if execution.compact_every and active.sum() < len(rows):
            keep = rows[active]
            n = _bucket(len(keep), b)
            sel = np.concatenate([np.nonzero(active)[0], np.zeros(n - len(keep), int)])
            # write back the leaving rows first
            final = _scatter_rows(final, work, rows, ~active)
            take = lambda x: x[jnp.asarray(sel)]
            work = jax.tree_util.tree_map(take, work)
            pad_mask = np.arange(n) < len(keep)
            work = work._replace(active=work.active & jnp.asarray(pad_mask))
            work_imgs, work_lab, work_tgt, work_keys = jax.tree_util.tree_map(
                take, (work_imgs, work_lab, work_tgt, work_keys)
            )
            rows = keep
        gen = min(gen + chunk, config.max_generations)
        valid = jnp.arange(work.active.shape[0]) < len(rows)
        work = _run_chunk_jit(
            probs_fn,
            params,
            work_imgs,
            work_lab,
            work_tgt,
            work_keys,
            work,
            valid,
            jnp.int32(gen),
            config=kernel_cfg,
            eval_batch=eval_batch,
            memoize=memoize,
        )
    final = _scatter_rows(final, work, rows, np.ones(len(rows), bool))
    final = jax.tree_util.tree_map(jnp.asarray, final)
    adv, cand, probs = _best_jit(images, final)
    probs = np.asarray(probs)
    pred = probs.argmax(-1).astype(np.int32)
    success = pred == targets_np if targeted else pred != labels_np
    c = images.shape[-1]
    return OnePixelResult(
        adversarial_images=np.asarray(adv),
        success=success,
        probabilities=probs,
        predicted=pred,
        candidates=np.asarray(cand).reshape(b, config.num_pixels, 2 + c),
        generations=np.asarray(final.generations),
        queries=np.asarray(final.queries),
    )


def _scatter_rows(
    final: OnePixelState, work: OnePixelState, rows: np.ndarray, which: np.ndarray
):
    """Copies working rows ``which`` (of the first ``len(rows)``) into ``final``."""
    if not which.any():
        return final
    src = np.nonzero(which)[0]
    dst = rows[which]
    work_np = jax.device_get(work)

    def put(f, w):
        f = np.array(f, copy=True)
        if f.ndim == 0:
            return f
        f[dst] = np.asarray(w)[src]
        return f

    return jax.tree_util.tree_map(put, final, work_np)
