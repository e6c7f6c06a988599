import zoneinfo
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reservations import services
from tests.factories import ServerFactory, UserFactory

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


def test_now_page_needs_a_login(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_now_page_shows_who_holds_each_gpu_until_when_and_why(client, alice, bob, thalys, room):
    now = timezone.now()
    services.create_booking(alice, start=now, end=now + 2 * H, server="thalys", devices="0-1", purpose="training resnet")
    services.create_booking(bob, start=now + 3 * H, end=now + 4 * H, room=room)
    client.force_login(bob)

    page = client.get("/").content.decode()

    assert page.count("Alice Liddell until") == 2
    assert page.count("— training resnet") == 2
    assert "next: bob from" in page
    assert page.count('<span class="tag">free</span>') == 6 + 1  # GPUs 2-7, and the room (free now)


def test_now_page_shows_how_much_of_each_pool_is_booked_now(client, alice, bob, thalys):
    ServerFactory(name="big", gpus=2, cpu_cores=128, memory_gib=1024)
    ServerFactory(name="half", gpus=1, cpu_cores=None, memory_gib=512)
    now = timezone.now()
    services.create_booking(alice, start=now, end=now + 2 * H, server="big", cpu_cores=16, memory_gib=64)
    services.create_booking(bob, start=now, end=now + H, server="big", devices="0", cpu_cores=8)
    services.create_booking(bob, start=now + 3 * H, end=now + 4 * H, server="big", cpu_cores=100)  # later: not now
    services.create_booking(alice, start=now, end=now + H, server="half")  # the whole server: all its memory
    client.force_login(alice)

    page = client.get("/").content.decode()

    assert "CPU cores: 24 of 128 booked, 104 free" in page
    assert "Memory: 64 of 1024 GiB booked, 960 GiB free" in page
    assert '<meter min="0" max="128" value="24">' in page
    assert "Memory: 512 of 512 GiB booked, 0 GiB free" in page
    assert page.count("CPU cores:") == 1  # half declares no cores; thalys no pools


def test_now_page_marks_the_members_own_units(client, alice, thalys):
    now = timezone.now()
    services.create_booking(alice, start=now, end=now + H, server="thalys", devices="3")
    client.force_login(alice)

    page = client.get("/").content.decode()

    assert page.count('<span class="tag">you</span>') == 1
    assert 'class="unit mine"' in page


def test_now_page_lists_own_running_and_next_bookings_with_actions(client, alice, thalys, later):
    now = timezone.now()
    running = services.create_booking(alice, start=now, end=now + H, server="thalys", devices="0")
    upcoming = services.create_booking(alice, start=later, end=later + H, server="thalys", devices="1")
    client.force_login(alice)

    page = client.get("/").content.decode()

    assert f"/bookings/{running.pk}/release/" in page
    assert f"/bookings/{upcoming.pk}/release/" not in page  # only a running booking can be released
    assert page.count("Extend +1h") == 2


def test_now_panel_refreshes_itself(client, alice, thalys):
    client.force_login(alice)

    panel = client.get("/now/panel/").content.decode()

    assert panel.lstrip().startswith('<div id="now-panel"')
    assert 'hx-trigger="every 30s"' in panel
    assert "<html" not in panel


def test_now_page_shows_times_in_the_members_time_zone(client, alice, bob, thalys):
    start = timezone.now()
    services.create_booking(bob, start=start, end=start + H, server="thalys", devices="0")
    alice.profile.time_zone = "Asia/Tokyo"
    alice.profile.save()
    client.force_login(alice)

    page = client.get("/").content.decode()

    tokyo_end = (start + H).astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert f"until {tokyo_end:%a %d %b %H:%M}" in page
    assert "Asia/Tokyo" in page


def test_now_page_query_count_does_not_grow_with_servers_or_bookings(client, alice):
    client.force_login(alice)
    first = ServerFactory(gpus=4)
    now = timezone.now()
    services.create_booking(alice, start=now, end=now + H, server=first, devices="0")
    with CaptureQueriesContext(connection) as few:
        client.get("/")
    for _ in range(5):
        server = ServerFactory(gpus=8)
        now = timezone.now()
        services.create_booking(UserFactory(), start=now, end=now + H, server=server, devices="0")
        services.create_booking(alice, start=now + 2 * H, end=now + 3 * H, server=server, devices="1")
    with CaptureQueriesContext(connection) as many:
        client.get("/")
    assert len(many) == len(few)


def test_members_sign_in_and_land_on_the_now_page(client, alice):
    alice.set_password("s3cret-pass")
    alice.save()

    wrong = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    right = client.post("/accounts/login/", {"username": "alice", "password": "s3cret-pass"})

    assert wrong.status_code == 200 and "correct username and password" in wrong.content.decode()
    assert right.status_code == 302 and right["Location"] == "/"
