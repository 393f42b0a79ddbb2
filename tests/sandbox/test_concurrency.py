from concurrent.futures import ThreadPoolExecutor

import requests

THREADS = 20


def hammer(count, call):
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(lambda i: call(i), range(count)))


def test_parallel_list_requests_are_counted_exactly(sb, broker_token):
    sb.control.config(limit=10_000)
    url = f"{sb.api_url}/leads"
    headers = {"Authorization": f"Bearer {broker_token}"}

    def get(i):
        return requests.get(url, params={"offset": i % 40}, headers=headers, timeout=10)

    answers = hammer(100, get)

    assert [a.status_code for a in answers] == [200] * 100
    stats = sb.control.stats()
    assert stats["requests"]["leads"] == 100
    assert stats["statuses"]["200"] == 100


def test_parallel_requests_share_one_rate_limit_window(sb, broker_token):
    sb.control.config(limit=15, window=60)
    headers = {"Authorization": f"Bearer {broker_token}"}

    def get(i):
        return requests.get(f"{sb.api_url}/agents", headers=headers, timeout=10)

    answers = hammer(40, get)

    codes = [a.status_code for a in answers]
    assert codes.count(200) == 15
    assert codes.count(429) == 25
    assert sb.control.stats()["rate_limited"]["window"] == 25


def test_parallel_posts_of_one_email_create_one_lead(sb, broker_token):
    sb.control.config(limit=10_000)
    headers = {"Authorization": f"Bearer {broker_token}"}
    body = {"info": {"contact": {"email": "race@example.com"}}}

    def post(i):
        return requests.post(
            f"{sb.api_url}/leads", json=body, headers=headers, timeout=10
        )

    answers = hammer(20, post)

    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 19
    emails = [lead["info"]["contact"]["email"] for lead in sb.control.leads("demo")]
    assert emails.count("race@example.com") == 1


def test_parallel_refreshes_of_one_token_succeed_once(sb, tokens, exchange):
    refresh_token = tokens()["refresh_token"]

    def refresh(i):
        return requests.post(
            sb.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": sb.client_id,
                "client_secret": sb.client_secret,
            },
            timeout=10,
        )

    answers = hammer(20, refresh)

    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [400] * 19
    assert sb.control.stats()["token_grants"]["refresh_token"] == 1


def test_parallel_code_exchanges_succeed_once(sb, code_for):
    code = code_for()

    def redeem(i):
        return requests.post(
            sb.token_url,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": sb.redirect_uri,
            },
            auth=(sb.client_id, sb.client_secret),
            timeout=10,
        )

    answers = hammer(20, redeem)

    assert sorted(a.status_code for a in answers) == [200] + [400] * 19
