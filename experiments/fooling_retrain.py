"""Retraining with an extra "fooling images" class, iterated (Nguyen et al.
2015, §3.6-3.8): is the network protected?

  python -m experiments.fooling_retrain \
      --flagfile=experiments/configs/fooling_retrain_quick.flags --workdir=DIR

Iteration i evolves fooling images against DNN_i (many MAP-Elites runs as one
compiled step), adds them to MNIST as class 10 and trains DNN_{i+1} with 11
outputs. ``fooling_retrain_quick.flags``: 3 iterations, a few minutes;
``fooling_retrain.flags``: the paper's 15 iterations and image counts (6000,
then 1000 per iteration); ``fooling_retrain_cppn.flags``, ``..._cifar10.flags``.
Writes summary.json (``iterations``: clean accuracy, held-out fooling-class
recall, confidence of the new images per iteration), retrain.png,
iterations.png. Runtimes and results: BUILD_NOTES.md.
"""

from fooljax.runs import retrain
from fooljax.runs.cli import run_main

retrain.define_flags()

if __name__ == "__main__":
    run_main(retrain.main)
