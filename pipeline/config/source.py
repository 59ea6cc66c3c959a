"""The live config: re-read when its file (or the fixtures file) changes, the last good one kept on a bad edit."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .load import ConfigError, load_config
from .models import StreetOrderConfig

log = logging.getLogger(__name__)


class ConfigSource:
    """The config, re-read when its file (or the fixtures file) changes: zone and fixture edits need no restart.

    A config that fails validation after an edit is reported in `error` and the last good one stays in use.
    """

    def __init__(self, source: str | Path | StreetOrderConfig) -> None:
        self.path = None if isinstance(source, StreetOrderConfig) else Path(source)
        self.config = source if isinstance(source, StreetOrderConfig) else load_config(self.path)
        self.version = 1
        self.error: str | None = None
        self._stamp = self._mtimes()

    def _mtimes(self) -> tuple:
        if self.path is None:
            return ()
        files = [self.path] + ([self.config.fixtures_file] if self.config.fixtures_file else [])
        # inode too: add_fixture replaces the file, and two writes can share one mtime tick
        return tuple((st.st_mtime_ns, st.st_ino, st.st_size) if (st := _stat(f)) else None for f in files)

    def get(self) -> StreetOrderConfig:
        if self.path is not None and (stamp := self._mtimes()) != self._stamp:
            self._stamp = stamp
            try:
                self.config = load_config(self.path)
                self.version += 1
                self.error = None
                log.info("config reloaded from %s", self.path)
            except ConfigError as e:
                self.error = str(e)
                log.error("config change ignored, keeping the last good one: %s", e)
        return self.config


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
