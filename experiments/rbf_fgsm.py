"""A shallow RBF network under FGSM (Goodfellow et al., ICLR 2015, Sec. 7).

  python -m experiments.rbf_fgsm --flagfile=experiments/configs/rbf_fgsm.flags \
      --workdir=runs/rbf_fgsm

One Gaussian unit per class, ``p(y=k|x) = exp(-sum_j beta_kj (x_j - mu_kj)^2)``
(``fooljax.models.rbf``), trained on MNIST with fooljax's train steps on the
units' Bernoulli likelihoods, then FGSM at epsilon = 0.25 on its own cost (and
fooljax's softmax-CE FGSM on its log-probabilities). Paper: 55.4 % error with
1.2 % mean confidence on the misclassified examples. Writes summary.json
(``clean_error``, ``fgsm``, ``fgsm_mean_confidence``, ``attacks``),
rbf_examples.png and rbf_fgsm_vs_epsilon.png. Runtime and our numbers in
``configs/rbf_fgsm.flags``.
"""

from fooljax.runs import goodfellow_extras
from fooljax.runs.cli import run_main

goodfellow_extras.define_flags(goodfellow_extras.RbfConfig)

if __name__ == "__main__":
    run_main(goodfellow_extras.make_main(goodfellow_extras.RbfConfig))
