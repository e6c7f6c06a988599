"""`/gpu claim|book … cpus=16 mem=64G`: shares of a server's pooled CPU cores and memory from Slack."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.slackbot.commands import handle_command
from reservations import services
from reservations.models import Booking
from tests.factories import ServerFactory

from .test_transport import SECRET, post_command

H = timedelta(hours=1)


@pytest.fixture
def big(db):
    return ServerFactory(name="big", gpus=2, cpu_cores=128, memory_gib=1024)


def run(text, slack_id, now):
    return handle_command(text, slack_user_id=slack_id, now=now)


def test_claim_of_gpus_with_shares(alice_slack, big, later):
    reply = run("claim big:0-1 4h cpus=16 mem=64G training resnet", alice_slack, later)

    booking = Booking.objects.get()
    assert (booking.cpu_cores, booking.memory_gib, booking.purpose) == (16, 64, "training resnet")
    assert booking.end - booking.start == 4 * H
    assert f"#{booking.pk} big:0-1 + 16 CPU cores, 64 GiB" in reply.text


def test_claim_of_shares_alone_holds_no_gpu(alice_slack, big, later):
    reply = run("claim big 2h mem=1T cores=8", alice_slack, later)

    booking = Booking.objects.get()
    assert (booking.cpu_cores, booking.memory_gib, booking.whole_server, booking.allocations.count()) == (8, 1024, False, 0)
    assert "big: 8 CPU cores, 1024 GiB" in reply.text


def test_book_takes_share_words_anywhere_after_the_target(alice_slack, big, later):
    reply = run("book big cpus=32 tomorrow 9:00 3h eval mem=128GiB", alice_slack, later)

    booking = Booking.objects.get()
    assert (booking.cpu_cores, booking.memory_gib, booking.purpose) == (32, 128, "eval")
    assert booking.end - booking.start == 3 * H
    assert "big: 32 CPU cores, 128 GiB" in reply.text


@pytest.mark.parametrize(
    "text, message",
    [
        ("claim big 1h mem=512M", "'512M' is 0.5 GiB; memory is booked in whole GiB, e.g. 1G (in `mem=512M`)."),
        ("claim big 1h cpus=lots", "'lots' is not a number of CPU cores"),
        ("claim big 1h cpus=4 cores=8", "says the CPU cores twice"),
        ("claim big 1h cpus=129", "Server big has 128 CPU cores in all; you asked for 129."),
    ],
)
def test_bad_share_words_say_what_would_be_right(alice_slack, big, later, text, message):
    reply = run(text, alice_slack, later)

    assert message in reply.text
    assert not Booking.objects.exists()


def test_more_than_is_free_says_how_much_is_and_when_enough_frees_up(alice_slack, bob, big, later):
    services.create_booking(bob, start=later, end=later + 2 * H, server="big", memory_gib=1000)

    reply = run("claim big 1h mem=64G", alice_slack, later)

    assert "1000 are booked" in reply.text and "24 are free then" in reply.text and "Enough is free" in reply.text
    assert Booking.objects.count() == 1


def test_a_share_word_as_the_target_is_not_taken_for_a_share(alice_slack, big, later):
    reply = run("claim cpus=4 1h", alice_slack, later)

    assert not Booking.objects.exists()
    assert "no server 'cpus=4'" in reply.text


def test_help_explains_the_share_words(db):
    text = run("help", "UNOBODY", None).text

    assert "[cpus=N] [mem=SIZE]" in text and "`cpus=16 mem=64G`" in text


@pytest.mark.django_db(transaction=True)
def test_a_signed_slash_command_books_shares(live_server, settings, alice, big):
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.ALLOWED_HOSTS = ["*"]
    alice.profile.slack_user_id = "U0ALICE"
    alice.profile.save()

    response = post_command(live_server, "claim big 2h cpus=16 mem=64G preprocessing")

    assert response.status_code == 200
    booking = Booking.objects.get(user=alice)
    assert (booking.cpu_cores, booking.memory_gib, booking.source) == (16, 64, Booking.Source.SLACK)
    assert "big: 16 CPU cores, 64 GiB" in response.json()["text"]


def test_status_says_how_much_of_a_pool_is_booked_now(alice_slack, bob, big, later):
    services.create_booking(bob, start=later, end=later + 2 * H, server="big", cpu_cores=48, memory_gib=256)
    services.create_booking(bob, start=later + 3 * H, end=later + 4 * H, server="big", cpu_cores=16)  # not now

    reply = run("status big", alice_slack, later + H)

    text = str(reply.blocks)
    assert "CPU cores: 48 of 128 booked · memory: 256 of 1024 GiB booked" in text


def test_status_of_a_server_without_pools_has_no_pool_line(alice_slack, thalys, later):
    reply = run("status thalys", alice_slack, later)

    assert "CPU cores:" not in str(reply.blocks)


def test_status_pool_lines_cost_one_query_whatever_the_number_of_pooled_servers(alice_slack, bob, big, later, django_assert_max_num_queries):
    services.create_booking(bob, start=later, end=later + H, server="big", cpu_cores=8)
    with CaptureQueriesContext(connection) as few:
        run("status", alice_slack, later)
    for n in range(6):
        server = ServerFactory(gpus=1, cpu_cores=16, memory_gib=64)
        services.create_booking(bob, start=later, end=later + H, server=server.name, memory_gib=8)
    with django_assert_max_num_queries(len(few.captured_queries)):
        reply = run("status", alice_slack, later)
    assert str(reply.blocks).count("memory: 8 of 64 GiB booked") == 6
