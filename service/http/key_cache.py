"""The API keys that were active when the service last saw the ledger database, kept in a local file, so that a
service started during a database outage still knows its cameras (and refuses a key revoked before it).

The file holds each active key's SHA-256 (as the database does), its holder's name, role and id, never a key
itself. It is rewritten (atomically, mode 0600) whenever the active set read from the database changes. Anyone
who can write it could add a key of their own for the length of an outage, so a file that others may write, or
that another user owns, is refused.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from pipeline.cases.evidence_store import fsync_dir

from .keys import KeySnapshot, Principal, Role

log = logging.getLogger(__name__)

FORMAT = 1


class KeyCacheError(ValueError):
    """The key cache exists but cannot be trusted or read; the message says what to do."""


class _Key(BaseModel):
    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    key_id: int
    name: str
    role: Role


class _File(BaseModel):
    format: int
    written_at: datetime
    keys: list[_Key]


class KeyCache:
    """One file; `load` and `save` are all there is."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> KeySnapshot | None:
        """The snapshot in the file; None when there is none. Raises KeyCacheError when the file is there but
        others may write it, another user owns it, or it does not parse."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or st.st_uid != os.geteuid():
            raise KeyCacheError(
                f"key cache {self.path} is writable by others or owned by another user (mode {stat.S_IMODE(st.st_mode):o}, uid {st.st_uid}): "
                "anyone who can write it could let a key in during an outage; remove it (it is rewritten while the database is up) or chmod 600 it"
            )
        try:
            data = _File.model_validate_json(self.path.read_bytes())
        except (ValidationError, ValueError) as e:
            raise KeyCacheError(f"key cache {self.path} cannot be read ({str(e).splitlines()[0]}): remove it; it is rewritten while the database is up") from None
        if data.format != FORMAT:
            raise KeyCacheError(f"key cache {self.path} has format {data.format}, this service reads {FORMAT}: remove it")
        return KeySnapshot({k.key_hash: Principal(k.name, k.role, k.key_id) for k in data.keys}, data.written_at)

    def save(self, snapshot: KeySnapshot) -> None:
        """Replace the file by `snapshot`: a temp file of mode 0600, fsync, rename, fsync of the folder."""
        keys = [{"key_hash": h, "key_id": p.key_id, "name": p.name, "role": p.role.value} for h, p in sorted(snapshot.keys.items(), key=lambda kv: kv[1].key_id or 0)]
        body = json.dumps({"format": FORMAT, "written_at": snapshot.taken_at.astimezone(UTC).isoformat(), "keys": keys}, ensure_ascii=False, indent=1).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an older temp file may have been made with a looser mode
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
