"""The one memory budget: a value whose size is known is given room before it is computed (so the
process never holds it and a full budget at once), and what the budget evicts is reported to
:mod:`zvfs.memory`, which gives it back to the system in a tuned daemon."""

from __future__ import annotations

import pytest

from zvfs import memory
from zvfs.cache import ENTRY_BYTES, Budget


def test_room_is_made_before_a_value_of_known_size_is_computed() -> None:
    budget = Budget(4 * (100 + ENTRY_BYTES))
    memo = budget.memo(len)
    for key in "abcd":
        memo.get(key, lambda: b"x" * 100)
    assert budget.used == budget.nbytes

    def compute() -> bytes:
        assert budget.used + 250 + ENTRY_BYTES <= budget.nbytes, "room made first"
        return b"y" * 250

    assert memo.get("e", compute, expected=250) == b"y" * 250
    assert memo.peek("a") is None and memo.peek("b") is None and memo.peek("d") == b"x" * 100


def test_a_value_of_unknown_size_or_larger_than_the_budget_evicts_nothing_first() -> None:
    budget = Budget(2 * (100 + ENTRY_BYTES))
    memo = budget.memo(len)
    memo.get("a", lambda: b"x" * 100)
    memo.get("b", lambda: b"x" * 100)

    def compute(n: int) -> bytes:
        assert budget.used == budget.nbytes, "nothing evicted before computing"
        return b"y" * n

    assert memo.get("big", lambda: compute(5000), expected=5000) == b"y" * 5000
    assert memo.peek("a") == b"x" * 100 and memo.peek("big") is None
    memo.get("c", lambda: compute(100))
    assert memo.peek("a") is None and memo.peek("b") == b"x" * 100 and memo.peek("c") == b"y" * 100


def test_evicted_bytes_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[int] = []
    monkeypatch.setattr(memory, "released", reported.append)
    budget = Budget(3 * (100 + ENTRY_BYTES))
    memo = budget.memo(len)
    for key in "abcde":
        memo.get(key, lambda: b"x" * 100)
    memo.drop("e")
    assert sum(reported) == 3 * (100 + ENTRY_BYTES)  # a and b evicted, e dropped
    assert budget.used == 2 * (100 + ENTRY_BYTES)


def test_tune_takes_effect_on_glibc() -> None:
    """The daemons call it first; on this (glibc) machine it must apply, and trimming must work."""
    assert memory.tune()
    memory.released(memory.TRIM_EVERY)  # calls malloc_trim
