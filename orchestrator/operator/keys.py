"""``orchestrator keys``: issue, list and revoke app API keys."""

from __future__ import annotations

import argparse

from orchestrator.operator.tables import print_rows
from runtime.db.apps import AppStore
from runtime.db.engine import create_schema, make_engine, make_sessionmaker
from runtime.settings import CommonSettings
from schemas.commands import CommandType


async def run_keys(settings: CommonSettings, args: argparse.Namespace) -> int:
    """Perform one key action against the database; 0 on success."""
    engine = make_engine(settings.database_url.get_secret_value())
    await create_schema(engine)
    store = AppStore(make_sessionmaker(engine))
    try:
        if args.action == "create":
            types = None
            if args.types:
                types = [t.strip() for t in args.types.split(",") if t.strip()]
                unknown = set(types) - {t.value for t in CommandType}
                if unknown:
                    print(f"unknown command types: {', '.join(sorted(unknown))}")
                    return 2
            issued = await store.issue_key(
                args.app, allowed_types=types, user_prefix=args.user_prefix
            )
            if args.json:
                print_rows(
                    [{"app": issued.app, "key_id": issued.key_id, "key": issued.key}], as_json=True
                )
            else:
                print(f"app: {issued.app}\nkey id: {issued.key_id}\nkey: {issued.key}")
                print("(store the key now: only its hash is kept)")
        elif args.action == "list":
            print_rows(await store.list_keys(), as_json=args.json)
        elif args.action == "revoke":
            count = await store.revoke(args.key)
            if args.json:
                print_rows([{"revoked": count}], as_json=True)
            else:
                print(f"revoked {count} key(s)")
            return 0 if count else 1
        return 0
    finally:
        await engine.dispose()
