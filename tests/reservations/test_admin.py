"""The staff admin: pages load, lists stay cheap, and every booking write goes through the services."""
from datetime import timedelta

import pytest
from django.contrib import messages
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reservations import services
from reservations.models import Booking, Unit

from ..factories import UserFactory

ADD_URL = "/admin/reservations/booking/add/"
CHANGELIST_URL = "/admin/reservations/booking/"


@pytest.fixture
def admin_user_(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(client, admin_user_):
    client.force_login(admin_user_)
    return client


def change_url(booking):
    return reverse("admin:reservations_booking_change", args=[booking.pk])


def split(name, moment):
    """A datetime the way the admin's split date and time widgets post it."""
    local = timezone.localtime(moment)
    return {f"{name}_0": local.strftime("%Y-%m-%d"), f"{name}_1": local.strftime("%H:%M:%S")}


def add_data(user, start, end, *, server=None, devices="", room=None, purpose="admin booking"):
    return {
        "user": user.pk,
        "server": server.pk if server else "",
        "devices": devices,
        "room": room.pk if room else "",
        **split("start", start),
        **split("end", end),
        "purpose": purpose,
    }


def change_data(booking, *, start=None, end=None, purpose=None):
    """What the change page posts: the three editable fields and the read-only allocations inline."""
    allocations = list(booking.allocations.order_by("pk"))
    data = {
        **split("start", start or booking.start),
        **split("end", end or booking.end),
        "purpose": booking.purpose if purpose is None else purpose,
        "allocations-TOTAL_FORMS": len(allocations),
        "allocations-INITIAL_FORMS": len(allocations),
        "allocations-MIN_NUM_FORMS": 0,
        "allocations-MAX_NUM_FORMS": 0,
    }
    for index, allocation in enumerate(allocations):
        data[f"allocations-{index}-id"] = allocation.pk
        data[f"allocations-{index}-booking"] = booking.pk
    return data


def form_errors(response):
    return response.context["adminform"].form.errors


def started_booking(user, server, devices):
    """A booking that began half an hour ago, made as if it had been asked for before that."""
    start = timezone.now() - timedelta(minutes=30)
    return services.create_booking(user, start=start, end=start + timedelta(hours=2), server=server, devices=devices, now=start - timedelta(minutes=1))


# --- pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["server", "device", "room", "booking"])
def test_admin_changelist_of_every_registered_model_loads(staff_client, alice, thalys, room, book, later, model):
    book(alice, later, server=thalys, devices="0-1")
    book(alice, later, room=room)

    response = staff_client.get(reverse(f"admin:reservations_{model}_changelist"))

    assert response.status_code == 200


def test_admin_booking_changelist_shows_what_is_booked(staff_client, alice, thalys, room, book, later):
    book(alice, later, server=thalys, devices="0-1")
    book(alice, later + timedelta(hours=2), server=thalys)
    book(alice, later, room=room)

    content = staff_client.get(CHANGELIST_URL).content.decode()

    assert "thalys:0-1" in content
    assert "thalys (whole server)" in content
    assert "room Lab 2" in content


def test_admin_booking_changelist_queries_do_not_grow_with_bookings(staff_client, alice, bob, thalys, room, book, later):
    def queries_for_changelist():
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get(CHANGELIST_URL)
        assert response.status_code == 200
        return len(captured)

    book(alice, later, server=thalys, devices="0-1")
    book(bob, later, room=room)
    with_two = queries_for_changelist()
    for hour in range(1, 5):
        book(alice, later + timedelta(hours=hour), server=thalys, devices=str(hour))
        book(bob, later + timedelta(hours=hour), room=room)
    with_ten = queries_for_changelist()

    assert Booking.objects.count() == 10
    assert with_ten == with_two


def test_admin_booking_change_page_shows_the_allocations(staff_client, alice, thalys, book, later):
    booking = book(alice, later, server=thalys, devices="0-1")

    response = staff_client.get(change_url(booking))

    assert response.status_code == 200
    assert "GPU 0 on thalys" in response.content.decode()
    assert "GPU 1 on thalys" in response.content.decode()


def test_admin_cannot_delete_bookings(staff_client, alice, thalys, book, later):
    booking = book(alice, later, server=thalys, devices="0")

    response = staff_client.get(reverse("admin:reservations_booking_delete", args=[booking.pk]))

    assert response.status_code == 403
    actions = dict(staff_client.get(CHANGELIST_URL).context["action_form"].fields["action"].choices)
    assert "delete_selected" not in actions
    assert Booking.objects.filter(pk=booking.pk).exists()


def test_admin_add_server_with_gpus_gives_each_gpu_a_unit(staff_client):
    data = {
        "name": "orion",
        "hostname": "",
        "location": "",
        "description": "",
        "active": "on",
        "devices-TOTAL_FORMS": 2,
        "devices-INITIAL_FORMS": 0,
        "devices-MIN_NUM_FORMS": 0,
        "devices-MAX_NUM_FORMS": 1000,
        "devices-0-index": 0,
        "devices-0-active": "on",
        "devices-1-index": 1,
        "devices-1-active": "on",
    }

    response = staff_client.post(reverse("admin:reservations_server_add"), data)

    assert response.status_code == 302
    assert Unit.objects.filter(server__name="orion", kind=Unit.Kind.GPU).count() == 2
    assert Unit.objects.filter(server__name="orion", kind=Unit.Kind.SERVER).count() == 1


# --- adding bookings ------------------------------------------------------------------------


def test_admin_add_booking_creates_it_through_the_service(staff_client, alice, thalys, later):
    response = staff_client.post(ADD_URL, add_data(alice, later, later + timedelta(hours=2), server=thalys, devices="0-1"))

    assert response.status_code == 302
    booking = Booking.objects.get()
    assert booking.user == alice
    assert booking.source == Booking.Source.ADMIN
    assert (booking.start, booking.end) == (later, later + timedelta(hours=2))
    assert booking.what == "thalys:0-1"
    assert sorted(a.unit.device.index for a in booking.allocations.all()) == [0, 1]
    assert all((a.start, a.end, a.active) == (later, later + timedelta(hours=2), True) for a in booking.allocations.all())


def test_admin_add_booking_without_devices_books_the_whole_server(staff_client, alice, thalys, later):
    response = staff_client.post(ADD_URL, add_data(alice, later, later + timedelta(hours=1), server=thalys))

    assert response.status_code == 302
    booking = Booking.objects.get()
    assert booking.whole_server
    assert booking.allocations.count() == 9  # the server's own unit and its eight GPUs


def test_admin_add_room_booking(staff_client, alice, room, later):
    response = staff_client.post(ADD_URL, add_data(alice, later, later + timedelta(hours=1), room=room))

    assert response.status_code == 302
    assert Booking.objects.get().what == "room Lab 2"


def test_admin_add_booking_conflict_is_a_form_error(staff_client, alice, bob, thalys, book, later):
    book(alice, later, hours=2, server=thalys, devices="1")

    response = staff_client.post(ADD_URL, add_data(bob, later + timedelta(hours=1), later + timedelta(hours=3), server=thalys, devices="0-1"))

    assert response.status_code == 200
    assert "booked by Alice Liddell" in " ".join(form_errors(response)["__all__"])
    assert "booked by Alice Liddell" in response.content.decode()
    assert Booking.objects.count() == 1


@pytest.mark.parametrize(
    ("devices", "message"),
    [("9", "Device 9 does not exist on thalys (it has 0-7)."), ("2x", "'2x' is not a GPU index or range")],
)
def test_admin_add_booking_bad_device_set_is_a_devices_error(staff_client, alice, thalys, later, devices, message):
    response = staff_client.post(ADD_URL, add_data(alice, later, later + timedelta(hours=1), server=thalys, devices=devices))

    assert response.status_code == 200
    assert message in form_errors(response)["devices"][0]
    assert not Booking.objects.exists()


def test_admin_add_booking_of_neither_server_nor_room_is_a_server_error(staff_client, alice, later):
    response = staff_client.post(ADD_URL, add_data(alice, later, later + timedelta(hours=1)))

    assert response.status_code == 200
    assert "Book either a server" in form_errors(response)["server"][0]


def test_admin_add_booking_of_devices_with_a_room_is_a_devices_error(staff_client, alice, room, later):
    response = staff_client.post(ADD_URL, add_data(alice, later, later + timedelta(hours=1), room=room, devices="0"))

    assert response.status_code == 200
    assert "GPUs belong to a server" in form_errors(response)["devices"][0]
    assert not Booking.objects.exists()


def test_admin_add_booking_in_the_past_is_a_start_error(staff_client, alice, thalys):
    start = timezone.now() - timedelta(hours=1)

    response = staff_client.post(ADD_URL, add_data(alice, start, start + timedelta(hours=2), server=thalys, devices="0"))

    assert response.status_code == 200
    assert "The start is in the past" in form_errors(response)["start"][0]
    assert not Booking.objects.exists()


# --- changing bookings ----------------------------------------------------------------------


def test_admin_change_moving_into_another_booking_is_a_form_error(staff_client, alice, bob, thalys, book, later):
    book(alice, later + timedelta(hours=3), hours=2, server=thalys, devices="0")
    booking = book(bob, later, hours=2, server=thalys, devices="0-1")

    response = staff_client.post(change_url(booking), change_data(booking, end=later + timedelta(hours=4)))

    assert response.status_code == 200
    assert "booked by Alice Liddell" in " ".join(form_errors(response)["__all__"])
    booking.refresh_from_db()
    assert booking.end == later + timedelta(hours=2)
    assert set(booking.allocations.values_list("end", flat=True)) == {later + timedelta(hours=2)}


def test_admin_change_moving_to_a_free_time_moves_the_allocations(staff_client, alice, bob, thalys, book, later):
    book(alice, later, hours=2, server=thalys, devices="0")
    booking = book(bob, later + timedelta(hours=3), hours=1, server=thalys, devices="0-1")
    new_start, new_end = later + timedelta(hours=5), later + timedelta(hours=7)

    response = staff_client.post(change_url(booking), change_data(booking, start=new_start, end=new_end))

    assert response.status_code == 302
    booking.refresh_from_db()
    assert (booking.start, booking.end) == (new_start, new_end)
    assert set(booking.allocations.values_list("start", "end")) == {(new_start, new_end)}


def test_admin_change_of_a_running_booking_start_is_a_start_error(staff_client, alice, thalys):
    booking = started_booking(alice, thalys, "0")

    response = staff_client.post(change_url(booking), change_data(booking, start=booking.start + timedelta(minutes=10)))

    assert response.status_code == 200
    assert "its start cannot move" in form_errors(response)["start"][0]


def test_admin_change_purpose_alone_saves_only_the_purpose(staff_client, alice, thalys):
    booking = started_booking(alice, thalys, "0")  # running, with a start to the microsecond

    response = staff_client.post(change_url(booking), change_data(booking, purpose="training resnet"))

    assert response.status_code == 302
    moved = Booking.objects.get(pk=booking.pk)
    assert moved.purpose == "training resnet"
    assert (moved.start, moved.end) == (booking.start, booking.end)


def test_admin_change_refused_by_the_inline_keeps_nothing_the_service_wrote(staff_client, alice, thalys, book, later):
    booking = book(alice, later, server=thalys, devices="0")
    data = change_data(booking, start=later + timedelta(hours=2), end=later + timedelta(hours=3))
    del data["allocations-TOTAL_FORMS"]  # a tampered or stale page: the inline is refused after clean()

    response = staff_client.post(change_url(booking), data)

    assert response.status_code == 200
    booking.refresh_from_db()
    assert (booking.start, booking.end) == (later, later + timedelta(hours=1))
    assert set(booking.allocations.values_list("start", flat=True)) == {later}


# --- cancelling -----------------------------------------------------------------------------


def test_admin_cancel_action_cancels_future_bookings_and_warns_for_started_ones(staff_client, alice, bob, thalys, book, later):
    future = book(alice, later, server=thalys, devices="0")
    running = started_booking(bob, thalys, "1")

    response = staff_client.post(
        CHANGELIST_URL, {"action": "cancel_selected", "_selected_action": [future.pk, running.pk]}
    )

    assert response.status_code == 302
    future.refresh_from_db()
    running.refresh_from_db()
    assert future.status == Booking.Status.CANCELLED
    assert not future.allocations.filter(active=True).exists()
    assert running.status == Booking.Status.CONFIRMED
    assert running.allocations.filter(active=True).count() == 1
    reported = [(m.level, m.message) for m in get_messages(response.wsgi_request)]
    assert (messages.SUCCESS, "Cancelled 1 booking.") in reported
    assert (messages.WARNING, f"Booking #{running.pk} has already started; release it to end it now.") in reported


def test_admin_cancel_action_warns_for_an_already_cancelled_booking(staff_client, alice, thalys, book, later, admin_user_):
    booking = book(alice, later, server=thalys, devices="0")
    services.cancel_booking(booking, by=admin_user_)

    response = staff_client.post(CHANGELIST_URL, {"action": "cancel_selected", "_selected_action": [booking.pk]})

    assert response.status_code == 302
    reported = [(m.level, m.message) for m in get_messages(response.wsgi_request)]
    assert reported == [(messages.WARNING, f"Booking #{booking.pk} is cancelled.")]
