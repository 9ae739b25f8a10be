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
from collections.abc import Callable, Collection, Iterable
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
    """

    def __init__(
        self,
        gateway_url: str,
        app_key: str,
        commands: CommandFactory,
        *,
        rate: float,
        max_in_flight: int = 500,
        request_timeout: float = 30.0,
    ) -> None:
        self._url = gateway_url.rstrip("/") + "/v1/commands"
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
        try:
            async with http.post(self._url, json=command, headers=self._headers) as response:
                status = response.status
                body = await response.json(content_type=None)
                if status == 202 and isinstance(body, dict):
                    command_id = str(body.get("id"))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
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


async def _rows_where_in(
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
    rows = await _rows_where_in(database_url, CommandRecord, CommandRecord.id, ids)
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
    versions = await _rows_where_in(
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


async def run_command(
    http: aiohttp.ClientSession,
    gateway_url: str,
    app_key: str,
    command: dict[str, Any],
    *,
    within: float,
) -> dict[str, Any]:
    """Send ``command`` and long-poll its status until it is final or ``within`` s passed.

    Returns the last status view (``status`` may still be non-final after ``within``);
    raises ``RuntimeError`` when the gateway does not accept the command.
    """
    headers = {"Authorization": f"Bearer {app_key}"}
    base = gateway_url.rstrip("/")
    async with http.post(f"{base}/v1/commands", json=command, headers=headers) as response:
        if response.status != 202:
            raise RuntimeError(f"command not accepted: {response.status} {await response.text()}")
        view: dict[str, Any] = await response.json()
    deadline = time.monotonic() + within
    while not _is_final(view["status"]) and time.monotonic() < deadline:
        wait = max(1, min(30, int(deadline - time.monotonic())))
        url = f"{base}/v1/commands/{view['id']}?wait={wait}"
        try:
            async with http.get(url, headers=headers) as response:
                if response.status == 200:
                    view = await response.json()
                    continue
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.5)  # the gateway is briefly unavailable: ask again
    return view
