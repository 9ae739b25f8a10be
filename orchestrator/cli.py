"""The ``orchestrator`` command: processes (gateway, consumer, hub-service) and
operator tools (keys, dead letters, queues, command lookup, subscribe).

Thin: each subcommand builds its settings and calls one function.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic_settings import BaseSettings

from runtime.logs import configure_logging
from runtime.runner import run_until_signalled
from runtime.settings import (
    DEV_ENV_FILE,
    ENV_FILE_VARIABLE,
    CommonSettings,
    ConsumerSettings,
    GatewaySettings,
    operator_env_file,
)

Command = Callable[[argparse.Namespace], int]
S = TypeVar("S", bound=BaseSettings)


def _gateway(_args: argparse.Namespace) -> int:
    from orchestrator.gateway.serve import serve_gateway

    settings = GatewaySettings()
    configure_logging("gateway", json=settings.log_json)
    run_until_signalled(lambda stop: serve_gateway(settings, stop))
    return 0


def _consumer(args: argparse.Namespace) -> int:
    from consumers.service import run_consumer

    settings = ConsumerSettings()
    configure_logging(f"consumer-{args.index}", json=settings.log_json)
    run_until_signalled(lambda stop: run_consumer(settings, args.index, args.count, stop))
    return 0


def _hub_service(_args: argparse.Namespace) -> int:
    from hub_service.service import main as hub_service_main

    return hub_service_main()


def _operator(settings_class: type[S]) -> S:
    """Settings of an operator command: the environment, then the env file if any
    (``ORCH_ENV_FILE``, or the running dev stack's)."""
    return settings_class(_env_file=operator_env_file())


def _env(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else operator_env_file()
    if path is None or not path.is_file():
        where = path or f"{ENV_FILE_VARIABLE} or {DEV_ENV_FILE}"
        print(
            f"orchestrator env: no settings file at {where}: is `make run` running? "
            "(run this from the repository root, or pass --file STATE/orchestrator.env)",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(path.read_text())
    return 0


def _keys(args: argparse.Namespace) -> int:
    from orchestrator.operator.keys import run_keys

    return asyncio.run(run_keys(_operator(CommonSettings), args))


def _servers(args: argparse.Namespace) -> int:
    from orchestrator.operator.servers import run_servers

    return asyncio.run(run_servers(_operator(CommonSettings), args))


def _hubs(args: argparse.Namespace) -> int:
    from orchestrator.operator.hubs import run_hubs
    from runtime.settings import HubsSettings

    return asyncio.run(run_hubs(_operator(HubsSettings), args))


def _dead_letters(args: argparse.Namespace) -> int:
    from orchestrator.operator.dead_letters import run_dead_letters

    return asyncio.run(run_dead_letters(_operator(CommonSettings), args))


def _queues(args: argparse.Namespace) -> int:
    from orchestrator.operator.queues import run_queues
    from runtime.settings import OperatorSettings

    return asyncio.run(run_queues(_operator(OperatorSettings), args))


def _command(args: argparse.Namespace) -> int:
    from orchestrator.operator.command_lookup import run_command_lookup

    return asyncio.run(run_command_lookup(_operator(CommonSettings), args))


def _subscribe(args: argparse.Namespace) -> int:
    from orchestrator.operator.subscribe import run_subscribe

    return asyncio.run(run_subscribe(_operator(CommonSettings), args))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``orchestrator`` command."""
    parser = argparse.ArgumentParser(prog="orchestrator", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    sub.add_parser("gateway", help="run the HTTP gateway").set_defaults(fn=_gateway)
    consumer = sub.add_parser("consumer", help="run a command consumer")
    consumer.add_argument("--index", type=int, default=0, help="this process's index")
    consumer.add_argument("--count", type=int, default=1, help="how many consumers run")
    consumer.set_defaults(fn=_consumer)
    sub.add_parser("hub-service", help="run the Hub-side save service").set_defaults(
        fn=_hub_service
    )

    keys = sub.add_parser("keys", help="manage app API keys")
    keys.add_argument("--json", action="store_true")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="issue a key for an app (prints it once)")
    create.add_argument("app")
    create.add_argument("--types", help="comma-separated command types the app may send")
    create.add_argument("--user-prefix", help="only users whose name starts with this")
    keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key")
    keys.set_defaults(fn=_keys)

    servers = sub.add_parser("servers", help="running servers, their culls; apps' cull policy")
    servers.add_argument("--json", action="store_true", help="JSON rows for scripts")
    servers_sub = servers.add_subparsers(dest="action")
    listing = servers_sub.add_parser("list", help="servers running (and culls scheduled)")
    listing.add_argument("--all", action="store_true", help="also servers seen stopped")
    servers_sub.add_parser("summary", help="per app: running, culls, culled by reason")
    policy = servers_sub.add_parser("policy", help="show or set an app's culling policy")
    policy.add_argument("app")
    policy.add_argument("--idle-timeout", type=int, help="seconds without activity (0: off)")
    policy.add_argument("--max-age", type=int, help="seconds since start (0: off)")
    policy.add_argument("--grace", type=int, help="seconds from the warning to the cull")
    servers.set_defaults(fn=_servers, action="list", all=False)

    hubs = sub.add_parser("hubs", help="the JupyterHubs: users, servers, health; drain one")
    hubs.add_argument("--json", action="store_true", help="JSON rows for scripts")
    hubs_sub = hubs.add_subparsers(dest="action")
    hubs_sub.add_parser("list", help="per Hub: weight, new users, health, users, servers")
    for verb, text in (("drain", "stop new placements on a Hub"), ("undrain", "resume them")):
        hubs_sub.add_parser(verb, help=text).add_argument("name", help="the Hub's name")
    drain = hubs_sub.choices["drain"]
    drain.add_argument("--move", action="store_true", help="and move every user off it")
    move = hubs_sub.add_parser("move", help="move a user's workspace to another Hub")
    move.add_argument("user", help="the workspace (its Hub user name), or the person with --app")
    move.add_argument("--app", help="USER is this app's person, not a Hub user name")
    for moving in (drain, move):
        moving.add_argument(
            "--to", required=moving is move, help="the Hub to move to (drain: else placed)"
        )
        moving.add_argument(
            "--wait",
            type=float,
            metavar="SECONDS",
            help="follow the moves until they finish, at most SECONDS",
        )
    hubs.set_defaults(fn=_hubs, action="list")

    dead = sub.add_parser("dead-letters", help="list, show, replay or purge dead letters")
    dead.add_argument("--json", action="store_true", help="JSON rows for scripts")
    dead_sub = dead.add_subparsers(dest="action", required=True)
    dead_sub.add_parser("list", help="parked messages with their reasons")
    dead_sub.add_parser("show", help="headers and body").add_argument("ids", nargs="+")
    for action, text in (("replay", "perform again"), ("purge", "delete for good")):
        chosen = dead_sub.add_parser(action, help=text)
        chosen.add_argument("ids", nargs="*", help="message ids (see list)")
        chosen.add_argument("--all", action="store_true", help="every parked message")
    dead.set_defaults(fn=_dead_letters)

    queues = sub.add_parser("queues", help="queue depths, consumers and rates (management API)")
    queues.add_argument("--json", action="store_true", help="JSON rows for scripts")
    queues.add_argument("--all", action="store_true", help="also queues not named orch.*")
    queues.set_defaults(fn=_queues)
    command = sub.add_parser("command", help="show one command by id (secrets redacted)")
    command.add_argument("command_id", metavar="ID")
    command.add_argument("--json", action="store_true", help="one JSON object for scripts")
    command.set_defaults(fn=_command)

    subscribe = sub.add_parser("subscribe", help="print live events of chosen types")
    subscribe.add_argument("--types", help="comma-separated event types, e.g. notebook.saved")
    subscribe.add_argument("--user", help="only events about this user")
    subscribe.add_argument("--json", action="store_true", help="one CloudEvent JSON per line")
    subscribe.add_argument("--count", type=int, help="exit after this many events")
    subscribe.add_argument("--timeout", type=float, help="exit after this many seconds")
    subscribe.set_defaults(fn=_subscribe)

    env = sub.add_parser(
        "env", help="print the exports that point the CLI at a running dev stack (make run)"
    )
    env.add_argument("--file", help="the stack's STATE/orchestrator.env (default: found)")
    env.set_defaults(fn=_env)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    fn: Command = args.fn
    return fn(args)


if __name__ == "__main__":
    sys.exit(main())
