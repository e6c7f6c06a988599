"""describe_target and format_span: the one way each surface names a booking's target and its time."""
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from reservations.parsing import LISTING, PART, PLACE, PROSE, TYPED, describe_target, format_span, parse_target


@pytest.mark.parametrize(
    "style, expected",
    [
        (TYPED, "thalys:0-1,5"), (PROSE, "GPUs 0-1,5 on thalys"), (LISTING, "thalys GPUs 0-1,5"),
        (PART, "GPUs 0-1,5 of thalys"), (PLACE, "server thalys"),
    ],
)
def test_each_style_names_gpus_its_own_way(style, expected):
    assert describe_target("thalys", [5, 1, 0], style=style) == expected


@pytest.mark.parametrize("style", [PROSE, LISTING, PART])
def test_one_gpu_takes_the_singular(style):
    assert "GPU 3" in describe_target("thalys", [3], style=style)
    assert "GPUs" not in describe_target("thalys", [3], style=style)


@pytest.mark.parametrize("style", [TYPED, PROSE, LISTING])
def test_a_whole_server_and_a_room_read_the_same_in_every_style_but_place(style):
    assert describe_target("thalys", whole=True, style=style) == "thalys (whole server)"
    assert describe_target(room="Lab 2", style=style) == "room Lab 2"
    assert describe_target(room="Lab 2", style=PLACE) == "room Lab 2"


def test_shares_follow_the_gpus_or_stand_alone():
    assert describe_target("big", [0], shares="16 CPU cores") == "big:0 + 16 CPU cores"
    assert describe_target("big", shares="16 CPU cores, 64 GiB") == "big: 16 CPU cores, 64 GiB"
    assert describe_target("big", shares="64 GiB", style=PROSE) == "64 GiB on big"


def test_a_count_of_any_gpus_is_prose():
    assert describe_target("thalys", count=2, style=PROSE) == "2 GPUs on thalys"
    assert describe_target("thalys", count=1, shares="64 GiB", style=PROSE) == "1 GPU on thalys + 64 GiB"


def test_the_typed_style_reads_back_as_the_same_target():
    assert parse_target(describe_target("thalys", [0, 1, 2, 7])) == ("thalys", [0, 1, 2, 7])


def test_format_span_for_a_sentence_says_from_and_to():
    start, end = datetime(2026, 11, 23, 10, tzinfo=UTC), datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert format_span(start, end, UTC) == "Mon 23 Nov 10:00–12:00 UTC"
    assert format_span(start, end, UTC, sentence=True) == "from Mon 23 Nov 10:00 to 12:00 UTC"


def test_format_span_without_a_zone_uses_the_active_one():
    start, end = datetime(2026, 11, 23, 10, tzinfo=UTC), datetime(2026, 11, 24, 12, tzinfo=UTC)
    with timezone.override(ZoneInfo("Asia/Tokyo")):
        assert format_span(start, end) == "Mon 23 Nov 19:00–Tue 24 Nov 21:00 JST"
