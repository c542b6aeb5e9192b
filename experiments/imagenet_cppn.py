"""MAP-Elites fooling images for the 1000 ImageNet classes, CPPN encoding.

  python -m experiments.imagenet_cppn \
      --flagfile=experiments/configs/imagenet_cppn_cpu.flags [--workdir=DIR]

(Nguyen et al. 2015, Sec. 3.3.) Three CPPN outputs are HSV, decoded to RGB,
rendered at 256x256 and seen through the network's resize/crop (or 10 crops
with ``--ten_crop``). Default network: the real ImageNet MobileNetV2 from
``$FOOLJAX_DATA/imagenet-mobilenet-tflite-coral`` (stands in for AlexNet);
``--model=alexnet --weights=bvlc_reference_caffenet.caffemodel`` with Caffe
weights. ``imagenet_cppn_cpu.flags``: a few minutes on a 2-core CPU;
``imagenet_cppn_paper.flags``: 400 offspring x 5000 generations (GPU/TPU).
Outputs as ``experiments.imagenet_direct``.
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

define_fooling_flags(default_workdir="runs/imagenet_cppn", encoding="cppn")
define_cppn_flags()
FLAGS = flags.FLAGS


def main(argv):
    extra_args(argv)
    if FLAGS.encoding != "cppn":
        raise FooljaxError("experiments.imagenet_cppn needs --encoding=cppn")
    config = config_from_flags(encoding="cppn", encoding_options=cppn_options())
    summary = fooling.run(config, FLAGS.workdir, overwrite=FLAGS.overwrite, t_start=_T0)
    n = summary["num_classes_at_least"]
    print(
        f"{summary['generations']} generations in {summary['wall_seconds']:.0f} s: "
        f"median confidence {summary['median_confidence']:.4f}, "
        f"{n['0.99']} classes >= 0.99, {n['0.9999']} >= 0.9999 "
        f"of {len(summary['confidence'])}"
    )
    print(f"results in {FLAGS.workdir} (summary.json, archive.png, archive.html)")


if __name__ == "__main__":
    run_main(main)
