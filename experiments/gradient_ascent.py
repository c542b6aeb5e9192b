"""Fooling images by gradient ascent on each class's softmax probability
(Nguyen et al., CVPR 2015, Sec. 3), all classes at once.

  python -m experiments.gradient_ascent \
      --flagfile=experiments/configs/gradient_ascent.flags --workdir=runs/gradient_ascent

Expected on the embedded LeNet: every class >= 0.9999 (min 0.99996), under a
minute on an idle CPU (2.5 minutes measured under heavy load).
Writes summary.json (``confidence``: one float per class, as the evolution runs),
images.npy and fooling_images.png.
"""

from fooljax.runs import gradient
from fooljax.runs.cli import run_main

gradient.define_flags(gradient.GradientAscentConfig)

if __name__ == "__main__":
    run_main(gradient.make_main(gradient.GradientAscentConfig))
