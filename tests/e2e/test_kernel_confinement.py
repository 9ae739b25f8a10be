"""Code inside a real kernel reaches its own workspace's files and nothing else.

A notebook user is untrusted: this runs attacker code in a real kernel of person A
(through the kernel's websocket, as JupyterLab does) and has it try to read B's
notebook, the orchestrator's database, the Hub's config and secrets, other processes'
environments, the broker and the Hub API. Every attempt must fail; A's own notebook
must stay readable and writable.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import aiohttp
import pytest

from devstack.command_client import CommandClient, JupyterFiles, notebook_with
from devstack.stack import LocalStack
from schemas.workspaces import workspace_name
from tests.conftest import TEST_APP

PATH = "private/work.ipynb"

# AMQP 0-9-1 login by hand (the kernel has no AMQP client): "logged in" on
# Connection.Tune, an exception when the broker refuses or hangs up.
AMQP_LOGIN = r"""
import socket, struct

def amqp_login(port, user, password):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"AMQP\x00\x00\x09\x01")

    def read(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker hung up")
            data += chunk
        return data

    def method():
        _kind, _channel, size = struct.unpack(">BHI", read(7))
        return struct.unpack(">HH", read(size + 1)[:4])

    assert method() == (10, 10)  # Connection.Start
    secret = b"\0" + user.encode() + b"\0" + password.encode()
    args = b"\0\0\0\0" + b"\x05PLAIN" + struct.pack(">I", len(secret)) + secret + b"\x05en_US"
    payload = struct.pack(">HH", 10, 11) + args  # Connection.StartOk
    sock.sendall(struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce")
    answer = method()
    sock.close()
    if answer != (10, 30):  # Connection.Tune
        raise PermissionError(f"refused with method {answer}")
    return "logged in"
"""

ATTACK = r"""
import json, os, urllib.request, urllib.error, base64, pwd
results = {"uid": os.getuid(), "user": pwd.getpwuid(os.getuid()).pw_name}

def attempt(name, action):
    try:
        value = action()
        results[name] = "GOT " + str(value)[:200]
    except Exception as exc:
        results[name] = "refused: " + type(exc).__name__

attempt("read_other_notebook", lambda: open(TARGETS["other_notebook"]).read())
attempt("list_other_home", lambda: os.listdir(TARGETS["other_home"]))
attempt("read_orchestrator_db", lambda: open(TARGETS["database"], "rb").read(16))
attempt("read_hub_config", lambda: open(TARGETS["hub_config"]).read())
attempt("read_broker_config", lambda: open(TARGETS["broker_config"]).read())
def environ(pid):
    return open(f"/proc/{pid}/environ", "rb").read()
attempt("read_gateway_environ", lambda: environ(TARGETS["gateway_pid"]))
attempt("read_hub_environ", lambda: environ(TARGETS["hub_pid"]))

def management(user, password):
    request = urllib.request.Request(TARGETS["management"] + "/api/overview")
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", "Basic " + pair)
    return urllib.request.urlopen(request, timeout=5).status
attempt("broker_as_guest", lambda: management("guest", "guest"))
attempt("amqp_as_guest", lambda: amqp_login(TARGETS["amqp_port"], "guest", "guest"))
attempt("amqp_guessing", lambda: amqp_login(TARGETS["amqp_port"], "orchestrator", "orchestrator"))
attempt("broker_as_orchestrator_guessing", lambda: management("orchestrator", "orchestrator"))
def scrape_metrics():
    import ssl
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    url = TARGETS["metrics"] + "/metrics"
    return urllib.request.urlopen(url, timeout=5, context=unverified).status
attempt("scrape_broker_metrics", scrape_metrics)
attempt("read_metrics_client_key", lambda: open(TARGETS["metrics_client_key"]).read())

secrets_in_env = sorted(k for k in os.environ if k.startswith("ORCH_") and k != "ORCH_NOTIFY_URL")
results["orchestrator_settings_in_env"] = secrets_in_env

def hub(method, path):
    request = urllib.request.Request(os.environ["JUPYTERHUB_API_URL"] + path, method=method)
    request.add_header("Authorization", "token " + os.environ["JUPYTERHUB_API_TOKEN"])
    return urllib.request.urlopen(request, timeout=5).status
attempt("hub_list_users", lambda: hub("GET", "/users"))
attempt("hub_start_other_server", lambda: hub("POST", f"/users/{TARGETS['other_hub_user']}/server"))
attempt("hub_token_for_other", lambda: hub("POST", f"/users/{TARGETS['other_hub_user']}/tokens"))

own = TARGETS["own_notebook"]
results["read_own_notebook"] = "marker-a" in open(own).read()
with open(own + ".copy", "w") as f:
    f.write("mine")
results["write_own_file"] = open(own + ".copy").read() == "mine"
print("RESULTS" + json.dumps(results))
"""


async def _execute(http: aiohttp.ClientSession, stack: LocalStack, hub_user: str, code: str) -> str:
    """Run ``code`` in a new kernel of ``hub_user``'s server; return what it printed."""
    auth = {"Authorization": f"token {stack.service_token}"}
    base = f"{stack.hub.url}/user/{hub_user}/api/kernels"
    async with http.post(base, json={"name": "python3"}, headers=auth) as resp:
        assert resp.status == 201, await resp.text()
        kernel_id = (await resp.json())["id"]
    msg_id = uuid.uuid4().hex
    request = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "attacker",
            "session": uuid.uuid4().hex,
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False},
        "channel": "shell",
    }
    printed: list[str] = []
    ws_url = base.replace("http://", "ws://") + f"/{kernel_id}/channels"
    async with http.ws_connect(ws_url, headers=auth, timeout=aiohttp.ClientWSTimeout(120)) as ws:
        await ws.send_str(json.dumps(request))
        async for frame in ws:  # until the kernel answers our request
            message: dict[str, Any] = json.loads(frame.data)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["header"]["msg_type"]
            if kind == "stream":
                printed.append(message["content"]["text"])
            elif kind == "error":
                printed.append("\n".join(message["content"]["traceback"]))
            elif kind == "execute_reply":
                break
    async with http.delete(f"{base}/{kernel_id}", headers=auth):
        pass
    return "".join(printed)


async def test_attacker_code_in_a_kernel_reaches_only_its_own_files(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    if not stack.isolated:
        pytest.skip("single-user servers run as one account (not root): nothing to confine")
    app = CommandClient(http, stack.gateway_url, app_key)
    files = JupyterFiles(http, stack.hub.url, stack.service_token, app=TEST_APP)
    a, b = f"ka{uuid.uuid4().hex[:8]}", f"kb{uuid.uuid4().hex[:8]}"
    for person, marker in ((a, "marker-a"), (b, "marker-b")):
        await app.succeed({"type": "open", "user": person, "path": PATH})
        await files.write(person, PATH, notebook_with(marker))
    assert stack.accounts is not None and stack.gateway is not None
    homes = stack.accounts.homes_root
    hub_a, hub_b = workspace_name(TEST_APP, a), workspace_name(TEST_APP, b)
    targets = {
        "other_notebook": str(homes / hub_b / PATH),
        "other_home": str(homes / hub_b),
        "own_notebook": str(homes / hub_a / PATH),
        "database": str(stack.state_dir / "orchestrator.db"),
        "hub_config": str(stack.hub.config_path),
        "broker_config": str(stack.broker.base_dir / "rabbitmq.conf"),
        "gateway_pid": stack.gateway.pid,
        "hub_pid": stack.hub.pid,
        "management": stack.broker.management_url,
        "metrics": stack.broker.prometheus_url,
        "metrics_client_key": str(stack.broker.metrics_tls.client_key),
        "amqp_port": stack.broker.amqp_port,
        "other_hub_user": hub_b,
    }
    printed = await _execute(http, stack, hub_a, f"TARGETS = {targets!r}\n{AMQP_LOGIN}{ATTACK}")
    assert "RESULTS" in printed, printed
    results = json.loads(printed.split("RESULTS", 1)[1])
    print(json.dumps(results, indent=1))

    assert results["uid"] != os.getuid() and results["user"] == hub_a
    refused = [
        "read_other_notebook",
        "list_other_home",
        "read_orchestrator_db",
        "read_hub_config",
        "read_broker_config",
        "read_gateway_environ",
        "read_hub_environ",
        "broker_as_guest",
        "broker_as_orchestrator_guessing",
        "amqp_as_guest",
        "amqp_guessing",
        "scrape_broker_metrics",
        "read_metrics_client_key",
        "hub_list_users",
        "hub_start_other_server",
        "hub_token_for_other",
    ]
    assert {name: results[name] for name in refused} == {
        name: results[name] for name in refused if results[name].startswith("refused")
    }
    assert results["orchestrator_settings_in_env"] == []
    assert results["read_own_notebook"] is True and results["write_own_file"] is True
    # the same login with the broker's real credentials succeeds: the probe can tell
    login: dict[str, Any] = {}
    exec(AMQP_LOGIN, login)
    broker = stack.broker
    assert login["amqp_login"](broker.amqp_port, broker.user, broker.password) == "logged in"
