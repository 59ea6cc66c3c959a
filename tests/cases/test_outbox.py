"""Outbox delivery to real receivers: an HTTP server that is down for an hour, and the local Mosquitto.

Backoff runs on an injected clock, so an hour of outage takes no real hour.
"""

from __future__ import annotations

import hmac
import json
import socket
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from pipeline.cases.config import MqttConfig, OutboxConfig
from pipeline.cases.delivery.mqtt import MqttTransport
from pipeline.cases.delivery.webhook import KEY_HEADER, SIGNATURE_HEADER, WebhookTransport, sign, verify_signature
from pipeline.cases.outbox import OutboxWorker, backoff, requeue_dead
from pipeline.db.tables.ledger import OutboxMessage

from .factory import T0, incident

SECRET = "hmac-secret-for-tests-0123"
TYPES = ("street_vending", "non_motor_parking", "garbage")


class Receiver:
    """The city's case system, as a test double with the behaviour that matters: it dedupes by key."""

    def __init__(self):
        self.down = True
        self.drop_next_response = False
        self.accepted: dict[str, dict] = {}  # key → message, in arrival order
        self.duplicates = 0
        self.bad_signatures = 0
        self.requests = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests += 1
                    if receiver.down:
                        return self._answer(503)
                    if not verify_signature(SECRET, body, self.headers.get(SIGNATURE_HEADER)):
                        receiver.bad_signatures += 1
                        return self._answer(401)
                    msg = json.loads(body)
                    key = self.headers[KEY_HEADER]
                    assert key == msg["idempotency_key"]
                    if key in receiver.accepted:
                        receiver.duplicates += 1
                    else:
                        receiver.accepted[key] = msg
                    if receiver.drop_next_response:  # processed, but the answer is lost on the way back
                        receiver.drop_next_response = False
                        self.close_connection = True
                        return None
                return self._answer(200)

            def _answer(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/cases"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def outbox_rows(store, channel: str | None = None) -> list[OutboxMessage]:
    with store.db.transaction() as s:
        q = select(OutboxMessage).order_by(OutboxMessage.id)
        return list(s.scalars(q.where(OutboxMessage.channel == channel) if channel else q))


def seed_cases(store, tmp_path, clock, n: int = 9) -> None:
    """n cases over three types, two thirds of them dispatched (two events each)."""
    for i in range(n):
        cid = store.post_incident(incident(tmp_path, f"inc-{i}", type=TYPES[i % 3], point=f"P-{i}")).case_id
        if i % 3:
            clock.advance(seconds=10)
            store.transition(cid, "dispatched", actor="chief")


def test_signature_is_hmac_sha256_of_the_exact_body():
    body = b'{"a":1}'
    assert sign(SECRET, body) == "sha256=" + hmac.new(SECRET.encode(), body, "sha256").hexdigest()
    assert verify_signature(SECRET, body, sign(SECRET, body))
    assert not verify_signature(SECRET, body + b" ", sign(SECRET, body))
    assert not verify_signature("another-secret-000000", body, sign(SECRET, body))
    assert not verify_signature(SECRET, body, None)


def test_backoff_doubles_with_jitter_and_is_capped():
    cfg = OutboxConfig(backoff_base_s=5, backoff_max_s=600)
    for attempt in range(1, 15):
        nominal = min(600, 5 * 2 ** (attempt - 1))
        d = backoff(cfg, attempt, "case-1-event-1").total_seconds()
        assert 0.5 * nominal <= d <= nominal
    assert backoff(cfg, 3, "k1") == backoff(cfg, 3, "k1")  # deterministic: testable and reproducible
    assert len({backoff(cfg, 3, f"k{i}") for i in range(20)}) > 10  # but spread over messages


@pytest.mark.slow
def test_receiver_down_for_an_hour_gets_every_event_exactly_once(make_store, receiver, tmp_path, clock):
    store = make_store(webhook={"url": receiver.url, "secret": SECRET}, outbox={"backoff_base_s": 5, "backoff_max_s": 600, "max_attempts": 40})
    seed_cases(store, tmp_path, clock)
    rows = outbox_rows(store)
    expected = {r.idempotency_key for r in rows}
    assert len(rows) == len(expected) == 9 + 6  # one per created and per dispatched event
    worker = OutboxWorker(store.db, [WebhookTransport(store.config.webhook)], store.config.outbox)

    start = clock.t
    for minute in range(0, 80, 2):
        now = start + timedelta(minutes=minute)
        if minute == 60:
            receiver.down = False
            receiver.drop_next_response = True
        worker.deliver_pending(now)
        if minute < 60:
            assert receiver.accepted == {}
    assert set(receiver.accepted) == expected  # nothing lost
    assert receiver.duplicates == 1  # the one whose answer was lost came again, with the same key
    assert receiver.bad_signatures == 0
    rows = outbox_rows(store)
    assert all(r.status == "delivered" and r.delivered_at >= start + timedelta(minutes=60) for r in rows)
    assert max(r.attempts for r in rows) < 25  # backoff kept the hour to a handful of tries per message
    # per case, events arrived in the order they happened: created before dispatched
    arrived = list(receiver.accepted.values())
    assert arrived
    for case_id in {m["case"]["id"] for m in arrived}:
        kinds = [m["event"]["to_status"] for m in arrived if m["case"]["id"] == case_id]
        assert kinds in (["detected"], ["detected", "dispatched"])
    msg = receiver.accepted[rows[0].idempotency_key]
    assert msg["case"]["evidence"][0]["url"] == f"http://127.0.0.1:8000/evidence/{msg['case']['evidence'][0]['sha256']}"
    # a later round has nothing left to send
    assert worker.deliver_pending(start + timedelta(hours=3)).sent == 0
    worker.close()


def test_dead_messages_stop_blocking_and_can_be_requeued(make_store, receiver, tmp_path, clock):
    store = make_store(webhook={"url": receiver.url, "secret": SECRET}, outbox={"backoff_base_s": 1, "backoff_max_s": 1, "max_attempts": 2})
    cid = store.post_incident(incident(tmp_path, "a")).case_id
    worker = OutboxWorker(store.db, [WebhookTransport(store.config.webhook)], store.config.outbox)
    worker.deliver_pending(clock.advance(seconds=5))
    stats = worker.deliver_pending(clock.advance(seconds=5))
    assert stats.dead == 1 and [r.status for r in outbox_rows(store)] == ["dead"]
    assert "HTTP 503" in outbox_rows(store)[0].last_error
    receiver.down = False
    clock.advance(seconds=5)
    store.transition(cid, "dispatched", actor="chief")
    worker.deliver_pending(clock.advance(seconds=5))  # the dead one no longer holds the case's later event back
    assert [r.status for r in outbox_rows(store)] == ["dead", "delivered"]
    assert requeue_dead(store.db, clock.t) == 1
    worker.deliver_pending(clock.advance(seconds=5))
    assert [r.status for r in outbox_rows(store)] == ["delivered", "delivered"]
    assert len(receiver.accepted) == 2


def test_an_unreachable_receiver_ends_the_round_after_one_try(make_store, tmp_path, clock):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = make_store(webhook={"url": f"http://127.0.0.1:{port}/cases", "secret": SECRET})
    seed_cases(store, tmp_path, clock, n=3)
    worker = OutboxWorker(store.db, [WebhookTransport(store.config.webhook)], store.config.outbox)
    stats = worker.deliver_pending(clock.advance(seconds=1))
    assert (stats.sent, stats.failed) == (0, 1)
    rows = outbox_rows(store)
    assert [r.attempts for r in rows if r.attempts] == [1] and "ConnectError" in rows[0].last_error
    assert worker.deliver_pending(clock.advance(seconds=1)).failed == 1  # the next one in line, the first backs off
    worker.close()


def test_no_channel_configured_means_no_outbox_rows(store, tmp_path):
    store.post_incident(incident(tmp_path, "a"))
    assert outbox_rows(store) == []


@pytest.fixture
def mqtt_subscriber():
    prefix = f"streetorder-test/{uuid.uuid4().hex[:10]}/cases"
    got: list[mqtt.MQTTMessage] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"so-test-{uuid.uuid4().hex[:8]}")
    client.on_message = lambda _c, _u, m: got.append(m)
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_connect = lambda c, *_a: c.subscribe(f"{prefix}/#", qos=1)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    assert subscribed.wait(10), "no SUBACK from the local Mosquitto"
    yield prefix, got
    client.disconnect()
    client.loop_stop()


def test_mqtt_one_message_per_event_on_the_per_type_topic(make_store, mqtt_subscriber, tmp_path, clock):
    prefix, got = mqtt_subscriber
    store = make_store(mqtt={"host": "127.0.0.1", "port": 1883, "topic_prefix": prefix, "timeout_s": 5})
    seed_cases(store, tmp_path, clock, n=6)
    rows = outbox_rows(store, "mqtt")
    assert len(rows) == 6 + 4

    broken = OutboxWorker(store.db, [MqttTransport(MqttConfig(host="127.0.0.1", port=1, topic_prefix=prefix, timeout_s=2))], store.config.outbox)
    stats = broken.deliver_pending(clock.advance(seconds=1))
    assert stats.sent == 0 and stats.failed == 6  # the first event of each case; the rest wait behind it
    assert "cannot connect" in outbox_rows(store, "mqtt")[0].last_error

    worker = OutboxWorker(store.db, [MqttTransport(store.config.mqtt)], store.config.outbox)
    stats = worker.deliver_pending(clock.advance(minutes=5))
    assert stats.sent == 10
    deadline = time.monotonic() + 10
    while len(got) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    keys = [json.loads(m.payload)["idempotency_key"] for m in got]
    assert sorted(keys) == sorted(r.idempotency_key for r in rows)  # each exactly once
    assert len(got) == 10
    for m in got:
        body = json.loads(m.payload)
        assert m.topic == f"{prefix}/{body['case']['type']}"
    assert {m.topic for m in got} == {f"{prefix}/{t}" for t in TYPES}
    assert all(r.status == "delivered" for r in outbox_rows(store, "mqtt"))
    worker.close()
    assert T0 <= min(r.created_at for r in rows)
