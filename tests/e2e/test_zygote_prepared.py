"""PY_PREPARED_HEAVY (issue 5, the pandas target): of the heavy zygote's warm children, that many
also run the zygote's pandas + matplotlib warm-up before they report ready, so that a pandas job
finds the pages those libraries write already copied. Such a child is taken first for a heavy
program, it starts with no figure open and no state of the warm-up visible, and it gives the same
answer as any other sandbox. Whether the program got a prepared child shows in its own memory:
the warm-up's copies are private pages of its process before its first line runs."""
import os
import re

import httpx
import pytest

from conftest import API_KEY
from test_state import wait_py_children_ready

JOB = """
def private_dirty_kb():
    with open('/proc/self/smaps_rollup') as f:
        return sum(int(l.split()[1]) for l in f if l.startswith('Private_Dirty'))
before = private_dirty_kb()
import pandas as pd
import matplotlib.pyplot as plt
print(plt.get_fignums(), [n for n in globals() if not n.startswith('__')])
df = pd.DataFrame({"g": [i % 7 for i in range(5000)], "v": [i * 0.5 for i in range(5000)]})
s = df.groupby("g")["v"].mean()
fig, ax = plt.subplots()
s.plot(ax=ax, kind="bar")
fig.savefig("/mnt/data/plot.png")
print(len(s), fig.number)
print("PREPARED" if before > 10240 else "PLAIN", before)
"""


def run_job(c):
    r = c.post("/exec", json={"lang": "py", "code": JOB})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.skipif(os.geteuid() != 0, reason="the zygotes need root")
@pytest.mark.parametrize("prepared", [1, 0])
def test_prepared_heavy_child(kiln_server, prepared):
    srv = kiln_server(POD_POOL_PY="2", PY_PREPARED_HEAVY=str(prepared),
                      STATE_PERSISTENCE_ENABLED="false")
    with httpx.Client(base_url=srv.url, headers={"X-API-Key": API_KEY}, timeout=120) as c:
        wait_py_children_ready(c, timeout=240)
        m = re.search(r"^kiln_zygote_prepared_ready (\d+)$", c.get("/metrics").text, re.M)
        assert m and int(m.group(1)) == prepared, m
        r = run_job(c)
        lines = r["stdout"].splitlines()
        assert r["exit_code"] == 0 and r["stderr"] == "", r
        assert lines[0] == "[] ['private_dirty_kb', 'before', 'pd', 'plt']", r
        assert lines[1] == "7 1", r
        assert lines[2].split()[0] == ("PREPARED" if prepared else "PLAIN"), r
        assert any(f["name"].endswith("plot.png") for f in r["files"]), r
    assert "warm-up failed" not in srv.log(), srv.log()[-3000:]
