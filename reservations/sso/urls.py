from django.urls import path

from . import oidc

urlpatterns = [
    path("accounts/logout/", oidc.SignOut.as_view(), name="logout"),  # before django.contrib.auth's
    path("accounts/oidc/start/", oidc.Start.as_view(), name="oidc-start"),
    path("accounts/oidc/callback/", oidc.Callback.as_view(), name="oidc-callback"),
]
