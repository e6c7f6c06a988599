"""labres: the project package (settings, urls, the Celery app, the `labres` CLI).

It imports nothing on its own, so the CLI (labres.cli) starts without Django or Celery; the
Celery app is loaded by reservations.apps when Django starts, and by `celery -A labres`.
"""
