"""Running an index build's tasks: in this process, on a pool of processes (every core), or on a
Dask cluster, with one progress bar.

Tasks are plain top-level functions whose first argument is the store's path (or URL); a worker
opens each store once and keeps it for the tasks that follow (workers live only as long as the
build). Tasks run in this process use the caller's own store, lent for that run only: a store
opened here would live, with memory of its own, as long as the process. Results come back in
submission order.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

from ..errors import UsageError
from ..store import ZVFStore, open_store

SERIAL_BELOW = 64  # tasks: fewer than this run in this process (starting workers costs more)
_STORES: dict[str, ZVFStore] = {}  # a worker's open stores (here: the stores lent to a run)


def worker_store(path: str) -> ZVFStore:
    """The store at ``path``, opened once per worker process."""
    if path not in _STORES:
        _STORES[path] = open_store(path)
    return _STORES[path]


@contextmanager
def lent(store: ZVFStore) -> Iterator[None]:
    """``store`` as :func:`worker_store`'s answer for its path while tasks run in this process."""
    _STORES[store.path] = store
    try:
        yield
    finally:
        if _STORES.get(store.path) is store:  # not another thread's, lent since
            del _STORES[store.path]


class Runner:
    """Where the tasks of ``store``'s build run: ``scheduler`` a Dask scheduler address
    (``tcp://host:8786``), else local processes (``workers``, default every core; 1 runs
    everything here)."""

    def __init__(
        self,
        store: ZVFStore,
        *,
        scheduler: str | None = None,
        workers: int | None = None,
        progress: bool = False,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.workers = workers or os.cpu_count() or 1
        self.progress = progress

    def map(self, fn: Callable[..., Any], args: Sequence[tuple], what: str) -> Iterator[Any]:
        """``fn(*a)`` for each ``a`` in ``args``, in order."""
        bar = tqdm(total=len(args), desc=what, unit="task", disable=not self.progress, file=sys.stderr, leave=False)
        try:
            if self.scheduler:
                yield from self._dask(fn, args, bar)
            elif self.workers <= 1 or len(args) < SERIAL_BELOW:
                with lent(self.store):
                    for a in args:
                        yield fn(*a)
                        bar.update()
            else:
                context = multiprocessing.get_context("spawn")  # no fork: zarr runs an event-loop thread
                with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
                    for result in pool.map(
                        fn, *zip(*args, strict=True), chunksize=max(1, len(args) // (8 * self.workers))
                    ):
                        yield result
                        bar.update()
        finally:
            bar.close()

    def _dask(self, fn: Callable[..., Any], args: Sequence[tuple], bar: tqdm) -> Iterator[Any]:
        try:
            from distributed import Client
        except ImportError:
            raise UsageError("--dask needs dask.distributed: pip install 'zvfs[dask]'") from None
        with Client(self.scheduler) as client:
            futures = [client.submit(fn, *a, pure=False) for a in args]
            for future in futures:
                yield future.result()
                bar.update()
