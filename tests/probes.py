"""Run a snippet of Python in a fresh interpreter and see which modules it ended up importing."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO_ROOT

_REPORT = "\nimport sys\nprint(sorted(sys.modules))\n"


def packages_imported_by(probe: str, *args: str) -> set[str]:
    """The top-level packages in `sys.modules` once `probe` has run (with `args` as sys.argv[1:])."""
    return {name.split(".")[0] for name in modules_imported_by(probe, *args)}


def modules_imported_by(probe: str, *args: str) -> set[str]:
    """Every module in `sys.modules` once `probe` has run (with `args` as sys.argv[1:])."""
    result = subprocess.run(
        [sys.executable, "-c", probe + _REPORT, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(ast.literal_eval(result.stdout.strip().splitlines()[-1]))


def without(*packages: str) -> str:
    """Python that makes importing any of `packages` fail as if it were not installed: put it first in a
    snippet to run that snippet as a smaller install would."""
    return f"""
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {packages!r}:
            raise ImportError(f"{{name}} is not installed", name=name)
sys.meta_path.insert(0, Refuse())
"""
