"""A background thread that keeps this process's claims leased while their simulations run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import sqlalchemy

_log = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``renew()`` every ``interval`` seconds while the ``with`` block runs.

    A failed renewal (database unreachable) is logged and retried at the next beat; if the lease
    expires meanwhile, other processes rerun those simulations and this one's late results are dropped.
    """

    def __init__(self, renew: Callable[[], None], interval: float):
        self._renew, self._interval = renew, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="larvastudy-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._renew()
            except sqlalchemy.exc.SQLAlchemyError as error:
                _log.warning("could not renew leases (retrying in %.0f s): %s", self._interval, error)
