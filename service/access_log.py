"""Keep secrets out of uvicorn's access log: a key a client puts in the URL (`?api_key=...`) is refused by the
service, but uvicorn logs the request line first. This filter rewrites the logged path's secret query values."""

from __future__ import annotations

import logging
import re

from .auth import SECRET_PARAMS

_SECRET = re.compile(r"(?i)([?&](?:" + "|".join(re.escape(p) for p in sorted(SECRET_PARAMS)) + r")=)[^&#\s]*")


def redact_path(path: str) -> str:
    return _SECRET.sub(r"\1REDACTED", path)


class RedactSecrets(logging.Filter):
    """uvicorn.access records carry (client, method, path with query, http version, status) as args."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact_path(a) if isinstance(a, str) and "=" in a else a for a in record.args)
        elif isinstance(record.msg, str) and "=" in record.msg:
            record.msg = redact_path(record.msg)
        return True


def install() -> None:
    """Idempotent; call after uvicorn has configured its loggers (it replaces their filters only on dictConfig)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
