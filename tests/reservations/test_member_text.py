"""What members write that others read (purposes, names, reasons) is one line of plain text within
its column's length, whatever the surface; SQLite, which does not enforce lengths, included."""
from datetime import timedelta

import pytest
from django.core import mail

from notifications import outbox
from notifications.slackbot.commands import handle_command
from reservations import services
from reservations.services import waitlist
from reservations.errors import BookingError
from reservations.models import Booking, BookingSeries, Profile, WaitlistEntry
from reservations.text import text_problem
from tests.api.conftest import error_of, token_client

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)
REFUSED = ["two\nlines", "tab\there", "nul\x00", "bell\x07", "\x1b[31mred", "\u202eevil", "line\u2028separator", "lone \ud800 surrogate"]


@pytest.mark.parametrize("text", ["training ViT-B/16", "Übung für Jörg", "日本語のテスト", "family 👩\u200d👩\u200d👧", "a – b → c"])
def test_ordinary_text_in_any_script_is_fine(text):
    assert text_problem(text, label="purpose", max_length=200) is None


@pytest.mark.parametrize("text", REFUSED)
def test_control_characters_are_named_in_the_refusal(text):
    assert "contains a line break or another control character (U+" in text_problem(text, label="purpose", max_length=200)


def test_too_long_says_how_long_it_is_and_may_be():
    assert text_problem("x" * 201, label="purpose", max_length=200) == "Keep the purpose to 200 characters; it has 201."


@pytest.mark.parametrize("text", REFUSED)
def test_the_service_refuses_a_purpose_with_a_control_character_before_writing(alice, thalys, later, text):
    with pytest.raises(BookingError) as refused:
        services.create_booking(alice, start=later, end=later + H, server="thalys", devices="0", purpose=text)
    assert refused.value.field == "purpose"
    assert not Booking.objects.exists()


def test_changing_a_purpose_is_checked_the_same_way(alice, thalys, later):
    booking = services.create_booking(alice, start=later, end=later + H, server="thalys", devices="0", purpose="eval")
    with pytest.raises(BookingError, match="control character"):
        services.change_booking(booking, by=alice, purpose="eval\nBcc: eve")
    booking.refresh_from_db()
    assert booking.purpose == "eval"


def test_a_series_purpose_is_checked(alice, thalys, later):
    with pytest.raises(BookingError, match="Keep the purpose to 200 characters"):
        services.create_series(alice, start=later, end=later + H, repeat="weekly", count=2, server="thalys", devices="0", purpose="x" * 300)
    assert not BookingSeries.objects.exists() and not Booking.objects.exists()


def test_a_waitlist_purpose_is_refused_not_cut(alice, thalys):
    with pytest.raises(BookingError, match="Keep the purpose to 200 characters; it has 250"):
        waitlist.join(alice, server="thalys", gpus=1, length="1h", purpose="x" * 250)
    assert not WaitlistEntry.objects.exists()


def test_a_decline_reason_is_one_line(staff, alice, later):
    from tests.factories import ServerFactory

    ServerFactory(name="vault", gpus=1, requires_approval=True)
    booking = services.create_booking(alice, start=later, end=later + H, server="vault", devices="0")
    with pytest.raises(BookingError, match="control character"):
        services.decline_booking(booking, by=staff, reason="no\r\nX-Spam: yes")
    booking.refresh_from_db()
    assert booking.status == Booking.Status.PENDING


# --- the surfaces ----------------------------------------------------------------------------------


def test_slack_refuses_a_purpose_longer_than_the_column_holds(alice, thalys, later):
    Profile.objects.filter(user=alice).update(slack_user_id="UALICE")

    reply = handle_command("claim thalys:0 1h " + "x" * 5000, slack_user_id="UALICE", now=later)

    assert reply.text == "Keep the purpose to 200 characters; it has 5000."
    assert not Booking.objects.exists()


def test_slack_refuses_a_purpose_with_a_control_character(alice, thalys, later):
    Profile.objects.filter(user=alice).update(slack_user_id="UALICE")
    reply = handle_command("claim thalys:0 1h ring\x07ring", slack_user_id="UALICE", now=later)
    assert "control character (U+0007)" in reply.text
    assert not Booking.objects.exists()


def test_the_api_refuses_a_purpose_with_a_bidi_override_naming_the_field(alice, thalys, later):
    response = token_client(alice).post(
        "/api/v1/bookings/", {"server": "thalys", "devices": "0", "start": later.isoformat(), "duration": "1h", "purpose": "\u202egnp.exe"},
        format="json",
    )
    assert "purpose" in error_of(response, 400, "invalid")["fields"]
    assert not Booking.objects.exists()


def test_the_booking_page_shows_the_refusal_next_to_the_purpose(client, alice, thalys, later):
    from tests.reservations.test_book_page import field_error, form

    client.force_login(alice)
    response = client.post("/book/", form(later, purpose="bell\x07"))
    assert "control character (U+0007)" in field_error(response.content.decode(), "purpose")
    assert not Booking.objects.exists()


def test_a_display_name_with_a_line_break_is_refused_on_the_profile_page(client, alice):
    client.force_login(alice)

    response = client.post("/profile/", {"display_name": "Alice\nBcc: eve@example.com", "time_zone": ""})

    assert response.status_code == 400
    assert "This contains a line break or another control character (U+000A)" in response.content.decode()
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == ""


def test_mail_reaches_a_member_whose_name_was_stored_with_a_line_break_before_the_rule(alice, thalys, later):
    Profile.objects.filter(user=alice).update(display_name="Alice\nLiddell")  # written before names were checked
    services.create_booking(alice, start=later, end=later + H, server="thalys", devices="0", purpose="eval")
    outbox.expand_due()
    mail.outbox.clear()

    outbox.sweep()

    [message] = mail.outbox
    assert message.to == ["Alice Liddell <alice@lab.example.org>"]
