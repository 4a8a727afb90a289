"""What changes when the kernel runs in the browser (Pyodide, as in JupyterLite).

Rules this module keeps:

* Standard library only, imported by anything, importing nothing of this package: the
  callers (the client, maps, the magics, recordings) keep their one code path and ask here
  only where the browser differs.
* No threads in Pyodide: `start_pool` gives a thread pool where a thread can start, else an
  `InlineExecutor` whose tasks run in turn on the calling thread, one each time
  `wait_first` is asked, so callers see results as they complete, in submission order.
* ``-f code`` says a cell was added only when `put_into_next_cell` could add one.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import sys
import threading
from collections.abc import Callable, Collection
from typing import Any, TypeVar

__all__ = [
    "IN_BROWSER",
    "SERVE_OVER_HTTPS",
    "InlineExecutor",
    "put_into_next_cell",
    "start_pool",
    "threads_available",
    "wait_first",
]

T = TypeVar("T")

IN_BROWSER = sys.platform == "emscripten"

SERVE_OVER_HTTPS = (
    "in JupyterLite, open the page over https or from localhost (a plain-http address has "
    "no service worker to hand files to the kernel)"
)


@functools.cache
def threads_available() -> bool:
    """True where a thread can start (not in Pyodide)."""
    if IN_BROWSER:
        return False
    try:
        probe = threading.Thread(target=lambda: None, name="deepinfra-probe")
        probe.start()
    except RuntimeError:  # "can't start new thread"
        return False
    probe.join()
    return True


class InlineExecutor(concurrent.futures.Executor):
    """An executor for where no thread can start: a task runs when `wait_first` asks."""

    def __init__(self) -> None:
        self._queue: collections.deque[
            tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...], Any]
        ] = collections.deque()

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Queue ``fn(*args, **kwargs)``; its future completes when it has run."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.append((future, fn, args, kwargs))
        return future

    def run_next(self) -> None:
        """Run the oldest queued task that is not cancelled (a Ctrl-C in it propagates)."""
        while self._queue:
            future, fn, args, kwargs = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            return

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Drop the tasks not run yet (with ``cancel_futures``); nothing else is running."""
        while cancel_futures and self._queue:
            self._queue.popleft()[0].cancel()


def start_pool(max_workers: int, thread_name_prefix: str) -> concurrent.futures.Executor:
    """A thread pool, or an `InlineExecutor` where no thread can start."""
    if threads_available():
        return concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix)
    return InlineExecutor()


def wait_first(
    pool: concurrent.futures.Executor,
    futures: Collection[concurrent.futures.Future[T]],
    timeout: float | None,
) -> tuple[set[concurrent.futures.Future[T]], set[concurrent.futures.Future[T]]]:
    """``concurrent.futures.wait(..., FIRST_COMPLETED)``; inline, the next task runs now."""
    if not isinstance(pool, InlineExecutor):
        done, pending = concurrent.futures.wait(
            futures, timeout, concurrent.futures.FIRST_COMPLETED
        )
        return set(done), set(pending)
    if not any(future.done() for future in futures):
        pool.run_next()
    done = {future for future in futures if future.done()}
    return done, set(futures) - done


def put_into_next_cell(shell: Any, code: str) -> bool:
    """Put ``code`` into a new cell below; False when this shell cannot.

    ipykernel's shell sends a ``set_next_input`` payload itself; Pyodide's kernel shell
    keeps IPython's plain method, whose ``rl_next_input`` no notebook reads, but forwards
    what is written to its payload manager.
    """
    payloads = getattr(shell, "payload_manager", None)
    plain = getattr(type(shell).set_next_input, "__module__", "") == "IPython.core.interactiveshell"
    if IN_BROWSER and plain:
        if payloads is None:
            return False
        payloads.write_payload(
            {"source": "set_next_input", "text": code, "replace": False}, single=False
        )
        return True
    shell.set_next_input(code, replace=False)
    return True
