/* One sample of a live CPython, walked from outside: a port of sampler/cpython/unwinder.py's
 * logic, with the same torn-stack rules, reading with process_vm_readv (vectored where the
 * addresses are known) and calling back into Python only for code objects it has not validated
 * in the current epoch. Every offset comes from WConfig. */
#define _GNU_SOURCE
#include "walker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HAS_GIL (1u << 0)
#define ON_CPU (1u << 1)
#define UNKNOWN (1u << 2)
#define HAS_EXCEPTION (1u << 4)
#define MAIN_THREAD (1u << 5)

#define USER_SPACE_END (1ULL << 56)
#define MAX_READ ((size_t)64 << 20)
#define ATTEMPTS 3
#define DESCEND_HOPS 3
#define EXC_CHAIN 8

static int chunk_reserve(WChunk *ch, size_t n);

static inline uint64_t ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline int32_t ld32(const uint8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* ---- reading the target ----------------------------------------------------------------- */

static int errno_code(int e)
{
    if (e == ESRCH)
        return WR_GONE;
    if (e == EPERM || e == EACCES)
        return WR_PERM;
    return WR_READ;
}

static int rd(Walker *w, uint64_t addr, void *buf, size_t n)
{
    if (!(addr > 0 && addr < USER_SPACE_END) || n > MAX_READ) {
        snprintf(w->err, sizeof w->err, "bad remote address %#llx", (unsigned long long)addr);
        return WR_READ;
    }
    if (!n)
        return WR_OK;
    struct iovec local = {buf, n}, remote = {(void *)(uintptr_t)addr, n};
    ssize_t r = process_vm_readv(w->c.pid, &local, 1, &remote, 1, 0);
    w->syscalls++;
    w->iovecs++;
    w->bytes += n;
    if (r == (ssize_t)n)
        return WR_OK;
    if (r < 0) {
        int code = errno_code(errno);
        if (code == WR_READ)
            snprintf(w->err, sizeof w->err, "cannot read %zu bytes at %#llx: %s", n, (unsigned long long)addr,
                     strerror(errno));
        return code;
    }
    snprintf(w->err, sizeof w->err, "short read at %#llx: %zd of %zu bytes", (unsigned long long)addr, r, n);
    return WR_READ;
}

static int rd64(Walker *w, uint64_t addr, uint64_t *out)
{
    return rd(w, addr, out, 8);
}

/* Several ranges in one call; WR_READ unless every byte was read. */
static int rdv(Walker *w, struct iovec *local, struct iovec *remote, int n)
{
    size_t want = 0;
    for (int i = 0; i < n; i++) {
        uint64_t a = (uint64_t)(uintptr_t)remote[i].iov_base;
        if (!(a > 0 && a < USER_SPACE_END) || remote[i].iov_len > MAX_READ)
            return WR_READ;
        want += remote[i].iov_len;
    }
    if (!want)
        return WR_OK;
    ssize_t r = process_vm_readv(w->c.pid, local, (unsigned long)n, remote, (unsigned long)n, 0);
    w->syscalls++;
    w->iovecs += (uint64_t)n;
    w->bytes += want;
    if (r == (ssize_t)want)
        return WR_OK;
    if (r < 0)
        return errno_code(errno);
    return WR_READ;
}

/* A read error where Python turns ReadError into TornStack (process gone stays gone). */
static inline int torn_if_read(int r)
{
    return r == WR_READ ? WR_TORN : r;
}

/* ---- coalesced reads ------------------------------------------------------------------
 * process_vm_readv pins every page of every element it reads, and that is most of its cost:
 * ranges that lie close together (frame objects from one allocator pool, the runtime's fields)
 * are read as one element. A merged element that meets unmapped memory fails whole; its ranges
 * are then reported unread and their readers fall back to reading them alone. */

#define MERGE_GAP 1024
#define MERGE_MAX (32u << 10)

typedef struct {
    uint64_t addr;
    size_t len;
    uint8_t *dst;
    int ok;
} WRange;

static int range_cmp(const void *a, const void *b)
{
    const WRange *x = *(const WRange *const *)a, *y = *(const WRange *const *)b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Returns WR_GONE/WR_PERM when the kernel says so, else WR_OK with each range's ok set. */
static int read_ranges_tail(Walker *w, WRange *rg, uint32_t n, uint32_t ntail);

static int read_ranges(Walker *w, WRange *rg, uint32_t n)
{
    return read_ranges_tail(w, rg, n, 0);
}

/* As read_ranges, but the last `ntail` ranges are read after all the others (later elements of
 * the same call, or a later call), never merged with them: a re-check's closing reads. */
static int read_ranges_tail(Walker *w, WRange *rg, uint32_t n, uint32_t ntail)
{
    static __thread WRange **sorted;
    static __thread uint32_t sorted_cap;
    struct iovec local[1024], remote[1024];
    uint32_t first[1024 + 1];
    if (n > sorted_cap) {
        WRange **p = realloc(sorted, n * sizeof(WRange *));
        if (!p)
            return WR_READ;
        sorted = p;
        sorted_cap = n;
    }
    for (uint32_t i = 0; i < n; i++) {
        rg[i].ok = 0;
        sorted[i] = &rg[i];
    }
    uint32_t boundary = n - ntail;
    qsort(sorted, boundary, sizeof(WRange *), range_cmp);
    qsort(sorted + boundary, ntail, sizeof(WRange *), range_cmp);
    uint32_t i = 0;
    while (i < n) {
        /* one call: up to 1024 merged elements */
        int nb = 0;
        size_t total = 0;
        uint32_t start_i = i;
        while (i < n && nb < 1024) {
            uint64_t lo = sorted[i]->addr, hi = lo + sorted[i]->len;
            first[nb] = i;
            i++;
            while (i < n && i != boundary && sorted[i]->addr <= hi + MERGE_GAP &&
                   (sorted[i]->addr + sorted[i]->len > hi ? sorted[i]->addr + sorted[i]->len : hi) - lo <= MERGE_MAX) {
                if (sorted[i]->addr + sorted[i]->len > hi)
                    hi = sorted[i]->addr + sorted[i]->len;
                i++;
            }
            remote[nb].iov_base = (void *)(uintptr_t)lo;
            remote[nb].iov_len = (size_t)(hi - lo);
            total += (size_t)(hi - lo);
            nb++;
        }
        first[nb] = i;
        if (chunk_reserve(&w->spare, total))
            return WR_READ;
        size_t pos = 0;
        for (int b = 0; b < nb; b++) {
            local[b].iov_base = w->spare.buf + pos;
            local[b].iov_len = remote[b].iov_len;
            pos += remote[b].iov_len;
        }
        ssize_t r = process_vm_readv(w->c.pid, local, (unsigned long)nb, remote, (unsigned long)nb, 0);
        w->syscalls++;
        w->iovecs += (uint64_t)nb;
        w->bytes += total;
        if (r < 0) {
            int code = errno_code(errno);
            if (code != WR_READ)
                return code;
            r = 0;
        }
        size_t left = (size_t)r;
        (void)start_i;
        for (int b = 0; b < nb; b++) {
            if (left < remote[b].iov_len)
                break; /* the kernel never splits an element; nothing after it was read */
            left -= remote[b].iov_len;
            uint64_t base = (uint64_t)(uintptr_t)remote[b].iov_base;
            for (uint32_t k = first[b]; k < first[b + 1]; k++) {
                WRange *e = sorted[k];
                memcpy(e->dst, (uint8_t *)local[b].iov_base + (e->addr - base), e->len);
                e->ok = 1;
            }
        }
    }
    return WR_OK;
}

/* ---- reading ahead ---------------------------------------------------------------------
 * At the start of a sample, everything whose address the previous sample taught us (the
 * interpreter, the thread states, each thread's stack chunk or frame-object chain) is read in
 * one vectored call. The first read of each of those ranges is then served from it; re-reads
 * (the consistency checks) never are. A guess that missed costs nothing but the bytes: the
 * dependent read is made as without it. */

/* Ranges read ahead (and re-checked in the batch) per sample: enough for every thread of a
 * 4,096-thread target (its state, stack and a few frames); read_ranges splits the calls at
 * IOV_MAX. At 1,000 ranges, a 1,000-thread target had its stacks left out and read them one call
 * per thread. */
#define MAX_AHEAD 32768

static void batch_reset(WBatch *b)
{
    b->n = 0;
    b->len = 0;
}

/* Ranges past MAX_AHEAD, too long, or that no memory can be had for are left out: their
 * readers read them alone. */
static void batch_add(WBatch *b, uint64_t addr, size_t len)
{
    if (!addr || !len || b->n >= MAX_AHEAD || len > MAX_READ)
        return;
    if (b->n == b->cap && walker_grow((void **)&b->e, &b->cap, sizeof(WPre), b->n + 1, 64))
        return;
    if (b->len + len > b->buf_cap) {
        size_t cap = b->buf_cap ? b->buf_cap : 65536;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *nb = realloc(b->buf, cap);
        if (!nb)
            return;
        b->buf = nb;
        b->buf_cap = cap;
    }
    WPre *e = &b->e[b->n++];
    e->addr = addr;
    e->off = b->len;
    e->len = len;
    e->got = 0;
    b->len += len;
}

/* Reads the batch (its last `ntail` ranges after all the others) and indexes what arrived by
 * address. Any failure empties it: the real reads will tell what happened. */
static void batch_fetch(Walker *w, WBatch *b, uint32_t ntail)
{
    static __thread WRange *rg;
    static __thread uint32_t rg_cap;
    if (b->n > rg_cap) {
        WRange *p = realloc(rg, b->n * sizeof(WRange));
        if (!p) {
            b->n = 0;
            return;
        }
        rg = p;
        rg_cap = b->n;
    }
    for (uint32_t i = 0; i < b->n; i++) {
        rg[i].addr = b->e[i].addr;
        rg[i].len = b->e[i].len;
        rg[i].dst = b->buf + b->e[i].off;
    }
    if (b->n && read_ranges_tail(w, rg, b->n, ntail) != WR_OK) {
        b->n = 0;
        return;
    }
    for (uint32_t i = 0; i < b->n; i++)
        b->e[i].got = rg[i].ok ? b->e[i].len : 0;
    uint32_t cap = 64;
    while (cap < b->n * 2)
        cap *= 2;
    if (cap > b->index_cap) {
        int32_t *idx = realloc(b->index, cap * sizeof(int32_t));
        if (!idx) {
            b->n = 0;
            return;
        }
        b->index = idx;
        b->index_cap = cap;
    }
    memset(b->index, 0, b->index_cap * sizeof(int32_t));
    uint32_t mask = b->index_cap - 1;
    for (uint32_t i = 0; i < b->n; i++) {
        if (!b->e[i].got)
            continue;
        uint32_t j = (uint32_t)((b->e[i].addr * 0x9e3779b97f4a7c15ULL) >> 40) & mask;
        while (b->index[j])
            j = (j + 1) & mask;
        b->index[j] = (int32_t)i + 1;
    }
}

/* The bytes of a fetched range that starts at `addr` and arrived with at least `n` bytes. */
static const uint8_t *batch_find(const WBatch *b, uint64_t addr, size_t n)
{
    if (!b->n || !b->index_cap)
        return NULL;
    uint32_t mask = b->index_cap - 1;
    uint32_t j = (uint32_t)((addr * 0x9e3779b97f4a7c15ULL) >> 40) & mask;
    while (b->index[j]) {
        const WPre *e = &b->e[b->index[j] - 1];
        if (e->addr == addr && e->got >= n)
            return b->buf + e->off;
        j = (j + 1) & mask;
    }
    return NULL;
}

void walker_batch_free(WBatch *b)
{
    free(b->e);
    free(b->buf);
    free(b->index);
    memset(b, 0, sizeof *b);
}

/* A first read: served from the read-ahead when it covers it, else read now. */
static int rdp(Walker *w, uint64_t addr, void *buf, size_t n)
{
    if (w->pf_allowed) {
        const uint8_t *src = batch_find(&w->pre, addr, n);
        if (src) {
            memcpy(buf, src, n);
            return WR_OK;
        }
    }
    return rd(w, addr, buf, n);
}

/* ---- the batched re-check ----------------------------------------------------------------
 * With all threads on 3.11+, right after the read-ahead a second vectored call re-reads every
 * thread's read-ahead stack chunk and the frames its last walk read outside the copies, and last
 * (after all of those) each thread's top frame pointer: exactly the ranges each thread's
 * re-check (recheck_chunks) reads, so a thread whose copy came wholly from the read-ahead takes
 * its re-check from here instead of a call of its own (200 threads: ~2 calls, not ~200). It is
 * read after the read-ahead, so for such a thread it is a re-check made after the copy, as the
 * torn-stack rules want. Any thread that made a read of its own, misses a range here, or is
 * retried, re-checks alone as before. */

/* Fills every local buffer from the batched re-check; 0 (nothing copied) unless all are there. */
static int post_serve(Walker *w, struct iovec *local, struct iovec *remote, int n)
{
    if (!w->post_usable)
        return 0;
    for (int i = 0; i < n; i++)
        if (!batch_find(&w->post, (uint64_t)(uintptr_t)remote[i].iov_base, remote[i].iov_len))
            return 0;
    for (int i = 0; i < n; i++)
        memcpy(local[i].iov_base, batch_find(&w->post, (uint64_t)(uintptr_t)remote[i].iov_base, remote[i].iov_len),
               remote[i].iov_len);
    return 1;
}

/* The record of what the previous sample saw of thread `tstate` (created if new). */
static WThread *thread_rec(Walker *w, uint64_t tstate)
{
    if (w->thread_cursor < w->nthreads && w->threads[w->thread_cursor].tstate == tstate)
        return &w->threads[w->thread_cursor++];
    for (uint32_t i = 0; i < w->nthreads; i++)
        if (w->threads[i].tstate == tstate) {
            w->thread_cursor = i + 1;
            return &w->threads[i];
        }
    if (w->nthreads == w->threads_cap) {
        uint32_t cap = w->threads_cap ? w->threads_cap * 2 : 8;
        if (cap > (uint32_t)w->c.max_threads * 2 + 8)
            return NULL;
        WThread *t = realloc(w->threads, cap * sizeof(WThread));
        if (!t)
            return NULL;
        w->threads = t;
        w->threads_cap = cap;
    }
    WThread *t = &w->threads[w->nthreads++];
    memset(t, 0, sizeof *t);
    t->tstate = tstate;
    return t;
}

#define SPEC_FRAMES 256
#define CHUNK_SLACK 512

/* The bytes of `t`'s stack chunk to read ahead: what its last walk used, and room to grow. */
static size_t chunk_guess(const WConfig *c, const WThread *t)
{
    size_t len = t->chunk_len + CHUNK_SLACK;
    return len > (size_t)c->max_chunk_bytes ? (size_t)c->max_chunk_bytes : len;
}

/* What plan_ahead adds for each thread the previous sample met, one kind at a time: each kind is
 * a pass of its own because the order of the ranges in a batch matters (see below). */
enum { AHEAD_STATE, AHEAD_STACK, RECHECK_DATA, RECHECK_TOP };

static void add_per_thread(Walker *w, int kind)
{
    const WConfig *c = &w->c;
    w->thread_cursor = 0;
    for (uint32_t i = 0; i < w->norder; i++) {
        WThread *t = thread_rec(w, w->order[i]);
        if (!t)
            break;
        int has_chunk = t->chunk && t->chunk_len;
        switch (kind) {
        case AHEAD_STATE:
            batch_add(&w->pre, t->tstate, (size_t)c->tstate_size);
            if (c->t_native_thread_id < 0 && c->tid_offset >= 0 && t->pthread)
                batch_add(&w->pre, t->pthread + (uint64_t)c->tid_offset, 4);
            /* Not the 3.11/3.12 cframe's current frame: the cframe lives on the C stack, and the
             * one a nested call (a sort key called from C) used stays there after it returns,
             * holding a stale but plausible frame pointer; read ahead, that stale pointer sent
             * retries down the same torn path and a run could fail a quarter of its samples. */
            break;
        case AHEAD_STACK:
            if (c->frame_is_object) {
                for (uint32_t k = 0; k < t->nf; k++)
                    batch_add(&w->pre, t->frames[k], (size_t)c->frame_read);
            } else if (has_chunk) {
                batch_add(&w->pre, t->chunk, chunk_guess(c, t));
            }
            break;
        case RECHECK_DATA:
            if (!has_chunk)
                break;
            batch_add(&w->post, t->chunk, chunk_guess(c, t));
            for (uint32_t k = 0; k < t->nout; k++)
                batch_add(&w->post, t->out[k], (size_t)c->frame_read);
            break;
        case RECHECK_TOP:
            if (!has_chunk)
                break;
            if (c->root_is_cframe) {
                batch_add(&w->post, t->tstate + (uint64_t)c->t_cframe, 8);
                if (t->cframe)
                    batch_add(&w->post, t->cframe + (uint64_t)c->cf_current_frame, 8);
            } else {
                batch_add(&w->post, t->tstate + (uint64_t)c->t_root, 8);
            }
            break;
        }
    }
}

static void plan_ahead(Walker *w)
{
    const WConfig *c = &w->c;
    batch_reset(&w->pre);
    batch_add(&w->pre, c->runtime_addr + (uint64_t)c->interpreters_head, 8);
    if (c->gil_kind == 0) {
        int64_t lo = c->rt_gil_holder < c->rt_gil_locked ? c->rt_gil_holder : c->rt_gil_locked;
        int64_t hi = (c->rt_gil_holder > c->rt_gil_locked ? c->rt_gil_holder : c->rt_gil_locked) + 8;
        batch_add(&w->pre, c->runtime_addr + (uint64_t)lo, (size_t)(hi - lo));
    }
    if (w->cached_interp)
        batch_add(&w->pre, w->cached_interp + (uint64_t)c->interp_lo, (size_t)(c->interp_hi - c->interp_lo));
    add_per_thread(w, AHEAD_STATE);
    /* Stacks last: a guess that runs into unmapped memory ends the call there. */
    add_per_thread(w, AHEAD_STACK);
    batch_fetch(w, &w->pre, 0);
    batch_reset(&w->post);
    if (c->all_threads && !c->frame_is_object && c->mode != 3 && w->norder > 1) {
        /* the batched re-check (see post_serve): data first, then every top pointer */
        add_per_thread(w, RECHECK_DATA);
        uint32_t data = w->post.n;
        add_per_thread(w, RECHECK_TOP);
        if (w->post.n > data)
            batch_fetch(w, &w->post, w->post.n - data);
        else
            w->post.n = 0;
    }
    w->thread_cursor = 0;
    w->norder = 0;
    w->pf_allowed = 1;
}

static void order_add(Walker *w, uint64_t tstate)
{
    if (w->norder == w->order_cap &&
        walker_grow((void **)&w->order, &w->order_cap, sizeof(uint64_t), w->norder + 1, 8))
        return;
    w->order[w->norder++] = tstate;
}

/* Records of threads the last samples did not meet are dropped. */
static void threads_prune(Walker *w)
{
    if (w->nthreads <= w->norder + 8)
        return;
    uint32_t k = 0;
    for (uint32_t i = 0; i < w->nthreads; i++) {
        if (w->threads[i].seen == w->sample_no) {
            w->threads[k++] = w->threads[i];
        } else {
            free(w->threads[i].frames);
        }
    }
    w->nthreads = k;
}

/* ---- Python callbacks ----------------------------------------------------------------- */

static int gil_enter(Walker *w)
{
    if (w->saved) {
        PyEval_RestoreThread(w->saved);
        w->saved = NULL;
        return 1;
    }
    return 0;
}

static void gil_leave(Walker *w, int entered)
{
    if (entered)
        w->saved = PyEval_SaveThread();
}

/* Python's verdict on a code address (native.py's _code_kind): */
enum {
    CODE_NONE = 0,       /* not a code object: the walk is torn */
    CODE_PY = 1,         /* a Python frame's code */
    CODE_SHIM = 2,       /* a shim's code: its frame is skipped */
    CODE_GONE = 3,       /* the target is gone (never remembered) */
    CODE_ENTRY_SHIM = 4, /* 3.12's entry frame, caught before its owner was set: skipped, and a
                          * <native> where C called into Python (--native) */
};

/* A CODE_* kind (CODE_GONE as -WR_GONE), or -WR_PYERR; *cb: how its instruction bytes are
 * found (Python's answer with --opcodes or --native, else nothing). */
static int code_kind(Walker *w, uint64_t addr, WCodeBytes *cb)
{
    WCodes *t = &w->codes;
    uint32_t mask = t->cap - 1;
    uint64_t h = addr * 0x9e3779b97f4a7c15ULL;
    uint32_t j = (uint32_t)(h >> 40) & mask;
    while (t->addr[j]) {
        if (t->addr[j] == addr) {
            cb->base = t->base[j];
            cb->back = t->back[j];
            cb->units = t->units[j];
            return t->kind[j];
        }
        j = (j + 1) & mask;
    }
    int entered = gil_enter(w);
    PyObject *res = PyObject_CallFunction(w->code_cb, "K", (unsigned long long)addr);
    long kind = -1;
    unsigned long long base = 0;
    uint8_t *back = NULL;
    Py_ssize_t units = 0;
    if (res && PyTuple_Check(res)) {
        /* (kind, first instruction byte's address, bytes: units back to each unit's instruction) */
        const char *data = NULL;
        if (!PyArg_ParseTuple(res, "lKz#", &kind, &base, &data, &units) || units > UINT32_MAX) {
            kind = -1;
        } else if (data && units) {
            if ((back = malloc((size_t)units)))
                memcpy(back, data, (size_t)units);
            else
                units = 0; /* unknown: each unit its own instruction */
        }
    } else if (res) {
        kind = PyLong_AsLong(res);
    }
    Py_XDECREF(res);
    gil_leave(w, entered);
    if (kind < 0 || kind > CODE_ENTRY_SHIM || kind == CODE_GONE || kind == CODE_NONE) {
        free(back);
        if (kind == CODE_GONE)
            return -WR_GONE;
        /* not remembered: a later sample may find a code object there */
        return kind == CODE_NONE ? CODE_NONE : -WR_PYERR;
    }
    if (t->n * 2 >= t->cap)
        walker_codes_clear(w); /* bounded: start over, Python's cache still answers */
    j = (uint32_t)(h >> 40) & mask;
    while (t->addr[j])
        j = (j + 1) & mask;
    t->addr[j] = addr;
    t->kind[j] = (uint8_t)kind;
    t->base[j] = cb->base = base;
    t->back[j] = back;
    t->units[j] = (uint32_t)(back ? units : 0);
    cb->back = back;
    cb->units = t->units[j];
    t->n++;
    return (int)kind;
}

/* The byte offset of the instruction code unit `offset` belongs to (CodeCache.instruction_start):
 * itself, except where `cb` says how far back its instruction starts. */
static int64_t instruction_start(const WCodeBytes *cb, int64_t offset)
{
    uint64_t unit = (uint64_t)offset >> 1;
    if (!cb->back || unit >= cb->units)
        return offset;
    return 2 * (int64_t)(unit - cb->back[unit]);
}

static int epoch_event(Walker *w, int kind)
{
    int entered = gil_enter(w);
    PyObject *res = PyObject_CallFunction(w->epoch_cb, "i", kind);
    Py_XDECREF(res);
    gil_leave(w, entered);
    return res ? WR_OK : WR_PYERR;
}

/* ---- thread CPU state ----------------------------------------------------------------- */

/* Threads are met in the same order every sample and entries are added in that order, so the
 * entry after the last one found is tried first: a search over 1,000 entries per thread per
 * sample was quadratic. */
static WCpu *cpu_entry(Walker *w, int tid)
{
    int h = w->cpu_hint;
    if (h < w->ncpu && w->cpu[h].tid == tid) {
        w->cpu_hint = h + 1;
        return &w->cpu[h];
    }
    for (int i = 0; i < w->ncpu; i++)
        if (w->cpu[i].tid == tid) {
            w->cpu_hint = i + 1;
            return &w->cpu[i];
        }
    return NULL;
}

static void cpu_forget(Walker *w, WCpu *e)
{
    if (e->fd >= 0)
        close(e->fd);
    *e = w->cpu[--w->ncpu];
}

void walker_cpu_close(Walker *w)
{
    while (w->ncpu)
        cpu_forget(w, &w->cpu[0]);
}

/* Descriptors of threads not asked about for a second are closed (the thread is gone, or no
 * longer sampled). */
static void cpu_prune(Walker *w, int64_t now)
{
    if (now - w->cpu_pruned_ns < 1000000000LL)
        return;
    w->cpu_pruned_ns = now;
    for (int i = w->ncpu - 1; i >= 0; i--)
        if (now - w->cpu[i].seen_ns > 1000000000LL)
            cpu_forget(w, &w->cpu[i]);
}

static unsigned read_cpu_fd(int fd)
{
    char buf[512];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    if (n <= 0)
        return 0xffffffffu;
    /* The command name may hold spaces and parentheses: the state follows the last ')'. */
    ssize_t close_at = -1;
    for (ssize_t i = n - 1; i >= 0; i--)
        if (buf[i] == ')') {
            close_at = i;
            break;
        }
    if (close_at < 0 || close_at + 2 >= n)
        return UNKNOWN;
    return buf[close_at + 2] == 'R' ? ON_CPU : 0;
}

/* Outside cpu mode, at most CPU_READS_PER_SAMPLE /proc reads per sample (see cpu_budget). */
#define CPU_READS_PER_SAMPLE 4

/* Sets this sample's /proc budget: which cached states may be refreshed. Outside cpu mode the
 * state only feeds the on-CPU marker and shares (Tachyon leaves it out entirely), while a pread
 * costs ~4.5 us: with 200 threads reading every thread each sample was most of a sample's cost.
 * So only the CPU_READS_PER_SAMPLE oldest cached states may be refreshed per sample (round robin
 * in effect: a refreshed state becomes the newest), and only if older than cpu_reuse_ns; with at
 * most that many threads every one is refreshed as before. A thread seen for the first time is
 * always read. In cpu mode the state decides whether a thread is sampled: all are read. */
static void cpu_budget(Walker *w)
{
    w->cpu_reads_left = CPU_READS_PER_SAMPLE;
    w->cpu_cutoff_ns = INT64_MAX;
    if (w->c.mode == 1 || w->ncpu <= CPU_READS_PER_SAMPLE)
        return;
    /* the CPU_READS_PER_SAMPLE-th smallest read time: entries read no later may be refreshed */
    int64_t least[CPU_READS_PER_SAMPLE];
    int k = 0;
    for (int i = 0; i < w->ncpu; i++) {
        int64_t t = w->cpu[i].read_ns;
        if (k < CPU_READS_PER_SAMPLE) {
            int j = k++;
            while (j > 0 && least[j - 1] > t) {
                least[j] = least[j - 1];
                j--;
            }
            least[j] = t;
        } else if (t < least[k - 1]) {
            int j = k - 1;
            while (j > 0 && least[j - 1] > t) {
                least[j] = least[j - 1];
                j--;
            }
            least[j] = t;
        }
    }
    w->cpu_cutoff_ns = least[k - 1];
}

/* ON_CPU, 0, or UNKNOWN for thread `tid` (/proc/PID/task/TID/stat field 3 == 'R'). In cpu mode
 * the state decides whether the thread is sampled, so it is read every time; in the other modes
 * it only marks the sample, and a cached value is reused unless it is older than cpu_reuse_ns
 * (1 ms) and the sample's budget (cpu_budget) allows a refresh. That is an approximation for
 * those markers: a thread that started or stopped running since its last read keeps its old
 * state (for at most 1 ms with up to CPU_READS_PER_SAMPLE threads, about threads / 4 samples
 * beyond). */
static unsigned cpu_status(Walker *w, int64_t tid, int64_t now)
{
    if (tid <= 0 || tid > 0x7fffffff)
        return UNKNOWN;
    WCpu *e = cpu_entry(w, (int)tid);
    if (e) {
        e->seen_ns = now;
        if (w->c.mode != 1) {
            if (now - e->read_ns < w->c.cpu_reuse_ns || e->read_ns > w->cpu_cutoff_ns || w->cpu_reads_left <= 0)
                return (unsigned)e->state;
            w->cpu_reads_left--;
        }
    } else {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task/%d/stat", w->c.pid, (int)tid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return UNKNOWN;
        if (w->ncpu == w->cpu_cap) {
            int cap = w->cpu_cap ? w->cpu_cap * 2 : 16;
            if (cap > w->c.max_threads * 2 + 16) {
                unsigned s = read_cpu_fd(fd);
                close(fd);
                return s == 0xffffffffu ? UNKNOWN : s;
            }
            WCpu *n = realloc(w->cpu, (size_t)cap * sizeof(WCpu));
            if (!n) {
                close(fd);
                return UNKNOWN;
            }
            w->cpu = n;
            w->cpu_cap = cap;
        }
        e = &w->cpu[w->ncpu++];
        e->tid = (int)tid;
        e->fd = fd;
        e->seen_ns = now;
    }
    unsigned s = read_cpu_fd(e->fd);
    if (s == 0xffffffffu) {
        cpu_forget(w, e);
        return UNKNOWN;
    }
    e->state = (int)s;
    e->read_ns = now;
    return s;
}

/* ---- thread state facts --------------------------------------------------------------- */

static int read_tstate(Walker *w, uint64_t tstate, uint64_t interp, uint8_t *buf, int first)
{
    int r = first ? rdp(w, tstate, buf, (size_t)w->c.tstate_size) : rd(w, tstate, buf, (size_t)w->c.tstate_size);
    if (r)
        return r;
    if (ld64(buf + w->c.t_interp) != interp) {
        snprintf(w->err, sizeof w->err, "thread state %#llx does not belong to interpreter %#llx",
                 (unsigned long long)tstate, (unsigned long long)interp);
        return WR_READ;
    }
    return WR_OK;
}

static int is_main(Walker *w, uint64_t tstate, const uint8_t *tbuf, uint64_t main_tstate)
{
    if (main_tstate)
        return tstate == main_tstate;
    if (w->c.main_pthread)
        return ld64(tbuf + w->c.t_thread_id) == w->c.main_pthread;
    return 0;
}

static int has_exception(Walker *w, uint64_t tstate, const uint8_t *tbuf, int *out)
{
    const WConfig *c = &w->c;
    *out = 0;
    if (c->t_exc_current >= 0) {
        uint64_t v = ld64(tbuf + c->t_exc_current);
        if (v && v != c->none_addr) {
            *out = 1;
            return WR_OK;
        }
    }
    uint64_t item;
    if (c->t_exc_info >= 0)
        item = ld64(tbuf + c->t_exc_info);
    else if (c->t_exc_state >= 0)
        item = tstate + (uint64_t)c->t_exc_state;
    else
        return WR_OK;
    uint8_t ib[64];
    size_t isz = (size_t)c->err_item_size;
    if (isz > sizeof ib)
        return WR_READ;
    /* The innermost item may belong to a generator that handles nothing; look outwards. */
    for (int i = 0; i < EXC_CHAIN; i++) {
        if (!item)
            return WR_OK;
        const uint8_t *p;
        uint64_t rel = item - tstate;
        if (item >= tstate && rel + isz <= (uint64_t)c->tstate_size) {
            p = tbuf + rel;
        } else {
            int r = rd(w, item, ib, isz);
            if (r)
                return r;
            p = ib;
        }
        uint64_t v = ld64(p + c->err_value);
        if (v && v != c->none_addr) {
            *out = 1;
            return WR_OK;
        }
        item = ld64(p + c->err_previous);
    }
    return WR_OK;
}

static int64_t infer_tid_offset(Walker *w, int64_t wrong, int *err)
{
    int entered = gil_enter(w);
    PyObject *res = PyObject_CallFunction(w->tid_cb, "L", (long long)wrong);
    long long off = -1;
    if (res) {
        off = PyLong_AsLongLong(res);
        Py_DECREF(res);
        if (off == -1 && PyErr_Occurred())
            res = NULL;
    }
    gil_leave(w, entered);
    if (!res)
        *err = WR_PYERR;
    return off;
}

/* The kernel TID (0 when unknown); on 3.9/3.10 read from glibc's struct pthread. */
static int native_tid(Walker *w, const uint8_t *tbuf, int64_t *out)
{
    const WConfig *c = &w->c;
    *out = 0;
    if (c->t_native_thread_id >= 0) {
        *out = (int64_t)ld64(tbuf + c->t_native_thread_id);
        return WR_OK;
    }
    uint64_t pthread = ld64(tbuf + c->t_thread_id);
    int err = WR_OK;
    for (int i = 0; i < 2; i++) {
        if (w->c.tid_offset == -2) {
            w->c.tid_offset = infer_tid_offset(w, -1, &err);
            if (err)
                return err;
        }
        if (w->c.tid_offset < 0 || !pthread)
            return WR_OK;
        int32_t tid;
        int r = rdp(w, pthread + (uint64_t)w->c.tid_offset, &tid, 4);
        if (r == WR_GONE || r == WR_PERM)
            return r;
        if (r)
            return WR_OK;
        if (tid != c->pid || !c->main_pthread || pthread == c->main_pthread) {
            *out = tid;
            return WR_OK;
        }
        /* Only the main thread's TID is the PID: the offset, inferred while the other threads
         * happened to agree, is some other field that held the PID. Infer again without it. */
        w->c.tid_offset = infer_tid_offset(w, w->c.tid_offset, &err);
        if (err)
            return err;
    }
    return WR_OK;
}

/* ---- frames: common ------------------------------------------------------------------ */

static int top_frame(Walker *w, uint64_t tstate, const uint8_t *tbuf, int fresh, uint64_t *out)
{
    const WConfig *c = &w->c;
    int r;
    if (c->root_is_cframe) {
        uint64_t cf;
        if (fresh) {
            if ((r = rd64(w, tstate + (uint64_t)c->t_cframe, &cf)))
                return r;
        } else {
            cf = ld64(tbuf + c->t_cframe);
        }
        if (!cf) {
            *out = 0;
            return WR_OK;
        }
        int64_t rel = (int64_t)(cf - tstate) + c->cf_current_frame;
        if (!fresh && rel >= 0 && rel + 8 <= c->tstate_size) {
            *out = ld64(tbuf + rel);
            return WR_OK;
        }
        if (!fresh)
            return rdp(w, cf + (uint64_t)c->cf_current_frame, out, 8);
        return rd64(w, cf + (uint64_t)c->cf_current_frame, out);
    }
    if (fresh)
        return rd64(w, tstate + (uint64_t)c->t_root, out);
    *out = ld64(tbuf + c->t_root);
    return WR_OK;
}

/* Whether the current frame `now` lies in the newest copied chunk below the copy's top frame:
 * the top returned (a callback that C calls in a loop returns between two calls) into a frame
 * that was suspended, hence unchanged, while the copy was taken; the top must lie in that chunk
 * too (a generator's frame or a C-stack shim has no "below" there; stack_chunks.returned_into). */
static int returned_into(const Walker *w, uint64_t now, uint64_t top)
{
    if (!w->nchunks || !w->chunks[0].addr)
        return 0;
    uint64_t chunk = w->chunks[0].addr;
    /* the chunk's own mapping: at least chunk_min_bytes, more when its copy was longer */
    uint64_t span = w->chunks[0].len > (size_t)w->c.chunk_min_bytes ? w->chunks[0].len : (uint64_t)w->c.chunk_min_bytes;
    return chunk <= now && now < top && top < chunk + span;
}

/* Whether `ancestor` is among the first hops callers of `frame` (a leaf that called on). */
static int descends_from(Walker *w, uint64_t frame, uint64_t ancestor)
{
    for (int i = 0; i < DESCEND_HOPS; i++) {
        if (frame < 4096)
            return 0;
        if (rd64(w, frame + (uint64_t)w->c.f_previous, &frame))
            return 0; /* a C-stack entry frame caught half-built: not a live callee */
        if (frame == ancestor)
            return 1;
    }
    return 0;
}

static void starts_clear(Walker *w)
{
    WStarts *s = &w->starts;
    s->n = 0;
    if (++s->current == 0) {
        memset(s->stamp, 0, s->cap * sizeof(uint32_t));
        s->current = 1;
    }
}

static uint32_t starts_slot(WStarts *s, uint64_t addr, int *found)
{
    uint32_t mask = s->cap - 1;
    uint32_t j = (uint32_t)((addr * 0x9e3779b97f4a7c15ULL) >> 40) & mask;
    while (s->stamp[j] == s->current) {
        if (s->addr[j] == addr) {
            *found = 1;
            return j;
        }
        j = (j + 1) & mask;
    }
    *found = 0;
    return j;
}

static int starts_get(Walker *w, uint64_t addr, uint32_t *value)
{
    int found;
    uint32_t j = starts_slot(&w->starts, addr, &found);
    if (found)
        *value = w->starts.value[j];
    return found;
}

static int push_frame(Walker *w, uint64_t code, int64_t offset)
{
    w->opaddr[w->nframes] = 0;
    WFrame *f = &w->frames[w->nframes++];
    f->code = code;
    f->offset = offset;
    f->opcode = -1;
    f->spare = 0;
    return WR_OK;
}

/* A Python frame whose instruction byte is at `opaddr` (0: none; its opcode stays -1). */
static void push_code(Walker *w, uint64_t code, int64_t offset, uint64_t opaddr)
{
    uint32_t i = w->nframes;
    push_frame(w, code, offset);
    w->opaddr[i] = opaddr;
}

/* --native: a frame where C called into the Python frames pushed so far becomes one <native>
 * (stack_chunks._native_below): under a Python frame, never twice in a row. */
static void native_below(Walker *w)
{
    if (w->nframes && !(w->frames[w->nframes - 1].code == 0 && w->frames[w->nframes - 1].offset == PSEUDO_NATIVE))
        push_frame(w, 0, PSEUDO_NATIVE);
}

/* ---- frames: 3.11+ stack chunks ------------------------------------------------------- */

static int chunk_reserve(WChunk *ch, size_t n)
{
    if (n <= ch->cap)
        return 0;
    size_t cap = ch->cap ? ch->cap : 4096;
    while (cap < n)
        cap *= 2;
    uint8_t *b = realloc(ch->buf, cap);
    if (!b)
        return -1;
    ch->buf = b;
    ch->cap = cap;
    return 0;
}

/* The used part of each stack chunk, newest first. */
static int read_chunks(Walker *w, uint64_t tstate, const uint8_t *tbuf, int fresh)
{
    const WConfig *c = &w->c;
    int r;
    if (fresh) {
        if ((r = rd(w, tstate, w->tbuf2, (size_t)c->tstate_size)))
            return r;
        tbuf = w->tbuf2;
    }
    uint64_t chunk = ld64(tbuf + c->t_datastack_chunk);
    uint64_t top = ld64(tbuf + c->t_datastack_top);
    w->nchunks = 1;
    WChunk *ch = &w->chunks[0];
    ch->addr = 0;
    ch->len = 0;
    if (!(chunk && chunk < top && top <= chunk + (uint64_t)c->max_chunk_bytes))
        return WR_OK;
    size_t len = (size_t)(top - chunk);
    if (chunk_reserve(ch, len))
        return WR_READ;
    if ((r = fresh ? rd(w, chunk, ch->buf, len) : rdp(w, chunk, ch->buf, len)))
        return r;
    ch->addr = chunk;
    ch->len = len;
    uint64_t previous = len >= (size_t)c->chunk_data ? ld64(ch->buf + c->chunk_previous) : 0;
    while (previous && w->nchunks < c->max_chunks) {
        WChunk *o = &w->chunks[w->nchunks];
        /* An older chunk is full (a newer one was pushed): read the smallest chunk size whole,
         * and again only for a bigger chunk. */
        if (chunk_reserve(o, (size_t)c->chunk_min_bytes))
            return WR_READ;
        r = fresh ? rd(w, previous, o->buf, (size_t)c->chunk_min_bytes)
                  : rdp(w, previous, o->buf, (size_t)c->chunk_min_bytes);
        if (r == WR_GONE || r == WR_PERM)
            return r;
        if (r)
            break; /* frames there are read one by one, as any frame outside the copies */
        uint64_t slots = ld64(o->buf + c->chunk_top);
        if (slots > (uint64_t)c->max_chunk_bytes / 8)
            break;
        uint64_t used = (uint64_t)c->chunk_data + 8 * slots;
        if (!((uint64_t)c->chunk_data < used && used <= (uint64_t)c->max_chunk_bytes))
            break;
        if (used > (uint64_t)c->chunk_min_bytes) {
            if (chunk_reserve(o, used))
                return WR_READ;
            r = rd(w, previous, o->buf, used);
            if (r == WR_GONE || r == WR_PERM)
                return r;
            if (r)
                break;
        }
        o->addr = previous;
        o->len = used;
        w->nchunks++;
        previous = ld64(o->buf + c->chunk_previous);
    }
    return WR_OK;
}

/* Whether the copied frames below the live one read the same again (see unwinder.py's
 * _suspended_unchanged): one vectored read of every chunk's suspended part, and of the top
 * frame's header when it is still live, whose code and caller are fixed while it lives. */
static int suspended_unchanged(Walker *w, uint64_t top, uint64_t now, int *same)
{
    const WConfig *c = &w->c;
    struct iovec local[64 + 1], remote[64 + 1];
    size_t lens[64 + 1], heads[64 + 1];
    int idx[64 + 1];
    int n = 0;
    size_t total = 0;
    *same = 1;
    for (int i = 0; i < w->nchunks && n < 64; i++) {
        WChunk *ch = &w->chunks[i];
        size_t length = ch->len, head = 0;
        if (i == 0) {
            uint64_t edge = (ch->addr <= now && now < top) ? now : top;
            if (!(ch->addr <= edge && edge <= ch->addr + ch->len))
                continue; /* the live frame is elsewhere (a generator, a C-stack shim) */
            length = (size_t)(edge - ch->addr);
            if (length + (size_t)c->frame_read <= ch->len)
                head = (size_t)c->frame_read;
        }
        if (length + head == 0)
            continue;
        lens[n] = length;
        heads[n] = head;
        idx[n] = i;
        total += length + head;
        n++;
    }
    if (!n)
        return WR_OK;
    if (chunk_reserve(&w->spare, total))
        return WR_READ;
    size_t pos = 0;
    for (int k = 0; k < n; k++) {
        local[k].iov_base = w->spare.buf + pos;
        local[k].iov_len = lens[k] + heads[k];
        remote[k].iov_base = (void *)(uintptr_t)w->chunks[idx[k]].addr;
        remote[k].iov_len = lens[k] + heads[k];
        pos += lens[k] + heads[k];
    }
    int r = rdv(w, local, remote, n);
    if (r == WR_GONE || r == WR_PERM)
        return r;
    if (r) {
        *same = 0;
        return WR_OK;
    }
    pos = 0;
    for (int k = 0; k < n; k++) {
        const uint8_t *fresh = w->spare.buf + pos;
        const uint8_t *old = w->chunks[idx[k]].buf;
        size_t length = lens[k];
        if (memcmp(fresh, old, length) != 0) {
            *same = 0;
            return WR_OK;
        }
        if (heads[k]) {
            if (memcmp(fresh + length + c->f_previous, old + length + c->f_previous, 8) ||
                memcmp(fresh + length + c->f_code, old + length + c->f_code, 8)) {
                *same = 0;
                return WR_OK;
            }
        }
        pos += lens[k] + heads[k];
    }
    return WR_OK;
}

/* Raise TornStack unless the walk came down to the bottom of the data stack (see
 * unwinder.py's _check_bottom). */
static int check_bottom(Walker *w, uint64_t lowest)
{
    const WConfig *c = &w->c;
    WChunk *root = &w->chunks[w->nchunks - 1];
    if (!root->addr || root->len < (size_t)c->chunk_data || ld64(root->buf + c->chunk_previous))
        return WR_OK;
    uint64_t base = root->addr + (uint64_t)c->chunk_data;
    if (lowest == base || lowest == base + 8)
        return WR_OK;
    /* An empty data stack (only the kept slot) has no bottom frame to reach. */
    if (!lowest && w->nchunks == 1 && root->len <= (size_t)c->chunk_data + 8)
        return WR_OK;
    return WR_TORN;
}

/* Frames from `f` down, leaf first, into w->frames; w->starts maps each walked frame to the
 * index of the first reported frame at or below it. */
static int walk_interp(Walker *w, uint64_t f, int *truncated, int *outside)
{
    const WConfig *c = &w->c;
    WChunk *chunk0 = &w->chunks[0];
    size_t need = (size_t)c->frame_read;
    uint64_t mask = ~c->code_tag_mask;
    uint64_t lowest = 0;
    uint64_t outs[16];
    uint32_t nout = 0;
    int r;
    w->nframes = 0;
    *truncated = 0;
    *outside = 0;
    w->used_fresh_outside = 0;
    starts_clear(w);
    WStarts *s = &w->starts;
    while (f) {
        int found;
        uint32_t slot = starts_slot(s, f, &found);
        if (found)
            return WR_TORN; /* a live chain never comes back to a frame */
        if ((int64_t)s->n >= c->max_walk) {
            snprintf(w->err, sizeof w->err, "too many stack frames");
            return WR_READ;
        }
        s->stamp[slot] = s->current;
        s->addr[slot] = f;
        s->value[slot] = w->nframes;
        s->n++;
        const uint8_t *fb = NULL;
        if (chunk0->addr && f >= chunk0->addr && f - chunk0->addr + need <= chunk0->len) {
            fb = chunk0->buf + (f - chunk0->addr);
            lowest = f;
        } else {
            for (int i = 1; i < w->nchunks; i++) {
                WChunk *o = &w->chunks[i];
                if (f >= o->addr && f - o->addr + need <= o->len) {
                    fb = o->buf + (f - o->addr);
                    lowest = f;
                    break;
                }
            }
            if (!fb) {
                /* Outside the copies: an entry frame on the C stack, a generator's frame, or an
                 * address taken from a frame caught half-built. */
                if ((f & 7) || f < 4096)
                    return WR_TORN;
                for (int i = 0; i < w->nchunks; i++)
                    if (w->chunks[i].addr && f >= w->chunks[i].addr && f - w->chunks[i].addr < w->chunks[i].len)
                        lowest = f; /* a frame smaller than `need` at the very end of a copy */
                for (uint32_t k = 0; k < w->nbpre; k++)
                    if (w->bpre[k].addr == f && w->bpre[k].got >= need) {
                        fb = w->bpre_buf + w->bpre[k].off;
                        break;
                    }
                if (!fb) {
                    int r = rd(w, f, w->fbuf, need);
                    if (r)
                        return torn_if_read(r);
                    w->used_fresh_outside = 1;
                    fb = w->fbuf;
                }
                *outside = 1;
                if (w->cur && nout < 16)
                    outs[nout++] = f;
            }
        }
        uint64_t prev = ld64(fb + c->f_previous);
        uint8_t owner = fb[c->f_owner];
        if (c->skip_owner[owner]) {
            /* an entry frame (C called the eval loop here) or the bottom sentinel (3.14+) */
            if (c->native)
                native_below(w);
            f = prev;
            continue;
        }
        uint64_t code = ld64(fb + c->f_code) & mask;
        if (!code) {
            f = prev;
            continue;
        }
        WCodeBytes cb;
        int kind = code_kind(w, code, &cb);
        if (kind < 0)
            return -kind;
        if (kind == CODE_NONE)
            return WR_TORN; /* a code pointer from a frame caught half-built, or freed code */
        if (kind == CODE_SHIM || kind == CODE_ENTRY_SHIM) {
            if (kind == CODE_ENTRY_SHIM && c->native)
                native_below(w);
            f = prev;
            continue;
        }
        uint64_t code_start = c->code_adaptive >= 0 ? code + (uint64_t)c->code_adaptive : 0;
        uint64_t ip = ld64(fb + c->f_instr_ptr);
        int64_t offset = (int64_t)(ip - code_start);
        /* A frame that called another must be past its first instruction (RESUME); one that
         * is not was pushed after our copy's top frame, i.e. the copy is torn. */
        if (w->nframes && offset <= 0)
            return WR_TORN;
        if ((int64_t)w->nframes >= c->max_depth) { /* >=: a 3.11 entry frame adds two at once */
            /* Cut below the innermost max_depth frames; frames walked below them leave
             * `starts` (settle ignores indexes >= max_depth). */
            push_frame(w, 0, PSEUDO_TRUNCATED);
            *truncated = 1;
            r = WR_OK;
            goto done;
        }
        /* 3.11/3.12's prev_instr and 3.13+'s instr_ptr point at the instruction the frame
         * executes (a caller's: its call), whose first byte is the opcode */
        push_code(w, code, offset, offset >= 0 && cb.base ? cb.base + (uint64_t)instruction_start(&cb, offset) : 0);
        if (c->native && c->f_is_entry >= 0 && fb[c->f_is_entry])
            push_frame(w, 0, PSEUDO_NATIVE); /* 3.11: entered from C, which its caller called */
        f = prev;
    }
    r = check_bottom(w, lowest);
done:
    if (w->cur) {
        memcpy(w->cur->out, outs, nout * sizeof(uint64_t));
        w->cur->nout = nout;
    }
    return r;
}

/* The walked stack as it stands now: WR_OK with *cut (frames from *cut on), or WR_TORN. */
static int settle(Walker *w, uint64_t tstate, uint64_t top, int truncated, uint32_t *cut, const uint64_t *read_last)
{
    uint64_t now;
    /* Frames outside the copies that were all read before the re-check's top pointer are
     * settled by it: that pointer was read after them. */
    if (read_last) {
        now = *read_last;
    } else {
        int r = top_frame(w, tstate, NULL, 1, &now);
        if (r)
            return r;
    }
    *cut = 0;
    if (now == top)
        return WR_OK;
    uint32_t index;
    if (starts_get(w, now, &index) && !(truncated && (int64_t)index >= w->c.max_depth)) {
        *cut = index;
        return WR_OK;
    }
    return descends_from(w, now, top) ? WR_OK : WR_TORN;
}

/* ---- frames: 3.9/3.10 frame objects -------------------------------------------------- */

static int walk_object(Walker *w, uint64_t f)
{
    const WConfig *c = &w->c;
    size_t need = (size_t)c->frame_read;
    w->nframes = 0;
    w->nwalked = 0;
    starts_clear(w);
    WStarts *s = &w->starts;
    int first = 1;
    while (f) {
        if ((int64_t)w->nframes >= c->max_depth) {
            push_frame(w, 0, PSEUDO_TRUNCATED); /* cut, not torn */
            return WR_OK;
        }
        int found;
        uint32_t slot = starts_slot(s, f, &found);
        if (found)
            return WR_TORN; /* the frame chain loops: the stack changed */
        s->stamp[slot] = s->current;
        s->addr[slot] = f;
        s->value[slot] = w->nframes;
        s->n++;
        uint8_t *fb;
        if (first) {
            fb = w->fbuf;
        } else {
            fb = w->walked_bytes + (size_t)w->nwalked * need;
            w->walked[w->nwalked++] = f;
        }
        int r = rdp(w, f, fb, need);
        if (r)
            return torn_if_read(r); /* f_back of a frame object freed during the walk */
        first = 0;
        if (!ld64(fb))
            return WR_TORN; /* walked into a freed frame object */
        uint64_t code = ld64(fb + c->f_code);
        WCodeBytes cb;
        int kind = code_kind(w, code, &cb);
        if (kind < 0)
            return -kind;
        if (kind == 0)
            return WR_TORN;
        int32_t lasti = ld32(fb + c->f_lasti);
        if (lasti < 0 && w->nframes)
            return WR_TORN; /* a frame with callees has not started */
        /* f_lasti is the instruction being executed (a caller's: its call), in bytes */
        int64_t offset = lasti >= 0 ? (int64_t)lasti * c->lasti_scale : -1;
        push_code(w, code, offset, offset >= 0 && cb.base ? cb.base + (uint64_t)offset : 0);
        f = ld64(fb + c->f_previous);
    }
    return WR_OK;
}

/* The chain just walked, to read ahead next sample. */
static void remember_chain(Walker *w, uint64_t top)
{
    WThread *t = w->cur;
    if (!t)
        return;
    if (!t->frames && !(t->frames = malloc(SPEC_FRAMES * sizeof(uint64_t))))
        return;
    t->frames[0] = top;
    uint32_t n = 1;
    for (uint32_t i = 0; i < w->nwalked && n < SPEC_FRAMES; i++)
        t->frames[n++] = w->walked[i];
    t->nf = n;
}

static int same_frame_object(Walker *w, uint64_t addr, int *same)
{
    const WConfig *c = &w->c;
    uint8_t *now = w->tbuf2;
    int r = rd(w, addr, now, (size_t)c->frame_read);
    if (r)
        return r;
    *same = ld64(now) > 0 && !memcmp(now + c->f_previous, w->fbuf + c->f_previous, 8) &&
            !memcmp(now + c->f_code, w->fbuf + c->f_code, 8);
    return WR_OK;
}

/* Whether the callers read the same again, in one vectored read per 1024 frames. */
static int object_frames_unchanged(Walker *w)
{
    const WConfig *c = &w->c;
    size_t need = (size_t)c->frame_read;
    if (!w->nwalked)
        return 1;
    if (chunk_reserve(&w->spare, (size_t)w->nwalked * need))
        return 0;
    struct iovec local[1024], remote[1024];
    for (uint32_t done = 0; done < w->nwalked;) {
        int n = 0;
        for (; n < 1024 && done + (uint32_t)n < w->nwalked; n++) {
            local[n].iov_base = w->spare.buf + (size_t)(done + n) * need;
            local[n].iov_len = need;
            remote[n].iov_base = (void *)(uintptr_t)w->walked[done + n];
            remote[n].iov_len = need;
        }
        if (rdv(w, local, remote, n))
            return 0;
        done += (uint32_t)n;
    }
    for (uint32_t i = 0; i < w->nwalked; i++) {
        const uint8_t *a = w->spare.buf + (size_t)i * need, *b = w->walked_bytes + (size_t)i * need;
        if (memcmp(a + c->f_previous, b + c->f_previous, 8) || memcmp(a + c->f_code, b + c->f_code, 8) ||
            memcmp(a + c->f_lasti, b + c->f_lasti, 4))
            return 0;
    }
    return 1;
}


/* The re-check after the copy in one vectored call: each chunk's copied part again, the frames
 * the previous walk read outside the copies (so the walk need not read them one by one), and
 * last the top frame pointer, so that it is read after all of them and also settles them. On
 * any short read, the separate reads of the reference are made instead (same verdicts).
 * *now is the top frame now; *same whether the suspended part and the top's header held. */
static int recheck_chunks(Walker *w, uint64_t tstate, const uint8_t *tbuf, uint64_t top, uint64_t *now, int *same)
{
    const WConfig *c = &w->c;
    struct iovec local[64 + 16 + 2], remote[64 + 16 + 2];
    int n = 0;
    size_t total = 0;
    w->nbpre = 0;
    for (int i = 0; i < w->nchunks; i++) {
        WChunk *ch = &w->chunks[i];
        if (!ch->addr || !ch->len)
            continue;
        total += ch->len;
    }
    WThread *t = w->cur;
    uint32_t nspec = t ? t->nout : 0;
    size_t need = (size_t)c->frame_read;
    if (chunk_reserve(&w->spare, total + 16) || (nspec && !w->bpre_buf && !(w->bpre_buf = malloc(16 * need))))
        goto separately;
    size_t pos = 0;
    for (int i = 0; i < w->nchunks; i++) {
        WChunk *ch = &w->chunks[i];
        if (!ch->addr || !ch->len)
            continue;
        local[n].iov_base = w->spare.buf + pos;
        local[n].iov_len = ch->len;
        remote[n].iov_base = (void *)(uintptr_t)ch->addr;
        remote[n].iov_len = ch->len;
        pos += ch->len;
        n++;
    }
    for (uint32_t k = 0; k < nspec; k++) {
        w->bpre[k].addr = t->out[k];
        w->bpre[k].off = k * need;
        w->bpre[k].len = need;
        w->bpre[k].got = 0;
        local[n].iov_base = w->bpre_buf + k * need;
        local[n].iov_len = need;
        remote[n].iov_base = (void *)(uintptr_t)t->out[k];
        remote[n].iov_len = need;
        n++;
    }
    uint64_t cf_guess = 0, fresh_cf = 0, fresh_top = 0;
    if (c->root_is_cframe) {
        cf_guess = ld64(tbuf + c->t_cframe);
        local[n].iov_base = &fresh_cf;
        local[n].iov_len = 8;
        remote[n].iov_base = (void *)(uintptr_t)(tstate + (uint64_t)c->t_cframe);
        remote[n].iov_len = 8;
        n++;
        if (cf_guess) {
            local[n].iov_base = &fresh_top;
            local[n].iov_len = 8;
            remote[n].iov_base = (void *)(uintptr_t)(cf_guess + (uint64_t)c->cf_current_frame);
            remote[n].iov_len = 8;
            n++;
        }
    } else {
        local[n].iov_base = &fresh_top;
        local[n].iov_len = 8;
        remote[n].iov_base = (void *)(uintptr_t)(tstate + (uint64_t)c->t_root);
        remote[n].iov_len = 8;
        n++;
    }
    int r = post_serve(w, local, remote, n) ? WR_OK : rdv(w, local, remote, n);
    w->post_usable = 0;
    if (r == WR_GONE || r == WR_PERM)
        return r;
    if (r)
        goto separately;
    for (uint32_t k = 0; k < nspec; k++)
        w->bpre[k].got = need;
    w->nbpre = nspec;
    if (c->root_is_cframe) {
        if (!fresh_cf)
            fresh_top = 0;
        else if (fresh_cf != cf_guess && (r = rd64(w, fresh_cf + (uint64_t)c->cf_current_frame, &fresh_top)))
            return r;
    }
    *now = fresh_top;
    if (fresh_top != top && !returned_into(w, fresh_top, top) && !descends_from(w, fresh_top, top)) {
        *same = 0;
        w->nbpre = 0;
        return WR_OK;
    }
    /* The same verdict as suspended_unchanged, on the bytes just read. */
    *same = 1;
    pos = 0;
    int first = 1;
    for (int i = 0; i < w->nchunks; i++) {
        WChunk *ch = &w->chunks[i];
        if (!ch->addr || !ch->len)
            continue;
        const uint8_t *fresh = w->spare.buf + pos;
        size_t length = ch->len, head = 0;
        pos += ch->len;
        if (i == 0 && first) {
            uint64_t edge = (ch->addr <= fresh_top && fresh_top < top) ? fresh_top : top;
            first = 0;
            if (!(ch->addr <= edge && edge <= ch->addr + ch->len))
                continue;
            length = (size_t)(edge - ch->addr);
            if (length + need <= ch->len)
                head = need;
        }
        if (memcmp(fresh, ch->buf, length) ||
            (head && (memcmp(fresh + length + c->f_previous, ch->buf + length + c->f_previous, 8) ||
                      memcmp(fresh + length + c->f_code, ch->buf + length + c->f_code, 8)))) {
            *same = 0;
            w->nbpre = 0;
            return WR_OK;
        }
    }
    return WR_OK;
separately:
    w->nbpre = 0;
    w->now_b = 0;
    if ((r = top_frame(w, tstate, tbuf, 1, now)))
        return r;
    if (*now != top && !returned_into(w, *now, top) && !descends_from(w, *now, top)) {
        *same = 0;
        return WR_OK;
    }
    return suspended_unchanged(w, top, *now, same);
}

/* 3.9/3.10: the top frame object and the callers again, in one vectored call: whether the top
 * is the same live activation (a short read of it is a failed sample, as in the reference) and
 * the callers read the same. */
static int recheck_objects(Walker *w, uint64_t top, int *same)
{
    const WConfig *c = &w->c;
    size_t need = (size_t)c->frame_read;
    static __thread WRange *rg;
    static __thread uint32_t rg_cap;
    static __thread uint8_t *fresh;
    static __thread size_t fresh_cap;
    uint32_t n = w->nwalked + 1;
    if (n > rg_cap) {
        WRange *p = realloc(rg, n * sizeof(WRange));
        if (!p)
            goto separately;
        rg = p;
        rg_cap = n;
    }
    if ((size_t)n * need > fresh_cap) {
        uint8_t *p = realloc(fresh, (size_t)n * need);
        if (!p)
            goto separately;
        fresh = p;
        fresh_cap = (size_t)n * need;
    }
    for (uint32_t i = 0; i < n; i++) {
        rg[i].addr = i ? w->walked[i - 1] : top;
        rg[i].len = need;
        rg[i].dst = fresh + (size_t)i * need;
    }
    int r = read_ranges(w, rg, n);
    if (r == WR_GONE || r == WR_PERM)
        return r;
    if (r || !rg[0].ok)
        goto separately; /* the reference's separate reads decide */
    const uint8_t *now = fresh;
    *same = ld64(now) > 0 && !memcmp(now + c->f_previous, w->fbuf + c->f_previous, 8) &&
            !memcmp(now + c->f_code, w->fbuf + c->f_code, 8);
    if (!*same)
        return WR_OK;
    for (uint32_t i = 0; i < w->nwalked; i++) {
        const uint8_t *a = fresh + (size_t)(i + 1) * need, *b = w->walked_bytes + (size_t)i * need;
        if (!rg[i + 1].ok || memcmp(a + c->f_previous, b + c->f_previous, 8) || memcmp(a + c->f_code, b + c->f_code, 8) ||
            memcmp(a + c->f_lasti, b + c->f_lasti, 4)) {
            *same = 0;
            return WR_OK;
        }
    }
    return WR_OK;
separately: {
    int r = same_frame_object(w, top, same);
    if (r)
        return r;
    if (*same)
        *same = object_frames_unchanged(w);
    return WR_OK;
}
}

/* ---- --opcodes and --native ------------------------------------------------------------
 * A walked thread's frames wait (defer_thread) until every thread of its interpreter is walked;
 * then the instruction bytes they need are read for all of them in one call (read_pending:
 * read_ranges merges those close together, as a code object's are), rather than one call per
 * thread. A byte names the instruction at an address the walk found, so it is the same read a
 * little later (the thread may have moved on, as the reference's read after its walk allows);
 * the bytes change as code specializes, so they are read every sample, never kept. Each read
 * covers the EXTENDED_ARG prefixes there and the instruction after them (named_opcode). */

/* Reallocates each of `n` arrays (element sizes `elem`) to `cap` elements; 0 when all were. */
static int regrow(void **arrays[], const size_t elem[], int n, uint32_t cap)
{
    for (int i = 0; i < n; i++) {
        void *p = realloc(*arrays[i], (size_t)cap * elem[i]);
        if (!p)
            return -1;
        *arrays[i] = p;
    }
    return 0;
}

/* Room for `n` more pending frames and one more pending thread (a cap grows only once all its
 * arrays have). */
static int pend_reserve(Walker *w, uint32_t n)
{
    if (w->pend_n + n > w->pend_cap) {
        uint32_t cap = w->pend_cap ? w->pend_cap : 256;
        while (cap < w->pend_n + n)
            cap *= 2;
        void **arrays[] = {(void **)&w->pend_frames, (void **)&w->pend_op, (void **)&w->pend_code};
        const size_t elem[] = {sizeof(WFrame), sizeof(uint64_t), (size_t)w->c.op_read};
        if (regrow(arrays, elem, 3, cap))
            return -1;
        w->pend_cap = cap;
    }
    if (w->npend + 1 > w->pend_threads_cap) {
        uint32_t cap = w->pend_threads_cap ? w->pend_threads_cap * 2 : 16;
        void **arrays[] = {(void **)&w->pend_start, (void **)&w->pend_count, (void **)&w->pend_th};
        const size_t elem[] = {sizeof(uint32_t), sizeof(uint32_t), sizeof(uint32_t)};
        if (regrow(arrays, elem, 3, cap))
            return -1;
        w->pend_threads_cap = cap;
    }
    return 0;
}

/* --native's leaf: a thread whose innermost Python frame executes a call-family instruction is
 * in the C function it called (a Python callee would be the innermost frame). */
static void native_leaf(Walker *w, int leaf_op)
{
    if (!w->c.native || !w->nframes || !w->frames[0].code || leaf_op < 0 || !w->c.call_op[leaf_op])
        return;
    memmove(w->frames + 1, w->frames, w->nframes * sizeof(WFrame));
    w->nframes++;
    w->frames[0].code = 0;
    w->frames[0].offset = PSEUDO_NATIVE;
    w->frames[0].opcode = -1;
    w->frames[0].spare = 0;
}

/* The instruction named by the `len` bytes read at a frame's instruction address: the first at
 * an even offset (a code unit's opcode byte) that is not an EXTENDED_ARG prefix, since 3.9/3.10
 * leave f_lasti on the prefix while the instruction it extends runs; bytes that are all prefixes
 * (a 1-byte read) name the first, as the reference's StackWalker.opcode_at does. */
static int named_opcode(const WConfig *c, const uint8_t *code, size_t len)
{
    for (size_t i = 0; i < len; i += 2)
        if (!c->prefix_op[code[i]])
            return code[i];
    return code[0];
}

/* An instruction read that failed in the merged call, alone: all c->op_read bytes, else the one
 * byte (the last instruction, at a mapping's end), as the reference falls back; the range's len
 * says which arrived. Neither: the code was freed with its frame, the sample is torn. */
static int read_instruction_alone(Walker *w, WRange *e)
{
    int r = rd(w, e->addr, e->dst, e->len);
    if (r == WR_READ && e->len > 1) {
        e->len = 1;
        r = rd(w, e->addr, e->dst, 1);
    }
    if (r == WR_READ)
        snprintf(w->err, sizeof w->err, "an instruction at %#llx could not be read: the stack changed",
                 (unsigned long long)e->addr);
    return torn_if_read(r);
}

/* Reads the pending threads' instruction bytes (every frame's with --opcodes, else only the
 * innermost one's: the <native> leaf needs it) and interns their stacks into th_stack. A byte
 * that cannot be read fails the sample, as a torn walk the reference would retry. */
static int read_pending(Walker *w)
{
    const WConfig *c = &w->c;
    static __thread WRange *rg;
    static __thread uint32_t cap;
    uint32_t npend = w->npend;
    size_t stride = (size_t)c->op_read;
    w->npend = 0;
    w->pend_n = 0;
    if (!npend)
        return WR_OK;
    uint32_t k = 0;
    for (uint32_t p = 0; p < npend; p++) {
        uint32_t n = c->opcodes ? w->pend_count[p] : 1;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t at = w->pend_start[p] + i;
            if (!w->pend_op[at])
                continue;
            if (k == cap) {
                uint32_t more = cap ? cap * 2 : 256;
                WRange *q = realloc(rg, more * sizeof(WRange));
                if (!q)
                    return WR_READ;
                rg = q;
                cap = more;
            }
            rg[k].addr = w->pend_op[at];
            rg[k].len = stride;
            rg[k].dst = &w->pend_code[at * stride];
            k++;
        }
    }
    int r = k ? read_ranges(w, rg, k) : WR_OK;
    if (r)
        return r;
    /* each range's named opcode replaces the first of its bytes */
    for (uint32_t j = 0; j < k; j++) {
        if (!rg[j].ok && (r = read_instruction_alone(w, &rg[j])))
            return r;
        rg[j].dst[0] = (uint8_t)named_opcode(c, rg[j].dst, rg[j].len);
    }
    for (uint32_t p = 0; p < npend; p++) {
        uint32_t start = w->pend_start[p], n = w->pend_count[p];
        memcpy(w->frames, w->pend_frames + start, n * sizeof(WFrame));
        w->nframes = n;
        int leaf_op = w->pend_op[start] ? w->pend_code[start * stride] : -1;
        if (c->opcodes)
            for (uint32_t i = 0; i < n; i++)
                if (w->pend_op[start + i])
                    w->frames[i].opcode = w->pend_code[(start + i) * stride];
        native_leaf(w, leaf_op);
        if (walker_stacks_intern(w, w->frames, w->nframes, &w->th_stack[w->pend_th[p]]))
            return WR_READ;
    }
    return WR_OK;
}

/* ---- one thread's stack ---------------------------------------------------------------- */

/* Exception mode's guard: the exception must be in flight right before and after the copy. */
static int in_flight(Walker *w, uint64_t tstate, uint64_t interp, uint8_t *buf, int *yes)
{
    int r = read_tstate(w, tstate, interp, buf, 0);
    if (r)
        return r;
    return has_exception(w, tstate, buf, yes);
}

static int guard_holds(Walker *w, uint64_t tstate, uint64_t interp, int64_t opened, int *holds)
{
    int yes;
    int r = in_flight(w, tstate, interp, w->tbuf2, &yes);
    if (r)
        return r;
    *holds = yes && walker_now_ns() - opened <= w->c.guard_window_ns;
    return WR_OK;
}

/* The thread's stack into w->frames (see unwinder.py's _frames); WR_SKIP when the guard
 * leaves the thread out, WR_TORN when it kept changing. */
static int thread_frames(Walker *w, uint64_t interp, uint64_t tstate, const uint8_t *tbuf, int guard)
{
    const WConfig *c = &w->c;
    int r;
    w->walk_valid = 0;
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        int fresh = attempt > 0;
        /* A retry reads everything anew; the guard brackets a copy made after it opened. */
        if (fresh || guard)
            w->pf_allowed = 0;
        int64_t opened = 0;
        int holds;
        if (guard) {
            int yes;
            opened = walker_now_ns();
            if ((r = in_flight(w, tstate, interp, w->gbuf, &yes)))
                return r;
            if (!yes)
                return WR_SKIP;
            tbuf = w->gbuf;
            fresh = 0;
        }
        uint64_t top;
        if ((r = top_frame(w, tstate, tbuf, fresh, &top)))
            return r;
        if (!top) {
            w->nframes = 0;
            return WR_OK;
        }
        if (c->frame_is_object) {
            /* A live frame object holds its f_back alive, and suspended frames do not change:
             * if the old top frame is still the same activation after the walk, everything
             * below it was stable while we read it. */
            r = walk_object(w, top);
            if (r == WR_TORN)
                continue;
            if (r)
                return r;
            if (!fresh && !guard)
                remember_chain(w, top);
            int same;
            if ((r = recheck_objects(w, top, &same)))
                return r;
            if (!same)
                continue;
            if (guard) {
                if ((r = guard_holds(w, tstate, interp, opened, &holds)))
                    return r;
                if (!holds)
                    continue;
            }
            return WR_OK;
        }
        if ((r = read_chunks(w, tstate, tbuf, fresh)))
            return r;
        if (guard) {
            if ((r = guard_holds(w, tstate, interp, opened, &holds)))
                return r;
            if (!holds)
                continue;
        }
        /* The copy is trustworthy if the top frame is still live right after it... */
        uint64_t now;
        int same;
        /* the batched re-check only for a copy wholly from the read-ahead (no read since the
         * thread state was taken from it) */
        w->post_usable = attempt == 0 && !guard && w->syscalls == w->sys_mark;
        if ((r = recheck_chunks(w, tstate, tbuf, top, &now, &same)))
            return r;
        if (!same)
            continue;
        w->now_b = now;
        int truncated, outside;
        r = walk_interp(w, top, &truncated, &outside);
        if (r == WR_TORN)
            continue;
        if (r)
            return r;
        /* ...and entry frames on the C stack and generator frames, read during the walk, were
         * live only if the stack has not unwound past them afterwards. */
        uint32_t cut;
        r = settle(w, tstate, top, truncated, &cut, w->used_fresh_outside ? NULL : &now);
        if (r == WR_TORN)
            continue;
        if (r)
            return r;
        /* A thread with a current frame runs Python code: no frames at all means the walk met
         * frames half-built or half-cleared. */
        if (cut >= w->nframes)
            continue;
        /* A stack cut down to where the top returned is the stack after the guard's last
         * look, which the guard does not vouch for: look again. */
        if (guard && cut > 0)
            continue;
        if (cut) {
            memmove(w->frames, w->frames + cut, (w->nframes - cut) * sizeof(WFrame));
            memmove(w->opaddr, w->opaddr + cut, (w->nframes - cut) * sizeof(uint64_t));
            w->nframes -= cut;
        }
        w->walk_valid = 1;
        w->walk_cut = cut;
        return WR_OK;
    }
    snprintf(w->err, sizeof w->err, "the stack kept changing while it was read");
    return WR_TORN;
}

static int mode_accepts(int mode, unsigned status)
{
    switch (mode) {
    case 0: return 1;
    case 1: return (status & ON_CPU) != 0;
    case 2: return (status & HAS_GIL) != 0;
    default: return (status & HAS_EXCEPTION) != 0;
    }
}

static int add_thread(Walker *w, int64_t tid, unsigned status, int64_t interp_id, uint32_t stack, uint32_t suffix)
{
    if (w->nth == w->th_cap) {
        uint32_t cap = w->th_cap ? w->th_cap * 2 : 16;
        uint64_t *a = realloc(w->th_tid, cap * sizeof(uint64_t));
        if (a) w->th_tid = a;
        int64_t *b = realloc(w->th_interp, cap * sizeof(int64_t));
        if (b) w->th_interp = b;
        uint32_t *s1 = realloc(w->th_status, cap * sizeof(uint32_t));
        if (s1) w->th_status = s1;
        uint32_t *s2 = realloc(w->th_stack, cap * sizeof(uint32_t));
        if (s2) w->th_stack = s2;
        uint32_t *s3 = realloc(w->th_suffix, cap * sizeof(uint32_t));
        if (s3) w->th_suffix = s3;
        if (!a || !b || !s1 || !s2 || !s3)
            return WR_READ;
        w->th_cap = cap;
    }
    w->th_tid[w->nth] = (uint64_t)tid;
    w->th_status[w->nth] = status;
    w->th_interp[w->nth] = interp_id;
    w->th_stack[w->nth] = stack;
    w->th_suffix[w->nth] = suffix;
    w->nth++;
    return WR_OK;
}

/* ---- --async-mode running ------------------------------------------------------------
 * A thread's sample is its running task's part of its stack (from the leaf down to the task's
 * coroutine frame, found by address among the frames just walked) followed by the frames of the
 * task's marker and of the tasks awaiting it, which Python makes (AsyncStacks.awaiters_of) and
 * hands back as an id (the key's suffix). The running task comes from the thread state where
 * CPython keeps it (3.14+, offsets from the target's AsyncioDebug table), else from Python
 * (3.11-3.13 keep it in asyncio's dicts). sampler/cpython/async_stacks.py is the reference. */

/* A Python --async-aware callback's int (>= 0) into *out; its -1 is a failed read (Python keeps
 * the message), -2 the target gone. */
static int async_call(Walker *w, PyObject *cb, int nargs, uint64_t a, uint64_t b, uint64_t *out)
{
    int entered = gil_enter(w);
    PyObject *res = nargs == 1 ? PyObject_CallFunction(cb, "K", (unsigned long long)a)
                               : PyObject_CallFunction(cb, "KK", (unsigned long long)a, (unsigned long long)b);
    long long v = -3;
    if (res) {
        v = PyLong_AsLongLong(res);
        Py_DECREF(res);
        if (v == -1 && PyErr_Occurred())
            v = -3;
    }
    gil_leave(w, entered);
    if (v >= 0) {
        *out = (uint64_t)v;
        return WR_OK;
    }
    if (v == -1)
        return WR_READ;
    return v == -2 ? WR_GONE : WR_PYERR;
}

/* The task thread `thread_id`'s loop is running (0: none), from `tbuf` or, `fresh`, read anew. */
static int running_task(Walker *w, uint64_t tstate, const uint8_t *tbuf, uint64_t thread_id, int fresh,
                        uint64_t *task)
{
    int64_t off = w->c.a_running;
    if (off < 0)
        return async_call(w, w->running_cb, 1, thread_id, 0, task);
    if (!fresh && off + 8 <= w->c.tstate_size) {
        *task = ld64(tbuf + off);
        return WR_OK;
    }
    return rd64(w, tstate + (uint64_t)off, task);
}

/* Python's answer for running task `task`: the id of what follows its own frames, its coroutine
 * frame, and in w->sfx_addr/len the ranges the answer was made from (*nr = -1: not to be reused,
 * e.g. a task with several awaiters, shown under each in turn). */
static int suffix_call(Walker *w, uint64_t task, uint64_t thread_id, uint32_t *id, uint64_t *coro_frame, int *nr)
{
    int entered = gil_enter(w);
    PyObject *res = PyObject_CallFunction(w->suffix_cb, "KK", (unsigned long long)task, (unsigned long long)thread_id);
    long long v = -3;
    *nr = -1;
    if (res && PyTuple_Check(res) && PyTuple_GET_SIZE(res) == 3) {
        v = PyLong_AsLongLong(PyTuple_GET_ITEM(res, 0));
        unsigned long long frame = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(res, 1));
        if (PyErr_Occurred())
            v = -3;
        *coro_frame = frame;
        PyObject *ranges = PyTuple_GET_ITEM(res, 2);
        Py_ssize_t n = PyTuple_Check(ranges) ? PyTuple_GET_SIZE(ranges) : -1;
        size_t total = 0;
        if (n >= 1 && n <= SUFFIX_RANGES) {
            *nr = (int)n;
            for (Py_ssize_t i = 0; i < n && *nr >= 0; i++) {
                unsigned long long a, l;
                PyObject *pair = PyTuple_GET_ITEM(ranges, i);
                if (!PyArg_ParseTuple(pair, "KK", &a, &l) || !l || l > SUFFIX_BYTES - total) {
                    PyErr_Clear();
                    *nr = -1; /* more than is kept: asked again each time */
                    break;
                }
                w->sfx_addr[i] = a;
                w->sfx_len[i] = (uint32_t)l;
                total += l;
            }
        }
    } else if (res && PyLong_Check(res)) {
        v = PyLong_AsLongLong(res); /* a failure: -1 or -2 */
        if (v >= 0)
            v = -3;
    }
    if (v == -1 && PyErr_Occurred())
        v = -3;
    Py_XDECREF(res);
    gil_leave(w, entered);
    if (v >= 0 && v <= UINT32_MAX) {
        *id = (uint32_t)v;
        return WR_OK;
    }
    if (v == -1)
        return WR_READ;
    return v == -2 ? WR_GONE : WR_PYERR;
}

/* The ranges `addr`/`len` (n of them) read now, in one call, into `buf`. */
static int read_suffix_ranges(Walker *w, const uint64_t *addr, const uint32_t *len, uint32_t n, uint8_t *buf,
                              size_t *total)
{
    struct iovec local[SUFFIX_RANGES], remote[SUFFIX_RANGES];
    size_t pos = 0;
    for (uint32_t i = 0; i < n; i++) {
        local[i].iov_base = buf + pos;
        local[i].iov_len = len[i];
        remote[i].iov_base = (void *)(uintptr_t)addr[i];
        remote[i].iov_len = len[i];
        pos += len[i];
    }
    *total = pos;
    return rdv(w, local, remote, (int)n);
}

/* The id of the frames after running task `task`'s own, and its coroutine frame. Python makes
 * them (AsyncStacks.awaiters_of) and says which remote ranges they are a function of; they are
 * reused while those ranges read the same bytes, once an answer was seen to be made from one
 * state of them (the ranges read the same right before Python was asked and right after it
 * answered) and for at most a_suffix_reuse_ns: then Python is asked again. */
static int cached_suffix(Walker *w, uint64_t task, uint64_t thread_id, uint32_t *suffix, uint64_t *coro_frame)
{
    const WConfig *c = &w->c;
    int64_t now = walker_now_ns();
    int r;
    WSuffix *e = NULL;
    for (int i = 0; i < SUFFIX_SLOTS; i++)
        if (w->sfx[i].task == task) {
            e = &w->sfx[i];
            break;
        }
    if (!w->sfx_now && !(w->sfx_now = malloc(SUFFIX_BYTES)))
        return WR_READ;
    int before = 0; /* e->snap holds e's ranges as read just now, before asking Python */
    if (e && e->nr) {
        size_t got;
        r = read_suffix_ranges(w, e->addr, e->len, e->nr, w->sfx_now, &got);
        if (r == WR_GONE || r == WR_PERM)
            return r;
        if (r == WR_OK) {
            if (e->confirmed && now - e->made_ns < c->a_suffix_reuse_ns && got == e->nbytes &&
                !memcmp(w->sfx_now, e->snap, got)) {
                w->sfx_hits++;
                *suffix = e->suffix;
                *coro_frame = e->coro_frame;
                return WR_OK;
            }
            memcpy(e->snap, w->sfx_now, got);
            e->nbytes = got;
            before = 1;
        }
    }
    uint32_t id;
    int nr;
    if ((r = suffix_call(w, task, thread_id, &id, coro_frame, &nr)))
        return r;
    *suffix = id;
    if (nr < 0) {
        if (e)
            e->task = 0;
        return WR_OK;
    }
    if (!e) {
        e = &w->sfx[w->sfx_next++ % SUFFIX_SLOTS];
        e->task = 0;
        e->nr = 0;
        before = 0;
    }
    if (!e->snap && !(e->snap = malloc(SUFFIX_BYTES))) {
        e->task = 0;
        return WR_OK;
    }
    /* the state before counts only for the same ranges */
    int same_ranges = before && e->nr == (uint32_t)nr && !memcmp(e->addr, w->sfx_addr, (size_t)nr * 8) &&
                      !memcmp(e->len, w->sfx_len, (size_t)nr * 4);
    size_t got;
    r = read_suffix_ranges(w, w->sfx_addr, w->sfx_len, (uint32_t)nr, w->sfx_now, &got);
    if (r == WR_GONE || r == WR_PERM)
        return r;
    if (r != WR_OK) {
        e->task = 0;
        return WR_OK;
    }
    e->confirmed = same_ranges && got == e->nbytes && !memcmp(w->sfx_now, e->snap, got);
    e->task = task;
    e->suffix = id;
    e->coro_frame = *coro_frame;
    e->nr = (uint32_t)nr;
    memcpy(e->addr, w->sfx_addr, (size_t)nr * 8);
    memcpy(e->len, w->sfx_len, (size_t)nr * 4);
    memcpy(e->snap, w->sfx_now, got);
    e->nbytes = got;
    e->made_ns = now;
    return WR_OK;
}

/* After the walk of a thread running `task`: keep the frames from the leaf down to the task's
 * coroutine frame (none when it is not on the stack: the task is between steps), and the id of
 * what follows them in *suffix. Python's answer (or its reuse) comes first, as the reference
 * reads the task before looking for its frame. */
static int async_cut(Walker *w, uint64_t tstate, uint64_t thread_id, uint64_t task, uint32_t *suffix)
{
    uint64_t coro_frame = 0;
    int r;
    if ((r = cached_suffix(w, task, thread_id, suffix, &coro_frame)))
        return r;
    uint32_t value;
    if (coro_frame && w->walk_valid && starts_get(w, coro_frame, &value) && value >= w->walk_cut &&
        value - w->walk_cut < w->nframes) {
        w->nframes = value - w->walk_cut + 1;
        return WR_OK;
    }
    /* Not on the stack: the task is between steps, unless the loop switched tasks since the
     * running one was read (then this copy is not the task's). */
    uint64_t now;
    if ((r = running_task(w, tstate, NULL, thread_id, 1, &now)))
        return r;
    if (now != task) {
        snprintf(w->err, sizeof w->err, "the running task changed while its thread's stack was read");
        return WR_READ;
    }
    w->nframes = 0;
    return WR_OK;
}

/* The thread's sample, its stack to be interned once its instruction bytes are read
 * (read_pending). */
static int defer_thread(Walker *w, int64_t tid, unsigned status, int64_t interp_id, uint32_t suffix)
{
    if (pend_reserve(w, w->nframes))
        return WR_READ;
    int r = add_thread(w, tid, status, interp_id, 0, suffix);
    if (r)
        return r;
    w->pend_start[w->npend] = w->pend_n;
    w->pend_count[w->npend] = w->nframes;
    w->pend_th[w->npend] = w->nth - 1;
    w->npend++;
    memcpy(w->pend_frames + w->pend_n, w->frames, w->nframes * sizeof(WFrame));
    memcpy(w->pend_op + w->pend_n, w->opaddr, w->nframes * sizeof(uint64_t));
    w->pend_n += w->nframes;
    return WR_OK;
}

static int sample_thread(Walker *w, uint64_t interp, int64_t interp_id, uint64_t tstate, const uint8_t *tbuf,
                         int64_t holder, uint64_t main_tstate, int64_t now)
{
    const WConfig *c = &w->c;
    unsigned status = 0;
    int r;
    WThread *rec = thread_rec(w, tstate);
    w->cur = rec;
    order_add(w, tstate);
    if (rec) {
        rec->seen = w->sample_no;
        rec->pthread = ld64(tbuf + c->t_thread_id);
        rec->cframe = c->root_is_cframe ? ld64(tbuf + c->t_cframe) : 0;
        rec->chunk = 0; /* until this sample copies it */
        rec->nf = 0;
    }
    /* Order matters: the state taken from `tbuf` is paired with a stack read right after it;
     * the slower /proc read comes last. */
    if (holder == -1) {
        if (c->t_holds_gil >= 0 && ld32(tbuf + c->t_holds_gil))
            status |= HAS_GIL;
    } else if (holder && (uint64_t)holder == tstate) {
        status |= HAS_GIL;
    }
    if (is_main(w, tstate, tbuf, main_tstate))
        status |= MAIN_THREAD;
    if (c->mode == 0 || c->mode == 3) {
        int exc;
        if ((r = has_exception(w, tstate, tbuf, &exc)))
            return r;
        if (exc)
            status |= HAS_EXCEPTION;
    }
    int64_t tid;
    if ((r = native_tid(w, tbuf, &tid)))
        return r;
    if (!tid)
        tid = (int64_t)ld64(tbuf + c->t_thread_id);
    if (c->mode == 1)
        status |= cpu_status(w, tid, now);
    if (!mode_accepts(c->mode, status))
        return WR_OK;
    uint64_t thread_id = ld64(tbuf + c->t_thread_id), task = 0;
    if (c->async_running) {
        if ((r = running_task(w, tstate, tbuf, thread_id, 0, &task))) {
            w->cur = NULL;
            return r;
        }
        if (!task) {
            w->cur = NULL;
            return WR_OK; /* running no task: left out of the sample */
        }
    }
    r = thread_frames(w, interp, tstate, tbuf, c->mode == 3);
    w->pf_allowed = 1;
    if (rec && !c->frame_is_object && w->nchunks && w->chunks[0].addr) {
        rec->chunk = w->chunks[0].addr;
        rec->chunk_len = w->chunks[0].len;
    }
    w->cur = NULL;
    if (r == WR_SKIP)
        return WR_OK;
    if (r)
        return r;
    uint32_t suffix = 0;
    if (c->async_running && (r = async_cut(w, tstate, thread_id, task, &suffix)))
        return r;
    if (c->mode != 1)
        status |= cpu_status(w, tid, now);
    if ((c->opcodes || c->native) && w->nframes)
        return defer_thread(w, tid, status, interp_id, suffix);
    uint32_t stack;
    if (walker_stacks_intern(w, w->frames, w->nframes, &stack))
        return WR_READ;
    return add_thread(w, tid, status, interp_id, stack, suffix);
}

static int64_t gil_holder(Walker *w, const uint8_t *ibuf, int *err)
{
    const WConfig *c = &w->c;
    *err = WR_OK;
    switch (c->gil_kind) {
    case 0: {
        uint64_t lo = (uint64_t)(c->rt_gil_holder < c->rt_gil_locked ? c->rt_gil_holder : c->rt_gil_locked);
        uint64_t hi = (uint64_t)(c->rt_gil_holder > c->rt_gil_locked ? c->rt_gil_holder : c->rt_gil_locked) + 8;
        if ((*err = rdp(w, c->runtime_addr + lo, w->rtbuf, hi - lo)))
            return 0;
        int32_t locked = ld32(w->rtbuf + (c->rt_gil_locked - (int64_t)lo));
        return locked ? (int64_t)ld64(w->rtbuf + (c->rt_gil_holder - (int64_t)lo)) : 0;
    }
    case 1: {
        int32_t locked = ld32(ibuf + (c->i_gil_locked - c->interp_lo));
        return locked ? (int64_t)ld64(ibuf + (c->i_gil_holder - c->interp_lo)) : 0;
    }
    case 2:
        return -1; /* per-thread holds_gil is used instead */
    default:
        return 0;
    }
}

/* The main thread's state into w->tbuf (*found = 0 when the interpreter has no thread). */
static int main_thread(Walker *w, uint64_t interp, const uint8_t *ibuf, uint64_t main_tstate, uint64_t *found)
{
    const WConfig *c = &w->c;
    int r;
    *found = 0;
    if (main_tstate) {
        if ((r = read_tstate(w, main_tstate, interp, w->tbuf, 1)))
            return r;
        *found = main_tstate;
        return WR_OK;
    }
    if (w->main_tstate) {
        r = read_tstate(w, w->main_tstate, interp, w->tbuf, 1);
        if (r == WR_GONE || r == WR_PERM)
            return r;
        if (!r && is_main(w, w->main_tstate, w->tbuf, 0)) {
            *found = w->main_tstate;
            return WR_OK;
        }
    }
    uint64_t tstate = ld64(ibuf + (c->i_threads_head - c->interp_lo));
    uint64_t last = 0;
    int64_t count = 0;
    while (tstate) {
        if (++count > c->max_threads) {
            snprintf(w->err, sizeof w->err, "thread list does not end");
            return WR_READ;
        }
        if ((r = read_tstate(w, tstate, interp, w->tbuf, 1)))
            return r;
        if (is_main(w, tstate, w->tbuf, 0)) {
            w->main_tstate = *found = tstate;
            return WR_OK;
        }
        last = tstate;
        tstate = ld64(w->tbuf + c->t_next);
    }
    /* Threads are pushed at the head, so the oldest (the main thread) is the last one; its
     * state is the one left in w->tbuf. */
    if (last)
        w->main_tstate = *found = last;
    return WR_OK;
}

static int sample_interp(Walker *w, uint64_t interp, const uint8_t *ibuf, int64_t now)
{
    const WConfig *c = &w->c;
    int64_t lo = c->interp_lo;
    int r;
    int64_t interp_id = c->i_id >= 0 ? ld32(ibuf + (c->i_id - lo)) : 0;
    int64_t holder = gil_holder(w, ibuf, &r);
    if (r)
        return r;
    int collecting = c->i_gc_collecting >= 0 ? ld32(ibuf + (c->i_gc_collecting - lo)) != 0 : 0;
    uint64_t main_tstate = c->i_threads_main >= 0 ? ld64(ibuf + (c->i_threads_main - lo)) : 0;
    uint32_t first = w->nth;
    w->npend = 0;
    w->pend_n = 0;
    if (!c->all_threads) {
        uint64_t found;
        if ((r = main_thread(w, interp, ibuf, main_tstate, &found)))
            return r;
        if (found && (r = sample_thread(w, interp, interp_id, found, w->tbuf, holder, main_tstate, now)))
            return r;
    } else {
        uint64_t tstate = ld64(ibuf + (c->i_threads_head - lo));
        int64_t count = 0;
        while (tstate) {
            if (++count > c->max_threads) {
                snprintf(w->err, sizeof w->err, "thread list does not end");
                return WR_READ;
            }
            w->sys_mark = w->syscalls;
            if ((r = read_tstate(w, tstate, interp, w->tbuf, 1)))
                return r;
            uint64_t next = ld64(w->tbuf + c->t_next);
            if ((r = sample_thread(w, interp, interp_id, tstate, w->tbuf, holder, main_tstate, now)))
                return r;
            tstate = next;
        }
    }
    if ((r = read_pending(w)))
        return r;
    if (collecting && c->gc && w->nth > first) {
        uint32_t idx = first;
        for (uint32_t i = first; i < w->nth; i++)
            if (w->th_status[i] & HAS_GIL) {
                idx = i;
                break;
            }
        uint32_t id = w->th_stack[idx];
        uint32_t n = w->stacks.count[id];
        /* No Python frames (e.g. the collections of interpreter shutdown): nothing to blame.
         * An async sample's task frames (its suffix) count. */
        if (n || w->th_suffix[idx]) {
            const WFrame *below = w->stacks.arena + w->stacks.start[id];
            /* the collection is what the thread does in C: it replaces a <native> leaf */
            if (n && below[0].code == 0 && below[0].offset == PSEUDO_NATIVE) {
                below++;
                n--;
            }
            w->nframes = 0;
            push_frame(w, 0, PSEUDO_GC);
            memcpy(w->frames + 1, below, n * sizeof(WFrame));
            if (walker_stacks_intern(w, w->frames, n + 1, &w->th_stack[idx]))
                return WR_READ;
        }
    }
    return WR_OK;
}

static int advance_epoch(Walker *w, const uint8_t *ibuf, int64_t now)
{
    const WConfig *c = &w->c;
    if (c->i_code_generation >= 0) {
        uint64_t gen = ld64(ibuf + (c->i_code_generation - c->interp_lo));
        if (gen != w->generation) {
            w->generation = gen;
            walker_codes_clear(w);
            return epoch_event(w, 0);
        }
        return WR_OK;
    }
    if (now - w->epoch_started_ns >= c->epoch_ns) {
        w->epoch_started_ns = now;
        walker_codes_clear(w);
        return epoch_event(w, 1);
    }
    return WR_OK;
}

/* One sample of every wanted thread: (tid, status, interp id, stack id) in w->th_*. */
int walker_sample(Walker *w)
{
    const WConfig *c = &w->c;
    int r;
    int64_t now = walker_now_ns();
    w->nth = 0;
    w->err[0] = 0;
    uint64_t interp;
    w->sample_no++;
    cpu_budget(w);
    plan_ahead(w);
    if ((r = rdp(w, c->runtime_addr + (uint64_t)c->interpreters_head, &interp, 8)))
        return r;
    int seen = 0;
    size_t isz = (size_t)(c->interp_hi - c->interp_lo);
    while (interp) {
        if (++seen > c->max_interps) {
            snprintf(w->err, sizeof w->err, "interpreter list does not end");
            return WR_READ;
        }
        if ((r = rdp(w, interp + (uint64_t)c->interp_lo, w->ibuf, isz)))
            return r;
        if (seen == 1)
            w->cached_interp = interp;
        if (seen == 1 && (r = advance_epoch(w, w->ibuf, now)))
            return r;
        if ((r = sample_interp(w, interp, w->ibuf, now)))
            return r;
        if (!c->all_threads)
            break;
        interp = c->i_next >= 0 ? ld64(w->ibuf + (c->i_next - c->interp_lo)) : 0;
    }
    if (w->ncpu)
        cpu_prune(w, now);
    threads_prune(w);
    w->pre.n = 0;
    return WR_OK;
}
