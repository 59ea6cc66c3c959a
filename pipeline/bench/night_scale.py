"""Night job at scale, measured on the sample city (`streetorder run` on its defaults), all in one run:

- one worker process vs `--workers N`, interleaved round by round (each run a fresh ledger, wall time of the
  whole command, start-up included), and the ratio per round;
- a run killed with SIGKILL at about half of its uninterrupted time (or, `--half-way`, as soon as the lane video
  is recorded past half-way), then started again: how many frames the second run decodes (a restart from
  scratch decodes them all; every 2 s, the job's default, is assumed for the bound on frames decoded twice).

    python -m pipeline.bench.night_scale [--rounds 2] [--workers 2] [--balanced] [--no-kill] [--json]
    python -m pipeline.bench.night_scale --rounds 0 --kill-after 120 --checkpoint-every 60 --half-way --json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..paths import REPO

STREETORDER = str(Path(sys.executable).parent / "streetorder")


def balanced_footage(root: Path) -> Path:
    """Two cameras with one busy 15-minute video each."""
    from ..paths import SAMPLE_FOOTAGE

    lane = SAMPLE_FOOTAGE / "cam-lane" / "lane_20261120_220000.mp4"
    for camera, name in (("cam-lane", lane.name), ("cam-walkway", "walkway_20261120_221500.mp4")):
        (root / camera).mkdir(parents=True, exist_ok=True)
        (root / camera / name).write_bytes(lane.read_bytes())
    return root


def _run(work: Path, *args: str) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "YOLO_OFFLINE": "1"}
    t = time.perf_counter()
    r = subprocess.run([STREETORDER, "run", "--json", *args], cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return time.perf_counter() - t, json.loads(r.stdout)


def _recorded_frames(work: Path) -> tuple[int, list[dict]]:
    import sqlite3

    with sqlite3.connect(work / "var" / "streetorder.db") as conn:
        rows = [dict(zip(("source", "status", "position", "frames"), r)) for r in conn.execute("SELECT source, status, position, frames FROM night_progress WHERE unit != 'patrol'")]
    return sum(r["frames"] for r in rows), rows


def _lane_position(work: Path) -> float:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{work / 'var' / 'streetorder.db'}?mode=ro", uri=True, timeout=0.1) as conn:
            row = conn.execute("SELECT position FROM night_progress WHERE source LIKE '%lane_%'").fetchone()
        return row[0] if row else 0.0
    except sqlite3.Error:
        return 0.0


def measure(rounds: int = 2, workers: int = 2, balanced: bool = False, kill: bool = True, kill_after_s: float | None = None, checkpoint_s: float = 300.0, half_way: bool = False) -> dict:
    out: dict = {"machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (shared with other jobs)", "footage": "balanced" if balanced else "sample", "rounds": []}
    with tempfile.TemporaryDirectory(prefix="night-bench-") as tmp:
        tmp = Path(tmp)
        footage = [str(balanced_footage(tmp / "footage"))] if balanced else []
        for i in range(rounds):
            row = {}
            for label, n in (("sequential", 1), (f"workers_{workers}", workers)):
                work = tmp / f"{label}-{i}"
                work.mkdir()
                wall, summary = _run(work, *footage, "--workers", str(n))
                row[label] = {"wall_s": round(wall, 1), "job_s": summary["seconds"], "frames": summary["frames"], "cases_created": summary["cases_created"]}
            row["speedup"] = round(row["sequential"]["wall_s"] / row[f"workers_{workers}"]["wall_s"], 2)
            out["rounds"].append(row)
        if rounds:
            out["speedup_median"] = round(statistics.median(r["speedup"] for r in out["rounds"]), 2)
        out["machine_after"] = f"load average {os.getloadavg()[0]:.1f} at the end"
        if not kill:
            return out

        # kill -9 at about half of the uninterrupted time (or after `kill_after_s`), then the same night again
        full_wall = 2 * kill_after_s if kill_after_s else statistics.median(r[f"workers_{workers}"]["wall_s"] for r in out["rounds"])
        full_frames = out["rounds"][0][f"workers_{workers}"]["frames"] if rounds else 466
        work = tmp / "killed"
        work.mkdir()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "YOLO_OFFLINE": "1"}
        ckpt = ["--checkpoint-every", str(checkpoint_s)]
        proc = subprocess.Popen([STREETORDER, "run", "--json", "--workers", str(workers), *ckpt], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < full_wall / 2 and proc.poll() is None:
            time.sleep(0.05)
            if half_way and _lane_position(work) >= 451:  # the lane video (902 s) recorded past half-way
                break
        killed_after = time.perf_counter() - t0
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        recorded, rows = _recorded_frames(work)
        wall, resumed = _run(work, "--workers", str(workers), *ckpt)
        out["kill_at_half"] = {
            "killed_after_s": round(killed_after, 1),
            "kill_when": "lane video recorded past 451 s (half-way)" if half_way else "half the uninterrupted time",
            "checkpoint_every_s": checkpoint_s,
            "frames_recorded_before_kill": recorded,
            "progress_rows": rows,
            "frames_decoded_by_the_rerun": resumed["frames"],
            "frames_decoded_by_a_restart_from_scratch": full_frames,
            # frames the killed run had handled past its last record are decoded again: at most one checkpoint
            # interval per camera in flight
            "frames_decoded_again_at_most": workers * int(checkpoint_s // 2.0),
            "rerun_wall_s": round(wall, 1),
            "rerun_cases_created": resumed["cases_created"],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--balanced", action="store_true", help="two cameras with a busy 15-minute video each, instead of the sample footage")
    p.add_argument("--no-kill", action="store_true", help="skip the kill -9 and resume measurement")
    p.add_argument("--kill-after", type=float, help="seconds after which to kill (default: half the measured uninterrupted time; needed with --rounds 0)")
    p.add_argument("--checkpoint-every", type=float, default=300.0, help="the job's --checkpoint-every for the kill measurement (default 300, the job's default)")
    p.add_argument("--half-way", action="store_true", help="kill as soon as the lane video is recorded past half-way (instead of at half the time)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.rounds == 0 and not args.kill_after:
        p.error("--rounds 0 needs --kill-after")
    result = measure(args.rounds, args.workers, args.balanced, not args.no_kill, args.kill_after, args.checkpoint_every, args.half_way)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for i, r in enumerate(result["rounds"]):
            print(f"round {i}: sequential {r['sequential']['wall_s']} s, --workers {args.workers} {r[f'workers_{args.workers}']['wall_s']} s, speedup {r['speedup']}")
        print(f"speedup (median) {result.get('speedup_median')}; {result['machine']}")
        if "kill_at_half" not in result:
            return 0
        k = result["kill_at_half"]
        print(f"kill -9 after {k['killed_after_s']} s: {k['frames_recorded_before_kill']} frames recorded; the rerun decoded {k['frames_decoded_by_the_rerun']} frames (a restart: {k['frames_decoded_by_a_restart_from_scratch']}), at most {k['frames_decoded_again_at_most']} decoded twice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
