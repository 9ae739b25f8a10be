"""Load and audits for the reliability scenarios (``bench/reliability``, the tests).

:class:`CommandLoad` sends commands to the gateway at a fixed rate (open loop: a slow
gateway does not slow the sender down, it piles up requests in flight, up to a cap)
and records every answer. The audits then check what must hold afterwards against the
database: every accepted command reached a final state, no save made two versions.
Everything is bounded: a load runs for a given time, a wait has a deadline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from sqlmodel import col, select

from runtime.db.engine import make_engine, make_sessionmaker
from runtime.db.models import CommandRecord, CommandStatus, NotebookVersion

RELIABILITY_APP = "reliability"  # the app whose key the scenarios send commands with

_Row = TypeVar("_Row", CommandRecord, NotebookVersion)

NO_ANSWER = 0  # status recorded when the gateway gave no HTTP answer at all
CommandFactory = Callable[[int], dict[str, Any]]


@dataclass(frozen=True)
class Answer:
    """One command request: monotonic send/answer times, HTTP status and command id (202)."""

    sent_at: float
    answered_at: float
    status: int
    command_id: str | None
    command: dict[str, Any]
    error: str | None = None


@dataclass
class LoadReport:
    """Everything one :class:`CommandLoad` run sent and got back."""

    rate: float
    started_at: float
    ended_at: float = 0.0
    answers: list[Answer] = field(default_factory=list)
    skipped: int = 0  # sends not made because ``max_in_flight`` requests were pending
    rerouted: int = 0  # requests sent to another gateway after one refused the connection

    @property
    def accepted_ids(self) -> list[str]:
        """Ids of the commands the gateway answered 202 for."""
        return [a.command_id for a in self.answers if a.status == 202 and a.command_id]

    def status_counts(self) -> dict[int, int]:
        """How many answers had each HTTP status (``0``: no answer)."""
        return dict(sorted(Counter(a.status for a in self.answers).items()))

    def sent_between(self, start: float, end: float) -> list[Answer]:
        """Answers to requests sent within ``[start, end]`` (monotonic), whenever answered."""
        return [a for a in self.answers if start <= a.sent_at <= end]

    def achieved_rate(self) -> float:
        """Requests sent per second over the run."""
        seconds = max(self.ended_at - self.started_at, 1e-9)
        return len(self.answers) / seconds

    def latency_quantile(self, q: float, *, status: int = 202) -> float | None:
        """Quantile ``q`` of the answer latency (seconds) of requests with ``status``."""
        latencies = sorted(a.answered_at - a.sent_at for a in self.answers if a.status == status)
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]


class CommandLoad:
    """Sends ``commands(i)`` to ``POST /v1/commands`` at ``rate`` per second.

    Open loop: request ``i`` is due at ``start + i / rate`` whatever happened to the
    earlier ones. At most ``max_in_flight`` requests are pending; a due request beyond
    that is not sent and counted in :attr:`LoadReport.skipped`.

    Given several gateways, request ``i`` goes to gateway ``i mod n``; a gateway that
    refuses the connection (its process is gone) is skipped for the next one, as a
    load balancer's health check would (counted in :attr:`LoadReport.rerouted`).
    """

    def __init__(
        self,
        gateway_url: str | Sequence[str],
        app_key: str,
        commands: CommandFactory,
        *,
        rate: float,
        max_in_flight: int = 500,
        request_timeout: float = 30.0,
    ) -> None:
        self._urls = [u.rstrip("/") + "/v1/commands" for u in _as_list(gateway_url)]
        self._headers = {"Authorization": f"Bearer {app_key}"}
        self._commands = commands
        self._rate = rate
        self._max_in_flight = max_in_flight
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)

    async def run(self, seconds: float, stop: asyncio.Event | None = None) -> LoadReport:
        """Send for ``seconds`` (or until ``stop`` is set), then wait for pending answers."""
        report = LoadReport(rate=self._rate, started_at=time.monotonic())
        pending: set[asyncio.Task[None]] = set()
        connector = aiohttp.TCPConnector(limit=self._max_in_flight)
        async with aiohttp.ClientSession(timeout=self._timeout, connector=connector) as http:
            index = 0
            end = report.started_at + seconds
            while (stop is None or not stop.is_set()) and time.monotonic() < end:
                due = int((time.monotonic() - report.started_at) * self._rate) + 1
                while index < due:
                    if len(pending) >= self._max_in_flight:
                        report.skipped += 1
                    else:
                        task = asyncio.create_task(self._send(http, index, report))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                    index += 1
                # Pacing of an open-loop generator: wake when the next request is due.
                next_due = report.started_at + index / self._rate
                await asyncio.sleep(max(0.0, min(next_due, end) - time.monotonic()))
            if pending:
                await asyncio.wait(pending)
        report.ended_at = time.monotonic()
        return report

    async def _send(self, http: aiohttp.ClientSession, index: int, report: LoadReport) -> None:
        command = self._commands(index)
        sent = time.monotonic()
        status, command_id, error = NO_ANSWER, None, None
        for turn in range(len(self._urls)):
            url = self._urls[(index + turn) % len(self._urls)]
            try:
                async with http.post(url, json=command, headers=self._headers) as response:
                    status = response.status
                    body = await response.json(content_type=None)
                    if status == 202 and isinstance(body, dict):
                        command_id = str(body.get("id"))
                    elif status >= 500 and status != 503:
                        error = f"{status}: {body}"[:200]
                break
            except aiohttp.ClientConnectorError as exc:
                error = f"{type(exc).__name__}: {exc}"[:200]
                report.rerouted += 1  # nothing was sent: the next gateway gets it
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:200]
                break
        else:
            report.rerouted -= 1  # the last gateway refused too: no reroute happened
        report.answers.append(Answer(sent, time.monotonic(), status, command_id, command, error))


@dataclass(frozen=True)
class FinalStates:
    """Where the awaited commands ended up."""

    statuses: dict[str, str]  # command id -> status (``missing`` if not in the database)
    seconds: float  # how long it took until all were final (or the deadline)

    def unfinished(self) -> list[str]:
        """Ids not in a final state (``missing`` counts as unfinished: lost)."""
        return [i for i, s in self.statuses.items() if s == "missing" or not _is_final(s)]

    def counts(self) -> dict[str, int]:
        """How many commands are in each status."""
        return dict(sorted(Counter(self.statuses.values()).items()))


def _is_final(status: str) -> bool:
    return status in CommandStatus.__members__.values() and CommandStatus(status).is_final


async def rows_where_in(
    database_url: str, model: type[_Row], column: Any, ids: Collection[str]
) -> list[_Row]:
    """Rows of ``model`` whose ``column`` is one of ``ids`` (UUID strings), read straight
    from the orchestrator's database, 500 ids per query."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    wanted = [uuid.UUID(i) for i in ids]
    found: list[_Row] = []
    try:
        async with sessions() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                found.extend(
                    (await session.exec(select(model).where(col(column).in_(chunk)))).all()
                )
    finally:
        await engine.dispose()
    return found


async def command_records(database_url: str, ids: Collection[str]) -> dict[str, CommandRecord]:
    """The command rows with these ids, read straight from the orchestrator's database."""
    rows = await rows_where_in(database_url, CommandRecord, CommandRecord.id, ids)
    return {str(r.id): r for r in rows}


async def wait_until_final(
    database_url: str,
    ids: Iterable[str],
    *,
    within: float,
    stalled_after: float = 60.0,
    poll: float = 0.5,
) -> FinalStates:
    """Wait until every command in ``ids`` is final; report the states.

    Gives up after ``within`` s, or once no command became final for ``stalled_after``
    s (a stuck pipeline need not cost the whole budget). The database is polled: it
    offers no change event.
    """
    wanted = list(dict.fromkeys(ids))
    started = progressed = time.monotonic()
    statuses: dict[str, str] = {}
    while True:
        open_ids = [i for i in wanted if not _is_final(statuses.get(i, "missing"))]
        records = await command_records(database_url, open_ids)
        for command_id in open_ids:
            record = records.get(command_id)
            statuses[command_id] = record.status if record is not None else "missing"
            if _is_final(statuses[command_id]):
                progressed = time.monotonic()
        now = time.monotonic()
        done = all(_is_final(statuses[i]) for i in wanted)
        if done or now - started > within or now - progressed > stalled_after:
            return FinalStates(statuses, now - started)
        await asyncio.sleep(poll)


@dataclass(frozen=True)
class VersionAudit:
    """Versions made by commands: a save may make at most one version."""

    versions: int  # versions written by the audited commands
    commands_with_versions: int
    duplicated_commands: list[str]  # command ids that made more than one version


async def audit_versions(database_url: str, command_ids: Collection[str]) -> VersionAudit:
    """Count the notebook versions each of ``command_ids`` wrote."""
    versions = await rows_where_in(
        database_url, NotebookVersion, NotebookVersion.command_id, command_ids
    )
    per_command = Counter(str(v.command_id) for v in versions)
    return VersionAudit(
        versions=sum(per_command.values()),
        commands_with_versions=len(per_command),
        duplicated_commands=sorted(c for c, n in per_command.items() if n > 1),
    )


def created_twice(records: Iterable[CommandRecord]) -> list[str]:
    """Users that more than one succeeded ``ensure-user`` reports as created (applied twice)."""
    created = Counter(
        r.user
        for r in records
        if r.type == "ensure-user" and r.result is not None and r.result.get("created") is True
    )
    return sorted(user for user, n in created.items() if n > 1)


def _as_list(gateway_url: str | Sequence[str]) -> list[str]:
    return [gateway_url] if isinstance(gateway_url, str) else list(gateway_url)


async def submit_command(
    http: aiohttp.ClientSession,
    gateway_url: str | Sequence[str],
    app_key: str,
    command: dict[str, Any],
    *,
    unavailable_for: float = 0.0,
) -> tuple[dict[str, Any], int]:
    """Send ``command`` until a gateway accepts it; its status view and the resubmits.

    As a client app would: with an ``Idempotency-Key``, an answer 503 (the bus is
    failing over), a refused connection or no answer at all (that gateway is gone,
    perhaps after recording the command) is sent again, to the next gateway, for up to
    ``unavailable_for`` s; the key makes a repeat return the command already recorded.
    Raises ``RuntimeError`` for any other answer, or when no gateway accepted in time.
    """
    headers = {"Authorization": f"Bearer {app_key}", "Idempotency-Key": str(uuid.uuid4())}
    bases = [u.rstrip("/") for u in _as_list(gateway_url)]
    deadline = time.monotonic() + unavailable_for
    resubmits = 0
    while True:
        base = bases[resubmits % len(bases)]
        problem: str
        try:
            async with http.post(f"{base}/v1/commands", json=command, headers=headers) as r:
                if r.status in (200, 202):  # 200: recorded before, by an earlier try
                    return await r.json(), resubmits
                problem = f"{r.status} {await r.text()}"
                if r.status != 503:
                    raise RuntimeError(f"command not accepted: {problem}")
        except aiohttp.ClientError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise RuntimeError(f"command not accepted: {problem}")
        resubmits += 1
        await asyncio.sleep(0.2)  # the gateway's bus or process is failing over


async def run_command(
    http: aiohttp.ClientSession,
    gateway_url: str | Sequence[str],
    app_key: str,
    command: dict[str, Any],
    *,
    within: float,
    unavailable_for: float = 0.0,
) -> dict[str, Any]:
    """Send ``command`` (:func:`submit_command`) and long-poll its status until it is
    final or ``within`` s passed; polls go round the gateways while one is unavailable.

    Returns the last status view (``status`` may still be non-final after ``within``),
    with ``resubmits``: how many times it was sent again before being accepted.
    """
    headers = {"Authorization": f"Bearer {app_key}"}
    bases = [u.rstrip("/") for u in _as_list(gateway_url)]
    view, resubmits = await submit_command(
        http, bases, app_key, command, unavailable_for=unavailable_for
    )
    deadline = time.monotonic() + within
    polls = 0
    while not _is_final(view["status"]) and time.monotonic() < deadline:
        wait = max(1, min(30, int(deadline - time.monotonic())))
        url = f"{bases[polls % len(bases)]}/v1/commands/{view['id']}?wait={wait}"
        try:
            async with http.get(url, headers=headers) as response:
                if response.status == 200:
                    view = await response.json()
                    continue
        except (aiohttp.ClientError, TimeoutError):
            pass
        polls += 1
        await asyncio.sleep(0.5)  # the gateway is briefly unavailable: ask again
    return {**view, "resubmits": resubmits}
