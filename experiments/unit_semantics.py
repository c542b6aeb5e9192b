"""Units versus random directions (Szegedy et al. 2014, Sec. 3, Figs. 1-4).

  python -m experiments.unit_semantics \
      --flagfile=experiments/configs/unit_semantics_mnist.flags \
      --weights=/work/bl/zoo/fc100_100_10/params.npz --workdir=runs/units_mnist

The test images that maximise one unit of ``--layer`` and those that maximise
random directions of the same layer, as two labelled grids (``units.png``,
``random_directions.png``), and in ``summary.json`` per row the top-k test
indices, labels and activations, with the mean fraction of each row's top-k
sharing its majority label for both kinds. An unknown ``--layer`` is one line
listing the model's layers. Runtimes and results: the flagfiles.
"""

from fooljax.runs import unit_semantics
from fooljax.runs.cli import run_main

unit_semantics.define_flags()

if __name__ == "__main__":
    run_main(unit_semantics.main)
