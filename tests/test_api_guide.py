"""Every example in docs/api.md runs against a live server over the bundled models, as a reader would run it
from the repository's root: curl and `vision` in bash, the Python client, JavaScript in Node.js. Where the
guide shows the answer, the real one must match it (JSON: its shape and strings; text: its lines in order,
decimals aside: probabilities and fractions move a little between CPUs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import BUNDLED_KEYS, REPO_ROOT, LiveServer
from spec_examples import assert_like

GUIDE = REPO_ROOT / "docs" / "api.md"
DOCUMENTED_URL = "http://127.0.0.1:8000"
DOCUMENTED_GRPC = "127.0.0.1:8001"
RUNNERS = {"bash": ["bash", "{file}"], "python": [sys.executable, "{file}"], "js": ["node", "{file}"]}
SUFFIXES = {"bash": ".sh", "python": ".py", "js": ".mjs"}
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
_DECIMAL = re.compile(r"\d+\.\d+")


@dataclass(frozen=True)
class Example:
    language: str
    code: str
    expected: str | None
    expected_language: str | None
    line: int

    @property
    def needs_key(self) -> bool:
        return "VISION_API_KEY" in self.code


def examples() -> list[Example]:
    text = GUIDE.read_text(encoding="utf-8")
    blocks = [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in _BLOCK.finditer(text)]
    found = []
    for index, (language, code, line) in enumerate(blocks):
        if language not in RUNNERS:
            continue
        after = blocks[index + 1] if index + 1 < len(blocks) else None
        output = after if after and after[0] in ("json", "text") else None
        found.append(Example(language, code, output and output[1], output and output[0], line))
    return found


EXAMPLES = examples()


def test_the_guide_has_examples_in_every_language() -> None:
    assert {example.language for example in EXAMPLES} == set(RUNNERS)
    assert sum(example.expected is not None for example in EXAMPLES) >= len(EXAMPLES) - 2


def run(example: Example, server: LiveServer, workdir: Path) -> subprocess.CompletedProcess[str]:
    code = (
        example.code.replace(DOCUMENTED_URL, server.url)
        .replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
        .replace(DOCUMENTED_GRPC, server.grpc or DOCUMENTED_GRPC)
    )
    script = workdir / f"example{SUFFIXES[example.language]}"
    script.write_text(code, encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "VISION_URL": server.url,
    }
    env.pop("VISION_API_KEY", None)
    if example.needs_key:
        env["VISION_API_KEY"] = BUNDLED_KEYS["api"]
    command = [part.format(file=script) for part in RUNNERS[example.language]]
    return subprocess.run(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )


def masked_lines(text: str) -> list[str]:
    return [_DECIMAL.sub("#", line.rstrip()) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line-{e.line}-{e.language}" for e in EXAMPLES])
def test_each_example_runs_and_answers_as_shown(
    example: Example, bundled_server: LiveServer, bundled_guarded_server: LiveServer, tmp_path: Path
) -> None:
    if example.language == "js" and shutil.which("node") is None:
        pytest.fail("Node.js is needed to run the guide's JavaScript")
    (tmp_path / "docs").symlink_to(REPO_ROOT / "docs")
    done = run(example, bundled_guarded_server if example.needs_key else bundled_server, tmp_path)
    output = done.stdout
    assert done.returncode == 0, output
    if example.expected is None:
        return
    if example.expected_language == "json":
        assert_like(json.loads(example.expected), json.loads(done.stdout))
        return
    expected, got = masked_lines(example.expected), masked_lines(output)
    remaining = iter(got)
    missing = [line for line in expected if not any(line == candidate for candidate in remaining)]
    assert not missing, f"not in the output, in order: {missing}\n--- output:\n{output}"
