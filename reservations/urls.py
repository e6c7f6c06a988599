from django.urls import path, re_path

from .views import account, approval, booking_form, calendars, mine, now, rooms, timeline

urlpatterns = [
    path("", now.now, name="now"),
    path("now/panel/", now.panel, name="now-panel"),
    path("timeline/", timeline.timeline, name="timeline"),
    path("rooms/", rooms.room_list, name="rooms"),
    path("rooms/<int:pk>/", rooms.room_week, name="room-week"),
    path("book/", booking_form.book, name="book"),
    path("book/check/", booking_form.check, name="book-check"),
    path("bookings/<int:pk>/", booking_form.detail, name="booking-detail"),
    path("bookings/<int:pk>.ics", booking_form.ics, name="booking-ics"),
    path("mine/", mine.my_bookings, name="my-bookings"),
    path("bookings/<int:pk>/cancel/", mine.cancel, name="booking-cancel"),
    path("bookings/<int:pk>/release/", mine.release, name="booking-release"),
    path("bookings/<int:pk>/extend/", mine.extend, name="booking-extend"),
    path("bookings/<int:pk>/change/", mine.change, name="booking-change"),
    path("bookings/<int:pk>/decide/", approval.decide, name="booking-decide"),
    path("profile/", account.profile, name="profile"),
    path("profile/notifications/", account.notification_preferences, name="profile-notifications"),
    path("profile/slack/link/", account.link_slack, name="slack-link"),
    path("profile/slack/unlink/", account.unlink_slack, name="slack-unlink"),
    path("profile/calendars/", calendars.add_feed, name="calendar-add"),
    path("profile/calendars/<int:pk>/reset/", calendars.reset_feed, name="calendar-reset"),
    path("profile/calendars/<int:pk>/remove/", calendars.remove_feed, name="calendar-remove"),
    re_path(r"^calendar/(?P<token>[A-Za-z0-9_-]{1,128})\.ics$", calendars.feed, name="calendar-feed"),
    path("profile/tokens/", account.create_token, name="token-create"),
    path("profile/tokens/<int:pk>/revoke/", account.revoke_token, name="token-revoke"),
    path("accounts/login/", account.SignInView.as_view(), name="login"),
]
