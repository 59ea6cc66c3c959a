"""What the runtime refuses, as plain exceptions that say whose fault it was (`status`): the runtime knows nothing
of HTTP, and `service.http.errors` turns these into JSON answers."""

from __future__ import annotations


class ServiceError(Exception):
    """An error with a status code and a message fit for the caller."""

    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __reduce__(self):
        """Pickled with all its fields (`queued`, `retry_after_s`), so it crosses a process boundary whole: a camera's
        actor on a Ray cluster refuses a frame with the same error the one-process service raises."""
        return (_restore, (type(self), self.__dict__.copy()))


class Accepted(ServiceError):
    """Taken and safe, not yet in the ledger: a frame whose incident reports wait in the journaled queue."""

    status = 202

    def __init__(self, detail: str, *, queued: int) -> None:
        super().__init__(detail)
        self.queued = queued


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    """The request is well-formed but clashes with the service's state (frame order, config without fixtures file)."""

    status = 409


class Unprocessable(ServiceError):
    status = 422


class TooLarge(ServiceError):
    status = 413


class Unavailable(ServiceError):
    """Not the caller's fault and maybe temporary: no model loaded, the ledger unreachable."""

    status = 503


class Overloaded(Unavailable):
    """Too busy right now (detector queue full, memory budget taken): 503 with Retry-After, try again shortly."""

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


def _restore(cls: type[ServiceError], fields: dict) -> ServiceError:
    e = cls.__new__(cls)
    Exception.__init__(e, fields.get("detail"))
    e.__dict__.update(fields)
    return e
