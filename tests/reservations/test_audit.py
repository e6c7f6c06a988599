"""The audit log: each booking action writes one entry (who, what, when, from where, before and after) in
its own transaction; the booking page shows it to the owner and staff, the admin shows it read-only."""
from datetime import UTC, timedelta

import pytest
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from notifications.slackbot.commands import EXTEND_ACTION, handle_action
from reservations import icsimport, services, tasks
from reservations.errors import BookingConflict, WrongState
from reservations.models import Booking, BookingAuditEntry, ExternalCalendar, Profile
from reservations.parsing import format_moment
from reservations.services.audit import Action, Surface, acting_via, current_surface, log_action
from tests.factories import ServerFactory

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


def entries(booking):
    return list(BookingAuditEntry.objects.filter(booking=booking).order_by("pk"))


def last(booking):
    return BookingAuditEntry.objects.filter(booking=booking).latest("pk")


def changes(entry):
    return {name: (before, after) for name, before, after in entry.changed_fields()}


@pytest.fixture
def upcoming(alice, thalys, later):
    return services.create_booking(alice, start=later, end=later + 2 * H, server=thalys, devices="0-1", purpose="training")


@pytest.fixture
def h100(db):
    return ServerFactory(name="h100", gpus=2, requires_approval=True)


# --- one entry per action, with actor, surface, before and after --------------------------------------


def test_creating_writes_one_created_entry_with_the_source_as_surface(alice, thalys, later, clock):
    booking = services.create_booking(
        alice, start=later, end=later + H, server=thalys, devices="0", purpose="resnet", source=Booking.Source.CLI, now=clock,
    )

    (entry,) = entries(booking)
    assert (entry.action, entry.actor, entry.surface, entry.at) == ("created", alice, "cli", clock)
    assert changes(entry) == {"status": (None, "confirmed"), "start": (None, later), "end": (None, later + H), "purpose": (None, "resnet")}


def test_staff_booking_for_a_member_names_staff_as_who_acted(alice, staff, thalys, later):
    booking = services.create_booking(alice, start=later, end=later + H, server=thalys, devices="0", source=Booking.Source.ADMIN, by=staff)

    (entry,) = entries(booking)
    assert (entry.actor, entry.surface) == (staff, "admin")


def test_cancelling_writes_one_entry_with_the_status_before_and_after(alice, upcoming, clock):
    with acting_via(Surface.WEB):
        services.cancel_booking(upcoming, by=alice, now=clock)

    created, cancelled = entries(upcoming)
    assert created.action == "created"
    assert (cancelled.action, cancelled.actor, cancelled.surface, cancelled.at) == ("cancelled", alice, "web", clock)
    assert changes(cancelled) == {"status": ("confirmed", "cancelled")}


def test_releasing_records_the_end_it_had_and_the_moment_it_ended(alice, thalys, clock):
    start = clock - timedelta(minutes=30)
    booking = services.create_booking(alice, start=start, end=start + 2 * H, server=thalys, devices="0", now=start - timedelta(minutes=1))

    services.release_booking(booking, by=alice, now=clock)

    entry = last(booking)
    assert (entry.action, entry.actor, entry.surface) == ("released", alice, "system")
    assert changes(entry) == {"status": ("confirmed", "released"), "end": (start + 2 * H, clock)}


def test_extending_is_logged_as_extended(alice, upcoming, later, clock):
    services.extend_booking(upcoming, by=alice, duration="1h", now=clock)

    entry = last(upcoming)
    assert entry.action == "extended"
    assert changes(entry) == {"end": (later + 2 * H, later + 3 * H)}


def test_moving_the_start_is_logged_as_changed_with_both_times(alice, upcoming, later, clock):
    services.change_booking(upcoming, by=alice, start=later + H, end=later + 3 * H, purpose="eval", now=clock)

    entry = last(upcoming)
    assert entry.action == "changed"
    assert changes(entry) == {"start": (later, later + H), "end": (later + 2 * H, later + 3 * H), "purpose": ("training", "eval")}


def test_ending_earlier_is_a_change_not_an_extension(alice, upcoming, later):
    services.change_booking(upcoming, by=alice, end=later + H)

    assert last(upcoming).action == "changed"


def test_a_change_that_changes_nothing_writes_nothing_and_tells_nobody(alice, staff, upcoming, later, clock):
    made = Booking.objects.values_list("sequence", "updated_at").get(pk=upcoming.pk)
    with CaptureQueriesContext(transaction.get_connection()) as captured:
        services.change_booking(upcoming, by=alice, start=later, end=later + 2 * H, purpose="training", now=clock)
        services.change_booking(upcoming, by=staff, now=clock)

    assert [entry.action for entry in entries(upcoming)] == ["created"]
    assert Booking.objects.values_list("sequence", "updated_at").get(pk=upcoming.pk) == made  # calendars see no new version
    assert not [q for q in captured.captured_queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE"))]


def test_approving_and_declining_record_the_decision_and_the_reason(alice, staff, h100, later, clock):
    first = services.create_booking(alice, start=later, end=later + H, server=h100, devices="0")
    second = services.create_booking(alice, start=later, end=later + H, server=h100, devices="1")

    services.approve_booking(first, by=staff, now=clock)
    services.decline_booking(second, by=staff, reason="maintenance that day", now=clock)

    approved, declined = last(first), last(second)
    assert (approved.action, approved.actor) == ("approved", staff)
    assert changes(approved) == {"status": ("pending", "confirmed"), "decision": ("", "approved")}
    assert (declined.action, declined.actor, declined.note) == ("declined", staff, "maintenance that day")
    assert changes(declined) == {"status": ("pending", "cancelled"), "decision": ("", "declined")}


def test_expiry_is_the_systems_with_nobody_named(alice, h100, later):
    booking = services.create_booking(alice, start=later, end=later + H, server=h100, devices="0")

    with acting_via(Surface.WEB):  # whatever the caller: the system expires it
        services.expire_pending_bookings(now=later)

    entry = last(booking)
    assert (entry.action, entry.actor, entry.surface, entry.at) == ("expired", None, "system", later)
    assert changes(entry) == {"status": ("pending", "cancelled"), "decision": ("", "expired")}


def test_a_series_writes_one_entry_per_date_naming_the_series(alice, thalys, later):
    result = services.create_series(alice, start=later, end=later + H, repeat="daily", count=3, server=thalys, devices="0")
    services.cancel_series(result.series, by=alice)

    for booking in result.bookings:
        assert [(entry.action, entry.series_id) for entry in entries(booking)] == [("created", result.series.pk), ("cancelled", result.series.pk)]


def test_deciding_a_series_writes_one_entry_per_date(alice, staff, h100, later):
    result = services.create_series(alice, start=later, end=later + H, repeat="daily", count=2, server=h100, devices="0")

    services.decide_series(result.series, by=staff, approve=True)

    assert [last(booking).action for booking in result.bookings] == ["approved", "approved"]


# --- refused and rolled back: no entry ---------------------------------------------------------------


def test_a_conflicting_change_writes_no_entry(alice, bob, thalys, upcoming, later):
    services.create_booking(bob, start=later + 2 * H, end=later + 3 * H, server=thalys, devices="1")

    with pytest.raises(BookingConflict):
        services.extend_booking(upcoming, by=alice, duration="1h")

    assert [entry.action for entry in entries(upcoming)] == ["created"]


def test_a_refused_cancel_writes_no_entry(alice, thalys, clock):
    start = clock - timedelta(minutes=5)
    booking = services.create_booking(alice, start=start, end=start + H, server=thalys, devices="0", now=start - timedelta(minutes=1))

    with pytest.raises(WrongState):
        services.cancel_booking(booking, by=alice, now=clock)

    assert [entry.action for entry in entries(booking)] == ["created"]


def test_a_conflicting_booking_writes_no_entry(alice, bob, thalys, upcoming, later):
    with pytest.raises(BookingConflict):
        services.create_booking(bob, start=later, end=later + H, server=thalys, devices="1")

    assert BookingAuditEntry.objects.exclude(booking=upcoming).count() == 0


def test_the_entry_is_rolled_back_with_the_change(alice, upcoming):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.cancel_booking(upcoming, by=alice)
        raise RuntimeError("the caller's transaction fails after the service returned")

    upcoming.refresh_from_db()
    assert upcoming.status == "confirmed"
    assert [entry.action for entry in entries(upcoming)] == ["created"]


@pytest.mark.django_db(transaction=True)
def test_log_action_refuses_to_write_outside_a_transaction(alice, thalys, later):
    booking = services.create_booking(alice, start=later, end=later + H, server=thalys, devices="0")

    with pytest.raises(RuntimeError, match="inside the transaction"):
        log_action(booking, Action.CHANGED, by=alice, changes={})


# --- the surface each entry point sets ------------------------------------------------------------------


def test_without_an_entry_point_actions_are_the_systems():
    assert current_surface() == "system"
    with acting_via("slack"):
        assert current_surface() == "slack"
    assert current_surface() == "system"


@pytest.mark.parametrize(("path", "agent", "surface"), [
    ("/api/v1/bookings/1/cancel/", "python-requests/2", "api"),
    ("/api/v1/bookings/1/cancel/", "labres-cli/1", "cli"),
    ("/admin/reservations/booking/", "Mozilla/5.0", "admin"),
    ("/slack/interactions/", "Slackbot 1.0", "slack"),
    ("/bookings/1/cancel/", "Mozilla/5.0", "web"),
])
def test_each_request_acts_through_its_surface(rf, path, agent, surface):
    from reservations.middleware import surface_of

    assert surface_of(rf.post(path, HTTP_USER_AGENT=agent)) == surface


def test_a_web_cancel_is_logged_via_the_web(client, alice, upcoming):
    client.force_login(alice)

    client.post(reverse("booking-cancel", args=[upcoming.pk]))

    assert (last(upcoming).action, last(upcoming).surface) == ("cancelled", "web")


def test_an_admin_cancel_is_logged_via_the_admin(staff_client, root, upcoming):
    staff_client.post(reverse("admin:reservations_booking_changelist"), {"action": "cancel_selected", "_selected_action": [upcoming.pk]})

    entry = last(upcoming)
    assert (entry.action, entry.actor, entry.surface) == ("cancelled", root, "admin")


def test_a_slack_button_is_logged_via_slack(alice, upcoming):
    Profile.objects.filter(user=alice).update(slack_user_id="UALICE")

    handle_action(EXTEND_ACTION, f"{upcoming.pk}:1h", slack_user_id="UALICE")

    entry = last(upcoming)
    assert (entry.action, entry.actor, entry.surface) == ("extended", alice, "slack")


def stamp(moment):
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def test_a_calendar_import_is_logged_via_the_calendar_import(alice, thalys, later, tmp_path):
    path = tmp_path / "lab.ics"
    calendar = ExternalCalendar.objects.create(name="Lab calendar", url=str(path), server=thalys)
    event = ["BEGIN:VEVENT", "UID:a1", f"DTSTAMP:{stamp(later)}", f"DTSTART:{stamp(later)}", f"DTEND:{stamp(later + H)}", "SUMMARY:alice 0 resnet", "END:VEVENT"]
    path.write_text("\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//labres//EN", *event, "END:VCALENDAR", ""]))
    icsimport.sync(calendar, allow_files=True)
    path.write_text("\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//labres//EN", "END:VCALENDAR", ""]))

    with acting_via(Surface.ADMIN):  # staff's "sync now" in the admin: the import acts
        icsimport.sync(calendar, allow_files=True)

    booking = Booking.objects.get(user=alice)
    assert [(entry.action, entry.surface) for entry in entries(booking)] == [("created", "ics"), ("cancelled", "ics")]


def test_the_beat_task_expires_as_the_system(alice, h100):
    start = timezone.now() + timedelta(seconds=1)
    booking = services.create_booking(alice, start=start, end=start + H, server=h100, devices="0", now=start - timedelta(minutes=1))
    Booking.objects.filter(pk=booking.pk).update(start=timezone.now() - timedelta(minutes=1))

    tasks.expire_pending_bookings()

    assert (last(booking).action, last(booking).surface, last(booking).actor) == ("expired", "system", None)


# --- the booking page --------------------------------------------------------------------------------


def history_of(page):
    assert 'id="history-title"' in page, "the page has no history"
    return page.split('id="history-title"', 1)[1].split("</section>", 1)[0]


def test_the_booking_page_says_who_cancelled_it_via_what_and_when(client, alice, staff, upcoming):
    with acting_via(Surface.SLACK):
        services.cancel_booking(upcoming, by=staff)
    client.force_login(alice)

    page = client.get(reverse("booking-detail", args=[upcoming.pk])).content.decode()

    entry = last(upcoming)
    assert f"cancelled by stella via Slack at {format_moment(timezone.localtime(entry.at))}" in history_of(page)
    assert "status: confirmed → cancelled" in history_of(page)


def test_the_booking_page_shows_a_decline_reason_and_an_expiry_unnamed(client, alice, staff, h100, later):
    declined = services.create_booking(alice, start=later, end=later + H, server=h100, devices="0")
    expired = services.create_booking(alice, start=later, end=later + H, server=h100, devices="1")
    services.decline_booking(declined, by=staff, reason="maintenance")
    services.expire_pending_bookings(now=later)
    client.force_login(alice)

    declined_page = history_of(client.get(reverse("booking-detail", args=[declined.pk])).content.decode())
    expired_page = history_of(client.get(reverse("booking-detail", args=[expired.pk])).content.decode())

    assert "declined by stella via system" in declined_page and "“maintenance”" in declined_page
    assert "expired via system at" in expired_page


def test_another_member_does_not_see_the_history(client, bob, upcoming):
    client.force_login(bob)

    page = client.get(reverse("booking-detail", args=[upcoming.pk])).content.decode()

    assert 'id="history-title"' not in page


def test_staff_see_the_history_of_anyones_booking(client, staff, upcoming):
    client.force_login(staff)

    page = client.get(reverse("booking-detail", args=[upcoming.pk])).content.decode()

    assert "created by Alice Liddell via web" in history_of(page)


def test_the_booking_page_shows_the_newest_50_entries_in_a_bounded_number_of_queries(client, alice, upcoming, clock):
    BookingAuditEntry.objects.bulk_create(
        BookingAuditEntry(booking=upcoming, action="changed", actor=alice, surface="web", at=clock + timedelta(minutes=n), changes={"purpose": [str(n), str(n + 1)]})
        for n in range(60)
    )
    client.force_login(alice)

    with CaptureQueriesContext(transaction.get_connection()) as queries:
        page = client.get(reverse("booking-detail", args=[upcoming.pk])).content.decode()

    shown = history_of(page)
    assert shown.count("<li>") == 50
    assert "purpose: 59 → 60" in shown and "purpose: 9 → 10" not in shown
    assert "The newest 50 entries" in shown
    assert len(queries) < 20


# --- the admin -----------------------------------------------------------------------------------------


def test_the_admin_booking_page_shows_its_history(staff_client, alice, staff, upcoming):
    services.cancel_booking(upcoming, by=staff)

    page = staff_client.get(reverse("admin:reservations_booking_change", args=[upcoming.pk])).content.decode()

    assert "created by Alice Liddell via web" in page and "cancelled by stella via system" in page


def test_the_admin_purpose_edit_is_logged(staff_client, root, upcoming):
    from tests.reservations.test_admin import change_data

    staff_client.post(reverse("admin:reservations_booking_change", args=[upcoming.pk]), change_data(upcoming, purpose="eval"))

    entry = last(upcoming)
    assert (entry.action, entry.actor, entry.surface) == ("changed", root, "admin")
    assert changes(entry) == {"purpose": ("training", "eval")}


def test_the_admin_lists_entries_read_only(staff_client, alice, upcoming):
    entry = last(upcoming)
    changelist = reverse("admin:reservations_bookingauditentry_changelist")

    listed = staff_client.get(changelist)
    searched = staff_client.get(changelist, {"q": "not-a-number"})
    shown = staff_client.get(reverse("admin:reservations_bookingauditentry_change", args=[entry.pk]))
    added = staff_client.get(reverse("admin:reservations_bookingauditentry_add"))
    posted = staff_client.post(reverse("admin:reservations_bookingauditentry_change", args=[entry.pk]), {"note": "rewritten"})
    deleted = staff_client.post(reverse("admin:reservations_bookingauditentry_delete", args=[entry.pk]), {"post": "yes"})

    assert listed.status_code == 200 and f"#{upcoming.pk}" in listed.content.decode()
    assert searched.status_code == 200
    assert shown.status_code == 200 and 'name="note"' not in shown.content.decode()
    assert (added.status_code, posted.status_code, deleted.status_code) == (403, 403, 403)
    entry.refresh_from_db()
    assert entry.note == ""
