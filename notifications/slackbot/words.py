"""The words a member typed after the command, read back from the text Slack sends.

Slack escapes a command's text: &, < and > arrive as &amp;, &lt; and &gt;. With the shipped
manifest's `should_escape: true` it also sends what it recognised as tokens: a mentioned member as
<@U123|bob> (or <@U123>), a channel as <#C123|general>, a typed address as
<mailto:bob@lab.org|bob@lab.org>, a link as <https://wiki.lab.org|wiki.lab.org>, @channel as
<!channel>. words() turns each back into what was typed, so that every argument (an e-mail, a
server, a purpose) is read the same way; a word that mentions a member keeps the Slack id.
"""
import re

_WORD = re.compile(r"(?:<[^<>]*>|\S)+")  # a <…> token is part of a word, spaces in its label too
_TOKEN = re.compile(r"<([^<>]*)>")
_ENTITY = re.compile(r"&(amp|lt|gt);")
_CHARACTERS = {"amp": "&", "lt": "<", "gt": ">"}
_MEMBER_ID = re.compile(r"[UW][A-Z0-9]+")


class Word(str):
    """A word as typed; `member_id` is the Slack id of the member it mentions, if it is one mention."""

    member_id = ""


def words(text):
    """The words of a command's text as the member typed them (Slack's tokens and entities undone)."""
    return [_word(raw) for raw in _WORD.findall(text or "")]


def _word(raw):
    word = Word(_unescape(_TOKEN.sub(_typed, raw)))
    mention = _TOKEN.fullmatch(raw)
    if mention:
        target = mention.group(1).partition("|")[0]
        if target.startswith("@") and _MEMBER_ID.fullmatch(target[1:]):
            word.member_id = target[1:]
    return word


def _typed(match):
    """What the member typed where Slack put this token."""
    target, _, label = match.group(1).partition("|")
    if target[:1] in ("@", "#"):  # a member or a channel: @bob, #general
        return target[0] + label.lstrip(target[0]) if label else target
    if target.startswith("!"):  # <!channel>, <!subteam^S1|@team>, <!date^…|fallback>
        return label or "@" + target[1:]
    if label:  # a link or an address, written as typed
        return label
    return target.removeprefix("mailto:")


def _unescape(text):
    return _ENTITY.sub(lambda match: _CHARACTERS[match.group(1)], text)
