"""Keep secrets out of uvicorn's access log: a key a client puts in the URL (`?api_key=...`) is refused by the
service, but uvicorn logs the request line first. This filter rewrites the logged request line: the values of
secret-named query parameters (names compared percent-decoded, so `api%5Fkey` too), and any key-shaped value
(`so_` and the key alphabet, plain or percent-encoded) anywhere in it, path included."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from .auth import SECRET_PARAMS

REDACTED = "REDACTED"
_PARAM = re.compile(r"([?&;])([^=&#\s;]*)=([^&#\s;]*)")
# a key (keys.KEY_PREFIX): "so_" + token_urlsafe(32) (43 characters of [A-Za-z0-9_-]); any of them may arrive percent-encoded
_CHAR = r"(?:[A-Za-z0-9_-]|%[0-9A-Fa-f]{2})"
_KEY = re.compile(r"(?i:s|%73)(?i:o|%6f)(?i:_|%5f)" + _CHAR + r"{16,}")


def _param(m: re.Match[str]) -> str:
    sep, name, value = m.groups()
    if unquote_plus(name).strip().lower() in SECRET_PARAMS:
        return f"{sep}{name}={REDACTED}"
    return m.group(0)


def redact_path(path: str) -> str:
    return _KEY.sub(REDACTED, _PARAM.sub(_param, path))


class RedactSecrets(logging.Filter):
    """uvicorn.access records carry (client, method, path with query, http version, status) as args."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact_path(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        return True


def install() -> None:
    """Idempotent; call after uvicorn has configured its loggers (it replaces their filters only on dictConfig)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
