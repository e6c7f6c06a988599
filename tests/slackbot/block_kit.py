"""Slack payloads judged as Slack reads them: each block parsed and validated by slack_sdk's Block
Kit models (a section's text at most 3,000 characters, ...), at most 50 blocks a message, and every
text Slack parses as mrkdwn collected, to look for control sequences a member's text could form."""
import re

from django.conf import settings
from slack_sdk.models.blocks import Block

# Member-written text that tries every control sequence of Slack's mrkdwn.
EVIL = "<!channel> <@U0EVIL> <https://evil.example|click me> & *bold*"
EVIL_ESCAPED = "&lt;!channel&gt; &lt;@U0EVIL&gt; &lt;https://evil.example|click me&gt; &amp; *bold*"

MAX_BLOCKS = 50


def assert_valid_blocks(blocks):
    assert len(blocks) <= MAX_BLOCKS, f"{len(blocks)} blocks; Slack takes {MAX_BLOCKS} at most"
    for block in blocks:
        Block.parse(block).validate_json()  # SlackObjectFormationError if a limit is broken


def texts_of(payload, kind):
    """Every text object of `kind` (mrkdwn, plain_text) in the payload's blocks; for mrkdwn also the
    top-level text, which Slack parses as mrkdwn too."""
    texts = [payload["text"]] if kind == "mrkdwn" and payload.get("text") else []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == kind and isinstance(node.get("text"), str):
                texts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload.get("blocks") or [])
    return texts


def assert_no_member_markup(payload):
    """No <!…>, <@U0EVIL>, <#…> or foreign <http…> survives in any mrkdwn text; every & is an entity;
    plain_text objects carry none of it. Our own links (SITE_URL) and linked members' mentions may stay."""
    for text in texts_of(payload, "mrkdwn"):
        for token in re.findall(r"<([^<>]*)>", text):
            ours = token.startswith(settings.SITE_URL) and "evil" not in token
            mention = re.fullmatch(r"@U[A-Z0-9]+", token) and token != "@U0EVIL"
            assert ours or mention, f"<{token}> is a control sequence from member text in: {text!r}"
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), f"a raw & in: {text!r}"
    for text in texts_of(payload, "plain_text"):
        assert "evil" not in text and "<" not in text, text
    if payload.get("blocks"):
        assert_valid_blocks(payload["blocks"])
