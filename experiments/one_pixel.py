"""One pixel attack (Su et al. 2019) on a registered classifier; resumable.

  python -m experiments.one_pixel --flagfile=experiments/configs/one_pixel_lenet.flags \
      --weights=../shared/data/cifar10-keras-one-pixel/lenet.h5 --workdir=runs/op_lenet

Attacks the first ``--num_images`` correctly classified images from
``--start_index`` (untargeted, or with ``--targeted`` towards every other class)
with the paper's DE budget, in batches of ``--batch_size`` images attacked at
once. Each finished batch is saved in ``WORKDIR/batches/`` and skipped when the
run is restarted. Writes ``summary.json`` (success_rate,
mean_adversarial_confidence, mean_queries, num_images, wall_seconds,
images_per_second, classes_per_image for targeted runs), ``results.jsonl`` (one
line per attacked image/target) and ``grid.png`` (originals vs adversarials).
The last output line is the summary as JSON.

Expected (measured on the shared 2-core CPU under load; see BUILD_NOTES.md):
``--model=cifar_lenet --num_images=20`` (the 17 correctly classified exact PNGs)
takes about 160-200 s with success 0.53 (1 pixel), 0.82 (3) and 0.88 (5).
``cifar_resnet32`` costs about 200 s per image that is not fooled early.
"""

from fooljax.runs import one_pixel
from fooljax.runs.cli import run_main

one_pixel.define_flags()

if __name__ == "__main__":
    run_main(one_pixel.main)
