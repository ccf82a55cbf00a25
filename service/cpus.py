"""The cores this process may use: its CPU affinity, capped by its cgroup's CPU quota (a container's
`--cpus`, Kubernetes `limits.cpu`). A container cannot see that quota in its affinity, which lists every core
of the host."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def usable_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The cores to size thread pools for: a fractional quota is rounded up, as Kubernetes rounds it."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = quota_cores(cgroup_root, proc_cgroup)
    return affinity if quota is None else max(1, min(affinity, math.ceil(quota)))


def quota_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The tightest CPU quota of this process's cgroup and its ancestors, in cores; None if there is none."""
    quotas = [quota for folder in _cgroup_folders(cgroup_root, proc_cgroup) if (quota := _quota(folder))]
    return min(quotas, default=None)


def _cgroup_folders(cgroup_root: Path, proc_cgroup: Path) -> list[Path]:
    """Each cgroup folder (v2, or v1's cpu controller) from this process's own up to its mount."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    folders: list[Path] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            mounts = [cgroup_root, cgroup_root / "unified"]  # v2 alone, or v2 beside v1 (hybrid)
        elif "cpu" in controllers.split(","):
            mounts = [cgroup_root / controllers, cgroup_root / "cpu"]
        else:
            continue
        for mount in mounts:
            own = mount / path.lstrip("/")
            # Inside a container the path may name the host's hierarchy, mounted here as the mount itself.
            folders += [folder for folder in (own, *own.parents) if folder.is_relative_to(mount)]
    return [folder for folder in dict.fromkeys(folders) if folder.is_dir()]


def _quota(folder: Path) -> float | None:
    """The folder's quota in cores: cgroup v2's `cpu.max`, else v1's `cpu.cfs_quota_us` over its period."""
    try:
        quota, period = (folder / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        cores = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None  # "max", or v1's -1: no quota
    return cores if cores > 0 else None
