"""Validate deploy/kserve/*.yaml against KServe's CRD schemas (vendored in deploy/kserve/crds), strictly: a
field the schema does not know is an error, as `kubectl apply --validate=strict` makes it, so a misspelt field
fails here rather than being pruned silently by the API server.

    python deploy/checks/kserve_manifests.py [--kserve-dir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
KSERVE = REPO / "deploy" / "kserve"
CRDS = KSERVE / "crds"

Resource = dict[str, Any]
# libyaml's loader where PyYAML was built with it: the InferenceService CRD is 2 MB of YAML, 4.6 s to parse
# in Python and 1.1 s in C.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """The openAPIV3Schema of every served version of the vendored CRDs, by (apiVersion, kind)."""
    found = {}
    for path in sorted(CRDS.glob("*.yaml.gz")):
        for crd in yaml.load_all(gzip.decompress(path.read_bytes()), Loader=LOADER):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    found[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    return found


def strict(schema: Any) -> Any:
    """The schema as JSON Schema that refuses unknown fields: an object with properties is closed unless it
    preserves unknown fields, and Kubernetes' int-or-string is either."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: strict(value) for key, value in schema.items() if not key.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        converted.pop("type", None)
        converted["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        converted["additionalProperties"] = False
    return converted


def resources(folder: Path) -> Iterator[tuple[Path, Resource]]:
    for path in sorted(folder.glob("*.yaml")):
        for resource in yaml.safe_load_all(path.read_text()):
            if resource:
                yield path, resource


def problems(resource: Resource, known: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """What is wrong with one resource, each as `where: what`; empty when it validates."""
    key = (resource.get("apiVersion", ""), resource.get("kind", ""))
    if key not in known:
        return [f"{key[1]} {key[0]}: no vendored CRD describes it"]
    validator = jsonschema.Draft7Validator(known[key])
    return [
        f"{'.'.join(str(part) for part in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(resource), key=lambda error: list(error.absolute_path))
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kserve-dir", type=Path, default=KSERVE, help="the manifests (default deploy/kserve)"
    )
    folder = parser.parse_args().kserve_dir
    known = schemas()
    failed = False
    for path, resource in resources(folder):
        name = f"{path.name}: {resource['kind']} {resource['metadata']['name']}"
        found = problems(resource, known)
        if found:
            print(f"{name}: {'; '.join(found)}", file=sys.stderr)
        else:
            print(f"{name}: valid")
        failed = failed or bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
