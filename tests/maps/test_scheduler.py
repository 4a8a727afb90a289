"""``maps/scheduler.py`` alone, sans-I/O with a hand-moved clock: Retry-After holds a row
back, one burst of 429s halves concurrency once, gateway errors are retried with the
client's backoff, a 500 or a read timeout is never sent again."""

from __future__ import annotations

import pytest

from deepinfra_magic._config import RetryPolicy
from deepinfra_magic.errors import (
    APITimeoutError,
    InvalidArgumentError,
    RateLimitError,
    ServerError,
)
from deepinfra_magic.maps import plan_map
from deepinfra_magic.maps.scheduler import AdaptiveLimit, RowScheduler


def _flow(rows: int, concurrency: int) -> tuple[RowScheduler, list[float]]:
    now = [0.0]
    job = plan_map(
        [f"r{i}" for i in range(rows)], "{}", "m", system=None,
        temperature=None, max_tokens=None, params={}, store=None,
    )  # fmt: skip
    return RowScheduler(job, concurrency, clock=lambda: now[0]), now


def test_retry_after_holds_the_row_back_until_it_has_passed() -> None:
    flow, now = _flow(1, 4)
    [(row, epoch)] = flow.ready()
    flow.failed(row, RateLimitError("slow down", retry_after=5.0), epoch)
    assert flow.ready() == [] and flow.wake_in() == 5.0
    now[0] = 4.9
    assert flow.ready() == []
    now[0] = 5.0
    assert [sent for sent, _ in flow.ready()] == [row]


def test_one_burst_of_429s_halves_once_then_concurrency_grows_back_slowly() -> None:
    limit = AdaptiveLimit(16)
    epoch = limit.epoch
    for _ in range(10):  # ten refusals from the same burst
        limit.rate_limited(epoch)
    assert limit.limit == 8
    limit.rate_limited(limit.epoch)
    assert limit.limit == 4
    for _ in range(4):
        limit.succeeded()
    assert limit.limit == 5  # one more after a window's worth of successes


def test_gateway_errors_are_retried_then_kept_on_the_row() -> None:
    flow, now = _flow(1, 1)
    for _ in range(3):
        now[0] += 100
        [(row, epoch)] = flow.ready()
        flow.failed(row, ServerError("HTTP 503", status_code=503), epoch)
    assert flow.finished and row.error == "HTTP 503"


def test_a_500_or_a_read_timeout_is_not_sent_again_the_model_may_have_run() -> None:
    for error in (ServerError("HTTP 500", status_code=500), APITimeoutError("no data")):
        flow, _ = _flow(1, 1)
        [(row, epoch)] = flow.ready()
        flow.failed(row, error, epoch)
        assert flow.finished and row.attempts == 1 and row.error == error.message


def test_a_concurrency_below_one_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(InvalidArgumentError, match="concurrency must be 1 or more"):
        AdaptiveLimit(0)


def test_the_wait_before_a_retry_follows_the_clients_retry_policy() -> None:
    job = plan_map(
        ["r"], "{}", "m", system=None, temperature=None, max_tokens=None, params={}, store=None
    )
    policy = RetryPolicy(max_retries=5, base_delay=2.0, max_delay=2.0)
    flow = RowScheduler(job, 1, policy, clock=lambda: 0.0)
    [(row, epoch)] = flow.ready()
    flow.failed(row, ServerError("HTTP 502", status_code=502), epoch)
    wait = flow.wake_in()
    assert wait is not None and 1.5 <= wait <= 2.5  # 2 s, with the policy's ±25% jitter
