"""API keys with roles, and review-page sessions, in the ledger database.

A key is shown once, when created; the database keeps only its SHA-256. Keys are 256 random bits, so a fast
unsalted hash is safe (nothing to brute-force, unlike a password) and lookup is one indexed SELECT. The same
holds for session tokens. Nothing here knows HTTP: the CLI (`streetorder keys`) and the service both use it.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, func, select
from sqlalchemy.exc import DBAPIError

from pipeline.db.engine import Database
from pipeline.db.tables.keys import ApiKey, ReviewSession

log = logging.getLogger(__name__)

KEY_PREFIX = "so_"


class Role(StrEnum):
    """What a key may do. `admin` may do everything; the others only their own part."""

    CAMERA = "camera"  # frames, photos, detect
    REVIEWER = "reviewer"  # cases, the review page, evidence
    ADMIN = "admin"  # models, cameras and fixtures, config; and all of the above


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name is the actor recorded in the ledger."""

    name: str
    role: Role
    key_id: int | None = None  # None: the legacy master key or --insecure-open
    via: str = "key"  # key | session | legacy | open

    def allows(self, role: Role) -> bool:
        return self.role == Role.ADMIN or self.role == role


@dataclass(frozen=True)
class KeySnapshot:
    """The active keys as the database listed them at `taken_at`: digest -> holder (what `key_cache` keeps)."""

    keys: dict[str, Principal]
    taken_at: datetime


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewKey:
    info: KeyInfo
    key: str  # the only time the key exists outside its holder's hands


def _info(k: ApiKey) -> KeyInfo:
    return KeyInfo(k.id, k.name, Role(k.role), k.created_at, k.revoked_at)


class KeyStore:
    """Keys and sessions over the ledger's Database (one transaction per call, safe from any thread).

    A verified key, and a live session, is remembered for `cache_s` seconds (default 2), so a camera
    streaming frames, or the review page loading its evidence images, costs one SELECT every few seconds
    rather than one per request (on SQLite every transaction takes the write lock). A key revoked or a
    session closed by another process (`streetorder keys revoke`) is refused within that time; one revoked or
    logged out here at once. Wrong keys and unknown sessions are never cached.

    A key still in use is looked up again ahead of time: once half its `cache_s` has passed, `cached` still
    answers from memory and hands the lookup to a background thread, which renews (or drops) the entry. So a
    streaming camera's requests never wait on the database (before, one request every `cache_s` waited for
    the lookup: 1.4 ms, up to 6, on SQLite), and the bound on seeing a revocation from elsewhere is unchanged: every
    answer rests on a lookup at most `cache_s` old.

    While the database is down, keys are judged by the last `snapshot` of the active set (`refresh_known`, or
    the service's key cache at start): a key in it passes, any other is refused. `offline` (set by the service:
    its ledger link is down) skips the lookup altogether; `on_snapshot` is told of each changed snapshot (the
    service writes it to its key cache).
    """

    CACHE_MAX = 1000

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow, cache_s: float = 2.0) -> None:
        self.db = db
        self.clock = clock
        self.cache_s = cache_s
        self._cache: dict[str, tuple[Principal, float]] = {}
        # Keys this process last saw active: while the ledger database is down they still pass, so cameras'
        # frames keep coming in and are journaled (issue 8) instead of all being refused for want of a lookup.
        self._known: dict[str, Principal] = {}
        self._sessions: dict[str, tuple[Principal, datetime, float]] = {}  # token hash -> (who, expires_at, cached until)
        self._cache_lock = threading.Lock()
        self._generation = 0  # bumped by revoke: a lookup begun before it must not renew what it cleared
        self._refreshing: set[str] = set()  # key hashes queued for, or in, a lookup ahead of time
        self._refresh_queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._refresher: threading.Thread | None = None
        self.snapshot: KeySnapshot | None = None
        self.offline: Callable[[], bool] = lambda: False
        self.on_snapshot: Callable[[KeySnapshot], None] | None = None

    # ---- keys ---------------------------------------------------------------------------------------

    def create(self, name: str, role: Role | str) -> NewKey:
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError("a key needs a name of 1 to 200 characters (the person or camera holding it)")
        role = Role(role)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.db.transaction() as s:
            row = ApiKey(name=name, role=role.value, key_hash=digest(key), created_at=self.clock(), revoked_at=None)
            s.add(row)
            s.flush()
            return NewKey(_info(row), key)

    def list(self, *, include_revoked: bool = False) -> list[KeyInfo]:
        q = select(ApiKey).order_by(ApiKey.id)
        if not include_revoked:
            q = q.where(ApiKey.revoked_at.is_(None))
        with self.db.transaction() as s:
            return [_info(k) for k in s.scalars(q)]

    def active_count(self) -> int:
        with self.db.transaction() as s:
            return s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))) or 0

    def revoke(self, *, key_id: int | None = None, name: str | None = None) -> list[KeyInfo]:
        """Revoke one key by id, or every active key of a name; their sessions end too. Returns what was revoked."""
        if (key_id is None) == (name is None):
            raise ValueError("revoke by id or by name, not both")
        q = select(ApiKey).where(ApiKey.revoked_at.is_(None), ApiKey.id == key_id if key_id is not None else ApiKey.name == name)
        with self.db.transaction() as s:
            rows = list(s.scalars(q))
            now = self.clock()
            for k in rows:
                k.revoked_at = now
            if rows:
                s.execute(delete(ReviewSession).where(ReviewSession.key_id.in_([k.id for k in rows])))
            gone = [_info(k) for k in rows]
            hashes = {k.key_hash for k in rows}
        with self._cache_lock:
            self._generation += 1
            self._cache.clear()
            self._sessions.clear()
            for h in hashes:
                self._known.pop(h, None)
        if rows and self.on_snapshot is not None:
            try:
                self.refresh_known()  # the key cache must not keep a revoked key for the next outage
            except Exception:
                log.exception("could not rewrite the key cache after revoking %d key(s)", len(rows))
        return gone

    def read_active(self) -> KeySnapshot:
        """The active keys, from the database."""
        taken_at = self.clock()
        with self.db.transaction() as s:
            rows = s.execute(select(ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.key_hash).where(ApiKey.revoked_at.is_(None))).all()
        return KeySnapshot({r.key_hash: Principal(r.name, Role(r.role), r.id) for r in rows}, taken_at)

    def adopt(self, snapshot: KeySnapshot) -> None:
        """Judge keys by `snapshot` while the database is down (the key cache read at start)."""
        with self._cache_lock:
            self._known = dict(snapshot.keys)
            self.snapshot = snapshot

    def refresh_known(self) -> KeySnapshot:
        """Read the active keys from the database and keep them as the snapshot; `on_snapshot` hears of it when
        the set changed (or none was kept yet). Raises what the database raises."""
        with self._cache_lock:
            generation = self._generation
        snapshot = self.read_active()
        with self._cache_lock:
            if generation != self._generation:  # a revoke came since: that one's own refresh decides
                return self.snapshot or snapshot
            changed = self.snapshot is None or self.snapshot.keys != snapshot.keys
            self._known = dict(snapshot.keys)
            self.snapshot = snapshot
        if changed and self.on_snapshot is not None:
            self.on_snapshot(snapshot)
        return snapshot

    def _judged_offline(self, h: str) -> Principal | None:
        with self._cache_lock:
            return self._known.get(h)

    def cached(self, key: str) -> Principal | None:
        """The principal of a key verified within `cache_s`, else None (unknown here: ask `verify`). No I/O: past
        half its time the entry is renewed in the background."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        h = digest(key)
        if self.offline():
            return self._judged_offline(h)
        with self._cache_lock:
            hit = self._cache.get(h)
        if hit is None:
            return None
        who, until = hit
        left = until - time.monotonic()
        if left <= 0:
            return None
        if left < self.cache_s / 2:
            self._refresh_ahead(h)
        return who

    def verify(self, key: str) -> Principal | None:
        """The principal of an active key, None for a wrong or revoked one."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        if (who := self.cached(key)) is not None:
            return who
        h = digest(key)
        if self.offline() and self.snapshot is not None:
            return None  # `cached` found it not among the keys last seen active
        try:
            return self._look_up(h)
        except DBAPIError:
            known = self._judged_offline(h)
            if known is None and self.snapshot is None:
                raise  # never saw the active keys: cannot tell (503)
            if known is not None:
                log.warning("the ledger database is unreachable: key of %r accepted as last seen active", known.name)
            return known

    def _look_up(self, h: str) -> Principal | None:
        """The key's holder from the ledger, remembered (`_remember`); raises what the database raises."""
        now = time.monotonic()
        with self._cache_lock:
            generation = self._generation
        with self.db.transaction() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == h, ApiKey.revoked_at.is_(None)))
            who = Principal(row.name, Role(row.role), row.id) if row else None
        self._remember(h, who, now, generation)
        return who

    def _remember(self, h: str, who: Principal | None, looked_at: float, generation: int) -> None:
        """What a lookup begun at `looked_at` found, unless a revoke came since."""
        with self._cache_lock:
            if generation != self._generation:
                return
            if who is None:
                self._known.pop(h, None)
                self._cache.pop(h, None)
                return
            if len(self._known) < self.CACHE_MAX:
                self._known[h] = who
            if self.cache_s > 0:
                if len(self._cache) >= self.CACHE_MAX:
                    self._cache.clear()
                self._cache[h] = (who, looked_at + self.cache_s)

    def _refresh_ahead(self, h: str) -> None:
        with self._cache_lock:
            if h in self._refreshing:
                return
            self._refreshing.add(h)
            if self._refresher is None:
                self._refresher = threading.Thread(target=self._refresh_loop, name="key-refresh", daemon=True)
                self._refresher.start()
        self._refresh_queue.put(h)

    def _refresh_loop(self) -> None:
        while True:
            h = self._refresh_queue.get()
            try:
                self._look_up(h)
            except Exception:  # the database is down: the entry runs out, and `verify` falls back to `_known`
                log.debug("looking up a cached key ahead of time failed", exc_info=True)
            finally:
                with self._cache_lock:
                    self._refreshing.discard(h)

    # ---- sessions -----------------------------------------------------------------------------------

    def open_session(self, who: Principal, ttl: timedelta) -> tuple[str, datetime]:
        """A new session for a key's holder: (token for the cookie, expiry). Expired sessions are cleared here."""
        if who.key_id is None:
            raise ValueError("only a stored key can open a session")
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self.db.transaction() as s:
            s.execute(delete(ReviewSession).where(ReviewSession.expires_at <= now))
            s.add(ReviewSession(token_hash=digest(token), key_id=who.key_id, created_at=now, expires_at=now + ttl))
        return token, now + ttl

    def session(self, token: str) -> Principal | None:
        """The principal behind a live session of an active key; None when unknown, expired or revoked."""
        if len(token) > 200:
            return None
        h, now, mono = digest(token), self.clock(), time.monotonic()
        with self._cache_lock:
            hit = self._sessions.get(h)
        if hit is not None and hit[2] > mono and hit[1] > now:
            return hit[0]
        with self.db.transaction() as s:
            row = s.execute(
                select(ApiKey.id, ApiKey.name, ApiKey.role, ReviewSession.expires_at)
                .join(ReviewSession, ReviewSession.key_id == ApiKey.id)
                .where(ReviewSession.token_hash == h, ReviewSession.expires_at > now, ApiKey.revoked_at.is_(None))
            ).first()
        if row is None:
            with self._cache_lock:
                self._sessions.pop(h, None)
            return None
        who = Principal(row.name, Role(row.role), row.id, via="session")
        if self.cache_s > 0:
            expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)  # SQLite drops the zone
            with self._cache_lock:
                if len(self._sessions) >= self.CACHE_MAX:
                    self._sessions.clear()
                self._sessions[h] = (who, expires, mono + self.cache_s)
        return who

    def close_session(self, token: str) -> bool:
        h = digest(token)
        with self._cache_lock:
            self._sessions.pop(h, None)
        with self.db.transaction() as s:
            return s.execute(delete(ReviewSession).where(ReviewSession.token_hash == h)).rowcount > 0
