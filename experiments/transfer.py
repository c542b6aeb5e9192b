"""Transfer of fooling and adversarial images between networks (Nguyen et al.
2015 §3.5; Szegedy et al. 2014; Goodfellow et al. 2015).

  python -m experiments.transfer --flagfile=experiments/configs/transfer.flags \
      --sources=runs/mnist_direct,runs/gradient_ascent --workdir=runs/transfer

Scores the images every source run left in its ``artifact.npz`` (MAP-Elites
archives, gradient-ascent images, one-pixel adversarial images) on every
``--models`` entry (``NAME:WEIGHTS[:PREPROCESS]``). Writes ``summary.json``
(``matrix[source][model]``: for fooling images the fraction reaching >= 0.99
and >= 0.9999 for the intended class and its median probability; for
adversarial images the fraction misclassified) and ``transfer.png``. Seconds
on the 2-core CPU; expected numbers in BUILD_NOTES.md.
"""

from fooljax.runs import transfer
from fooljax.runs.cli import run_main

transfer.define_flags()

if __name__ == "__main__":
    run_main(transfer.main)
