"""kiln's Python state runner (issue 6): restore the globals a session's previous execution left,
run the program as __main__ exactly as `python3 code.py` would, capture the globals afterwards.

Two ways to use it:

1. Cold path (src/exec/local.c writes this file to /mnt/data/.kiln/kiln_runner.py):
     python3 /mnt/data/.kiln/kiln_runner.py [--state-in P] [--state-out P] [--notes P]
             [--max-bytes N] [--capture-on-error] -- code.py [args...]
   The program's argv (sys.argv), __file__ (absolute, /mnt/data/code.py), sys.path[0]
   (/mnt/data), tracebacks (no runner frame) and exit status are those of `python3 code.py`.

2. As a module (the zygote's child, /work/wt/zygote): import it (it imports nothing heavy at
   import time) and call
     g = kiln_runner.restore(path)            -> dict of globals (possibly empty), never raises;
                                                 g["__kiln_notes__"] is NOT set: notes of a
                                                 failed restore go to restore_notes(g)
     notes = kiln_runner.capture(g, path, max_bytes)
                                              -> list of str (skipped names, size refusals);
                                                 never raises; writes the blob to path only
                                                 when it is within max_bytes
   then exec the program in a module whose __dict__ was updated with g before the run, and hand
   that __dict__ to capture() after it. run_main(path, argv, state_in, state_out, notes_path,
   max_bytes, capture_on_error) does all of it and returns the exit status.
   The notes file (JSON) is {"saved": bool, "size": int, "notes": [str, ...]}.

Blob format (KubeCodeRun/LibreCodeInterpreter compatible): one version byte, then the payload.
  1: cloudpickle of a dict {name: value}
  2: lz4-frame of that pickle (what kiln writes)
Modules in the globals are not pickled: they are recorded under the key "__kiln_modules__" as
{name: module name} and re-imported on restore (`import numpy as np` comes back as np).
The size limit applies to the uncompressed pickle (STATE_MAX_SIZE_MB): what must fit in memory
on restore, and what makes a compressible 5 MB state as refused as an incompressible one.
"""
import sys

VERSION_RAW = 1
VERSION_LZ4 = 2
MODULES_KEY = "__kiln_modules__"
_NOTES_KEY = "__kiln_restore_notes__"

# Names every module has; never part of the state.
_SKIP = frozenset(("__name__", "__doc__", "__package__", "__loader__", "__spec__", "__file__",
                   "__cached__", "__builtins__", "__annotations__", "__path__"))


def restore_notes(g):
    """Notes restore() left in g (and removes them): a list of str."""
    return g.pop(_NOTES_KEY, [])


def _decode(blob):
    if len(blob) < 2:
        raise ValueError("state blob too short")
    v = blob[0]
    if v == VERSION_LZ4:
        import lz4.frame
        payload = lz4.frame.decompress(blob[1:])
    elif v == VERSION_RAW:
        payload = bytes(blob[1:])
    else:
        raise ValueError("unknown state version byte %d" % v)
    import cloudpickle  # noqa: F401  (cloudpickle's reducers must be importable)
    import pickle
    return pickle.loads(payload)


def restore(path):
    """The globals saved at path: a dict (empty when there is no file). Never raises: a state
    that cannot be read is dropped and the reason is left for restore_notes()."""
    g = {}
    notes = []
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        return g
    except Exception as e:
        notes.append("previous state not restored: %s" % _err(e))
        g[_NOTES_KEY] = notes
        return g
    try:
        data = _decode(blob)
        if not isinstance(data, dict):
            raise ValueError("state is not a dict")
    except Exception as e:
        notes.append("previous state dropped: it could not be loaded (%s)" % _err(e))
        g[_NOTES_KEY] = notes
        return g
    mods = data.pop(MODULES_KEY, None)
    if isinstance(mods, dict):
        import importlib
        for name, modname in mods.items():
            try:
                g[name] = importlib.import_module(modname)
            except Exception as e:
                notes.append("module %s (%s) not re-imported: %s" % (name, modname, _err(e)))
    for k, v in data.items():
        if isinstance(k, str):
            g[k] = v
    if notes:
        g[_NOTES_KEY] = notes
    return g


def _err(e):
    s = "%s: %s" % (type(e).__name__, e)
    return s if len(s) <= 200 else s[:197] + "..."


def _candidates(g):
    """(values, modules): the globals worth saving."""
    import types
    values, modules = {}, {}
    for k, v in list(g.items()):
        if not isinstance(k, str) or k in _SKIP or k == _NOTES_KEY:
            continue
        if k.startswith("__") and k.endswith("__"):
            continue
        if isinstance(v, types.ModuleType):
            name = getattr(v, "__name__", None)
            if isinstance(name, str) and name != "__main__":
                modules[k] = name
            continue
        values[k] = v
    return values, modules


def capture(g, path, max_bytes):
    """Save the globals g to path as a version-2 blob; returns the notes (list of str). A value
    that cannot be pickled is skipped and named; a state over max_bytes (uncompressed pickle)
    is not written at all. Never raises."""
    notes = []
    try:
        import cloudpickle
        values, modules = _candidates(g)
        state = dict(values)
        if modules:
            state[MODULES_KEY] = modules
        try:
            payload = cloudpickle.dumps(state, protocol=5)
        except Exception:
            # Find the culprits one by one; the rest is saved.
            for k in sorted(values):
                try:
                    cloudpickle.dumps(values[k], protocol=5)
                except Exception as e:
                    notes.append("variable '%s' not saved: %s cannot be pickled (%s)"
                                 % (k, type(values[k]).__name__, _err(e)))
                    del state[k]
            payload = cloudpickle.dumps(state, protocol=5)
        if len(payload) > max_bytes:
            notes.append("state not saved: %.1f MB exceeds STATE_MAX_SIZE_MB (%d MB)"
                         % (len(payload) / 1048576.0, max_bytes // 1048576))
            return notes
        import lz4.frame
        blob = bytes((VERSION_LZ4,)) + lz4.frame.compress(payload, compression_level=0)
        del payload
        with open(path, "wb") as f:
            f.write(blob)
    except BaseException as e:  # a capture failure must never change the program's outcome
        notes.append("state not saved: %s" % _err(e))
    return notes


def _exit_code(e):
    c = e.code
    if c is None:
        return 0
    if isinstance(c, int):
        return c & 0xFF
    try:
        sys.stderr.write(str(c) + "\n")
    except Exception:
        pass
    return 1


def _write_notes(path, saved, size, notes):
    if not path:
        return
    import json
    try:
        with open(path, "w") as f:
            json.dump({"saved": saved, "size": size, "notes": notes}, f)
    except Exception:
        pass


def run_main(path, argv, state_in, state_out, notes_path, max_bytes, capture_on_error):
    """Run the program at path as __main__ with argv, restoring state_in first and capturing
    into state_out after; returns the exit status. The caller exits with it."""
    import os
    import types
    notes = []
    g = restore(state_in) if state_in else {}
    notes.extend(restore_notes(g))
    path = os.path.abspath(path)
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(path)
    main = types.ModuleType("__main__")
    main.__dict__.update(g)
    del g
    main.__file__ = path
    main.__builtins__ = __builtins__
    main.__cached__ = None
    sys.modules["__main__"] = main
    code = 0
    failed = False
    try:
        with open(path, "rb") as f:
            source = f.read()
        compiled = compile(source, path, "exec", dont_inherit=True)
        del source
        exec(compiled, main.__dict__)
    except SystemExit as e:
        code = _exit_code(e)
        failed = code != 0
    except BaseException:
        t, v, tb = sys.exc_info()
        # Drop this frame: the traceback reads as `python3 code.py`'s does.
        tb = tb.tb_next if tb is not None else None
        if v is not None:
            v.__traceback__ = tb  # the default hook prints the exception's own traceback
        sys.excepthook(t, v, tb)
        code = 1
        failed = True
        del t, v, tb
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
    saved = False
    size = 0
    if state_out and (not failed or capture_on_error):
        notes.extend(capture(main.__dict__, state_out, max_bytes))
        try:
            size = os.stat(state_out).st_size
            saved = True
        except OSError:
            pass
    elif state_out:
        notes.append("state not saved: the execution failed (STATE_CAPTURE_ON_ERROR=false)")
    _write_notes(notes_path, saved, size, notes)
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            code = code or 120
    return code


def _cli(args):
    opts = {"--state-in": None, "--state-out": None, "--notes": None, "--max-bytes": "52428800"}
    on_error = False
    i = 0
    while i < len(args) and args[i] != "--":
        a = args[i]
        if a == "--capture-on-error":
            on_error = True
            i += 1
        elif a in opts and i + 1 < len(args):
            opts[a] = args[i + 1]
            i += 2
        else:
            sys.stderr.write("kiln_runner: bad argument %r\n" % a)
            return 2
    prog = args[i + 1:]
    if not prog:
        sys.stderr.write("kiln_runner: no program\n")
        return 2
    return run_main(prog[0], prog, opts["--state-in"], opts["--state-out"], opts["--notes"],
                    int(opts["--max-bytes"]), on_error)


if __name__ == "__main__":
    # os._exit: the program's atexit handlers already ran inside run_main
    _rc = _cli(sys.argv[1:])
    import os
    os._exit(_rc)
