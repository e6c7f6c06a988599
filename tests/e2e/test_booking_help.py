"""What the browser shows and does on the booking form, the timeline, My bookings and Now (issue 18,
web pages): the live check says what the booking would, conflict help, free/busy tick boxes, bars that
are links, a drag over the past, Release asking first, Extend saying what happened, the favicon, whole
GPU model names at 1440 px, and a GPU's two charts sharing their time axis."""
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from monitoring.models import GpuMinute
from reservations import services
from reservations.models import Booking, Limit, MemberGroup, Profile
from tests.factories import ServerFactory, UserFactory

from .conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "help-pass-42"
H = timedelta(hours=1)


@pytest.fixture
def lab(db):
    alice = UserFactory(username="alice", first_name="Alice", last_name="Liddell", password=PASSWORD)
    bob = UserFactory(username="bob", first_name="Bob", last_name="Marley")
    thalys = ServerFactory(name="thalys", gpus=8)
    thalys.devices.update(model="NVIDIA GeForce RTX 4090")
    return {"alice": alice, "bob": bob, "thalys": thalys}


def signed_in(browse, width="desktop"):
    page = browse(width)
    sign_in(page, "alice", PASSWORD)
    return page


def box(page):
    return page.locator("#book-check")


def test_live_check_says_the_limit_and_the_approval_refusals_the_booking_would_give(browse, lab):
    students = MemberGroup.objects.create(name="Students")
    Profile.objects.update_or_create(user=lab["alice"], defaults={"group": students})
    Limit.objects.create(kind=Limit.Kind.MAX_GPUS, group=students, number=2)
    ServerFactory(name="vault", gpus=2, requires_approval=True)
    page = signed_in(browse)

    page.goto("/book/")
    page.get_by_label("Server", exact=True).select_option("thalys")
    for index in range(3):
        page.locator(f"label.gpu:has(input[value='thalys:{index}'])").click()
    expect(box(page)).to_contain_text("Students may hold at most 2 GPUs at once; you asked for 3.")
    expect(box(page)).not_to_contain_text("Free")

    page.get_by_label("Server", exact=True).select_option("vault")
    page.locator("label.gpu:has(input[value='vault:0'])").click()
    expect(box(page)).to_contain_text("cannot start right away")
    expect(box(page)).not_to_contain_text("Free")


def test_conflict_help_offers_free_gpus_and_the_boxes_say_free_or_busy(browse, lab):
    now = timezone.now()
    services.create_booking(lab["bob"], server="thalys", devices="0-1", start=now, end=now + 3 * H, purpose="bob's eval")
    page = signed_in(browse)

    page.goto("/book/")
    page.get_by_label("Server", exact=True).select_option("thalys")
    page.locator("label.gpu:has(input[value='thalys:0'])").click()
    page.locator("label.gpu:has(input[value='thalys:1'])").click()

    expect(box(page)).to_contain_text("Taken: thalys GPUs 0-1")
    expect(box(page)).to_contain_text("GPUs 2-3 of thalys — use them")
    busy, free = page.locator("label.gpu:has(input[value='thalys:0'])"), page.locator("label.gpu:has(input[value='thalys:5'])")
    expect(busy).to_have_attribute("data-state", "busy")
    expect(busy.locator(".state")).to_have_text("busy")
    expect(busy).to_have_attribute("title", re.compile("held by Bob Marley"))
    expect(free.locator(".state")).to_have_text("free")

    page.get_by_role("link", name="use them").click()
    expect(page.locator("input[value='thalys:2']")).to_be_checked()
    expect(page.locator("input[value='thalys:3']")).to_be_checked()
    expect(page.locator("input[value='thalys:0']")).not_to_be_checked()
    expect(box(page)).to_contain_text("Free: thalys GPUs 2-3")


def test_gpu_model_names_are_whole_at_1440_px(browse, lab):
    page = signed_in(browse, "desktop")
    page.goto("/book/")
    page.get_by_label("Server", exact=True).select_option("thalys")

    models = page.locator(".gpu-group[data-server='thalys'] .model")
    expect(models.first).to_have_text("RTX 4090")
    cut = models.evaluate_all("names => names.filter(n => n.scrollWidth > n.clientWidth + 1 || n.getBoundingClientRect().width < 1).length")
    assert cut == 0


def test_timeline_bars_are_keyboard_links_named_with_the_details(browse, lab):
    now = timezone.now()
    booking = services.create_booking(lab["bob"], server="thalys", devices="2", start=now, end=now + 2 * H, purpose="bob's eval")
    page = signed_in(browse)
    page.goto("/timeline/?view=day")

    bar = page.get_by_role("link", name=re.compile(rf"^Bob Marley · bob's eval: booking #{booking.pk}, .*\d\d:\d\d"))
    expect(bar).to_have_count(1)
    # Reached with the keyboard: Tab from the link before it lands on the bar, and Enter opens it.
    page.locator(".tl-row.gpu").nth(2).locator(".tl-label").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == f"/bookings/{booking.pk}/"
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/bookings/{booking.pk}/$"))
    expect(page.locator("h1")).to_have_text(f"Booking #{booking.pk}")


def test_a_span_dragged_over_the_past_opens_the_form_from_now(browse, lab):
    page = signed_in(browse)
    page.goto("/timeline/?view=day")
    track = page.locator(".tl-row.gpu").first.locator(".tl-track")
    area = track.bounding_box()
    window = page.locator(".tl[data-start]")
    start, end = (int(window.get_attribute(name)) for name in ("data-start", "data-end"))
    now_ms = page.evaluate("Date.now()")

    def x_at(ms):
        return area["x"] + area["width"] * min(max((ms - start) / (end - start), 0.001), 0.999)

    y = area["y"] + area["height"] / 2
    page.mouse.move(x_at(now_ms - 2 * 3600_000), y)
    page.mouse.down()
    page.mouse.move(x_at(now_ms + 2 * 3600_000), y, steps=5)
    page.mouse.up()

    page.wait_for_url("**/book/?**")
    shown = page.get_by_label("Start", exact=True).input_value()
    expected = {timezone.localtime(timezone.now() + delta).strftime("%Y-%m-%dT%H:%M") for delta in (-H / 60, timedelta(0), H / 60)}
    assert shown in expected
    expect(box(page)).to_contain_text("Free: thalys GPU 0")
    expect(box(page)).not_to_contain_text("in the past")


def test_release_asks_first_and_extend_on_now_says_what_happened(browse, lab):
    now = timezone.now()
    running = services.create_booking(lab["alice"], server="thalys", devices="0", start=now, end=now + 2 * H, purpose="run")
    page = signed_in(browse)

    page.goto("/mine/")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.locator(f"#booking-{running.pk}").get_by_role("button", name="Release now").click()
    expect(page.locator(f"#booking-{running.pk}")).to_contain_text("Release now")
    assert asked == [f"Release booking #{running.pk} (thalys:0) now? It ends at once and others can book it."]
    running.refresh_from_db()
    assert running.status == Booking.Status.CONFIRMED

    page.goto("/")
    line = page.locator("li.my-line", has=page.get_by_role("link", name="thalys:0"))
    line.get_by_role("button", name="Extend +1h").click()
    new_end = timezone.localtime(running.end + H)
    shown = f"{new_end:%H:%M}" if new_end.date() == timezone.localdate() else f"{new_end:%a %d %b %H:%M}"  # the day when it is another
    expect(line.get_by_role("status")).to_have_text(f"Extended booking #{running.pk} (thalys:0) to {shown} {new_end.tzname()}.")

    services.create_booking(lab["bob"], server="thalys", devices="0", start=running.end + H, end=running.end + 2 * H)
    line.get_by_role("button", name="Extend +1h").click()
    expect(line.get_by_role("alert")).to_contain_text("GPU 0 on thalys is booked by Bob Marley")


def test_pages_have_a_favicon_and_no_404(browse, lab):
    page = browse("desktop")
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status >= 400 else None)
    sign_in(page, "alice", PASSWORD)
    page.goto("/book/")
    page.wait_for_load_state("networkidle")

    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(icon).status == 200
    assert page.request.get("/favicon.ico").status == 200  # pages without the link (the admin's)
    assert missing == []


def test_a_gpus_two_history_charts_share_their_time_axis(browse, lab):
    device = lab["thalys"].devices.get(index=0)
    end = timezone.now().replace(second=0, microsecond=0)
    GpuMinute.objects.bulk_create(
        GpuMinute(device=device, bucket=end - timedelta(minutes=k), samples=4, gpu_util_sum=4 * 50, gpu_util_max=80, mem_util_sum=40,
                  memory_used_sum=4 * 30000, memory_used_max=32000, temperature_max=70, power_samples=4, power_sum=4 * 250.0)
        for k in range(1, 120)
    )
    page = signed_in(browse)
    page.goto(f"/gpus/{device.pk}/history/")
    expect(page.locator("#chart-status")).to_contain_text("points")

    axes = page.evaluate(
        "() => ['chart-use', 'chart-heat'].map(id => Chart.getChart(document.getElementById(id)))"
        ".map(chart => [chart.scales.x.min, chart.scales.x.max, chart.chartArea.left, chart.chartArea.right])"
    )
    assert axes[0][:2] == axes[1][:2]
    assert abs(axes[0][2] - axes[1][2]) <= 1 and abs(axes[0][3] - axes[1][3]) <= 1, axes
