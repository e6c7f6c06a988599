"""reservations.queries: each query written as SQL gives what its ORM twin gives, on the same data."""
from datetime import timedelta

import pytest

from reservations import queries, services
from reservations.feeds import bump
from reservations.models import Booking, CalendarFeed
from tests.factories import RoomFactory, ServerFactory

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


@pytest.fixture
def lab(alice, bob, later):
    """Two servers with pooled capacities, a room, and bookings of every shape: GPUs, whole servers,
    shares alone, a room, a released and a cancelled one, a retired GPU."""
    thalys = ServerFactory(name="thalys", gpus=4, cpu_cores=64, memory_gib=512)
    orion = ServerFactory(name="Orion", gpus=2)
    room = RoomFactory(name="Lab 2")
    book = services.create_booking
    bookings = [
        book(alice, server=thalys, devices="0-1", cpu_cores=8, start=later, end=later + 2 * H),
        book(alice, server=thalys, devices="2", start=later + H, end=later + 3 * H),
        book(alice, server=orion, start=later + 2 * H, end=later + 4 * H),
        book(bob, server=thalys, memory_gib=64, start=later, end=later + H),
        book(bob, server=thalys, devices="3", start=later + 5 * H, end=later + 6 * H),
        book(alice, room=room, start=later, end=later + H),
        book(alice, server=orion, devices="0", start=later + 8 * H, end=later + 9 * H),
        book(bob, server=thalys, start=later + 10 * H, end=later + 11 * H),
    ]
    Booking.objects.filter(pk=bookings[4].pk).update(status=Booking.Status.CANCELLED)
    Booking.objects.filter(pk=bookings[6].pk).update(status=Booking.Status.RELEASED)
    thalys.devices.filter(index=3).update(active=False)
    return {"thalys": thalys, "orion": orion, "room": room, "bookings": bookings}


def described(units):
    assert len({id(unit.server) for unit in units}) <= 1  # one server instance for all
    return sorted(
        (
            unit.pk, unit.kind, unit.server_id, unit.server.pk, unit.server.name, unit.server.active, unit.server.cpu_cores,
            unit.server.memory_gib, unit.server.requires_approval, unit.device_id,
            unit.device and (unit.device.pk, unit.device.index, unit.device.active, unit.device.server is unit.server),
        )
        for unit in units
    )


@pytest.mark.parametrize(
    "server, indices, count",
    [
        ("thalys", None, 5), ("THALYS ", [0, 2], 2), ("thalys", [3], 1), ("thalys", [0, 9], 1), ("thalys", [], 0),
        ("orion", None, 3), ("nowhere", None, 0), ("nowhere", [0], 0),
    ],
)
def test_server_units_equal_their_orm_twin(lab, server, indices, count):
    units = queries.server_units(server, indices)
    assert described(units) == described(queries.server_units_orm(server, indices))
    assert len(units) == count


def test_server_units_by_object_equal_their_orm_twin(lab):
    units = queries.server_units(lab["orion"], [0, 1])
    assert described(units) == described(queries.server_units_orm(lab["orion"], [0, 1]))
    assert [unit.device.index for unit in sorted(units, key=lambda unit: unit.device.index)] == [0, 1]


@pytest.mark.parametrize("exclude", [None, 0, 2])
@pytest.mark.parametrize("hours", [(0, 1), (-24, 24), (1, 2), (3, 8), (20, 30)])
def test_member_holds_equal_their_orm_twin(lab, alice, bob, later, exclude, hours):
    excluded = lab["bookings"][exclude] if exclude is not None else None
    since, until = (later + hours[0] * H).timestamp(), (later + hours[1] * H).timestamp()
    for user in (alice, bob):
        holds = sorted(queries.member_holds(user, since, until, excluded))
        assert holds == sorted(queries.member_holds_orm(user, since, until, excluded))


def test_member_holds_count_gpus_less_a_whole_servers_own_unit(lab, alice, bob, later):
    whole_day = (later - 24 * H).timestamp(), (later + 24 * H).timestamp()
    orion = lab["orion"].pk
    assert sorted(queries.member_holds(alice, *whole_day, None), key=lambda hold: hold[1]) == [
        (lab["thalys"].pk, later.timestamp(), (later + 2 * H).timestamp(), 2),
        (lab["thalys"].pk, (later + H).timestamp(), (later + 3 * H).timestamp(), 1),
        (orion, (later + 2 * H).timestamp(), (later + 4 * H).timestamp(), 2),
        (orion, (later + 8 * H).timestamp(), (later + 9 * H).timestamp(), 1),
    ]
    assert queries.member_holds_orm(bob, *whole_day, None) == [(lab["thalys"].pk, (later + 10 * H).timestamp(), (later + 11 * H).timestamp(), 4)]


@pytest.mark.parametrize("exclude", [None, 0, 3])
@pytest.mark.parametrize("hours", [(0, 1), (-24, 24), (1, 2), (6, 12)])
def test_server_shares_equal_their_orm_twin(lab, later, exclude, hours):
    excluded = lab["bookings"][exclude] if exclude is not None else None
    since, until = later + hours[0] * H, later + hours[1] * H
    for server in (lab["thalys"], lab["orion"]):
        shares = sorted(queries.server_shares(server, since, until, excluded))
        assert shares == sorted(queries.server_shares_orm(server, since, until, excluded))
        assert all(share.start.utcoffset() == timedelta(0) for share in shares)


def test_server_shares_are_the_bookings_taking_capacity(lab, later):
    shares = sorted(queries.server_shares(lab["thalys"], later - 24 * H, later + 24 * H, None))
    assert shares == [
        queries.Share(later, later + H, False, 0, 64),
        queries.Share(later, later + 2 * H, False, 8, 0),
        queries.Share(later + 10 * H, later + 11 * H, True, 0, 0),
    ]


@pytest.fixture
def feeds(lab, alice, bob):
    return [
        CalendarFeed.objects.create(user=alice, scope=CalendarFeed.Scope.MINE),
        CalendarFeed.objects.create(user=bob, scope=CalendarFeed.Scope.MINE),
        CalendarFeed.objects.create(user=alice, scope=CalendarFeed.Scope.LAB),
        CalendarFeed.objects.create(user=alice, scope=CalendarFeed.Scope.SERVER, server=lab["thalys"]),
        CalendarFeed.objects.create(user=bob, scope=CalendarFeed.Scope.ROOM, room=lab["room"]),
    ]


@pytest.mark.parametrize("stamped", [False, True])
@pytest.mark.parametrize("history_hours, keep_hours", [(-48, -48), (3, -48), (-48, 48), (30, 30)])
def test_feed_counts_equal_their_orm_twin(feeds, later, stamped, history_hours, keep_hours):
    if stamped:
        bump(now=later - H)
    history, keep_cancelled = later + history_hours * H, later + keep_hours * H
    for feed in feeds:
        assert queries.feed_counts(feed, history, keep_cancelled) == queries.feed_counts_orm(feed, history, keep_cancelled)


def test_feed_counts_count_the_feeds_bookings_and_read_the_stamp(lab, feeds, later):
    bump(now=later - H)
    latest = max(booking.updated_at for booking in Booking.objects.filter(user=lab["bookings"][0].user))
    count, newest, number, changed = queries.feed_counts(feeds[0], later - 48 * H, later + 48 * H)
    assert (count, newest, number, changed) == (5, latest, 1, later - H)  # alice's 5, one of them released


@pytest.mark.parametrize("active", [True, False])
def test_active_feed_equals_its_orm_twin(feeds, active):
    feed = feeds[1]
    feed.user.is_active = active
    feed.user.save()
    for selector in (feed.selector, feeds[0].selector, "nosuchselect"):
        found, twin = queries.active_feed(selector), queries.active_feed_orm(selector)
        assert (found and found.pk, found and found.secret) == (twin and twin.pk, twin and twin.secret)
    assert (queries.active_feed(feed.selector) is not None) == active

