"""Scenario 5: bad input at both doors. Generated and hand-made hostile HTTP requests
at the gateway; poison messages published straight onto the command partitions."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp

from devstack.reliability.fuzzing import HOSTILE_REQUESTS, fuzz_openapi, send_hostile
from devstack.reliability.load import run_command
from devstack.reliability.probes import RawMessage, publish_raw, take_dead_letters
from devstack.reliability.result import ScenarioResult
from devstack.stack import LocalStack
from schemas import topology as t

# Hand-made statuses the gateway must answer (beyond "not 5xx").
EXPECTED_STATUSES = {
    "truncated JSON": 400,
    "invalid UTF-8": 400,
    "2 MiB body": 413,
    "text/plain body": 415,
    "no auth": 401,
    "unknown type": 422,
    "hostile user 0": 422,
    "hostile path 0": 422,
}


def poison_messages(command_user: str) -> list[RawMessage]:
    """Messages no consumer can perform: undecodable, schema-invalid, unknown command id,
    an undecodable contents notification. Each has a unique ``message_id``."""
    valid_but_unknown = {
        "id": str(uuid.uuid4()),
        "app": "reliability",
        "correlation_id": "poison",
        "accepted_at": "2026-01-01T00:00:00Z",
        "command": {"type": "ensure-user", "user": command_user},
    }
    bodies: list[tuple[bytes, dict[str, object]]] = [
        (b"not json at all", {}),
        (b"", {}),
        (b"\xff\xfe\x00garbage", {}),
        (json.dumps({"id": "x"}).encode(), {}),
        (json.dumps({**valid_but_unknown, "command": {"type": "format-disk"}}).encode(), {}),
        (json.dumps(valid_but_unknown).encode(), {}),
        (b"[" * 50_000 + b"]" * 50_000, {}),
        (bytes(range(256)) * 256, {t.HEADER_ATTEMPT: "not a number"}),
        (b"{not json", {t.HEADER_KIND: t.KIND_NOTIFICATION}),
        (json.dumps({"user": "../../root"}).encode(), {t.HEADER_KIND: t.KIND_NOTIFICATION}),
    ]
    return [
        RawMessage(body, message_id=f"poison-{i}-{uuid.uuid4().hex[:8]}", headers=headers)
        for i, (body, headers) in enumerate(bodies)
    ]


def _crashed(stack: LocalStack) -> list[str]:
    processes = [*stack.consumers, *([stack.gateway] if stack.gateway else [])]
    crashed = [p.describe_failure("not running") for p in processes if not p.is_running()]
    if not stack.hub.is_running():
        crashed.append("jupyterhub")
    if not stack.broker.process_ids():
        crashed.append("rabbitmq")
    return crashed


async def bad_input(
    stack: LocalStack, app_key: str, *, generated_requests: int, poison_rounds: int = 1
) -> ScenarioResult:
    """Scenario 5: at least ``generated_requests`` schemathesis requests, the hand-made
    hostile requests (both with a key allowed only ``ensure-user``), and
    ``poison_rounds`` x the poison messages on every partition.

    Holds when: no answer is 5xx (or missing); the hand-made cases get their expected
    4xx; every poison message lands in the dead-letter queue with a reason header;
    a valid command still succeeds afterwards; no process crashed.
    """
    result = ScenarioResult("5. bad input (HTTP and bus)")
    # Valid generated commands are accepted and performed: keep them to cheap ones.
    fuzz_key = await asyncio.to_thread(stack.issue_app_key, "fuzzer", types="ensure-user")
    fuzz = await asyncio.to_thread(fuzz_openapi, stack.gateway_url, fuzz_key, generated_requests)
    hostile, by_case = await send_hostile(stack.gateway_url, fuzz_key, HOSTILE_REQUESTS)

    partitions = t.Partitioning(stack.options.partitions).queues()
    poison = [m for _ in range(poison_rounds) for q in partitions for m in poison_messages("p")]
    per_queue = len(poison) // len(partitions)
    for index, queue in enumerate(partitions):
        await publish_raw(
            stack.broker.amqp_url, queue, poison[index * per_queue : (index + 1) * per_queue]
        )
    wanted = [m.message_id for m in poison]
    dead = await take_dead_letters(stack.broker.amqp_url, wanted, within=120)
    without_reason = [i for i, d in dead.items() if not d.headers.get(t.HEADER_DEAD_REASON)]
    reasons = sorted({str(d.headers.get(t.HEADER_DEAD_REASON))[:60] for d in dead.values()})

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        after = await run_command(
            http,
            stack.gateway_url,
            app_key,
            {"type": "ensure-user", "user": f"ok{uuid.uuid4().hex[:8]}"},
            within=60,
        )
    wrong = {
        name: (by_case.get(name), expected)
        for name, expected in EXPECTED_STATUSES.items()
        if by_case.get(name) != expected
    }
    result.figures.update(
        {
            "generated requests (schemathesis)": fuzz.requests,
            "generated answers by status": dict(sorted(fuzz.statuses.items())),
            "generated but not sendable": fuzz.not_sendable,
            "generation time (s)": round(fuzz.seconds, 1),
            "hand-made hostile requests": hostile.requests,
            "hand-made answers by status": dict(sorted(hostile.statuses.items())),
            "poison messages published": len(poison),
            "poison messages dead-lettered": len(dead),
            "dead-letter reasons": "; ".join(reasons),
        }
    )
    result.check(fuzz.requests >= generated_requests, f"only {fuzz.requests} generated requests")
    errors = fuzz.server_errors + hostile.server_errors
    result.check(fuzz.bad() + hostile.bad() == 0, f"5xx or no answer: {errors[:10]}")
    result.check(not wrong, f"hand-made cases with other statuses (got, expected): {wrong}")
    missing = sorted(set(wanted) - set(dead))
    result.check(not missing, f"{len(missing)} poison messages not dead-lettered: {missing[:5]}")
    result.check(not without_reason, f"dead letters without a reason: {without_reason[:5]}")
    result.check(after["status"] == "succeeded", f"a valid command afterwards: {after['status']}")
    crashed = _crashed(stack)
    result.check(not crashed, f"processes not running: {crashed}")
    return result
