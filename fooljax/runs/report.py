"""The reproduction report: REPORT.md, report.html and report.json from a
``scripts.reproduce`` work directory, and the README's headline table.

``build_report(root)`` reads only ROOT (``reproduce.json``, each job's
``summary.json`` and pictures) and returns ``(markdown, html, data)``: one
table per paper, one row per table or figure of the paper (the paper's
number, ours extracted from the job's summary by a small function of the row,
the difference in words, the command, the picture), then the peer
comparisons, the device, versions and per-job times. Deterministic: sorted
keys, fixed formatting, relative paths only, no clock but the times stored in
``reproduce.json``; so ``--from_existing`` rebuilds the same bytes.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import os
import re
from collections.abc import Callable

from PIL import Image

from fooljax.errors import FooljaxError
from fooljax.io.workdir import SUMMARY
from fooljax.runs import reproduce

REPORT_MD = "REPORT.md"
REPORT_HTML = "report.html"
REPORT_JSON = "report.json"
BEGIN = "<!-- report:headline:begin -->"
END = "<!-- report:headline:end -->"
PAPER_TITLES = {
    "Nguyen": "Nguyen et al. 2015, fooling images (CVPR)",
    "Szegedy": "Szegedy et al. 2014, intriguing properties (ICLR)",
    "Goodfellow": "Goodfellow et al. 2015, explaining and harnessing (ICLR)",
    "Su": "Su et al. 2019, one pixel attack (IEEE TEVC)",
}


@dataclasses.dataclass(frozen=True)
class Row:
    """One table or figure of a paper: ``ours(summary)`` -> text."""

    paper: str
    item: str
    paper_value: str
    job: str
    ours: Callable[[dict], str]
    difference: str
    pictures: tuple[str, ...] = ()
    headline: bool = False


# ---------------------------------------------------------------- formatting


def get(s: dict, path: str):
    """``s["a"]["b"]`` for ``path="a/b"``."""
    for k in path.split("/"):
        s = s[k]
    return s


def pct(x, digits: int = 1) -> str:
    return f"{100 * float(x):.{digits}f} %"


def num(x, digits: int = 3) -> str:
    return f"{float(x):.{digits}f}"


def _confidence(x) -> str:
    """A probability near 1 with enough digits to tell 0.9999 from 0.99999."""
    x = float(x)
    if x >= 0.99999:
        return f"{x:.7f}"
    if x >= 0.999:
        return f"{x:.5f}"
    return f"{x:.3f}"


# ------------------------------------------------------------- row extractors


def _fooling(s: dict) -> str:
    first = get(s, "first_generation_all_at_least/0.9999")
    n = get(s, "num_classes_at_least/0.9999")
    k = len(s["confidence"])
    gens = s["generations"]
    when = f"all by gen {first}" if first is not None else "not all"
    return (
        f"{n}/{k} classes ≥ 0.9999 ({when}; {gens} gens), "
        f"min {_confidence(min(s['confidence']))}"
    )


def _imagenet(s: dict) -> str:
    return (
        f"median {pct(s['median_confidence'], 2)}, "
        f"{get(s, 'num_classes_at_least/0.99')} of {len(s['confidence'])} classes ≥ 99 % "
        f"({s['generations']} gens × {get(s, 'flags/population')})"
    )


def _ascent(s: dict) -> str:
    n = len(s["confidence"])
    at = sum(float(c) >= 0.9999 for c in s["confidence"])
    return f"{at}/{n} ≥ 0.9999, min {_confidence(min(s['confidence']))}"


def _ascent_vs_cppn(s: dict) -> str:
    return (
        f"ascent median {_confidence(s['ascent_median_confidence'])} "
        f"({s['ascent_num_at_least_0.9999']}/{len(s['classes'])} ≥ 0.9999); "
        f"CPPN elites {_confidence(s['cppn_median_confidence'])}"
    )


def _repetition(s: dict) -> str:
    parts = [f"original median {pct(s['median_original'])}"]
    for k in sorted(s["median"]):
        parts.append(f"{k} {pct(s['median'][k])}")
    return ", ".join(parts)


def _per_class(s: dict) -> str:
    c, d = get(s, "runs/cppn"), get(s, "runs/direct")
    return (
        f"CPPN / direct median {pct(c['median_confidence'], 2)} / "
        f"{pct(d['median_confidence'], 2)}; dogs+cats mean {pct(c['mean_dogs_cats'], 2)} "
        f"vs rest {pct(c['mean_other'], 2)} (CPPN)"
    )


def _transfer(s: dict) -> str:
    parts = []
    for src in sorted(s["matrix"], key=_short):
        cells = s["matrix"][src]
        bits = []
        for model in sorted(cells, key=_model_name):
            cell = cells[model]
            if "fraction_at_least_0.99" in cell:
                v = f"{pct(cell['fraction_at_least_0.99'], 0)} ≥ 0.99"
            else:
                v = f"{pct(cell['fraction_misclassified'], 0)} misclassified"
            bits.append(f"{_model_name(model)} {v}")
        parts.append(f"{_short(src)} images: " + ", ".join(bits))
    return "; ".join(parts)


def _model_name(spec: str) -> str:
    if spec == "lenet:default":
        return "embedded LeNet"
    if "caffe" in spec.lower():
        return "Caffe LeNet"
    return _short(spec)


def _short(name: str) -> str:
    name = name.rstrip("/").split("/")[-1]
    return name if len(name) <= 24 else name[:21] + "…"


def _retrain(s: dict) -> str:
    its = s["iterations"]
    fooled = [str(get(it, "num_classes_at_least/0.9999")) for it in its]
    med = [_confidence(it["median_confidence"]) for it in its]
    acc = [float(it["clean_accuracy"]) for it in its]
    return (
        f"{len(its)} iterations; classes ≥ 0.9999 against DNN_1…: "
        f"{', '.join(fooled)} (median {', '.join(med)}); clean accuracy "
        f"{num(min(acc), 4)}–{num(max(acc), 4)}"
    )


def _lbfgs_t1(s: dict) -> str:
    parts = []
    order = ("fc10_1e-4", "fc10_1e-2", "fc10_1", "fc100_100_10", "fc200_200_10")
    names = [m for m in order if m in s["table1"]]
    names += sorted(m for m in s["table1"] if m not in order)
    for m in names:
        r = s["table1"][m]
        parts.append(
            f"{m} {num(r['mean_distortion'])} (err {pct(r['test_error'])}, "
            f"success {pct(r['success_rate'], 0)})"
        )
    return f"{s['num_images']} images: " + "; ".join(parts)


def _lbfgs_t2(s: dict) -> str:
    rows, cols = s["table2"], s["table2_columns"]
    parts = []
    for src in ("fc10_1e-4", "fc100_100_10", "fc200_200_10", "gaussian_noise_0.1"):
        if src in rows:
            cells = " / ".join(pct(rows[src][c], 0) for c in cols)
            parts.append(f"{src} → {cells}")
    return "; ".join(parts)


def _table2_cell(s: dict) -> str:
    out = (
        f"FC10 → FC100 error {pct(s['transfer_error'])} "
        f"(distortion {num(get(s, 'examples/mean_distortion'))}; same-norm noise "
        f"{pct(get(s, 'at_paper_distortion/target_error_same_norm_noise'))})"
    )
    regs = s.get("regularised_targets") or {}
    if regs:
        parts = []
        for name in sorted(regs):
            r = regs[name]
            if "transfer_error" in r:
                parts.append(f"{name.split('_wd')[-1]}: {pct(r['transfer_error'])}")
        if parts:
            out += "; weight-decayed FC100 " + ", ".join(parts)
    return out


def _cross(s: dict) -> str:
    a, b = "fc100_100_10", "fc100_100_10_p2"
    m = s["models"]
    return (
        f"FC100 → FC100' {pct(get(s, f'error_on_distorted/{a}/{b}'))}, magnified "
        f"{pct(get(s, f'error_on_magnified/{a}/{b}'))}; test error "
        f"{pct(m[a]['test_error'])} / {pct(m[b]['test_error'])}, distortion "
        f"{num(m[a]['mean_distortion'])} ({s['num_test']} images)"
    )


def _pool(s: dict) -> str:
    a, c = get(s, "models/adversarial_pool"), get(s, "models/clean_pool")
    return (
        f"test error {pct(a['test_error'], 2)} with the pool vs {pct(c['test_error'], 2)} "
        f"without; FGSM(ε {s['eval_epsilon']}) error {pct(a['fgsm_error'], 0)} vs "
        f"{pct(c['fgsm_error'], 0)} ({s['epochs']} epochs, {s['num_train']} images)"
    )


def _lipschitz(s: dict) -> str:
    parts = []
    for name in sorted(s["networks"]):
        n = s["networks"][name]
        linear = [la for la in n["layers"] if la["kind"] in ("conv", "dense")]
        bounds = " / ".join(num(la["bound"], 2) for la in linear[:8])
        more = " …" if len(linear) > 8 else ""
        parts.append(f"{name} {bounds}{more} (product {float(n['product']):.3g})")
    return "conv/fc operator norms: " + "; ".join(parts)


def _units(s: dict) -> str:
    c = s["coherence"]
    return (
        f"label coherence units {num(c['unit'], 2)} vs random directions "
        f"{num(c['random'], 2)} (random images {num(c['random_images'], 2)}), "
        f"{s['model']} {s['layer']}"
    )


def _fgsm_model(name: str) -> Callable[[dict], str]:
    def f(s: dict) -> str:
        m = get(s, f"models/{name}")
        return f"error {pct(m['error'])}, mean confidence {pct(m['mean_confidence'])}"

    return f


def _per_model(s: dict, fmt, sep: str = ", ") -> str:
    """``fmt(name, summary["models"][name])`` for each model, sorted, joined."""
    return sep.join(fmt(name, s["models"][name]) for name in sorted(s["models"]))


def _fgsm_others(s: dict) -> str:
    return "error: " + _per_model(s, lambda n, m: f"{n} {pct(m['error'])}")


def _dropout(s: dict) -> str:
    a, b = get(s, "models/maxout"), get(s, "models/maxout_no_dropout")
    return (
        f"with dropout {pct(a['error'])} / {pct(a['mean_confidence'])}; "
        f"without {pct(b['error'])} / {pct(b['mean_confidence'])}"
    )


def _adv_training(s: dict) -> str:
    b, a, t = s["before"], s["after"], s["transfer"]
    return (
        f"clean error {pct(b['clean_error'], 2)} → {pct(a['clean_error'], 2)}; FGSM "
        f"error {pct(b['adversarial_error'])} → {pct(a['adversarial_error'])}; "
        f"transfer {pct(t['after_on_examples_of_before'])} / "
        f"{pct(t['before_on_examples_of_after'])} ({s['num_images']} images)"
    )


def _cifar_fgsm(s: dict) -> str:
    parts = _per_model(
        s, lambda n, m: f"{n} {pct(m['error'])} (clean acc. {num(m['clean_accuracy'])})"
    )
    return f"ε {s['epsilon']}: {parts}; {s['num_images']} images"


def _sweep(s: dict) -> str:
    return _per_model(
        s,
        lambda n, m: (
            f"{n} two-piece R² {num(m['two_piece_r2'])} "
            f"(one line {num(m['linear_r2'], 2)})"
        ),
        "; ",
    )


def _analysis(s: dict) -> str:
    parts = []
    for src in s["sources"].values():
        parts.append(
            f"{src['model']} {num(src['classes_per_image_mean'], 2)} "
            f"({src['num_images']} images, {src['population']} × "
            f"{src['max_generations']})"
        )
    return "classes per image: " + "; ".join(parts)


def _compare(s: dict) -> str:
    parts = []
    for model in s["models"]:
        m = s["methods"]
        bits = []
        for method in ("one_pixel_1px", "lsa", "fgsm_1px"):
            r = m.get(method, {}).get(model)
            if r is not None:
                extra = f" at {num(r['mean_l0'], 1)} px" if method == "lsa" else ""
                bits.append(f"{method} {num(r['success_rate'], 2)}{extra}")
        parts.append(f"{model} ({get(s, f'num_images/{model}')}): " + ", ".join(bits))
    return "; ".join(parts)


def _rbf(s: dict) -> str:
    return (
        f"FGSM error {pct(s['fgsm'])}, mean confidence {pct(s['fgsm_mean_confidence'])} "
        f"(clean error {pct(s['clean_error'])})"
    )


def _rubbish(s: dict) -> str:
    parts = _per_model(
        s,
        lambda n, m: (
            f"{n} {num(m['noise']['fooled'], 2)} → "
            f"{num(m['fgsm']['fooled'], 2)} (PGD {num(m['pgd']['fooled'], 2)})"
        ),
        "; ",
    )
    return f"p(target) ≥ {s['threshold']}, noise → FGSM: {parts}"


def _linear(s: dict) -> str:
    m = s["models"]
    return (
        f"clean / FGSM error: plain {pct(m['plain']['clean_error'])} / "
        f"{pct(m['plain']['fgsm_error'])}; adversarially trained "
        f"{pct(m['adversarial_fgsm']['clean_error'])} / "
        f"{pct(m['adversarial_fgsm']['fgsm_error'])}"
    )


def _one_pixel(s: dict) -> str:
    conf = s["mean_adversarial_confidence"]
    conf = "–" if conf is None else pct(conf)
    return (
        f"{pct(s['success_rate'])} ({s['num_success']}/{s['num_attacks']}, "
        f"{s['population']} × ≤ {s['max_generations']}), mean adversarial "
        f"confidence {conf}"
    )


# -------------------------------------------------------------------- the rows


def _rows() -> tuple[Row, ...]:
    net_mnist = "embedded LeNet (0.9936) instead of the paper's Caffe LeNet"
    mobilenet = "MobileNetV2 (TFLite, dequantized) for CaffeNet"
    zoo = "zoo nets trained here (Adam, ReLU, no pre-training)"
    return (
        # Nguyen
        Row(
            "Nguyen",
            "MNIST direct encoding: all 10 classes ≥ 99.99 %",
            "< 50 generations",
            "mnist_direct",
            _fooling,
            f"{net_mnist}; population 200 as the paper",
            ("archive.png", "nines.png"),
            headline=True,
        ),
        Row(
            "Nguyen",
            "same, the paper's Caffe LeNet",
            "< 50 generations",
            "mnist_direct_caffe",
            _fooling,
            "the paper's own weights and mean subtraction; one seed",
            ("archive.png",),
        ),
        Row(
            "Nguyen",
            "MNIST CPPN encoding: all ≥ 99.99 %; 1s vertical, 2s horizontal bars",
            "a few generations",
            "mnist_cppn",
            _fooling,
            f"{net_mnist}; fixed-capacity CPPN (16 nodes × 48 edges)",
            ("archive.png",),
        ),
        Row(
            "Nguyen",
            "MNIST CPPN, Caffe LeNet: median ≥ 99.99 % by gen 200",
            "median 99.99 %",
            "mnist_cppn_caffe",
            _fooling,
            "the paper's own weights; one seed (the paper: median over runs)",
            ("archive.png",),
        ),
        Row(
            "Nguyen",
            "ImageNet direct (Fig. 6)",
            "median 21.59 %, 45 classes ≥ 99 %",
            "imagenet_direct",
            _imagenet,
            f"{mobilenet}; 64 offspring per generation instead of 200, "
            "far fewer than 20,000 generations",
            ("archive.png",),
            headline=True,
        ),
        Row(
            "Nguyen",
            "ImageNet CPPN (Figs. 1, 7)",
            "median 88.11 %",
            "imagenet_cppn",
            _imagenet,
            f"{mobilenet}; 64 offspring instead of 400, far fewer than 5000 gens",
            ("archive.png",),
            headline=True,
        ),
        Row(
            "Nguyen",
            "gradient ascent, MNIST (§3.9)",
            "≥ 99.99 %",
            "gradient_ascent",
            _ascent,
            net_mnist,
            ("fooling_images.png",),
        ),
        Row(
            "Nguyen",
            "gradient ascent, ImageNet (Fig. 13)",
            "≥ 99.99 %",
            "gradient_ascent_imagenet",
            _ascent,
            f"{mobilenet}; 50 ascent steps of size 10",
            ("fooling_images.png",),
        ),
        Row(
            "Nguyen",
            "ascent images beside CPPN elites (Fig. 13)",
            "ascent ≥ 99.99 %, different look",
            "nguyen_ascent_vs_cppn",
            _ascent_vs_cppn,
            f"{mobilenet}; the CPPN elites come from the short imagenet_cppn run",
            ("ascent_vs_cppn.png",),
        ),
        Row(
            "Nguyen",
            "repetition ablation (Fig. 9)",
            "confidence drops only a little",
            "nguyen_repetition",
            _repetition,
            f"{mobilenet}; our short-run elites are full-frame patterns",
            ("repetition_bars.png", "repetition_examples.png"),
        ),
        Row(
            "Nguyen",
            "per-class confidence; dogs and cats hardest (Figs. 6–8)",
            "CPPN / direct median 88.11 / 21.59 %; dogs, cats lowest",
            "nguyen_per_class",
            _per_class,
            f"{mobilenet}; the short CPU runs above",
            ("per_class_sorted.png", "per_category.png"),
        ),
        Row(
            "Nguyen",
            "transfer to another LeNet (§3.5)",
            "some images ≥ 99.99 % on both",
            "transfer",
            _transfer,
            "one run per source (the paper: many); targets: the embedded and the Caffe LeNet",
            ("transfer.png",),
        ),
        Row(
            "Nguyen",
            "n+1-class retraining, MNIST (§3.6)",
            "not protected: ≥ 99.99 % at every iteration",
            "fooling_retrain",
            _retrain,
            "fewer iterations and evolved images than the paper's 15 × (6000, 1000)",
            ("retrain.png", "iterations.png"),
            headline=True,
        ),
        Row(
            "Nguyen",
            "n+1-class retraining, ImageNet (§3.7)",
            "median 88.1 % → 11.7 %",
            "fooling_retrain_cifar10",
            _retrain,
            "CIFAR-10 Keras LeNet + 11th output stands in for ImageNet",
            ("retrain.png",),
        ),
        # Szegedy
        Row(
            "Szegedy",
            "Table 1: minimal L-BFGS distortion, 6 MNIST nets",
            "0.062 / 0.1 / 0.14 / 0.058 / 0.065 / 0.086, success 100 %",
            "lbfgs_tables",
            _lbfgs_t1,
            f"{zoo}",
            ("lbfgs_examples.png",),
            headline=True,
        ),
        Row(
            "Szegedy",
            "Table 2: cross-model error (columns FC10(1e-4), FC100, AE400)",
            "FC10 → 100/2/2.7 %; FC100 → 28.9/100/2 %; noise 0.1 → 5/0/0.8 %",
            "lbfgs_tables",
            _lbfgs_t2,
            f"{zoo}: our examples transfer far more",
        ),
        Row(
            "Szegedy",
            "Table 2, the FC10 → FC100 cell examined",
            "≈ 2 %",
            "table2_cell",
            _table2_cell,
            "transfer vs distortion, noise, fixed c, weight-decayed targets",
            ("transfer.png",),
        ),
        Row(
            "Szegedy",
            "Tables 3–4: nets on disjoint halves",
            "FC100 → FC100' 5.9 %; magnified to σ 0.1: 43 %",
            "cross_training",
            _cross,
            "Adam-trained ReLU nets",
            ("cross_training.png", "cross_training_examples.png"),
        ),
        Row(
            "Szegedy",
            "training on a regenerated adversarial pool (§4.2)",
            "lower test error",
            "adversarial_pool",
            _pool,
            "L-BFGS pool of 100 regenerated per epoch",
        ),
        Row(
            "Szegedy",
            "Table 5: upper Lipschitz bounds per layer",
            "AlexNet conv 2.75–11, fc 2.5–4 (quoted from memory)",
            "lipschitz_bounds",
            _lipschitz,
            "LeNet, Caffe LeNet, ResNet-32, MobileNetV2; AlexNet with random weights "
            "(no trained CaffeNet here)",
            ("lipschitz_bounds.png",),
        ),
        Row(
            "Szegedy",
            "§3: units vs random directions, MNIST",
            "random directions as coherent as units",
            "unit_semantics_mnist",
            _units,
            "LeNet ip1 instead of the paper's MNIST nets",
            ("units.png", "random_directions.png"),
        ),
        Row(
            "Szegedy",
            "§3: units vs random directions, natural images",
            "random directions as coherent as units",
            "unit_semantics_cifar10",
            _units,
            "CIFAR-10 ResNet-32 for the paper's ImageNet AlexNet",
            ("units.png", "random_directions.png"),
        ),
        # Goodfellow
        Row(
            "Goodfellow",
            "FGSM ε 0.25, softmax regression: error / mean confidence",
            "99.9 % / 79.3 %",
            "fgsm",
            _fgsm_model("softmax_regression"),
            f"{zoo}",
            ("fgsm_error_vs_epsilon.png", "fgsm_examples.png"),
            headline=True,
        ),
        Row(
            "Goodfellow",
            "FGSM ε 0.25, maxout",
            "89.4 % / 97.6 %",
            "fgsm",
            _fgsm_model("maxout"),
            "maxout trained without dropout here (next row: with)",
        ),
        Row(
            "Goodfellow",
            "FGSM ε 0.25, the other nets",
            "–",
            "fgsm",
            _fgsm_others,
            zoo,
        ),
        Row(
            "Goodfellow",
            "maxout trained with dropout",
            "89.4 % / 97.6 %",
            "fgsm_maxout_dropout",
            _dropout,
            "12 Adam epochs with dropout, not the paper's SGD schedule",
            ("fgsm_error_vs_epsilon.png",),
        ),
        Row(
            "Goodfellow",
            "CIFAR-10 conv net, ε 0.1",
            "87.15 %",
            "cifar_fgsm",
            _cifar_fgsm,
            "Keras LeNet/ResNet-32 (JPEG CIFAR-10) for the maxout conv net",
            ("cifar_fgsm_examples.png", "cifar_fgsm_error_vs_epsilon.png"),
            headline=True,
        ),
        Row(
            "Goodfellow",
            "adversarial training (§6): clean / FGSM error, transfer",
            "maxout 0.94 → 0.84 %; 89.4 → 17.9 %; 19.6 / 40.9 %",
            "adversarial_training",
            _adv_training,
            "LeNet for maxout",
            ("adversarial_training_examples.png",),
            headline=True,
        ),
        Row(
            "Goodfellow",
            "Fig. 4: logits along the FGSM direction",
            "piecewise linear",
            "fgsm_logit_sweep",
            _sweep,
            "maxout and LeNet from the zoo",
            ("logit_sweep_maxout.png", "logit_sweep_lenet.png"),
        ),
        Row(
            "Goodfellow",
            "§5, Fig. 2: logistic regression 3 vs 7",
            "FGSM error 99 % plain",
            "linear_adversarial",
            _linear,
            "logistic regression on MNIST 3 vs 7, as the paper",
            ("linear_fig2.png",),
        ),
        Row(
            "Goodfellow",
            "§7: RBF network, error / confidence",
            "55.4 % / 1.2 %",
            "rbf_fgsm",
            _rbf,
            "our RBF net (per-class precisions)",
            ("rbf_examples.png", "rbf_fgsm_vs_epsilon.png"),
        ),
        Row(
            "Goodfellow",
            "appendix: rubbish-class examples from noise",
            "noise pushed to a class with high confidence",
            "rubbish_images",
            _rubbish,
            "softmax regression, maxout and LeNet from the zoo",
            ("rubbish_grid.png",),
        ),
        # Su
        Row(
            "Su",
            "success rate, 1 pixel (CIFAR-10)",
            "73.8 % (arXiv v1); All-conv 68.71 %",
            "one_pixel_lenet_1px",
            _one_pixel,
            "the Keras LeNet of the peer repo, JPEG test images",
            ("grid.png",),
            headline=True,
        ),
        Row(
            "Su",
            "success rate, 3 pixels",
            "82.0 %",
            "one_pixel_lenet_3px",
            _one_pixel,
            "as above",
            ("grid.png",),
        ),
        Row(
            "Su",
            "success rate, 5 pixels",
            "87.3 %",
            "one_pixel_lenet_5px",
            _one_pixel,
            "as above",
            ("grid.png",),
        ),
        Row(
            "Su",
            "success rate, 1 pixel, ResNet-32",
            "63.5–71.7 % (VGG16, NiN)",
            "one_pixel_resnet32_1px",
            _one_pixel,
            "Keras ResNet-32",
            ("grid.png",),
        ),
        Row(
            "Su",
            "success rate, 3 / 5 pixels, ResNet-32",
            "82.0 / 87.3 %",
            "one_pixel_resnet32_3px",
            _one_pixel,
            "Keras ResNet-32",
        ),
        Row(
            "Su",
            "success rate, 1 pixel, All-conv (Table 2)",
            "68.71 %",
            "one_pixel_allconv",
            _one_pixel,
            "All-CNN-C trained here for 4 epochs (0.70 accuracy)",
        ),
        Row(
            "Su",
            "heat map and classes per image (Fig. 3, Table 3)",
            "2.3 classes per image",
            "one_pixel_analysis",
            _analysis,
            "budget cut (targeted runs of a few images)",
            ("heatmap.png", "classes_per_image.png"),
        ),
        Row(
            "Su",
            "vs local search and FGSM on k pixels",
            "LSA 97.9 % at 33 pixels (quoted from memory)",
            "one_pixel_compare",
            _compare,
            "same images for every method",
            ("compare.png",),
        ),
        Row(
            "Su",
            "ImageNet, 1 pixel",
            "16.04 % (AlexNet)",
            "one_pixel_imagenet",
            _one_pixel,
            f"{mobilenet}",
            ("grid.png",),
        ),
    )


ROWS = _rows()

PEERS = (
    (
        "IBM ART PixelAttack",
        "one-pixel attack, same model and images",
        "bench_art",
        "python scripts/bench_one_pixel.py --model=cifar_lenet "
        "--weights=$FOOLJAX_DATA/cifar10-keras-one-pixel/lenet.h5",
    ),
    (
        "QDax / pyribs",
        "MAP-Elites generation time",
        "",
        "no comparison script in fooljax yet "
        "(scripts/bench_map_elites.py measures fooljax against the network's own "
        "forward time)",
    ),
)


# ------------------------------------------------------------------ the builder


def _summary(root: str, job: str) -> dict | None:
    j = reproduce.job(job)
    path = os.path.join(root, reproduce.step_workdir(j, j.steps[-1]), SUMMARY)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _not_run(state: dict, job: str) -> str:
    rec = state.get("jobs", {}).get(job)
    if rec is None:
        return "not run: not in this run's jobs"
    if rec.get("status") == "skipped":
        return f"not run: {rec.get('reason', '')}"
    if rec.get("status") == "failed":
        return f"not run: failed ({rec.get('reason', '')})"
    return "not run: no summary.json"


def _ours(row: Row, summary: dict | None, state: dict) -> str:
    if summary is None:
        return _not_run(state, row.job)
    try:
        return row.ours(summary)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as e:
        return f"summary.json lacks {type(e).__name__}: {e}"


def _pictures(root: str, row: Row) -> list[str]:
    j = reproduce.job(row.job)
    wd = reproduce.step_workdir(j, j.steps[-1])
    return [
        f"{wd}/{p}" for p in row.pictures if os.path.exists(os.path.join(root, wd, p))
    ]


def _seconds(x) -> str:
    if x is None:
        return "–"
    x = float(x)
    return f"{x:.0f} s" if x < 600 else f"{x / 60:.1f} min"


def build_data(root: str) -> dict:
    """Everything the report shows, as plain JSON-able data."""
    state = reproduce.read_state(root)
    if state is None:
        raise FooljaxError(f"{root} has no {reproduce.STATE}")
    tier = state.get("tier", "?")
    summaries = {r.job: _summary(root, r.job) for r in ROWS}
    papers = {}
    for paper in reproduce.PAPERS:
        rows = []
        for r in ROWS:
            if r.paper != paper:
                continue
            rec = state.get("jobs", {}).get(r.job, {})
            rows.append(
                {
                    "item": r.item,
                    "paper": r.paper_value,
                    "ours": _ours(r, summaries[r.job], state),
                    "difference": r.difference,
                    "command": rec.get("command")
                    or reproduce.display_command(reproduce.job(r.job), tier),
                    "job": r.job,
                    "pictures": _pictures(root, r),
                    "headline": r.headline,
                }
            )
        papers[paper] = rows
    peers = []
    for name, what, job, cmd in PEERS:
        s = _summary(root, job) if job else None
        if s is not None:
            ours = ", ".join(
                f"{k} {s[k]}" for k in sorted(s) if not isinstance(s[k], (dict, list))
            )
        elif job:
            ours = f"not run in this tier ({_not_run(state, job)[9:]}); run: {cmd}"
        else:
            ours = f"not run: {cmd}"
        peers.append({"peer": name, "what": what, "result": ours})
    jobs = []
    for j in reproduce.JOBS:
        rec = state.get("jobs", {}).get(j.name, {})
        jobs.append(
            {
                "job": j.name,
                "paper": j.paper,
                "status": rec.get("status", "not in run"),
                "wall_seconds": rec.get("wall_seconds"),
                "reason": rec.get("reason", ""),
            }
        )
    total = sum(float(j["wall_seconds"] or 0) for j in jobs)
    return {
        "tier": tier,
        "device": state.get("device", "?"),
        "versions": state.get("versions", {}),
        "papers": papers,
        "peers": peers,
        "jobs": jobs,
        "total_job_seconds": round(total, 1),
        "last_invocation_seconds": state.get("last_invocation_seconds"),
        "load_average": state.get("load_average", {}),
    }


def _times(data: dict) -> str:
    load = data.get("load_average") or {}
    text = f"Sum of job wall times: {_seconds(data['total_job_seconds'])}"
    if data.get("last_invocation_seconds") is not None:
        text += (
            f"; the last invocation took {_seconds(data['last_invocation_seconds'])}"
        )
    if load.get("start") is not None:
        text += (
            f"; host load average {load['start']:.2f} at its start, "
            f"{load.get('end') or 0:.2f} at its end (above the core count: "
            "other jobs shared the CPU)"
        )
    return text + "."


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return out


def _counts(data: dict) -> dict:
    out = {}
    for paper, rows in data["papers"].items():
        done = sum(not r["ours"].startswith("not run") for r in rows)
        out[paper] = (done, len(rows))
    return out


def _intro(tier: str) -> str:
    return (
        f"Tier **{tier}** (`python -m scripts.reproduce --tier={tier}`); every "
        "number under *ours* comes from this run's `summary.json` files. The "
        "quick tier cuts budgets to fit 30 min on a 2-core CPU: its numbers are "
        "below the full tier's (BUILD_NOTES.md) where budgets matter; a tier's "
        "cuts are the flags after the flagfile in each command. `$ROOT` is the "
        "run's `--workdir`; pictures link into it."
    )


def render_markdown(data: dict) -> str:
    tier = data["tier"]
    lines = ["# fooljax: the four papers, reproduced", "", _intro(tier), ""]
    counts = _counts(data)
    lines.append(
        "Rows with a result: "
        + ", ".join(f"{p} {d}/{n}" for p, (d, n) in counts.items())
        + "."
    )
    lines.append("")
    for paper, rows in data["papers"].items():
        lines += [f"## {PAPER_TITLES[paper]}", ""]
        table = []
        for r in rows:
            pics = " ".join(f"[{p.split('/')[-1]}]({p})" for p in r["pictures"]) or "–"
            table.append(
                [
                    r["item"],
                    r["paper"],
                    r["ours"],
                    r["difference"],
                    f"`{r['command']}`",
                    pics,
                ]
            )
        lines += _md_table(
            ["table / figure", "paper", "ours", "difference", "command", "picture"],
            table,
        )
        lines.append("")
    lines += ["## Peer comparisons", ""]
    lines += _md_table(
        ["peer", "what", "result"],
        [[p["peer"], p["what"], p["result"]] for p in data["peers"]],
    )
    lines += ["", "## Device, versions, times", ""]
    v = data["versions"]
    lines.append(
        f"Device: {data['device']}. Versions: "
        + ", ".join(f"{k} {v[k]}" for k in sorted(v))
        + "."
    )
    lines.append("")
    lines.append(_times(data))
    lines.append("")
    lines += _md_table(
        ["job", "paper", "status", "wall time", "note"],
        [
            [
                j["job"],
                j["paper"],
                j["status"],
                _seconds(j["wall_seconds"]),
                j["reason"],
            ]
            for j in data["jobs"]
        ],
    )
    lines.append("")
    return "\n".join(lines)


_CODE = re.compile(r"`([^`]*)`")
_BOLD = re.compile(r"\*\*([^*]*)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*([^*]+)\*(?![*\w])")


def _inline(text: str) -> str:
    t = html.escape(str(text), quote=False)
    t = _CODE.sub(r"<code>\1</code>", t)
    t = _BOLD.sub(r"<b>\1</b>", t)
    return _ITALIC.sub(r"<i>\1</i>", t)


THUMBNAIL = 400  # longest side, pixels, of a picture inlined in report.html


def _data_uri(path: str) -> str:
    """``path`` as a PNG data URI, shrunk to THUMBNAIL pixels (the link keeps
    the full-size file); the bytes depend only on the file."""
    with Image.open(path) as im:
        im.load()
        if max(im.size) > THUMBNAIL:
            scale = THUMBNAIL / max(im.size)
            size = (
                max(1, round(im.size[0] * scale)),
                max(1, round(im.size[1] * scale)),
            )
            im = im.convert("RGB").resize(size, Image.LANCZOS)
        if im.mode != "P":  # 256 colours: plots lose nothing, noise shrinks
            im = im.convert("RGB").quantize(256)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _html_table(header, rows) -> list[str]:
    out = [
        "<table>",
        "<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr>",
    ]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return out


_CSS = """
body { font-family: sans-serif; margin: 1.5em; max-width: 1400px; }
table { border-collapse: collapse; margin-bottom: 1.5em; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 4px 6px; vertical-align: top; }
th { background: #eee; }
td code { font-size: 11px; word-break: break-all; }
td.cmd { max-width: 320px; }
img { max-width: 220px; max-height: 220px; display: block; margin-bottom: 4px; }
"""


def render_html(data: dict, root: str) -> str:
    tier = data["tier"]
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>fooljax reproduction report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>fooljax: the four papers, reproduced</h1>",
        f"<p>{_inline(_intro(tier))}</p>",
    ]
    counts = _counts(data)
    out.append(
        "<p>Rows with a result: "
        + ", ".join(f"{p} {d}/{n}" for p, (d, n) in counts.items())
        + ".</p>"
    )
    for paper, rows in data["papers"].items():
        out.append(f"<h2>{html.escape(PAPER_TITLES[paper])}</h2>")
        table = []
        for r in rows:
            pics = (
                "".join(
                    f'<a href="{html.escape(p)}"><img alt="{html.escape(p)}" '
                    f'src="{_data_uri(os.path.join(root, p))}"></a>'
                    for p in r["pictures"]
                )
                or "–"
            )
            table.append(
                [
                    _inline(r["item"]),
                    _inline(r["paper"]),
                    _inline(r["ours"]),
                    _inline(r["difference"]),
                    f"<code>{html.escape(r['command'])}</code>",
                    pics,
                ]
            )
        out += _html_table(
            ["table / figure", "paper", "ours", "difference", "command", "picture"],
            table,
        )
    out.append("<h2>Peer comparisons</h2>")
    out += _html_table(
        ["peer", "what", "result"],
        [
            [_inline(p["peer"]), _inline(p["what"]), _inline(p["result"])]
            for p in data["peers"]
        ],
    )
    out.append("<h2>Device, versions, times</h2>")
    v = data["versions"]
    out.append(
        f"<p>Device: {_inline(data['device'])}. Versions: "
        + _inline(", ".join(f"{k} {v[k]}" for k in sorted(v)))
        + f". {_inline(_times(data))}</p>"
    )
    out += _html_table(
        ["job", "paper", "status", "wall time", "note"],
        [
            [
                _inline(j["job"]),
                _inline(j["paper"]),
                _inline(j["status"]),
                _seconds(j["wall_seconds"]),
                _inline(j["reason"]),
            ]
            for j in data["jobs"]
        ],
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def build_report(root: str) -> tuple[str, str, dict]:
    """``(markdown, html, data)`` of the reproduction in ``root``."""
    data = build_data(root)
    return render_markdown(data), render_html(data, root), data


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def write_report(root: str) -> list[str]:
    md, page, data = build_report(root)
    paths = [os.path.join(root, n) for n in (REPORT_MD, REPORT_HTML, REPORT_JSON)]
    _write_text(paths[0], md)
    _write_text(paths[1], page)
    _write_text(
        paths[2], json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    )
    return paths


def read_report_json(root_or_path: str) -> dict:
    path = root_or_path
    if os.path.isdir(path):
        path = os.path.join(path, REPORT_JSON)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ------------------------------------------------------------ README headline


def headline_markdown(data: dict) -> str:
    """The README's generated table: the headline rows, paper vs ours."""
    rows = []
    for paper in reproduce.PAPERS:
        for r in data["papers"].get(paper, []):
            if r["headline"]:
                rows.append([paper, r["item"], r["paper"], r["ours"]])
    lines = [
        f"Generated by `python -m scripts.reproduce --tier={data['tier']} "
        f"--readme=README.md` ({data['tier']} tier, {data['device']}; its "
        "`report.json` and the full report: "
        "[docs/report/REPORT.md](docs/report/REPORT.md)).",
        "",
    ]
    lines += _md_table(["paper", "result", "paper's number", "ours"], rows)
    return "\n".join(lines)


def check_readme(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise FooljaxError(f"--readme={path}: cannot read ({e.strerror})") from e
    if (
        text.count(BEGIN) != 1
        or text.count(END) != 1
        or text.index(BEGIN) > text.index(END)
    ):
        raise FooljaxError(
            f"--readme={path}: needs one '{BEGIN}' line before one '{END}' line"
        )
    return text


def readme_block(text: str) -> str:
    """The text between the markers (without the marker lines)."""
    start = text.index(BEGIN) + len(BEGIN)
    return text[start : text.index(END)].strip("\n")


def update_readme(path: str, data: dict) -> None:
    text = check_readme(path)
    start = text.index(BEGIN) + len(BEGIN)
    new = text[:start] + "\n" + headline_markdown(data) + "\n" + text[text.index(END) :]
    _write_text(path, new)
