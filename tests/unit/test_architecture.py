"""The shape of the package: its layers, one owner for every results name, steps of one shape.

The import contract itself (which package may import which) lives in ``pyproject.toml``
(``[tool.importlinter]``); this module runs it, so the test command fails on an import that
reaches up a layer or closes a cycle.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lue_spie"

#: The steps of the paper: each is a package of one shape.
STEPS = ("data", "calibrate", "extrapolate", "assess", "importance", "maps", "payoff")
#: Files shipped inside the package (resources, not results).
RESOURCES = {"realism_reference.json", "data_manifest.yml"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_import_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"),
                           "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-4000:]
    assert "0 broken" in report and "KEPT" in report


def test_every_top_level_module_is_in_a_layer():
    # `exhaustive` in the contract enforces it; this keeps the README's map honest too.
    text = (ROOT / "pyproject.toml").read_text()
    block = text[text.index("[[tool.importlinter.contracts]]"):]
    layers = re.search(r"layers = \[(.*?)\]", block, re.S).group(1)
    named = {n.strip() for part in re.findall(r'"([^"]+)"', layers) for n in part.split("|")}
    top = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
           if (p.suffix == ".py" and p.stem != "__init__")
           or (p.is_dir() and (p / "__init__.py").is_file())}
    assert top == named, (sorted(top - named), sorted(named - top))


def test_results_file_names_are_spelled_only_in_layout():
    # A results file's name (`calibration.parquet`, `assessment.json` ...) has one owner:
    # lue_spie/layout.py. Every other module asks the layout for the path.
    suffix = re.compile(r"\.(parquet|json|pt|pkl|csv|png|svg)$")
    found = []
    for path in _modules():
        if path.name == "layout.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            parts = [node] if isinstance(node, ast.Constant) else \
                node.values[-1:] if isinstance(node, ast.JoinedStr) else []
            for part in parts:
                value = part.value if isinstance(part, ast.Constant) else None
                if isinstance(value, str) and "\n" not in value and len(value) < 80 \
                        and suffix.search(value.strip()) and value.strip() not in RESOURCES \
                        and not value.startswith(("folder with", "FLX_")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {value!r}")
    assert not found, "results names outside layout.py:\n" + "\n".join(found)


@pytest.mark.parametrize("step", STEPS)
def test_each_step_has_settings_step_and_command(step):
    folder = PACKAGE / step
    for module in ("settings", "step", "cli"):
        assert (folder / f"{module}.py").is_file(), f"lue_spie/{step}/{module}.py"
    step_src = (folder / "step.py").read_text()
    assert re.search(r"^def run(_\w+)?\(", step_src, re.M), f"lue_spie/{step}/step.py: run()"


def _comments(path: Path) -> list[tuple[int, str]]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [(t.start[0], t.string) for t in tokens if t.type == tokenize.COMMENT]


def _docstrings(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                first = node.body[0].lineno
                out += [(first + i, line) for i, line in enumerate(doc.splitlines())]
    return out


#: A duration or a speed-up quoted in the code ("8.8 s at 64", "1.5x faster", "42 us"); unit
#: conversions ("86400 s d-1") are not durations.
TIMING = re.compile(r"\b\d+(\.\d+)?\s?(ms|us|µs|min|minutes|seconds)\b"
                    r"|\b\d+(\.\d+)?\s?s\b(?! d-1)(?!-1)(?! per)"
                    r"|\b\d+(\.\d+)?x (faster|slower|more|less)\b", re.I)
ISSUE = re.compile(r"\bissue\s*#?\d+", re.I)


def test_comments_say_why_not_when_or_how_fast():
    # Timings go stale: they belong in benchmarks/RESULTS.md, next to the command that
    # measured them. Issue numbers mean nothing to a reader of the code.
    found = []
    for path in _modules():
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if ISSUE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
        for lineno, text in [*_comments(path), *_docstrings(path)]:
            if TIMING.search(text):
                found.append(f"{path.relative_to(ROOT)}:{lineno}: {text.strip()}")
    assert not found, "\n".join(found)
