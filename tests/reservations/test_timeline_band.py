"""The timeline's usage band: how much of a server's pooled CPU cores and memory is booked, over the window."""
from datetime import UTC, date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st

from reservations.timeline import ServerGroup, Window, _steps
from tests.factories import ServerFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("lab_in_utc")]
H = timedelta(hours=1)


@pytest.fixture
def pool(db):
    """A CPU server with 128 cores and 1 TiB to share, and no GPUs."""
    return ServerFactory(name="pool", gpus=0, cpu_cores=128, memory_gib=1024)


def band_of(client, user, monday, name, view="week"):
    client.force_login(user)
    response = client.get("/timeline/", {"date": monday.date().isoformat(), "view": view})
    assert response.status_code == 200
    group = next(g for g in response.context["timeline"].groups if g.name == name)
    return group.band, response.content.decode()


def test_overlapping_shares_add_up_into_steps_with_their_amounts_and_times(client, alice, bob, pool, book, monday):
    book(alice, monday + 14 * H, hours=2, server="pool", cpu_cores=32, memory_gib=256)
    book(bob, monday + 15 * H, hours=2, server="pool", cpu_cores=16)

    band, html = band_of(client, alice, monday, "pool", view="day")

    assert [(s.cpu_cores, s.memory_gib) for s in band.steps] == [(32, 256), (48, 256), (16, 0)]
    assert [s.text for s in band.steps] == [
        f"32 of 128 cores, 256 of 1024 GiB booked, {monday:%a %d %b} 14:00–15:00 UTC",
        f"48 of 128 cores, 256 of 1024 GiB booked, {monday:%a %d %b} 15:00–16:00 UTC",
        f"16 of 128 cores, 0 of 1024 GiB booked, {monday:%a %d %b} 16:00–17:00 UTC",
    ]
    # Placed by time in the day: 14:00 is 58.3333 % of it, one hour is 4.1667 %.
    assert [round(s.left, 4) for s in band.steps] == [58.3333, 62.5, 66.6667]
    assert "48 of 128 cores, 256 of 1024 GiB booked" in html
    # 48 of 128 cores and 256 of 1024 GiB: filled that far, and the amount written in the step.
    assert f'style="left:62.5%;width:4.1667%;--fill:37.5%" title="{band.steps[1].text}">48</span>' in html
    assert f'style="left:62.5%;width:4.1667%;--fill:25%" title="{band.steps[1].text}">256</span>' in html


def test_the_band_has_a_text_alternative_listing_every_step(client, alice, pool, book, monday):
    book(alice, monday + 9 * H, hours=1, server="pool", memory_gib=64)

    band, html = band_of(client, alice, monday, "pool")

    assert f'<ul class="vh" aria-label="CPU cores and memory booked on pool"><li>0 of 128 cores, 64 of 1024 GiB booked, {monday:%a %d %b} 09:00–10:00 UTC</li></ul>' in html
    assert 'class="tl-lane cores" aria-hidden="true"' in html


def test_a_whole_server_booking_takes_all_of_the_pool_and_is_marked_full(client, alice, bob, book, monday):
    ServerFactory(name="mixed", gpus=2, cpu_cores=64, memory_gib=512)
    book(alice, monday + 10 * H, hours=1, server="mixed", devices="0", cpu_cores=8)
    book(bob, monday + 12 * H, hours=1, server="mixed", purpose="everything")

    band, html = band_of(client, alice, monday, "mixed")

    assert [(s.cpu_cores, s.memory_gib) for s in band.steps] == [(8, 0), (64, 512)]
    assert html.count('class="use full"') == 2  # both lanes of the whole-server step


def test_gpu_only_bookings_and_cancelled_shares_leave_the_band_empty(client, alice, pool, book, monday):
    ServerFactory(name="mixed", gpus=2, cpu_cores=64, memory_gib=None)
    book(alice, monday + 10 * H, server="mixed", devices="0-1")
    from reservations import services

    services.cancel_booking(book(alice, monday + 10 * H, server="pool", cpu_cores=4), by=alice)

    band, html = band_of(client, alice, monday, "mixed")
    pool_band, _ = band_of(client, alice, monday, "pool")

    assert band.steps == [] and pool_band.steps == []
    assert band.capacity == "64 cores"  # memory is not pooled there: one lane
    assert "Nothing booked in this window." in html


def test_back_to_back_shares_of_the_same_amount_make_one_step(client, alice, bob, pool, book, monday):
    book(alice, monday + 10 * H, hours=1, server="pool", cpu_cores=16)
    book(bob, monday + 11 * H, hours=1, server="pool", cpu_cores=16)

    band, _ = band_of(client, alice, monday, "pool", view="day")

    assert [(s.cpu_cores, round(s.width, 4)) for s in band.steps] == [(16, 8.3333)]


def test_a_share_crossing_the_window_edge_is_cut_to_the_window(client, alice, pool, book, monday):
    book(alice, monday + 22 * H, hours=4, server="pool", cpu_cores=8)

    band, _ = band_of(client, alice, monday, "pool", view="day")

    assert len(band.steps) == 1
    assert round(band.steps[0].left + band.steps[0].width, 4) == 100
    # The text says the part inside the window: up to the end of the day shown.
    assert band.steps[0].text.endswith(f"22:00–{monday + 24 * H:%a %d %b} 00:00 UTC")


def test_servers_without_pooled_capacities_have_no_band(client, alice, thalys, monday):
    band, html = band_of(client, alice, monday, "thalys")

    assert band is None
    assert "tl-band" not in html


def test_band_queries_do_not_grow_with_servers_or_bookings(client, alice, pool, book, monday):
    book(alice, monday + 10 * H, server="pool", cpu_cores=8)
    client.force_login(alice)
    url = f"/timeline/?date={monday.date().isoformat()}"
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(6):
        server = ServerFactory(gpus=2, cpu_cores=32 + n, memory_gib=256)
        user = UserFactory()
        for day in range(3):
            book(user, monday + (24 * day + 9) * H, hours=3, server=server, devices="0", cpu_cores=4, memory_gib=16)
            book(user, monday + (24 * day + 14) * H, hours=2, server=server, memory_gib=32)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    bands = [group.band for group in response.context["timeline"].groups if group.band]
    assert len(bands) == 7 and all(len(band.steps) == (6 if band.server != "pool" else 1) for band in bands)
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


# --- the sweep, against summing every share at each instant ----------------------------------

shares_strategy = st.lists(
    st.tuples(st.integers(0, 24 * 4 - 1), st.integers(1, 24 * 4), st.integers(0, 64), st.integers(0, 512)),
    max_size=12,
)


@given(shares_strategy)
@settings(max_examples=200, deadline=None)
def test_band_steps_equal_the_sum_of_the_shares_at_every_instant(raw):
    window = Window.of("day", date(2026, 11, 23), UTC)
    quarter = timedelta(minutes=15)
    shares = []
    for first, length, cores, memory in raw:
        start = window.start + first * quarter
        shares.append((start, min(start + length * quarter, window.end), cores, memory))
    group = ServerGroup(name="pool", location="", cpu_cores=128, memory_gib=1024)

    steps = _steps(window, group, shares)

    def load(moment):
        held = [(c, m) for a, b, c, m in shares if a <= moment < b]
        return sum(c for c, _ in held), sum(m for _, m in held)

    for index in range(24 * 4):
        moment = window.start + index * quarter + quarter / 2  # inside one quarter hour
        where = window.position(moment)
        covering = [step for step in steps if step.left <= where < step.left + step.width]
        expected = load(moment)
        if expected == (0, 0):
            assert covering == []
        else:
            assert [(step.cpu_cores, step.memory_gib) for step in covering] == [expected]
    # Steps are in order, do not overlap, and two touching steps differ (else they would be one).
    for before, after in zip(steps, steps[1:]):
        assert before.left + before.width <= after.left + 1e-9
        if abs(before.left + before.width - after.left) < 1e-9:
            assert (before.cpu_cores, before.memory_gib) != (after.cpu_cores, after.memory_gib)
