"""What a JupyterHub must be configured with to serve the orchestrator.

One place for the names that both the generated dev-stack config and the compose
Hub config (``docker/jupyterhub/jupyterhub_config.py``) use: the orchestrator
service's role, the launch-link authenticator, and what every single-user server
loads (the atomic-save contents manager and the save-notification extension).
"""

from __future__ import annotations

LAUNCH_AUTHENTICATOR = "hub_service.launch.authenticator.LaunchCodeAuthenticator"
CONTENTS_MANAGER = "hub_service.contents.AtomicReplaceFileManager"
SAVE_EXTENSION = "hub_service.extension"
ORCHESTRATOR_SCOPES = [
    "admin:users",
    "tokens",
    "servers",
    "access:servers",
    "list:users",
    "read:users",
]
