"""Adversarial training (Goodfellow et al., ICLR 2015, Sec. 6):
J~ = 0.5 J(x) + 0.5 J(x + 0.25 sign grad_x J), clean and FGSM test error
before and after.

  python -m experiments.adversarial_training \
      --flagfile=experiments/configs/adversarial_training.flags \
      --workdir=runs/adversarial_training

"before" is the zoo model (``lenet``: the embedded checkpoint, trained by
experiments/configs/lenet_mnist.flags); "after" is the same training config with
``adv_alpha=0.5, adv_epsilon=0.25`` (zoo ``lenet_adv``, trained on first use:
18 minutes on a loaded 2-core CPU). Expected: clean error 0.0064 -> 0.0074,
FGSM(0.25) error 0.908 -> 0.064. Writes summary.json (``before``/
``after``: ``{clean_error, adversarial_error}``) and
adversarial_training_examples.png.
"""

from fooljax.runs import gradient
from fooljax.runs.cli import run_main

gradient.define_flags(gradient.AdversarialTrainingConfig)

if __name__ == "__main__":
    run_main(gradient.make_main(gradient.AdversarialTrainingConfig))
