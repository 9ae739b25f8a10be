"""Settings of each deployable, read from ``ORCH_*`` environment variables.

One class per process kind; each is built once in the entry point and passed down.
The same names are used by ``make run`` (the local stack) and docker-compose.yml.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.hubs import DEFAULT_HUB, HubSpec, check_unique_names
from schemas.topology import DEFAULT_PARTITIONS


class CommonSettings(BaseSettings):
    """Settings every process shares: where the bus and the database are."""

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore")

    amqp_url: SecretStr = SecretStr("amqp://orchestrator@127.0.0.1:5672/")
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///orchestrator.db")
    partitions: int = Field(default=DEFAULT_PARTITIONS, ge=1, le=64)
    log_json: bool | None = None
    publish_timeout_seconds: float = 5.0
    # Echoed by /healthz and /readyz: whoever started this process (the dev stack, a
    # supervisor) sets a fresh value per start and so knows the answer came from this
    # process, not from another one holding the same port.
    instance: str = ""


class LaunchSettings(BaseSettings):
    """Issuing one-time launch links (consumers and gateway): where the Hubs are, the
    secret shared with the Hubs' launch authenticator, and how long a link lives.

    ``hubs`` (``ORCH_HUBS``, a JSON list of :class:`~runtime.hubs.HubSpec`) names
    several Hubs; when empty there is one, ``default``, made of the single-Hub settings.
    """

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore")

    hub_public_url: str = "http://127.0.0.1:8000"
    launch_secret: SecretStr = SecretStr("")
    launch_code_ttl_seconds: float = Field(default=120.0, gt=0, le=600)
    hubs: list[HubSpec] = Field(default_factory=list)

    def hub_specs(self) -> list[HubSpec]:
        """The Hubs, in configuration order (ValueError when two share a name)."""
        if self.hubs:
            check_unique_names(self.hubs)
            return list(self.hubs)
        return [self._single_hub()]

    def _single_hub(self) -> HubSpec:
        return HubSpec(name=DEFAULT_HUB, public_url=self.hub_public_url)


class GatewaySettings(CommonSettings, LaunchSettings):
    """The HTTP gateway apps talk to."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8040
    public_url: str = "http://127.0.0.1:8040"
    max_body_bytes: int = 1_048_576
    max_wait_seconds: float = 30.0
    auth_cache_seconds: float = Field(default=5.0, ge=0)  # revocation takes effect within it
    app_origins: list[str] = Field(default_factory=list)


class ConsumerSettings(CommonSettings, LaunchSettings):
    """A command consumer: where the Hub is and how hard to push it."""

    hub_api_url: str = "http://127.0.0.1:8000/hub/api"
    hub_public_url: str = "http://127.0.0.1:8000"
    hub_api_token: SecretStr = SecretStr("")
    # A CA bundle (PEM) the Hubs' HTTPS certificates are checked against, besides the
    # system's: for Hubs whose certificate an internal CA signed
    hub_ca_file: Path | None = None
    # The gateway's public URL: where the read-only views (open with mode "view") are
    public_url: str = ""
    hub_concurrency: int = Field(default=16, ge=1)
    spawn_concurrency: int = Field(default=4, ge=1)
    spawn_timeout_seconds: float = 180.0
    prefetch: int = Field(default=32, ge=1)
    inline_content_max_bytes: int = 16_384
    metrics_port: int | None = None
    # The relay (consumers/relay.py): how often it looks, and when a row counts as lost.
    # stale_accepted_seconds must exceed the longest retry delay (60 s) and
    # stale_running_seconds the longest attempt (a spawn: spawn_timeout_seconds), or
    # commands still on their way are published twice (harmless, handlers are
    # idempotent, but wasted work).
    relay_interval_seconds: float = Field(default=5.0, gt=0)
    outbox_grace_seconds: float = Field(default=10.0, ge=0)
    stale_accepted_seconds: float = Field(default=120.0, gt=0)
    stale_running_seconds: float = Field(default=300.0, gt=0)
    relay_max_attempts: int = Field(default=25, ge=1)
    # orch_commands_waiting counts accepted commands untouched for longer than this
    waiting_report_seconds: float = Field(default=90.0, gt=0)
    # Culling (consumers/culler.py): how often one consumer looks, and the policy of
    # apps that set none of their own (0 turns a rule off). Before a server stops, its
    # open pages get flush_timeout_seconds to save their notebooks.
    cull_interval_seconds: float = Field(default=30.0, gt=0)
    idle_timeout_seconds: int = Field(default=3600, ge=0)
    max_age_seconds: int = Field(default=0, ge=0)
    cull_grace_seconds: int = Field(default=300, ge=0)
    flush_timeout_seconds: float = Field(default=5.0, ge=0, le=30)
    # Several Hubs (consumers/hub_health.py): how often one consumer checks them all.
    hub_check_interval_seconds: float = Field(default=10.0, gt=0)
    # Fault tests only: named points where the process dies as if killed (runtime/failpoints.py).
    failpoints: str = ""

    def hub_ssl_context(self) -> ssl.SSLContext:
        """What the Hubs' HTTPS is verified with: the system's CAs and ``hub_ca_file``."""
        context = ssl.create_default_context()
        if self.hub_ca_file is not None:
            context.load_verify_locations(cafile=str(self.hub_ca_file))
        return context

    def _single_hub(self) -> HubSpec:
        return HubSpec(
            name=DEFAULT_HUB,
            api_url=self.hub_api_url,
            public_url=self.hub_public_url,
            token=self.hub_api_token,
            spawn_limit=self.spawn_concurrency,
        )


class HubServiceSettings(CommonSettings):
    """The Hub-managed service that receives save notifications from Jupyter servers.

    The Hub itself provides ``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN`` and
    ``JUPYTERHUB_SERVICE_URL``; those are read by the service entry point.
    """

    token_cache_seconds: float = 30.0
    hub_name: str | None = None  # this Hub's name in ORCH_HUBS (several Hubs)


class HubsSettings(CommonSettings, LaunchSettings):
    """Operator tools that need the configured Hubs (``orchestrator hubs``)."""


class OperatorSettings(CommonSettings):
    """Operator tools (``orchestrator queues``, ``command``): the RabbitMQ management API."""

    management_url: str = "http://127.0.0.1:15672"
    management_user: str = "orchestrator"
    management_password: SecretStr = SecretStr("")
    management_vhost: str = "/"


# The operator CLI's settings may come from a file of shell exports: the one named by
# ORCH_ENV_FILE, else the one the dev stack (`make run`) writes while it runs, found
# from the repository root. Real environment variables take precedence over the file.
ENV_FILE_NAME = "orchestrator.env"
ENV_FILE_VARIABLE = "ORCH_ENV_FILE"
DEV_ENV_FILE = Path(".state") / "dev" / ENV_FILE_NAME


def operator_env_file() -> Path | None:
    """The env file the operator CLI reads, or None when there is none."""
    named = os.environ.get(ENV_FILE_VARIABLE)
    if named:
        return Path(named)
    return DEV_ENV_FILE if DEV_ENV_FILE.is_file() else None
