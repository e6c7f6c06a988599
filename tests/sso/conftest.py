"""Fixtures for single sign-on: a real slapd (session-wide), the portal's LDAP settings pointed at it."""
import pytest

from tests.conftest import IN_CI

from .slapd import PEOPLE, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd, slapd_missing


def pytest_collection_modifyitems(items):
    for item in items:
        if "slapd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ldap)


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
