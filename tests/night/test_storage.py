"""A ledger that cannot take writes, for real: read-only and full file systems (tmpfs), a file where a folder
should be. The night says so plainly, before it starts when it can, and never leaves anything half-written.

Read-only and full file systems are real tmpfs mounts inside a private mount namespace (`unshare --mount`,
as root; else a user namespace), so nothing outside the test's own processes ever sees them. Where neither
is allowed, those tests skip and say why; the file-for-folder test runs everywhere.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SAMPLES = REPO / "datasets" / "samples" / "footage"
STREETORDER = str(Path(sys.executable).parent / "streetorder")
PREFIXES = (["unshare", "--mount"], ["unshare", "--user", "--map-root-user", "--mount"])


@pytest.fixture(scope="session")
def unshare(tmp_path_factory) -> list[str]:
    """The command prefix that gives a process its own mounts, where tmpfs can be mounted and remounted read-only."""
    d = tmp_path_factory.mktemp("mount-probe")
    why = "no unshare command"
    if shutil.which("unshare"):
        for prefix in PREFIXES:
            r = subprocess.run([*prefix, "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {d} && mount -o remount,ro {d}"], capture_output=True, text=True)
            if r.returncode == 0:
                return prefix
            why = r.stderr.strip()
    pytest.skip(f"cannot mount a tmpfs in a private mount namespace here: {why}")


def in_mounts(prefix: list[str], tmpfs: dict[Path, str], prepare: str, command: list[str], after: str = "", timeout: int = 300) -> tuple[int, str, str]:
    """Run `command` in a private mount namespace where each `tmpfs` folder is a fresh tmpfs of the given size,
    after the shell lines `prepare` (fill it, remount it read-only); `after` runs there too, before the mounts vanish."""
    out = next(iter(tmpfs)).parent  # results go beside the mounts, on the real disk
    mounts = "\n".join(f"mkdir -p {shlex.quote(str(d))} && mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(d))}" for d, size in tmpfs.items())
    script = f"set -e\n{mounts}\n{prepare}\nset +e\n{shlex.join(command)} > {out}/stdout 2> {out}/stderr\necho $? > {out}/rc\n{after}\n"
    r = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0 and (out / "rc").is_file(), r.stderr
    return int((out / "rc").read_text()), (out / "stdout").read_text(), (out / "stderr").read_text()


def fill(d: Path) -> str:
    return f"dd if=/dev/zero of={shlex.quote(str(d / 'filler'))} bs=4k 2>/dev/null || true"


def footage(root: Path, lane: bool = False) -> Path:
    f = root / "footage"
    (f / "patrol").mkdir(parents=True)
    shutil.copy(SAMPLES / "patrol" / "patrol_03.jpg", f / "patrol")
    if lane:
        (f / "cam-lane").mkdir()
        shutil.copy(SAMPLES / "cam-lane" / "lane_20261120_220000.mp4", f / "cam-lane")
    return f


def night(root: Path, db: Path, evidence: Path, *extra: str) -> list[str]:
    ledger = root / "ledger.yaml"
    ledger.write_text(f"evidence_dir: {json.dumps(str(evidence))}\n", encoding="utf-8")
    return [STREETORDER, "run", str(root / "footage"), "--db", f"sqlite:///{db}", "--ledger", str(ledger), "--report", str(root / "reports"), "--json", *extra]


@pytest.mark.parametrize("where", ["ledger", "evidence"])
@pytest.mark.parametrize("state, reason", [("read-only", "the file system is read-only"), ("full", "the disk is full")])
def test_unwritable_ledger_storage_stops_the_night_before_it_starts(tmp_path, unshare, where, state, reason):
    footage(tmp_path)
    place = tmp_path / "mnt"
    db, evidence = (place / "ledger.db", tmp_path / "evidence") if where == "ledger" else (tmp_path / "ledger.db", place)
    prepare = fill(place) if state == "full" else f"mount -o remount,ro {place}"
    rc, out, err = in_mounts(unshare, {place: "256k"}, prepare, night(tmp_path, db, evidence))
    what = "ledger database directory" if where == "ledger" else "evidence directory"
    assert rc == 2 and out == "", err
    assert f"the night did not start: {what} {place}: {reason}" in err
    assert not (tmp_path / "ledger.db").exists() and not (tmp_path / "reports").exists()  # checked before anything was written


@pytest.mark.parametrize("where", ["ledger", "evidence"])
def test_a_file_where_a_folder_should_be(tmp_path, where):
    footage(tmp_path)
    (tmp_path / "blocker").write_text("a file, not a folder")
    db, evidence = (tmp_path / "blocker" / "ledger.db", tmp_path / "evidence") if where == "ledger" else (tmp_path / "ledger.db", tmp_path / "blocker")
    r = subprocess.run(night(tmp_path, db, evidence), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert f"{tmp_path / 'blocker'}: a file stands where a folder should be" in r.stderr


def test_evidence_disk_filling_up_mid_night_stops_it_with_nothing_half_written(tmp_path, unshare):
    """The evidence folder takes the start-up probe, then fills on the night's first case: the night stops, says why
    and which files it did not reach; the ledger holds no case without its evidence and no half-written file."""
    footage(tmp_path, lane=True)
    evidence, listing = tmp_path / "evidence", tmp_path / "listing.txt"
    cmd = night(tmp_path, tmp_path / "ledger.db", evidence, "--every", "20")
    rc, out, err = in_mounts(unshare, {evidence: "160k"}, "", cmd, after=f"find {evidence} -type f -printf '%P\\n' > {listing}")
    assert rc == 3, err
    summary = json.loads(out)
    assert "evidence directory" in summary["stopped"] and "the disk is full" in summary["stopped"]
    assert f"the night stopped early: evidence directory {evidence}: the disk is full" in err
    not_reached = {Path(f["path"]).name for f in summary["failed"] if f["outcome"] == "skipped" and "not processed: the night stopped" in f["error"]}
    assert not_reached == {"lane_20261120_220000.mp4", "patrol_03.jpg"}
    stored = listing.read_text().split()
    assert not [f for f in stored if ".incoming-" in f or ".probe-" in f]  # no half-written file was left
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("select count(*) from cases").fetchone() == (0,)  # the case whose evidence failed was never posted
        assert db.execute("select count(*) from case_evidence").fetchone() == (0,)
    html = Path(summary["report"]).read_text(encoding="utf-8")  # the report (on another disk) says so too
    assert 'id="stopped"' in html and "the disk is full" in html


DB_FULL = r"""
import json, sys
from pathlib import Path
from pipeline.cases import CaseStore, LedgerConfig
from pipeline.db.storage import StorageError
from tests.cases.factory import evidence_file, incident
mnt, work = Path(sys.argv[1]), Path(sys.argv[2])
config = LedgerConfig(database_url=f"sqlite:///{mnt / 'ledger.db'}", evidence_dir=work / "evidence")
store = CaseStore.open(config)
store.post_incident(incident(work, "first", point="P-1", evidence=[evidence_file(work, 1)]))
with open(mnt / "filler", "wb", buffering=0) as f:  # the disk fills up while the night runs (unbuffered: no flush left to fail on close)
    try:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    except OSError:
        pass
try:
    store.post_incident(incident(work, "second", point="P-2", evidence=[evidence_file(work, 2)]))
    error = None
except StorageError as e:
    error = str(e)
store.close()
(mnt / "filler").unlink()
store = CaseStore.open(config)
print(json.dumps({"error": error, "incidents": [i for c in store.list() for i in c.incident_ids]}))
"""


def test_ledger_database_filling_up_is_a_storage_error_and_rolls_back(tmp_path, unshare):
    mnt = tmp_path / "mnt"
    cmd = [sys.executable, "-c", DB_FULL, str(mnt), str(tmp_path)]
    rc, out, err = in_mounts(unshare, {mnt: "1m"}, f"cd {shlex.quote(str(REPO))}", cmd)
    assert rc == 0, err
    result = json.loads(out)
    assert result["error"] and result["error"].startswith(f"ledger database sqlite:///{mnt / 'ledger.db'}:")
    assert "full" in result["error"] or "disk I/O error" in result["error"]
    assert result["incidents"] == ["first"]  # the failed posting left no trace once the space came back
