"""What members write that others read (purposes, names, reasons): one check for every surface.

The services call check_text before they write, whatever the surface (web, API, Slack, CLI,
calendar import); the models' fields carry refuse_control_characters for the forms Django builds
from them (the profile page, the admin). SQLite does not enforce a column's length, so the length
is checked here too.
"""
import unicodedata

from django.core.exceptions import ValidationError

from .errors import BookingError

# Control characters (Cc: line breaks, tabs, escapes, NUL) and the Unicode line and paragraph
# separators break a line of text, an e-mail header or a Slack message; a lone surrogate (Cs) is
# not text at all (a database refuses to store it). The bidirectional embeddings, overrides and
# isolates make text read differently from what it is. Zero-width joiners stay: emoji need them.
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def control_character(value: str) -> str | None:
    """The first character of `value` that text here may not contain, or None."""
    for char in value:
        if char in BIDI_CONTROLS or unicodedata.category(char) in REFUSED_CATEGORIES:
            return char
    return None


def text_problem(value: str, *, label: str, max_length: int | None = None) -> str | None:
    """Why `value` cannot be stored as the `label` ('purpose', 'display name'), or None."""
    if max_length is not None and len(value) > max_length:
        return f"Keep the {label} to {max_length} characters; it has {len(value)}."
    char = control_character(value)
    if char is not None:
        return (
            f"The {label} contains a line break or another control character (U+{ord(char):04X}); "
            "write it on one line, as plain text."
        )
    return None


def check_text(value: str | None, *, field: str, label: str, max_length: int | None) -> str:
    """`value` stripped, if it is one line of plain text of at most `max_length` characters; else BookingError."""
    value = (value or "").strip()
    problem = text_problem(value, label=label, max_length=max_length)
    if problem:
        raise BookingError(problem, field=field)
    return value


def refuse_control_characters(value: str) -> None:
    """A model field's validator: the forms Django builds (profile, admin) refuse what check_text refuses."""
    problem = text_problem(value, label="text")
    if problem:
        raise ValidationError(problem.replace("The text contains", "This contains"), code="control_character")


def plain(value: str) -> str:
    """`value` without the characters text_problem refuses: for writing a name stored before they were refused."""
    return "".join(" " if char in "\t\n\r" else char for char in value if char in "\t\n\r" or control_character(char) is None)
