# syntax=docker/dockerfile:1.7
# The three service images, one target each. Build from the repository root:
#   docker build --target producer   -t clickstream-producer:1.0.0 .
#   docker build --target aggregator -t clickstream-aggregator:1.0.0 .
#   docker build --target ops        -t clickstream-ops:1.0.0 .
# The context is the root so that shared/ and runtime/ are installed as packages.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build: a venv per service, on the packages every service shares -------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# requirements.lock pins everything but lists the local packages as `-e ./...`;
# its pinned lines alone become the constraints for a normal (non-editable) install.
COPY requirements.lock ./
RUN grep -E '^[A-Za-z0-9_.-]+==' requirements.lock > /tmp/constraints.txt
COPY shared/ shared/
COPY runtime/ runtime/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -c /tmp/constraints.txt ./shared ./runtime

FROM builder AS producer-venv
COPY services/producer/ services/producer/
RUN /opt/venv/bin/pip install -c /tmp/constraints.txt ./services/producer \
 && /opt/venv/bin/pip uninstall --yes pip

FROM builder AS aggregator-venv
COPY services/aggregator/ services/aggregator/
RUN /opt/venv/bin/pip install -c /tmp/constraints.txt ./services/aggregator \
 && /opt/venv/bin/pip uninstall --yes pip

FROM builder AS ops-venv
COPY services/ops/ services/ops/
RUN /opt/venv/bin/pip install -c /tmp/constraints.txt ./services/ops \
 && /opt/venv/bin/pip uninstall --yes pip

# --- run: what every image holds besides its venv --------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_FORMAT=json
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app
WORKDIR /app
# Every image runs as uid 10001. COPY below still writes root-owned files (it ignores
# USER), so the venv and assets stay read-only to the service.
USER 10001:10001

# A long-running service: /readyz on whatever METRICS_PORT the container is given
# (each image below sets its own default in ENV, so the variable is always there).
FROM runtime AS service
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ['METRICS_PORT'], timeout=3)"]

FROM service AS producer
ENV METRICS_PORT=9101
COPY --from=producer-venv /opt/venv /opt/venv
EXPOSE 9101
ENTRYPOINT ["clickstream-producer"]

FROM service AS aggregator
ENV METRICS_PORT=9102
COPY --from=aggregator-venv /opt/venv /opt/venv
EXPOSE 9102
ENTRYPOINT ["clickstream-aggregator"]

# The set-up job: `clickstream-setup kafka|opensearch`, `clickstream-check`, and the
# local stack's connector registration.
FROM runtime AS ops
ENV OPENSEARCH_ASSETS_DIR=/app/opensearch
COPY --from=ops-venv /opt/venv /opt/venv
# What the commands read at run time: index template, ISM policy and Dashboards
# objects, and the one connector definition shared with Terraform.
COPY opensearch/ /app/opensearch/
COPY connect/ /app/connect/
COPY docker/connect/register_connector.py /app/docker/connect/register_connector.py
# A one-shot job, not a server: nothing to probe; Compose waits for it to exit 0.
HEALTHCHECK NONE
ENTRYPOINT ["clickstream-setup"]
