"""Every kustomization under deploy/k8s renders and validates against the Kubernetes schemas."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from deploy_checks import REPO_ROOT, run_check


def test_every_rendered_manifest_is_valid() -> None:
    result = run_check("k8s_manifests.py")
    assert result.returncode == 0, result.stderr
    for overlay in ("base", "gpu", "custom-models"):
        assert f"k8s/{overlay}: " in result.stdout


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is optional: it cross-checks the renderer"
)
def test_renderer_agrees_with_kubectl_kustomize() -> None:
    result = run_check("k8s_manifests.py", "--compare-kubectl")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("file", "old", "new", "complaint"),
    [
        ("base/deployment.yaml", "readinessProbe:", "readinessProbes:", "readinessProbes"),
        ("base/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnly"),
        ("base/hpa.yaml", "averageUtilization: 70", "averageUtilization: seventy", "averageUtilization"),
        (
            "gpu/deployment-gpu.yaml",
            '              value: "1"\n',
            '              value: "1"\n              valueFrom:\n                fieldRef:\n'
            "                  fieldPath: metadata.name\n",
            "both value and valueFrom",
        ),
        ("gpu/deployment-gpu.yaml", "name: vision-api", "name: vision-apj", "matches 0 resources"),
    ],
)
def test_a_broken_manifest_fails(tmp_path: Path, file: str, old: str, new: str, complaint: str) -> None:
    shutil.copytree(REPO_ROOT / "deploy" / "k8s", tmp_path / "k8s")
    target = tmp_path / "k8s" / file
    text = target.read_text(encoding="utf-8")
    assert old in text
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = run_check("k8s_manifests.py", "--k8s-dir", str(tmp_path / "k8s"))
    assert result.returncode == 1
    assert complaint in result.stderr
