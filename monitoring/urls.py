"""Monitoring's pages: live GPUs and their history, usage analytics, Prometheus metrics."""
from django.urls import include, path

urlpatterns = [
    path("", include("monitoring.views.live")),
    path("", include("monitoring.views.usage")),
    path("", include("monitoring.views.metrics")),
]
