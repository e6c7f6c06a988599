"""The live GPU page (/gpus/ and its htmx panel) and a GPU's history page and JSON."""
import re
import zoneinfo
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeGPU
from monitoring.models import GpuHour, GpuMinute, GpuSample, HostStatus
from reservations.parsing import format_moment
from tests.factories import ServerFactory

from .telemetry import gpu, report, running_booking, utilization_series

pytestmark = pytest.mark.django_db


@pytest.fixture
def eurostar(db):
    return ServerFactory(name="eurostar", gpus=4, location="Machine room B")


def just_now():
    """A reading time well inside the freshness window, on a whole second."""
    return timezone.now().replace(microsecond=0) - timedelta(seconds=1)


def row_of(page, name):
    """The table row of GPU `name` (e.g. 'eurostar:0') on the live page."""
    start = page.index(f">{name}<")
    return page[page.rindex("<tr", 0, start): page.index("</tr>", start)]


def minutes(device, end, count, *, util=50, peak=90, memory=2000, memory_peak=4096):
    """`count` per-minute rollups of `device` ending at `end`, four samples each."""
    rows = [
        GpuMinute(device=device, bucket=end - timedelta(minutes=k + 1), samples=4, gpu_util_sum=4 * util, gpu_util_max=peak,
                  mem_util_sum=4 * 10, memory_used_sum=4 * memory, memory_used_max=memory_peak, temperature_max=70,
                  power_samples=4, power_sum=4 * 200.0)
        for k in range(count)
    ]
    GpuMinute.objects.bulk_create(rows)


def hours(device, end, count, *, util=30):
    rows = [
        GpuHour(device=device, bucket=end - timedelta(hours=k + 1), samples=240, gpu_util_sum=240 * util, gpu_util_max=95,
                mem_util_sum=240 * 10, memory_used_sum=240 * 3000, memory_used_max=6000, temperature_max=75,
                power_samples=240, power_sum=240 * 180.0)
        for k in range(count)
    ]
    GpuHour.objects.bulk_create(rows)


# Access


@pytest.mark.parametrize("path", ["/gpus/", "/gpus/panel/", "/gpus/1/history/"])
def test_gpu_pages_need_a_login(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_history_data_without_a_login_is_a_401_in_the_error_shape(client, eurostar):
    response = client.get(f"/gpus/{eurostar.devices.first().pk}/history.json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_a_poll_after_signing_out_stops_polling_instead_of_showing_the_sign_in_page(client):
    response = client.get("/gpus/panel/", headers={"HX-Request": "true"})

    assert response.status_code == 286  # htmx's "stop polling"
    assert "signed out" in response.content.decode()


# The live page


def test_live_page_shows_each_gpus_use_as_text_and_bars(client, alice, eurostar):
    report(eurostar, [gpu("alice", memory_mib=40960), FakeGPU(), FakeGPU(), FakeGPU()], just_now())
    client.force_login(alice)

    page = client.get("/gpus/").content.decode()

    busy = row_of(page, "eurostar:0")
    assert re.search(r'<span class="value">\d+%</span>', busy)
    assert re.search(r"\d+\.\d / 80\.0 GiB", busy)
    assert re.search(r"\d+ °C", busy)
    assert re.search(r"\d+ / 400 W", busy)
    assert busy.count('class="bar"') == 3  # utilization, memory, power
    assert 'class="load load-' in busy
    assert "NVIDIA A100-SXM4-80GB" in busy
    assert f'href="/gpus/{eurostar.devices.get(index=0).pk}/history/"' in busy


def test_live_page_shows_host_state_driver_and_location(client, alice, eurostar):
    report(eurostar, [FakeGPU()] * 4, just_now())
    client.force_login(alice)

    page = client.get("/gpus/").content.decode()

    assert '<span class="host-state host-ok">ok</span>' in page
    assert "driver 580.95.05" in page
    assert "Machine room B" in page
    assert re.search(r"last reading \d s ago", page)


def test_an_idle_gpu_says_idle_and_free(client, alice, eurostar):
    report(eurostar, [FakeGPU()] * 4, just_now())
    client.force_login(alice)

    idle = row_of(client.get("/gpus/").content.decode(), "eurostar:3")

    assert '<span class="load load-idle">idle</span>' in idle
    assert '<span class="match match-free">free</span>' in idle
    assert '<li class="muted small">none</li>' in idle  # no processes


def test_live_page_shows_processes_with_pid_user_member_and_memory(client, members, eurostar):
    alice, _ = members
    running_booking(alice, eurostar, "0", started_ago=timedelta(minutes=5))
    reading = [gpu("alice", "mallory", memory_mib=8192), FakeGPU(), FakeGPU(), FakeGPU()]
    report(eurostar, reading, just_now())
    client.force_login(alice)

    busy = row_of(client.get("/gpus/").content.decode(), "eurostar:0")

    alice_pid, mallory_pid = (process.pid for process in reading[0].processes)
    assert f'<span class="pid">{alice_pid}</span>' in busy and f'<span class="pid">{mallory_pid}</span>' in busy
    assert '<span class="unix">alice</span>' in busy and "<span>Alice Liddell</span>" in busy
    assert '<span class="unix">mallory</span>' in busy and "unknown user" in busy
    assert re.search(r"\d\.\d GiB", busy)
    assert busy.count("not booked") == 1  # mallory's process, not alice's


def test_the_booking_holding_a_gpu_shows_beside_it_in_the_viewers_time_zone(client, members, eurostar):
    alice, bob = members
    booking = running_booking(alice, eurostar, "0", started_ago=timedelta(minutes=5), purpose="training resnet")
    report(eurostar, [gpu("alice"), FakeGPU(), FakeGPU(), FakeGPU()], just_now())
    bob.profile.time_zone = "Asia/Tokyo"
    bob.profile.save()
    client.force_login(bob)

    booked = row_of(client.get("/gpus/").content.decode(), "eurostar:0")

    tokyo_end = format_moment(booking.end.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo")))
    assert f'<a href="/bookings/{booking.pk}/">Alice Liddell</a>' in booked
    assert f"until {tokyo_end} — training resnet" in booked
    assert '<span class="match match-as-booked">as booked</span>' in booked


def test_the_viewers_own_booking_says_you(client, members, eurostar):
    alice, _ = members
    running_booking(alice, eurostar, "2", started_ago=timedelta(minutes=5))
    report(eurostar, [FakeGPU(), FakeGPU(), gpu("alice"), FakeGPU()], just_now())
    client.force_login(alice)

    booked = row_of(client.get("/gpus/").content.decode(), "eurostar:2")

    assert ">You</a>" in booked


def test_a_booked_gpu_with_nothing_running_is_booked_idle(client, members, eurostar):
    running_booking(members[0], eurostar, "1", started_ago=timedelta(minutes=5))
    report(eurostar, [FakeGPU()] * 4, just_now())
    client.force_login(members[1])

    row = row_of(client.get("/gpus/").content.decode(), "eurostar:1")

    assert '<span class="match match-booked-idle">booked, idle</span>' in row


def test_a_process_of_a_member_without_a_booking_is_highlighted_as_unbooked_use(client, members, eurostar):
    alice, bob = members
    running_booking(alice, eurostar, "0", started_ago=timedelta(minutes=5))
    report(eurostar, [gpu("alice"), FakeGPU(), FakeGPU(), gpu("bob")], just_now())
    client.force_login(alice)

    page = client.get("/gpus/").content.decode()

    intruded = row_of(page, "eurostar:3")
    assert intruded.startswith('<tr class="gpu-row unbooked">')
    assert '<span class="match match-unbooked-use">unbooked use</span>' in intruded
    assert "<span>bob</span>" in intruded and "not booked" in intruded
    assert "1 with unbooked use" in page
    assert "unbooked" not in row_of(page, "eurostar:0")


def test_a_stale_host_says_when_it_last_reported_and_hides_its_values(client, alice, eurostar, settings):
    settings.TELEMETRY_INTERVAL_SECONDS, settings.TELEMETRY_STALE_INTERVALS = 15, 3
    report(eurostar, [gpu("alice")] * 4, timezone.now() - timedelta(minutes=3, seconds=5))
    client.force_login(alice)

    page = client.get("/gpus/").content.decode()

    assert '<span class="host-state host-stale">stale</span>' in page
    assert "last reading 3 min ago" in page
    assert "Is its host agent running?" in page
    assert 'class="bar"' not in page
    assert page.count('<span class="load load-no-data">no data</span>') == 4


def test_a_host_never_seen_says_so(client, alice, eurostar):
    client.force_login(alice)

    page = client.get("/gpus/").content.decode()

    assert '<span class="host-state host-never-seen">never seen</span>' in page
    assert "no reading from its host agent yet" in page


def test_a_host_without_nvml_shows_the_nvml_error(client, alice, eurostar):
    report(eurostar, [], just_now(), init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    client.force_login(alice)

    page = client.get("/gpus/").content.decode()

    assert '<span class="host-state host-no-nvml">no NVML</span>' in page
    assert "NVML does not work on eurostar: NVML Shared Library Not Found" in page


def test_a_gpu_that_failed_shows_its_nvml_error(client, alice, eurostar):
    report(eurostar, [FakeGPU(failing=True), FakeGPU(), FakeGPU(), FakeGPU()], just_now())
    client.force_login(alice)

    failed = row_of(client.get("/gpus/").content.decode(), "eurostar:0")

    assert '<span class="load load-error">error</span>' in failed
    assert "NVML could not read this GPU: GPU is lost" in failed


def test_a_gpu_without_power_temperature_or_memory_readings_shows_dashes(client, alice, eurostar):
    taken_at = just_now()
    HostStatus.objects.create(server=eurostar, last_seen_at=taken_at, driver_version="550.54")
    GpuSample.objects.bulk_create(
        GpuSample(device=device, taken_at=taken_at, gpu_util=30, processes=[]) for device in eurostar.devices.all()
    )
    client.force_login(alice)

    row = row_of(client.get("/gpus/").content.decode(), "eurostar:0")

    assert '<span class="value">30%</span>' in row
    assert row.count('<span class="muted">—</span>') == 2  # memory, power
    assert '<td class="num" data-label="Temp.">—</td>' in row


def test_hidden_processes_say_why(client, alice, eurostar):
    report(eurostar, [gpu("alice", hides_processes=True), FakeGPU(), FakeGPU(), FakeGPU()], just_now())
    client.force_login(alice)

    hidden = row_of(client.get("/gpus/").content.decode(), "eurostar:0")

    assert "Processes not visible" in hidden


def test_the_page_polls_its_panel_every_telemetry_interval(client, alice, eurostar, settings):
    settings.TELEMETRY_INTERVAL_SECONDS = 7
    client.force_login(alice)

    page = client.get("/gpus/").content.decode()

    assert 'hx-get="/gpus/panel/"' in page
    assert 'hx-trigger="every 7s"' in page
    assert 'hx-swap="innerHTML show:none"' in page


def test_the_panel_is_only_the_cards_with_the_time_of_the_update(client, alice, eurostar):
    report(eurostar, [gpu("alice"), FakeGPU(), FakeGPU(), FakeGPU()], just_now())
    client.force_login(alice)

    response = client.get("/gpus/panel/")

    panel = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in panel and "hx-trigger" not in panel
    assert 'id="host-eurostar"' in panel
    assert re.search(r"Updated <time datetime=\"[^\"]+\">\d\d:\d\d:\d\d</time>", panel)


def test_the_server_filter_shows_one_server_and_keeps_it_when_polling(client, alice, eurostar):
    ServerFactory(name="thalys", gpus=2)
    client.force_login(alice)

    page = client.get("/gpus/?server=thalys").content.decode()

    assert 'id="host-thalys"' in page and 'id="host-eurostar"' not in page
    assert 'hx-get="/gpus/panel/?server=thalys"' in page
    assert '<a class="btn" href="/gpus/?server=eurostar">eurostar</a>' in page  # the switch still lists every server


@pytest.mark.parametrize("path", ["/gpus/?server=nowhere", "/gpus/panel/?server=nowhere"])
def test_an_unknown_server_is_a_404_with_a_message(client, alice, eurostar, path):
    client.force_login(alice)

    response = client.get(path)

    assert response.status_code == 404
    assert "No monitored server is named “nowhere”." in response.content.decode()


def test_a_server_name_no_database_can_store_is_a_404_too(client, alice, eurostar):
    client.force_login(alice)

    response = client.get("/gpus/?server=no%00where")

    assert response.status_code == 404
    assert "No monitored server is named" in response.content.decode()


def test_an_unmonitored_server_is_not_shown(client, alice, eurostar):
    ServerFactory(name="cpu-box", monitored=False)
    client.force_login(alice)

    assert client.get("/gpus/?server=cpu-box").status_code == 404
    assert 'id="host-cpu-box"' not in client.get("/gpus/").content.decode()


def test_live_page_reads_in_the_same_number_of_queries_for_one_or_three_servers(client, members, eurostar):
    alice, bob = members
    running_booking(alice, eurostar, "0", started_ago=timedelta(minutes=5))
    report(eurostar, [gpu("alice"), gpu("bob"), FakeGPU(), FakeGPU()], just_now())
    client.force_login(alice)
    client.get("/gpus/")  # the session's first request may warm caches

    with CaptureQueriesContext(connection) as one_server:
        client.get("/gpus/")
    for seed, name in enumerate(("a", "b"), start=1):
        server = ServerFactory(name=name, gpus=8)
        running_booking(bob, server, "1-2", started_ago=timedelta(minutes=5))
        report(server, [gpu("alice"), gpu("bob"), gpu("mallory")] + [FakeGPU()] * 5, just_now(), seed=seed)

    with CaptureQueriesContext(connection) as three_servers:
        page = client.get("/gpus/").content.decode()

    assert page.count('class="gpu-row') == 4 + 8 + 8
    assert len(three_servers) == len(one_server)
    assert len(three_servers) <= 12


# A GPU's history


@pytest.fixture
def device(eurostar):
    return eurostar.devices.get(index=1)


def test_history_page_names_the_gpu_and_offers_the_periods(client, alice, device):
    client.force_login(alice)

    page = client.get(f"/gpus/{device.pk}/history/").content.decode()

    assert "<h1>eurostar:1" in page and "NVIDIA A100-SXM4-80GB" in page
    for period in ("hour", "day", "week", "month"):
        assert f'href="?period={period}"' in page
    assert '<a class="btn" href="?period=day" aria-current="page">day</a>' in page
    assert f'data-url="/gpus/{device.pk}/history.json?period=day"' in page
    assert re.search(r'<canvas id="chart-use" role="img" aria-label="[^"]+"', page)


def test_history_page_loads_chartjs_and_the_live_page_does_not(client, alice, device):
    client.force_login(alice)

    history = client.get(f"/gpus/{device.pk}/history/").content.decode()
    live = client.get("/gpus/").content.decode()

    assert "chartjs-4.6.1/chart.umd.min.js" in history and "js/gpu_history.js" in history
    assert "chart.umd.min.js" not in live


def test_history_page_with_an_unknown_period_says_so_and_shows_a_day(client, alice, device):
    client.force_login(alice)

    response = client.get(f"/gpus/{device.pk}/history/?period=fortnight")

    page = response.content.decode()
    assert response.status_code == 200
    assert "There is no “fortnight” period; showing the last day." in page
    assert f'data-url="/gpus/{device.pk}/history.json?period=day"' in page


def test_history_page_sums_up_the_period_in_a_table(client, alice, device):
    minutes(device, timezone.now().replace(second=0, microsecond=0), 30, util=40, peak=97, memory_peak=40960)
    client.force_login(alice)

    page = client.get(f"/gpus/{device.pk}/history/?period=day").content.decode()

    summary = page.split('id="summary-title"', 1)[1].split("</section>", 1)[0]
    assert re.search(r"Utilization, mean</th><td class=\"num\">40%", summary)
    assert re.search(r"Utilization, peak</th><td class=\"num\">97%", summary)
    assert "40.0 GiB" in summary and "(50% of 80.0 GiB)" in summary
    assert "70 °C" in summary and "200 W" in summary
    assert re.search(r"Readings</th><td class=\"num\">120<", summary)
    assert "per-minute averages and peaks" in page


def test_history_page_without_readings_says_so(client, alice, device):
    client.force_login(alice)

    page = client.get(f"/gpus/{device.pk}/history/?period=week").content.decode()

    assert "No readings of eurostar:1 in the last week." in page


def test_history_page_lists_the_bookings_of_the_period_in_one_query(client, members, device, eurostar):
    alice, bob = members
    first = running_booking(alice, eurostar, "1", started_ago=timedelta(hours=5), hours=2, purpose="sweep")
    second = running_booking(bob, eurostar, "1", started_ago=timedelta(hours=1), hours=2, purpose="eval")
    running_booking(bob, eurostar, "2", started_ago=timedelta(hours=1), purpose="other gpu")
    client.force_login(alice)
    client.get(f"/gpus/{device.pk}/history/")

    with CaptureQueriesContext(connection) as two_bookings:
        page = client.get(f"/gpus/{device.pk}/history/").content.decode()
    running_booking(bob, eurostar, "1", started_ago=timedelta(hours=3), hours=1, purpose="third")
    with CaptureQueriesContext(connection) as three_bookings:
        client.get(f"/gpus/{device.pk}/history/")

    listed = page.split('id="bookings-title"', 1)[1].split("</section>", 1)[0]
    assert f'href="/bookings/{first.pk}/"' in listed and f'href="/bookings/{second.pk}/"' in listed
    assert listed.index(f"/bookings/{first.pk}/") < listed.index(f"/bookings/{second.pk}/")
    assert "<span>You</span>" in listed and "<span>bob</span>" in listed and "sweep" in listed
    assert "other gpu" not in listed
    assert len(three_bookings) == len(two_bookings)


@pytest.mark.parametrize("device_id", [999999, 10**20])
def test_history_of_an_unknown_gpu_is_404(client, alice, device, device_id):
    client.force_login(alice)

    response = client.get(f"/gpus/{device_id}/history/")

    assert response.status_code == 404
    assert f"There is no GPU with id {device_id}." in response.content.decode()


@pytest.mark.parametrize("period, resolution, count", [("hour", "raw", 8), ("day", "minute", 90), ("week", "hour", 48), ("month", "hour", 48)])
def test_history_data_picks_the_resolution_for_the_period(client, alice, device, period, resolution, count):
    now = timezone.now().replace(second=0, microsecond=0)
    utilization_series(device, now - timedelta(minutes=2), now, 42)
    minutes(device, now, 90)
    hours(device, now.replace(minute=0), 48)
    client.force_login(alice)

    response = client.get(f"/gpus/{device.pk}/history.json?period={period}")

    body = response.json()
    assert response.status_code == 200
    assert body["resolution"] == resolution and body["period"] == period
    assert len(body["points"]) == count
    assert body["device"] == {"id": device.pk, "server": "eurostar", "index": 1, "name": "eurostar:1",
                              "model": "NVIDIA A100-SXM4-80GB", "uuid": "", "memory_total_mib": 81920}
    assert body["start"].endswith("Z") and body["end"].endswith("Z")
    assert [p["at"] for p in body["points"]] == sorted(p["at"] for p in body["points"])
    assert body["step_seconds"] == {"raw": 15, "minute": 60, "hour": 3600}[resolution]


def test_history_data_points_carry_averages_and_peaks(client, alice, device):
    hours(device, timezone.now().replace(minute=0, second=0, microsecond=0), 1, util=30)
    client.force_login(alice)

    (point,) = client.get(f"/gpus/{device.pk}/history.json?period=week").json()["points"]

    assert point["gpu_util"] == 30 and point["gpu_util_max"] == 95
    assert point["memory_used_mib"] == 3000 and point["memory_peak_mib"] == 6000
    assert point["temperature_c"] == 75 and point["power_w"] == 180 and point["samples"] == 240


def test_history_data_defaults_to_a_day(client, alice, device):
    client.force_login(alice)

    assert client.get(f"/gpus/{device.pk}/history.json").json()["period"] == "day"


def test_history_data_rejects_an_unknown_period_with_a_400(client, alice, device):
    client.force_login(alice)

    response = client.get(f"/gpus/{device.pk}/history.json?period=fortnight")

    error = response.json()["error"]
    assert response.status_code == 400
    assert error["code"] == "invalid"
    assert "hour, day, week or month" in error["message"]
    assert error["fields"] == {"period": [error["message"]]}


@pytest.mark.parametrize("device_id", [999999, 10**20])
def test_history_data_of_an_unknown_gpu_is_a_404(client, alice, device, device_id):
    client.force_login(alice)

    response = client.get(f"/gpus/{device_id}/history.json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
