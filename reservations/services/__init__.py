"""Every write to bookings goes through these functions, whatever the surface.

Each validates, then writes inside one transaction. Overlaps are refused by the database
(exclusion constraint on PostgreSQL, triggers plus IMMEDIATE transactions on SQLite); when
it refuses, find_conflicts says who holds what, from when to when, and why.

One module per part of the domain: targets (what a booking holds), bookings (create, change,
cancel, release), series (recurring bookings), approval, fairuse (limits), capacity (pooled
CPU and memory), waitlist, and validation (checks that need no other booking).
"""
from .approval import approve_booking, decline_booking, expire_pending_bookings, needs_approval, pending_dates
from .bookings import (
    Preview,
    cancel_booking,
    change_booking,
    create_booking,
    extend_booking,
    find_conflicts,
    preview_booking,
    release_booking,
)
from .resources import register_device
from .series import SeriesPlan, SeriesResult, cancel_series, create_series, decide_series, plan_series, series_horizon
from .targets import Target, get_bookable_room, get_bookable_server, resolve_target
from .validation import check_amount, check_purpose, check_reason, check_times

__all__ = [
    "Preview", "SeriesPlan", "SeriesResult", "Target", "approve_booking", "cancel_booking", "cancel_series", "change_booking",
    "check_amount", "check_purpose", "check_reason", "check_times", "create_booking", "create_series", "decide_series",
    "decline_booking", "expire_pending_bookings", "extend_booking", "find_conflicts", "get_bookable_room", "get_bookable_server",
    "needs_approval", "pending_dates", "plan_series", "preview_booking", "register_device", "release_booking", "resolve_target", "series_horizon",
]
