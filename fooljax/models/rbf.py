"""Shallow MNIST models of Goodfellow et al. (ICLR 2015): the RBF network of
Sec. 7 and the binary logistic regression of Sec. 5.

``rbf``: one Gaussian unit per class and no hidden layer, the paper's
``p(y = k | x) = exp(-(x - mu_k)^T diag(beta_k) (x - mu_k))`` with a learned
centre ``mu_k`` and a learned diagonal precision ``beta_k >= 0`` (stored as its
log). Each unit is an independent probability (the outputs need not sum to
1), so a point far from every centre gets low confidence for every class: the
paper's mean confidence of 1.2 % on its FGSM mistakes is such a case. The
module returns ``log p(y = k | x) = -d_k`` as its logits: the argmax is the
prediction, ``exp(logit)`` the unit's confidence; train it with
``rbf_unit_loss`` (one Bernoulli likelihood per unit), not a softmax.

``logistic``: ``p(y = 1 | x) = sigmoid(w^T x + b)`` written as the two logits
``[0, w^T x + b]``, so softmax cross-entropy is exactly the logistic loss and
every softmax-based fooljax tool (``fgsm``, ``make_loss_fn``) applies as is.

Both take ``x: [B, 28, 28, 1]`` float32 in [0, 1].
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from fooljax.models.registry import register_family

_DIGITS = tuple(str(i) for i in range(10))

# init: centres at the mean MNIST pixel, precisions so that d ~ 1 at the start
_MNIST_MEAN_PIXEL = 0.13
_INIT_LOG_BETA = -4.5  # beta ~ 0.011; 784 pixels * ~0.1 squared distance


class RBF(nn.Module):
    """One RBF unit per class; returns ``log p_k = -d_k`` ``[B, num_classes]``
    with ``d_k = sum_j beta_kj (x_j - mu_kj)^2 >= 0``."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = x.reshape((x.shape[0], -1))
        dim = x.shape[-1]
        mu = self.param(
            "mu", nn.initializers.constant(_MNIST_MEAN_PIXEL), (self.num_classes, dim)
        )
        log_beta = self.param(
            "log_beta",
            nn.initializers.constant(_INIT_LOG_BETA),
            (self.num_classes, dim),
        )
        beta = jnp.exp(log_beta)
        # expanded square: three matmuls instead of a [B, K, D] difference
        d = (
            (x * x) @ beta.T
            - 2.0 * x @ (beta * mu).T
            + jnp.sum(beta * mu * mu, axis=-1)[None, :]
        )
        return -jnp.maximum(d, 0.0)  # rounding can make d slightly negative


def rbf_unit_loss(log_probs: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Per-example loss ``[B]`` of independent RBF units: the sum over classes
    of the Bernoulli negative log-likelihood, ``-log p_y - sum_{k != y}
    log(1 - p_k)`` with ``log p_k = log_probs[:, k] <= 0``."""
    d = jnp.maximum(-log_probs, 1e-6)  # log(1 - p) is -inf at p = 1
    log_not = jnp.log(-jnp.expm1(-d))  # log(1 - exp(-d)), stable
    onehot = jax.nn.one_hot(labels, log_probs.shape[-1], dtype=log_probs.dtype)
    return jnp.sum(onehot * d - (1.0 - onehot) * log_not, axis=-1)


class Logistic(nn.Module):
    """Binary logistic regression as the logits ``[B, 2] = [0, w^T x + b]``."""

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = x.reshape((x.shape[0], -1))
        z = nn.Dense(1, kernel_init=nn.initializers.zeros, name="out")(x)
        return jnp.concatenate([jnp.zeros_like(z), z], axis=-1)


register_family(
    {"rbf": lambda: RBF()}, input_shape=(28, 28, 1), num_classes=10, class_names=_DIGITS
)
register_family(
    {"logistic": lambda: Logistic()},
    input_shape=(28, 28, 1),
    num_classes=2,
    class_names=("negative", "positive"),
)
