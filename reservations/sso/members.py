"""What a directory (an OpenID provider's claims, an LDAP server's entry) decides about a member, applied on
each sign-in: e-mail and names, the staff flag, the primary group (MemberGroup) and the unix user name."""
import logging

from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import MemberGroup, Profile

logger = logging.getLogger(__name__)

UNMANAGED = None  # a staff flag or group list the lab did not configure: the member's stays as it is


def follow_directory(user, *, email="", first_name="", last_name="", is_staff=UNMANAGED, groups=UNMANAGED, group_map=None,
                     unix_username=""):
    """Bring `user` in line with the directory: given names and e-mail replace the stored ones, `is_staff`
    (unless UNMANAGED) sets the staff flag (a superuser keeps it), `groups` (the directory's group names,
    unless UNMANAGED) picks the primary group, and a valid, free `unix_username` becomes the profile's."""
    with transaction.atomic():
        fields = {"email": email, "first_name": first_name, "last_name": last_name}
        changed = [name for name, value in fields.items() if value and getattr(user, name) != value]
        for name in changed:
            setattr(user, name, fields[name])
        if is_staff is not UNMANAGED and user.is_staff != (is_staff or user.is_superuser):
            user.is_staff = is_staff or user.is_superuser
            changed.append("is_staff")
        if changed:
            user.save(update_fields=changed)
        profile, _ = Profile.objects.select_for_update().get_or_create(user=user)
        profile_changed = []
        if groups is not UNMANAGED:
            group = member_group_for(groups, group_map or {})
            if profile.group_id != (group.pk if group else None):
                profile.group = group
                profile_changed.append("group")
        if unix_username and profile.unix_username != unix_username and _unix_username_free(user, unix_username):
            profile.unix_username = unix_username
            profile_changed.append("unix_username")
        if profile_changed:
            profile.save(update_fields=profile_changed)
    return user


def member_group_for(directory_groups, group_map):
    """The MemberGroup a member's directory groups put them in, or None. With a map (directory group name ->
    MemberGroup name) the first entry, in the map's order, that names one of their groups; without one, a
    MemberGroup named like one of their groups (case aside; the first by name when several are)."""
    names = {str(name).strip().lower() for name in directory_groups}
    if group_map:
        wanted = [group_name for directory_name, group_name in group_map.items() if directory_name.strip().lower() in names]
        found = {group.name: group for group in MemberGroup.objects.filter(name__in=wanted)}
        missing = [name for name in wanted if name not in found]
        if missing:
            logger.warning("The group map names member groups that do not exist: %s", ", ".join(missing))
        return next((found[name] for name in wanted if name in found), None)
    return next((group for group in MemberGroup.objects.order_by("name") if group.name.lower() in names), None)


def _unix_username_free(user, unix_username):
    """A directory's user name becomes the unix one only if it is valid there and no other member has it."""
    try:
        Profile._meta.get_field("unix_username").run_validators(unix_username)
    except ValidationError:
        logger.info("Not a unix user name, so not stored for %s: %r", user.get_username(), unix_username)
        return False
    if Profile.objects.filter(unix_username=unix_username).exclude(user=user).exists():
        logger.warning("The directory gives %s the unix user name %r, which another member has: left unchanged.",
                       user.get_username(), unix_username)
        return False
    return True
