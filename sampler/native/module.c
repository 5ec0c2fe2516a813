/* sampler._native: the Python face of the native walker. Only sampler/cpython/native.py uses it.
 *
 * Walker(pid, config, code_cb, epoch_cb, tid_cb, resolve_cb, samples[, running_cb, suffix_cb])
 *   sample() -> list[ThreadSample] | int error code
 *   run(next_tick_ns, interval_ns, stop_ns, max_ticks) -> (ticks, attempts, errors, gone,
 *       next_tick_ns, cost_min, cost_max, cost_total, error code)
 *   stack(id) -> tuple of (code address, offset, opcode: -1 unless recorded);
 *   key(id) -> (tid, status, interp id, stack id, suffix id: --async-aware's frames after the stack)
 *   set_async(the running task's offset in the thread state)
 */
#define _GNU_SOURCE
#include "walker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Interning tables are started over (between calls) beyond these sizes. */
#define MAX_STACKS 65536
#define MAX_ARENA_FRAMES (4u << 20)
#define MAX_KEYS 65536
#define STALL_NS 50000000LL
#define SPIN_NS 20000LL

typedef struct {
    int64_t ts_us;
    uint32_t start, n;
} WTick;

static int cfg_get(PyObject *d, const char *key, int64_t dflt, int required, int64_t *out)
{
    PyObject *v = PyDict_GetItemString(d, key);
    if (!v) {
        if (required) {
            PyErr_Format(PyExc_KeyError, "native walker config lacks %s", key);
            return -1;
        }
        *out = dflt;
        return 0;
    }
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        unsigned long long u = PyLong_AsUnsignedLongLong(v);
        if (PyErr_Occurred())
            return -1;
        x = (long long)u;
    }
    *out = x;
    return 0;
}

/* set[v] = 1 for each v in 0..255 of the iterable `items` (absent: none). */
static int byte_set(uint8_t set[256], PyObject *items)
{
    if (!items)
        return 0;
    PyObject *it = PyObject_GetIter(items), *o;
    if (!it)
        return -1;
    while ((o = PyIter_Next(it))) {
        long k = PyLong_AsLong(o);
        Py_DECREF(o);
        if (k >= 0 && k < 256)
            set[k] = 1;
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

#define REQ(field, key) if (cfg_get(d, key, 0, 1, &v)) return -1; c->field = v;
#define OPT(field, key) if (cfg_get(d, key, -1, 0, &v)) return -1; c->field = v;

static int parse_config(WConfig *c, PyObject *d)
{
    int64_t v;
    memset(c, 0, sizeof *c);
    REQ(runtime_addr, "runtime_addr") REQ(interpreters_head, "runtime.interpreters_head")
    REQ(gil_kind, "gil_kind") OPT(rt_gil_holder, "runtime.gil_holder") OPT(rt_gil_locked, "runtime.gil_locked")
    REQ(interp_lo, "interp_lo") REQ(interp_hi, "interp_hi")
    OPT(i_threads_head, "interp.threads_head") OPT(i_next, "interp.next") OPT(i_id, "interp.id")
    OPT(i_gc_collecting, "interp.gc_collecting") OPT(i_gil_holder, "interp.gil_holder")
    OPT(i_gil_locked, "interp.gil_locked") OPT(i_threads_main, "interp.threads_main")
    OPT(i_code_generation, "interp.code_object_generation")
    REQ(tstate_size, "tstate.size") REQ(t_interp, "tstate.interp") REQ(t_next, "tstate.next")
    REQ(t_thread_id, "tstate.thread_id") OPT(t_native_thread_id, "tstate.native_thread_id")
    OPT(t_holds_gil, "tstate.holds_gil") OPT(t_exc_current, "exc_current") OPT(t_exc_info, "tstate.exc_info")
    OPT(t_exc_state, "tstate.exc_state") OPT(t_datastack_chunk, "tstate.datastack_chunk")
    OPT(t_datastack_top, "tstate.datastack_top") OPT(t_root, "root") OPT(t_cframe, "tstate.cframe")
    OPT(cf_current_frame, "cframe.current_frame") REQ(root_is_cframe, "root_is_cframe")
    REQ(err_value, "err_stackitem.exc_value") REQ(err_previous, "err_stackitem.previous_item")
    REQ(err_item_size, "err_item_size") REQ(none_addr, "none_addr")
    REQ(frame_is_object, "frame_is_object") REQ(f_previous, "frame.previous") REQ(f_code, "frame.code")
    OPT(f_lasti, "frame.lasti") OPT(f_instr_ptr, "frame.instr_ptr") OPT(f_owner, "frame.owner")
    REQ(frame_read, "frame_read") REQ(lasti_scale, "lasti_scale") OPT(code_adaptive, "code.code_adaptive")
    REQ(code_tag_mask, "code_tag_mask")
    REQ(chunk_previous, "chunk.previous") REQ(chunk_top, "chunk.top") REQ(chunk_data, "chunk.data")
    REQ(chunk_min_bytes, "chunk_min_bytes") REQ(max_chunk_bytes, "max_chunk_bytes")
    REQ(max_chunks, "max_chunks") REQ(max_depth, "max_depth") REQ(max_walk, "max_walk")
    REQ(max_threads, "max_threads") REQ(max_interps, "max_interps")
    REQ(guard_window_ns, "guard_window_ns") REQ(epoch_ns, "epoch_ns") REQ(cpu_reuse_ns, "cpu_reuse_ns")
    REQ(main_pthread, "main_pthread") REQ(tid_offset, "tid_offset") REQ(pid, "pid")
    REQ(mode, "mode") REQ(all_threads, "all_threads") REQ(gc, "gc")
    if (cfg_get(d, "async_running", 0, 0, &v))
        return -1;
    c->async_running = (int)v;
    OPT(a_running, "async.running_task")
    if (cfg_get(d, "opcodes", 0, 0, &v))
        return -1;
    c->opcodes = (int)v;
    if (cfg_get(d, "native", 0, 0, &v))
        return -1;
    c->native = (int)v;
    OPT(f_is_entry, "frame.is_entry")
    if (byte_set(c->call_op, PyDict_GetItemString(d, "call_opcodes")))
        return -1;
    if (byte_set(c->prefix_op, PyDict_GetItemString(d, "prefix_opcodes")))
        return -1;
    if (cfg_get(d, "instruction_read", 1, 0, &v))
        return -1;
    c->op_read = v;
    if (cfg_get(d, "async.suffix_reuse_ns", 0, 0, &v))
        return -1;
    c->a_suffix_reuse_ns = v;
    if (byte_set(c->skip_owner, PyDict_GetItemString(d, "skip_owners")))
        return -1;
    /* Every offset is checked against the buffer it indexes: a bad table is a clean error. */
    const char *bad = NULL;
    if (c->tstate_size <= 0 || c->tstate_size > (1 << 20)) bad = "tstate.size";
    else if (c->interp_hi <= c->interp_lo || c->interp_hi - c->interp_lo > (1 << 20)) bad = "interp span";
    else if (c->frame_read < 8 || c->frame_read > 4096) bad = "frame_read";
    else if (c->max_depth < 1 || c->max_depth > (1 << 20)) bad = "max_depth";
    else if (c->max_walk < c->max_depth || c->max_walk > (1 << 22)) bad = "max_walk";
    else if (c->max_chunks < 1 || c->max_chunks > 64) bad = "max_chunks";
    else if (c->chunk_min_bytes < c->chunk_data + 8 || c->max_chunk_bytes < c->chunk_min_bytes) bad = "chunk sizes";
    else if (c->err_item_size < 8 || c->err_item_size > 64) bad = "err_item_size";
    else if (c->max_threads < 1 || c->max_interps < 1) bad = "limits";
    else if (c->pid <= 0) bad = "pid";
    else if (c->mode < 0 || c->mode > 3) bad = "mode";
    else if (c->gil_kind < 0 || c->gil_kind > 3) bad = "gil_kind";
    else if (c->gil_kind == 0 && (c->rt_gil_holder < 0 || c->rt_gil_locked < 0)) bad = "runtime gil";
    else if (c->gil_kind == 1 && (c->i_gil_locked < 0 || c->i_gil_holder < 0)) bad = "interp gil";
    else if (c->async_running && (c->frame_is_object || c->mode == 3)) bad = "async_running";
    else if (c->op_read < 1 || c->op_read > 16) bad = "instruction_read";
    int64_t tfields[] = {c->t_interp, c->t_next, c->t_thread_id, c->t_native_thread_id, c->t_holds_gil,
                         c->t_exc_current, c->t_exc_info, c->t_datastack_chunk, c->t_datastack_top, c->t_root,
                         c->t_cframe};
    for (size_t i = 0; !bad && i < sizeof tfields / sizeof tfields[0]; i++)
        if (tfields[i] >= 0 && tfields[i] + 8 > c->tstate_size)
            bad = "a thread-state offset";
    int64_t ifields[] = {c->i_threads_head, c->i_next, c->i_id, c->i_gc_collecting, c->i_gil_holder,
                         c->i_gil_locked, c->i_threads_main, c->i_code_generation};
    for (size_t i = 0; !bad && i < sizeof ifields / sizeof ifields[0]; i++)
        if (ifields[i] >= 0 && (ifields[i] < c->interp_lo || ifields[i] + 4 > c->interp_hi))
            bad = "an interpreter offset";
    int64_t ffields[] = {c->f_previous, c->f_code, c->f_lasti, c->f_instr_ptr, c->f_owner, c->f_is_entry};
    for (size_t i = 0; !bad && i < sizeof ffields / sizeof ffields[0]; i++)
        if (ffields[i] + 8 > c->frame_read && !(i == 2 && ffields[i] + 4 <= c->frame_read) && !(i >= 4 && ffields[i] < c->frame_read))
            bad = "a frame offset";
    if (!bad && c->frame_is_object && c->f_lasti < 0) bad = "frame.lasti";
    if (!bad && !c->frame_is_object && (c->f_instr_ptr < 0 || c->f_owner < 0 || c->t_datastack_chunk < 0 ||
                                        c->t_datastack_top < 0)) bad = "3.11+ frame keys";
    if (!bad && (c->root_is_cframe ? (c->t_cframe < 0 || c->cf_current_frame < 0) : c->t_root < 0)) bad = "frame root";
    if (!bad && (c->err_value + 8 > c->err_item_size || c->err_previous + 8 > c->err_item_size)) bad = "err_stackitem";
    if (!bad && (!c->all_threads || c->i_threads_head < 0) && c->i_threads_head < 0) bad = "interp.threads_head";
    if (bad) {
        PyErr_Format(PyExc_ValueError, "bad native walker config: %s", bad);
        return -1;
    }
    return 0;
}

static void walker_free_buffers(Walker *w)
{
    free(w->ibuf); free(w->tbuf); free(w->tbuf2); free(w->gbuf); free(w->fbuf); free(w->rtbuf);
    free(w->frames); free(w->opaddr); free(w->walked); free(w->walked_bytes);
    free(w->starts.addr); free(w->starts.value); free(w->starts.stamp);
    if (w->chunks)
        for (int i = 0; i < 64; i++)
            free(w->chunks[i].buf);
    free(w->chunks);
    free(w->spare.buf);
    free(w->out);
    free(w->th_tid); free(w->th_interp); free(w->th_status); free(w->th_stack); free(w->th_suffix);
    w->th_suffix = NULL;
    for (int i = 0; i < SUFFIX_SLOTS; i++) {
        free(w->sfx[i].snap);
        w->sfx[i].snap = NULL;
        w->sfx[i].task = 0;
    }
    free(w->sfx_now);
    w->sfx_now = NULL;
    w->ibuf = w->tbuf = w->tbuf2 = w->gbuf = w->fbuf = w->rtbuf = NULL;
    w->frames = NULL; w->opaddr = NULL; w->walked = NULL; w->walked_bytes = NULL; w->chunks = NULL;
    w->starts.addr = NULL; w->starts.value = NULL; w->starts.stamp = NULL;
    w->spare.buf = NULL; w->out = NULL;
    w->th_tid = NULL; w->th_interp = NULL; w->th_status = NULL; w->th_stack = NULL;
    w->nth = w->th_cap = 0;
    for (uint32_t i = 0; i < w->nthreads; i++)
        free(w->threads[i].frames);
    free(w->threads);
    free(w->order);
    free(w->bpre_buf);
    free(w->pend_frames); free(w->pend_op); free(w->pend_code);
    free(w->pend_start); free(w->pend_count); free(w->pend_th);
    w->pend_frames = NULL; w->pend_op = NULL; w->pend_code = NULL;
    w->pend_start = w->pend_count = w->pend_th = NULL;
    w->pend_n = w->pend_cap = w->npend = w->pend_threads_cap = 0;
    w->threads = NULL;
    w->order = NULL;
    w->bpre_buf = NULL;
    w->nthreads = w->threads_cap = w->norder = w->order_cap = 0;
    w->nbpre = 0;
    walker_batch_free(&w->pre);
    walker_batch_free(&w->post);
    walker_cpu_close(w);
    free(w->cpu);
    w->cpu = NULL;
    w->cpu_cap = 0;
    walker_tables_free(w);
}

static int Walker_init(Walker *w, PyObject *args, PyObject *kwds)
{
    int pid;
    PyObject *config, *code_cb, *epoch_cb, *tid_cb, *resolve_cb, *samples, *running_cb = Py_None,
        *suffix_cb = Py_None;
    (void)kwds;
    if (!PyArg_ParseTuple(args, "iO!OOOOO!|OO", &pid, &PyDict_Type, &config, &code_cb, &epoch_cb, &tid_cb,
                          &resolve_cb, &PyList_Type, &samples, &running_cb, &suffix_cb))
        return -1;
    if (w->ibuf) {
        PyErr_SetString(PyExc_RuntimeError, "Walker is already initialised");
        return -1;
    }
    if (parse_config(&w->c, config))
        return -1;
    if (w->c.pid != pid) {
        PyErr_SetString(PyExc_ValueError, "bad native walker config: pid");
        return -1;
    }
    if (w->c.async_running && (!PyCallable_Check(running_cb) || !PyCallable_Check(suffix_cb))) {
        PyErr_SetString(PyExc_ValueError, "bad native walker config: async_running needs its callbacks");
        return -1;
    }
    const WConfig *c = &w->c;
    Py_INCREF(code_cb); w->code_cb = code_cb;
    Py_INCREF(epoch_cb); w->epoch_cb = epoch_cb;
    Py_INCREF(tid_cb); w->tid_cb = tid_cb;
    Py_INCREF(resolve_cb); w->resolve_cb = resolve_cb;
    Py_INCREF(samples); w->samples = samples;
    Py_INCREF(running_cb); w->running_cb = running_cb;
    Py_INCREF(suffix_cb); w->suffix_cb = suffix_cb;
    size_t depth = (size_t)c->max_depth + 2;
    uint32_t scap = 1;
    while (scap < (uint32_t)c->max_walk * 2 + 2)
        scap *= 2;
    w->ibuf = calloc(1, (size_t)(c->interp_hi - c->interp_lo));
    w->tbuf = calloc(1, (size_t)c->tstate_size);
    w->tbuf2 = calloc(1, (size_t)(c->tstate_size > c->frame_read ? c->tstate_size : c->frame_read));
    w->gbuf = calloc(1, (size_t)c->tstate_size);
    w->fbuf = calloc(1, (size_t)c->frame_read);
    w->rtbuf = calloc(1, 4096);
    /* <native> entries: at most one beside each Python frame, and a leaf one */
    w->frames = calloc(2 * depth + 4, sizeof(WFrame));
    w->opaddr = calloc(2 * depth + 4, sizeof(uint64_t));
    w->walked = calloc(depth, sizeof(uint64_t));
    w->walked_bytes = calloc(depth, (size_t)c->frame_read);
    w->starts.cap = scap;
    w->starts.addr = calloc(scap, sizeof(uint64_t));
    w->starts.value = calloc(scap, sizeof(uint32_t));
    w->starts.stamp = calloc(scap, sizeof(uint32_t));
    w->starts.current = 1;
    w->chunks = calloc(64, sizeof(WChunk));
    w->generation = UINT64_MAX;
    w->epoch_started_ns = walker_now_ns();
    w->rng = 0x853c49e6748fea9bULL ^ (uint64_t)walker_now_ns() ^ ((uint64_t)pid << 32);
    if (!w->ibuf || !w->tbuf || !w->tbuf2 || !w->gbuf || !w->fbuf || !w->rtbuf || !w->frames || !w->opaddr ||
        !w->walked || !w->walked_bytes || !w->starts.addr || !w->starts.value || !w->starts.stamp || !w->chunks ||
        walker_tables_init(w)) {
        walker_free_buffers(w);
        PyErr_NoMemory();
        return -1;
    }
    if (c->rt_gil_holder >= 4096 - 8 || c->rt_gil_locked >= 4096 - 8) {
        /* the runtime GIL span is read into a page-sized buffer */
        if (c->gil_kind == 0 && abs((int)(c->rt_gil_holder - c->rt_gil_locked)) > 4000) {
            walker_free_buffers(w);
            PyErr_SetString(PyExc_ValueError, "bad native walker config: runtime gil span");
            return -1;
        }
    }
    return 0;
}

static void Walker_dealloc(Walker *w)
{
    walker_free_buffers(w);
    Py_CLEAR(w->code_cb);
    Py_CLEAR(w->epoch_cb);
    Py_CLEAR(w->tid_cb);
    Py_CLEAR(w->resolve_cb);
    Py_CLEAR(w->samples);
    Py_CLEAR(w->running_cb);
    Py_CLEAR(w->suffix_cb);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static int ready(Walker *w)
{
    if (!w->ibuf) {
        PyErr_SetString(PyExc_RuntimeError, "the native walker is closed");
        return 0;
    }
    return 1;
}

/* Start the interning over when it grew too big; Python's caches follow (epoch kind 2). */
static int maybe_reset(Walker *w)
{
    if (w->stacks.n < MAX_STACKS && w->stacks.arena_len < MAX_ARENA_FRAMES && w->keys.n < MAX_KEYS)
        return 0;
    walker_tables_reset(w);
    if (PyList_SetSlice(w->samples, 0, PyList_GET_SIZE(w->samples), NULL))
        return -1;
    PyObject *r = PyObject_CallFunction(w->epoch_cb, "i", 2);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int tables_full(Walker *w)
{
    return w->stacks.n >= MAX_STACKS || w->stacks.arena_len >= MAX_ARENA_FRAMES || w->keys.n >= MAX_KEYS;
}

/* The interned keys of the sample just taken, appended to w->out. */
static int emit_keys(Walker *w)
{
    if (walker_grow((void **)&w->out, &w->out_cap, sizeof(uint32_t), w->nout + w->nth, 1024))
        return -1;
    for (uint32_t i = 0; i < w->nth; i++)
        if (walker_key_intern(w, w->th_tid[i], w->th_status[i], w->th_interp[i], w->th_stack[i], w->th_suffix[i],
                              &w->out[w->nout + i]))
            return -1;
    w->nout += w->nth;
    return 0;
}

/* ThreadSample for key `k` (new reference): the cached one, else resolved by Python. */
static PyObject *sample_for(Walker *w, uint32_t k)
{
    PyObject *s = NULL;
    if ((Py_ssize_t)k < PyList_GET_SIZE(w->samples)) {
        s = PyList_GET_ITEM(w->samples, k);
        if (s != Py_None) {
            Py_INCREF(s);
            return s;
        }
    }
    return PyObject_CallFunction(w->resolve_cb, "I", k);
}

static PyObject *samples_list(Walker *w, uint32_t start, uint32_t n)
{
    PyObject *list = PyList_New(n);
    if (!list)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        PyObject *s = sample_for(w, w->out[start + i]);
        if (!s) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, s);
    }
    return list;
}

static PyObject *Walker_sample(Walker *w, PyObject *unused)
{
    (void)unused;
    if (!ready(w) || maybe_reset(w))
        return NULL;
    int r = walker_sample(w);
    if (r == WR_PYERR)
        return NULL;
    if (r)
        return Py_BuildValue("(is)", r, w->err);
    w->nout = 0;
    if (emit_keys(w))
        return PyErr_NoMemory();
    return samples_list(w, 0, w->nout);
}

static uint64_t rng_next(Walker *w)
{
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return w->rng = x;
}

static PyObject *Walker_run(Walker *w, PyObject *args)
{
    long long next_tick, interval, stop, max_ticks;
    if (!PyArg_ParseTuple(args, "LLLL", &next_tick, &interval, &stop, &max_ticks))
        return NULL;
    if (!ready(w) || maybe_reset(w))
        return NULL;
    if (interval <= 0) {
        PyErr_SetString(PyExc_ValueError, "interval_ns must be positive");
        return NULL;
    }
    WTick *ticks = NULL;
    size_t nticks = 0, ticks_cap = 0;
    long long attempts = 0, errors = 0, good = 0;
    int gone = 0, failure = WR_OK, nomem = 0;
    int64_t cmin = 0, cmax = 0, ctotal = 0;
    w->nout = 0;
    w->saved = PyEval_SaveThread();
    for (;;) {
        int64_t now = walker_now_ns();
        if (now >= stop || good >= max_ticks)
            break;
        if (now < next_tick) {
            int64_t until = next_tick < stop ? next_tick : stop;
            /* A wait this short is spun: going to sleep for it hands the CPU to whoever is
             * runnable, and on a busy machine the wake-up then comes a scheduler slice late,
             * which caps high rates far below what the walk costs. Longer waits sleep. */
            if (until - now <= SPIN_NS)
                continue;
            struct timespec ts = {(time_t)(until / 1000000000LL), (long)(until % 1000000000LL)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            continue;
        }
        /* jitter against aliasing, mean unchanged */
        double u = (double)(rng_next(w) >> 11) * (1.0 / 9007199254740992.0);
        next_tick += (long long)((double)interval * (0.5 + u));
        if (now - next_tick > STALL_NS)
            next_tick = now; /* a stall: don't burst through the backlog */
        int r = walker_sample(w);
        int64_t done = walker_now_ns();
        if (r == WR_GONE) {
            gone = 1;
            break;
        }
        attempts++;
        if (r == WR_PYERR || r == WR_PERM) {
            failure = r;
            break;
        }
        if (r) {
            errors++;
            break;
        }
        if (nticks == ticks_cap) {
            size_t cap = ticks_cap ? ticks_cap * 2 : 256;
            WTick *t = realloc(ticks, cap * sizeof(WTick));
            if (!t) {
                nomem = 1;
                break;
            }
            ticks = t;
            ticks_cap = cap;
        }
        uint32_t start = w->nout;
        if (emit_keys(w)) {
            nomem = 1;
            break;
        }
        ticks[nticks].ts_us = done / 1000;
        ticks[nticks].start = start;
        ticks[nticks].n = w->nth;
        nticks++;
        good++;
        int64_t cost = done - now;
        if (good == 1 || cost < cmin)
            cmin = cost;
        if (cost > cmax)
            cmax = cost;
        ctotal += cost;
        if (tables_full(w))
            break; /* the next call starts the tables over */
    }
    PyEval_RestoreThread(w->saved);
    w->saved = NULL;
    if (failure == WR_PYERR || nomem) {
        free(ticks);
        return nomem ? PyErr_NoMemory() : NULL;
    }
    PyObject *list = PyList_New((Py_ssize_t)nticks);
    if (!list) {
        free(ticks);
        return NULL;
    }
    for (size_t i = 0; i < nticks; i++) {
        PyObject *samples = samples_list(w, ticks[i].start, ticks[i].n);
        PyObject *tick = samples ? Py_BuildValue("(LN)", (long long)ticks[i].ts_us, samples) : NULL;
        if (!tick) {
            Py_DECREF(list);
            free(ticks);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, tick);
    }
    free(ticks);
    return Py_BuildValue("(NLLiLLLLi)", list, attempts, errors, gone, next_tick, (long long)cmin,
                         (long long)cmax, (long long)ctotal, failure);
}

static PyObject *Walker_stack(Walker *w, PyObject *arg)
{
    unsigned long id = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred())
        return NULL;
    if (!ready(w))
        return NULL;
    if (id >= w->stacks.n) {
        PyErr_SetString(PyExc_IndexError, "no such stack");
        return NULL;
    }
    uint32_t n = w->stacks.count[id];
    const WFrame *f = w->stacks.arena + w->stacks.start[id];
    PyObject *t = PyTuple_New(n);
    if (!t)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        PyObject *e = Py_BuildValue("(KLi)", (unsigned long long)f[i].code, (long long)f[i].offset, (int)f[i].opcode);
        if (!e) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, e);
    }
    return t;
}

static PyObject *Walker_key(Walker *w, PyObject *arg)
{
    unsigned long id = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred())
        return NULL;
    if (!ready(w))
        return NULL;
    if (id >= w->keys.n) {
        PyErr_SetString(PyExc_IndexError, "no such key");
        return NULL;
    }
    WKey *k = &w->keys.keys[id];
    return Py_BuildValue("(LILII)", (long long)k->tid, k->status, (long long)k->interp_id, k->stack, k->suffix);
}

/* --async-aware on 3.14+: where the thread state keeps the running task, once Python has found
 * the target's AsyncioDebug table (asyncio may be imported after attach). Called between samples
 * or from running_cb; used from the next thread read on. */
static PyObject *Walker_set_async(Walker *w, PyObject *arg)
{
    long long running = PyLong_AsLongLong(arg);
    if (running == -1 && PyErr_Occurred())
        return NULL;
    if (!ready(w))
        return NULL;
    if (!w->c.async_running || running < 0 || running > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "bad native walker async offset");
        return NULL;
    }
    w->c.a_running = running;
    Py_RETURN_NONE;
}

static PyObject *Walker_stats(Walker *w, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("{sKsKsKsIsIsIsKsisK}", "syscalls", (unsigned long long)w->syscalls, "iovecs",
                         (unsigned long long)w->iovecs, "bytes", (unsigned long long)w->bytes, "stacks", w->stacks.n,
                         "keys", w->keys.n, "codes", w->codes.n, "resets", (unsigned long long)w->resets,
                         "cpu_fds", w->ncpu, "suffix_hits", (unsigned long long)w->sfx_hits);
}

static PyObject *Walker_close(Walker *w, PyObject *unused)
{
    (void)unused;
    walker_free_buffers(w);
    Py_RETURN_NONE;
}

static PyMethodDef Walker_methods[] = {
    {"sample", (PyCFunction)Walker_sample, METH_NOARGS, "One sample: list of ThreadSample, or (code, message)."},
    {"run", (PyCFunction)Walker_run, METH_VARARGS, "The timed sampling loop, GIL released."},
    {"stack", (PyCFunction)Walker_stack, METH_O, "An interned stack: ((code, offset, opcode), ...)."},
    {"key", (PyCFunction)Walker_key, METH_O, "An interned sample: (tid, status, interp id, stack id)."},
    {"stats", (PyCFunction)Walker_stats, METH_NOARGS, "Counters."},
    {"set_async", (PyCFunction)Walker_set_async, METH_O, "--async-aware: the running task's offset."},
    {"close", (PyCFunction)Walker_close, METH_NOARGS, "Free the buffers and descriptors."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WalkerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sampler._native.Walker",
    .tp_basicsize = sizeof(Walker),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The native stack walker of one target process.",
    .tp_methods = Walker_methods,
    .tp_init = (initproc)Walker_init,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Walker_dealloc,
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "sampler._native", "heatline's native sampling core.", -1, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    if (PyType_Ready(&WalkerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (!m)
        return NULL;
    Py_INCREF(&WalkerType);
    if (PyModule_AddObject(m, "Walker", (PyObject *)&WalkerType) < 0) {
        Py_DECREF(&WalkerType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "TORN", WR_TORN);
    PyModule_AddIntConstant(m, "READ", WR_READ);
    PyModule_AddIntConstant(m, "GONE", WR_GONE);
    PyModule_AddIntConstant(m, "PERM", WR_PERM);
    PyModule_AddIntConstant(m, "PSEUDO_GC", PSEUDO_GC);
    PyModule_AddIntConstant(m, "PSEUDO_TRUNCATED", PSEUDO_TRUNCATED);
    PyModule_AddIntConstant(m, "PSEUDO_NATIVE", PSEUDO_NATIVE);
    /* what this build does beyond the plain walk (native.py's NATIVE_FEATURES) */
    PyModule_AddObject(m, "FEATURES", Py_BuildValue("(ss)", "opcodes", "native"));
    return m;
}
