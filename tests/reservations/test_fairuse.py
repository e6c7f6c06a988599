"""Fair use: groups with inherited limits, personal overrides, and every limit at its boundary."""
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, strategies as st
from django.urls import reverse

from reservations import services
from reservations.services import fairuse
from reservations.errors import AccessDenied, LimitExceeded
from reservations.models import Limit, MemberGroup, Profile
from tests.factories import ServerFactory, UserFactory

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


@pytest.fixture
def everyone(db):
    return MemberGroup.objects.create(name="Everyone")


@pytest.fixture
def students(everyone):
    return MemberGroup.objects.create(name="Students", parent=everyone)


@pytest.fixture
def student(alice, students):
    Profile.objects.update_or_create(user=alice, defaults={"group": students})
    return alice


@pytest.fixture
def nyx(db):
    return ServerFactory(name="nyx", gpus=8)


def limit(kind, *, group=None, user=None, **values):
    item = Limit(kind=kind, group=group, user=user, **values)
    item.full_clean()
    item.save()
    return item


def book(user, server, devices, start, hours=1, **extra):
    return services.create_booking(user, server=server, devices=devices, start=start, end=start + hours * H, **extra)


# --- which limit holds --------------------------------------------------------------------


def test_a_group_inherits_its_parents_limits_and_overrides_them(student, everyone, students, thalys):
    limit(Limit.Kind.MAX_GPUS, group=everyone, number=8)
    limit(Limit.Kind.MAX_LENGTH, group=everyone, duration="1d")
    limit(Limit.Kind.MAX_GPUS, group=students, number=4)

    rules = fairuse.rules_for(student, server=thalys)

    assert rules[Limit.Kind.MAX_GPUS].limit.number == 4 and rules[Limit.Kind.MAX_GPUS].source == "Students"
    assert rules[Limit.Kind.MAX_LENGTH].source == "Everyone (which Students is part of)"


def test_a_personal_override_beats_the_group_and_a_servers_rule_beats_a_general_one(student, students, thalys, nyx):
    limit(Limit.Kind.MAX_GPUS, group=students, number=4)
    limit(Limit.Kind.MAX_GPUS, group=students, number=2, server=thalys)
    assert fairuse.rules_for(student, server=thalys)[Limit.Kind.MAX_GPUS].limit.number == 2
    assert fairuse.rules_for(student, server=nyx)[Limit.Kind.MAX_GPUS].limit.number == 4

    limit(Limit.Kind.MAX_GPUS, user=student, number=6)
    rule = fairuse.rules_for(student, server=thalys)[Limit.Kind.MAX_GPUS]
    assert rule.limit.number == 6 and rule.source == "You (personal limit)"


def test_staff_are_exempt_unless_a_limit_says_otherwise(staff, everyone, thalys, later):
    Profile.objects.update_or_create(user=staff, defaults={"group": everyone})
    limit(Limit.Kind.MAX_GPUS, group=everyone, number=1)
    assert book(staff, thalys, "0-3", later).pk

    limit(Limit.Kind.MAX_LENGTH, group=everyone, duration="2h", applies_to_staff=True)
    with pytest.raises(LimitExceeded, match="Everyone may book at most 2h at a time; this booking would last 3h"):
        book(staff, thalys, "4", later, hours=3)


def test_members_without_a_group_or_limits_book_as_before(bob, thalys, later):
    assert book(bob, thalys, "0-7", later, hours=20).pk


def test_a_limit_is_checked_for_its_kind_of_value(students, thalys):
    with pytest.raises(ValidationError, match="number of GPUs"):
        limit(Limit.Kind.MAX_GPUS, group=students)
    with pytest.raises(ValidationError, match="not a duration"):
        limit(Limit.Kind.MAX_LENGTH, group=students, duration="forever")
    with pytest.raises(ValidationError):
        Limit(kind=Limit.Kind.MAX_GPUS, number=1).full_clean()  # neither a group nor a member


def test_a_group_cannot_descend_from_itself(everyone, students):
    everyone.parent = students
    with pytest.raises(ValidationError, match="own ancestor"):
        everyone.full_clean()


# --- each limit at its boundary -------------------------------------------------------------


def test_most_gpus_at_once_counts_what_the_member_holds_at_the_same_time(student, students, thalys, nyx, later):
    limit(Limit.Kind.MAX_GPUS, group=students, number=4)
    book(student, thalys, "0-2", later, hours=2)

    assert book(student, nyx, "0", later + H).pk  # 3 + 1 = 4: at the limit
    with pytest.raises(LimitExceeded) as refused:
        book(student, nyx, "1-2", later + H)
    message = str(refused.value)
    assert message.startswith("Students may hold at most 4 GPUs at once; you hold 4 from ")
    assert message.endswith(" and asked for 2.")
    assert refused.value.field == "devices"
    # Back to back is not at once: the thalys booking ends when this one starts.
    assert book(student, nyx, "1-3", later + 2 * H).pk


def test_at_once_is_exact_to_the_microsecond(student, students, thalys, nyx, later):
    """Times with microseconds (an early release ends 'now'): back to back is not at once; one microsecond earlier is."""
    limit(Limit.Kind.MAX_GPUS, group=students, number=4)
    edge = later + timedelta(minutes=7, seconds=3, microseconds=123457)
    services.create_booking(student, server=thalys, devices="0-2", start=later, end=edge)
    book(student, nyx, "0", edge)

    with pytest.raises(LimitExceeded, match="you hold 3 from "):
        services.create_booking(student, server=nyx, devices="1-2", start=edge - timedelta(microseconds=1), end=edge + H)
    assert services.create_booking(student, server=nyx, devices="1-3", start=edge, end=edge + H).pk


def test_gpu_hours_in_a_week_reach_the_limit_exactly(student, students, thalys, nyx, later):
    limit(Limit.Kind.GPU_HOURS_WEEK, group=students, number=10)
    odd = later + timedelta(seconds=17, microseconds=250001)
    book(student, thalys, "0-1", odd, hours=3)  # 6 GPU-hours
    assert book(student, nyx, "0-1", odd + 5 * H, hours=2).pk  # 10: at the limit, odd times and all
    with pytest.raises(LimitExceeded, match="at most 10 GPU-hours in any 7 days"):
        services.create_booking(student, server=nyx, devices="2", start=odd + 8 * H, end=odd + 8 * H + timedelta(seconds=1))


def test_a_whole_server_counts_all_its_gpus(student, students, thalys, later):
    limit(Limit.Kind.MAX_GPUS, group=students, number=4)
    with pytest.raises(LimitExceeded, match="you asked for 8"):
        services.create_booking(student, server=thalys, start=later, end=later + H)


def test_a_servers_gpu_limit_counts_only_that_server(student, students, thalys, nyx, later):
    limit(Limit.Kind.MAX_GPUS, group=students, number=2, server=thalys)
    book(student, nyx, "0-5", later)
    assert book(student, thalys, "0-1", later).pk
    with pytest.raises(LimitExceeded, match="at most 2 GPUs at once on server thalys"):
        book(student, thalys, "2", later)


def test_longest_booking(student, students, thalys, later):
    limit(Limit.Kind.MAX_LENGTH, group=students, duration="4h")
    assert book(student, thalys, "0", later, hours=4).pk
    with pytest.raises(LimitExceeded, match="Students may book at most 4h at a time; this booking would last 4h1m"):
        services.create_booking(student, server=thalys, devices="1", start=later, end=later + 4 * H + timedelta(minutes=1))


def test_how_far_ahead(student, students, thalys, later):
    limit(Limit.Kind.MAX_AHEAD, group=students, duration="7d")
    now = later - timedelta(days=7)
    assert book(student, thalys, "0", later, now=now).pk
    with pytest.raises(LimitExceeded, match="at most 7d ahead; this booking starts in 7d1m"):
        book(student, thalys, "1", later + timedelta(minutes=1), now=now)


def test_gpu_hours_in_any_rolling_week(student, students, thalys, later):
    limit(Limit.Kind.GPU_HOURS_WEEK, group=students, number=10)
    book(student, thalys, "0-1", later, hours=4)  # 8 GPU-hours
    assert book(student, thalys, "2-3", later + timedelta(days=3), hours=1).pk  # 10: at the limit
    with pytest.raises(LimitExceeded, match=r"at most 10 GPU-hours in any 7 days; with this booking \(1 GPU-hours\) you would have 11"):
        book(student, thalys, "4", later + timedelta(days=6), hours=1)
    # Eight days after the first booking, the window has moved past it.
    assert book(student, thalys, "4", later + timedelta(days=7, hours=4), hours=1).pk


def test_a_group_may_be_kept_off_a_server_but_let_on_another(student, students, thalys, nyx, room, later):
    limit(Limit.Kind.ACCESS, group=students, allowed=False)
    limit(Limit.Kind.ACCESS, group=students, allowed=True, server=nyx)
    with pytest.raises(AccessDenied, match="Students may not book server thalys; ask staff"):
        book(student, thalys, "0", later)
    with pytest.raises(AccessDenied, match="Students may not book room Lab 2"):
        services.create_booking(student, room=room, start=later, end=later + H)
    assert book(student, nyx, "0", later).pk


def test_changing_or_extending_a_booking_keeps_it_within_the_limits(student, students, thalys, later):
    limit(Limit.Kind.MAX_LENGTH, group=students, duration="3h")
    limit(Limit.Kind.MAX_GPUS, group=students, number=4)
    booking = book(student, thalys, "0-3", later, hours=2)
    # Its own GPUs do not count against its new times.
    booking = services.extend_booking(booking, by=student, duration="1h")
    with pytest.raises(LimitExceeded, match="at most 3h at a time"):
        services.extend_booking(booking, by=student, duration="1m")
    book(student, thalys, "4", later + 4 * H)
    with pytest.raises(LimitExceeded, match="at most 4 GPUs at once"):
        services.change_booking(booking, by=student, start=later + 3 * H, end=later + 5 * H)


def test_staff_moving_a_members_booking_keep_the_members_limits(student, students, staff, thalys, later):
    limit(Limit.Kind.MAX_LENGTH, group=students, duration="2h")
    booking = book(student, thalys, "0", later)
    with pytest.raises(LimitExceeded, match="Students may book at most 2h"):
        services.change_booking(booking, by=staff, end=later + 3 * H)


@pytest.fixture
def student_bob(bob, students):
    Profile.objects.update_or_create(user=bob, defaults={"group": students})
    return bob


@pytest.mark.parametrize("owner", ["group", "personal"])
def test_staff_moving_or_extending_a_members_booking_read_the_members_name(student_bob, students, staff, thalys, later, owner):
    limit(Limit.Kind.MAX_GPUS, **({"group": students} if owner == "group" else {"user": student_bob}), number=4)
    source = "Students" if owner == "group" else "bob (personal limit)"
    book(student_bob, thalys, "0-3", later)
    before = book(student_bob, thalys, "4-5", later - H)
    after = book(student_bob, thalys, "4-5", later + 2 * H)

    with pytest.raises(LimitExceeded) as extended:
        services.extend_booking(before, by=staff, duration="1h")
    with pytest.raises(LimitExceeded) as moved:
        services.change_booking(after, by=staff, start=later + H / 2)

    for refusal in (extended.value, moved.value):
        assert f"{source} may hold at most 4 GPUs at once; bob holds 4 " in refusal.message
        assert refusal.message.endswith(" and this booking asks for 2.")
        assert "you" not in refusal.message.lower()


def test_staff_stretching_a_members_booking_past_the_weekly_limit_read_the_members_name(student_bob, students, staff, thalys, later):
    limit(Limit.Kind.GPU_HOURS_WEEK, group=students, number=4)
    booking = book(student_bob, thalys, "0-1", later)
    with pytest.raises(LimitExceeded) as refused:
        services.extend_booking(booking, by=staff, duration="2h")
    assert "with this booking (6 GPU-hours) bob would have 6 in the 7 days from" in refused.value.message
    with pytest.raises(LimitExceeded, match=r"\(6 GPU-hours\) you would have 6 in"):
        services.extend_booking(booking, by=student_bob, duration="2h")


def test_staff_adding_a_booking_for_a_member_in_the_admin_read_the_members_name(staff_client, student_bob, students, thalys, later):
    from tests.reservations.test_admin import ADD_URL, add_data

    limit(Limit.Kind.MAX_GPUS, group=students, number=4)
    book(student_bob, thalys, "0-3", later)

    response = staff_client.post(ADD_URL, add_data(student_bob, later, later + H, server=thalys, devices="4-5"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Students may hold at most 4 GPUs at once; bob holds 4 " in page
    assert "and this booking asks for 2." in page
    assert "you hold" not in page
    assert student_bob.bookings.count() == 1


def test_a_member_booking_for_themself_still_reads_you(student_bob, students, thalys, later):
    limit(Limit.Kind.MAX_GPUS, group=students, number=4)
    book(student_bob, thalys, "0-3", later)
    with pytest.raises(LimitExceeded, match=r"Students may hold at most 4 GPUs at once; you hold 4 .* and asked for 2\.$"):
        services.create_booking(student_bob, server=thalys, devices="4-5", start=later, end=later + H, by=student_bob)
    with pytest.raises(LimitExceeded, match=r"; you hold 4 .* and asked for 2\.$"):
        book(student_bob, thalys, "4-5", later)


# --- surfaces --------------------------------------------------------------------------------


def test_the_api_answers_409_with_the_limit(client, student, students, thalys, later):
    from rest_framework.test import APIClient

    limit(Limit.Kind.MAX_GPUS, group=students, number=2)
    api = APIClient()
    api.force_authenticate(student)
    response = api.post(
        "/api/v1/bookings/", {"server": "thalys", "devices": "0-2", "start": later.isoformat(), "end": (later + H).isoformat()}, format="json"
    )
    assert response.status_code == 409
    body = response.json()
    assert body["error"]["code"] == "limit_exceeded"
    assert "Students may hold at most 2 GPUs at once" in body["error"]["message"]
    assert body["error"]["limit"] == {"kind": "max_gpus", "source": "Students", "says": "at most 2 GPUs at once"}


def test_the_booking_form_shows_the_limits_and_refuses_inline(client, student, students, thalys, later):
    limit(Limit.Kind.MAX_GPUS, group=students, number=2)
    limit(Limit.Kind.ACCESS, group=students, allowed=False, server=ServerFactory(name="h100", gpus=1))
    client.force_login(student)
    page = client.get(reverse("book")).content.decode()
    assert "Students: at most 2 GPUs at once" in page
    assert "Students: may not book on server h100" in page

    local = later.strftime("%Y-%m-%dT%H:%M")
    refused = client.post(reverse("book"), {"what": "gpus", "server": "thalys", "devices": "0-2", "start": local, "length": "1h"})
    assert refused.status_code == 200
    assert "Students may hold at most 2 GPUs at once; you asked for 3." in refused.content.decode()


def test_other_members_limits_do_not_apply(bob, student, students, thalys, later):
    limit(Limit.Kind.MAX_GPUS, group=students, number=1)
    assert book(bob, thalys, "0-5", later).pk


def test_a_member_in_no_group_gets_personal_limits(bob, thalys, later):
    limit(Limit.Kind.MAX_GPUS, user=bob, number=1)
    with pytest.raises(LimitExceeded, match=r"You \(personal limit\) may hold at most 1 GPU at once"):
        book(bob, thalys, "0-1", later)


# --- races ------------------------------------------------------------------------------------


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind, value", [(Limit.Kind.MAX_GPUS, {"number": 4}), (Limit.Kind.GPU_HOURS_WEEK, {"number": 4})])
def test_two_bookings_that_fit_alone_but_not_together_one_wins(db_vendor, later, kind, value):
    """Different servers, so no unit is shared: only the member lock keeps the limit."""
    if db_vendor != "postgresql":
        pytest.skip("SQLite serializes writers with BEGIN IMMEDIATE; the threads race on PostgreSQL")
    from tests.reservations.test_races import race

    group = MemberGroup.objects.create(name="Students")
    member = UserFactory(username="racer")
    Profile.objects.update_or_create(user=member, defaults={"group": group})
    limit(kind, group=group, **value)
    servers = [ServerFactory(name=f"node{i}", gpus=4) for i in range(6)]

    results = race([lambda server=server: book(member, server, "0-2", later) for server in servers])

    booked = [r for r in results if hasattr(r, "allocations")]
    refused = [r for r in results if isinstance(r, LimitExceeded)]
    assert len(booked) == 1 and len(refused) == len(servers) - 1, results


def test_staff_set_group_limits_and_personal_overrides_in_the_admin(staff_client, students, alice, thalys):
    page = staff_client.post(
        reverse("admin:reservations_membergroup_change", args=[students.pk]),
        {
            "name": "Students", "parent": "", "description": "",
            "limits-TOTAL_FORMS": "2", "limits-INITIAL_FORMS": "0", "limits-MIN_NUM_FORMS": "0", "limits-MAX_NUM_FORMS": "1000",
            "limits-0-kind": "max_gpus", "limits-0-number": "4", "limits-0-duration": "", "limits-0-allowed": "on",
            "limits-1-kind": "max_length", "limits-1-number": "", "limits-1-duration": "soon", "limits-1-allowed": "on",
        },
    )
    assert page.status_code == 200  # refused: the second limit's duration
    assert "Write it like 12h, 2d or 28d." in page.content.decode()
    assert not Limit.objects.exists()

    listing = staff_client.get(reverse("admin:reservations_membergroup_changelist"))
    assert listing.status_code == 200 and "Students" in listing.content.decode()
    user_page = staff_client.get(reverse("admin:auth_user_change", args=[alice.pk]))
    assert user_page.status_code == 200 and "limits-TOTAL_FORMS" in user_page.content.decode()


def _brute_busiest(intervals, width, earliest, latest):
    """Every window start where the covered amount can peak, summed directly: O(n^2), for checking."""
    starts = {earliest, latest}
    for a, b, _ in intervals:
        starts.update((a, b, a - width, b - width))
    best = 0.0
    for t in (t for t in starts if earliest <= t <= latest):
        best = max(best, sum(weight * max(0.0, min(b, t + width) - max(a, t)) for a, b, weight in intervals))
    return best


@given(st.lists(st.tuples(st.integers(0, 400), st.integers(1, 60), st.integers(1, 8)), max_size=25), st.integers(0, 300), st.integers(1, 200))
def test_busiest_window_matches_summing_every_window(spans, first, span):
    """On epoch seconds of today's magnitude, as fair use calls it, with GPUs as weights."""
    from reservations.services.fairuse import busiest_window

    base, hour = datetime(2027, 1, 1, tzinfo=UTC).timestamp(), 3600.0
    intervals = [(base + a * hour, base + (a + n) * hour, gpus) for a, n, gpus in spans]
    width = 3 * 24 * hour  # three days: windows smaller than the spread, to exercise the edges
    earliest, latest = base + first * hour, base + (first + span) * hour
    amount, at = busiest_window(intervals, width, earliest, latest)
    assert earliest <= at <= latest
    assert abs(amount - _brute_busiest(intervals, width, earliest, latest)) < 1e-3
