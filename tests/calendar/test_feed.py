"""Calendar feeds: what calendar apps read at /calendar/<secret>.ics, parsed by two independent parsers."""
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
import vobject
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar

from reservations import services
from reservations.models import Booking, CalendarFeed
from tests.clock import next_eu_dst_sunday
from tests.factories import RoomFactory, ServerFactory, UserFactory

pytestmark = pytest.mark.django_db


def feed_of(user, scope=CalendarFeed.Scope.MINE, **target):
    feed, _ = CalendarFeed.objects.get_or_create(user=user, scope=scope, **target)
    return feed


def fetch(client, feed, **headers):
    return client.get(reverse("calendar-feed", args=[feed.token]), **headers)


def events(response):
    """The VEVENTs by UID, as icalendar reads them; vobject must read the same document too."""
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    body = response.content
    parsed = Calendar.from_ical(body)
    by_uid = {str(event["UID"]): event for event in parsed.walk("VEVENT")}
    second = vobject.readOne(body.decode())
    assert sorted(event.uid.value for event in second.vevent_list) == sorted(by_uid) if by_uid else True
    for line in body.split(b"\r\n"):
        assert len(line) <= 75, line  # folded, in octets
    return by_uid


def vobject_events(response):
    return {event.uid.value: event for event in vobject.readOne(response.content.decode()).vevent_list}


def uid(booking):
    from urllib.parse import urlsplit

    from django.conf import settings

    return f"booking-{booking.pk}@{urlsplit(settings.SITE_URL).hostname}"


def test_a_members_feed_holds_their_bookings_as_rfc5545_events(client, alice, bob, thalys, room, book, later):
    gpus = book(alice, later, hours=2, purpose="training resnet", server=thalys, devices="0-1")
    meeting = book(alice, later + timedelta(days=1), purpose="reading group", room=room)
    book(bob, later + timedelta(hours=3), purpose="bob's own", server=thalys, devices="0")
    response = fetch(client, feed_of(alice))

    found = events(response)
    assert set(found) == {uid(gpus), uid(meeting)}  # never bob's
    event = found[uid(gpus)]
    assert str(event["SUMMARY"]) == "GPU thalys:0-1 — training resnet"
    assert event.decoded("DTSTART") == gpus.start and event.decoded("DTEND") == gpus.end
    assert event.decoded("DTSTART").utcoffset() == timedelta(0)
    assert event.decoded("DTSTAMP") == event.decoded("LAST-MODIFIED") == gpus.updated_at.replace(microsecond=0)
    assert event["SEQUENCE"] == 0 and str(event["STATUS"]) == "CONFIRMED" and str(event["TRANSP"]) == "OPAQUE"
    assert f"http://testserver/bookings/{gpus.pk}/" in str(event["DESCRIPTION"])
    assert str(event["URL"]) == f"http://testserver/bookings/{gpus.pk}/"
    assert str(event["LOCATION"]) == "server thalys"
    assert str(found[uid(meeting)]["SUMMARY"]) == "Room Lab 2 — reading group"

    calendar = Calendar.from_ical(response.content)
    assert str(calendar["X-WR-CALNAME"]) == "labres: Alice Liddell"
    assert calendar["REFRESH-INTERVAL"].to_ical() == b"PT15M" and str(calendar["X-PUBLISHED-TTL"]) == "PT15M"
    second = vobject_events(response)[uid(gpus)]
    assert second.dtstart.value == gpus.start and second.summary.value == "GPU thalys:0-1 — training resnet"


def test_purposes_with_commas_semicolons_newlines_and_non_ascii_come_back_unchanged(client, alice, thalys, book, later):
    purpose = "Entraînement: ResNet-50, 8×A100; 日本語のテスト \\ backslash — and a long tail to be folded over lines ✓"
    booking = book(alice, later, purpose=purpose, server=thalys, devices="3")
    thalys.location = "Bldg 4, room 2.17; rack B"
    thalys.save()
    response = fetch(client, feed_of(alice))

    event = events(response)[uid(booking)]
    assert str(event["SUMMARY"]) == f"GPU thalys:3 — {purpose}"
    assert str(event["LOCATION"]) == "Bldg 4, room 2.17; rack B"
    assert str(event["DESCRIPTION"]).splitlines()[0] == f"Purpose: {purpose}"
    second = vobject_events(response)[uid(booking)]
    assert second.summary.value == f"GPU thalys:3 — {purpose}" and second.location.value == "Bldg 4, room 2.17; rack B"


def test_uid_stays_and_sequence_grows_with_each_change(client, alice, thalys, book, later):
    booking = book(alice, later, purpose="first try", server=thalys, devices="0")
    feed = feed_of(alice)
    before = events(fetch(client, feed))[uid(booking)]

    booking = services.change_booking(booking, by=alice, start=later + timedelta(hours=1), end=later + timedelta(hours=3))
    moved = events(fetch(client, feed))[uid(booking)]
    services.extend_booking(booking, by=alice, duration="1h")
    extended = events(fetch(client, feed))[uid(booking)]

    assert before["SEQUENCE"] == 0 and moved["SEQUENCE"] == 1 and extended["SEQUENCE"] == 2
    assert moved.decoded("DTSTART") == later + timedelta(hours=1)
    assert extended.decoded("DTEND") == later + timedelta(hours=4)
    assert extended.decoded("LAST-MODIFIED") >= before.decoded("LAST-MODIFIED")


def test_a_cancelled_booking_stays_as_cancelled_for_a_while_then_leaves(client, settings, alice, thalys, book, later):
    settings.CALENDAR_KEEP_CANCELLED = "14d"
    booking = book(alice, later, server=thalys, devices="0")
    feed = feed_of(alice)
    services.cancel_booking(booking, by=alice)

    event = events(fetch(client, feed))[uid(booking)]
    assert str(event["STATUS"]) == "CANCELLED" and event["SEQUENCE"] == 1
    assert vobject_events(fetch(client, feed))[uid(booking)].status.value == "CANCELLED"

    Booking.objects.filter(pk=booking.pk).update(updated_at=timezone.now() - timedelta(days=15))
    assert uid(booking) not in events(fetch(client, feed))


def test_a_released_booking_ends_when_it_was_released(client, alice, thalys):
    start = timezone.now() - timedelta(hours=1)
    booking = services.create_booking(
        alice, server=thalys, devices="1", start=start, end=start + timedelta(hours=4), now=start
    )
    released = services.release_booking(booking, by=alice)
    event = events(fetch(client, feed_of(alice)))[uid(booking)]
    assert event.decoded("DTEND") == released.end.replace(microsecond=0)
    assert str(event["STATUS"]) == "CONFIRMED" and event["SEQUENCE"] == 1
    assert "Released early." in str(event["DESCRIPTION"])


def test_the_feed_reaches_back_30_days(client, settings, alice, thalys):
    settings.CALENDAR_HISTORY = "30d"
    now = timezone.now()

    def past(days):
        start = now - timedelta(days=days, hours=1)
        return services.create_booking(alice, server=thalys, devices="0", start=start, end=start + timedelta(hours=1), now=start)

    inside, outside = past(29), past(31)
    found = events(fetch(client, feed_of(alice)))
    assert uid(inside) in found and uid(outside) not in found


@pytest.mark.parametrize(
    ("month", "local_start", "local_end"),
    [
        # Spring forward in Berlin (02:00 CET -> 03:00 CEST): 4 hours of booking, 5 on the wall clock.
        (3, "00:00", "05:00"),
        # Fall back (03:00 CEST -> 02:00 CET): 4 hours of booking, 3 on the wall clock.
        (10, "01:00", "04:00"),
    ],
)
def test_a_booking_across_a_dst_change_keeps_its_real_length(client, alice, thalys, settings, month, local_start, local_end):
    settings.BOOKING_MAX_AHEAD = "400d"  # the next change may be almost a year ahead
    sunday = next_eu_dst_sunday(month, timezone.now().date())  # the change is at 01:00 UTC that day
    start = datetime.combine(sunday - timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(hours=23)
    end = start + timedelta(hours=4)
    booking = services.create_booking(alice, server=thalys, devices="0", start=start, end=end)
    berlin = ZoneInfo("Europe/Berlin")
    response = fetch(client, feed_of(alice))

    event = events(response)[uid(booking)]
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(hours=4)
    assert event.decoded("DTSTART").astimezone(berlin).strftime("%H:%M") == local_start
    assert event.decoded("DTEND").astimezone(berlin).strftime("%H:%M") == local_end
    second = vobject_events(response)[uid(booking)]
    assert second.dtend.value - second.dtstart.value == timedelta(hours=4)
    assert b"DTSTART:" + start.strftime("%Y%m%dT%H%M%SZ").encode() in response.content


def test_shared_feeds_name_who_booked_and_mark_others_free_for_you(client, alice, bob, thalys, room, book, later):
    mine = book(alice, later, purpose="alice's run", server=thalys, devices="0")
    theirs = book(bob, later, purpose="bob's run", server=thalys, devices="1")
    in_room = book(bob, later, purpose="seminar", room=room)

    server_events = events(fetch(client, feed_of(alice, CalendarFeed.Scope.SERVER, server=thalys)))
    assert set(server_events) == {uid(mine), uid(theirs)}
    assert str(server_events[uid(theirs)]["SUMMARY"]) == "GPU thalys:1 — bob: bob's run"
    assert str(server_events[uid(theirs)]["TRANSP"]) == "TRANSPARENT"
    assert str(server_events[uid(mine)]["TRANSP"]) == "OPAQUE"
    assert "Booked by bob" in str(server_events[uid(theirs)]["DESCRIPTION"])

    room_events = events(fetch(client, feed_of(alice, CalendarFeed.Scope.ROOM, room=room)))
    assert set(room_events) == {uid(in_room)}
    lab_events = events(fetch(client, feed_of(alice, CalendarFeed.Scope.LAB)))
    assert set(lab_events) == {uid(mine), uid(theirs), uid(in_room)}


def test_a_lab_that_hides_purposes_shows_none_of_others_in_any_feed(client, settings, alice, bob, thalys, book, later):
    settings.CALENDAR_SHOW_OTHERS_PURPOSES = False
    mine = book(alice, later, purpose="alice's secret plan", server=thalys, devices="0")
    theirs = book(bob, later, purpose="bob's secret plan", server=thalys, devices="1")

    for scope, target in ((CalendarFeed.Scope.SERVER, {"server": thalys}), (CalendarFeed.Scope.LAB, {})):
        response = fetch(client, feed_of(alice, scope, **target))
        assert b"bob's secret plan" not in response.content
        found = events(response)
        assert str(found[uid(theirs)]["SUMMARY"]) == "GPU thalys:1 — bob"
        assert str(found[uid(mine)]["SUMMARY"]) == "GPU thalys:0 — Alice Liddell: alice's secret plan"
    # The single-booking download of someone else's booking follows the same rule.
    client.force_login(alice)
    download = client.get(reverse("booking-ics", args=[theirs.pk]))
    assert download.status_code == 200 and b"secret plan" not in download.content


def test_an_unchanged_feed_answers_304_to_its_etag_and_its_date(client, alice, thalys, book, later, django_assert_max_num_queries):
    booking = book(alice, later, server=thalys, devices="0")
    feed = feed_of(alice)
    first = fetch(client, feed)
    etag, modified = first["ETag"], first["Last-Modified"]
    assert etag.startswith('"') and modified.endswith("GMT")
    assert first["Cache-Control"] == "private, no-cache"

    with django_assert_max_num_queries(3):  # the feed, one aggregate, at most the hourly "last used"
        again = fetch(client, feed, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == etag and again["Last-Modified"] == modified
    assert fetch(client, feed, HTTP_IF_MODIFIED_SINCE=modified).status_code == 304
    head = client.head(reverse("calendar-feed", args=[feed.token]), HTTP_IF_NONE_MATCH=etag)
    assert head.status_code == 304

    services.change_booking(booking, by=alice, purpose="a new purpose")
    changed = fetch(client, feed, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert b"a new purpose" in changed.content
    # A booking of someone else's does not change a member's own feed.
    book(UserFactory(), later, server=thalys, devices="5")
    assert fetch(client, feed, HTTP_IF_NONE_MATCH=changed["ETag"]).status_code == 304


def test_a_new_or_cancelled_booking_changes_the_etag(client, alice, thalys, book, later):
    feed = feed_of(alice)
    empty = fetch(client, feed)
    assert events(empty) == {}
    booking = book(alice, later, server=thalys, devices="0")
    one = fetch(client, feed, HTTP_IF_NONE_MATCH=empty["ETag"])
    assert one.status_code == 200 and uid(booking) in events(one)
    services.cancel_booking(booking, by=alice)
    assert fetch(client, feed, HTTP_IF_NONE_MATCH=one["ETag"]).status_code == 200


def test_rendering_costs_the_same_queries_for_ten_or_a_hundred_bookings(client, alice, thalys, room, later, django_assert_max_num_queries):
    feed = feed_of(alice)
    for index in range(100):
        target = {"room": room} if index % 3 == 0 else {"server": thalys, "devices": str(index % 8)}
        services.create_booking(alice, start=later + timedelta(hours=index), end=later + timedelta(hours=index + 1), **target)
    # The feed, the aggregate, the owner's name, the bookings (with their units), servers, rooms,
    # GPUs, the hourly "last used": the same for ten bookings or ten thousand.
    with django_assert_max_num_queries(8):
        response = fetch(client, feed)
    assert len(events(response)) == 100


def test_only_get_and_head_are_answered(client, alice):
    assert client.post(reverse("calendar-feed", args=[feed_of(alice).token])).status_code == 405


def test_unknown_reset_and_removed_addresses_answer_404(client, alice, thalys):
    feed = feed_of(alice)
    old = feed.token
    assert len(old) >= 55 and feed_of(UserFactory()).token != old
    assert client.get(f"/calendar/{old[:-1]}x.ics").status_code == 404
    assert client.get(f"/calendar/{old[:12]}.ics").status_code == 404

    client.force_login(alice)
    assert client.post(reverse("calendar-reset", args=[feed.pk])).status_code == 302
    client.logout()
    gone = client.get(f"/calendar/{old}.ics")
    assert gone.status_code == 404 and b"reset" in gone.content
    feed.refresh_from_db()
    assert feed.token != old and fetch(client, feed).status_code == 200

    shared = feed_of(alice, CalendarFeed.Scope.SERVER, server=thalys)
    client.force_login(alice)
    client.post(reverse("calendar-remove", args=[shared.pk]))
    client.logout()
    assert client.get(f"/calendar/{shared.token}.ics").status_code == 404


def test_a_deactivated_members_feeds_stop(client, alice):
    feed = feed_of(alice)
    alice.is_active = False
    alice.save()
    assert fetch(client, feed).status_code == 404


def test_members_cannot_reset_or_remove_each_others_feeds(client, alice, bob, thalys):
    theirs = feed_of(bob, CalendarFeed.Scope.SERVER, server=thalys)
    token = theirs.token
    client.force_login(alice)
    assert client.post(reverse("calendar-reset", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("calendar-remove", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.token == token


def test_secret_addresses_never_reach_the_logs(client, caplog, alice):
    token = feed_of(alice).token
    with caplog.at_level(logging.INFO):
        client.get(f"/calendar/{token[:-3]}abc.ics")
    assert "/calendar/<secret>.ics" in caplog.text
    assert token[:12] not in caplog.text

    # runserver's request lines (django.server) go through the same filter.
    record = logging.LogRecord("django.server", logging.INFO, __file__, 1, '"%s" %s %s', (f"GET /calendar/{token}.ics HTTP/1.1", 200, 10), None)
    from labres.logs import RedactSecrets

    RedactSecrets().filter(record)
    assert token not in record.getMessage() and "/calendar/<secret>.ics" in record.getMessage()


def test_the_profile_page_shows_the_address_and_subscribe_links(client, alice):
    client.force_login(alice)
    page = client.get(reverse("profile"))
    feed = CalendarFeed.objects.get(user=alice, scope=CalendarFeed.Scope.MINE)
    html = page.content.decode()
    assert f'value="http://testserver/calendar/{feed.token}.ics"' in html
    assert f'href="webcal://testserver/calendar/{feed.token}.ics"' in html
    assert "calendar.google.com/calendar/r?cid=webcal%3A%2F%2Ftestserver%2Fcalendar%2F" in html
    assert 'data-copy="feed-url-' in html and "Reset address" in html


def test_members_add_a_server_room_or_lab_calendar_from_the_profile(client, alice, thalys):
    lab_room = RoomFactory(name="Seminar room")
    client.force_login(alice)
    client.get(reverse("profile"))
    for value in (f"server:{thalys.pk}", f"room:{lab_room.pk}", "lab", "lab"):
        assert client.post(reverse("calendar-add"), {"calendar": value}).status_code == 302
    scopes = sorted(CalendarFeed.objects.filter(user=alice).values_list("scope", flat=True))
    assert scopes == ["lab", "mine", "room", "server"]
    page = client.get(reverse("profile"))
    assert "Server thalys" in page.content.decode() and "Room Seminar room" in page.content.decode()

    refused = client.post(reverse("calendar-add"), {"calendar": "server:999999"}, follow=True)
    assert "Choose the lab, one of the servers or one of the rooms" in refused.content.decode()
    assert CalendarFeed.objects.filter(user=alice).count() == 4


def test_the_booking_download_and_the_feed_share_uid_and_sequence(client, alice, thalys, book, later):
    booking = book(alice, later, purpose="eval", server=thalys, devices="2")
    services.extend_booking(booking, by=alice, duration="30m")
    client.force_login(alice)
    download = client.get(reverse("booking-ics", args=[booking.pk]))
    assert download["Content-Disposition"] == f'attachment; filename="booking-{booking.pk}.ics"'
    single = events(download)[uid(booking)]
    in_feed = events(fetch(client, feed_of(alice)))[uid(booking)]
    assert single["SEQUENCE"] == in_feed["SEQUENCE"] == 1
    assert single.decoded("DTEND") == in_feed.decoded("DTEND") == later + timedelta(hours=1, minutes=30)


def test_the_email_attachment_carries_the_feeds_uid_and_sequence(alice, thalys, book, later):
    from notifications.messages import booking_ics

    booking = book(alice, later, purpose="eval", server=thalys, devices="2")
    services.change_booking(booking, by=alice, end=later + timedelta(hours=2))
    filename, content, mimetype = booking_ics(booking.pk)
    event = Calendar.from_ical(content).walk("VEVENT")[0]
    assert str(event["UID"]) == uid(booking) and event["SEQUENCE"] == 1
    assert mimetype == "text/calendar" and filename == f"booking-{booking.pk}.ics"


def test_staff_see_feeds_in_the_admin_without_their_secrets_and_can_reset_them(staff_client, alice, thalys):
    feed = feed_of(alice, CalendarFeed.Scope.SERVER, server=thalys)
    old = feed.token
    page = staff_client.get(reverse("admin:reservations_calendarfeed_changelist"))
    assert page.status_code == 200 and "alice" in page.content.decode()
    assert feed.secret not in staff_client.get(reverse("admin:reservations_calendarfeed_change", args=[feed.pk])).content.decode()

    staff_client.post(
        reverse("admin:reservations_calendarfeed_changelist"), {"action": "reset_addresses", "_selected_action": [feed.pk]}
    )
    feed.refresh_from_db()
    assert feed.token != old


@pytest.mark.parametrize("scope", ["server", "room", "lab"])
def test_a_shared_feeds_etag_follows_exactly_its_own_bookings(client, alice, bob, thalys, room, later, scope):
    other_server = ServerFactory(name="other", gpus=2)
    other_room = RoomFactory(name="Other room")
    target = {"server": {"server": thalys}, "room": {"room": room}, "lab": {}}[scope]
    feed = feed_of(alice, scope, **target)
    etag = fetch(client, feed)["ETag"]

    outside = {"server": {"server": other_server, "devices": "0"}, "room": {"room": other_room}, "lab": None}[scope]
    if outside is not None:  # a booking the feed does not hold leaves it as it was
        services.create_booking(bob, start=later, end=later + timedelta(hours=1), **outside)
        assert fetch(client, feed, HTTP_IF_NONE_MATCH=etag).status_code == 304
    inside = {"server": {"server": thalys, "devices": "7"}, "room": {"room": room}, "lab": {"room": other_room}}[scope]
    booking = services.create_booking(bob, start=later + timedelta(hours=2), end=later + timedelta(hours=3), **inside)
    changed = fetch(client, feed, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and uid(booking) in events(changed)


def test_a_booking_awaiting_approval_is_tentative_then_confirmed(client, alice, later):
    staff = UserFactory(username="stella", is_staff=True)
    server = ServerFactory(name="h100", gpus=2, requires_approval=True)
    booking = services.create_booking(alice, start=later, end=later + timedelta(hours=1), server=server, devices="0")
    feed = feed_of(alice)
    event = events(fetch(client, feed))[uid(booking)]
    assert str(event["STATUS"]) == "TENTATIVE"
    services.approve_booking(booking, by=staff)
    event = events(fetch(client, feed))[uid(booking)]
    assert str(event["STATUS"]) == "CONFIRMED"
    assert int(event["SEQUENCE"]) == 1  # calendar apps replace their tentative copy


def test_a_declined_booking_shows_cancelled(client, alice, later):
    staff = UserFactory(username="stella", is_staff=True)
    server = ServerFactory(name="h100", gpus=2, requires_approval=True)
    booking = services.create_booking(alice, start=later, end=later + timedelta(hours=1), server=server, devices="0")
    services.decline_booking(booking, by=staff, reason="no")
    assert str(events(fetch(client, feed_of(alice)))[uid(booking)]["STATUS"]) == "CANCELLED"


def _shown_changes(alice, thalys):
    """What a feed shows besides bookings, each changed the way staff or the member would (a full save)."""
    profile = alice.profile

    def location():
        thalys.location = "Basement, rack 7"
        thalys.save()
        return b"Basement\\, rack 7"

    def server_name():
        thalys.name = "thalys2"
        thalys.save()
        return b"thalys2"

    def member_name():
        profile.display_name = "Ally"
        profile.save()
        return b"Ally"

    return {"location": location, "server name": server_name, "member name": member_name}


@pytest.mark.parametrize("change", ["location", "server name", "member name"])
def test_a_change_shown_in_the_feed_in_the_same_second_as_a_fetch_gives_a_new_etag(client, alice, thalys, book, later, change):
    book(alice, later, server=thalys, devices="0")
    feed = feed_of(alice, CalendarFeed.Scope.SERVER, server=thalys)  # a shared feed names who booked
    with time_machine.travel(later - timedelta(hours=1), tick=False):  # the clock stands still: all in one instant
        first = fetch(client, feed)
        shown = _shown_changes(alice, thalys)[change]()

        again = fetch(client, feed, HTTP_IF_NONE_MATCH=first["ETag"], HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])

    assert again.status_code == 200 and again["ETag"] != first["ETag"]
    assert shown in again.content.replace(b"\r\n ", b"")  # unfolded


def test_a_sign_in_or_a_new_member_leaves_the_etag_alone(client, alice, thalys, book, later):
    book(alice, later, server=thalys, devices="0")
    feed = feed_of(alice, CalendarFeed.Scope.LAB)
    first = fetch(client, feed)

    alice.last_login = timezone.now()
    alice.save(update_fields=["last_login"])
    UserFactory(username="carol")

    assert fetch(client, feed, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
