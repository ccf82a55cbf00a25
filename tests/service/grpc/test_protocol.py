"""service/grpc/protocol: the checked-in module is what protoc makes of inference.proto today, and every
message, field and method of it is Triton's (tritonclient's compiled grpc_service.proto), number by number."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from google.protobuf import descriptor_pb2
from tritonclient.grpc import service_pb2 as triton

PROTO = Path("service/grpc/protocol/inference.proto")


def serialized_descriptor(module: Path) -> bytes:
    """The FileDescriptorProto a generated module registers, read from its source, not imported."""
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile":
            return node.args[0].value
    raise AssertionError(f"{module} registers no descriptor")


@pytest.fixture(scope="module")
def ours() -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto.FromString(
        serialized_descriptor(REPO_ROOT / PROTO.with_name("inference_pb2.py"))
    )


def test_the_checked_in_module_is_what_protoc_makes_of_the_proto(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--python_out={tmp_path}", str(PROTO)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    fresh = serialized_descriptor(tmp_path / PROTO.with_name("inference_pb2.py"))
    assert fresh == serialized_descriptor(REPO_ROOT / PROTO.with_name("inference_pb2.py"))


def fields(message: descriptor_pb2.DescriptorProto) -> dict[str, tuple[int, int, int, str]]:
    return {
        field.name: (field.number, field.type, field.label, field.type_name.rsplit(".", 1)[-1])
        for field in message.field
    }


def nested(
    message: descriptor_pb2.DescriptorProto, prefix: str = ""
) -> dict[str, descriptor_pb2.DescriptorProto]:
    found = {f"{prefix}{message.name}": message}
    for inner in message.nested_type:
        found.update(nested(inner, f"{prefix}{message.name}."))
    return found


def test_every_message_has_triton_s_fields_and_numbers(ours: descriptor_pb2.FileDescriptorProto) -> None:
    theirs_file = descriptor_pb2.FileDescriptorProto()
    triton.DESCRIPTOR.CopyToProto(theirs_file)
    theirs = {name: m for top in theirs_file.message_type for name, m in nested(top).items()}
    mine = {name: m for top in ours.message_type for name, m in nested(top).items()}
    assert len(mine) >= 30
    for name, message in mine.items():
        assert name in theirs, name
        assert fields(message).items() <= fields(theirs[name]).items(), name


def test_every_method_is_triton_s_with_the_same_messages(ours: descriptor_pb2.FileDescriptorProto) -> None:
    (service,) = ours.service
    theirs = {m.name: m for m in triton.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods}
    assert {m.name for m in service.method} == {
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
        "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
    }  # fmt: skip
    for method in service.method:
        assert method.input_type.rsplit(".", 1)[-1] == theirs[method.name].input_type.name
        assert method.output_type.rsplit(".", 1)[-1] == theirs[method.name].output_type.name
