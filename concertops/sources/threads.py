"""Work in parallel that never holds the process up.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter exits, so one connection
to a server that accepts and never answers keeps a cron check alive past its timeout. These workers are
daemon threads: what still runs at a caller's deadline is abandoned, and the process exits on time.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class DaemonPool:
    """Worker threads that never hold the process up: work still running at the deadline is abandoned."""

    def __init__(self, workers: int) -> None:
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._workers = workers
        for _ in range(workers):
            threading.Thread(target=self._serve, daemon=True, name="concertops-worker").start()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self._work.put((fn, future))
        return future

    def close(self) -> None:
        for _ in range(self._workers):
            self._work.put(None)

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            fn, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # handed to the waiting side, which reports it
                    future.set_exception(exc)


def map_within(fn: Callable[[T], R], items: Iterable[T], timeout_s: float, late: R) -> list[R]:
    """``[fn(item) …]`` in parallel; an item not done within ``timeout_s`` gives ``late``."""
    work = list(items)
    pool = DaemonPool(max(1, len(work)))
    try:
        futures = [pool.submit(functools.partial(fn, item)) for item in work]
        wait(futures, timeout=timeout_s)
        return [f.result() if f.done() and not f.exception() else late for f in futures]
    finally:
        pool.close()
