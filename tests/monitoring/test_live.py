"""live_hosts: each GPU's latest reading, who runs what on it, and how that compares with its booking."""
from datetime import timedelta

import pytest

from monitoring.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeGPU
from monitoring.live import HostState, Load, Match, live_hosts, load_of
from tests.factories import ServerFactory

from .telemetry import gpu, just_now, report, running_booking

pytestmark = pytest.mark.django_db


@pytest.fixture
def eurostar(db):
    return ServerFactory(name="eurostar", gpus=4)


def only_host(**kwargs):
    (host,) = live_hosts(**kwargs)
    return host


def test_load_follows_the_thresholds(settings):
    settings.GPU_ACTIVE_PERCENT, settings.GPU_HIGH_PERCENT = 5, 80
    assert [load_of(u) for u in (None, 0, 4, 5, 79, 80, 100)] == [
        Load.NO_DATA, Load.IDLE, Load.IDLE, Load.ACTIVE, Load.ACTIVE, Load.HIGH, Load.HIGH,
    ]


def test_a_booked_gpu_used_by_its_booker_is_as_booked(members, eurostar):
    alice, _ = members
    booking = running_booking(alice, eurostar, "0", started_ago=timedelta(minutes=10))
    report(eurostar, [gpu("alice"), FakeGPU(), FakeGPU(), FakeGPU()], just_now())

    host = only_host()

    first = host.gpus[0]
    assert host.state == HostState.OK
    assert first.holding.booking_id == booking.pk
    assert first.load in (Load.ACTIVE, Load.HIGH)
    assert first.match == Match.AS_BOOKED
    assert [(p.unix_user, p.member, p.booked) for p in first.processes] == [("alice", "Alice Liddell", True)]
    assert host.gpus[1].match == Match.FREE


def test_someone_elses_process_on_a_booked_gpu_is_unbooked_use(members, eurostar):
    alice, bob = members
    running_booking(alice, eurostar, "0", started_ago=timedelta(minutes=10))
    report(eurostar, [gpu("alice", "bob"), FakeGPU(), FakeGPU(), FakeGPU()], just_now())

    first = only_host().gpus[0]

    assert first.match == Match.UNBOOKED
    assert [(p.unix_user, p.member_id) for p in first.intruders] == [("bob", bob.pk)]


def test_a_booked_gpu_with_nothing_running_is_booked_idle(members, eurostar):
    running_booking(members[0], eurostar, "1", started_ago=timedelta(minutes=10))
    report(eurostar, [FakeGPU(), FakeGPU(), FakeGPU(), FakeGPU()], just_now())

    assert only_host().gpus[1].match == Match.BOOKED_IDLE


def test_a_process_of_an_unknown_user_on_a_free_gpu_is_unbooked_use(members, eurostar):
    report(eurostar, [FakeGPU(), FakeGPU(), FakeGPU(), gpu("mallory")], just_now())

    last = only_host().gpus[3]

    assert last.match == Match.UNBOOKED
    assert [(p.unix_user, p.member) for p in last.intruders] == [("mallory", None)]


def test_a_whole_server_booking_covers_every_gpu(members, eurostar):
    alice, _ = members
    running_booking(alice, eurostar, None, started_ago=timedelta(minutes=5))
    report(eurostar, [gpu("alice") for _ in range(4)], just_now())

    assert {g.match for g in only_host().gpus} == {Match.AS_BOOKED}


def test_a_busy_gpu_whose_processes_are_hidden_is_judged_by_load(members, eurostar):
    hidden = gpu("alice", hides_processes=True)
    report(eurostar, [hidden, FakeGPU(hides_processes=True), FakeGPU(), FakeGPU()], just_now())

    host = only_host()

    assert host.gpus[0].processes is None and host.gpus[0].processes_note.startswith("Processes not visible")
    assert host.gpus[0].match == Match.UNBOOKED  # busy and nobody booked it
    assert host.gpus[1].match == Match.FREE


def test_a_gpu_that_failed_reports_its_error(eurostar):
    report(eurostar, [FakeGPU(failing=True), FakeGPU(), FakeGPU(), FakeGPU()], just_now())

    first = only_host().gpus[0]

    assert first.load == Load.ERROR
    assert "GPU is lost" in first.error
    assert first.match == Match.UNKNOWN


def test_a_host_without_a_recent_reading_is_stale_and_shows_no_values(eurostar, settings):
    settings.TELEMETRY_INTERVAL_SECONDS, settings.TELEMETRY_STALE_INTERVALS = 15, 3
    report(eurostar, [gpu("alice") for _ in range(4)], just_now() - timedelta(minutes=2))

    host = only_host()

    assert host.state == HostState.STALE
    assert {g.load for g in host.gpus} == {Load.NO_DATA}
    assert {g.match for g in host.gpus} == {Match.UNKNOWN}


def test_a_host_without_nvml_says_so(eurostar):
    report(eurostar, [], just_now(), init_error=NVML_ERROR_LIBRARY_NOT_FOUND)

    host = only_host()

    assert host.state == HostState.NO_NVML
    assert "NVML Shared Library Not Found" in host.nvml_error


def test_never_seen_and_unmonitored_hosts(eurostar):
    ServerFactory(name="ice", monitored=False)

    hosts = live_hosts()

    assert [(h.name, h.state) for h in hosts] == [("eurostar", HostState.NEVER)]


def test_only_the_latest_reading_counts(members, eurostar):
    report(eurostar, [gpu("bob"), FakeGPU(), FakeGPU(), FakeGPU()], just_now() - timedelta(seconds=15))
    report(eurostar, [FakeGPU(), FakeGPU(), FakeGPU(), FakeGPU()], just_now())

    assert only_host().gpus[0].match == Match.FREE


def test_live_hosts_reads_in_a_fixed_number_of_queries(members, eurostar, django_assert_max_num_queries):
    for seed, name in enumerate(("a", "b", "c"), start=1):
        server = ServerFactory(name=name, gpus=4)
        report(server, [gpu("alice"), gpu("bob"), FakeGPU(), FakeGPU()], just_now(), seed=seed)
    report(eurostar, [gpu("alice"), FakeGPU(), FakeGPU(), FakeGPU()], just_now())

    with django_assert_max_num_queries(6):
        hosts = live_hosts()

    assert len(hosts) == 4 and all(len(h.gpus) == 4 for h in hosts)
