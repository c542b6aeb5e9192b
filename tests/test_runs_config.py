"""Flags generated from the runs layer's config dataclasses: one default each."""

import dataclasses

import pytest
from absl import flags

from fooljax.errors import FooljaxError
from fooljax.runs import config, fooling, gradient, one_pixel, train
from fooljax.train import TrainConfig

CONFIGS = [
    (fooling.FoolingConfig, None),
    (gradient.FgsmConfig, None),
    (gradient.LbfgsTablesConfig, None),
    (gradient.AdversarialTrainingConfig, None),
    (gradient.GradientAscentConfig, None),
    (one_pixel.OnePixelRunConfig, None),
    (train.EvaluateConfig, None),
    (TrainConfig, train.TRAIN_HELP),
]


def _parsed(cls, helps, *args):
    fv = flags.FlagValues()
    config.define_flags(cls, helps=helps, fv=fv)
    fv(["prog", *args])
    return fv


@pytest.mark.parametrize("cls,helps", CONFIGS, ids=lambda c: getattr(c, "__name__", ""))
def test_flag_defaults_are_the_dataclass_defaults(cls, helps):
    fv = _parsed(cls, helps)
    assert config.from_flags(cls, helps=helps, fv=fv) == cls()
    # every field except non-flag containers is a flag, with its help text
    names = {f.name for f, *_ in config.flag_fields(cls, helps)}
    assert names == {f.name for f in dataclasses.fields(cls)} - {"encoding_options"}
    assert all(fv[n].help for n in names)


def test_flags_parse_to_typed_fields():
    fv = _parsed(
        gradient.FgsmConfig,
        None,
        "--curve_epsilons=0,0.5",
        "--epsilon=0.1",
        "--num_images=7",
        "--data_dir=/x",
    )
    cfg = config.from_flags(gradient.FgsmConfig, fv=fv)
    assert cfg.curve_epsilons == (0.0, 0.5) and cfg.epsilon == 0.1
    assert cfg.num_images == 7 and cfg.data_dir == "/x"
    fv = _parsed(one_pixel.OnePixelRunConfig, None, "--eval_batch=3", "--nomemoize")
    cfg = config.from_flags(one_pixel.OnePixelRunConfig, fv=fv)
    assert cfg.eval_batch == 3 and cfg.memoize is False


def test_bad_list_value_names_the_flag():
    fv = _parsed(gradient.FgsmConfig, None, "--curve_epsilons=0,abc")
    with pytest.raises(FooljaxError, match="--curve_epsilons must be a comma list"):
        config.from_flags(gradient.FgsmConfig, fv=fv)


def test_validate_runs_on_from_flags():
    fv = _parsed(fooling.FoolingConfig, None, "--image_shape=28,28")
    with pytest.raises(FooljaxError, match="image_shape"):
        config.from_flags(fooling.FoolingConfig, fv=fv)
    fv = _parsed(one_pixel.OnePixelRunConfig, None, "--eval_batch=-1")
    with pytest.raises(FooljaxError, match="eval_batch"):
        config.from_flags(one_pixel.OnePixelRunConfig, fv=fv)


def test_main_default_overrides_field_default():
    fv = flags.FlagValues()
    config.define_flags(fooling.FoolingConfig, fv=fv, encoding="cppn")
    fv(["prog"])
    assert fv["encoding"].value == "cppn"
