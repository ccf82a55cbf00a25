# syntax=docker/dockerfile:1
# The service image: `docker build .` (CPU) or `docker build --build-arg VARIANT=cuda -t vision-service:cuda .`.
# It holds the service and its runtime dependencies only: no TensorFlow, no compilers, no tests or training data.
ARG VARIANT=cpu
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

FROM python:3.11-slim AS python-cpu

# onnxruntime-gpu 1.20+ needs CUDA 12 and cuDNN 9; the runtime image brings both, Ubuntu's python3.11 the interpreter.
FROM ${CUDA_IMAGE} AS python-cuda
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python

FROM python-${VARIANT} AS build
ARG VARIANT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service/ service/
# Both onnxruntime wheels own the `onnxruntime` package: drop the CPU one and reinstall the GPU one over it.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install . \
    && if [ "$VARIANT" = "cuda" ]; then \
        /opt/venv/bin/pip install ".[gpu]" \
        && /opt/venv/bin/pip uninstall -y onnxruntime \
        && /opt/venv/bin/pip install --force-reinstall --no-deps "onnxruntime-gpu>=1.20"; \
    fi

FROM python-${VARIANT} AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="vision-service" \
      org.opencontainers.image.description="Classify, detect and segment images with ONNX Runtime over HTTP" \
      org.opencontainers.image.variant="${VARIANT}"
RUN groupadd --system --gid 10001 vision \
    && useradd --system --uid 10001 --gid vision --no-create-home --home-dir /nonexistent vision
COPY --from=build /opt/venv /opt/venv
COPY models/ /app/models/
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VISION_MODELS_DIR=/app/models \
    VISION_LOG_FORMAT=json
WORKDIR /app
USER 10001:10001
# REST, and the Open Inference Protocol over gRPC (VISION_GRPC_PORT).
EXPOSE 8000 8001
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz/ready', timeout=4)"]
# X-Forwarded-For is believed from loopback only: name your proxies in VISION_FORWARDED_ALLOW_IPS.
CMD ["vision-service", "--host", "0.0.0.0", "--port", "8000"]
