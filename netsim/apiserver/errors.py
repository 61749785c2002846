"""Every error the API answers is a `Status` object with the API server's reason, code and message.

Reasons, codes and message shapes are apimachinery's (k8s.io/apimachinery pkg/apis/meta/v1/types.go
StatusReason*, pkg/api/errors/errors.go NewNotFound, NewAlreadyExists, NewConflict, NewInvalid,
NewResourceExpired, NewMethodNotSupported, NewUnauthorized, NewBadRequest), so clients that switch on
`reason` (client-go's errors.IsNotFound, IsConflict, kubectl's "Error from server (NotFound): ...") work.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer: the HTTP code, the Status reason, a message and Status `details`."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            out["details"] = self.details
        return out


def _details(resource: str, group: str, name: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": resource}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    return d


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                    _details(resource, group, name))


def resource_not_found() -> ApiError:
    """A path no resource serves (the API server's 404 from its mux: reason NotFound, no details)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                    _details(resource, group, name))


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": '
                    f"{why}", _details(resource, group, name))


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422: `Kind "name" is invalid: field: message` with one cause per field (NewInvalid)."""
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    text = parts[0] if len(parts) == 1 else f"[{', '.join(parts)}]"  # utilerrors.Aggregate's rendering
    details = _details(kind, group, name)
    details["causes"] = [{"reason": c.get("reason", "FieldValueInvalid"), "message": c["message"],
                          "field": c.get("field", "")} for c in causes]
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}', details)


def expired(message: str) -> ApiError:
    """410 Gone, reason Expired: a watch or list from a resourceVersion that was compacted away."""
    return ApiError(410, "Expired", message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(verb: str, resource: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                    {"kind": resource} if resource else None) if verb else ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted "
                    f"media types include: application/json, application/yaml, application/json-patch+json, "
                    f"application/merge-patch+json, application/strategic-merge-patch+json, "
                    f"application/apply-patch+yaml (got {content_type!r})")


def not_acceptable(accept: str) -> ApiError:
    return ApiError(406, "NotAcceptable", f"only the following media types are accepted: application/json, "
                    f"application/yaml (asked for {accept!r})")


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def timeout(message: str) -> ApiError:
    """The storage did not answer in time: upstream's 504 (apierrors.NewTimeoutError, reason Timeout), which
    clients retry (client-go's errors.IsTimeout, kubectl's "Error from server (Timeout)")."""
    return ApiError(504, "Timeout", message, {"retryAfterSeconds": 1})
