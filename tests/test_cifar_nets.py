"""cifar_allconv: the All-CNN-C of the one-pixel paper, built and trainable."""

import jax
import jax.numpy as jnp
import numpy as np

from fooljax import models
from fooljax.train.classifier import (
    TrainConfig,
    TrainState,
    make_loss_fn,
    make_optimizer,
    make_train_step,
)


def test_allconv_shapes_and_one_training_step_lowers_the_loss():
    spec = models.get_spec("cifar_allconv")
    assert spec.input_shape == (32, 32, 3) and spec.num_classes == 10
    clf = models.load_classifier("cifar_allconv", "init")
    params = models.init_params(spec, 0)
    p = params["params"]
    assert p["conv1"]["kernel"].shape == (3, 3, 3, 96)
    assert p["conv4"]["kernel"].shape == (3, 3, 96, 192)
    assert p["conv9"]["kernel"].shape == (1, 1, 192, 10)
    n = sum(x.size for x in jax.tree_util.tree_leaves(params))
    assert 1_300_000 < n < 1_400_000  # All-CNN-C: 1.37 M parameters
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (16, 32, 32, 3)).astype(np.uint8)
    y = rng.randint(0, 10, 16).astype(np.int32)
    logits = clf.logits_fn(params, jnp.asarray(x, jnp.float32) / 255)
    assert logits.shape == (16, 10) and bool(jnp.isfinite(logits).all())
    opt = make_optimizer(TrainConfig(model="cifar_allconv", learning_rate=1e-4), 100)
    step = make_train_step(make_loss_fn(clf.logits_fn), opt)
    state = TrainState(params, opt.init(params))
    idx = jnp.arange(16, dtype=jnp.int32)
    losses = []
    for _ in range(5):
        state, m = step(state, jnp.asarray(x), jnp.asarray(y), idx)
        losses.append(float(m[0]))
    assert losses[-1] < losses[0]
