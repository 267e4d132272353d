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

# 1. The runtime (src/neotool_common/schemas links to ../../schemas, so both are copied).
COPY pyproject.toml README.md /tmp/neotool-common/
COPY schemas /tmp/neotool-common/schemas
COPY src /tmp/neotool-common/src
RUN pip install --no-cache-dir /tmp/neotool-common && rm -rf /tmp/neotool-common

# 2. The consumer package, which depends on the neotool-common installed above.
COPY examples/institution-enhancement /tmp/institution-enhancement
RUN pip install --no-cache-dir /tmp/institution-enhancement && rm -rf /tmp/institution-enhancement

WORKDIR /var/lib/institution-enhancement
USER 10001:10001
# /metrics, /healthz and /readyz (METRICS_PORT)
EXPOSE 8000
ENTRYPOINT ["institution-enhancement-consumer"]
