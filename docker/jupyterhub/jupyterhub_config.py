"""JupyterHub config of the docker-compose stack (the local stack generates its own,
``devstack.hub_config``; both use the same scopes, authenticator and
extensions).

Everything deployment-specific comes from the environment (see docker-compose.yml):
``ORCH_HUB_API_TOKEN`` (the orchestrator service's token), ``ORCH_LAUNCH_SECRET``,
``ORCH_APP_ORIGINS`` (JSON list), ``ORCH_HUB_PUBLIC_URL``, and what the hub service
needs (``ORCH_AMQP_URL``, ``ORCH_DATABASE_URL``, ``ORCH_PARTITIONS``).

Apps on another site than the Hub: ``CROSS_SITE_ORIGINS`` (JSON list, each one also in
``ORCH_APP_ORIGINS``, each ``https``) makes every cookie ``SameSite=None; Secure;
Partitioned`` (hub_service/embedding.py). The Hub must then be reached over HTTPS:
``HUB_TLS_CERT`` and ``HUB_TLS_KEY`` (paths in the container) make its proxy serve
TLS itself; behind a TLS-terminating proxy, leave them unset.

Choice: the hub service runs INSIDE this container as a Hub-managed service, as in the
local stack: the Hub starts, restarts and proxies it (``/services/orchestrator-notify/``),
and the single-user servers reach it on loopback. It scales with the Hub, which is
what it serves; on Kubernetes (Zero to JupyterHub) it becomes an external service
with its own Deployment instead (see docs/OPERATIONS.md).

Single-user servers: DockerSpawner, one container per workspace (Hub user) from the
single-user image (docker/singleuser.Dockerfile), as the unprivileged uid 1000 with no
capabilities, on the ``orchestrator-notebooks`` network, where the only other member
is this Hub: the broker, the database and the orchestrator's processes are out of
reach. Each workspace's files are a Docker volume of its own. The Hub reaches Docker
only through the ``docker-api`` socket proxy (containers, images, networks), never
through the socket itself. docs/SECURITY.md states what this guarantees.
"""

import json
import os

from hub_service.embedding import hub_tornado_settings
from hub_service.extension import NOTIFY_URL_ENV
from hub_service.jupyterhub_contract import LAUNCH_AUTHENTICATOR, ORCHESTRATOR_SCOPES

c = get_config()  # noqa: F821

STATE = "/srv/jupyterhub"
NOTIFY_PORT = 8060
HUB_HOST = "jupyterhub"  # the Hub's name on the notebooks network
NOTEBOOKS_NETWORK = "orchestrator-notebooks"  # docker-compose.yml: networks.notebooks.name
SINGLEUSER_IMAGE = "notebook-orchestrator-singleuser:latest"
SINGLEUSER_UID = "1000"  # jovyan in the single-user image
SESSION_SECONDS = 8 * 3600
app_origins = json.loads(os.environ.get("ORCH_APP_ORIGINS", "[]"))
cross_site_origins = json.loads(os.environ.get("CROSS_SITE_ORIGINS", "[]"))
tls_cert, tls_key = os.environ.get("HUB_TLS_CERT"), os.environ.get("HUB_TLS_KEY")

if tls_cert and tls_key:
    c.JupyterHub.bind_url = "https://0.0.0.0:8000"
    c.JupyterHub.ssl_cert = tls_cert
    c.JupyterHub.ssl_key = tls_key
else:
    c.JupyterHub.bind_url = "http://0.0.0.0:8000"
# single-user containers reach the Hub API (OAuth, activity) across the notebooks network
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = f"http://{HUB_HOST}:8081"
c.JupyterHub.db_url = f"sqlite:///{STATE}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{STATE}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = f"{STATE}/proxy.pid"
c.JupyterHub.cleanup_servers = False

c.JupyterHub.authenticator_class = LAUNCH_AUTHENTICATOR
c.LaunchCodeAuthenticator.secret = os.environ["ORCH_LAUNCH_SECRET"]
c.LaunchCodeAuthenticator.used_codes_file = f"{STATE}/used-launch-codes.sqlite"
c.JupyterHub.cookie_max_age_days = SESSION_SECONDS / 86400
c.JupyterHub.oauth_token_expires_in = SESSION_SECONDS

c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = SINGLEUSER_IMAGE
c.DockerSpawner.pull_policy = "never"  # built locally: docker-compose --profile images build
c.DockerSpawner.network_name = NOTEBOOKS_NETWORK
c.DockerSpawner.remove = True  # the container goes with the server; the volume stays
c.DockerSpawner.volumes = {"orchestrator-workspace-{username}": "/home/jovyan"}
c.DockerSpawner.notebook_dir = "/home/jovyan"
c.DockerSpawner.extra_create_kwargs = {"user": SINGLEUSER_UID}
c.DockerSpawner.extra_host_config = {
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "pids_limit": 1024,
}
c.DockerSpawner.mem_limit = os.environ.get("SINGLEUSER_MEM_LIMIT", "4G")
c.Spawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 60
c.Spawner.start_timeout = 120
c.Spawner.environment = {
    # the hub service's public route (/notify only), through this Hub's proxy
    NOTIFY_URL_ENV: f"http://{HUB_HOST}:8000/services/orchestrator-notify",
    "ORCH_APP_ORIGINS": json.dumps(app_origins),
    "CROSS_SITE_ORIGINS": json.dumps(cross_site_origins),
    # "true": restricted-data mode (no downloads, exports, copies out: hub_service/restricted)
    "RESTRICTED_DATA": os.environ.get("RESTRICTED_DATA", "false"),
}
c.JupyterHub.concurrent_spawn_limit = int(os.environ.get("HUB_CONCURRENT_SPAWN_LIMIT", "100"))

passed_to_hub_service = ("ORCH_AMQP_URL", "ORCH_DATABASE_URL", "ORCH_PARTITIONS", "ORCH_LOG_JSON")
c.JupyterHub.services = [
    {"name": "orchestrator", "api_token": os.environ["ORCH_HUB_API_TOKEN"]},
    {
        "name": "orchestrator-notify",
        "url": f"http://127.0.0.1:{NOTIFY_PORT}",
        "command": ["orchestrator", "hub-service"],
        "environment": {k: os.environ[k] for k in passed_to_hub_service if k in os.environ},
    },
]
# ORCH_HUB_API_TOKEN is 256 random bits (openssl rand -hex 32, docker/env.example): one
# hash round per check instead of 16,384 doubles the API rate the consumers get.
c.JupyterHub.trust_user_provided_tokens = True
c.JupyterHub.load_roles = [
    {"name": "orchestrator", "scopes": ORCHESTRATOR_SCOPES, "services": ["orchestrator"]}
]
c.JupyterHub.tornado_settings = hub_tornado_settings(app_origins, cross_site_origins)
