"""Settings objects as command-line options and as checked values: one knob, one name.

Every step keeps its knobs in a frozen dataclass (``CalibrationSettings``,
``ExtrapolationSettings`` ...) whose docstring has an ``Attributes:`` section: each knob has
one name (the field), one default (the field's default) and one description (its entry in
that section). This module turns such a class into

- command-line options (:func:`add_arguments`, :func:`from_args`): field ``max_gen`` is
  ``--max-gen``, its help is the docstring entry, its default the field's (a ``bool`` field
  ``twin`` is the pair ``--twin`` / ``--no-twin``);
- checked values (:func:`coerce`): a value given as text or YAML (``-p NAME VALUE`` of
  ``lue-spie book``) is checked against the field's type before anything runs, with a
  one-line error naming the knob and what it expects.

A command writes to its ``--out`` folder, or declares the folders it writes
(:func:`output_folders`): ``lue-spie`` checks each of them before the command runs (a file, a
read-only file system, no permission, no space: :func:`lue_spie.store.check_output_folder`)
and tidies them after a failure.

The types a knob may have: ``bool``, ``int``, ``float``, ``str``, ``tuple[X, ...]`` of those,
and any of them ``| None``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from lue_spie.errors import UsageError

__all__ = ["field_docs", "knobs", "coerce", "add_arguments", "from_args", "KnobError",
           "output_folders", "declared_output_folders"]


class KnobError(UsageError):
    """A value that does not fit its knob (names the knob and what it expects)."""


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The description of each field from the class docstring's ``Attributes:`` section."""
    doc = inspect.getdoc(cls) or ""
    m = re.search(r"^Attributes:\n(.*?)(?:^\S|\Z)", doc, re.M | re.S)
    if not m:
        return {}
    out: dict[str, str] = {}
    current: list[str] = []
    names: list[str] = []
    for line in m.group(1).splitlines():
        head = re.match(r"^    ([A-Za-z_][\w, ]*):\s*(.*)$", line)
        if head:
            for n in names:
                out[n] = " ".join(current).strip()
            names = [n.strip() for n in head.group(1).split(",")]
            current = [head.group(2)]
        elif names:
            current.append(line.strip())
    for n in names:
        out[n] = " ".join(current).strip()
    return out


def knobs(cls: type, *, exclude: Iterable[str] = ()) -> list[dataclasses.Field]:
    """The init fields of a settings dataclass, in order, without ``exclude``."""
    skip = set(exclude)
    return [f for f in dataclasses.fields(cls) if f.init and f.name not in skip]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parts(tp: Any) -> tuple[Any, bool]:
    """``(type without None, whether None is allowed)``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"a knob has one type or None, not {tp}")
        return rest[0], True
    return tp, False


def _describe(tp: Any) -> str:
    base, optional = _parts(tp)
    if typing.get_origin(base) is tuple:
        text = f"a list of {typing.get_args(base)[0].__name__}"
    else:
        text = {bool: "true or false", int: "an integer", float: "a number",
                str: "a string"}.get(base, str(base))
    return text + (" or null" if optional else "")


def _scalar(value: Any, tp: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise TypeError
    if tp is int:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value)
        raise TypeError
    if tp is float:
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError
    if tp is Any:
        return value
    raise TypeError


def coerce(cls: type, name: str, value: Any) -> Any:
    """``value`` checked and converted for field ``name`` of settings class ``cls``.

    Raises:
        KnobError: naming ``cls.name``, the value and the type it expects.
    """
    hints = _hints(cls)
    if name not in hints:
        raise KnobError(f"{cls.__name__} has no setting {name!r}; its settings are "
                        f"{[f.name for f in knobs(cls)]}")
    tp = hints[name]
    base, optional = _parts(tp)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")
                         and optional):
        if optional:
            return None
        raise KnobError(f"{name} = None: expected {_describe(tp)}")
    try:
        if typing.get_origin(base) is tuple:
            item = typing.get_args(base)[0]
            if isinstance(value, str):
                value = [v for v in re.split(r"[,\s]+", value.strip()) if v]
            if not isinstance(value, list | tuple):
                raise TypeError
            return tuple(_scalar(v, item) for v in value)
        return _scalar(value, base)
    except (TypeError, ValueError):
        raise KnobError(f"{name} = {value!r}: expected {_describe(tp)}") from None


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


class _ArgType:
    """argparse ``type=`` for one knob: the one-line error of :func:`coerce`."""

    def __init__(self, cls: type, name: str) -> None:
        self.cls, self.name = cls, name
        self.__name__ = name

    def __call__(self, text: str) -> Any:
        try:
            return coerce(self.cls, self.name, text)
        except KnobError as err:
            raise argparse.ArgumentTypeError(str(err)) from None


def add_arguments(parser: argparse.ArgumentParser, cls: type, *,
                  exclude: Iterable[str] = (), defaults: Mapping[str, Any] | None = None,
                  help_suffix: Mapping[str, str] | None = None) -> None:
    """Add one option per field of ``cls`` (``max_gen`` -> ``--max-gen``).

    Args:
        parser: The (sub)command's parser.
        cls: A settings dataclass.
        exclude: Fields that are not options of this command.
        defaults: Defaults other than the dataclass's (e.g. the command's own device).
        help_suffix: Extra help text per field.
    """
    docs = field_docs(cls)
    defaults = dict(defaults or {})
    suffix = dict(help_suffix or {})
    for f in knobs(cls, exclude=exclude):
        default = defaults.get(f.name, f.default if f.default is not dataclasses.MISSING
                               else f.default_factory())  # type: ignore[misc]
        text = docs.get(f.name, "").replace("%", "%%")
        text = (text + " " + suffix.get(f.name, "")).strip()
        if _parts(_hints(cls)[f.name]) == (bool, False):  # a switch: --name / --no-name
            parser.add_argument(_option(f.name), dest=f.name, default=default,
                                action=argparse.BooleanOptionalAction, help=text or None)
            continue
        text += f" (default: {default!r})" if default is not None else ""
        parser.add_argument(_option(f.name), dest=f.name, default=default,
                            type=_ArgType(cls, f.name), metavar="VALUE",
                            help=text or None)


def from_args(cls: type, args: argparse.Namespace, *, exclude: Iterable[str] = (),
              **extra: Any) -> Any:
    """An instance of ``cls`` from the options :func:`add_arguments` added (plus ``extra``)."""
    values = {f.name: getattr(args, f.name) for f in knobs(cls, exclude=exclude)
              if hasattr(args, f.name)}
    values.update(extra)
    return cls(**values)


#: The namespace attribute under which a command declares its output folders.
_OUTPUTS = "output_folders"


def output_folders(parser: argparse.ArgumentParser,
                   places: Callable[[argparse.Namespace], Mapping[str, Any]]) -> None:
    """Declare the folders a command writes, so that ``lue-spie`` checks them before the
    command runs and tidies them after a failure (:func:`lue_spie.cli.main`).

    Args:
        parser: The command's parser.
        places: From the parsed arguments, how the user names each folder (``"--out"``) ->
            the folder (None: the command writes none there this time).
    """
    parser.set_defaults(**{_OUTPUTS: places})


def declared_output_folders(args: argparse.Namespace) -> dict[str, Path]:
    """The output folders of a parsed command, by option: those it declared
    (:func:`output_folders`), else its ``--out`` when it has one."""
    places = getattr(args, _OUTPUTS, None)
    found = places(args) if places is not None else {"--out": getattr(args, "out", None)}
    return {option: Path(folder) for option, folder in found.items() if folder is not None}
