"""One error shape for every 4xx under /api/: {"error": {"code", "message", "fields"?, "conflicts"?}}.

DRF calls exception_handler for whatever a view raises; the booking services' domain errors
are mapped here too, so views let them through instead of catching each one.
"""
import math

from django.conf import settings
from django.core.exceptions import (
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
)
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from ..errors import BookingError
from .times import utc_iso

# Every code an answer under /api/ can carry, with its status: the schema's enum (tests/api/test_errors.py
# proves each exception the handler maps has its code here).
CODES = (
    "invalid",  # 400 bad input; also 406 and 415
    "unauthenticated",  # 401
    "forbidden",  # 403: someone else's booking, staff only, a session write without its CSRF token
    "not_allowed_here",  # 403: the member's group may not book this server or room (fair use), with `limit`
    "not_found",  # 404
    "method_not_allowed",  # 405
    "conflict",  # 409 overlap, with `conflicts`; also a waitlist offer that is gone
    "series_conflict",  # 409: dates of a repeat that cannot be booked, with `refused`
    "limit_exceeded",  # 409: over a fair-use limit, with `limit`
    "not_pending",  # 409: an approval decision on a booking that awaits none
    "wrong_state",  # 409: the booking is cancelled, released, ended, or has (not) started for this
    "too_large",  # 413: a request body over DATA_UPLOAD_MAX_MEMORY_SIZE
    "uri_too_long",  # 414: a path and query over API_MAX_URI_LENGTH
    "throttled",  # 429, with Retry-After
    "busy",  # 503, with Retry-After
)
BUSY_RETRY_SECONDS = 1


class SignInThrottled(exceptions.Throttled):
    """The guessing limits (reservations/signin.py) refused to check a password: their words, their wait."""

    def __init__(self, refused):
        super().__init__(wait=refused.retry_after)
        self.reason = refused.message


def exception_handler(exc, context):
    """The response for an exception a view raised, or None to let Django answer 500."""
    response = _domain_error(exc) or _framework_error(exc)
    if response is not None:
        set_rollback()
    return response


def error_response(status_code, code, message, *, fields=None, conflicts=None, limit=None, headers=None):
    body = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    if limit is not None:
        body["limit"] = limit
    if conflicts is not None:
        body["conflicts"] = conflicts
    return Response({"error": body}, status=status_code, headers=headers)


def _domain_error(exc):
    if isinstance(exc, BookingError):
        return _booking_error(exc)
    if isinstance(exc, (Http404, ObjectDoesNotExist)):
        return error_response(status.HTTP_404_NOT_FOUND, "not_found", "Not found.")
    if isinstance(exc, PermissionDenied):
        return error_response(status.HTTP_403_FORBIDDEN, "forbidden", "You may not do this.")
    if isinstance(exc, RequestDataTooBig):  # request.body refused it, unread
        most = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_response(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "too_large", f"The request body is larger than {most} bytes, the most the API reads; send less.")
    return None


def _booking_error(exc):
    """A domain error answered with its own status and code (reservations.errors), and the data it carries."""
    if exc.http_status == status.HTTP_400_BAD_REQUEST:  # bad input: "invalid", on its field (a capacity_exceeded too)
        fields = {exc.field: [exc.message]} if exc.field else None
        return error_response(exc.http_status, "invalid", exc.message, fields=fields)
    rule, conflicts = getattr(exc, "rule", None), getattr(exc, "conflicts", None)
    limit = {"kind": rule.kind, "source": rule.source, "says": rule.limit.describe()} if rule is not None else None
    if conflicts is not None:
        conflicts = [{**conflict.as_dict(), **_utc_times(conflict.booking)} for conflict in conflicts]
    headers = {"Retry-After": str(BUSY_RETRY_SECONDS)} if exc.http_status == status.HTTP_503_SERVICE_UNAVAILABLE else None
    response = error_response(exc.http_status, exc.code, exc.message, conflicts=conflicts, limit=limit, headers=headers)
    if hasattr(exc, "refused"):  # a series: each date that cannot be booked
        response.data["error"].update(refused=[refused_date(refusal) for refusal in exc.refused], total=exc.total, bookable=exc.bookable)
    return response


def _framework_error(exc):
    if not isinstance(exc, exceptions.APIException):
        return None
    headers = {}
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        # APIView.handle_exception sets auth_header when an authenticator can say how to sign in.
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        return error_response(exc.status_code, "unauthenticated", _text(exc.detail), headers=headers)
    if isinstance(exc, exceptions.Throttled):
        wait = math.ceil(exc.wait) if exc.wait is not None else None
        if wait is not None:
            headers["Retry-After"] = str(wait)
        message = f"Too many requests; try again in {wait} s." if wait is not None else "Too many requests; try again later."
        message = getattr(exc, "reason", None) or message
        return error_response(exc.status_code, "throttled", message, headers=headers)
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        return error_response(exc.status_code, "invalid", _summary(fields), fields=fields)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return error_response(exc.status_code, "method_not_allowed", _text(exc.detail))
    if isinstance(exc, exceptions.NotFound):
        return error_response(exc.status_code, "not_found", _text(exc.detail))
    if isinstance(exc, exceptions.PermissionDenied):
        return error_response(exc.status_code, "forbidden", _text(exc.detail))
    # Malformed JSON, an unsupported media type, an unacceptable Accept header: bad input.
    return error_response(exc.status_code, "invalid", _text(exc.detail))


def _text(detail):
    if isinstance(detail, (list, tuple)):
        return " ".join(_text(item) for item in detail)
    if isinstance(detail, dict):
        return " ".join(_text(item) for item in detail.values())
    return str(detail)


def _flatten(detail, prefix=""):
    """{'field': ['message', ...]}, with nested errors under dotted names ('devices.1')."""
    if isinstance(detail, dict):
        fields = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            fields.update(_flatten(value, name))
        return fields
    if isinstance(detail, (list, tuple)) and any(isinstance(item, (dict, list, tuple)) for item in detail):
        fields = {}
        for index, item in enumerate(detail):
            if item:
                fields.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return fields
    messages = [str(item) for item in detail] if isinstance(detail, (list, tuple)) else [str(detail)]
    return {prefix or "non_field_errors": messages}


def _summary(fields):
    """One sentence for the whole: the message itself when there is one, else each field's first."""
    messages = [(name, texts[0]) for name, texts in fields.items() if texts]
    if len(messages) == 1 and sum(len(texts) for texts in fields.values()) == 1:
        return messages[0][1]
    return "; ".join(text if name == "non_field_errors" else f"{name}: {text}" for name, text in messages)


def _utc_times(booking):
    """Conflict.as_dict() writes times as they came; the API writes them in UTC with Z."""
    return {"start": utc_iso(booking.start), "end": utc_iso(booking.end)}


def refused_date(refusal):
    """A Refusal as the API writes it: times in UTC, conflicts with their holders."""
    data = refusal.as_dict()
    data.update(start=utc_iso(refusal.start), end=utc_iso(refusal.end))
    for conflict, found in zip(data.get("conflicts", []), getattr(refusal.error, "conflicts", [])):
        conflict.update(start=utc_iso(found.booking.start), end=utc_iso(found.booking.end))
    return data
