"""Adversarial and fooling-image attacks on any ``logits_fn(params, images)``.

Gradient methods (issue 6): ``fgsm`` / ``pgd`` (Goodfellow et al. 2015; BIM,
PGD; ``pgd_step`` is one projected step), ``lbfgs_attack`` (Szegedy et al.
2014, box-constrained L-BFGS-B), ``gradient_ascent`` (Nguyen et al. 2015,
Sec. 3). Images are ``[B, H, W, C]`` float32 in [0, 1]; every result stays
inside that box. ``epsilon``/``step_size`` may be traced (``vmap`` over an epsilon curve,
``jit`` around an attack). For models without gradients use the
gradient-free attacks (``fooljax.attacks.one_pixel``: ``attack`` and its pure
cores ``init``/``run_chunk``/``best``; ``fooljax.evolution``).
"""

from fooljax.attacks.common import (
    check_differentiable,
    input_gradient,
    per_example_loss,
    project_linf_box,
    sign_step,
)
from fooljax.attacks.fgsm import fgsm, pgd, pgd_step
from fooljax.attacks.gradient_ascent import gradient_ascent, initial_images
from fooljax.attacks.lbfgs import LbfgsResult, lbfgs_attack, random_targets

__all__ = [
    "LbfgsResult",
    "check_differentiable",
    "fgsm",
    "gradient_ascent",
    "initial_images",
    "input_gradient",
    "lbfgs_attack",
    "per_example_loss",
    "pgd",
    "pgd_step",
    "project_linf_box",
    "random_targets",
    "sign_step",
]
