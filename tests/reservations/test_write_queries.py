"""A booking's writes cost the same few queries however many GPUs it holds, and name the GPUs in one query."""
import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reservations import services
from reservations.models import Booking

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


def _create(alice, thalys, start, devices):
    with CaptureQueriesContext(connection) as captured:
        booking = services.create_booking(alice, start=start, end=start + H, server=thalys, devices=devices, purpose="x")
    return booking, len(captured.captured_queries)


def test_creating_costs_the_same_queries_for_one_gpu_or_eight(alice, thalys, later, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.INFO, logger="labres.bookings")  # the log line names the GPUs
    _create(alice, thalys, later - 3 * H, "7")  # the first write of a test may load what later ones find cached
    _, few = _create(alice, thalys, later, "0")
    with django_capture_on_commit_callbacks(execute=True):  # the line is logged once the change is committed
        eight, more = _create(alice, thalys, later + 2 * H, "0-7")
    assert more == few
    assert f"booking #{eight.pk} created" in caplog.text and "thalys:0-7" in caplog.text and "thalys:0," not in caplog.text


def test_a_booking_names_its_gpus_in_one_query_unless_they_were_prefetched(alice, thalys, later, django_assert_num_queries):
    made = services.create_booking(alice, start=later, end=later + H, server=thalys, devices="5,1-2", purpose="x")
    booking = Booking.objects.select_related("server").get(pk=made.pk)
    with django_assert_num_queries(1):
        assert booking.what == "thalys:1-2,5"
    loaded = Booking.objects.select_related("server").prefetch_related("allocations__unit__device").get(pk=made.pk)
    with django_assert_num_queries(0):
        assert loaded.what == "thalys:1-2,5"
    whole = services.create_booking(alice, start=later + 2 * H, end=later + 3 * H, server=thalys, purpose="x")
    with django_assert_num_queries(0):
        assert whole.what.startswith("thalys") and ":" not in whole.what
