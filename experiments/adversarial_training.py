"""Adversarial training (Goodfellow et al., ICLR 2015, Sec. 6):
J~ = 0.5 J(x) + 0.5 J(x + 0.25 sign grad_x J), clean and FGSM test error
before and after.

  python -m experiments.adversarial_training \
      --flagfile=experiments/configs/adversarial_training.flags \
      --workdir=runs/adversarial_training

"before" is the zoo model (``lenet``: the embedded checkpoint, trained by
experiments/configs/lenet_mnist.flags); "after" is the same training config with
``adv_alpha=0.5, adv_epsilon=0.25`` (zoo ``lenet_adv``, trained on first use:
18 minutes on a loaded 2-core CPU). Expected: clean error 0.0064 -> 0.0074,
FGSM(0.25) error 0.908 -> 0.064. Writes summary.json (``before``/
``after``: ``{clean_error, adversarial_error}``) and
adversarial_training_examples.png.
"""

from absl import flags

from fooljax.attacks.runs import run_adversarial_training
from fooljax.cli import extra_args, print_json_line, run_main

flags.DEFINE_string("workdir", None, "Run directory (created; resumed if unfinished).")
flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
flags.DEFINE_string("model", "lenet", "Zoo model (lenet, maxout, fc100_100_10, ...).")
flags.DEFINE_float("epsilon", 0.25, "FGSM epsilon of the adversarial test error.")
flags.DEFINE_integer("num_images", 10000, "Test images evaluated.")
flags.DEFINE_integer("batch_size", 500, "Attack batch size.")
flags.DEFINE_string(
    "zoo_dir", "", "Cache of trained models (default <workdir>/models)."
)
flags.DEFINE_string("data_dir", None, "MNIST directory (default $FOOLJAX_DATA/mnist).")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


def main(argv):
    extra_args(argv)
    summary = run_adversarial_training(
        FLAGS.workdir,
        model=FLAGS.model,
        epsilon=FLAGS.epsilon,
        num_images=FLAGS.num_images,
        batch_size=FLAGS.batch_size,
        zoo_dir=FLAGS.zoo_dir,
        data_dir=FLAGS.data_dir,
        overwrite=FLAGS.overwrite,
    )
    print(f"results in {FLAGS.workdir}")
    print_json_line({k: summary[k] for k in ("before", "after", "epsilon")})


if __name__ == "__main__":
    run_main(main)
