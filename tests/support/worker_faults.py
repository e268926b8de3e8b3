"""Faults for one in-process sending worker: a store that stops answering when its worker
"dies", and a provider that runs a hook around each send.

Dying here is what SIGKILL does to a worker process: it stops where it is, and nothing it
would have written afterwards reaches the database — no outcomes, no released claims —
while everything it committed before stays. `FaultyStore.kill()` raises `WorkerKilled` at
the point of death and makes every later store call raise it too, so the worker's own
`finally` blocks cannot tidy up the way a dead process could not. What a dead process
would leave behind on the network (a message the server already accepted) stays sent.

Hooks are one-shot and run with no lock or transaction of the worker's held, as at the
moment they stand for: between a claim and marking records `sending`, or just before or
after one message is handed to the server.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, NoReturn

from mailramp.mailboxes.models import Mailbox
from mailramp.mailboxes.service import MailboxCredentials
from mailramp.mailboxes.transport import ProviderFactory
from mailramp.mailboxes.transport import SendingProvider as Provider

StoreHook = Callable[[Any], Awaitable[None]]
"""Runs around one store call; given the call's result (None before the call)."""

SendHook = Callable[[Message], Awaitable[None]]
"""Runs around one send; given the message."""


class WorkerKilled(Exception):
    """The simulated worker died here; every store call it makes afterwards raises this.

    An Exception, not a BaseException: the worker's group-commit helper hands Exceptions
    to every waiter, so the dead worker's pass unwinds instead of waiting forever."""


class FaultyStore:
    """A Store for one worker that can die, with one-shot hooks before or after a named
    call. Everything else is the real store's."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.dead = False
        self.before: dict[str, StoreHook] = {}
        self.after: dict[str, StoreHook] = {}

    def kill(self) -> NoReturn:
        """Die now."""
        self.dead = True
        raise WorkerKilled("the worker was killed")

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.dead:
                raise WorkerKilled(f"{name}: the worker is dead")
            hook = self.before.pop(name, None)
            if hook is not None:
                await hook(None)
            result = await attribute(*args, **kwargs)
            hook = self.after.pop(name, None)
            if hook is not None:
                await hook(result)  # a kill here: committed, but the worker never learns it
            return result

        return call


@dataclass
class SendHooks:
    """One-shot hooks by send number (0 is the first send of the worker's life)."""

    before: dict[int, SendHook] = field(default_factory=dict)
    after: dict[int, SendHook] = field(default_factory=dict)
    sends: int = 0


class HookedProvider:
    """A real provider with hooks around its sends."""

    def __init__(self, inner: Provider, hooks: SendHooks) -> None:
        self._inner = inner
        self._hooks = hooks

    async def send(self, message: Message, *, sender: str, recipient: str) -> None:
        number = self._hooks.sends
        self._hooks.sends += 1
        hook = self._hooks.before.pop(number, None)
        if hook is not None:
            await hook(message)
        await self._inner.send(message, sender=sender, recipient=recipient)
        hook = self._hooks.after.pop(number, None)
        if hook is not None:
            await hook(message)

    async def close(self) -> None:
        await self._inner.close()


def hooked(factory: ProviderFactory, hooks: SendHooks) -> ProviderFactory:
    """`factory`, its providers wrapped with `hooks`."""

    def build(mailbox: Mailbox, credentials: MailboxCredentials) -> Provider:
        return HookedProvider(factory(mailbox, credentials), hooks)

    return build
