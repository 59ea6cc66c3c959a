"""The camera config as the engine uses it, and the fixture edits the API makes to it at run time.

The engine reads the config on every frame, so reading and editing it happen under the engine lock (the one
`ServiceState` makes and shares with the live intake): an edit never lands in the middle of a frame.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from pipeline.config import CameraConfig, ConfigSource, Fixture, StreetOrderConfig
from pipeline.config.load import add_fixtures, remove_fixture, update_fixture

from .errors import NotFound


class Cameras:
    """`source` re-reads the config file and the fixtures file when they change; its `version` and `error` say
    how the last reload went."""

    def __init__(self, source: ConfigSource, lock: threading.Lock) -> None:
        self.source = source
        self.lock = lock
        self.on_change: Callable[[StreetOrderConfig], object] | None = None  # after a reload, outside the lock; must not block
        self._version = source.version

    @property
    def path(self) -> Path | None:
        return self.source.path

    def config(self) -> StreetOrderConfig:
        """The current config, re-read first if its file or the fixtures file changed (then `on_change` is told)."""
        with self.lock:
            config = self.source.get()
            changed, self._version = self.source.version != self._version, self.source.version
        if changed and self.on_change is not None:
            self.on_change(config)
        return config

    def camera(self, camera_id: str) -> CameraConfig:
        try:
            return self.config().camera(camera_id)
        except KeyError as e:
            raise NotFound(e.args[0]) from None

    def add_fixtures(self, camera_id: str, fixtures: list[Fixture], *, check_only: bool = False) -> list[Fixture]:
        """Append fixtures to the config's fixtures file; the next frame uses them (ConfigSource sees the change)."""
        with self.lock:
            added = add_fixtures(self.source.get(), camera_id, fixtures, check_only=check_only)
            self.source.get()
            return added

    def update_fixture(self, camera_id: str, fixture: Fixture) -> Fixture:
        """Edit a fixture of the fixtures file in place (same id); the next frame uses it."""
        with self.lock:
            updated = update_fixture(self.source.get(), camera_id, fixture)
            self.source.get()
            return updated

    def remove_fixture(self, camera_id: str, fixture_id: str) -> Fixture:
        with self.lock:
            gone = remove_fixture(self.source.get(), camera_id, fixture_id)
            self.source.get()
            return gone
