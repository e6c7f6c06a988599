"""Monitoring's pages and endpoints, one module per surface; each module that serves pages
defines its own `urlpatterns`, which monitoring.urls includes."""
