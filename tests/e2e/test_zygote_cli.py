"""`kiln run -l py --zygote`: Python through a child forked from a zygote (issue 5 item 3), the
same result as a cold sandbox, the same isolation, and a pandas + matplotlib job that saves a PNG
to /mnt/data through the heavy zygote."""
import json
import os

import pytest

from conftest import run_kiln

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the zygote needs root")


def kiln_py(code, *extra, zygote=True, timeout=180, check_fallback=True):
    args = ["run", "-l", "py", "--json", *extra]
    if zygote:
        args.append("--zygote")
    p = run_kiln(*args, code, timeout=timeout)
    assert p.stdout, p.stderr
    if check_fallback:
        assert "fell back" not in p.stderr, p.stderr
    return json.loads(p.stdout), p


PROGRAMS = [
    "import sys, os\nprint(__name__, __file__, sys.argv, os.getcwd())\n",
    "def f():\n    return 1/0\nprint('before')\nf()\n",
    "import sys\nprint('x')\nsys.exit(3)\n",
    "print(open('/proc/self/status').read().count('Seccomp:\\t2'), __import__('os').getuid())\n",
    # nothing of the child's rehearsal (zygote.py _prepare: a program defining f and x, printing
    # into a StringIO) is left for the program to see
    "import sys\nprint(sorted(k for k in globals() if not k.startswith('__')), "
    "type(sys.stdout).__name__, type(sys.stderr).__name__, sys.stdout.fileno(), sys.path[0], "
    "sys.modules['__main__'].__dict__ is globals())\n",
]


@pytest.mark.parametrize("code", PROGRAMS)
def test_zygote_matches_cold(code):
    z, _ = kiln_py(code, "--arg", "a b")
    c, _ = kiln_py(code, "--arg", "a b", zygote=False)
    for k in ("stdout", "stderr", "exit_code", "status"):
        assert z[k] == c[k], (k, z[k], c[k])


def test_env_flag_selects_the_zygote():
    env = dict(os.environ, KILN_RUN_ZYGOTE="1")
    p = run_kiln("run", "-l", "py", "--json", "print(open('/proc/self/stat').read().split()[0])\n", env=env,
                 timeout=120)
    # a zygote child is PID 1 of its own PID namespace; a cold program is init's child, PID 2
    assert json.loads(p.stdout)["stdout"] == "1\n", p.stderr


def test_self_signal_behaves_as_cold():
    """A program that signals itself runs cold (PID 1 ignores its own SIGKILL): exit 128+9."""
    z, p = kiln_py("import os\nos.kill(os.getpid(), 9)\n", check_fallback=False)
    c, _ = kiln_py("import os\nos.kill(os.getpid(), 9)\n", zygote=False)
    assert z["signal"] == c["signal"] == 9 and z["status"] == c["status"], (z, c)


def test_pandas_matplotlib_png_through_the_heavy_zygote():
    code = ("import pandas as pd, numpy as np, matplotlib.pyplot as plt\n"
            "df = pd.DataFrame({'g': np.arange(100) % 3, 'v': np.arange(100)})\n"
            "s = df.groupby('g')['v'].sum()\n"
            "s.plot(kind='bar')\nplt.savefig('/mnt/data/plot.png')\nprint(list(s))\n")
    r, _ = kiln_py(code)
    assert r["status"] == "ok", r["stderr"]
    assert r["stdout"] == "[1683, 1617, 1650]\n"
    files = {f["path"]: f for f in r["files"]}
    assert files["/mnt/data/plot.png"]["size"] > 1000
