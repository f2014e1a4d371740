"""A Sphinx extension for the book's API reference: cross-references to re-exported names.

The API reference (``book/api/``) documents every module of the package with
``sphinx.ext.autodoc`` and ``sphinx.ext.napoleon``, each object once, under the module that
defines it. Docstrings, however, name objects the way a user imports them: by their package
(``lue_spie.model.simulate``), by a short name inside a module (``run``), or by a re-export
(``lue_spie.calibrate.CalibrationSettings``). Sphinx resolves a reference only to the exact
name an object was documented under, so in the strict build (``-n``) such references would
be warnings. Sphinx has no option for this (``:canonical:`` covers classes documented under
an alias, not references to them), hence this extension of four event handlers:

- ``missing-reference``: import the name in the context of the module whose docstring holds
  the reference (the module itself, then its package), find where the object is defined
  (``__module__`` + ``__qualname__``) and link to that entry when the reference documents it;
- ``warn-missing-reference``: stay quiet only for names that resolve to objects outside
  ``lue_spie`` (``numpy.ndarray``, ``torch.Tensor``, ``pathlib.Path``, ``typing.Any``: the
  book is built offline, without intersphinx). A ``lue_spie`` name that does not resolve
  still fails the build, so a stale reference in a docstring is caught; so does a name that
  exists nowhere. A name that exists but is private (``_scan``) renders as plain code;
- ``autodoc-process-docstring`` (before napoleon): napoleon reads the text before the first
  colon of an attribute's docstring, and of the first line of a ``Returns:`` section, as a
  type (``BOUNDS``: "Bounds (shape (13, 2)): lower, upper"). Where that text is prose (a
  space outside brackets), the colon becomes a dash, so napoleon keeps it as description;
- ``autodoc-skip-member``: members a class inherits from another package (scikit-learn's
  ``set_fit_request``) are not ``lue_spie``'s API and are left out.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import re
from typing import Any

__all__ = ["MISSING", "resolve_object", "setup"]

_PACKAGE = "lue_spie"


#: Returned for a name that resolves to nothing (a resolved object may itself be None).
MISSING = object()


def _import_path(path: str) -> Any:
    """The object named by a dotted path (a module, then attributes), or :data:`MISSING`."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        except Exception:  # noqa: BLE001 - a module that fails to import resolves nothing
            return MISSING
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return MISSING
            obj = getattr(obj, attr)
        return obj
    return MISSING


def resolve_object(target: str, context_module: str | None,
                   context_class: str | None = None) -> Any:
    """The object a reference names, read in the context where it was written.

    Tries, in order: the target as a full dotted path; as a name inside the context class,
    the context module and each package above it; as a builtin. Returns :data:`MISSING`
    when nothing matches.
    """
    target = target.lstrip("~.")
    candidates = [target]
    if context_module:
        parts = context_module.split(".")
        if context_class:
            candidates.append(f"{context_module}.{context_class}.{target}")
        for i in range(len(parts), 0, -1):
            candidates.append(".".join([*parts[:i], target]))
    for path in candidates:
        obj = _import_path(path)
        if obj is not MISSING:
            return obj
    return getattr(builtins, target.split(".")[0], MISSING)


def _canonical_name(obj: Any) -> str | None:
    """Where an object is defined: ``module.qualname`` (modules: their name)."""
    if isinstance(obj, type(importlib)):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    return f"{module}.{qualname}"


_MASK = re.compile(r"``[^`]*``|(:[\w:+-]+:)?`[^`]*`|::")


def _prose_head(line: str) -> int | None:
    """Position of the colon napoleon would split a line on, when the text before it is prose.

    Napoleon splits on the first colon outside roles (``:func:``) and backticks, brackets or
    not; the text before it is prose when it has a space outside brackets or the colon sits
    inside brackets (a type is one name, or a name with bracketed arguments).
    """
    masked = _MASK.sub(lambda m: "x" * len(m.group(0)), line)
    pos = masked.find(":")
    if pos < 0:
        return None
    depth, spaced = 0, False
    for ch in masked[len(masked) - len(masked.lstrip()):pos]:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch.isspace():
            spaced = True
    return pos if spaced or depth != 0 else None


def _unsplit(line: str) -> str:
    pos = _prose_head(line)
    return line if pos is None else f"{line[:pos]} \u2014{line[pos + 1:]}"


_RETURNS = ("Returns:", "Return:", "Yields:", "Yield:")


def _protect_prose_colons(app: Any, what: str, name: str, obj: Any, options: Any,
                          lines: list[str]) -> None:
    if what in ("data", "attribute", "property") and lines:
        lines[0] = _unsplit(lines[0])
    for i, line in enumerate(lines):
        if line.strip() in _RETURNS:
            j = next((k for k in range(i + 1, len(lines)) if lines[k].strip()), None)
            if j is not None:
                lines[j] = _unsplit(lines[j])


def _skip_foreign_member(app: Any, what: str, name: str, obj: Any, skip: bool,
                         options: Any) -> bool | None:
    if what == "class" and (inspect.isfunction(obj) or inspect.ismethod(obj)
                            or callable(obj) and hasattr(obj, "__module__")):
        module = getattr(obj, "__module__", "") or ""
        if module and not (module == _PACKAGE or module.startswith(_PACKAGE + ".")):
            return True
    return None


def _missing_reference(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    obj = resolve_object(node["reftarget"], node.get("py:module"), node.get("py:class"))
    name = _canonical_name(obj) if obj is not MISSING else None
    if name is None or name == node["reftarget"]:
        return None
    domain = env.get_domain("py")
    entry = domain.objects.get(name)
    if entry is None:
        return None
    # Role "obj" matches any object type (a :func: reference to a class still links).
    return domain.resolve_xref(env, node["refdoc"], app.builder, "obj", name, node, contnode)


def _warn_missing_reference(app: Any, domain: Any, node: Any) -> bool | None:
    if domain is None or domain.name != "py":
        return None
    target = node["reftarget"]
    if target in ("None", "True", "False"):
        return True
    obj = resolve_object(target, node.get("py:module"), node.get("py:class"))
    # External names link nowhere offline; our private names are not documented: both
    # render as code. A name nothing defines keeps its warning.
    return True if obj is not MISSING else None


def setup(app: Any) -> dict[str, Any]:
    """Register the two handlers (a Sphinx extension entry point)."""
    app.connect("missing-reference", _missing_reference)
    app.connect("warn-missing-reference", _warn_missing_reference)
    # Before sphinx.ext.napoleon's handler (priority 500).
    app.connect("autodoc-process-docstring", _protect_prose_colons, priority=400)
    app.connect("autodoc-skip-member", _skip_foreign_member)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

