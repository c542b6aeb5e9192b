"""Szegedy et al. 2014 Table 2, the FC10(1e-4) -> FC100-100-10 cell: why ours
is about 50 % where the paper has 2 %.

  python -m experiments.table2_cell --flagfile=experiments/configs/table2_cell.flags \
      --zoo_dir=runs/zoo --workdir=runs/table2_cell

Makes the L-BFGS examples on the source as ``lbfgs_tables`` does and measures
the target's error under each counting rule, as a function of the distortion
(each perturbation rescaled, and Gaussian noise of the same norm), at fixed
values of c, on training images (``--split=train``), and on copies of the
target trained with weight decay. Writes ``summary.json`` and ``transfer.png``
(error vs mean distortion, the paper's 2 % as a reference line). Runtime and
results: the flagfiles (``table2_cell_sgd_source.flags``: a paper-like FC10
and weight-decayed FC100 copies, 4.3 % at weight decay 1e-3).
"""

from fooljax.runs import table2_cell
from fooljax.runs.cli import run_main

table2_cell.define_flags()

if __name__ == "__main__":
    run_main(table2_cell.main)
