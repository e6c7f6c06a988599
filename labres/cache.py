"""The embedded default's cache: Django's file cache, made safe to share between the threads and
processes of one machine (web, worker, beat).

Django's FileBasedCache.add() is "has_key, then set": two requests racing both add the key and
both believe they were first. Here add() and incr() hold an exclusive lock on a file in the cache
folder (flock: it excludes other processes and other threads alike), as Redis's SET NX and INCRBY
are atomic. Culling drops expired entries before it drops live ones at random.
"""
import os
from contextlib import contextmanager, suppress

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.filebased import FileBasedCache
from django.core.files import locks


class FileCache(FileBasedCache):
    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        with self._locked():
            return super().add(key, value, timeout, version)

    def incr(self, key, delta=1, version=None):
        with self._locked():
            return super().incr(key, delta, version)

    @contextmanager
    def _locked(self):
        self._createdir()
        with open(os.path.join(self._dir, "lock"), "ab") as lock:  # not *.djcache: clear() keeps it
            locks.lock(lock, locks.LOCK_EX)
            try:
                yield
            finally:
                locks.unlock(lock)

    def _cull(self):
        if len(self._list_cache_files()) < self._max_entries:
            return
        for name in self._list_cache_files():
            with suppress(FileNotFoundError), open(name, "rb") as entry:
                self._is_expired(entry)  # removes the file when it has expired
        super()._cull()
