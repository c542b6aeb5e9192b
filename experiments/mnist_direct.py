"""fooljax's main job: MAP-Elites fooling images for MNIST, direct encoding.

  python -m experiments.mnist_direct \
      --flagfile=experiments/configs/mnist_direct.flags [--workdir=DIR]

Runs on the embedded LeNet (no data, no network). Against the paper's own Caffe
LeNet add ``--weights=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/lenet_iter_10000
--preprocess=caffe_deploy --mean_file=.../mnist_mean.binaryproto``.
Expected (paper settings, 1000 generations of 200, 2-core CPU): every class
>= 0.9999 in about 20-30 s. Writes summary.json, archive.png, classes/*.png,
confidence.png, metrics.jsonl into the work directory.
"""

import time

_T0 = time.time()

from absl import flags  # noqa: E402

from fooljax.cli import extra_args, run_main  # noqa: E402
from fooljax.evolution import fooling  # noqa: E402
from fooljax.evolution.flags import config_from_flags, define_fooling_flags  # noqa: E402

define_fooling_flags(default_workdir="runs/mnist_direct")
FLAGS = flags.FLAGS


def main(argv):
    extra_args(argv)
    summary = fooling.run(
        config_from_flags(), FLAGS.workdir, overwrite=FLAGS.overwrite, t_start=_T0
    )
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
