"""Webhook delivery: HTTP POST of the message JSON, signed with HMAC-SHA256.

Headers: `X-Streetorder-Signature: sha256=<hex HMAC of the raw body>` and `Idempotency-Key`. Any 2xx is
success; anything else, or no answer, is retried by the outbox, so a receiver must dedupe by the key.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx

from ..config import WebhookConfig
from ..outbox import DeliveryFailed, OutgoingMessage

SIGNATURE_HEADER = "X-Streetorder-Signature"
KEY_HEADER = "Idempotency-Key"


def sign(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """For receivers: constant-time check of the signature header against the raw body."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


class WebhookTransport:
    channel = "webhook"

    def __init__(self, config: WebhookConfig, *, transport: httpx.BaseTransport | None = None):
        self.config = config
        self._transport = transport  # for tests that want an in-process receiver
        self._client: httpx.Client | None = None

    def open(self) -> None:
        if self._client is None:  # one client for the worker's life: building one (TLS context) is costly
            self._client = httpx.Client(timeout=self.config.timeout_s, transport=self._transport, headers={"User-Agent": "streetorder-outbox"})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def send(self, message: OutgoingMessage) -> None:
        self.open()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            KEY_HEADER: message.idempotency_key,
            SIGNATURE_HEADER: sign(self.config.secret.get_secret_value(), message.body),
        }
        try:
            r = self._client.post(self.config.url, content=message.body, headers=headers)
        except (httpx.ConnectError, httpx.TimeoutException) as e:
            raise DeliveryFailed(f"POST {self.config.url}: {type(e).__name__}: {e}", unreachable=True) from e
        except httpx.HTTPError as e:
            raise DeliveryFailed(f"POST {self.config.url}: {type(e).__name__}: {e}") from e
        if not r.is_success:
            raise DeliveryFailed(f"POST {self.config.url}: HTTP {r.status_code} {r.text[:200]!r}")
