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
# Restricted-data mode: the single-user servers' extra service that refuses downloads,
# exports and copies out (hub_service/restricted.py), and the JupyterLab plugins hidden
# with it (its `disabledExtensions`: downloads and exports in menus and file browser).
RESTRICTED_SERVICE = "hub_service.restricted"
RESTRICTED_HIDDEN_LAB_PLUGINS = (
    "@jupyterlab/docmanager-extension:download",
    "@jupyterlab/filebrowser-extension:download",
    "@jupyterlab/notebook-extension:export",
)
# LocalProcessSpawner's pre-spawn hook: a system account per workspace (Hub user)
ACCOUNTS_HOOK = "hub_service.system_accounts.accounts_pre_spawn_hook"
# The orchestrator service's role: exactly the scopes its code uses (JupyterHub 6.1).
ORCHESTRATOR_SCOPES = [
    # POST /users/{name} (ensure-user). JupyterHub gates user creation on this scope
    # alone; it brings delete:users and admin:auth_state, and there is no narrower one.
    # The Hub stores no auth state (the launch authenticator keeps none), so
    # admin:auth_state reads nothing; the code never deletes users.
    "admin:users",
    # POST /users/{name}/server and its progress stream (start-server, open, ...).
    "start:servers",
    # DELETE /users/{name}/server (stop-server).
    "delete:servers",
    # GET /users/{name}: the "servers" field of the user model (readiness, pending);
    # with list:users (part of admin:users) GET /users?state=active, the culler's list.
    "read:servers",
    # /user/{name}/api/contents/...: the contents API of the user's server; also its
    # /api/status, /api/sessions and the embed bridge's flush (culling).
    "access:servers",
]
