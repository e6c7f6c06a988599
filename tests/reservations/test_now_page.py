from datetime import timedelta

import pytest
from django.test.utils import CaptureQueriesContext
from django.db import connection
from django.utils import timezone

from reservations import services
from tests.factories import ServerFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_now_page_needs_a_login(client):
    response = client.get("/")

    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_now_page_shows_who_holds_each_gpu(client, alice, bob, thalys, room):
    now = timezone.now()
    services.create_booking(alice, start=now, end=now + timedelta(hours=2), server="thalys", devices="0-1", purpose="training resnet")
    services.create_booking(bob, start=now + timedelta(hours=3), end=now + timedelta(hours=4), room=room)
    client.force_login(bob)

    page = client.get("/").content.decode()

    assert page.count("alice until") == 2
    assert "training resnet" in page
    assert "next: bob" in page
    assert page.count("· free") == 6 + 1  # GPUs 2-7 and the room (booked later, free now)


def test_now_page_query_count_does_not_grow_with_servers(client, alice):
    client.force_login(alice)
    ServerFactory(gpus=4)
    with CaptureQueriesContext(connection) as few:
        client.get("/")
    for _ in range(5):
        server = ServerFactory(gpus=8)
        now = timezone.now()
        services.create_booking(UserFactory(), start=now, end=now + timedelta(hours=1), server=server, devices="0")
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
