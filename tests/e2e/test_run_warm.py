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


# The warm node's boot script ends the process itself once the program is done (process.reallyExit
# after the last 'exit' listener, skipping node's teardown): each case pins the exit semantics of
# `node code.js` — (program, stdout, stderr substring, exit code) — and warm must equal cold.
JS_EXITS = {
    "throw": ("console.log('before');\nthrow new Error('boom');\n", "before\n", "Error: boom", 1),
    "exitcode": ("process.exitCode = 3;\nconsole.log('x');\n", "x\n", "", 3),
    "timer": ("setTimeout(() => console.log('late'), 50);\nconsole.log('early');\n",
              "early\nlate\n", "", 0),
    "promise": ("Promise.resolve().then(() => { console.log('then'); process.exitCode = 5; });\n",
                "then\n", "", 5),
    "rejection": ("Promise.reject(new Error('rej'));\n", "", "Error: rej", 1),
    "exit-listener": ("process.on('exit', (c) => { console.log('exit', c); process.exitCode = 4; });\n",
                      "exit 0\n", "", 4),
    "before-exit": ("let n = 0;\nprocess.on('beforeExit', () => { if (n++ < 2) setTimeout(() =>"
                    " console.log('tick', n), 10); });\nprocess.on('exit', () => console.log('bye'));\n",
                    "tick 1\ntick 2\nbye\n", "", 0),
    "caught": ("process.on('uncaughtException', (e) => console.log('caught', e.message));\n"
               "setTimeout(() => console.log('after'), 20);\nthrow new Error('q');\n",
               "caught q\nafter\n", "", 0),
    "streams": ("console.log('a');\nconsole.error('b');\nconsole.log('c');\n"
                "process.stdout.write('x'.repeat(60000) + '\\n');\nconsole.error('d');\n",
                "a\nc\n" + "x" * 60000 + "\n", "b\nd\n", 0),
}


def run_js(code, warm):
    env = dict(os.environ)
    env.pop("KILN_RUN_WARM", None)
    argv = ["run", "-l", "js", "--json"] + (["--warm"] if warm else [])
    p = run_kiln(*argv, "--", code, env=env, timeout=120)
    return json.loads(p.stdout)


@pytest.mark.parametrize("case", sorted(JS_EXITS))
def test_warm_js_exit_semantics(case):
    code, stdout, stderr_has, exit_code = JS_EXITS[case]
    warm = run_js(code, True)
    cold = run_js(code, False)
    assert warm.get("warm") is True, warm
    for out in (warm, cold):
        assert out["stdout"] == stdout, out
        assert stderr_has in out["stderr"], out
        assert out["exit_code"] == exit_code, out
    assert strip(warm) == strip(cold)
    if case == "streams":
        assert warm["stderr"] == "b\nd\n"
