"""A module of `bot` as it was at an earlier commit, loaded beside the current one.

Old/new differential tests (review attacks 13 and 14) compare a rewritten function with the
version it replaced on random inputs. A clone without that history skips them.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_at(commit: str, path: str, name: str) -> ModuleType:
    """The module at `path` (e.g. "bot/apply.py") as of `commit`, registered as `name`."""
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:{path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"the repository's history ({commit}) is not at hand")
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    exec(compile(source, f"{name}.py", "exec"), module.__dict__)
    return module
