/* Deferred answers: a handler parks its connection (MHD suspend; no thread is held) and another
 * thread completes it later. A ticker thread makes the three time-driven things happen:
 *   - after HTTP_KEEPALIVE_S without an answer, commit to 200 and start a body of spaces, one
 *     every HTTP_KEEPALIVE_S (the contract's whitespace keep-alive);
 *   - notice a client that went away while its connection is parked (MHD cannot: it does not
 *     poll suspended sockets) by peeking at the socket, and fire the job's cancel;
 *   - nothing else: completion resumes the connection directly from the completing thread.
 * The worker pool runs http_req_defer_run() jobs.
 *
 * A struct http_deferred is shared by the http side (the request) and the completer, and by
 * the streaming response while one exists; it is freed when the last of them lets go. Every
 * field below `lock` is guarded by it. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/internal.h"
#include "util/xmalloc.h"

#define HTTP_KEEPALIVE_S 3
#define HTTP_TICK_MS     200

struct http_deferred {
    pthread_mutex_t lock;
    struct http_server *srv;
    struct http_req *req; /* NULL once the request ended */
    struct MHD_Connection *conn;
    int refs;
    bool done;           /* completed: status/body hold the answer */
    bool completer_gone; /* the completion call happened */
    bool parked;         /* suspended in the access handler */
    bool streaming;      /* committed to 200 + spaces */
    bool reader_parked;  /* suspended inside the streaming reader */
    bool cancelled;
    unsigned status;
    char *body;
    size_t body_len, sent;
    unsigned spaces_due;
    struct timespec started, last_space;
    int efd;
    http_cancel_fn on_cancel;
    void *cancel_arg;
    char req_id[HTTP_REQ_ID_MAX + 1];
    struct http_deferred *next, *prev; /* pending list of the ctl */
};

struct http_job {
    struct http_job *next;
    http_work_fn work;
    void *arg;
    struct http_deferred *d;
};

struct http_defer_ctl {
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* ticker sleep, woken on stop */
    pthread_cond_t job_cond; /* workers */
    bool stopping;
    struct http_deferred *pending;
    pthread_t ticker;
    pthread_t *workers;
    size_t nworkers;
    struct http_job *head, *tail;
    size_t queued, max_queued;
    long npending;
    bool threads_running;
};

static double http_elapsed(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Drop one reference; the caller holds d->lock, which this releases. */
static void http_deferred_unref_locked(struct http_deferred *d)
{
    bool last = --d->refs == 0;

    pthread_mutex_unlock(&d->lock);
    if (!last)
        return;
    pthread_mutex_destroy(&d->lock);
    if (d->efd >= 0)
        close(d->efd);
    free(d->body);
    free(d);
}

static void http_pending_unlink(struct http_defer_ctl *ctl, struct http_deferred *d)
{
    if (ctl == NULL)
        return;
    pthread_mutex_lock(&ctl->lock);
    if (d->prev != NULL || ctl->pending == d) {
        if (d->prev)
            d->prev->next = d->next;
        else
            ctl->pending = d->next;
        if (d->next)
            d->next->prev = d->prev;
        d->next = d->prev = NULL;
        ctl->npending--;
    }
    pthread_mutex_unlock(&ctl->lock);
}

/* Mark d cancelled and fire its cancel cue (once). Caller holds d->lock. */
static void http_deferred_cancel_locked(struct http_deferred *d)
{
    uint64_t one = 1;

    if (d->cancelled)
        return;
    d->cancelled = true;
    if (d->efd >= 0 && write(d->efd, &one, sizeof one) < 0) {
        /* An eventfd counter cannot overflow from one write; nothing to do. */
    }
    if (d->on_cancel != NULL)
        d->on_cancel(d->cancel_arg);
}

/* Resume a parked connection. Caller holds d->lock. */
static void http_deferred_wake_locked(struct http_deferred *d)
{
    if (d->parked || d->reader_parked) {
        d->parked = false;
        d->reader_parked = false;
        MHD_resume_connection(d->conn);
    }
}

struct http_deferred *http_req_defer(struct http_req *req, http_cancel_fn on_cancel,
                                     void *cancel_arg)
{
    struct http_defer_ctl *ctl = req->srv->defer;
    struct http_deferred *d = xcalloc(1, sizeof *d);

    pthread_mutex_init(&d->lock, NULL);
    d->srv = req->srv;
    d->req = req;
    d->conn = req->conn;
    d->refs = 2; /* the request and the completer */
    d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    d->on_cancel = on_cancel;
    d->cancel_arg = cancel_arg;
    snprintf(d->req_id, sizeof d->req_id, "%s", req->id);
    clock_gettime(CLOCK_MONOTONIC, &d->started);
    req->deferred = d;
    pthread_mutex_lock(&ctl->lock);
    d->next = ctl->pending;
    if (d->next)
        d->next->prev = d;
    ctl->pending = d;
    ctl->npending++;
    pthread_mutex_unlock(&ctl->lock);
    return d;
}

/* Complete d with a serialized body (taken over). */
static void http_deferred_finish(struct http_deferred *d, unsigned status, char *body)
{
    pthread_mutex_lock(&d->lock);
    if (d->completer_gone) {
        /* A second completion is a caller bug; keep the first answer. */
        pthread_mutex_unlock(&d->lock);
        free(body);
        return;
    }
    d->completer_gone = true;
    d->done = true;
    d->status = status;
    d->body = body;
    d->body_len = body ? strlen(body) : 0;
    if (d->req != NULL)
        http_deferred_wake_locked(d);
    http_deferred_unref_locked(d);
}

void http_deferred_reply_json(struct http_deferred *d, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

    json_decref(body);
    http_deferred_finish(d, (unsigned)status, s ? s : xstrdup(""));
}

void http_deferred_reply_error(struct http_deferred *d, enum kiln_err err, const char *message)
{
    http_deferred_finish(d, (unsigned)kiln_err_http_status(err),
                         http_error_body(message, kiln_err_name(err), NULL, d->req_id, -1));
}

bool http_deferred_cancelled(struct http_deferred *d)
{
    bool c;

    pthread_mutex_lock(&d->lock);
    c = d->cancelled;
    pthread_mutex_unlock(&d->lock);
    return c;
}

int http_deferred_cancel_fd(struct http_deferred *d)
{
    return d->efd;
}

const char *http_deferred_request_id(struct http_deferred *d)
{
    return d->req_id;
}

/* Queue the final answer of a completed d on its connection. Caller holds d->lock. */
static enum MHD_Result http_deferred_queue_final(struct http_req *req, struct http_deferred *d)
{
    char *body = d->body;
    size_t len = d->body_len;
    struct MHD_Response *r;

    d->body = NULL;
    r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    req->resp = r;
    req->status = d->status;
    req->bytes_out = len;
    return http_req_queue(req);
}

/* The body of a streaming answer: spaces while the job runs, then its JSON. Runs on the poll
 * thread; parks the connection when there is nothing to send yet. */
static ssize_t http_stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_deferred *d = cls;
    ssize_t n = 0;

    (void)pos;
    pthread_mutex_lock(&d->lock);
    if (d->cancelled && !d->done) {
        n = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (d->done) {
        size_t left = d->body_len - d->sent;
        if (left == 0) {
            n = MHD_CONTENT_READER_END_OF_STREAM;
        } else {
            n = (ssize_t)(left < max ? left : max);
            memcpy(buf, d->body + d->sent, (size_t)n);
            d->sent += (size_t)n;
        }
    } else if (d->spaces_due > 0) {
        d->spaces_due--;
        buf[0] = ' ';
        n = 1;
    } else {
        /* Nothing to send: park until the ticker adds a space or the job completes. MHD
         * documents suspending from a content reader as safe. */
        d->reader_parked = true;
        MHD_suspend_connection(d->conn);
        n = 0;
    }
    pthread_mutex_unlock(&d->lock);
    return n;
}

static void http_stream_free(void *cls)
{
    struct http_deferred *d = cls;

    pthread_mutex_lock(&d->lock);
    http_deferred_unref_locked(d);
}

/* Commit to 200 and queue the streaming answer. Caller holds d->lock. */
static enum MHD_Result http_deferred_queue_stream(struct http_req *req, struct http_deferred *d)
{
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 4096, http_stream_reader, d, http_stream_free);

    if (r == NULL)
        return MHD_NO;
    d->refs++;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    req->resp = r;
    req->status = 200;
    return http_req_queue(req);
}

enum MHD_Result http_defer_park(struct http_req *req)
{
    struct http_deferred *d = req->deferred;
    enum MHD_Result ret = MHD_YES;

    pthread_mutex_lock(&d->lock);
    if (d->done) {
        ret = http_deferred_queue_final(req, d);
    } else {
        d->parked = true;
        MHD_suspend_connection(req->conn);
    }
    pthread_mutex_unlock(&d->lock);
    return ret;
}

enum MHD_Result http_defer_resumed(struct http_req *req)
{
    struct http_deferred *d = req->deferred;
    enum MHD_Result ret = MHD_YES;

    pthread_mutex_lock(&d->lock);
    if (req->queued) {
        ret = MHD_YES;
    } else if (d->done) {
        ret = http_deferred_queue_final(req, d);
    } else if (d->cancelled) {
        ret = MHD_NO;
    } else if (d->streaming) {
        ret = http_deferred_queue_stream(req, d);
    } else {
        d->parked = true;
        MHD_suspend_connection(req->conn);
    }
    pthread_mutex_unlock(&d->lock);
    return ret;
}

void http_defer_request_ended(struct http_req *req, bool client_gone)
{
    struct http_deferred *d = req->deferred;

    http_pending_unlink(req->srv->defer, d);
    pthread_mutex_lock(&d->lock);
    d->req = NULL;
    (void)client_gone;
    if (!d->done)
        http_deferred_cancel_locked(d);
    req->deferred = NULL;
    http_deferred_unref_locked(d);
}

long http_defer_pending(struct http_server *srv)
{
    long n;

    pthread_mutex_lock(&srv->defer->lock);
    n = srv->defer->npending;
    pthread_mutex_unlock(&srv->defer->lock);
    return n;
}

/* Whether the peer of a parked connection has closed it (EOF or error on a non-blocking peek;
 * pending bytes, e.g. a pipelined request, mean it is alive). */
static bool http_peer_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char c;
    ssize_t n;

    if (ci == NULL)
        return false;
    n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* One pass of the ticker over the pending list. */
static void http_defer_tick(struct http_defer_ctl *ctl)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&ctl->lock);
    for (struct http_deferred *d = ctl->pending; d != NULL; d = d->next) {
        pthread_mutex_lock(&d->lock);
        if (!d->done && !d->cancelled && (d->parked || d->reader_parked) &&
            http_peer_gone(d->conn)) {
            http_deferred_cancel_locked(d);
            /* Let MHD see the dead socket and end the request. */
            http_deferred_wake_locked(d);
        } else if (!d->done && d->parked && !d->streaming &&
                   http_elapsed(&d->started, &now) >= HTTP_KEEPALIVE_S) {
            d->streaming = true;
            d->spaces_due = 1;
            d->last_space = now;
            http_deferred_wake_locked(d);
        } else if (!d->done && d->reader_parked &&
                   http_elapsed(&d->last_space, &now) >= HTTP_KEEPALIVE_S) {
            d->spaces_due++;
            d->last_space = now;
            http_deferred_wake_locked(d);
        }
        pthread_mutex_unlock(&d->lock);
    }
    pthread_mutex_unlock(&ctl->lock);
}

static void *http_ticker_main(void *arg)
{
    struct http_defer_ctl *ctl = arg;

    pthread_mutex_lock(&ctl->lock);
    while (!ctl->stopping) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += HTTP_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ctl->cond, &ctl->lock, &ts);
        if (ctl->stopping)
            break;
        pthread_mutex_unlock(&ctl->lock);
        http_defer_tick(ctl);
        pthread_mutex_lock(&ctl->lock);
    }
    pthread_mutex_unlock(&ctl->lock);
    return NULL;
}

static void *http_worker_main(void *arg)
{
    struct http_defer_ctl *ctl = arg;

    pthread_mutex_lock(&ctl->lock);
    for (;;) {
        struct http_job *j;

        while (ctl->head == NULL && !ctl->stopping)
            pthread_cond_wait(&ctl->job_cond, &ctl->lock);
        if (ctl->head == NULL)
            break;
        j = ctl->head;
        ctl->head = j->next;
        if (ctl->head == NULL)
            ctl->tail = NULL;
        ctl->queued--;
        pthread_mutex_unlock(&ctl->lock);
        j->work(j->d, j->arg);
        free(j);
        pthread_mutex_lock(&ctl->lock);
    }
    pthread_mutex_unlock(&ctl->lock);
    return NULL;
}

void http_req_defer_run(struct http_req *req, http_work_fn work, void *arg,
                        http_cancel_fn on_cancel)
{
    struct http_defer_ctl *ctl = req->srv->defer;
    struct http_deferred *d = http_req_defer(req, on_cancel, arg);
    struct http_job *j;
    bool full;

    pthread_mutex_lock(&ctl->lock);
    full = ctl->stopping || ctl->queued >= ctl->max_queued + ctl->nworkers;
    if (!full) {
        j = xcalloc(1, sizeof *j);
        j->work = work;
        j->arg = arg;
        j->d = d;
        if (ctl->tail)
            ctl->tail->next = j;
        else
            ctl->head = j;
        ctl->tail = j;
        ctl->queued++;
        pthread_cond_signal(&ctl->job_cond);
    }
    pthread_mutex_unlock(&ctl->lock);
    if (full)
        http_deferred_reply_error(d, KILN_ERR_UNAVAILABLE, "Server busy: too many queued requests");
}

enum kiln_err http_defer_start(struct http_server *srv, struct errbuf *eb)
{
    struct http_defer_ctl *ctl = xcalloc(1, sizeof *ctl);

    pthread_mutex_init(&ctl->lock, NULL);
    pthread_cond_init(&ctl->cond, NULL);
    pthread_cond_init(&ctl->job_cond, NULL);
    ctl->max_queued = (size_t)srv->cfg->max_queued_executions;
    ctl->nworkers = (size_t)srv->cfg->max_concurrent_executions;
    ctl->workers = xcalloc(ctl->nworkers, sizeof *ctl->workers);
    srv->defer = ctl;
    if (pthread_create(&ctl->ticker, NULL, http_ticker_main, ctl) != 0) {
        ctl->nworkers = 0;
        return errbuf_set(eb, KILN_ERR_INTERNAL, "cannot start the deferred-answer thread");
    }
    ctl->threads_running = true;
    for (size_t i = 0; i < ctl->nworkers; i++)
        if (pthread_create(&ctl->workers[i], NULL, http_worker_main, ctl) != 0) {
            ctl->nworkers = i;
            return errbuf_set(eb, KILN_ERR_INTERNAL, "cannot start the worker pool");
        }
    return KILN_OK;
}

void http_defer_stop(struct http_server *srv)
{
    struct http_defer_ctl *ctl = srv->defer;

    if (ctl == NULL)
        return;
    /* Cancel whatever is still pending so that jobs end, and wake parked connections so that
     * MHD can close them before the daemon stops. */
    pthread_mutex_lock(&ctl->lock);
    ctl->stopping = true;
    for (struct http_deferred *d = ctl->pending; d != NULL; d = d->next) {
        pthread_mutex_lock(&d->lock);
        http_deferred_cancel_locked(d);
        http_deferred_wake_locked(d);
        pthread_mutex_unlock(&d->lock);
    }
    pthread_cond_broadcast(&ctl->cond);
    pthread_cond_broadcast(&ctl->job_cond);
    pthread_mutex_unlock(&ctl->lock);
    if (ctl->threads_running) {
        pthread_join(ctl->ticker, NULL);
        for (size_t i = 0; i < ctl->nworkers; i++)
            pthread_join(ctl->workers[i], NULL);
        ctl->threads_running = false;
    }
    /* Jobs never started get their cancel and an answer nobody will read. */
    while (ctl->head != NULL) {
        struct http_job *j = ctl->head;
        ctl->head = j->next;
        http_deferred_reply_error(j->d, KILN_ERR_UNAVAILABLE, "Server shutting down");
        free(j);
    }
    ctl->tail = NULL;
}

void http_defer_free(struct http_server *srv)
{
    struct http_defer_ctl *ctl = srv->defer;

    if (ctl == NULL)
        return;
    http_defer_stop(srv);
    free(ctl->workers);
    pthread_cond_destroy(&ctl->cond);
    pthread_cond_destroy(&ctl->job_cond);
    pthread_mutex_destroy(&ctl->lock);
    free(ctl);
    srv->defer = NULL;
}
