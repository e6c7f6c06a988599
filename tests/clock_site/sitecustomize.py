"""Loaded at start-up by processes the tests spawn (tests/clock_site is on their PYTHONPATH): moves this
process's clock by CLOCK_OFFSET seconds, so a worker or the CLI sees the same time as the test."""
import os

_offset = float(os.environ.get("CLOCK_OFFSET") or 0)
if _offset:
    import time

    import time_machine

    time_machine.travel(time.time() + _offset, tick=True).start()
    time.time()  # time-machine's clock starts running at its first reading, not at start()
