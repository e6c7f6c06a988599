from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservations.parsing import (
    MAX_DEVICE_INDEX,
    ParseError,
    format_device_set,
    format_duration,
    parse_device_set,
    parse_duration,
    parse_moment,
    parse_target,
)

indices = st.integers(min_value=0, max_value=MAX_DEVICE_INDEX)


@pytest.mark.parametrize(
    "text, expected",
    [("0", [0]), ("0-2", [0, 1, 2]), ("0-2,5,7-9", [0, 1, 2, 5, 7, 8, 9]), (" 3 , 1 ", [1, 3]), ("1-3,2", [1, 2, 3]), ("4-4", [4])],
)
def test_device_sets_read_as_written(text, expected):
    assert parse_device_set(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("2x", "'2x' is not a GPU index"),
        ("0,,1", "'' is not a GPU index"),
        ("3-1", "backwards range"),
        ("-1", "'-1' is not a GPU index"),
        ("0-99999", "out of range"),
    ],
)
def test_bad_device_sets_name_the_bad_token(text, message):
    with pytest.raises(ParseError, match=message):
        parse_device_set(text)


@given(st.sets(indices, min_size=1))
def test_device_set_round_trips_through_its_short_form(chosen):
    assert parse_device_set(format_device_set(chosen)) == sorted(chosen)


@given(st.sets(indices, min_size=1))
def test_short_form_merges_every_run(chosen):
    text = format_device_set(chosen)
    for part in text.split(","):
        low, _, high = part.partition("-")
        assert not high or int(low) < int(high)
    # No two parts touch: a run would have been merged.
    bounds = [tuple(map(int, p.split("-"))) if "-" in p else (int(p), int(p)) for p in text.split(",")]
    assert all(prev[1] + 1 < nxt[0] for prev, nxt in zip(bounds, bounds[1:]))


@given(st.text(max_size=30))
def test_device_set_parser_never_fails_with_anything_but_a_parse_error(text):
    try:
        result = parse_device_set(text)
    except ParseError as error:
        assert str(error)
    else:
        assert result == sorted(set(result)) and all(0 <= i <= MAX_DEVICE_INDEX for i in result)


def test_target_splits_server_and_devices():
    assert parse_target("thalys:0-1") == ("thalys", [0, 1])
    assert parse_target(" thalys ") == ("thalys", None)


@pytest.mark.parametrize("text", ["", ":0-1", "thalys:"])
def test_bad_targets_are_refused(text):
    with pytest.raises(ParseError):
        parse_target(text)


@pytest.mark.parametrize(
    "text, minutes",
    [("30m", 30), ("2h", 120), ("1h30m", 90), ("1d", 1440), ("1d2h3m", 1563), (" 2H ", 120), ("1h 30m", 90)],
)
def test_durations_read_as_written(text, minutes):
    assert parse_duration(text) == timedelta(minutes=minutes)


@pytest.mark.parametrize(
    "text, message",
    [
        ("2x", "'2x' is not a duration; use e.g. 30m, 2h, 1h30m"),
        ("", "is not a duration"),
        ("h", "is not a duration"),
        ("30m1h", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("0m", "is zero"),
        ("99999999999999999999d", "too long"),
    ],
)
def test_bad_durations_say_what_would_be_right(text, message):
    with pytest.raises(ParseError, match=message):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=3650 * 1440))
def test_duration_round_trips_through_its_short_form(minutes):
    delta = timedelta(minutes=minutes)
    assert parse_duration(format_duration(delta)) == delta


@given(st.text(max_size=20))
def test_duration_parser_never_fails_with_anything_but_a_parse_error(text):
    try:
        result = parse_duration(text)
    except ParseError as error:
        assert str(error)
    else:
        assert timedelta(0) < result <= timedelta(days=3650)


# --- parse_moment ---------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 23, 13, 30, tzinfo=dt_timezone.utc)  # 14:30 in Berlin
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(dt_timezone.utc))
clocks = st.tuples(st.integers(0, 23), st.integers(0, 59))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("now", NOW),
        ("16:00", datetime(2026, 11, 23, 16, 0, tzinfo=BERLIN)),
        ("9:00", datetime(2026, 11, 24, 9, 0, tzinfo=BERLIN)),
        ("today 14:30", datetime(2026, 11, 23, 14, 30, tzinfo=BERLIN)),
        ("Tomorrow 9:00", datetime(2026, 11, 24, 9, 0, tzinfo=BERLIN)),
        ("2026-11-25T14:00", datetime(2026, 11, 25, 14, 0, tzinfo=BERLIN)),
        ("2026-11-25T14:00+00:00", datetime(2026, 11, 25, 14, 0, tzinfo=dt_timezone.utc)),
    ],
)
def test_moments_read_as_written(text, expected):
    assert parse_moment(text, now=NOW, zone=BERLIN) == expected


@pytest.mark.parametrize("text", ["", "soon", "25:00", "12:60", "tomorrow", "yesterday 9:00", "2026-13-01T10:00"])
def test_bad_moments_say_what_times_look_like(text):
    with pytest.raises(ParseError, match="e.g. now, 14:00"):
        parse_moment(text, now=NOW, zone=BERLIN)


@given(moments, clocks)
def test_a_bare_clock_time_is_the_next_one_within_a_day(now, clock):
    moment = parse_moment(f"{clock[0]}:{clock[1]:02d}", now=now, zone=dt_timezone.utc)
    assert now <= moment < now + timedelta(days=1)
    assert (moment.hour, moment.minute) == clock


@given(moments, clocks)
def test_tomorrow_is_the_day_after_today(now, clock):
    text = f"{clock[0]:02d}:{clock[1]:02d}"
    today = parse_moment(f"today {text}", now=now, zone=BERLIN)
    tomorrow = parse_moment(f"tomorrow {text}", now=now, zone=BERLIN)
    assert tomorrow.date() - today.date() == timedelta(days=1)
    assert today.date() == now.astimezone(BERLIN).date()


@given(moments)
def test_iso_times_round_trip(moment):
    moment = moment.replace(second=0, microsecond=0)
    assert parse_moment(moment.isoformat(), now=NOW, zone=BERLIN) == moment


@given(st.text(max_size=30))
def test_parse_moment_raises_only_parse_errors(text):
    try:
        moment = parse_moment(text, now=NOW, zone=BERLIN)
    except ParseError:
        return
    assert moment.tzinfo is not None
