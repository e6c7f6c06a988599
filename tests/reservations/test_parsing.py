from datetime import timedelta

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
