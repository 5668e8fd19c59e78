"""Per-key rate limits of managed keys: each window (second, minute, hour, day, month) answers 429
with Retry-After, X-RateLimit-Limit/Remaining/Reset and retry_after_seconds once its limit is
used up; the second and minute windows are waited out and recover. RATE_LIMIT_ENABLED=false
turns the limits off."""
import concurrent.futures
import time

import httpx
import pytest

MASTER = "master-rl-0123456789abcdefABCDEF"
WINDOW_S = {"per_second": 1, "per_minute": 60, "hourly": 3600, "daily": 86400,
            "monthly": 30 * 86400}


def new_key(s, **limits):
    r = httpx.post(s.url + "/api/v1/admin/keys", headers={"X-API-Key": MASTER},
                   json={"name": "rl", "rate_limits": limits}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["api_key"], r.json()["key_hash"]


def call(s, key):
    return httpx.get(s.url + "/__test/whoami", headers={"X-API-Key": key}, timeout=30)


def usage(s, h):
    keys = httpx.get(s.url + "/api/v1/admin/keys", headers={"X-API-Key": MASTER}).json()
    return next(k for k in keys if k["key_hash"] == h)["usage_count"]


def assert_429(r, limit, window_s):
    assert r.status_code == 429, r.text
    body = r.json()
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= window_s
    assert body["retry_after_seconds"] == retry
    assert body["error_type"] == "rate_limit_exceeded"
    assert r.headers["X-RateLimit-Limit"] == str(limit)
    assert r.headers["X-RateLimit-Remaining"] == "0"
    reset = int(r.headers["X-RateLimit-Reset"])
    assert abs(reset - (time.time() + retry)) <= 2
    return retry


@pytest.fixture()
def srv(kiln_server):
    return kiln_server(MASTER_API_KEY=MASTER, API_KEY_CACHE_TTL=300)


def use_up(s, key, limit):
    """limit accepted calls, each with the window's X-RateLimit-* counting down."""
    for i in range(limit):
        r = call(s, key)
        assert r.status_code == 200, (i, r.text)
        assert r.headers["X-RateLimit-Limit"] == str(limit)
        assert r.headers["X-RateLimit-Remaining"] == str(limit - i - 1)
        assert int(r.headers["X-RateLimit-Reset"]) >= int(time.time())


@pytest.mark.parametrize("window", ["hourly", "daily", "monthly"])
def test_long_windows_answer_429(srv, window):
    key, h = new_key(srv, **{window: 3})
    use_up(srv, key, 3)
    retry = assert_429(call(srv, key), 3, WINDOW_S[window])
    # the window began with the first call: nearly all of it is still to come
    assert retry > WINDOW_S[window] - 30
    assert_429(call(srv, key), 3, WINDOW_S[window])
    assert usage(srv, h) == 3  # refused calls are not counted as uses
    # another key is not affected
    other, _ = new_key(srv, **{window: 3})
    assert call(srv, other).status_code == 200


def test_per_second_recovers(srv):
    key, h = new_key(srv, per_second=2)
    accepted = 0
    for _ in range(3):
        # a burst: even on a slow machine several calls land in one 1-second window
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: call(srv, key), range(8)))
        ok = [r for r in answers if r.status_code == 200]
        refused = [r for r in answers if r.status_code == 429]
        assert len(ok) + len(refused) == 8
        assert len(ok) >= 2 and refused, [r.status_code for r in answers]
        for r in ok:
            assert r.headers["X-RateLimit-Limit"] == "2"
        retry = max(assert_429(r, 2, 1) for r in refused)
        accepted += len(ok)
        time.sleep(retry + 0.05)
        r = call(srv, key)  # the window is over: accepted again
        assert r.status_code == 200, r.text
        accepted += 1
        time.sleep(1.05)
    assert usage(srv, h) == accepted


def test_per_minute_recovers(srv):
    key, h = new_key(srv, per_minute=3)
    t0 = time.time()
    use_up(srv, key, 3)
    retry = assert_429(call(srv, key), 3, 60)
    assert retry >= 60 - (time.time() - t0) - 2
    time.sleep(retry + 0.2)
    r = call(srv, key)
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "2"
    assert usage(srv, h) == 4


def test_refused_calls_do_not_use_up_other_windows(srv):
    key, _ = new_key(srv, per_second=2, per_minute=5)
    accepted = by_second = 0
    deadline = time.time() + 30
    while accepted < 5 and time.time() < deadline:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: call(srv, key), range(4)))
        for r in answers:
            if r.status_code == 200:
                accepted += 1
            else:
                assert r.status_code == 429, r.text
                by_second += r.headers["X-RateLimit-Limit"] == "2"
        time.sleep(1.05)
    # had the refusals counted in the minute, fewer than 5 calls would have been accepted
    assert accepted == 5 and by_second >= 1
    assert_429(call(srv, key), 5, 60)


def test_rate_limit_disabled(kiln_server):
    s = kiln_server(MASTER_API_KEY=MASTER, RATE_LIMIT_ENABLED="false")
    key, h = new_key(s, per_second=1, monthly=1)
    for _ in range(5):
        r = call(s, key)
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers
    assert usage(s, h) == 5
