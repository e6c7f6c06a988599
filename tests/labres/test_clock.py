"""The suite's clock (tests/clock.py): the fixtures that build times hold at every hour, and the
processes tests start see the test's clock."""
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine
from hypothesis import given
from hypothesis import strategies as st

from tests.clock import OFFSET_VARIABLE, SITE, chosen_moment
from tests.conftest import upcoming_anchor

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "America/Sao_Paulo", "Australia/Lord_Howe", "Asia/Kathmandu"]


@given(
    moment=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
    zone=st.sampled_from(ZONES),
)
def test_later_is_soon_enough_and_its_afternoon_stays_on_one_day_at_any_hour(moment, zone):
    now = moment.astimezone(ZoneInfo(zone))

    later = upcoming_anchor(now)

    assert timedelta(hours=2) <= later - now <= timedelta(hours=21)  # 20 h, plus an hour a DST change may add
    assert (later + timedelta(hours=7)).astimezone(later.tzinfo).date() == later.date()
    assert later.astimezone(later.tzinfo).hour in (10, 16)


def test_a_time_of_day_is_its_next_occurrence():
    zone = "Europe/Berlin"
    wall = datetime(2026, 12, 4, 13, 25, tzinfo=ZoneInfo(zone))

    assert chosen_moment("03:00", zone, wall) == datetime(2026, 12, 5, 3, 0, tzinfo=ZoneInfo(zone))
    assert chosen_moment("23:30", zone, wall) == datetime(2026, 12, 4, 23, 30, tzinfo=ZoneInfo(zone))


def test_a_date_and_time_is_read_in_the_labs_zone_unless_it_has_an_offset():
    assert chosen_moment("2027-03-14T01:30", "America/New_York") == datetime(2027, 3, 14, 6, 30, tzinfo=UTC)
    assert chosen_moment("2027-03-14T01:30+00:00", "America/New_York") == datetime(2027, 3, 14, 1, 30, tzinfo=UTC)


def test_a_process_a_test_starts_runs_on_the_tests_clock():
    offset = 40 * 86400.0
    env = dict(os.environ, PYTHONPATH=str(SITE), **{OFFSET_VARIABLE: repr(offset)})
    # The real clock, whatever LABRES_TEST_NOW did to this one (the escape hatch only works while travelling).
    wall = time_machine.escape_hatch.time.time if time_machine.escape_hatch.is_travelling() else time.time
    started = wall()

    result = subprocess.run([sys.executable, "-c", "import time; print(time.time())"], env=env,
                            capture_output=True, text=True, timeout=60, check=True)

    assert started + offset <= float(result.stdout) <= wall() + offset
