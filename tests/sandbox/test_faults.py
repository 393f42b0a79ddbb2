import json

import pytest
import requests


def test_fail_rate_answers_5xx_with_a_short_body(sb, api, broker_token):
    sb.control.config(fail_rate=1.0)

    answers = [api("GET", "leads", broker_token) for _ in range(6)]

    assert {a.status_code for a in answers} <= {500, 502, 503}
    assert all(len(a.content) < 200 for a in answers)
    assert sb.control.stats()["injected_5xx"] == 6


def test_fail_rate_zero_injects_nothing(sb, api, broker_token):
    answers = [api("GET", "leads", broker_token) for _ in range(6)]

    assert {a.status_code for a in answers} == {200}
    assert sb.control.stats()["injected_5xx"] == 0


def test_early_429_arrives_while_budget_remains(sb, api, broker_token):
    sb.control.config(early_429_rate=1.0)

    answer = api("GET", "me", broker_token)

    assert answer.status_code == 429
    assert int(answer.headers["x-rate-limit-remaining"]) > 0
    assert answer.headers["Retry-After"] == "1"
    assert sb.control.stats()["rate_limited"] == {"window": 0, "early": 1}


def test_malformed_rate_sends_truncated_list_pages(sb, api, broker_token):
    sb.control.config(malformed_rate=1.0)

    page = api("GET", "leads", broker_token)
    one = api("GET", "leads/LEAD_MDID0", broker_token)

    assert page.status_code == 200
    with pytest.raises(ValueError):
        json.loads(page.content)
    assert one.json()["lead"]["id"] == "LEAD_MDID0"  # single records stay intact
    assert sb.control.stats()["malformed"] == 1


def test_slow_answers_exceed_a_short_client_timeout(sb, api, broker_token):
    sb.control.config(slow_rate=1.0, slow_seconds=0.6)

    with pytest.raises(requests.Timeout):
        api("GET", "leads", broker_token, timeout=0.2)

    assert sb.control.stats()["slow"] == 1


def test_latency_delays_every_api_answer(sb, api, broker_token):
    sb.control.config(latency=0.6)

    with pytest.raises(requests.Timeout):
        api("GET", "me", broker_token, timeout=0.2)

    assert sb.control.health()  # the control API has no latency


def test_post_stall_stores_the_lead_before_timing_out(sb, api, broker_token):
    sb.control.config(post_stall_seconds=0.6)
    body = {"info": {"contact": {"email": "stalled@example.com"}}}

    with pytest.raises(requests.Timeout):
        api("POST", "leads", broker_token, json=body, timeout=0.2)

    emails = [lead["info"]["contact"]["email"] for lead in sb.control.leads("demo")]
    assert "stalled@example.com" in emails


def test_token_fail_500(sb, tokens, exchange):
    first = tokens()
    sb.control.config(token_fail="500")

    answer = exchange(grant_type="refresh_token", refresh_token=first["refresh_token"])

    assert answer.status_code == 500
    sb.control.config(token_fail=None)
    again = exchange(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert again.status_code == 200  # the failed call did not use the token up


def test_token_fail_400(sb, tokens, exchange):
    first = tokens()
    sb.control.config(token_fail="400")

    answer = exchange(grant_type="refresh_token", refresh_token=first["refresh_token"])

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_token_fail_slow(sb, tokens, exchange):
    first = tokens()
    sb.control.config(token_fail="slow", token_delay=0.6)

    with pytest.raises(requests.Timeout):
        exchange(
            grant_type="refresh_token",
            refresh_token=first["refresh_token"],
            timeout=0.2,
        )


def test_faults_do_not_touch_the_control_api(sb):
    sb.control.config(fail_rate=1.0, latency=0.5, malformed_rate=1.0)

    assert len(sb.control.leads("demo")) == 40


def test_same_random_seed_repeats_the_fault_pattern(sb, api, broker_token):
    def pattern():
        sb.control.config(fail_rate=0.5, random_seed=99)
        return [api("GET", "leads", broker_token).status_code for _ in range(8)]

    sb.control.config(limit=100)

    assert pattern() == pattern()
