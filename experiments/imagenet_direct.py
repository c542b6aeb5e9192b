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

from fooljax.runs import fooling
from fooljax.runs.cli import run_main

fooling.define_flags(default_workdir="runs/imagenet_direct", encoding="direct")

if __name__ == "__main__":
    run_main(fooling.main)
