"""The live GPU page refreshing itself, and a GPU's history chart, in a real browser."""
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from monitoring.fake_nvml import FakeGPU
from monitoring.models import GpuMinute
from tests.factories import ServerFactory, UserFactory
from tests.monitoring.telemetry import gpu, report, running_booking

from .conftest import WIDTHS, accessibility_problems, sign_in

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "gpu-pages-pass-42"


@pytest.fixture
def lab(db, settings):
    # Poll every second; readings stay fresh for the whole test.
    settings.TELEMETRY_INTERVAL_SECONDS, settings.TELEMETRY_STALE_INTERVALS = 1, 600
    alice = UserFactory(username="alice", first_name="Alice", last_name="Liddell")
    alice.set_password(PASSWORD)
    alice.save()
    bob = UserFactory(username="bob", first_name="Bob", last_name="Marley")
    for user in (alice, bob):
        user.profile.unix_username = user.username
        user.profile.save()
    thalys = ServerFactory(name="thalys", gpus=8, location="Machine room B")
    eurostar = ServerFactory(name="eurostar", gpus=8, location="Machine room A")
    booking = running_booking(bob, thalys, "0-1", started_ago=timedelta(hours=2), hours=4, purpose="bob's eval")
    now = timezone.now()
    report(thalys, [gpu("bob"), gpu("bob", busy=False)] + [FakeGPU() for _ in range(6)], now)
    report(eurostar, [gpu("alice")] + [FakeGPU() for _ in range(7)], now, seed=1)
    return {"alice": alice, "bob": bob, "thalys": thalys, "eurostar": eurostar, "booking": booking}


def gpu_row(page, name):
    return page.locator("tr.gpu-row", has=page.get_by_role("link", name=f"{name} history", exact=True))


def test_live_page_shows_bars_and_bookings_and_refreshes_itself(browse, shoot, lab):
    page = browse("desktop")
    sign_in(page, "alice", PASSWORD)
    page.goto("/gpus/")

    first = gpu_row(page, "thalys:0")
    expect(first).to_contain_text("Bob Marley")
    expect(first).to_contain_text("bob's eval")
    expect(first).to_contain_text("as booked")
    expect(gpu_row(page, "thalys:1")).to_contain_text("booked, idle")
    expect(first.locator(".bar")).to_have_count(3)
    width = first.locator(".bar .fill").first.evaluate("fill => fill.getBoundingClientRect().width")
    assert width > 0
    expect(gpu_row(page, "thalys:5")).to_contain_text("free")
    shoot(page, "gpus-desktop")

    # Someone without a booking starts a job: the next poll shows it, without a reload and without moving the page.
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    scrolled = page.evaluate("window.scrollY")
    updated = page.locator(".gpus-summary time").inner_text()
    page.evaluate("document.body.dataset.loaded = 'once'")  # gone if the page reloads
    report(lab["thalys"], [gpu("bob"), gpu("bob", busy=False), FakeGPU(), FakeGPU(), FakeGPU(), gpu("alice"), FakeGPU(), FakeGPU()],
           timezone.now())

    expect(gpu_row(page, "thalys:5")).to_contain_text("unbooked use", timeout=10_000)
    expect(gpu_row(page, "thalys:5")).to_have_class(re.compile(r"\bunbooked\b"))
    expect(page.locator(".gpus-summary time")).not_to_have_text(updated)
    assert page.evaluate("document.body.dataset.loaded") == "once"
    assert page.evaluate("window.scrollY") == scrolled
    expect(page.locator("#gpus-panel")).to_have_count(1)


def test_the_history_page_draws_a_chart_of_the_last_day(browse, shoot, lab):
    device = lab["thalys"].devices.get(index=0)
    end = timezone.now().replace(second=0, microsecond=0)
    GpuMinute.objects.bulk_create(
        GpuMinute(device=device, bucket=end - timedelta(minutes=k), samples=4, gpu_util_sum=4 * (40 + k % 50),
                  gpu_util_max=min(100, 60 + k % 50), mem_util_sum=40, memory_used_sum=4 * 30000, memory_used_max=32000,
                  temperature_max=60 + k % 20, power_samples=4, power_sum=4 * 250.0)
        for k in range(1, 6 * 60)
    )
    page = browse("desktop")
    sign_in(page, "alice", PASSWORD)

    page.goto(f"/gpus/{device.pk}/history/")

    expect(page.locator("#chart-status")).to_contain_text("359 points")
    points = page.evaluate(
        "() => ['chart-use', 'chart-heat'].map(id => Chart.getChart(document.getElementById(id)))"
        ".map(chart => chart ? chart.data.datasets.map(set => set.data.filter(p => p.y !== null).length) : null)"
    )
    assert points == [[359, 359, 359], [359, 359]]
    expect(page.locator(".history-bookings")).to_contain_text("Bob Marley")
    expect(page.locator("table.summary")).to_contain_text("Utilization, peak")
    shoot(page, "gpu-history-day-desktop")

    # A week is drawn from hourly rollups; none were made here, so the chart is empty and says so.
    page.get_by_role("link", name="week", exact=True).click()
    expect(page).to_have_url(re.compile(r"period=week"))
    expect(page.locator("#chart-status")).to_have_text("No readings in this period.")
    assert page.evaluate("() => Chart.getChart(document.getElementById('chart-use')) !== undefined")


@pytest.mark.parametrize("width", list(WIDTHS))
def test_gpu_pages_fit_the_screen_and_pass_axe(browse, shoot, lab, width):
    device = lab["thalys"].devices.get(index=0)
    end = timezone.now().replace(second=0, microsecond=0)
    GpuMinute.objects.bulk_create(
        GpuMinute(device=device, bucket=end - timedelta(minutes=k), samples=4, gpu_util_sum=4 * 70, gpu_util_max=90,
                  mem_util_sum=40, memory_used_sum=4 * 30000, memory_used_max=32000, temperature_max=70,
                  power_samples=4, power_sum=4 * 250.0)
        for k in range(1, 120)
    )
    page = browse(width)
    sign_in(page, "alice", PASSWORD)
    problems = {}
    for name, url in {"gpus": "/gpus/", "gpus-thalys": "/gpus/?server=thalys", "gpu-history": f"/gpus/{device.pk}/history/"}.items():
        response = page.goto(url)
        assert response.status == 200, f"{url} answered {response.status}"
        if name == "gpu-history":
            expect(page.locator("#chart-status")).to_contain_text("points")
        shoot(page, f"{name}-{width}")
        # Wide tables scroll inside their own box; the page itself never scrolls sideways.
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{url} is {overflow}px wider than the {width} screen"
        problems[url] = accessibility_problems(page)
    assert not any(problems.values()), "\n".join(f"{url}: {line}" for url, lines in problems.items() for line in lines)
