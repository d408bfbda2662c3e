# syntax=docker/dockerfile:1
# One image for every ZeroCloud service: the command picks the service
# (zerocloud-api serve | zerocloud-api migrate | zerocloud-ingestor | zerocloud-scheduler
# [serve|migrate] | zerocloud-notifier | zerocloud-reaper | zerocloud-cli). No secrets
# are baked in: settings come from ZC_* variables and config.yml (ZC_CONFIG) at run time.

# --- build: the pinned requirements, then our seven packages, into one virtualenv ----
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/zerocloud
ENV PATH=/opt/zerocloud/bin:$PATH

# The pinned set first, on its own layer: it changes far less often than our code.
COPY requirements/runtime.txt /src/requirements/runtime.txt
RUN pip install --no-cache-dir -r /src/requirements/runtime.txt

# Our packages, non-editable and without dependencies: everything they need is pinned above.
COPY libs/zc_common /src/libs/zc_common
COPY services /src/services
COPY cli /src/cli
RUN pip install --no-cache-dir --no-deps \
        /src/libs/zc_common \
        /src/services/api \
        /src/services/ingestor \
        /src/services/scheduler \
        /src/services/notifier \
        /src/services/reaper \
        /src/cli \
    && python -m compileall -q /opt/zerocloud/lib

# --- run: the virtualenv only (no sources, no build tools), as a fixed non-root user -
FROM python:3.11-slim

LABEL org.opencontainers.image.title="ZeroCloud" \
      org.opencontainers.image.description="Leases for every EC2 instance: one image, every service"

# A fixed uid/gid, so Kubernetes can check runAsNonRoot and volumes can be owned by it.
RUN groupadd --system --gid 10001 zerocloud \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin zerocloud

COPY --from=build /opt/zerocloud /opt/zerocloud

# Bytecode was compiled at build time; nothing is written at run time, so the root
# filesystem can be read-only (Kubernetes: readOnlyRootFilesystem, compose: read_only).
ENV PATH=/opt/zerocloud/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
WORKDIR /tmp

# api 8000, ingestor 8001, scheduler 8002, notifier 8003, reaper 8004 (their defaults).
EXPOSE 8000-8004

# /healthz on the service's own port: set ZC_HTTP_PORT when running a service other than
# the api with plain `docker run` (docker-compose.yml gives each service its own check).
# Python's urllib: the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ZC_HTTP_PORT', '8000'), timeout=4)"]

CMD ["zerocloud-api", "serve"]
