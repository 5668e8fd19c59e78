"""The kiln binary's command-line surface: help, version, exit codes, and the split into kiln and
its companions kiln-server and kiln-client (docs/DESIGN.md "One command, three executables")."""
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

from conftest import run_kiln


def test_version_prints_name_and_version(kiln_bin):
    r = run_kiln("version")
    assert r.returncode == 0
    assert r.stdout.startswith("kiln ")


def test_help_lists_every_command(kiln_bin):
    r = run_kiln("help")
    assert r.returncode == 0
    for cmd in ("serve", "config", "version", "help"):
        assert f"  {cmd} " in r.stdout


def test_unknown_command_is_a_usage_error(kiln_bin):
    r = run_kiln("frobnicate")
    assert r.returncode == 2
    assert "unknown command" in r.stderr


def test_every_command_has_help(kiln_bin):
    for cmd in ("serve", "run", "exec", "keys", "bench-pool", "config", "version", "help"):
        r = run_kiln(cmd, "--help")
        assert r.returncode == 0, cmd
        assert "usage: kiln" in r.stdout, cmd


def needed_libs(path):
    """The DT_NEEDED entries of an ELF file, read with binutils' readelf."""
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    return {line.split("[", 1)[1].split("]", 1)[0] for line in out.splitlines() if "(NEEDED)" in line}


def test_kiln_itself_links_only_light_libraries(kiln_bin):
    # `kiln run` is the cold sandbox path: every library loaded costs page faults at start and
    # VMAs at each fork, so the heavy ones belong to the companions only.
    libs = needed_libs(kiln_bin)
    assert any(lib.startswith("libseccomp") for lib in libs), libs
    heavy = [lib for lib in libs if lib.split(".so")[0] in
             ("libmicrohttpd", "libcurl", "libcrypto", "libssl", "libgnutls", "libsqlite3")]
    assert heavy == [], heavy
    server = needed_libs(os.path.join(os.path.dirname(kiln_bin), "kiln-server"))
    assert any(lib.startswith("libmicrohttpd") for lib in server), server
    assert not any(lib.startswith("libcurl") for lib in server), server
    client = needed_libs(os.path.join(os.path.dirname(kiln_bin), "kiln-client"))
    assert any(lib.startswith("libcurl") for lib in client), client


def test_companion_keeps_the_typed_command_line(kiln_bin):
    # `kiln serve --bogus` reaches kiln-server's serve, which names itself as the user typed it
    r = run_kiln("serve", "--bogus")
    assert r.returncode == 2
    assert "kiln serve" in r.stderr


def test_missing_companion_is_a_clear_error(kiln_bin, tmp_path):
    lone = tmp_path / "kiln"
    shutil.copy(kiln_bin, lone)
    for cmd, companion in (("serve", "kiln-server"), ("exec", "kiln-client"), ("keys", "kiln-client")):
        r = subprocess.run([str(lone), cmd, "--help"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 1, (cmd, r.stderr)
        assert companion in r.stderr and str(tmp_path) in r.stderr, r.stderr
    # the commands kiln holds itself still work alone
    r = subprocess.run([str(lone), "version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("kiln ")


def test_companions_refuse_commands_they_do_not_hold(kiln_bin):
    d = os.path.dirname(kiln_bin)
    r = subprocess.run([os.path.join(d, "kiln-server"), "run", "-l", "py", "print(1)"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "unknown command 'run'" in r.stderr
    r = subprocess.run([os.path.join(d, "kiln-client"), "serve"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and "unknown command 'serve'" in r.stderr


@pytest.fixture
def public_tmp():
    """A directory every uid can search (pytest's tmp_path sits below a 0700 directory)."""
    d = tempfile.mkdtemp(prefix="kiln-install-", dir="/tmp")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


def test_installed_tree_is_self_contained(kiln_bin, public_tmp):
    # `cmake --install` gives PREFIX/bin/{kiln,kiln-server,kiln-client} and the zygote's
    # PREFIX/lib/kiln/pyext/; the installed kiln finds both from its own directory. The prefix
    # must be searchable by the sandbox uids (the extension directory is bound into the zygote).
    prefix = public_tmp / "prefix"
    subprocess.run(["cmake", "--install", os.path.dirname(kiln_bin), "--prefix", str(prefix)],
                   check=True, capture_output=True, timeout=60)
    for exe in ("kiln", "kiln-server", "kiln-client"):
        assert os.access(prefix / "bin" / exe, os.X_OK), exe
    env = {k: v for k, v in os.environ.items() if k != "KILN_PYEXT_DIR"}
    kiln = str(prefix / "bin" / "kiln")
    r = subprocess.run([kiln, "run", "-l", "py", "--zygote", "print(6 * 7)"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stdout == "42\n", r.stderr
    assert "fell back" not in r.stderr, r.stderr
    # everything the zygote preloads from its directory was installed (the state runner too)
    assert "cannot preload" not in r.stderr, r.stderr
    # the installed zygote.py is the one used: broken, the zygote cannot start, and kiln gives up
    # waiting for it after three tries and runs the code in a cold sandbox instead
    (prefix / "lib" / "kiln" / "pyext" / "zygote.py").write_text("raise SystemExit(3)\n")
    r = subprocess.run([kiln, "run", "-l", "py", "--zygote", "print(6 * 7)"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stdout == "42\n", r.stderr
    assert "the zygote did not start" in r.stderr and "fell back to a cold sandbox" in r.stderr
    r = subprocess.run([kiln, "serve", "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "usage: kiln serve" in r.stdout
