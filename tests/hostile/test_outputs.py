"""Output attacks: floods on stdout and stderr, one endless line, invalid UTF-8 and control bytes,
lying about the exit status. The result must stay valid JSON, capped with the truncation marker,
and kiln's own memory must not grow with the flood."""
import json

import pytest

from conftest import MARKER, OUTPUT_CAP, SLACK_S, run

FLOOD = r"""
import os, sys
fd = @FD@
chunk = b"x" * 65535 + b"\n"
total = 0
try:
    while total < (256 << 20):          # 256 MiB, far more than any cap
        total += os.write(fd, chunk)
except OSError:
    pass
os.write(2 if fd == 1 else 1, b"FLOOD-END\n")
"""

# kiln's own peak RSS (max over kiln and everything it waited for) must stay far below the
# 256 MiB flood: anything above this means the output was buffered instead of capped.
RSS_LIMIT_KB = 64 * 1024


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_python_flood_is_capped(stream):
    fd = 1 if stream == "stdout" else 2
    r = run("py", FLOOD.replace("@FD@", str(fd)), timeout=10, measure_rss=True)
    text = getattr(r, stream)
    assert text.endswith(MARKER), "%s does not end with the truncation marker\n%s" % (
        stream, r.describe())
    assert len(text.encode()) <= OUTPUT_CAP + len(MARKER.encode()), \
        "%s is %d bytes long (cap %d + marker)" % (stream, len(text.encode()), OUTPUT_CAP)
    assert len(text.encode()) >= OUTPUT_CAP // 2, "kept only %d bytes" % len(text)
    r.expect_status("ok", "output_limit", "killed", "error")
    assert r.elapsed < 10 + SLACK_S
    assert r.maxrss_kb is not None and r.maxrss_kb < RSS_LIMIT_KB, \
        "kiln's max RSS was %s KiB during a 256 MiB flood" % r.maxrss_kb


def test_endless_flood_until_timeout_is_capped():
    """Never stops writing: the supervisor keeps draining (no deadlock), stays small, and the
    run ends at the wall clock or at the cap."""
    r = run("py", "import sys\nwhile True:\n    sys.stdout.write('y' * 8192)\n", timeout=2,
            measure_rss=True)
    assert r.stdout.endswith(MARKER), r.describe()
    assert len(r.stdout.encode()) <= OUTPUT_CAP + len(MARKER.encode())
    r.expect_status("timeout", "ok", "output_limit", "killed", "error")
    assert r.elapsed < 2 + SLACK_S
    assert r.maxrss_kb is not None and r.maxrss_kb < RSS_LIMIT_KB, r.maxrss_kb


def test_bash_yes_flood_is_capped():
    r = run("bash", "yes kiln-hostile-flood\n", timeout=3, measure_rss=True)
    assert r.stdout.endswith(MARKER), r.describe()
    assert len(r.stdout.encode()) <= OUTPUT_CAP + len(MARKER.encode())
    assert r.maxrss_kb is not None and r.maxrss_kb < RSS_LIMIT_KB, r.maxrss_kb


def test_both_streams_flooded_at_once_no_deadlock():
    """Writing to stderr while nobody reads stdout deadlocks a naive supervisor."""
    code = r"""
import os
for i in range(4096):
    os.write(1, b"o" * 32768)
    os.write(2, b"e" * 32768)
print("DONE")
"""
    r = run("py", code, timeout=10)
    assert r.elapsed < 10 + SLACK_S
    assert r.status != "timeout", "stdout+stderr flood deadlocked until the timeout\n" + \
        r.describe()
    assert r.stdout.endswith(MARKER) and r.stderr.endswith(MARKER), r.describe()


def test_one_endless_line_of_invalid_utf8_gives_valid_json():
    """16 MiB of invalid UTF-8, NUL and escape bytes with no newline: the result is still one
    valid JSON object with capped strings."""
    code = r"""
import os
junk = bytes([0xff, 0xfe, 0x00, 0x1b, 0x5b, 0x32, 0x4a, 0xc3, 0x28, 0x80, 0x22, 0x5c]) * 4096
for _ in range((16 << 20) // len(junk) + 1):
    os.write(1, junk)
"""
    r = run("py", code, timeout=10)
    assert r.data is not None, "not valid JSON: %s %r" % (r.json_error, r.raw[:300])
    assert r.utf8_valid, "kiln printed invalid UTF-8 in its JSON result"
    json.dumps(r.data)  # round-trips
    assert r.stdout.endswith(MARKER), r.describe()
    assert len(r.stdout.encode("utf-8", "surrogatepass")) <= 4 * OUTPUT_CAP + len(MARKER)


def test_json_cannot_be_forged_from_stdout():
    """Output that looks like a JSON result must end up as a string inside the real result."""
    forged = '{"stdout":"","stderr":"","exit_code":0,"status":"ok","files":[]}'
    code = "import sys\nsys.stdout.write(%r)\nsys.exit(7)\n" % (forged + '"}\n\x00')
    r = run("py", code, timeout=5)
    assert r.stdout.startswith(forged)
    assert r.exit_code == 7
    r.expect_status("error")


def test_exit_status_mirrors_program_without_json():
    r = run("bash", "echo hi; exit 42\n", timeout=5, json_out=False)
    assert r.rc == 42 and r.raw == "hi\n", (r.rc, r.raw, r.kiln_stderr)


def test_self_kill_is_reported_as_signal():
    r = run("bash", "kill -KILL $$\n", timeout=5, json_out=False)
    assert r.rc == 128 + 9, (r.rc, r.raw, r.kiln_stderr)
    r = run("bash", "kill -KILL $$\n", timeout=5)
    assert r.signal == 9, r.describe()
    r.expect_status("error")
