"""Recurring bookings: the repeat parser, create_series (ask / skip), cancel_series, DST, limits, one notification."""
import threading
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import given, strategies as st

from notifications import outbox
from notifications.models import Notification, OutboxEvent
from reservations import recurrence, services
from reservations.errors import BookingConflict, BookingError, LimitExceeded, NotAllowed, SeriesConflict
from reservations.models import Booking, BookingSeries, Limit, Profile
from reservations.parsing import ParseError
from tests.clock import next_eu_dst_sunday
from tests.factories import UserFactory

H = timedelta(hours=1)
BERLIN = ZoneInfo("Europe/Berlin")


# --- the parser ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, rule",
    [
        ("daily", "FREQ=DAILY"),
        ("Every day", "FREQ=DAILY"),
        ("weekdays", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
        ("weekly", "FREQ=WEEKLY"),
        ("every 2 weeks", "FREQ=WEEKLY;INTERVAL=2"),
        ("weekly on tue,thu", "FREQ=WEEKLY;BYDAY=TU,TH"),
        ("weekly on Thursday and tue", "FREQ=WEEKLY;BYDAY=TU,TH"),
        ("every 3 days", "FREQ=DAILY;INTERVAL=3"),
        ("monthly", "FREQ=MONTHLY"),
        ("RRULE:FREQ=WEEKLY;BYDAY=TU", "FREQ=WEEKLY;BYDAY=TU"),
        ("freq=weekly;interval=2;byday=fr,mo", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR"),
        ("FREQ=DAILY;COUNT=5", "FREQ=DAILY;COUNT=5"),
    ],
)
def test_repeat_texts_read_into_normalized_rules(text, rule):
    assert recurrence.parse_repeat(text) == (rule, None)


def test_an_rrule_until_comes_back_as_a_date():
    assert recurrence.parse_repeat("FREQ=WEEKLY;UNTIL=20261215T000000Z") == ("FREQ=WEEKLY", date(2026, 12, 15))


@pytest.mark.parametrize("text", ["never", "", "  "])
def test_never_is_no_repeat(text):
    assert recurrence.parse_repeat(text) == (None, None)


@pytest.mark.parametrize(
    "text, says",
    [
        ("sometimes", "not a repeat I can read"),
        ("weekly on funday", "'funday' is not a day"),
        ("daily on mon", "days of the week go with a weekly repeat"),
        ("every 0 weeks", "every 1 to 52"),
        ("FREQ=HOURLY", "FREQ=DAILY, WEEKLY, MONTHLY or YEARLY"),
        ("FREQ=WEEKLY;BYHOUR=3", "BYHOUR is not supported"),
        ("FREQ=WEEKLY;COUNT=2;UNTIL=20261201", "UNTIL or COUNT, not both"),
        ("FREQ=WEEKLY;UNTIL=20261399", "not a date"),
        ("FREQ=WEEKLY;BYDAY=1MO", "BYDAY=1MO is not supported"),
    ],
)
def test_bad_repeats_say_what_is_wrong(text, says):
    with pytest.raises(ParseError, match=says):
        recurrence.parse_repeat(text)


@given(st.text(max_size=60))
def test_the_parser_reads_any_text_or_says_why_not(text):
    try:
        rule, _ = recurrence.parse_repeat(text)
    except ParseError as error:
        assert str(error)
    else:
        assert rule is None or rule.startswith("FREQ=")


rules = st.one_of(
    st.builds(
        recurrence.format_rule,
        st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]),
        st.integers(1, recurrence.MAX_INTERVAL),
    ),
    st.builds(
        recurrence.format_rule,
        st.just("WEEKLY"),
        st.integers(1, recurrence.MAX_INTERVAL),
        st.sets(st.sampled_from(recurrence.DAYS), min_size=1).map(lambda days: tuple(sorted(days, key=recurrence.DAYS.index))),
    ),
)


@given(rules)
def test_a_rule_read_from_its_own_description_is_the_same_rule(rule):
    assert recurrence.parse_repeat(recurrence.describe(rule)) == (rule, None)


@given(rules)
def test_a_normalized_rule_reads_back_unchanged_as_an_rrule(rule):
    assert recurrence.parse_rrule("RRULE:" + rule) == (rule, None)


@given(rules, st.dates(date(2020, 1, 1), date(2030, 12, 31)), st.integers(0, 400))
def test_occurrences_start_at_the_wall_clock_time_between_first_and_until(rule, first, days):
    until = first + timedelta(days=days)
    starts = recurrence.occurrences(rule, first=datetime.combine(first, time(10, 0)), until=until, zone=BERLIN, limit=50, horizon=until)
    assert len(starts) <= 51
    assert starts == sorted(starts)
    assert all(s.time() == time(10, 0) and first <= s.date() <= until for s in starts)


# --- create_series -----------------------------------------------------------------------------


def weekly(user, start, *, weeks=4, repeat="weekly", **target):
    target = target or {"server": "thalys", "devices": "0"}
    until = timezone.localtime(start, user_zone(user)).date() + timedelta(weeks=weeks - 1)
    return services.create_series(user, start=start, end=start + H, repeat=repeat, until=until, purpose="group meeting", **target)


def user_zone(user):
    name = getattr(getattr(user, "profile", None), "time_zone", "") or "UTC"
    return ZoneInfo(name)


@pytest.fixture
def in_berlin(alice):
    Profile.objects.update_or_create(user=alice, defaults={"time_zone": "Europe/Berlin"})
    alice.refresh_from_db()
    return alice


def next_weekday(weekday, hour, zone, after=None):
    """The next such weekday at hour:00 in zone, at least two days ahead."""
    day = (after or timezone.localdate(timezone.now(), zone)) + timedelta(days=2)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return datetime.combine(day, time(hour), tzinfo=zone)


@pytest.mark.django_db
def test_weekly_until_a_date_books_each_week(alice, thalys):
    start = next_weekday(1, 10, UTC)
    result = weekly(alice, start, weeks=4)

    starts = [booking.start for booking in result.bookings]
    assert starts == [start + timedelta(weeks=n) for n in range(4)]
    assert result.skipped == []
    series = BookingSeries.objects.get()
    assert (series.rule, series.user, series.length, series.start_time) == ("FREQ=WEEKLY", alice, H, time(10, 0))
    assert set(Booking.objects.values_list("series", flat=True)) == {series.pk}
    assert "every week on Tuesday at 10:00 (UTC) until" in series.describe()


@pytest.mark.django_db
@pytest.mark.parametrize("month, day_before", [(3, "last Sunday of March"), (10, "last Sunday of October")])
def test_occurrences_keep_their_wall_clock_time_across_dst(in_berlin, thalys, month, day_before, settings):
    settings.BOOKING_MAX_AHEAD = "400d"  # the next change may be almost a year ahead, and the series a week more
    last_sunday = next_eu_dst_sunday(month, timezone.localdate(timezone.now(), BERLIN))
    start = datetime.combine(last_sunday - timedelta(days=5), time(10), tzinfo=BERLIN)  # the Tuesday before
    result = weekly(in_berlin, start, weeks=2)

    first, second = result.bookings
    assert [timezone.localtime(b.start, BERLIN).time() for b in result.bookings] == [time(10), time(10)]
    assert second.start - first.start == timedelta(weeks=1) + (-H if month == 3 else H)
    assert second.end - second.start == H


@pytest.mark.django_db
def test_ask_lists_every_refused_date_and_writes_nothing(alice, bob, thalys, book):
    start = next_weekday(1, 10, UTC)
    book(bob, start + timedelta(weeks=1), server=thalys, devices="0", purpose="bob's run")
    book(bob, start + timedelta(weeks=3), server=thalys, devices="0-1", purpose="bob's other run")

    with pytest.raises(SeriesConflict) as caught:
        weekly(alice, start, weeks=4)

    refused = caught.value.refused
    assert [r.start for r in refused] == [start + timedelta(weeks=1), start + timedelta(weeks=3)]
    assert all(isinstance(r.error, BookingConflict) for r in refused)
    assert "bob's run" in refused[0].reason and "bob" in refused[0].reason
    assert caught.value.bookable == 2 and caught.value.message.startswith("2 of the 4 dates cannot be booked")
    assert caught.value.field == "repeat"
    assert not BookingSeries.objects.exists()
    assert Booking.objects.filter(user=alice).count() == 0
    assert OutboxEvent.objects.filter(event="series_created").count() == 0


@pytest.mark.django_db
def test_skip_books_the_others_and_reports_the_skipped(alice, bob, thalys, book):
    start = next_weekday(1, 10, UTC)
    book(bob, start + timedelta(weeks=2, minutes=30), server=thalys, devices="0")

    result = services.create_series(
        alice, start=start, end=start + H, repeat="weekly", count=4, server="thalys", devices="0", on_conflict="skip",
    )

    assert [b.start for b in result.bookings] == [start + timedelta(weeks=n) for n in (0, 1, 3)]
    assert [r.start for r in result.skipped] == [start + timedelta(weeks=2)]
    assert Booking.objects.filter(user=alice, series=result.series).count() == 3


@pytest.mark.django_db
def test_a_series_where_nothing_fits_is_refused_even_with_skip(alice, bob, thalys, book):
    start = next_weekday(1, 10, UTC)
    book(bob, start, hours=24 * 7 + 2, server=thalys, devices="0")
    with pytest.raises(SeriesConflict, match="None of the 2 dates"):
        services.create_series(alice, start=start, end=start + H, repeat="weekly", count=2, server="thalys", devices="0", on_conflict="skip")
    assert not BookingSeries.objects.exists()


@pytest.mark.django_db
def test_a_limit_refuses_the_dates_beyond_it(alice, thalys):
    Limit.objects.create(kind=Limit.Kind.MAX_AHEAD, user=alice, duration="10d")
    start = next_weekday(1, 10, UTC)  # 2 to 8 days ahead: week 0 fits, weeks 1-3 start more than 10 days ahead
    with pytest.raises(SeriesConflict) as caught:
        weekly(alice, start, weeks=4)
    refused = caught.value.refused
    assert len(refused) >= 2 and all(isinstance(r.error, LimitExceeded) for r in refused)
    assert "10d ahead" in refused[-1].reason


@pytest.mark.django_db
def test_the_dates_of_a_series_count_against_each_other_in_weekly_limits(alice, thalys):
    Limit.objects.create(kind=Limit.Kind.GPU_HOURS_WEEK, user=alice, number=3)
    start = next_weekday(0, 8, UTC)
    result = services.create_series(
        alice, start=start, end=start + H, repeat="daily", count=5, server="thalys", devices="0", on_conflict="skip",
    )
    assert len(result.bookings) == 3 and len(result.skipped) == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes, field, says",
    [
        ({"repeat": "sometimes"}, "repeat", "not a repeat I can read"),
        ({"repeat": "never"}, "repeat", "Say how the booking repeats"),
        ({"until": None}, "until", "until which date"),
        ({"until": "past"}, "until", "before the first booking starts"),
        ({"repeat": "daily", "weeks": 20}, "until", "at most 100 bookings"),
        ({"count": 3}, "count", "not both"),
        ({"on_conflict": "maybe"}, "on_conflict", "'ask'"),
        ({"server": "nowhere"}, "server", "no server 'nowhere'"),
    ],
)
def test_bad_series_requests_name_the_field_and_write_nothing(alice, thalys, changes, field, says):
    start = next_weekday(1, 10, UTC)
    kwargs = {"start": start, "end": start + H, "repeat": "weekly", "until": start.date() + timedelta(weeks=(changes.pop("weeks", 3))),
              "server": "thalys", "devices": "0"}
    if changes.get("until") == "past":
        changes["until"] = start.date() - timedelta(days=1)
    kwargs.update(changes)
    with pytest.raises(BookingError, match=says) as caught:
        services.create_series(alice, **kwargs)
    assert caught.value.field == field
    assert not BookingSeries.objects.exists() and not Booking.objects.exists()


@pytest.mark.django_db
def test_the_cap_is_a_setting(alice, thalys, settings):
    settings.SERIES_MAX_OCCURRENCES = 3
    start = next_weekday(1, 10, UTC)
    with pytest.raises(BookingError, match="at most 3 bookings"):
        weekly(alice, start, weeks=4)
    assert len(weekly(alice, start, weeks=3).bookings) == 3


# --- notifications ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_series_queues_exactly_one_message_listing_its_dates_and_the_skipped(alice, bob, thalys, book):
    start = next_weekday(1, 10, UTC)
    book(bob, start + timedelta(weeks=1), server=thalys, devices="0", purpose="bob's run")
    Notification.objects.all().delete()
    OutboxEvent.objects.all().delete()

    services.create_series(alice, start=start, end=start + H, repeat="weekly", count=3, server="thalys", devices="0", on_conflict="skip")
    outbox.expand_due()

    assert list(OutboxEvent.objects.values_list("event", flat=True)) == ["series_created"]
    [row] = Notification.objects.filter(recipient=alice)
    assert row.event == "series_created" and row.channel == "email"
    text = row.payload["text"]
    assert "Booked (2):" in text and "Skipped (1), not booked:" in text and "bob's run" in text
    assert "every week on Tuesday at 10:00 (UTC)" in row.payload["subject"]


@pytest.mark.django_db
def test_the_servers_slack_channel_hears_the_series_once_with_others_words_escaped(alice, bob, thalys, book):
    from notifications.models import Destination

    Destination.objects.create(name="#thalys", kind="slack_webhook", webhook_url="https://hooks.example.org/services/T/B/x", server=thalys)
    start = next_weekday(1, 10, UTC)
    book(bob, start + timedelta(weeks=1), server=thalys, devices="0", purpose="<!channel> run")

    services.create_series(alice, start=start, end=start + H, repeat="weekly", count=3, server="thalys", devices="0", on_conflict="skip")
    outbox.expand_due()

    [row] = Notification.objects.filter(event="series_created", destination__isnull=False)
    assert "&lt;!channel&gt; run" in row.payload["text"] and "<!channel>" not in row.payload["text"]
    assert "booked *thalys:0* every week on Tuesday at 10:00 (UTC)" in row.payload["text"] and "2 dates" in row.payload["text"]


@pytest.mark.django_db
def test_cancelling_a_series_queues_one_message(alice, thalys):
    start = next_weekday(1, 10, UTC)
    result = weekly(alice, start, weeks=3)
    OutboxEvent.objects.all().delete()
    services.cancel_series(result.series, by=alice)
    outbox.expand_due()
    assert list(OutboxEvent.objects.values_list("event", flat=True)) == ["series_cancelled"]
    [row] = Notification.objects.filter(recipient=alice)
    assert row.payload["text"].count("  - ") == 3


# --- cancelling ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cancelling_one_occurrence_leaves_the_others(alice, thalys):
    result = weekly(alice, next_weekday(1, 10, UTC), weeks=3)
    services.cancel_booking(result.bookings[1], by=alice)
    statuses = list(Booking.objects.order_by("start").values_list("status", flat=True))
    assert statuses == ["confirmed", "cancelled", "confirmed"]


@pytest.mark.django_db
def test_cancelling_the_series_keeps_a_running_occurrence(alice, thalys):
    start = next_weekday(1, 10, UTC)
    result = weekly(alice, start, weeks=3)
    now = start + timedelta(minutes=30)  # the first is running

    outcome = services.cancel_series(result.series, by=alice, now=now)

    assert [b.pk for b in outcome.bookings] == [b.pk for b in result.bookings[1:]]
    assert [b.pk for b in outcome.skipped] == [result.bookings[0].pk]
    statuses = list(Booking.objects.order_by("start").values_list("status", flat=True))
    assert statuses == ["confirmed", "cancelled", "cancelled"]
    with pytest.raises(BookingError, match="nothing left to cancel; booking #\\d+ is running"):
        services.cancel_series(result.series, by=alice, now=now)


@pytest.mark.django_db
def test_another_member_may_not_cancel_a_series_but_staff_may(alice, bob, staff, thalys):
    result = weekly(alice, next_weekday(1, 10, UTC), weeks=2)
    with pytest.raises(NotAllowed, match="belongs to alice"):
        services.cancel_series(result.series, by=bob)
    assert Booking.objects.filter(status="confirmed").count() == 2

    outcome = services.cancel_series(result.series, by=staff)
    assert len(outcome.bookings) == 2
    assert not Booking.objects.filter(status="confirmed").exists()


# --- races (PostgreSQL: real threads) ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="real concurrent writers need PostgreSQL")
def test_two_members_racing_for_the_same_weekly_slot_get_one_series(thalys):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    start = next_weekday(1, 10, UTC)
    barrier, outcomes = threading.Barrier(2), {}

    def run(user):
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            outcomes[user.username] = weekly(user, start, weeks=3)
        except BookingError as error:
            outcomes[user.username] = error
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=run, args=(user,)) for user in (alice, bob)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    kinds = sorted(type(outcome).__name__ for outcome in outcomes.values())
    assert kinds == ["SeriesConflict", "SeriesResult"]
    assert Booking.objects.count() == 3 and BookingSeries.objects.count() == 1
    assert connection.vendor == "postgresql"


# --- the web pages -----------------------------------------------------------------------------------


def book_form(moment, **changes):
    data = {
        "what": "gpus", "server": "thalys", "gpus": ["thalys:0"], "devices": "", "room": "",
        "start": timezone.localtime(moment, UTC).strftime("%Y-%m-%dT%H:%M"), "length": "1h", "duration": "", "end": "",
        "purpose": "reading group", "repeat": "weekly", "until": (moment + timedelta(weeks=2)).date().isoformat(),
    }
    data.update(changes)
    return data


@pytest.fixture
def lab_utc(settings):
    settings.TIME_ZONE = "UTC"


@pytest.mark.django_db
def test_the_form_books_a_weekly_series(client, alice, thalys, lab_utc):
    client.force_login(alice)
    start = next_weekday(1, 10, UTC)
    response = client.post("/book/", book_form(start))
    assert response.status_code == 303 and response["Location"] == "/mine/"
    assert Booking.objects.filter(user=alice, series__isnull=False).count() == 3
    page = client.get("/mine/").content.decode()
    assert "Booked thalys:0 every week on Tuesday at 10:00 (UTC)" in page and ": 3 dates." in page
    assert page.count("↻ repeats every week") == 3
    assert f"/series/{BookingSeries.objects.get().pk}/cancel/" in page


@pytest.mark.django_db
def test_a_dates_own_page_names_its_series(client, alice, thalys, lab_utc):
    client.force_login(alice)
    result = weekly(alice, next_weekday(1, 10, UTC), weeks=2)
    page = client.get(f"/bookings/{result.bookings[0].pk}/").content.decode()
    assert "↻ every week on Tuesday at 10:00 (UTC) until" in page and f"/series/{result.series.pk}/cancel/" in page


@pytest.mark.django_db
def test_the_form_needs_an_until_date_to_repeat(client, alice, thalys, lab_utc):
    client.force_login(alice)
    response = client.post("/book/", book_form(next_weekday(1, 10, UTC), until=""))
    assert response.status_code == 200
    assert "Choose the last date it repeats on" in response.content.decode()
    assert not Booking.objects.exists()


@pytest.mark.django_db
def test_the_form_lists_taken_dates_then_books_the_others_on_request(client, alice, bob, thalys, book, lab_utc):
    client.force_login(alice)
    start = next_weekday(1, 10, UTC)
    book(bob, start + timedelta(weeks=1), server=thalys, devices="0", purpose="bob's run")

    response = client.post("/book/", book_form(start))
    page = response.content.decode()
    assert response.status_code == 409
    assert "1 of 3 dates cannot be booked" in page and "bob&#x27;s run" in page
    assert (start + timedelta(weeks=1)).strftime("%a %-d %b %Y") in page
    assert 'name="on_conflict" value="skip"' in page and "Book the 2 others, skip this" in page
    assert 'href="/book/" class="btn">Cancel</a>' in page
    assert not Booking.objects.filter(user=alice).exists()

    response = client.post("/book/", book_form(start, on_conflict="skip"))
    assert response.status_code == 303
    assert Booking.objects.filter(user=alice).count() == 2
    assert "skipped 1 taken date" in client.get("/mine/").content.decode()


@pytest.mark.django_db
def test_the_live_check_looks_at_every_date_of_the_repeat(client, alice, bob, thalys, book, lab_utc):
    client.force_login(alice)
    start = next_weekday(1, 10, UTC)
    assert "All 3 dates are free." in client.post("/book/check/", book_form(start)).content.decode()

    book(bob, start + timedelta(weeks=2, minutes=30), server=thalys, devices="0", purpose="bob's run")
    page = client.post("/book/check/", book_form(start)).content.decode()
    assert "Free: thalys GPU 0" in page  # the first date
    assert "1 of the 3 dates is taken:" in page
    assert (start + timedelta(weeks=2)).strftime("%a %d %b") in page and "bob&#x27;s run" in page
    assert "All 3 dates are free." not in page

    other = client.post("/book/check/", book_form(start, gpus=["thalys:1"])).content.decode()
    assert "All 3 dates are free." in other
    wrong = client.post("/book/check/", book_form(start, until=(start - timedelta(days=1)).date().isoformat())).content.decode()
    assert "before the first booking starts" in wrong and "Free:" not in wrong
    assert Booking.objects.filter(user=alice).count() == 0  # a look, not a booking


@pytest.mark.django_db
def test_my_bookings_cancels_the_whole_series_after_confirming(client, alice, thalys, lab_utc):
    client.force_login(alice)
    result = weekly(alice, next_weekday(1, 10, UTC), weeks=3)
    url = f"/series/{result.series.pk}/cancel/"

    confirm = client.get(url).content.decode()
    assert "These 3 dates will be cancelled" in confirm and "Cancel 3 dates" in confirm
    assert Booking.objects.filter(status="confirmed").count() == 3

    response = client.post(url)
    assert response.status_code == 302
    assert not Booking.objects.filter(status="confirmed").exists()
    assert "Cancelled 3 dates of series" in client.get("/mine/").content.decode()


@pytest.mark.django_db
def test_another_member_cannot_cancel_a_series_from_the_page(client, alice, bob, thalys):
    result = weekly(alice, next_weekday(1, 10, UTC), weeks=2)
    client.force_login(bob)
    assert client.get(f"/series/{result.series.pk}/cancel/").status_code == 403
    assert client.post(f"/series/{result.series.pk}/cancel/").status_code == 403
    assert Booking.objects.filter(status="confirmed").count() == 2


# --- calendar feeds ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_feed_has_one_event_per_date_naming_the_series(client, alice, thalys):
    from django.urls import reverse
    from icalendar import Calendar

    from reservations.models import CalendarFeed

    result = weekly(alice, next_weekday(1, 10, UTC), weeks=3)
    services.cancel_booking(result.bookings[1], by=alice)
    feed = CalendarFeed.objects.create(user=alice, scope=CalendarFeed.Scope.MINE)

    body = client.get(reverse("calendar-feed", args=[feed.token])).content
    events = {str(event["UID"]): event for event in Calendar.from_ical(body).walk("VEVENT")}

    assert sorted(events) == sorted(f"booking-{b.pk}@{next(iter(events)).split('@')[1]}" for b in result.bookings)
    assert all("RRULE" not in event for event in events.values())
    for booking in result.bookings:
        event = next(e for uid, e in events.items() if uid.startswith(f"booking-{booking.pk}@"))
        assert event.decoded("DTSTART") == booking.start
        assert "Repeats every week on Tuesday at 10:00 (UTC) until" in str(event["DESCRIPTION"])
        assert f"(series #{result.series.pk})" in str(event["DESCRIPTION"])
    cancelled = next(e for uid, e in events.items() if uid.startswith(f"booking-{result.bookings[1].pk}@"))
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert all(len(line) <= 75 for line in body.split(b"\r\n"))  # the long DESCRIPTION is folded


# --- admin ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_lists_series_shows_their_dates_and_cancels_the_rest(staff_client, alice, thalys):
    result = weekly(alice, next_weekday(1, 10, UTC), weeks=2)
    listing = staff_client.get("/admin/reservations/bookingseries/").content.decode()
    assert "every week on Tuesday at 10:00 (UTC)" in listing

    page = staff_client.get(f"/admin/reservations/bookingseries/{result.series.pk}/change/").content.decode()
    assert all(f"#{booking.pk}" in page for booking in result.bookings)

    response = staff_client.post(
        "/admin/reservations/bookingseries/", {"action": "cancel_the_rest", "_selected_action": [result.series.pk]}, follow=True,
    )
    assert f"Series #{result.series.pk}: cancelled 2 dates." in response.content.decode()
    assert not Booking.objects.filter(status="confirmed").exists()
