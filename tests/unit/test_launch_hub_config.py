"""The generated Hub and single-user configs wire launch links, CSP and the embed bridge."""

from __future__ import annotations

import json
from pathlib import Path

from devstack.hub_config import (
    HubConfig,
    HubPorts,
    render_hub_config,
    render_singleuser_config,
)
from hub_service.jupyterhub_contract import CONTENTS_MANAGER, LAUNCH_AUTHENTICATOR

ORIGIN = "http://127.0.0.1:8050"


def _config(tmp_path: Path, **overrides: object) -> HubConfig:
    return HubConfig(
        tmp_path,
        service_token="t" * 64,
        app_origins=[ORIGIN],
        **overrides,  # type: ignore[arg-type]
    )


def _run_config(text: str) -> dict[str, object]:
    """Execute a generated config file; every ``c.Section.name = value`` is recorded."""
    recorded: dict[str, object] = {}

    class Section:
        def __init__(self, name: str) -> None:
            object.__setattr__(self, "_name", name)

        def __setattr__(self, key: str, value: object) -> None:
            recorded[f"{object.__getattribute__(self, '_name')}.{key}"] = value

    class Config:
        def __getattr__(self, name: str) -> Section:
            return Section(name)

    exec(text, {"get_config": Config})
    return recorded


def _hub_namespace(config: HubConfig, tmp_path: Path) -> dict[str, object]:
    ports = HubPorts(public=1, hub=2, proxy_api=3)
    return _run_config(render_hub_config(config, ports, tmp_path / "chp"))


def test_with_a_launch_secret_the_hub_uses_the_launch_authenticator(tmp_path: Path) -> None:
    config = _config(tmp_path, launch_secret="x" * 64, session_seconds=3600)
    hub = _hub_namespace(config, tmp_path)
    assert hub["JupyterHub.authenticator_class"] == LAUNCH_AUTHENTICATOR
    assert hub["LaunchCodeAuthenticator.secret"] == "x" * 64
    assert hub["JupyterHub.cookie_max_age_days"] == 3600 / 86400
    assert hub["JupyterHub.oauth_token_expires_in"] == 3600
    headers = hub["JupyterHub.tornado_settings"]["headers"]  # type: ignore[index]
    assert headers["Content-Security-Policy"] == f"frame-ancestors 'self' {ORIGIN}"


def test_without_a_secret_the_hub_accepts_api_tokens_only(tmp_path: Path) -> None:
    hub = _hub_namespace(_config(tmp_path), tmp_path)
    assert hub["JupyterHub.authenticator_class"] == "null"
    assert hub["JupyterHub.trust_user_provided_tokens"] is True  # random 256-bit token
    assert "LaunchCodeAuthenticator.secret" not in hub


def test_single_user_servers_get_csp_bridge_origins_and_the_extension(tmp_path: Path) -> None:
    extensions = tmp_path / "labextensions"
    text = render_singleuser_config(_config(tmp_path, labextensions_dirs=[extensions]))
    recorded = _run_config(text)
    settings = recorded["ServerApp.tornado_settings"]
    assert isinstance(settings, dict)
    assert settings["headers"]["Content-Security-Policy"] == f"frame-ancestors 'self' {ORIGIN}"
    assert json.loads(settings["page_config_data"]["orchestratorEmbedOrigins"]) == [ORIGIN]
    assert recorded["LabApp.extra_labextensions_path"] == [str(extensions)]
    assert recorded["ServerApp.contents_manager_class"] == CONTENTS_MANAGER
