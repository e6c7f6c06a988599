"""The booking form's live check says what the booking would do (services.preview_booking), and
conflict help: other free GPUs of the server, other servers with the same model, the GPUs'
states, a CPU/memory refusal with its "use it" and wait; the waitlist remembering the GPUs picked."""
import re
from datetime import timedelta
from html import unescape

import pytest
from django.conf import settings
from django.utils import timezone

from reservations import services
from reservations.services import waitlist
from reservations.errors import CapacityExceeded, LimitExceeded
from reservations.models import Booking, Limit, MemberGroup, Profile, WaitlistEntry
from tests.factories import ServerFactory

from .test_book_page import form, local

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


def text(response):
    """The page's text without tags, entities read."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


@pytest.fixture
def student(alice):
    """alice in Students: at most 2 GPUs at once, bookings of at most 4 h."""
    students = MemberGroup.objects.create(name="Students")
    Profile.objects.update_or_create(user=alice, defaults={"group": students})
    Limit.objects.create(kind=Limit.Kind.MAX_GPUS, group=students, number=2)
    Limit.objects.create(kind=Limit.Kind.MAX_LENGTH, group=students, duration="4h")
    return alice


# --- one preview, the booking's own checks ---------------------------------------------------


def test_preview_says_what_the_booking_would_refuse_and_writes_nothing(student, thalys, later):
    preview = services.preview_booking(student, server="thalys", devices="0-2", start=later, end=later + H)

    assert not preview.free and isinstance(preview.refusal, LimitExceeded)
    with pytest.raises(LimitExceeded) as refused:
        services.create_booking(student, server="thalys", devices="0-2", start=later, end=later + H)
    assert preview.refusal.message == refused.value.message
    assert Booking.objects.count() == 0


def test_preview_of_a_free_choice_is_free_and_names_the_taken_ones(alice, bob, thalys, later):
    services.create_booking(bob, server="thalys", devices="1", start=later, end=later + H, purpose="bob's")

    assert services.preview_booking(alice, server="thalys", devices="0", start=later, end=later + H).free
    taken = services.preview_booking(alice, server="thalys", devices="0-1", start=later, end=later + H)
    assert [conflict.booking.purpose for conflict in taken.conflicts] == ["bob's"]


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"gpus": ["thalys:0", "thalys:1", "thalys:2"]}, "Students may hold at most 2 GPUs at once; you asked for 3."),
        ({"length": "8h"}, "Students may book at most 4h at a time; this booking would last 8h."),
    ],
    ids=["three_gpus_of_two", "eight_hours_of_four"],
)
def test_live_check_refuses_over_the_group_limit_as_the_booking_does(client, student, thalys, later, changes, says):
    client.force_login(student)

    check = text(client.post("/book/check/", form(later, **changes)))
    booked = text(client.post("/book/", form(later, **changes)))

    assert says in check and "Free:" not in check
    assert says in booked and Booking.objects.count() == 0


def test_live_check_on_an_approval_server_from_now_is_not_free(client, alice, thalys):
    thalys.requires_approval = True
    thalys.save()
    client.force_login(alice)

    check = text(client.post("/book/check/", form(timezone.now())))

    assert "need staff approval, so they cannot start right away" in check
    assert "Free:" not in check


def test_staff_are_not_told_their_booking_will_await_approval(client, alice, staff, thalys, later):
    thalys.requires_approval = True
    thalys.save()

    client.force_login(staff)
    staff_check = text(client.post("/book/check/", form(later)))
    client.force_login(alice)
    member_check = text(client.post("/book/check/", form(later)))

    assert "Free: thalys GPU 0" in staff_check and "approval" not in staff_check
    assert "need staff approval" in member_check
    assert services.create_booking(staff, server="thalys", devices="0", start=later, end=later + H).status == Booking.Status.CONFIRMED


def test_staff_exempt_from_group_limits_see_free(client, staff, thalys, later):
    students = MemberGroup.objects.create(name="Staff group")
    Profile.objects.update_or_create(user=staff, defaults={"group": students})
    Limit.objects.create(kind=Limit.Kind.MAX_GPUS, group=students, number=2)
    client.force_login(staff)

    check = text(client.post("/book/check/", form(later, gpus=["thalys:0", "thalys:1", "thalys:2"])))

    assert "Free: thalys GPUs 0-2" in check


# --- conflict help ---------------------------------------------------------------------------


def test_conflict_offers_other_free_gpus_of_the_server_at_the_same_time(client, alice, bob, thalys, later):
    services.create_booking(bob, server="thalys", devices="0-1", start=later - H, end=later + 3 * H)
    services.create_booking(bob, server="thalys", devices="2", start=later, end=later + H)
    client.force_login(alice)

    page = client.post("/book/check/", form(later, gpus=["thalys:0", "thalys:1"])).content.decode()

    match = re.search(r"<li>GPUs 3-4 of thalys — <a href=\"([^\"]+)\" class=\"use-these\">use them</a>", page)
    assert match, page
    again = client.get(unescape(match.group(1))).content.decode()
    assert re.search(r'value="thalys:3"[^>]*checked', again) and re.search(r'value="thalys:4"[^>]*checked', again)
    assert not re.search(r'value="thalys:0"[^>]*checked', again)
    assert "Free: thalys GPUs 3-4" in again


def test_conflict_offers_the_free_ones_picked_first(client, alice, bob, thalys, later):
    services.create_booking(bob, server="thalys", devices="1", start=later, end=later + H)
    client.force_login(alice)

    page = text(client.post("/book/check/", form(later, gpus=["thalys:0", "thalys:1"])))

    assert "GPUs 0,2 of thalys — use them" in page


def test_conflict_offers_other_servers_with_the_same_model_free_throughout(client, alice, bob, thalys, later):
    ServerFactory(name="zephyr", gpus=2)  # same model (the factory's A100)
    other_model = ServerFactory(name="aurora", gpus=4)
    other_model.devices.update(model="NVIDIA GeForce RTX 4090")
    ServerFactory(name="busy", gpus=2)
    services.create_booking(bob, server="busy", devices="0", start=later + H / 2, end=later + 2 * H)
    services.create_booking(bob, server="thalys", start=later, end=later + H)  # the whole of thalys
    client.force_login(alice)

    page = text(client.post("/book/check/", form(later, gpus=["thalys:0", "thalys:1"])))

    assert "zephyr GPUs 0-1 (NVIDIA A100-SXM4-80GB) — use them" in page
    assert "aurora" not in page and "busy GPUs" not in page and "of thalys —" not in page


def test_conflict_leaves_out_servers_the_member_may_not_book(client, alice, bob, thalys, later):
    zephyr = ServerFactory(name="zephyr", gpus=2)
    Limit.objects.create(kind=Limit.Kind.ACCESS, user=alice, server=zephyr, allowed=False)
    services.create_booking(bob, server="thalys", start=later, end=later + H)
    client.force_login(alice)

    page = text(client.post("/book/check/", form(later)))

    assert "Taken: thalys GPU 0" in page and "zephyr" not in page


def test_check_shows_each_gpu_of_the_server_free_or_held_in_the_window(client, alice, bob, thalys, later):
    services.create_booking(bob, server="thalys", devices="2-3", start=later + H / 2, end=later + 2 * H, purpose="x")
    services.create_booking(bob, server="thalys", devices="5", start=later + 2 * H, end=later + 3 * H)  # after the window
    client.force_login(alice)

    response = client.post("/book/check/", form(later, gpus=[]))  # nothing ticked yet: the states still show

    assert f"GPUs of thalys then: 0-1,4-7 free; 2-3 held by bob {timezone.localtime(later + H / 2):%a %d %b %H:%M}" in text(response)
    assert re.findall(r'data-gpu="([^"]+)"', response.content.decode()) == ["thalys:2", "thalys:3"]


# --- a refusal keeps the availability box; CPU/memory refusals help too -------------------------


def test_a_refused_repeat_keeps_the_availability_box(client, alice, bob, thalys, later):
    services.create_booking(bob, server="thalys", devices="0", start=later + timedelta(days=1), end=later + timedelta(days=1, hours=1))
    client.force_login(alice)
    until = (timezone.localtime(later) + timedelta(days=3)).date().isoformat()

    page = text(client.post("/book/", form(later, repeat="daily", until=until)))

    assert "1 of the 4 dates cannot be booked" in page
    assert "Free: thalys GPU 0" in page and "1 of the 4 dates is taken" in page
    assert "Choose what and when; this box says whether it is free." not in page


def test_a_memory_refusal_offers_the_start_when_enough_is_free_and_a_wait(client, alice, bob, later):
    ServerFactory(name="pool", gpus=0, cpu_cores=64, memory_gib=256)
    services.create_booking(bob, server="pool", memory_gib=200, start=later - H, end=later + 2 * H)
    client.force_login(alice)
    data = form(later, what="shares", server="pool", gpus=[], memory_gib="128")

    response = client.post("/book/check/", data)
    page = response.content.decode()

    assert "Server pool has 256 GiB of memory; 200 are booked" in text(response)
    link = unescape(re.search(r'<a href="([^"]+)" class="use-it" data-start="([^"]+)"', page).group(1))
    assert f"start={local(later + 2 * H)}".replace(":", "%3A") in link
    assert 'name="memory_gib" value="128"' in page and 'name="gpus" value="0"' in page
    assert "Free: pool: 128 GiB" in text(client.get(link))

    joined = client.post("/waitlist/join/", {"server": "pool", "gpus": "0", "memory_gib": "128", "length": "1h"})
    entry = WaitlistEntry.objects.get()
    assert joined.status_code == 302 and (entry.gpus, entry.memory_gib) == (0, 128)
    assert entry.what == "128 GiB on pool"


def test_a_capacity_refusal_names_when_enough_is_free(bob, alice, later):
    ServerFactory(name="pool", gpus=0, cpu_cores=64)
    services.create_booking(bob, server="pool", cpu_cores=60, start=later, end=later + 2 * H)

    with pytest.raises(CapacityExceeded) as refused:
        services.create_booking(alice, server="pool", cpu_cores=8, start=later, end=later + H)

    assert refused.value.free_from == later + 2 * H


# --- the waitlist: shares, and the GPUs the member picked ------------------------------------------


def test_a_wait_for_cpu_cores_is_offered_when_they_free_up_and_books_them(alice, bob, later):
    pool = ServerFactory(name="pool", gpus=0, cpu_cores=64)
    now = timezone.now()
    held = services.create_booking(bob, server="pool", cpu_cores=60, start=now, end=now + 3 * H)
    entry = waitlist.join(alice, server="pool", cpu_cores=8, length="1h", now=now)

    assert waitlist.match(server_id=pool.pk, now=now) == []
    services.release_booking(held, by=bob, now=now + H)
    offered = waitlist.match(server_id=pool.pk, now=now + H)
    booking = waitlist.claim(offered[0], by=alice, now=now + H + timedelta(minutes=1))

    assert [e.pk for e in offered] == [entry.pk]
    assert (booking.cpu_cores, booking.whole_server, booking.allocations.count()) == (8, False, 0)


def test_an_offer_prefers_the_gpus_picked_and_says_when_it_is_others(client, alice, bob, thalys):
    now = timezone.now()
    services.create_booking(bob, server="thalys", devices="0-1,4-7", start=now, end=now + 3 * H)
    client.force_login(alice)
    client.post("/waitlist/join/", {"server": "thalys", "gpus": "2", "devices": "0-1", "length": "1h"})
    entry = WaitlistEntry.objects.get()

    (offered,) = waitlist.match(server_id=thalys.pk, now=now)

    assert (entry.wanted_devices, offered.offered_devices) == ("0-1", "2-3")
    assert offered.offer_note == "Not the GPUs you picked (0-1): you asked for any 2, and 2-3 were free first."
    mine = text(client.get("/mine/"))
    assert offered.offer_note in mine
    assert re.search(rf"Your turn — until \w{{3}} \d\d \w{{3}} \d\d:\d\d {re.escape(settings.TIME_ZONE)} Claim", mine)


def test_an_offer_of_the_gpus_picked_says_nothing_more(alice, bob, thalys):
    now = timezone.now()
    services.create_booking(bob, server="thalys", devices="0-2", start=now, end=now + 3 * H)
    waitlist.join(alice, server="thalys", gpus=2, wanted="5-6", length="1h", now=now)

    (offered,) = waitlist.match(server_id=thalys.pk, now=now)

    assert offered.offered_devices == "5-6" and offered.offer_note == ""
