"""Is the ledger's storage writable? Checked before a long job starts, and said plainly when it fails mid-way.

A night job that finds out at 3 a.m. that its disk is full, or that learns at the end that the evidence folder is
read-only, has wasted the night. `check_ledger_storage` probes the evidence folder, the SQLite database's folder
and the database itself up front; `storage_error` turns the OS's or the database's failure into one
`StorageError` that names the place and the reason, wherever it happens later.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from .urls import normalize_url

# errno values that mean "this place cannot take writes", as opposed to a bad input file
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO, errno.ENOTDIR, errno.EEXIST, errno.EFBIG})
# SQLite's wording for the same conditions (it reports them as OperationalError)
_SQLITE_STORAGE = re.compile(r"disk is full|readonly database|disk I/O error|unable to open database file", re.I)
_PG_STORAGE_SQLSTATE = ("53", "25006")  # insufficient resources (disk full, out of memory); read-only transaction
_HINT = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "not permitted",
    errno.ENOTDIR: "a file stands where a folder should be",
    errno.EEXIST: "a file stands where a folder should be",
    errno.EIO: "input/output error",
    errno.EFBIG: "file too large",
}
PROBE_BYTES = 64 * 1024  # enough to fail on a disk that is all but full, small enough to cost nothing


class StorageError(RuntimeError):
    """The ledger's database or evidence directory cannot take writes: read-only, full, missing, a file where a
    folder should be. Not an input error: the same report would succeed once the storage is fixed, so callers
    keep what they could not post instead of dropping it, and a batch job stops instead of failing every file."""


def storage_error(what: str, place: str | Path, e: BaseException) -> StorageError | None:
    """`e` as a StorageError about `what` at `place`, or None if `e` is not about storage at all."""
    if isinstance(e, StorageError):
        return e
    if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
        return StorageError(f"{what} {place}: {_HINT.get(e.errno, e.strerror)} ({e.strerror or e})")
    orig = getattr(e, "orig", None)  # a SQLAlchemy DBAPIError wraps the driver's exception
    if orig is not None:
        sqlstate = getattr(orig, "sqlstate", None) or ""
        if _SQLITE_STORAGE.search(str(orig)) or sqlstate.startswith(_PG_STORAGE_SQLSTATE):
            msg = str(orig).strip().splitlines()[0]
            return StorageError(f"{what} {place}: {msg} (is its folder read-only, full or missing?)")
    return None


def check_writable_dir(path: Path, what: str) -> None:
    """Create `path` if needed and write, fsync and remove a probe file in it; raise StorageError if any step fails."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StorageError(f"{what} {path}: a file stands where a folder should be")
    tmp = None
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".probe-")
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise storage_error(what, path, e) or StorageError(f"{what} {path}: cannot write ({e})") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def sqlite_file(database_url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    u = make_url(normalize_url(database_url))
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def check_ledger_storage(config, *extra_dirs: tuple[str, Path]) -> None:
    """Raise StorageError unless the evidence folder, the SQLite database (its folder: it needs -wal and -shm
    files beside it) and every `(what, folder)` in `extra_dirs` take writes. PostgreSQL is checked when the
    store opens; its disk is the server's."""
    check_writable_dir(config.evidence_dir, "evidence directory")
    db_file = sqlite_file(config.database_url)
    if db_file is not None:
        check_writable_dir(db_file.parent, "ledger database directory")
    for what, folder in extra_dirs:
        check_writable_dir(folder, what)
