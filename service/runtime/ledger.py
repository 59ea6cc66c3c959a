"""The ledger's health as /ready reports it, and the service's link to the ledger database. The ledger itself
(`CaseStore`) is safe to call from any thread (one transaction per call), so the service shares one store and
case routes never take the engine lock.

The link is what lets the service start during a database outage (issue 22): when PostgreSQL does not answer at
start, `LedgerLink.open_store` hands out a store that has not connected yet and marks the link down. While it is
down, intake writes nothing (frames and photos go to the report journal, answered 202), keys are judged by the
key cache, and /ready says why it is 503. A background thread tries the database every `interval_s`; once it
answers, the schema is brought to head (when the ledger auto-upgrades), the `before_up` hooks read what start-up
could not (the active keys, each camera's last frame time), the link goes up and the `after_up` hooks drain the
journal. A database that fails later, while the link is up, is the report queue's business as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from pipeline.cases import CaseStore
from pipeline.cases.config import LedgerConfig
from pipeline.cases.evidence_store import EvidenceStore
from pipeline.db.engine import Database
from pipeline.db.quarantine import quarantine_count
from pipeline.db.urls import normalize_url

log = logging.getLogger(__name__)

# A server that answered refuses with a FATAL message (psycopg gives no SQLSTATE for a failed connection); these
# mean "not now" rather than "never" (a wrong password, a missing database). Chinese servers say 致命错误.
_PG_ANSWERED = ("FATAL:", "致命错误")
_PG_NOT_NOW = ("starting up", "shutting down", "in recovery", "too many clients", "remaining connection slots", "terminating connection", "admin_shutdown")


def quarantined(store: CaseStore) -> int | None:
    """Reports the ledger refused and keeps for an admin; None when the database does not answer."""
    try:
        return quarantine_count(store.db)
    except Exception:
        return None


def database_error(store: CaseStore, link: LedgerLink | None = None) -> str | None:
    """Why the ledger's database does not answer, None when it does (not asked while the link is down: the
    link's own probe says why, without a connection attempt per /ready)."""
    if link is not None and not link.up:
        return link.error
    try:
        with store.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as e:
        return describe(e)


def describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def can_be_away(url: str) -> bool:
    """Only PostgreSQL is a server that can be away; SQLite is a local file (that cannot open: a mistake)."""
    return make_url(normalize_url(url)).get_backend_name() == "postgresql"


def unreachable(e: BaseException, url: str) -> bool:
    """Whether `e`, from opening the ledger at `url`, is the database being away (an outage to ride out) rather
    than a mistake to report at once (a wrong password, a missing database, a SQLite file that cannot open)."""
    if not can_be_away(url):
        return False
    orig = e.orig if isinstance(e, DBAPIError) else e
    if not isinstance(orig, psycopg.OperationalError):
        return False
    message = str(orig)
    if not any(m in message for m in _PG_ANSWERED):
        return True  # refused, timed out, name not resolved, connection closed: no server answered
    return any(m in message for m in _PG_NOT_NOW)


class LedgerLink:
    """Up while the ledger database has answered since start (and its schema is current); see the module doc."""

    def __init__(self, config: LedgerConfig, interval_s: float, *, refresh_s: float = 30.0) -> None:
        self.config = config
        self.interval_s = interval_s
        self.refresh_s = refresh_s  # how often `before_up` hooks run again while up (the key cache's freshness)
        self.up = False
        self.error: str | None = None  # why it is down
        self.down_since: datetime | None = None
        self.started_down = False
        self._before_up: list[tuple[Callable[[], object], bool]] = []  # (hook, also every refresh_s while up)
        self._after_up: list[Callable[[], object]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refreshed = time.monotonic()

    def open_store(self) -> CaseStore:
        """The ledger, opened as `CaseStore.open` does (migrating it if asked); while PostgreSQL is unreachable,
        a store that connects on first use instead, with the link down. Anything else raises."""
        try:
            store = CaseStore.open(self.config)
        except Exception as e:
            if not unreachable(e, self.config.database_url):
                raise
            self._down(e)
            self.started_down = True
            log.warning(
                "the ledger database is unreachable (%s): starting degraded; frames and photos are journaled and answered 202, "
                "keys are checked against the key cache, and everything is written once the database answers", self.error,
            )
            return CaseStore(Database(self.config.database_url, auto_upgrade=False), EvidenceStore(self.config.evidence_dir), self.config)
        self.up = True
        return store

    @property
    def reason(self) -> str | None:
        """Why the service is degraded, in words for anyone (no addresses); None while up."""
        if self.up:
            return None
        since = f" since {self.down_since:%Y-%m-%d %H:%M:%S}Z" if self.down_since else ""
        return f"the ledger database is unreachable{since}: degraded, frames and photos are journaled (202) and written when it answers"

    def hold(self) -> str | None:
        """For intake: why nothing may be written now (None: go ahead)."""
        return None if self.up else f"the ledger database is unreachable ({self.error}); waiting for it"

    def before_up(self, hook: Callable[[], object], *, periodic: bool = False) -> None:
        """Run `hook` (it may read the database) each time the link comes up; `periodic`: also every `refresh_s`
        while up."""
        self._before_up.append((hook, periodic))

    def after_up(self, hook: Callable[[], object]) -> None:
        """Run `hook` once the link is up again (after a start during an outage)."""
        self._after_up.append(hook)

    def probe(self) -> bool:
        """Try the database (and migrate it when the ledger auto-upgrades); on success run the hooks and go up."""
        try:
            Database(self.config.database_url, auto_upgrade=self.config.auto_upgrade).dispose()
            for hook, _ in self._before_up:
                hook()
        except Exception as e:
            if not unreachable(e, self.config.database_url):
                log.exception("the ledger database answered but could not be brought up; trying again in %g s", self.interval_s)
            self._down(e)
            return False
        self.up, self.error = True, None
        self._refreshed = time.monotonic()
        log.warning("the ledger database answers again (down since %s): writing the journal to it", self.down_since)
        self.down_since = None
        for hook in self._after_up:
            try:
                hook()
            except Exception:
                log.exception("after the ledger came back")
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ledger-link", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self.up:
                self.probe()
            elif time.monotonic() - self._refreshed >= self.refresh_s:
                self._refreshed = time.monotonic()
                for hook, periodic in self._before_up:
                    if not periodic:
                        continue
                    try:
                        hook()
                    except Exception as e:  # the database is away for a moment: the queue and the key cache cope
                        log.debug("refreshing what the service knows of the ledger failed: %s", describe(e))

    def _down(self, e: BaseException) -> None:
        self.up = False
        self.error = describe(e)
        if self.down_since is None:
            self.down_since = datetime.now(UTC)
