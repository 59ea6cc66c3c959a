"""How a process shares its cores between detector calls: `streams` calls at once, each with `threads` intra-op
threads.

A nano YOLO model scales poorly across intra-op threads (on the 2-core machine here one image took 32.9 ms on
one thread and 28.0 ms on two: 1.17x), so where throughput is what counts (the night job) two single-threaded
calls side by side do more than one call on two threads, and they leave the gaps of each call to the decoding
and the engine beside them. Where one request's latency counts (the service at low load), each call keeps
enough threads to stay fast and more streams only come with more cores.

The setting is `auto` or a number of streams; `auto` picks from the core count (no timing at start: on a
shared machine a quick measurement picks by the neighbours' load), and the caller logs the choice and why.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

Favor = Literal["throughput", "latency"]
StreamsSetting = Literal["auto"] | int
MAX_AUTO_STREAMS = 4  # past this, each stream's batch in flight costs memory for little more throughput


@dataclass(frozen=True)
class Parallelism:
    """`streams` detector calls at once, each on `threads` intra-op threads (0 streams: one call at a time, in
    the caller's thread); `why` says how it was chosen."""

    streams: int
    threads: int
    why: str

    def __post_init__(self) -> None:
        if self.streams < 0 or self.threads < 1:
            raise ValueError(f"streams must be at least 0 and threads at least 1, got {self.streams} and {self.threads}")


def parse_streams(value: object, minimum: int = 1) -> StreamsSetting:
    """`auto` or a whole number of streams >= `minimum` (an int, or its text as the environment or a flag gives
    it). The night job takes 0: its detector then runs in the decoding thread, as before it had streams."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit():
            value = int(text)
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise ValueError(f"inference streams must be 'auto' or a whole number >= {minimum}, got {value!r}")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def choose_parallelism(setting: object = "auto", cores: int | None = None, threads: int | None = None, favor: Favor = "throughput") -> Parallelism:
    """Streams and threads for `cores` cores (default: this process's). `threads`: intra-op threads per stream
    if the caller fixed them (`--threads`, STREETORDER_THREADS), else the cores shared out between the streams.

    `auto` for throughput: one single-threaded stream per core, at most `MAX_AUTO_STREAMS` (then the cores are
    shared out as threads). For latency: one stream per 4 cores, so that each call keeps 4 threads."""
    streams = parse_streams(setting, minimum=0)
    cores = max(1, cores if cores is not None else available_cores())
    if streams == "auto":
        if favor == "throughput":
            n = min(cores, MAX_AUTO_STREAMS)
            why = f"auto for throughput on {cores} core(s): one stream per core, at most {MAX_AUTO_STREAMS}"
        else:
            n = max(1, cores // 4)
            why = f"auto for latency on {cores} core(s): one stream per 4 cores"
    else:
        n, why = streams, "as set"
    per = threads if threads is not None else max(1, cores // max(n, 1))
    why += f"; {'threads as set' if threads is not None else 'cores shared out'}: {n or 'no'} stream(s){' (the detector in the decoding thread)' if n == 0 else ''} x {per} thread(s)"
    return Parallelism(n, per, why)


__all__ = ["MAX_AUTO_STREAMS", "Parallelism", "StreamsSetting", "available_cores", "choose_parallelism", "parse_streams"]
