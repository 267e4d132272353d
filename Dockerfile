# syntax=docker/dockerfile:1
# The institution-enhancement consumer, built from this repository:
#     docker build -t institution-enhancement:0.1.0 .
# Batch Workflow Standard §4.5: neotool-common is installed first, then the consumer package.
# 0. The runtime as a wheel, with its record fast path compiled (scripts/build_native.py, docs/throughput.md):
#    the compiler and mypy stay in this stage. src/neotool_common/schemas links to ../../schemas, so both are copied.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY src src
COPY scripts/build_native.py scripts/build_native.py
RUN pip install --no-cache-dir ".[dev]" \
    && python scripts/build_native.py \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed non-root uid so Kubernetes' runAsNonRoot can check it; the working directory holds the
# embedded SQLite file when DATABASE_URL is not set.
RUN groupadd --system --gid 10001 consumer \
    && useradd --system --uid 10001 --gid consumer --no-create-home --shell /usr/sbin/nologin consumer \
    && install -d -o consumer -g consumer /var/lib/institution-enhancement

# 1. The runtime, from the build stage's wheel. RECORD_DECODER=compiled: the consumer refuses to start (exit 2)
#    if the compiled fast path is missing, rather than run slower unnoticed.
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels
ENV RECORD_DECODER=compiled

# 2. The consumer package, which depends on the neotool-common installed above.
COPY examples/institution-enhancement /tmp/institution-enhancement
RUN pip install --no-cache-dir /tmp/institution-enhancement && rm -rf /tmp/institution-enhancement

WORKDIR /var/lib/institution-enhancement
USER 10001:10001
# /metrics, /healthz and /readyz (METRICS_PORT)
EXPOSE 8000
ENTRYPOINT ["institution-enhancement-consumer"]
