"""A bounded least-recently-used cache, so that a long-running (hosted) app holds a fixed number of models, forward
passes and upload digests however many users come and go."""

from __future__ import annotations

import collections
import threading
from typing import Callable, Hashable, Iterator, Optional, Tuple


class LRUCache:
    """At most `size` entries; reading or writing an entry makes it the most recent, and adding one past the bound
    forgets the least recently used (`on_evict(key, value)` is told). Safe to share between threads.

    Args:
        size: the bound, at least 1.
        on_evict: called with each forgotten entry, outside the cache's lock.
    """

    def __init__(self, size: int, on_evict: Optional[Callable[[Hashable, object], None]] = None):
        if int(size) != size or size < 1:
            raise ValueError(f"cache size must be a whole number of at least 1, got {size!r}")
        self.size = int(size)
        self.on_evict = on_evict
        self._items: "collections.OrderedDict[Hashable, object]" = collections.OrderedDict()
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        return key in self._items

    def get(self, key, default=None):
        """The entry of `key` (now the most recent), or `default`."""
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value):
        """Store `value` under `key` as the most recent entry, forgetting the least recent ones past the bound."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            evicted = [self._items.popitem(last=False) for _ in range(len(self._items) - self.size)]
        self._evicted(evicted)

    def pop_oldest(self) -> Tuple[Hashable, object]:
        """Forget the least recently used entry and return it (KeyError when empty)."""
        with self._lock:
            if not self._items:
                raise KeyError("the cache is empty")
            item = self._items.popitem(last=False)
        self._evicted([item])
        return item

    def remove(self, predicate: Callable[[Hashable, object], bool]) -> int:
        """Forget every entry for which `predicate(key, value)` holds; returns how many (not reported to
        `on_evict`: the caller chose them)."""
        with self._lock:
            keys = [k for k, v in self._items.items() if predicate(k, v)]
            for k in keys:
                del self._items[k]
        return len(keys)

    def items(self) -> Iterator[Tuple[Hashable, object]]:
        """A snapshot of the entries, least recent first."""
        with self._lock:
            return iter(list(self._items.items()))

    def _evicted(self, items):
        if self.on_evict is not None:
            for key, value in items:
                self.on_evict(key, value)


__all__ = ["LRUCache"]
