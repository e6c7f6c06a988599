"""The booking form (/book/): defaults, prefilling from links, booking, errors on their fields, the live check."""
import re
from datetime import timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from reservations.models import Booking, Profile
from reservations.services import create_booking

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


BERLIN = ZoneInfo("Europe/Berlin")


def lab_zone():
    return ZoneInfo(settings.TIME_ZONE)


def local(moment, zone=None):
    """What <input type=datetime-local> shows for `moment` in `zone` (the lab's by default)."""
    return timezone.localtime(moment, zone or lab_zone()).strftime("%Y-%m-%dT%H:%M")


def when(moment, zone=None):
    return timezone.localtime(moment, zone or lab_zone()).strftime("%a %d %b %H:%M")


def form(moment, **changes):
    """The fields the page posts, asking for GPU 0 on thalys for an hour from `moment`."""
    data = {
        "what": "gpus", "server": "thalys", "gpus": ["thalys:0"], "devices": "", "room": "Lab 2",
        "start": local(moment), "length": "1h", "duration": "", "end": "", "purpose": "",
    }
    data.update(changes)
    return data


def field_error(page, field):
    """The text of the inline error tied to a field (the element aria-describedby points at)."""
    match = re.search(rf'id="id_{field}_error">(.*?)</div>', page, re.DOTALL)
    return match.group(1) if match else ""


def held_indices(booking):
    return sorted(a.unit.device.index for a in booking.allocations.select_related("unit__device"))


# --- login and CSRF ------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [("get", "/book/"), ("post", "/book/"), ("get", "/book/check/"), ("post", "/book/check/")])
def test_booking_pages_need_a_login(client, method, path):
    response = getattr(client, method)(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_posting_without_a_csrf_token_is_refused(alice, thalys, room, later):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post("/book/", form(later))

    assert response.status_code == 403
    assert not Booking.objects.exists()


def test_form_carries_a_csrf_token(client, alice, thalys):
    client.force_login(alice)

    assert 'name="csrfmiddlewaretoken"' in client.get("/book/").content.decode()


# --- the empty form ------------------------------------------------------------------------


def test_form_starts_now_in_the_members_time_zone(client, alice, thalys):
    Profile.objects.update_or_create(user=alice, defaults={"time_zone": "Europe/Berlin"})
    client.force_login(alice)

    before = timezone.now()
    page = client.get("/book/").content.decode()
    after = timezone.now()

    shown = re.search(r'name="start" value="([^"]+)"', page).group(1)
    assert shown in {local(before, BERLIN), local(after, BERLIN)}
    assert "Europe/Berlin" in page


def test_form_offers_each_servers_gpus_and_the_rooms(client, alice, thalys, room):
    client.force_login(alice)

    page = client.get("/book/").content.decode()

    assert all(f'value="thalys:{i}"' in page for i in range(8))
    assert "GPUs on thalys" in page
    assert '<option value="Lab 2"' in page
    assert re.search(r'value="1h"[^>]*checked', page)  # an hour unless told otherwise


def test_every_control_has_a_label(client, alice, thalys, room):
    client.force_login(alice)
    page = client.get("/book/").content.decode()

    class Controls(HTMLParser):
        def __init__(self):
            super().__init__()
            self.ids, self.labelled, self.in_label, self.wrapped = [], set(), 0, 0

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "label":
                self.in_label += 1
                self.labelled.add(attrs.get("for"))
            elif tag in ("input", "select", "textarea") and attrs.get("type") not in ("hidden", "submit"):
                self.ids.append(attrs.get("id"))
                self.wrapped += bool(self.in_label)

        def handle_endtag(self, tag):
            if tag == "label":
                self.in_label -= 1

    controls = Controls()
    controls.feed(page)

    assert controls.ids and None not in controls.ids
    assert set(controls.ids) <= controls.labelled


# --- prefilling from a link ----------------------------------------------------------------


def test_link_prefills_server_gpus_start_and_end(client, alice, thalys, later):
    client.force_login(alice)

    page = client.get(f"/book/?server=thalys&devices=0-1&start={local(later)}&end={local(later + 2 * H)}").content.decode()

    assert re.search(r'value="thalys:0"[^>]*checked', page)
    assert re.search(r'value="thalys:1"[^>]*checked', page)
    assert not re.search(r'value="thalys:2"[^>]*checked', page)
    assert f'name="start" value="{local(later)}"' in page
    assert f'name="end" value="{local(later + 2 * H)}"' in page
    assert "Free: thalys GPUs 0-1" in page


def test_link_with_ticked_gpus_selects_their_server(client, alice, thalys, later):
    from tests.factories import ServerFactory

    ServerFactory(name="eurostar", gpus=4)  # first by name, so the form's default
    client.force_login(alice)

    page = client.get("/book/?gpus=thalys:3").content.decode()

    assert '<option value="thalys" selected>' in page
    assert re.search(r'value="thalys:3"[^>]*checked', page)


def test_link_with_empty_devices_prefills_the_whole_server(client, alice, thalys, later):
    client.force_login(alice)

    page = client.get(f"/book/?server=thalys&devices=&start={local(later)}").content.decode()

    assert re.search(r'value="server"[^>]*checked', page)
    assert "Free: thalys (whole server)" in page


def test_link_prefills_a_room(client, alice, room, later):
    client.force_login(alice)

    page = client.get(f"/book/?room=lab 2&start={local(later)}").content.decode()

    assert re.search(r'value="room"[^>]*checked', page)
    assert '<option value="Lab 2" selected>' in page
    assert "Free: room Lab 2" in page


def test_link_with_unknown_names_and_bad_dates_is_ignored_with_a_note(client, alice, thalys):
    client.force_login(alice)

    response = client.get("/book/?server=nope&room=attic&start=yesterday&end=2025-02-30T10:00")

    page = response.content.decode()
    assert response.status_code == 200
    assert "There is no server &#x27;nope&#x27;" in page
    assert "There is no room &#x27;attic&#x27;" in page
    assert "The start &#x27;yesterday&#x27; in the link is not a date and time" in page
    assert "The end &#x27;2025-02-30T10:00&#x27;" in page


def test_link_with_devices_the_server_lacks_shows_why(client, alice, thalys, later):
    client.force_login(alice)

    response = client.get(f"/book/?server=thalys&devices=9&start={local(later)}")

    assert response.status_code == 200
    assert "Device 9 does not exist on thalys (it has 0-7)" in response.content.decode()


def test_link_naming_only_a_server_and_times_shows_no_complaint_yet(client, alice, thalys, later):
    client.force_login(alice)

    page = client.get(f"/book/?server=thalys&start={local(later)}").content.decode()

    assert "Choose what and when" in page
    assert 'class="error"' not in page


@pytest.mark.parametrize(
    "query",
    [
        "start=9999-12-31T23:59&end=0001-01-01T00:00",
        "server=thalys&devices=abc&gpus=x:y&gpus=thalys:99&length=zz&duration=2x",
        "server=thalys&devices=5-1,9999999999999",
        "room=&server=&what=&start=&purpose=" + "x" * 500,
        "what=room&server=thalys&devices=0",
        "start=2026-03-29T02:30&server=thalys&devices=0",  # a time the clocks skip in Berlin
    ],
    ids=["dates_out_of_range", "garbage_everywhere", "huge_device_index", "all_empty", "devices_with_room", "skipped_time"],
)
def test_odd_links_never_break_the_page(client, alice, thalys, room, query):
    Profile.objects.update_or_create(user=alice, defaults={"time_zone": "America/New_York"})
    client.force_login(alice)

    assert client.get(f"/book/?{query}").status_code == 200


def test_form_checks_itself_as_it_changes(client, alice, thalys):
    client.force_login(alice)

    page = client.get("/book/").content.decode()

    assert 'hx-post="/book/check/"' in page
    assert 'hx-target="#book-check"' in page
    assert re.search(r'id="book-check"[^>]*aria-live="polite"', page)


# --- booking -------------------------------------------------------------------------------


def test_booking_gpus_creates_the_booking_and_redirects_to_it(client, alice, thalys, later):
    client.force_login(alice)

    response = client.post("/book/", form(later, gpus=["thalys:0", "thalys:1"], length="2h", purpose="training resnet"))

    booking = Booking.objects.get()
    assert response.status_code == 303
    assert response["Location"] == f"/bookings/{booking.pk}/"
    assert (booking.user, booking.server, held_indices(booking)) == (alice, thalys, [0, 1])
    assert (booking.start, booking.end) == (later, later + 2 * H)
    assert (booking.source, booking.purpose) == (Booking.Source.WEB, "training resnet")


def test_booking_shows_a_success_message_on_the_bookings_page(client, alice, thalys, later):
    client.force_login(alice)

    page = client.post("/book/", form(later), follow=True).content.decode()

    assert "Booked thalys:0," in page
    assert "Booking #" in page


def test_typed_devices_win_over_ticked_boxes(client, alice, thalys, later):
    client.force_login(alice)

    client.post("/book/", form(later, gpus=["thalys:0"], devices="2-3,5"))

    assert held_indices(Booking.objects.get()) == [2, 3, 5]


def test_whole_server_choice_books_the_server(client, alice, thalys, later):
    client.force_login(alice)

    client.post("/book/", form(later, what="server", gpus=[]))

    booking = Booking.objects.get()
    assert booking.whole_server and booking.server == thalys
    assert booking.allocations.count() == 9  # the server itself and its eight GPUs


def test_room_choice_books_the_room(client, alice, thalys, room, later):
    client.force_login(alice)

    client.post("/book/", form(later, what="room", gpus=[]))

    booking = Booking.objects.get()
    assert (booking.room, booking.server) == (room, None)


def test_typed_length_wins_over_the_quick_choice(client, alice, thalys, later):
    client.force_login(alice)

    client.post("/book/", form(later, length="1h", duration="1h30m"))

    assert Booking.objects.get().end == later + timedelta(minutes=90)


def test_end_time_wins_over_any_length(client, alice, thalys, later):
    client.force_login(alice)

    client.post("/book/", form(later, length="1h", duration="2h", end=local(later + 5 * H)))

    assert Booking.objects.get().end == later + 5 * H


def test_start_is_read_in_the_members_time_zone(client, alice, thalys, later):
    Profile.objects.update_or_create(user=alice, defaults={"time_zone": "Europe/Berlin"})
    client.force_login(alice)

    client.post("/book/", form(later, start=local(later, BERLIN)))

    assert Booking.objects.get().start == later


def test_ticked_gpus_on_another_server_say_which_server_is_meant(client, alice, thalys, later):
    from tests.factories import ServerFactory

    ServerFactory(name="eurostar", gpus=4)
    client.force_login(alice)

    client.post("/book/", form(later, server="thalys", gpus=["eurostar:2"]))

    booking = Booking.objects.get()
    assert booking.what == "eurostar:2"


# --- bad input: 200, the message on its field, nothing booked ------------------------------

BAD_INPUT = {
    "start_not_a_date": ({"start": "yesterday"}, "start", "Enter a valid date/time."),
    "start_in_the_past": ({"start": "2020-01-06T10:00"}, "start", "The start is in the past"),
    "start_far_ahead": ({"start": "9999-12-31T23:59"}, "start", "more than ten years away"),
    "end_before_start": ({"end": "2020-01-06T10:00", "start": None}, "end", "The end must be after the start."),
    "duration_unreadable": ({"duration": "2x"}, "duration", "&#x27;2x&#x27; is not a duration"),
    "too_long": ({"duration": "15d"}, "duration", "A booking may last at most 14d"),
    "no_length": ({"length": ""}, "length", "Choose a length, type one, or give an end time."),
    "unknown_server": ({"server": "nope", "gpus": [], "devices": "0"}, "server", "There is no server &#x27;nope&#x27;; servers: thalys."),
    "unknown_room": ({"what": "room", "gpus": [], "room": "attic"}, "room", "There is no room &#x27;attic&#x27;"),
    "gpu_the_server_lacks": ({"devices": "9"}, "devices", "Device 9 does not exist on thalys (it has 0-7)."),
    "devices_unreadable": ({"devices": "0-x"}, "devices", "&#x27;0-x&#x27; is not a GPU index or range"),
    "devices_with_a_room": ({"what": "room", "devices": "0"}, "devices", "A room has no GPUs"),
    "no_gpus": ({"gpus": []}, "devices", "Tick at least one GPU"),
    "no_such_gpu_box": ({"gpus": ["thalys:12"]}, "gpus", "Select a valid choice."),
    "what_unknown": ({"what": "boat"}, "what", "Select a valid choice."),
    "purpose_too_long": ({"purpose": "x" * 201}, "purpose", "at most 200 characters"),
}


@pytest.mark.parametrize("changes, field, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_shown_on_its_field_and_books_nothing(client, alice, thalys, room, later, changes, field, message):
    client.force_login(alice)
    if changes.get("start", "") is None:
        changes = {**changes, "start": local(later)}

    response = client.post("/book/", form(later, **changes))

    page = response.content.decode()
    assert response.status_code == 200
    assert message in field_error(page, field)
    assert f'aria-describedby="id_{field}' in page or f'id="id_{field}"' in page
    assert 'role="alert"' in page
    assert not Booking.objects.exists()


@pytest.mark.parametrize("path", ["/book/", "/book/check/"])
@pytest.mark.parametrize(
    "changes",
    [
        {"start": "2026-03-29T02:30"},  # a time the clocks skip in Berlin
        {"start": "9999-12-31T23:59", "duration": "3650d"},
        {"end": "0001-01-01T00:00"},
        {"devices": "0-99999999999999999999"},
        {"gpus": ["thalys:x", "nope"], "server": ""},
        {"what": "", "server": "", "room": "", "start": ""},
        {"duration": "99999999999999999999d"},
    ],
    ids=["skipped_time", "far_future", "year_one", "huge_devices", "tampered_boxes", "all_empty", "huge_duration"],
)
def test_odd_posts_never_break_the_page(client, alice, thalys, room, later, path, changes):
    Profile.objects.update_or_create(user=alice, defaults={"time_zone": "Europe/Berlin"})
    client.force_login(alice)

    response = client.post(path, form(later, **changes))

    assert response.status_code == 200
    assert not Booking.objects.exists()


def test_field_with_an_error_points_at_its_message(client, alice, thalys, later):
    client.force_login(alice)

    page = client.post("/book/", form(later, duration="2x")).content.decode()

    tag = re.search(r'<input[^>]*name="duration"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in tag
    assert "id_duration_error" in re.search(r'aria-describedby="([^"]*)"', tag).group(1)


def test_conflict_names_the_holder_their_times_and_the_nearest_free_start(client, alice, bob, thalys, later):
    create_booking(alice, start=later, end=later + 2 * H, server="thalys", devices="0-1", purpose="training resnet")
    client.force_login(bob)

    response = client.post("/book/", form(later + H, gpus=["thalys:1", "thalys:2"], purpose="eval"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "GPU 1 on thalys is booked by Alice Liddell" in page
    assert f"from {when(later)} to {timezone.localtime(later + 2 * H, lab_zone()):%H:%M}" in page
    assert "(training resnet)" in page
    assert f"Nearest free start: <strong>{when(later + 2 * H)}</strong>" in page
    assert f'data-start="{local(later + 2 * H)}"' in page
    assert Booking.objects.filter(user=bob).count() == 0


def test_conflicts_use_it_link_fills_the_form_in_again_with_the_free_start(client, alice, bob, thalys, later):
    create_booking(alice, start=later, end=later + 2 * H, server="thalys", devices="0")
    client.force_login(bob)
    page = client.post("/book/", form(later, purpose="eval")).content.decode()
    link = re.search(r'<a href="([^"]+)" class="use-it"', page).group(1).replace("&amp;", "&")

    again = client.get(link).content.decode()

    assert f'name="start" value="{local(later + 2 * H)}"' in again
    assert re.search(r'value="thalys:0"[^>]*checked', again)
    assert 'value="eval"' in again
    assert "Free: thalys GPU 0" in again
    assert "csrfmiddlewaretoken" not in link


# --- the live check ------------------------------------------------------------------------


def test_check_says_free_with_what_and_when(client, alice, thalys, later):
    client.force_login(alice)

    response = client.post("/book/check/", form(later, gpus=["thalys:0", "thalys:1"], length="2h"))

    end = timezone.localtime(later + 2 * H, lab_zone())
    assert response.status_code == 200
    assert f"Free: thalys GPUs 0-1, {when(later)}–{end:%H:%M} {end.tzname()}" in response.content.decode()


def test_check_names_who_holds_which_part_and_the_nearest_free_start(client, alice, bob, thalys, later):
    create_booking(alice, start=later, end=later + 3 * H, server="thalys", devices="3", purpose="sweep")
    client.force_login(bob)

    page = client.post("/book/check/", form(later + H, gpus=[], devices="2-4")).content.decode()

    assert "Taken: thalys GPUs 2-4" in page
    assert "GPU 3 on thalys is booked by Alice Liddell" in page
    assert "(sweep)" in page
    assert f"Nearest free start: <strong>{when(later + 3 * H)}</strong>" in page


def test_check_lists_one_line_per_conflicting_booking(client, alice, bob, staff, thalys, later):
    create_booking(alice, start=later, end=later + H, server="thalys", devices="0")
    create_booking(staff, start=later, end=later + H, server="thalys", devices="1")
    client.force_login(bob)

    page = client.post("/book/check/", form(later, what="server", gpus=[])).content.decode()

    assert page.count("<li>") == 2
    assert "GPU 0 on thalys is booked by Alice Liddell" in page and "GPU 1 on thalys is booked by stella" in page


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"start": "yesterday"}, "Start: Enter a valid date/time."),
        ({"devices": "9"}, "Device 9 does not exist on thalys"),
        ({"server": "nope", "devices": "0"}, "There is no server &#x27;nope&#x27;"),
        ({"duration": "2x"}, "Length: &#x27;2x&#x27; is not a duration"),
    ],
    ids=["bad_date", "missing_gpu", "unknown_server", "bad_duration"],
)
def test_check_shows_the_validation_message_for_bad_input(client, alice, thalys, later, changes, message):
    client.force_login(alice)

    response = client.post("/book/check/", form(later, **changes))

    assert response.status_code == 200
    assert message in response.content.decode()


def test_check_answers_a_get_too(client, alice, thalys, later):
    client.force_login(alice)

    response = client.get("/book/check/", {"what": "server", "server": "thalys", "start": local(later), "length": "30m"})

    assert "Free: thalys (whole server)" in response.content.decode()


def test_check_of_an_empty_request_says_what_is_missing(client, alice, thalys):
    client.force_login(alice)

    response = client.get("/book/check/")

    assert response.status_code == 200
    assert "Start: This field is required." in response.content.decode()


def test_booking_a_server_that_needs_approval_says_it_awaits_it(client, alice, thalys, later):
    thalys.requires_approval = True
    thalys.save()
    client.force_login(alice)

    check = client.get("/book/check/", form(later)).content.decode()
    page = client.post("/book/", form(later), follow=True).content.decode()

    assert "need staff approval" in check
    assert "awaits approval by staff" in page and "awaiting approval" in page
    assert Booking.objects.get().status == Booking.Status.PENDING
