"""The Celery application: web, worker, beat and host agents all load this one."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labres.settings")

app = Celery("labres")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
