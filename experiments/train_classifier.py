"""Train a classifier on MNIST (resumable).

  python -m experiments.train_classifier \
      --flagfile=experiments/configs/lenet_mnist.flags --workdir=runs/lenet

Expected (lenet_mnist.flags, 2-core CPU): >= 99.0 % test accuracy in about
2-3 minutes. Writes metrics.jsonl, checkpoints/, params.npz, summary.json.
"""

from absl import flags

from fooljax.cli import extra_args, print_json_line, run_main
from fooljax.train import TrainConfig, train_classifier

_D = TrainConfig()
flags.DEFINE_string("workdir", None, "Run directory (created; resumed if unfinished).")
flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
flags.DEFINE_string("model", _D.model, "Registered model name.")
flags.DEFINE_integer("epochs", _D.epochs, "Training epochs.")
flags.DEFINE_integer("batch_size", _D.batch_size, "Batch size.")
flags.DEFINE_float("learning_rate", _D.learning_rate, "Peak learning rate (cosine).")
flags.DEFINE_string("optimizer", _D.optimizer, "adam or sgd.")
flags.DEFINE_float("weight_decay", _D.weight_decay, "L2 penalty on kernels.")
flags.DEFINE_float("adv_alpha", _D.adv_alpha, "Adversarial training mix (1 = off).")
flags.DEFINE_float("adv_epsilon", _D.adv_epsilon, "FGSM epsilon for adv. training.")
flags.DEFINE_integer("seed", _D.seed, "Random seed.")
flags.DEFINE_string("dataset", _D.dataset, "Dataset name.")
flags.DEFINE_string("data_dir", None, "Data directory (default $FOOLJAX_DATA/<set>).")
flags.DEFINE_string("data_source", _D.data_source, "idx, tfds or auto.")
flags.DEFINE_string("init_weights", _D.init_weights, "init, default or a file.")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


def main(argv):
    extra_args(argv)
    config = TrainConfig(
        model=FLAGS.model,
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        optimizer=FLAGS.optimizer,
        weight_decay=FLAGS.weight_decay,
        adv_alpha=FLAGS.adv_alpha,
        adv_epsilon=FLAGS.adv_epsilon,
        seed=FLAGS.seed,
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        data_source=FLAGS.data_source,
        init_weights=FLAGS.init_weights,
    )
    summary = train_classifier(config, FLAGS.workdir, overwrite=FLAGS.overwrite)
    print(f"results in {FLAGS.workdir}")
    print_json_line(
        {k: summary[k] for k in ("model", "test_accuracy", "wall_seconds", "epochs")}
    )


if __name__ == "__main__":
    run_main(main)
