"""Training and evaluating classifiers from the command line: the flags of
``train.TrainConfig`` and an evaluation of any registered model on a labelled
dataset (last output line JSON)."""

from __future__ import annotations

import dataclasses
import time

from absl import flags

from fooljax import data, models
from fooljax.errors import FooljaxError
from fooljax.runs import config
from fooljax.runs.cli import print_json_line
from fooljax.runs.common import load_classifier
from fooljax.train import TrainConfig, evaluate_classifier, train_classifier

FLAGS = flags.FLAGS
opt = config.opt

TRAIN_HELP = {
    "model": "Registered model name.",
    "epochs": "Training epochs.",
    "batch_size": "Batch size.",
    "learning_rate": "Peak learning rate (cosine).",
    "optimizer": "adam or sgd.",
    "weight_decay": "L2 penalty on kernels.",
    "adv_alpha": "Adversarial training mix (1 = off).",
    "adv_epsilon": "FGSM epsilon for adv. training.",
    "seed": "Random seed.",
    "dataset": "Dataset name.",
    "data_dir": "Data directory (default $FOOLJAX_DATA/<set>).",
    "data_source": "idx, tfds or auto.",
    "init_weights": "init, default or a file.",
}


def define_train_flags() -> None:
    config.define_workdir_flags()
    config.define_flags(TrainConfig, helps=TRAIN_HELP)


def train_main(argv) -> None:
    del argv
    cfg = config.from_flags(TrainConfig, helps=TRAIN_HELP)
    summary = train_classifier(cfg, FLAGS.workdir, overwrite=FLAGS.overwrite)
    print(f"results in {FLAGS.workdir}")
    print_json_line(
        {k: summary[k] for k in ("model", "test_accuracy", "wall_seconds", "epochs")}
    )


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    model: str = opt("lenet", "Registered model name.")
    weights: str = opt("default", "default, a checkpoint dir, or a file.")
    dataset: str = opt("mnist", "Dataset name.")
    split: str = opt("test", "Dataset split.")
    data_dir: str | None = opt(None, "Data directory (default $FOOLJAX_DATA/<set>).")
    data_source: str = opt("idx", "idx, tfds or auto (MNIST).")
    preprocess: str | None = opt(None, "identity, unit or caffe_deploy.")
    mean_file: str | None = opt(None, "Caffe mean .binaryproto (caffe_deploy).")
    batch_size: int = opt(500, "Evaluation batch size.")

    def validate(self) -> None:
        config.check_fields(self, batch_size=(1, None))


def evaluate(cfg: EvaluateConfig) -> dict:
    """Accuracy and loss of ``cfg.model`` on a dataset (nothing written)."""
    t0 = time.time()
    clf = load_classifier(cfg.model, cfg.weights, cfg.preprocess, cfg.mean_file)
    images, labels = data.load_dataset(
        cfg.dataset, cfg.split, data_dir=cfg.data_dir, source=cfg.data_source
    )
    # Models that resize inside their logits_fn (ImageNet nets: resizes_input)
    # take any H, W with the right number of channels.
    resizes = getattr(models.get_spec(cfg.model).build(), "resizes_input", False)
    if tuple(images.shape[1:]) != tuple(clf.input_shape) and not (
        resizes and images.shape[-1] == clf.input_shape[-1]
    ):
        raise FooljaxError(
            f"dataset images are {images.shape[1:]}, model '{cfg.model}' takes "
            f"{clf.input_shape}"
        )
    result = evaluate_classifier(
        clf.logits_fn, clf.params, images, labels, cfg.batch_size
    )
    result.update(
        model=cfg.model,
        weights=cfg.weights,
        dataset=cfg.dataset,
        preprocess=cfg.preprocess or models.get_spec(cfg.model).default_preprocess,
        wall_seconds=round(time.time() - t0, 3),
    )
    return result


def define_evaluate_flags() -> None:
    config.define_flags(EvaluateConfig)


def evaluate_main(argv) -> None:
    del argv
    print_json_line(evaluate(config.from_flags(EvaluateConfig)))
