"""Instability bounds: the upper Lipschitz constant of every layer and their
product (Szegedy et al., ICLR 2014, §4.3, Table 5), beside the smallest
perturbation L-BFGS actually needs (§4.1).

``run(LipschitzConfig(model=..., weights=...), workdir)`` walks the network in
order, names each layer as the network's own (Caffe, Keras or TFLite) layer,
and bounds it with ``fooljax.attacks.lipschitz``: the operator norm of every
convolution / fully-connected layer by power iteration on its linear map at the
exact input shape it sees in the network (shapes captured with
``flax.linen.intercept_methods`` on one forward pass), batch norm as its own
diagonal layer (exact ``max |gamma / sqrt(var + eps)|``), 1 for ReLU/ReLU6,
``sqrt(windows per input)`` for max-pooling (1 when windows do not overlap;
Szegedy uses 1), ``k^-beta`` for LRN, and ``1 + prod(branch)`` (or
``||shortcut|| + prod(branch)``) for residual blocks.

``summary.json``: ``layers`` [{name, kind, bound, ...}] in network order,
``blocks``, ``product`` (the layers' and blocks' bounds multiplied: logits vs
the network's own input), ``input_scale`` (the preprocessing from [0, 1]
images to that input) and ``product_from_images``; ``lbfgs``: the smallest
L2 norm ``||r||_2`` over a few test images of the targeted L-BFGS
perturbation (Szegedy's attack, random target != true label), next to the
radius the product certifies (``margin / (sqrt 2 * product_from_images)``);
``paper``: Szegedy's Table 5. ``--model=all`` does the five networks of the
issue in one work directory (``networks[name]``). Picture:
``lipschitz_bounds.png`` (per-layer bounds, log scale).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from absl import flags

from fooljax import data
from fooljax.attacks import lipschitz
from fooljax.attacks.lbfgs import random_targets
from fooljax.errors import FooljaxError
from fooljax.models.mobilenet import _V2_BLOCKS
from fooljax.models.preprocess import PREPROCESS_NAMES, make_preprocess
from fooljax.models.registry import get_spec
from fooljax.runs import config
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import Workdir, load_classifier, load_mnist_test
from fooljax.runs.gradient import lbfgs_examples

if "ipykernel" not in sys.modules:  # a notebook keeps its inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FLAGS = flags.FLAGS
opt = config.opt
log = logging.getLogger("fooljax")

# Szegedy et al. 2014, Table 5: "frame-by-frame upper Lipschitz constant for
# each rectified layer" of Krizhevsky et al.'s ImageNet network (its real
# weights); max-pooling and contrast normalisation are bounded by 1 in the
# text (§4.3). The paper gives no such table for its MNIST networks.
SZEGEDY_TABLE5 = {
    "network": "AlexNet (Krizhevsky et al. 2012) with its trained ImageNet weights",
    "layers": {
        "conv1": 2.75,
        "conv2": 10.0,
        "conv3": 7.0,
        "conv4": 7.5,
        "conv5": 11.0,
        "fc6": 2.5,
        "fc7": 4.0,
        "fc8": 4.0,
    },
    "pool_and_lrn_bound": 1.0,
    "source": "Szegedy et al. 2014 Table 5 (Conv. 1-5, FC1-3 here named as "
    "Caffe's conv1-5, fc6-8); values not in ../shared/PAPERS.md, quoted from "
    "the paper",
}
SZEGEDY_TABLE5["product"] = math.prod(SZEGEDY_TABLE5["layers"].values())

_DATA = "$FOOLJAX_DATA"
# --model=all: (registered model, weights, preprocess) per network of issue 17
NETWORKS = {
    "lenet": ("lenet", "default", None),
    "lenet_caffe": (
        "lenet",
        f"{_DATA}/lenet-mnist-caffe-fooling/lenet_iter_10000",
        "unit",
    ),
    "cifar_resnet32": (
        "cifar_resnet32",
        f"{_DATA}/cifar10-keras-one-pixel/resnet.h5",
        None,
    ),
    "mobilenet_v2": (
        "mobilenet_v2",
        f"{_DATA}/imagenet-mobilenet-tflite-coral/mobilenet_v2_1.0_224_quant.tflite",
        None,
    ),
    "alexnet": ("alexnet", "init", None),
}
AFFINE_KINDS = ("conv", "dense", "depthwise_conv")


@dataclasses.dataclass(frozen=True)
class LipschitzConfig:
    model: str = opt(
        "lenet",
        "Registered model (lenet, cifar_lenet, cifar_resnet32, mobilenet_v2, "
        "alexnet, bvlc_alexnet), or 'all' for the five networks of NETWORKS.",
    )
    weights: str = opt("default", "Weights: default, init (random, seed 0), a file.")
    preprocess: str = opt("", "Preprocessing (identity, unit, ...); '' = model's.")
    num_iters: int = opt(200, "Power iterations per layer.")
    seed: int = opt(0, "Seed of the power iteration starts and the L-BFGS targets.")
    lbfgs_images: int = opt(
        20, "MNIST/CIFAR test images attacked with L-BFGS per network (0: none)."
    )
    lbfgs_imagenet_images: int = opt(
        2, "ImageNet sample images attacked with L-BFGS (224x224 nets; 0: none)."
    )
    lbfgs_search_steps: int = opt(6, "Values of c tried per image.")
    lbfgs_max_iterations: int = opt(50, "L-BFGS-B iterations per solve.")
    lbfgs_batch_size: int = opt(20, "Images per L-BFGS-B problem.")
    data_dir: str = opt("", "Data folder ('' = $FOOLJAX_DATA).")

    def validate(self) -> None:
        config.check_fields(
            self,
            num_iters=(1, None),
            lbfgs_images=(0, None),
            lbfgs_imagenet_images=(0, 20),
            lbfgs_search_steps=(1, None),
            lbfgs_max_iterations=(1, None),
            lbfgs_batch_size=(1, None),
        )
        if self.preprocess and self.preprocess not in PREPROCESS_NAMES:
            raise FooljaxError(
                f"--preprocess={self.preprocess} is not one of "
                f"{', '.join(PREPROCESS_NAMES)}"
            )
        if self.model == "all":
            if self.weights != "default" or self.preprocess:
                raise FooljaxError(
                    "--model=all uses each network's own weights; drop --weights "
                    "and --preprocess (or name one --model)"
                )
            return
        get_spec(self.model)  # unknown model: one line
        if self.model not in LAYER_TABLES:
            raise FooljaxError(
                f"no layer table for model '{self.model}' (have: "
                f"{', '.join(sorted(LAYER_TABLES))})"
            )

    def networks(self) -> dict[str, tuple[str, str, str | None]]:
        if self.model == "all":
            return dict(NETWORKS)
        return {self.model: (self.model, self.weights, self.preprocess or None)}


# ---------------------------------------------------------------------------
# layer tables: the network's layers in order, named as its own


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of the walk. ``module``: the Flax submodule computing it
    (affine and batch-norm layers); ``after``: the submodule whose output is
    this layer's input (for its shape); ``block``/``role``: residual blocks."""

    name: str
    kind: str
    module: str | None = None
    after: str | None = None
    window: tuple[int, int] = (1, 1)  # max_pool (kernel, stride)
    block: str | None = None
    role: str = "branch"  # or "shortcut"


@dataclasses.dataclass(frozen=True)
class Block:
    name: str
    shortcut: str  # "identity" or the shortcut layer's name


def _lenet_table(model):
    # Caffe's lenet_train_test.prototxt names; the Flax module's are conv1,
    # conv2, ip1, ip2 (the same).
    return [
        Layer("conv1", "conv", "conv1"),
        Layer("pool1", "max_pool", after="conv1", window=(2, 2)),
        Layer("conv2", "conv", "conv2"),
        Layer("pool2", "max_pool", after="conv2", window=(2, 2)),
        Layer("ip1", "dense", "ip1"),
        Layer("relu1", "relu", after="ip1"),
        Layer("ip2", "dense", "ip2"),
    ], []


def _cifar_lenet_table(model):
    layers = []
    for conv in ("conv2d_1", "conv2d_2"):
        layers += [
            Layer(conv, "conv", conv),
            Layer(f"{conv}_relu", "relu", after=conv),
            Layer(f"{conv}_pool", "max_pool", after=conv, window=(2, 2)),
        ]
    for dense in ("dense_1", "dense_2"):
        layers += [
            Layer(dense, "dense", dense),
            Layer(f"{dense}_relu", "relu", after=dense),
        ]
    return layers + [Layer("dense_3", "dense", "dense_3")], []


def _resnet32_table(model):
    """Mirrors ``KerasCifarResNet32.__call__`` (Keras layer names); ReLUs are
    named after the batch norm they follow."""
    conv_i, bn_i = iter(range(1, 1000)), iter(range(1, 1000))
    layers = [Layer("conv2d_1", "conv", f"conv2d_{next(conv_i)}")]
    blocks = []

    def bn_relu(block):
        bn = f"batch_normalization_{next(bn_i)}"
        return [
            Layer(bn, "batchnorm", bn, block=block),
            Layer(f"{bn}_relu", "relu", after=bn, block=block),
        ]

    for stage in range(3):
        for b in range(model.stack_n):
            name = f"stage{stage + 1}_block{b + 1}"
            down = stage > 0 and b == 0
            first, second = (f"conv2d_{next(conv_i)}" for _ in range(2))
            layers += bn_relu(name) + [Layer(first, "conv", first, block=name)]
            layers += bn_relu(name) + [Layer(second, "conv", second, block=name)]
            shortcut = "identity"
            if down:
                shortcut = f"conv2d_{next(conv_i)}"
                layers.append(
                    Layer(shortcut, "conv", shortcut, block=name, role="shortcut")
                )
            blocks.append(Block(name, shortcut))
    head_bn = f"batch_normalization_{next(bn_i)}"
    layers += [
        Layer(head_bn, "batchnorm", head_bn),
        Layer(f"{head_bn}_relu", "relu", after=head_bn),
        Layer("global_average_pool", "global_avg_pool", after=head_bn),
        Layer("dense_1", "dense", "dense_1"),
    ]
    return layers, blocks


def _mobilenet_v2_table(model):
    """Mirrors ``MobileNetV2.__call__`` (TFLite op order; batch norm is folded
    into the convolutions in the file)."""

    def conv_relu6(name, kind, block=None):
        return [
            Layer(name, kind, name, block=block),
            Layer(f"{name}_relu6", "relu6", after=name, block=block),
        ]

    layers, blocks = conv_relu6("conv_stem", "conv"), []
    cin, k = 32, 0
    for t, c, n, s in _V2_BLOCKS:
        for r in range(n):
            stride = s if r == 0 else 1
            residual = stride == 1 and cin == c
            block = f"block{k}" if residual else None
            if t != 1:
                layers += conv_relu6(f"block{k}_expand", "conv", block)
            layers += conv_relu6(f"block{k}_depthwise", "depthwise_conv", block)
            layers.append(
                Layer(f"block{k}_project", "conv", f"block{k}_project", block=block)
            )
            if residual:
                blocks.append(Block(block, "identity"))
            cin = c
            k += 1
    layers += conv_relu6("conv_head", "conv")
    layers += [
        Layer("global_average_pool", "global_avg_pool", after="conv_head"),
        Layer("logits", "conv", "logits"),
    ]
    return layers, blocks


def _alexnet_table(model):
    """Caffe's CaffeNet / AlexNet layer names (deploy prototxt)."""
    layers = []
    for i, pool_norm in ((1, True), (2, True), (3, False), (4, False), (5, None)):
        conv = f"conv{i}"
        layers += [Layer(conv, "conv", conv), Layer(f"relu{i}", "relu", after=conv)]
        if pool_norm is None:
            layers.append(Layer("pool5", "max_pool", after=conv, window=(3, 2)))
        elif pool_norm:
            pool = Layer(f"pool{i}", "max_pool", after=conv, window=(3, 2))
            norm = Layer(f"norm{i}", "lrn", after=conv)
            layers += [norm, pool] if model.lrn_before_pool else [pool, norm]
    for fc in ("fc6", "fc7"):
        layers += [Layer(fc, "dense", fc), Layer(f"relu{fc[2:]}", "relu", after=fc)]
    return layers + [Layer("fc8", "dense", "fc8")], []


LAYER_TABLES = {
    "lenet": _lenet_table,
    "cifar_lenet": _cifar_lenet_table,
    "cifar_resnet32": _resnet32_table,
    "mobilenet_v2": _mobilenet_v2_table,
    "alexnet": _alexnet_table,
    "bvlc_alexnet": _alexnet_table,
}


# ---------------------------------------------------------------------------
# the walk


def capture_submodules(model, params, input_shape):
    """``{name: (module, input shape, output shape)}`` of every top-level
    submodule call on one ``[1, *input_shape]`` input (abstract: no FLOPs)."""
    found = {}

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        m = context.module
        if context.method_name == "__call__" and len(m.scope.path) == 1:
            found[m.name] = (m, tuple(args[0].shape), tuple(out.shape))
        return out

    with nn.intercept_methods(interceptor):
        jax.eval_shape(model.apply, params, jnp.zeros((1, *input_shape), jnp.float32))
    return found


@dataclasses.dataclass(frozen=True)
class ModuleApply:
    """``(params, x) -> module.apply(params, x)`` for one Flax submodule,
    unbound and unnamed: hashable and equal for equal layer configurations,
    so ``affine_operator_norm`` compiles once per (configuration, shape)."""

    module: nn.Module

    def __post_init__(self):
        object.__setattr__(self, "module", self.module.clone(parent=None, name=None))

    def __call__(self, params, x):
        return self.module.apply(params, x)


def layer_bounds(model_name: str, params, input_shape, *, key, num_iters: int):
    """``(layers, blocks)`` summary rows of registered model ``model_name``
    with ``params``."""
    if model_name not in LAYER_TABLES:
        raise FooljaxError(f"no layer table for model '{model_name}'")
    model = get_spec(model_name).build()
    table, blocks = LAYER_TABLES[model_name](model)
    found = capture_submodules(model, params, input_shape)
    rows = []
    for i, layer in enumerate(table):
        row = {"name": layer.name, "kind": layer.kind}
        if layer.kind in AFFINE_KINDS or layer.kind == "batchnorm":
            if layer.module not in found:
                raise FooljaxError(
                    f"layer {layer.name}: model has no submodule {layer.module}"
                )
            module, in_shape, out_shape = found[layer.module]
            p = {"params": params["params"][layer.module]}
            apply_fn = ModuleApply(module)
            if layer.kind == "batchnorm":
                bound = lipschitz.diagonal_operator_norm(apply_fn, p, in_shape)
                row["method"] = "exact max |diagonal| (inference batch norm)"
            else:
                r = lipschitz.affine_operator_norm(
                    apply_fn,
                    p,
                    in_shape,
                    jax.random.fold_in(key, i),
                    num_iters=num_iters,
                )
                bound = r.norm
                row["rel_change"] = float(r.rel_change)
                row["method"] = f"power iteration ({num_iters} steps)"
            row.update(input_shape=list(in_shape[1:]), output_shape=list(out_shape[1:]))
        else:
            shape = found[layer.after][2] if layer.after in found else None
            if shape is not None and layer.kind != "lrn":
                row["input_shape"] = list(shape[1:])
            bound = _fixed_bound(layer, shape, key, i, num_iters, row)
        row["bound"] = float(bound)
        if layer.block:
            row["block"], row["role"] = layer.block, layer.role
        rows.append(row)
    _fuse_batchnorm(table, rows, found, params, key, num_iters)
    return rows, _block_rows(rows, blocks)


@dataclasses.dataclass(frozen=True)
class Chain:
    """``(params, x) -> second(params[1], first(params[0], x))``; hashable."""

    first: ModuleApply
    second: ModuleApply

    def __call__(self, params, x):
        return self.second(params[1], self.first(params[0], x))


def _fuse_batchnorm(table, rows, found, params, key, num_iters):
    """A tighter bound for ``batchnorm -> relu -> conv``: both the batch norm
    ``D`` and ReLU's Jacobian ``S`` (0/1) are diagonal, so they commute and
    ``||W S D|| = ||W D S|| <= ||W D||``: the conv row gets ``fused_bound``
    (power iteration of the conv after the batch norm), used by
    ``network_product(..., fused=True)`` in place of ``bound(bn) * bound(conv)``."""
    for i in range(len(table) - 2):
        bn, relu, conv = table[i : i + 3]
        if (bn.kind, relu.kind, conv.kind) != ("batchnorm", "relu", "conv"):
            continue
        (m_bn, in_shape, _), (m_conv, _, _) = found[bn.module], found[conv.module]
        p = (
            {"params": params["params"][bn.module]},
            {"params": params["params"][conv.module]},
        )
        r = lipschitz.affine_operator_norm(
            Chain(ModuleApply(m_bn), ModuleApply(m_conv)),
            p,
            in_shape,
            jax.random.fold_in(key, 10_000 + i),
            num_iters=num_iters,
        )
        rows[i + 2]["fused_bound"] = float(r.norm)
        rows[i + 2]["fused_with"] = bn.name


def _fixed_bound(layer, shape, key, i, num_iters, row):
    if layer.kind in ("relu", "relu6"):
        row["method"] = "1-Lipschitz elementwise"
        return 1.0
    if layer.kind == "max_pool":
        k, s = layer.window
        row["method"] = f"sqrt(windows sharing one input), {k}x{k} stride {s}"
        row["szegedy_bound"] = 1.0
        return lipschitz.max_pool_bound((k, k), (s, s))
    if layer.kind == "lrn":
        row["method"] = "Szegedy k^-beta, Caffe LRN k=1, beta=0.75"
        return lipschitz.lrn_bound(1.0, 0.75)
    if layer.kind == "global_avg_pool":
        row["method"] = f"power iteration ({num_iters} steps) of the spatial mean"
        return lipschitz.operator_norm(
            _spatial_mean, shape, jax.random.fold_in(key, i), num_iters
        )
    raise FooljaxError(f"layer {layer.name}: no bound for kind {layer.kind}")


def _spatial_mean(x):
    return jnp.mean(x, axis=(1, 2))


def _block_rows(rows, blocks):
    out = []
    for b in blocks:
        members = [r for r in rows if r.get("block") == b.name]
        branch = [r["bound"] for r in members if r["role"] == "branch"]
        short = [r["bound"] for r in members if r["role"] == "shortcut"]
        sb = short[0] if short else 1.0
        fused = network_product(
            [
                {k: v for k, v in r.items() if k != "block"}
                for r in members
                if r["role"] == "branch"
            ],
            [],
            fused=True,
        )
        out.append(
            {
                "name": b.name,
                "shortcut": b.shortcut,
                "shortcut_bound": sb,
                "branch_product": math.prod(branch),
                "bound": lipschitz.residual_bound(sb, branch),
                "bound_fused_batchnorm": sb + fused,
                "layers": [r["name"] for r in members],
            }
        )
    return out


def network_product(
    rows, blocks, *, szegedy: bool = False, fused: bool = False
) -> float:
    """Layers outside blocks times block bounds (``szegedy``: pools count 1;
    ``fused``: ``batchnorm -> relu -> conv`` counts its ``fused_bound``)."""
    absorbed = {r["fused_with"] for r in rows if fused and "fused_with" in r}

    def b(r):
        if r["name"] in absorbed:
            return 1.0
        if fused and "fused_bound" in r:
            return r["fused_bound"]
        return r.get("szegedy_bound", r["bound"]) if szegedy else r["bound"]

    prod = math.prod(b(r) for r in rows if "block" not in r)
    for blk in blocks:
        members = [r for r in rows if r.get("block") == blk["name"]]
        branch = [b(r) for r in members if r["role"] == "branch"]
        prod *= lipschitz.residual_bound(blk["shortcut_bound"], branch)
    return float(prod)


def input_scale(name: str, model, params, preprocess: str | None) -> tuple[float, str]:
    """Operator norm of the map from [0, 1] images to the first layer's input,
    and what that map is."""
    kind = type(model).__name__
    if kind == "LeNet":
        pre_name = preprocess or get_spec(name).default_preprocess
        pre = make_preprocess(pre_name)  # linear for identity and unit
        d = jax.jvp(pre, (jnp.zeros((1, 1)),), (jnp.ones((1, 1)),))[1]
        return float(jnp.abs(d).max()), f"preprocess '{pre_name}'"
    if kind in ("KerasCifarLeNet", "KerasCifarResNet32"):
        std = min(model.std) if model.std is not None else 1.0
        return 255.0 / std, "255 x / std per channel (minus mean)"
    if kind == "MobileNetV2":
        s = abs(float(params["params"]["input_norm"]["scale"]))
        return s, "input_norm: scale x + offset (TFLite input quantization)"
    if kind == "AlexNet":
        return 255.0, "RGB->BGR, 255 x - mean image, centre crop"
    return 1.0, "none"


# ---------------------------------------------------------------------------
# L-BFGS beside the bound


def _test_images(clf, n: int, data_dir: str | None):
    shape = tuple(clf.input_shape)
    if shape == (28, 28, 1):
        return load_mnist_test(data_dir, n)
    name = {(32, 32, 3): "cifar10_files", (224, 224, 3): "imagenet_files"}.get(shape)
    if name is None:
        raise FooljaxError(f"no test images of shape {shape} for L-BFGS")
    x, y = data.load_dataset(name, "test", data_dir=data_dir)
    return x[:n].astype(np.float32) / 255.0, y[:n].astype(np.int32)


def _num_lbfgs_images(cfg: LipschitzConfig, clf) -> int:
    big = tuple(clf.input_shape)[0] > 64
    return cfg.lbfgs_imagenet_images if big else cfg.lbfgs_images


def lbfgs_beside_bound(cfg: LipschitzConfig, clf, lipschitz_images: float) -> dict:
    """Targeted L-BFGS on a few test images: min/median ``||r||_2`` and the
    radius the bound certifies on the same images."""
    x, y = _test_images(clf, _num_lbfgs_images(cfg, clf), cfg.data_dir or None)
    targets = random_targets(jax.random.key(cfg.seed), y, clf.num_classes)
    t0 = time.time()
    arrays = lbfgs_examples(
        clf.logits_fn,
        clf.params,
        x,
        targets,
        batch_size=cfg.lbfgs_batch_size,
        initial_c=1.0,
        num_search_steps=cfg.lbfgs_search_steps,
        max_iterations=cfg.lbfgs_max_iterations,
    )
    ok = arrays["success"]
    l2 = np.sqrt(((arrays["adversarial"] - x).reshape(len(x), -1) ** 2).sum(1))
    logits = np.asarray(jax.jit(clf.logits_fn)(clf.params, jnp.asarray(x)), np.float64)
    top2 = np.sort(logits, axis=1)[:, -2:]
    # |(z_a - z_b)(x + r) - (z_a - z_b)(x)| <= sqrt(2) ||dz|| <= sqrt(2) L ||r||
    certified = (top2[:, 1] - top2[:, 0]) / (math.sqrt(2.0) * lipschitz_images)
    out = {
        "what": "targeted box-constrained L-BFGS (random target != true label, "
        f"seed {cfg.seed}), ||r||_2 in [0, 1] pixel units over the successful images",
        "num_images": int(len(x)),
        "success_rate": float(ok.mean()),
        "min_l2": float(l2[ok].min()) if ok.any() else None,
        "median_l2": float(np.median(l2[ok])) if ok.any() else None,
        "mean_rms_distortion": float(np.nanmean(arrays["distortion"]))
        if ok.any()
        else None,
        "certified_l2_min": float(certified.min()),
        "certified_l2_median": float(np.median(certified)),
        "certified_what": "top-2 logit margin / (sqrt(2) * product_from_images): "
        "no perturbation smaller than this can change the label",
        "bound_respected": bool(np.all(l2[ok] >= certified[ok] * (1 - 1e-4))),
        "seconds": time.time() - t0,
    }
    if ok.any() and np.all(certified[ok] > 0):
        out["looseness"] = float(np.median(l2[ok] / certified[ok]))
    return out


# ---------------------------------------------------------------------------


def _load(model_name: str, weights: str, preprocess: str | None):
    clf = load_classifier(model_name, weights, preprocess)
    return clf, get_spec(model_name).build()


def bound_network(cfg: LipschitzConfig, name: str, clf, model, spec) -> dict:
    """Everything ``summary.json`` holds for one network."""
    model_name, weights, preprocess = spec
    t0 = time.time()
    key = jax.random.key(cfg.seed)
    rows, blocks = layer_bounds(
        model_name, clf.params, clf.input_shape, key=key, num_iters=cfg.num_iters
    )
    product = network_product(rows, blocks)
    scale, scale_what = input_scale(model_name, model, clf.params, preprocess)
    out = {
        "model": model_name,
        "weights": weights,
        "weights_note": (
            "random init, seed 0 (fooljax.models.registry.init_params): no "
            "trained weights at hand"
            if weights == "init"
            else "trained weights"
        ),
        "preprocess": preprocess or get_spec(model_name).default_preprocess,
        "input_shape": list(clf.input_shape),
        "layers": rows,
        "blocks": blocks,
        "product": product,
        "product_szegedy_convention": network_product(rows, blocks, szegedy=True),
        "product_fused_batchnorm": network_product(rows, blocks, fused=True),
        "input_scale": scale,
        "input_map": scale_what,
        "product_from_images": product * scale,
        "max_rel_change": max((r.get("rel_change", 0.0) for r in rows), default=0.0),
        "bounds_seconds": time.time() - t0,
    }
    log.info("%s: product %.4g (%.0f s)", name, product, out["bounds_seconds"])
    if _num_lbfgs_images(cfg, clf) == 0:
        out["lbfgs"] = {"skipped": "--lbfgs_images=0 / --lbfgs_imagenet_images=0"}
    elif weights == "init":
        out["lbfgs"] = {"skipped": "random weights: not a classifier worth attacking"}
    else:
        out["lbfgs"] = lbfgs_beside_bound(cfg, clf, out["product_from_images"])
        log.info("%s: lbfgs %s", name, out["lbfgs"])
    return out


def save_bar_chart(path: str, networks: dict) -> None:
    """Per-layer bounds (log scale), one panel per network; Szegedy's Table 5
    values as red markers on the AlexNet panel."""
    colors = {
        "conv": "tab:blue",
        "depthwise_conv": "tab:cyan",
        "dense": "tab:green",
        "batchnorm": "tab:purple",
        "max_pool": "tab:orange",
        "lrn": "tab:brown",
        "global_avg_pool": "tab:olive",
        "relu": "tab:gray",
        "relu6": "tab:gray",
    }
    n = len(networks)
    width = max(8.0, 0.11 * max(len(s["layers"]) for s in networks.values()))
    fig, axes = plt.subplots(n, 1, figsize=(width, 3.2 * n), squeeze=False)
    for ax, (name, s) in zip(axes[:, 0], networks.items(), strict=True):
        rows = s["layers"]
        xs = np.arange(len(rows))
        ax.bar(
            xs,
            [r["bound"] for r in rows],
            color=[colors.get(r["kind"], "black") for r in rows],
        )
        bounds = [r["bound"] for r in rows]
        ax.set_yscale("log")
        tops = bounds + [b["bound"] for b in s["blocks"]]
        if s["model"] in ("alexnet", "bvlc_alexnet"):
            tops += list(SZEGEDY_TABLE5["layers"].values())
        # headroom above the tallest mark for the legend
        ax.set_ylim(min(min(bounds), 1.0) / 2, max(tops) * 30)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xticks(xs, [r["name"] for r in rows], rotation=90, fontsize=6)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel("upper Lipschitz bound")
        if len(rows) <= 30:
            for x, b in zip(xs, bounds, strict=True):
                ax.text(x, b * 1.08, f"{b:.3g}", ha="center", va="bottom", fontsize=6)
        if s["blocks"]:
            last = {r["block"]: i for i, r in enumerate(rows) if "block" in r}
            ax.scatter(
                [last[b["name"]] for b in s["blocks"]],
                [b["bound"] for b in s["blocks"]],
                marker="_",
                s=120,
                color="black",
                zorder=3,
                label="residual block: shortcut + prod(branch)",
            )
        weights = os.path.basename(s["weights"]) if s["weights"] else ""
        lb = s["lbfgs"]
        second = (
            f"L-BFGS min ||r||_2 {lb['min_l2']:.3g} over {lb['num_images']} images; "
            f"radius the product certifies: min {lb['certified_l2_min']:.2g}"
            if lb.get("min_l2") is not None
            else f"L-BFGS: {lb.get('skipped', 'no success')}"
        )
        ax.set_title(
            f"{name} ({s['model']}, {weights}; {s['weights_note']}): product "
            f"{s['product']:.3g}, from [0,1] images {s['product_from_images']:.3g}"
            f"\n{second}",
            fontsize=8,
        )
        if s["model"] in ("alexnet", "bvlc_alexnet"):
            paper = SZEGEDY_TABLE5["layers"]
            idx = [i for i, r in enumerate(rows) if r["name"] in paper]
            ax.scatter(
                idx,
                [paper[rows[i]["name"]] for i in idx],
                marker="x",
                color="red",
                zorder=3,
                label="Szegedy Table 5 (trained AlexNet)",
            )
        handles = [
            plt.Rectangle((0, 0), 1, 1, color=c)
            for k, c in colors.items()
            if any(r["kind"] == k for r in rows)
        ]
        labels = [k for k in colors if any(r["kind"] == k for r in rows)]
        ax.legend(
            handles + ax.get_legend_handles_labels()[0],
            labels + ax.get_legend_handles_labels()[1],
            fontsize=6,
            ncol=4,
            loc="best",
        )
    axes[-1, 0].set_xlabel("layer (network order)")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def run(cfg: LipschitzConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """Bounds every network of ``cfg``; returns the summary."""
    cfg.validate()
    t0 = time.time()
    specs = cfg.networks()
    # weights are read (and refused) before the work directory is touched
    loaded = {n: _load(*spec) for n, spec in specs.items()}
    wd = Workdir(workdir, cfg, overwrite=overwrite)
    done = wd.load_json("partial.json")
    for name, spec in specs.items():
        if name in done:
            log.info("%s: already done (resumed)", name)
            continue
        clf, model = loaded[name]
        done[name] = bound_network(cfg, name, clf, model, spec)
        wd.save_json("partial.json", done)
    networks = {n: done[n] for n in specs}
    save_bar_chart(wd.file("lipschitz_bounds.png"), networks)
    summary = {"paper": SZEGEDY_TABLE5, "wall_seconds": time.time() - t0}
    if cfg.model == "all":
        summary["networks"] = networks
    else:
        summary.update(next(iter(networks.values())))
    return wd.finish(summary)


def define_flags() -> None:
    config.define_workdir_flags()
    config.define_flags(LipschitzConfig)


def main(argv) -> None:
    del argv
    summary = run(
        config.from_flags(LipschitzConfig), FLAGS.workdir, overwrite=FLAGS.overwrite
    )
    print(f"results in {FLAGS.workdir} (summary.json, lipschitz_bounds.png)")
    nets = summary.get("networks") or {summary["model"]: summary}
    print_json_line(
        {
            n: {
                "product": round(s["product"], 4),
                "min_lbfgs_l2": s["lbfgs"].get("min_l2"),
            }
            for n, s in nets.items()
        }
    )
