"""What the CLI tells a person when it cannot do what was asked."""
from __future__ import annotations

TYPE_CHECKING = False  # typing is for mypy only: the CLI starts fast without importing it
if TYPE_CHECKING:
    from typing import Any


class CliError(Exception):
    """A failure to report in one line on stderr; `exit_code` is what the process exits with."""

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def lines(self) -> list[str]:
        return [self.message]


class ApiError(CliError):
    """The API answered with its error shape; a 409 carries the conflicts and exits 1 (taken)."""

    def __init__(
        self, status: int, code: str, message: str, *, fields: dict[str, Any] | None = None, conflicts: list[dict[str, Any]] | None = None
    ) -> None:
        # 1 is 'taken' (someone holds it, or a limit stands); a booking in the wrong state is an error like any other.
        super().__init__(message, exit_code=1 if status == 409 and code != "wrong_state" else 2)
        self.status = status
        self.code = code
        self.fields = fields or {}
        self.conflicts = conflicts or []

    def lines(self) -> list[str]:
        if self.conflicts:
            return [conflict.get("message") or self.message for conflict in self.conflicts]
        # Field messages say what exactly is wrong; add the ones the summary leaves out.
        details = [text for texts in self.fields.values() for text in _as_list(texts) if str(text) not in self.message]
        if details:
            return [f"{self.message.rstrip('.')}: {' '.join(str(text) for text in details)}"]
        return [self.message]


def _as_list(texts: Any) -> list[Any]:
    return texts if isinstance(texts, list) else [texts]
