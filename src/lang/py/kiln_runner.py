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
                                                 when it is within max_bytes and differs
                                                 from what restore() read
                                                 (capture_ex() also says whether it did)
   then exec the program in a module whose __dict__ was updated with g before the run, and hand
   that __dict__ to capture() after it. run_main(path, argv, state_in, state_out, notes_path,
   max_bytes, capture_on_error) does all of it and returns the exit status.
   The notes file (JSON) is {"saved": bool, "size": int, "notes": [str, ...]}, plus
   "unchanged": true when the captured blob is byte-identical to the restored one: then no
   state.out is written and kiln keeps the stored copy without rewriting it; and "modules":
   [top-level module names a restore imports] (kiln picks the next run's zygote by them).

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
# Bytes decompressed, compressed or compared per step: restore and capture stream the state
# through buffers of this size, so that no extra whole copy of a large state is ever made (in
# a VM every fresh page of a 20 MB buffer costs a fault). Small enough for malloc to reuse the
# same memory at every step (1 MiB steps were mapped and unmapped each time: 15,000 faults
# for an unchanged 20 MB state, against 70 with 64 KiB).
_CHUNK = 1 << 16

# The file restore() read, kept open until capture so that an unchanged state is recognised
# by comparing the new blob with it as it is produced (nothing is written then).
_previous = None

# Names every module has; never part of the state.
_SKIP = frozenset(("__name__", "__doc__", "__package__", "__loader__", "__spec__", "__file__",
                   "__cached__", "__builtins__", "__annotations__", "__path__"))


def restore_notes(g):
    """Notes restore() left in g (and removes them): a list of str."""
    return g.pop(_NOTES_KEY, [])


class _Lz4Reader:
    """A file-like view of the decompressed payload of an lz4 frame read from f, for
    pickle.load(): decompressed a chunk at a time, copied straight into the objects."""

    def __init__(self, f):
        import lz4.frame
        self._f = f
        self._d = lz4.frame.LZ4FrameDecompressor()
        self._buf = b""
        self._pos = 0

    def _fill(self):
        while self._pos >= len(self._buf):
            if self._d.eof:
                return False
            data = b""
            if self._d.needs_input:
                data = self._f.read(_CHUNK)
                if not data:
                    raise ValueError("truncated lz4 frame")
            self._buf = self._d.decompress(data, max_length=_CHUNK)
            self._pos = 0
        return True

    def readinto(self, b):
        mv = memoryview(b).cast("B")
        n = 0
        while n < len(mv) and self._fill():
            k = min(len(mv) - n, len(self._buf) - self._pos)
            mv[n:n + k] = self._buf[self._pos:self._pos + k]
            self._pos += k
            n += k
        return n

    def read(self, n=-1):
        if n is None or n < 0:
            parts = []
            while self._fill():
                parts.append(self._buf[self._pos:])
                self._pos = len(self._buf)
            return b"".join(parts)
        out = bytearray(n)
        return bytes(out[:self.readinto(out)])

    def readline(self):
        parts = []
        while self._fill():
            i = self._buf.find(b"\n", self._pos)
            end = len(self._buf) if i < 0 else i + 1
            parts.append(self._buf[self._pos:end])
            self._pos = end
            if i >= 0:
                break
        return b"".join(parts)


def _load(f):
    """The dict pickled in the blob at f (positioned at its start)."""
    import pickle
    head = f.read(1)
    if len(head) < 1:
        raise ValueError("state blob too short")
    v = head[0]
    import cloudpickle  # noqa: F401  (cloudpickle's reducers must be importable)
    if v == VERSION_LZ4:
        return pickle.load(_Lz4Reader(f))
    if v == VERSION_RAW:
        return pickle.load(f)
    raise ValueError("unknown state version byte %d" % v)


def restore(path):
    """The globals saved at path: a dict (empty when there is no file). Never raises: a state
    that cannot be read is dropped and the reason is left for restore_notes()."""
    global _previous
    g = {}
    notes = []
    _forget_previous()
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return g
    except Exception as e:
        notes.append("previous state not restored: %s" % _err(e))
        g[_NOTES_KEY] = notes
        return g
    try:
        data = _load(f)
        if not isinstance(data, dict):
            raise ValueError("state is not a dict")
    except Exception as e:
        f.close()
        notes.append("previous state dropped: it could not be loaded (%s)" % _err(e))
        g[_NOTES_KEY] = notes
        return g
    _previous = f
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


def _forget_previous():
    global _previous
    if _previous is not None:
        f, _previous = _previous, None
        try:
            f.close()
        except Exception:
            pass


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
    is not written at all, nor one identical to what restore() read. Never raises."""
    return capture_ex(g, path, max_bytes)[0]


class _TooLarge(Exception):
    pass


class _Count:
    """A pickler's file that only counts (sizes, and the test-pickling of single values)."""

    def __init__(self):
        self.n = 0

    def write(self, b):
        n = memoryview(b).nbytes
        self.n += n
        return n


class _Sink:
    """The pickler's file of a capture: the pickle is lz4-compressed as it comes (frame, level
    0: lz4's fast mode; the high-compression levels start at 3) and the blob is compared with
    the restored one as it is produced; path is written only from the first difference on
    (the equal prefix copied from the old file), so an unchanged state writes nothing and no
    whole copy of the pickle or of the blob is ever held in memory. A pickle of at most _SMALL
    bytes is held and compressed in one call at the end instead: lz4's streaming context
    costs ~90 page faults to set up (its buffers), a one-shot frame ~45, and the empty state's
    blob (a program that leaves no variables) is made once per process (in the zygote, before
    it forks: none)."""

    def __init__(self, path, max_bytes):
        self._path = path
        self._max = max_bytes
        self._raw = 0
        self._off = 0     # blob bytes produced
        self._out = None  # the output file, once the blob differs
        self._prev = _previous
        self._c = None    # the streaming compressor, once the pickle outgrows _SMALL
        self._held = bytearray()
        self._emit(bytes((VERSION_LZ4,)))

    def write(self, b):
        mv = memoryview(b).cast("B")
        n = len(mv)
        self._raw += n
        if self._raw > self._max:
            raise _TooLarge()
        if self._c is None:
            if self._raw <= _SMALL:
                self._held += mv
                return n
            import lz4.frame
            self._c = lz4.frame.LZ4FrameCompressor(compression_level=0)
            self._emit(self._c.begin())
            held, self._held = self._held, bytearray()
            self._compress(memoryview(held))
        self._compress(mv)
        return n

    def _compress(self, mv):
        for i in range(0, len(mv), _CHUNK):
            self._emit(self._c.compress(mv[i:i + _CHUNK]))

    def _emit(self, data):
        import os
        if not data:
            return
        if self._out is None and self._prev is not None:
            if os.pread(self._prev.fileno(), len(data), self._off) == data:
                self._off += len(data)
                return
        self._open()
        self._out.write(data)
        self._off += len(data)

    def _open(self):
        """Start the output file with the prefix equal to the old blob."""
        import os
        if self._out is not None:
            return
        self._out = open(self._path, "wb")
        done = 0
        while done < self._off:
            chunk = os.pread(self._prev.fileno(), min(_CHUNK, self._off - done), done)
            if not chunk:
                raise ValueError("the restored state file changed")
            self._out.write(chunk)
            done += len(chunk)

    def finish(self):
        """Complete the blob; True when it equals the old one (and nothing was written)."""
        import os
        if self._c is None:
            self._emit(_small_frame(bytes(self._held)))
        else:
            self._emit(self._c.flush())
        if self._out is None and self._prev is not None and \
                os.fstat(self._prev.fileno()).st_size == self._off:
            return True
        self._open()
        self._out.close()
        return False

    def abort(self):
        import os
        if self._out is not None:
            self._out.close()
            try:
                os.unlink(self._path)
            except OSError:
                pass


# Pickles up to this size are compressed in one call (_Sink).
_SMALL = 1 << 16
_empty = None  # (pickle, frame) of the empty state, made on first use


def _small_frame(raw):
    """The lz4 frame of a small pickle (the same bytes for the same pickle, as the comparison
    with the restored blob needs)."""
    global _empty
    import lz4.frame
    if _empty is None:
        import pickle
        e = pickle.dumps({}, protocol=5)
        _empty = (e, lz4.frame.compress(e, compression_level=0))
    if raw == _empty[0]:
        return _empty[1]
    return lz4.frame.compress(raw, compression_level=0)


# Modules every zygote and the runner itself have loaded: never worth reporting.
_PRELOADED = frozenset(("__main__", "builtins", "copyreg", "_codecs", "pickle", "_pickle",
                        "cloudpickle"))


def _pickler(sink, mods):
    """A cloudpickle pickler into sink that adds to the set mods the top-level module of every
    class, function and object type it pickles (what a restore will import)."""
    global _pickler_class
    if _pickler_class is None:
        # Made once per process (a zygote makes it before it forks: a class per capture cost
        # every child ~60 page faults of its own).
        import cloudpickle
        import types

        class _Pickler(cloudpickle.Pickler):
            def reducer_override(self, obj):
                for m in (getattr(type(obj), "__module__", None),
                          getattr(obj, "__module__", None)
                          if isinstance(obj, (type, types.FunctionType,
                                              types.BuiltinFunctionType))
                          else None):
                    if isinstance(m, str):
                        self.kiln_mods.add(m.partition(".")[0])
                sup = getattr(super(), "reducer_override", None)
                return sup(obj) if sup is not None else NotImplemented

        _pickler_class = _Pickler
    p = _pickler_class(sink, protocol=5)
    p.kiln_mods = mods
    return p


_pickler_class = None


def capture_ex(g, path, max_bytes):
    """capture(), returning (notes, unchanged, modules): unchanged is True when the blob equals
    the one restore() read, byte for byte, and was therefore not written; modules is the sorted
    list of the top-level modules a restore of it imports (those of its classes, functions and
    objects' types, and the modules among the globals), or None when nothing was captured."""
    notes = []
    unchanged = False
    sink = None
    mods = set()
    captured = False
    try:
        import cloudpickle
        values, modules = _candidates(g)
        state = dict(values)
        if modules:
            state[MODULES_KEY] = modules
        try:
            sink = _Sink(path, max_bytes)
            _pickler(sink, mods).dump(state)
        except _TooLarge:
            raise
        except Exception:
            sink.abort()
            # Find the culprits one by one; the rest is saved.
            for k in sorted(values):
                try:
                    cloudpickle.Pickler(_Count(), protocol=5).dump(values[k])
                except Exception as e:
                    notes.append("variable '%s' not saved: %s cannot be pickled (%s)"
                                 % (k, type(values[k]).__name__, _err(e)))
                    del state[k]
            mods = set()
            sink = _Sink(path, max_bytes)
            _pickler(sink, mods).dump(state)
        unchanged = sink.finish()
        captured = True
        for modname in modules.values():
            if isinstance(modname, str):
                mods.add(modname.partition(".")[0])
    except _TooLarge:
        sink.abort()
        size = _Count()
        try:
            cloudpickle.Pickler(size, protocol=5).dump(state)
        except Exception:
            pass
        notes.append("state not saved: %.1f MB exceeds STATE_MAX_SIZE_MB (%d MB)"
                     % (max(size.n, max_bytes + 1) / 1048576.0, max_bytes // 1048576))
    except BaseException as e:  # a capture failure must never change the program's outcome
        if sink is not None:
            sink.abort()
        notes.append("state not saved: %s" % _err(e))
        unchanged = False
    finally:
        _forget_previous()
    return notes, unchanged, sorted(mods - _PRELOADED) if captured else None


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


def _write_notes(path, saved, size, notes, unchanged=False, modules=None):
    if not path:
        return
    import json
    doc = {"saved": saved, "size": size, "notes": notes}
    if unchanged:
        doc["unchanged"] = True
    if modules is not None:
        doc["modules"] = modules
    try:
        data = json.dumps(doc).encode()  # C's encoder; json.dump's runs in Python, chunk by chunk
        import os
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
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
    unchanged = False
    modules = None
    size = 0
    if state_out and (not failed or capture_on_error):
        more, unchanged, modules = capture_ex(main.__dict__, state_out, max_bytes)
        notes.extend(more)
        try:
            size = os.stat(state_in if unchanged else state_out).st_size
            saved = True
        except OSError:
            pass
    elif state_out:
        _forget_previous()
        notes.append("state not saved: the execution failed (STATE_CAPTURE_ON_ERROR=false)")
    _write_notes(notes_path, saved, size, notes, unchanged, modules)
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
