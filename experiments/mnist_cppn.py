"""MAP-Elites fooling images for MNIST with the CPPN indirect encoding.

  python -m experiments.mnist_cppn \
      --flagfile=experiments/configs/mnist_cppn.flags [--workdir=DIR]

Nguyen et al. 2015, Sec. 2.3 and 3.2: a CPPN (inputs x, y, d, bias; sine,
sigmoid, Gaussian, identity) evolved NEAT-style by MAP-Elites over the 10 digit
classes. Runs on the embedded LeNet (no data, no network). Against the paper's
own Caffe LeNet add ``--weights=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/lenet_iter_10000
--preprocess=caffe_deploy --mean_file=.../mnist_mean.binaryproto``.
Expected (flagfile: 200 offspring x 1000 generations, 2-core CPU): every class
>= 0.9999 within the first few dozen generations, the whole run in about 1-3
minutes depending on the machine's load (BUILD_NOTES.md has measured numbers).
Writes summary.json, archive.png, classes/*.png, confidence.png, metrics.jsonl
and checkpoints/ into the work directory; ``scripts/render_cppn.py`` renders an
elite at any resolution from there. The CPPN's weights use --mutation_rate and
--mutation_eta (polynomial mutation in [-10, 10]).
"""

import time

_T0 = time.time()

from absl import flags  # noqa: E402

from fooljax.cli import extra_args, run_main  # noqa: E402
from fooljax.encodings import cppn  # noqa: E402
from fooljax.errors import FooljaxError  # noqa: E402
from fooljax.evolution import fooling  # noqa: E402
from fooljax.evolution.flags import config_from_flags, define_fooling_flags  # noqa: E402

_S = cppn.Spec()


def define_cppn_flags() -> None:
    """The CPPN's own flags (capacities, operator probabilities, activations)."""
    flags.DEFINE_integer(
        "cppn_max_nodes", _S.max_nodes, "Node capacity (4 inputs + outputs + hidden)."
    )
    flags.DEFINE_integer("cppn_max_edges", _S.max_edges, "Connection capacity.")
    flags.DEFINE_list(
        "cppn_activations", list(_S.activations), "sine,sigmoid,gaussian,identity."
    )
    flags.DEFINE_float("cppn_p_add_conn", _S.p_add_conn, "P(add a connection).")
    flags.DEFINE_float("cppn_p_del_conn", _S.p_del_conn, "P(delete a connection).")
    flags.DEFINE_float(
        "cppn_p_change_conn", _S.p_change_conn, "P(rewire one connection endpoint)."
    )
    flags.DEFINE_float("cppn_p_add_node", _S.p_add_node, "P(split a connection).")
    flags.DEFINE_float("cppn_p_del_node", _S.p_del_node, "P(delete a hidden node).")
    flags.DEFINE_float(
        "cppn_activation_rate",
        _S.activation_rate,
        "Per-node probability of redrawing the activation function.",
    )


def cppn_options() -> tuple:
    """The flags as FoolingConfig.encoding_options (name, value) pairs."""
    f = flags.FLAGS
    if f.crossover_rate > 0:
        raise FooljaxError("the CPPN encoding has no crossover: use --crossover_rate=0")
    if f.mutation_halving > 0:
        raise FooljaxError(
            "--mutation_halving is a direct-encoding schedule: use 0 with the CPPN"
        )
    return (
        ("max_nodes", f.cppn_max_nodes),
        ("max_edges", f.cppn_max_edges),
        ("activations", ",".join(f.cppn_activations)),
        ("p_add_conn", f.cppn_p_add_conn),
        ("p_del_conn", f.cppn_p_del_conn),
        ("p_change_conn", f.cppn_p_change_conn),
        ("p_add_node", f.cppn_p_add_node),
        ("p_del_node", f.cppn_p_del_node),
        ("weight_rate", f.mutation_rate),
        ("weight_eta", f.mutation_eta),
        ("activation_rate", f.cppn_activation_rate),
    )


define_fooling_flags(default_workdir="runs/mnist_cppn", encoding="cppn")
define_cppn_flags()
FLAGS = flags.FLAGS


def main(argv):
    extra_args(argv)
    if FLAGS.encoding != "cppn":
        raise FooljaxError("experiments.mnist_cppn needs --encoding=cppn")
    config = config_from_flags(encoding="cppn", encoding_options=cppn_options())
    summary = fooling.run(config, FLAGS.workdir, overwrite=FLAGS.overwrite, t_start=_T0)
    c = summary["confidence"]
    print(
        f"{summary['generations']} generations in {summary['wall_seconds']:.1f} s: "
        f"min confidence {min(c):.6f}, {summary['num_classes_at_least']['0.9999']}"
        f"/{len(c)} classes >= 0.9999, all >= 0.9999 at generation "
        f"{summary['first_generation_all_at_least']['0.9999']}"
    )
    print(f"results in {FLAGS.workdir} (summary.json, archive.png, confidence.png)")


if __name__ == "__main__":
    run_main(main)
