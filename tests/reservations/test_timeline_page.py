"""The availability timeline (/timeline/): rows, bars, windows, navigation and its query count."""
from datetime import date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reservations import services
from reservations.models import Device, Room, Server
from reservations.timeline import Window, build_timeline, monday_of
from tests.factories import RoomFactory, ServerFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("lab_in_utc")]
H = timedelta(hours=1)
UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


def timeline(client, user, **query):
    client.force_login(user)
    return client.get("/timeline/", query)


def row(response, label):
    return next(r for r in response.context["timeline"].rows if r.label == label)


def shown(row):
    return [f"{bar.who} · {bar.purpose}" for bar in row.bars]


def test_timeline_needs_a_login(client):
    response = client.get("/timeline/")

    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_gpu_booking_shows_who_and_purpose_on_its_gpu_rows_only(client, alice, bob, thalys, book, monday):
    book(alice, monday + 10 * H, server="thalys", devices="2-3", purpose="training resnet")

    response = timeline(client, bob, date=monday.date().isoformat())

    assert shown(row(response, "thalys · GPU 2")) == ["Alice Liddell · training resnet"]
    assert shown(row(response, "thalys · GPU 3")) == ["Alice Liddell · training resnet"]
    assert shown(row(response, "thalys · GPU 1")) == []
    assert shown(row(response, "thalys (whole server)")) == []
    assert response.content.decode().count(">Alice Liddell · training resnet</a>") == 2  # one bar per row it holds


def test_whole_server_booking_shows_on_every_gpu_row_and_the_whole_server_row(client, alice, bob, thalys, book, monday):
    book(alice, monday + 10 * H, server="thalys", purpose="8-GPU DDP")

    response = timeline(client, bob, date=monday.date().isoformat())

    labels = [f"thalys · GPU {i}" for i in range(8)] + ["thalys (whole server)"]
    assert all(shown(row(response, label)) == ["Alice Liddell · 8-GPU DDP"] for label in labels)
    assert "whole server" in row(response, "thalys · GPU 5").bars[0].title


def test_room_booking_shows_on_the_room_row(client, alice, bob, room, book, monday):
    book(alice, monday + 10 * H, room=room, purpose="group meeting")

    response = timeline(client, bob, date=monday.date().isoformat())

    assert shown(row(response, "Lab 2")) == ["Alice Liddell · group meeting"]


def test_bar_title_holds_the_full_purpose_and_the_time_span(client, alice, bob, thalys, book, monday):
    purpose = "a long purpose that the bar itself cuts off with an ellipsis, but the tooltip keeps whole"
    book(alice, monday + 10 * H, hours=2, server="thalys", devices="0", purpose=purpose)

    response = timeline(client, bob, date=monday.date().isoformat())

    page = response.content.decode()
    assert f'title="Alice Liddell: {purpose}\n{monday + 10 * H:%a %d %b} 10:00–12:00 UTC"' in page


def test_own_bookings_carry_the_mine_marker_and_others_do_not(client, alice, bob, thalys, book, monday):
    book(alice, monday + 10 * H, server="thalys", devices="0", purpose="mine")
    book(bob, monday + 10 * H, server="thalys", devices="1", purpose="theirs")

    response = timeline(client, alice, date=monday.date().isoformat())

    mine, theirs = row(response, "thalys · GPU 0").bars[0], row(response, "thalys · GPU 1").bars[0]
    assert mine.mine and "★ Alice Liddell · mine" in mine.html and 'class="bar mine"' in mine.html
    assert not theirs.mine and "★" not in theirs.html and "mine" not in theirs.html
    assert response.content.decode().count('class="bar mine"') == 1


def test_cancelled_bookings_are_not_shown(client, alice, thalys, book, monday):
    booking = book(alice, monday + 10 * H, server="thalys", devices="0", purpose="called off")
    services.cancel_booking(booking, by=alice)

    response = timeline(client, alice, date=monday.date().isoformat())

    assert row(response, "thalys · GPU 0").bars == []
    assert "called off" not in response.content.decode()


def test_bars_are_placed_in_percent_of_the_week(client, alice, thalys, book, monday):
    book(alice, monday + 24 * H, hours=36, server="thalys", devices="0")  # Tuesday 00:00 to Wednesday 12:00

    bar = row(timeline(client, alice, date=monday.date().isoformat()), "thalys · GPU 0").bars[0]

    assert bar.left == pytest.approx(100 / 7)
    assert bar.width == pytest.approx(150 / 7)
    assert 'style="left:14.2857%;width:21.4286%"' in bar.html


def test_a_booking_crossing_the_window_edge_is_clipped_to_it(client, alice, thalys, book, monday):
    book(alice, monday - 2 * H, hours=4, server="thalys", devices="0")

    bar = row(timeline(client, alice, view="day", date=monday.date().isoformat()), "thalys · GPU 0").bars[0]

    assert bar.left == 0
    assert bar.width == pytest.approx(2 / 24 * 100)
    assert "cut-start" in bar.html and "cut-end" not in bar.html


def test_week_is_the_default_and_starts_on_the_monday_of_today(client, alice):
    response = timeline(client, alice)

    window = response.context["window"]
    today = timezone.localdate()
    assert window.view == "week"
    assert window.first_day == monday_of(today)
    assert window.end - window.start == 7 * 24 * H


def test_week_navigation_goes_a_week_back_and_forward_from_the_monday(client, alice):
    response = timeline(client, alice, view="week", date="2031-03-13")  # a Thursday

    assert response.context["window"].first_day == date(2031, 3, 10)
    assert response.context["previous_url"] == "/timeline/?view=week&date=2031-03-03"
    assert response.context["next_url"] == "/timeline/?view=week&date=2031-03-17"
    assert response.context["today_url"] == "/timeline/?view=week"
    assert 'href="/timeline/?view=week&amp;date=2031-03-17" rel="next"' in response.content.decode()


def test_day_navigation_goes_a_day_back_and_forward(client, alice):
    response = timeline(client, alice, view="day", date="2031-03-01")

    assert response.context["previous_url"] == "/timeline/?view=day&date=2031-02-28"
    assert response.context["next_url"] == "/timeline/?view=day&date=2031-03-02"
    assert [tick.label for tick in response.context["timeline"].ticks] == [f"{h:02d}" for h in range(24)]


def test_switching_view_keeps_the_day_shown(client, alice):
    response = timeline(client, alice, view="week", date="2031-03-13")

    assert response.context["day_url"] == "/timeline/?view=day&date=2031-03-10"
    assert response.context["week_url"] == "/timeline/?view=week&date=2031-03-10"


@pytest.mark.parametrize("bad", ["garbage", "2031-02-30", "0001-01-01", "9999-12-31", "2031-3-1x"])
def test_a_date_that_cannot_be_read_falls_back_to_today_with_a_note(client, alice, bad):
    response = timeline(client, alice, date=bad)

    assert response.status_code == 200
    assert response.context["window"].first_day == monday_of(timezone.localdate())
    assert "is not a date the timeline can show" in response.content.decode()


def test_an_unknown_view_falls_back_to_the_week_with_a_note(client, alice):
    response = timeline(client, alice, view="month<script>")

    assert response.status_code == 200
    assert response.context["window"].view == "week"
    page = response.content.decode()
    assert "There is no “month&lt;script&gt;” view" in page and "<script>" not in page.split("<main")[1].split("tl-scroll")[0]


def test_row_names_link_to_the_booking_form_for_their_unit_from_the_window_start(client, alice, thalys, room, monday):
    response = timeline(client, alice, date=monday.date().isoformat())

    start, end = f"{monday:%Y-%m-%d}T00:00", f"{monday:%Y-%m-%d}T01:00"
    for label, unit in [
        ("thalys · GPU 3", {"server": ["thalys"], "devices": ["3"]}),
        ("thalys (whole server)", {"server": ["thalys"], "devices": [""]}),
        ("Lab 2", {"room": ["Lab 2"]}),
    ]:
        link = urlsplit(row(response, label).book_url)
        assert link.path == "/book/"
        assert parse_qs(link.query, keep_blank_values=True) == {**unit, "start": [start], "end": [end]}


def test_row_names_book_from_the_next_half_hour_in_the_current_window(client, alice, thalys):
    response = timeline(client, alice)

    query = parse_qs(urlsplit(row(response, "thalys · GPU 0").book_url).query)
    start = datetime.strptime(query["start"][0], "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    assert start.minute in (0, 30)
    assert timezone.now() <= start <= timezone.now() + 30 * 60 * timedelta(seconds=1)


def test_rows_give_the_script_the_booking_form_and_each_units_parameters(client, alice, thalys, room):
    page = timeline(client, alice).content.decode()

    assert 'data-book="/book/"' in page
    assert 'data-tz="UTC"' in page
    assert 'data-q="server=thalys&amp;devices=3"' in page
    assert 'data-q="server=thalys&amp;devices="' in page
    assert 'data-q="room=Lab+2"' in page
    assert '<script src="/static/js/timeline.js" defer></script>' in page


def test_a_cpu_only_server_has_only_its_whole_server_row(client, alice):
    ServerFactory(name="ice", gpus=0)

    response = timeline(client, alice)

    (group,) = response.context["timeline"].groups
    assert [r.label for r in group.rows] == ["ice (whole server)"]
    assert group.rows[0].detail == "CPU only"


def test_rows_are_gpus_by_server_then_the_whole_server_then_rooms(client, alice):
    ServerFactory(name="zeta", gpus=2)
    ServerFactory(name="alpha", gpus=1)
    RoomFactory(name="Seminar room")
    Device.objects.filter(server__name="zeta", index=1).update(active=False)
    Server.objects.create(name="retired", active=False)
    Room.objects.create(name="Old lab", active=False)

    response = timeline(client, alice)

    assert [r.label for r in response.context["timeline"].rows] == [
        "alpha · GPU 0", "alpha (whole server)", "zeta · GPU 0", "zeta (whole server)", "Seminar room",
    ]


def test_the_now_line_is_drawn_only_in_the_current_window(client, alice, monday):
    current = timeline(client, alice).context["timeline"]
    later = timeline(client, alice, date=monday.date().isoformat()).context["timeline"]

    assert current.now_left is not None and 0 <= float(current.now_left) < 100
    assert later.now_left is None


def test_query_count_does_not_grow_with_servers_gpus_or_bookings(client, alice, bob, thalys, room, book, monday):
    book(alice, monday + 10 * H, server="thalys", devices="0")
    client.force_login(alice)
    url = f"/timeline/?date={monday.date().isoformat()}"
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(5):
        server = ServerFactory(gpus=8)
        user = UserFactory()
        for day in range(3):
            book(user, monday + (24 * day + 9) * H, hours=3, server=server, devices="0-2", purpose=f"run {n}.{day}")
            book(bob, monday + (24 * day + 14) * H, hours=2, server=server, purpose="whole")
        book(user, monday + (30 + n) * H, room=RoomFactory())
    ServerFactory(gpus=0)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert len(response.context["timeline"].rows) > 50
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def test_a_member_in_another_time_zone_sees_the_window_and_bars_in_that_zone(client, alice, bob, thalys, book, monday):
    new_york = ZoneInfo("America/New_York")
    alice.profile.time_zone = "America/New_York"
    alice.profile.save()
    start = monday + 3 * 24 * H + 14 * H  # Thursday 14:00 UTC
    book(bob, start, hours=2, server="thalys", devices="0", purpose="eval")
    local = start.astimezone(new_york)

    response = timeline(client, alice, view="day", date=local.date().isoformat())

    window = response.context["window"]
    assert window.start == datetime.combine(local.date(), datetime.min.time(), tzinfo=new_york)
    bar = row(response, "thalys · GPU 0").bars[0]
    assert f"{local:%H:%M}–{local + 2 * H:%H:%M} {local.tzname()}" in bar.title
    assert bar.left == pytest.approx((local.hour * 60 + local.minute) / (24 * 60) * 100)
    assert 'data-tz="America/New_York"' in response.content.decode()


def test_a_week_holding_the_end_of_summer_time_spans_169_hours(alice):
    window = Window.of("week", date(2030, 10, 23), BERLIN)  # Sunday 27 October 2030 has 25 hours

    assert window.first_day == date(2030, 10, 21)
    assert window.start == datetime(2030, 10, 21, tzinfo=BERLIN)
    assert window.end == datetime(2030, 10, 28, tzinfo=BERLIN)
    assert window.end - window.start == 169 * H


def test_a_dst_week_has_seven_day_ticks_with_a_longer_sunday(alice):
    data = build_timeline(alice, view="week", day=date(2030, 10, 23), zone=BERLIN)

    assert [tick.label for tick in data.ticks] == ["Mon 21 Oct", "Tue 22 Oct", "Wed 23 Oct", "Thu 24 Oct", "Fri 25 Oct", "Sat 26 Oct", "Sun 27 Oct"]
    assert float(data.ticks[-1].left) == pytest.approx(144 / 169 * 100, abs=1e-3)
    assert float(data.ticks[-1].width) == pytest.approx(25 / 169 * 100, abs=1e-3)


def test_a_dst_day_has_25_hour_ticks(alice):
    data = build_timeline(alice, view="day", day=date(2030, 10, 27), zone=BERLIN)

    assert [tick.label for tick in data.ticks][:5] == ["00", "01", "02", "02", "03"]
    assert len(data.ticks) == 25


def test_a_berlin_member_sees_a_dst_week_with_bars_placed_by_real_time(client, alice, thalys, book):
    alice.profile.time_zone = "Europe/Berlin"
    alice.profile.save()
    start = datetime(2030, 10, 27, 12, tzinfo=BERLIN)  # after the clocks went back: 11:00 UTC
    services.create_booking(alice, start=start, end=start + H, server="thalys", devices="0", now=start - 24 * H)  # booked the day before

    response = timeline(client, alice, date="2030-10-23")

    assert response.status_code == 200
    assert response.context["window"].end - response.context["window"].start == 169 * H
    bar = row(response, "thalys · GPU 0").bars[0]
    assert bar.left == pytest.approx(157 / 169 * 100)
    assert "12:00–13:00 CET" in bar.title


def test_markup_in_a_purpose_is_shown_as_text(client, alice, bob, thalys, book, monday):
    book(alice, monday + 10 * H, server="thalys", devices="0", purpose='<script>alert("hi")</script>')

    page = timeline(client, bob, date=monday.date().isoformat()).content.decode()

    assert '<script>alert("hi")</script>' not in page
    assert "&lt;script&gt;alert(&quot;hi&quot;)&lt;/script&gt;" in page


def test_a_released_booking_ends_where_it_was_released(client, alice, thalys, book, monday):
    booking = book(alice, monday + 10 * H, hours=4, server="thalys", devices="0")
    services.release_booking(booking, by=alice, now=monday + 11 * H)

    bar = row(timeline(client, alice, view="day", date=monday.date().isoformat()), "thalys · GPU 0").bars[0]

    assert bar.width == pytest.approx(100 / 24)


def test_a_booking_awaiting_approval_is_hatched_and_says_so(client, alice, bob, thalys, book, monday):
    thalys.requires_approval = True
    thalys.save()
    book(alice, monday + 10 * H, server="thalys", devices="2", purpose="big run")
    book(bob, monday + 14 * H, server="thalys", devices="2", purpose="eval", source="admin")  # staff made it: confirmed

    response = timeline(client, bob, date=monday.date().isoformat())

    bars = row(response, "thalys · GPU 2").bars
    assert [("pending" in bar.html, "awaiting approval" in bar.title) for bar in bars] == [(True, True), (False, False)]
