"""`streetorder serve --ray` (issue 23) on a local two-node Ray cluster the module starts (`ray.cluster_utils.Cluster`,
one CPU-poor worker beside the head), with the real PostgreSQL behind a TCP proxy the tests can cut.

The frames are the `bikes-pile-up` scenario (real motorbike crops left one by one on a real street), one frame
every 20 s of its first 360 s (18 frames; every 2 s would take minutes on two cores), JPEG-encoded once and posted by
HTTP to Ray Serve's proxy. Several cameras share the scenario's view under their own ids, so each test has a
camera of its own on the one cluster; the cameras are shared among `OWNERS` owner actors (rendezvous hashing):
- the single process and the cluster give the same incidents, frame by frame, and the same case;
- two cameras of one owner, their frames sent at once: both progress, each in its own order;
- a camera's owner actor killed mid-dwell, and later the worker node that holds a camera's owner, removed mid-dwell:
  the camera's incident opens at the same frame time as without, and every acknowledged report is in the ledger
  once (one case, the same incident, the same count);
- the database cut mid-stream: frames are answered 202, journaled on the head node, and land once it returns;
- PUT /models/current reaches both detector replicas (the rollout time is printed);
- a camera whose owner cannot be placed is answered 503 with Retry-After;
- a camera with a `stream:` (a local HTTP snapshot camera) is read by its own owner actor: its samples go
  through the camera's engine into the ledger, and when the camera goes dark the outage is in the ledger.
The worker-node test runs last: it takes a node away.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import httpx
import pytest
import yaml
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from pipeline.bench.scenarios import Composer, load_scenarios
from pipeline.cases.config import LedgerConfig
from pipeline.db.engine import Database
from pipeline.db.tables.ledger import Case
from pipeline.db.urls import normalize_url
from pipeline.paths import SHARED_DATA
from service.http.keys import KeyStore, Role
from service.settings import ServiceSettings
from tests.cases.conftest import TABLES
from tests.conftest import REPO

from .tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")

STEP_S = 20
UNTIL_S = 360  # the first 6 minutes: the motorbikes come, the incident opens (~4 min) and grows
OWNERS = 2


def _pair() -> tuple[str, str]:
    """Two camera ids that the same owner of `OWNERS` holds."""
    from service.cluster.calls import owner_index

    seen: dict[int, str] = {}
    for i in range(OWNERS + 1):
        cid = f"cam-pair-{i}"
        k = owner_index(cid, OWNERS)
        if k in seen:
            return seen[k], cid
        seen[k] = cid
    raise AssertionError("pigeonholes")


PAIR = _pair()
CAMERAS = ("scen-pavement", "cam-actor", "cam-outage", "cam-node", *PAIR)


@dataclass
class Cluster:
    client: httpx.Client
    keys: dict[str, str]
    settings: ServiceSettings
    proxy: TcpProxy
    cluster: object
    worker: object
    db_url: str


@pytest.fixture(scope="module")
def scenario():
    [s] = [s for s in load_scenarios() if s.name == "bikes-pile-up"]
    return s


@pytest.fixture(scope="module")
def frames(scenario) -> list[tuple[datetime, bytes]]:
    composer = Composer(scenario, SHARED_DATA)
    out = []
    assert UNTIL_S > STEP_S
    for t in range(0, UNTIL_S, STEP_S):
        ok, jpeg = cv2.imencode(".jpg", composer.frame(t), [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        out.append((scenario.start + timedelta(seconds=t), jpeg.tobytes()))
    return out


@pytest.fixture(scope="module")
def snapshot_camera(frames):
    """An HTTP snapshot camera showing the scenario's last frame (the motorbikes), for `cam-stream`."""
    from tests.support.serve import free_port
    from tests.support.snapshot_server import SnapshotCamera

    with SnapshotCamera(free_port(), frames[-1][1]) as camera:
        yield camera


@pytest.fixture(scope="module")
def setup_dir(tmp_path_factory, scenario, snapshot_camera) -> Path:
    """Camera config (the scenario's camera under each id of CAMERAS) and a models dir with street-v2 (and its
    cue model) and street-v1 (for the swap), copied: nothing here writes the repository's models/."""
    root = tmp_path_factory.mktemp("ray-serve")
    camera = scenario.camera.model_dump(mode="json", exclude_none=True)
    # each camera its own point: the ledger would merge the same problem at one spot seen by two cameras into one case
    cameras = [{**camera, "id": cid, "location": {**camera["location"], "point": cid}} for cid in CAMERAS]
    stream = {"url": snapshot_camera.url, "every_s": 3, "timeout_s": 2, "backoff_s": 0.5, "backoff_max_s": 1, "offline_after_s": 2}
    cameras.append({**camera, "id": "cam-stream", "location": {**camera["location"], "point": "cam-stream"}, "stream": stream})
    config = {"cameras": cameras, "rules": scenario.rules.model_dump(mode="json", exclude_none=True)}
    (root / "cameras.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for name in ("street-v2", "street-v1", "yolo11n-coco"):
        (root / "models" / name).mkdir(parents=True)
        for f in ("model.onnx", "card.json"):
            shutil.copy(REPO / "models" / name / f, root / "models" / name / f)
    (root / "models" / "CURRENT").write_text("street-v2\n")
    return root


def _settings(root: Path, db_url: str, **over) -> ServiceSettings:
    fields = dict(
        camera_config=root / "cameras.yaml", models_dir=root / "models", evidence_dir=root / "engine-evidence", journal=root / "journal.jsonl",
        ledger=LedgerConfig(database_url=db_url, evidence_dir=root / "evidence", auto_upgrade=False), ray_journal_dir=root / "journals",
        threads=1, retry_interval_s=0.5, ray_replicas=2, ray_replica_cpus=0.5, ray_heartbeat_s=0.2,
    )
    return ServiceSettings(**(fields | over))


@pytest.fixture(scope="module")
def on_ray(setup_dir, pg_url) -> Cluster:
    from ray.cluster_utils import Cluster as RayCluster

    from service.cluster import serve_app
    from service.cluster.calls import NAMESPACE

    engine = create_engine(normalize_url(pg_url))
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()
    store = KeyStore(Database(pg_url, auto_upgrade=False))
    keys = {"camera": store.create("cam-ray", Role.CAMERA).key, "admin": store.create("ops-ray", Role.ADMIN).key}
    store.db.dispose()
    u = make_url(normalize_url(pg_url))
    proxy = TcpProxy(u.host or "127.0.0.1", u.port or 5432)
    db_url = u.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)

    # the cluster's processes inherit this environment: our code, no token auth, no usage reports
    saved = dict(os.environ)
    os.environ.update({"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "YOLO_OFFLINE": "1"})
    # a lost node is noticed in ~3 s, not the default ~30 s
    cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False, "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace=NAMESPACE)
    with socket_port() as port:
        pass
    settings = _settings(setup_dir, db_url, ray_owners=OWNERS)
    serve_app.deploy(settings, port=port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    try:
        yield Cluster(client, keys, settings, proxy, cluster, worker, db_url)
    finally:
        client.close()
        try:
            serve_app.shutdown(timeout_s=30)
            from ray import serve

            serve.shutdown()
        finally:
            ray.shutdown()
            cluster.shutdown()
            proxy.close()
            os.environ.clear()
            os.environ.update(saved)


class socket_port:
    """A free TCP port on loopback."""

    def __enter__(self) -> int:
        import socket

        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        return self.s.getsockname()[1]

    def __exit__(self, *_):
        self.s.close()


# ---- helpers ------------------------------------------------------------------------------------------


def post(client: httpx.Client, key: str, camera_id: str, at: datetime, jpeg: bytes) -> httpx.Response:
    return client.post("/frames", data={"camera_id": camera_id, "taken_at": at.isoformat()}, files={"image": ("f.jpg", jpeg, "image/jpeg")}, headers={"X-API-Key": key})


def post_until_taken(c: Cluster, camera_id: str, at: datetime, jpeg: bytes, timeout_s: float = 90.0) -> httpx.Response:
    """As a camera does: resend on 503 (and on a proxy with no ingress for a moment) until the frame is taken."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            r = post(c.client, c.keys["camera"], camera_id, at, jpeg)
            if r.status_code not in (500, 502, 503, 504):
                return r
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"frame {at} of {camera_id} not taken within {timeout_s} s"
        time.sleep(0.5)


def changes(body: dict) -> list[tuple]:
    return [(i["change"], i["type"], i["zone_id"], i["first_seen"], i["last_seen"], i["count"], i["severity"]) for i in body.get("incidents", [])]


def run(c: Cluster, camera_id: str, frames, upto: int | None = None, during=None) -> dict[int, httpx.Response]:
    """Post frames[:upto] of `camera_id` in order; `during(i)` runs before frame i (a failure to inject)."""
    out = {}
    assert frames[:upto], "no frames to post"
    for i, (at, jpeg) in enumerate(frames[:upto]):
        if during is not None:
            during(i)
        out[i] = post_until_taken(c, camera_id, at, jpeg)
        assert out[i].status_code in (200, 202, 409), out[i].text
    return out


def ledger_cases(db_url: str, camera_id: str) -> list[tuple]:
    db = Database(db_url, auto_upgrade=False)
    try:
        with db.transaction() as s:
            return sorted(
                (c.type, c.zone_id, c.first_seen, c.last_seen, c.count, c.severity, tuple(sorted(i.incident_id for i in c.incidents)))
                for c in s.scalars(select(Case).where(Case.camera_id == camera_id))
            )
    finally:
        db.dispose()


def opened_at(responses: dict[int, httpx.Response]) -> list[int]:
    return [i for i, r in responses.items() if r.status_code == 200 and any(ch[0] == "opened" for ch in changes(r.json()))]


def owner(camera_id: str):
    """The actor that owns the camera (of `OWNERS`)."""
    from service.cluster.calls import NAMESPACE, owner_index, owner_name

    return ray.get_actor(owner_name(owner_index(camera_id, OWNERS), OWNERS), namespace=NAMESPACE)


def seat(camera_id: str):
    """The camera's `OwnerInfo`, from its owner."""
    return ray.get(owner(camera_id).ping.remote()).camera(camera_id)


def without_camera_id(rows: list[tuple]) -> list[tuple]:
    """Cases compared across cameras: everything but the incident ids (which name the camera)."""
    return [r[:-1] for r in rows]


# ---- the tests -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(on_ray, frames) -> dict:
    """The scenario through the cluster on `scen-pavement`, uninterrupted: what every other camera must match."""
    responses = run(on_ray, "scen-pavement", frames)
    assert all(r.status_code == 200 for r in responses.values()), {i: r.text for i, r in responses.items() if r.status_code != 200}
    [opened] = opened_at(responses)
    return {"responses": responses, "opened": opened, "cases": ledger_cases(on_ray.db_url, "scen-pavement")}


def test_the_cluster_gives_the_same_incidents_and_case_as_the_single_process(reference, setup_dir, frames, tmp_path):
    from fastapi.testclient import TestClient

    from service.http.app import create_app

    db = tmp_path / "ledger.db"
    Database(f"sqlite:///{db}").dispose()
    key = KeyStore(Database(f"sqlite:///{db}", auto_upgrade=False)).create("cam", Role.CAMERA).key
    settings = _settings(setup_dir, f"sqlite:///{db}", evidence_dir=tmp_path / "ev", journal=tmp_path / "journal.jsonl", streams=False)
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as one:
        single = [one.post("/frames", data={"camera_id": "scen-pavement", "taken_at": at.isoformat()}, files={"image": ("f.jpg", jpeg, "image/jpeg")}) for at, jpeg in frames]
        cases = ledger_cases(f"sqlite:///{db}", "scen-pavement")  # before the shutdown reports the open incident's last state
    assert [r.status_code for r in single] == [200] * len(frames)
    assert [changes(r.json()) for r in single] == [changes(r.json()) for r in reference["responses"].values()]
    assert sum(len(changes(r.json())) for r in single) >= 2  # the incident opened and was updated: not an empty comparison
    assert cases == reference["cases"] != []


def test_two_cameras_of_one_owner_both_progress_each_in_its_own_order(on_ray, reference, frames):
    """Their frames sent at the same time: each camera's frames reach its engine in order (its incident as the
    reference's), the other's do not wait for them, and a frame older than its camera's last is refused."""
    from concurrent.futures import ThreadPoolExecutor

    upto = 6
    first, second = PAIR
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda cid: run(on_ray, cid, frames, upto=upto), PAIR))
    assert len(runs) == 2
    for responses in runs:
        assert [r.status_code for r in responses.values()] == [200] * upto, [r.text for r in responses.values()]
        assert [changes(r.json()) for r in responses.values()] == [changes(r.json()) for i, r in reference["responses"].items() if i < upto]
    late = post(on_ray.client, on_ray.keys["camera"], first, frames[upto - 2][0], frames[upto - 2][1])
    assert late.status_code == 409, late.text  # out of its own order; the other camera's frames did not move it
    report = ray.get(owner(first).ping.remote())
    assert report.camera(first).frames == upto and report.camera(second).frames == upto
    assert report.camera(first).last_frame == frames[upto - 1][0] == report.camera(second).last_frame


def test_a_camera_actor_killed_mid_dwell_is_recreated_with_its_state(on_ray, reference, frames):
    kill_at = reference["opened"] - 2  # the motorbikes stand, their dwell runs: the actor dies
    pid_before = {}

    def during(i: int) -> None:
        if i == kill_at:
            pid_before["pid"] = ray.get(owner("cam-actor").ping.remote()).pid
            ray.kill(owner("cam-actor"), no_restart=False)

    responses = run(on_ray, "cam-actor", frames, upto=reference["opened"] + 2, during=during)
    info = seat("cam-actor")
    assert info.restarted and info.pid != pid_before["pid"] and info.restored_from == "ledger"
    assert opened_at(responses) == [reference["opened"]]  # on time, not a full dwell after the restart
    assert [changes(r.json()) for r in responses.values() if r.status_code == 200] == [changes(r.json()) for i, r in reference["responses"].items() if i in responses and responses[i].status_code == 200]
    acknowledged = [r for r in responses.values() if r.status_code == 200]
    assert len(acknowledged) >= len(responses) - 1  # at most the frame in flight at the kill was refused (409) on its resend
    reference_so_far = ledger_cases_at(reference, responses)
    assert without_camera_id(ledger_cases(on_ray.db_url, "cam-actor")) == reference_so_far


def ledger_cases_at(reference: dict, responses: dict[int, httpx.Response]) -> list[tuple]:
    """The reference camera's case as it stood after the same frames: the incident fields its last report gave."""
    last = max(responses)
    rows = {}
    for i, r in reference["responses"].items():
        if i > last:
            break
        for inc in r.json()["incidents"]:
            rows[inc["incident_id"]] = (inc["type"], inc["zone_id"], datetime.fromisoformat(inc["first_seen"]), datetime.fromisoformat(inc["last_seen"]), inc["count"], inc["severity"])
    return sorted(rows.values())


def test_a_database_outage_under_ray_journals_answers_202_and_lands_once(on_ray, reference, frames):
    cut = range(reference["opened"] - 4, reference["opened"] - 1)

    def during(i: int) -> None:
        if i == cut.start:
            on_ray.proxy.cut()
        if i == cut.stop:
            on_ray.proxy.restore()

    responses = run(on_ray, "cam-outage", frames, upto=reference["opened"] + 2, during=during)
    assert [responses[i].status_code for i in cut] == [202] * len(cut), [responses[i].text for i in cut]
    assert "journaled" in responses[cut.start].json()["detail"]
    assert opened_at(responses) == [reference["opened"]]
    deadline = time.monotonic() + 30
    while seat("cam-outage").backlog:
        assert time.monotonic() < deadline, "the journal did not drain"
        time.sleep(0.3)
    assert without_camera_id(ledger_cases(on_ray.db_url, "cam-outage")) == ledger_cases_at(reference, responses)


def test_a_model_swap_reaches_every_replica(on_ray, reference):
    admin = {"X-API-Key": on_ray.keys["admin"]}
    assert on_ray.client.put("/models/current", json={"name": "no-such-model"}, headers=admin).status_code == 404
    started = time.monotonic()
    r = on_ray.client.put("/models/current", json={"name": "street-v1"}, headers=admin)
    took = time.monotonic() - started
    assert r.status_code == 200 and r.json()["name"] == "street-v1", r.text
    metrics = on_ray.client.get("/metrics", headers=admin).text
    served = [line for line in metrics.splitlines() if line.startswith("streetorder_replica_model_info{")]
    assert len(served) == 2 and all('model="street-v1"' in line for line in served), served
    rollout = [float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("streetorder_model_rollout_seconds ")]
    print(f"rollout to 2 replicas: {rollout[0]:.2f} s (PUT answered in {took:.2f} s), load average {os.getloadavg()}")
    owned = [line for line in metrics.splitlines() if line.startswith("streetorder_camera_owner_info{") and 'camera="scen-pavement"' in line]
    assert len(owned) == 1 and 'owner="owner:' in owned[0], owned
    assert [line for line in metrics.splitlines() if line.startswith("streetorder_owner_cameras{")], "no per-owner figures"
    assert on_ray.client.put("/models/current", json={"name": "street-v2"}, headers=admin).json()["name"] == "street-v2"


def test_detect_and_a_patrol_photo_go_through_the_replicas_and_the_patrol_owner(on_ray, frames):
    headers = {"X-API-Key": on_ray.keys["camera"]}
    jpeg = frames[-1][1]
    found = on_ray.client.post("/detect", files={"image": ("f.jpg", jpeg, "image/jpeg")}, headers=headers)
    assert found.status_code == 200 and found.json()["model"] == "street-v2" and found.json()["detections"], found.text
    photo = on_ray.client.post("/photos", data={"lat": "30.2936", "lon": "120.1614", "taken_at": frames[-1][0].isoformat(), "point": "巡查点"},
                               files={"image": ("p.jpg", jpeg, "image/jpeg")}, headers=headers)
    assert photo.status_code == 200, photo.text
    assert photo.json()["location"]["point"] == "巡查点" and photo.json()["gps_source"] == "form"
    assert ray.get(owner_of(None).ping.remote()).frames == 1  # the patrol photos' one owner took it


def owner_of(camera_id: str | None):
    from service.cluster.calls import NAMESPACE, PATROL

    return owner(camera_id) if camera_id else ray.get_actor(PATROL, namespace=NAMESPACE)


def test_a_camera_whose_owner_cannot_be_placed_is_answered_503_with_retry_after(on_ray):
    from ray import serve

    from service.cluster.calls import NAMESPACE
    from service.cluster.journal import KEEPER_NAME
    from service.cluster.owners import CameraOwners
    from service.runtime.errors import Overloaded

    full = on_ray.settings.model_copy(update={"ray_camera_cpus": 64.0, "ray_placement_wait_s": 1.0})
    # another owner count: owners of their own, not the running ones
    owners = CameraOwners(full, serve.get_deployment_handle("detector", app_name="streetorder"), ray.get_actor(KEEPER_NAME, namespace=NAMESPACE), OWNERS + 5)
    with pytest.raises(Overloaded, match="cannot be placed: the cluster has no room") as refused:
        owners.owner("cam-nowhere")
    assert refused.value.retry_after_s >= 1
    ray.kill(ray.get_actor(owners.name("cam-nowhere"), namespace=NAMESPACE), no_restart=True)


def test_a_streamed_camera_is_read_by_its_own_owner_and_its_outage_lands_in_the_ledger(on_ray, snapshot_camera):
    from pipeline.db.frame_marks import last_frames
    from pipeline.live.outages import CameraOutages

    admin = {"X-API-Key": on_ray.keys["admin"]}

    def stream() -> dict:
        return {s["camera_id"]: s for s in on_ray.client.get("/ready", headers=admin).json().get("streams", [])}.get("cam-stream", {})

    wait(lambda: stream().get("state") == "up" and stream().get("samples", 0) >= 1, 60, lambda: f"the stream did not come up: {stream()}")
    db = Database(on_ray.db_url, auto_upgrade=False)
    try:
        wait(lambda: "cam-stream" in last_frames(db), 30, "no sample of the stream reached the ledger")  # through the owner's engine and intake
        info = seat("cam-stream")
        assert info.stream is not None and info.frames >= 1 and info.stream_outcomes.get("processed", 0) >= 1, info
        metrics = on_ray.client.get("/metrics", headers=admin).text
        assert 'streetorder_stream_state{camera="cam-stream",state="up"} 1.0' in metrics
        outages = CameraOutages(db)
        # (a stream still connecting while the cluster started may have had an outage of its own: closed by now)
        wait(lambda: not outages.list(open_only=True, camera_id="cam-stream"), 30, "an outage from the start stayed open")
        before = len(outages.list(camera_id="cam-stream"))
        snapshot_camera.failing = True  # the camera goes dark
        wait(lambda: len(outages.list(open_only=True, camera_id="cam-stream")) == 1 and len(outages.list(camera_id="cam-stream")) == before + 1, 60,
             lambda: f"no outage in the ledger: {stream()}")
        wait(lambda: stream().get("state") == "offline", 10, lambda: f"/ready does not say offline: {stream()}")
        snapshot_camera.failing = False
        wait(lambda: not CameraOutages(db).list(open_only=True, camera_id="cam-stream"), 60, "the outage was not closed when the camera came back")
    finally:
        db.dispose()


def wait(check, timeout_s: float, why) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, why() if callable(why) else why
        time.sleep(0.3)


def test_a_lost_worker_node_moves_its_camera_to_a_living_node_with_its_state(on_ray, reference, frames):
    """Last: the worker node goes away for good."""
    from ray import serve
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from service.cluster.calls import NAMESPACE, owner_index
    from service.cluster.journal import KEEPER_NAME
    from service.cluster.owners import create_owner

    worker_id = on_ray.worker.node_id
    # the camera's owner (created by the ingress at start, on whichever node) moved to the worker before its
    # first frame (soft: Ray may place it elsewhere once the worker is gone)
    if ray.get(owner("cam-node").ping.remote()).node != worker_id:
        ray.kill(owner("cam-node"), no_restart=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                owner("cam-node")
            except ValueError:
                break  # its name is free
            assert time.monotonic() < deadline, "the killed owner's name was not freed"
            time.sleep(0.2)
    create_owner(on_ray.settings, owner_index("cam-node", OWNERS), OWNERS, serve.get_deployment_handle("detector", app_name="streetorder"), ray.get_actor(KEEPER_NAME, namespace=NAMESPACE),
                 scheduling_strategy=NodeAffinitySchedulingStrategy(worker_id, soft=True))
    assert ray.get(owner("cam-node").ping.remote()).node == worker_id
    kill_at = reference["opened"] - 2

    def during(i: int) -> None:
        if i == kill_at:
            on_ray.cluster.remove_node(on_ray.worker, allow_graceful=False)

    responses = run(on_ray, "cam-node", frames, upto=reference["opened"] + 2, during=during)
    info = seat("cam-node")
    assert info.node != worker_id and info.restarted and info.restored_from == "ledger"
    assert opened_at(responses) == [reference["opened"]]
    assert without_camera_id(ledger_cases(on_ray.db_url, "cam-node")) == ledger_cases_at(reference, responses)


def test_the_district_sizing_follows_the_measured_figures():
    from service.cluster.bench import district

    d = district(per_replica_images_s=10.0, owner_cpu_s_per_frame=0.02, owner_mb=300.0, camera_mb=2.0, replica_cores=2.0, cameras_per_owner=32)
    assert d["frames_per_s_needed"] == 250.0  # 500 cameras, one frame every 2 s
    assert d["detector_replicas"] == 36 and d["detector_cores"] == 72.0  # 250 / (10 x 0.7) = 35.7, rounded up
    assert d["camera_owner_cores"] == round(250 * 0.02 / 0.7, 1)
    assert d["camera_owners"] == 16 and d["camera_owners_memory_gb"] == round((16 * 300 + 500 * 2) / 1024, 1)  # ceil(500 / 32) processes, not 500


def test_the_cameras_are_shared_among_owners_stably():
    from service.cluster.calls import owner_count, owner_index

    ids = [f"cam-{i:04d}" for i in range(2000)]
    before = {cid: owner_index(cid, 16) for cid in ids}
    assert before == {cid: owner_index(cid, 16) for cid in ids}  # the same in any process: no salted hash
    shares = [list(before.values()).count(k) for k in range(16)]
    assert min(shares) > 2000 / 16 * 0.6, shares  # spread over every owner
    moved = sum(owner_index(cid, 17) != before[cid] for cid in ids)
    assert moved < 2000 * 2 / 17  # one owner more moves about 1/17 of the cameras (to the new one), not most of them
    settings = ServiceSettings()
    assert owner_count(settings, 500) == 16 and owner_count(settings, 1) == 1 and owner_count(settings.model_copy(update={"ray_owners": 3}), 500) == 3
