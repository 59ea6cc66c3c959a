"""A content-addressed file store for evidence: `<root>/<sha[:2]>/<sha256>`.

Content addressing makes ingest idempotent (a retry or a second camera's copy of the same frame costs
nothing) and lets any later reader check a file against the hash the case recorded. Files are written to
a temporary name, fsynced and renamed, so a crash never leaves a half file under a real name.
Deleting is `gc`'s job alone, and it only removes what the caller says is unreferenced.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..db.storage import storage_error
from .errors import EvidenceError

_SHA = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    path: Path


@dataclass(frozen=True)
class GcResult:
    deleted: tuple[str, ...]
    kept: int
    young_orphans: int  # unreferenced but inside the grace period


class EvidenceStore:
    """Local-directory blob store keyed by sha256."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if not _SHA.match(sha256):
            raise EvidenceError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def stored(self, sha256: str) -> StoredFile | None:
        """The file if it is already stored (its mtime refreshed for gc's grace period), else None."""
        p = self.path(sha256)
        try:
            os.utime(p)
            return StoredFile(sha256, p.stat().st_size, p)
        except FileNotFoundError:
            return None

    def read(self, sha256: str) -> bytes:
        p = self.path(sha256)
        try:
            return p.read_bytes()
        except FileNotFoundError:
            raise EvidenceError(f"evidence {sha256} is not in the store at {self.root}") from None

    def put_file(self, source: str | Path, expected_sha256: str | None = None) -> StoredFile:
        """Copy `source` in by content. A file whose bytes do not hash to `expected_sha256` is refused."""
        source = Path(source)
        try:
            with source.open("rb") as f:
                return self._ingest(iter(lambda: f.read(_CHUNK), b""), expected_sha256, name=str(source))
        except FileNotFoundError:
            raise EvidenceError(f"evidence file {source} does not exist") from None
        except IsADirectoryError:
            raise EvidenceError(f"evidence path {source} is a directory, not a file") from None
        except PermissionError:
            raise EvidenceError(f"evidence file {source} is not readable") from None

    def put_bytes(self, data: bytes, expected_sha256: str | None = None) -> StoredFile:
        return self._ingest(iter((data,)), expected_sha256, name="evidence bytes")

    def _ingest(self, chunks: Iterator[bytes], expected: str | None, name: str) -> StoredFile:
        if expected is not None and not _SHA.match(expected):
            raise EvidenceError(f"{name}: expected sha256 {expected!r} is not a 64-digit lowercase hex digest")
        try:
            return self._write(chunks, expected, name)
        except OSError as e:  # the store's disk, not the caller's file: full, read-only, a file in its place
            err = storage_error("evidence directory", self.root, e)
            if err is None:
                raise
            raise err from e

    def _write(self, chunks: Iterator[bytes], expected: str | None, name: str) -> StoredFile:
        self.root.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            if expected is not None and sha != expected:
                raise EvidenceError(f"{name}: content hashes to {sha}, not the reported {expected}; refusing altered or corrupt evidence")
            if size == 0:
                raise EvidenceError(f"{name}: empty file")
            final = self.path(sha)
            if final.is_file():
                os.utime(final)  # fresh mtime: gc's grace period now covers the posting that is about to reference it
            else:
                final.parent.mkdir(exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, final)
                tmp = None
                fsync_dir(final.parent)
            return StoredFile(sha, size, final)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def verify(self, sha256: str) -> bool:
        """True if the stored file still hashes to its name."""
        digest = hashlib.sha256()
        with self.path(sha256).open("rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
        return digest.hexdigest() == sha256

    def all(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    if _SHA.match(f.name) and f.name.startswith(sub.name):
                        yield f.name

    def gc(self, keep: set[str], *, grace_s: float, dry_run: bool = False) -> GcResult:
        """Delete stored files not in `keep` and not modified within `grace_s` seconds.

        The grace period protects files ingested by a posting whose transaction has not committed yet.
        Stale `.incoming-` temporaries from crashed ingests are removed under the same rule.
        """
        cutoff = time.time() - grace_s
        deleted, kept, young = [], 0, 0
        for sha in list(self.all()):
            if sha in keep:
                kept += 1
                continue
            p = self.path(sha)
            if p.stat().st_mtime > cutoff:
                young += 1
                continue
            deleted.append(sha)
            if not dry_run:
                p.unlink(missing_ok=True)
        if not dry_run and self.root.is_dir():
            for tmp in self.root.glob(".incoming-*"):
                if tmp.stat().st_mtime <= cutoff:
                    tmp.unlink(missing_ok=True)
        return GcResult(tuple(deleted), kept, young)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable: fsync the directory itself (the ledger's evidence and the
    service's report journal both rely on it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
