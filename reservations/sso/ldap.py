"""Sign-in against an LDAP or Active Directory server (django-auth-ldap), behind the same guessing limits
as local passwords (reservations/signin.py).

The portal binds with LDAP_BIND_DN, finds the member with LDAP_USER_FILTER under LDAP_USER_SEARCH_BASE,
checks the password by binding as them, and on success follows the directory (members.py): names and
e-mail, staff from LDAP_STAFF_GROUP, primary group from their groups, unix user name from uid or
sAMAccountName. A member the directory knows signs in only with the directory's password: their local
one is cleared at their first directory sign-in, so an account the directory disables stays closed.
Accounts the directory does not know (a local staff account for when the directory is down) keep their
local passwords.
"""
import ldap
from django.conf import settings
from django_auth_ldap.backend import LDAPBackend
from django_auth_ldap.config import (
    ActiveDirectoryGroupType,
    GroupOfNamesType,
    GroupOfUniqueNamesType,
    LDAPSearch,
    LDAPSettings,
    NestedGroupOfNamesType,
    PosixGroupType,
)

from ..signin import LimitedModelBackend
from .members import UNMANAGED, follow_directory

GROUP_TYPES = {
    "groupOfNames": GroupOfNamesType,
    "nestedGroupOfNames": NestedGroupOfNamesType,
    "groupOfUniqueNames": GroupOfUniqueNamesType,
    "posixGroup": PosixGroupType,
    "activeDirectory": ActiveDirectoryGroupType,
}
UNIX_NAME_ATTRIBUTES = ("uid", "sAMAccountName")  # OpenLDAP's posixAccount, Active Directory's logon name


class DirectoryBackend(LDAPBackend):
    """django-auth-ldap, configured from the LDAP_* settings (labres/settings.py) rather than AUTH_LDAP_*
    ones; an AUTH_LDAP_* setting still wins, for what the environment does not cover."""

    @property
    def settings(self):
        if self._settings is None:
            self._settings = LDAPSettings(self.settings_prefix, directory_settings())
        return self._settings

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        self.known = ldap_user.dn is not None  # found by the search, whatever the password was
        return user


def directory_settings():
    """django-auth-ldap's settings (without their AUTH_LDAP_ prefix) from the LDAP_* ones."""
    options = {ldap.OPT_REFERRALS: 0, ldap.OPT_NETWORK_TIMEOUT: settings.LDAP_TIMEOUT, ldap.OPT_TIMEOUT: settings.LDAP_TIMEOUT}
    if settings.LDAP_CA_FILE:
        options.update({ldap.OPT_X_TLS_CACERTFILE: settings.LDAP_CA_FILE, ldap.OPT_X_TLS_REQUIRE_CERT: ldap.OPT_X_TLS_DEMAND})
    options[ldap.OPT_X_TLS_NEWCTX] = 0  # last: makes the TLS context with the options above
    values = {
        "SERVER_URI": settings.LDAP_SERVER_URI,
        "BIND_DN": settings.LDAP_BIND_DN,
        "BIND_PASSWORD": settings.LDAP_BIND_PASSWORD,
        "START_TLS": settings.LDAP_START_TLS,
        "CONNECTION_OPTIONS": options,
        "USER_SEARCH": LDAPSearch(settings.LDAP_USER_SEARCH_BASE, ldap.SCOPE_SUBTREE, settings.LDAP_USER_FILTER),
        "USER_ATTR_MAP": {},  # follow_directory stores names and e-mail, after the sign-in
        "ALWAYS_UPDATE_USER": True,
    }
    if settings.LDAP_GROUP_SEARCH_BASE:
        group_type = GROUP_TYPES[settings.LDAP_GROUP_TYPE]
        values["GROUP_TYPE"] = group_type(name_attr="cn") if group_type is not PosixGroupType else group_type()
        values["GROUP_SEARCH"] = LDAPSearch(settings.LDAP_GROUP_SEARCH_BASE, ldap.SCOPE_SUBTREE, settings.LDAP_GROUP_FILTER)
    return values


class LimitedLDAPBackend(LimitedModelBackend):
    """The directory's password check behind the sign-in limits: one count per attempt, whether the directory
    or (for an account it does not know) the local password answers. Permissions stay Django's."""

    names_ignore_case = True  # the directory finds 'Alice' as 'alice': both spend one account's tries

    def check_password(self, request, name, password, **kwargs):
        directory = DirectoryBackend()
        directory.known = False
        user = directory.authenticate(request, username=name, password=password)
        if user is not None:
            return follow_entry(user, user.ldap_user) if self.user_can_authenticate(user) else None
        if directory.known:
            return None
        return super().check_password(request, name, password, **kwargs)


def follow_entry(user, ldap_user):
    """Apply the member's directory entry and groups to their account (members.follow_directory)."""
    attrs = ldap_user.attrs or {}
    grouped = bool(settings.LDAP_GROUP_SEARCH_BASE)
    group_names = ldap_user.group_names if grouped else UNMANAGED
    staff_group = settings.LDAP_STAFF_GROUP.strip().lower()
    is_staff = UNMANAGED
    if grouped and staff_group:
        is_staff = staff_group in {name.lower() for name in group_names} | {dn.lower() for dn in ldap_user.group_dns}
    if user.has_usable_password():
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return follow_directory(
        user,
        email=_first(attrs, settings.LDAP_EMAIL_ATTR),
        first_name=_first(attrs, settings.LDAP_FIRST_NAME_ATTR),
        last_name=_first(attrs, settings.LDAP_LAST_NAME_ATTR),
        is_staff=is_staff,
        groups=group_names,
        group_map=settings.LDAP_GROUP_MAP,
        unix_username=next(filter(None, (_first(attrs, name) for name in _unix_attributes())), ""),
    )


def _unix_attributes():
    return [settings.LDAP_UNIX_USERNAME_ATTR] if settings.LDAP_UNIX_USERNAME_ATTR else UNIX_NAME_ATTRIBUTES


def _first(attrs, name):
    """An attribute's first value; django-auth-ldap's attrs are a case-insensitive dict of lists."""
    values = attrs.get(name) or []
    return str(values[0]).strip() if values else ""
