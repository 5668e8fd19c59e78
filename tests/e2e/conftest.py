"""Shared fixtures of the end-to-end suite: the kiln binary under test and helpers to run it."""
import os
import subprocess

import pytest

KILN_BIN = os.environ.get("KILN_BIN") or os.path.join(
    os.environ.get("KILN_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
    "build", "kiln")


@pytest.fixture(scope="session")
def kiln_bin():
    assert os.access(KILN_BIN, os.X_OK), f"kiln binary not built: {KILN_BIN}"
    return KILN_BIN


def run_kiln(*args, env=None, cwd=None, timeout=60, input=None):
    """Run `kiln ARGS...` and return the CompletedProcess (text mode)."""
    return subprocess.run([KILN_BIN, *args], env=env, cwd=cwd, timeout=timeout, input=input,
                          capture_output=True, text=True)
