"""FGSM on MNIST (Goodfellow et al., ICLR 2015, Sec. 4): error rate and mean
confidence at epsilon = 0.25 for softmax regression and deeper nets, and the
error-vs-epsilon curve.

  python -m experiments.fgsm --flagfile=experiments/configs/fgsm.flags \
      --workdir=runs/fgsm

Models come from the zoo (``fooljax.train.zoo``; trained on first use into
``--zoo_dir``, about 3 minutes for the maxout net on 2 CPU cores). Expected
(10,000 test images): softmax regression error 1.000 / mean confidence 0.846
(paper 0.999 / 0.793), maxout 0.985, LeNet 0.908; about 7 minutes on a loaded
2-core CPU once the zoo is trained (BUILD_NOTES.md). Writes summary.json (``epsilon``,
``models: {name: {error, mean_confidence, ...}}``), fgsm_error_vs_epsilon.png,
fgsm_examples.png.
"""

from absl import flags

from fooljax.attacks.runs import run_fgsm
from fooljax.cli import extra_args, print_json_line, run_main

flags.DEFINE_string("workdir", None, "Run directory (created; resumed if unfinished).")
flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
flags.DEFINE_string(
    "models",
    "softmax_regression=fc10_1e-4,fc100_100_10,maxout,lenet",
    "Comma list of [shown_name=]zoo_model (or model:weights).",
)
flags.DEFINE_float("epsilon", 0.25, "FGSM epsilon (pixels in [0, 1]).")
flags.DEFINE_list(
    "curve_epsilons",
    ["0", "0.05", "0.1", "0.15", "0.2", "0.25", "0.3"],
    "Epsilons of the error curve.",
)
flags.DEFINE_integer("num_images", 10000, "Test images attacked.")
flags.DEFINE_integer("batch_size", 500, "Attack batch size.")
flags.DEFINE_string(
    "zoo_dir", "", "Cache of trained models (default <workdir>/models)."
)
flags.DEFINE_string("data_dir", None, "MNIST directory (default $FOOLJAX_DATA/mnist).")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


def main(argv):
    extra_args(argv)
    from fooljax.errors import FooljaxError

    try:
        curve = [float(e) for e in FLAGS.curve_epsilons]
    except ValueError as e:
        raise FooljaxError(f"--curve_epsilons: {e}") from None
    summary = run_fgsm(
        FLAGS.workdir,
        models=FLAGS.models,
        epsilon=FLAGS.epsilon,
        curve_epsilons=curve,
        num_images=FLAGS.num_images,
        batch_size=FLAGS.batch_size,
        zoo_dir=FLAGS.zoo_dir,
        data_dir=FLAGS.data_dir,
        overwrite=FLAGS.overwrite,
    )
    print(f"results in {FLAGS.workdir}")
    print_json_line(
        {
            "epsilon": summary["epsilon"],
            "models": {
                k: {"error": v["error"], "mean_confidence": v["mean_confidence"]}
                for k, v in summary["models"].items()
            },
        }
    )


if __name__ == "__main__":
    run_main(main)
