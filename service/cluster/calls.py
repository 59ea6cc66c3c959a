"""Calls across the cluster, and what their failures mean to the HTTP caller.

A Ray call fails in two ways: the remote code raised (a `RayTaskError` carrying the original exception, e.g.
a 409 `Conflict` from a camera's owner, or a 202 `Accepted`), or the process that ran it went away (its node
died, it was killed). The first is handed on as what it was; the second becomes a 503 with Retry-After,
because nothing of the request was acknowledged and the camera's actor is being re-created elsewhere: the
camera resends the frame, and the frame order kept in the ledger refuses it (409) if it had reached the ledger.
"""

from __future__ import annotations

from ..runtime.errors import Overloaded, ServiceError

NAMESPACE = "streetorder"  # the Ray namespace of the service's named actors


def owner_name(camera_id: str | None) -> str:
    """The named actor that owns a camera (`camera:<id>`), or the patrol photos (`patrol`)."""
    return "patrol" if camera_id is None else f"camera:{camera_id}"


def unwrap(e: BaseException, what: str, retry_after_s: int) -> BaseException:
    """The exception to raise for `e`, a failed call to `what` (see the module doc)."""
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError, WorkerCrashedError

    cause = getattr(e, "cause", None) if isinstance(e, RayTaskError) else None
    if isinstance(cause, ServiceError | RayActorError | ActorUnavailableError | WorkerCrashedError):
        e = cause  # a refusal of the remote code, or a call that code made and lost
    if isinstance(e, ServiceError):
        return e
    if isinstance(e, RayActorError | ActorDiedError | ActorUnavailableError | WorkerCrashedError):
        return Overloaded(
            f"{what} went away during the call ({type(e).__name__}); it is being started again on a living node and nothing of this "
            f"request was acknowledged: resend it (a frame that had reached the ledger is then refused with 409)", retry_after_s,
        )
    return e
