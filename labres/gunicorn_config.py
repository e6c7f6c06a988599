"""gunicorn's settings for the portal: `gunicorn -c python:labres.gunicorn_config labres.wsgi`.

gunicorn answers a request line over `limit_request_line` with its own HTML page, before Django
sees the request. Its ceiling (8190) sits above API_MAX_URI_LENGTH (4096 by default), so a long
API URI reaches Django and gets the API's JSON 414; only one over 8 KiB gets gunicorn's page (as
it would a proxy's: nginx refuses request lines over 8 KiB too). Headers keep gunicorn's limits.
"""
limit_request_line = 8190


def post_worker_init(worker):
    """Import every view once the worker has loaded the app, then take what is loaded so far (code, settings,
    URL patterns: some 120,000 objects) out of the garbage collector's passes with gc.freeze. A large answer
    (availability, a page of bookings) makes many objects, which start full passes; those walked every one
    of them. bench/api.py measured +20% requests per second for availability and `mine` at 16 clients."""
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (the root URLconf includes, so imports, every view)
    gc.freeze()
