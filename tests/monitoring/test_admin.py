"""The monitoring admin: hosts with their state, alerts listed, filtered and resolved, read-only
telemetry lists that stay cheap; and the server and member pages show the monitoring settings."""
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring.models import Alert, BookingUsage, GpuHour, GpuMinute, GpuSample, HostStatus
from reservations.models import Profile
from tests.factories import ServerFactory, UserFactory

from .telemetry import running_booking

pytestmark = pytest.mark.django_db


def changelist(model):
    return reverse(f"admin:monitoring_{model}_changelist")


def alert(server, kind=Alert.Kind.UNBOOKED_USE, *, key=None, resolved=False, **fields):
    now = timezone.now()
    return Alert.objects.create(
        kind=kind, key=key or f"{kind}:{Alert.objects.count()}", server=server, message=fields.pop("message", "bob runs on thalys:0"),
        opened_at=now, last_seen_at=now, resolved_at=now if resolved else None, **fields,
    )


@pytest.fixture
def telemetry(alice, bob, thalys):
    """A row of each monitoring model, on thalys."""
    now = timezone.now().replace(second=0, microsecond=0)
    device = thalys.devices.get(index=0)
    HostStatus.objects.create(server=thalys, last_seen_at=now, driver_version="580.95.05", agent_version="0.1.0")
    GpuSample.objects.create(device=device, taken_at=now, gpu_util=50, processes=[])
    GpuMinute.objects.create(device=device, bucket=now, samples=4, gpu_util_sum=200, gpu_util_max=60, power_samples=4, power_sum=800)
    GpuHour.objects.create(device=device, bucket=now.replace(minute=0), samples=4, gpu_util_sum=200, gpu_util_max=60)
    booking = running_booking(alice, thalys, "0-1", started_ago=timedelta(minutes=30))
    BookingUsage.objects.create(booking=booking, samples=10, gpu_util_mean=33.3, gpu_util_peak=80, memory_peak_mib=1000,
                                booked_gpu_hours=1.0, used_gpu_hours=0.5, source="raw", settled_at=now)
    alert(thalys, device=device, user=bob, unix_username="bob")
    alert(thalys, Alert.Kind.IDLE_BOOKING, booking=booking, user=alice, message="booking idle", resolved=True)
    return booking


# --- pages load ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, rows", [("hoststatus", 1), ("gpusample", 1), ("gpuminute", 1), ("gpuhour", 1), ("bookingusage", 1), ("alert", 2)]
)
def test_every_monitoring_changelist_loads(staff_client, telemetry, model, rows):
    response = staff_client.get(changelist(model))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == rows


@pytest.mark.parametrize(
    "model, query",
    [
        ("hoststatus", "state=fresh"),
        ("hoststatus", "state=stale"),
        ("gpuminute", "device__server__id__exact={server}"),
        ("gpuhour", "device__server__id__exact={server}"),
        ("bookingusage", "source=raw"),
        ("alert", "kind__exact=unbooked_use"),
        ("alert", "server__id__exact={server}"),
        ("alert", "open=yes"),
        ("alert", "open=no"),
        ("alert", "q=idle"),
    ],
)
def test_monitoring_changelists_load_with_their_filters(staff_client, telemetry, thalys, model, query):
    response = staff_client.get(f"{changelist(model)}?{query.format(server=thalys.pk)}")

    assert response.status_code == 200
    assert "errornote" not in response.content.decode()


def test_rollup_lists_do_not_count_every_row(staff_client, telemetry):
    for model in ("gpuminute", "gpuhour", "gpusample"):
        assert staff_client.get(changelist(model)).context["cl"].show_full_result_count is False


def test_rollup_list_shows_the_means(staff_client, telemetry):
    content = staff_client.get(changelist("gpuminute")).content.decode()

    assert "50.0" in content  # 200 over 4 samples
    assert "200.0" in content  # 800 W over 4 power samples


def test_booking_usage_list_names_the_booking_and_what_it_held(staff_client, telemetry):
    content = staff_client.get(changelist("bookingusage")).content.decode()

    assert f"#{telemetry.pk}" in content
    assert "thalys:0-1" in content


def test_telemetry_rows_cannot_be_added_changed_or_deleted(staff_client, telemetry):
    status = HostStatus.objects.get()

    assert staff_client.get(reverse("admin:monitoring_hoststatus_add")).status_code == 403
    assert staff_client.get(reverse("admin:monitoring_hoststatus_delete", args=[status.pk])).status_code == 403
    assert staff_client.post(reverse("admin:monitoring_hoststatus_change", args=[status.pk]), {"driver_version": "x"}).status_code == 403


# --- hosts -----------------------------------------------------------------------------------


def test_host_list_says_which_hosts_are_fresh_and_which_stale(staff_client, thalys, settings):
    settings.TELEMETRY_INTERVAL_SECONDS, settings.TELEMETRY_STALE_INTERVALS = 15, 3
    eurostar = ServerFactory(name="eurostar")
    now = timezone.now()
    HostStatus.objects.create(server=thalys, last_seen_at=now, agent_version="0.1.0")
    HostStatus.objects.create(server=eurostar, last_seen_at=now - timedelta(minutes=5), agent_version="0.0.9")

    content = staff_client.get(changelist("hoststatus")).content.decode()

    # Rows come by server name: eurostar, then thalys.
    assert re.findall(r'<td class="field-state">(\w+)</td>', content) == ["stale", "fresh"]
    assert re.findall(r'<td class="field-agent_version">([\w.]+)</td>', content) == ["0.0.9", "0.1.0"]


def test_host_list_filters_stale_hosts(staff_client, thalys):
    eurostar = ServerFactory(name="eurostar")
    HostStatus.objects.create(server=thalys, last_seen_at=timezone.now())
    HostStatus.objects.create(server=eurostar, last_seen_at=timezone.now() - timedelta(hours=1))

    rows = staff_client.get(f"{changelist('hoststatus')}?state=stale").context["cl"].result_list

    assert [status.server.name for status in rows] == ["eurostar"]


# --- alerts ----------------------------------------------------------------------------------


def test_alert_list_filters_open_and_resolved(staff_client, thalys):
    opened = alert(thalys)
    resolved = alert(thalys, resolved=True)

    open_rows = staff_client.get(f"{changelist('alert')}?open=yes").context["cl"].result_list
    resolved_rows = staff_client.get(f"{changelist('alert')}?open=no").context["cl"].result_list

    assert list(open_rows) == [opened]
    assert list(resolved_rows) == [resolved]


def test_alert_list_searches_the_unix_user_name(staff_client, thalys):
    alert(thalys, unix_username="mallory", message="mallory runs on thalys:0")
    alert(thalys, unix_username="bob")

    rows = staff_client.get(f"{changelist('alert')}?q=mallory").context["cl"].result_list

    assert [row.unix_username for row in rows] == ["mallory"]


def test_alert_list_queries_do_not_grow_with_alerts(staff_client, alice, thalys):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get(changelist("alert"))
        assert response.status_code == 200
        return len(captured)

    device = thalys.devices.first()
    alert(thalys, device=device, user=alice)
    one = queries()
    for _ in range(5):
        alert(thalys, device=device, user=UserFactory(), unix_username="x")
    six = queries()

    assert six == one


def test_booking_usage_list_queries_do_not_grow_with_rows(staff_client, alice, bob, thalys):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get(changelist("bookingusage"))
        assert response.status_code == 200
        return len(captured)

    def usage(user, devices):
        booking = running_booking(user, thalys, devices, started_ago=timedelta(minutes=30))
        BookingUsage.objects.create(booking=booking, samples=1, booked_gpu_hours=1, used_gpu_hours=1, source="raw", settled_at=timezone.now())

    usage(alice, "0")
    one = queries()
    for index in range(1, 5):
        usage(bob, str(index))
    five = queries()

    assert five == one


def test_mark_as_resolved_resolves_the_open_alerts_chosen(staff_client, thalys):
    first, second, untouched = alert(thalys), alert(thalys), alert(thalys)

    response = staff_client.post(
        changelist("alert"), {"action": "mark_resolved", "_selected_action": [first.pk, second.pk]}, follow=True
    )

    assert response.status_code == 200
    assert "Marked 2 alerts as resolved" in response.content.decode()
    first.refresh_from_db(), second.refresh_from_db(), untouched.refresh_from_db()
    assert first.resolved_at is not None and second.resolved_at is not None
    assert untouched.resolved_at is None


def test_mark_as_resolved_leaves_resolved_alerts_as_they_were(staff_client, thalys):
    earlier = alert(thalys, resolved=True)
    when = earlier.resolved_at

    staff_client.post(changelist("alert"), {"action": "mark_resolved", "_selected_action": [earlier.pk]})

    earlier.refresh_from_db()
    assert earlier.resolved_at == when


def test_staff_who_may_only_view_alerts_cannot_resolve_them(client, thalys):
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_alert"))
    client.force_login(viewer)
    opened = alert(thalys)

    response = client.get(changelist("alert"))
    client.post(changelist("alert"), {"action": "mark_resolved", "_selected_action": [opened.pk]})

    assert response.status_code == 200
    assert response.context["action_form"] is None  # no action offered: resolving was the only one
    opened.refresh_from_db()
    assert opened.resolved_at is None


# --- servers and members ---------------------------------------------------------------------


def test_server_change_form_shows_the_monitoring_switches(staff_client, thalys):
    response = staff_client.get(reverse("admin:reservations_server_change", args=[thalys.pk]))

    form = response.context["adminform"].form
    assert {"monitored", "release_idle_bookings"} <= set(form.fields)
    assert 'name="release_idle_bookings"' in response.content.decode()


def test_server_list_shows_and_filters_by_monitoring(staff_client, thalys):
    ServerFactory(name="ice", monitored=False)

    response = staff_client.get(reverse("admin:reservations_server_changelist") + "?monitored__exact=0")

    assert [server.name for server in response.context["cl"].result_list] == ["ice"]
    assert "release_idle_bookings" in response.context["cl"].list_display


def test_server_change_form_saves_the_release_policy(staff_client, thalys):
    data = {
        "name": "thalys", "hostname": thalys.hostname, "location": "", "description": "", "active": "on", "monitored": "on",
        "release_idle_bookings": "on",
        "devices-TOTAL_FORMS": 0, "devices-INITIAL_FORMS": 0, "devices-MIN_NUM_FORMS": 0, "devices-MAX_NUM_FORMS": 1000,
    }

    response = staff_client.post(reverse("admin:reservations_server_change", args=[thalys.pk]), data)

    assert response.status_code == 302
    thalys.refresh_from_db()
    assert thalys.release_idle_bookings and thalys.monitored


def user_change_data(user, **profile):
    """What the user change page posts, with the profile inline."""
    data = {
        "username": user.username, "first_name": user.first_name, "last_name": user.last_name, "email": user.email,
        "is_active": "on", "last_login_0": "", "last_login_1": "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"), "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "profile-TOTAL_FORMS": 1, "profile-INITIAL_FORMS": 1, "profile-MIN_NUM_FORMS": 0, "profile-MAX_NUM_FORMS": 1,
        "profile-0-id": user.profile.pk, "profile-0-user": user.pk,
        "profile-0-display_name": "", "profile-0-time_zone": "", "profile-0-unix_username": "", "profile-0-group": "",
        # The member's personal limits (fair use), none here.
        "limits-TOTAL_FORMS": 0, "limits-INITIAL_FORMS": 0, "limits-MIN_NUM_FORMS": 0, "limits-MAX_NUM_FORMS": 1000,
    }
    data.update({f"profile-0-{name}": value for name, value in profile.items()})
    return data


def test_staff_set_a_members_unix_user_name_on_the_user_page(staff_client, alice):
    url = reverse("admin:auth_user_change", args=[alice.pk])

    assert "unix_username" in staff_client.get(url).content.decode()
    response = staff_client.post(url, user_change_data(alice, unix_username="a.liddell"))

    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    assert Profile.objects.get(user=alice).unix_username == "a.liddell"


def test_a_unix_user_name_another_member_has_is_refused(staff_client, alice, bob):
    bob.profile.unix_username = "alice"
    bob.profile.save()

    response = staff_client.post(reverse("admin:auth_user_change", args=[alice.pk]), user_change_data(alice, unix_username="alice"))

    assert response.status_code == 200
    assert "Another member already has this unix user name." in response.content.decode()
    assert Profile.objects.get(user=alice).unix_username == ""


def test_user_list_shows_unix_user_names_without_a_query_per_member(staff_client, alice, bob):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get(reverse("admin:auth_user_changelist"))
        assert response.status_code == 200
        return len(captured), response.content.decode()

    alice.profile.unix_username = "a.liddell"
    alice.profile.save()
    few, content = queries()
    for _ in range(4):
        UserFactory()
    many, _ = queries()

    assert "a.liddell" in content
    assert many == few


def test_adding_a_user_in_the_admin_gives_them_one_profile(staff_client):
    data = {"username": "carol", "password1": "a long pass phrase 42", "password2": "a long pass phrase 42", "usable_password": "true"}

    response = staff_client.post(reverse("admin:auth_user_add"), data)

    assert response.status_code == 302
    assert Profile.objects.filter(user__username="carol").count() == 1


# --- issue 18: the admin reads well and stays quick ------------------------------------------------


def test_rollup_and_sample_lists_do_not_list_the_dates_of_every_row(staff_client, telemetry, django_assert_max_num_queries):
    for model in ("gpuminute", "gpuhour", "gpusample"):
        with CaptureQueriesContext(connection) as queries, django_assert_max_num_queries(7):
            response = staff_client.get(f"{changelist(model)}?within=24h")
        assert response.status_code == 200 and len(response.context["cl"].result_list) == 1
        sql = " ".join(query["sql"].lower() for query in queries.captured_queries)
        assert "datetime_trunc" not in sql and "date_trunc" not in sql and "distinct" not in sql


def test_the_recent_filter_keeps_the_rows_of_its_span(staff_client, telemetry, thalys):
    device = thalys.devices.get(index=1)
    GpuMinute.objects.create(device=device, bucket=timezone.now().replace(second=0, microsecond=0) - timedelta(days=3), samples=4, gpu_util_sum=4)

    assert len(staff_client.get(f"{changelist('gpuminute')}?within=24h").context["cl"].result_list) == 1
    assert len(staff_client.get(f"{changelist('gpuminute')}?within=7d").context["cl"].result_list) == 2


def test_admin_times_are_24_hour_with_the_zone(staff_client, thalys, settings):
    moment = timezone.now().replace(hour=14, minute=33, second=0, microsecond=0)
    Alert.objects.create(kind=Alert.Kind.HOST_STALE, key="stale:x", server=thalys, message="silent", opened_at=moment, last_seen_at=moment)

    page = staff_client.get(changelist("alert")).content.decode()

    local = timezone.localtime(moment)
    assert f"{local:%H:%M} {local.tzname()}" in page
    assert "p.m." not in page and "a.m." not in page


def test_the_alert_list_gives_the_message_room(staff_client, telemetry):
    page = staff_client.get(changelist("alert")).content.decode()

    assert "css/admin.css" in page
    css = (settings_base() / "static" / "css" / "admin.css").read_text()
    assert re.search(r"td\.field-message\s*{[^}]*min-width:\s*24em", css)


def settings_base():
    from django.conf import settings

    return settings.BASE_DIR


def test_the_member_page_names_its_two_kinds_of_group_and_stays_cheap(staff_client, bob, django_assert_max_num_queries, monkeypatch):
    import zoneinfo

    calls = []
    real = zoneinfo.available_timezones
    monkeypatch.setattr(zoneinfo, "available_timezones", lambda: calls.append(1) or real())
    url = reverse("admin:auth_user_change", args=[bob.pk])
    staff_client.get(url)

    with django_assert_max_num_queries(16):
        page = staff_client.get(url).content.decode()

    assert "Permission groups (admin rights)" in page
    assert "Member group (fair-use limits)" in page
    assert len(calls) <= 1  # the zones are read once a process, not once a form
