"""What the gateway remembers between requests: facts that, once true, stay true.

No product, payment method or address is ever deleted, and none changes owner. So once a service
has confirmed that order_svc can price a product, or that a payment method or an address belongs
to a user, the gateway need not ask again: placing an order then costs no read of another
service. Only confirmations are kept. A refusal is asked again next time, because a product that
was created a moment ago may reach order_svc a moment later.

Kept per gateway replica, in memory, and bounded: the least recently used facts go first.
"""

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable


class Facts:
    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._known: OrderedDict[Hashable, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._known)

    def known(self, fact: Hashable) -> bool:
        if fact not in self._known:
            return False
        self._known.move_to_end(fact)
        return True

    def learn(self, fact: Hashable) -> None:
        self._known[fact] = None
        self._known.move_to_end(fact)
        if len(self._known) > self._capacity:
            self._known.popitem(last=False)

    async def confirm(self, fact: Hashable, ask: Callable[[], Awaitable[bool]]) -> bool:
        """True if ``fact`` is known, or ``ask()`` confirms it now (then it is remembered)."""
        if self.known(fact):
            return True
        if not await ask():
            return False
        self.learn(fact)
        return True
