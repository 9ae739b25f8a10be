# The image of every user's single-user server in the compose deployment: DockerSpawner
# starts one container per workspace (Hub user) from it. It holds JupyterLab, the
# save-events server extension, the contents manager whose saves readers never see
# half-written, and the embed bridge (from the orchestrator's package); no secret.
# It runs as the unprivileged account `jovyan` (uid 1000); the workspace's files live in
# a volume of its own mounted at /home/jovyan.
# Build from the repository root (docker-compose.yml does: `--profile images build`).
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/orchestrator
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY orchestrator ./orchestrator
COPY runtime ./runtime
COPY consumers ./consumers
COPY hub_service ./hub_service
RUN pip install --editable . jupyter-builder \
    && python -m hub_service.labextension.build

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/orchestrator
COPY --from=build /opt/orchestrator /opt/orchestrator
RUN pip install --editable . \
    && useradd --create-home --uid 1000 --shell /usr/sbin/nologin jovyan \
    && chmod 0700 /home/jovyan
COPY docker/singleuser/jupyter_server_config.py /etc/jupyter/jupyter_server_config.py

USER 1000
WORKDIR /home/jovyan
EXPOSE 8888
CMD ["jupyterhub-singleuser"]
