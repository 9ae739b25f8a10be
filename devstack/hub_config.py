"""What a local JupyterHub looks like, and the config files that make it so."""

from __future__ import annotations

import os
import sys
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

from devstack.tls import WebTls
from hub_service.embedding import check_origins
from hub_service.jupyterhub_contract import (
    ACCOUNTS_HOOK,
    CONTENTS_MANAGER,
    LAUNCH_AUTHENTICATOR,
    ORCHESTRATOR_SCOPES,
    RESTRICTED_SERVICE,
)

# Tests and benchmarks act on the Hub as an operator would (mint a user's token, play
# an app that calls the Hub directly) with a token of their own, never the
# orchestrator's, whose role stays least-privilege.
ADMIN_SERVICE_NAME = "devstack-admin"
ADMIN_SCOPES = ["admin:users", "tokens", "admin:servers", "access:servers", "list:users"]


@dataclass(kw_only=True)
class NotifyServiceSpec:
    """A Hub-managed service (started and stopped by the Hub) reachable at ``/services/NAME/``.

    It gets no role: it only resolves the tokens of single-user servers through
    ``GET /hub/api/user``, which needs no scope.
    """

    name: str = "orchestrator-notify"
    port: int
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Where the Hub and its proxy reach the service."""
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class WorkspaceAccounts:
    """Single-user servers as a system account each (JupyterHub's LocalProcessSpawner).

    ``public_dir`` (0755, outside the private state dir) holds what those accounts must
    read: the single-user config and, under ``home`` (0711), their 0700 homes.
    ``singleuser_venv`` is a virtualenv they can execute (made from the system Python);
    ``pythonpath`` lets them import the project's single-user extension.
    """

    public_dir: Path
    singleuser_venv: Path
    pythonpath: list[str]

    @property
    def homes_root(self) -> Path:
        """Where the accounts' homes are created."""
        return self.public_dir / "home"


@dataclass
class HubConfig:
    """Settings of one local JupyterHub; all its state lives under ``state_dir/hub``.

    ``app_origins`` are the web-app origins allowed to embed the Hub and the single-user
    servers in an iframe (CSP ``frame-ancestors``); ``cross_site_origins`` are those of
    them on another site than the Hub: the Hub is then served over HTTPS with ``tls``
    and every cookie is ``SameSite=None; Secure; Partitioned``
    (:mod:`hub_service.embedding`). ``extra_config`` is Python appended to
    the generated ``jupyterhub_config.py`` (e.g. another authenticator). Ports left at
    ``None`` are chosen free when the hub process object is built. With a
    ``launch_secret`` browsers log in only through one-time launch links (the project's
    ``LaunchCodeAuthenticator``) and stay signed in ``session_seconds``; without one the
    Hub accepts API tokens only. ``labextensions_dirs`` hold prebuilt JupyterLab
    extensions for the single-user servers (the embed bridge).
    """

    state_dir: Path
    _: KW_ONLY
    service_name: str = "orchestrator"
    service_token: str
    app_origins: list[str]
    concurrent_spawn_limit: int = 100
    notify_service: NotifyServiceSpec | None = None
    singleuser_environment: dict[str, str] = field(default_factory=dict)
    singleuser_extensions: list[str] = field(default_factory=list)
    extra_config: str = ""
    hub_port: int | None = None
    proxy_api_port: int | None = None
    allow_token_in_url: bool = False
    launch_secret: str | None = None
    session_seconds: int = 8 * 3600
    labextensions_dirs: list[Path] = field(default_factory=list)
    admin_service_token: str | None = None
    accounts: WorkspaceAccounts | None = None
    # With accounts, a second Hub on this machine would share each account's home with
    # the first: its servers serve this folder of the home instead (another machine's
    # disk, as far as moves between Hubs can tell).
    home_subdir: str | None = None
    # Restricted-data mode (hub_service.restricted): no downloads, exports or copies out
    restricted_data: bool = False
    cross_site_origins: list[str] = field(default_factory=list)
    tls: WebTls | None = None

    def __post_init__(self) -> None:
        check_origins(self.app_origins, self.cross_site_origins)
        if self.cross_site_origins and self.tls is None:
            raise ValueError("cross-site app origins need the Hub on HTTPS: give it tls")

    @property
    def scheme(self) -> str:
        """``https`` when the Hub serves TLS, else ``http``."""
        return "https" if self.tls is not None else "http"

    @property
    def hub_dir(self) -> Path:
        """The folder with the Hub's config, database, cookie secret and logs."""
        return self.state_dir.resolve() / "hub"

    @property
    def singleuser_config_dir(self) -> Path:
        """``JUPYTER_CONFIG_DIR`` of every single-user server (readable by their accounts)."""
        if self.accounts is not None:
            return self.accounts.public_dir / "singleuser-config"
        return self.state_dir.resolve() / "singleuser-config"

    @property
    def used_codes_path(self) -> Path:
        """Where the Hub records redeemed launch codes (single use across restarts)."""
        return self.hub_dir / "used-launch-codes.sqlite"

    @property
    def db_path(self) -> Path:
        """The Hub's SQLite database."""
        return self.hub_dir / "jupyterhub.sqlite"


@dataclass(frozen=True)
class HubPorts:
    """The loopback ports one hub uses: public proxy, Hub API and proxy control API."""

    public: int
    hub: int
    proxy_api: int


def render_hub_config(config: HubConfig, ports: HubPorts, proxy_command: Path) -> str:
    """The text of ``jupyterhub_config.py`` for ``config`` on ``ports``."""
    hub_dir = config.hub_dir
    venv_bin = Path(sys.executable).parent
    environment = {"JUPYTER_CONFIG_DIR": str(config.singleuser_config_dir)}
    if config.accounts is not None:
        environment["PYTHONPATH"] = os.pathsep.join(config.accounts.pythonpath)
    environment.update(config.singleuser_environment)
    if config.allow_token_in_url:
        environment["JUPYTERHUB_ALLOW_TOKEN_IN_URL"] = "1"
    services: list[dict[str, object]] = [
        {"name": config.service_name, "api_token": config.service_token}
    ]
    if config.notify_service is not None:
        notify = config.notify_service
        services.append(
            {
                "name": notify.name,
                "url": notify.url,
                "command": notify.command,
                "environment": notify.environment,
            }
        )
    roles = [
        {"name": "orchestrator", "scopes": ORCHESTRATOR_SCOPES, "services": [config.service_name]}
    ]
    if config.admin_service_token is not None:
        services.append({"name": ADMIN_SERVICE_NAME, "api_token": config.admin_service_token})
        roles.append(
            {"name": ADMIN_SERVICE_NAME, "scopes": ADMIN_SCOPES, "services": [ADMIN_SERVICE_NAME]}
        )
    lines = [
        "# Generated by devstack.hub: edits are overwritten on start.",
        "c = get_config()  # noqa: F821",
        f"c.JupyterHub.bind_url = {f'{config.scheme}://127.0.0.1:{ports.public}'!r}",
        *_tls_lines(config),
        f"c.JupyterHub.hub_bind_url = {f'http://127.0.0.1:{ports.hub}'!r}",
        f"c.ConfigurableHTTPProxy.api_url = {f'http://127.0.0.1:{ports.proxy_api}'!r}",
        f"c.ConfigurableHTTPProxy.command = {[str(proxy_command)]!r}",
        f"c.ConfigurableHTTPProxy.pid_file = {str(hub_dir / 'proxy.pid')!r}",
        f"c.JupyterHub.db_url = {f'sqlite:///{config.db_path}'!r}",
        f"c.JupyterHub.cookie_secret_file = {str(hub_dir / 'jupyterhub_cookie_secret')!r}",
        f"c.JupyterHub.pid_file = {str(hub_dir / 'jupyterhub.pid')!r}",
        "c.JupyterHub.cleanup_servers = False",
        *_authenticator_lines(config),
        *_spawner_lines(config, venv_bin),
        'c.Spawner.default_url = "/lab"',
        f"c.Spawner.environment = {environment!r}",
        "c.Spawner.http_timeout = 60",
        "c.Spawner.start_timeout = 120",
        f"c.JupyterHub.concurrent_spawn_limit = {config.concurrent_spawn_limit!r}",
        f"c.JupyterHub.services = {services!r}",
        # the service token is 256 random bits: one hash round, not 16,384 (2x Hub API rate)
        "c.JupyterHub.trust_user_provided_tokens = True",
        f"c.JupyterHub.load_roles = {roles!r}",
        "from hub_service.embedding import hub_tornado_settings",
        "c.JupyterHub.tornado_settings = hub_tornado_settings("
        f"{config.app_origins!r}, {config.cross_site_origins!r})",
        "",
        config.extra_config,
        "",
    ]
    return "\n".join(lines)


def _tls_lines(config: HubConfig) -> list[str]:
    if config.tls is None:
        return []
    return [
        f"c.JupyterHub.ssl_cert = {str(config.tls.cert_file)!r}",
        f"c.JupyterHub.ssl_key = {str(config.tls.key_file)!r}",
    ]


def _spawner_lines(config: HubConfig, venv_bin: Path) -> list[str]:
    accounts = config.accounts
    if accounts is None:  # every server as the Hub's own account: no isolation
        home_template = str(config.state_dir.resolve() / "home" / "{username}")
        return [
            'c.JupyterHub.spawner_class = "hub_service.spawners.ProgressSimpleLocalProcessSpawner"',
            f"c.SimpleLocalProcessSpawner.home_dir_template = {home_template!r}",
            f"c.Spawner.cmd = {[str(venv_bin / 'jupyterhub-singleuser')]!r}",
        ]
    singleuser = accounts.singleuser_venv / "bin" / "jupyterhub-singleuser"
    subdir = config.home_subdir
    return [
        'c.JupyterHub.spawner_class = "hub_service.spawners.ProgressLocalProcessSpawner"',
        f"c.Spawner.cmd = {[str(singleuser)]!r}",
        *([f"c.Spawner.notebook_dir = {'~/' + subdir!r}"] if subdir else []),
        f"from {ACCOUNTS_HOOK.rsplit('.', 1)[0]} import {ACCOUNTS_HOOK.rsplit('.', 1)[1]}",
        f"c.Spawner.pre_spawn_hook = {ACCOUNTS_HOOK.rsplit('.', 1)[1]}"
        f"({str(accounts.homes_root)!r}, {subdir!r})",
    ]


def _authenticator_lines(config: HubConfig) -> list[str]:
    if not config.launch_secret:
        return ['c.JupyterHub.authenticator_class = "null"']
    return [
        f"c.JupyterHub.authenticator_class = {LAUNCH_AUTHENTICATOR!r}",
        f"c.LaunchCodeAuthenticator.secret = {config.launch_secret!r}",
        f"c.LaunchCodeAuthenticator.used_codes_file = {str(config.used_codes_path)!r}",
        f"c.JupyterHub.cookie_max_age_days = {config.session_seconds / 86400!r}",
        f"c.JupyterHub.oauth_token_expires_in = {config.session_seconds!r}",
    ]


def render_singleuser_config(config: HubConfig) -> str:
    """The text of ``jupyter_server_config.py`` read by every single-user server."""
    extensions = {name: True for name in config.singleuser_extensions}
    restricted = [f"c.ServerApp.extra_services = [{RESTRICTED_SERVICE!r}]"]
    return "\n".join(
        [
            "# Generated by devstack.hub: edits are overwritten on start.",
            "c = get_config()  # noqa: F821",
            *([] if config.accounts is not None else ["c.ServerApp.allow_root = True"]),
            f"c.ServerApp.contents_manager_class = {CONTENTS_MANAGER!r}",
            "import os",
            "from hub_service.embedding import configure_singleuser_embedding",
            "configure_singleuser_embedding("
            f"c, {config.app_origins!r}, {config.cross_site_origins!r})",
            f"c.LabApp.extra_labextensions_path = {[str(d) for d in config.labextensions_dirs]!r}",
            # JupyterLab keeps workspaces in the config folder, which is read-only here
            "from jupyter_core.paths import jupyter_data_dir",
            "c.LabApp.workspaces_dir = os.path.join(jupyter_data_dir(), 'lab', 'workspaces')",
            *(restricted if config.restricted_data else []),
            f"c.ServerApp.jpserver_extensions = {extensions!r}",
            "",
        ]
    )
