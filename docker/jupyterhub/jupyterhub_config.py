"""JupyterHub config of the docker-compose stack (the local stack generates its own,
``devstack.hub_config``; both use the same scopes, authenticator and
extensions).

Everything deployment-specific comes from the environment (see docker-compose.yml):
``ORCH_HUB_API_TOKEN`` (the orchestrator service's token), ``ORCH_LAUNCH_SECRET``,
``ORCH_APP_ORIGINS`` (JSON list), ``ORCH_HUB_PUBLIC_URL``, and what the hub service
needs (``ORCH_AMQP_URL``, ``ORCH_DATABASE_URL``, ``ORCH_PARTITIONS``).

Choice: the hub service runs INSIDE this container as a Hub-managed service, as in the
local stack: the Hub starts, restarts and proxies it (``/services/orchestrator-notify/``),
and the single-user servers reach it on loopback. It scales with the Hub, which is
what it serves; on Kubernetes (Zero to JupyterHub) it becomes an external service
with its own Deployment instead (see docs/OPERATIONS.md).
"""

import json
import os

from hub_service.extension import NOTIFY_URL_ENV
from hub_service.jupyterhub_contract import LAUNCH_AUTHENTICATOR, ORCHESTRATOR_SCOPES

c = get_config()  # noqa: F821

STATE = "/srv/jupyterhub"
NOTIFY_PORT = 8060
SESSION_SECONDS = 8 * 3600
app_origins = json.loads(os.environ.get("ORCH_APP_ORIGINS", "[]"))
csp = " ".join(["frame-ancestors 'self'", *app_origins])

c.JupyterHub.bind_url = "http://0.0.0.0:8000"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:8081"
c.JupyterHub.db_url = f"sqlite:///{STATE}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{STATE}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = f"{STATE}/proxy.pid"
c.JupyterHub.cleanup_servers = False

c.JupyterHub.authenticator_class = LAUNCH_AUTHENTICATOR
c.LaunchCodeAuthenticator.secret = os.environ["ORCH_LAUNCH_SECRET"]
c.JupyterHub.cookie_max_age_days = SESSION_SECONDS / 86400
c.JupyterHub.oauth_token_expires_in = SESSION_SECONDS

c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = f"{STATE}/home/{{username}}"
c.Spawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 60
c.Spawner.start_timeout = 120
c.Spawner.environment = {
    "JUPYTER_CONFIG_DIR": "/etc/jupyter-singleuser",
    NOTIFY_URL_ENV: f"http://127.0.0.1:{NOTIFY_PORT}",
    "ORCH_APP_ORIGINS": json.dumps(app_origins),
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
c.JupyterHub.tornado_settings = {"headers": {"Content-Security-Policy": csp}}
