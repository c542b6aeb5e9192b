"""absl flags shared by the fooling-image entry points (``experiments/*``)."""

from __future__ import annotations

import dataclasses

from absl import flags

from fooljax.errors import FooljaxError
from fooljax.evolution.fooling import FoolingConfig

_D = FoolingConfig()


def define_fooling_flags(*, default_workdir: str, encoding: str = "direct") -> None:
    flags.DEFINE_string(
        "workdir", default_workdir, "Run directory (resumed if unfinished)."
    )
    flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
    flags.DEFINE_string("model", _D.model, "Registered model name.")
    flags.DEFINE_string("weights", _D.weights, "default, a checkpoint dir or a file.")
    flags.DEFINE_string("preprocess", None, "identity, unit or caffe_deploy.")
    flags.DEFINE_string("mean_file", None, "Caffe mean .binaryproto (caffe_deploy).")
    flags.DEFINE_string("encoding", encoding, "Genome encoding.")
    flags.DEFINE_list("image_shape", None, "H,W,C of genomes (default: the model's).")
    flags.DEFINE_integer("population", _D.population, "Offspring per generation.")
    flags.DEFINE_integer("generations", _D.generations, "Generations to run.")
    flags.DEFINE_float("mutation_rate", _D.mutation_rate, "Per-gene mutation prob.")
    flags.DEFINE_float("mutation_eta", _D.mutation_eta, "Polynomial mutation index.")
    flags.DEFINE_integer(
        "mutation_halving",
        _D.mutation_halving,
        "Halve the mutation rate every N generations (0 = never).",
    )
    flags.DEFINE_float("crossover_rate", _D.crossover_rate, "SBX crossover prob.")
    flags.DEFINE_float("crossover_eta", _D.crossover_eta, "SBX distribution index.")
    flags.DEFINE_integer("seed", _D.seed, "Random seed.")
    flags.DEFINE_integer("checkpoint_every", _D.checkpoint_every, "Generations.")
    flags.DEFINE_integer("log_every", _D.log_every, "Generations per compiled chunk.")
    flags.DEFINE_integer("num_devices", _D.num_devices, "0 = all local devices.")
    flags.DEFINE_bool("ten_crop", False, "Average the softmax over 10 crops.")
    flags.DEFINE_integer(
        "eval_batch", _D.eval_batch, "Images per model call (same on every device)."
    )


def config_from_flags(**overrides) -> FoolingConfig:
    from fooljax.errors import FooljaxError

    f = flags.FLAGS
    values = {}
    for field in dataclasses.fields(FoolingConfig):
        if field.name in f:
            values[field.name] = f[field.name].value
    if values.get("image_shape"):
        try:
            values["image_shape"] = tuple(int(v) for v in values["image_shape"])
        except ValueError:
            raise FooljaxError("--image_shape must be H,W,C integers") from None
        if len(values["image_shape"]) != 3 or min(values["image_shape"]) <= 0:
            raise FooljaxError("--image_shape must be three positive integers H,W,C")
    values.update(overrides)
    return FoolingConfig(**values)


def define_cppn_flags() -> None:
    """The CPPN's own flags (capacities, operator probabilities, activations)."""
    from fooljax.encodings import cppn

    _S = cppn.Spec()
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
    flags.DEFINE_enum(
        "cppn_coords",
        _S.coords,
        list(cppn.COORDS),
        "CPPN x, y inputs: 'centered' in [-1, 1], or 'pixel' = column/row "
        "indices as in the paper's Sferes2 code.",
    )
    flags.DEFINE_enum(
        "cppn_output_map",
        _S.output_map,
        list(cppn.OUTPUT_MAPS),
        "Output o -> pixel: 'affine' (o + 1) / 2, or 'abs' |o| as in the Sferes2 code.",
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
        ("coords", f.cppn_coords),
        ("output_map", f.cppn_output_map),
    )
