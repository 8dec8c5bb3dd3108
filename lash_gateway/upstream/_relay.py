"""One call's progress and log messages on their way to its caller: the one queue type of every transport.

Messages are queued the moment they arrive and delivered in that order, one delivery at a time, before
the call's answer. Who delivers depends on the transport: on the stdio lane the call's own task does,
between waits for its answer; on the SDK's HTTP transports, which hand each notification a task of
its own, the first of those tasks delivers what is queued meanwhile too. Either way a caller that stops
reading holds up its own call and no other.

The queue is bounded: past `MAX_QUEUED` messages waiting, newer ones are dropped, so a chatty upstream
whose client does not read costs bounded memory. Drops are counted (`on_drop`, for `/metrics`) and said
once per call in the log.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

import anyio

from lash_core import LogReporter, ProgressReporter

__all__ = ["MAX_QUEUED", "CallRelay"]

log = logging.getLogger("lash_gateway.upstream")

MAX_QUEUED: Final = 256
"""Progress and log messages one call may have waiting for its caller."""

_Delivery = Callable[[], Awaitable[None]]


class CallRelay:
    """Where one call's progress and log messages wait for its caller."""

    __slots__ = ("on_progress", "on_log", "_label", "_on_drop", "_queue", "_dropped", "_wakeup", "_delivering", "_idle")

    def __init__(
        self,
        on_progress: ProgressReporter | None,
        on_log: LogReporter | None,
        *,
        label: str,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        """`label` names the call in the log ("upstream time: tool 'now'")."""
        self.on_progress, self.on_log = on_progress, on_log
        self._label, self._on_drop = label, on_drop
        self._queue: deque[_Delivery] | None = deque()
        """None once the call is over: nothing more is taken."""
        self._dropped = 0
        self._wakeup = anyio.Event()
        self._delivering = False
        self._idle: anyio.Event | None = None

    def progress(self, progress: float, total: float | None = None, message: str | None = None) -> bool:
        """Queue a progress report; True when it was queued."""
        if self.on_progress is None:
            return False
        return self._push(partial(self.on_progress, progress, total, message))

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Queue a progress report and deliver it, unless a task is delivering already (the SDK's progress
        callback on HTTP transports, which runs each notification in a task of its own)."""
        if self.progress(progress, total, message):
            await self.deliver()

    def log(self, level: str, data: Any, logger: str | None = None) -> bool:
        """Queue a log message; True when it was queued."""
        if self.on_log is None:
            return False
        return self._push(partial(self.on_log, level, data, logger))

    def _push(self, delivery: _Delivery) -> bool:
        queue = self._queue
        if queue is None:
            return False
        if len(queue) >= MAX_QUEUED:
            if self._on_drop is not None:
                self._on_drop()
            self._dropped += 1
            if self._dropped == 1:  # said once per call
                log.warning(
                    "%s: progress and log messages dropped: %d are waiting for a caller that does not read them",
                    self._label,
                    MAX_QUEUED,
                    extra={"call": self._label, "queued": MAX_QUEUED},
                )
            return False
        queue.append(delivery)
        self._wakeup.set()
        return True

    def wake(self) -> None:
        """Wake `wait_for_more()` without a message (the call's answer came)."""
        self._wakeup.set()

    async def wait_for_more(self) -> None:
        """Wait until a message is queued or `wake()` is called, whichever first; for the call's own task."""
        await self._wakeup.wait()
        self._wakeup = anyio.Event()  # what arrives from now on wakes the next wait

    @property
    def waiting(self) -> bool:
        return bool(self._queue)

    async def deliver(self) -> None:
        """Deliver what is queued, and what is queued meanwhile, in order. When another task is delivering
        already, return at once: that task delivers these too."""
        if self._delivering:
            return
        self._delivering = True
        self._idle = anyio.Event()  # one for every waiter of this delivery
        try:
            while self._queue:
                await _deliver(self._queue.popleft(), self._label)
        finally:
            self._delivering = False
            if self._idle is not None:
                self._idle.set()

    async def settled(self) -> None:
        """Return once nothing is being delivered (everything queued before now has been)."""
        while self._delivering and self._idle is not None:
            await self._idle.wait()

    def close(self) -> None:
        """The call is over: drop what is queued and take nothing more."""
        self._queue = None


async def _deliver(delivery: _Delivery, label: str) -> None:
    """Run one delivery; a reporter's failure is logged and does not end the call."""
    try:
        await delivery()
    except Exception:
        log.exception("%s: a progress or log message was not delivered to the caller", label, extra={"call": label})
