"""Train a registered classifier on MNIST with optax; resumable from its workdir.

One jitted, donated ``train_epoch`` runs every step of an epoch in a
``lax.scan`` (batches gathered on the device from a per-epoch permutation made
with ``fold_in(key, epoch)``), so the host loop only evaluates, logs and
checkpoints. Optional adversarial training (Goodfellow et al. 2015, Sec. 6):
``J~ = alpha * J(x) + (1 - alpha) * J(x + eps * sign(grad_x J))``.

Models with dropout (a module whose ``has_dropout`` is true, such as
``maxout_dropout``) are trained in their training mode with a fresh dropout key
per step, ``fold_in(fold_in(dropout_key, epoch), step)``; evaluation, the FGSM
of adversarial training and every ``logits_fn`` stay deterministic. For all
other models the steps are exactly those of before (no key is passed).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fooljax import data, models
from fooljax.attacks.fgsm import fgsm
from fooljax.errors import FooljaxError
from fooljax.io import integrity
from fooljax.io.checkpoint import Checkpointer
from fooljax.io.events import EventWriter
from fooljax.io.workdir import (
    append_jsonl,
    prepare_workdir,
    rewrite_jsonl,
    write_summary,
)
from fooljax.train.evaluate import evaluate_classifier

log = logging.getLogger("fooljax")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: str = "lenet"
    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 1e-3  # peak, cosine-decayed to 0 over all steps
    optimizer: str = "adam"  # adam | sgd (momentum 0.9)
    weight_decay: float = 0.0  # L2 penalty lambda * sum(w^2) on kernels
    adv_alpha: float = 1.0  # 1.0 = ordinary training
    adv_epsilon: float = 0.25
    seed: int = 0
    dataset: str = "mnist"
    data_dir: str | None = None
    data_source: str = "idx"
    init_weights: str = "init"

    def validate(self):
        if self.epochs < 1:
            raise FooljaxError("--epochs must be >= 1")
        if self.batch_size < 1:
            raise FooljaxError("--batch_size must be >= 1")
        if not self.learning_rate > 0 or not math.isfinite(self.learning_rate):
            raise FooljaxError(
                f"--learning_rate must be a finite number > 0, got {self.learning_rate}"
            )
        if not self.weight_decay >= 0 or not math.isfinite(self.weight_decay):
            raise FooljaxError(
                f"--weight_decay must be a finite number >= 0, got {self.weight_decay}"
            )
        if self.optimizer not in ("adam", "sgd"):
            raise FooljaxError(f"unknown optimizer '{self.optimizer}' (adam or sgd)")
        if not 0.0 <= self.adv_alpha <= 1.0:
            raise FooljaxError("--adv_alpha must be in [0, 1]")
        if not 0.0 <= self.adv_epsilon <= 1.0:
            raise FooljaxError("--adv_epsilon must be in [0, 1]")
        models.get_spec(self.model)


# fold_in(key, epoch) draws the epoch permutations; dropout keys come from
# fold_in(key, _DROPOUT_STREAM), a stream no epoch index reaches.
_DROPOUT_STREAM = 0x7FFFFFFF


def dropout_logits_fn(model: str):
    """``fn(params, images, key) -> logits`` of registered ``model`` in training
    mode (dropout on, masks drawn from ``key``), or ``None`` when the model has
    no dropout. Only for models that take [0, 1] images as they are (the
    ``identity`` preprocessing)."""
    spec = models.get_spec(model)
    module = spec.build()
    if not getattr(module, "has_dropout", False):
        return None
    if spec.default_preprocess != "identity":
        raise FooljaxError(f"model '{model}': dropout training needs its own inputs")

    def fn(params, images, key):
        return module.apply(params, images, train=True, rngs={"dropout": key})

    return fn


class TrainState(NamedTuple):
    params: dict
    opt_state: optax.OptState


def make_loss_fn(
    logits_fn,
    *,
    weight_decay=0.0,
    adv_alpha=1.0,
    adv_epsilon=0.25,
    train_logits_fn=None,
):
    """``loss(params, images [B,H,W,C] in [0,1], labels [B], key=None) ->
    (loss, accuracy)``. With ``train_logits_fn(params, images, key)`` (a model
    with dropout, ``dropout_logits_fn``) and a ``key``, the cross-entropy terms
    use the training mode; otherwise ``key`` is ignored."""

    def ce(params, x, y, key=None):
        if key is None or train_logits_fn is None:
            logits = logits_fn(params, x)
        else:
            logits = train_logits_fn(params, x, key)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, logits

    def loss_fn(params, x, y, key=None):
        key_clean = key_adv = None
        if key is not None and train_logits_fn is not None:
            key_clean, key_adv = jax.random.split(key)
        loss, logits = ce(params, x, y, key_clean)
        if adv_alpha < 1.0:
            # The attacks package's FGSM, on the per-example input gradient. Its
            # sign is that of the gradient of the mean batch loss (the mean only
            # scales it by 1/B), so the adversarial images are the same except
            # where a gradient underflows to 0 in one form and not the other.
            # No gradient flows through the attack (stop_gradient on its
            # inputs spares JAX the second-order terms; on its output as the
            # paper's J(x + eps sign(grad)) treats the perturbation as fixed).
            x_adv = fgsm(
                logits_fn,
                jax.lax.stop_gradient(params),
                jax.lax.stop_gradient(x),
                y,
                epsilon=adv_epsilon,
            )
            x_adv = jax.lax.stop_gradient(x_adv)
            loss = adv_alpha * loss + (1 - adv_alpha) * ce(params, x_adv, y, key_adv)[0]
        if weight_decay:
            kernels = [
                leaf
                for path, leaf in jax.tree_util.tree_leaves_with_path(params)
                if "kernel" in jax.tree_util.keystr(path)
            ]
            loss = loss + weight_decay * sum(jnp.sum(k**2) for k in kernels)
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return loss, acc

    return loss_fn


def make_optimizer(config: TrainConfig, steps_total: int):
    schedule = optax.cosine_decay_schedule(config.learning_rate, steps_total)
    if config.optimizer == "adam":
        return optax.adam(schedule)
    return optax.sgd(schedule, momentum=0.9)


def make_train_step(loss_fn, optimizer):
    """Returns jitted ``train_step(state, images_u8, labels, idx, key=None) ->
    (state, metrics)``.

    ``images_u8``/``labels`` stay on the device; ``idx: [B] int32`` picks the batch;
    ``key``: the step's dropout key (``None``: ``loss_fn`` gets no key).
    The host drives the steps: on XLA:CPU a backward pass inside ``lax.scan`` runs
    about 5x slower than the same jitted step called in a loop (BUILD_NOTES.md).
    """

    @functools.partial(jax.jit, donate_argnums=(0,))
    def train_step(state: TrainState, images, labels, idx, key=None):
        def batch_loss(p):
            x = images[idx].astype(jnp.float32) / 255.0
            if key is None:
                return loss_fn(p, x, labels[idx])
            return loss_fn(p, x, labels[idx], key)

        (loss, acc), grads = jax.value_and_grad(batch_loss, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        new_state = TrainState(optax.apply_updates(state.params, updates), opt_state)
        return new_state, jnp.stack([loss, acc])

    return train_step


def run_epoch(
    train_step,
    state,
    images_dev,
    labels_dev,
    key,
    epoch,
    batch_size,
    dropout_key=None,
):
    """One epoch of ``train_step`` over a permutation made with
    ``fold_in(key, epoch)`` (the last partial batch dropped); returns the new
    state and the mean ``{"loss", "accuracy"}`` over its steps (host floats).
    With ``dropout_key``, step ``i`` gets ``fold_in(fold_in(dropout_key,
    epoch), i)`` (so a resumed epoch draws the same masks)."""
    steps = len(labels_dev) // batch_size
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), len(labels_dev))
    perm = perm[: steps * batch_size].astype(jnp.int32).reshape(steps, batch_size)
    epoch_key = None if dropout_key is None else jax.random.fold_in(dropout_key, epoch)
    sums = jnp.zeros(2)
    for i in range(steps):
        if epoch_key is None:
            state, lm = train_step(state, images_dev, labels_dev, perm[i])
        else:
            step_key = jax.random.fold_in(epoch_key, i)
            state, lm = train_step(state, images_dev, labels_dev, perm[i], step_key)
        sums = sums + lm
    loss, acc = (float(v) / steps for v in jax.device_get(sums))
    return state, {"loss": loss, "accuracy": acc}


def random_shift(images, key, max_shift: int):
    """Each image of ``images [B, H, W, C]`` moved by its own random whole-pixel
    offset in ``[-max_shift, max_shift]`` on both axes, the border filled with
    zeros (MNIST's background): the usual translation augmentation. Pure and
    jittable; ``max_shift`` is static."""
    if max_shift == 0:
        return images
    s = max_shift
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * s + 1)
    padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (0, 0)))

    def one(img, o):
        return jax.lax.dynamic_slice(img, (o[0], o[1], 0), images.shape[1:])

    return jax.vmap(one)(padded, offsets)


def fit(
    logits_fn,
    params,
    images_u8,
    labels,
    *,
    epochs: int = 1,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    seed: int = 0,
    on_epoch=None,
    loss_fn=None,
    shift_pixels: int = 0,
):
    """Trains ``params`` of any ``logits_fn`` on ``images_u8 [N, H, W, C]
    uint8`` / ``labels [N]`` in memory (no work directory: for loops that
    checkpoint whole trainings, as the retraining loop does); the same steps
    as ``train_classifier``. ``on_epoch(epoch, params, metrics)`` is called
    after each epoch. ``loss_fn(params, x, y) -> (loss, accuracy)`` replaces
    the cross-entropy of ``logits_fn`` (e.g. an RBF network's own cost).
    ``shift_pixels > 0`` moves every training image by a random offset of up
    to that many pixels each step (``random_shift``; keys from ``seed``).
    Returns the trained params."""
    if len(labels) < batch_size:
        raise FooljaxError(
            f"{len(labels)} training examples are fewer than one batch of {batch_size}"
        )
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimizer=optimizer,
        weight_decay=weight_decay,
        seed=seed,
    )
    cfg.validate()
    opt = make_optimizer(cfg, (len(labels) // batch_size) * epochs)
    if shift_pixels < 0:
        raise FooljaxError(f"shift_pixels must be >= 0, got {shift_pixels}")
    if loss_fn is None:
        loss_fn = make_loss_fn(logits_fn, weight_decay=weight_decay)
    shift_key = None
    if shift_pixels:
        plain_loss = loss_fn

        def loss_fn(p, x, y, key):
            return plain_loss(p, random_shift(x, key, shift_pixels), y)

        shift_key = jax.random.fold_in(jax.random.key(seed), 1)
    step = make_train_step(loss_fn, opt)
    params = jax.tree_util.tree_map(jnp.array, params)  # the steps donate a copy
    state = TrainState(params, opt.init(params))
    images_dev, labels_dev = jnp.asarray(images_u8), jnp.asarray(labels, jnp.int32)
    key = jax.random.key(seed)
    for epoch in range(epochs):
        state, m = run_epoch(
            step, state, images_dev, labels_dev, key, epoch, batch_size, shift_key
        )
        if on_epoch is not None:
            on_epoch(epoch + 1, state.params, m)
    return state.params


def load_dataset(name: str, split: str, data_dir=None, source="idx"):
    return data.load_dataset(name, split, data_dir=data_dir, source=source)


# metrics.jsonl keys -> TensorBoard tags
_TB_TAGS = {
    "train_loss": "train/loss",
    "train_accuracy": "train/accuracy",
    "test_loss": "test/loss",
    "test_accuracy": "test/accuracy",
    "examples_per_second": "speed/examples_per_second",
}


def train_classifier(config: TrainConfig, workdir: str, *, overwrite: bool = False):
    """Trains ``config.model``; checkpoints every epoch; resumes automatically.

    Writes ``metrics.jsonl`` (one line per epoch; the same as TensorBoard
    events in ``tensorboard/``), ``checkpoints/``,
    ``params.npz`` (final params) and ``summary.json``; returns the summary.
    """
    config.validate()
    x_train, y_train = load_dataset(
        config.dataset, "train", config.data_dir, config.data_source
    )
    x_test, y_test = load_dataset(
        config.dataset, "test", config.data_dir, config.data_source
    )
    clf = models.load_classifier(config.model, config.init_weights)
    resume = prepare_workdir(workdir, dataclasses.asdict(config), overwrite=overwrite)
    if config.init_weights == "init":
        params = models.init_params(models.get_spec(config.model), config.seed)
    else:
        params = clf.params
    steps_per_epoch = len(x_train) // config.batch_size
    optimizer = make_optimizer(config, steps_per_epoch * config.epochs)
    state = TrainState(params, optimizer.init(params))
    train_logits_fn = dropout_logits_fn(config.model)
    loss_fn = make_loss_fn(
        clf.logits_fn,
        weight_decay=config.weight_decay,
        adv_alpha=config.adv_alpha,
        adv_epsilon=config.adv_epsilon,
        train_logits_fn=train_logits_fn,
    )
    train_step = make_train_step(loss_fn, optimizer)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    start_epoch = 0
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    with ckpt:  # closes orbax on every path
        restored = ckpt.restore_latest_good(state._asdict()) if resume else None
        if restored is not None:
            start_epoch, restored_state = restored
            state = TrainState(**restored_state)
            rows, problem = integrity.read_jsonl_verified(metrics_path)
            if problem:
                log.warning("%s; later rows dropped", problem)
            rewrite_jsonl(metrics_path, [r for r in rows if r["epoch"] <= start_epoch])
            log.info("resuming %s from epoch %d", workdir, start_epoch)
        elif os.path.exists(metrics_path):
            os.remove(metrics_path)

        key = jax.random.key(config.seed)
        dropout_key = (
            None
            if train_logits_fn is None
            else jax.random.fold_in(key, _DROPOUT_STREAM)
        )
        images_dev, labels_dev = jnp.asarray(x_train), jnp.asarray(y_train)
        t_start = time.time()
        tb = EventWriter(os.path.join(workdir, "tensorboard"))
        for epoch in range(start_epoch, config.epochs):
            t0 = time.time()
            state, m = run_epoch(
                train_step,
                state,
                images_dev,
                labels_dev,
                key,
                epoch,
                config.batch_size,
                dropout_key,
            )
            dt = time.time() - t0
            ev = evaluate_classifier(clf.logits_fn, state.params, x_test, y_test)
            row = {
                "epoch": epoch + 1,
                "train_loss": float(m["loss"]),
                "train_accuracy": float(m["accuracy"]),
                "test_accuracy": ev["accuracy"],
                "test_loss": ev["loss"],
                "examples_per_second": steps_per_epoch * config.batch_size / dt,
                "epoch_seconds": dt,
            }
            append_jsonl(metrics_path, row)
            tb.scalars(
                epoch + 1, {_TB_TAGS[k]: v for k, v in row.items() if k in _TB_TAGS}
            )
            log.info(
                "epoch %d/%d: loss %.4f train acc %.4f test acc %.4f (%.0f examples/s)",
                epoch + 1,
                config.epochs,
                row["train_loss"],
                row["train_accuracy"],
                row["test_accuracy"],
                row["examples_per_second"],
            )
            ckpt.save(epoch + 1, state._asdict())
    final = evaluate_classifier(clf.logits_fn, state.params, x_test, y_test)
    models.save_params_npz(
        os.path.join(workdir, "params.npz"),
        state.params,
        {"model": config.model, "config": dataclasses.asdict(config), **final},
    )
    summary = {
        "model": config.model,
        "test_accuracy": final["accuracy"],
        "test_loss": final["loss"],
        "num_test_examples": final["num_examples"],
        "epochs": config.epochs,
        "seed": config.seed,
        "wall_seconds": time.time() - t_start,
        "config": dataclasses.asdict(config),
    }
    write_summary(workdir, summary)
    return summary
