from datetime import timedelta

import pytest

from notifications.slackbot.commands import handle_action, handle_command
from reservations.models import Booking
from tests.factories import ServerFactory


@pytest.fixture
def now(later):
    return later


def run(text, slack_id, now):
    return handle_command(text, slack_user_id=slack_id, now=now)


# --- help and dispatch ----------------------------------------------------------------------


def test_help_lists_every_command_with_an_example(db):
    reply = run("help", "UNOBODY", None)
    for name in ("status", "realtime", "claim", "book", "release", "extend", "mine", "link"):
        assert f"/gpu {name}" in reply.text
    assert "/gpu claim thalys:0-1 2h training resnet" in reply.text
    assert reply.as_slack()["response_type"] == "ephemeral"


def test_unknown_subcommand_points_to_help(alice_slack, now):
    reply = run("frobnicate", alice_slack, now)
    assert "frobnicate" in reply.text and "/gpu help" in reply.text


def test_unlinked_user_is_asked_to_link_first(db, thalys, now):
    reply = run("claim thalys:0 1h x", "UNOBODY", now)
    assert reply.text == "Link your Slack account first: /gpu link you@lab.org"
    assert not Booking.objects.exists()


def test_inactive_user_counts_as_unlinked(alice, alice_slack, now):
    alice.is_active = False
    alice.save()
    assert "Link your Slack account first" in run("mine", alice_slack, now).text


# --- claim ----------------------------------------------------------------------------------


def test_claim_books_now_from_slack(alice, alice_slack, thalys, now):
    reply = run("claim thalys:0-1 2h training resnet", alice_slack, now)
    booking = Booking.objects.get()
    assert (booking.user, booking.start, booking.end) == (alice, now, now + timedelta(hours=2))
    assert booking.source == Booking.Source.SLACK and booking.purpose == "training resnet"
    assert "thalys:0-1" in reply.text and f"#{booking.pk}" in reply.text
    assert not reply.in_channel


def test_claim_confirmation_has_release_and_extend_buttons(alice_slack, thalys, now):
    reply = run("claim thalys:0 1h x", alice_slack, now)
    booking = Booking.objects.get()
    buttons = [element for block in reply.blocks if block["type"] == "actions" for element in block["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("booking_release", str(booking.pk)), ("booking_extend", f"{booking.pk}:1h"),
    ]


def test_claim_is_posted_in_channel_when_announcing(settings, alice_slack, thalys, now):
    settings.SLACK_ANNOUNCE = True
    reply = run("claim thalys:0 1h x", alice_slack, now)
    assert reply.as_slack()["response_type"] == "in_channel"
    assert "<@UALICE>" in reply.text


def test_claim_of_unknown_server_names_the_known_ones(alice_slack, thalys, now):
    reply = run("claim zeus:0 1h x", alice_slack, now)
    assert "no server 'zeus'" in reply.text and "thalys" in reply.text


def test_claim_with_bad_device_set_says_how_to_write_one(alice_slack, thalys, now):
    reply = run("claim thalys:3-1 1h x", alice_slack, now)
    assert "backwards range" in reply.text and "Usage" in reply.text


def test_claim_of_missing_gpu_is_refused(alice_slack, thalys, now):
    reply = run("claim thalys:9 1h x", alice_slack, now)
    assert "9" in reply.text and not Booking.objects.exists()


def test_claim_with_bad_duration_shows_good_ones(alice_slack, thalys, now):
    reply = run("claim thalys:0 2hours x", alice_slack, now)
    assert "'2hours' is not a duration" in reply.text


def test_claim_without_duration_shows_usage(alice_slack, thalys, now):
    assert "Usage: `/gpu claim" in run("claim thalys:0", alice_slack, now).text


def test_claim_conflict_says_who_holds_what_until_when(bob, alice_slack, thalys, book, now):
    book(bob, now - timedelta(minutes=30), hours=2, purpose="llm", server=thalys, devices="1")
    reply = run("claim thalys:0-1 1h x", alice_slack, now)
    assert "GPU 1 on thalys is booked by bob" in reply.text and "(llm)" in reply.text
    assert Booking.objects.count() == 1


# --- book -----------------------------------------------------------------------------------


def test_book_reads_a_two_word_start(alice, alice_slack, thalys, now):
    run("book thalys:2 tomorrow 9:00 3h eval run", alice_slack, now)
    booking = Booking.objects.get()
    assert booking.start.astimezone(now.tzinfo).hour == 9
    assert booking.start.date() == (now + timedelta(days=1)).date()
    assert booking.end - booking.start == timedelta(hours=3) and booking.purpose == "eval run"


def test_book_reads_an_iso_start(alice_slack, thalys, now):
    start = (now + timedelta(days=2)).replace(hour=14, minute=0)
    run(f"book thalys:0 {start:%Y-%m-%dT%H:%M} 1h x", alice_slack, now)
    assert Booking.objects.get().start == start


def test_book_with_bad_time_says_what_times_look_like(alice_slack, thalys, now):
    reply = run("book thalys:0 noonish 1h x", alice_slack, now)
    assert "'noonish' is not a time" in reply.text and "tomorrow 9:00" in reply.text


def test_book_in_the_past_is_refused(alice_slack, thalys, now):
    reply = run(f"book thalys:0 {now - timedelta(days=1):%Y-%m-%dT%H:%M} 1h x", alice_slack, now)
    assert "in the past" in reply.text and not Booking.objects.exists()


# --- release, extend, mine ------------------------------------------------------------------


def test_release_without_argument_ends_the_only_running_booking(alice, alice_slack, thalys, book, now):
    booking = book(alice, now - timedelta(minutes=10), server=thalys, devices="0")
    reply = run("release", alice_slack, now)
    booking.refresh_from_db()
    assert booking.status == Booking.Status.RELEASED and booking.end == now
    assert f"#{booking.pk}" in reply.text


def test_release_without_argument_lists_several_running_bookings(alice, alice_slack, thalys, book, now):
    first = book(alice, now - timedelta(minutes=10), server=thalys, devices="0")
    second = book(alice, now - timedelta(minutes=5), server=thalys, devices="1")
    reply = run("release", alice_slack, now)
    assert f"#{first.pk}" in reply.text and f"#{second.pk}" in reply.text
    assert Booking.objects.filter(status=Booking.Status.CONFIRMED).count() == 2


def test_release_with_nothing_running_says_so(alice_slack, now):
    assert "no running booking" in run("release", alice_slack, now).text


def test_release_by_target_picks_the_booking_on_it(alice, alice_slack, thalys, book, now):
    book(alice, now - timedelta(minutes=10), server=thalys, devices="0")
    other = book(alice, now - timedelta(minutes=10), server=thalys, devices="1")
    run("release thalys:1", alice_slack, now)
    other.refresh_from_db()
    assert other.status == Booking.Status.RELEASED
    assert Booking.objects.filter(status=Booking.Status.CONFIRMED).count() == 1


def test_release_by_id_of_an_upcoming_booking_cancels_it(alice, alice_slack, thalys, book, now):
    booking = book(alice, now + timedelta(hours=3), server=thalys, devices="0")
    reply = run(f"release {booking.pk}", alice_slack, now)
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED and "Cancelled" in reply.text


def test_release_of_someone_elses_booking_is_refused(bob, alice_slack, thalys, book, now):
    booking = book(bob, now - timedelta(minutes=10), server=thalys, devices="0")
    reply = run(f"release {booking.pk}", alice_slack, now)
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert "belongs to bob" in reply.text


def test_release_of_unknown_booking_says_so(alice_slack, now):
    assert "There is no booking #999" in run("release 999", alice_slack, now).text


def test_release_is_posted_in_channel_when_announcing(settings, alice, alice_slack, thalys, book, now):
    settings.SLACK_ANNOUNCE = True
    book(alice, now - timedelta(minutes=10), server=thalys, devices="0")
    reply = run("release", alice_slack, now)
    assert reply.in_channel and "<@UALICE> released thalys:0" in reply.text


def test_extend_moves_the_end(alice, alice_slack, thalys, book, now):
    booking = book(alice, now - timedelta(minutes=10), server=thalys, devices="0")
    end = booking.end
    reply = run(f"extend {booking.pk} 1h30m", alice_slack, now)
    booking.refresh_from_db()
    assert booking.end == end + timedelta(minutes=90) and "Extended" in reply.text


def test_extend_into_a_conflict_says_who(alice, bob, alice_slack, thalys, book, now):
    booking = book(alice, now - timedelta(minutes=10), server=thalys, devices="0")
    book(bob, booking.end, server=thalys, devices="0", purpose="next")
    reply = run(f"extend {booking.pk} 1h", alice_slack, now)
    assert "booked by bob" in reply.text


def test_extend_with_bad_duration_is_refused(alice, alice_slack, thalys, book, now):
    booking = book(alice, now - timedelta(minutes=10), server=thalys, devices="0")
    assert "not a duration" in run(f"extend {booking.pk} forever", alice_slack, now).text


def test_extend_with_missing_arguments_shows_usage(alice_slack, now):
    assert "Usage: `/gpu extend ID DURATION`" in run("extend 3", alice_slack, now).text


def test_mine_lists_running_and_upcoming(alice, alice_slack, thalys, book, now):
    running = book(alice, now - timedelta(minutes=10), server=thalys, devices="0", purpose="train")
    upcoming = book(alice, now + timedelta(hours=5), server=thalys, devices="1-2")
    reply = run("mine", alice_slack, now)
    assert f"#{running.pk} thalys:0" in reply.text and f"#{upcoming.pk} thalys:1-2" in reply.text
    assert reply.text.index("Running") < reply.text.index("Upcoming")


def test_mine_without_bookings_says_how_to_book(alice_slack, now):
    assert "no running or upcoming bookings" in run("mine", alice_slack, now).text


# --- status and realtime --------------------------------------------------------------------


def test_status_shows_holder_mention_until_and_purpose(bob, bob_slack, alice_slack, thalys, book, now):
    book(bob, now - timedelta(minutes=10), hours=2, server=thalys, devices="1", purpose="llm")
    reply = run("", alice_slack, now)
    text = "\n".join(block["text"]["text"] for block in reply.blocks if block["type"] == "section")
    assert "`GPU 0` free" in text
    assert "`GPU 1` <@UBOB> until" in text and "llm" in text
    assert "7 of 8 GPUs free" in reply.text


def test_status_names_unlinked_holders(alice, alice_slack, bob, thalys, book, now):
    book(bob, now - timedelta(minutes=10), server=thalys, devices="0")
    text = str(run("status thalys", alice_slack, now).blocks)
    assert "`GPU 0` bob until" in text


def test_status_of_unknown_server_lists_servers(alice_slack, thalys, now):
    assert "no server 'zeus'" in run("status zeus", alice_slack, now).text


def many_servers(count, prefix="node"):
    return [ServerFactory(name=f"{prefix}{n:02d}", gpus=8) for n in range(count)]


def test_status_stays_within_slack_limits_for_50_servers(alice_slack, now):
    many_servers(50)
    reply = run("status", alice_slack, now)
    assert len(reply.blocks) <= 50
    assert all(len(block["text"]["text"]) <= 3000 for block in reply.blocks if "text" in block)
    assert "of 2 servers. See a server alone with `/gpu status SERVER`" in str(reply.blocks[-1])


def test_status_queries_do_not_grow_with_servers(alice, bob, alice_slack, bob_slack, book, now, django_assert_max_num_queries):
    servers = many_servers(3)
    book(bob, now - timedelta(minutes=10), server=servers[0], devices="0")
    with django_assert_max_num_queries(12) as few:
        run("status", alice_slack, now)
    more = many_servers(40, prefix="extra")
    for server in more[:10]:
        book(alice, now - timedelta(minutes=10), server=server, devices="0-1")
    with django_assert_max_num_queries(len(few.captured_queries)):
        run("status", alice_slack, now)


def test_realtime_without_telemetry_says_no_data(alice_slack, thalys, now):
    reply = run("realtime thalys", alice_slack, now)
    assert "`GPU 0` no data" in str(reply.blocks)


# --- buttons --------------------------------------------------------------------------------


def test_release_button_releases(alice, alice_slack, thalys, book, now):
    booking = book(alice, now - timedelta(minutes=10), server=thalys, devices="0")
    handle_action("booking_release", str(booking.pk), slack_user_id=alice_slack, now=now)
    booking.refresh_from_db()
    assert booking.status == Booking.Status.RELEASED


def test_extend_button_adds_an_hour(alice, alice_slack, thalys, book, now):
    booking = book(alice, now - timedelta(minutes=10), server=thalys, devices="0")
    end = booking.end
    handle_action("booking_extend", f"{booking.pk}:1h", slack_user_id=alice_slack, now=now)
    booking.refresh_from_db()
    assert booking.end == end + timedelta(hours=1)


def test_buttons_refuse_someone_elses_booking(bob, alice_slack, thalys, book, now):
    booking = book(bob, now - timedelta(minutes=10), server=thalys, devices="0")
    reply = handle_action("booking_release", str(booking.pk), slack_user_id=alice_slack, now=now)
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED and "belongs to bob" in reply.text


def test_buttons_of_unlinked_users_ask_to_link(db, now):
    reply = handle_action("booking_release", "1", slack_user_id="UNOBODY", now=now)
    assert "Link your Slack account first" in reply.text


def test_unknown_button_is_answered(alice_slack, now):
    assert "not known" in handle_action("mystery", "1", slack_user_id=alice_slack, now=now).text


# --- link -----------------------------------------------------------------------------------


def test_link_at_once_when_slacks_profile_email_matches(alice, fake_slack, now):
    fake_slack.emails_by_id["UNEW"] = "ALICE@lab.example.org"
    reply = run("link alice@lab.example.org", "UNEW", now)
    alice.profile.refresh_from_db()
    assert alice.profile.slack_user_id == "UNEW" and "Linked" in reply.text


def test_link_mails_a_confirmation_when_slack_email_differs(alice, fake_slack, now, mailoutbox, client):
    fake_slack.emails_by_id["UNEW"] = "someone@else.org"
    reply = run("link <mailto:alice@lab.example.org|alice@lab.example.org>", "UNEW", now)
    assert "e-mailed a confirmation link" in reply.text
    alice.profile.refresh_from_db()
    assert alice.profile.slack_user_id == ""
    (mail,) = mailoutbox
    assert mail.to == ["alice@lab.example.org"]
    url = next(word for word in mail.body.split() if "/slack/link/" in word)
    path = url[url.index("/slack/link/"):]
    assert client.get(path).status_code == 200
    assert client.post(path).status_code == 200
    alice.profile.refresh_from_db()
    assert alice.profile.slack_user_id == "UNEW"


def test_link_confirmation_with_a_forged_token_is_refused(alice, client):
    response = client.post("/slack/link/not-a-token/")
    assert response.status_code == 400 and b"not valid" in response.content


def test_link_with_unknown_email_is_refused(alice, fake_slack, now):
    assert "No labres member has the e-mail" in run("link nobody@lab.org", "UNEW", now).text


def test_link_refuses_a_slack_id_linked_to_someone_else(alice, bob, bob_slack, fake_slack, now):
    fake_slack.emails_by_id[bob_slack] = "alice@lab.example.org"
    reply = run("link alice@lab.example.org", bob_slack, now)
    assert "already linked to bob" in reply.text


def test_staff_links_someone_directly(staff, alice, fake_slack, now):
    from tests.slackbot.conftest import link

    link(staff, "USTAFF")
    reply = run("link <@UALICE|alice> alice@lab.example.org", "USTAFF", now)
    alice.profile.refresh_from_db()
    assert alice.profile.slack_user_id == "UALICE" and "Linked <@UALICE>" in reply.text


def test_members_cannot_link_someone_else(alice_slack, bob, now):
    reply = run("link <@UBOB|bob> bob@lab.example.org", alice_slack, now)
    assert "Only staff" in reply.text
