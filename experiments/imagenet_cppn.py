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

from fooljax.runs import fooling
from fooljax.runs.cli import run_main

fooling.define_flags(default_workdir="runs/imagenet_cppn", encoding="cppn")

if __name__ == "__main__":
    run_main(fooling.main)
