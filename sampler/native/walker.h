/* The native sampling core's shared declarations: the configuration Python hands over at attach
 * (every offset comes from sampler/cpython, none is written here), the tables that keep a sample
 * cheap, and the walker state. */
#ifndef HEATLINE_WALKER_H
#define HEATLINE_WALKER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <sys/uio.h>

/* Outcomes of every step of a sample. */
enum {
    WR_OK = 0,
    WR_TORN = 1,    /* the copy is not one moment of the stack: retried */
    WR_READ = 2,    /* a failed sample (ReadError) */
    WR_GONE = 3,    /* the target exited (ProcessGoneError) */
    WR_PERM = 4,    /* reading was refused (ProcessPermissionError) */
    WR_PYERR = 5,   /* a Python callback raised: the exception is set */
    WR_SKIP = 6,    /* the thread is left out of this sample (exception mode's guard) */
};

/* Pseudo stack entries (code address 0): Python maps them to GC_FRAME, TRUNCATED_FRAME and
 * NATIVE_FRAME. */
#define PSEUDO_GC 1
#define PSEUDO_TRUNCATED 2
#define PSEUDO_NATIVE 3

typedef struct {
    /* runtime */
    uint64_t runtime_addr;
    int64_t interpreters_head;
    int gil_kind; /* 0: _PyRuntime (<=3.11), 1: interpreter, 2: per-thread holds_gil */
    int64_t rt_gil_holder, rt_gil_locked;
    /* interpreter (offsets relative to the interpreter state) */
    int64_t interp_lo, interp_hi;
    int64_t i_threads_head, i_next, i_id, i_gc_collecting, i_gil_holder, i_gil_locked, i_threads_main,
        i_code_generation;
    /* thread state */
    int64_t tstate_size, t_interp, t_next, t_thread_id, t_native_thread_id, t_holds_gil, t_exc_current,
        t_exc_info, t_exc_state, t_datastack_chunk, t_datastack_top, t_root, t_cframe, cf_current_frame;
    int root_is_cframe;
    int64_t err_value, err_previous, err_item_size;
    uint64_t none_addr;
    /* frames */
    int frame_is_object;
    int64_t f_previous, f_code, f_lasti, f_instr_ptr, f_owner, frame_read, lasti_scale, code_adaptive;
    uint64_t code_tag_mask;
    uint8_t skip_owner[256];
    /* stack chunks */
    int64_t chunk_previous, chunk_top, chunk_data, chunk_min_bytes, max_chunk_bytes;
    int64_t max_chunks, max_depth, max_walk, max_threads, max_interps;
    int64_t guard_window_ns, epoch_ns, cpu_reuse_ns;
    /* identity */
    uint64_t main_pthread;
    int64_t tid_offset; /* -2: not inferred yet, -1: none fits */
    int pid;
    /* what is sampled */
    int mode; /* 0 wall, 1 cpu, 2 gil, 3 exception */
    int all_threads, gc;
    /* --async-mode running (walker.c, async_cut): each thread's running asyncio task cuts its
     * stack at the task's coroutine frame. a_running is the thread-state offset of the running
     * task (3.14+: set by Python once the target's AsyncioDebug table is found; -1 asks
     * Python's running_cb). */
    int async_running;
    int64_t a_running;
    int64_t a_suffix_reuse_ns; /* how long a suffix is reused unasked (its bytes still re-read) */
    /* --opcodes: each frame carries the instruction byte at its offset; --native: <native>
     * frames where C code runs (walker.c, natives_and_opcodes). call_op is the target version's
     * call family (sampler/cpython/opcodes.py's OpcodeTable.is_call), never written here.
     * prefix_op: its EXTENDED_ARG prefixes (OpcodeTable.prefixes); op_read: the bytes read at
     * an instruction address to see past them (walker.c, named_opcode). */
    int opcodes, native;
    uint8_t call_op[256];
    uint8_t prefix_op[256];
    int64_t op_read;
    int64_t f_is_entry; /* 3.11: a frame the eval loop was entered for (called from C); else -1 */
} WConfig;

/* One stack entry. `opcode` is -1 unless recorded; `spare` is always 0, so that stacks compare
 * and hash as bytes. */
typedef struct {
    uint64_t code;
    int64_t offset;
    int32_t opcode;
    int32_t spare;
} WFrame;

/* A copied stack chunk. */
typedef struct {
    uint64_t addr;
    uint8_t *buf;
    size_t len, cap;
} WChunk;

/* Interned stacks: id -> frames in an arena, and a hash index. */
typedef struct {
    WFrame *arena;
    size_t arena_len, arena_cap;
    uint64_t *start;  /* per id: arena index */
    uint32_t *count;  /* per id: frame count */
    uint64_t *hash;   /* per id */
    uint32_t n, cap;
    int32_t *index;   /* open addressing: id + 1, 0 = empty */
    uint32_t index_cap;
} WStacks;

/* Interned samples: (tid, status, interp id, stack id) -> key id. */
typedef struct {
    uint64_t tid;
    int64_t interp_id;
    uint32_t status, stack;
    uint32_t suffix; /* --async-aware: Python's id of the frames after the stack (0: none) */
} WKey;

typedef struct {
    WKey *keys;
    uint32_t n, cap;
    int32_t *index;
    uint32_t index_cap;
} WKeys;

/* Code objects validated in this epoch: address -> 1 (code), 2 (shim) or 4 (entry shim), and
 * for --opcodes and --native (Python's answers): where its instruction bytes start (0: unknown)
 * and, 3.11/3.12, per 2-byte code unit how many units back its instruction starts (`back`,
 * `units` of them; NULL: each unit is its own), since a caller's prev_instr is on its call's
 * last inline cache unit there. */
typedef struct {
    uint64_t *addr;
    uint8_t *kind;
    uint64_t *base;
    uint8_t **back;
    uint32_t *units;
    uint32_t n, cap; /* cap is a power of two */
} WCodes;

/* What code_kind knows of one code object, for reading its frames' instruction bytes. */
typedef struct {
    uint64_t base;
    const uint8_t *back;
    uint32_t units;
} WCodeBytes;

/* Kept-open /proc/PID/task/TID/stat descriptors with the last state read. */
typedef struct {
    int tid;
    int fd;
    int state; /* ON_CPU/UNKNOWN bits */
    int64_t read_ns, seen_ns;
} WCpu;

/* Frame addresses walked: address -> index of the first reported frame at or below it. */
typedef struct {
    uint64_t *addr;
    uint32_t *value;
    uint32_t *stamp;
    uint32_t cap, current, n;
} WStarts;

/* --async-aware: the frames after a running task's own (Python's suffix id), kept with the remote
 * ranges Python made them from and the bytes those held, reused while they read the same
 * (walker.c, cached_suffix). */
#define SUFFIX_SLOTS 16
#define SUFFIX_RANGES 64
#define SUFFIX_BYTES 16384
typedef struct {
    uint64_t task; /* 0: a free slot */
    uint64_t coro_frame; /* the task's coroutine frame, where its own frames end */
    uint32_t suffix, nr;
    size_t nbytes;
    int confirmed; /* the bytes read the same right before and right after Python made it */
    int64_t made_ns;
    uint64_t addr[SUFFIX_RANGES];
    uint32_t len[SUFFIX_RANGES];
    uint8_t *snap; /* SUFFIX_BYTES */
} WSuffix;

/* A range read ahead in one vectored call, served to the first read that asks for it. */
typedef struct {
    uint64_t addr;
    size_t off;  /* into its WBatch's buf (Walker.bpre: bpre_buf) */
    size_t len, got;
} WPre;

/* Remote ranges read together in one vectored call (walker.c, batch_fetch), then looked up by
 * start address: the read-ahead and the batched re-check. */
typedef struct {
    WPre *e;
    uint32_t n, cap;
    int32_t *index; /* open addressing by address: entry + 1, 0 empty */
    uint32_t index_cap;
    uint8_t *buf;
    size_t len, buf_cap;
} WBatch;

/* What the previous sample saw of one thread: where to read ahead next time. */
typedef struct {
    uint64_t tstate, chunk, cframe, pthread;
    size_t chunk_len;
    uint32_t nf, nout;
    uint64_t *frames;   /* 3.9/3.10: the frame-object chain, top first */
    uint64_t out[16];   /* 3.11+: frames read outside the chunk copies */
    int64_t seen;
} WThread;

typedef struct {
    PyObject_HEAD
    WConfig c;
    PyObject *code_cb, *epoch_cb, *tid_cb;
    PyObject *running_cb, *suffix_cb; /* --async-aware: running task, awaiter frames (Python) */
    PyThreadState *saved; /* set while run() has the GIL released */
    WCodes codes;
    WStacks stacks;
    WKeys keys;
    WStarts starts;
    WCpu *cpu;
    int ncpu, cpu_cap;
    int64_t cpu_pruned_ns;
    int64_t cpu_cutoff_ns; /* this sample's /proc budget (cpu_budget) */
    int cpu_reads_left;
    int cpu_hint; /* where cpu_entry looks first */
    WChunk *chunks;
    int nchunks;
    WChunk spare; /* scratch for re-reads */
    uint8_t *ibuf, *tbuf, *tbuf2, *gbuf, *fbuf, *rtbuf;
    PyObject *samples; /* list: key id -> ThreadSample (None until resolved) */
    PyObject *resolve_cb;
    WFrame *frames;   /* room for 2 * max_depth + 8: <native> entries between Python frames */
    uint64_t *opaddr; /* per entry of `frames`: where its instruction byte is (0: none) */
    uint32_t nframes;
    uint64_t *walked; /* 3.9/3.10: callers' addresses, then their header bytes */
    uint8_t *walked_bytes;
    uint32_t nwalked;
    uint64_t main_tstate;
    uint64_t generation;
    int64_t epoch_started_ns;
    int reset_pending;
    uint64_t resets;
    uint64_t rng;
    /* per-call output */
    uint32_t *out;
    uint32_t nout, out_cap;
    /* one sample's threads, before GC marking */
    uint64_t *th_tid;
    int64_t *th_interp;
    uint32_t *th_status, *th_stack, *th_suffix;
    uint32_t nth, th_cap;
    WSuffix sfx[SUFFIX_SLOTS];
    uint32_t sfx_next;       /* the slot a new task takes */
    uint8_t *sfx_now;        /* SUFFIX_BYTES: the ranges as read now */
    uint64_t sfx_addr[SUFFIX_RANGES]; /* what Python's last answer depends on */
    uint32_t sfx_len[SUFFIX_RANGES];
    uint64_t sfx_hits;
    /* the last thread_frames: whether it walked (starts then hold its frames) and where it cut */
    int walk_valid;
    uint32_t walk_cut;
    WBatch pre;  /* read-ahead */
    WBatch post; /* the batched re-check of all threads (walker.c, post_serve) */
    uint64_t sys_mark; /* w->syscalls when the thread's state was taken */
    int post_usable;
    WPre bpre[16]; /* the re-check's read-ahead of frames outside the copies */
    uint32_t nbpre;
    uint8_t *bpre_buf;
    uint64_t now_b; /* the top frame pointer read last in the re-check */
    int used_fresh_outside;
    /* --opcodes, --native: the walked frames of this interpreter's threads, waiting for their
     * instruction bytes, which are read for all of them in one call (walker.c, read_pending) */
    WFrame *pend_frames;
    uint64_t *pend_op; /* per pending frame: where its instruction byte is (0: none) */
    uint8_t *pend_code; /* per pending frame: c.op_read bytes read there; the first, its opcode */
    uint32_t pend_n, pend_cap;
    uint32_t *pend_start, *pend_count, *pend_th; /* per pending thread: its frames, its th_* index */
    uint32_t npend, pend_threads_cap;
    int pf_allowed; /* first reads may be served from the read-ahead */
    WThread *threads;
    uint32_t nthreads, threads_cap, thread_cursor;
    uint64_t *order; /* tstates in the order the previous sample met them */
    uint32_t norder, order_cap, nseen;
    uint64_t cached_interp;
    int64_t sample_no;
    WThread *cur; /* the record of the thread being sampled */
    /* counters */
    uint64_t reads, syscalls, iovecs, bytes;
    char err[160];
} Walker;

int walker_sample(Walker *w);
int walker_stacks_intern(Walker *w, const WFrame *frames, uint32_t n, uint32_t *id);
int walker_tables_init(Walker *w);
void walker_tables_free(Walker *w);
void walker_tables_reset(Walker *w);
void walker_codes_clear(Walker *w);
void walker_suffixes_clear(Walker *w);
int walker_key_intern(Walker *w, uint64_t tid, uint32_t status, int64_t interp_id, uint32_t stack, uint32_t suffix,
                      uint32_t *id);
int64_t walker_now_ns(void);
void walker_cpu_close(Walker *w);
void walker_batch_free(WBatch *b);
int walker_grow(void **p, uint32_t *cap, size_t elem, uint32_t need, uint32_t first);

#endif
