import os
import subprocess
import sys

from django.conf import settings


def run_django_setup(**env):
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=settings.BASE_DIR, env=environment, capture_output=True, text=True, timeout=60,
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = run_django_setup()

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert "DEBUG=1 for local development" in result.stderr


def test_debug_starts_without_a_secret_key():
    assert run_django_setup(DEBUG="1").stdout.strip() == "started"


def test_sqlite_default_serializes_writers():
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
        assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]
    else:
        assert database["ENGINE"].endswith("postgresql")
