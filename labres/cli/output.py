"""Everything the CLI prints goes through here: text from the portal is made safe for a terminal.

Purposes, names and error messages are written by other members; an ESC in one would change
the reader's terminal (its title, colours, even what it types back), a CR would overwrite the
line, a bidi override would make it read differently. The portal refuses such text on input
(reservations.text), but rows written before that, or by a portal of another version, may hold
it, so the CLI drops on output what reservations.text refuses on input, and the bidi marks.
"""
import json
import sys
import unicodedata

# Cc: C0 and C1 controls, DEL (ESC, CR, BEL, NUL, ...); Cs: lone surrogates; Zl, Zp: line and
# paragraph separators. The same categories reservations.text refuses.
DROPPED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
# Line breaks and tabs become a space, so words on two lines stay two words.
SPACES = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")


def clean(text: object) -> str:
    """`text` with control characters, separators and bidi controls removed (breaks and tabs become a space)."""
    text = str(text)
    if text.isprintable():  # the usual case, one C-level pass
        return text
    return "".join(" " if char in SPACES else "" if _dropped(char) else char for char in text)


def _dropped(char: str) -> bool:
    return char in BIDI_CONTROLS or unicodedata.category(char) in DROPPED_CATEGORIES


def say(line: str = "", *, err: bool = False) -> None:
    """One line on standard output (standard error with err=True)."""
    print(clean(line), file=sys.stderr if err else sys.stdout)


def warn(line: str) -> None:
    """One line on standard error, after 'labres: '."""
    say(f"labres: {line}", err=True)


def emit_json(data: object) -> None:
    """The API's JSON, indented; json.dumps writes every control character as an escape (\\u001b)."""
    print(json.dumps(data, indent=2))
