"""Szegedy et al. (ICLR 2014) Sec. 4.2: training on a pool of adversarial
examples regenerated during training lowers the test error.

  python -m experiments.adversarial_pool \
      --flagfile=experiments/configs/adversarial_pool.flags --workdir=runs/pool

FC100-100-10 on MNIST; every epoch a fresh pool (L-BFGS, or FGSM with
--pool_attack=fgsm) made against the current network is mixed into the
training data; the control adds the same images un-attacked. Writes
summary.json: test error of both, FGSM error and L-BFGS distortion of fresh
examples, and each model's error on the other's L-BFGS examples. Measured
(15 min; FGSM pool 5 min): the pool leaves the test error unchanged (2.05 %
vs 2.11 %; paper < 1.2 % vs 1.6 %) but makes the net far harder to attack
(FGSM error 39 % vs 92 %); details in ``configs/adversarial_pool.flags``.
"""

from fooljax.runs import cross_training
from fooljax.runs.cli import run_main

cross_training.define_flags(cross_training.AdversarialPoolConfig)

if __name__ == "__main__":
    run_main(cross_training.main_pool)
