from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_delete, post_save


class ReservationsConfig(AppConfig):
    name = "reservations"
    verbose_name = "Reservations"

    def ready(self):
        import labres.celery  # noqa: F401  the app must exist before any task is sent from this process

        post_save.connect(_give_new_users_a_profile, sender=settings.AUTH_USER_MODEL, dispatch_uid="labres-profile")

        from . import tasks  # noqa: F401 - registered: the waitlist hands matching to them by name
        from .services import waitlist
        from .signals import booking_changed

        booking_changed.connect(waitlist.on_booking_changed, dispatch_uid="labres-waitlist-match")

        from . import feeds

        # What calendar feeds show besides bookings: a change there must change their ETag.
        for model in (settings.AUTH_USER_MODEL, "reservations.Server", "reservations.Room", "reservations.Device",
                      "reservations.Profile", "reservations.BookingSeries"):
            post_save.connect(feeds.on_shown_change, sender=model, dispatch_uid=f"labres-feed-stamp-save-{model}")
            post_delete.connect(feeds.on_shown_change, sender=model, dispatch_uid=f"labres-feed-stamp-delete-{model}")

        from labres.logs import log_booking_change

        booking_changed.connect(log_booking_change, dispatch_uid="labres-booking-log")


def _give_new_users_a_profile(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        from .models import Profile

        Profile.objects.get_or_create(user=instance)
