"""Who may call what: API keys with roles (header `X-API-Key`), review-page sessions (cookie), and the
failed-authentication limits. Routers get a role with `Security(require(Role.X))` (see `app.py`); a route that
records an actor takes the `Principal` it returns.

Sessions are accepted only where a browser needs them (the review page and the evidence images it shows), so
a stolen page cookie cannot swap the model. With no key configured the service refuses to start unless
`--insecure-open` is given; the legacy `STREETORDER_API_KEY` still works, as an admin key, with a warning.

The active keys are also kept in a local key cache (`key_cache.py`, hashes only), rewritten whenever the set read
from the database changes; a service started while PostgreSQL is unreachable judges keys by it (a key revoked
before the outage stays refused, an unknown one is refused) until the database answers again.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader
from starlette.concurrency import run_in_threadpool

from pipeline.db.engine import Database

from .errors import Forbidden, TooManyRequests, Unauthorized
from .key_cache import KeyCache
from .keys import KeySnapshot, KeyStore, Principal, Role
from .ratelimit import FailureLimiter, Limited
from ..runtime.ledger import LedgerLink, can_be_away, describe, unreachable
from ..settings import ServiceSettings

log = logging.getLogger(__name__)

SESSION_COOKIE = "streetorder_session"
HEADER = "X-API-Key"
# Query parameters that would carry a secret in the URL, where access logs and browser history keep it.
SECRET_PARAMS = frozenset({"api_key", "apikey", "api-key", "x-api-key", "key", "token", "access_token", "session", "password"})
OPEN_WARNING = "INSECURE: started with --insecure-open and no API keys: every route, model swap included, is open to anyone who can reach it"
LEGACY_WARNING = "STREETORDER_API_KEY is deprecated: it works as an admin key until you create role keys (`streetorder keys create --role ...`) and unset it"
LEGACY_NAME = "legacy STREETORDER_API_KEY"

_header = APIKeyHeader(name=HEADER, auto_error=False, description="An API key from `streetorder keys create`; its role decides the routes")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="Review-page session, set by POST /review/login (review page and evidence only)")


class NoKeysConfigured(ValueError):
    """Refusing to serve an open service by accident."""


class NoKeyCache(ValueError):
    """The database is unreachable and no key cache says which keys are valid: refusing to start blind."""


NO_KEYS = (
    "no API keys are configured, so every route would be open: create one with "
    "`streetorder keys create --role admin --name NAME` (same --ledger/--db as serve), or start with --insecure-open for a local demo"
)


def _no_cache(settings: ServiceSettings, why: str) -> NoKeyCache:
    return NoKeyCache(
        f"the ledger database is unreachable ({why}) and there is no key cache at {settings.key_cache_path()} to tell which API keys are valid: "
        "start once with the database up (the cache is written then), or wait for the database"
    )


def _save_cache(cache: KeyCache) -> Callable[[KeySnapshot], None]:
    def save(snapshot: KeySnapshot) -> None:
        try:
            cache.save(snapshot)
        except OSError as e:  # the service runs on; only a start during an outage would miss it
            log.error("cannot write the key cache %s (%s): a start during a database outage would not know the keys", cache.path, e)

    return save


@dataclass
class Auth:
    keys: KeyStore
    limiter: FailureLimiter
    legacy_key: str | None
    started_open: bool  # --insecure-open with no keys at startup: an anonymous caller is admin until a key exists
    recheck_s: float = 2.0  # how often an open service looks for a key created since (like KeyStore's cache)
    _closed: bool = field(default=False, init=False)
    _checked_at: float = field(default=float("-inf"), init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def open(self) -> bool:
        """Whether anyone is admin. Only a service started with --insecure-open and no key is; it closes for
        good once any active key exists (`streetorder keys create` from another process is seen within
        `recheck_s`), so the first key created really locks it."""
        if not self.started_open or self._closed:
            return False
        now = time.monotonic()
        with self._lock:
            if self._closed or now - self._checked_at < self.recheck_s:
                return not self._closed
            self._checked_at = now
            if self._active_count() > 0:
                self._closed = True
                log.warning("an API key now exists: --insecure-open no longer applies, every route needs a key")
        return not self._closed

    def _active_count(self) -> int:
        snapshot = self.keys.snapshot
        if self.keys.offline() and snapshot is not None:
            return len(snapshot.keys)
        try:
            return self.keys.active_count()
        except Exception:
            if snapshot is None:
                raise
            return len(snapshot.keys)

    @staticmethod
    def _judge_open(settings: ServiceSettings, active: int) -> bool:
        is_open = settings.api_key is None and active == 0
        if is_open and not settings.insecure_open:
            raise NoKeysConfigured(NO_KEYS)
        return is_open

    @staticmethod
    def check_configured(settings: ServiceSettings) -> bool:
        """Whether the service would run open (no key at all); raises unless --insecure-open allows that.
        `create_app` asks before it loads anything heavy. While PostgreSQL is unreachable the key cache answers;
        with no cache (and no legacy key) the service does not start."""
        cfg = settings.ledger_settings()
        try:
            db = Database(cfg.database_url, auto_upgrade=cfg.auto_upgrade)
        except Exception as e:
            if not unreachable(e, cfg.database_url):
                raise
            snapshot = KeyCache(settings.key_cache_path()).load()
            if snapshot is None and settings.api_key is None:
                raise _no_cache(settings, describe(e)) from None
            return Auth._judge_open(settings, len(snapshot.keys) if snapshot else 0)
        try:
            return Auth._judge_open(settings, KeyStore(db).active_count())
        finally:
            db.dispose()

    @classmethod
    def open_for(cls, settings: ServiceSettings, db: Database, link: LedgerLink | None = None) -> Auth:
        """Check there is some way in; say loudly when there is no lock at all. With the database up, the active
        keys are read and the key cache rewritten; with `link` down, the key cache is what there is."""
        keys = KeyStore(db)
        cache = KeyCache(settings.key_cache_path())
        if can_be_away(db.url):  # a SQLite ledger is a local file: never started without it, no cache needed
            keys.on_snapshot = _save_cache(cache)
        if link is not None:
            keys.offline = lambda: not link.up
            link.before_up(keys.refresh_known, periodic=True)  # keeps the cache current for the next outage
        if link is None or link.up:
            keys.refresh_known()
        elif (snapshot := cache.load()) is not None:
            keys.adopt(snapshot)
            log.warning("the ledger database is unreachable: API keys are checked against the %d active at %s (key cache %s)", len(snapshot.keys), snapshot.taken_at.isoformat(timespec="seconds"), cache.path)
        elif settings.api_key is None:
            raise _no_cache(settings, link.error or "")
        legacy = settings.api_key.get_secret_value() if settings.api_key else None
        is_open = cls._judge_open(settings, len(keys.snapshot.keys) if keys.snapshot else 0)
        if is_open:
            log.warning("!" * 20 + " %s " + "!" * 20, OPEN_WARNING)
        elif settings.insecure_open:
            log.warning("--insecure-open is ignored: API keys are configured, so every route needs one")
        if legacy is not None:
            log.warning(LEGACY_WARNING)
        limiter = FailureLimiter(settings.auth_failures_per_address, settings.auth_failures_global, settings.auth_window_s)
        return cls(keys, limiter, legacy, is_open)

    def warnings(self) -> list[str]:
        return [w for w, on in ((OPEN_WARNING, self.open), (LEGACY_WARNING, self.legacy_key is not None)) if on]

    def _legacy(self, key: str) -> Principal | None:
        if self.legacy_key is not None and secrets.compare_digest(key.encode("utf-8", "surrogatepass"), self.legacy_key.encode()):
            return Principal(LEGACY_NAME, Role.ADMIN, via="legacy")
        return None

    def cached_key(self, key: str) -> Principal | None:
        """The key's holder if the key is the legacy one or was verified within the cache time; no I/O."""
        return self._legacy(key) or self.keys.cached(key)

    def verify_key(self, key: str) -> Principal | None:
        return self._legacy(key) or self.keys.verify(key)

    @property
    def anonymous(self) -> Principal | None:
        return Principal("anonymous (insecure-open)", Role.ADMIN, via="open") if self.open else None


def get_auth(request: Request) -> Auth:
    return request.app.state.auth


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def refuse_failure(request: Request, *, login: bool = False) -> None:
    """Called for a failed attempt only (a wrong key, a failed login), after the key was checked: past the
    limits it becomes 429 instead of 401. A right key never comes here, so a misconfigured camera behind the
    same NAT cannot lock out the others, nor wrong API keys the reviewers' login form."""
    auth = get_auth(request)
    address = client_address(request)
    limited = auth.limiter.check(address, login=login)
    if limited:
        raise TooManyRequests(refusal_message(limited, login=login), limited.retry_after)
    auth.limiter.fail(address, login=login)


def refusal_message(limited: Limited, *, login: bool) -> str:
    """What a wrong key past a limit is told. True to what the limit does: it holds back wrong keys only, per
    client address (API keys and the login form together) or, for the login form, over the whole service; a
    right key is never refused, so nobody is told to wait for one. Reviewers behind the cameras' NAT see why
    their typo got a 429, and that their own key still gets in."""
    key = "key" if login else f"key in the {HEADER} header"
    if limited.scope == "address":
        why = "this network address has sent too many wrong keys lately (API keys and review logins together)"
    else:
        why = "the service has seen too many failed review logins lately, from all addresses"
    right = "a right key still logs in" if login else "a right key is still accepted"
    return f"wrong or revoked {key}, and {why}: wrong keys are answered 429 for {limited.retry_after} s more; {right}"


def identify(request: Request, header: str | None, cookie: str | None) -> Principal | None:
    """The caller, from the key header, else the session cookie; None when neither is given (or the session is
    unknown or expired). A wrong key is 401 (429 past the client's failure limit); a right one always passes."""
    auth = get_auth(request)
    if header is None and cookie is None:
        return auth.anonymous
    if header is not None:
        who = auth.verify_key(header)
        if who is None:
            log.warning("wrong or revoked API key from %s on %s %s", client_address(request), request.method, request.url.path)
            refuse_failure(request)
            snapshot = auth.keys.snapshot
            if auth.keys.offline() and snapshot is not None:
                raise Unauthorized(
                    f"wrong or revoked API key in the {HEADER} header (the ledger database is unreachable: keys are checked against those active on "
                    f"{snapshot.taken_at.isoformat(timespec='seconds')})"
                )
            raise Unauthorized(f"wrong or revoked API key in the {HEADER} header")
        return who
    return auth.keys.session(cookie) or auth.anonymous


def _judge(who: Principal | None, role: Role, *, session: bool) -> Principal:
    if who is None:
        how = f"the {HEADER} header" + (" or log in at /review" if session else "")
        raise Unauthorized(f"this route needs a {role.value} key: send it in {how}")
    if not who.allows(role):
        raise Forbidden(f"this route needs a {role.value} (or admin) key; the key of {who.name!r} is a {who.role.value} key")
    return who


async def _identify(request: Request, header: str | None, cookie: str | None) -> Principal | None:
    """`identify` without a thread hop when the key was verified moments ago (a camera sends the same key with
    every frame); a lookup in the ledger, a session or a wrong key goes to a worker thread, off the event loop."""
    if header is not None and (who := get_auth(request).cached_key(header)) is not None:
        return who
    return await run_in_threadpool(identify, request, header, cookie)


@functools.cache
def require(role: Role, *, session: bool = False) -> Callable[..., Awaitable[Principal]]:
    """The dependency that lets `role` (and admin) through and returns the caller. `session`: also accept the
    review page's cookie. Cached, so a router's and a route's use of it run once per request."""
    if session:

        async def dependency(request: Request, header: str | None = Security(_header), cookie: str | None = Security(_cookie)) -> Principal:
            return _judge(await _identify(request, header, cookie), role, session=True)
    else:

        async def dependency(request: Request, header: str | None = Security(_header)) -> Principal:
            return _judge(await _identify(request, header, None), role, session=False)

    dependency.__name__ = f"require_{role.value}" + ("_or_session" if session else "")
    return dependency


async def optional_principal(request: Request, header: str | None = Security(_header)) -> Principal | None:
    """For routes open to everyone that tell a key holder more (/ready). Async: a key seen moments ago needs no
    thread, so a probe's answer does not wait for one."""
    return await _identify(request, header, None)


async def refuse_key_in_url(request: Request) -> None:
    """A secret in the query string ends up in access logs and browser history: refuse it, whatever the route."""
    given = sorted(p for p in request.query_params if p.lower() in SECRET_PARAMS)
    if given:
        raise Unauthorized(f"never put a key in the URL (query parameter {given[0]!r}): send it in the {HEADER} header; treat that key as leaked")
