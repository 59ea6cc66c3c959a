"""Outbound transports for the outbox, kept apart from the ledger core (as Frigate keeps its publishers)."""

from __future__ import annotations

from ..config import LedgerConfig
from ..outbox import Transport


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
