# JupyterHub with the project's pieces: the launch-code authenticator
# (hub_service.launch.authenticator.LaunchCodeAuthenticator), the save-events server
# extension (hub_service.extension), the embed-bridge JupyterLab extension, and the
# hub service (`orchestrator hub-service`) that the Hub runs as a managed service.
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
RUN pip install --editable . jupyter-builder \
    && python -m hub_service.labextension.build

RUN useradd --create-home --uid 10002 jupyter \
    && mkdir -p /srv/jupyterhub/home \
    && chown -R jupyter /srv/jupyterhub
COPY docker/jupyterhub/jupyterhub_config.py /etc/jupyterhub/jupyterhub_config.py
COPY docker/jupyterhub/jupyter_server_config.py /etc/jupyter-singleuser/jupyter_server_config.py

USER jupyter
WORKDIR /srv/jupyterhub
EXPOSE 8000
CMD ["jupyterhub", "-f", "/etc/jupyterhub/jupyterhub_config.py"]
