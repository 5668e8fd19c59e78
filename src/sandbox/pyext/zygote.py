"""kiln's Python zygote (DESIGN.md "Why it is fast"). Runs inside a sandbox of its own, preloads
the modules named on the command line, and never runs user code: kiln_sbx.serve() forks a child
per execution, the child isolates itself (same C code as a cold sandbox) and only then comes back
here, where the job's program runs as __main__ as `python3 code.py` would run it."""
import os
import sys

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


def _warm(capture=False):
    """Exercise the preloaded libraries once (our code, not the user's): their lazy imports,
    caches and first-use setup (pandas' plotting backend, matplotlib's fonts and Agg canvas,
    PNG encoding) then live in the zygote, and no child pays for them. capture (a prepared
    child, with STATE): the state runner's capture of what a pandas job leaves in its globals
    (a DataFrame, a Series, a figure and its axes) too."""
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
            runner = sys.modules.get("kiln_runner")
            if capture and runner is not None and pd is not None:
                runner.capture({"df": df, "s": s, "fig": fig, "ax": ax}, "/dev/null", 1 << 26)
            plt.close("all")
    except Exception as e:
        sys.stderr.write("kiln zygote: warm-up failed: %r\n" % (e,))


def _memfd(name, data=b""):
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    if data:
        os.write(fd, data)
    return fd


def _rehearse():
    """One execution through the very path a job takes (_execute, and with STATE the preloaded
    runner's restore, run, capture and notes), on files of memory (/proc/self/fd/N: the child's
    fresh /proc) and with fds 1 and 2 on /dev/null, so that the program meets the pages this
    path writes already copied — sys.stdout's buffers included. What an execution ends with and
    a rehearsal must not use up (the preloaded modules' atexit handlers, the main thread's
    shutdown) is stubbed out meanwhile."""
    import atexit
    import threading
    saved = (sys.stdout, sys.stderr, sys.argv, sys.path[0], sys.modules.get("__main__"))
    env = dict(os.environ)
    stubs = ((atexit, "_run_exitfuncs"), (threading, "_shutdown"))
    originals = [getattr(m, n) for m, n in stubs]
    fds = []
    keep = []
    try:
        for m, n in stubs:
            setattr(m, n, lambda: None)
        null = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
        fds.append(null)
        for std in (1, 2):
            keep.append((std, os.dup(std)))
            os.dup2(null, std)
        with open("/proc/self/stat", "rb") as f:
            f.read()
        prog = _memfd("code.py", REHEARSAL)
        fds.append(prog)
        argv = ["/proc/self/fd/%d" % prog]
        runner = sys.modules.get("kiln_runner")
        if STATE and runner is not None:
            out = _memfd("state.out")
            notes = _memfd("state.json")
            fds += [out, notes]
            argv = [RUNNER, "--state-out", "/proc/self/fd/%d" % out, "--notes",
                    "/proc/self/fd/%d" % notes, "--max-bytes", str(1 << 20), "--"] + argv
        _execute({"argv": argv, "env": env})
        if STATE and runner is not None:
            # the next execution of a session restores the state this one saved
            runner.restore("/proc/self/fd/%d" % out)
            runner._forget_previous()
    finally:
        for m, n in stubs:
            setattr(m, n, originals.pop(0))
        for std, fd in keep:
            os.dup2(fd, std)
            os.close(fd)
        for fd in fds:
            os.close(fd)
        sys.stdout, sys.stderr, sys.argv, sys.path[0] = saved[:4]
        if saved[4] is not None:
            sys.modules["__main__"] = saved[4]
        os.environ.clear()
        os.environ.update(env)


def _prepare(full=False):
    """Run in each child after it isolated itself and before it reports ready (no user data
    yet, ahead of demand): rehearse an execution, then collect what it left, so that the
    program itself meets already-copied pages instead of copy-on-write faults (each costs tens
    of µs on a paravirtualised host; a print(1) took ~200). full (a few heavy children,
    PY_PREPARED_HEAVY): exercise the preloaded libraries too, as the zygote did at start-up — a
    pandas + matplotlib job then takes ~4,000 fewer faults (~200 ms here) for ~300 ms of CPU
    now and ~20 MB of pages no longer shared. Our code only, never the user's."""
    try:
        _rehearse()
        if full:
            _warm(capture=STATE)
            # The fonts the warm-up opened hold fds that step 5 closes before user code: drop
            # them as matplotlib itself does after a fork (the program opens its own).
            fm = sys.modules.get("matplotlib.font_manager")
            clear = getattr(getattr(fm, "_get_font", None), "cache_clear", None)
            if clear is not None:
                clear()
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
    """Run the job, tell the supervisor the program has ended and wait there to be frozen and
    killed (fchown of SBX_DONE_FD, an fd nobody has: the seccomp filter hands the call to the
    supervisor, src/sandbox/sbx_int.h): the answer no longer waits for this process to tear
    down its memory (~4 ms for a bare interpreter here). Exit by ourselves when it returns."""
    code = _execute(job) & 0xFF
    try:
        _fchown(_DONE_FD, code, -1)
    except BaseException:
        pass
    _exit(code)


# Taken before any user code: a program that rebinds os.fchown or os._exit does not change how
# its execution ends.
_fchown, _exit = os.fchown, os._exit
_DONE_FD = 0x4B4C4E44  # sbx_int.h SBX_DONE_FD


def _execute(job):
    """Run job's program as __main__ (as `python3 code.py` would) and return its exit status;
    the caller exits with it."""
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
        return runner._cli(argv[1:])
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
    return code


def _exit_code(e):
    """The status of SystemExit e: the state runner's rule (the one `python3 code.py` follows),
    for both kinds of execution. kiln_runner is installed beside this file (CMake copies both
    into pyext/, build and install alike) and preloaded (BASE). Imported here, not at the top:
    importing it first moves where the preloads' objects land, and with it how many pages a
    rehearsal leaves to the program (24 → 66 faults for a print(1); bench/zygote/faults)."""
    from kiln_runner import _exit_code as rule
    return rule(e)


def _quicken():
    """Run, here in the zygote, the code every child runs: what Python runs after a fork
    (threading's and random's hooks) and an execution (the rehearsal), several times. Code
    objects count their first calls and are specialised after a few (Python 3.11's adaptive
    interpreter writes into them while it does); done here, those writes land once in the
    zygote's pages instead of being copy-on-write faults in every child. A child that runs
    this code then meets it specialised, and keeps the zygote's pages shared (bare print(1),
    forked for a waiting request: ~300 -> ~190 faults, bench/zygote/faults)."""
    import random
    import threading
    for _ in range(QUICKEN_ROUNDS):
        # The hooks a fork runs in the child (os.register_at_fork): harmless here, where the
        # main thread is the only one (they reset what other threads would have left).
        if threading.active_count() == 1:
            threading._after_fork()
        random.seed()
        _rehearse()


# How often _quicken() runs the path: above Python 3.11's warm-up count (8 calls) and its
# specialisation's first attempts.
QUICKEN_ROUNDS = 12


def main():
    _preload(BASE)
    _preload([n for n in sys.argv[1:] if n and not n.startswith("--pad=")])
    _warm()
    _quicken()
    import gc
    gc.collect()
    gc.freeze()  # keep the preloaded objects out of the children's collections (fewer COW faults)
    import kiln_sbx
    job = kiln_sbx.serve(CTL_FD, _prepare)
    _run(job)


main()
