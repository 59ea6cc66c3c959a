"""Outbound transports for the outbox, kept apart from the ledger core (as Frigate keeps its publishers)."""

from __future__ import annotations

from ...db.engine import Database
from ..config import LedgerConfig
from ..errors import LedgerError
from ..outbox import OutboxWorker, Transport


def transports_for(config: LedgerConfig) -> list[Transport]:
    """One transport per configured channel, matching the outbox rows the store writes."""
    out: list[Transport] = []
    if config.webhook is not None:
        from .webhook import WebhookTransport

        out.append(WebhookTransport(config.webhook))
    if config.mqtt is not None:
        from .mqtt import MqttTransport

        out.append(MqttTransport(config.mqtt))
    return out


def outbox_worker(db: Database, config: LedgerConfig) -> OutboxWorker:
    """The worker that delivers this ledger's outbox through every configured channel; an error if there is none."""
    transports = transports_for(config)
    if not transports:
        raise LedgerError("no delivery channel configured (set webhook and/or mqtt in the ledger config)")
    return OutboxWorker(db, transports, config.outbox)
