# The orchestrator's own processes: gateway, consumers and the operator CLI
# (`orchestrator gateway|consumer|keys|queues|command|dead-letters ...`), and the demo
# app (`python -m devstack.demo`, from the repository's dev stack).
# Build from the repository root: docker build -f docker/orchestrator.Dockerfile .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ORCH_LOG_JSON=true

RUN useradd --create-home --uid 10001 orchestrator
WORKDIR /opt/orchestrator
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY orchestrator ./orchestrator
COPY runtime ./runtime
COPY consumers ./consumers
COPY hub_service ./hub_service
# devstack/ is not part of the package: only the demo app is taken from it.
COPY devstack ./devstack
RUN pip install --editable .

USER orchestrator
# Health checks use Python (no curl in the image): see docker-compose.yml.
ENTRYPOINT ["orchestrator"]
CMD ["gateway"]
