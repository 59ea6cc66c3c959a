"""GET /evidence/{sha256}: evidence files from the ledger's content-addressed store, as outbound messages link them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from ...runtime.errors import NotFound
from ..deps import Store
from ..errors import error_responses

router = APIRouter(tags=["evidence"])  # a reviewer key or session, unless evidence is public (app.py)

_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"RIFF", "image/webp"), (b"{", "application/json"))


def media_type(head: bytes) -> str:
    return next((t for magic, t in _MAGIC if head.startswith(magic)), "application/octet-stream")


@router.get(
    "/evidence/{sha256}",
    response_class=FileResponse,
    summary="One evidence file by its sha256",
    responses={200: {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/jpeg", "image/png", "application/json")}, "description": "The file, byte for byte"}, **error_responses(401, 404, 422)},
)
def evidence(store: Store, sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="Lowercase hex sha256")]) -> FileResponse:
    """Content never changes under its name, so clients may cache it forever."""
    path = store.evidence.path(sha256)
    if not path.is_file():
        raise NotFound(f"no evidence {sha256} in the store")
    with path.open("rb") as f:
        head = f.read(16)
    return FileResponse(path, media_type=media_type(head), headers={"Cache-Control": "private, max-age=31536000, immutable", "ETag": f'"{sha256}"'})
