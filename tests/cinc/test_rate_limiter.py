"""The shared rate limiter: reset parsing, the algorithm, and its stores."""

import multiprocessing
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cinc.ratelimit import FileStore, MemoryStore, RateLimiter, RedisStore, parse_reset

NOW = 1_700_000_000.0


class FakeClock:
    def __init__(self, start=NOW):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def sends_in_worst_window(stamps, window):
    """The most sends found in any half-open interval of ``window`` seconds."""
    stamps = sorted(stamps)
    worst = 0
    for i, start in enumerate(stamps):
        inside = [t for t in stamps[i:] if t < start + window]
        worst = max(worst, len(inside))
    return worst


# parse_reset


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2022-05-20T09:00:00Z", datetime(2022, 5, 20, 9, tzinfo=UTC)),
        (
            "2022-05-20T09:00:00.250Z",
            datetime(2022, 5, 20, 9, 0, 0, 250000, tzinfo=UTC),
        ),
        (
            "2022-05-20T11:00:00+02:00",
            datetime(2022, 5, 20, 9, tzinfo=UTC),
        ),
        (
            "2022-05-20T04:00:00.5-05:00",
            datetime(2022, 5, 20, 9, 0, 0, 500000, tzinfo=UTC),
        ),
        ("2022-05-20T09:00:00", datetime(2022, 5, 20, 9, tzinfo=UTC)),
        ("1677130510", datetime.fromtimestamp(1677130510, UTC)),
        (1677130510, datetime.fromtimestamp(1677130510, UTC)),
        ("1677130510.75", datetime.fromtimestamp(1677130510.75, UTC)),
        (1677130510.75, datetime.fromtimestamp(1677130510.75, UTC)),
        ("1677130510000", datetime.fromtimestamp(1677130510, UTC)),
    ],
)
def test_parse_reset_reads_iso_and_epoch_values(value, expected):
    result = parse_reset(value, NOW)

    assert result == pytest.approx(expected.timestamp())


@pytest.mark.parametrize("value, seconds", [("12", 12.0), (3, 3.0), ("0.5", 0.5)])
def test_parse_reset_reads_small_numbers_as_seconds_from_now(value, seconds):
    assert parse_reset(value, NOW) == pytest.approx(NOW + seconds)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "2022-13-45T99:00:00Z",
        "2022-05-20",
        "-5",
        "nan",
        "inf",
        True,
        [1677130510],
        {"reset": 1},
        b"\xff\xfe",
        "Tue, 15 Nov 1994 08:12:31 GMT",
    ],
)
def test_parse_reset_gives_none_for_anything_else(value):
    assert parse_reset(value, NOW) is None


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.floats(), st.binary(), st.none()))
def test_parse_reset_never_raises(value):
    result = parse_reset(value, NOW)

    assert result is None or isinstance(result, float)


# The algorithm, on a fake clock.


def make_limiter(clock, **kwargs):
    return RateLimiter(MemoryStore(), clock=clock, **kwargs)


def test_reserve_grants_the_limit_then_asks_to_wait():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=15, window=20, margin=0.05)

    granted = [limiter.reserve("c:leads") for _ in range(15)]
    wait = limiter.reserve("c:leads")

    assert granted == [0.0] * 15
    assert wait == pytest.approx(20.05)
    assert len(limiter.state("c:leads")["log"]) == 15


def test_keys_have_separate_budgets():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=2, window=20)

    for _ in range(2):
        limiter.reserve("c:leads")

    assert limiter.reserve("c:leads") > 0
    assert limiter.reserve("c:agents") == 0.0
    assert limiter.reserve("other:leads") == 0.0


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=3), min_size=1, max_size=80),
    latency=st.floats(min_value=0, max_value=1),
)
def test_reserve_never_lets_more_than_the_limit_into_any_window(gaps, latency):
    clock = FakeClock()
    limiter = make_limiter(clock, limit=15, window=20, margin=0.05)
    sent = []

    for gap in gaps:
        clock.advance(gap)
        wait = limiter.reserve("c:leads")
        if wait:
            clock.advance(wait)
            wait = limiter.reserve("c:leads")
        assert wait == 0.0
        sent.append(clock.now)
        limiter.observe("c:leads", latency=latency)

    assert sends_in_worst_window(sent, 20 + 0.05) <= 15


def test_server_limit_header_lowers_the_budget():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=15, window=20)
    limiter.reserve("c:me")

    limiter.observe("c:me", limit="3", remaining="2", reset_at=NOW + 20)
    granted = [limiter.reserve("c:me") for _ in range(3)]

    assert granted[:2] == [0.0, 0.0]
    assert granted[2] > 0
    assert limiter.state("c:me")["limit"] == 3


def test_server_limit_header_can_raise_the_budget_again():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=15, window=20)
    limiter.observe("c:me", limit=3)

    limiter.observe("c:me", limit=15)

    assert limiter.state("c:me")["limit"] == 15


@pytest.mark.parametrize("limit", ["many", -4, 0, None, True, 2.5e30])
def test_unusable_limit_headers_are_ignored_or_capped(limit):
    clock = FakeClock()
    limiter = make_limiter(clock, limit=15)

    limiter.observe("c:me", limit=limit)

    assert 1 <= limiter.state("c:me")["limit"] <= 100_000


def test_429_blocks_until_the_reset_plus_margin():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=15, window=20, margin=0.05)
    limiter.reserve("c:leads")

    limiter.observe("c:leads", rate_limited=True, reset_at=NOW + 7)
    first = limiter.reserve("c:leads")
    clock.advance(first)
    second = limiter.reserve("c:leads")

    assert first == pytest.approx(7.05)
    assert second == 0.0


def test_429_without_a_usable_reset_blocks_one_window():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=15, window=20, margin=0.05)

    limiter.observe("c:leads", rate_limited=True, reset_at=None)

    assert limiter.reserve("c:leads") == pytest.approx(20.05)


def test_429_with_a_reset_in_the_past_blocks_one_window():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=15, window=20, margin=0.05)

    limiter.observe("c:leads", rate_limited=True, reset_at=NOW - 100)

    assert limiter.reserve("c:leads") == pytest.approx(20.05)


def test_a_reset_far_ahead_blocks_at_most_an_hour():
    clock = FakeClock()
    limiter = make_limiter(clock)

    limiter.observe("c:leads", rate_limited=True, reset_at=NOW + 10 * 86400)

    assert limiter.reserve("c:leads") <= 3600.05


def test_remaining_zero_blocks_until_the_reset():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=15, window=20, margin=0.05)
    limiter.reserve("c:agents")

    limiter.observe("c:agents", limit=15, remaining=0, reset_at=NOW + 4)

    assert limiter.reserve("c:agents") == pytest.approx(4.05)


def test_remaining_below_what_we_know_pads_the_log_until_the_reset():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=15, window=20, margin=0.05)
    limiter.reserve("c:agents")

    limiter.observe("c:agents", limit=15, remaining=12, reset_at=NOW + 5)
    granted = [limiter.reserve("c:agents") for _ in range(12)]
    wait = limiter.reserve("c:agents")

    assert granted == [0.0] * 12
    assert wait == pytest.approx(5.0)


def test_remaining_above_what_we_know_changes_nothing():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=3, window=20)
    for _ in range(3):
        limiter.reserve("c:agents")

    limiter.observe("c:agents", limit=3, remaining=2, reset_at=NOW + 5)

    assert limiter.reserve("c:agents") > 0


def test_slow_round_trips_widen_the_window():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=1, window=20, margin=0.05)
    limiter.reserve("c:leads")

    limiter.observe("c:leads", latency=2.0)

    assert limiter.reserve("c:leads") == pytest.approx(22.05)


def test_round_trip_allowance_is_capped_at_a_quarter_window():
    clock = FakeClock()
    limiter = make_limiter(clock, limit=1, window=20, margin=0.05)
    limiter.reserve("c:leads")

    limiter.observe("c:leads", latency=60.0)

    assert limiter.reserve("c:leads") == pytest.approx(25.05)


def test_unreadable_state_starts_afresh(tmp_path):
    store = FileStore(tmp_path)
    limiter = RateLimiter(store, limit=1, window=20, clock=FakeClock())
    with open(store.path("c:me"), "w") as handle:
        handle.write("{not json")

    assert limiter.reserve("c:me") == 0.0
    assert limiter.reserve("c:me") > 0


# Stores shared across processes.


def _hammer(store, key, limit, window, count, queue):
    """Child process: take ``count`` slots, reporting each logged send time."""
    last = []

    def clock():
        last.append(time.time())
        return last[-1]

    limiter = RateLimiter(store, limit=limit, window=window, margin=0.01, clock=clock)
    rng = random.Random(os.getpid())
    stamps = []
    deadline = time.monotonic() + 20
    while len(stamps) < count and time.monotonic() < deadline:
        wait = limiter.reserve(key)
        if wait == 0:
            # reserve() reads the clock once, inside the lock: that reading
            # is the send time it logged.
            stamps.append(last[-1])
            time.sleep(rng.uniform(0, 0.01))
        else:
            time.sleep(min(wait, 0.05))
    queue.put(stamps)


def run_two_processes(store, key, *, limit=5, window=0.4, count=12):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [
        context.Process(target=_hammer, args=(store, key, limit, window, count, queue))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    return [stamp for stamps in results for stamp in stamps]


def test_file_store_shares_one_budget_between_processes(tmp_path):
    store = FileStore(tmp_path / "limits")

    stamps = run_two_processes(store, "conn:leads", limit=5, window=0.4, count=12)

    assert len(stamps) == 24
    assert sends_in_worst_window(stamps, 0.4) <= 5


def redis_url():
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_store():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {redis_url()}: {exc}")
    prefix = f"test-cinc-{uuid.uuid4().hex}:"
    yield RedisStore(client, prefix=prefix)
    for name in client.scan_iter(f"{prefix}*"):
        client.delete(name)


def test_redis_store_keeps_the_state_with_a_ttl(redis_store):
    clock = FakeClock(time.time())
    limiter = RateLimiter(redis_store, limit=2, window=20, clock=clock)

    granted = [limiter.reserve("conn:me") for _ in range(3)]
    ttl = redis_store.client.pttl(redis_store.prefix + "conn:me")

    assert granted[:2] == [0.0, 0.0]
    assert granted[2] > 0
    assert 20_000 <= ttl <= 30_000


def test_redis_store_shares_one_budget_between_processes(redis_store):
    stamps = run_two_processes(redis_store, "conn:leads", limit=5, window=0.4)

    assert len(stamps) == 24
    assert sends_in_worst_window(stamps, 0.4) <= 5


def test_redis_store_accepts_a_url():
    store = RedisStore("redis://127.0.0.1:1/0")

    assert store.client.connection_pool.connection_kwargs["port"] == 1


def test_naive_and_aware_reset_values_agree():
    aware = parse_reset("2022-05-20T09:00:00+00:00", NOW)
    naive = parse_reset("2022-05-20T09:00:00", NOW)
    shifted = datetime(2022, 5, 20, 9, tzinfo=timezone(timedelta(hours=3)))

    assert aware == naive
    assert parse_reset(shifted.isoformat(), NOW) == aware - 3 * 3600
