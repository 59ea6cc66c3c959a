"""Keep freed image memory going back to the system, without paying for fresh pages on every request.

glibc serves a large allocation with its own mmap, returned to the system on free, but after the first such
free it raises that threshold (up to 32 MiB) and serves later ones from its heaps, which keep what was freed;
and it gives each thread that allocates at once an arena of its own (up to 8 per core). Images decoded on the
threadpool's many threads then leave RSS far above what is in use. So the service sets, once:

- `MMAP_THRESHOLD`: allocations of 8 MiB and more get their own mapping and leave with their image, so the
  image memory budget (service/runtime/decode_budget.py) bounds RSS, not only what Python holds. Below it (a 1080p frame,
  a 640 px model input, the letterboxed copies, the runtimes' outputs) memory is reused from the heap, and
  `TRIM_THRESHOLD` lets a heap keep up to 16 MiB free at its top for the next request. With the threshold at
  1 MiB every request faulted in those pages afresh (600 faults a 640 px JPEG decode), which doubled its
  decode and prepare time (1.05 -> 2.1 ms, 0.8 -> 2.1 ms) and added a tenth to the c=1 latency;
- `ARENAS`: two arenas for all threads (the usual MALLOC_ARENA_MAX=2 of services), so what the heaps keep
  below the threshold is kept twice at most, not once per decoding thread. Eight 6 MP uploads at once raised
  the peak RSS by 116 MiB with a 1 MiB threshold and an arena per thread, by 147 MiB at 8 MiB without the
  arena limit, and by 82 MiB with all three settings (tests/service/test_capacity.py, 128 MiB budget).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
M_TRIM_THRESHOLD = -1
MMAP_THRESHOLD = 8 << 20
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # glibc's own ratio when it adjusts the two itself
ARENAS = 2

_done = False


def bound_malloc() -> bool:
    """Once per process, before the threads that decode start; False where the C library is not glibc."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = all(libc.mallopt(option, value) for option, value in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_ARENA_MAX, ARENAS)))
    except (OSError, AttributeError):
        return False
    _done = ok
    if not ok:
        log.warning("mallopt failed; RSS may stay above the image memory budget after large uploads")
    return ok
