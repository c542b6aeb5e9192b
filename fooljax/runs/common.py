"""Pieces every experiment family shares: the work directory of one run,
partial results for resumption, model loading and batched prediction."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np

from fooljax import data, models
from fooljax.errors import FooljaxError
from fooljax.io import integrity
from fooljax.io.caffe import load_binaryproto
from fooljax.io.workdir import prepare_workdir, write_summary
from fooljax.runs import distributed
from fooljax.train.zoo import zoo_classifier

log = logging.getLogger("fooljax")


class Workdir:
    """One run's directory: ``config.json`` (a run with other settings is
    refused), partial results that make an interrupted run resume, and
    ``summary.json`` last (its presence marks the run finished).

    Every file saved here has a ``.sha256`` sidecar (``io.integrity``). A
    partial result that is damaged, or has no sidecar (a crash between the file
    and its sidecar, or a run from before checksums), is treated as not saved:
    the ``load_*`` methods log one warning naming the file and return ``None``
    (``{}`` for JSON) so the run recomputes that piece; results are
    deterministic, so the final numbers are the same.
    """

    def __init__(self, path: str, config, *, overwrite: bool = False):
        if dataclasses.is_dataclass(config):
            config = dataclasses.asdict(config)
        self.path = path
        # multi-process: process 0 alone prepares (and alone writes: ``save_*``,
        # ``finish``); the others get its answer or its error
        self.resumed = distributed.main_first(
            prepare_workdir, path, config, overwrite=overwrite
        )

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _load(self, name: str) -> bytes | None:
        p = self.file(name)
        if not os.path.exists(p):
            return None
        if not integrity.has_checksum(p):
            log.warning("%s has no checksum (older or interrupted run); recomputing", p)
            return None
        try:
            return integrity.read_verified(p)
        except integrity.ChecksumError as e:
            log.warning("%s; recomputing it", e)
            return None

    def load_json(self, name: str) -> dict:
        """A partial-results file, ``{}`` when the run has none (or it is
        damaged)."""
        data = self._load(name)
        if data is None:
            return {}
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("%s is damaged (not JSON); recomputing it", self.file(name))
            return {}

    def save_json(self, name: str, obj) -> None:
        if distributed.is_main():
            integrity.write_json_verified(self.file(name), obj)

    def _save_arrays(self, name: str, save_fn, arrays) -> None:
        if not distributed.is_main():
            return
        buf = io.BytesIO()
        save_fn(buf, arrays)
        integrity.write_verified(self.file(name), buf.getvalue())

    def save_npz(self, name: str, **arrays) -> None:
        self._save_arrays(name, lambda f, a: np.savez(f, **a), arrays)

    def load_npz(self, name: str) -> dict[str, np.ndarray] | None:
        """The arrays of ``save_npz``; ``None``: not saved (or damaged)."""
        data = self._load(name)
        if data is None:
            return None
        try:
            with np.load(io.BytesIO(data)) as z:
                return {k: z[k] for k in z.files}
        except Exception as e:  # numpy/zipfile raise many types for bad bytes
            log.warning("%s is damaged (%s); recomputing it", self.file(name), e)
            return None

    def save_npy(self, name: str, array) -> None:
        self._save_arrays(name, np.save, np.asarray(array))

    def load_npy(self, name: str) -> np.ndarray | None:
        """The array of ``save_npy``; ``None``: not saved (or damaged)."""
        data = self._load(name)
        if data is None:
            return None
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as e:  # numpy raises many types for bad bytes
            log.warning("%s is damaged (%s); recomputing it", self.file(name), e)
            return None

    def finish(self, summary: dict) -> dict:
        """Writes ``summary.json`` (process 0); every process returns process
        0's summary."""
        if distributed.is_main():
            write_summary(self.path, summary)
        return distributed.broadcast_json(summary)


ARTIFACT = "artifact.npz"
ARTIFACT_KINDS = ("fooling", "adversarial")
_ARTIFACT_PREFIX = "artifact_"


def artifact_file(name: str | None = None) -> str:
    """``artifact.npz`` (a run with one source model) or ``artifact_<name>.npz``
    (one per source model of a run with several); ``name`` made file-safe."""
    if name is None:
        return ARTIFACT
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"{_ARTIFACT_PREFIX}{safe}.npz"


def save_artifact(
    workdir: str,
    images,
    labels,
    confidence,
    *,
    kind: str,
    model: str,
    weights: str,
    name: str | None = None,
) -> None:
    """The standard image set a run leaves for other experiments (transfer):
    ``images [N, H, W, C]`` float32 in [0, 1], ``labels [N]`` the class each
    was made for (fooling) or the true class (adversarial), ``confidence [N]``
    the source model's probability of that label, and the source model's name
    and weights; checksummed like every saved result. Written to
    ``artifact_file(name)``: runs with several source models pass one ``name``
    per model. Multi-process: process 0 writes it."""
    if kind not in ARTIFACT_KINDS:
        raise ValueError(f"artifact kind must be one of {ARTIFACT_KINDS}, got {kind}")
    if not distributed.is_main():
        return
    meta = json.dumps({"kind": kind, "model": model, "weights": weights})
    buf = io.BytesIO()
    np.savez(
        buf,
        images=np.asarray(images, np.float32),
        labels=np.asarray(labels, np.int32),
        confidence=np.asarray(confidence, np.float32),
        meta=np.asarray(meta),
    )
    integrity.write_verified(os.path.join(workdir, artifact_file(name)), buf.getvalue())


def list_artifacts(workdir: str) -> dict[str, str]:
    """``{name: path}`` of the artifacts in ``workdir`` (``""`` for
    ``artifact.npz``), sorted by name."""
    out = {}
    for f in sorted(os.listdir(workdir)):
        if f == ARTIFACT:
            out[""] = os.path.join(workdir, f)
        elif f.startswith(_ARTIFACT_PREFIX) and f.endswith(".npz"):
            out[f[len(_ARTIFACT_PREFIX) : -4]] = os.path.join(workdir, f)
    return out


def _artifact_path(source: str) -> str:
    """The artifact file a source names: a work directory (its only artifact),
    ``DIR:NAME`` (``artifact_NAME.npz`` there) or an artifact file."""
    name = None
    if not os.path.exists(source) and ":" in source:
        source, name = source.rsplit(":", 1)
    if os.path.isfile(source):
        base = os.path.basename(source)
        if not (base.startswith("artifact") and base.endswith(".npz")):
            raise FooljaxError(
                f"source {source} is a file, not a work directory or an artifact*.npz"
            )
        workdir, path = os.path.dirname(source) or ".", source
    else:
        workdir, path = source, None
    if not os.path.isdir(workdir):
        raise FooljaxError(f"source work directory {workdir} does not exist")
    if not os.path.exists(os.path.join(workdir, "summary.json")):
        raise FooljaxError(f"source {workdir} holds no finished run (no summary.json)")
    if path is not None:
        return path
    found = list_artifacts(workdir)
    shown = ", ".join(n or ARTIFACT for n in found)
    if name is not None:
        if name not in found:
            raise FooljaxError(
                f"source {workdir} holds no artifact named {name} "
                f"(it has: {shown or 'none'})"
            )
        return found[name]
    if not found:
        raise FooljaxError(
            f"source {workdir} holds no {ARTIFACT} (runs that make images write "
            "one; rerun it with this version)"
        )
    if len(found) > 1:
        raise FooljaxError(
            f"source {workdir} holds several artifacts ({shown}); name one as "
            f"{workdir}:NAME"
        )
    return next(iter(found.values()))


def load_artifact(source: str) -> dict:
    """``save_artifact``'s arrays plus ``kind``, ``model``, ``weights``.

    ``source``: a finished run's work directory holding one artifact,
    ``DIR:NAME`` for its ``artifact_NAME.npz``, or an artifact file. One
    ``FooljaxError`` line when the directory is missing, unfinished, holds no
    artifact, several (naming them), or a damaged one."""
    path = _artifact_path(source)
    try:
        with np.load(io.BytesIO(integrity.read_verified(path))) as z:
            out = {k: z[k] for k in ("images", "labels", "confidence")}
            meta = json.loads(str(z["meta"]))
    except integrity.ChecksumError:
        raise
    except Exception as e:  # numpy/zipfile raise many types for bad bytes
        raise FooljaxError(f"{path} cannot be read ({type(e).__name__})") from None
    return {**out, **meta}


def load_classifier(
    model: str, weights: str, preprocess: str | None = None, mean_file=None
) -> models.Classifier:
    """A registered model with ``weights``; Caffe mean subtraction from
    ``mean_file`` (a ``.binaryproto``) when given."""
    mean = load_binaryproto(mean_file) if mean_file else None
    return models.load_classifier(model, weights, preprocess=preprocess, mean=mean)


def load_mnist_test(data_dir: str | None, num_images: int | None = None):
    """``(images [N, 28, 28, 1] float32 in [0, 1], labels [N] int32)``."""
    x, y = data.load_dataset("mnist", "test", data_dir=data_dir)
    if num_images is not None:
        if not 1 <= num_images <= len(x):
            raise FooljaxError(f"num_images must be in 1..{len(x)}, got {num_images}")
        x, y = x[:num_images], y[:num_images]
    return x.astype(np.float32) / 255.0, np.asarray(y, np.int32)


def parse_model_list(spec) -> dict[str, str]:
    """``"shown=zoo_name,zoo_name2"`` (or a list) -> ``{shown: zoo_name}``."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        shown, _, zoo = item.partition("=")
        out[shown] = zoo or shown
    if not out:
        raise FooljaxError("no models given")
    return out


def zoo(zoo_name: str, zoo_dir: str, data_dir):
    return zoo_classifier(zoo_name, zoo_dir, data_dir=data_dir)


@functools.partial(jax.jit, static_argnums=0)
def _softmax(logits_fn, params, images):
    return jax.nn.softmax(logits_fn(params, images), axis=-1)


def predict(logits_fn, params, images, batch_size: int = 1000) -> np.ndarray:
    """Softmax probabilities ``[N, K]`` of ``images [N, H, W, C]`` in [0, 1],
    in calls of ``batch_size`` (compiled once per model and batch shape)."""
    outs = [
        np.asarray(_softmax(logits_fn, params, jnp.asarray(images[i : i + batch_size])))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outs)


def error_and_confidence(probs, labels) -> dict:
    """Error rate and mean confidence (max softmax) on the misclassified images."""
    pred = probs.argmax(1)
    wrong = pred != labels
    conf = probs.max(1)
    return {
        "error": float(wrong.mean()),
        "mean_confidence": float(conf[wrong].mean()) if wrong.any() else float("nan"),
        "mean_confidence_all": float(conf.mean()),
    }
