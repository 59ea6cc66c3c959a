"""Units on this machine: in the parent (`workers=1`), or in worker processes, at most one unit each.

Workers send messages through one bounded queue, so a slow ledger holds them back instead of filling memory;
at most `workers` units are in flight whatever the number of cameras. A worker whose parent dies (kill -9)
exits on its own: a killed night leaves no process behind.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import closing

from ..config import StreetOrderConfig
from .messages import Message, UnitDone, UnitFailed
from .units import Job, NightSettings
from .worker import UnitRunner

Handle = Callable[[Message], None]


class InProcess:
    """One unit after another in this process (decoding and detection still run a thread ahead)."""

    def __init__(self, config: StreetOrderConfig, settings: NightSettings, detector=None) -> None:
        self.runner = UnitRunner(config, settings, detector)

    def run(self, jobs: Iterable[Job], handle: Handle) -> None:
        for job in jobs:
            with closing(self.runner.run(job)) as messages:  # a writer that stops the night stops the unit's decoding too
                for msg in messages:
                    handle(msg)

    def close(self) -> None:
        pass


def _orphan_watch(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _worker(config: StreetOrderConfig, settings: NightSettings, parent: int, tasks, results) -> None:
    threading.Thread(target=_orphan_watch, args=(parent,), daemon=True).start()
    runner = UnitRunner(config, settings)
    while (job := tasks.get()) is not None:
        for msg in runner.run(job):
            results.put(msg)


class ProcessPool:
    """`workers` processes (spawned: nothing of the parent's database connections is inherited), each given
    its next unit by the parent when it has finished the last one."""

    def __init__(self, config: StreetOrderConfig, settings: NightSettings, workers: int) -> None:
        self.ctx = mp.get_context("spawn")
        self.config, self.settings, self.workers = config, settings, workers
        self.results = self.ctx.Queue(maxsize=4 * workers)
        self.procs: dict[int, tuple] = {}  # slot -> (process, its task queue)

    def _spawn(self, slot: int) -> None:
        tasks = self.ctx.Queue()
        p = self.ctx.Process(target=_worker, args=(self.config, self.settings, os.getpid(), tasks, self.results), daemon=True, name=f"night-worker-{slot}")
        p.start()
        self.procs[slot] = (p, tasks)

    def run(self, jobs: Iterable[Job], handle: Handle) -> None:
        """`jobs` is read lazily, one job when a worker is free: a unit's saved state is loaded only then."""
        todo = iter(jobs)
        busy: dict[int, str] = {}  # slot -> unit

        def assign(slot: int) -> bool:
            job = next(todo, None)
            if job is None:
                return False
            if slot not in self.procs:
                self._spawn(slot)
            busy[slot] = job.unit.id
            self.procs[slot][1].put(job)
            return True

        for slot in range(self.workers):
            if not assign(slot):
                break
        while busy:
            try:
                msg = self.results.get(timeout=1.0)
            except queue.Empty:
                for slot, (p, _) in list(self.procs.items()):
                    if not p.is_alive():  # killed, out of memory: its unit fails, a new worker takes the slot
                        unit = busy.pop(slot, None)
                        self._spawn(slot)
                        if unit is not None:
                            handle(UnitFailed(unit, f"worker process {p.pid} died (exit code {p.exitcode})"))
                            assign(slot)
                continue
            try:
                handle(msg)
            except BaseException:  # the writer stops the night (its storage): the busy workers' units go no further
                for p, _ in self.procs.values():
                    p.terminate()
                raise
            if isinstance(msg, UnitDone | UnitFailed):
                slot = next(k for k, u in busy.items() if u == msg.unit)
                del busy[slot]
                assign(slot)

    def close(self) -> None:
        for p, tasks in self.procs.values():
            tasks.put(None)
        for p, _ in self.procs.values():
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        self.procs.clear()
