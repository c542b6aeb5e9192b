"""Su et al. 2019's comparison: the one-pixel attack vs the local-search attack
(LSA, Narodytska & Kasiviswanathan 2017) and FGSM restricted to k pixels, on
the same images.

  python -m experiments.one_pixel_compare \
      --flagfile=experiments/configs/one_pixel_analysis_compare.flags \
      --sources=runs/op_lenet_1px,runs/op_resnet32_1px --workdir=runs/op_compare

Each source is a finished non-targeted ``experiments.one_pixel`` work directory;
its images are reloaded by dataset index (and checked against its
``artifact.npz``). Writes ``summary.json`` (``methods[method][model]``: success
rate, mean L0 / L2 / L-inf perturbation and confidence of the successful
examples, mean queries) and ``compare.png`` (the paper's numbers as markers).
LSA dominates (up to t (2d+1)^2 model calls a round): with the flagfile on
lenet 1/3/5 px (30 images) + resnet32 1 px (10 images), 830 s on the loaded
2-core CPU; LSA fools 26/30 and 5/10 (numbers in BUILD_NOTES.md).
"""

from fooljax.runs import one_pixel_analysis
from fooljax.runs.cli import run_main

one_pixel_analysis.define_compare_flags()

if __name__ == "__main__":
    run_main(one_pixel_analysis.compare_main)
