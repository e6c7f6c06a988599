"""Telemetry endpoints of the JSON API, under /api/v1/telemetry/."""
from django.urls import path

from . import api

urlpatterns = [
    path("latest/", api.TelemetryLatestView.as_view(), name="api-telemetry-latest"),
    path("history/", api.TelemetryHistoryView.as_view(), name="api-telemetry-history"),
]
