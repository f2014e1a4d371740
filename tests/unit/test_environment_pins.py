"""The three places that pin the stack (requirements.txt, requirements-lock.txt,
environment.yml) must agree, and torch must stay at the version whose CPU wheel ships
on the reference machine."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(==|>=)\s*(.+)$", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2) + m.group(3)
    return out


def test_requirements_environment_and_lock_agree():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = _pins([p for p in pip_block if not p.startswith("-e")])
    assert env_pins == req
    lock = _pins((ROOT / "requirements-lock.txt").read_text().splitlines())
    for name, spec in req.items():
        if spec.startswith("=="):
            assert lock.get(name) == spec, f"{name}: requirements {spec}, lock {lock.get(name)}"
    assert req["torch"] == "==2.13.0"
    assert req["jupyter-book"].startswith(">=1.0.4,<2")
