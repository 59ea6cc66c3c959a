"""Cross-site request forgery guard for the review page's forms (and the box editor's save), which a browser
authenticates with the session cookie it sends by itself.

SameSite=Strict alone is not enough: *same-site* is not *same-origin*, so a page on another port of the same
host (or another subdomain) could post the forms with the reviewer's cookie. A state-changing request that
does not carry the `X-API-Key` header (a script with a key is not a browser's ambient credential) must come
from the service's own origin: `Sec-Fetch-Site` is `same-origin` or `none` (typed or bookmarked) when the
browser sends it, else `Origin` (or, lacking that, `Referer`) names this very origin. The login form is
guarded too, so no other site can log a reviewer in under someone else's key.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

from .auth import HEADER
from .errors import ErrorOut, Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": 80, "https": 443}
REFUSED = {403: {"model": ErrorOut, "description": "Not a reviewer key (HTML), or a cross-site request (JSON)", "content": {"text/html": {}}}}


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, default port filled in; None for 'null' or anything unparsable."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None
    if not scheme or not host:
        return None
    return scheme, host, port or DEFAULT_PORTS.get(scheme, 0)


def same_origin(request: Request) -> None:
    """Dependency: refuse (403) a cookie-authenticated state-changing request that another origin may have sent."""
    if request.method in SAFE_METHODS or request.headers.get(HEADER) is not None:
        return
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site.lower() in ALLOWED_FETCH_SITES:
            return
        raise Forbidden(f"cross-site request refused (Sec-Fetch-Site: {site}): submit the form from the review page itself")
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if claimed is None:
        raise Forbidden("cross-site request refused: a form post needs an Origin or Referer header naming this service (or send the X-API-Key header)")
    if _origin(claimed) != _origin(str(request.base_url)):
        raise Forbidden(f"cross-site request refused: it comes from {claimed!r}, not from this service")
