#!/usr/bin/python3
"""A stand-in for kiln's admin routes, for testing the dashboard before (and apart from) the
real server: serves web/ as static files at /admin-dashboard/... and a fake admin API with the
shapes of docs/admin.md (GET/POST /api/v1/admin/keys, PATCH/DELETE /api/v1/admin/keys/{hash},
GET /api/v1/admin/stats?hours=), answering 403 unless X-API-Key is the master key.

Usage: fake_admin.py WEB_DIR MASTER_KEY  -> prints "PORT <n>" on stdout, serves until killed.
Standard library only."""
import hashlib
import json
import math
import secrets
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WEB_DIR, MASTER = sys.argv[1], sys.argv[2]
LOCK = threading.Lock()
START = time.time()


def key_record(secret, name, source, rate_limits=None):
    return {
        "key_hash": hashlib.sha256(secret.encode()).hexdigest(),
        "key_prefix": secret[:8],
        "name": name,
        "created_at": "2026-01-02T03:04:05Z",
        "enabled": True,
        "rate_limits": rate_limits or {"per_second": None, "per_minute": None, "hourly": None,
                                       "daily": None, "monthly": None},
        "metadata": {},
        "last_used_at": None,
        "usage_count": 0,
        "source": source,
    }


KEYS = [key_record("env-key-0123456789abcdef", "API_KEY", "environment")]
seeded = key_record("kiln_seeded0000000000000000000000", "ci-bot", "managed",
                    {"per_second": None, "per_minute": 60, "hourly": 1000, "daily": None,
                     "monthly": None})
seeded.update(usage_count=42, last_used_at="2026-01-02T05:00:00Z")
KEYS.append(seeded)


def stats(hours):
    """A summary in the shape metrics_render_summary_json() produces, with a timeline that has
    visible structure (sine waves per language) so that the charts draw lines."""
    hours = max(1, min(24, hours))
    minutes = hours * 60
    step = max(1, -(-minutes // 120))
    points = -(-minutes // step)
    end = int(time.time() // 60)
    start = (end - points * step + 1) * 60
    series = {}
    for li, lang in enumerate(["py", "js", "go"]):
        done = [max(0, int(20 + 15 * math.sin(i / 6 + li))) // (li + 1) for i in range(points)]
        failed = [v // 5 for v in done]
        series[lang] = {"completed": done, "failed": failed}
    series["py"]["timeout"] = [1 if i % 17 == 0 else 0 for i in range(points)]
    totals = [sum(s[st][i] for s in series.values() for st in s) for i in range(points)]
    by_language, by_status = {}, {}
    for lang, s in series.items():
        entry = {st: sum(v) for st, v in s.items()}
        entry["total"] = sum(entry.values())
        by_language[lang] = entry
        for st, v in s.items():
            by_status[st] = by_status.get(st, 0) + sum(v)
    total = sum(totals)

    def pct(p50):
        return {"p50_ms": p50, "p95_ms": p50 * 4, "p99_ms": p50 * 9, "count": total,
                "mean_ms": p50 * 1.5}

    return {
        "version": "0.1.0-stub", "generated_at": time.time(),
        "uptime_seconds": time.time() - START + 7200, "hours": hours,
        "executions": {"total": total, "by_status": by_status, "by_language": by_language,
                       "active": 2, "queued": 0},
        "latency": {"overall": pct(41.5),
                    "by_language": {"py": pct(35.0), "js": pct(28.2), "go": pct(180.0)},
                    "queue_wait": pct(0.4)},
        "pools": {"misses": 3, "by_language": {"py": {"size": 4, "idle": 3, "hits": 120},
                                               "js": {"size": 2, "idle": 2, "hits": 40}}},
        "storage": {"sessions": 11, "files": 27, "file_bytes": 123456, "upload_bytes": 99999,
                    "download_bytes": 55555},
        "http": {"requests": 1234, "by_class": {"2xx": 1200, "3xx": 0, "4xx": 30, "5xx": 4,
                                                "other": 0},
                 "auth_failures": {"invalid": 5}},
        "timeline": {"start": start, "step_seconds": step * 60, "points": points,
                     "totals": totals, "series": series,
                     "latency": {"p50_ms": 40.0, "p95_ms": 160.0, "p99_ms": 350.0,
                                 "count": total}},
    }


class Handler(SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=WEB_DIR, **kw)

    def end_headers(self):
        # The headers kiln sends on every response (api-contract / research §1.1): the page must
        # work under a strict CSP, so a stray inline script or style shows up as an error.
        self.send_header("Content-Security-Policy", "default-src 'self'")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        super().end_headers()

    def log_message(self, fmt, *args):
        sys.stderr.write("fake_admin: " + (fmt % args) + "\n")

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def admin(self, method):
        url = urlsplit(self.path)
        if not url.path.startswith("/api/v1/admin/"):
            return False
        if not secrets.compare_digest(self.headers.get("X-API-Key", ""), MASTER):
            self.send_json(403, {"error": "Invalid master key"})
            return True
        rest = url.path[len("/api/v1/admin/"):]
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null") if length else None
        with LOCK:
            if rest == "stats" and method == "GET":
                hours = int(parse_qs(url.query).get("hours", ["24"])[0])
                self.send_json(200, stats(hours))
            elif rest == "keys" and method == "GET":
                self.send_json(200, KEYS)
            elif rest == "keys" and method == "POST":
                if not body or not str(body.get("name", "")).strip():
                    self.send_json(422, {"error": "name is required"})
                    return True
                secret = "kiln_" + secrets.token_hex(16)
                limits = {k: None for k in ("per_second", "per_minute", "hourly", "daily",
                                            "monthly")}
                limits.update(body.get("rate_limits") or {})
                rec = key_record(secret, body["name"], "managed", limits)
                KEYS.append(rec)
                self.send_json(201, {"api_key": secret, "record": rec})
            elif rest.startswith("keys/") and method in ("DELETE", "PATCH"):
                h = rest[len("keys/"):]
                rec = next((k for k in KEYS if k["key_hash"] == h), None)
                if rec is None:
                    self.send_json(404, {"error": "no such key"})
                elif rec["source"] == "environment":
                    self.send_json(403, {"error": "environment keys are read-only"})
                elif method == "DELETE":
                    KEYS.remove(rec)
                    self.send_json(200, {"deleted": True, "key_hash": h})
                else:
                    rec.update({k: v for k, v in (body or {}).items()
                                if k in ("name", "enabled", "rate_limits")})
                    self.send_json(200, rec)
            else:
                self.send_json(404, {"error": "not found"})
        return True

    def do_GET(self):
        if not self.admin("GET"):
            super().do_GET()

    def do_POST(self):
        if not self.admin("POST"):
            self.send_json(404, {"error": "not found"})

    def do_DELETE(self):
        if not self.admin("DELETE"):
            self.send_json(404, {"error": "not found"})

    def do_PATCH(self):
        if not self.admin("PATCH"):
            self.send_json(404, {"error": "not found"})


if __name__ == "__main__":
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {srv.server_address[1]}", flush=True)
    srv.serve_forever()
