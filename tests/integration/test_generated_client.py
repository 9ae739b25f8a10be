"""A client generated from the served OpenAPI document works for every command.

openapi-python-client (the dev dependency, run as apps would run it) turns the
document the real gateway serves at ``/openapi.json`` into a Python package, with
``--fail-on-warning``: a schema it cannot turn into a model fails the test. Through
that package's own api functions and models, against the shared stack (Hub and
consumers included), every command type is sent and followed by status long-polls
(``?wait=``) until it ends: each answer parses into the generated ``CommandView``,
its ``result`` into the result model of the command's type, a failure's ``error``
into ``CommandError``; every raw answer also validates against the document, whose
result models are closed, so a handler whose result drifts from the document fails here.

The generator reads the document from a file and needs no network; it runs with
proxies pointing nowhere, so a version that tried to download something would fail
at once and say so, instead of hanging.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import httpx
import pytest
from jsonschema import Draft202012Validator

from devstack.stack import LocalStack
from schemas import commands as c

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "generated_gateway_client"  # a name nothing else in the test session imports
GENERATE_TIMEOUT = 120.0
WAIT_SECONDS = 30.0  # the ?wait= of each status long-poll (the gateway's default maximum)
FINAL_TIMEOUT = 240.0  # a command not final after this long fails the test
NO_NETWORK = "http://127.0.0.1:9"  # the discard port: nothing answers a proxy request there
COMMAND_MODELS = c.COMMAND_MODELS


@dataclass(frozen=True)
class Generated:
    """The generated package's parts the tests use, and the document it came from."""

    models: ModuleType
    client: ModuleType
    accept_command: ModuleType
    get_command: ModuleType
    document: dict[str, Any]


def _generate(document: Path, output: Path) -> None:
    """Run openapi-python-client on ``document`` into the package directory ``output``."""
    config = output.parent / "generator.yaml"
    config.write_text("post_hooks: []\n")  # no ruff formatting of the generated code
    env = {**os.environ, "HTTP_PROXY": NO_NETWORK, "HTTPS_PROXY": NO_NETWORK}
    env.update(http_proxy=NO_NETWORK, https_proxy=NO_NETWORK, NO_PROXY="", no_proxy="")
    command = [
        str(GENERATOR),
        "generate",
        "--path",
        str(document),
        "--output-path",
        str(output),
        "--meta",
        "none",
        "--config",
        str(config),
        "--fail-on-warning",
    ]
    try:
        run = subprocess.run(
            command,
            cwd=output.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=GENERATE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"openapi-python-client did not finish within {GENERATE_TIMEOUT:g}s; it reads "
            "the document from a file and should need no network (proxies point nowhere)"
        )
    if run.returncode != 0:
        pytest.fail(
            f"openapi-python-client failed (exit {run.returncode}); warnings fail the run, "
            "and it must need no network (proxies point nowhere, so a download attempt "
            f"fails here):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
        )


@pytest.fixture(scope="module")
def generated(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    """The client package generated from the served document, imported; removed from
    ``sys.modules`` and ``sys.path`` afterwards."""
    root = tmp_path_factory.mktemp("generated-client")
    answer = httpx.get(f"{stack.gateway_url}/openapi.json", timeout=30)
    answer.raise_for_status()
    (root / "openapi.json").write_bytes(answer.content)
    _generate(root / "openapi.json", root / PACKAGE)
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield Generated(
            models=importlib.import_module(f"{PACKAGE}.models"),
            client=importlib.import_module(f"{PACKAGE}.client"),
            accept_command=importlib.import_module(f"{PACKAGE}.api.default.accept_command"),
            get_command=importlib.import_module(f"{PACKAGE}.api.default.get_command"),
            document=answer.json(),
        )
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture
def client(generated: Generated, stack: LocalStack, app_key: str) -> Iterator[Any]:
    """The generated ``AuthenticatedClient`` of the app 'tests' (``Bearer`` key), long
    enough a timeout for a full long-poll, raising on any status the document omits."""
    authenticated = generated.client.AuthenticatedClient(
        base_url=stack.gateway_url,
        token=app_key,
        timeout=httpx.Timeout(WAIT_SECONDS + 30),
        raise_on_unexpected_status=True,
    )
    assert authenticated.prefix == "Bearer"
    with authenticated:
        yield authenticated


def _view_validator(document: dict[str, Any]) -> Draft202012Validator:
    """Validates a raw command answer against ``CommandView`` of ``document``."""
    schemas = document["components"]["schemas"]
    return Draft202012Validator({**schemas["CommandView"], "components": {"schemas": schemas}})


def _final(generated: Generated, client: Any, body: Any) -> Any:
    """Send ``body`` (a generated command model) with the generated ``acceptCommand``,
    then long-poll the generated ``getCommand`` until the command is final.

    Every answer must be documented, parse into the generated ``CommandView`` and
    validate, raw, against the document. Returns the final view.
    """
    models, check = generated.models, _view_validator(generated.document)
    accepted = generated.accept_command.sync_detailed(client=client, body=body)
    assert accepted.status_code == 202, accepted.content
    check.validate(json.loads(accepted.content))
    view = accepted.parsed
    assert isinstance(view, models.CommandView), accepted.content
    assert view.type_.value == body.type_ and view.user == body.user
    deadline = time.monotonic() + FINAL_TIMEOUT
    unfinished = (models.CommandStatus.ACCEPTED, models.CommandStatus.RUNNING)
    while view.status in unfinished:
        assert time.monotonic() < deadline, f"{body.type_} not final after {FINAL_TIMEOUT:g}s"
        polled = generated.get_command.sync_detailed(view.id, client=client, wait=WAIT_SECONDS)
        assert polled.status_code == 200, polled.content
        check.validate(json.loads(polled.content))
        view = polled.parsed
        assert isinstance(view, models.CommandView), polled.content
    return view


def _result(generated: Generated, client: Any, body: Any, model: str) -> Any:
    """The typed result of ``body``, which must succeed with a result of ``model``."""
    view = _final(generated, client, body)
    assert view.status == generated.models.CommandStatus.SUCCEEDED, view.error
    assert view.error is None
    assert isinstance(view.result, getattr(generated.models, model)), view.result
    return view.result


def test_generated_command_models_keep_type_and_user(generated: Generated) -> None:
    for command in COMMAND_MODELS:
        model = getattr(generated.models, command.__name__)
        fields = attrs.fields_dict(model)
        assert {"type_", "user"} <= set(fields), (command.__name__, sorted(fields))
        assert fields["type_"].default == command.model_fields["type"].default.value
        wanted = set(command.model_fields) - {"type"}
        assert wanted <= set(fields), (command.__name__, sorted(fields))
    create = generated.models.CreateNotebook(user="alice", folder="work")
    assert create.to_dict() == {"type": "create", "user": "alice", "folder": "work"}


def test_every_command_type_through_the_generated_client(
    generated: Generated, client: Any, username: str
) -> None:
    m = generated.models
    path = "generated/opened.ipynb"

    opened = _result(
        generated, client, m.OpenNotebook(user=username, path=path), "OpenNotebookResult"
    )
    assert opened.path == path and opened.launch_url.startswith("http")
    assert opened.restored_version_id is None  # nothing was stored: created empty

    created = _result(
        generated,
        client,
        m.CreateNotebook(user=username, path="generated/nested/created.ipynb"),
        "CreateNotebookResult",
    )
    assert created.path == "generated/nested/created.ipynb" and created.created is True
    untitled = _result(
        generated,
        client,
        m.CreateNotebook(user=username, folder="generated/untitled"),
        "CreateNotebookResult",
    )
    assert untitled.path.startswith("generated/untitled/") and untitled.created is True

    saved = _result(
        generated, client, m.SaveNotebook(user=username, path=path), "SaveNotebookResult"
    )
    assert saved.path == path and isinstance(saved.version_id, uuid.UUID)
    assert len(saved.sha256) == 64 and saved.size > 0 and isinstance(saved.new_version, bool)

    restored = _result(
        generated,
        client,
        m.RestoreNotebook(user=username, path=path, version_id=saved.version_id),
        "RestoreNotebookResult",
    )
    assert restored.version_id == saved.version_id and restored.sha256 == saved.sha256
    assert isinstance(restored.latest_version_id, uuid.UUID)

    ensured = _result(generated, client, m.EnsureUser(user=username), "EnsureUserResult")
    assert ensured.user == username and ensured.created is False  # open made it
    started = _result(generated, client, m.StartServer(user=username), "StartServerResult")
    assert started.user == username and started.server_url.startswith("http")
    stopped = _result(generated, client, m.StopServer(user=username), "StopServerResult")
    assert stopped.stopped is True and stopped.was_running is True


def test_a_failed_command_has_a_typed_error(
    generated: Generated, client: Any, username: str
) -> None:
    m = generated.models
    unknown = uuid.uuid4()
    body = m.RestoreNotebook(user=username, path="generated/x.ipynb", version_id=unknown)
    view = _final(generated, client, body)
    assert view.status == m.CommandStatus.FAILED and view.result is None
    assert isinstance(view.error, m.CommandError)
    assert view.error.code == "not_found" and str(unknown) in view.error.message


def test_a_malformed_command_id_is_422_as_documented(generated: Generated, client: Any) -> None:
    operation = generated.document["paths"]["/v1/commands/{command_id}"]["get"]
    assert "422" in operation["responses"]
    answer = client.get_httpx_client().get("/v1/commands/not-a-uuid")
    assert answer.status_code == 422, answer.text
    error = generated.models.ErrorBody.from_dict(answer.json()).error
    assert error.code == "invalid_parameter"
    assert [d.field for d in error.details] == ["command_id"]
