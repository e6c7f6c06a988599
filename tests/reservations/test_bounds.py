"""Bounded work: what people type and the repeat rules they give are refused quickly when they are too big,
never read at a cost that grows with what an attacker sends (issue 17, section 3)."""
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from django.utils import timezone
from hypothesis import given, settings as hypothesis_settings, strategies as st

from reservations import recurrence, services
from reservations.errors import BookingError
from reservations.models import Booking, BookingSeries
from reservations.parsing import (
    MAX_JSON_DEPTH, ParseError, parse_cpu_cores, parse_device_set, parse_duration, parse_json, parse_memory, parse_moment,
)

H = timedelta(hours=1)
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday
START = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)  # the next day, 10:00
CPU_BUDGET = 0.5  # seconds of CPU: generous on a slow shared machine; the unbounded code took seconds


def cpu_seconds(work):
    """(what `work` returned or raised, the CPU seconds it took)."""
    began = time.process_time()
    try:
        outcome = work()
    except Exception as error:  # noqa: BLE001 - the caller looks at what it is
        outcome = error
    return outcome, time.process_time() - began


# --- the repeat rule's dates: bounded by a horizon, the same dates as RFC 5545 says -------------------


def series(user, **changes):
    kwargs = {"start": START, "end": START + H, "server": "thalys", "devices": "0", "now": NOW, **changes}
    return services.create_series(user, **kwargs)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "repeat, until",
    [
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", date(2999, 12, 31)),  # no 30 February: dateutil walks to 9999
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=5", None),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=MO", date(2999, 12, 31)),  # every 7 days from a Tuesday: never a Monday
        ("FREQ=WEEKLY;BYDAY=MO;BYMONTH=2;BYMONTHDAY=29;COUNT=3", None),  # the next Monday 29 Feb is in 2044
    ],
)
def test_a_rule_with_no_date_ahead_is_refused_at_once(alice, thalys, repeat, until):
    outcome, spent = cpu_seconds(lambda: series(alice, repeat=repeat, until=until))

    assert isinstance(outcome, BookingError) and outcome.field == "repeat", outcome
    assert "gives no date from 03 Mar 2026 to 02 Mar 2027 (bookings can be made up to 365 days ahead" in outcome.message
    assert spent < CPU_BUDGET
    assert not BookingSeries.objects.exists() and not Booking.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes, field, says",
    [
        ({"repeat": "monthly", "count": 24}, "count", "its 24 dates reach further"),
        ({"repeat": "FREQ=MONTHLY;COUNT=13"}, "repeat", "its 13 dates reach further"),
        ({"repeat": "monthly", "until": date(2028, 3, 3)}, "until", "its dates until 03 Mar 2028 reach further"),
        ({"repeat": "FREQ=YEARLY;UNTIL=29991231"}, "until", "its dates until 31 Dec 2999 reach further"),
    ],
)
def test_a_rule_that_goes_on_past_what_can_be_booked_is_refused(alice, thalys, changes, field, says):
    with pytest.raises(BookingError, match="goes on past what can be booked") as caught:
        series(alice, **changes)

    assert caught.value.field == field and says in caught.value.message
    assert "up to 365 days ahead, until Tue 02 Mar 2027 08:00" in caught.value.message
    assert not Booking.objects.exists()


@pytest.mark.django_db
def test_a_series_may_reach_to_the_horizon_and_no_further(alice, thalys, settings):
    settings.BOOKING_MAX_AHEAD = "30d"
    # 10:00 on 1 April is past 08:00, thirty days from now: the last Tuesday it may give is 31 March.
    with pytest.raises(BookingError, match="up to 30 days ahead, until Wed 01 Apr 2026 08:00"):
        series(alice, repeat="daily", until=date(2026, 4, 1))

    result = series(alice, repeat="weekly", until=date(2026, 4, 1))
    assert [booking.start.date() for booking in result.bookings] == [date(2026, 3, d) for d in (3, 10, 17, 24, 31)]


@pytest.mark.django_db
def test_the_horizon_reads_a_duration_setting_too(alice, thalys, settings):
    settings.BOOKING_MAX_AHEAD = "7d"
    with pytest.raises(BookingError, match="up to 7 days ahead"):
        series(alice, repeat="daily", count=8)
    assert len(series(alice, repeat="daily", count=6).bookings) == 6


@pytest.mark.django_db
def test_a_first_date_past_the_horizon_is_refused(alice, thalys, settings):
    settings.BOOKING_MAX_AHEAD = "12h"
    with pytest.raises(BookingError, match="Bookings start at most 12h ahead") as caught:  # as any booking is told
        series(alice, repeat="daily", count=2)
    assert caught.value.field == "start"


def test_a_repeat_text_longer_than_anyone_types_is_refused_before_it_is_read():
    for text in ("weekly on " + "mon," * 100_000, "FREQ=WEEKLY;" + "WKST=MO;" * 100_000):
        outcome, spent = cpu_seconds(lambda text=text: recurrence.parse_repeat(text))
        assert isinstance(outcome, ParseError) and "at most 200" in str(outcome)
        assert spent < CPU_BUDGET


full_rules = st.builds(
    lambda freq, interval, days, monthdays, months, wkst: recurrence.format_rule(
        freq, interval, tuple(sorted(days, key=recurrence.DAYS.index)),
        {name: ",".join(map(str, sorted(values))) for name, values in (("BYMONTHDAY", monthdays), ("BYMONTH", months)) if values}
        | ({"WKST": wkst} if wkst else {}),
    ),
    st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]),
    st.one_of(st.integers(1, 3), st.integers(1, recurrence.MAX_INTERVAL)),
    st.sets(st.sampled_from(recurrence.DAYS), max_size=3),
    st.sets(st.integers(1, 31) | st.integers(-31, -1), max_size=3),
    st.sets(st.integers(1, 12), max_size=3),
    st.sampled_from([None, "MO", "SU", "WE"]),
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(full_rules, st.datetimes(datetime(9990, 1, 1), datetime(9993, 12, 31)), st.integers(0, 800))
def test_the_bounded_walk_gives_the_dates_dateutil_gives(rule, first, days):
    """Near the year 9999, python-dateutil's unbounded iteration ends soon (at its MAXYEAR): the walk must agree."""
    first = first.replace(second=0, microsecond=0)
    until = first.date() + timedelta(days=days)
    ours = recurrence.occurrences(rule, first=first, until=until, zone=UTC, limit=10_000, horizon=until)
    theirs = list(rrulestr(rule, dtstart=first).replace(until=datetime.combine(until, first.time())))

    assert [moment.replace(tzinfo=None) for moment in ours] == theirs


@given(full_rules, st.integers(1, 500))
def test_the_walk_looks_at_no_day_past_the_horizon(rule, days):
    first = datetime(2026, 3, 3, 10, 0)
    horizon = first.date() + timedelta(days=days)
    starts = recurrence.occurrences(rule + ";COUNT=10000", first=first, zone=ZoneInfo("Europe/Berlin"), limit=10_000, horizon=horizon)
    assert all(first.date() <= start.date() <= horizon for start in starts)


# --- what people type: refused or read, at once, never another exception ------------------------------


GIANT = [
    "9" * 5000,
    "9" * 5000 + "d",
    "999999999999d",
    "0-999999999",
    ",".join(["0-1023"] * 20_000),
    ",".join(str(index) for index in range(200_000)),
    "1" + "0" * 4400,
    " 1" * 500_000,
    "9" * 1_000_000 + "G",
]
PARSERS = {
    "device set": parse_device_set,
    "duration": parse_duration,
    "memory": parse_memory,
    "cpu cores": parse_cpu_cores,
    "time": lambda text: parse_moment(text, now=NOW, zone=UTC),
}


@pytest.mark.parametrize("name", PARSERS)
@pytest.mark.parametrize("text", GIANT, ids=lambda text: f"{text[:12]}…{len(text)}")
def test_giant_input_is_refused_with_a_parse_error_at_once(name, text):
    outcome, spent = cpu_seconds(lambda: PARSERS[name](text))

    assert isinstance(outcome, ParseError), (name, outcome)
    assert len(str(outcome)) < 300  # says what is wrong without quoting it all back
    assert spent < CPU_BUDGET


typed = st.one_of(
    st.text(max_size=3000),
    st.from_regex(r"[0-9,\- ]{0,3000}", fullmatch=True),
    st.from_regex(r"[0-9dhmgtGT:. \-]{0,300}", fullmatch=True),
    st.builds(lambda digits, tail: "9" * digits + tail, st.integers(0, 50) | st.integers(4200, 6000), st.sampled_from(["", "d", "h", "G", "-1", ":00"])),
)


@hypothesis_settings(deadline=None)
@given(st.sampled_from(sorted(PARSERS)), typed)
def test_any_text_is_read_or_refused_quickly_never_another_error(name, text):
    outcome, spent = cpu_seconds(lambda: PARSERS[name](text))

    assert not isinstance(outcome, Exception) or isinstance(outcome, ParseError), (name, outcome)
    assert spent < CPU_BUDGET


def test_json_nested_deeper_than_the_bound_is_a_parse_error():
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    for text in ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), '{"a":' * 2000 + "1" + "}" * 2000, "[" * 100_000):
        with pytest.raises(ParseError, match=f"deeper than {MAX_JSON_DEPTH} levels"):
            parse_json(text)


@given(st.recursive(st.none() | st.integers() | st.text(max_size=3), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)))
def test_json_within_the_bound_reads_as_json_does(data):
    import json

    assert parse_json(json.dumps(data)) == data


# --- the web pages ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_booking_form_refuses_a_repeat_past_what_can_be_booked(client, alice, thalys):
    client.force_login(alice)
    start = (timezone.now() + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    form = {
        "what": "gpus", "server": "thalys", "gpus": ["thalys:0"], "devices": "", "room": "", "length": "1h", "duration": "", "end": "",
        "start": start.strftime("%Y-%m-%dT%H:%M"), "purpose": "", "repeat": "every 2 weeks", "until": (start + timedelta(days=730)).date().isoformat(),
    }

    response = client.post("/book/", form)

    assert response.status_code == 400
    assert "goes on past what can be booked" in response.content.decode()
    assert not Booking.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/book/", "/accounts/login/"])
def test_a_form_post_over_the_body_bound_is_a_400(client, alice, path):
    client.force_login(alice)

    assert client.post(path, {"purpose": "x" * 1000}).status_code == 200  # the form again, with what is missing

    assert client.post(path, {"purpose": "x" * (1024 * 1024 + 1)}).status_code == 400  # unread
