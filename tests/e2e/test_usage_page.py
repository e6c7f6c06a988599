"""The usage analytics page in a real browser: tables, Chart.js charts, changing the period, accessibility."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from monitoring.models import GpuHour
from reservations import services
from tests.factories import ServerFactory, UserFactory

from .conftest import WIDTHS, accessibility_problems, sign_in

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "usage-pass-42"


@pytest.fixture
def lab(db, settings):
    settings.USAGE_REPORT_CACHE_SECONDS = 0
    alice = UserFactory(username="alice", first_name="Alice", last_name="Liddell")
    alice.set_password(PASSWORD)
    alice.save()
    bob = UserFactory(username="bob", first_name="Bob", last_name="Marley")
    bob.groups.add(Group.objects.create(name="vision"))
    thalys = ServerFactory(name="thalys", gpus=4)
    eurostar = ServerFactory(name="eurostar", gpus=2)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)

    def book(user, server, devices, start, hours, purpose):
        return services.create_booking(user, start=start, end=start + timedelta(hours=hours), server=server.name,
                                       devices=devices, purpose=purpose, now=start)

    book(alice, thalys, "0-1", hour - timedelta(days=2), 6, "resnet sweep")
    book(bob, eurostar, "0", hour - timedelta(days=1), 4, "idle notebook")
    book(bob, thalys, "3", hour - timedelta(days=20), 8, "old run")  # only in the last 30 days
    rows = []
    for server, busy in ((thalys, 70), (eurostar, 2)):
        for device in server.devices.all():
            for h in range(24 * 3):
                util = busy if h % 24 in range(8, 20) else 0
                rows.append(GpuHour(device=device, bucket=hour - timedelta(hours=h + 1), samples=240,
                                    active_samples=240 if util >= 5 else 0, gpu_util_sum=util * 240, gpu_util_max=util))
    GpuHour.objects.bulk_create(rows)
    return {"alice": alice, "bob": bob}


def chart_of(page, canvas_id):
    return page.evaluate(
        "(id) => { const chart = Chart.getChart(document.getElementById(id)); "
        "return chart ? {labels: chart.data.labels, sets: chart.data.datasets.length} : null; }",
        canvas_id,
    )


def test_the_usage_page_shows_tables_and_charts_and_changes_period(browse, shoot, lab):
    page = browse("desktop")
    sign_in(page, "alice", PASSWORD)

    page.goto("/usage/")
    expect(page.get_by_role("heading", name="GPU usage")).to_be_visible()
    expect(page.locator("#servers-table")).to_contain_text("thalys")
    expect(page.locator("#members-table")).to_contain_text("Alice Liddell")
    expect(page.locator("#groups-table")).to_contain_text("vision")
    expect(page.locator("#idle-table")).to_contain_text("idle notebook")
    expect(page.locator("#heat-table tbody tr")).to_have_count(2)
    assert page.locator("#heat-table td[title]").count() == 2 * 168
    assert chart_of(page, "chart-servers") == {"labels": ["eurostar", "thalys"], "sets": 3}  # booked, booked and used, unbooked use
    assert chart_of(page, "chart-members")["sets"] == 2
    expect(page.locator("#servers-table tbody tr").filter(has_text="thalys")).to_contain_text("12.0")
    shoot(page, "usage-desktop")

    # Twenty days back: bob's old run comes in, and the charts are drawn again for that period.
    start = (timezone.localdate() - timedelta(days=30)).isoformat()
    page.get_by_label("From").fill(start)
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(f"**/usage/?start={start}*")
    expect(page.locator("#members-table")).to_contain_text("Bob Marley")
    expect(page.locator("#servers-table tbody tr").filter(has_text="thalys")).to_contain_text("20.0")
    assert set(chart_of(page, "chart-members")["labels"]) == {"Alice Liddell", "Bob Marley"}

    # A preset is one click; a bad period answers with the reason, in the form.
    page.get_by_role("link", name="Last 7 days").click()
    expect(page.get_by_role("link", name="Last 7 days")).to_have_attribute("aria-current", "page")
    page.get_by_label("To").fill("2000-01-01")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("alert")).to_contain_text("The end is before the start.")

    assert accessibility_problems(page) == []


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_usage_page_fits_and_passes_axe_at_each_width(browse, shoot, lab, width):
    page = browse(width)
    sign_in(page, "alice", PASSWORD)

    response = page.goto("/usage/")
    page.wait_for_load_state("networkidle")

    assert response.status == 200
    shoot(page, f"usage-{width}")
    # The heat map scrolls inside its own box; the page itself is no wider than the screen.
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the usage page is {overflow}px wider than the {width} screen"
    assert accessibility_problems(page) == []


def test_the_csv_link_downloads_a_file(browse, lab):
    page = browse("desktop")
    sign_in(page, "alice", PASSWORD)
    page.goto("/usage/")

    with page.expect_download() as download:
        page.get_by_role("link", name="by member").click()

    today = timezone.localdate()
    assert download.value.suggested_filename == f"labres-usage-{today - timedelta(days=7)}-{today}-member.csv"
    assert download.value.path().read_text().splitlines()[0].startswith("member,username,groups")
