"""Keep freed image memory going back to the system.

glibc serves a large allocation with its own mmap, returned to the system on free, but after the first such
free it raises that threshold (up to 32 MiB) and serves later ones from per-thread heaps, which keep what
was freed. Images decoded on the threadpool's many threads then leave RSS far above what is in use. Fixing
the threshold with mallopt turns that adjustment off, so a decoded image's memory leaves with the image and
the image memory budget (service/uploads.py) bounds RSS, not only what Python holds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 20  # allocations of 1 MiB and more (image rows, blocks, arrays) get their own mapping

_done = False


def fix_malloc_threshold() -> bool:
    """Once per process; False where the C library is not glibc (nothing to do there)."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):
        return False
    _done = ok
    if not ok:
        log.warning("mallopt(M_MMAP_THRESHOLD) failed; RSS may stay above the image memory budget after large uploads")
    return ok
