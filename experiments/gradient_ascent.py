"""Fooling images by gradient ascent on each class's softmax probability
(Nguyen et al., CVPR 2015, Sec. 3), all classes at once.

  python -m experiments.gradient_ascent \
      --flagfile=experiments/configs/gradient_ascent.flags --workdir=runs/gradient_ascent

Expected on the embedded LeNet: every class >= 0.9999 (min 0.99996), under a
minute on an idle CPU (2.5 minutes measured under heavy load).
Writes summary.json (``confidence``: one float per class, as the evolution runs),
images.npy and fooling_images.png.
"""

from absl import flags

from fooljax.attacks.runs import run_gradient_ascent
from fooljax.cli import extra_args, print_json_line, run_main

flags.DEFINE_string("workdir", None, "Run directory.")
flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
flags.DEFINE_string("model", "lenet", "Registered model name.")
flags.DEFINE_string("weights", "default", "default, a checkpoint dir, or a file.")
flags.DEFINE_enum("init", "noise", ["noise", "blank"], "Start images.")
flags.DEFINE_integer("num_steps", 1000, "Ascent steps.")
flags.DEFINE_float("step_size", 1.0, "Gradient step size.")
flags.DEFINE_float("l2_decay", 1e-4, "L2 decay weight on the pixels.")
flags.DEFINE_integer("seed", 0, "Seed of the noise start.")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


def main(argv):
    extra_args(argv)
    summary = run_gradient_ascent(
        FLAGS.workdir,
        model=FLAGS.model,
        weights=FLAGS.weights,
        init=FLAGS.init,
        num_steps=FLAGS.num_steps,
        step_size=FLAGS.step_size,
        l2_decay=FLAGS.l2_decay,
        seed=FLAGS.seed,
        overwrite=FLAGS.overwrite,
    )
    print(f"results in {FLAGS.workdir}")
    print_json_line({k: summary[k] for k in ("confidence", "min_confidence")})


if __name__ == "__main__":
    run_main(main)
