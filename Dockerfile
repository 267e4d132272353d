# syntax=docker/dockerfile:1
# The institution-enhancement consumer, built from this repository:
#     docker build -t institution-enhancement:0.1.0 .
# Batch Workflow Standard §4.5: neotool-common is installed first, then the consumer package.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed non-root uid so Kubernetes' runAsNonRoot can check it; the working directory holds the
# embedded SQLite file when DATABASE_URL is not set.
RUN groupadd --system --gid 10001 consumer \
    && useradd --system --uid 10001 --gid consumer --no-create-home --shell /usr/sbin/nologin consumer \
    && install -d -o consumer -g consumer /var/lib/institution-enhancement

# 1. The runtime, its record fast path compiled (scripts/build_native.py; docs/throughput.md, "The compiled fast
#    path"): the compiler, mypy and what mypy pulls in are installed, used and removed in this one step.
#    RECORD_DECODER=compiled: a consumer in this image refuses to start (exit 2) without the compiled build.
#    src/neotool_common/schemas links to ../../schemas, so both are copied.
COPY pyproject.toml README.md /tmp/neotool-common/
COPY schemas /tmp/neotool-common/schemas
COPY src /tmp/neotool-common/src
COPY scripts/build_native.py scripts/native-requirements.txt /tmp/neotool-common/scripts/
# The compiler comes and goes in this step; its version is the base image's Debian release's.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir /tmp/neotool-common -r /tmp/neotool-common/scripts/native-requirements.txt \
    && python /tmp/neotool-common/scripts/build_native.py \
    && pip install --no-cache-dir --no-deps --force-reinstall /tmp/neotool-common \
    && pip uninstall -y mypy types-jsonschema librt ast-serialize pathspec mypy-extensions \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* /tmp/neotool-common
ENV RECORD_DECODER=compiled

# 2. The consumer package, which depends on the neotool-common installed above.
COPY examples/institution-enhancement /tmp/institution-enhancement
RUN pip install --no-cache-dir /tmp/institution-enhancement && rm -rf /tmp/institution-enhancement

WORKDIR /var/lib/institution-enhancement
USER 10001:10001
# /metrics, /healthz and /readyz (METRICS_PORT)
EXPOSE 8000
ENTRYPOINT ["institution-enhancement-consumer"]
