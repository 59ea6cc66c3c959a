"""Units on a Ray cluster: one actor per worker slot, each with its own detector; the driver is the one ledger
writer. Each actor hands back its unit's messages a chunk at a time (up to the next checkpoint), and is asked
for the next chunk before the driver posts the last one, so workers and the writer overlap while at most two
chunks per actor are in memory. Footage and models must be at the same paths on every node (shared storage).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..config import StreetOrderConfig
from .messages import Checkpoint, Message, UnitDone, UnitFailed
from .units import Job, NightSettings
from .worker import UnitRunner

Handle = Callable[[Message], None]
CHUNK = 64  # messages at most per reply, whatever the checkpoint interval


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """A clear error at once for a wrong HOST:PORT (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # another form Ray understands (auto, ray://...): let Ray say
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ValueError(f"cannot reach the Ray cluster at {address} ({e}); start it with `ray start --head --port {port}` and pass the address it prints") from None


class UnitActor:
    """A Ray actor around `UnitRunner`: `begin` a job, then `chunk` until it ends."""

    def __init__(self, config: StreetOrderConfig, settings: NightSettings) -> None:
        self.runner = UnitRunner(config, settings)
        self.messages = None

    def begin(self, job: Job) -> None:
        self.messages = self.runner.run(job)

    def chunk(self) -> list[Message]:
        out: list[Message] = []
        for msg in self.messages:
            out.append(msg)
            if isinstance(msg, Checkpoint | UnitDone | UnitFailed) or len(out) >= CHUNK:
                break
        return out


class RayPool:
    def __init__(self, config: StreetOrderConfig, settings: NightSettings, address: str, workers: int | None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("--ray needs Ray: pip install 'streetorder[ray]'") from None
        self.ray = ray
        self.local = address == "local"
        if self.local:
            ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        else:
            _reachable(address)
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(UnitActor)
        self.actors = [actor.remote(config, settings) for _ in range(n)]

    def run(self, jobs: Iterable[Job], handle: Handle) -> None:
        ray, todo = self.ray, iter(jobs)  # read lazily, as actors become free
        waiting: dict = {}  # chunk ref -> (actor, unit)

        def assign(actor) -> None:
            job = next(todo, None)
            if job is not None:
                actor.begin.remote(job)
                waiting[actor.chunk.remote()] = (actor, job.unit.id)

        for actor in self.actors:
            assign(actor)
        while waiting:
            [ref], _ = ray.wait(list(waiting), num_returns=1)
            actor, unit = waiting.pop(ref)
            try:
                messages = ray.get(ref)
            except Exception as e:  # the actor died or raised: its unit fails (progress stays), the rest go on
                handle(UnitFailed(unit, f"Ray worker failed: {e}"))
                self.actors.remove(actor)
                if not self.actors:
                    raise RuntimeError("every Ray worker failed") from e
                continue
            ended = bool(messages) and isinstance(messages[-1], UnitDone | UnitFailed)
            if not ended:
                waiting[actor.chunk.remote()] = (actor, unit)  # the next chunk is computed while this one is posted
            for msg in messages:
                handle(msg)
            if ended:
                assign(actor)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.ray.shutdown()
