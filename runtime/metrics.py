"""Prometheus metrics of every process, defined once.

Each process serves them on ``/metrics`` (the gateway and the hub service on their
own HTTP port, consumers on ``ORCH_METRICS_PORT``).
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SPAWN_BUCKETS = (0.5, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144)
_COMMAND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320)

COMMANDS_ACCEPTED = Counter(
    "orch_commands_accepted_total", "Commands accepted by the gateway (202)", ["type"]
)
COMMANDS_REJECTED = Counter(
    "orch_commands_rejected_total",
    "Commands refused by the gateway",
    ["reason"],
)
COMMANDS_FINISHED = Counter(
    "orch_commands_finished_total", "Commands that reached a final state", ["type", "status"]
)
COMMAND_RETRIES = Counter(
    "orch_command_retries_total",
    "Messages sent through a retry queue, by command type (or notification)",
    ["type"],
)
HUB_RETRIES = Counter(
    "orch_hub_call_retries_total", "In-process retries of Hub/contents calls", ["target"]
)
COMMANDS_REPUBLISHED = Counter(
    "orch_commands_republished_total",
    "Commands the relay published again: left accepted or running past the bound, their "
    "message possibly lost by the broker",
    ["type"],
)
OUTBOX_PUBLISHED = Counter(
    "orch_outbox_published_total",
    "Outbox messages confirmed by the broker, by who published them (commit: right after "
    "the outcome was committed; relay: left behind by a crash or a broker failure)",
    ["source"],
)
COMMAND_SECONDS = Histogram(
    "orch_command_seconds",
    "Run time of the attempt that finished a command (handler and commit), by outcome",
    ["type", "outcome"],
    buckets=_COMMAND_BUCKETS,
)
COMMAND_QUEUE_WAIT_SECONDS = Histogram(
    "orch_command_queue_wait_seconds",
    "From a command's acceptance to the start of the attempt that finished it (queue, "
    "earlier commands of the user, retries), by outcome",
    ["type", "outcome"],
    buckets=_COMMAND_BUCKETS,
)
COMMANDS_WAITING = Gauge(
    "orch_commands_waiting",
    "Commands accepted and untouched (not started, not retried) for longer than "
    "ORCH_WAITING_REPORT_SECONDS, as the relay last counted them",
)
OLDEST_WAITING_COMMAND_SECONDS = Gauge(
    "orch_oldest_waiting_command_seconds",
    "Age of the oldest such command (0 when none)",
)
HTTP_REQUEST_SECONDS = Histogram(
    "orch_http_request_seconds",
    "Gateway requests by route (the path template), method and status",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
DEAD_LETTERS = Counter(
    "orch_dead_letters_total", "Messages parked in the dead-letter queue", ["reason"]
)
HUB_CALL_SECONDS = Histogram(
    "orch_hub_call_seconds",
    "Latency of Hub API and contents API calls",
    ["endpoint", "status"],
    buckets=_LATENCY_BUCKETS,
)
SPAWN_SECONDS = Histogram(
    "orch_spawn_seconds", "Time until a user's server was ready", buckets=_SPAWN_BUCKETS
)
SPAWN_WAITING = Gauge(
    "orch_spawn_waiting",
    "Spawns of this process standing in line for a spawn slot",
)
SERVERS_RUNNING = Gauge(
    "orch_servers_running",
    "Servers of each app running, as the culler last saw them (set by the consumer "
    "that holds the culler's lease; others report none)",
    ["app"],
)
SERVERS_CULLED = Counter(
    "orch_servers_culled_total", "Servers the orchestrator culled, by reason", ["reason"]
)
SERVERS_STOPPED = Counter(
    "orch_servers_stopped_total", "Servers seen to stop, by reason", ["reason"]
)
PUBLISH_CONFIRM_SECONDS = Histogram(
    "orch_publish_confirm_seconds",
    "Publish-to-confirm latency",
    ["exchange"],
    buckets=_LATENCY_BUCKETS,
)
SAVE_TO_EVENT_SECONDS = Histogram(
    "orch_save_to_event_seconds",
    "Time from a save inside Jupyter to the notebook.saved event",
    buckets=_LATENCY_BUCKETS,
)


@functools.lru_cache(maxsize=1024)
def labelled(metric: MetricWrapperBase, *values: str) -> Any:
    """``metric.labels(*values)``, kept: on every command's path, and each ``labels``
    call validates the values, builds a key and takes the metric's lock."""
    return metric.labels(*values)


HUB_UP = Gauge(
    "orch_hub_up",
    "1 while the Hub answers its health checks, 0 once marked down (set by the consumer "
    "that holds the health check's lease; others report none)",
    ["hub"],
)
HUB_USERS = Gauge(
    "orch_hub_users",
    "Workspaces placed on the Hub (set with orch_hub_up, by the health checks' lease holder)",
    ["hub"],
)
HUB_SERVERS_RUNNING = Gauge(
    "orch_hub_servers_running",
    "Servers running on the Hub, as the orchestrator last saw them (set with orch_hub_up)",
    ["hub"],
)
HUB_SPAWNS_IN_PROGRESS = Gauge(
    "orch_hub_spawns_in_progress",
    "Spawns holding one of the Hub's spawn slots (set with orch_hub_up)",
    ["hub"],
)
