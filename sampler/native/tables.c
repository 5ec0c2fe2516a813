/* The bounded tables of the native core: interned stacks and samples, validated code objects.
 * Interning makes a repeated stack a small integer, so Python pays a list look-up for it. */
#include "walker.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STACKS_INDEX0 4096
#define KEYS_INDEX0 4096
#define CODES_CAP0 32768

int64_t walker_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

int walker_tables_init(Walker *w)
{
    w->stacks.index_cap = STACKS_INDEX0;
    w->stacks.index = calloc(w->stacks.index_cap, sizeof(int32_t));
    w->keys.index_cap = KEYS_INDEX0;
    w->keys.index = calloc(w->keys.index_cap, sizeof(int32_t));
    w->codes.cap = CODES_CAP0;
    w->codes.addr = calloc(w->codes.cap, sizeof(uint64_t));
    w->codes.kind = calloc(w->codes.cap, 1);
    w->codes.base = calloc(w->codes.cap, sizeof(uint64_t));
    w->codes.back = calloc(w->codes.cap, sizeof(uint8_t *));
    w->codes.units = calloc(w->codes.cap, sizeof(uint32_t));
    if (!w->stacks.index || !w->keys.index || !w->codes.addr || !w->codes.kind || !w->codes.base || !w->codes.back || !w->codes.units)
        return -1;
    return 0;
}

void walker_tables_free(Walker *w)
{
    free(w->stacks.arena);
    free(w->stacks.start);
    free(w->stacks.count);
    free(w->stacks.hash);
    free(w->stacks.index);
    free(w->keys.keys);
    free(w->keys.index);
    free(w->codes.addr);
    free(w->codes.kind);
    for (uint32_t j = 0; w->codes.back && j < w->codes.cap; j++)
        free(w->codes.back[j]);
    free(w->codes.base);
    free(w->codes.back);
    free(w->codes.units);
    memset(&w->stacks, 0, sizeof w->stacks);
    memset(&w->keys, 0, sizeof w->keys);
    memset(&w->codes, 0, sizeof w->codes);
}

/* Forget every interned stack and sample (ids restart; Python drops its caches with them). */
void walker_tables_reset(Walker *w)
{
    w->stacks.n = 0;
    w->stacks.arena_len = 0;
    memset(w->stacks.index, 0, w->stacks.index_cap * sizeof(int32_t));
    w->keys.n = 0;
    memset(w->keys.index, 0, w->keys.index_cap * sizeof(int32_t));
    w->resets++;
    walker_suffixes_clear(w); /* Python's suffix ids restart too */
}

void walker_codes_clear(Walker *w)
{
    if (w->codes.n)
        for (uint32_t j = 0; j < w->codes.cap; j++)
            if (w->codes.back[j]) {
                free(w->codes.back[j]);
                w->codes.back[j] = NULL;
            }
    memset(w->codes.addr, 0, w->codes.cap * sizeof(uint64_t));
    w->codes.n = 0;
    walker_suffixes_clear(w); /* their frames name code objects validated in the old epoch */
}

void walker_suffixes_clear(Walker *w)
{
    for (int i = 0; i < SUFFIX_SLOTS; i++)
        w->sfx[i].task = 0;
}

/* Rebuilds an open-addressing index (slot = entry id + 1, 0 = empty) of a table's `n` entries
 * at `cap` slots (a power of two); the stacks and the keys differ only in how an entry hashes. */
static int index_rehash(int32_t **index, uint32_t *index_cap, uint32_t cap, uint32_t n,
                        uint64_t (*entry_hash)(const void *table, uint32_t id), const void *table)
{
    int32_t *idx = calloc(cap, sizeof(int32_t));
    if (!idx)
        return -1;
    for (uint32_t id = 0; id < n; id++) {
        uint32_t j = (uint32_t)entry_hash(table, id) & (cap - 1);
        while (idx[j])
            j = (j + 1) & (cap - 1);
        idx[j] = (int32_t)id + 1;
    }
    free(*index);
    *index = idx;
    *index_cap = cap;
    return 0;
}

/* Doubles *cap (from `first`) until it holds `need` elements of `elem` bytes, reallocating *p;
 * on failure both are left as they were. */
int walker_grow(void **p, uint32_t *cap, size_t elem, uint32_t need, uint32_t first)
{
    if (need <= *cap)
        return 0;
    uint32_t n = *cap ? *cap : first;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, (size_t)n * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static uint64_t stack_hash(const WFrame *f, uint32_t n)
{
    uint64_t h = n;
    for (uint32_t i = 0; i < n; i++)
        h = mix(mix(mix(h, f[i].code), (uint64_t)f[i].offset), (uint64_t)(int64_t)f[i].opcode);
    return h | 1;
}

static uint64_t stack_entry_hash(const void *table, uint32_t id)
{
    return ((const WStacks *)table)->hash[id];
}

int walker_stacks_intern(Walker *w, const WFrame *frames, uint32_t n, uint32_t *id)
{
    WStacks *s = &w->stacks;
    uint64_t h = stack_hash(frames, n);
    uint32_t mask = s->index_cap - 1;
    uint32_t j = (uint32_t)h & mask;
    while (s->index[j]) {
        uint32_t cand = (uint32_t)s->index[j] - 1;
        if (s->hash[cand] == h && s->count[cand] == n &&
            memcmp(s->arena + s->start[cand], frames, n * sizeof(WFrame)) == 0) {
            *id = cand;
            return 0;
        }
        j = (j + 1) & mask;
    }
    if (s->n + 1 > s->cap) {
        uint32_t cap = s->cap, c2 = s->cap, c3 = s->cap;
        if (walker_grow((void **)&s->start, &cap, sizeof(uint64_t), s->n + 1, 64) ||
            walker_grow((void **)&s->count, &c2, sizeof(uint32_t), s->n + 1, 64) ||
            walker_grow((void **)&s->hash, &c3, sizeof(uint64_t), s->n + 1, 64))
            return -1;
        s->cap = cap;
    }
    if (s->arena_len + n > s->arena_cap) {
        size_t cap = s->arena_cap ? s->arena_cap : 4096;
        while (cap < s->arena_len + n)
            cap *= 2;
        WFrame *a = realloc(s->arena, cap * sizeof(WFrame));
        if (!a)
            return -1;
        s->arena = a;
        s->arena_cap = cap;
    }
    memcpy(s->arena + s->arena_len, frames, n * sizeof(WFrame));
    s->start[s->n] = s->arena_len;
    s->count[s->n] = n;
    s->hash[s->n] = h;
    s->arena_len += n;
    s->index[j] = (int32_t)s->n + 1;
    *id = s->n++;
    if (s->n * 2 > s->index_cap && index_rehash(&s->index, &s->index_cap, s->index_cap * 2, s->n, stack_entry_hash, s))
        return -1;
    return 0;
}

static uint64_t key_hash(uint64_t tid, uint32_t status, int64_t interp_id, uint32_t stack, uint32_t suffix)
{
    return mix(mix(mix(mix(tid, status), (uint64_t)interp_id), stack), suffix) | 1;
}

static uint64_t key_entry_hash(const void *table, uint32_t id)
{
    const WKey *e = &((const WKeys *)table)->keys[id];
    return key_hash(e->tid, e->status, e->interp_id, e->stack, e->suffix);
}

int walker_key_intern(Walker *w, uint64_t tid, uint32_t status, int64_t interp_id, uint32_t stack, uint32_t suffix,
                      uint32_t *id)
{
    WKeys *k = &w->keys;
    uint32_t mask = k->index_cap - 1;
    uint32_t j = (uint32_t)key_hash(tid, status, interp_id, stack, suffix) & mask;
    while (k->index[j]) {
        WKey *e = &k->keys[k->index[j] - 1];
        if (e->tid == tid && e->status == status && e->interp_id == interp_id && e->stack == stack &&
            e->suffix == suffix) {
            *id = (uint32_t)k->index[j] - 1;
            return 0;
        }
        j = (j + 1) & mask;
    }
    if (walker_grow((void **)&k->keys, &k->cap, sizeof(WKey), k->n + 1, 64))
        return -1;
    WKey *e = &k->keys[k->n];
    e->tid = tid;
    e->status = status;
    e->interp_id = interp_id;
    e->stack = stack;
    e->suffix = suffix;
    k->index[j] = (int32_t)k->n + 1;
    *id = k->n++;
    if (k->n * 2 > k->index_cap && index_rehash(&k->index, &k->index_cap, k->index_cap * 2, k->n, key_entry_hash, k))
        return -1;
    return 0;
}
