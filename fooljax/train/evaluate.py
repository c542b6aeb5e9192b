"""Batched evaluation of any ``logits_fn(params, images)`` on a labelled set."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnums=(0, 3))
def _logits_batched(logits_fn, params, images_u8, batch_size):
    n = images_u8.shape[0]
    batches = images_u8.reshape(n // batch_size, batch_size, *images_u8.shape[1:])
    out = jax.lax.map(
        lambda b: logits_fn(params, b.astype(jnp.float32) / 255.0), batches
    )
    return out.reshape(n, -1)


def predict_logits(logits_fn, params, images_u8: np.ndarray, batch_size: int = 500):
    """``images_u8: [N, H, W, C] uint8`` -> logits ``[N, K]`` (one compiled call)."""
    n = len(images_u8)
    batch_size = max(1, min(batch_size, n))
    pad = (-n) % batch_size
    x = np.concatenate([images_u8, np.zeros((pad, *images_u8.shape[1:]), np.uint8)])
    return np.asarray(_logits_batched(logits_fn, params, jnp.asarray(x), batch_size))[
        :n
    ]


def evaluate_classifier(
    logits_fn, params, images_u8: np.ndarray, labels: np.ndarray, batch_size: int = 500
) -> dict:
    """Returns ``{"accuracy", "num_examples", "loss"}`` (accuracy a fraction)."""
    logits = predict_logits(logits_fn, params, images_u8, batch_size)
    labels = np.asarray(labels)
    logp = jax.nn.log_softmax(jnp.asarray(logits))
    loss = -float(jnp.mean(jnp.take_along_axis(logp, labels[:, None], 1)))
    acc = float(np.mean(np.argmax(logits, -1) == labels))
    return {"accuracy": acc, "num_examples": int(len(labels)), "loss": loss}
