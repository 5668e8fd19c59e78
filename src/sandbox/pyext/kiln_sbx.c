/* kiln_sbx: the Python zygote's extension module, built from src/sandbox/ (the same isolation
 * code as a cold sandbox: zchild.c over mounts.c, caps.c, landlock.c and child.c's pieces).
 *
 * One function, serve(ctl_fd, prepare=None). In the zygote it never returns: it answers the
 * supervisor's ZP_FORK requests by forking a child into a fresh PID namespace, reaps children and
 * reports their wait status, and exits when the supervisor closes ctl. In a forked child it
 * calls prepare(full) once the child is isolated (zygote.py's rehearsal, before ZP_READY; full:
 * ZP_FORK_FULL, exercise the preloaded libraries too), and
 * returns, once its job has arrived and been entered (seccomp loaded), a dict
 * {"argv": [...], "env": {...}} for zygote.py to run. The zygote itself never runs user code. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/zchild.h"

#define MAX_CHILDREN 4096
#define MAX_FDS      4

struct zstate {
    int ctl, sigfd, pidns;
    struct sock_filter *bpf;
    unsigned short bpf_len;
    int landlock_abi, cap_last;
    bool prefault;
    PyObject *prepare; /* called in each child before ZP_READY, or NULL */
    pid_t pids[MAX_CHILDREN];
    int chans[MAX_CHILDREN];
};

/* One message and up to MAX_FDS fds; returns bytes, 0 at EOF, -errno. */
static ssize_t recv_msg(int fd, void *buf, size_t size, int *fds, int *nfds)
{
    size_t k = 0;
    ssize_t n = sbx_recv_fds(fd, buf, size, 0, fds, MAX_FDS, &k);

    *nfds = (int)k;
    return n;
}

static void send_hdr(int fd, uint32_t kind, int a, int b)
{
    struct zp_hdr h = {kind, a, b};
    ssize_t n;
    do {
        n = send(fd, &h, sizeof h, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
}

static void __attribute__((noreturn)) child_fail(int chan, int stage, int err)
{
    send_hdr(chan, ZP_FAIL, stage, err < 0 ? -err : err);
    _exit(127);
}

/* Copy every private writable page now, ahead of demand (MADV_POPULATE_WRITE breaks COW): the
 * job then takes no copy-on-write faults on the zygote's heap, which a pandas job touches by
 * the thousand (refcounts) and which are slow on a paravirtualised host. Costs the zygote's
 * anonymous memory per warm child; opt-in (zyg_opts.prefault_heavy). */
static void prefault(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[512];

    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        unsigned long a, b;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 && perms[1] == 'w' && perms[3] == 'p')
            madvise((void *)a, b - a, 23 /* MADV_POPULATE_WRITE, Linux 5.14 */);
    }
    if (f != NULL)
        fclose(f);
}

/* Show the job's command line ("python3 FILE ARGS", as a cold sandbox's program has) in
 * /proc/<pid>/cmdline, over the zygote's own argv area (the zygote is started with a padding
 * argument so there is room; what does not fit is cut). For ps and for tests that find an
 * execution by its arguments. */
static void set_cmdline(const char *args, size_t len)
{
    char stat[2048], *p;
    unsigned long start = 0, end = 0;
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    ssize_t n;
    size_t room, o;

    if (fd < 0)
        return;
    n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0)
        return;
    stat[n] = '\0';
    /* arg_start and arg_end are fields 48 and 49; field 3 starts after "comm) ". */
    p = strrchr(stat, ')');
    if (p == NULL || p[1] != ' ')
        return;
    p += 2;
    for (int field = 3; p != NULL && field < 48; field++) {
        p = strchr(p, ' ');
        if (p != NULL)
            p++;
    }
    if (p == NULL || sscanf(p, "%lu %lu", &start, &end) != 2 || end <= start)
        return;
    room = end - start;
    o = sizeof "python3";
    if (room <= o)
        return;
    memset((void *)start, 0, room);
    memcpy((void *)start, "python3", sizeof "python3");
    memcpy((void *)(start + o), args, len < room - o - 1 ? len : room - o - 1);
}

/* In the child: wait for ZP_GO, isolate, report ready, wait for the job, enter it. Returns
 * the job's dict; on failure reports ZP_FAIL and exits. */
static PyObject *child_main(struct zstate *z, int chan, bool rehearse, bool full)
{
    static char buf[ZP_MSG_MAX];
    struct zp_hdr h;
    struct zp_job j;
    struct sbx_zfds zf = {-1, -1, -1, -1, chan};
    struct sock_fprog prog = {z->bpf_len, z->bpf};
    int fds[MAX_FDS], nfds, stage = SBX_ST_SYNC, rc, k = 0, notify = -1;
    ssize_t n;
    PyObject *argv = NULL, *env = NULL, *res = NULL;
    const char *p, *end;
    sigset_t none;

    /* Die with the zygote; nothing of the zygote's but the channel stays open. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    {
        int keep = chan;
        if (keep > 3)
            close_range(3, (unsigned)keep - 1, 0);
        close_range((unsigned)keep + 1, ~0U, 0);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    send_hdr(chan, ZP_HELLO, 0, 0);
    n = recv_msg(chan, &h, sizeof h, fds, &nfds);
    if (n != (ssize_t)sizeof h || h.kind != ZP_GO)
        _exit(127);
    rc = sbx_zchild_isolate(&stage);
    if (rc < 0)
        child_fail(chan, stage, rc);
    if (z->prefault)
        prefault();
    if (z->prepare != NULL && rehearse) {
        /* zygote.py's rehearsal: our code, no user data yet, ahead of demand. Any fd it left
         * open is closed by sbx_zchild_enter() before the program runs. */
        PyObject *r = PyObject_CallOneArg(z->prepare, full ? Py_True : Py_False);
        if (r == NULL)
            PyErr_Clear();
        Py_XDECREF(r);
    }
    send_hdr(chan, ZP_READY, 0, 0);
    n = recv_msg(chan, buf, sizeof buf, fds, &nfds);
    if (n < (ssize_t)sizeof j)
        _exit(127);
    memcpy(&j, buf, sizeof j);
    if (j.h.kind != ZP_JOB || (size_t)n != sizeof j + j.strlen || j.strlen == 0 ||
        buf[n - 1] != '\0' || nfds != 2 + (j.has_ws ? 1 : 0) + (j.has_stdin ? 1 : 0))
        child_fail(chan, SBX_ST_SYNC, EPROTO);
    zf.out = fds[k++];
    zf.err = fds[k++];
    if (j.has_ws)
        zf.tree = fds[k++];
    if (j.has_stdin)
        zf.in = fds[k++];
    /* Python objects first (allocation is fine: this is a fork of a single-threaded
     * interpreter, after PyOS_AfterFork_Child), then the point of no return. */
    argv = PyList_New(0);
    env = PyDict_New();
    if (argv == NULL || env == NULL)
        child_fail(chan, SBX_ST_SYNC, ENOMEM);
    p = buf + sizeof j;
    end = buf + n;
    for (uint32_t i = 0; i < j.argc + j.envc && p < end; i++) {
        size_t l = strlen(p);
        PyObject *s = PyUnicode_DecodeFSDefaultAndSize(p, (Py_ssize_t)l);
        if (s == NULL)
            child_fail(chan, SBX_ST_SYNC, EINVAL);
        if (i < j.argc) {
            PyList_Append(argv, s);
        } else {
            const char *eq = strchr(p, '=');
            if (eq != NULL) {
                PyObject *key = PyUnicode_DecodeFSDefaultAndSize(p, eq - p);
                PyObject *val = PyUnicode_DecodeFSDefault(eq + 1);
                if (key != NULL && val != NULL)
                    PyDict_SetItem(env, key, val);
                Py_XDECREF(key);
                Py_XDECREF(val);
            }
        }
        Py_DECREF(s);
        p += l + 1;
    }
    {
        /* argv is the first part of the strings: up to the argc-th NUL */
        const char *a = buf + sizeof j;
        size_t alen = 0;
        for (uint32_t i = 0; i < j.argc && a + alen < end; i++)
            alen += strlen(a + alen) + 1;
        set_cmdline(a, alen);
    }
    rc = sbx_zchild_enter(&j, &zf, &prog, z->landlock_abi, z->cap_last, &stage, &notify);
    if (rc < 0)
        child_fail(chan, stage, rc);
    /* The point of no return; the channel and the notification fd (the supervisor's now) close
     * before any user code (the zygote reports how we end on its own end). */
    {
        struct zp_hdr started = {ZP_STARTED, 0, 0};
        sbx_send_fd(chan, &started, sizeof started, notify, 0);
    }
    if (notify >= 0)
        close(notify);
    close(chan);
    res = Py_BuildValue("{s:N,s:N}", "argv", argv, "env", env);
    return res;
}

static void reap(struct zstate *z)
{
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG | __WALL);
        if (pid <= 0)
            return;
        for (int i = 0; i < MAX_CHILDREN; i++) {
            if (z->pids[i] != pid)
                continue;
            send_hdr(z->chans[i], ZP_EXIT, st, 0);
            close(z->chans[i]);
            z->pids[i] = 0;
            z->chans[i] = -1;
            break;
        }
    }
}

/* ZP_FORK: a child in a PID namespace of its own (we unshare it for our next child only, and
 * return to our own right after). Returns the child's job in the child, NULL in the zygote. */
static PyObject *do_fork(struct zstate *z, int chan, bool rehearse, bool full, bool *in_child)
{
    int slot = -1;
    pid_t pid;

    *in_child = false;
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (z->pids[i] == 0) {
            slot = i;
            break;
        }
    if (slot < 0 || unshare(CLONE_NEWPID) < 0) {
        send_hdr(chan, ZP_FAIL, SBX_ST_FORK, slot < 0 ? EAGAIN : errno);
        close(chan);
        return NULL;
    }
    PyOS_BeforeFork();
    pid = fork();
    if (pid == 0) {
        PyOS_AfterFork_Child();
        *in_child = true;
        return child_main(z, chan, rehearse, full);
    }
    PyOS_AfterFork_Parent();
    if (setns(z->pidns, CLONE_NEWPID) < 0) {
        /* Our next children would land in that namespace: give up, the supervisor restarts
         * us. */
        _exit(70);
    }
    if (pid < 0) {
        send_hdr(chan, ZP_FAIL, SBX_ST_FORK, errno);
        close(chan);
        return NULL;
    }
    z->pids[slot] = pid;
    z->chans[slot] = chan;
    return NULL;
}

static PyObject *serve(PyObject *self, PyObject *args)
{
    static char buf[ZP_MSG_MAX];
    static struct zstate z;
    sigset_t chld;
    PyObject *prepare = NULL;
    int ctl;
    (void)self;

    if (!PyArg_ParseTuple(args, "i|O", &ctl, &prepare))
        return NULL;
    memset(&z, 0, sizeof z);
    if (prepare != NULL && prepare != Py_None) {
        Py_INCREF(prepare);
        z.prepare = prepare;
    }
    for (int i = 0; i < MAX_CHILDREN; i++)
        z.chans[i] = -1;
    z.ctl = ctl;
    z.prefault = getenv("KILN_ZYGOTE_PREFAULT") != NULL;
    z.pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    z.sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (z.pidns < 0 || z.sigfd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    send_hdr(ctl, ZP_READY, 0, 0);
    for (;;) {
        struct pollfd pf[2] = {{ctl, POLLIN, 0}, {z.sigfd, POLLIN, 0}};
        int fds[MAX_FDS], nfds;
        ssize_t n;

        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(71);
        }
        if (pf[1].revents) {
            struct signalfd_siginfo si;
            while (read(z.sigfd, &si, sizeof si) > 0)
                ;
            reap(&z);
        }
        if (!pf[0].revents)
            continue;
        n = recv_msg(ctl, buf, sizeof buf, fds, &nfds);
        if (n <= 0)
            _exit(0); /* the supervisor is gone: so are we, and with us every child */
        if ((size_t)n >= sizeof(struct zp_init) && ((struct zp_hdr *)buf)->kind == ZP_INIT) {
            struct zp_init in;
            memcpy(&in, buf, sizeof in);
            if ((size_t)n != sizeof in + in.bpf_len * sizeof(struct sock_filter))
                _exit(72);
            free(z.bpf);
            z.bpf = malloc(in.bpf_len * sizeof(struct sock_filter) + 1);
            if (z.bpf == NULL)
                _exit(73);
            memcpy(z.bpf, buf + sizeof in, in.bpf_len * sizeof(struct sock_filter));
            z.bpf_len = (unsigned short)in.bpf_len;
            z.landlock_abi = in.landlock_abi;
            z.cap_last = in.cap_last;
        } else if ((size_t)n == sizeof(struct zp_hdr) && ((struct zp_hdr *)buf)->kind == ZP_FORK &&
                   nfds == 1 && z.bpf != NULL) {
            bool in_child;
            PyObject *job = do_fork(&z, fds[0], (((struct zp_hdr *)buf)->a & ZP_FORK_NOW) == 0,
                                    (((struct zp_hdr *)buf)->a & ZP_FORK_FULL) != 0, &in_child);
            if (in_child)
                return job;
        } else {
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
        }
    }
}

static PyMethodDef methods[] = {

    {"serve", serve, METH_VARARGS,
     "serve(ctl_fd, prepare=None): the zygote's loop; returns only in a forked child, with its "
     "job. prepare() is called in each child once it is isolated, before it reports ready."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "kiln_sbx", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_kiln_sbx(void);

PyMODINIT_FUNC PyInit_kiln_sbx(void)
{
    return PyModule_Create(&module);
}
