"""Goodfellow et al. (ICLR 2015) Fig. 4: the logits of all classes along the
FGSM direction as epsilon sweeps from -epsilon_max to +epsilon_max.

  python -m experiments.fgsm_logit_sweep \
      --flagfile=experiments/configs/fgsm_logit_sweep.flags --workdir=runs/sweep

Moves MNIST test images along the sign of their loss gradient,
``clip(x + eps * sign(g), 0, 1)``, and records every class's logit at
``--num_epsilons`` values of eps, in one vmapped call per batch
(``fooljax.attacks.fgsm_sweep.logit_sweep``), for the zoo's maxout net and the
embedded LeNet. Writes summary.json (per model: R^2 of one line and of two
lines with a kink at 0 per logit curve, how often lines fitted on small steps
predict the argmax at large eps, the error along the sweep),
logit_sweep_<model>.png (one panel per image, the true class thick) and
logit_sweep_images_<model>.png (the inputs along the sweep). Runtime and
measured numbers in configs/fgsm_logit_sweep.flags.
"""

from fooljax.runs import fgsm_extras
from fooljax.runs.cli import run_main

fgsm_extras.define_flags()

if __name__ == "__main__":
    run_main(fgsm_extras.main)
