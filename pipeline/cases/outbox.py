"""Transactional outbox: messages are written with the case change, and a worker delivers them later.

Writing the message in the same transaction as the change means a crash can lose neither: both commit or
neither does. Delivery is at-least-once with an idempotency key per event, which a receiver turns into
exactly-once. Per case and channel, messages go out in order: a later event of a case waits until the
earlier one is delivered (or dead), so a receiver never sees `closed` before `dispatched`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from ..db.engine import Database
from ..db.tables.ledger import Case, CaseEvent, OutboxMessage
from .config import LedgerConfig, OutboxConfig
from .messages import build_message, idempotency_key

log = logging.getLogger(__name__)

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


@dataclass(frozen=True)
class OutgoingMessage:
    """One row as a transport sees it: where to, the key, and the exact bytes."""

    id: int
    channel: str
    topic: str | None
    idempotency_key: str
    case_id: int
    body: bytes


class DeliveryFailed(Exception):
    """A transport could not deliver; the worker retries later with backoff.

    `unreachable` says the receiver could not be reached at all (refused, timed out): the worker then ends
    the channel's round instead of waiting out the same timeout once per message.
    """

    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


class Transport(Protocol):
    """A delivery channel that keeps its connection between delivery rounds."""

    channel: str

    def open(self) -> None:
        """Connect if not connected; raise DeliveryFailed if that is impossible now."""

    def send(self, message: OutgoingMessage) -> None:
        """Deliver or raise DeliveryFailed."""

    def close(self) -> None: ...


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    dead: int = 0

    def __iadd__(self, other: DeliveryStats) -> DeliveryStats:
        self.sent += other.sent
        self.failed += other.failed
        self.dead += other.dead
        return self


def enqueue(session: Session, case: Case, event: CaseEvent, config: LedgerConfig) -> list[OutboxMessage]:
    """Add one message per configured channel for `event`; call it in the transaction that wrote the event."""
    if not config.channels:
        return []
    body = build_message(case, event, config.evidence_base_url).model_dump_json()
    key = idempotency_key(case.id, event.id)
    rows = []
    for channel in config.channels:
        topic = f"{config.mqtt.topic_prefix}/{case.type}" if channel == "mqtt" else None
        rows.append(
            OutboxMessage(
                channel=channel, topic=topic, idempotency_key=key, case_id=case.id, event_id=event.id, payload=body, status=PENDING, attempts=0, created_at=event.at, next_attempt_at=event.at
            )
        )
    session.add_all(rows)
    return rows


def backoff(config: OutboxConfig, attempts: int, key: str) -> timedelta:
    """Exponential backoff with deterministic jitter (50–100 %), so recovered receivers are not stampeded."""
    delay = min(config.backoff_max_s, config.backoff_base_s * 2 ** max(attempts - 1, 0))
    spread = int.from_bytes(hashlib.sha256(f"{key}:{attempts}".encode()).digest()[:4], "big") / 2**32
    return timedelta(seconds=delay * (0.5 + 0.5 * spread))


class OutboxWorker:
    """Delivers due messages through the given transports. Run one worker per database.

    Two workers would not corrupt anything, but could send a message twice; the idempotency key makes
    that harmless to a receiver that honours it.
    """

    def __init__(self, db: Database, transports: Iterable[Transport], config: OutboxConfig):
        self.db = db
        self.transports = {t.channel: t for t in transports}
        self.config = config

    def deliver_pending(self, now: datetime) -> DeliveryStats:
        """One delivery round at time `now` (injected, so backoff is testable without sleeping)."""
        stats = DeliveryStats()
        for channel, transport in self.transports.items():
            stats += self._deliver_channel(channel, transport, now)
        return stats

    def close(self) -> None:
        for t in self.transports.values():
            t.close()

    def _due(self, channel: str, now: datetime) -> list[OutgoingMessage]:
        earlier = aliased(OutboxMessage)
        blocked = exists().where(and_(earlier.channel == OutboxMessage.channel, earlier.case_id == OutboxMessage.case_id, earlier.status == PENDING, earlier.id < OutboxMessage.id))
        q = (
            select(OutboxMessage)
            .where(OutboxMessage.channel == channel, OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now, ~blocked)
            .order_by(OutboxMessage.id)
            .limit(self.config.batch_size)
        )
        with self.db.transaction() as s:
            return [OutgoingMessage(m.id, m.channel, m.topic, m.idempotency_key, m.case_id, m.payload.encode()) for m in s.scalars(q)]

    def _deliver_channel(self, channel: str, transport: Transport, now: datetime) -> DeliveryStats:
        stats = DeliveryStats()
        while due := self._due(channel, now):
            sent_before = stats.sent
            try:
                transport.open()
            except DeliveryFailed as e:  # cannot even connect: every due message failed this round
                for msg in due:
                    self._record_failure(msg, now, str(e), stats)
                break
            for msg in due:
                try:
                    transport.send(msg)
                except DeliveryFailed as e:
                    self._record_failure(msg, now, str(e), stats)
                    if e.unreachable:
                        return stats  # the rest stays due for the next round
                else:
                    self._record_success(msg, now)
                    stats.sent += 1
            if stats.sent == sent_before:
                break  # nothing got through; the rest waits for its backoff
        return stats

    def _record_success(self, msg: OutgoingMessage, now: datetime) -> None:
        with self.db.transaction() as s:
            s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == msg.id, OutboxMessage.status == PENDING)
                .values(status=DELIVERED, delivered_at=now, attempts=OutboxMessage.attempts + 1, last_error=None)
            )

    def _record_failure(self, msg: OutgoingMessage, now: datetime, error: str, stats: DeliveryStats) -> None:
        with self.db.transaction() as s:
            row = s.get(OutboxMessage, msg.id, with_for_update=True)
            if row is None or row.status != PENDING:
                return
            row.attempts += 1
            row.last_error = error[:2000]
            if row.attempts >= self.config.max_attempts:
                row.status = DEAD
                stats.dead += 1
                log.error("outbox message %s (%s) is dead after %d attempts: %s", row.idempotency_key, row.channel, row.attempts, error)
            else:
                row.next_attempt_at = now + backoff(self.config, row.attempts, row.idempotency_key)
                stats.failed += 1
                log.warning("outbox message %s (%s) failed, attempt %d: %s", row.idempotency_key, row.channel, row.attempts, error)


def counts(db: Database) -> dict[tuple[str, str], int]:
    """Messages per (channel, status), for `streetorder outbox status`."""
    with db.transaction() as s:
        rows = s.execute(select(OutboxMessage.channel, OutboxMessage.status, func.count()).group_by(OutboxMessage.channel, OutboxMessage.status))
        return {(c, st): n for c, st, n in rows}


def requeue_dead(db: Database, now: datetime, channel: str | None = None) -> int:
    """Give dead messages a fresh set of attempts, e.g. after fixing a receiver's URL or secret."""
    q = update(OutboxMessage).where(OutboxMessage.status == DEAD)
    if channel:
        q = q.where(OutboxMessage.channel == channel)
    with db.transaction() as s:
        return s.execute(q.values(status=PENDING, attempts=0, next_attempt_at=now)).rowcount
