"""Train a classifier on MNIST (resumable).

  python -m experiments.train_classifier \
      --flagfile=experiments/configs/lenet_mnist.flags --workdir=runs/lenet

Expected (lenet_mnist.flags, 2-core CPU): >= 99.0 % test accuracy in about
2-3 minutes. Writes metrics.jsonl, checkpoints/, params.npz, summary.json.
"""

from fooljax.runs import train
from fooljax.runs.cli import run_main

train.define_train_flags()

if __name__ == "__main__":
    run_main(train.train_main)
