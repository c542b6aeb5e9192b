"""MAP-Elites fooling images for the 1000 ImageNet classes, direct HSV encoding.

  python -m experiments.imagenet_direct \
      --flagfile=experiments/configs/imagenet_direct_cpu.flags [--workdir=DIR]

(Nguyen et al. 2015, Sec. 3.2.) The genome is a 256x256x3 HSV image; the
network sees it through its own resize/crop (MobileNetV2: bilinear to 224;
AlexNet: mean subtraction and the centre 227 crop), or the mean over 10 crops
with ``--ten_crop``. Default network: the real ImageNet MobileNetV2 from
``$FOOLJAX_DATA/imagenet-mobilenet-tflite-coral`` (stands in for AlexNet, whose
weights are not available here); with Caffe weights use ``--model=alexnet
--weights=bvlc_reference_caffenet.caffemodel``.

``imagenet_direct_cpu.flags``: 64 offspring x 100 generations, a few minutes
on a 2-core CPU. ``imagenet_direct_paper.flags``: the paper's 200 x 20000 (for
a GPU/TPU). Writes summary.json (same keys as the MNIST runs, with class
names), archive.png (a sample of 100 classes), archive.html (all 1000, most
confident first), classes/*.png, confidence.png.
"""

import time

_T0 = time.time()

from absl import flags  # noqa: E402

from fooljax.cli import extra_args, run_main  # noqa: E402
from fooljax.evolution import fooling  # noqa: E402
from fooljax.evolution.flags import config_from_flags, define_fooling_flags  # noqa: E402

define_fooling_flags(default_workdir="runs/imagenet_direct")
FLAGS = flags.FLAGS


def main(argv):
    extra_args(argv)
    summary = fooling.run(
        config_from_flags(), FLAGS.workdir, overwrite=FLAGS.overwrite, t_start=_T0
    )
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
