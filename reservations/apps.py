from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save


class ReservationsConfig(AppConfig):
    name = "reservations"
    verbose_name = "Reservations"

    def ready(self):
        import labres.celery  # noqa: F401  the app must exist before any task is sent from this process

        post_save.connect(_give_new_users_a_profile, sender=settings.AUTH_USER_MODEL, dispatch_uid="labres-profile")

        from . import waitlist
        from .signals import booking_changed

        booking_changed.connect(waitlist.on_booking_changed, dispatch_uid="labres-waitlist-match")

        from labres.logs import log_booking_change

        booking_changed.connect(log_booking_change, dispatch_uid="labres-booking-log")


def _give_new_users_a_profile(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        from .models import Profile

        Profile.objects.get_or_create(user=instance)
