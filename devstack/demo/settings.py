"""Settings of the demo host app, read from ``ORCH_DEMO_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DemoSettings(BaseSettings):
    """The demo host app (``python -m devstack.demo``): an app with its own key, on its own origin.

    ``gateway_url`` is where the demo server calls the gateway (its key stays server-side);
    ``gateway_public_url`` is where the browser loads the bridge module from. With
    ``tls_cert_file`` and ``tls_key_file`` it serves HTTPS (an app on another site than
    the Hub must: cross-site cookies are ``Secure``).
    """

    model_config = SettingsConfigDict(env_prefix="ORCH_DEMO_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8050
    # a listening socket inherited from the launcher (which chose and holds the port)
    socket_fd: int | None = None
    app_key: SecretStr = SecretStr("")
    gateway_url: str = "http://127.0.0.1:8040"
    gateway_public_url: str | None = None
    users: list[str] = Field(default_factory=lambda: ["demo-alice", "demo-bob"])
    command_timeout_seconds: float = 240.0
    log_json: bool | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
