"""The pure core of sending: splitting rejected batches.

``Delivery`` is driven here against models of Prometheus 2.42's rules (checked against
the real Prometheus in tests/test_remote_write_prometheus.py): every sample older than
a cutoff refused ("too old sample", "out of bounds"), single bad samples refused
(duplicates), and a plain 4xx. What matters: every good sample is acknowledged,
every bad one dropped and counted, and the number of requests stays small (no
retry storm).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharosd.pipeline.batch import Batch
from pharosd.pipeline.delivery import Delivery
from pharosd.pipeline.remote_write import Verdict

KEY = ("m", ())


def batch_of(ts: list[int]) -> Batch:
    return Batch.of([(KEY, t, float(t)) for t in ts]).by_time()


def drive(d: Delivery, answer, reason: str = "too_old", limit: int = 10_000):
    """Send every part; ``answer(part) -> Verdict``. Returns (acked ts, requests)."""
    acked: list[int] = []
    requests = 0
    while True:
        part = d.next_part()
        if part is None:
            return acked, requests
        requests += 1
        assert requests < limit, "delivery does not terminate"
        v = answer(part)
        if v is Verdict.OK:
            acked.extend(part.ts)
        d.result(v, reason)


# -- delivery ----------------------------------------------------------------------


def test_an_accepted_batch_is_one_request() -> None:
    d = Delivery(batch_of(list(range(100))))
    acked, requests = drive(d, lambda p: Verdict.OK)
    assert (sorted(acked), requests, d.dropped, d.done) == (list(range(100)), 1, {}, True)


def test_a_plain_4xx_drops_the_batch_after_one_request() -> None:
    d = Delivery(batch_of(list(range(100))))
    acked, requests = drive(d, lambda p: Verdict.DROP, reason="rejected")
    assert (acked, requests, d.dropped) == ([], 1, {"rejected": 100})


def too_old_model(cutoff: int):
    def answer(part: Batch) -> Verdict:
        return Verdict.REJECT_AGE if min(part.ts) < cutoff else Verdict.OK
    return answer


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 17, 40])
def test_too_old_samples_are_split_off_for_every_cutoff(n: int) -> None:
    for cutoff in range(0, n + 1):
        d = Delivery(batch_of(list(range(n))))
        acked, requests = drive(d, too_old_model(cutoff))
        assert sorted(acked) == list(range(cutoff, n))
        assert d.dropped == ({"too_old": cutoff} if cutoff else {})
        assert requests <= 3 * math.ceil(math.log2(n + 1)) + 3


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.integers(min_value=1, max_value=2000))
def test_a_2000_sample_batch_finds_its_cutoff_in_few_requests(cutoff: int, n: int) -> None:
    d = Delivery(batch_of(list(range(n))))
    acked, requests = drive(d, too_old_model(cutoff))
    assert sorted(acked) == list(range(min(cutoff, n), n))
    assert sum(d.dropped.values()) == min(cutoff, n)
    assert requests <= 40


def test_an_all_too_old_batch_costs_two_requests_and_teaches_the_cutoff() -> None:
    d = Delivery(batch_of(list(range(2000))))
    acked, requests = drive(d, too_old_model(10_000))
    assert (acked, requests, d.dropped) == ([], 2, {"too_old": 2000})
    assert d.cutoff_ms == 1999
    # The next batch drops what is at or below the learned cutoff before sending.
    d2 = Delivery(batch_of(list(range(1000, 3000))), cutoff_ms=d.cutoff_ms)
    acked2, requests2 = drive(d2, lambda p: Verdict.OK)
    assert (sorted(acked2), requests2, d2.dropped) == (list(range(2000, 3000)), 1,
                                                       {"too_old": 1000})


def test_out_of_order_is_dropped_without_teaching_a_cutoff() -> None:
    d = Delivery(batch_of(list(range(50))))
    drive(d, lambda p: Verdict.REJECT_AGE, reason="out_of_order")
    assert d.dropped == {"out_of_order": 50}
    assert d.cutoff_ms is None


@pytest.mark.parametrize("bad", [[0], [49], [17], [3, 40]])
def test_single_bad_samples_are_found_and_dropped_alone(bad: list[int]) -> None:
    def answer(part: Batch) -> Verdict:
        return Verdict.REJECT_SAMPLE if set(part.ts) & set(bad) else Verdict.OK

    d = Delivery(batch_of(list(range(50))))
    acked, requests = drive(d, answer, reason="duplicate")
    assert sorted(acked) == [t for t in range(50) if t not in bad]
    assert d.dropped == {"duplicate": len(bad)}
    assert requests <= 30


def test_many_scattered_bad_samples_end_within_the_budget() -> None:
    def answer(part: Batch) -> Verdict:
        return Verdict.REJECT_SAMPLE if any(t % 7 == 0 for t in part.ts) else Verdict.OK

    d = Delivery(batch_of(list(range(2000))))
    acked, requests = drive(d, answer, reason="duplicate")
    assert d.done
    assert len(acked) + sum(d.dropped.values()) == 2000
    assert not any(t % 7 == 0 for t in acked)
    assert d.rejections <= d.budget
    assert requests <= 2 * d.budget + 2


def test_a_retry_in_the_middle_of_a_split_leaves_exactly_the_unresolved_samples() -> None:
    d = Delivery(batch_of(list(range(100))))
    answers = iter([Verdict.REJECT_AGE, Verdict.OK, Verdict.OK])
    acked: list[int] = []
    for _ in range(3):
        part = d.next_part()
        assert part is not None
        v = next(answers)
        if v is Verdict.OK:
            acked.extend(part.ts)
        d.result(v, "too_old")
    part_before = d.next_part()
    d.result(Verdict.RETRY)
    again = d.next_part()
    assert again is not None and part_before is not None
    assert list(again.ts) == list(part_before.ts), "a retry keeps the same part"
    rest = sorted(d.remaining().ts)
    assert sorted(rest + acked) == list(range(100))
    assert not set(rest) & set(acked)
