"""Evaluate a classifier on a labelled dataset; the last output line is JSON.

  python -m experiments.evaluate --model=lenet --weights=default \
      --data_dir=../shared/data/mnist
  python -m experiments.evaluate --model=lenet \
      --weights=../shared/data/lenet-mnist-caffe-fooling/lenet_iter_10000 \
      --preprocess=caffe_deploy \
      --mean_file=../shared/data/lenet-mnist-caffe-fooling/mnist_mean.binaryproto \
      --data_dir=../shared/data/mnist

``--weights``: ``default`` (embedded), a checkpoint/work directory, a ``.npz`` of
params, or a foreign weights file (``.caffemodel``, ...) detected from content.
Expected: accuracy 0.9936 (default), 0.9918 (unit), 0.9739 (caffe_deploy).
"""

import time

from absl import flags

from fooljax import data, models
from fooljax.cli import extra_args, print_json_line, run_main
from fooljax.train import evaluate_classifier

flags.DEFINE_string("model", "lenet", "Registered model name.")
flags.DEFINE_string("weights", "default", "default, a checkpoint dir, or a file.")
flags.DEFINE_string("dataset", "mnist", "Dataset name.")
flags.DEFINE_string("split", "test", "Dataset split.")
flags.DEFINE_string("data_dir", None, "Data directory (default $FOOLJAX_DATA/<set>).")
flags.DEFINE_string("data_source", "idx", "idx, tfds or auto (MNIST).")
flags.DEFINE_string("preprocess", None, "identity, unit or caffe_deploy.")
flags.DEFINE_string("mean_file", None, "Caffe mean .binaryproto (caffe_deploy).")
flags.DEFINE_integer("batch_size", 500, "Evaluation batch size.")
FLAGS = flags.FLAGS


def main(argv):
    extra_args(argv)
    t0 = time.time()
    mean = None
    if FLAGS.mean_file:
        from fooljax.io.caffe import load_binaryproto

        mean = load_binaryproto(FLAGS.mean_file)
    clf = models.load_classifier(
        FLAGS.model, FLAGS.weights, preprocess=FLAGS.preprocess, mean=mean
    )
    images, labels = data.load_dataset(
        FLAGS.dataset, FLAGS.split, data_dir=FLAGS.data_dir, source=FLAGS.data_source
    )
    # Models that resize inside their logits_fn (ImageNet nets: resizes_input)
    # take any H, W with the right number of channels.
    resizes = getattr(models.get_spec(FLAGS.model).build(), "resizes_input", False)
    if tuple(images.shape[1:]) != tuple(clf.input_shape) and not (
        resizes and images.shape[-1] == clf.input_shape[-1]
    ):
        from fooljax.errors import FooljaxError

        raise FooljaxError(
            f"dataset images are {images.shape[1:]}, model '{FLAGS.model}' takes "
            f"{clf.input_shape}"
        )
    result = evaluate_classifier(
        clf.logits_fn, clf.params, images, labels, FLAGS.batch_size
    )
    result.update(
        model=FLAGS.model,
        weights=FLAGS.weights,
        dataset=FLAGS.dataset,
        preprocess=FLAGS.preprocess or models.get_spec(FLAGS.model).default_preprocess,
        wall_seconds=round(time.time() - t0, 3),
    )
    print_json_line(result)


if __name__ == "__main__":
    run_main(main)
