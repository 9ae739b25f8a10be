"""App registry and API keys (stored only as sha256 of high-entropy random keys)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from runtime.db.models import App, AppKey
from schemas.commands import utcnow

KEY_PREFIX = "orch_"


def hash_key(key: str) -> str:
    """sha256 hex of an API key (keys carry 256 random bits, so no slow KDF is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class AppIdentity:
    """An authenticated app and its limits."""

    name: str
    allowed_types: frozenset[str] | None
    user_prefix: str | None

    def may_act_for(self, user: str) -> bool:
        """True if this app may act for (or read) ``user``: its prefix, if any, matches."""
        return not self.user_prefix or user.startswith(self.user_prefix)


@dataclass(frozen=True)
class CullPolicy:
    """An app's culling policy as configured (None: the consumers' default; 0: off)."""

    idle_timeout_seconds: int | None = None
    max_age_seconds: int | None = None
    cull_grace_seconds: int | None = None


@dataclass(frozen=True)
class IssuedKey:
    """A freshly issued key: the only time the plain key is seen."""

    app: str
    key: str
    key_id: str


class AppStore:
    """Create apps, issue, verify, list and revoke their keys."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def issue_key(
        self,
        app: str,
        *,
        allowed_types: list[str] | None = None,
        user_prefix: str | None = None,
    ) -> IssuedKey:
        """Create ``app`` if new (or update its limits when given) and issue a new key."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self._sessions() as session:
            record = await session.get(App, app)
            if record is None:
                record = App(name=app, allowed_types=allowed_types, user_prefix=user_prefix)
            else:
                if allowed_types is not None:
                    record.allowed_types = allowed_types
                if user_prefix is not None:
                    record.user_prefix = user_prefix
            session.add(record)
            row = AppKey(app=app, key_hash=hash_key(key), key_prefix=key[:12])
            session.add(row)
            await session.commit()
            return IssuedKey(app=app, key=key, key_id=str(row.id))

    async def authenticate(self, key: str) -> AppIdentity | None:
        """The app owning an unrevoked ``key``, or None."""
        async with self._sessions() as session:
            stmt = select(AppKey, App).where(
                AppKey.key_hash == hash_key(key), AppKey.app == App.name
            )
            row = (await session.exec(stmt)).first()
            if row is None or row[0].revoked_at is not None:
                return None
            app = row[1]
            types = frozenset(app.allowed_types) if app.allowed_types is not None else None
            return AppIdentity(app.name, types, app.user_prefix)

    async def set_cull_policy(self, app: str, policy: CullPolicy) -> bool:
        """Set the given fields of ``app``'s culling policy (None leaves one as it is);
        False if there is no such app."""
        async with self._sessions() as session:
            record = await session.get(App, app)
            if record is None:
                return False
            if policy.idle_timeout_seconds is not None:
                record.idle_timeout_seconds = policy.idle_timeout_seconds
            if policy.max_age_seconds is not None:
                record.max_age_seconds = policy.max_age_seconds
            if policy.cull_grace_seconds is not None:
                record.cull_grace_seconds = policy.cull_grace_seconds
            session.add(record)
            await session.commit()
            return True

    async def cull_policies(self) -> dict[str, CullPolicy]:
        """Every app's culling policy, by app name."""
        async with self._sessions() as session:
            apps = (await session.exec(select(App))).all()
            return {
                a.name: CullPolicy(a.idle_timeout_seconds, a.max_age_seconds, a.cull_grace_seconds)
                for a in apps
            }

    async def list_keys(self) -> list[dict[str, str | None]]:
        """Every key with its app, prefix and dates (never the key or its hash)."""
        async with self._sessions() as session:
            rows = (await session.exec(select(AppKey, App).where(AppKey.app == App.name))).all()
            return [
                {
                    "key_id": str(k.id),
                    "app": a.name,
                    "prefix": k.key_prefix,
                    "allowed_types": ",".join(a.allowed_types) if a.allowed_types else None,
                    "user_prefix": a.user_prefix,
                    "created_at": k.created_at.isoformat(),
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k, a in rows
            ]

    async def revoke(self, key_id_or_prefix: str) -> int:
        """Revoke keys by id or by their displayed prefix; returns how many."""
        async with self._sessions() as session:
            rows = (await session.exec(select(AppKey))).all()
            hits = [
                k
                for k in rows
                if k.revoked_at is None
                and (str(k.id) == key_id_or_prefix or k.key_prefix == key_id_or_prefix)
            ]
            for k in hits:
                k.revoked_at = utcnow()
                session.add(k)
            await session.commit()
            return len(hits)
