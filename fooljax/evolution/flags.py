"""absl flags shared by the fooling-image entry points (``experiments/*``)."""

from __future__ import annotations

import dataclasses

from absl import flags

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
