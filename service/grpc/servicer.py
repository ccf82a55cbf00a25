"""Each RPC of `inference.GRPCInferenceService`: parse the message, call the engine (through
service.core.dataplane, as REST's `/v2` does), build the answer. A ServiceError ends the call with its
status."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from service import __version__
from service.core import dataplane
from service.core.engine import Engine
from service.core.errors import InternalError, InvalidInputError, ServiceError
from service.core.repository import LoadedModel
from service.grpc import images, tensors
from service.grpc.errors import DeadlineExceededError, abort
from service.grpc.protocol import inference_pb2 as pb

logger = logging.getLogger("vision.grpc")

Request = TypeVar("Request")
Response = TypeVar("Response")
Method = Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Response]]


def answered(method: Method[Request, Response]) -> Method[Request, Response]:
    """The RPC, with a ServiceError answered as its gRPC status and anything else as INTERNAL, logged."""

    @functools.wraps(method)
    async def call(self: Any, request: Request, context: grpc.aio.ServicerContext) -> Response:
        try:
            return await method(self, request, context)
        except ServiceError as error:
            failure = error
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            logger.exception("%s failed", method.__name__)
            failure = InternalError("internal error")
        # The failure's frames and this one hold the request's message, and the abort's exception ends in a
        # reference cycle inside grpc (service.grpc.metrics says what that cost).
        failure.__traceback__ = None
        del request
        await abort(context, failure)
        raise AssertionError("abort returns by raising")

    return call


class InferenceServicer:
    """The protocol's RPCs on one engine; `draining` says when the process is on its way out."""

    def __init__(
        self, engine: Engine, *, model_control: bool, draining: Callable[[], bool], request_timeout: float
    ) -> None:
        self.engine = engine
        self.model_control = model_control
        self.draining = draining
        self.request_timeout = request_timeout

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:  # noqa: N802
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:  # noqa: N802
        return pb.ServerReadyResponse(ready=self.engine.readiness().status == "ok" and not self.draining())

    async def ServerMetadata(  # noqa: N802
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        extensions = dataplane.extensions(model_control=self.model_control)
        return pb.ServerMetadataResponse(name="vision-service", version=__version__, extensions=extensions)

    @answered
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:  # noqa: N802
        self._find(request.name, request.version)
        return pb.ModelReadyResponse(ready=True)

    @answered
    async def ModelMetadata(  # noqa: N802
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        described = dataplane.model_tensors(self.engine, self._find(request.name, request.version))
        return pb.ModelMetadataResponse(
            name=described.name,
            versions=described.versions,
            platform="onnxruntime_onnx",
            inputs=[_tensor(spec) for spec in described.inputs],
            outputs=[_tensor(spec) for spec in described.outputs],
        )

    @answered
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:  # noqa: N802
        try:
            async with asyncio.timeout(self.request_timeout):
                return await self._infer(request)
        except TimeoutError:
            raise DeadlineExceededError(
                f"the request took longer than its deadline of {self.request_timeout:g} s",
                detail={"deadline_seconds": self.request_timeout},
            ) from None

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        """Tensors through the model, or encoded images through its task (service.grpc.images)."""
        version = _version(request.model_version)
        model = self._find(request.model_name, request.model_version)
        if images.carries_images(request):
            return await images.infer_images(self.engine, model, request, version)
        spec = model.metadata.input
        max_values = self.engine.limits.max_images * spec.height * spec.width * spec.channels
        # Off the loop: a message's worth of numbers takes milliseconds to copy.
        decoded = await asyncio.to_thread(tensors.decode, request, max_values)
        answer = await self.engine.infer_tensors(request.model_name, version, decoded.inputs, decoded.outputs)
        return tensors.encode(answer, request, decoded.raw)

    @answered
    async def RepositoryIndex(  # noqa: N802
        self, request: pb.RepositoryIndexRequest, context: Any
    ) -> pb.RepositoryIndexResponse:
        response = pb.RepositoryIndexResponse()
        for state in dataplane.repository_index(self.engine, request.ready):
            response.models.add(
                name=state.name, version=state.version, state=state.state, reason=state.reason
            )
        return response

    @answered
    async def RepositoryModelLoad(  # noqa: N802
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        await dataplane.load_model(self.engine, request.model_name)
        return pb.RepositoryModelLoadResponse()

    @answered
    async def RepositoryModelUnload(  # noqa: N802
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        await dataplane.unload_model(self.engine, request.model_name)
        return pb.RepositoryModelUnloadResponse()

    def _find(self, name: str, version: str) -> LoadedModel:
        return self.engine.find(name, _version(version))


def _version(text: str) -> int | None:
    """A request's model version: empty for the highest."""
    if not text:
        return None
    if not text.isdecimal() or int(text) < 1:
        raise InvalidInputError(f"model version must be a positive integer, not {text[:32]!r}")
    return int(text)


def _tensor(spec: dataplane.TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(name=spec.name, datatype=spec.datatype, shape=spec.shape)
