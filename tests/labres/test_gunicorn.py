"""The shipped gunicorn config's worker hook (labres/gunicorn_config.py); tests/api/test_uri_length.py runs it in a real worker."""
import gc

from labres import gunicorn_config


def test_a_worker_keeps_what_it_loaded_out_of_the_collectors_passes():
    assert gc.get_freeze_count() == 0
    try:
        gunicorn_config.post_worker_init(worker=None)
        assert gc.get_freeze_count() > 50_000  # the code, settings and URL patterns loaded so far
    finally:
        gc.unfreeze()
