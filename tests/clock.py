"""The suite's clock. Tests never decide what they expect from the wall clock: they build times from
`timezone.now()` (or the `later` fixture), and LABRES_TEST_NOW moves that clock for a whole run, so the
suite can be proved at the hours where day-boundary mistakes hide:

    LABRES_TEST_NOW=03:00              the next 03:00 in the lab's zone (TIME_ZONE), within a day of now
    LABRES_TEST_NOW=2027-03-14T01:30   that moment in the lab's zone (a DST change day, say)

Each test starts at that moment and the clock then runs (time-machine, tick=True). Processes the tests
start (Celery workers, the `labres` CLI, manage.py) follow the same clock: they inherit CLOCK_OFFSET and
tests/clock_site/ on PYTHONPATH, whose sitecustomize moves their clock by the same offset. Browser pages
get it through Playwright's clock (tests/e2e/conftest.py).
"""
import os
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

OFFSET_VARIABLE = "CLOCK_OFFSET"  # seconds; not LABRES_-prefixed, so the CLI tests' clean environment keeps it
SITE = Path(__file__).parent / "clock_site"


def chosen_moment(text, zone_name, wall_now=None):
    """The aware moment LABRES_TEST_NOW names: 'HH:MM' is its next occurrence after `wall_now`,
    an ISO date and time is read in the lab's zone unless it has an offset."""
    zone = ZoneInfo(zone_name)
    wall_now = (wall_now or datetime.now(tz=zone)).astimezone(zone)
    if len(text) <= 5:
        wanted = time.fromisoformat(text)
        moment = datetime.combine(wall_now.date(), wanted, tzinfo=zone)
        return moment if moment > wall_now else datetime.combine(wall_now.date() + timedelta(days=1), wanted, tzinfo=zone)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def suite_moment(zone_name):
    """The moment each test starts at, or None to run at the wall clock."""
    text = os.environ.get("LABRES_TEST_NOW", "").strip()
    return chosen_moment(text, zone_name) if text else None


def next_eu_dst_sunday(month, after):
    """The first last-Sunday of `month` (3: clocks go forward in Europe, 10: back) whose week starts after
    `after` (a date): tests that book across a DST change build it from the clock, not from a year."""
    for year in (after.year, after.year + 1):
        sunday = max(date(year, month, day) for day in range(25, 32) if date(year, month, day).weekday() == 6)
        if sunday - timedelta(days=6) > after:
            return sunday
    raise AssertionError("unreachable: next year's change is always ahead")
