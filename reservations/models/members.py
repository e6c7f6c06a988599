"""Members: their profile, API tokens, groups and sign-in counters.
"""
import functools

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from ..text import refuse_control_characters


@functools.cache
def _time_zone_choices():
    """The zones a profile may choose. Read once a process: available_timezones() walks the tz database's
    folders (about 45 ms), and every form with a time zone asked again (the admin's user page four times)."""
    import zoneinfo

    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones()) if "/" in name or name == "UTC"]


class Profile(models.Model):
    """A member's own settings: the name others see, and the time zone times are shown in."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    display_name = models.CharField(
        max_length=100, blank=True, validators=[refuse_control_characters], help_text="How others see you; empty means your full name.",
    )
    time_zone = models.CharField(max_length=64, blank=True, choices=_time_zone_choices, help_text="Empty means the lab's time zone.")
    unix_username = models.CharField(
        max_length=32,
        blank=True,
        verbose_name="unix user name",
        validators=[RegexValidator(r"^[a-z_][a-z0-9_.-]*\$?$", "Write the user name as on the GPU hosts, e.g. alice or a.liddell.")],
        help_text="Your user name on the GPU hosts, so your processes there are matched to your bookings.",
    )
    group = models.ForeignKey(
        "MemberGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="members",
        verbose_name="primary group", help_text="The group whose limits apply to this member (and its parents' limits).",
    )
    slack_user_id = models.CharField(
        max_length=32,
        blank=True,
        verbose_name="Slack user id",
        validators=[RegexValidator(r"^[UW][A-Z0-9]{2,}$", "A Slack user id looks like U012ABCDEF.")],
        help_text="Your Slack member id (U…), for direct messages and mentions; found from your e-mail when Slack is set up.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["unix_username"], condition=~Q(unix_username=""), name="profile_unix_username_unique",
                violation_error_message="Another member already has this unix user name.",
            ),
            models.UniqueConstraint(
                fields=["slack_user_id"], condition=~Q(slack_user_id=""), name="profile_slack_user_id_unique",
                violation_error_message="Another member is already linked to this Slack account.",
            ),
        ]

    def __str__(self):
        return f"profile of {self.user.get_username()}"


def member_name(user):
    """The name a member goes by: display name, else full name, else user name."""
    try:
        display = user.profile.display_name
    except Profile.DoesNotExist:
        display = ""
    return display_name_of(display, user.first_name, user.last_name, user.get_username())


def display_name_of(display_name, first_name, last_name, username):
    """member_name from its parts, for reads that fetch columns rather than users."""
    return display_name or f"{first_name or ''} {last_name or ''}".strip() or username


class ApiToken(models.Model):
    """A named token a member made for scripts and the CLI; only a hash of it is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8, help_text="The first characters, to tell tokens apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(key):
        import hashlib

        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name):
        """Make a token; returns (token, key). The key is shown once and never stored."""
        import secrets

        key = secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name.strip() or "token", prefix=key[:8], key_hash=cls.hash(key))
        return token, key


class MemberGroup(models.Model):
    """A group of members with limits, inheriting its parent's (Everyone -> Students)."""

    name = models.CharField(max_length=100, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children",
        help_text="Limits this group does not set itself come from here.",
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "member group"

    def __str__(self):
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        group = self.parent
        while group is not None:
            if group.pk == self.pk:
                raise ValidationError({"parent": "A group cannot be its own ancestor; choose another parent."})
            group = group.parent


class SignInCounter(models.Model):
    """One counter of the password-guessing limits (reservations/signin.py): failures of an account,
    of an address, of an account at an address it knows; password reset e-mails. The key is a hash,
    so the table holds no user names or addresses; a row past `expires` counts as zero."""

    key = models.CharField(max_length=64, primary_key=True)
    count = models.IntegerField(default=0)
    expires = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"{self.key}: {self.count} until {self.expires:%Y-%m-%d %H:%M}"
