"""Locks a transaction takes before it checks rules that span rows (limits, pooled capacities, a waitlist's line).

In the manner of pretix's base/services/locking.py: lock(*objects) refuses to run outside a
transaction; on PostgreSQL it takes advisory transaction locks, always in ascending key order, with
one short timeout (a busy system answers Busy, "try again"; it does not hang); elsewhere it falls
back to select_for_update on the rows.

A key is the row's model's namespace (32 bits) above its primary key. Keys are taken in ascending
order, so two transactions that each lock in one call never wait for each other in a circle. The
namespaces' order is part of the design: a member's key sorts below every unit's (see lock()).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import OperationalError, transaction

from labres.db import prepared_cursor

from .errors import Busy

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model

NAMESPACES = {
    "member": 0x6C61626D,  # 'labm': a member's bookings, for their fair-use limits; below the units'
    "reservations.unit": 0x6C616272,  # 'labr': a unit's allocations (a server's own unit: its pooled capacities too)
    "reservations.server": 0x6C616273,  # 'labs': matching a server's waitlist
    "reservations.room": 0x6C616274,  # 'labt': matching a room's waitlist
}
LOCK_TIMEOUT = "5s"  # how long a writer waits for others' locks before it is told to try again
BUSY = "Others are booking the same GPUs, server or room, or changing your other bookings, right now; please try again in a moment."


def lock(*objects: Model) -> None:
    """Lock these rows (members, units, servers, rooms: model instances) until the transaction ends; raises Busy.

    Callers lock everything they need in one call. A booking locks its member's key (their limits
    are checked against what they hold, not what they held before another request of theirs
    committed), which sorts below every unit's key; then the units it is about to write; then,
    when it shares the server's pooled capacities, the server's own unit, which serializes
    everything that shares them. Without the unit locks, two transactions inserting overlapping
    rows can each wait for the other inside the exclusion constraint, a deadlock PostgreSQL breaks
    only after a second; with them, the later writer waits for the earlier one's commit, then
    meets its row at once.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("locks are taken inside a transaction only")
    keys = sorted({_key(obj) for obj in objects})
    if not keys:
        return
    if connection.vendor == "postgresql":
        _advisory_locks(connection, keys)
    elif connection.features.has_select_for_update:
        _row_locks(objects)
    # SQLite: nothing to do. labres.db begins its transactions IMMEDIATE, so writers are serialized
    # already (and Django drops select_for_update there anyway).


def _key(obj: Model) -> int:
    label = "member" if isinstance(obj, get_user_model()) else obj._meta.label_lower
    pk: int = obj.pk
    return (NAMESPACES[label] << 32) | pk


def _advisory_locks(connection: BaseDatabaseWrapper, keys: Sequence[int]) -> None:
    try:
        with prepared_cursor(connection) as cursor:
            # One round trip: the timeout is set (for this transaction) before the first lock is
            # asked for, and unnest() yields the keys in the sorted array's order.
            cursor.execute(
                "WITH timeout AS (SELECT set_config('lock_timeout', %s, true))"
                " SELECT pg_advisory_xact_lock(key) FROM timeout, unnest(%s::bigint[]) AS key",
                [LOCK_TIMEOUT, keys],
            )
            cursor.fetchall()
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == "55P03":  # lock_not_available
            raise Busy(BUSY) from None
        raise


def _row_locks(objects: Sequence[Model]) -> None:
    """Other databases: the rows themselves, locked model by model in the same key order."""
    by_model: dict[type[Model], set[Any]] = {}
    for obj in objects:
        concrete = type(obj)._meta.concrete_model
        assert concrete is not None, "an instance's model is concrete, or a proxy of a concrete one"
        by_model.setdefault(concrete, set()).add(obj.pk)
    for model in sorted(by_model, key=lambda model: _key(model(pk=0))):
        list(model._default_manager.select_for_update().filter(pk__in=by_model[model]).order_by("pk").values_list("pk"))
