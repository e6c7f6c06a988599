"""Usage analytics: booked against used GPU-hours per server, member and group; idle bookings; the heat map;
the page and its CSV."""
import csv
import io
import re
import zoneinfo
from datetime import date, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from monitoring.analytics import NO_GROUP, Period, usage_report
from monitoring.models import Alert, BookingUsage, GpuHour
from reservations import services
from tests.factories import ServerFactory, UserFactory

pytestmark = pytest.mark.django_db

UTC = zoneinfo.ZoneInfo("UTC")
# A Monday, well in the past: whole days of history around it.
DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_report_cache(settings):
    """Each request computes afresh, unless a test is about the cache."""
    settings.USAGE_REPORT_CACHE_SECONDS = 0
    settings.GPU_ACTIVE_PERCENT = 5


@pytest.fixture
def eurostar(db):
    return ServerFactory(name="eurostar", gpus=2)


def at(hour, minute=0, day=DAY):
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour, minutes=minute)


def book(user, server, devices, start, end, purpose="training"):
    return services.create_booking(user, start=start, end=end, server=server.name, devices=devices, purpose=purpose, now=start)


def hours(server, index, first, count, *, active, samples=240, util=50):
    """`count` hourly rollups of one GPU from `first`, each with `active` of `samples` readings at or above the threshold."""
    device = server.devices.get(index=index)
    GpuHour.objects.bulk_create(
        GpuHour(device=device, bucket=first + timedelta(hours=h), samples=samples, active_samples=active,
                gpu_util_sum=util * samples, gpu_util_max=min(100, util + 10))
        for h in range(count)
    )


def one_day(day=DAY, zone=UTC):
    return Period.of(day, day, zone, NOW)


def by_name(rows):
    return {row.name: row for row in rows}


# --- booked and used ---------------------------------------------------------------------------


def test_used_hours_are_the_active_share_of_each_booked_hour(alice, eurostar):
    book(alice, eurostar, "0", at(10), at(12))
    hours(eurostar, 0, at(10), 1, active=240)
    hours(eurostar, 0, at(11), 1, active=120)

    report = usage_report(one_day())

    (member,) = report.members
    assert member.booked == pytest.approx(2.0)
    assert member.used == pytest.approx(1.5)
    assert member.share == pytest.approx(0.75)
    assert report.total.booked == pytest.approx(2.0) and report.total.used == pytest.approx(1.5)


def test_a_bucket_without_readable_samples_counts_as_unused(alice, eurostar):
    book(alice, eurostar, "0", at(10), at(12))
    hours(eurostar, 0, at(10), 1, active=0, samples=0, util=0)
    hours(eurostar, 0, at(11), 1, active=240)

    (member,) = usage_report(one_day()).members

    assert member.used == pytest.approx(1.0)


def test_booked_gpu_hours_count_every_gpu_of_the_booking(alice, eurostar):
    book(alice, eurostar, "0-1", at(9), at(12))

    (member,) = usage_report(one_day()).members

    assert member.booked == pytest.approx(6.0)
    assert member.used == 0


def test_cancelled_bookings_count_for_nothing(alice, eurostar):
    booking = book(alice, eurostar, "0", at(10), at(12))
    booking.status = booking.Status.CANCELLED
    booking.save()
    booking.allocations.update(active=False)

    report = usage_report(one_day())

    assert report.members == [] and report.total.booked == 0


def test_booked_and_used_are_clipped_to_the_period(alice, eurostar):
    # 22:00 the day before to 02:00 on the day: two of its four hours are in the period.
    book(alice, eurostar, "0", at(22, day=DAY - timedelta(days=1)), at(2))
    hours(eurostar, 0, at(22, day=DAY - timedelta(days=1)), 4, active=240)

    report = usage_report(one_day())

    (member,) = report.members
    assert member.booked == pytest.approx(2.0)
    assert member.used == pytest.approx(2.0)
    assert by_name(report.servers)["eurostar"].used == pytest.approx(2.0)


def test_a_period_that_reaches_today_ends_now(alice, eurostar):
    now = at(12, day=NOW.date())
    book(alice, eurostar, "0", now - timedelta(hours=2), now + timedelta(hours=2))
    hours(eurostar, 0, now - timedelta(hours=2), 2, active=240)

    period = Period.of(NOW.date(), NOW.date(), UTC, now)
    report = usage_report(period)

    assert period.end == now
    (member,) = report.members
    assert member.booked == pytest.approx(2.0)  # the two hours still to come are not counted yet
    assert member.used == pytest.approx(2.0)


def test_an_hour_a_booking_shares_at_its_edge_counts_pro_rata(alice, eurostar):
    book(alice, eurostar, "0", at(10, 30), at(12))
    hours(eurostar, 0, at(10), 2, active=240)

    (member,) = usage_report(one_day()).members

    assert member.booked == pytest.approx(1.5)
    assert member.used == pytest.approx(1.5)  # half of the 10:00 bucket, all of the 11:00 one


def test_a_settled_booking_inside_the_period_uses_its_stored_usage(alice, eurostar):
    booking = book(alice, eurostar, "0", at(10), at(12))
    hours(eurostar, 0, at(10), 2, active=240)
    BookingUsage.objects.create(
        booking=booking, samples=960, gpu_util_mean=31.0, gpu_util_peak=90, memory_peak_mib=1000,
        booked_gpu_hours=2.0, used_gpu_hours=0.7, source="raw", settled_at=at(12),
    )

    report = usage_report(one_day())

    (member,) = report.members
    assert member.used == pytest.approx(0.7)  # from the raw samples, as the booking page shows it
    assert report.idle[0].util_mean == pytest.approx(31.0)


def test_a_settled_booking_cut_by_the_period_is_computed_from_rollups(alice, eurostar):
    booking = book(alice, eurostar, "0", at(23, day=DAY - timedelta(days=1)), at(1))
    hours(eurostar, 0, at(23, day=DAY - timedelta(days=1)), 2, active=240)
    BookingUsage.objects.create(
        booking=booking, samples=480, gpu_util_mean=50.0, gpu_util_peak=90, memory_peak_mib=1000,
        booked_gpu_hours=2.0, used_gpu_hours=0.2, source="raw", settled_at=at(1),
    )

    (member,) = usage_report(one_day()).members

    assert member.booked == pytest.approx(1.0)
    assert member.used == pytest.approx(1.0)


def test_unbooked_use_counts_for_the_server_but_not_for_the_member(alice, eurostar):
    book(alice, eurostar, "0", at(10), at(11))
    hours(eurostar, 0, at(10), 1, active=240)
    hours(eurostar, 1, at(10), 3, active=240)  # nobody booked GPU 1

    report = usage_report(one_day())

    server = by_name(report.servers)["eurostar"]
    assert (server.booked, server.used, server.unbooked) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(3.0))
    assert server.used_anytime == pytest.approx(4.0)
    assert server.capacity == pytest.approx(48.0)
    (member,) = report.members
    assert member.used == pytest.approx(1.0)
    assert report.used_anytime == pytest.approx(4.0)
    assert report.unbooked == pytest.approx(3.0)


def test_use_before_and_after_a_booking_is_not_the_members(alice, eurostar):
    book(alice, eurostar, "0", at(10), at(11))
    hours(eurostar, 0, at(8), 6, active=240)

    report = usage_report(one_day())

    (member,) = report.members
    assert member.used == pytest.approx(1.0)
    server = by_name(report.servers)["eurostar"]
    assert (server.used, server.unbooked, server.used_anytime) == (pytest.approx(1.0), pytest.approx(5.0), pytest.approx(6.0))


def test_unbooked_use_is_apart_from_booked_use_in_the_rows_the_summary_and_the_csv(member_client, alice, eurostar):
    # Booked 2 GPU-hours, 1.8 of them used; 2.7 GPU-hours used with no booking: "used of booked" is 90%, not 225%.
    book(alice, eurostar, "0", at(10), at(12))
    hours(eurostar, 0, at(10), 2, active=216)
    hours(eurostar, 1, at(10), 3, active=216)

    response = member_client.get(usage_url(start=DAY.isoformat(), end=DAY.isoformat()))
    rows = read_csv(member_client.get(csv_url(start="2026-03-02", end="2026-03-02", by="server")))

    report = response.context["report"]
    (server,) = report.servers
    figures = (server.booked, server.used, server.idle, server.unbooked)
    assert figures == (pytest.approx(2.0), pytest.approx(1.8), pytest.approx(0.2), pytest.approx(2.7))
    assert (report.total.booked, report.total.used, report.total.idle, report.unbooked) == figures
    assert server.share_percent == report.total.share_percent == 90
    cells = [cell.strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", page_part(response, "servers-table"), re.S)]
    assert cells == ["2", "2.0", "1.8", "0.2", "90%", "2.7", "50%"]
    summary = " ".join(page_part(response, "totals-h").split())
    for shown in ("Booked and used</dt><dd><span class=\"num\">1.8</span> GPU-hours <span class=\"muted\">(90% of booked)",
                  "Booked, idle</dt><dd><span class=\"num\">0.2</span> GPU-hours <span class=\"muted\">(10% of booked)",
                  "Unbooked use</dt><dd><span class=\"num\">2.7</span>"):
        assert shown in summary
    assert rows[0][3:8] == ["booked_gpu_hours", "booked_used_gpu_hours", "booked_idle_gpu_hours", "used_share", "unbooked_used_gpu_hours"]
    assert rows[1][3:8] == ["2.000", "1.800", "0.200", "0.900", "2.700"]
    assert response.context["chart_data"]["servers"] == {"labels": ["eurostar"], "booked": [2.0], "used": [1.8], "unbooked": [2.7]}


def test_used_of_booked_never_exceeds_booked(alice, eurostar):
    # A settled usage from the finest telemetry may round a little over what the period's allocation books.
    booking = book(alice, eurostar, "0", at(10), at(11))
    BookingUsage.objects.create(booking=booking, samples=10, gpu_util_mean=99.0, booked_gpu_hours=1.0,
                                used_gpu_hours=1.02, source="raw", settled_at=at(12))

    report = usage_report(one_day())

    assert report.members[0].used == report.servers[0].used == pytest.approx(1.0)
    assert report.total.share_percent == 100 and report.total.idle == 0


def test_each_server_counts_its_own_gpus(alice, bob, eurostar):
    thalys = ServerFactory(name="thalys", gpus=1)
    book(alice, eurostar, "0", at(10), at(12))
    book(bob, thalys, "0", at(10), at(11))
    hours(thalys, 0, at(10), 1, active=60)

    servers = by_name(usage_report(one_day()).servers)

    assert (servers["eurostar"].booked, servers["eurostar"].used) == (pytest.approx(2.0), 0)
    assert (servers["thalys"].booked, servers["thalys"].used) == (pytest.approx(1.0), pytest.approx(0.25))
    assert servers["thalys"].util_mean == pytest.approx(50.0)


# --- groups ---------------------------------------------------------------------------------


def test_a_member_counts_in_each_of_their_groups_and_others_under_no_group(alice, bob, eurostar):
    vision, nlp = Group.objects.create(name="vision"), Group.objects.create(name="nlp")
    alice.groups.add(vision, nlp)
    carol = UserFactory(username="carol")
    carol.groups.add(vision)
    book(alice, eurostar, "0", at(10), at(12))
    book(carol, eurostar, "1", at(10), at(11))
    book(bob, eurostar, "0", at(14), at(15))
    hours(eurostar, 0, at(10), 2, active=240)

    groups = by_name(usage_report(one_day()).groups)

    assert set(groups) == {"vision", "nlp", NO_GROUP}
    assert (groups["vision"].booked, groups["vision"].used, groups["vision"].members) == (pytest.approx(3.0), pytest.approx(2.0), 2)
    assert (groups["nlp"].booked, groups["nlp"].used, groups["nlp"].members) == (pytest.approx(2.0), pytest.approx(2.0), 1)
    assert (groups[NO_GROUP].booked, groups[NO_GROUP].members) == (pytest.approx(1.0), 1)


def test_no_group_comes_last(alice, bob, eurostar):
    alice.groups.add(Group.objects.create(name="vision"))
    book(bob, eurostar, "0", at(8), at(16))
    book(alice, eurostar, "1", at(10), at(11))

    groups = usage_report(one_day()).groups

    assert [g.name for g in groups] == ["vision", NO_GROUP]


# --- idle bookings ------------------------------------------------------------------------------


def test_idle_bookings_rank_the_lowest_used_share_first(alice, bob, eurostar):
    busy = book(alice, eurostar, "0", at(8), at(10), purpose="busy")
    idle = book(bob, eurostar, "1", at(8), at(10), purpose="idle")
    half = book(alice, eurostar, "0", at(12), at(14), purpose="half")
    hours(eurostar, 0, at(8), 2, active=240)
    hours(eurostar, 1, at(8), 2, active=0, util=1)
    hours(eurostar, 0, at(12), 2, active=120)
    Alert.objects.create(
        kind=Alert.Kind.IDLE_BOOKING, key=f"idle:{idle.pk}", server=eurostar, booking=idle, user=bob,
        message="idle", opened_at=at(9), last_seen_at=at(9), resolved_at=at(10),
    )

    ranked = usage_report(one_day()).idle

    assert [b.booking_id for b in ranked] == [idle.pk, half.pk, busy.pk]
    first = ranked[0]
    assert (first.what, first.purpose, first.member, first.start, first.end) == ("eurostar:1", "idle", "bob", at(8), at(10))
    assert first.idle_alert and not ranked[1].idle_alert
    assert first.util_mean == pytest.approx(1.0)
    assert ranked[1].share == pytest.approx(0.5)


def test_idle_bookings_leave_out_short_ones_and_those_without_telemetry(alice, eurostar):
    book(alice, eurostar, "0", at(8), at(8, 30))  # half an hour
    book(alice, eurostar, "1", at(8), at(10))  # no rollups at all
    hours(eurostar, 0, at(8), 1, active=0)

    assert usage_report(one_day()).idle == []


# --- heat map -------------------------------------------------------------------------------


def test_heat_map_puts_a_bucket_in_the_members_local_weekday_and_hour(eurostar):
    # 03:00 UTC on Monday is 08:30 in Kolkata (UTC+5:30): Monday, hour 8.
    hours(eurostar, 0, at(3), 1, active=240, util=60)
    hours(eurostar, 1, at(3), 1, active=240, util=20)

    report = usage_report(one_day(zone=zoneinfo.ZoneInfo("Asia/Kolkata")))

    (row,) = report.heat
    assert row.server == "eurostar"
    assert row.utils[8] == pytest.approx(40.0)  # Monday 08:00, both GPUs
    assert [h for h, util in enumerate(row.utils) if util is not None] == [8]


def test_heat_map_follows_a_daylight_saving_change_in_the_period(eurostar):
    # Berlin moves from UTC+1 to UTC+2 at 01:00 UTC on Sunday 29 March 2026.
    zone = zoneinfo.ZoneInfo("Europe/Berlin")
    hours(eurostar, 0, datetime(2026, 3, 28, 9, tzinfo=UTC), 1, active=240, util=30)  # Saturday 10:00 local
    hours(eurostar, 0, datetime(2026, 3, 30, 9, tzinfo=UTC), 1, active=240, util=70)  # Monday 11:00 local

    period = Period.of(date(2026, 3, 27), date(2026, 3, 31), zone, datetime(2026, 4, 10, tzinfo=UTC))
    (row,) = usage_report(period).heat

    assert row.utils[5 * 24 + 10] == pytest.approx(30.0)
    assert row.utils[0 * 24 + 11] == pytest.approx(70.0)
    assert sum(util is not None for util in row.utils) == 2


def test_period_days_are_whole_days_in_the_zone():
    zone = zoneinfo.ZoneInfo("America/New_York")
    period = Period.of(date(2026, 3, 2), date(2026, 3, 3), zone, NOW)

    assert period.start == datetime(2026, 3, 2, 5, tzinfo=UTC)
    assert period.end == datetime(2026, 3, 4, 5, tzinfo=UTC)
    assert period.hours == 48


# --- the page -------------------------------------------------------------------------------------


@pytest.fixture
def member_client(client, alice):
    client.force_login(alice)
    return client


def usage_url(**query):
    from urllib.parse import urlencode

    return reverse("usage") + ("?" + urlencode(query) if query else "")


def test_the_page_needs_a_signed_in_member(client):
    response = client.get(reverse("usage"))

    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_the_page_shows_the_tables_for_the_period(member_client, alice, bob, eurostar):
    book(bob, eurostar, "1", at(8), at(10), purpose="bob's eval")
    hours(eurostar, 1, at(8), 2, active=0)

    response = member_client.get(usage_url(start=DAY.isoformat(), end=DAY.isoformat()))

    assert response.status_code == 200
    page = response.content.decode()
    for table in ("servers-table", "members-table", "groups-table", "idle-table", "heat-table"):
        assert f'id="{table}"' in page
    assert "eurostar:1" in page and reverse("booking-detail", args=[bob.bookings.get().pk]) in page
    assert 'id="usage-data"' in page and "chart.umd.min.js" in page
    assert f"start={DAY.isoformat()}&amp;end={DAY.isoformat()}&amp;by=member" in page


def test_the_page_of_a_lab_without_bookings_or_telemetry_says_so(member_client, eurostar):
    response = member_client.get(usage_url(start=DAY.isoformat(), end=DAY.isoformat()))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Nobody booked a GPU in this period." in page
    assert "No booking of an hour or more with telemetry in this period." in page
    assert page.count('title="Mon 00:00: no data"') == 1


def test_the_page_defaults_to_the_last_seven_days(member_client):
    response = member_client.get(reverse("usage"))

    today = timezone.localdate()
    period = response.context["period"]
    assert (period.first_day, period.last_day) == (today - timedelta(days=7), today)
    assert response.context["presets"][0]["current"]


@pytest.mark.parametrize(
    "query, message",
    [
        ({"start": "yesterday"}, "Write a date like"),
        ({"start": "2026-03-10", "end": "2026-03-02"}, "The end is before the start."),
        ({"start": "2025-01-01", "end": "2026-03-02"}, "at most 366 days"),
        ({"start": "2999-01-01", "end": "2999-01-02"}, "starts after today"),
        ({"start": "2026-02-30"}, "Write a date like"),
    ],
)
def test_bad_dates_give_an_inline_error_not_a_failure(member_client, query, message):
    response = member_client.get(usage_url(**query))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'role="alert"' in response.content.decode()


def test_a_whole_year_is_allowed(member_client):
    response = member_client.get(usage_url(start="2025-03-03", end="2026-03-03"))

    assert response.status_code == 200


def test_the_page_makes_the_same_few_queries_however_big_the_lab(member_client, django_assert_max_num_queries):
    servers = [ServerFactory(name=f"node{i}", gpus=4) for i in range(4)]
    members = [UserFactory(username=f"m{i}") for i in range(6)]
    for i, member in enumerate(members):
        member.groups.add(Group.objects.get_or_create(name=f"g{i % 3}")[0])
        for j, server in enumerate(servers):
            booking = book(member, server, str(i % 4), at(i * 3 + 1), at(i * 3 + 3))
            if j % 2:
                BookingUsage.objects.create(booking=booking, samples=10, gpu_util_mean=10.0, booked_gpu_hours=2.0,
                                            used_gpu_hours=0.5, source="raw", settled_at=at(23))
        for server in servers:
            hours(server, i % 4, at(i * 3 + 1), 2, active=100)
    Alert.objects.create(kind=Alert.Kind.IDLE_BOOKING, key="idle:x", server=servers[0],
                         booking=members[0].bookings.first(), message="idle", opened_at=at(2), last_seen_at=at(2))

    # Session, user, profile; booked, computed use, servers, heat, members, groups, describe (2).
    with django_assert_max_num_queries(11):
        response = member_client.get(usage_url(start=DAY.isoformat(), end=DAY.isoformat()))

    assert response.status_code == 200
    assert len(response.context["report"].members) == 6


def test_the_report_is_kept_for_a_few_minutes(member_client, alice, eurostar, settings, django_assert_max_num_queries):
    settings.USAGE_REPORT_CACHE_SECONDS = 300
    book(alice, eurostar, "0", at(10), at(12))
    url = usage_url(start=DAY.isoformat(), end=DAY.isoformat())
    member_client.get(url)
    book(alice, eurostar, "1", at(10), at(12))  # not seen until the kept report expires

    with django_assert_max_num_queries(3):  # session, user, profile
        response = member_client.get(url)

    assert response.context["report"].total.booked == pytest.approx(2.0)


def test_warming_computes_the_one_click_periods_before_anyone_asks(alice, eurostar, settings, django_assert_max_num_queries):
    from monitoring.analytics import Period, cached_usage_report, preset_periods, warm_usage_reports

    settings.USAGE_REPORT_CACHE_SECONDS = 300
    settings.TIME_ZONE = "UTC"
    today = NOW.date()
    book(alice, eurostar, "0", NOW - timedelta(days=2), NOW - timedelta(days=2) + timedelta(hours=3))

    assert warm_usage_reports(NOW) == 3

    _, _, first, last = preset_periods(today)[0]
    with django_assert_max_num_queries(0):
        report = cached_usage_report(Period.of(first, last, UTC, NOW))
    assert report.total.booked == pytest.approx(3.0)


def test_nothing_is_warmed_when_reports_are_not_kept(settings):
    from monitoring.analytics import warm_usage_reports

    settings.USAGE_REPORT_CACHE_SECONDS = 0

    assert warm_usage_reports(NOW) == 0


# --- the CSV ------------------------------------------------------------------------------------------


def csv_url(**query):
    from urllib.parse import urlencode

    return reverse("usage-csv") + "?" + urlencode(query)


def page_part(response, element_id):
    """The HTML of the element with this id up to the end of its section."""
    page = response.content.decode()
    start = page.index(f'id="{element_id}"')
    return page[start:page.index("</section>", start)]


def read_csv(response):
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_csv_by_member_has_a_header_and_a_row_per_member(member_client, alice, bob, eurostar):
    alice.groups.add(Group.objects.create(name="vision"))
    book(alice, eurostar, "0", at(10), at(12))
    book(bob, eurostar, "1", at(10), at(11))
    hours(eurostar, 0, at(10), 1, active=240)
    hours(eurostar, 0, at(11), 1, active=120)

    response = member_client.get(csv_url(start="2026-03-02", end="2026-03-02", by="member"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="labres-usage-2026-03-02-2026-03-02-member.csv"'
    assert read_csv(response) == [
        ["member", "username", "groups", "bookings", "booked_gpu_hours", "booked_used_gpu_hours", "booked_idle_gpu_hours", "used_share"],
        ["Alice Liddell", "alice", "vision", "1", "2.000", "1.500", "0.500", "0.750"],
        ["bob", "bob", "", "1", "1.000", "0.000", "1.000", "0.000"],
    ]


def test_csv_by_server_group_and_booking(member_client, alice, eurostar):
    booking = book(alice, eurostar, "0-1", at(10), at(11), purpose="=cmd|' /C calc'!A0")
    hours(eurostar, 0, at(10), 1, active=240, util=80)

    servers = read_csv(member_client.get(csv_url(start="2026-03-02", end="2026-03-02", by="server")))
    groups = read_csv(member_client.get(csv_url(start="2026-03-02", end="2026-03-02", by="group")))
    bookings = read_csv(member_client.get(csv_url(start="2026-03-02", end="2026-03-02", by="booking")))

    assert servers[1] == ["eurostar", "2", "48.000", "2.000", "1.000", "1.000", "0.500", "0.000", "80.000"]
    assert groups[1] == [NO_GROUP, "1", "1", "2.000", "1.000", "1.000", "0.500"]
    assert bookings[0][:8] == ["booking", "member", "username", "what", "purpose", "start", "end", "gpus"]
    assert bookings[1][:8] == [
        str(booking.pk), "Alice Liddell", "alice", "eurostar:0-1", "'=cmd|' /C calc'!A0",  # no formula for spreadsheets
        "2026-03-02T10:00+00:00", "2026-03-02T11:00+00:00", "2",
    ]
    assert bookings[1][8:] == ["2.000", "1.000", "1.000", "0.500", "80.000", "no"]


def test_csv_times_are_in_the_members_zone(member_client, alice, eurostar):
    alice.profile.time_zone = "Europe/Berlin"
    alice.profile.save()
    book(alice, eurostar, "0", at(10), at(11))

    rows = read_csv(member_client.get(csv_url(start="2026-03-02", end="2026-03-02", by="booking")))

    assert rows[1][5:7] == ["2026-03-02T11:00+01:00", "2026-03-02T12:00+01:00"]


@pytest.mark.parametrize(
    "query, message",
    [
        ({"start": "2026-03-02", "end": "2026-03-02", "by": "planet"}, "There is no “planet” breakdown"),
        ({"start": "2 March", "end": "2026-03-02"}, "Write a date like"),
        ({"start": "2026-03-05", "end": "2026-03-02"}, "The end is before the start."),
    ],
)
def test_csv_with_bad_parameters_is_a_400_with_a_message(member_client, query, message):
    response = member_client.get(csv_url(**query))

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert message in response.content.decode()


def test_csv_needs_a_signed_in_member(client):
    response = client.get(csv_url(by="member"))

    assert response.status_code == 302


def test_a_whole_server_booking_holds_every_gpu(alice, eurostar):
    services.create_booking(alice, start=at(10), end=at(12), server=eurostar.name, now=at(10))
    hours(eurostar, 1, at(10), 2, active=240)

    report = usage_report(one_day())

    (member,) = report.members
    assert (member.booked, member.used) == (pytest.approx(4.0), pytest.approx(2.0))
    assert report.idle[0].what == "eurostar (whole server)"


def test_many_bookings_to_compute_are_found_by_the_period_instead_of_ids(alice, bob, eurostar, monkeypatch):
    book(alice, eurostar, "0", at(10, 30), at(12))
    book(bob, eurostar, "1", at(22, day=DAY - timedelta(days=1)), at(1))
    hours(eurostar, 0, at(10), 2, active=240)
    hours(eurostar, 1, at(22, day=DAY - timedelta(days=1)), 3, active=120)
    by_ids = {m.username: (m.booked, m.used) for m in usage_report(one_day()).members}

    monkeypatch.setattr("monitoring.analytics.COMPUTE_BY_ID_AT_MOST", 0)
    by_period = {m.username: (m.booked, m.used) for m in usage_report(one_day()).members}

    assert by_period == by_ids == {"alice": (pytest.approx(1.5), pytest.approx(1.5)), "bob": (pytest.approx(1.0), pytest.approx(0.5))}
