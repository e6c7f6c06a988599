from django.apps import AppConfig
from django.db.models.signals import post_save


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from monitoring.models import Alert
        from reservations.signals import booking_changed, series_changed, waitlist_changed, waitlist_told

        from . import receivers, tasks  # noqa: F401 - tasks: the outbox hands work to them by name

        booking_changed.connect(receivers.on_booking_changed, dispatch_uid="labres-notify-bookings")
        waitlist_changed.connect(receivers.on_waitlist_changed, dispatch_uid="labres-notify-waitlist")
        series_changed.connect(receivers.on_series_changed, dispatch_uid="labres-notify-series")
        waitlist_told.connect(receivers.on_waitlist_told, dispatch_uid="labres-notify-waitlist-told")
        post_save.connect(receivers.on_alert_saved, sender=Alert, dispatch_uid="labres-notify-alerts")
