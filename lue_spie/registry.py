"""A registry of interchangeable classes by name: the methods, the data sources.

Classes register themselves from ``__init_subclass__`` (as pyrealm's interchangeable methods
do); a :class:`Registry` keeps them by name, imports the modules that define them the first
time it is asked, lists them in an order of the owner's choosing, and builds one from its
settings with one-line errors that name what is known.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes of one kind by name.

    Args:
        kind: What the classes are, for messages (``"method"``, ``"data source"``).
        load: Imports the modules that register the classes (called once, when first asked).
        order: The sort key of a name in :meth:`classes` (default: the name).
        what: What the constructor arguments are called, for messages.
    """

    def __init__(self, kind: str, *, load: Callable[[], None] | None = None,
                 order: Callable[[str, type[T]], Any] | None = None,
                 what: str = "setting") -> None:
        self.kind = kind
        self.what = what
        self._load = load
        self._loaded = load is None
        self._order = order or (lambda name, cls: name)
        self._classes: dict[str, type[T]] = {}

    def add(self, name: str, cls: type[T]) -> None:
        """Register ``cls`` as ``name``.

        Raises:
            ValueError: when another class has that name.
        """
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"{self.kind} {name!r} is registered twice "
                             f"({self._classes[name]} and {cls})")
        self._classes[name] = cls

    def copy(self) -> Registry[T]:
        """An independent registry with the same classes (e.g. for a test that registers
        classes of its own and must not leave them behind)."""
        self._ensure_loaded()
        new: Registry[T] = Registry(self.kind, order=self._order, what=self.what)
        new._classes = dict(self._classes)
        return new

    def classes(self) -> dict[str, type[T]]:
        """Every registered class by name, in the registry's order."""
        self._ensure_loaded()
        names = sorted(self._classes, key=lambda n: self._order(n, self._classes[n]))
        return {n: self._classes[n] for n in names}

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``.

        Raises:
            KeyError: naming the unknown name and the known ones.
        """
        self._ensure_loaded()
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; expected one of "
                           f"{list(self.classes())}") from None

    def build(self, name: str, **kwargs: Any) -> T:
        """An instance of the class registered as ``name``.

        Raises:
            KeyError: for an unknown name.
            ValueError: for an argument the (dataclass) class does not have, naming the valid
                ones.
        """
        cls = self.get(name)
        if dataclasses.is_dataclass(cls):
            valid = [f.name for f in dataclasses.fields(cls) if f.init and f.repr]
            unknown = sorted(set(kwargs) - set(valid))
            if unknown:
                raise ValueError(f"{self.kind} {name}: unknown {self.what}(s) {unknown}; its "
                                 f"{self.what}s are {valid}")
        return cls(**kwargs)

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            if self._load is not None:
                self._load()
