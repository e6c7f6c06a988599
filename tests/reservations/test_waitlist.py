"""The waitlist: who is offered what and when, offers running out, claims, and the web pages."""
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from labres.celery import wait_for_hand_overs
from notifications import outbox
from notifications.messages import Occasion, render
from notifications.models import Notification, Preference
from reservations import services
from reservations.errors import BookingError, NotAllowed, OfferUnavailable
from reservations.models import Allocation, Booking, WaitlistEntry
from reservations.services import waitlist
from reservations.tasks import match_waitlists

from ..factories import ServerFactory, UserFactory

H = timedelta(hours=1)
M = timedelta(minutes=1)
REAL_HAND_TO_WORKER = waitlist.hand_to_worker


@pytest.fixture(autouse=True)
def matched_at_once(monkeypatch):
    """The after-commit hand-over runs the match here and now, as a worker would; the calls are kept."""
    calls = []

    def run(*, server_id=None, room_id=None):
        calls.append((server_id, room_id))
        waitlist.match(server_id=server_id, room_id=room_id)

    monkeypatch.setattr(waitlist, "hand_to_worker", run)
    return calls


@pytest.fixture
def tiny(db):
    return ServerFactory(name="tiny", gpus=2)


@pytest.fixture
def carol(db):
    return UserFactory(username="carol")


def hold(user, server, devices, *, hours=2, now=None):
    """`user` holds `devices` of `server` from a minute ago for `hours`."""
    now = now or timezone.now()
    return services.create_booking(user, start=now - M, end=now + hours * H, server=server, devices=devices, now=now)


def fresh(entry):
    entry.refresh_from_db()
    return entry


def waiting_for(user, server=None, gpus=1, length="1h", **kwargs):
    return waitlist.join(user, server=server, gpus=gpus, length=length, **kwargs)


# --- joining --------------------------------------------------------------------------------------


def test_joining_while_everything_is_taken_waits(alice, bob, tiny):
    hold(bob, tiny, "0-1")
    entry = waiting_for(alice, tiny)
    assert (entry.state, waitlist.position(entry), entry.length) == ("waiting", 1, H)
    assert entry.not_after > timezone.now() + timedelta(days=6)


def test_joining_when_it_is_free_offers_at_once(alice, tiny, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        entry = waiting_for(alice, tiny, gpus=2)
    entry = fresh(entry)
    assert (entry.state, entry.offered_devices) == ("offered", "0-1")
    assert entry.token and entry.offer_expires_at > timezone.now()


@pytest.mark.parametrize("kwargs, field, message", [
    ({"server": "tiny", "gpus": 3}, "gpus", "Ask for 1 to 2 GPUs on tiny"),
    ({"server": "tiny", "gpus": 0}, "gpus", "Ask for 1 to 2 GPUs"),
    ({"server": "nowhere", "gpus": 1}, "server", "There is no server 'nowhere'"),
    ({"server": "tiny", "gpus": 1, "length": "soon"}, "length", "like 2h"),
    ({"server": "tiny", "gpus": 1, "length": "30d"}, "length", "at most 14d"),
    ({"server": "tiny", "room": "Lab 2"}, "server", "not both"),
    ({"gpus": 1}, "server", "not both and not neither"),
])
def test_joining_with_bad_input_says_what_is_wrong(alice, tiny, room, kwargs, field, message):
    kwargs.setdefault("length", "1h")
    with pytest.raises(BookingError, match=message) as caught:
        waitlist.join(alice, **kwargs)
    assert caught.value.field == field
    assert not WaitlistEntry.objects.exists()


def test_a_latest_start_in_the_past_or_too_far_is_refused(alice, tiny):
    now = timezone.now()
    with pytest.raises(BookingError, match="in the past"):
        waiting_for(alice, tiny, not_after=now - H, now=now)
    with pytest.raises(BookingError, match="at most 7d"):
        waiting_for(alice, tiny, not_after=now + timedelta(days=30), now=now)


@pytest.mark.parametrize(
    "rule, kwargs, field, message",
    [
        ({"kind": "max_gpus", "number": 1}, {"gpus": 2}, "gpus", "You (personal limit) may hold at most 1 GPU at once; ask to wait for 1 or fewer (you asked for 2)."),
        ({"kind": "max_gpus", "number": 1}, {"gpus": None}, "gpus", "ask to wait for 1 or fewer (you asked for 2)"),  # the whole server: its 2 GPUs
        ({"kind": "max_length", "duration": "2h"}, {"length": "3h"}, "length", "may book at most 2h at a time; ask to wait for that or less (you asked for 3h)."),
        ({"kind": "gpu_hours_week", "number": 5}, {"gpus": 2, "length": "3h"}, "length", "at most 5 GPU-hours in any 7 days; 2 GPUs for 3h would be 6."),
        ({"kind": "access", "allowed": False}, {}, "server", "may not book server tiny, so waiting for it would not help"),
    ],
)
def test_a_wait_that_the_limits_would_never_let_be_claimed_is_refused(alice, tiny, rule, kwargs, field, message):
    from reservations.errors import LimitExceeded
    from reservations.models import Limit

    Limit.objects.create(user=alice, **rule)
    with pytest.raises(LimitExceeded) as refused:
        waiting_for(alice, tiny, **kwargs)

    assert message in refused.value.message and refused.value.field == field
    assert not WaitlistEntry.objects.exists()


def test_a_wait_within_the_limits_is_taken_even_while_the_member_holds_other_gpus(alice, bob, tiny):
    from reservations.models import Limit

    Limit.objects.create(user=alice, kind="max_gpus", number=2)
    other = ServerFactory(name="other", gpus=2)
    hold(alice, other, "0-1")  # at the limit now; the claim, later, checks what she holds then
    hold(bob, tiny, "0-1")

    assert waiting_for(alice, tiny, gpus=2).state == "waiting"


def test_one_open_entry_per_member_and_resource(alice, bob, tiny):
    hold(bob, tiny, "0-1")
    first = waiting_for(alice, tiny)
    with pytest.raises(BookingError, match=f"already waiting for 1 GPU on tiny \\(entry #{first.pk}\\)"):
        waiting_for(alice, tiny, gpus=2)


# --- matching ------------------------------------------------------------------------------------


def test_first_in_line_is_offered_and_later_ones_wait(alice, bob, carol, tiny, django_capture_on_commit_callbacks):
    held = hold(bob, tiny, "0")
    hold(bob, tiny, "1")
    first, second = waiting_for(alice, tiny), waiting_for(carol, tiny)

    with django_capture_on_commit_callbacks(execute=True):
        services.release_booking(held, by=bob)

    assert (fresh(first).state, fresh(first).offered_devices) == ("offered", "0")
    assert fresh(second).state == "waiting"
    assert waitlist.position(second) == 2


def test_a_release_hands_the_resource_to_a_worker_after_commit(alice, bob, tiny, matched_at_once, django_capture_on_commit_callbacks):
    held = hold(bob, tiny, "0-1")
    waiting_for(alice, tiny)
    matched_at_once.clear()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.release_booking(held, by=bob)
    assert matched_at_once == []  # nothing before commit
    for callback in callbacks:
        callback()
    assert (tiny.pk, None) in matched_at_once


def test_a_cancellation_triggers_an_offer(alice, bob, tiny, django_capture_on_commit_callbacks):
    now = timezone.now()
    hold(bob, tiny, "0")
    soon = services.create_booking(bob, start=now + 30 * M, end=now + 3 * H, server=tiny, devices="1")
    entry = waiting_for(alice, tiny, length="2h")
    assert fresh(entry).state == "waiting"  # GPU 1 is free for 30 minutes only

    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_booking(soon, by=bob)

    assert (fresh(entry).state, fresh(entry).offered_devices) == ("offered", "1")


def test_declining_a_booking_awaiting_approval_triggers_an_offer(alice, bob, staff, matched_at_once, django_capture_on_commit_callbacks):
    now = timezone.now()
    gated = ServerFactory(name="gated", gpus=1, requires_approval=True)
    pending = services.create_booking(bob, start=now + 30 * M, end=now + 3 * H, server=gated, devices="0")
    entry = waiting_for(alice, gated, length="2h")
    assert fresh(entry).state == "waiting"  # the GPU is free for 30 minutes only
    matched_at_once.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.decline_booking(pending, by=staff, reason="not now")

    assert matched_at_once == [(gated.pk, None)]  # handed to a worker by the decline, not left to the sweep
    assert (fresh(entry).state, fresh(entry).offered_devices) == ("offered", "0")


def test_shortening_a_booking_triggers_an_offer(alice, bob, tiny, django_capture_on_commit_callbacks):
    now = timezone.now()
    held = hold(bob, tiny, "0-1", hours=5, now=now)
    entry = waiting_for(alice, tiny, gpus=2, length="2h")
    with django_capture_on_commit_callbacks(execute=True):
        services.change_booking(held, by=bob, end=now + 10 * M)
    assert fresh(entry).state == "waiting"  # free from 10 minutes on only: not from now
    with django_capture_on_commit_callbacks(execute=True):
        services.release_booking(held, by=bob)
    assert fresh(entry).state == "offered"


def test_a_big_request_at_the_head_does_not_block_smaller_ones(alice, bob, carol, tiny, django_capture_on_commit_callbacks):
    held = hold(bob, tiny, "0")
    hold(bob, tiny, "1")
    big, small = waiting_for(alice, tiny, gpus=2), waiting_for(carol, tiny, gpus=1)

    with django_capture_on_commit_callbacks(execute=True):
        services.release_booking(held, by=bob)

    assert (fresh(big).state, fresh(small).state) == ("waiting", "offered")
    assert waitlist.position(fresh(big)) == 1  # it keeps its place


def test_offered_gpus_are_offered_to_nobody_else(alice, bob, carol, tiny, django_capture_on_commit_callbacks):
    held = hold(bob, tiny, "0")
    hold(bob, tiny, "1")
    first, second = waiting_for(alice, tiny), waiting_for(carol, tiny)
    with django_capture_on_commit_callbacks(execute=True):
        services.release_booking(held, by=bob)

    assert waitlist.match(server_id=tiny.pk) == []
    assert match_waitlists() == 0
    assert (fresh(first).state, fresh(second).state) == ("offered", "waiting")


def test_a_whole_server_waits_for_every_gpu_and_share(alice, bob, carol, tiny, django_capture_on_commit_callbacks):
    held = hold(bob, tiny, "0")
    whole = waitlist.join(alice, server=tiny, length="1h")
    assert whole.what == "tiny (whole server)"
    with django_capture_on_commit_callbacks(execute=True):
        services.release_booking(held, by=bob)
    whole = fresh(whole)
    assert (whole.state, whole.offered_devices) == ("offered", "")
    # While the whole server is offered, a GPU is not offered to anyone behind it.
    later_one = waiting_for(carol, tiny)
    assert waitlist.match(server_id=tiny.pk) == [] and fresh(later_one).state == "waiting"


def test_a_room_is_offered_when_it_frees(alice, bob, room, django_capture_on_commit_callbacks):
    now = timezone.now()
    meeting = services.create_booking(bob, start=now - M, end=now + H, room=room, now=now)
    entry = waitlist.join(alice, room="Lab 2", length="30m")
    with django_capture_on_commit_callbacks(execute=True):
        services.release_booking(meeting, by=bob)
    entry = fresh(entry)
    assert (entry.state, entry.offered_what) == ("offered", "room Lab 2")


def test_an_offer_that_runs_out_passes_to_the_next(alice, bob, carol, tiny, django_capture_on_commit_callbacks):
    held = hold(bob, tiny, "0")
    hold(bob, tiny, "1")
    first, second = waiting_for(alice, tiny), waiting_for(carol, tiny)
    with django_capture_on_commit_callbacks(execute=True):
        services.release_booking(held, by=bob)

    offered = waitlist.match(server_id=tiny.pk, now=timezone.now() + 11 * M)

    assert offered == [second]
    first, second = fresh(first), fresh(second)
    assert (first.state, first.ignored_offers, first.token) == ("waiting", 1, "")
    assert second.state == "offered"
    assert waitlist.position(first) == 2  # to the back: it no longer blocks others


def test_an_entry_lapses_after_its_offers_run_out_twice(alice, bob, tiny, settings, django_capture_on_commit_callbacks):
    settings.WAITLIST_MAX_IGNORED_OFFERS = 2
    held = hold(bob, tiny, "0-1")
    entry = waiting_for(alice, tiny)
    with django_capture_on_commit_callbacks(execute=True):
        services.release_booking(held, by=bob)
    now = timezone.now()
    waitlist.match(server_id=tiny.pk, now=now + 11 * M)  # ignored once: offered again (nobody else waits)
    assert (fresh(entry).state, fresh(entry).offers) == ("offered", 2)
    waitlist.match(server_id=tiny.pk, now=now + 22 * M)
    assert fresh(entry).state == "lapsed"
    outbox.expand_due()
    [row] = Notification.objects.filter(event="waitlist_lapsed")
    assert row.recipient == alice and "let its offers run out" in row.payload["text"]


def test_an_entry_lapses_after_its_latest_start(alice, bob, tiny):
    now = timezone.now()
    hold(bob, tiny, "0-1", hours=5, now=now)
    entry = waiting_for(alice, tiny, not_after=now + H, now=now)
    waitlist.match(server_id=tiny.pk, now=now + 2 * H)
    assert fresh(entry).state == "lapsed"


def test_the_sweep_matches_every_server_and_room(alice, bob, tiny, room):
    now = timezone.now()
    hold(bob, tiny, "0-1")
    meeting = services.create_booking(bob, start=now - M, end=now + H, room=room, now=now)
    gpu_entry, room_entry = waiting_for(alice, tiny), waitlist.join(alice, room=room, length="1h")
    Allocation.objects.filter(booking=meeting).update(active=False)  # freed without a booking change (e.g. by hand)
    assert match_waitlists() == 1
    assert (fresh(gpu_entry).state, fresh(room_entry).state) == ("waiting", "offered")


# --- claiming ------------------------------------------------------------------------------------


@pytest.fixture
def offer(alice, bob, carol, tiny, django_capture_on_commit_callbacks):
    """alice is offered GPU 0 of tiny (bob released it); carol waits behind her."""
    held = hold(bob, tiny, "0")
    hold(bob, tiny, "1")
    entry = waiting_for(alice, tiny, length="2h", purpose="finetune")
    waiting_for(carol, tiny)
    with django_capture_on_commit_callbacks(execute=True):
        services.release_booking(held, by=bob)
    return fresh(entry)


def test_a_claim_books_the_offered_gpus_and_closes_the_entry(offer, alice):
    now = timezone.now()
    booking = waitlist.claim(offer, by=alice, token=offer.token, now=now)
    assert (booking.user, booking.what, booking.start, booking.end, booking.purpose) == (alice, "tiny:0", now, now + 2 * H, "finetune")
    offer = fresh(offer)
    assert (offer.state, offer.booking, offer.token) == ("claimed", booking, "")


def test_a_second_claim_is_refused(offer, alice):
    token = offer.token
    booking = waitlist.claim(offer, by=alice, token=token)
    with pytest.raises(OfferUnavailable, match=f"claimed already \\(booking #{booking.pk}\\)"):
        waitlist.claim(offer, by=alice, token=token)
    assert Booking.objects.filter(user=alice).count() == 1


def test_a_claim_after_the_offer_ran_out_is_refused(offer, alice):
    with pytest.raises(OfferUnavailable, match="The offer ran out"):
        waitlist.claim(offer, by=alice, token=offer.token, now=timezone.now() + 11 * M)
    assert not Booking.objects.filter(user=alice).exists()


def test_another_member_cannot_claim_even_with_the_token(offer, carol):
    with pytest.raises(NotAllowed, match="only they can claim it"):
        waitlist.claim(offer, by=carol, token=offer.token)
    assert fresh(offer).state == "offered"


def test_a_link_of_an_earlier_offer_is_refused(offer, alice):
    with pytest.raises(OfferUnavailable, match="earlier offer"):
        waitlist.claim(offer, by=alice, token="not-the-token")
    assert fresh(offer).state == "offered"


def test_gpus_booked_meanwhile_put_the_entry_back_in_line_at_its_place(offer, alice, bob, tiny):
    queued_at = offer.queued_at
    now = timezone.now()
    services.create_booking(bob, start=now, end=now + H, server=tiny, devices="0", now=now)  # booked directly
    with pytest.raises(OfferUnavailable, match="GPU 0 on tiny is booked by bob.*back in line at place 1"):
        waitlist.claim(offer, by=alice, token=offer.token)
    offer = fresh(offer)
    assert (offer.state, offer.queued_at, offer.token) == ("waiting", queued_at, "")
    assert not Booking.objects.filter(user=alice).exists()


def test_a_claim_keeps_to_the_members_limits(offer, alice):
    from reservations.models import Limit

    Limit.objects.create(kind=Limit.Kind.MAX_LENGTH, user=alice, duration="1h")
    with pytest.raises(BookingError, match="at most 1h"):
        waitlist.claim(offer, by=alice, token=offer.token)
    assert fresh(offer).state == "offered"  # still hers to claim until it runs out


def test_withdrawing_an_offer_passes_it_to_the_next(offer, alice, carol, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        waitlist.withdraw(offer, by=alice)
    assert fresh(offer).state == "withdrawn"
    assert WaitlistEntry.objects.get(user=carol).state == "offered"


def test_only_the_member_or_staff_withdraw(offer, carol, staff):
    with pytest.raises(NotAllowed):
        waitlist.withdraw(offer, by=carol)
    waitlist.withdraw(offer, by=staff)
    assert fresh(offer).state == "withdrawn"


# --- messages ------------------------------------------------------------------------------------


def test_an_offer_sends_the_member_a_claim_link(offer, alice):
    outbox.expand_due()
    [row] = Notification.objects.filter(event="waitlist_offer")
    assert (row.recipient, row.channel) == (alice, "email")
    assert "tiny:0" in row.payload["subject"]
    assert f"/waitlist/{offer.pk}/claim/{offer.token}/" in row.payload["text"]
    assert "Claim it with one click" in row.payload["text"]


def test_the_slack_offer_has_a_claim_button(offer, alice):
    payload = render(Occasion("waitlist_offer", extra={"entry": offer}), "slack", user=alice)
    [actions] = [block for block in payload["blocks"] if block["type"] == "actions"]
    [button] = actions["elements"]
    assert button["text"]["text"] == "Claim"
    assert button["url"].endswith(f"/waitlist/{offer.pk}/claim/{offer.token}/")
    assert button["value"] == f"{offer.pk}:{offer.token}"
    assert "*tiny:0* is free now for 2h" in payload["text"]


# --- the pages ----------------------------------------------------------------------------------


def test_the_claim_link_shows_a_button_and_does_not_book(client, offer, alice):
    client.force_login(alice)
    response = client.get(f"/waitlist/{offer.pk}/claim/{offer.token}/")
    assert response.status_code == 200
    assert b"Claim: book it now" in response.content
    assert not Booking.objects.filter(user=alice).exists()


def test_one_click_on_the_claim_page_books(client, offer, alice):
    client.force_login(alice)
    response = client.post(f"/waitlist/{offer.pk}/claim/{offer.token}/")
    booking = Booking.objects.get(user=alice)
    assert response.status_code == 303 and response["Location"] == f"/bookings/{booking.pk}/"
    again = client.post(f"/waitlist/{offer.pk}/claim/{offer.token}/")
    assert again.status_code == 409 and b"claimed already" in again.content


def test_the_claim_page_refuses_another_member(client, offer, carol):
    client.force_login(carol)
    response = client.post(f"/waitlist/{offer.pk}/claim/{offer.token}/")
    assert response.status_code == 403
    assert not Booking.objects.filter(user=carol).exists()


def test_the_claim_page_needs_a_sign_in(client, offer):
    response = client.get(f"/waitlist/{offer.pk}/claim/{offer.token}/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_my_bookings_lists_my_entries_with_their_place(client, alice, bob, carol, tiny):
    hold(bob, tiny, "0-1")
    waiting_for(carol, tiny)
    mine = waiting_for(alice, tiny, purpose="eval")
    client.force_login(alice)
    page = client.get("/mine/").content.decode()
    assert "Waiting list" in page and "place 2 in line" in page and "eval" in page
    response = client.post(f"/waitlist/{mine.pk}/withdraw/")
    assert response.status_code == 302
    assert fresh(mine).state == "withdrawn"
    assert "Waiting list" not in client.get("/mine/").content.decode()


def test_withdrawing_someone_elses_entry_is_forbidden(client, alice, bob, tiny):
    entry = waiting_for(bob, tiny)
    client.force_login(alice)
    assert client.post(f"/waitlist/{entry.pk}/withdraw/").status_code == 403
    assert fresh(entry).state in ("waiting", "offered")


def test_a_refused_booking_offers_tell_me_when(client, alice, bob, tiny, later):
    services.create_booking(bob, start=later, end=later + 2 * H, server=tiny, devices="0-1")
    client.force_login(alice)
    response = client.post("/book/", {
        "what": "gpus", "server": "tiny", "devices": "0-1", "start": later.strftime("%Y-%m-%dT%H:%M"), "length": "1h",
    })
    page = response.content.decode()
    assert "Tell me when it&#x27;s free" in page or "Tell me when it's free" in page
    assert 'form="waitlist-join" name="gpus" value="2"' in page
    joined = client.post("/waitlist/join/", {"server": "tiny", "gpus": "2", "length": "1h", "purpose": ""})
    assert joined.status_code == 302 and joined["Location"] == "/mine/"
    assert WaitlistEntry.objects.get(user=alice).what == "2 GPUs on tiny"


def test_joining_from_the_page_with_bad_input_says_why(client, alice, tiny):
    client.force_login(alice)
    response = client.post("/waitlist/join/", {"server": "tiny", "gpus": "9", "length": "1h"}, follow=True)
    assert "Ask for 1 to 2 GPUs on tiny" in response.content.decode()
    assert not WaitlistEntry.objects.exists()


def test_the_admin_lists_entries_with_state_and_place(staff_client, alice, bob, tiny):
    hold(bob, tiny, "0-1")
    waiting_for(alice, tiny)
    response = staff_client.get("/admin/reservations/waitlistentry/?state__exact=waiting")
    assert response.status_code == 200
    page = response.content.decode()
    assert "1 GPU on tiny" in page and "alice" in page
    assert '<td class="field-place">1</td>' in page


def test_staff_withdraw_entries_from_the_admin(staff_client, alice, bob, tiny):
    hold(bob, tiny, "0-1")
    entry = waiting_for(alice, tiny)
    response = staff_client.post(
        "/admin/reservations/waitlistentry/", {"action": "withdraw_entries", "_selected_action": [entry.pk]}, follow=True,
    )
    assert "Withdrew 1 waitlist entry." in response.content.decode()
    assert fresh(entry).state == "withdrawn"


def test_a_staff_template_can_use_the_waitlist_variables(offer, alice):
    from notifications.models import MessageTemplate

    alice.profile.time_zone = "Asia/Tokyo"
    alice.profile.save()
    MessageTemplate.objects.create(
        event="waitlist_offer", family="email", subject="{{ event }}",
        body="entry=[{{ entry.what }}]\nunits=[{{ units }}]\nlength=[{{ length }}]\nexpires=[{{ expires|when }}]\nclaim=[{{ links.claim }}]",
    )
    outbox.expand_due()
    [row] = Notification.objects.filter(event="waitlist_offer")
    local = timezone.localtime(offer.offer_expires_at, timezone=ZoneInfo("Asia/Tokyo"))
    assert row.payload["subject"] == "waitlist: your turn"
    assert "entry=[1 GPU on tiny]\nunits=[tiny:0]\nlength=[2h]\n" in row.payload["text"]
    [expires] = re.findall(r"^expires=\[(.*)\]$", row.payload["text"], re.MULTILINE)
    assert f"{local:%H:%M}" in expires  # in the member's zone
    assert "claim=[http" in row.payload["text"] and f"/waitlist/{offer.pk}/claim/{offer.token}/]" in row.payload["text"]


def test_a_lapse_message_says_why(alice, bob, tiny):
    now = timezone.now()
    hold(bob, tiny, "0-1", hours=5, now=now)
    entry = waiting_for(alice, tiny, not_after=now + H, now=now)
    waitlist.match(server_id=tiny.pk, now=now + 2 * H)
    outbox.expand_due()
    [row] = Notification.objects.filter(event="waitlist_lapsed", recipient=alice)
    assert entry.what in row.payload["text"] and "nothing freed up before its latest start" in row.payload["text"]


def test_the_slack_claim_button_books_for_the_linked_member_only(offer, alice, carol):
    from notifications.slackbot.commands import handle_action

    alice.profile.slack_user_id = "UALICE"
    alice.profile.save()
    carol.profile.slack_user_id = "UCAROL"
    carol.profile.save()
    value = f"{offer.pk}:{offer.token}"

    refused = handle_action("waitlist_claim", value, slack_user_id="UCAROL")
    assert "only they can claim it" in refused.text and not Booking.objects.filter(user__in=[alice, carol]).exists()
    reply = handle_action("waitlist_claim", value, slack_user_id="UALICE")
    booking = Booking.objects.get(user=alice)
    assert booking.source == "slack" and "tiny:0" in reply.text
    again = handle_action("waitlist_claim", value, slack_user_id="UALICE")
    assert "claimed already" in again.text and Booking.objects.filter(user=alice).count() == 1


def test_the_claim_page_after_a_slack_claim_says_so(client, offer, alice):
    booking = waitlist.claim(offer, by=alice, token=offer.token, source=Booking.Source.SLACK)
    client.force_login(alice)
    page = client.get(f"/waitlist/{offer.pk}/claim/{offer.token}/").content.decode()
    assert f"You claimed it: booking #{booking.pk}" in page and "Claim: book it now" not in page


# --- how the member will hear of their turn ------------------------------------------------------


def reach(user, *, email="", slack="", chosen=None):
    user.email = email
    user.save()
    user.profile.slack_user_id = slack
    user.profile.save()
    if chosen is not None:
        Preference.objects.create(user=user, event="waitlist_offer", channels=chosen)


@pytest.mark.parametrize("email, slack, chosen, told_by, says", [
    ("alice@lab.example.org", "", None, ["email"], "We will tell you by e-mail to alice@lab.example.org as soon as it is free."),
    ("alice@lab.example.org", "UALICE", None, ["slack_dm"], "We will tell you by Slack direct message as soon as it is free."),
    ("alice@lab.example.org", "UALICE", ["slack_dm", "email"], ["slack_dm", "email"],
     "We will tell you by Slack direct message and e-mail to alice@lab.example.org as soon as it is free."),
    ("", "", None, [], "Nobody will tell you when it is free: labres has no e-mail address and no Slack link for you"),
    ("alice@lab.example.org", "", [], [], "Nobody will tell you when it is free: you turned off “waitlist: your turn” messages"),
    ("", "UALICE", ["email"], [], "the channels you chose for “waitlist: your turn” messages (E-mail) cannot reach you"),
])
def test_joining_says_how_the_turn_will_be_told_and_it_is_told_so(
    alice, bob, tiny, settings, email, slack, chosen, told_by, says, django_capture_on_commit_callbacks,
):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    reach(alice, email=email, slack=slack, chosen=chosen)
    booking = hold(bob, tiny, "0-1")
    entry = waiting_for(alice, tiny)

    channels, sentence = waitlist.how_you_will_hear(alice)

    assert channels == told_by and says in sentence
    if not told_by:
        assert f"Look at My bookings ({settings.SITE_URL}/mine/) for your turn: an offer is held for you" in sentence
    with django_capture_on_commit_callbacks(execute=True):
        services.release_booking(booking, by=bob)
    assert fresh(entry).state == "offered"
    outbox.expand_due()
    assert sorted(Notification.objects.filter(event="waitlist_offer", recipient=alice).values_list("channel", flat=True)) == sorted(told_by)


def test_joining_from_the_page_says_nobody_will_tell_a_member_who_cannot_be_reached(client, alice, bob, tiny):
    reach(alice)
    hold(bob, tiny, "0-1")
    client.force_login(alice)

    page = client.post("/waitlist/join/", {"server": "tiny", "gpus": "1", "length": "1h", "purpose": ""}, follow=True).content.decode()

    assert "place 1. Nobody will tell you when it is free: labres has no e-mail address and no Slack link for you" in page
    assert "We will tell you" not in page


def test_joining_from_the_page_names_the_channel(client, alice, bob, tiny):
    hold(bob, tiny, "0-1")
    client.force_login(alice)

    page = client.post("/waitlist/join/", {"server": "tiny", "gpus": "1", "length": "1h", "purpose": ""}, follow=True).content.decode()

    assert "We will tell you by e-mail to alice@lab.example.org as soon as it is free." in page


def test_gpu_wait_says_how_the_turn_will_be_told(alice, bob, tiny, settings):
    from notifications.slackbot.commands import handle_command

    settings.SLACK_BOT_TOKEN = "xoxb-test"
    hold(bob, tiny, "0-1")
    reach(alice, slack="UALICE", chosen=[])

    reply = handle_command("wait tiny 1 1h", slack_user_id="UALICE")

    assert "Nobody will tell you when it is free: you turned off “waitlist: your turn” messages on your profile." in reply.text
    assert "I will message you" not in reply.text


# --- Slack: /gpu wait ----------------------------------------------------------------------------


def test_gpu_wait_joins_the_line_and_lists_it(alice, bob, tiny):
    from notifications.slackbot.commands import handle_command

    hold(bob, tiny, "0-1")
    alice.profile.slack_user_id = "UALICE"
    alice.profile.save()
    reply = handle_command("wait tiny 2 3h training bert", slack_user_id="UALICE")
    entry = WaitlistEntry.objects.get(user=alice)
    assert (entry.gpus, entry.length, entry.purpose) == (2, 3 * H, "training bert")
    assert "2 GPUs on tiny (3h), place 1" in reply.text
    listed = handle_command("wait", slack_user_id="UALICE")
    assert f"#{entry.pk} 2 GPUs on tiny for 3h: place 1 in line" in listed.text


@pytest.mark.parametrize("text, says", [
    ("wait tiny", "Usage: `/gpu wait"),
    ("wait tiny 2", "Give a duration"),
    ("wait tiny 9 1h", "Ask for 1 to 2 GPUs on tiny"),
    ("wait tiny 2 soon", "soon"),
])
def test_gpu_wait_with_bad_input_says_what_is_wrong(alice, tiny, text, says):
    from notifications.slackbot.commands import handle_command

    alice.profile.slack_user_id = "UALICE"
    alice.profile.save()
    assert says in handle_command(text, slack_user_id="UALICE").text
    assert not WaitlistEntry.objects.exists()


# --- the hand-over and the beat ------------------------------------------------------------------


def test_the_hand_over_sends_the_match_task_only_when_someone_waits(monkeypatch, alice, bob, tiny, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("labres.celery.send_task_once", lambda task, args, kwargs=None: sent.append((task.name, args)))
    hand_to_worker = REAL_HAND_TO_WORKER  # the autouse fixture replaced the module's

    with django_capture_on_commit_callbacks(execute=True):
        hand_to_worker(server_id=tiny.pk)
    assert wait_for_hand_overs()
    assert sent == []  # nobody waits: no message to the broker
    hold(bob, tiny, "0-1")
    waiting_for(alice, tiny)
    with django_capture_on_commit_callbacks(execute=True):
        hand_to_worker(server_id=tiny.pk)
    assert wait_for_hand_overs()
    assert sent == [("reservations.tasks.match_waitlist", [tiny.pk, None])]


def test_the_beat_runs_the_sweep_every_minute(settings):
    from labres.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["match-waitlists"]
    assert entry["schedule"] == timedelta(minutes=1)
    assert entry["task"] in app.tasks


def test_a_broker_that_is_down_delays_matching_and_loses_nothing(monkeypatch, alice, bob, tiny, caplog, django_capture_on_commit_callbacks):
    def down(task, args, kwargs=None):
        raise ConnectionError("broker down")

    monkeypatch.setattr("labres.celery.send_task_once", down)
    hold(bob, tiny, "0-1")
    entry = waiting_for(alice, tiny)
    with django_capture_on_commit_callbacks(execute=True):
        REAL_HAND_TO_WORKER(server_id=tiny.pk)  # does not raise into the request that freed something
    assert wait_for_hand_overs()
    assert "the sweep will do it" in caplog.text
    assert fresh(entry).state == "waiting"


def test_a_retired_members_entry_leaves_the_line(alice, bob, carol, tiny, django_capture_on_commit_callbacks):
    held = hold(bob, tiny, "0")
    hold(bob, tiny, "1")
    first, second = waiting_for(alice, tiny), waiting_for(carol, tiny)
    alice.is_active = False
    alice.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.release_booking(held, by=bob)
    assert (fresh(first).state, fresh(second).state) == ("withdrawn", "offered")
