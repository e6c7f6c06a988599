"""The JSON API over HTTP, with the standard library only (urllib), so the CLI starts fast."""
from __future__ import annotations

import json
import socket
from urllib.parse import urlencode

from .config import NOT_LOGGED_IN
from .errors import ApiError, CliError

TYPE_CHECKING = False  # typing is for mypy only: the CLI starts fast without importing it
if TYPE_CHECKING:
    from typing import Any
    from urllib.error import HTTPError

USER_AGENT = "labres-cli/1"


class Client:
    """Talks to /api/v1/ of one portal; every failure becomes a CliError with a readable message."""

    def __init__(self, url: str, token: str | None = None, *, username: str | None = None, timeout: float = 10.0) -> None:
        self.url = url  # normalized: 'https://labres.example.org', no trailing slash
        self.token = token
        self.username = username  # whose token it is, when known without asking me/
        self.timeout = timeout

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body=body if body is not None else {})

    def get_all(self, path: str, **query: Any) -> list[Any]:
        """Every result of a paginated list, page after page."""
        results, page = [], 1
        while True:
            answer = self.get(path, page=page, page_size=500, **query)
            results.extend(answer.get("results", []))
            if not answer.get("next"):
                return results
            page += 1

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: object = None) -> Any:
        # Imported here: `labres --help` and a cached `labres prompt` never need http.client.
        import urllib.error
        import urllib.request

        address = f"{self.url}/api/v1/{path}"
        query = {key: value for key, value in (query or {}).items() if value is not None}
        if query:
            address += "?" + urlencode(query)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        request = urllib.request.Request(address, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return self._read_json(response.read(), response.status)
        except urllib.error.HTTPError as error:
            raise self._api_error(error) from None
        except urllib.error.URLError as error:
            raise CliError(f"cannot reach {self.url}: {_reason(error.reason)}") from None
        except (TimeoutError, socket.timeout):
            raise CliError(f"cannot reach {self.url}: no answer within {self.timeout:g} s") from None
        except (ConnectionError, OSError) as error:
            raise CliError(f"cannot reach {self.url}: {_reason(error)}") from None

    def _read_json(self, raw: bytes, status: int) -> Any:
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise CliError(f"{self.url} answered HTTP {status} without JSON; is it the labres portal's address?") from None

    def _api_error(self, error: HTTPError) -> CliError:
        try:
            body = json.loads(error.read() or b"null")
        except (ValueError, OSError):
            body = None
        shape = body.get("error") if isinstance(body, dict) else None
        if error.code == 401:
            detail = shape.get("message", "") if isinstance(shape, dict) else ""
            return CliError(f"{NOT_LOGGED_IN} ({self.url} refused the token{': ' + detail.rstrip('.') if detail else ''})")
        if not isinstance(shape, dict):
            if error.code == 404:
                return CliError(f"{self.url} has no labres API at {error.url}; is it the portal's address?")
            return CliError(f"{self.url} answered HTTP {error.code} ({error.reason}); try again, or tell the lab's admins")
        return ApiError(
            error.code,
            shape.get("code", ""),
            shape.get("message") or f"HTTP {error.code}",
            fields=shape.get("fields"),
            conflicts=shape.get("conflicts"),
        )


def _reason(reason: object) -> str:
    """'connection refused', 'name or service not known', 'timed out' — the cause, as a person reads it."""
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[0].lower() + reason.strerror[1:]
    return str(reason) or reason.__class__.__name__
