"""The demo's fake hosts follow the database: booked GPUs run their booker's jobs; one free GPU runs dave's."""
from datetime import timedelta

import pytest

from monitoring.demo_host import UNBOOKED_USER, fake_host_for
from monitoring.live import Match, live_hosts
from monitoring.sampler import read_host
from monitoring.services import record_reading
from tests.factories import ServerFactory

from .telemetry import running_booking

pytestmark = pytest.mark.django_db


def test_a_fake_host_has_the_servers_gpus_and_its_bookers_processes(alice, thalys):
    alice.profile.unix_username = "alice"
    alice.profile.save()
    booking = running_booking(alice, thalys, "0-1", started_ago=timedelta(minutes=5))

    reading = read_host(fake_host_for(thalys))

    assert len(reading.gpus) == 8
    assert [p.user for p in reading.gpus[0].processes] == ["alice"]
    assert [p.user for p in reading.gpus[7].processes] == [UNBOOKED_USER]  # the highest free GPU
    assert all(not g.processes for g in reading.gpus[2:7])
    busy = booking.pk % 5 != 0
    assert (reading.gpus[0].gpu_util >= 5) is busy  # one booking in five is left idle


def test_a_fake_host_keeps_the_registered_uuids(thalys):
    thalys.devices.filter(index=0).update(uuid="GPU-11111111-2222-3333-4444-555555555555")

    reading = read_host(fake_host_for(thalys))

    assert reading.gpus[0].uuid == "GPU-11111111-2222-3333-4444-555555555555"


def test_the_demo_shows_unbooked_use_on_a_big_server_only(alice):
    small = ServerFactory(name="small", gpus=2)
    big = ServerFactory(name="big", gpus=4)
    for server in (small, big):
        record_reading(server, read_host(fake_host_for(server)))

    matches = {host.name: [g.match for g in host.gpus] for host in live_hosts()}

    assert matches["small"] == [Match.FREE, Match.FREE]
    assert matches["big"] == [Match.FREE, Match.FREE, Match.FREE, Match.UNBOOKED]
