"""Fixtures for single sign-on: a real slapd (session-wide) and the portal's LDAP settings pointed at it; a real
OpenID provider (tests/sso/provider, one per test) and the portal's OIDC settings pointed at it."""
import os
import shutil
import socket
import subprocess
import sys

import pytest
from django.conf import settings

from tests.conftest import IN_CI
from tests.workers import WorkerProcess, wait_for

from .slapd import PEOPLE, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd, free_port, slapd_missing


def pytest_collection_modifyitems(items):
    for item in items:
        if "slapd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ldap)
        if "start_provider" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.oidc)


@pytest.fixture(scope="session")
def slapd(tmp_path_factory):
    """Debian's slapd with a small lab's directory; in CI a missing slapd fails the tests, never skips them."""
    missing = slapd_missing()
    if missing:
        if IN_CI:
            pytest.fail(missing)
        pytest.skip(missing)
    server = Slapd(tmp_path_factory.mktemp("slapd")).start()
    yield server
    server.stop()


@pytest.fixture
def directory(slapd, settings):
    """The portal signs in against slapd (plain ldap://), with groups; returns the server."""
    settings.LDAP_SERVER_URI = slapd.url
    settings.LDAP_BIND_DN = SERVICE_DN
    settings.LDAP_BIND_PASSWORD = SERVICE_PASSWORD
    settings.LDAP_USER_SEARCH_BASE = PEOPLE
    settings.LDAP_USER_FILTER = "(uid=%(user)s)"
    settings.LDAP_GROUP_SEARCH_BASE = f"ou=groups,{SUFFIX}"
    settings.LDAP_GROUP_FILTER = "(objectClass=groupOfNames)"
    settings.LDAP_GROUP_TYPE = "groupOfNames"
    settings.LDAP_STAFF_GROUP = "labres-staff"
    settings.LDAP_GROUP_MAP = {}
    settings.LDAP_START_TLS = False
    settings.LDAP_CA_FILE = ""
    settings.LDAP_UNIX_USERNAME_ATTR = ""
    settings.AUTHENTICATION_BACKENDS = ["reservations.sso.ldap.LimitedLDAPBackend"]
    return slapd


# --- a local OpenID provider (tests/sso/provider) ------------------------------------------------

CLIENT_ID, CLIENT_SECRET = "labres-test", "labres-test-secret"


@pytest.fixture(scope="session")
def provider_files(tmp_path_factory):
    """The provider's signing key and a migrated database that each test's provider starts from."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    folder = tmp_path_factory.mktemp("provider")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (folder / "key.pem").write_bytes(pem)
    done = subprocess.run([sys.executable, "-m", "tests.sso.provider.serve", "migrate"], cwd=settings.BASE_DIR,
                          env=_provider_env(folder / "template.sqlite3", folder), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


@pytest.fixture
def start_provider(provider_files, tmp_path, clock, settings):
    """start_provider(portal_url="http://testserver") starts the provider for this test, on the test's clock
    (its ID tokens carry times the portal checks), and points the portal's OIDC settings at it."""
    providers = []

    def start(portal_url="http://testserver"):
        database = tmp_path / f"provider-{len(providers)}.sqlite3"
        shutil.copy(provider_files / "template.sqlite3", database)
        port = free_port()
        env = _provider_env(database, provider_files, PROVIDER_ISSUER=f"http://127.0.0.1:{port}/o", PROVIDER_CLIENT_ID=CLIENT_ID,
                            PROVIDER_CLIENT_SECRET=CLIENT_SECRET, PROVIDER_REDIRECT_URIS=f"{portal_url}/accounts/oidc/callback/",
                            PROVIDER_LOGOUT_URIS=f"{portal_url}/accounts/login/")
        provider = WorkerProcess([sys.executable, "-m", "tests.sso.provider.serve", str(port)], name="OpenID provider", **env)
        providers.append(provider)
        if not wait_for(lambda: "ready" in provider.output or provider.process.poll() is not None, timeout=60):
            pytest.fail("the OpenID provider did not start:\n" + provider.output[-3000:])
        assert provider.process.poll() is None, provider.output[-3000:]
        wait_for(lambda: _listening(port), timeout=20)
        provider.url = f"http://127.0.0.1:{port}"
        settings.OIDC_ISSUER = f"{provider.url}/o"
        settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
        settings.OIDC_NAME = "Test IdP"
        settings.OIDC_GROUPS_CLAIM = "groups"
        settings.OIDC_STAFF_CLAIM, settings.OIDC_STAFF_VALUE = "groups", "labres-staff"
        settings.AUTHENTICATION_BACKENDS = ["reservations.signin.LimitedModelBackend", "reservations.sso.oidc.OIDCBackend"]
        return provider

    yield start
    for provider in providers:
        provider.stop()


def _provider_env(database, folder, **more):
    path = os.pathsep.join(filter(None, [str(settings.BASE_DIR), os.environ.get("PYTHONPATH")]))
    return {"DJANGO_SETTINGS_MODULE": "tests.sso.provider.settings", "PROVIDER_DB": str(database),
            "PROVIDER_KEY_FILE": str(folder / "key.pem"), "PYTHONPATH": path, **more}


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
