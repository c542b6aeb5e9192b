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

Expected on the 2-core CPU: ``--model=cifar_lenet --weights=$W/lenet.h5
--num_images=20`` (the 17 correctly classified exact PNGs) fools 9 of 17
(success 0.53) at one pixel in about a minute (0.82 with 3 pixels, 0.88 with
5; BUILD_NOTES.md). ``cifar_resnet32`` costs about 200 s per image that is not
fooled early.
"""

from fooljax.runs import one_pixel
from fooljax.runs.cli import run_main

one_pixel.define_flags()

if __name__ == "__main__":
    run_main(one_pixel.main)
