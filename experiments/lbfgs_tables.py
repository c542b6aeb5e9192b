"""Szegedy et al. (ICLR 2014) Tables 1 and 2 on MNIST with box-constrained
L-BFGS-B adversarial examples (``fooljax.attacks.lbfgs``).

  python -m experiments.lbfgs_tables \
      --flagfile=experiments/configs/lbfgs_tables.flags --workdir=runs/lbfgs_tables

Table 1: test error, mean minimal distortion sqrt(sum (x'-x)^2 / n), success rate
per model on the first ``--num_images`` test images (random target label != true
label). Table 2: error caused on each column model by each row model's examples
and by Gaussian noise. Expected: success 1.0 for every model, mean distortion
0.072 / 0.093 / 0.151 / 0.041 / 0.046 / 0.045 (paper 0.062 / 0.1 / 0.14 / 0.058 /
0.065 / 0.086); about 25 minutes on a loaded 2-core CPU (BUILD_NOTES.md). Writes summary.json (``table1``, ``table2``),
lbfgs_examples.png, one ``lbfgs_<model>.npz`` per model.
"""

from absl import flags

from fooljax.attacks.runs import TABLE1_MODELS, run_lbfgs_tables
from fooljax.cli import extra_args, print_json_line, run_main

flags.DEFINE_string("workdir", None, "Run directory (created; resumed if unfinished).")
flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
flags.DEFINE_string("models", TABLE1_MODELS, "Table 1 rows: [shown=]zoo_model list.")
flags.DEFINE_string(
    "table2_columns", "fc10_1e-4,fc100_100_10,ae400_10", "Table 2 columns."
)
flags.DEFINE_integer("num_images", 1000, "Test images attacked per model.")
flags.DEFINE_integer("batch_size", 500, "Images per L-BFGS-B problem.")
flags.DEFINE_integer("num_search_steps", 10, "Values of c tried per image.")
flags.DEFINE_integer("max_iterations", 50, "L-BFGS-B iterations per solve.")
flags.DEFINE_float("initial_c", 1.0, "First penalty weight c.")
flags.DEFINE_list("noise_stddevs", ["0.1", "0.3"], "Gaussian-noise rows of Table 2.")
flags.DEFINE_integer("seed", 0, "Seed of the target labels and the noise.")
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
        stddevs = [float(s) for s in FLAGS.noise_stddevs]
    except ValueError as e:
        raise FooljaxError(f"--noise_stddevs: {e}") from None
    summary = run_lbfgs_tables(
        FLAGS.workdir,
        models=FLAGS.models,
        table2_columns=FLAGS.table2_columns,
        num_images=FLAGS.num_images,
        batch_size=FLAGS.batch_size,
        num_search_steps=FLAGS.num_search_steps,
        max_iterations=FLAGS.max_iterations,
        initial_c=FLAGS.initial_c,
        noise_stddevs=stddevs,
        seed=FLAGS.seed,
        zoo_dir=FLAGS.zoo_dir,
        data_dir=FLAGS.data_dir,
        overwrite=FLAGS.overwrite,
    )
    print(f"results in {FLAGS.workdir}")
    print_json_line(
        {
            m: {k: r[k] for k in ("test_error", "mean_distortion", "success_rate")}
            for m, r in summary["table1"].items()
        }
    )


if __name__ == "__main__":
    run_main(main)
