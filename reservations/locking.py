"""The locks a booking transaction takes before it checks rules that span rows (limits, pooled capacities)."""
from django.db import OperationalError, transaction

from labres.db import prepared_cursor

from .errors import Busy
from .models import Profile, Unit

UNIT_LOCK_NAMESPACE = 0x6C616272  # 'labr': keeps our advisory lock keys apart from other users'
MEMBER_LOCK_NAMESPACE = 0x6C61626D  # 'labm': a member's bookings, for their fair-use limits (sorts below 'labr': see lock_for_booking)
UNIT_LOCK_TIMEOUT = "5s"  # a busy system answers "try again"; it does not hang
UNKNOWN = object()  # a member's group not read yet (lock_for_booking reads it with the locks on PostgreSQL)


def lock_for_booking(*, units=(), member=None, pooled_server=None):
    """Take this transaction's locks in one round trip; returns the member's group id (see services.fairuse.check).

    PostgreSQL: advisory locks, always taken in ascending key order, so two transactions never
    wait for each other in a circle: a member's key (their bookings, for their fair-use limits:
    the limits are checked against what they hold, not what they held before another request of
    theirs committed) sorts below every unit's key; then the units about to be written, then, for
    a booking that shares the server's pooled capacities, the server's own unit, which serializes
    everything that shares them. Without the unit locks, two transactions inserting overlapping
    rows can each wait for the other inside the exclusion constraint, a deadlock PostgreSQL breaks
    only after a second; with them, the later writer waits for the earlier one's commit, then meets
    its row at once. The member's group is read in the same statement.
    SQLite needs no locks: BEGIN IMMEDIATE has serialized the writers already.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("booking locks are taken inside a transaction only")
    if connection.vendor != "postgresql":
        return UNKNOWN
    keys = sorted({(UNIT_LOCK_NAMESPACE << 32) | unit_id for unit_id in units})
    if member is not None:
        keys.insert(0, (MEMBER_LOCK_NAMESPACE << 32) | member)
    try:
        with prepared_cursor(connection) as cursor:
            # The timeout is set (for this transaction) before the first lock is asked for, and
            # unnest() yields the keys in the sorted array's order.
            cursor.execute(
                f"WITH timeout AS (SELECT set_config('lock_timeout', %s, true)),"
                f" wanted AS (SELECT unnest(%s::bigint[]) AS key UNION SELECT (%s::bigint << 32) | id FROM {Unit._meta.db_table}"
                f"  WHERE kind = 'server' AND server_id = %s)"
                f" SELECT pg_advisory_xact_lock(key), (SELECT group_id FROM {Profile._meta.db_table} WHERE user_id = %s)"
                f" FROM timeout, unnest(ARRAY(SELECT key FROM wanted ORDER BY key)) AS key",
                [UNIT_LOCK_TIMEOUT, keys, UNIT_LOCK_NAMESPACE, getattr(pooled_server, "pk", None), member],
            )
            rows = cursor.fetchall()
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == "55P03":  # lock_not_available
            raise Busy("Others are booking the same GPUs, server or room, or changing your other bookings, right now; please try again in a moment.") from None
        raise
    return rows[0][1] if rows and member is not None else UNKNOWN
