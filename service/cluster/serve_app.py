"""The Ray Serve application of `streetorder serve --ray ADDRESS|local`, and running it.

Three deployments' worth of parts, all on the cluster:
- `ingress`: the FastAPI app of `service/http/app.py`, built in each ingress replica on the cluster state
  (`state.py`), behind Ray Serve's HTTP proxy;
- `detector`: `ray_replicas` detector replicas (`detector_replica.py`), spread over the nodes;
- two named actors pinned to the node `serve` runs on (the head): the model rollout (`rollout.py`) and the
  journal keeper (`journal.py`); and the camera owner actors, each holding a shard of the cameras, created by
  the ingress when it starts (`owners.py`, `camera_owner.py`).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from ray import serve

from ..settings import ServiceSettings
from .calls import NAMESPACE
from .detector_replica import DetectorReplica
from .journal import KEEPER_NAME, JournalKeeper
from .rollout import ROLLOUT_NAME, ModelRollout

log = logging.getLogger(__name__)

APP_NAME = "streetorder"


@serve.ingress()
class Ingress:
    """The service's FastAPI app as a Ray Serve ingress (built after the constructor, in the replica)."""

    def __init__(self, settings: ServiceSettings, detector, rollout, keeper) -> None:
        self.settings, self.detector, self.rollout, self.keeper = settings, detector, rollout, keeper

    def __serve_build_asgi_app__(self):
        from service.http.app import create_app

        from .state import ClusterState

        return create_app(self.settings, ClusterState.opener(self.detector, self.rollout, self.keeper))


def for_cluster(settings: ServiceSettings) -> ServiceSettings:
    """The settings with every path absolute (the cluster's processes do not share our working directory) and the
    ledger on PostgreSQL (every camera's owner writes to it, from any node)."""
    from pipeline.db.urls import normalize_url
    from sqlalchemy.engine import make_url

    ledger = settings.ledger_settings()
    if make_url(normalize_url(ledger.database_url)).get_backend_name() != "postgresql":
        raise ValueError(f"serve --ray needs the ledger on PostgreSQL (every camera owner actor writes to it, from any node), not {ledger.database_url.split(':')[0]}; pass --db postgresql://...")
    ledger = ledger.model_copy(update={"evidence_dir": Path(ledger.evidence_dir).resolve()})
    paths = {k: Path(getattr(settings, k)).resolve() for k in ("camera_config", "models_dir", "evidence_dir", "journal", "ray_journal_dir")}
    key_cache = settings.key_cache_path().resolve()
    return settings.model_copy(update={**paths, "ledger": ledger, "db": None, "ledger_config": None, "key_cache": key_cache})


def pinned_here():
    """Scheduling that keeps an actor on this node (the head, when `serve` runs there)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def deploy(settings: ServiceSettings, *, host: str = "127.0.0.1", port: int = 8000, proxy_location: str = "HeadOnly"):
    """Start (or update) the application on the connected cluster; returns the ingress's handle."""
    import ray

    settings = for_cluster(settings)
    serve.start(http_options={"host": host, "port": port}, proxy_location=proxy_location)
    common = {"namespace": NAMESPACE, "get_if_exists": True, "lifetime": "detached", "max_restarts": -1, "num_cpus": 0, "scheduling_strategy": pinned_here()}
    rollout = ray.remote(ModelRollout).options(name=ROLLOUT_NAME, max_concurrency=16, **common).remote(str(settings.models_dir), settings.model, settings.model_watch_s)
    keeper = ray.remote(JournalKeeper).options(name=KEEPER_NAME, **common).remote(str(settings.ray_journal_dir))
    detector = serve.deployment(DetectorReplica, name="detector", num_replicas=settings.ray_replicas, ray_actor_options={"num_cpus": settings.ray_replica_cpus}, max_ongoing_requests=64)
    ingress = serve.deployment(Ingress, name="ingress", num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
    app = ingress.bind(settings, detector.bind(settings, rollout), rollout, keeper)
    return serve.run(app, name=APP_NAME, route_prefix="/")


def owners() -> list:
    """The handles of every camera owner now alive in the cluster."""
    import ray
    from ray.util import list_named_actors

    named = list_named_actors(all_namespaces=True)
    return [ray.get_actor(a["name"], namespace=NAMESPACE) for a in named if a.get("namespace") == NAMESPACE and (a["name"].startswith("owner:") or a["name"] == "patrol")]


def shutdown(timeout_s: float = 60.0) -> None:
    """Stop the service: each camera's owner reports its open incidents and keeps its state, then everything
    of the application goes (the journals stay on the head node's disk, replayed at the next start)."""
    import ray

    handles = owners()
    refs = [h.close.remote() for h in handles]
    ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    serve.delete(APP_NAME)
    for h in handles:
        ray.kill(h, no_restart=True)
    for name in (ROLLOUT_NAME, KEEPER_NAME):
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
        except ValueError:
            pass


def connect(address: str, env_vars: dict[str, str] | None = None, log_to_driver: bool = True) -> None:
    """Join the cluster at `address`, or start a local one for `local` (this machine's cores). The cluster's
    processes read the environment their node's `ray start` had (a local one: ours), plus `env_vars`."""
    import ray

    runtime_env = {"env_vars": env_vars} if env_vars else None
    if address == "local":
        ray.init(include_dashboard=False, namespace=NAMESPACE, runtime_env=runtime_env, log_to_driver=log_to_driver)
    else:
        from pipeline.night.ray_pool import _reachable

        _reachable(address)
        ray.init(address=address, namespace=NAMESPACE, runtime_env=runtime_env, log_to_driver=log_to_driver)


def serve_on_ray(settings: ServiceSettings, address: str, host: str, port: int, proxy_location: str) -> int:
    """`streetorder serve --ray`: deploy, then block until SIGINT/SIGTERM, then shut down cleanly. (With `--ray
    local`, a Ctrl-C in a terminal also reaches the local Ray's own processes: the shutdown may then find them
    gone, and the owners' last checkpoints, written with their frames, are what remains, as after a crash.)"""
    connect(address)
    deploy(settings, host=host, port=port, proxy_location=proxy_location)
    log.warning("streetorder is served by Ray Serve on http://%s:%d (%d detector replica(s))", host, port, settings.ray_replicas)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    try:
        shutdown()
    except Exception as e:  # the cluster went down first (see above)
        log.error("the cluster did not answer while shutting down: %s", e)
        return 1
    return 0
