"""MQTT delivery with paho: one topic per violation type, QoS 1 or 2, success only on the broker's ack."""

from __future__ import annotations

import os
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..config import MqttConfig
from ..outbox import DeliveryFailed, OutgoingMessage


class MqttTransport:
    channel = "mqtt"

    def __init__(self, config: MqttConfig):
        self.config = config
        self._client: mqtt.Client | None = None

    def open(self) -> None:
        """Connect once and stay connected; reconnect on the next round if the link broke."""
        if self._client is not None:
            if self._client.is_connected():
                return
            self.close()
        cfg = self.config
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"streetorder-outbox-{os.getpid()}-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311, clean_session=True)
        client.reconnect_on_failure = False  # the outbox retries; paho must not reconnect behind its back
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password.get_secret_value() if cfg.password else None)
        connected = threading.Event()
        result: dict[str, object] = {}

        def on_connect(_c, _u, _flags, reason_code, _props) -> None:
            result["rc"] = reason_code
            connected.set()

        client.on_connect = on_connect
        where = f"mqtt://{cfg.host}:{cfg.port}"
        try:
            client.connect(cfg.host, cfg.port, keepalive=60)
        except OSError as e:
            raise DeliveryFailed(f"{where}: cannot connect: {e}", unreachable=True) from e
        client.loop_start()
        rc = result.get("rc") if connected.wait(cfg.timeout_s) else None
        if rc is None or rc.is_failure:
            client.disconnect()
            client.loop_stop()
            raise DeliveryFailed(f"{where}: connection refused by broker ({rc})" if rc is not None else f"{where}: no CONNACK within {cfg.timeout_s}s", unreachable=True)
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def send(self, message: OutgoingMessage) -> None:
        self.open()
        if not message.topic:
            raise DeliveryFailed(f"message {message.idempotency_key} has no MQTT topic")
        info = self._client.publish(message.topic, message.body, qos=self.config.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise DeliveryFailed(f"publish to {message.topic}: {mqtt.error_string(info.rc)}", unreachable=info.rc == mqtt.MQTT_ERR_NO_CONN)
        try:
            info.wait_for_publish(self.config.timeout_s)
        except (RuntimeError, ValueError) as e:
            raise DeliveryFailed(f"publish to {message.topic}: {e}", unreachable=True) from e
        if not info.is_published():
            raise DeliveryFailed(f"publish to {message.topic}: no acknowledgement within {self.config.timeout_s}s", unreachable=True)
