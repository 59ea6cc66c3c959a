"""Which reverse proxies are believed: the client address the failed-login limits count (`auth.client_address`)
must not be something a client can write into a header.

uvicorn believes `X-Forwarded-For` from 127.0.0.1 unless told otherwise, so anything on the same host (or a
local forwarder) could reset its per-address login limit with a new header value on each try. The service
believes no proxy unless `forwarded_allow_ips` names them (`serve --forwarded-allow-ips`).
"""

from __future__ import annotations

from ..settings import ServiceSettings


def proxy_options(settings: ServiceSettings) -> dict:
    """uvicorn.Config's proxy arguments: the headers only from the configured proxies, else not at all."""
    if settings.forwarded_allow_ips is None:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}
