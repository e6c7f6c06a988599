"""The demo (make demo): links in its messages follow its address, manage.py prints no warning on SQLite,
Ctrl-C ends manage.py without a traceback, and its console shows one line per booking change."""
import logging
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction

from reservations import services
from reservations.models import Limit, MemberGroup

from ..factories import ServerFactory

# What the developer's environment may set that would change what the demo's settings come to.
CHANGED_BY = {"SITE_URL", "DEMO_HOST", "DEMO_PORT", "DATABASE_URL", "REDIS_URL", "LABRES_VAR_DIR", "DJANGO_ALLOW_ASYNC_UNSAFE"}


def run(args, tmp_path, env=None, **options):
    environment = {k: v for k, v in os.environ.items() if k not in CHANGED_BY}
    environment.update({"SECRET_KEY": "test-only", "DEBUG": "1", "LABRES_VAR_DIR": str(tmp_path / "var"), **(env or {})})
    return subprocess.run([sys.executable, *args], cwd=settings.BASE_DIR, env=environment, capture_output=True, text=True,
                          timeout=120, **options)


SITE_URL = "from django.conf import settings; import django; django.setup(); print(settings.SITE_URL)"


@pytest.mark.parametrize("env, site_url", [
    ({"DEMO_HOST": "127.0.0.1", "DEMO_PORT": "8766"}, "http://127.0.0.1:8766"),
    ({"DEMO_HOST": "0.0.0.0", "DEMO_PORT": "8080"}, "http://localhost:8080"),
    ({}, "http://localhost:8000"),
    ({"DEMO_PORT": "8766", "SITE_URL": "https://labres.lab.example.org/"}, "https://labres.lab.example.org"),
])
def test_site_url_follows_the_demos_address_unless_set(tmp_path, env, site_url):
    result = run(["-c", f"import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'labres.settings'; {SITE_URL}"], tmp_path, env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == site_url


def test_manage_py_on_sqlite_prints_no_warning(tmp_path):
    result = run(["manage.py", "check", "--database", "default"], tmp_path)

    assert result.returncode == 0, result.stderr
    assert "W047" not in result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_ctrl_c_ends_a_manage_py_command_without_a_traceback(tmp_path):
    # The command starts as from a terminal, where Ctrl-C is not ignored: a suite run as a background job
    # (`make test &`) ignores SIGINT, which its children would inherit (a handler of its own they would not).
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        shell = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", "import time; print('ready', flush=True); time.sleep(60)"],
            cwd=settings.BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**{k: v for k, v in os.environ.items() if k not in CHANGED_BY}, "SECRET_KEY": "test-only", "LABRES_VAR_DIR": str(tmp_path / "var")},
        )
    finally:
        signal.signal(signal.SIGINT, ignored)
    assert shell.stdout.readline().strip() == "ready"
    shell.send_signal(signal.SIGINT)
    _, errors = shell.communicate(timeout=30)

    assert shell.returncode == 130
    assert "Traceback" not in errors and "KeyboardInterrupt" not in errors


@pytest.mark.django_db
def test_a_limit_is_unique_per_owner_and_place_on_every_database():
    students = MemberGroup.objects.create(name="Students")
    Limit.objects.create(kind=Limit.Kind.MAX_GPUS, group=students, number=4)

    with pytest.raises(IntegrityError), transaction.atomic():
        Limit.objects.create(kind=Limit.Kind.MAX_GPUS, group=students, number=8)  # everywhere, once more


@pytest.mark.django_db(transaction=True)
def test_each_booking_change_logs_one_line_once_committed(alice, caplog, later):
    thalys = ServerFactory(name="thalys", gpus=2)
    caplog.set_level(logging.INFO, logger="labres.bookings")

    booking = services.create_booking(alice, start=later, end=later + timedelta(hours=2), server=thalys, devices="0-1")
    services.cancel_booking(booking, by=alice)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_booking(alice, start=later, end=later + timedelta(hours=1), server=thalys, devices="0")
        raise RuntimeError("rolled back")

    lines = [record.getMessage() for record in caplog.records if record.name == "labres.bookings"]
    assert len(lines) == 2
    assert lines[0].startswith(f"booking #{booking.pk} created: Alice Liddell, thalys:0-1, ")
    assert lines[1].startswith(f"booking #{booking.pk} cancelled: Alice Liddell, thalys:0-1, ")


def test_the_demos_worker_beat_and_host_agent_log_warnings_only():
    procfile = (settings.BASE_DIR / "Procfile.demo").read_text()
    lines = dict(line.split(": ", 1) for line in procfile.splitlines() if line.strip())

    for name in ("worker", "beat", "host"):
        assert "--loglevel WARNING" in lines[name], lines[name]
    assert "LOG_REQUESTS=0" in lines["web"]
