"""Su et al. 2019's targeted-attack figures from finished one-pixel runs: the
original -> target class success heat map and the number of target classes
each image can be perturbed to.

  python -m experiments.one_pixel_analysis \
      --sources=runs/op_lenet_targeted,runs/op_resnet32_targeted --workdir=runs/op_analysis

Each source is a finished ``experiments.one_pixel --targeted`` work directory
(e.g. ``--flagfile=experiments/configs/one_pixel_analysis_targeted_lenet.flags``);
its ``results.jsonl`` is read. Writes ``summary.json`` (per source the 10 x 10
``success_matrix``, ``attempts``, the classes-per-image histogram and mean, the
paper's values), ``heatmap.png`` and ``classes_per_image.png``. About 15 s. A
missing, unfinished, empty or non-targeted source: one line, exit 1.
"""

from fooljax.runs import one_pixel_analysis
from fooljax.runs.cli import run_main

one_pixel_analysis.define_analysis_flags()

if __name__ == "__main__":
    run_main(one_pixel_analysis.analysis_main)
