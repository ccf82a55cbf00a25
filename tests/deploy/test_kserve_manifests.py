"""deploy/kserve: the ServingRuntime and InferenceServices validate against KServe's vendored CRDs, strictly,
and the runtime starts the service as its own command line and settings understand it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from deploy_checks import REPO_ROOT, run_check

from service import __version__
from service.__main__ import parse_args
from service.settings import Settings

KSERVE = REPO_ROOT / "deploy" / "kserve"


def test_every_manifest_validates_against_the_vendored_crds() -> None:
    result = run_check("kserve_manifests.py")
    assert result.returncode == 0, result.stderr
    for manifest in ("servingruntime.yaml", "inferenceservice-bundled.yaml", "inferenceservice-pvc.yaml"):
        assert f"{manifest}: " in result.stdout


@pytest.mark.parametrize(
    ("file", "old", "new", "complaint"),
    [
        ("servingruntime.yaml", "protocolVersions:", "protocolVersion:", "'protocolVersion' was unexpected"),
        ("servingruntime.yaml", "multiModel: false", "multiModel: no-thanks", "is not of type 'boolean'"),
        ("inferenceservice-pvc.yaml", "storageUri:", "storageURI:", "'storageURI' was unexpected"),
        ("inferenceservice-bundled.yaml", "minReplicas: 1", "minReplica: 1", "'minReplica' was unexpected"),
    ],
)
def test_a_misspelt_or_mistyped_field_fails(
    tmp_path: Path, file: str, old: str, new: str, complaint: str
) -> None:
    shutil.copytree(KSERVE, tmp_path / "kserve")
    target = tmp_path / "kserve" / file
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    result = run_check("kserve_manifests.py", "--kserve-dir", str(tmp_path / "kserve"))
    assert result.returncode == 1
    assert complaint in result.stderr


def test_the_runtime_runs_this_version_with_arguments_and_settings_the_service_knows() -> None:
    runtime = yaml.safe_load((KSERVE / "servingruntime.yaml").read_text())
    (container,) = runtime["spec"]["containers"]
    assert container["image"] == f"vision-service:{__version__}"
    command, *arguments = container["args"]
    assert command == "vision-service"
    assert parse_args(arguments).port == container["ports"][0]["containerPort"]
    assert set(runtime["spec"]["protocolVersions"]) == {"v2", "grpc-v2"}
    predictor_env = [
        variable
        for path in KSERVE.glob("inferenceservice-*.yaml")
        for variable in yaml.safe_load(path.read_text())["spec"]["predictor"]["model"].get("env", [])
    ]
    for variable in [*container["env"], *predictor_env]:
        assert variable["name"].removeprefix("VISION_").lower() in Settings.model_fields, variable["name"]
    grpc_port = int(next(v["value"] for v in container["env"] if v["name"] == "VISION_GRPC_PORT"))
    pvc = yaml.safe_load((KSERVE / "inferenceservice-pvc.yaml").read_text())["spec"]["predictor"]["model"]
    assert pvc["ports"] == [{"name": "h2c", "containerPort": grpc_port, "protocol": "TCP"}]
