"""`kiln run --warm` (issue 5): the execution takes a parked sandbox from a pool of one — with the
pre-started interpreter for js, php, r and bash, the plain parked sandbox for the others — and
gives exactly what a cold `kiln run` gives: stdout, stderr, exit status, files. KILN_RUN_WARM=1
does the same (that is how the hostile suite runs against warm sandboxes)."""
import json
import os

import pytest

from conftest import run_kiln

ARGS = ["x1", "two words", ""]

PROGRAMS = {
    "js": ("const fs = require('fs');\n"
           "console.log(JSON.stringify([process.argv.slice(1), process.cwd(), require.main === module,"
           " process.execArgv, fs.readdirSync('/tmp')]));\n"
           "console.error('err line');\nfs.writeFileSync('out.txt', 'x');\nprocess.exit(3);\n"),
    "php": ("<?php\necho json_encode([$argv, getcwd(), scandir('/tmp')]), \"\\n\";\n"
            "fwrite(STDERR, \"err line\\n\");\nfile_put_contents('out.txt', 'x');\nexit(3);\n"),
    "r": ("print(commandArgs(trailingOnly = TRUE))\ncat(getwd(), '\\n')\nx <- 2\nx\n"
          "message('err line')\nwriteLines('x', 'out.txt')\nquit(status = 3)\n"),
    "bash": ('echo "$0" "$#" "$@" "$PWD"; ls -A /tmp; ls /proc/self/fd; echo "err line" >&2;'
             ' echo x > out.txt; exit 3\n'),
    "py": ("import os, sys\nprint(sys.argv, os.getcwd(), sorted(os.listdir('/tmp')))\n"
           "print('err line', file=sys.stderr)\nopen('out.txt', 'w').write('x')\nsys.exit(3)\n"),
    "c": ('#include <stdio.h>\nint main(int argc, char **argv) {\n'
          '  for (int i = 0; i < argc; i++) printf("[%s]", argv[i]);\n'
          '  fprintf(stderr, "err line\\n");\n  FILE *f = fopen("out.txt", "w");\n'
          '  fputs("x", f);\n  fclose(f);\n  return 3;\n}\n'),
}


def run(lang, warm, env_flag=False):
    extra = []
    env = dict(os.environ)
    env.pop("KILN_RUN_WARM", None)
    if warm and env_flag:
        env["KILN_RUN_WARM"] = "1"
    elif warm:
        extra = ["--warm"]
    argv = ["run", "-l", lang, "--json", *extra]
    for a in ARGS:
        argv += ["--arg", a]
    p = run_kiln(*argv, "--", PROGRAMS[lang], env=env, timeout=120)
    out = json.loads(p.stdout)
    return p.returncode, out


def strip(out):
    files = sorted((f["path"], f["size"]) for f in out["files"])
    return (out["stdout"], out["stderr"], out["exit_code"], out["signal"], out["status"], files)


@pytest.mark.parametrize("lang", sorted(PROGRAMS))
def test_warm_run_equals_cold_run(lang):
    rc_w, warm = run(lang, True)
    rc_c, cold = run(lang, False)
    assert warm.get("warm") is True, warm
    assert "warm" not in cold
    assert rc_w == rc_c == 3
    assert strip(warm) == strip(cold)
    assert "err line" in warm["stderr"]
    assert "/mnt/data/out.txt" in [f["path"] for f in warm["files"]]


def test_env_flag_runs_warm():
    rc, out = run("bash", True, env_flag=True)
    assert rc == 3
    assert out.get("warm") is True
    assert out["stdout"].startswith("code.sh 3 x1 two words  /mnt/data\n")
