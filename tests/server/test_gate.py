"""krait/server/gate.py: at most N threads inside at once, the others admitted in arrival order."""

import threading
import time

from krait.server.gate import FairGate


def test_waiters_are_admitted_one_per_leave_in_arrival_order():
    gate = FairGate(2)
    gate.enter()
    gate.enter()  # both slots taken
    order = []

    def waiter(n):
        gate.enter()
        order.append(n)

    threads = []
    for n in range(5):
        t = threading.Thread(target=waiter, args=(n,), daemon=True)
        t.start()
        threads.append(t)
        time.sleep(0.02)  # so that they queue in this order
    assert order == []
    for expected in range(1, 6):
        gate.leave()  # hands one slot to the oldest waiter
        deadline = time.monotonic() + 5
        while len(order) < expected and time.monotonic() < deadline:
            time.sleep(0.001)
        assert order == list(range(expected))
    for t in threads:
        t.join(5)


def test_free_slots_need_no_waiting():
    gate = FairGate(1)
    for _ in range(3):
        gate.enter()
        gate.leave()
    gate.enter()
    entered = threading.Event()
    t = threading.Thread(target=lambda: (gate.enter(), entered.set()), daemon=True)
    t.start()
    assert not entered.wait(0.1)
    gate.leave()
    assert entered.wait(5)
