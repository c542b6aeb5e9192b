"""MAP-Elites fooling images for MNIST with the CPPN indirect encoding.

  python -m experiments.mnist_cppn \
      --flagfile=experiments/configs/mnist_cppn.flags [--workdir=DIR]

Nguyen et al. 2015, Sec. 2.3 and 3.2: a CPPN (inputs x, y, d, bias; sine,
sigmoid, Gaussian, identity) evolved NEAT-style by MAP-Elites over the 10 digit
classes. Runs on the embedded LeNet (no data, no network). Against the paper's
own Caffe LeNet add ``--weights=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/lenet_iter_10000
--preprocess=caffe_deploy --mean_file=.../mnist_mean.binaryproto``.
Expected (flagfile: 200 offspring x 1000 generations, 2-core CPU): every class
>= 0.9999 within the first few dozen generations, the whole run in about 1-3
minutes depending on the machine's load (BUILD_NOTES.md has measured numbers).
Writes summary.json, archive.png, classes/*.png, confidence.png, metrics.jsonl
and checkpoints/ into the work directory; ``scripts/render_cppn.py`` renders an
elite at any resolution from there. The CPPN's weights use --mutation_rate and
--mutation_eta (polynomial mutation in [-10, 10]).
"""

import time

_T0 = time.time()

from absl import flags  # noqa: E402

from fooljax.cli import extra_args, run_main  # noqa: E402
from fooljax.errors import FooljaxError  # noqa: E402
from fooljax.evolution import fooling  # noqa: E402
from fooljax.evolution.flags import (  # noqa: E402
    config_from_flags,
    cppn_options,
    define_cppn_flags,
    define_fooling_flags,
)

define_fooling_flags(default_workdir="runs/mnist_cppn", encoding="cppn")
define_cppn_flags()
FLAGS = flags.FLAGS


def main(argv):
    extra_args(argv)
    if FLAGS.encoding != "cppn":
        raise FooljaxError("experiments.mnist_cppn needs --encoding=cppn")
    config = config_from_flags(encoding="cppn", encoding_options=cppn_options())
    summary = fooling.run(config, FLAGS.workdir, overwrite=FLAGS.overwrite, t_start=_T0)
    c = summary["confidence"]
    print(
        f"{summary['generations']} generations in {summary['wall_seconds']:.1f} s: "
        f"min confidence {min(c):.6f}, {summary['num_classes_at_least']['0.9999']}"
        f"/{len(c)} classes >= 0.9999, all >= 0.9999 at generation "
        f"{summary['first_generation_all_at_least']['0.9999']}"
    )
    print(f"results in {FLAGS.workdir} (summary.json, archive.png, confidence.png)")


if __name__ == "__main__":
    run_main(main)
