"""Su et al. 2019's analyses of one-pixel runs: the original -> target class
heat map and the number of target classes per image (targeted runs), and the
comparison with the local-search attack and FGSM at the same number of pixels
(non-targeted runs).

``analyse`` (``experiments.one_pixel_analysis``) reads the ``results.jsonl``
of finished **targeted** ``experiments.one_pixel`` runs (one line per image x
target: ``dataset_index``, ``label``, ``target``, ``success``, ...) and writes
``summary.json`` (per source: ``success_matrix[i][j]`` the fraction of attacks
from original class ``i`` to target ``j`` that succeeded, ``attempts``,
``classes_per_image`` histogram over 0..K-1 and its mean, the paper's values)
with ``heatmap.png`` and ``classes_per_image.png``.

``compare`` (``experiments.one_pixel_compare``) reloads the very images of
finished **non-targeted** one-pixel runs (their ``config.json`` and dataset
indices), attacks them with LSA (``attacks.local_search.local_search_batch``)
and ``k``-pixel FGSM (``attacks.local_search.sparse_fgsm``), and writes one
table ``methods[method][model]`` (success rate, mean L0 / L2 / L-inf of the
successful examples in [0, 1] pixel units over all channels, mean adversarial
confidence, mean queries for the black-box attacks) and ``compare.png``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import jax
import numpy as np
from absl import flags

from fooljax import data, models
from fooljax.attacks import local_search as ls
from fooljax.attacks import one_pixel as op
from fooljax.errors import FooljaxError
from fooljax.runs import config
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import Workdir, load_artifact, predict
from fooljax.runs.pictures import pyplot, save_figure

log = logging.getLogger("fooljax")
FLAGS = flags.FLAGS
opt = config.opt

# Su et al. (PAPERS.md, arXiv v1): 1-pixel targeted, images perturbable to
# n other classes: n = 1, 2, 3 -> 18.4, 17.2, 16.6 %; 2.3 classes on average.
PAPER_CLASSES_PER_IMAGE = {"mean": 2.3, "fraction": {1: 0.184, 2: 0.172, 3: 0.166}}
# non-targeted success (PAPERS.md): arXiv v1 CIFAR-10 1/3/5 pixels; the final
# version's 1-pixel All-conv figure.
PAPER_ONE_PIXEL = {1: 0.738, 3: 0.82, 5: 0.873}
PAPER_ONE_PIXEL_FINAL_ALLCONV = 0.6871
# The paper's comparison table quotes LSA on NiN / VGG (33 / 30 pixels
# changed); NOT in PAPERS.md: from the final version's table, unverified here.
PAPER_LSA = {"success": (0.9789, 0.9798), "pixels": (33, 30), "nets": "NiN/VGG"}


def _items(spec: str) -> list[str]:
    return [s.strip() for s in spec.split(",") if s.strip()]


def _read_json(path: str, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise FooljaxError(
            f"{path}: cannot read the {what} ({type(e).__name__})"
        ) from None


def read_results(source: str, *, targeted: bool) -> dict:
    """A finished one-pixel run: ``{"summary", "config", "rows"}``; one
    ``FooljaxError`` line when it is missing, unfinished, of the other kind
    (targeted / not), or its ``results.jsonl`` is missing, empty or damaged."""
    if not os.path.isdir(source):
        raise FooljaxError(f"source {source} is not a directory")
    if not os.path.exists(os.path.join(source, "summary.json")):
        raise FooljaxError(f"source {source} holds no finished run (no summary.json)")
    path = os.path.join(source, "results.jsonl")
    if not os.path.exists(path):
        raise FooljaxError(
            f"source {source} has no results.jsonl (not a one-pixel run)"
        )
    summary = _read_json(os.path.join(source, "summary.json"), "summary")
    cfg = (
        _read_json(os.path.join(source, "config.json"), "config")
        if os.path.exists(os.path.join(source, "config.json"))
        else {}
    )
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows.append(
                    {
                        "dataset_index": int(row["dataset_index"]),
                        "label": int(row["label"]),
                        "target": None if row["target"] is None else int(row["target"]),
                        "success": bool(row["success"]),
                        "confidence": float(row.get("confidence", float("nan"))),
                        "queries": int(row.get("queries", 0)),
                    }
                )
            except (ValueError, KeyError, TypeError):
                raise FooljaxError(
                    f"{path}: line {n} is not a one-pixel result row"
                ) from None
    if not rows:
        raise FooljaxError(f"{path} is empty: no attack results")
    is_targeted = rows[0]["target"] is not None
    if (
        is_targeted != targeted
        or bool(summary.get("targeted", is_targeted)) != targeted
    ):
        want, got = (
            ("targeted", "non-targeted") if targeted else ("non-targeted", "targeted")
        )
        raise FooljaxError(
            f"source {source} is a {got} run; this analysis needs a {want} "
            f"one-pixel run ({'--targeted' if targeted else 'without --targeted'})"
        )
    if any((r["target"] is not None) != targeted for r in rows):
        raise FooljaxError(f"{path} mixes targeted and non-targeted rows")
    return {"summary": summary, "config": cfg, "rows": rows}


def success_matrix(labels, targets, success, num_classes: int):
    """``(fraction [K, K], attempts [K, K] int)``: attacks from original class
    ``i`` to target ``j`` and the fraction that succeeded; NaN where none."""
    labels, targets = np.asarray(labels, int), np.asarray(targets, int)
    attempts = np.zeros((num_classes, num_classes), np.int64)
    hits = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(attempts, (labels, targets), 1)
    np.add.at(hits, (labels, targets), np.asarray(success, np.int64))
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(attempts > 0, hits / np.maximum(attempts, 1), np.nan)
    return frac, attempts


def classes_per_image(image_ids, success, num_classes: int):
    """``(per-image count of successful targets [N], histogram [K] over 0..K-1)``."""
    ids = np.asarray(image_ids)
    uniq, inv = np.unique(ids, return_inverse=True)
    counts = np.zeros(len(uniq), np.int64)
    np.add.at(counts, inv, np.asarray(success, np.int64))
    return counts, np.bincount(counts, minlength=num_classes)[:num_classes]


def _class_names(model: str | None, k: int) -> list[str]:
    try:
        names = models.get_spec(model).class_names if model else None
    except FooljaxError:
        names = None
    return list(names) if names and len(names) == k else [str(i) for i in range(k)]


def _nan_to_none(a):
    return [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in a]


def _source_name(src: dict, source: str) -> str:
    s = src["summary"]
    return f"{s.get('model', os.path.basename(source.rstrip('/')))}, {s.get('pixels', '?')} px"


# ----------------------------------------------------------------- analysis


@dataclasses.dataclass(frozen=True)
class OnePixelAnalysisConfig:
    sources: str = opt(
        "",
        "Comma list of finished TARGETED experiments.one_pixel work directories "
        "(their results.jsonl), e.g. one per network.",
    )

    def validate(self) -> None:
        if not _items(self.sources):
            raise FooljaxError("--sources names no targeted one-pixel work directory")


def analyse(cfg: OnePixelAnalysisConfig, workdir: str, *, overwrite=False) -> dict:
    """Heat map and classes-per-image histogram of every source."""
    cfg.validate()
    t0 = time.time()
    sources = {s: read_results(s, targeted=True) for s in _items(cfg.sources)}
    wd = Workdir(workdir, cfg, overwrite=overwrite)
    out = {}
    for s, src in sources.items():
        rows = src["rows"]
        k = int(max(max(r["label"], r["target"]) for r in rows)) + 1
        k = max(k, 10 if src["summary"].get("model", "").startswith("cifar") else k)
        labels = [r["label"] for r in rows]
        targets = [r["target"] for r in rows]
        success = [r["success"] for r in rows]
        frac, attempts = success_matrix(labels, targets, success, k)
        counts, hist = classes_per_image([r["dataset_index"] for r in rows], success, k)
        out[s] = {
            "name": _source_name(src, s),
            "model": src["summary"].get("model"),
            "pixels": src["summary"].get("pixels"),
            "population": src["summary"].get("population"),
            "max_generations": src["summary"].get("max_generations"),
            "num_images": int(len(counts)),
            "num_attacks": len(rows),
            "success_rate": float(np.mean(success)),
            "class_names": _class_names(src["summary"].get("model"), k),
            "success_matrix": _nan_to_none(frac),
            "attempts": attempts.tolist(),
            "classes_per_image_histogram": hist.tolist(),
            "classes_per_image_fraction": (hist / len(counts)).round(4).tolist(),
            "classes_per_image_mean": float(counts.mean()),
        }
    _plot_heatmaps(wd.file("heatmap.png"), out)
    _plot_histograms(wd.file("classes_per_image.png"), out)
    return wd.finish(
        {
            "sources": out,
            "paper": {
                "classes_per_image_mean_1px": PAPER_CLASSES_PER_IMAGE["mean"],
                "classes_per_image_fraction_1px": PAPER_CLASSES_PER_IMAGE["fraction"],
                "setting": "500 CIFAR-10 test images, all 9 targets, DE pop 400 x "
                "100 generations, All-conv / NiN / VGG16",
            },
            "wall_seconds": round(time.time() - t0, 3),
        }
    )


def _plot_heatmaps(path: str, out: dict) -> None:
    n = len(out)
    fig, axes = pyplot().subplots(1, n, figsize=(6.4 * n, 5.6), squeeze=False)
    for ax, r in zip(axes[0], out.values(), strict=True):
        frac = np.array(
            [[np.nan if v is None else v for v in row] for row in r["success_matrix"]]
        )
        im = ax.imshow(frac, vmin=0, vmax=1, cmap="viridis")
        names = r["class_names"]
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        per_row = np.max(r["attempts"], axis=1)  # images of each original class
        ax.set_yticks(
            range(len(names)),
            [f"{c} (n={m})" for c, m in zip(names, per_row, strict=True)],
            fontsize=8,
        )
        ax.set_xlabel("target class")
        ax.set_ylabel("original class")
        for (i, j), v in np.ndenumerate(frac):
            if not np.isnan(v):
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if v < 0.5 else "black",
                )
        ax.set_title(
            f"{r['name']}: {r['num_images']} images, "
            f"pop {r['population']} x {r['max_generations']} gens\n"
            f"fraction of targeted attacks that succeed (overall "
            f"{r['success_rate']:.3f})",
            fontsize=9,
        )
        fig.colorbar(im, ax=ax, fraction=0.046)
    save_figure(fig, path)


def _plot_histograms(path: str, out: dict) -> None:
    fig, ax = pyplot().subplots(figsize=(7, 4))
    n = len(out)
    width = 0.8 / max(n, 1)
    for i, r in enumerate(out.values()):
        xs = np.arange(len(r["classes_per_image_fraction"]))
        ax.bar(
            xs + (i - (n - 1) / 2) * width,
            r["classes_per_image_fraction"],
            width,
            label=f"{r['name']} ({r['num_images']} images, mean "
            f"{r['classes_per_image_mean']:.2f})",
        )
    px = sorted(PAPER_CLASSES_PER_IMAGE["fraction"])
    ax.plot(
        px,
        [PAPER_CLASSES_PER_IMAGE["fraction"][p] for p in px],
        "k_",
        markersize=18,
        markeredgewidth=2,
        label=f"paper, 1 px (mean {PAPER_CLASSES_PER_IMAGE['mean']})",
    )
    ax.set_xticks(range(10))
    ax.set_xlabel("number of target classes the image can be perturbed to")
    ax.set_ylabel("fraction of images")
    ax.set_title("Targeted one-pixel attack: target classes per image", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, path)


# --------------------------------------------------------------- comparison


@dataclasses.dataclass(frozen=True)
class OnePixelCompareConfig:
    sources: str = opt(
        "",
        "Comma list of finished NON-targeted experiments.one_pixel work "
        "directories; their images are attacked again (one network may have "
        "several pixel counts, on the same images).",
    )
    fgsm_pixels: str = opt("1,3,5", "Pixel counts k of the sparse FGSM rows.")
    fgsm_epsilon: float = opt(1.0, "Sparse FGSM step at its k pixels ([0, 1] units).")
    lsa_rounds: int = opt(150, "LSA rounds R (paper/foolbox: 150).")
    lsa_half_side: int = opt(5, "LSA neighbourhood half side d (5).")
    lsa_pixels_per_round: int = opt(5, "LSA pixels perturbed per round t (5).")
    lsa_perturbation: float = opt(1.5, "LSA CYCLIC multiplier r (1.5).")
    lsa_probe: float = opt(10.0, "LSA probe value p (foolbox: 10).")
    lsa_batch: int = opt(10, "Images per compiled LSA call.")
    lsa_overrides: str = opt(
        "",
        "Per-model LSA settings MODEL:FIELD=V[:FIELD=V],... over the lsa_* flags "
        "(fields of LocalSearchConfig, e.g. cifar_resnet32:half_side=2:max_rounds=20).",
    )
    max_images: str = opt(
        "",
        "Per-model cap MODEL=N,... on the images attacked (the first N of the "
        "source run's, every method alike); empty: all.",
    )
    data_dir: str | None = opt(None, "Data directory (default: the source run's).")
    seed: int = opt(0, "Random seed (LSA's seed pixels).")

    def validate(self) -> None:
        config.check_fields(
            self,
            fgsm_epsilon=dict(lo=0, hi=1, lo_open=True),
            lsa_rounds=(1, None),
            lsa_half_side=(0, None),
            lsa_pixels_per_round=(1, None),
            lsa_perturbation=dict(lo=0, hi=2, lo_open=True),
            lsa_probe=dict(lo=0, lo_open=True),
            lsa_batch=(1, None),
        )
        if not _items(self.sources):
            raise FooljaxError(
                "--sources names no non-targeted one-pixel work directory"
            )
        self.pixel_counts()
        self.image_caps()
        self.lsa_config(None)

    def pixel_counts(self) -> list[int]:
        try:
            ks = [int(v) for v in _items(self.fgsm_pixels)]
        except ValueError:
            raise FooljaxError(
                f"--fgsm_pixels must be a comma list of integers, got {self.fgsm_pixels!r}"
            ) from None
        if not ks or min(ks) < 1:
            raise FooljaxError(
                f"--fgsm_pixels must list counts >= 1, got {self.fgsm_pixels!r}"
            )
        return ks

    def image_caps(self) -> dict[str, int]:
        caps = {}
        for item in _items(self.max_images):
            name, _, n = item.partition("=")
            try:
                caps[name.strip()] = int(n)
            except ValueError:
                raise FooljaxError(
                    f"--max_images must be MODEL=N,..., got {self.max_images!r}"
                ) from None
            if caps[name.strip()] < 1:
                raise FooljaxError(f"--max_images counts must be >= 1, got {item!r}")
        return caps

    def lsa_config(self, model: str | None) -> ls.LocalSearchConfig:
        """The LSA settings of ``model`` (``None``: the lsa_* flags; every
        override is checked)."""
        base = self._lsa_base()
        fields = {f.name: f.type for f in dataclasses.fields(ls.LocalSearchConfig)}
        out = base
        for item in _items(self.lsa_overrides):
            name, *assigns = item.split(":")
            ov = {}
            for a in assigns:
                field, _, v = a.partition("=")
                if field not in fields:
                    raise FooljaxError(
                        f"--lsa_overrides: unknown field {field!r} in {item!r} "
                        f"(known: {', '.join(fields)})"
                    )
                try:
                    ov[field] = int(v) if fields[field] in (int, "int") else float(v)
                except ValueError:
                    raise FooljaxError(
                        f"--lsa_overrides: bad value in {item!r}"
                    ) from None
            cfg = dataclasses.replace(base, **ov)
            try:
                cfg.validate()
            except ValueError as e:
                raise FooljaxError(f"--lsa_overrides {item!r}: {e}") from None
            if name.strip() == model:
                out = cfg
        return out

    def _lsa_base(self) -> ls.LocalSearchConfig:
        return ls.LocalSearchConfig(
            perturbation=self.lsa_perturbation,
            probe=self.lsa_probe,
            half_side=self.lsa_half_side,
            pixels_per_round=self.lsa_pixels_per_round,
            max_rounds=self.lsa_rounds,
        )


def perturbation_stats(originals, adversarials, labels, probs) -> dict:
    """Success (misclassified) and, over the successes, mean L0 (pixels with
    any channel changed), L2 and L-inf (all channels, [0, 1] units) and the
    adversarial class's probability."""
    diff = np.asarray(adversarials, np.float64) - np.asarray(originals, np.float64)
    pred = probs.argmax(-1)
    ok = pred != np.asarray(labels)
    l0 = (np.abs(diff) > 1e-6).any(-1).sum((1, 2))
    l2 = np.sqrt((diff**2).sum((1, 2, 3)))
    linf = np.abs(diff).max((1, 2, 3))
    conf = probs[np.arange(len(pred)), pred]

    def mean(v):
        return float(v[ok].mean()) if ok.any() else None

    return {
        "num_images": int(len(ok)),
        "success_rate": float(ok.mean()),
        "mean_l0": mean(l0),
        "mean_l2": mean(l2),
        "mean_linf": mean(linf),
        "mean_confidence": mean(conf),
        "max_l0": int(l0.max()) if len(l0) else 0,
    }


def _network_images(src: dict, source: str, data_dir):
    """The source run's images (uint8 -> [0, 1]), labels and indices."""
    c, rows = src["config"], src["rows"]
    idx = np.asarray([r["dataset_index"] for r in rows])
    images, labels = data.load_dataset(
        c.get("dataset", "cifar10_files"),
        c.get("split", "test"),
        data_dir=data_dir or c.get("data_dir"),
        source=c.get("data_source", "idx"),
    )
    if idx.max() >= len(images):
        raise FooljaxError(
            f"source {source} names images beyond the dataset's {len(images)}"
        )
    got = labels[idx]
    want = np.asarray([r["label"] for r in rows])
    if not np.array_equal(got, want):
        raise FooljaxError(
            f"source {source}: the dataset's labels differ from its results"
        )
    return images[idx].astype(np.float32) / 255.0, want.astype(np.int32), idx


def compare(cfg: OnePixelCompareConfig, workdir: str, *, overwrite=False) -> dict:
    """LSA and k-pixel FGSM on the images of non-targeted one-pixel runs."""
    cfg.validate()
    t0 = time.time()
    ks = cfg.pixel_counts()
    sources = {s: read_results(s, targeted=False) for s in _items(cfg.sources)}
    nets: dict[tuple, list[str]] = {}
    for s, src in sources.items():
        key = (src["summary"].get("model"), src["summary"].get("weights"))
        if None in key:
            raise FooljaxError(f"source {s}: summary.json names no model/weights")
        nets.setdefault(key, []).append(s)
    wd = Workdir(workdir, cfg, overwrite=overwrite)
    methods: dict[str, dict] = {}
    num_images: dict[str, int] = {}
    lsa_used: dict[str, dict] = {}
    for (model, weights), srcs in nets.items():
        clf = models.load_classifier(model, weights)
        lsa_cfg = cfg.lsa_config(model)
        lsa_cfg.validate(clf.input_shape)
        lsa_used[model] = dataclasses.asdict(lsa_cfg)
        x, y, idx = _network_images(sources[srcs[0]], srcs[0], cfg.data_dir)
        cap = cfg.image_caps().get(model, len(y))
        for s in srcs[1:]:
            if [r["dataset_index"] for r in sources[s]["rows"]] != idx.tolist():
                raise FooljaxError(
                    f"sources {srcs[0]} and {s} attacked different images"
                )
        x, y, idx = x[:cap], y[:cap], idx[:cap]
        num_images[model] = len(y)
        clean = predict(clf.logits_fn, clf.params, x, 100)
        log.info(
            "%s: %d images, clean accuracy %.3f",
            model,
            len(y),
            (clean.argmax(1) == y).mean(),
        )
        # the one-pixel runs themselves, measured on their saved images
        for s in srcs:
            art = load_artifact(s)
            k_src = int(sources[s]["summary"].get("pixels", 0))
            adv = art["images"]
            if adv.shape[1:] != x.shape[1:] or len(adv) != len(sources[s]["rows"]):
                raise FooljaxError(
                    f"source {s}: artifact.npz does not match its results.jsonl"
                )
            adv, src_rows = adv[:cap], sources[s]["rows"][:cap]
            row = perturbation_stats(
                x, adv, y, predict(clf.logits_fn, clf.params, adv, 100)
            )
            if row["max_l0"] > k_src:
                raise FooljaxError(
                    f"source {s}: its images differ from the reloaded ones in "
                    f"{row['max_l0']} > {k_src} pixels (another dataset?)"
                )
            row["mean_queries"] = float(np.mean([r["queries"] for r in src_rows]))
            row["reported_success_rate"] = float(
                np.mean([r["success"] for r in src_rows])
            )
            row["population"] = sources[s]["summary"].get("population")
            row["max_generations"] = sources[s]["summary"].get("max_generations")
            methods.setdefault(f"one_pixel_{k_src}px", {})[model] = row
        # k-pixel FGSM (white box, one gradient)
        for sel in ls.SELECTIONS:
            for k in ks:
                adv = np.concatenate(
                    [
                        np.asarray(
                            ls.sparse_fgsm(
                                clf.logits_fn,
                                clf.params,
                                x[i : i + 100],
                                y[i : i + 100],
                                num_pixels=k,
                                epsilon=cfg.fgsm_epsilon,
                                selection=sel,
                                input_shape=clf.input_shape,
                            )
                        )
                        for i in range(0, len(x), 100)
                    ]
                )
                row = perturbation_stats(
                    x, adv, y, predict(clf.logits_fn, clf.params, adv, 100)
                )
                name = f"fgsm_{k}px" if sel == "gradient" else f"fgsm_{sel}_{k}px"
                methods.setdefault(name, {})[model] = row
        # LSA (black box), saved per network so a restarted run resumes
        part = f"lsa_{model}.npz"
        saved = wd.load_npz(part)
        if saved is None:
            t1 = time.time()
            probs_fn = op.probs_from_logits(clf.logits_fn)
            outs = []
            for i in range(0, len(x), cfg.lsa_batch):
                xb, yb, ib = (
                    x[i : i + cfg.lsa_batch],
                    y[i : i + cfg.lsa_batch],
                    idx[i : i + cfg.lsa_batch],
                )
                pad = cfg.lsa_batch - len(xb)  # one compiled shape for every batch
                if pad:
                    xb = np.concatenate([xb, np.repeat(xb[-1:], pad, 0)])
                    yb = np.concatenate([yb, np.repeat(yb[-1:], pad, 0)])
                    ib = np.concatenate([ib, np.repeat(ib[-1:], pad, 0)])
                res = ls.local_search_batch(
                    jax.random.key(cfg.seed),
                    probs_fn,
                    clf.params,
                    xb,
                    yb,
                    config=lsa_cfg,
                    image_indices=ib,
                    input_shape=clf.input_shape,
                )
                res = jax.tree.map(lambda a: np.asarray(a)[: len(xb) - pad], res)
                outs.append(res)
                log.info(
                    "%s LSA: images %d-%d, %d fooled, %.0f s",
                    model,
                    i,
                    i + len(res.success),
                    int(res.success.sum()),
                    time.time() - t1,
                )
            saved = {
                f: np.concatenate([getattr(o, f) for o in outs])
                for f in ls.LocalSearchResult._fields
            } | {"seconds": np.asarray(time.time() - t1)}
            wd.save_npz(part, **saved)
        row = perturbation_stats(
            x,
            saved["adversarial_image"],
            y,
            predict(clf.logits_fn, clf.params, saved["adversarial_image"], 100),
        )
        row["mean_queries"] = float(saved["queries"].mean())
        row["mean_rounds"] = float(saved["rounds"].mean())
        row["seconds"] = round(float(saved["seconds"]), 1)
        methods.setdefault("lsa", {})[model] = row
    _plot_compare(wd.file("compare.png"), methods, [m for m, _ in nets], num_images)
    return wd.finish(
        {
            "methods": methods,
            "models": [m for m, _ in nets],
            "num_images": num_images,
            "lsa": lsa_used,
            "fgsm_epsilon": cfg.fgsm_epsilon,
            "perturbation_note": "L0 = pixels changed; L2, L-inf over all channels in "
            "[0, 1] units; means over the successful examples",
            "paper": {
                "one_pixel_success_v1": PAPER_ONE_PIXEL,
                "one_pixel_success_final_allconv_1px": PAPER_ONE_PIXEL_FINAL_ALLCONV,
                "lsa_success_nin_vgg": PAPER_LSA["success"],
                "lsa_pixels_nin_vgg": PAPER_LSA["pixels"],
                "lsa_note": "quoted in the paper's comparison table, not in PAPERS.md",
            },
            "wall_seconds": round(time.time() - t0, 3),
        }
    )


def _paper_marker(method: str):
    """The paper's success rate(s) for a row, or None."""
    if method.startswith("one_pixel_") and method.endswith("px"):
        return PAPER_ONE_PIXEL.get(int(method[len("one_pixel_") : -2]))
    if method == "lsa":
        return float(np.mean(PAPER_LSA["success"]))
    return None


def _plot_compare(
    path: str, methods: dict, model_names: list[str], num_images: dict | None = None
) -> None:
    order = sorted(
        methods, key=lambda m: (not m.startswith("one_pixel"), m != "lsa", m)
    )
    fig, (a1, a2) = pyplot().subplots(1, 2, figsize=(12, 4.6))
    n = len(model_names)
    width = 0.8 / max(n, 1)
    xs = np.arange(len(order))
    for i, m in enumerate(model_names):
        off = (i - (n - 1) / 2) * width
        sr = [methods[o].get(m, {}).get("success_rate", np.nan) for o in order]
        l0 = [methods[o].get(m, {}).get("mean_l0") or np.nan for o in order]
        label = f"{m} ({num_images[m]} images)" if num_images else m
        a1.bar(xs + off, sr, width, label=label)
        a2.bar(xs + off, l0, width, label=label)
    ref = [(j, _paper_marker(o)) for j, o in enumerate(order) if _paper_marker(o)]
    if ref:
        a1.plot(
            *zip(*ref, strict=True),
            "k_",
            markersize=20,
            markeredgewidth=2,
            label="paper (1/3/5 px: arXiv v1; LSA: NiN/VGG)",
        )
    if "lsa" in order:
        a2.plot(
            [order.index("lsa")],
            [np.mean(PAPER_LSA["pixels"])],
            "k_",
            markersize=20,
            markeredgewidth=2,
            label="paper LSA (NiN/VGG)",
        )
    for ax in (a1, a2):
        ax.set_xticks(xs, order, rotation=30, ha="right", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    a1.set_ylabel("success rate (non-targeted)")
    a1.set_ylim(0, 1.05)
    a1.set_title("Success on the one-pixel runs' images", fontsize=10)
    a2.set_ylabel("mean pixels changed (L0), successes")
    a2.set_yscale("log")
    a2.set_title("Perturbation size", fontsize=10)
    save_figure(fig, path)


# ---------------------------------------------------------------------- CLI


def define_analysis_flags() -> None:
    config.define_workdir_flags()
    config.define_flags(OnePixelAnalysisConfig)


def define_compare_flags() -> None:
    config.define_workdir_flags()
    config.define_flags(OnePixelCompareConfig)


def analysis_main(argv) -> None:
    del argv
    summary = analyse(
        config.from_flags(OnePixelAnalysisConfig),
        FLAGS.workdir,
        overwrite=FLAGS.overwrite,
    )
    print(
        f"results in {FLAGS.workdir} (summary.json, heatmap.png, classes_per_image.png)"
    )
    print_json_line(
        {
            r["name"]: {
                "success_rate": round(r["success_rate"], 4),
                "classes_per_image_mean": round(r["classes_per_image_mean"], 3),
            }
            for r in summary["sources"].values()
        }
    )


def compare_main(argv) -> None:
    del argv
    summary = compare(
        config.from_flags(OnePixelCompareConfig),
        FLAGS.workdir,
        overwrite=FLAGS.overwrite,
    )
    print(f"results in {FLAGS.workdir} (summary.json, compare.png)")
    print_json_line(
        {
            m: {n: round(r["success_rate"], 4) for n, r in row.items()}
            for m, row in summary["methods"].items()
        }
    )
