"""Build the Docker image's file system without Docker, then run it: what the image lacks fails here.

Reads the Dockerfile, copies exactly what the final stage's COPY lines copy (honouring .dockerignore),
reproduces the build stage it copies from by running that stage's own RUN lines against a fresh venv, starts
the final CMD on a loopback port with the image's ENV and WORKDIR (nothing from this checkout on sys.path),
waits for /healthz/ready, runs the HEALTHCHECK command and classifies an image.

    python deploy/checks/image_contents.py [--build-arg VARIANT=cpu] [--env VISION_MODELS_DIR=/path] [--keep]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image
from procs import Process, free_port, wait_until_ok

REPO = Path(__file__).resolve().parents[2]
# What the python:3.11-slim base image puts on PATH, minus what a check machine cannot have.
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
FORBIDDEN_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "tensorflow-intel", "keras", "tf2onnx", "tf-keras"}
PASSED_THROUGH = (
    "HOME",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_CERT",
    "PIP_DEFAULT_TIMEOUT",
)
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class CheckError(RuntimeError):
    """The image as the Dockerfile describes it would not work."""


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Copy:
    sources: list[str]
    dest: str
    from_stage: str | None


# ---- reading the Dockerfile ----


def logical_lines(text: str) -> list[str]:
    """Instructions with backslash continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def substitute(text: str, variables: dict[str, str]) -> str:
    """Docker's $VAR, ${VAR} and ${VAR:-default} expansion."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain")
        default = match.group("default")
        value = variables.get(name)
        return value if value else (default or "")

    pattern = r"\$(?:\{(?P<braced>\w+)(?::-(?P<default>[^}]*))?\}|(?P<plain>\w+))"
    return re.sub(pattern, replace, text)


def parse_stages(text: str, build_args: dict[str, str]) -> tuple[list[Stage], dict[str, str]]:
    """Stages in order (FROM resolved with the global ARGs), and the global ARG values."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = substitute(rest, global_args).split()
            words = [word for word in words if not word.startswith("--platform")]
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=words[0]))
        elif keyword == "ARG" and not stages:
            key, _, default = rest.partition("=")
            global_args[key] = build_args.get(key, default.strip('"'))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return stages, global_args


def stage_chain(stages: list[Stage], name: str) -> list[Stage]:
    """A stage and the stages it builds on, outermost first."""
    by_name = {stage.name: stage for stage in stages}
    chain = [by_name[name]]
    while chain[0].base in by_name:
        chain.insert(0, by_name[chain[0].base])
    return chain


def parse_copy(rest: str) -> Copy:
    words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    flags = [word for word in words if word.startswith("--")]
    paths = [word for word in words if not word.startswith("--")]
    from_stage = next((flag.split("=", 1)[1] for flag in flags if flag.startswith("--from=")), None)
    return Copy(sources=paths[:-1], dest=paths[-1], from_stage=from_stage)


def parse_env(rest: str, variables: dict[str, str]) -> dict[str, str]:
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        return {words[0]: substitute(" ".join(words[1:]), variables)}
    pairs = (word.split("=", 1) for word in words)
    return {key: substitute(value, variables) for key, value in pairs}


def run_command(rest: str) -> str:
    """The shell command of a RUN line without BuildKit flags such as --mount (a cache changes no files)."""
    words = rest.split(" ")
    while words and words[0].startswith("--"):
        words.pop(0)
    return " ".join(words)


def exec_form(rest: str, what: str) -> list[str]:
    if not rest.startswith("["):
        raise CheckError(f"{what} must use the exec (JSON) form so signals reach the server: {rest}")
    return json.loads(rest)


# ---- the build context ----


def ignore_rules(path: Path) -> list[tuple[re.Pattern[str], bool]]:
    """.dockerignore patterns as (regex, excludes) in file order; the last pattern that matches decides."""
    rules = []
    for raw in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((re.compile(glob_regex(pattern)), not negated))
    return rules


def glob_regex(pattern: str) -> str:
    out, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return out + r"\Z"


def context_files(context: Path, rules: list[tuple[re.Pattern[str], bool]]) -> set[str]:
    """Paths (relative, POSIX) of the files Docker would send as the build context."""
    # As Docker does, an excluded directory is not walked unless a `!` pattern could bring a file back: a
    # checkout's .venv alone held 3 GB in tens of thousands of files, and walking it took about 7 s a check.
    prunable = all(excludes for _, excludes in rules)
    kept = set()
    for directory, subdirectories, names in os.walk(context):
        inside = Path(directory).relative_to(context)
        if prunable:
            subdirectories[:] = [d for d in subdirectories if not is_ignored((inside / d).as_posix(), rules)]
        for name in names:
            relative = (inside / name).as_posix()
            if not is_ignored(relative, rules):
                kept.add(relative)
    return kept


def is_ignored(relative: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    parts = relative.split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for regex, excludes in rules:
        if any(regex.match(candidate) for candidate in candidates):
            ignored = excludes
    return ignored


# ---- reproducing the stages ----


class ImageFiles:
    """Maps paths inside the image to host directories; a path the final stage copies unchanged from the build
    stage lives in the final root from the start, because venvs cannot move."""

    def __init__(self, final_root: Path, build_root: Path, shared: set[str], owned: set[str]) -> None:
        self.final_root = final_root
        self.build_root = build_root
        self.shared = shared
        prefixes = sorted(owned | shared, key=len, reverse=True)
        self._pattern = re.compile(
            r"(?<![\w./-])(" + "|".join(re.escape(prefix) for prefix in prefixes) + r")(?=/|\b|$)"
        )

    def host(self, image_path: str, *, stage: str) -> Path:
        in_shared = any(image_path == p or image_path.startswith(p.rstrip("/") + "/") for p in self.shared)
        root = self.final_root if stage == "final" or in_shared else self.build_root
        return root / image_path.lstrip("/")

    def rewrite(self, text: str, *, stage: str) -> str:
        """Image paths inside a command or variable, pointed at their host directories."""
        return self._pattern.sub(lambda match: str(self.host(match.group(1), stage=stage)), text)


def resolve_dest(dest: str, workdir: str) -> str:
    return (
        dest
        if dest.startswith("/")
        else os.path.normpath(os.path.join(workdir, dest)) + "/" * dest.endswith("/")
    )


def copy_from_context(copy: Copy, context: Path, files: set[str], target: Path) -> list[str]:
    """Copy as Docker does: a directory's contents into the destination, a file into it (or as it)."""
    copied = []
    for source in copy.sources:
        prefix = os.path.normpath(source).removeprefix("./").strip("/")
        prefix = "" if prefix == "." else prefix
        if prefix in files:
            destination = target / Path(prefix).name if copy.dest.endswith("/") else target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(context / prefix, destination)
            copied.append(prefix)
            continue
        inside = sorted(f for f in files if not prefix or f.startswith(prefix + "/"))
        if not inside:
            excluded = (context / prefix).exists()
            reason = "excluded by .dockerignore" if excluded else "not in the build context"
            raise CheckError(f"COPY {source}: {reason} (docker build would fail)")
        for relative in inside:
            destination = target / relative[len(prefix) :].lstrip("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(context / relative, destination)
            copied.append(relative)
    return copied


@dataclass
class StageState:
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    user: str = "root"


def play_stage(
    chain: list[Stage],
    role: str,
    files: ImageFiles,
    context: Path,
    context_set: set[str],
    global_args: dict[str, str],
    shim_dir: Path,
) -> StageState:
    """Apply WORKDIR, ARG, ENV, USER, COPY (and RUN for the build stage) of a stage chain in order."""
    state = StageState(env={"PATH": BASE_PATH})
    for stage in chain:
        for keyword, rest in stage.instructions:
            variables = {**state.args, **state.env}
            if keyword == "WORKDIR":
                state.workdir = resolve_dest(substitute(rest, variables), state.workdir)
                files.host(state.workdir, stage=role).mkdir(parents=True, exist_ok=True)
            elif keyword == "ARG":
                key, _, default = rest.partition("=")
                state.args[key] = global_args.get(key, default.strip('"'))
            elif keyword == "ENV":
                state.env.update(parse_env(rest, variables))
            elif keyword == "USER":
                state.user = rest
            elif keyword == "COPY":
                copy = parse_copy(substitute(rest, variables))
                if copy.from_stage is None:
                    dest = resolve_dest(copy.dest, state.workdir)
                    copied = copy_from_context(copy, context, context_set, files.host(dest, stage=role))
                    print(f"[{role}] COPY {' '.join(copy.sources)} -> {dest}: {len(copied)} files")
                else:
                    copy_between_stages(copy, files)
            elif keyword == "RUN" and role == "build":
                run_build_step(run_command(rest), state, files, shim_dir)
            elif keyword == "RUN":
                print(f"[{role}] skipped (system setup, no files): RUN {run_command(rest).split()[0]} ...")
    return state


def copy_between_stages(copy: Copy, files: ImageFiles) -> None:
    for source in copy.sources:
        built = files.host(source, stage="build")
        target = files.host(copy.dest, stage="final")
        if not built.exists():
            raise CheckError(f"COPY --from={copy.from_stage} {source}: the build stage did not produce it")
        if built != target:
            shutil.copytree(built, target, dirs_exist_ok=True, symlinks=True)
        print(f"[final] COPY --from={copy.from_stage} {source} -> {copy.dest}")


def run_build_step(command: str, state: StageState, files: ImageFiles, shim_dir: Path) -> None:
    rewritten = files.rewrite(command, stage="build")
    env = {**passthrough_env(), **state.args, **rewrite_env(state.env, files, "build")}
    env["PATH"] = f"{shim_dir}:{env['PATH']}"
    cwd = files.host(state.workdir, stage="build")
    print(f"[build] RUN {rewritten}")
    result = subprocess.run(
        ["/bin/sh", "-c", rewritten], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
        raise CheckError(f"RUN failed with exit status {result.returncode}: {command}\n{output}")
    print(f"[build] RUN finished: {(result.stdout.strip().splitlines() or ['no output'])[-1][:200]}")


def rewrite_env(env: dict[str, str], files: ImageFiles, stage: str) -> dict[str, str]:
    return {key: files.rewrite(value, stage=stage) for key, value in env.items()}


def passthrough_env() -> dict[str, str]:
    """What a docker build also has: network settings and pip's index configuration."""
    return {key: os.environ[key] for key in (*PASSED_THROUGH, *PROXIES) if key in os.environ}


def python_shim(directory: Path) -> Path:
    """`python` as the base image provides it: this interpreter's base Python (3.11 like the image)."""
    directory.mkdir(parents=True, exist_ok=True)
    base = Path(getattr(sys, "_base_executable", sys.executable))
    for name in ("python", "python3", "python3.11"):
        (directory / name).symlink_to(base)
    return directory


# ---- checking the result ----


def installed_distributions(venv_python: Path) -> set[str]:
    listing = subprocess.run(
        [str(venv_python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    return {entry["name"].lower() for entry in json.loads(listing.stdout)}


def with_port(argv: list[str], port: int) -> list[str]:
    """The CMD as it would run, on a loopback port instead of 0.0.0.0:8000."""
    out = list(argv)
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        if flag not in out:
            raise CheckError(f"CMD has no {flag}: {argv}")
        out[out.index(flag) + 1] = value
    return out


def sample_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def static_checks(final: list[Stage], state: StageState) -> None:
    user = state.user.split(":")[0]
    if user in ("root", "0"):
        raise CheckError("the final stage runs as root; add a USER line")
    print(f"[final] base {final[0].base}, user {state.user}, workdir {state.workdir}")


@dataclass(frozen=True)
class RunOptions:
    env_overrides: dict[str, str]
    timeout: float
    keep: bool


def image_owned_paths(stages: list[Stage]) -> set[str]:
    """Absolute paths the Dockerfile creates (COPY destinations, WORKDIRs): these get host directories."""
    owned = set()
    for stage in stages:
        for keyword, rest in stage.instructions:
            if keyword == "WORKDIR":
                owned.add(rest.rstrip("/"))
            elif keyword == "COPY" and (dest := parse_copy(rest).dest).startswith("/"):
                owned.add(dest.rstrip("/"))
    return owned


def check_image(
    dockerfile: Path, context: Path, dockerignore: Path, build_args: dict[str, str], options: RunOptions
) -> None:
    stages, global_args = parse_stages(dockerfile.read_text(encoding="utf-8"), build_args)
    final_chain = stage_chain(stages, stages[-1].name)
    copies = [
        parse_copy(rest) for stage in final_chain for keyword, rest in stage.instructions if keyword == "COPY"
    ]
    from_build = [copy for copy in copies if copy.from_stage]
    build_names = sorted({copy.from_stage for copy in from_build if copy.from_stage})
    shared = {source.rstrip("/") for copy in from_build for source in copy.sources if source == copy.dest}
    context_set = context_files(context, ignore_rules(dockerignore))
    print(f"build context: {len(context_set)} files after {dockerignore.name}")

    scratch = Path(tempfile.mkdtemp(prefix="image-contents-"))
    files = ImageFiles(scratch / "image", scratch / "build", shared, image_owned_paths(stages))
    shim = python_shim(scratch / "base-python")
    try:
        for name in build_names:
            play_stage(stage_chain(stages, name), "build", files, context, context_set, global_args, shim)
        state = play_stage(final_chain, "final", files, context, context_set, global_args, shim)
        static_checks(final_chain, state)
        run_image(final_chain, state, files, scratch, options)
    finally:
        if options.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def run_image(
    final_chain: list[Stage], state: StageState, files: ImageFiles, scratch: Path, options: RunOptions
) -> None:
    instructions = [item for stage in final_chain for item in stage.instructions]
    cmd = next((rest for keyword, rest in reversed(instructions) if keyword == "CMD"), None)
    healthcheck = next((rest for keyword, rest in reversed(instructions) if keyword == "HEALTHCHECK"), None)
    if cmd is None or healthcheck is None:
        raise CheckError("the final stage needs both CMD and HEALTHCHECK")
    env = {"LANG": "C.UTF-8", "HOME": str(scratch / "home"), **rewrite_env(state.env, files, "final")}
    env.update(options.env_overrides)
    venv_python = Path(shutil.which("python", path=env["PATH"]) or "python")
    distributions = installed_distributions(venv_python)
    if forbidden := distributions & FORBIDDEN_DISTRIBUTIONS:
        raise CheckError(f"the image installs {sorted(forbidden)}; the service must not need TensorFlow")
    print(
        f"[final] {len(distributions)} distributions in the venv, none of {sorted(FORBIDDEN_DISTRIBUTIONS)}"
    )

    port = free_port()
    argv = with_port([files.rewrite(word, stage="final") for word in exec_form(cmd, "CMD")], port)
    executable = shutil.which(argv[0], path=env["PATH"])
    if executable is None:
        raise CheckError(f"CMD {argv[0]!r} is not on the image's PATH {env['PATH']}")
    print(f"[run] {' '.join(argv)} (cwd {state.workdir})")
    process = Process(
        [executable, *argv[1:]],
        env=env,
        cwd=files.host(state.workdir, stage="final"),
        log_path=scratch / "server.log",
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ok(f"{base_url}/healthz/ready", process, options.timeout)
        print(f"[run] {base_url}/healthz/ready: 200")
        probe = exec_form(healthcheck.split(" CMD ", 1)[1].strip(), "HEALTHCHECK")
        probe = [word.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for word in probe]
        result = subprocess.run(probe, env=env, cwd=files.host(state.workdir, stage="final"), check=False)
        if result.returncode != 0:
            raise CheckError(f"HEALTHCHECK exited {result.returncode}: {probe}")
        print("[run] HEALTHCHECK command: exit 0")
        classify(base_url)
    finally:
        process.stop()
        if options.keep:
            print(process.log_tail(60))


def classify(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/classify", files={"image": ("red.png", sample_png(), "image/png")}, timeout=30
    )
    if response.status_code != 200:
        raise CheckError(f"POST /classify answered {response.status_code}: {response.text[:500]}")
    print(f"[run] POST /classify: 200 {response.text[:300]}")


def key_values(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dockerfile", type=Path, default=REPO / "Dockerfile")
    parser.add_argument("--context", type=Path, default=REPO)
    parser.add_argument("--dockerignore", type=Path, help="default: .dockerignore in the context")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="like docker run -e")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for /healthz/ready")
    parser.add_argument(
        "--keep", action="store_true", help="keep the reproduced image and print the server log"
    )
    args = parser.parse_args(argv)
    try:
        check_image(
            args.dockerfile.resolve(),
            args.context.resolve(),
            (args.dockerignore or args.context / ".dockerignore").resolve(),
            key_values(args.build_arg),
            RunOptions(key_values(args.env), args.timeout, args.keep),
        )
    except (CheckError, RuntimeError) as exc:
        print(f"image-contents check FAILED: {exc}", file=sys.stderr)
        return 1
    print("image-contents check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
