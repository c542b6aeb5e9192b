"""Adversarial training (Goodfellow et al., ICLR 2015, Sec. 6):
J~ = 0.5 J(x) + 0.5 J(x + 0.25 sign grad_x J), clean and FGSM test error
before and after, and the transfer of FGSM examples between the two models.

  python -m experiments.adversarial_training \
      --flagfile=experiments/configs/adversarial_training.flags \
      --workdir=runs/adversarial_training

"before" is the zoo model (``lenet``: the embedded checkpoint, trained by
experiments/configs/lenet_mnist.flags); "after" is the same training config with
``adv_alpha=0.5, adv_epsilon=0.25`` (zoo ``lenet_adv``, trained on first use:
9 minutes on the shared 2-core CPU). Measured (10,000 test images, about 1
minute once the zoo is trained): clean error 0.0064 -> 0.0080, FGSM(0.25)
error 0.908 -> 0.066; transfer: the trained model misclassifies 7.9 % of the
FGSM examples made on the original, the original 51.0 % of those made on the
trained one (paper, maxout: 19.6 % / 40.9 %). ``--model=maxout``: see
configs/adversarial_training.flags. Writes summary.json (``before``/``after``:
``{clean_error, adversarial_error}``, ``transfer``, ``paper``),
adversarial_training_examples.png and ``artifact_<model>.npz`` for both
models (sources for experiments.transfer: ``DIR:lenet``, ``DIR:lenet_adv``).
"""

from fooljax.runs import gradient
from fooljax.runs.cli import run_main

gradient.define_flags(gradient.AdversarialTrainingConfig)

if __name__ == "__main__":
    run_main(gradient.make_main(gradient.AdversarialTrainingConfig))
