"""Per-key rate limits of managed keys: each window (second, minute, hour, day, month) answers 429
with Retry-After, X-RateLimit-Limit/Remaining/Reset and retry_after_seconds once its limit is
used up; the second and minute windows are waited out and recover. RATE_LIMIT_ENABLED=false
turns the limits off."""
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
    # align to the start of a fresh window so that both calls land in one window
    for _ in range(3):
        use_up(srv, key, 2)
        retry = assert_429(call(srv, key), 2, 1)
        time.sleep(retry + 0.05)
    assert call(srv, key).status_code == 200
    assert usage(srv, h) == 7


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
    use_up_seen = 0
    deadline = time.time() + 20
    refused_by_second = 0
    while use_up_seen < 5 and time.time() < deadline:
        r = call(srv, key)
        if r.status_code == 200:
            use_up_seen += 1
        else:
            assert r.status_code == 429
            if r.headers["X-RateLimit-Limit"] == "2":
                refused_by_second += 1
                time.sleep(int(r.headers["Retry-After"]))
    assert use_up_seen == 5 and refused_by_second >= 1
    # the 5 accepted calls, not the refused ones, used up the minute
    assert_429(call(srv, key), 5, 60)


def test_rate_limit_disabled(kiln_server):
    s = kiln_server(MASTER_API_KEY=MASTER, RATE_LIMIT_ENABLED="false")
    key, h = new_key(s, per_second=1, monthly=1)
    for _ in range(5):
        r = call(s, key)
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers
    assert usage(s, h) == 5
