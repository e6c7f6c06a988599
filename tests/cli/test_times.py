"""How `labres book` reads times; no server needed."""
from datetime import datetime, timezone

import pytest

from labres.cli.errors import CliError
from labres.cli.times import parse_time

NOW = datetime(2026, 11, 24, 15, 30, tzinfo=timezone.utc)


def test_clock_time_later_today_is_today():
    assert parse_time("16:00", now=NOW)[0] == "2026-11-24T16:00"


def test_clock_time_already_past_is_tomorrow():
    assert parse_time("09:15", now=NOW)[0] == "2026-11-25T09:15"


def test_tomorrow_with_a_clock_time():
    assert parse_time("tomorrow 9:30", now=NOW)[0] == "2026-11-25T09:30"


def test_end_clock_time_is_the_next_one_after_the_start():
    _, start = parse_time("tomorrow 10:00", now=NOW)

    assert parse_time("12:00", now=NOW, after=start)[0] == "2026-11-25T12:00"


def test_iso_time_is_sent_without_an_offset():
    assert parse_time("2026-12-01T14:00", now=NOW)[0] == "2026-12-01T14:00"


def test_now_is_sent_in_utc():
    assert parse_time("now", now=NOW)[0] == "2026-11-24T15:30:00Z"


@pytest.mark.parametrize("text", ["25:00", "tomorrow", "soon", "2026-13-01T10:00"])
def test_unreadable_times_are_refused(text):
    with pytest.raises(CliError, match="is not a time"):
        parse_time(text, now=NOW)
