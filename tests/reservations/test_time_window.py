"""Times within reach: every surface refuses a time outside the window (BOOKING_MAX_AHEAD, 1970-2999)
with a message before any write, the database refuses such a row itself, and no page answers 500."""
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from hypothesis import given, settings as hypothesis_settings, strategies as st

from labres.cli.errors import CliError
from labres.cli.times import parse_time
from notifications.slackbot.commands import handle_command
from reservations import services
from reservations.errors import BookingError
from reservations.models import Allocation, Booking, BookingSeries, Profile
from reservations.parsing import EARLIEST, LATEST, MAX_DURATION, ParseError, parse_moment
from tests.api.conftest import error_of, token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("lab_in_utc")]
H = timedelta(hours=1)
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # the services take `now`: no test reads the clock to decide
WEST, EAST = "America/Sao_Paulo", "Asia/Tokyo"


def in_zone(user, zone):
    Profile.objects.filter(user=user).update(time_zone=zone)
    user.refresh_from_db()


@pytest.fixture
def upcoming(alice, thalys, later):
    return services.create_booking(alice, start=later, end=later + H, server="thalys", devices="1", purpose="eval")


# --- the service: BOOKING_MAX_AHEAD ----------------------------------------------------------------


def test_a_start_exactly_max_ahead_is_booked(alice, thalys):
    start = NOW + timedelta(days=365)
    booking = services.create_booking(alice, start=start, end=start + H, server="thalys", devices="0", now=NOW)
    assert booking.start == start


def test_a_start_beyond_max_ahead_is_refused_before_any_write(alice, thalys):
    start = NOW + timedelta(days=365, minutes=1)
    with pytest.raises(BookingError) as refused:
        services.create_booking(alice, start=start, end=start + H, server="thalys", devices="0", now=NOW)
    assert refused.value.field == "start"
    assert refused.value.message == "Bookings start at most 365d ahead, by 24 Nov 2027; this one would start on 24 Nov 2027."
    assert not Booking.objects.exists() and not Allocation.objects.exists()


def test_booking_max_ahead_comes_from_the_settings(settings, alice, thalys):
    settings.BOOKING_MAX_AHEAD = "30d"
    start = NOW + timedelta(days=31)
    with pytest.raises(BookingError, match="at most 30d ahead"):
        services.create_booking(alice, start=start, end=start + H, server="thalys", devices="0", now=NOW)


def test_moving_a_booking_beyond_max_ahead_is_refused(alice, thalys):
    booking = services.create_booking(alice, start=NOW + H, end=NOW + 2 * H, server="thalys", devices="0", now=NOW)
    far = NOW + timedelta(days=400)
    with pytest.raises(BookingError, match="at most 365d ahead"):
        services.change_booking(booking, by=alice, start=far, end=far + H, now=NOW)
    booking.refresh_from_db()
    assert booking.start == NOW + H


def test_a_series_until_beyond_max_ahead_is_refused_before_expanding(alice, thalys):
    with pytest.raises(BookingError) as refused:
        services.create_series(
            alice, start=NOW + H, end=NOW + 2 * H, repeat="every 2 weeks", until=date(2028, 6, 1), server="thalys", devices="0", now=NOW,
        )
    assert refused.value.field == "until"
    assert "goes on past what can be booked (bookings can be made up to 365 days ahead, until Wed 24 Nov 2027" in refused.value.message
    assert "its dates until 01 Jun 2028 reach further" in refused.value.message
    assert not Booking.objects.exists() and not BookingSeries.objects.exists()


def test_a_series_counting_beyond_max_ahead_is_refused(alice, thalys):
    start = NOW + timedelta(days=300)
    with pytest.raises(BookingError) as refused:
        services.create_series(alice, start=start, end=start + H, repeat="weekly", count=20, server="thalys", devices="0", now=NOW)
    assert refused.value.field == "count" and "its 20 dates reach further" in refused.value.message
    assert not Booking.objects.exists()


# --- the surfaces --------------------------------------------------------------------------------


def test_changing_to_year_9999_west_of_utc_is_400_and_every_page_still_answers(client, alice, root, upcoming):
    in_zone(alice, WEST)
    client.force_login(alice)

    response = client.post(f"/bookings/{upcoming.pk}/change/", {"start": "9999-12-31T22:00", "end": "9999-12-31T23:00"})

    assert response.status_code == 400
    assert "more than ten years away; check the year" in response.content.decode()
    before = upcoming.start
    upcoming.refresh_from_db()
    assert (upcoming.start, upcoming.sequence, upcoming.allocations.get().start) == (before, 0, before)
    for url in ("/", "/mine/", "/timeline/", f"/bookings/{upcoming.pk}/"):
        assert client.get(url).status_code == 200, url
    assert token_client(alice).get("/api/v1/bookings/").status_code == 200
    client.force_login(root)
    for url in ("/admin/reservations/booking/", f"/admin/reservations/booking/{upcoming.pk}/change/"):
        assert client.get(url).status_code == 200, url


def test_changing_to_beyond_max_ahead_on_the_page_is_400_with_the_rule(client, alice, upcoming):
    client.force_login(alice)
    far = timezone.localtime(upcoming.start + timedelta(days=800))

    response = client.post(f"/bookings/{upcoming.pk}/change/", {"start": f"{far:%Y-%m-%dT%H:%M}", "end": f"{far + H:%Y-%m-%dT%H:%M}"})

    assert response.status_code == 400
    assert "Bookings start at most 365d ahead" in response.content.decode()
    before = upcoming.start
    upcoming.refresh_from_db()
    assert upcoming.start == before


def test_the_api_refuses_a_start_beyond_max_ahead_naming_the_field(alice, thalys, later):
    start = later + timedelta(days=800)
    response = token_client(alice).post("/api/v1/bookings/", {"server": "thalys", "devices": "0", "start": start.isoformat(), "duration": "1h"}, format="json")
    error = error_of(response, 400, "invalid")
    assert "start" in error["fields"] and "at most 365d ahead" in error["message"]
    assert not Booking.objects.exists()


def test_the_api_refuses_year_9999_west_of_utc(alice, thalys):
    in_zone(alice, WEST)
    response = token_client(alice).post("/api/v1/bookings/", {"server": "thalys", "devices": "0", "start": "9999-12-31T23:00", "duration": "1h"}, format="json")
    assert "start" in error_of(response, 400, "invalid")["fields"]


def test_an_api_series_until_beyond_max_ahead_is_400_and_books_nothing(alice, thalys, later):
    response = token_client(alice).post("/api/v1/series/", {
        "server": "thalys", "devices": "0", "start": later.isoformat(), "duration": "1h", "repeat": "every 2 weeks",
        "until": (later + timedelta(days=700)).date().isoformat(),
    }, format="json")
    error = error_of(response, 400, "invalid")
    assert "until" in error["fields"] and "can be made up to 365 days ahead" in error["message"]
    assert not Booking.objects.exists()


@pytest.mark.parametrize("zone, when", [(WEST, "9999-12-31T23:00"), (EAST, "0001-01-01T00:30")])
@pytest.mark.parametrize("method, url, payload", [
    ("post", "/api/v1/bookings/", {"server": "thalys", "devices": "0", "start": "{when}", "duration": "1h"}),
    ("post", "/api/v1/series/", {"server": "thalys", "devices": "0", "start": "{when}", "duration": "1h", "repeat": "weekly", "count": 2}),
    ("post", "/api/v1/bookings/{booking}/extend/", {"end": "{when}"}),
    ("post", "/api/v1/waitlist/", {"server": "thalys", "gpus": 1, "length": "1h", "not_after": "{when}"}),
    ("get", "/api/v1/bookings/", {"start": "{when}"}),
    ("get", "/api/v1/availability/", {"start": "{when}"}),
    ("get", "/api/v1/telemetry/history/", {"device": "thalys:0", "start": "{when}"}),
])
def test_every_api_time_out_of_range_is_400(alice, upcoming, zone, when, method, url, payload):
    in_zone(alice, zone)
    client = token_client(alice)
    payload = {key: value.format(when=when) if isinstance(value, str) else value for key, value in payload.items()}
    send = getattr(client, method)
    response = send(url.format(booking=upcoming.pk), payload, **({"format": "json"} if method == "post" else {}))
    error_of(response, 400, "invalid")
    assert Booking.objects.count() == 1


@pytest.mark.parametrize("zone, when", [(WEST, "9999-12-31T23:00"), (EAST, "0001-01-01T00:30")])
def test_slack_answers_a_time_out_of_range_with_a_message(alice, thalys, later, zone, when):
    in_zone(alice, zone)
    Profile.objects.filter(user=alice).update(slack_user_id="UALICE")

    reply = handle_command(f"book thalys:0 {when} 1h training", slack_user_id="UALICE", now=later)

    assert "is out of range; write a time from 1970 to 2999" in reply.text
    assert not Booking.objects.exists()


def test_slack_refuses_a_booking_beyond_max_ahead(alice, thalys, later):
    Profile.objects.filter(user=alice).update(slack_user_id="UALICE")
    far = (later + timedelta(days=800)).replace(tzinfo=None).isoformat(timespec="minutes")
    reply = handle_command(f"book thalys:0 {far} 1h training", slack_user_id="UALICE", now=later)
    assert "Bookings start at most 365d ahead" in reply.text
    assert not Booking.objects.exists()


@pytest.mark.parametrize("zone", [WEST, EAST])
@pytest.mark.parametrize("url", ["/usage/", "/usage.csv"])
def test_usage_of_year_1_is_400_with_the_range(client, alice, zone, url):
    in_zone(alice, zone)
    client.force_login(alice)

    response = client.get(url, {"start": "0001-01-01", "end": "0001-01-07"})

    assert response.status_code == 400
    assert "0001-01-01 is out of range; write a date from 1970-01-01 to 2999-12-31" in response.content.decode()


def test_the_cli_answers_a_time_out_of_range_with_its_message():
    with pytest.raises(CliError, match="is out of range"):
        parse_time("9999-12-31T23:59-23:59", now=NOW)


# --- the database's own backstop -----------------------------------------------------------------


@pytest.mark.parametrize("field, value", [("end", datetime(3000, 1, 2, tzinfo=UTC)), ("start", datetime(1969, 12, 31, tzinfo=UTC))])
def test_the_database_refuses_a_booking_out_of_reach_written_past_the_services(upcoming, field, value):
    for model, rows in ((Booking, Booking.objects.filter(pk=upcoming.pk)), (Allocation, upcoming.allocations.all())):
        with pytest.raises(IntegrityError), transaction.atomic():
            rows.update(**{field: value})


def test_postgres_refuses_year_10000_written_past_the_services(upcoming, db_vendor):
    if db_vendor != "postgresql":
        pytest.skip("only PostgreSQL can store year 10000 (9999-12-31 23:00 west of UTC); Python refuses it for SQLite")
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.filter(pk=upcoming.pk).update(end=datetime(9999, 12, 31, 23, tzinfo=ZoneInfo(WEST)))


# --- the parser ------------------------------------------------------------------------------------

ZONES = [ZoneInfo(name) for name in ("UTC", WEST, EAST, "Pacific/Kiritimati", "Etc/GMT+12", "Australia/Lord_Howe")]


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)),
    zone=st.sampled_from(ZONES),
    offset=st.one_of(st.none(), st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)),
)
def test_parse_moment_gives_a_time_within_reach_or_says_why(moment, zone, offset):
    text = moment.isoformat(timespec="minutes")
    if offset is not None:
        text += f"{'+' if offset >= 0 else '-'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    try:
        parsed = parse_moment(text, now=NOW, zone=zone)
    except ParseError as error:
        assert "is out of range" in str(error)
        return
    assert EARLIEST <= parsed < LATEST
    parsed.astimezone(UTC) + MAX_DURATION  # what surfaces do next cannot overflow
    parsed - MAX_DURATION


# --- the migration that adds the constraints -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_cancels_a_booking_stored_out_of_reach_and_keeps_the_overlap_rule(alice, thalys, later, db_vendor):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    booking = services.create_booking(alice, start=later, end=later + H, server="thalys", devices="0", purpose="eval")
    executor = MigrationExecutor(connection)
    executor.migrate([("reservations", "0013_waitlist")])
    # What the change page wrote before: 9999-12-31 23:00 in Sao Paulo, year 10000 on PostgreSQL.
    far = "10000-01-01 02:00:00+00" if db_vendor == "postgresql" else "9999-12-31 23:00:00"
    with connection.cursor() as cursor:
        for table in ("reservations_booking", "reservations_allocation"):
            cursor.execute(f'UPDATE {table} SET "end" = %s WHERE {"id" if table.endswith("booking") else "booking_id"} = %s', [far, booking.pk])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    booking = Booking.objects.get(pk=booking.pk)
    assert (booking.status, booking.start, booking.end) == ("cancelled", booking.created_at, booking.created_at + timedelta(minutes=1))
    assert not booking.allocations.get().active
    again = services.create_booking(alice, start=later, end=later + H, server="thalys", devices="0")
    other = services.create_booking(alice, start=later, end=later + H, server="thalys", devices="1")
    with pytest.raises(IntegrityError, match="allocation_overlap|allocation_no_overlap"), transaction.atomic():
        # the overlap rule (on SQLite: triggers) survived the tables' rebuild
        Allocation.objects.create(booking=other, unit=again.allocations.get().unit, start=later, end=later + H)


def test_the_admin_answers_year_9999_west_of_utc_with_a_form_error(staff_client, root, upcoming):
    from tests.reservations.test_admin import change_data, change_url, form_errors

    in_zone(root, WEST)
    data = {**change_data(upcoming), "start_0": "9999-12-31", "start_1": "22:00:00", "end_0": "9999-12-31", "end_1": "23:00:00"}

    response = staff_client.post(change_url(upcoming), data)

    assert response.status_code == 200
    assert "Bookings start at most 365d ahead" in form_errors(response)["start"][0]
    before = upcoming.start
    upcoming.refresh_from_db()
    assert upcoming.start == before


def test_the_admin_refuses_a_purpose_with_a_line_break(staff_client, upcoming):
    from tests.reservations.test_admin import change_data, change_url, form_errors

    response = staff_client.post(change_url(upcoming), change_data(upcoming, purpose="eval\rBcc: eve"))

    assert response.status_code == 200
    assert "control character (U+000D)" in form_errors(response)["purpose"][0]
    upcoming.refresh_from_db()
    assert upcoming.purpose == "eval"
