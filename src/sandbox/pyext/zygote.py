"""kiln's Python zygote (DESIGN.md "Why it is fast"). Runs inside a sandbox of its own, preloads
the modules named on the command line, and never runs user code: kiln_sbx.serve() forks a child
per execution, the child isolates itself (same C code as a cold sandbox) and only then comes back
here, where the job's program runs as __main__ as `python3 code.py` would run it."""
import os
import sys

# The state runner is installed beside this file (CMake copies both into pyext/, build and
# install alike) and is preloaded anyway (BASE); it imports only sys. Its SystemExit → status
# rule is the one `python3 code.py` follows, for both kinds of execution.
from kiln_runner import _exit_code

CTL_FD = 3

# Imported by every zygote: what the child itself needs (random for reseeding, types, atexit,
# traceback for errors) and cheap standard modules most programs use, so that no execution pays
# for them (random alone pulls in hashlib and OpenSSL: ~30 ms).
BASE = ("atexit", "types", "random", "traceback", "linecache", "math", "json", "re",
        "collections", "datetime", "itertools", "functools", "time", "threading",
        # the state runner's (src/lang/py/kiln_runner.py, issue 6): restore and capture of a
        # session's globals then cost no import in the child
        "pickle", "cloudpickle", "lz4.frame", "importlib", "io",
        # the state runner itself (copied beside this file): a state execution calls it
        # instead of compiling the copy in the workspace
        "kiln_runner")

# The state runner's path in the workspace (src/lang/py_runner.h PY_RUNNER_FILE): a job whose
# program is this runs the preloaded module (same source, built from the same file).
RUNNER = "/mnt/data/.kiln/kiln_runner.py"

# Set by the supervisor when executions run under the state runner (STATE_PERSISTENCE_ENABLED):
# the rehearsal then covers its capture too.
STATE = os.environ.get("KILN_ZYGOTE_STATE") == "1"

# What a child rehearses before it reports ready (_prepare): the path every execution takes, so
# that the pages it writes — refcounts of builtins and interned names, the compiler's, print's
# state — are copied now, ahead of demand, not while the program runs. Kept small on purpose:
# each page a rehearsal touches that the program would not have touched is a wasted
# copy-on-write fault (tens of µs each on a paravirtualised host).
REHEARSAL = b"""
def f(a):
    return a + 1
x = f(1)
print(x, "s", f"{x}")
"""


def _preload(names):
    import importlib
    for name in names:
        try:
            importlib.import_module(name)
            if name == "matplotlib":
                # The heavy half of matplotlib is pyplot (with the Agg backend of MPLBACKEND).
                importlib.import_module("matplotlib.pyplot")
        except Exception as e:  # a missing module only costs the programs that use it time
            sys.stderr.write("kiln zygote: cannot preload %s: %r\n" % (name, e))


def _warm():
    """Exercise the preloaded libraries once (our code, not the user's): their lazy imports,
    caches and first-use setup (pandas' plotting backend, matplotlib's fonts and Agg canvas,
    PNG encoding) then live in the zygote, and no child pays for them."""
    import io
    pd = sys.modules.get("pandas")
    plt = sys.modules.get("matplotlib.pyplot")
    try:
        if pd is not None:
            df = pd.DataFrame({"g": [1, 2, 1], "v": [1.0, 2.0, 3.0], "s": ["a", "b", "c"]})
            s = df.groupby("g")["v"].sum()
            df.describe()
            repr(df)
            df.to_csv(io.StringIO())
        if plt is not None:
            fig, ax = plt.subplots()
            ax.plot([1, 2], [3, 4], label="x")
            ax.set_title("warm")
            ax.legend()
            if pd is not None:
                s.plot(ax=ax, kind="bar")
                df.plot(ax=ax)
            fig.savefig(io.BytesIO(), format="png")
            plt.close("all")
    except Exception as e:
        sys.stderr.write("kiln zygote: warm-up failed: %r\n" % (e,))


def _rehearse():
    import io
    import os
    import types
    saved = (sys.stdout, sys.stderr, sys.argv, sys.path[0], sys.modules.get("__main__"))
    env = dict(os.environ)
    out = io.StringIO()
    try:
        os.environ.clear()
        os.environ.update(env)
        _reseed()
        with open("/proc/self/stat", "rb") as f:
            f.read()
        sys.stdout = sys.stderr = out
        sys.argv = ["/mnt/data/code.py"]
        sys.path[0] = "/mnt/data"
        main = types.ModuleType("__main__")
        main.__file__ = "/mnt/data/code.py"
        main.__builtins__ = __builtins__
        main.__cached__ = None
        sys.modules["__main__"] = main
        exec(compile(REHEARSAL, "/mnt/data/code.py", "exec", dont_inherit=True), main.__dict__)
        runner = sys.modules.get("kiln_runner")
        if STATE and runner is not None:
            # a state execution's capture and notes (to /dev/null), and a restore from memory
            g = {k: v for k, v in main.__dict__.items() if not k.startswith("__")}
            runner.capture(g, "/dev/null", 1 << 20)
            runner._write_notes("/dev/null", True, 1, [])
            os.stat("/proc/self")
            import cloudpickle
            import lz4.frame
            import io
            runner._load(io.BytesIO(bytes((runner.VERSION_LZ4,)) + lz4.frame.compress(
                cloudpickle.dumps({"x": 1}, protocol=5), compression_level=0)))
        for s in (sys.__stdout__, sys.__stderr__):
            s.flush()
    finally:
        sys.stdout, sys.stderr, sys.argv, sys.path[0] = saved[:4]
        if saved[4] is not None:
            sys.modules["__main__"] = saved[4]
        os.environ.clear()
        os.environ.update(env)


def _prepare():
    """Run in each child after it isolated itself and before it reports ready (no user data
    yet, ahead of demand): rehearse an execution, then collect what it left, so that the
    program itself meets already-copied pages instead of copy-on-write faults (each costs tens
    of µs on a paravirtualised host; a print(1) took ~200). Our code only, never the user's."""
    try:
        _rehearse()
    except BaseException as e:
        try:
            sys.__stderr__.write("kiln zygote: rehearsal failed: %r\n" % (e,))
        except BaseException:
            pass
    import gc
    gc.collect()


def _reseed():
    # Fresh randomness: every child starts from a copy of the zygote's generators.
    import random
    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        try:
            np.random.seed()
        except Exception:
            pass


def _run(job):
    import os
    argv = list(job["argv"])
    os.environ.clear()
    os.environ.update(job["env"])
    path = argv[0] if argv[0].startswith("/") else os.path.join("/mnt/data", argv[0])
    sys.argv = argv
    sys.path[0] = os.path.dirname(path)
    _reseed()
    runner = sys.modules.get("kiln_runner")
    if argv[0] == RUNNER and runner is not None:
        # The state runner, preloaded: it restores, runs the program as __main__, captures,
        # runs threads and atexit, and flushes, exactly as from its file (tracebacks drop its
        # own frame); no compilation of the runner per execution.
        os._exit(runner._cli(argv[1:]))
    code = 0
    try:
        with open(path, "rb") as f:
            source = f.read()
        import types
        main = types.ModuleType("__main__")
        main.__file__ = path
        main.__builtins__ = __builtins__
        main.__cached__ = None
        sys.modules["__main__"] = main
        # Issue 6 (Python state) hooks in here: restore the session's globals into
        # main.__dict__ before the exec, capture them after it (inside the sandbox, seccomp on).
        compiled = compile(source, path, "exec", dont_inherit=True)
        del source
        exec(compiled, main.__dict__)
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException:
        t, v, tb = sys.exc_info()
        # Drop this frame: the traceback reads as `python3 code.py`'s does.
        if tb is not None:
            v = v.with_traceback(tb.tb_next)
            tb = tb.tb_next
        sys.excepthook(t, v, tb)
        code = 1
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
        import atexit
        atexit._run_exitfuncs()
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException:
        sys.excepthook(*sys.exc_info())
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            code = code or 120
    os._exit(code)


def main():
    _preload(BASE)
    _preload([n for n in sys.argv[1:] if n and not n.startswith("--pad=")])
    _warm()
    import gc
    gc.collect()
    gc.freeze()  # keep the preloaded objects out of the children's collections (fewer COW faults)
    import kiln_sbx
    job = kiln_sbx.serve(CTL_FD, _prepare)
    _run(job)


main()
