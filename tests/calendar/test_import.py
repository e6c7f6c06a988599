"""Calendar import: a local HTTP server serves an ICS document that the tests change between fetches."""
import hashlib
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone as dt_timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from hypothesis import given, settings as hsettings, strategies as st

from reservations import icsimport, services
from reservations.icsimport import TitleError, parse_title
from reservations.models import Booking, ExternalCalendar, ImportedEvent
from reservations.parsing import format_device_set
from tests.factories import ServerFactory, UserFactory
from tests.workers import worker_database_url

pytestmark = pytest.mark.django_db


# --- the source ------------------------------------------------------------------------------


class Source:
    """What the local server answers: an ICS body (with an ETag), or a status code."""

    def __init__(self):
        self.body = b""
        self.status = 200
        self.requests = []
        self.gate = None  # a threading.Event the handler waits on, to hold a fetch open


def make_handler(source):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            source.requests.append(dict(self.headers))
            if source.gate is not None:
                source.gate.wait(timeout=30)
            if source.status != 200:
                self.send_error(source.status)
                return
            etag = '"' + hashlib.sha256(source.body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/calendar")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(source.body)))
            self.end_headers()
            self.wfile.write(source.body)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def source():
    state = Source()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/calendar/secret/basic.ics"
    yield state
    server.shutdown()
    server.server_close()


def stamp(moment):
    return moment.astimezone(dt_timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def event(uid, summary, start, hours=2, *, extra=""):
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{stamp(start)}",
        f"DTSTART:{stamp(start)}",
        f"DTEND:{stamp(start + timedelta(hours=hours))}",
        f"SUMMARY:{summary}",
    ]
    lines += [line for line in extra.strip().splitlines() if line.strip()]
    lines.append("END:VEVENT")
    return "\r\n".join(lines)


def ics(*events):
    body = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//labres//EN", *events, "END:VCALENDAR", ""]
    return "\r\n".join(body).encode()


@pytest.fixture
def follow(source):
    def follow(**resource):
        return ExternalCalendar.objects.create(name="Lab calendar", url=source.url, **resource)

    return follow


def row(calendar, uid, recurrence=""):
    return ImportedEvent.objects.get(calendar=calendar, uid=uid, recurrence=recurrence)


def booked(calendar):
    return Booking.objects.filter(imported_events__calendar=calendar, status=Booking.Status.CONFIRMED).distinct()


# --- first sync ------------------------------------------------------------------------------


def test_first_sync_books_matched_events(source, follow, alice, bob, thalys, later):
    bob.email = "Bob@Lab.Example.org"
    bob.save()
    source.body = ics(
        event("a1", "alice 0-1 training resnet", later),
        event("b1", "Team meeting", later + timedelta(hours=3),
              extra="ORGANIZER;CN=Lab:mailto:abc123@group.calendar.google.com\r\nATTENDEE:mailto:bob@lab.example.org"),
        event("a2", "alice - whole box", later + timedelta(hours=6)),
    )
    calendar = follow(server=thalys)

    summary = icsimport.sync(calendar)

    assert summary.error == ""
    by_title = row(calendar, "a1").booking
    assert (by_title.user, by_title.what, by_title.purpose, by_title.source) == (alice, "thalys:0-1", "training resnet", "ics")
    by_email = row(calendar, "b1").booking
    assert (by_email.user, by_email.purpose) == (bob, "Team meeting")
    assert by_email.whole_server and row(calendar, "a2").booking.whole_server
    calendar.refresh_from_db()
    assert calendar.last_status == "3 events: 3 booked"
    assert calendar.last_error == "" and calendar.last_fetched_at is not None


@pytest.mark.parametrize(
    "title, devices",
    [("alice: 2-3 eval", "thalys:2-3"), ("alice thalys:4 eval", "thalys:4"), ("alice GPUs 0,5 eval", "thalys:0,5"), ("[alice] 6-7 eval", "thalys:6-7")],
)
def test_devices_come_from_the_title(source, follow, alice, thalys, later, title, devices):
    source.body = ics(event("e", title, later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    booking = row(calendar, "e").booking
    assert (booking.what, booking.purpose) == (devices, "eval")


def test_a_member_is_found_by_unix_user_name(source, follow, alice, thalys, later):
    alice.profile.unix_username = "aliddell"
    alice.profile.save()
    source.body = ics(event("e", "aliddell 0 x", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    assert row(calendar, "e").booking.user == alice


def test_room_calendar_books_the_room(source, follow, alice, room, later):
    source.body = ics(event("r", "alice - reading group", later))
    calendar = follow(room=room)
    icsimport.sync(calendar)
    booking = row(calendar, "r").booking
    assert (booking.room, booking.purpose) == (room, "reading group")


def test_gpus_on_a_room_calendar_are_a_problem(source, follow, alice, room, later):
    source.body = ics(event("r", "alice 0-1 x", later))
    calendar = follow(room=room)
    icsimport.sync(calendar)
    assert row(calendar, "r").state == "invalid"
    assert "room Lab 2" in row(calendar, "r").problem


def test_another_servers_name_is_a_problem(source, follow, alice, thalys, later):
    source.body = ics(event("e", "alice eurostar:0-1 x", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    assert row(calendar, "e").state == "invalid"
    assert row(calendar, "e").problem == "The title names server eurostar, but this calendar follows thalys."


# --- later syncs -----------------------------------------------------------------------------


def test_second_sync_of_the_same_source_writes_nothing(source, follow, alice, thalys, later, django_assert_max_num_queries):
    source.body = ics(event("a", "alice 0-1 x", later), event("b", "alice 2 y", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    calendar.etag = ""  # force a full fetch, not a 304
    ExternalCalendar.objects.filter(pk=calendar.pk).update(etag="")
    before = list(Booking.objects.order_by("pk").values_list("pk", "sequence", "updated_at"))
    rows_before = list(ImportedEvent.objects.order_by("pk").values_list("pk", "updated_at"))

    summary = icsimport.sync(calendar)

    assert [o.change for o in summary.outcomes] == ["unchanged", "unchanged"]
    assert list(Booking.objects.order_by("pk").values_list("pk", "sequence", "updated_at")) == before
    assert list(ImportedEvent.objects.order_by("pk").values_list("pk", "updated_at")) == rows_before


def test_an_unchanged_source_answers_304_and_changes_nothing(source, follow, alice, thalys, later):
    source.body = ics(event("a", "alice 0-1 x", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    summary = icsimport.sync(calendar)
    assert summary.not_modified
    assert source.requests[-1].get("If-None-Match")
    assert booked(calendar).count() == 1


def test_moved_event_moves_its_booking(source, follow, alice, thalys, later):
    source.body = ics(event("a", "alice 0-1 x", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    booking = row(calendar, "a").booking
    source.body = ics(event("a", "alice 0-1 x", later + timedelta(hours=1), hours=3))

    icsimport.sync(calendar)

    booking.refresh_from_db()
    assert (booking.start, booking.end) == (later + timedelta(hours=1), later + timedelta(hours=4))
    assert booking.sequence == 1
    assert row(calendar, "a").booking == booking


def test_new_purpose_changes_the_booking(source, follow, alice, thalys, later):
    source.body = ics(event("a", "alice 0-1 training", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    source.body = ics(event("a", "alice 0-1 evaluation", later))
    icsimport.sync(calendar)
    booking = row(calendar, "a").booking
    assert (booking.purpose, booking.sequence) == ("evaluation", 1)


def test_other_gpus_cancel_the_booking_and_book_anew(source, follow, alice, thalys, later):
    source.body = ics(event("a", "alice 0-1 x", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    first = row(calendar, "a").booking
    source.body = ics(event("a", "alice 2-3 x", later))
    icsimport.sync(calendar)
    first.refresh_from_db()
    assert first.status == "cancelled"
    assert row(calendar, "a").booking.what == "thalys:2-3"


def test_removed_event_cancels_its_booking(source, follow, alice, thalys, later):
    source.body = ics(event("a", "alice 0-1 x", later), event("b", "alice 2 y", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    source.body = ics(event("b", "alice 2 y", later))

    icsimport.sync(calendar)

    assert row(calendar, "a").booking.status == "cancelled"
    assert row(calendar, "a").state == "cancelled"
    assert row(calendar, "b").booking.status == "confirmed"


def test_cancelled_status_cancels_its_booking(source, follow, alice, thalys, later):
    source.body = ics(event("a", "alice 0-1 x", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    source.body = ics(event("a", "alice 0-1 x", later, extra="STATUS:CANCELLED\r\nSEQUENCE:1"))
    icsimport.sync(calendar)
    assert row(calendar, "a").booking.status == "cancelled"


def test_bookings_it_did_not_make_are_never_touched(source, follow, alice, thalys, later, book):
    own = book(alice, later + timedelta(days=1), server=thalys, devices="0")
    source.body = ics(event("a", "alice 1 x", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    source.body = ics()
    icsimport.sync(calendar)
    own.refresh_from_db()
    assert (own.status, own.sequence) == ("confirmed", 0)


def test_running_booking_whose_start_moved_keeps_its_start(source, follow, alice, thalys):
    from django.utils import timezone

    now = timezone.now().replace(microsecond=0)
    started = now - timedelta(hours=1)
    source.body = ics(event("a", "alice 0 x", started, hours=3))
    calendar = follow(server=thalys)
    icsimport.sync(calendar, now=now)
    booking = row(calendar, "a").booking
    source.body = ics(event("a", "alice 0 x", started - timedelta(minutes=30), hours=4))

    icsimport.sync(calendar, now=now + timedelta(minutes=1))

    booking.refresh_from_db()
    assert (booking.start, booking.end) == (started, started + timedelta(hours=3, minutes=30))
    assert "only its end moved" in row(calendar, "a").problem


# --- events that cannot be booked ---------------------------------------------------------


def test_conflict_is_shown_in_the_admin_and_booked_once_the_blocker_goes(source, follow, alice, bob, thalys, later, book, staff_client):
    blocker = book(bob, later, purpose="sweep", server=thalys, devices="1")
    source.body = ics(event("a", "alice 0-1 training", later))
    calendar = follow(server=thalys)

    icsimport.sync(calendar)

    imported = row(calendar, "a")
    assert (imported.state, imported.booking) == ("conflict", None)
    assert "GPU 1 on thalys is booked by bob" in imported.problem and "(sweep)" in imported.problem
    page = staff_client.get("/admin/reservations/importedevent/")
    assert page.status_code == 200 and "GPU 1 on thalys is booked by bob" in page.content.decode()
    calendar_page = staff_client.get("/admin/reservations/externalcalendar/")
    assert "1 to look at" in calendar_page.content.decode() and "1 conflict" in calendar_page.content.decode()

    services.cancel_booking(blocker, by=bob)
    icsimport.sync(calendar)  # the source did not change: fetched anyway, since an event waits

    imported.refresh_from_db()
    assert imported.state == "booked" and imported.booking.what == "thalys:0-1" and imported.problem == ""


def test_unknown_member_books_nothing(source, follow, alice, thalys, later):
    source.body = ics(event("a", "carol 0-1 x", later, extra="ORGANIZER:mailto:carol@elsewhere.example.com"))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    imported = row(calendar, "a")
    assert (imported.state, imported.booking) == ("unmatched", None)
    assert "carol@elsewhere.example.com" in imported.problem and "'carol'" in imported.problem
    assert not Booking.objects.exists()


def test_an_ambiguous_first_name_matches_nobody(source, follow, thalys, later):
    UserFactory(username="a1", first_name="Sam")
    UserFactory(username="a2", first_name="Sam")
    source.body = ics(event("a", "sam 0 x", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    assert row(calendar, "a").state == "unmatched"


def test_one_broken_event_does_not_stop_the_others(source, follow, alice, thalys, later, monkeypatch):
    source.body = ics(event("a", "alice 0 x", later), event("b", "alice 1 y", later))
    calendar = follow(server=thalys)
    real = services.create_booking

    def flaky(user, **kwargs):
        if kwargs["devices"] == "0":
            raise RuntimeError("database hiccup")
        return real(user, **kwargs)

    monkeypatch.setattr(services, "create_booking", flaky)
    icsimport.sync(calendar)
    assert row(calendar, "a").state == "invalid" and "database hiccup" in row(calendar, "a").problem
    assert row(calendar, "b").state == "booked"


# --- recurrence and all-day events ----------------------------------------------------------


def test_weekly_event_books_each_occurrence_but_the_excluded_one(source, follow, alice, thalys, later, settings):
    settings.CALENDAR_IMPORT_HORIZON = "30d"
    excluded = later + timedelta(weeks=1)
    source.body = ics(event("w", "alice 0 weekly", later, extra=f"RRULE:FREQ=WEEKLY\r\nEXDATE:{stamp(excluded)}"))
    calendar = follow(server=thalys)

    icsimport.sync(calendar)

    starts = sorted(b.start for b in booked(calendar))
    expected = [later + timedelta(weeks=n) for n in range(5) if n != 1 and later + timedelta(weeks=n) < calendar.created_at + timedelta(days=30)]
    assert starts == expected
    assert row(calendar, "w", later.isoformat()).booking.start == later


def test_all_day_event_books_the_day_in_the_lab_time_zone(source, follow, alice, room, later, settings):
    settings.TIME_ZONE = "Europe/Paris"
    day = (later + timedelta(days=2)).date()
    vevent = "\r\n".join([
        "BEGIN:VEVENT", "UID:d", f"DTSTART;VALUE=DATE:{day:%Y%m%d}", f"DTEND;VALUE=DATE:{day + timedelta(days=1):%Y%m%d}",
        "SUMMARY:alice - retreat", "END:VEVENT",
    ])
    source.body = ics(vevent)
    calendar = follow(room=room)
    icsimport.sync(calendar)
    booking = row(calendar, "d").booking
    import zoneinfo

    paris = zoneinfo.ZoneInfo("Europe/Paris")
    assert booking.start == datetime(day.year, day.month, day.day, tzinfo=paris)
    assert booking.end - booking.start == timedelta(days=1) or booking.end.astimezone(paris).hour == 0


# --- a source that fails ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, body, message",
    [
        (404, b"", "answered 404"),
        (200, b"<html>not a calendar</html>", "not serve an iCalendar file"),
        (200, b"BEGIN:VCALENDAR\r\n" + b"X" * 4096, "larger than"),
    ],
)
def test_a_failing_source_keeps_the_bookings(source, follow, alice, thalys, later, settings, status, body, message):
    source.body = ics(event("a", "alice 0 x", later))
    calendar = follow(server=thalys)
    icsimport.sync(calendar)
    settings.CALENDAR_IMPORT_MAX_BYTES = 2048
    source.status, source.body = status, body

    summary = icsimport.sync(calendar)

    calendar.refresh_from_db()
    assert message in summary.error and message in calendar.last_error
    assert "secret" not in calendar.last_error  # the secret part of the address stays out of the admin
    assert row(calendar, "a").booking.status == "confirmed"


def test_a_file_path_is_refused_for_a_followed_calendar(thalys, tmp_path):
    calendar = ExternalCalendar.objects.create(name="x", url=str(tmp_path / "a.ics"), server=thalys)
    summary = icsimport.sync(calendar)
    assert "is not an http or https address" in summary.error


# --- the lease --------------------------------------------------------------------------------


def test_a_calendar_being_synced_is_skipped(source, follow, thalys, later):
    from django.utils import timezone

    calendar = follow(server=thalys)
    ExternalCalendar.objects.filter(pk=calendar.pk).update(syncing_until=timezone.now() + timedelta(minutes=5))
    assert icsimport.sync(calendar).skipped
    assert source.requests == []


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_two_syncs_at_once_one_skips(source, follow, alice, thalys, later, db_vendor):
    if db_vendor != "postgresql":
        pytest.skip("threads with their own connections need PostgreSQL; SQLite's test database is one connection")
    from django.db import connection

    source.body = ics(event("a", "alice 0 x", later))
    calendar = follow(server=thalys)
    source.gate = threading.Event()
    results = []

    def run():
        try:
            results.append(icsimport.sync(calendar))
        finally:
            connection.close()

    first = threading.Thread(target=run)
    first.start()
    while not source.requests:  # the first sync holds the lease and waits on the source
        threading.Event().wait(0.01)
    second = icsimport.sync(calendar)
    source.gate.set()
    first.join(timeout=30)

    assert second.skipped and not results[0].skipped
    assert booked(calendar).count() == 1


# --- the periodic task ------------------------------------------------------------------------


def test_task_syncs_only_calendars_that_are_due(source, follow, alice, thalys, later):
    from django.utils import timezone

    from reservations.tasks import sync_calendars

    source.body = ics(event("a", "alice 0 x", later))
    due = follow(server=thalys)
    recent = ExternalCalendar.objects.create(name="recent", url=source.url, server=thalys, last_fetched_at=timezone.now())
    ExternalCalendar.objects.create(name="one-time", url=source.url, server=thalys, active=False)

    assert sync_calendars() == 1
    assert row(due, "a").state == "booked"
    assert not recent.events.exists()


# --- the command ------------------------------------------------------------------------------


def run_command(*args):
    from io import StringIO

    out = StringIO()
    call_command("import_ics", *args, stdout=out)
    return out.getvalue()


def test_command_imports_a_file_and_a_rerun_changes_nothing(tmp_path, alice, thalys, later):
    path = tmp_path / "lab.ics"
    path.write_bytes(ics(event("a", "alice 0-1 training", later), event("b", "zed 2 x", later)))

    output = run_command(str(path), "--server", "thalys")

    assert "booked #" in output and "for alice: thalys:0-1" in output
    assert "unmatched: No active member matches" in output
    calendar = ExternalCalendar.objects.get()
    assert not calendar.active and calendar.url == str(path)
    booking = row(calendar, "a").booking

    output = run_command(str(path), "--server", "thalys")

    assert ExternalCalendar.objects.count() == 1 and Booking.objects.count() == 1
    booking.refresh_from_db()
    assert booking.sequence == 0 and "(unchanged)" in output


def test_command_knows_an_event_by_its_uid_whatever_the_files_name(tmp_path, alice, thalys, later):
    first, edited, final = tmp_path / "lab.ics", tmp_path / "lab (1).ics", tmp_path / "export-final.ics"
    first.write_bytes(ics(event("a@google.com", "alice 0-1 training", later)))
    run_command(str(first), "--server", "thalys")
    booking = Booking.objects.get()

    edited.write_bytes(ics(event("a@google.com", "alice 0-1 training", later + timedelta(hours=1))))
    output = run_command(str(edited), "--server", "thalys")

    assert "(updated)" in output and "conflict" not in output
    assert list(Booking.objects.values_list("pk", "start")) == [(booking.pk, later + timedelta(hours=1))]

    final.write_bytes(ics(event("a@google.com", "alice 0-1 training", later + timedelta(hours=1), extra="STATUS:CANCELLED")))
    output = run_command(str(final), "--server", "thalys")

    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED and "cancelled" in output
    assert ImportedEvent.objects.count() == 1


def test_the_same_uid_for_another_server_is_another_event(tmp_path, alice, thalys, later):
    ServerFactory(name="ice", gpus=2)
    path = tmp_path / "lab.ics"
    path.write_bytes(ics(event("a", "alice 0 training", later)))

    run_command(str(path), "--server", "thalys")
    run_command(str(path), "--server", "ice")

    assert sorted(Booking.objects.values_list("server__name", flat=True)) == ["ice", "thalys"]


def test_command_dry_run_says_what_it_would_book_with_no_number(tmp_path, alice, thalys, later):
    path = tmp_path / "lab.ics"
    path.write_bytes(ics(event("a", "alice 0-1 training", later), event("c", "alice 2 eval", later, extra="STATUS:CANCELLED")))

    output = run_command(str(path), "--server", "thalys", "--dry-run")

    assert "would book for alice: thalys:0-1" in output
    assert "booked #" not in output
    assert output.rstrip().endswith("Dry run: nothing was written.")


@pytest.mark.django_db(transaction=True)
def test_command_piped_into_head_still_imports_everything(tmp_path, alice, thalys, later):
    # Enough events that the report outgrows the pipe's buffer: the reader has left by then.
    path = tmp_path / "lab.ics"
    path.write_bytes(ics(*(event(f"e{n}", f"alice {n % 8} run {n} " + "x" * 30, later + timedelta(hours=n)) for n in range(400))))
    env = dict(os.environ, DATABASE_URL=worker_database_url())

    process = subprocess.Popen(
        [sys.executable, "manage.py", "import_ics", str(path), "--server", "thalys"],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    head = [process.stdout.readline() for _ in range(3)]
    process.stdout.close()  # `head -3` has what it wants and leaves
    errors = process.stderr.read().decode()
    process.wait(timeout=120)

    assert all(head) and "Traceback" not in errors and "BrokenPipe" not in errors, errors
    assert process.returncode == 0
    assert Booking.objects.filter(status=Booking.Status.CONFIRMED).count() == 400


def test_command_dry_run_writes_nothing(tmp_path, alice, thalys, later):
    path = tmp_path / "lab.ics"
    path.write_bytes(ics(event("a", "alice 0-1 training", later)))
    output = run_command(str(path), "--server", "thalys", "--dry-run")
    assert "Dry run" in output and "booked" in output
    assert not Booking.objects.exists() and not ExternalCalendar.objects.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["/nonexistent/lab.ics", "--server", "thalys"], "There is no file /nonexistent/lab.ics"),
        (["{file}", "--server", "nowhere"], "There is no server 'nowhere'; servers: thalys."),
        (["{file}"], "--server NAME or --room NAME"),
        (["{garbage}", "--server", "thalys"], "does not serve an iCalendar file"),
    ],
)
def test_command_errors_say_what_is_wrong(tmp_path, thalys, args, message):
    good, garbage = tmp_path / "lab.ics", tmp_path / "notes.txt"
    good.write_bytes(ics())
    garbage.write_text("shopping list")
    args = [a.format(file=good, garbage=garbage) for a in args]
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        run_command(*args)


def test_command_refuses_both_server_and_room(tmp_path, thalys, room):
    path = tmp_path / "lab.ics"
    path.write_bytes(ics())
    with pytest.raises(CommandError, match="not allowed with argument"):
        run_command(str(path), "--server", "thalys", "--room", "Lab 2")


# --- titles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title, member, devices, server, purpose",
    [
        ("alice 0-1", "alice", [0, 1], None, ""),
        ("alice: 0-1 training resnet", "alice", [0, 1], None, "training resnet"),
        ("alice thalys:0-1 fine-tuning", "alice", [0, 1], "thalys", "fine-tuning"),
        ("alice GPUs 0,1 training", "alice", [0, 1], None, "training"),
        ("alice - training", "alice", None, None, "training"),
        ("[alice] 2-3 eval", "alice", [2, 3], None, "eval"),
        ("alice 10:00 standup", "alice", None, None, "10:00 standup"),
        ("0-2,5 sweep", None, [0, 1, 2, 5], None, "sweep"),
    ],
)
def test_title_forms(title, member, devices, server, purpose):
    assert parse_title(title) == icsimport.Title(member=member, devices=devices, server=server, purpose=purpose)


def test_bad_device_set_in_a_title_says_why():
    with pytest.raises(TitleError, match="backwards range"):
        parse_title("alice 3-1 x")


members = st.from_regex(r"[a-z][a-z0-9_.]{0,15}", fullmatch=True).filter(lambda w: not w.startswith("gpu"))
device_sets = st.lists(st.integers(min_value=0, max_value=64), min_size=1, max_size=8, unique=True)
purposes = st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9'()]{0,10}", fullmatch=True), max_size=5).map(" ".join)


@hsettings(max_examples=200, deadline=None)
@given(member=members, devices=device_sets, purpose=purposes, separator=st.sampled_from([" ", ": ", " GPUs "]))
def test_written_titles_read_back(member, devices, purpose, separator):
    title = f"{member}{separator}{format_device_set(devices)} {purpose}"
    assert parse_title(title) == icsimport.Title(member=member, devices=sorted(devices), server=None, purpose=purpose)


@hsettings(max_examples=200, deadline=None)
@given(member=members, purpose=purposes.filter(bool))
def test_titles_without_gpus_read_back(member, purpose):
    assert parse_title(f"{member} - {purpose}") == icsimport.Title(member=member, devices=None, server=None, purpose=purpose)


@hsettings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_reads_or_says_why(text):
    try:
        parse_title(text)
    except TitleError:
        pass


# --- rules that never end ---------------------------------------------------------------------

RUNAWAY = {
    # python-dateutil walks every day to the year 9999 looking for a 30 February, UNTIL or not.
    "feb30": ("RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;UNTIL=20300101T000000Z", None),
    "feb30y": ("RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", None),
    "hourly": ("RRULE:FREQ=HOURLY;COUNT=5", "repeats every hour"),
    "setpos": ("RRULE:FREQ=MONTHLY;BYDAY=MO;BYSETPOS=9", "uses BYSETPOS"),
    "badnth": ("RRULE:FREQ=YEARLY;BYMONTH=5;BYDAY=53SA", "BYDAY=53SA is not a day"),
    "exrule": ("RRULE:FREQ=WEEKLY\r\nEXRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "EXRULE"),
}


def test_rules_that_never_end_or_years_out_of_range_are_skipped_quickly(source, follow, alice, thalys, later):
    past = later - timedelta(days=400)
    year_one = "BEGIN:VEVENT\r\nUID:year1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Asia/Tokyo:00010101T100000\r\n" \
        "DTEND;TZID=Asia/Tokyo:00010101T110000\r\nSUMMARY:alice 3 ancient\r\nEND:VEVENT"
    source.body = ics(
        event("good", "alice 0 training", later),
        event("monthly", "alice 1 meeting", later, extra="RRULE:FREQ=MONTHLY;BYDAY=1MO,3MO;COUNT=200"),
        *(event(uid, f"alice 2 {uid}", past, extra=rule) for uid, (rule, _) in RUNAWAY.items()),
        year_one,
    )
    calendar = follow(server=thalys)

    started = time.process_time()
    summary = icsimport.sync(calendar)
    spent = time.process_time() - started

    assert spent < 2, f"{spent:.1f} s of CPU"  # python-dateutil took 4-8 s for each rule that never matches
    assert not summary.error
    assert row(calendar, "good").state == ImportedEvent.State.BOOKED
    assert ImportedEvent.objects.filter(uid="monthly", state=ImportedEvent.State.BOOKED).count() >= 5  # first and third Mondays
    skipped = {item.uid: item.reason for item in summary.skipped_events}
    for uid, (_, reason) in RUNAWAY.items():
        if reason:
            assert reason in skipped[uid]
        else:  # a rule with no date in reach adds none: only the event's own start (long past) would count
            assert uid not in skipped and not ImportedEvent.objects.filter(uid=uid).exists()
    assert "year 1;" in skipped["year1"]
    assert "skipped" in summary.status
