"""The analysis figures of Nguyen et al. (CVPR 2015) over finished fooling runs.

  python -m experiments.nguyen_figures \
      --flagfile=experiments/configs/nguyen_ascent_vs_cppn.flags \
      --cppn=runs/imagenet_cppn --workdir=runs/nguyen_ascent_vs_cppn

``--figure``: ``ascent_vs_cppn`` (Sec. 3.9, Fig. 13: gradient-ascent images
next to the CPPN elites of the same classes), ``repetition`` (Sec. 3.4, Fig. 9:
confidence before/after keeping only the most salient tiles or a central box),
``per_class`` (Figs. 6-8: sorted per-class confidence with the paper's medians,
mean over dogs and cats vs the rest; ``--cppn`` and/or ``--direct``).
Writes ``summary.json`` and PNGs; runtimes and measured numbers are in the
flagfiles ``experiments/configs/nguyen_*.flags``.
"""

from fooljax.runs import nguyen_figures
from fooljax.runs.cli import run_main

nguyen_figures.define_flags()

if __name__ == "__main__":
    run_main(nguyen_figures.main)
