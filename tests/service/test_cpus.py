"""The cores the pools are sized for: affinity capped by a cgroup CPU quota, read from fake cgroup trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service import cpus
from service.settings import Settings

AFFINITY = len(os.sched_getaffinity(0))


def cgroup_tree(root: Path, membership: str, files: dict[str, str]) -> Path:
    """A cgroup mount at `root` with `files` (paths under it) and a /proc/self/cgroup naming `membership`."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    proc = root.parent / "proc-self-cgroup"
    proc.write_text(membership)
    return proc


def test_a_v2_quota_caps_the_cores(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    proc = cgroup_tree(root, "0::/\n", {"cpu.max": "150000 100000\n"})
    assert cpus.quota_cores(root, proc) == 1.5
    assert cpus.usable_cores(root, proc) == min(AFFINITY, 2)


def test_the_tightest_quota_of_the_cgroup_and_its_parents_wins(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    files = {"kubepods/cpu.max": "300000 100000\n", "kubepods/pod1/app/cpu.max": "max 100000\n"}
    proc = cgroup_tree(root, "0::/kubepods/pod1/app\n", files)
    assert cpus.quota_cores(root, proc) == 3.0


def test_a_v1_quota_is_read_at_the_mount_when_the_path_names_the_hosts_hierarchy(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    files = {"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    proc = cgroup_tree(root, "12:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n", files)
    assert cpus.quota_cores(root, proc) == 0.5
    assert cpus.usable_cores(root, proc) == 1


@pytest.mark.parametrize(
    "files",
    [
        {"cpu.max": "max 100000\n"},
        {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
        {"cpu.max": "not a quota\n"},
        {},
    ],
)
def test_no_quota_leaves_the_affinity(tmp_path: Path, files: dict[str, str]) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    proc = cgroup_tree(root, "1:cpu:/\n0::/\n", files)
    assert cpus.quota_cores(root, proc) is None
    assert cpus.usable_cores(root, proc) == AFFINITY


def test_an_unreadable_membership_leaves_the_affinity(tmp_path: Path) -> None:
    assert cpus.usable_cores(tmp_path, tmp_path / "missing") == AFFINITY


def test_vision_cores_sizes_the_engine_outright(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISION_CORES", "7")
    assert Settings().engine_config().cores == 7
    monkeypatch.setenv("VISION_CORES", "0")
    assert Settings().engine_config().cores == cpus.usable_cores()
