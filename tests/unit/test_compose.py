"""docker-compose.yml is valid (Debian's docker-compose validates it without an engine)
and speaks the same ``ORCH_*`` settings names as the Python settings classes and as
``make run`` (the local stack); its ``cluster`` profile is the distributed shape (three
clustered RabbitMQ nodes, two gateways, four consumers, one PostgreSQL)."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings
from traitlets.config import Config

from devstack.broker import QUORUM_WAL_LIMIT
from devstack.demo.settings import DemoSettings
from devstack.stack import LocalStack
from hub_service.extension import NOTIFY_URL_ENV
from hub_service.jupyterhub_contract import LAUNCH_AUTHENTICATOR
from runtime import settings as settings_module
from runtime.bus.connection import broker_urls

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
HUB_CONFIG = ROOT / "docker" / "jupyterhub" / "jupyterhub_config.py"
SINGLEUSER_CONFIG = ROOT / "docker" / "singleuser" / "jupyter_server_config.py"
SINGLEUSER_DOCKERFILE = ROOT / "docker" / "singleuser.Dockerfile"
HUB_CONFIGS = [HUB_CONFIG, SINGLEUSER_CONFIG]
REQUIRED_SECRETS = {
    "RABBITMQ_PASSWORD": "rabbit-pw",
    "POSTGRES_PASSWORD": "postgres-pw",
    "ORCH_HUB_API_TOKEN": "hub-token",
    "ORCH_LAUNCH_SECRET": "launch-secret",
}
CLUSTER_PROFILE = "cluster"
CLUSTER_SECRETS = {**REQUIRED_SECRETS, "RABBITMQ_ERLANG_COOKIE": "erlang-cookie"}
# RabbitMQ's default number of members of a new quorum queue (rabbit.quorum_cluster_size,
# quorum queues guide); a cluster no larger gets a member of every queue on every node.
RABBITMQ_DEFAULT_QUORUM_SIZE = 3
CONF_D = "/etc/rabbitmq/conf.d/"
DATA_DIR = "/var/lib/rabbitmq"
S = settings_module
# Which settings classes each orchestrator process of the compose file builds.
PROCESS_SETTINGS: dict[str, list[type[BaseSettings]]] = {
    "gateway": [S.GatewaySettings],
    "consumer-0": [S.ConsumerSettings],
    "consumer-1": [S.ConsumerSettings],
    "demo": [DemoSettings, S.CommonSettings],  # the demo also issues its key (keys)
    "gateway-a": [S.GatewaySettings],
    "gateway-b": [S.GatewaySettings],
    **{f"consumer-c{index}": [S.ConsumerSettings] for index in range(4)},
}
ORCH_NAME = re.compile(r"\bORCH_[A-Z0-9_]+\b")


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variable names a settings class reads."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in cls.model_fields}


def all_settings_names() -> set[str]:
    """Every name any settings class defines, plus the save extension's variable."""
    classes = [
        cls
        for _name, cls in inspect.getmembers(settings_module, inspect.isclass)
        if issubclass(cls, BaseSettings) and cls.__module__ == settings_module.__name__
    ]
    return set().union(*(env_names(cls) for cls in [*classes, DemoSettings])) | {NOTIFY_URL_ENV}


def compose() -> dict[str, Any]:
    """The compose file with YAML anchors and merges resolved."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def docker_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run Debian's docker-compose on the file (skipped when the binary is missing)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "docker-compose is not installed (apt-get install docker-compose; make test does)"
        )
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED_SECRETS}
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--project-directory", str(ROOT), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def in_profile(service: dict[str, Any], profile: str = CLUSTER_PROFILE) -> bool:
    """Whether ``service`` runs only when ``profile`` is enabled."""
    return profile in (service.get("profiles") or [])


def test_docker_compose_config_validates() -> None:
    done = docker_compose("config", env=REQUIRED_SECRETS)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    expected = {"rabbitmq", "postgres", "jupyterhub", "docker-api", "gateway", "consumer-0"}
    expected |= {"consumer-1", "demo", "singleuser"}
    # Debian's docker-compose lists profile services without their profile; Compose v2 not.
    cluster = {name for name, service in resolved["services"].items() if in_profile(service)}
    assert set(resolved["services"]) - cluster == expected
    gateway_env = resolved["services"]["gateway"]["environment"]
    assert gateway_env["ORCH_DATABASE_URL"].startswith("postgresql+asyncpg://orchestrator:")
    assert "ORCH_HUB_API_TOKEN" not in gateway_env  # least privilege: only Hub callers


def test_docker_compose_refuses_to_run_without_secrets() -> None:
    done = docker_compose("config", env={})
    assert done.returncode != 0
    assert "set " in done.stderr and ".env" in done.stderr


def test_every_orch_name_is_a_settings_field() -> None:
    known = all_settings_names()
    texts = [COMPOSE_FILE.read_text(), *(path.read_text() for path in HUB_CONFIGS)]
    used = set().union(*(ORCH_NAME.findall(text) for text in texts))
    assert used, "no ORCH_* names found: the check would be vacuous"
    assert used - known == set()


def test_each_process_gets_only_its_own_settings() -> None:
    services = compose()["services"]
    for service, classes in PROCESS_SETTINGS.items():
        names = {n for n in services[service]["environment"] if n.startswith("ORCH_")}
        accepted = set().union(*(env_names(cls) for cls in classes))
        assert names - accepted == set(), f"{service} gets settings it does not read"


def test_compose_sets_what_make_run_sets(tmp_path: Path) -> None:
    local = set(LocalStack(tmp_path).settings_env())
    services = compose()["services"]
    for service, cls in (
        ("gateway", S.GatewaySettings),
        ("consumer-0", S.ConsumerSettings),
        ("gateway-a", S.GatewaySettings),
        ("consumer-c0", S.ConsumerSettings),
    ):
        needed = local & env_names(cls)
        assert needed, "the local stack sets none of these: the check would be vacuous"
        missing = needed - set(services[service]["environment"])
        assert missing == set(), f"{service} lacks {sorted(missing)} that make run sets"


def test_healthchecks_and_start_order() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if "images" in service.get("profiles", []):
            continue  # built, never run
        assert "healthcheck" in service, f"{name} has no healthcheck"
        for dependency, how in service.get("depends_on", {}).items():
            assert how == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in services[dependency]
    order = {"gateway": {"rabbitmq", "postgres"}, "consumer-0": {"jupyterhub"}, "demo": {"gateway"}}
    for name, needs in order.items():
        assert needs <= set(services[name]["depends_on"]), name


def test_images_build_from_files_in_the_repo() -> None:
    for dockerfile in sorted((ROOT / "docker").glob("*.Dockerfile")):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                sources = line.split()[1:-1]
                for source in sources:
                    if "*" not in source:
                        assert (ROOT / source).exists(), f"{dockerfile.name}: {source} missing"
    for service in compose()["services"].values():
        if "build" in service:
            assert (ROOT / service["build"]["dockerfile"]).is_file()
    hub_config = (ROOT / "docker" / "jupyterhub" / "jupyterhub_config.py").read_text()
    assert "LAUNCH_AUTHENTICATOR" in hub_config
    for module in (LAUNCH_AUTHENTICATOR.rsplit(".", 1)[0], "hub_service.extension"):
        assert importlib.util.find_spec(module) is not None, module


def test_the_compose_broker_gets_the_local_brokers_quorum_wal_limit() -> None:
    conf = (ROOT / "docker" / "rabbitmq" / "20-orchestrator.conf").read_text()
    assert QUORUM_WAL_LIMIT in conf.splitlines()
    assert "20-orchestrator.conf:/etc/rabbitmq/conf.d/" in (ROOT / "docker-compose.yml").read_text()


def resolved_compose() -> dict[str, Any]:
    """The file as docker-compose itself resolves it (anchors, defaults, network names)."""
    done = docker_compose("config", env=REQUIRED_SECRETS)
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def members(resolved: dict[str, Any], network: str) -> set[str]:
    """The services attached to ``network`` (by its key in the file)."""
    return {
        name
        for name, service in resolved["services"].items()
        if network in (service.get("networks") or {})
    }


def hub_config(monkeypatch: pytest.MonkeyPatch) -> Config:
    """docker/jupyterhub/jupyterhub_config.py loaded as JupyterHub loads it."""
    for name, value in {**REQUIRED_SECRETS, "ORCH_APP_ORIGINS": '["http://app.test"]'}.items():
        monkeypatch.setenv(name, value)
    config = Config()
    exec(compile(HUB_CONFIG.read_text(), str(HUB_CONFIG), "exec"), {"get_config": lambda: config})
    return config


def test_kernels_share_a_network_with_the_hub_only() -> None:
    resolved = resolved_compose()
    notebooks = resolved["networks"]["notebooks"]
    assert notebooks["internal"] is True  # no route off the host for restricted data
    assert members(resolved, "notebooks") == {"jupyterhub"}
    assert members(resolved, "docker-api") == {"jupyterhub", "docker-api"}
    assert resolved["networks"]["docker-api"]["internal"] is True
    socket_users = {
        name
        for name, service in resolved["services"].items()
        for volume in service.get("volumes", [])
        if "docker.sock" in str(volume)
    }
    assert socket_users == {"docker-api"}, "only the socket proxy may hold the Docker socket"
    (mount,) = resolved["services"]["docker-api"]["volumes"]
    assert str(mount).endswith(":ro")


def test_each_workspace_is_an_unprivileged_container_on_the_notebooks_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolved = resolved_compose()
    config = hub_config(monkeypatch)
    spawner = config.DockerSpawner
    assert config.JupyterHub.spawner_class == "dockerspawner.DockerSpawner"
    assert spawner.network_name == resolved["networks"]["notebooks"]["name"]
    assert spawner.image == resolved["services"]["singleuser"]["image"]
    user = spawner.extra_create_kwargs["user"]
    assert user.isdigit() and int(user) != 0
    dockerfile_users = re.findall(r"^USER (\S+)$", SINGLEUSER_DOCKERFILE.read_text(), re.M)
    assert dockerfile_users[-1] == user, "the image and the spawner disagree on the account"
    assert spawner.extra_host_config["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spawner.extra_host_config["security_opt"]
    assert not spawner.extra_host_config.get("privileged", False)
    (volume,) = spawner.volumes
    assert "{username}" in volume, "workspaces would share one volume"
    hub_host = urllib.parse.urlsplit(config.JupyterHub.hub_connect_url).hostname
    assert hub_host in members(resolved, "notebooks") | {"jupyterhub"}
    assert resolved["services"]["jupyterhub"]["environment"]["DOCKER_HOST"].startswith(
        "tcp://docker-api:"
    )


def test_no_secret_reaches_a_single_user_container(monkeypatch: pytest.MonkeyPatch) -> None:
    config = hub_config(monkeypatch)
    environment = config.Spawner.environment
    assert environment[NOTIFY_URL_ENV].endswith("/services/orchestrator-notify")
    leaked = [name for name, secret in REQUIRED_SECRETS.items() if secret in str(environment)]
    assert leaked == []
    assert not any(name in environment for name in ("ORCH_AMQP_URL", "ORCH_DATABASE_URL"))
    singleuser = SINGLEUSER_CONFIG.read_text()
    assert "allow_root" not in singleuser.replace("No ``allow_root``", "")


def resolved_cluster() -> dict[str, Any]:
    """The services of the ``cluster`` profile as docker-compose resolves them."""
    done = docker_compose("--profile", CLUSTER_PROFILE, "config", env=CLUSTER_SECRETS)
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume of a resolved service, short or long syntax."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found.append((str(volume["source"]), str(volume["target"])))
        else:
            source, target = str(volume).split(":")[:2]
            found.append((source, target))
    return found


def rabbitmq_conf(service: dict[str, Any]) -> dict[str, str]:
    """The rabbitmq.conf settings a node gets from the conf.d files mounted into it
    (read from the repository; later files win, as RabbitMQ loads them in name order)."""
    settings: dict[str, str] = {}
    for source, target in sorted(mounts(service), key=lambda mount: mount[1]):
        if target.startswith(CONF_D):
            for line in Path(source).read_text().splitlines():
                if "=" in line and not line.lstrip().startswith("#"):
                    key, value = line.split("=", 1)
                    settings[key.strip()] = value.strip()
    return settings


def option(command: list[str], name: str) -> int:
    """The integer value of ``name`` in a service's command."""
    return int(command[command.index(name) + 1])


def host_ips(service: dict[str, Any]) -> list[str]:
    """The host address each published port binds ("" when all interfaces)."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append(str(port.get("host_ip", "")))
        else:
            parts = str(port).split(":")
            found.append(parts[0] if len(parts) == 3 else "")
    return found


def joining_nodes(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The RabbitMQ services the ``cluster`` profile adds (they join ``rabbitmq``)."""
    return {
        name: service
        for name, service in services.items()
        if in_profile(service) and str(service.get("image", "")).startswith("rabbitmq:")
    }


def cluster_nodes(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every node of the ``cluster`` profile's RabbitMQ cluster: ``rabbitmq`` first."""
    return {"rabbitmq": services["rabbitmq"], **joining_nodes(services)}


def test_the_cluster_profile_is_three_rabbitmq_nodes_that_find_each_other() -> None:
    services = resolved_cluster()["services"]
    nodes = cluster_nodes(services)
    assert len(nodes) == 3
    # A node is rabbit@<hostname>, and its peers find it by that name: the service's own.
    assert all(node["hostname"] == name for name, node in nodes.items())
    hostnames = set(nodes)
    data = {s for node in nodes.values() for s, target in mounts(node) if target == DATA_DIR}
    assert len(data) == 3, "each node needs a volume of its own"
    single = services["rabbitmq"]
    config_mounts = {mount for mount in mounts(single) if mount[1] != DATA_DIR}
    for name, node in nodes.items():
        assert node["image"] == single["image"], f"{name}: another RabbitMQ than `rabbitmq`"
        assert config_mounts <= set(mounts(node)), f"{name} lacks plugins or settings"
        conf = rabbitmq_conf(node)
        assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
        peers = {
            value
            for key, value in conf.items()
            if key.startswith("cluster_formation.classic_config.nodes.")
        }
        assert peers == {f"rabbit@{hostname}" for hostname in hostnames}, name
        # quorum queues get a member on every node: nothing lowers the default size
        assert not any("quorum" in key and "size" in key for key in conf), name
        cookie = node["environment"]["RABBITMQ_ERLANG_COOKIE"]
        assert cookie == CLUSTER_SECRETS["RABBITMQ_ERLANG_COOKIE"], f"{name}: not the shared one"
    assert len(nodes) <= RABBITMQ_DEFAULT_QUORUM_SIZE, "quorum queues would skip a node"


def test_with_the_cluster_profile_every_process_shares_the_clusters_bus() -> None:
    """The Hub (its hub service publishes save notifications), the demo and the first
    gateway and consumers stay on ``rabbitmq``, which is then a node of the cluster: one
    bus, so a user's commands stay in order whichever gateway takes them."""
    services = resolved_cluster()["services"]
    nodes = cluster_nodes(services)
    on_the_bus = [
        name
        for name, service in services.items()
        if "ORCH_AMQP_URL" in service.get("environment", {})
    ]
    assert {"jupyterhub", "gateway", "consumer-0", "demo"} <= set(on_the_bus)
    for name in on_the_bus:
        urls = broker_urls(services[name]["environment"]["ORCH_AMQP_URL"])
        hosts = {urllib.parse.urlsplit(url).hostname for url in urls}
        assert hosts <= set(nodes), (name, hosts)


def test_a_cluster_node_without_the_cookie_refuses_to_start(tmp_path: Path) -> None:
    """The nodes' entrypoint, run with a stand-in for the image's docker-entrypoint.sh."""
    stand_in = tmp_path / "docker-entrypoint.sh"
    stand_in.write_text('#!/bin/sh\necho "started: $*"\n')
    stand_in.chmod(0o755)
    nodes = joining_nodes(compose()["services"])
    assert nodes, "no cluster nodes: the check would be vacuous"
    for name, node in nodes.items():
        script = [part.replace("$$", "$") for part in node["entrypoint"]]  # compose escaping

        def run(cookie: str, script: list[str] = script) -> subprocess.CompletedProcess[str]:
            env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "RABBITMQ_ERLANG_COOKIE": cookie}
            return subprocess.run(script, env=env, capture_output=True, text=True, check=False)

        refused = run("")
        assert refused.returncode == 1 and "RABBITMQ_ERLANG_COOKIE in .env" in refused.stderr
        assert "started" not in refused.stdout, name
        started = run(CLUSTER_SECRETS["RABBITMQ_ERLANG_COOKIE"])
        assert started.returncode == 0, (name, started.stderr)
        assert started.stdout.strip() == "started: rabbitmq-server", name


def test_every_cluster_process_reaches_every_node_and_postgres() -> None:
    services = resolved_cluster()["services"]
    nodes = cluster_nodes(services)
    processes = {
        name: service
        for name, service in services.items()
        if in_profile(service) and service.get("image") == services["gateway"]["image"]
    }
    gateways = [s for s in processes.values() if s["command"] == ["gateway"]]
    consumers = [s["command"] for s in processes.values() if s["command"][0] == "consumer"]
    assert len(gateways) >= 2 and len(consumers) >= 4
    assert len(gateways) + len(consumers) == len(processes)
    credentials = {
        (node["environment"]["RABBITMQ_DEFAULT_USER"], CLUSTER_SECRETS["RABBITMQ_PASSWORD"])
        for node in nodes.values()
    }
    for name, service in processes.items():
        environment = service["environment"]
        urls = [urllib.parse.urlsplit(url) for url in broker_urls(environment["ORCH_AMQP_URL"])]
        assert {url.hostname for url in urls} == set(nodes), name
        assert {(url.username, url.password) for url in urls} == credentials, name
        database = urllib.parse.urlsplit(environment["ORCH_DATABASE_URL"])
        assert database.scheme == "postgresql+asyncpg", name
        assert str(services[str(database.hostname)]["image"]).startswith("postgres:"), name
        assert set(nodes) | {"postgres"} <= set(service["depends_on"]), name
    indexes = sorted(option(command, "--index") for command in consumers)
    assert indexes == list(range(len(consumers))), "each consumer needs its own index"
    assert {option(command, "--count") for command in consumers} == {len(consumers)}
    partitions = {int(s["environment"]["ORCH_PARTITIONS"]) for s in processes.values()}
    assert partitions == {int(services["gateway"]["environment"]["ORCH_PARTITIONS"])}
    assert len(consumers) <= partitions.pop(), "a consumer beyond the partitions idles"


def test_the_cluster_profile_publishes_ports_on_loopback_only() -> None:
    services = resolved_cluster()["services"]
    addresses = [ip for s in services.values() if in_profile(s) for ip in host_ips(s)]
    assert addresses, "no published port: the check would be vacuous"
    assert set(addresses) == {"127.0.0.1"}


def test_no_secret_is_written_in_the_compose_file() -> None:
    """Secrets come from .env: every secret-named variable and every password in a URL
    is a ``${...}`` reference, never a value."""
    reference = re.compile(r"\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}")
    text = COMPOSE_FILE.read_text()
    passwords = re.findall(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]*)@", text)
    assert len(passwords) >= 5, "no credentials in URLs found: the check would be vacuous"
    assert [p for p in passwords if not reference.fullmatch(p)] == []
    secret_name = re.compile(r"PASS|PASSWORD|SECRET|TOKEN|COOKIE|KEY")
    for name, service in compose()["services"].items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            if secret_name.search(key):
                assert reference.fullmatch(str(value)), f"{name}: {key} is written in the file"
