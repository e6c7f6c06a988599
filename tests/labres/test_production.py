"""Production defaults: the README's production settings pass Django's deploy checks and behave as they
promise (HTTPS only, Secure cookies, HSTS; the probes not redirected), and the embedded defaults' files
are labres's user's alone (var/ 0700, the SQLite database and mail files 0600)."""
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

# Variables a developer's or CI's environment may set that would change what is checked here.
CHANGED_BY = {
    "DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "EMAIL_URL", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS",
    "BEHIND_TLS_PROXY", "SESSION_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "LABRES_VAR_DIR",
    "DJANGO_ALLOW_ASYNC_UNSAFE",  # the browser tests set it in this process; no deployment does
}
# Stand-ins for the README's "..." values.
SAMPLES = {
    "SECRET_KEY": "deploy-check-key-7Qm2Xv9LpR4tWz8YbN3cK6dH1sJ5fG0aE",
    "DATABASE_URL": "postgres://labres:secret@db.example.org:5432/labres",
    "REDIS_URL": "redis://redis.example.org:6379/0",
}


def readme_production_env():
    """The variables of the README's production `export` line, with its "..." filled in."""
    readme = (settings.BASE_DIR / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("export SECRET_KEY="))
    pairs = dict(word.split("=", 1) for word in line.split()[1:])
    return {name: SAMPLES[name] if value.endswith("...") else value for name, value in pairs.items()}


def run(args, var_dir, env, **options):
    environment = {k: v for k, v in os.environ.items() if k not in CHANGED_BY}
    environment.update(env, LABRES_VAR_DIR=str(var_dir))
    return subprocess.run([sys.executable, *args], cwd=settings.BASE_DIR, env=environment, capture_output=True,
                          text=True, timeout=120, **options)


def test_the_readmes_production_settings_pass_the_deploy_checks(tmp_path):
    env = readme_production_env()
    assert env["BEHIND_TLS_PROXY"] == "1" and "CSRF_TRUSTED_ORIGINS" not in env

    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path / "var", env)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


BEHAVIOUR = """
import json
import django
django.setup()
from django.conf import settings
from django.http import HttpResponse
from django.middleware.security import SecurityMiddleware
from django.test import RequestFactory

middleware = SecurityMiddleware(lambda request: HttpResponse())
factory = RequestFactory(HTTP_HOST="labres.example.org")

def location(path, **headers):
    response = middleware.process_request(factory.get(path, **headers))
    return response and (response.status_code, response["Location"])

secure = factory.get("/", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({
    "plain": location("/mine/?x=1"),
    "through the proxy": location("/mine/", HTTP_X_FORWARDED_PROTO="https"),
    "health": location("/health/"),
    "metrics": location("/metrics"),
    "hsts": middleware.process_response(secure, HttpResponse()).get("Strict-Transport-Security"),
    "cookies": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE],
}))
"""


def test_behind_the_proxy_http_is_redirected_cookies_are_secure_and_hsts_is_sent(tmp_path):
    result = run(["-c", BEHAVIOUR], tmp_path / "var", readme_production_env())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "plain": [301, "https://labres.example.org/mine/?x=1"],
        "through the proxy": None,
        "health": None,  # probes call a web process directly, over plain HTTP
        "metrics": None,
        "hsts": "max-age=31536000",  # a year; no includeSubDomains or preload unless asked for
        "cookies": [True, True],
    }


def test_hsts_can_be_configured(tmp_path):
    env = {**readme_production_env(), "SECURE_HSTS_SECONDS": "600", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1", "SECURE_HSTS_PRELOAD": "1"}
    result = run(["-c", BEHAVIOUR], tmp_path / "var", env)
    assert json.loads(result.stdout)["hsts"] == "max-age=600; includeSubDomains; preload"


def test_without_the_proxy_a_laptop_keeps_plain_http(tmp_path):
    result = run(["-c", BEHAVIOUR], tmp_path / "var", {"DEBUG": "1"})
    answer = json.loads(result.stdout)
    assert (answer["plain"], answer["hsts"], answer["cookies"]) == (None, None, [False, False])


FILES = """
import json, os, stat
import django
django.setup()
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection
with connection.cursor() as cursor:  # the connection stays open: its -wal and -shm files are there
    cursor.execute("CREATE TABLE t (x)")
    cursor.execute("INSERT INTO t VALUES (1)")
send_mail("subject", "body", "labres@localhost", ["alice@lab.org"])
modes = {}
for folder, _, names in os.walk(settings.VAR_DIR):
    for path in [folder] + [os.path.join(folder, name) for name in names]:
        modes[os.path.relpath(path, settings.VAR_DIR)] = oct(stat.S_IMODE(os.stat(path).st_mode))
print(json.dumps(modes))
"""


@pytest.mark.parametrize("before", ["fresh", "made open by an older labres"])
def test_the_embedded_defaults_files_are_private(tmp_path, before):
    var = tmp_path / "var"
    if before != "fresh":
        (var / "mail").mkdir(parents=True, mode=0o755)
        (var / "labres.sqlite3").touch(mode=0o644)
        os.chmod(var, 0o755)

    result = run(["-c", FILES], var, {"DEBUG": "1"}, umask=0o022)

    assert result.returncode == 0, result.stderr
    modes = json.loads(result.stdout)
    assert modes["."] == "0o700"
    assert {name: modes[name] for name in ("labres.sqlite3", "labres.sqlite3-wal", "labres.sqlite3-shm", "mail")} == {
        "labres.sqlite3": "0o600", "labres.sqlite3-wal": "0o600", "labres.sqlite3-shm": "0o600", "mail": "0o700",
    }
    mails = [name for name in modes if name.startswith("mail/")]
    assert len(mails) == 1 and modes[mails[0]] == "0o600"
    # Everything else under var/ is behind var/ itself; the broker's folders are private too.
    assert (modes["celery"], modes["celery/broker"]) == ("0o700", "0o700")
