"""nearest_free_start: the earliest start at which the same units are free for the same length."""
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservations.selectors import _first_gap, nearest_free_start
from reservations.services import cancel_booking, create_booking, resolve_target

H = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
BASE = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def at(minutes):
    return BASE + minutes * MINUTE


@st.composite
def unit_busy(draw):
    """One unit's bookings: intervals on a minute grid that never overlap each other (back to back is fine)."""
    moment, intervals = draw(st.integers(-200, 200)), []
    for _ in range(draw(st.integers(0, 6))):
        moment += draw(st.integers(0, 120))
        length = draw(st.integers(1, 180))
        intervals.append((moment, moment + length))
        moment += length
    return intervals


def first_free_minute(busy, start, length, horizon):
    """The reference: try every minute from start to start + horizon."""
    for candidate in range(start, start + horizon + 1):
        if all(end <= candidate or begin >= candidate + length for begin, end in busy):
            return candidate
    return None


@given(
    units=st.lists(unit_busy(), min_size=1, max_size=3),
    start=st.integers(0, 300),
    length=st.integers(1, 240),
    horizon=st.integers(0, 600),
)
def test_first_gap_agrees_with_trying_every_minute(units, start, length, horizon):
    busy = sorted(interval for intervals in units for interval in intervals)

    found = _first_gap([(at(b), at(e)) for b, e in busy], at(start), length * MINUTE, horizon * MINUTE)

    expected = first_free_minute(busy, start, length, horizon)
    assert found == (None if expected is None else at(expected))


# --- against the database -------------------------------------------------------------------


def units(devices):
    return resolve_target(server="thalys", devices=devices).units


@pytest.mark.django_db
def test_nearest_free_start_is_the_start_itself_when_free(alice, thalys, later):
    create_booking(alice, start=later, end=later + H, server="thalys", devices="0")

    assert nearest_free_start(units("1"), later, H) == later


@pytest.mark.django_db
def test_nearest_free_start_is_the_end_of_the_booking_in_the_way(alice, thalys, later):
    create_booking(alice, start=later, end=later + 2 * H, server="thalys", devices="0-1")

    assert nearest_free_start(units("1-2"), later + H, H) == later + 2 * H


@pytest.mark.django_db
def test_nearest_free_start_skips_a_gap_too_short(alice, bob, thalys, later):
    create_booking(alice, start=later, end=later + H, server="thalys", devices="0")
    create_booking(bob, start=later + 90 * MINUTE, end=later + 3 * H, server="thalys", devices="0")

    assert nearest_free_start(units("0"), later, H) == later + 3 * H


@pytest.mark.django_db
def test_nearest_free_start_merges_bookings_across_units(alice, bob, thalys, later):
    create_booking(alice, start=later, end=later + 2 * H, server="thalys", devices="0")
    create_booking(bob, start=later + 2 * H, end=later + 3 * H, server="thalys", devices="1")

    assert nearest_free_start(units("0-1"), later, H) == later + 3 * H


@pytest.mark.django_db
def test_nearest_free_start_sees_whole_server_bookings(alice, thalys, later):
    create_booking(alice, start=later, end=later + 2 * H, server="thalys")

    assert nearest_free_start(units("5"), later, H) == later + 2 * H


@pytest.mark.django_db
def test_nearest_free_start_ignores_cancelled_bookings(alice, thalys, later):
    booking = create_booking(alice, start=later, end=later + 2 * H, server="thalys", devices="0")
    cancel_booking(booking, by=alice)

    assert nearest_free_start(units("0"), later, H) == later


@pytest.mark.django_db
def test_nearest_free_start_is_none_beyond_the_horizon(alice, thalys, later):
    create_booking(alice, start=later, end=later + 5 * H, server="thalys", devices="0")

    assert nearest_free_start(units("0"), later, H, horizon=4 * H) is None
    assert nearest_free_start(units("0"), later, H, horizon=5 * H) == later + 5 * H


@pytest.mark.django_db
def test_nearest_free_start_takes_one_query(alice, bob, thalys, later, django_assert_num_queries):
    create_booking(alice, start=later, end=later + H, server="thalys", devices="0")
    create_booking(bob, start=later + H, end=later + 2 * H, server="thalys", devices="1")
    asked = units("0-1")

    with django_assert_num_queries(1):
        assert nearest_free_start(asked, later, H) == later + 2 * H
