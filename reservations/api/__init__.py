"""The JSON API under /api/v1/, as docs/api-contract.md describes it.

Thin by design: serializers check shapes and read times, durations and device sets; every
write goes through reservations.services; one exception handler (errors.py) gives every 4xx
the same shape.
"""
