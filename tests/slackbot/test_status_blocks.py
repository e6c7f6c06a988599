"""/gpu status and /gpu realtime within Slack's limits without losing anything: a server's text is
budgeted after escaping and split between GPUs into more sections; what cannot fit in one message's
50 blocks is counted, with where to see it. Checked with slack_sdk's Block Kit models."""
import re
from datetime import timedelta

import pytest

from notifications.slackbot.commands import handle_command
from reservations import services
from tests.factories import ServerFactory

from .block_kit import assert_no_member_markup, assert_valid_blocks

AMPERSANDS = "&" * 200  # the longest purpose, five times longer escaped


@pytest.fixture
def now(later):
    return later


def sections(reply):
    return [block["text"]["text"] for block in reply.blocks if block["type"] == "section"]


def gpu_lines(reply):
    return [line for text in sections(reply) for line in text.split("\n") if line.startswith("`GPU ")]


def test_status_of_a_server_whose_purposes_fill_more_than_a_section_shows_every_gpu_whole(alice, alice_slack, thalys, now):
    for index in range(8):
        services.create_booking(alice, start=now, end=now + timedelta(hours=2), purpose=AMPERSANDS, server=thalys, devices=str(index), now=now)

    reply = handle_command("status thalys", slack_user_id=alice_slack, now=now)

    assert_valid_blocks(reply.blocks)
    assert_no_member_markup(reply.as_slack())  # every & an entity: none cut in half
    lines = gpu_lines(reply)
    assert [re.match(r"`GPU (\d+)`", line).group(1) for line in lines] == [str(i) for i in range(8)]
    assert all(line.count("&amp;") == 200 for line in lines)  # each purpose whole
    texts = sections(reply)
    assert len(texts) > 2  # the header, then thalys over several sections
    titles = [text.split("\n")[0] for text in texts[1:]]
    assert all(title.startswith("*thalys*") for title in titles)  # a reader knows whose GPUs these are
    assert "(continued)" not in titles[0] and all(title.endswith("(continued)") for title in titles[1:])


def test_a_server_too_big_for_one_message_says_how_many_gpus_are_left_out_and_where(alice, alice_slack, now, settings):
    big = ServerFactory(name="dgx", gpus=160)
    services.create_booking(alice, start=now, end=now + timedelta(hours=2), purpose=AMPERSANDS, server=big, now=now)

    reply = handle_command("status dgx", slack_user_id=alice_slack, now=now)

    assert_valid_blocks(reply.blocks)
    assert len(reply.blocks) == 50
    shown = len(gpu_lines(reply))
    note = reply.blocks[-1]["elements"][0]["text"]
    assert f"{160 - shown} GPUs of 1 server." in note
    assert f"<{settings.SITE_URL}/|the Now page>" in note


def test_status_of_many_servers_counts_the_gpus_and_servers_left_out(alice_slack, now):
    for n in range(52):
        ServerFactory(name=f"node{n:02d}", gpus=8)

    reply = handle_command("status", slack_user_id=alice_slack, now=now)

    assert_valid_blocks(reply.blocks)
    assert "32 GPUs of 4 servers. See a server alone with `/gpu status SERVER`" in reply.blocks[-1]["elements"][0]["text"]
