"""Contracts: checked-in JSON Schemas match the models; the AsyncAPI document is valid.

The AsyncAPI document is validated against the official AsyncAPI 3.0.0 JSON Schema,
as shipped by the AsyncAPI initiative's ``@asyncapi/specs`` package (npm; installed
once into ``.cache/``, like the Hub's proxy). The Python packages on PyPI that model
AsyncAPI disagree with the specification (e.g. on AMQP bindings), so they are not used.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from schemas import export
from schemas import topology as t
from schemas.commands import CommandType
from schemas.events import EventKind, NotebookSaved, SaveOrigin, event_type, make_event

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI_DOC = ROOT / "docs" / "asyncapi.yaml"
SPECS_PACKAGE = "@asyncapi/specs@6.11.1"
SPECS_PREFIX = ROOT / ".cache" / "asyncapi-specs"


def official_asyncapi_schema(version: str) -> dict[str, Any]:
    """The official JSON Schema of AsyncAPI ``version`` (npm install on first use)."""
    path = SPECS_PREFIX / "node_modules" / "@asyncapi" / "specs" / "schemas" / f"{version}.json"
    if not path.exists():
        SPECS_PREFIX.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(SPECS_PREFIX),
                SPECS_PACKAGE,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0 and path.exists(), done.stdout + done.stderr
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def asyncapi_errors(document: dict[str, Any]) -> list[str]:
    """Every violation of the official schema, with where it is."""
    validator = jsonschema.Draft7Validator(official_asyncapi_schema(document["asyncapi"]))
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)]


def load_asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(ASYNCAPI_DOC.read_text())
    return document


def refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` value in a YAML/JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_checked_in_json_schemas_match_the_models() -> None:
    assert export.drift() == []
    done = subprocess.run(
        [sys.executable, "-m", "schemas.export", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def test_the_check_names_drifted_missing_and_stale_files(tmp_path: Path) -> None:
    export.write(tmp_path)
    assert export.drift(tmp_path) == []
    saved = tmp_path / "events" / "notebook.saved.v1.json"
    saved.write_text(saved.read_text().replace('"sha256"', '"sha"'))
    (tmp_path / "events" / "notebook.deleted.v1.json").unlink()
    (tmp_path / "events" / "notebook.exploded.v1.json").write_text("{}\n")
    assert export.drift(tmp_path) == [
        "missing: events/notebook.deleted.v1.json",
        "differs from the models: events/notebook.saved.v1.json",
        "stale (no model): events/notebook.exploded.v1.json",
    ]


def test_event_schema_accepts_a_real_envelope_and_only_its_own_type() -> None:
    data = NotebookSaved(
        user="ann",
        path="a.ipynb",
        version_id=uuid.uuid4(),
        sha256="0" * 64,
        size=10,
        origin=SaveOrigin.JUPYTER,
        saved_at=datetime.now(UTC),
    )
    event = json.loads(
        make_event(EventKind.NOTEBOOK_SAVED, data, subject="ann/a.ipynb").model_dump_json()
    )
    name = export.event_schema_name(event["type"])
    assert name == "events/notebook.saved.v1.json"
    validator = jsonschema.Draft202012Validator(export.load_schema(name))
    validator.validate(event)
    wrong = {**event, "type": event_type(EventKind.NOTEBOOK_DELETED)}
    assert not validator.is_valid(wrong)
    assert not validator.is_valid({**event, "data": {**event["data"], "origin": "elsewhere"}})


def test_asyncapi_document_is_valid_against_the_official_schema() -> None:
    assert asyncapi_errors(load_asyncapi()) == []


def test_the_asyncapi_validation_rejects_a_broken_document() -> None:
    broken = copy.deepcopy(load_asyncapi())
    broken["operations"]["acceptCommand"]["action"] = "publish"  # AsyncAPI 2 wording
    del broken["channels"]["deadLetters"]["bindings"]["amqp"]["queue"]["durable"]
    broken["channels"]["deadLetters"]["bindings"]["amqp"]["is"] = "exchange"
    errors = asyncapi_errors(broken)
    assert any("acceptCommand" in e for e in errors)
    assert any("deadLetters" in e for e in errors)


def test_asyncapi_refs_resolve_and_every_event_and_contract_is_documented() -> None:
    document = load_asyncapi()
    files = set()
    for ref in refs(document):
        if ref.startswith("#/"):
            node: Any = document
            for part in ref[2:].split("/"):
                assert isinstance(node, dict) and part in node, f"dangling {ref}"
                node = node[part]
        else:
            target = (ASYNCAPI_DOC.parent / ref).resolve()
            assert target.exists(), f"missing schema file {ref}"
            files.add(target.relative_to(export.SCHEMA_DIR).as_posix())
    assert {f"events/{kind.value}.v1.json" for kind in EventKind} <= files
    assert {
        "commands/command-message.json",
        "notifications/contents-notification-message.json",
    } <= files
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {"orch.commands", "orch.commands.p{partition}", "orch.dead-letters"} <= addresses
    assert {"notebook.saved", "notebook.renamed", "notebook.deleted"} <= addresses


def test_asyncapi_agrees_with_the_topology_module() -> None:
    channels = load_asyncapi()["channels"]
    assert channels["commands"]["address"] == t.COMMANDS_EXCHANGE
    assert channels["deadLetters"]["address"] == t.DEAD_LETTER_QUEUE
    assert channels["retry"]["parameters"]["delay"]["enum"] == [
        str(d) for d in t.RETRY_DELAYS_SECONDS
    ]
    arguments = channels["partition"]["x-queue-arguments"]
    assert arguments["x-delivery-limit"] == t.COMMAND_DELIVERY_LIMIT
    assert arguments["x-dead-letter-exchange"] == t.DEAD_LETTER_EXCHANGE
    assert t.partition_queue(0) == channels["partition"]["address"].format(partition=0)
    assert t.retry_queue(2) == channels["retry"]["address"].format(delay=2)
    parameters = load_asyncapi()["components"]["parameters"]
    assert parameters["commandType"]["enum"] == [c.value for c in CommandType]


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_event_kind_has_a_schema_with_a_constant_type(kind: EventKind) -> None:
    schema = export.load_schema(f"events/{kind.value}.v1.json")
    assert schema["properties"]["type"]["const"] == event_type(kind)
    assert "data" in schema["required"]
