# JupyterHub with the project's pieces: the launch-code authenticator
# (hub_service.launch.authenticator.LaunchCodeAuthenticator), DockerSpawner (one
# container per workspace from docker/singleuser.Dockerfile), and the hub service
# (`orchestrator hub-service`) that the Hub runs as a managed service.
# Build from the repository root: docker build -f docker/jupyterhub.Dockerfile .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/* \
    && npm install --global --no-audit --no-fund configurable-http-proxy

WORKDIR /opt/orchestrator
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY orchestrator ./orchestrator
COPY runtime ./runtime
COPY consumers ./consumers
COPY hub_service ./hub_service
RUN pip install --editable . "dockerspawner>=14,<15"

# The Hub runs no user code: servers are containers of their own (DockerSpawner).
RUN useradd --create-home --uid 10002 jupyter \
    && mkdir -p /srv/jupyterhub \
    && chown -R jupyter /srv/jupyterhub \
    && chmod 0700 /srv/jupyterhub
COPY docker/jupyterhub/jupyterhub_config.py /etc/jupyterhub/jupyterhub_config.py

USER jupyter
WORKDIR /srv/jupyterhub
EXPOSE 8000
CMD ["jupyterhub", "-f", "/etc/jupyterhub/jupyterhub_config.py"]
