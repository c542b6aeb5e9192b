"""Szegedy et al. (ICLR 2014) Tables 3-4: adversarial examples across models
trained on disjoint halves of MNIST's training set.

  python -m experiments.cross_training \
      --flagfile=experiments/configs/cross_training.flags --workdir=runs/cross

FC100-100-10 and FC123-456-10 trained on P1, FC100-100-10' on P2 (30,000
images each); L-BFGS examples on 1000 test images per model; the error each
model's examples cause on the others, plain and magnified to stddev 0.1
(paper: 5.9 % and 43 % on the P2 model). Writes summary.json,
cross_training.png (Table 4 as a heat map), cross_training_examples.png and
artifact_<model>.npz. Runtime and expected numbers in
``configs/cross_training.flags``.
"""

from fooljax.runs import cross_training
from fooljax.runs.cli import run_main

cross_training.define_flags(cross_training.CrossTrainingConfig)

if __name__ == "__main__":
    run_main(cross_training.main)
