#!/usr/bin/env bash
# Build the embed-bridge JupyterLab extension (npm + jupyter-builder from the venv) into
# .cache/labextension/labextensions; a no-op when its sources did not change.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${VENV:-.venv}/bin/python" -m hub_service.labextension.build "$@"
