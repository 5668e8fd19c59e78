"""`kiln run` runs each of the 13 languages for real, in a fresh sandbox (issue 3 items 4 and 5).

Every program prints `hello` and its arguments joined by `|`, so that argv passing (spaces
included) is checked exactly. Compiled languages are slow to build (javac, rustc, ldc2 take about
a second each), so each language gets one hello run and one compile-error run, nothing more."""
import json
import os

import pytest

from conftest import run_kiln

ARGS = ["x1", "two words"]
EXPECTED = "hello|x1|two words"

HELLO = {
    "py": 'import sys\nprint("|".join(["hello"] + sys.argv[1:]))\n',
    "js": 'console.log(["hello", ...process.argv.slice(2)].join("|"));\n',
    "ts": 'const a: string[] = process.argv.slice(2);\nconsole.log(["hello", ...a].join("|"));\n',
    "go": ('package main\n\nimport (\n\t"fmt"\n\t"os"\n\t"strings"\n)\n\n'
           'func main() {\n\tfmt.Println(strings.Join(append([]string{"hello"}, os.Args[1:]...), "|"))\n}\n'),
    "java": ('public class Code {\n  public static void main(String[] args) {\n'
             '    StringBuilder b = new StringBuilder("hello");\n'
             '    for (String a : args) b.append("|").append(a);\n'
             '    System.out.println(b);\n  }\n}\n'),
    "c": ('#include <stdio.h>\nint main(int argc, char **argv) {\n  printf("hello");\n'
          '  for (int i = 1; i < argc; i++) printf("|%s", argv[i]);\n  printf("\\n");\n'
          '  return 0;\n}\n'),
    "cpp": ('#include <iostream>\nint main(int argc, char **argv) {\n  std::cout << "hello";\n'
            '  for (int i = 1; i < argc; i++) std::cout << "|" << argv[i];\n'
            '  std::cout << std::endl;\n}\n'),
    "php": '<?php\necho implode("|", array_merge(["hello"], array_slice($argv, 1))), "\\n";\n',
    "rs": ('fn main() {\n    let mut v = vec![String::from("hello")];\n'
           '    v.extend(std::env::args().skip(1));\n    println!("{}", v.join("|"));\n}\n'),
    "r": 'cat(paste(c("hello", commandArgs(trailingOnly = TRUE)), collapse = "|"), "\\n", sep = "")\n',
    "f90": ('program hello\n  implicit none\n  integer :: i\n  character(len=64) :: a\n'
            '  character(len=512) :: s\n  s = "hello"\n  do i = 1, command_argument_count()\n'
            '    call get_command_argument(i, a)\n    s = trim(s) // "|" // trim(a)\n  end do\n'
            '  print "(a)", trim(s)\nend program hello\n'),
    "d": ('import std.stdio, std.array;\nvoid main(string[] args) {\n'
          '    writeln(join(["hello"] ~ args[1 .. $], "|"));\n}\n'),
    "bash": 'IFS="|"; echo "hello|$*"\n',
}

# A syntax error in each compiled language, and what the compiler's message must contain: the
# source file and line, so that a runtime failing to start (which also says "error") cannot pass.
BROKEN = {
    "ts": ("let x: number = ;\n", "code.ts(1,17): error TS1109"),
    "go": ("package main\nfunc main() { x := }\n", "main.go:2:20: syntax error"),
    "java": ("public class Code { void f() { int x = } }\n", "Code.java:1: error"),
    "c": ("int main(void) { return 0 }\n", "code.c:1:26: error"),
    "cpp": ("int main() { return 0 }\n", "code.cpp:1:22: error"),
    "rs": ("fn main() { let x = ; }\n", "--> main.rs:1:21"),
    "f90": ("program p\n  x = = 1\nend program p\n", "code.f90:2:8"),
    "d": ("void main() { int x = ; }\n", "code.d(1): Error: expression expected"),
}

ALLOWED_ENV = {"HOME", "PATH", "LANG", "TMPDIR", "MPLBACKEND", "MPLCONFIGDIR",
               "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "MATPLOTLIBRC"}


def run_json(lang, code, *extra, env=None, timeout=120):
    """kiln run --json; returns (CompletedProcess, parsed result)."""
    r = run_kiln("run", "-l", lang, "--json", *extra, "--", code, env=env, timeout=timeout)
    assert r.stdout.strip(), f"no JSON on stdout; rc={r.returncode} stderr={r.stderr[-2000:]}"
    return r, json.loads(r.stdout)


def arg_flags(args):
    out = []
    for a in args:
        out += ["--arg", a]
    return out


@pytest.mark.parametrize("lang", sorted(HELLO))
def test_every_language_prints_hello_and_its_args(kiln_bin, lang):
    r, res = run_json(lang, HELLO[lang], *arg_flags(ARGS))
    assert res["status"] == "ok", res
    assert res["exit_code"] == 0 and res["signal"] is None
    assert res["stdout"].rstrip("\n").strip() == EXPECTED, res
    assert r.returncode == 0
    for key in ("wall_time_ms", "cpu_time_ms", "memory_peak_kb"):
        assert isinstance(res[key], int) and res[key] >= 0
    # build outputs stay in /tmp: only the source is left in /mnt/data
    assert [f["path"] for f in res["files"]] == [f"/mnt/data/{source_of(lang)}"], res["files"]


def source_of(lang):
    return {"py": "code.py", "js": "code.js", "ts": "code.ts", "go": "main.go",
            "java": "Code.java", "c": "code.c", "cpp": "code.cpp", "php": "code.php",
            "rs": "main.rs", "r": "code.r", "f90": "code.f90", "d": "code.d",
            "bash": "code.sh"}[lang]


@pytest.mark.parametrize("lang", sorted(BROKEN))
def test_compile_error_is_status_error_with_the_message_on_stderr(kiln_bin, lang):
    code, word = BROKEN[lang]
    r, res = run_json(lang, code)
    assert res["status"] == "error", res
    assert res["exit_code"] != 0
    assert word in res["stderr"], res["stderr"]
    assert res["stdout"] == ""
    assert r.returncode == res["exit_code"]


def test_plain_output_goes_to_our_stdout_and_stderr_and_exit_code_mirrors(kiln_bin):
    r = run_kiln("run", "-l", "PY",
                 'import sys; print("out"); print("err", file=sys.stderr); sys.exit(3)')
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert "err\n" in r.stderr


def test_code_from_a_file_and_from_stdin(kiln_bin, tmp_path):
    src = tmp_path / "prog.sh"
    src.write_text("echo from-file\n")
    r = run_kiln("run", "-l", "bash", "-f", str(src))
    assert (r.returncode, r.stdout) == (0, "from-file\n")
    r = run_kiln("run", "-l", "bash", "-f", "-", input="echo from-stdin\n")
    assert (r.returncode, r.stdout) == (0, "from-stdin\n")


def test_working_directory_is_mnt_data(kiln_bin):
    _, res = run_json("py", "import os; print(os.getcwd())")
    assert res["stdout"] == "/mnt/data\n"
    _, res = run_json("bash", "pwd")
    assert res["stdout"] == "/mnt/data\n"


def test_mounted_csv_is_read_by_pandas_and_a_matplotlib_png_comes_back(kiln_bin, tmp_path):
    csv = tmp_path / "input data.csv"
    csv.write_text("x,y\n1,2\n2,4\n3,9\n")
    code = ("import pandas as pd, matplotlib.pyplot as plt\n"
            "df = pd.read_csv('data.csv')\n"
            "print(int(df['y'].sum()))\n"
            "plt.plot(df['x'], df['y'])\n"
            "plt.savefig('plot.png')\n")
    r, res = run_json("py", code, "--mount", f"{csv}:data.csv")
    assert res["status"] == "ok", res["stderr"]
    assert res["stdout"] == "15\n"
    assert res["stderr"] == "", res["stderr"]
    files = {f["path"]: f for f in res["files"]}
    assert set(files) == {"/mnt/data/code.py", "/mnt/data/data.csv", "/mnt/data/plot.png"}
    png = files["/mnt/data/plot.png"]
    assert png["size"] > 1000 and png["mtime"] > 0


def test_mount_without_a_name_keeps_the_base_name(kiln_bin, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("abc")
    r = run_kiln("run", "-l", "bash", "--mount", str(f), "cat notes.txt")
    assert (r.returncode, r.stdout) == (0, "abc")


def test_environment_is_the_allow_list_and_nothing_of_the_host(kiln_bin):
    env = dict(os.environ, KILN_SECRET_CANARY="leaked-canary", AWS_SECRET_ACCESS_KEY="x")
    _, res = run_json("py", "import os, json; print(json.dumps(dict(os.environ)))", env=env)
    seen = json.loads(res["stdout"])
    assert set(seen) <= ALLOWED_ENV, set(seen) - ALLOWED_ENV
    assert seen["HOME"] == "/tmp" and seen["LANG"] == "C.UTF-8"
    assert "leaked-canary" not in res["stdout"]
    _, res = run_json("bash", "env", env=env)
    assert "leaked-canary" not in res["stdout"] and "AWS_" not in res["stdout"]


def test_python_has_the_seed_libraries(kiln_bin):
    mods = ["pandas", "numpy", "matplotlib", "seaborn", "plotly", "openpyxl", "xlrd", "docx",
            "pypdf", "PyPDF2", "PIL", "py7zr", "tabulate"]
    _, res = run_json("py", f"import {', '.join(mods)}\nprint('ok')\n")
    assert res["status"] == "ok", res["stderr"]
    assert res["stdout"] == "ok\n"


def test_php_loads_its_packaged_extensions(kiln_bin):
    _, res = run_json("php", '<?php var_dump(ctype_digit("42"), extension_loaded("iconv"));')
    assert res["status"] == "ok", res["stderr"]
    assert res["stdout"] == "bool(true)\nbool(true)\n"


def test_r_writes_a_png_with_cairo(kiln_bin):
    _, res = run_json("r", 'png("r.png", type = "cairo"); plot(1:3); invisible(dev.off()); '
                      'cat("done\\n")')
    assert res["status"] == "ok", res["stderr"]
    png = [f for f in res["files"] if f["path"] == "/mnt/data/r.png"]
    assert png and png[0]["size"] > 100


def test_java_heap_exhaustion_is_an_outofmemoryerror_not_a_kill(kiln_bin):
    code = ("public class Code { public static void main(String[] a) {\n"
            "  java.util.List<long[]> l = new java.util.ArrayList<>();\n"
            "  while (true) l.add(new long[1 << 17]);\n} }\n")
    _, res = run_json("java", code, "--memory", "256")
    assert res["status"] == "error", res
    assert "java.lang.OutOfMemoryError" in res["stderr"]


def test_runtime_error_is_status_error(kiln_bin):
    r, res = run_json("py", "raise ValueError('boom')")
    assert res["status"] == "error" and res["exit_code"] == 1
    assert "ValueError: boom" in res["stderr"]
    assert r.returncode == 1


def test_signal_death_exits_128_plus_signal(kiln_bin):
    r, res = run_json("bash", "kill -SEGV $$")
    assert res["signal"] == 11, res
    assert r.returncode == 128 + 11


def test_timeout_is_status_timeout_and_exit_124(kiln_bin):
    r, res = run_json("bash", "echo started; sleep 30", "--timeout", "1")
    assert res["status"] == "timeout", res
    assert res["stdout"] == "started\n"
    assert res["wall_time_ms"] < 10000
    assert r.returncode == 124


def test_non_utf8_output_is_valid_json(kiln_bin):
    _, res = run_json("py", "import sys; sys.stdout.buffer.write(b'a\\xffb\\n')")
    assert res["stdout"] == "a\ufffdb\n"


def test_usage_errors_exit_2(kiln_bin):
    assert run_kiln("run", "print(1)").returncode == 2                      # no -l
    assert run_kiln("run", "-l", "cobol", "x").returncode == 2               # unknown language
    assert run_kiln("run", "-l", "py").returncode == 2                       # no code
    assert run_kiln("run", "-l", "py", "--timeout", "abc", "x").returncode == 2
    assert run_kiln("run", "-l", "py", "--mount", "/nonexistent/f", "x").returncode == 2
    r = run_kiln("run", "--help")
    assert r.returncode == 0 and "usage: kiln run" in r.stdout
