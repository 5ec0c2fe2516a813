"""Thread names (`threading.Thread.name`) read out of the target's memory.

The path, per interpreter: `sys.modules` (the interpreter state's modules dict) -> the
`threading` module -> its globals -> `_active` (dict: ident int -> Thread) -> each Thread's
instance attributes -> `_name` (a str). Nothing is evaluated in the target: the dicts are
walked as data, so only keys that are compact str objects can be matched. The dict, attribute
and int readers are `RemoteObjects`, public for other readers of Python-level state (the asyncio
reader of 3.11-3.13 reaches `asyncio.tasks`' tables the same way).

Cost: what earlier calls found is remembered and re-checked, never trusted blindly. Before
3.14, a dict whose `ma_version_tag` is unchanged holds what it held (`sys.modules`, threading's
globals, `_active`: one read each); otherwise (and always from 3.14, whose dicts have no
version) the entry that held a key last time is checked first and
only then is the table searched. Thread idents come from the hashes cached in `_active`'s
entries. Each Thread then costs its attribute slot and its name, read anew every call (a
renamed thread's new name may sit where the old one did). Reads of one call go through a page
cache, so objects allocated side by side cost one read.

Struct offsets come from the runtime's layout (`static_layouts.py`, measured from headers);
`RULES` below holds what the headers do not say: the layout of the dict tables and module
objects that were private to `.c` files in old versions, flag bits, and how instance
attributes are reached in each version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from sampler.cpython.code_objects import StringReader
from sampler.cpython.runtime import Runtime
from sampler.errors import HeatlineError, ReadError
from sampler.target.memory import I64, U32, U64, RemoteMemory
from sampler.target.threads import comm

MAX_THREADS = 4096  # entries of `_active` looked at
MAX_DICT_ENTRIES = 1 << 18  # larger dicts are taken for garbage
MAX_DICT_LOG2_SIZE = 20
MAX_KEY_COMPARES = 1 << 16  # str keys decoded while searching one dict for a name
MAX_LONG_DIGITS = 3  # a thread ident is an unsigned 64-bit value: at most 3 digits of 30 bits
MAX_INTERPS = 64  # interpreters whose look-up state is kept
MAX_HINTS = 1024  # remembered entry positions per interpreter
MAX_PAGES = 128  # pages kept during one call
MAX_VERSIONS = 256  # dicts whose version tag is remembered per interpreter
PAGE = 4096

u64 = U64.unpack_from
i64 = I64.unpack_from
u32 = U32.unpack_from

# Offsets of structs that the installed headers do not define: PyDictKeysObject and
# PyDictKeyEntry before 3.11 (Objects/dict-common.h: dk_refcnt, dk_size, dk_lookup, dk_usable,
# dk_nentries, then dk_indices; entries are {me_hash, me_key, me_value}), and PyModuleObject in
# 3.9 (Objects/moduleobject.c: md_dict right after the object header).
_DICT_PRIVATE_39 = {
    "dictkeys.dk_size": 8,
    "dictkeys.dk_usable": 24,
    "dictkeys.dk_nentries": 32,
    "dictkeys.dk_indices": 40,
    "dictentry.size": 24,
    "dictentry.me_hash": 0,
    "dictentry.me_key": 8,
    "dictentry.me_value": 16,
}


@dataclass(frozen=True)
class Rules:
    """Per-version facts about dicts, instance attributes and ints that are not offsets."""

    # "dk_size": the index table has dk_size slots whose width follows from dk_size (1 byte up
    # to 0xff slots, 2 up to 0xffff, 4 up to 0xffffffff, else 8); "log2": it is
    # 1 << dk_log2_index_bytes bytes long.
    index_table: str
    # dk_kind values whose entries are PyDictUnicodeEntry (no cached hash); empty before 3.11,
    # where every entry is a PyDictKeyEntry.
    unicode_kinds: frozenset[int] = frozenset()
    # Py_TPFLAGS_MANAGED_DICT (0: instance dicts are only at tp_dictoffset).
    managed_dict_flag: int = 0
    # Py_TPFLAGS_INLINE_VALUES: attribute values right after the object (tp_basicsize).
    inline_values_flag: int = 0
    # Where the managed dict pointer sits, relative to the object (in the pre-header).
    managed_dict_slot: int = 0
    # 3.11: where the values array pointer sits when no dict was made (0: no such slot).
    managed_values_slot: int = 0
    # 3.12: the managed dict slot holds either a dict or (values - 1), told apart by bit 0.
    tagged_values: bool = False
    # 3.12+: ints carry lv_tag (sign in bits 0-1, 2 = negative; digit count from bit 3)
    # instead of a signed ob_size.
    long_tag: bool = False
    digit_bits: int = 30
    # hash(n) == n for 0 <= n < 2**61 - 1 (64-bit builds). A thread ident is a pthread_t, on
    # Linux the address of the thread's `struct pthread` (below this bound), so the hash cached
    # in an int-keyed dict entry is the ident itself; other keys are read as ints.
    hash_is_int_below: int = 1 << 56
    heaptype_flag: int = 1 << 9  # Py_TPFLAGS_HEAPTYPE: the type has ht_cached_keys
    # Dicts carry ma_version_tag, changed by every mutation (gone in 3.14: without it nothing
    # is taken as unchanged, and the remembered entry positions keep look-ups cheap).
    dict_version: bool = True
    # Offsets the headers of this version do not show (structs private to .c files).
    private: dict[str, int] = field(default_factory=dict)


_RULES_313 = Rules(
    "log2",
    frozenset({1, 2}),
    managed_dict_flag=1 << 4,
    inline_values_flag=1 << 2,
    managed_dict_slot=-24,
    long_tag=True,
)
_RULES_314 = dataclasses.replace(_RULES_313, dict_version=False)

RULES: dict[tuple[int, int], Rules] = {
    (3, 9): Rules("dk_size", private={**_DICT_PRIVATE_39, "module.md_dict": 16}),
    (3, 10): Rules("dk_size", private=_DICT_PRIVATE_39),
    # DICT_KEYS_GENERAL = 0, DICT_KEYS_UNICODE = 1, DICT_KEYS_SPLIT = 2.
    (3, 11): Rules(
        "log2", frozenset({1, 2}), managed_dict_flag=1 << 4, managed_dict_slot=-24, managed_values_slot=-32
    ),
    (3, 12): Rules(
        "log2",
        frozenset({1, 2}),
        managed_dict_flag=1 << 4,
        managed_dict_slot=-24,
        tagged_values=True,
        long_tag=True,
    ),
    (3, 13): _RULES_313,
    # 3.14 and 3.15 keep 3.13's flag bits, pre-header (MANAGED_DICT_OFFSET = -3 words in GIL
    # builds), dict kinds and lv_tag ints, but dicts lost their version tag; their struct
    # offsets come from their own headers.
    (3, 14): _RULES_314,
    (3, 15): _RULES_314,
}

_COMMON_KEYS = (
    "interp.modules",
    "module.md_dict",
    "object.ob_type",
    "type.tp_basicsize",
    "type.tp_flags",
    "type.tp_dictoffset",
    "heaptype.ht_cached_keys",
    "long.ob_digit",
    "dict.ma_keys",
    "dict.ma_values",
    "dictkeys.dk_usable",
    "dictkeys.dk_nentries",
    "dictkeys.dk_indices",
    "dictentry.size",
    "dictentry.me_hash",
    "dictentry.me_key",
    "dictentry.me_value",
    "unicode.state",
    "unicode.length",
    "unicode.ascii_size",
    "unicode.compact_size",
)


def required_keys(rules: Rules) -> tuple[str, ...]:
    """The layout keys `ThreadNames` reads with these rules."""
    keys = list(_COMMON_KEYS)
    if rules.dict_version:
        keys.append("dict.ma_version_tag")
    keys.append("long.lv_tag" if rules.long_tag else "long.ob_size")
    if rules.index_table == "log2":
        keys += ["dictkeys.dk_log2_size", "dictkeys.dk_log2_index_bytes", "dictkeys.dk_kind", "dictvalues.values"]
        keys += ["dictunicodeentry.size", "dictunicodeentry.me_key", "dictunicodeentry.me_value"]
    else:
        keys.append("dictkeys.dk_size")
    if rules.inline_values_flag:
        keys += ["dictvalues.capacity", "dictvalues.valid"]
    return tuple(keys)


class _PageReads:
    """`read` through a cache of whole pages, emptied at the start of each call.

    A page holding any byte of a live object is mapped, so reading all of it cannot fail where
    the object's own read would succeed; if it does anyway, the exact read is made instead.
    """

    def __init__(self, memory: RemoteMemory, max_pages: int = MAX_PAGES) -> None:
        self.memory = memory
        self.max_pages = max_pages
        self.pages: dict[int, bytes] = {}

    def reset(self) -> None:
        self.pages.clear()

    def read(self, addr: int, size: int) -> bytes:
        base = addr & ~(PAGE - 1)
        start = addr - base
        if start + size <= PAGE:
            page = self.pages.get(base)
            if page is None and len(self.pages) < self.max_pages:
                try:
                    page = self.memory.read(base, PAGE)
                except ReadError:
                    page = b""
                self.pages[base] = page
            if page:
                return page[start : start + size]
        return self.memory.read(addr, size)

    def u64(self, addr: int) -> int:
        return u64(self.read(addr, 8), 0)[0]


@dataclass
class _Keys:
    """One PyDictKeysObject: where entry `i` is and how it is laid out."""

    addr: int
    entries: int  # address of entry 0
    entry_size: int
    key_off: int
    value_off: int
    hash_off: int  # -1: entries carry no hash (str-keyed tables, 3.11+)
    nentries: int
    capacity: int  # dk_usable + dk_nentries: fixed for the life of a keys object


@dataclass
class LookupState:
    """What one interpreter's earlier calls found; every item is re-checked before use."""

    # name -> addresses of str objects that were found equal to it (interned keys repeat).
    key_ptrs: dict[str, set[int]] = field(default_factory=dict)
    # (keys table, name) -> entry index holding it.
    hints: dict[tuple[int, str], int] = field(default_factory=dict)
    # (keys table, name) -> (capacity, entries already compared) when the name was absent.
    absent: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    # (dict, name) -> (ma_version_tag, value) of the last look-up.
    lookups: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    # dict -> (ma_version_tag, items) of the last listing.
    listings: dict[int, tuple[int, list[tuple[int, int, int | None]]]] = field(default_factory=dict)

    def trim(self) -> None:
        if len(self.hints) > MAX_HINTS or len(self.absent) > MAX_HINTS:
            self.hints.clear()
            self.absent.clear()
        if len(self.lookups) > MAX_VERSIONS or len(self.listings) > MAX_VERSIONS:
            self.lookups.clear()
            self.listings.clear()


class RemoteObjects:
    """Reads the target's dicts, objects' attributes and small ints as data (the readers
    `ThreadNames` and the asyncio reader share).

    A reading is made of calls inside `with objects.call(...)`: it starts with empty page and
    type caches and turns any inconsistency into `ReadError`. What look-ups found is kept in a
    `LookupState` per interpreter (`lookup_state`) and re-checked on the next reading.
    """

    def __init__(self, memory: RemoteMemory, runtime: Runtime, max_pages: int = MAX_PAGES) -> None:
        """`max_pages`: how many pages one call keeps (a reader of many objects wants more)."""
        self.memory = memory
        self.runtime = runtime
        self.rules = RULES.get(runtime.minor)
        layout = dict(self.rules.private) if self.rules else {}
        layout.update(runtime.layout)
        self.L = layout
        self.missing = [k for k in required_keys(self.rules) if k not in layout] if self.rules else []
        self.supported = self.rules is not None and not self.missing
        self._reads = _PageReads(memory, max_pages)
        # StringReader only calls `read`, so it can share the call's page cache.
        self.strings = StringReader(self._reads, runtime)  # type: ignore[arg-type]
        self._interps: dict[int, LookupState] = {}
        self._types: dict[int, tuple[int, int, int, int]] = {}

    @contextlib.contextmanager
    def call(self, what: str) -> Iterator[None]:
        """One reading: fresh caches, and only `ReadError` out (`what` heads inconsistencies)."""
        self._reads.reset()
        self._types.clear()
        try:
            yield
        except ReadError:
            raise
        except HeatlineError as exc:  # the process went away or access was withdrawn
            raise ReadError(str(exc)) from None
        except (struct.error, IndexError, KeyError, ValueError, OverflowError, MemoryError) as exc:
            raise ReadError(f"{what}: {exc!r}") from None
        finally:
            self._reads.reset()

    def read(self, addr: int, size: int) -> bytes:
        """`size` bytes at `addr`, through the call's page cache."""
        return self._reads.read(addr, size)

    def u64(self, addr: int) -> int:
        return self._reads.u64(addr)

    def lookup_state(self, key: int) -> LookupState:
        """What earlier readings found under `key` (an interpreter state's address)."""
        state = self._interps.get(key)
        if state is None:
            if len(self._interps) >= MAX_INTERPS:
                self._interps.clear()
            state = self._interps[key] = LookupState()
        state.trim()
        return state

    def module_dict(self, state: LookupState, interp_addr: int, name: str) -> int:
        """The globals dict of the module `sys.modules[name]` of an interpreter, or 0."""
        modules = self._reads.u64(interp_addr + self.L["interp.modules"])
        module = self.dict_get(state, modules, name) if modules else 0
        return self._reads.u64(module + self.L["module.md_dict"]) if module else 0

    def attribute(self, state: LookupState, obj: int, name: str) -> int:
        """The object held in `obj`'s instance attribute `name`, or 0."""
        keys, values = self._instance_tables(obj)
        return self._find(state, keys, values, name) if keys else 0

    # -- objects --------------------------------------------------------------------------------

    def _type_info(self, tp: int) -> tuple[int, int, int, int]:
        """(tp_flags, tp_basicsize, tp_dictoffset, ht_cached_keys or 0) of a type."""
        info = self._types.get(tp)
        if info is None:
            L = self.L
            reads = self._reads
            flags = reads.u64(tp + L["type.tp_flags"])
            basicsize = i64(reads.read(tp + L["type.tp_basicsize"], 8), 0)[0]
            dictoffset = i64(reads.read(tp + L["type.tp_dictoffset"], 8), 0)[0]
            assert self.rules is not None
            cached = reads.u64(tp + L["heaptype.ht_cached_keys"]) if flags & self.rules.heaptype_flag else 0
            info = (flags, basicsize, dictoffset, cached)
            self._types[tp] = info
        return info

    def _instance_tables(self, obj: int) -> tuple[int, int]:
        """(keys table, values array or 0) holding an object's attributes; (0, 0) if none."""
        r = self.rules
        assert r is not None
        reads = self._reads
        lo = min(0, r.managed_dict_slot, r.managed_values_slot)
        ob_type = self.L["object.ob_type"]
        head = reads.read(obj + lo, ob_type + 8 - lo)
        flags, basicsize, dictoffset, cached_keys = self._type_info(u64(head, ob_type - lo)[0])
        if flags & r.managed_dict_flag:
            slot = u64(head, r.managed_dict_slot - lo)[0]
            if r.tagged_values and slot & 1:
                return cached_keys, slot + 1
            if slot:
                return self._dict_tables(slot)
            if r.managed_values_slot:
                values = u64(head, r.managed_values_slot - lo)[0]
                return (cached_keys, values) if values else (0, 0)
            if flags & r.inline_values_flag and 0 < basicsize < PAGE:
                values = obj + basicsize
                if reads.read(values + self.L["dictvalues.valid"], 1)[0]:
                    return cached_keys, values
            return 0, 0
        if dictoffset > 0:
            d = reads.u64(obj + dictoffset)
            return self._dict_tables(d) if d else (0, 0)
        return 0, 0  # no instance dict, or one at the end of a variable-size object

    def read_int(self, addr: int) -> int | None:
        """A non-negative int of at most MAX_LONG_DIGITS digits; None for anything else."""
        L = self.L
        r = self.rules
        assert r is not None
        size_key = "long.lv_tag" if r.long_tag else "long.ob_size"
        lo = L[size_key]
        digits = L["long.ob_digit"]
        buf = self._reads.read(addr + lo, digits - lo + 4 * MAX_LONG_DIGITS)
        if r.long_tag:
            tag = u64(buf, 0)[0]
            sign = tag & 3
            if sign == 1:
                return 0
            if sign != 0:
                return None
            ndigits = tag >> 3
        else:
            ndigits = i64(buf, 0)[0]
            if ndigits < 0:
                return None
        if ndigits > MAX_LONG_DIGITS:
            return None
        value = 0
        bits = r.digit_bits
        for i in range(ndigits):
            digit = u32(buf, digits - lo + 4 * i)[0]
            if digit >> bits:
                raise ReadError(f"not an int at {addr:#x}")
            value |= digit << (bits * i)
        return value

    # -- dicts ----------------------------------------------------------------------------------

    def _dict_tables(self, d: int) -> tuple[int, int]:
        """(ma_keys, ma_values) of a dict."""
        keys, values, _version = self._dict_head(d)
        return keys, values

    def _dict_head(self, d: int) -> tuple[int, int, int | None]:
        """(ma_keys, ma_values, ma_version_tag or None where dicts have none) of a dict."""
        L = self.L
        assert self.rules is not None
        if self.rules.dict_version:
            offs = (L["dict.ma_keys"], L["dict.ma_values"], L["dict.ma_version_tag"])
        else:
            offs = (L["dict.ma_keys"], L["dict.ma_values"])
        lo = min(offs)
        buf = self._reads.read(d + lo, max(offs) + 8 - lo)
        keys, values, *tag = (u64(buf, off - lo)[0] for off in offs)
        version = tag[0] if tag else None
        if not keys:
            raise ReadError(f"dict at {d:#x} has no keys table")
        return keys, values, version

    def _keys(self, keys: int) -> _Keys:
        L = self.L
        r = self.rules
        assert r is not None
        reads = self._reads
        indices = L["dictkeys.dk_indices"]
        head = reads.read(keys, indices)
        nentries = i64(head, L["dictkeys.dk_nentries"])[0]
        usable = i64(head, L["dictkeys.dk_usable"])[0]
        if r.index_table == "log2":
            log2_size = head[L["dictkeys.dk_log2_size"]]
            log2_bytes = head[L["dictkeys.dk_log2_index_bytes"]]
            kind = head[L["dictkeys.dk_kind"]]
            if not (3 <= log2_size <= MAX_DICT_LOG2_SIZE and log2_size <= log2_bytes <= log2_size + 3):
                raise ReadError(f"not a dict keys table at {keys:#x}")
            size = 1 << log2_size
            entries = keys + indices + (1 << log2_bytes)
            prefix = "dictunicodeentry" if kind in r.unicode_kinds else "dictentry"
            if kind > 2:
                raise ReadError(f"unknown dict keys kind {kind} at {keys:#x}")
        else:
            size = i64(head, L["dictkeys.dk_size"])[0]
            if not (8 <= size <= 1 << MAX_DICT_LOG2_SIZE and size & (size - 1) == 0):
                raise ReadError(f"not a dict keys table at {keys:#x}")
            width = 1 if size <= 0xFF else 2 if size <= 0xFFFF else 4 if size <= 0xFFFFFFFF else 8
            entries = keys + indices + size * width
            prefix = "dictentry"
        if not (0 <= nentries <= size and 0 <= usable <= size and nentries <= MAX_DICT_ENTRIES):
            raise ReadError(f"implausible dict keys table at {keys:#x}")
        return _Keys(
            keys,
            entries,
            L[f"{prefix}.size"],
            L[f"{prefix}.me_key"],
            L[f"{prefix}.me_value"],
            L[f"{prefix}.me_hash"] if prefix == "dictentry" else -1,
            nentries,
            usable + nentries,
        )

    def _entries(self, k: _Keys, start: int, stop: int) -> list[tuple[int, int, int, int | None]]:
        """(index, key, value in the entry, cached hash or None) of entries start..stop-1 that
        hold a key, in one read."""
        if stop <= start:
            return []
        size = k.entry_size
        buf = self._reads.read(k.entries + start * size, (stop - start) * size)
        out = []
        for i in range(stop - start):
            base = i * size
            key = u64(buf, base + k.key_off)[0]
            if key:
                key_hash = i64(buf, base + k.hash_off)[0] if k.hash_off >= 0 else None
                out.append((start + i, key, u64(buf, base + k.value_off)[0], key_hash))
        return out

    def _value(self, k: _Keys, values: int, index: int, in_entry: int) -> int:
        """Entry `index`'s value: in the entry (combined table) or in the values array (split)."""
        if not values:
            return in_entry
        if "dictvalues.capacity" in self.L:
            capacity = self._reads.read(values + self.L["dictvalues.capacity"], 1)[0]
            if index >= capacity:
                return 0
        return self._reads.u64(values + self.L.get("dictvalues.values", 0) + 8 * index)

    def dict_items(self, state: LookupState, d: int, limit: int) -> list[tuple[int, int, int | None]]:
        """(key, value, cached key hash or None) of a dict's items, at most `limit`."""
        keys, values, version = self._dict_head(d)
        known = state.listings.get(d)
        if known is not None and version is not None and known[0] == version:
            return known[1]
        k = self._keys(keys)
        items = []
        for index, key, in_entry, key_hash in self._entries(k, 0, min(k.nentries, limit)):
            value = self._value(k, values, index, in_entry)
            if value:
                items.append((key, value, key_hash))
        state.listings[d] = (version, items)
        return items

    def dict_get(self, state: LookupState, d: int, name: str) -> int:
        """`d[name]` for a str key, or 0; a dict of unchanged version is not searched again."""
        keys, values, version = self._dict_head(d)
        known = state.lookups.get((d, name))
        if known is not None and version is not None and known[0] == version:
            return known[1]
        value = self._find(state, keys, values, name)
        state.lookups[(d, name)] = (version, value)
        return value

    def _find(self, state: LookupState, keys: int, values: int, name: str) -> int:
        """The value stored under the str key `name`, or 0."""
        k = self._keys(keys)
        known = state.key_ptrs.setdefault(name, set())
        hint = state.hints.get((keys, name))
        if hint is not None and hint < k.nentries:
            hit = self._entries(k, hint, hint + 1)
            if hit and hit[0][1] in known:
                return self._value(k, values, hint, hit[0][2])
        start = 0
        absent = state.absent.get((keys, name))
        if absent is not None and absent[0] == k.capacity:
            # Entries are only ever appended to a keys table: compare only the new ones.
            start = min(absent[1], k.nentries)
            if start == k.nentries:
                return 0
        entries = self._entries(k, 0, k.nentries)
        found = next((e for e in entries if e[1] in known), None)
        if found is None:
            compares = 0
            for entry in entries:
                if entry[0] < start:
                    continue
                compares += 1
                if compares > MAX_KEY_COMPARES:
                    raise ReadError(f"too many keys to compare in dict keys {keys:#x}")
                try:
                    if self.strings.read_str(entry[1]) == name:
                        found = entry
                        break
                except ReadError:
                    continue  # not a str (general dicts may hold any key)
        if found is None:
            state.absent[(keys, name)] = (k.capacity, k.nentries)
            return 0
        index, key, in_entry, _hash = found
        if len(known) >= 8:
            known.clear()
        known.add(key)
        state.hints[(keys, name)] = index
        state.absent.pop((keys, name), None)
        return self._value(k, values, index, in_entry)


class ThreadNames:
    """Reads `{thread ident: name}` for one interpreter of the target from its memory."""

    def __init__(self, memory: RemoteMemory, runtime: Runtime) -> None:
        self.memory = memory
        self.runtime = runtime
        self.objects = RemoteObjects(memory, runtime)
        self.rules = self.objects.rules
        self.missing = self.objects.missing
        self.supported = self.objects.supported

    # -- public ---------------------------------------------------------------------------------

    def read(self, interp_addr: int) -> dict[int, str]:
        """`{threading.get_ident() value: Thread.name}` for the threads in `threading._active`.

        {} if the interpreter never imported `threading`. Raises only `ReadError`.
        """
        if not self.supported:
            why = f"missing layout keys {self.missing}" if self.rules else "no rules for this version"
            raise ReadError(f"thread names cannot be read from Python {self.runtime.version_string}: {why}")
        with self.objects.call("inconsistent thread name data"):
            return self._read(interp_addr)

    # -- the walk -------------------------------------------------------------------------------

    def _read(self, interp_addr: int) -> dict[int, str]:
        objects = self.objects
        state = objects.lookup_state(interp_addr)
        md_dict = objects.module_dict(state, interp_addr, "threading")
        if not md_dict:
            return {}
        active = objects.dict_get(state, md_dict, "_active")
        if not active:
            return {}
        names: dict[int, str] = {}
        assert self.rules is not None
        hash_is_int_below = self.rules.hash_is_int_below
        for key, thread, key_hash in objects.dict_items(state, active, MAX_THREADS):
            try:
                if key_hash is not None and 0 < key_hash < hash_is_int_below:
                    ident = key_hash
                else:
                    ident = objects.read_int(key)
                if ident is None:
                    continue
                name_ptr = objects.attribute(state, thread, "_name")
                if not name_ptr:
                    continue
                names[ident] = objects.strings.read_str(name_ptr)
            except ReadError:
                continue  # one Thread being torn down (or a torn read) does not spoil the rest
        return names


def read_comm_names(pid: int, tids: list[int]) -> dict[int, str]:
    """Names from `/proc/PID/task/TID/comm`, for threads whose name differs from the process's.

    CPython 3.14+ gives each thread it starts the OS name of its `Thread.name` (cut to 15
    bytes; renames later are not passed on); other threads keep the process's name, and the
    main thread's is the process's, so neither is reported.
    """

    process = comm(pid)
    names = {}
    for tid in tids:
        if tid == pid or tid <= 0:
            continue
        name = comm(pid, tid)
        if name and name != process:
            names[tid] = name
    return names


__all__ = ["LookupState", "RULES", "RemoteObjects", "Rules", "ThreadNames", "read_comm_names", "required_keys"]
