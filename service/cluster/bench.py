"""`streetorder bench serve --ray ADDRESS|local`: the service on Ray Serve with 1 and 2 detector replicas, against
the one-process service, in one run.

Each setup gets the same two phases, with the same real images (`--data`):
- `POST /detect` at concurrency 16 (raw HTTP on kept-alive connections, as `bench serve` does): the detector path
  (ingress -> replica, batched there);
- `POST /frames` from `--cameras` cameras at once, each sending its frames in time order (one request at a time,
  as a camera does): the whole path (ingress -> the owner actor of the camera's shard -> a replica -> the engine -> the ledger).

The cluster's ledger is a database the bench makes on the given PostgreSQL server and drops after; the one
process uses SQLite (as `bench serve`). Between replica counts the application is updated in place
(`serve.run` with a new `num_replicas`). From the frames/s of one replica, the bench writes down what a district of
`DISTRICT_CAMERAS` cameras at one frame every `DISTRICT_EVERY_S` would need (`district`). On a machine with
fewer cores than replicas want, the figures show the cluster's overhead, not its scaling: read them as such.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml

from ..bench import DEFAULT_DATA, Service, _load, _pct

DISTRICT_CAMERAS = 500
DISTRICT_EVERY_S = 2.0
HEADROOM = 0.7  # plan replicas to run at this share of their measured throughput (bursts, a lost node's share)
DETECT_REQUESTS = 96
FRAMES_PER_CAMERA = 8
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
REPLICA_CPUS = 0.5  # so that two replicas and the cameras fit the logical CPUs of a two-core machine


def _camera_config(folder: Path, cameras: int) -> Path:
    """`cameras` cameras with no zones: the engine tracks and finds nothing, the detector does the work."""
    config = {"cameras": [{"id": f"bench-{i:03d}", "location": {"district": "bench", "point": f"P{i}"}, "resolution": [640, 640]} for i in range(cameras)]}
    path = folder / "cameras.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


async def _warm(url: str, key: str, blobs: list[bytes], cameras: int, at: datetime, timeout_s: float = 300) -> None:
    """One frame of each camera, resent on 503 until taken: every camera's owner is placed and warm."""

    async def camera(i: int) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=url, timeout=120, headers={"X-API-Key": key}) as client:
            while True:
                r = await client.post("/frames", data={"camera_id": f"bench-{i:03d}", "taken_at": at.isoformat()}, files={"image": ("f.jpg", blobs[i % len(blobs)], "image/jpeg")})
                if r.status_code != 503:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"camera bench-{i:03d} still refused after {timeout_s:.0f} s: {r.text}")
                await asyncio.sleep(1)

    await asyncio.gather(*(camera(i) for i in range(cameras)))


async def _cameras(url: str, key: str, blobs: list[bytes], cameras: int, frames: int, start: datetime, on_warm=None) -> dict:
    """Every camera posts `frames` frames, in order, all cameras at once, after a warm-up frame each (`on_warm()`
    runs between); frames/s and latencies of 200s."""
    latencies: list[float] = []
    errors: dict[int, int] = {}
    await _warm(url, key, blobs, cameras, start)
    if on_warm is not None:
        on_warm()

    async def camera(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120, headers={"X-API-Key": key}) as client:
            for n in range(1, frames + 1):
                at = start + timedelta(seconds=2 * n)
                t = time.perf_counter()
                r = await client.post("/frames", data={"camera_id": f"bench-{i:03d}", "taken_at": at.isoformat()}, files={"image": ("f.jpg", blobs[(i + n) % len(blobs)], "image/jpeg")})
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors[r.status_code] = errors.get(r.status_code, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(camera(i) for i in range(cameras)))
    wall = time.perf_counter() - began
    return {"frames": cameras * frames, "errors": errors, "frames_per_s": round(len(latencies) / wall, 2), "p50_ms": round(_pct(latencies, 50) * 1000, 1), "p99_ms": round(_pct(latencies, 99) * 1000, 1)}


def _phases(url: str, keys: dict[str, str], blobs: list[bytes], cameras: int, start: datetime, on_warm=None) -> dict:
    asyncio.run(_load(url, blobs, 4, 8, keys["camera"]))  # warm-up: connections, replicas' first batches
    lat, wall, err = asyncio.run(_load(url, blobs, 16, DETECT_REQUESTS, keys["camera"]))
    detect = {"requests": DETECT_REQUESTS, "errors": err, "images_per_s": round(len(lat) / wall, 2), "p50_ms": round(_pct(lat, 50) * 1000, 1), "p99_ms": round(_pct(lat, 99) * 1000, 1)}
    return {"detect_c16": detect, "frames": asyncio.run(_cameras(url, keys["camera"], blobs, cameras, FRAMES_PER_CAMERA, start, on_warm))}


def _bench_database(server_url: str):
    """A fresh database on `server_url`'s server, migrated: (its URL, a function that drops it)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from pipeline.db.engine import Database
    from pipeline.db.urls import normalize_url

    u = make_url(normalize_url(server_url))
    if u.get_backend_name() != "postgresql":
        raise ValueError(f"bench serve --ray needs a PostgreSQL server (--db or STREETORDER_DB), not {server_url.split(':')[0]}")
    name = f"streetorder_bench_{uuid.uuid4().hex[:8]}"
    conninfo = f"host={u.host or '127.0.0.1'} port={u.port or 5432} user={u.username or 'postgres'} dbname={u.database or 'postgres'}" + (f" password={u.password}" if u.password else "")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = u.set(database=name).render_as_string(hide_password=False)
    Database(url).dispose()

    def drop() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


def _owner_reports(owners: int) -> list:
    """Each placed owner actor of `owners` (`OwnerReport`: its pid and cameras); one no camera hashed to is
    never made."""
    import ray

    from .calls import NAMESPACE, owner_name

    handles = []
    for k in range(owners):
        try:
            handles.append(ray.get_actor(owner_name(k, owners), namespace=NAMESPACE))
        except ValueError:
            pass
    return ray.get([h.ping.remote() for h in handles])


def _owners_cpu(owners: int) -> list[float | None]:
    """CPU seconds so far of each owner actor (local processes)."""
    return [_cpu_s(o.pid) for o in _owner_reports(owners)]


def _cpu_s(pid: int) -> float | None:
    """User and system CPU seconds of a local process so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _rss_mb(pid: int) -> float | None:
    """Resident memory of a local process (Linux), for the camera actors' cost."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def district(
    per_replica_images_s: float, owner_cpu_s_per_frame: float | None, owner_mb: float | None, camera_mb: float | None, replica_cores: float,
    cameras_per_owner: int = 32,
) -> dict:
    """What `DISTRICT_CAMERAS` cameras at one frame every `DISTRICT_EVERY_S` need: detector replicas like the one
    measured (on `replica_cores` cores: Ray's CPU figure is a reservation, onnxruntime uses the cores it finds),
    cores for the camera owners from their measured CPU per frame (engine, ledger writes, the calls), memory from
    an owner's measured resident size: `owner_mb` for the process with no camera, `camera_mb` more for each
    camera it holds, at `cameras_per_owner` cameras an owner; each planned at `HEADROOM`."""
    need = DISTRICT_CAMERAS / DISTRICT_EVERY_S
    replicas = math.ceil(need / (per_replica_images_s * HEADROOM))
    owner_cores = None if owner_cpu_s_per_frame is None else round(need * owner_cpu_s_per_frame / HEADROOM, 1)
    owners = math.ceil(DISTRICT_CAMERAS / cameras_per_owner)
    memory = None if owner_mb is None or camera_mb is None else round((owners * owner_mb + DISTRICT_CAMERAS * camera_mb) / 1024, 1)
    return {
        "cameras": DISTRICT_CAMERAS, "every_s": DISTRICT_EVERY_S, "frames_per_s_needed": need, "per_replica_images_per_s": per_replica_images_s,
        "owner_cpu_ms_per_frame": None if owner_cpu_s_per_frame is None else round(owner_cpu_s_per_frame * 1000, 1), "headroom": HEADROOM,
        "detector_replicas": replicas, "replica_cores": replica_cores, "detector_cores": replicas * replica_cores, "camera_owner_cores": owner_cores,
        "camera_owners": owners, "cameras_per_owner": cameras_per_owner, "owner_base_mb": owner_mb, "camera_mb": camera_mb, "camera_owners_memory_gb": memory,
    }


def run_ray_bench(address: str, db: str, model: str | None = None, data: Path = DEFAULT_DATA, images: int = 16, replicas: tuple[int, ...] = (1, 2), cameras: int = 16) -> dict:
    import ray

    from service.http.keys import KeyStore, Role
    from service.settings import ServiceSettings
    from pipeline.cases.config import LedgerConfig
    from pipeline.db.engine import Database

    from . import serve_app
    from .calls import owner_count

    paths = sorted(p for p in Path(data).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:images]
    if len(paths) < 4:
        raise FileNotFoundError(f"bench serve --ray needs at least 4 images in {data}, found {len(paths)}")
    blobs = [p.read_bytes() for p in paths]
    out: dict = {"cpu": f"{os.cpu_count()} cores", "images": len(blobs), "cameras": cameras, "frames_per_camera": FRAMES_PER_CAMERA, "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-serve-ray-") as tmp:
        work = Path(tmp)
        config = _camera_config(work, cameras)
        # the one process first, on the same machine, in the same run
        single = work / "single"
        single.mkdir()
        env = {"STREETORDER_LATENCY_BUDGET_S": "60", "STREETORDER_FRAME_POOL": "off"}
        service = Service(model, env, single, config=config)
        try:
            service.wait_ready()
            out["single_process"] = _phases(service.url, service.keys, blobs, cameras, T0)
        finally:
            service.stop()
        url, drop = _bench_database(db)
        try:
            store = KeyStore(Database(url, auto_upgrade=False))
            keys = {role.value: store.create(f"bench-{role.value}", role).key for role in (Role.CAMERA, Role.ADMIN)}
            store.db.dispose()
            serve_app.connect(address, {"STREETORDER_FRAME_POOL": "off"}, log_to_driver=False)  # the owners offer no frames to the pool; stdout is the figures
            port = _free_port()
            runs = {}
            try:
                for i, n in enumerate(replicas):
                    settings = ServiceSettings(
                        camera_config=config, ledger=LedgerConfig(database_url=url, evidence_dir=work / "evidence", auto_upgrade=False), model=model,
                        evidence_dir=work / "engine", journal=work / "journal.jsonl", ray_journal_dir=work / "journals", latency_budget_s=60, ray_replicas=n,
                        ray_replica_cpus=REPLICA_CPUS,
                    )
                    serve_app.deploy(settings, port=port)
                    base = f"http://127.0.0.1:{port}"
                    _wait_replicas(base, keys["admin"], n)
                    warm: list[float | None] = []
                    owners = owner_count(settings, cameras)
                    run = _phases(base, keys, blobs, cameras, T0 + timedelta(hours=i + 1), on_warm=lambda: warm.extend(_owners_cpu(owners)))
                    after = _owners_cpu(owners)
                    run["replica_cpus"] = settings.ray_replica_cpus
                    if None not in warm + after:  # the owners' CPU over the measured frames alone
                        run["owner_cpu_ms_per_frame"] = round((sum(after) - sum(warm)) / (cameras * FRAMES_PER_CAMERA) * 1000, 1)
                    runs[str(n)] = run
                # an owner's memory: the owners of the runs above (all `cameras` cameras, or their share), against
                # one owner per camera (rendezvous hashing leaves some with one camera), after the same frames
                many = max(_owner_reports(owners), key=lambda o: len(o.cameras))
                out["owner_rss_mb"] = {len(many.cameras): _rss_mb(many.pid)}
                if len(many.cameras) > 1:
                    one = settings.model_copy(update={"ray_owners": cameras})
                    serve_app.deploy(one, port=port)
                    _wait_replicas(base, keys["admin"], replicas[-1])
                    asyncio.run(_cameras(base, keys["camera"], blobs, cameras, FRAMES_PER_CAMERA, T0 + timedelta(hours=len(replicas) + 1)))
                    single_owners = [o for o in _owner_reports(cameras) if len(o.cameras) == 1]
                    if single_owners:
                        out["owner_rss_mb"][1] = _rss_mb(single_owners[0].pid)
            finally:
                serve_app.shutdown()
                ray.shutdown()
        finally:
            drop()
    out["ray"] = runs
    # per camera, the difference the cameras made; the process itself, what one camera's owner had beyond that
    rss = out["owner_rss_mb"]
    n_many = max(rss)
    camera_mb = round((rss[n_many] - rss[1]) / (n_many - 1), 1) if 1 in rss and n_many > 1 and None not in (rss[1], rss[n_many]) else None
    owner_mb = round(rss[1] - camera_mb, 1) if camera_mb is not None else None
    out["camera_mb"], out["owner_base_mb"] = camera_mb, owner_mb
    first = runs[str(replicas[0])]
    owner_cpu = first.get("owner_cpu_ms_per_frame")
    # a local cluster's replica had the machine's cores; on a real cluster, the CPUs it reserved
    replica_cores = float(os.cpu_count() or 1) if address == "local" else first["replica_cpus"]
    out["district"] = district(first["detect_c16"]["images_per_s"] / replicas[0], owner_cpu / 1000 if owner_cpu is not None else None, owner_mb, camera_mb, replica_cores)
    out["load_average_end"] = os.getloadavg()
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_replicas(base: str, admin_key: str, n: int, timeout_s: float = 180) -> None:
    """Until /metrics counts `n` replicas heard from (the update of `num_replicas` is under way until then)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            text = httpx.get(f"{base}/metrics", headers={"X-API-Key": admin_key}, timeout=10).text
            if any(line == f"streetorder_replicas {float(n)}" for line in text.splitlines()):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{n} detector replica(s) did not report within {timeout_s:.0f} s")


def cmd_bench_serve_ray(args: argparse.Namespace) -> int:
    from service.settings import ServiceSettings

    db = ServiceSettings.load(db=args.db).db  # --db, else $STREETORDER_DB
    if not db:
        raise ValueError("bench serve --ray needs a PostgreSQL server: --db postgresql://USER@HOST:PORT/DB (or STREETORDER_DB)")
    replicas = tuple(int(x) for x in args.replicas.split(",") if x.strip())
    out = run_ray_bench(args.ray, db, args.model, data=Path(args.data), images=args.images, replicas=replicas, cameras=args.cameras)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"{out['cpu']}, {out['images']} images, {out['cameras']} cameras x {out['frames_per_camera']} frames; load average {out['load_average_start']}")

    def line(name: str, r: dict) -> str:
        d, f = r["detect_c16"], r["frames"]
        return (f"{name:<22} /detect c16 {d['images_per_s']:6.1f} images/s p50 {d['p50_ms']:7.1f} ms p99 {d['p99_ms']:7.1f} ms | "
                f"/frames {f['frames_per_s']:6.1f} frames/s p50 {f['p50_ms']:7.1f} ms p99 {f['p99_ms']:7.1f} ms  errors {d['errors']}/{f['errors']}")

    print(line("one process", out["single_process"]))
    for n, r in out["ray"].items():
        print(line(f"ray, {n} replica(s)", r))
    d = out["district"]
    print(f"camera owner actors: {', '.join(f'{mb} MB resident with {n} camera(s)' for n, mb in sorted(out['owner_rss_mb'].items()))} "
          f"(so {out['owner_base_mb']} MB the process and {out['camera_mb']} MB a camera), {d['owner_cpu_ms_per_frame']} ms CPU a frame (over the measured frames)")
    print(f"district: {d['cameras']} cameras every {d['every_s']:g} s = {d['frames_per_s_needed']:g} frames/s; at {d['per_replica_images_per_s']:.1f} images/s per replica "
          f"(planned at {d['headroom']:.0%}) that is {d['detector_replicas']} detector replicas like it ({d['replica_cores']:g} cores each: {d['detector_cores']:g} cores), {d['camera_owner_cores']} cores for the camera owners, "
          f"and, at {d['cameras_per_owner']} cameras an owner, {d['camera_owners']} owners in about {d['camera_owners_memory_gb']} GB")
    print(f"load average at the end {out['load_average_end']}")
    return 0
