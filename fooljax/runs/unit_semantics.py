"""Units versus random directions (Szegedy et al., ICLR 2014, Sec. 3, Figs. 1-4).

For a hidden layer ``phi`` of a network, the held-out images that maximise
``<phi(x), v>`` for a natural basis vector ``v = e_i`` (one unit) and for
random directions ``v`` (unit-norm Gaussian, fixed seed). The paper's claim:
the top images of a random direction look as semantically coherent as those of
a unit, so the units are not special; the information is in the space.

``phi`` is the output of one of the model's own submodules (its Flax name:
``fc1``, ``ip1``, ``dense_1``, ``batch_normalization_31``, ...), captured with
``capture_intermediates``, optionally through a ReLU (what the next layer sees
for every hidden Dense layer of fooljax's nets) and averaged over the spatial
axes of a convolutional map. All test images run through one jitted
``lax.scan`` over fixed-size batches that keeps a running top-k per unit and
per direction, so no ``[N, D]`` activation matrix is ever held.

``run(UnitSemanticsConfig(...), workdir)`` writes ``summary.json`` (per row:
the kind, unit index or direction number, the top-k test indices, their labels
and activation values, the fraction of the top-k sharing the majority label)
and ``units.png`` / ``random_directions.png``. Coherence is measured by labels
only: the fraction of each row's top-k with the row's majority label, averaged
over rows, next to the same measure for random k-subsets of the test set.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from fooljax import data, models
from fooljax.errors import FooljaxError
from fooljax.models.preprocess import PREPROCESS_NAMES, make_preprocess
from fooljax.models.registry import get_spec, init_params
from fooljax.runs import config
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import Workdir
from fooljax.runs.pictures import save_grid_png

log = logging.getLogger("fooljax")
FLAGS = flags.FLAGS
opt = config.opt

UNIT_GRID = "units.png"
RANDOM_GRID = "random_directions.png"


@dataclasses.dataclass(frozen=True)
class UnitSemanticsConfig:
    model: str = opt("lenet", "Registered model name.")
    weights: str = opt(
        "default", "Weights: default, a params.npz, a training work dir, a .h5, ..."
    )
    preprocess: str = opt(
        "", "Preprocessing (empty: the model's own).", choices=("", *PREPROCESS_NAMES)
    )
    dataset: str = opt("mnist", "Dataset whose test split is searched.")
    data_dir: str | None = opt(None, "Dataset directory (default $FOOLJAX_DATA).")
    layer: str = opt("ip1", "The model's own name of the layer (a submodule).")
    nonlinearity: str = opt(
        "relu", "Applied to the layer's output.", choices=("relu", "none")
    )
    spatial: str = opt(
        "flatten",
        "Conv maps: flatten (a unit is one position and channel) or mean (a "
        "unit is a channel averaged over positions).",
        choices=("flatten", "mean"),
    )
    num_units: int = opt(8, "Units (natural basis vectors) shown.")
    num_directions: int = opt(8, "Random directions shown.")
    num_measured_directions: int = opt(
        200,
        "Random directions in the coherence over many rows (every active unit "
        "is measured too); the first num_directions of them are shown.",
    )
    top_k: int = opt(8, "Images per unit / direction.")
    num_images: int = opt(0, "Test images searched (0: all).")
    batch_size: int = opt(500, "Images per forward call.")
    seed: int = opt(0, "Seed of the random directions, the units and the baseline.")

    def validate(self) -> None:
        config.check_fields(
            self,
            num_units=(0, None),
            num_directions=(0, None),
            num_measured_directions=(0, None),
            top_k=(1, None),
            num_images=(0, None),
            batch_size=(1, None),
        )
        if self.num_units + self.num_directions == 0:
            raise FooljaxError("--num_units and --num_directions are both 0")
        if not self.layer:
            raise FooljaxError("--layer is empty")


# ------------------------------------------------------------------ the layer


def _walk(tree, prefix=()):
    """``{path: array}`` of the captured ``__call__`` outputs, in call order."""
    out = {}
    for k, v in tree.items():
        if k == "__call__":
            if prefix:  # () is the model's own output
                out[prefix] = v[0]
        else:
            out.update(_walk(v, (*prefix, k)))
    return out


def layer_shapes(module, params, input_shape) -> dict[str, tuple[int, ...]]:
    """``{"name" or "outer/inner": per-image output shape}`` of every submodule
    of ``module``, in call order; abstract evaluation (nothing computed)."""
    _, state = jax.eval_shape(
        lambda p, x: module.apply(
            p, x, capture_intermediates=True, mutable=["intermediates"]
        ),
        params,
        jax.ShapeDtypeStruct((1, *input_shape), jnp.float32),
    )
    return {
        "/".join(p): tuple(a.shape[1:])
        for p, a in _walk(state.get("intermediates", {})).items()
    }


def make_features_fn(
    module, preprocess_fn, layer: str, *, nonlinearity="relu", spatial="flatten"
):
    """``features_fn(params, images [B, H, W, C]) -> [B, D]``: the output of
    ``module``'s submodule ``layer`` (``"outer/inner"`` for nested ones), through
    ``nonlinearity`` and, for maps ``[B, h, w, c]`` with ``spatial="mean"``,
    averaged over ``h, w``. Pure; only that submodule's output is captured."""
    path = tuple(layer.split("/"))

    def keep(mdl, method_name):
        return method_name == "__call__" and tuple(mdl.path) == path

    def features_fn(params, images):
        _, state = module.apply(
            params,
            preprocess_fn(images),
            capture_intermediates=keep,
            mutable=["intermediates"],
        )
        a = _walk(state["intermediates"])[path]
        if nonlinearity == "relu":
            a = jax.nn.relu(a)
        if spatial == "mean" and a.ndim == 4:
            a = a.mean(axis=(1, 2))
        return a.reshape(a.shape[0], -1)

    return features_fn


# ------------------------------------------------------------------ the search


def merge_top_k(values, indices, new_values, new_indices, k: int):
    """Running top-k per column: ``values, indices [k, M]`` and a batch
    ``new_values [B, M]`` with ``new_indices [B]`` -> the ``k`` largest of both
    per column (ties: the earlier rows), ``[k, M]`` each. Pure."""
    all_v = jnp.concatenate([values, new_values], axis=0)
    all_i = jnp.concatenate(
        [indices, jnp.broadcast_to(new_indices[:, None], new_values.shape)], axis=0
    )
    top_v, pos = jax.lax.top_k(all_v.T, k)  # [M, k]
    return top_v.T, jnp.take_along_axis(all_i.T, pos, axis=1).T


@functools.partial(jax.jit, static_argnums=(0, 5))
def scan_top_k(features_fn, params, batches, valid, directions, k: int):
    """Top-k images along every unit and every direction, in one pass.

    Args:
      features_fn: ``(params, images [B, H, W, C]) -> [B, D]``.
      batches: ``[nb, B, H, W, C]`` images.
      valid: ``[nb, B]`` bool, False on padding rows (never selected).
      directions: ``[D, R]`` unit-norm columns.
      k: images kept per unit / direction.

    Returns:
      ``(values [k, D + R], indices [k, D + R], sum [D], sum_sq [D])``: the
      units' columns first, values in decreasing order, indices into the
      flattened batches; the sums over the valid rows give each unit's spread.
    """
    nb, b = batches.shape[:2]
    d_dim, r = directions.shape

    def step(carry, xs):
        values, indices, s, s2 = carry
        i, images, ok = xs
        feats = features_fn(params, images).astype(jnp.float32)  # [B, D]
        proj = jnp.concatenate([feats, feats @ directions], axis=1)
        proj = jnp.where(ok[:, None], proj, -jnp.inf)
        values, indices = merge_top_k(
            values, indices, proj, i * b + jnp.arange(b, dtype=jnp.int32), k
        )
        feats = jnp.where(ok[:, None], feats, 0.0)
        return (values, indices, s + feats.sum(0), s2 + (feats**2).sum(0)), None

    init = (
        jnp.full((k, d_dim + r), -jnp.inf, jnp.float32),
        jnp.full((k, d_dim + r), -1, jnp.int32),
        jnp.zeros(d_dim, jnp.float32),
        jnp.zeros(d_dim, jnp.float32),
    )
    (values, indices, s, s2), _ = jax.lax.scan(
        step, init, (jnp.arange(nb, dtype=jnp.int32), batches, valid)
    )
    return values, indices, s, s2


def search(features_fn, params, images, directions, *, k: int, batch_size: int):
    """``scan_top_k`` over ``images [N, H, W, C]`` (padded to whole batches,
    padding masked): ``dict`` of NumPy arrays ``unit_values/unit_indices [k, D]``,
    ``dir_values/dir_indices [k, R]``, ``mean/std [D]`` over the ``N`` images."""
    n = len(images)
    if k > n:
        raise FooljaxError(f"--top_k={k} is more than the {n} test images searched")
    b = min(batch_size, n)
    nb = -(-n // b)
    pad = nb * b - n
    x = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
    valid = (np.arange(nb * b) < n).reshape(nb, b)
    values, indices, s, s2 = scan_top_k(
        features_fn,
        params,
        jnp.asarray(x.reshape(nb, b, *images.shape[1:])),
        jnp.asarray(valid),
        jnp.asarray(directions, jnp.float32),
        k,
    )
    d_dim = directions.shape[0]
    values, indices = np.asarray(values), np.asarray(indices)
    mean = np.asarray(s) / n
    var = np.maximum(np.asarray(s2) / n - mean**2, 0.0)
    return {
        "unit_values": values[:, :d_dim],
        "unit_indices": indices[:, :d_dim],
        "dir_values": values[:, d_dim:],
        "dir_indices": indices[:, d_dim:],
        "mean": mean,
        "std": np.sqrt(var),
    }


def random_directions(key, dim: int, num: int) -> jnp.ndarray:
    """``[dim, num]`` Gaussian columns scaled to unit norm."""
    v = jax.random.normal(key, (dim, num))
    return v / jnp.linalg.norm(v, axis=0, keepdims=True)


def majority_fraction(labels) -> float:
    """The fraction of ``labels`` equal to their most frequent value."""
    labels = np.asarray(labels)
    return float(np.bincount(labels).max() / len(labels))


def _mean_majority(indices, labels):
    """``majority_fraction`` of each column of ``indices [k, M]``, averaged."""
    if indices.shape[1] == 0:
        return None
    return float(np.mean([majority_fraction(labels[c]) for c in indices.T]))


def chance_coherence(labels, k: int, *, seed: int, num_draws: int = 2000) -> float:
    """``majority_fraction`` of random k-subsets of ``labels``, averaged."""
    rng = np.random.default_rng(seed)
    idx = np.argsort(rng.random((num_draws, len(labels))), axis=1)[:, :k]
    return float(np.mean([majority_fraction(labels[i]) for i in idx]))


# ------------------------------------------------------------------ the run


def _check_layer(cfg: UnitSemanticsConfig, spec) -> tuple[int, ...]:
    """The per-image shape of ``cfg.layer``'s output; one line listing the
    model's layers when it has no such layer."""
    shapes = layer_shapes(spec.build(), init_params(spec), spec.input_shape)
    if cfg.layer not in shapes:
        raise FooljaxError(
            f"model '{cfg.model}' has no layer '{cfg.layer}' (its layers: "
            f"{', '.join(shapes)})"
        )
    return shapes[cfg.layer]


def _load_images(cfg: UnitSemanticsConfig, input_shape):
    x, y = data.load_dataset(cfg.dataset, "test", data_dir=cfg.data_dir)
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise FooljaxError(
            f"dataset '{cfg.dataset}' has images {list(x.shape[1:])}, model "
            f"'{cfg.model}' takes {list(input_shape)}"
        )
    if cfg.num_images:
        if cfg.num_images > len(x):
            raise FooljaxError(
                f"--num_images={cfg.num_images} is more than the {len(x)} test images"
            )
        x, y = x[: cfg.num_images], y[: cfg.num_images]
    return x.astype(np.float32) / 255.0, np.asarray(y, np.int32)


def _rows(kind, columns, values, indices, labels, names, positions=None):
    rows = []
    for j, col in enumerate(columns):
        idx = indices[:, col]
        row = {
            "kind": kind,
            "index": int(col) if kind == "unit" else j,
            "top_indices": [int(i) for i in idx],
            "labels": [int(labels[i]) for i in idx],
            "label_names": [names[labels[i]] for i in idx],
            "activations": [float(v) for v in values[:, col]],
            "majority_fraction": majority_fraction(labels[idx]),
        }
        if positions is not None:
            row["position"] = [int(p) for p in positions[j]]
        rows.append(row)
    return rows


def _grid(path, images, rows, *, row_name):
    titles = [
        f"{n} {v:.3g}"
        for r in rows
        for n, v in zip(r["label_names"], r["activations"], strict=True)
    ]
    save_grid_png(
        path,
        np.concatenate([images[r["top_indices"]] for r in rows]),
        ncols=len(rows[0]["top_indices"]),
        titles=titles,
        row_labels=[row_name(r) for r in rows],
    )


def run(cfg: UnitSemanticsConfig, workdir: str, *, overwrite: bool = False) -> dict:
    """The top-k test images of ``num_units`` units and ``num_directions``
    random directions of ``layer``; see the module docstring."""
    cfg.validate()
    spec = get_spec(cfg.model)
    layer_shape = _check_layer(cfg, spec)
    clf = models.load_classifier(cfg.model, cfg.weights, preprocess=cfg.preprocess)
    pre = make_preprocess(
        cfg.preprocess or spec.default_preprocess, image_shape=spec.input_shape
    )
    x, y = _load_images(cfg, spec.input_shape)
    wd = Workdir(workdir, cfg, overwrite=overwrite)
    t0 = time.time()
    features_fn = make_features_fn(
        spec.build(),
        pre,
        cfg.layer,
        nonlinearity=cfg.nonlinearity,
        spatial=cfg.spatial,
    )
    dim = int(jax.eval_shape(features_fn, clf.params, x[:1]).shape[1])
    key = jax.random.key(cfg.seed)
    num_dirs = max(cfg.num_directions, cfg.num_measured_directions)
    directions = random_directions(jax.random.fold_in(key, 0), dim, num_dirs)
    found = search(
        features_fn, clf.params, x, directions, k=cfg.top_k, batch_size=cfg.batch_size
    )
    # units that do not vary over the test set (dead ReLUs) have no top images
    active = np.flatnonzero(found["std"] > 0)
    if cfg.num_units and not active.size:
        raise FooljaxError(f"no unit of layer '{cfg.layer}' varies over the images")
    num_units = min(cfg.num_units, active.size)
    units = np.sort(
        np.asarray(
            jax.random.choice(
                jax.random.fold_in(key, 1), active, (num_units,), replace=False
            )
        )
    )
    names = spec.class_names or tuple(str(i) for i in range(clf.num_classes))
    grid_shape = layer_shape if cfg.spatial == "flatten" else layer_shape[-1:]
    positions = (
        np.stack(np.unravel_index(units, grid_shape), axis=1)
        if len(grid_shape) > 1
        else None
    )
    unit_rows = _rows(
        "unit", units, found["unit_values"], found["unit_indices"], y, names, positions
    )
    dir_rows = _rows(
        "random",
        np.arange(cfg.num_directions),
        found["dir_values"],
        found["dir_indices"],
        y,
        names,
    )
    if unit_rows:
        _grid(wd.file(UNIT_GRID), x, unit_rows, row_name=lambda r: f"unit {r['index']}")
    if dir_rows:
        _grid(
            wd.file(RANDOM_GRID),
            x,
            dir_rows,
            row_name=lambda r: f"random {r['index']}",
        )

    def mean_majority(rows):
        return float(np.mean([r["majority_fraction"] for r in rows])) if rows else None

    coherence = {
        "unit": mean_majority(unit_rows),
        "random": mean_majority(dir_rows),
        "random_images": chance_coherence(y, cfg.top_k, seed=cfg.seed),
    }
    # the same measure over every active unit and all measured directions
    coherence_all = {
        "unit": _mean_majority(found["unit_indices"][:, active], y),
        "random": _mean_majority(found["dir_indices"], y),
        "num_units": int(active.size),
        "num_directions": num_dirs,
    }
    log.info(
        "layer %s (%d dims, %d active units): majority-label fraction of the "
        "top %d: units %s, random directions %s, random images %.3f; over all "
        "%d units / %d directions: %s / %s",
        cfg.layer,
        dim,
        active.size,
        cfg.top_k,
        coherence["unit"],
        coherence["random"],
        coherence["random_images"],
        coherence_all["num_units"],
        coherence_all["num_directions"],
        coherence_all["unit"],
        coherence_all["random"],
    )
    return wd.finish(
        {
            "model": cfg.model,
            "weights": cfg.weights,
            "dataset": cfg.dataset,
            "layer": cfg.layer,
            "layer_shape": list(layer_shape),
            "dim": dim,
            "num_active_units": int(active.size),
            "num_images": int(len(x)),
            "top_k": cfg.top_k,
            "coherence": coherence,
            "coherence_all": coherence_all,
            "coherence_measure": (
                "fraction of a row's top-k test images that share the row's "
                "majority label, averaged over rows; random_images: the same for "
                "uniformly random k-subsets of the test images"
            ),
            "rows": unit_rows + dir_rows,
            "pictures": [
                p
                for p, rows in ((UNIT_GRID, unit_rows), (RANDOM_GRID, dir_rows))
                if rows
            ],
            "wall_seconds": time.time() - t0,
        }
    )


def define_flags() -> None:
    config.define_workdir_flags()
    config.define_flags(UnitSemanticsConfig)


def main(argv) -> None:
    del argv
    summary = run(
        config.from_flags(UnitSemanticsConfig), FLAGS.workdir, overwrite=FLAGS.overwrite
    )
    print(
        f"results in {FLAGS.workdir} (summary.json, {', '.join(summary['pictures'])})"
    )
    print_json_line(
        {
            "layer": summary["layer"],
            "coherence": summary["coherence"],
            "coherence_all": summary["coherence_all"],
        }
    )
