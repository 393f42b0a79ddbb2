import datetime as dt
import time

import pytest

from sandbox.ratelimit import FixedWindowLimiter, format_reset

SECOND_BROKER = "broker@second.test"


def parse_iso(value):
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- the limiter itself ------------------------------------------------------------


def test_limiter_allows_limit_requests_per_window():
    limiter = FixedWindowLimiter(window=20, limit=3)

    decisions = [limiter.hit("demo:leads", now=100 + i) for i in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert {d.reset_at for d in decisions} == {120}


def test_limiter_starts_a_new_window_after_the_old_one_ended():
    limiter = FixedWindowLimiter(window=20, limit=1)
    limiter.hit("k", now=100)

    later = limiter.hit("k", now=125)

    assert later.allowed
    assert later.reset_at == 145


def test_limiter_keeps_keys_apart():
    limiter = FixedWindowLimiter(window=20, limit=1)
    limiter.hit("demo:leads", now=100)

    assert limiter.hit("demo:lead", now=101).allowed
    assert limiter.hit("second:leads", now=101).allowed
    assert not limiter.hit("demo:leads", now=101).allowed


def test_reset_header_formats():
    assert format_reset(1764862800.1234, "iso") == "2025-12-04T15:40:00.123Z"
    assert format_reset(1764862800.1234, "epoch") == 1764862801


# -- over HTTP ---------------------------------------------------------------------


@pytest.fixture
def small_window(sb):
    sb.control.config(limit=3, window=30)
    return sb


def test_fourth_request_in_the_window_is_429(small_window, api, broker_token):
    answers = [api("GET", "leads", broker_token) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-rate-limit-remaining"] for a in answers] == [
        "2",
        "1",
        "0",
        "0",
    ]
    limited = answers[-1]
    assert limited.json() == {"error": "rate_limited"}
    assert limited.headers["x-rate-limit-limit"] == "3"
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    assert small_window.control.stats()["rate_limited"]["window"] == 1


def test_reset_header_is_iso_8601_with_milliseconds(small_window, api, broker_token):
    answer = api("GET", "me", broker_token)

    reset = answer.headers["x-rate-limit-reset"]

    assert reset.endswith("Z") and len(reset) == len("2026-12-04T15:40:00.123Z")
    assert parse_iso(reset) > dt.datetime.now(dt.UTC)


def test_reset_header_can_be_epoch_seconds(small_window, api, broker_token):
    small_window.control.config(reset_format="epoch")

    answer = api("GET", "me", broker_token)

    reset = int(answer.headers["x-rate-limit-reset"])
    assert reset >= dt.datetime.now(dt.UTC).timestamp()


def test_each_endpoint_has_its_own_budget(small_window, api, broker_token):
    for _ in range(3):
        api("GET", "leads", broker_token)

    assert api("GET", "leads", broker_token).status_code == 429
    assert api("GET", "leads/LEAD_MDID0", broker_token).status_code == 200
    assert api("GET", "agents", broker_token).status_code == 200
    assert api("GET", "me", broker_token).status_code == 200


def test_each_site_has_its_own_budget(small_window, api, broker_token):
    second = small_window.control.issue_tokens(SECOND_BROKER)["access_token"]
    for _ in range(3):
        api("GET", "agents", broker_token)

    assert api("GET", "agents", broker_token).status_code == 429
    assert api("GET", "agents", second).status_code == 200


def test_window_ends_and_budget_returns(sb, api, broker_token):
    sb.control.config(limit=1, window=0.3)
    api("GET", "me", broker_token)
    limited = api("GET", "me", broker_token)

    time.sleep(0.4)  # past the 0.3 s window

    assert limited.status_code == 429
    assert api("GET", "me", broker_token).status_code == 200


def test_changing_the_limit_starts_fresh_windows(small_window, api, broker_token):
    for _ in range(4):
        api("GET", "me", broker_token)

    small_window.control.config(limit=5)

    assert api("GET", "me", broker_token).headers["x-rate-limit-remaining"] == "4"


def test_requests_without_a_valid_token_do_not_count(small_window, api, broker_token):
    for _ in range(5):
        api("GET", "me", "bogus")

    assert api("GET", "me", broker_token).status_code == 200
