"""Render every kustomization under deploy/k8s and validate each resource against the Kubernetes schemas.

The renderer is a small kustomize (resources, labels, images, strategic-merge patches): CI has no kubectl.
Where kubectl is installed, `--compare-kubectl` also checks that `kubectl kustomize` renders the same objects.
Beyond the schemas, every Deployment must carry the production settings the deployment promises (probes,
resources, a locked-down securityContext).

    python deploy/checks/k8s_manifests.py [--compare-kubectl]
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes_validate import utils as kv

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
# The oldest and newest Kubernetes minor versions the manifests are promised to work on.
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
# Strategic-merge keys of the lists our patches touch (from the Kubernetes API's patchMergeKey markers).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "labels", "images", "patches"}

Resource = dict[str, Any]


class ManifestError(RuntimeError):
    """A kustomization cannot be rendered or a resource is invalid."""


def render(directory: Path) -> list[Resource]:
    """The resources `kubectl kustomize DIRECTORY` would print, in order."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise ManifestError(f"{directory}: the renderer does not know {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += render(path) if path.is_dir() else load_documents(path)
    for label_set in kustomization.get("labels", []):
        if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
            raise ManifestError(
                f"{directory}: labels with includeSelectors/includeTemplates are not supported"
            )
        for resource in resources:
            resource.setdefault("metadata", {}).setdefault("labels", {}).update(label_set["pairs"])
    for patch in kustomization.get("patches", []):
        apply_patch(resources, load_documents(directory / patch["path"])[0], directory / patch["path"])
    for image in kustomization.get("images", []):
        set_image(resources, image)
    return resources


def load_documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def apply_patch(resources: list[Resource], patch: Resource, source: Path) -> None:
    targets = [
        resource
        for resource in resources
        if resource["kind"] == patch["kind"] and resource["metadata"]["name"] == patch["metadata"]["name"]
    ]
    if len(targets) != 1:
        raise ManifestError(f"{source}: patch matches {len(targets)} resources, not one")
    merged = strategic_merge(targets[0], patch)
    targets[0].clear()
    targets[0].update(merged)


def strategic_merge(base: Any, patch: Any, key: str = "") -> Any:
    """Maps merge recursively (null deletes a key), keyed lists merge by their merge key, the rest replace."""
    if isinstance(patch, dict) and (base is None or isinstance(base, dict)):
        merged = copy.deepcopy(base or {})
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = strategic_merge(merged.get(name), value, name)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        # As kustomize orders them: the patch's items (merged into their old selves), then the untouched rest.
        merge_key = MERGE_KEYS[key]
        old_items = {item[merge_key]: item for item in base}
        patched = [strategic_merge(old_items.get(item[merge_key]), item, key) for item in patch]
        touched = {item[merge_key] for item in patch}
        return patched + [copy.deepcopy(item) for item in base if item[merge_key] not in touched]
    return copy.deepcopy(patch)


def set_image(resources: list[Resource], image: dict[str, str]) -> None:
    for resource in resources:
        for container in pod_containers(resource):
            name = container["image"].split("@")[0].rsplit(":", 1)[0]
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"


def pod_containers(resource: Resource) -> list[dict[str, Any]]:
    spec = resource.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def validate(resource: Resource, version: str) -> None:
    try:
        kv.validate(resource, version, strict=True)
    except kv.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path)
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        raise ManifestError(f"{name} on Kubernetes {version}: {where}: {exc.message}") from None


def check_deployment(deployment: Resource) -> None:
    """The production settings the schemas do not require."""
    pod = deployment["spec"]["template"]["spec"]
    name = deployment["metadata"]["name"]
    problems = []
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append("pod securityContext.runAsNonRoot is not true")
    mounts = set()
    for container in pod["containers"]:
        context = container.get("securityContext", {})
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{container['name']}: allowPrivilegeEscalation is not false")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{container['name']}: readOnlyRootFilesystem is not true")
        if "ALL" not in context.get("capabilities", {}).get("drop", []):
            problems.append(f"{container['name']}: capabilities do not drop ALL")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if probe not in container:
                problems.append(f"{container['name']}: no {probe}")
        resources = container.get("resources", {})
        if not {"cpu", "memory"} <= set(resources.get("requests", {})) & set(resources.get("limits", {})):
            problems.append(f"{container['name']}: cpu and memory need both requests and limits")
        for variable in container.get("env", []):
            if "value" in variable and "valueFrom" in variable:
                problems.append(f"{container['name']}: env {variable['name']} has both value and valueFrom")
        mounts |= {mount["mountPath"] for mount in container.get("volumeMounts", [])}
    if "/tmp" not in mounts:
        problems.append("nothing writable at /tmp under a read-only root file system")
    if problems:
        raise ManifestError(f"Deployment/{name}: " + "; ".join(problems))


def kustomizations(root: Path) -> list[Path]:
    return sorted(path.parent for path in root.rglob("kustomization.yaml"))


def compare_with_kubectl(directory: Path, rendered: list[Resource]) -> None:
    output = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    theirs = {identity(doc): doc for doc in yaml.safe_load_all(output) if doc}
    ours = {identity(doc): doc for doc in rendered}
    if theirs != ours:
        differing = sorted(name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name))
        raise ManifestError(f"{directory}: kubectl kustomize renders {differing} differently")


def identity(resource: Resource) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


def check_all(root: Path, compare_kubectl: bool) -> int:
    checked = 0
    directories = kustomizations(root)
    if not directories:
        raise ManifestError(f"no kustomization.yaml under {root}")
    for directory in directories:
        rendered = render(directory)
        for resource in rendered:
            for version in KUBERNETES_VERSIONS:
                validate(resource, version)
            if resource["kind"] == "Deployment":
                check_deployment(resource)
            checked += 1
        if compare_kubectl:
            compare_with_kubectl(directory, rendered)
        relative = directory.relative_to(root.parent)
        names = ", ".join(identity(resource) for resource in rendered)
        versions = ", ".join(KUBERNETES_VERSIONS)
        print(f"{relative}: {len(rendered)} resources valid on Kubernetes {versions}: {names}")
    return checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--k8s-dir", type=Path, default=K8S, help="default: deploy/k8s")
    parser.add_argument(
        "--compare-kubectl", action="store_true", help="also diff against `kubectl kustomize`"
    )
    args = parser.parse_args(argv)
    if args.compare_kubectl and shutil.which("kubectl") is None:
        print("kubectl is not installed", file=sys.stderr)
        return 2
    try:
        checked = check_all(args.k8s_dir.resolve(), args.compare_kubectl)
    except (ManifestError, kv.SchemaNotFoundError) as exc:
        print(f"Kubernetes manifest check FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"Kubernetes manifest check passed: {checked} rendered resources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
