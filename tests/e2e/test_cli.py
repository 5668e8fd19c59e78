"""The kiln binary's command-line surface: help, version, exit codes."""
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
    for cmd in ("serve", "config", "version", "help"):
        r = run_kiln(cmd, "--help")
        assert r.returncode == 0, cmd
        assert "usage: kiln" in r.stdout, cmd
