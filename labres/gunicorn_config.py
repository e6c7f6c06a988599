"""gunicorn's settings for the portal: `gunicorn -c python:labres.gunicorn_config labres.wsgi`.

gunicorn answers a request line over `limit_request_line` with its own HTML page, before Django
sees the request. Its ceiling (8190) sits above API_MAX_URI_LENGTH (4096 by default), so a long
API URI reaches Django and gets the API's JSON 414; only one over 8 KiB gets gunicorn's page (as
it would a proxy's: nginx refuses request lines over 8 KiB too). Headers keep gunicorn's limits.
"""
limit_request_line = 8190
