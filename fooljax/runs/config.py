"""absl flags generated from config dataclasses: each default is written once.

A runs module declares its settings as a frozen dataclass whose fields carry
their help text (``opt(default, "help")``); ``define_flags(Config)`` turns the
fields into flags of the matching type and ``from_flags(Config)`` reads them
back, naming the flag in a ``FooljaxError`` when a list value does not parse.

Types: ``bool``, ``int``, ``float``, ``str`` (``X | None`` allowed), and
tuples of int/float/str (comma lists). Fields without help metadata (such as
``FoolingConfig.encoding_options``) are not flags.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing

from absl import flags

from fooljax.errors import FooljaxError

FLAGS = flags.FLAGS


def opt(default, help: str, *, choices: tuple[str, ...] | None = None):
    """A dataclass field that is also a flag (``choices``: an enum flag)."""
    return dataclasses.field(
        default=default, metadata={"help": help, "choices": choices}
    )


def _base_type(tp):
    """``(scalar type, is_tuple)`` of an annotation, ``X | None`` unwrapped."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0]
    if typing.get_origin(tp) is tuple:
        elem = typing.get_args(tp)[0] if typing.get_args(tp) else str
        return elem, True
    return tp, False


def flag_fields(cls, helps: dict | None = None):
    """``[(field, scalar type, is_tuple, help)]`` of the fields that are flags:
    those with help metadata, or named in ``helps`` (for a dataclass of a lower
    layer, such as ``train.TrainConfig``, that carries no flag metadata)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        help_ = (helps or {}).get(f.name, f.metadata.get("help"))
        if help_ is not None:
            tp, is_tuple = _base_type(hints[f.name])
            out.append((f, tp, is_tuple, help_))
    return out


def define_flags(cls, *, helps: dict | None = None, fv=FLAGS, **defaults) -> None:
    """Defines one flag per field of ``cls`` in ``fv`` (absl's global flags by
    default), with the field's default unless ``defaults`` overrides it."""
    for f, tp, is_tuple, help_ in flag_fields(cls, helps):
        default = defaults.get(f.name, f.default)
        tp = tuple if is_tuple else tp
        define_flag(f.name, default, tp, help_, f.metadata.get("choices"), fv=fv)


def define_flag(name: str, default, tp, help_: str, choices=None, *, fv=FLAGS):
    """One absl flag of type ``tp`` (bool, int, float, str, or tuple for a comma
    list); an enum flag when ``choices`` are given."""
    if tp is tuple:
        value = None if default is None else [str(v) for v in default]
        flags.DEFINE_list(name, value, help_, flag_values=fv)
    elif choices:
        flags.DEFINE_enum(name, default, list(choices), help_, flag_values=fv)
    elif tp is bool:
        flags.DEFINE_bool(name, default, help_, flag_values=fv)
    elif tp is int:
        flags.DEFINE_integer(name, default, help_, flag_values=fv)
    elif tp is float:
        flags.DEFINE_float(name, default, help_, flag_values=fv)
    else:
        flags.DEFINE_string(name, default, help_, flag_values=fv)


def flag_values(cls, *, helps: dict | None = None, fv=FLAGS) -> dict:
    """The current flag values of ``cls``'s fields (lists parsed to tuples)."""
    values = {}
    for f, tp, is_tuple, _ in flag_fields(cls, helps):
        name = f.name
        v = fv[name].value
        if is_tuple and v is not None:
            try:
                v = tuple(tp(x) for x in v)
            except ValueError:
                raise FooljaxError(
                    f"--{name} must be a comma list of {tp.__name__} values, "
                    f"got {','.join(v)}"
                ) from None
        values[f.name] = v
    return values


def from_flags(cls, *, helps: dict | None = None, fv=FLAGS, **overrides):
    """``cls(**flag values, **overrides)``, then ``validate()`` if it has one."""
    config = cls(**{**flag_values(cls, helps=helps, fv=fv), **overrides})
    if hasattr(config, "validate"):
        config.validate()
    return config


def check_number(
    name: str,
    value,
    *,
    lo=None,
    hi=None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Refuses a non-finite ``value`` or one outside ``[lo, hi]`` (open ends with
    ``lo_open``/``hi_open``) with one line naming the flag."""
    bad = value is None or not math.isfinite(value)
    if not bad and lo is not None:
        bad = value <= lo if lo_open else value < lo
    if not bad and hi is not None:
        bad = value >= hi if hi_open else value > hi
    if bad:
        rng = (
            f"{'(' if lo_open else '['}{'-inf' if lo is None else lo}, "
            f"{'inf' if hi is None else hi}{')' if hi_open else ']'}"
        )
        raise FooljaxError(f"--{name} must be a finite number in {rng}, got {value}")


def check_fields(cfg, **ranges) -> None:
    """``check_number`` for several fields: ``name=(lo, hi)`` closed ranges,
    ``name=dict(lo=..., lo_open=True)`` for others."""
    for name, r in ranges.items():
        kw = r if isinstance(r, dict) else {"lo": r[0], "hi": r[1]}
        check_number(name, getattr(cfg, name), **kw)


def define_workdir_flags(default_workdir: str | None = None) -> None:
    """``--workdir`` (required when there is no default) and ``--overwrite``."""
    flags.DEFINE_string(
        "workdir", default_workdir, "Run directory (created; resumed if unfinished)."
    )
    flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
    if default_workdir is None:
        flags.mark_flag_as_required("workdir")
