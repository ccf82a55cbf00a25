"""The Triton peer: the bundled ONNX files behind Triton Inference Server's C++ HTTP front end and dynamic
batcher, through PyTriton, with ONNX Runtime inside the Python function, as PyTriton's documentation shows;
started by `python -m benchmarks.peer_pytriton PORT` inside .venv-pytriton (Debian's python3).

A request is Triton's own: `POST /v2/models/<task>/infer` with the JPEG as a BYTES tensor in the binary data
extension (benchmarks.wrk.triton_binary builds it). The per-image work is benchmarks/peer_models.py.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable

import numpy as np
from PIL import Image
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from benchmarks import peer_models
from benchmarks.peer_models import MAX_BATCH


def infer_function(task: str, model: peer_models.Model) -> Callable[..., dict[str, np.ndarray]]:
    answer = peer_models.ANSWERS[task]

    @batch
    def infer(image: np.ndarray) -> dict[str, np.ndarray]:
        images = [Image.open(io.BytesIO(row[0])) for row in image]
        answers = [json.dumps(found).encode() for found in answer(model, images)]
        return {"answer": np.array([[found] for found in answers], dtype=np.object_)}

    return infer


def main(port: int) -> None:
    config = TritonConfig(
        http_address="127.0.0.1", http_port=port, grpc_port=port + 10, metrics_port=port + 20
    )
    with Triton(config=config) as triton:
        for task, model in peer_models.load_models().items():
            triton.bind(
                model_name=task,
                infer_func=infer_function(task, model),
                inputs=[Tensor(name="image", dtype=np.bytes_, shape=(1,))],
                outputs=[Tensor(name="answer", dtype=np.bytes_, shape=(1,))],
                config=ModelConfig(
                    max_batch_size=MAX_BATCH, batcher=DynamicBatcher(max_queue_delay_microseconds=0)
                ),
            )
        triton.serve()


if __name__ == "__main__":
    main(int(sys.argv[1]))
