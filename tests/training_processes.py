"""`python -m training` commands run in a child process of their own, which gives its memory back when it
ends and has loaded nothing the commands did not load themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT

SCRIPT = """
import json, sys
if sys.argv[2] == "eager":
    import tensorflow as tf
    tf.config.run_functions_eagerly(True)
from training.cli import main
sys.exit(any(main(command) for command in json.loads(sys.argv[1])))
"""


def run_in_a_child(*commands: list[str], eager: bool = False) -> int:
    """Run the commands one after another in one child process; returns its peak resident bytes. `eager`
    runs Keras's train and predict steps without tracing them into graphs (export still traces its own)."""
    mode = "eager" if eager else "traced"
    child = subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(commands), mode], cwd=REPO_ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, f"{commands} exited with {child.returncode}"
    return usage.ru_maxrss * 1024
