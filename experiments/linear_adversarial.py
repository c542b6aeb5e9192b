"""Adversarial training versus L1 weight decay for logistic regression
(Goodfellow et al., ICLR 2015, Sec. 5 and Fig. 2), MNIST 3s vs 7s.

  python -m experiments.linear_adversarial \
      --flagfile=experiments/configs/linear_adversarial.flags \
      --workdir=runs/linear_adversarial

Trains the ``logistic`` model plainly, adversarially (alpha = 0.5, epsilon =
0.25, with fooljax's FGSM and in the paper's closed form
``zeta(-s z + eps ||w||_1)``) and with L1 weight decay; clean and FGSM error
of each (paper, plain model: 1.6 % and 99 %). Writes summary.json
(``models[name]``) and linear_fig2.png (weights, sign of the gradient,
adversarial images). Runtime and our numbers in
``configs/linear_adversarial.flags``.
"""

from fooljax.runs import goodfellow_extras
from fooljax.runs.cli import run_main

goodfellow_extras.define_flags(goodfellow_extras.LinearConfig)

if __name__ == "__main__":
    run_main(goodfellow_extras.make_main(goodfellow_extras.LinearConfig))
