/* Compiled kernels of the state tree (docs/tree.md, "Compiled build"). Optional: the tree runs without them.
 *
 * - keccak256 and the two domain-separated tree hashes of docs/protocol.md ("Hashing"), computed in one C call
 *   each with the preimage on the stack (no concatenated bytes object, no hash object);
 * - PosMap, the container of the tree's stored positions (nodes.py: `branch` and `leaf_at`): a dict of
 *   int -> object with the few methods nodes.py uses, stored as an open-addressing table of (uint64 position,
 *   object) pairs. A Python dict keyed by ints costs about four cache misses per cold lookup (index, entry, the
 *   stored int object it compares, the value); a PosMap lookup costs one for the slot and one for the value.
 *   Positions that do not fit in 64 bits (items sharing prefixes longer than 62 bits) live in an ordinary dict
 *   inside the map, so every int key works.
 *
 * The permutation is Keccak-f[1600] from tiny_sha3 by Markku-Juhani O. Saarinen (MIT licence,
 * github.com/mjosaarinen/tiny_sha3 commit dcbb319; the implementation CPython 3.11 ships in its hashlib sha3
 * module), copied unchanged except for static linkage. tests/tree/test_native.py checks it against the FIPS 202
 * SHA3-256 vectors (through hashlib) and Keccak-256 (the padding Ethereum uses) against the Keccak team's
 * vectors and every keccak wheel installed, for every length across the 136-byte block boundary.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ Keccak-f[1600] (tiny_sha3, MIT licence)

The MIT License (MIT)

Copyright (c) 2015 Markku-Juhani O. Saarinen

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation the
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to
permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of
the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
*/

#define KECCAKF_ROUNDS 24
#define ROTL64(x, y) (((x) << (y)) | ((x) >> (64 - (y))))

static void sha3_keccakf(uint64_t st[25])
{
    // constants
    const uint64_t keccakf_rndc[24] = {
        0x0000000000000001, 0x0000000000008082, 0x800000000000808a,
        0x8000000080008000, 0x000000000000808b, 0x0000000080000001,
        0x8000000080008081, 0x8000000000008009, 0x000000000000008a,
        0x0000000000000088, 0x0000000080008009, 0x000000008000000a,
        0x000000008000808b, 0x800000000000008b, 0x8000000000008089,
        0x8000000000008003, 0x8000000000008002, 0x8000000000000080,
        0x000000000000800a, 0x800000008000000a, 0x8000000080008081,
        0x8000000000008080, 0x0000000080000001, 0x8000000080008008
    };
    const int keccakf_rotc[24] = {
        1,  3,  6,  10, 15, 21, 28, 36, 45, 55, 2,  14,
        27, 41, 56, 8,  25, 43, 62, 18, 39, 61, 20, 44
    };
    const int keccakf_piln[24] = {
        10, 7,  11, 17, 18, 3, 5,  16, 8,  21, 24, 4,
        15, 23, 19, 13, 12, 2, 20, 14, 22, 9,  6,  1
    };

    // variables
    int i, j, r;
    uint64_t t, bc[5];

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    uint8_t *v;

    // endianess conversion. this is redundant on little-endian targets
    for (i = 0; i < 25; i++) {
        v = (uint8_t *) &st[i];
        st[i] = ((uint64_t) v[0])     | (((uint64_t) v[1]) << 8) |
            (((uint64_t) v[2]) << 16) | (((uint64_t) v[3]) << 24) |
            (((uint64_t) v[4]) << 32) | (((uint64_t) v[5]) << 40) |
            (((uint64_t) v[6]) << 48) | (((uint64_t) v[7]) << 56);
    }
#endif

    // actual iteration
    for (r = 0; r < KECCAKF_ROUNDS; r++) {

        // Theta
        for (i = 0; i < 5; i++)
            bc[i] = st[i] ^ st[i + 5] ^ st[i + 10] ^ st[i + 15] ^ st[i + 20];

        for (i = 0; i < 5; i++) {
            t = bc[(i + 4) % 5] ^ ROTL64(bc[(i + 1) % 5], 1);
            for (j = 0; j < 25; j += 5)
                st[j + i] ^= t;
        }

        // Rho Pi
        t = st[1];
        for (i = 0; i < 24; i++) {
            j = keccakf_piln[i];
            bc[0] = st[j];
            st[j] = ROTL64(t, keccakf_rotc[i]);
            t = bc[0];
        }

        //  Chi
        for (j = 0; j < 25; j += 5) {
            for (i = 0; i < 5; i++)
                bc[i] = st[j + i];
            for (i = 0; i < 5; i++)
                st[j + i] ^= (~bc[(i + 1) % 5]) & bc[(i + 2) % 5];
        }

        //  Iota
        st[0] ^= keccakf_rndc[r];
    }

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    // endianess conversion. this is redundant on little-endian targets
    for (i = 0; i < 25; i++) {
        v = (uint8_t *) &st[i];
        t = st[i];
        v[0] = t & 0xFF;
        v[1] = (t >> 8) & 0xFF;
        v[2] = (t >> 16) & 0xFF;
        v[3] = (t >> 24) & 0xFF;
        v[4] = (t >> 32) & 0xFF;
        v[5] = (t >> 40) & 0xFF;
        v[6] = (t >> 48) & 0xFF;
        v[7] = (t >> 56) & 0xFF;
    }
#endif
}

/* ------------------------------------------------------------------ one-shot sponge, 256-bit output */

#define RATE 136 /* 1600 - 2 * 256 bits, in bytes */

typedef union {
    uint8_t b[200];
    uint64_t q[25];
} keccak_state;

/* The sponge of tiny_sha3's sha3_init/update/final for a 32-byte digest, over one contiguous input and with the
 * padding's first byte as a parameter: 0x01 is Keccak-256 (Ethereum), 0x06 is FIPS 202 SHA3-256 (tests only). */
static void sponge256(const uint8_t *in, size_t len, uint8_t pad, uint8_t out[32])
{
    keccak_state s;
    size_t i;
    memset(&s, 0, sizeof s);
    while (len >= RATE) {
        for (i = 0; i < RATE; i++)
            s.b[i] ^= in[i];
        sha3_keccakf(s.q);
        in += RATE;
        len -= RATE;
    }
    for (i = 0; i < len; i++)
        s.b[i] ^= in[i];
    s.b[len] ^= pad;
    s.b[RATE - 1] ^= 0x80;
    sha3_keccakf(s.q);
    memcpy(out, s.b, 32);
}

static PyObject *digest_of(const uint8_t *in, size_t len)
{
    PyObject *result = PyBytes_FromStringAndSize(NULL, 32);
    if (result != NULL)
        sponge256(in, len, 0x01, (uint8_t *)PyBytes_AS_STRING(result));
    return result;
}

static int exact_bytes(PyObject *o, Py_ssize_t size, const char *what)
{
    if (!PyBytes_CheckExact(o) || PyBytes_GET_SIZE(o) != size) {
        PyErr_Format(PyExc_TypeError, "%s must be %zd bytes", what, size);
        return 0;
    }
    return 1;
}

static PyObject *py_keccak256(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    PyObject *result;
    if (PyBytes_CheckExact(arg))
        return digest_of((const uint8_t *)PyBytes_AS_STRING(arg), (size_t)PyBytes_GET_SIZE(arg));
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    result = digest_of((const uint8_t *)view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *py_sha3_256(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    PyObject *result;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    result = PyBytes_FromStringAndSize(NULL, 32);
    if (result != NULL)
        sponge256((const uint8_t *)view.buf, (size_t)view.len, 0x06, (uint8_t *)PyBytes_AS_STRING(result));
    PyBuffer_Release(&view);
    return result;
}

/* node_hash(left, right) = keccak256(0x01 || left || right) */
static PyObject *py_node_hash(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint8_t pre[65];
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "node_hash(left, right)");
        return NULL;
    }
    if (!exact_bytes(args[0], 32, "left") || !exact_bytes(args[1], 32, "right"))
        return NULL;
    pre[0] = 0x01;
    memcpy(pre + 1, PyBytes_AS_STRING(args[0]), 32);
    memcpy(pre + 33, PyBytes_AS_STRING(args[1]), 32);
    return digest_of(pre, 65);
}

/* leaf_hash(key, value_hash) = keccak256(0x00 || key || value_hash) */
static PyObject *py_leaf_hash(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint8_t pre[65];
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "leaf_hash(key, value_hash)");
        return NULL;
    }
    if (!exact_bytes(args[0], 32, "key") || !exact_bytes(args[1], 32, "value_hash"))
        return NULL;
    pre[0] = 0x00;
    memcpy(pre + 1, PyBytes_AS_STRING(args[0]), 32);
    memcpy(pre + 33, PyBytes_AS_STRING(args[1]), 32);
    return digest_of(pre, 65);
}

/* value_leaf_hash(key, value) = leaf_hash(key, keccak256(value)), with no intermediate object */
static PyObject *py_value_leaf_hash(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint8_t pre[65];
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "value_leaf_hash(key, value)");
        return NULL;
    }
    if (!exact_bytes(args[0], 32, "key"))
        return NULL;
    if (!PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "value must be bytes");
        return NULL;
    }
    pre[0] = 0x00;
    memcpy(pre + 1, PyBytes_AS_STRING(args[0]), 32);
    sponge256((const uint8_t *)PyBytes_AS_STRING(args[1]), (size_t)PyBytes_GET_SIZE(args[1]), 0x01, pre + 33);
    return digest_of(pre, 65);
}

/* ------------------------------------------------------------------ PosMap */

typedef struct {
    uint64_t key; /* 0: free slot (positions are >= 1; key 0 goes to the overflow dict) */
    PyObject *value;
} slot;

typedef struct {
    PyObject_HEAD
    slot *slots;
    size_t mask;   /* capacity - 1; capacity is a power of two, or 0 with slots == NULL */
    size_t used;
    PyObject *big; /* dict for keys outside 1 .. 2**64 - 1, created on first use */
} PosMap;

#define MIN_CAPACITY 8

/* Siblings (n and n ^ 1) share a home slot, so the second of the two lookups a re-hash level makes usually finds
 * its entry in the cache line the first one loaded. */
static inline size_t slot_of(uint64_t key, size_t mask)
{
    return (size_t)(((key >> 1) * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

/* 1: a small key in *out; 0: not a small key (use the overflow dict); -1: error (not an int) */
static int small_key(PyObject *key, uint64_t *out)
{
    unsigned long long v;
    if (!PyLong_CheckExact(key)) {
        if (!PyLong_Check(key))
            return 0; /* any other hashable object: the overflow dict handles it like a dict would */
    }
    if (Py_SIZE(key) <= 0)
        return 0; /* zero or negative */
    v = PyLong_AsUnsignedLongLong(key);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear(); /* too large */
        return 0;
    }
    *out = (uint64_t)v;
    return 1;
}

static slot *find(PosMap *m, uint64_t key)
{
    size_t i;
    if (m->slots == NULL)
        return NULL;
    i = slot_of(key, m->mask);
    for (;;) {
        slot *s = &m->slots[i];
        if (s->key == key)
            return s;
        if (s->key == 0)
            return NULL;
        i = (i + 1) & m->mask;
    }
}

static int resize(PosMap *m, size_t capacity)
{
    slot *old = m->slots;
    size_t old_cap = old ? m->mask + 1 : 0, i;
    slot *fresh = PyMem_Calloc(capacity, sizeof(slot));
    if (fresh == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    m->slots = fresh;
    m->mask = capacity - 1;
    for (i = 0; i < old_cap; i++) {
        if (old[i].key != 0) {
            size_t j = slot_of(old[i].key, m->mask);
            while (fresh[j].key != 0)
                j = (j + 1) & m->mask;
            fresh[j] = old[i];
        }
    }
    PyMem_Free(old);
    return 0;
}

/* Store (steals nothing: increfs value); returns -1 on error. */
static int store(PosMap *m, uint64_t key, PyObject *value)
{
    size_t i;
    if (m->slots == NULL || (m->used + 1) * 10 > (m->mask + 1) * 7) {
        size_t capacity = m->slots ? (m->mask + 1) * 2 : MIN_CAPACITY;
        if (resize(m, capacity) < 0)
            return -1;
    }
    i = slot_of(key, m->mask);
    for (;;) {
        slot *s = &m->slots[i];
        if (s->key == key) {
            PyObject *prev = s->value;
            Py_INCREF(value);
            s->value = value;
            Py_DECREF(prev);
            return 0;
        }
        if (s->key == 0) {
            Py_INCREF(value);
            s->key = key;
            s->value = value;
            m->used++;
            return 0;
        }
        i = (i + 1) & m->mask;
    }
}

/* Remove the slot and return its value (a new reference owned by the caller); linear probing's backward shift. */
static PyObject *remove_slot(PosMap *m, slot *s)
{
    PyObject *value = s->value;
    size_t hole = (size_t)(s - m->slots), j = hole;
    for (;;) {
        size_t home;
        j = (j + 1) & m->mask;
        if (m->slots[j].key == 0)
            break;
        home = slot_of(m->slots[j].key, m->mask);
        /* move slot j into the hole if its home is not cyclically in (hole, j] */
        if ((j > hole && (home <= hole || home > j)) || (j < hole && (home <= hole && home > j))) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].key = 0;
    m->slots[hole].value = NULL;
    m->used--;
    return value;
}

static PyObject *PosMap_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PosMap *m;
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "PosMap() takes no arguments");
        return NULL;
    }
    m = (PosMap *)type->tp_alloc(type, 0);
    if (m != NULL) {
        m->slots = NULL;
        m->mask = 0;
        m->used = 0;
        m->big = NULL;
    }
    return (PyObject *)m;
}

static void clear_all(PosMap *m)
{
    slot *old = m->slots;
    size_t cap = old ? m->mask + 1 : 0, i;
    m->slots = NULL;
    m->mask = 0;
    m->used = 0;
    for (i = 0; i < cap; i++)
        Py_XDECREF(old[i].value);
    PyMem_Free(old);
    Py_CLEAR(m->big);
}

static void PosMap_dealloc(PosMap *m)
{
    clear_all(m);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static PyObject *big_dict(PosMap *m)
{
    if (m->big == NULL)
        m->big = PyDict_New();
    return m->big;
}

static PyObject *PosMap_get(PosMap *m, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t k;
    int small;
    PyObject *dflt = nargs > 1 ? args[1] : Py_None;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(key, default=None)");
        return NULL;
    }
    small = small_key(args[0], &k);
    if (small < 0)
        return NULL;
    if (small) {
        slot *s = find(m, k);
        PyObject *v = s ? s->value : dflt;
        Py_INCREF(v);
        return v;
    }
    if (m->big != NULL) {
        PyObject *v = PyDict_GetItemWithError(m->big, args[0]);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
        if (PyErr_Occurred())
            return NULL;
    }
    Py_INCREF(dflt);
    return dflt;
}

static PyObject *PosMap_pop(PosMap *m, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t k;
    int small;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "pop(key[, default])");
        return NULL;
    }
    small = small_key(args[0], &k);
    if (small < 0)
        return NULL;
    if (small) {
        slot *s = find(m, k);
        if (s != NULL)
            return remove_slot(m, s);
    } else if (m->big != NULL) {
        PyObject *v = PyDict_GetItemWithError(m->big, args[0]);
        if (v != NULL) {
            Py_INCREF(v);
            if (PyDict_DelItem(m->big, args[0]) < 0) {
                Py_DECREF(v);
                return NULL;
            }
            return v;
        }
        if (PyErr_Occurred())
            return NULL;
    }
    if (nargs == 2) {
        Py_INCREF(args[1]);
        return args[1];
    }
    PyErr_SetObject(PyExc_KeyError, args[0]);
    return NULL;
}

static PyObject *PosMap_subscript(PosMap *m, PyObject *key)
{
    uint64_t k;
    int small = small_key(key, &k);
    if (small < 0)
        return NULL;
    if (small) {
        slot *s = find(m, k);
        if (s != NULL) {
            Py_INCREF(s->value);
            return s->value;
        }
    } else if (m->big != NULL) {
        PyObject *v = PyDict_GetItemWithError(m->big, key);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
        if (PyErr_Occurred())
            return NULL;
    }
    PyErr_SetObject(PyExc_KeyError, key);
    return NULL;
}

static int PosMap_ass_subscript(PosMap *m, PyObject *key, PyObject *value)
{
    uint64_t k;
    int small = small_key(key, &k);
    if (small < 0)
        return -1;
    if (value != NULL) {
        if (small)
            return store(m, k, value);
        return big_dict(m) == NULL ? -1 : PyDict_SetItem(m->big, key, value);
    }
    if (small) {
        slot *s = find(m, k);
        if (s == NULL) {
            PyErr_SetObject(PyExc_KeyError, key);
            return -1;
        }
        Py_DECREF(remove_slot(m, s));
        return 0;
    }
    if (m->big == NULL) {
        PyErr_SetObject(PyExc_KeyError, key);
        return -1;
    }
    return PyDict_DelItem(m->big, key);
}

static Py_ssize_t PosMap_length(PosMap *m)
{
    return (Py_ssize_t)m->used + (m->big ? PyDict_GET_SIZE(m->big) : 0);
}

static int PosMap_contains(PosMap *m, PyObject *key)
{
    uint64_t k;
    int small = small_key(key, &k);
    if (small < 0)
        return -1;
    if (small)
        return find(m, k) != NULL;
    return m->big ? PyDict_Contains(m->big, key) : 0;
}

static PyObject *PosMap_clear(PosMap *m, PyObject *unused)
{
    clear_all(m);
    Py_RETURN_NONE;
}

/* items() as a list of (key, value) tuples (for tests, snapshots of the layout and benchmarks; not hot) */
static PyObject *PosMap_items(PosMap *m, PyObject *unused)
{
    PyObject *out = PyList_New(0);
    size_t cap = m->slots ? m->mask + 1 : 0, i;
    if (out == NULL)
        return NULL;
    for (i = 0; i < cap; i++) {
        if (m->slots[i].key != 0) {
            PyObject *pair = Py_BuildValue("(KO)", (unsigned long long)m->slots[i].key, m->slots[i].value);
            if (pair == NULL || PyList_Append(out, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(pair);
        }
    }
    if (m->big != NULL) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(m->big, &pos, &key, &value)) {
            PyObject *pair = PyTuple_Pack(2, key, value);
            if (pair == NULL || PyList_Append(out, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(pair);
        }
    }
    return out;
}

static PyObject *PosMap_keys(PosMap *m, PyObject *unused)
{
    PyObject *items = PosMap_items(m, NULL), *out;
    Py_ssize_t i, n;
    if (items == NULL)
        return NULL;
    n = PyList_GET_SIZE(items);
    out = PyList_New(n);
    if (out != NULL) {
        for (i = 0; i < n; i++) {
            PyObject *k = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 0);
            Py_INCREF(k);
            PyList_SET_ITEM(out, i, k);
        }
    }
    Py_DECREF(items);
    return out;
}

static PyObject *PosMap_iter(PosMap *m)
{
    PyObject *keys = PosMap_keys(m, NULL), *it;
    if (keys == NULL)
        return NULL;
    it = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return it;
}

static PyObject *PosMap_sizeof(PosMap *m, PyObject *unused)
{
    size_t size = sizeof(PosMap) + (m->slots ? (m->mask + 1) * sizeof(slot) : 0);
    if (m->big != NULL) {
        PyObject *inner = PyObject_CallMethod(m->big, "__sizeof__", NULL);
        if (inner == NULL)
            return NULL;
        size += PyLong_AsSize_t(inner);
        Py_DECREF(inner);
    }
    return PyLong_FromSize_t(size);
}

static PyMethodDef PosMap_methods[] = {
    {"get", (PyCFunction)(void (*)(void))PosMap_get, METH_FASTCALL, "get(key, default=None)"},
    {"pop", (PyCFunction)(void (*)(void))PosMap_pop, METH_FASTCALL, "pop(key[, default])"},
    {"clear", (PyCFunction)PosMap_clear, METH_NOARGS, "remove every entry"},
    {"items", (PyCFunction)PosMap_items, METH_NOARGS, "list of (key, value), unordered"},
    {"keys", (PyCFunction)PosMap_keys, METH_NOARGS, "list of keys, unordered"},
    {"__sizeof__", (PyCFunction)PosMap_sizeof, METH_NOARGS, "bytes held by the table"},
    {NULL, NULL, 0, NULL},
};

static PyMappingMethods PosMap_as_mapping = {
    (lenfunc)PosMap_length,
    (binaryfunc)PosMap_subscript,
    (objobjargproc)PosMap_ass_subscript,
};

static PySequenceMethods PosMap_as_sequence = {
    .sq_contains = (objobjproc)PosMap_contains,
};

static PyTypeObject PosMapType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ddx_offchain.tree._native.PosMap",
    .tp_doc = "int -> object map for tree positions (a dict's get/pop/[]/del/len/in/clear/items/keys)",
    .tp_basicsize = sizeof(PosMap),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PosMap_new,
    .tp_dealloc = (destructor)PosMap_dealloc,
    .tp_methods = PosMap_methods,
    .tp_as_mapping = &PosMap_as_mapping,
    .tp_as_sequence = &PosMap_as_sequence,
    .tp_iter = (getiterfunc)PosMap_iter,
};

/* ------------------------------------------------------------------ single_path: the re-hash's hot loop

   nodes.py's `single` (one pending key below a stored branching node), for its usual case only: the key's own leaf
   gets a new value, every position on the way is below depth 63, and the key stays on every chain it meets. The
   walk down reads without writing, so anything else (a structural change, a big position, an unexpected entry)
   returns None before any change and nodes.py runs its Python `single`, the reference, for that key. On success
   the result and every write are exactly those of the Python loop (tests/tree/test_compiled.py compares the
   stored layout, roots and proofs at every step). */

static inline uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline int depth_of(uint64_t position) { return 63 - __builtin_clzll(position); }

/* position of the key whose first 64 bits are `prefix` at depth d (0 <= d <= 63) */
static inline uint64_t position_at(uint64_t prefix, int d)
{
    return d == 0 ? 1 : ((uint64_t)1 << d) | (prefix >> (64 - d));
}

static inline void hash_pair(uint8_t prefix, const uint8_t *a, const uint8_t *b, uint8_t out[32])
{
    uint8_t pre[65];
    pre[0] = prefix;
    memcpy(pre + 1, a, 32);
    memcpy(pre + 33, b, 32);
    sponge256(pre, 65, 0x01, out);
}

static const uint8_t ZERO32[32] = {0};

/* The branching node stored under `top` (from its branch entry: 32-byte hash, then its position if lower), or 0
   if the entry is not of that form. */
static uint64_t branching_below_entry(PyObject *v, uint64_t top)
{
    Py_ssize_t extra, j;
    const uint8_t *p;
    uint64_t b = 0;
    if (!PyBytes_CheckExact(v) || PyBytes_GET_SIZE(v) < 32)
        return 0;
    extra = PyBytes_GET_SIZE(v) - 32;
    if (extra == 0)
        return top;
    if (extra > 8)
        return 0;
    p = (const uint8_t *)PyBytes_AS_STRING(v) + 32;
    for (j = 0; j < extra; j++)
        b = (b << 8) | p[j];
    return b;
}

static inline int bit_at(const uint8_t *key, int depth) { return (key[depth >> 3] >> (7 - (depth & 7))) & 1; }

/* The hash of the leaf `key` from its item-map entry: keccak(value) first when the map holds values.
   0 on success, 1 to fall back (unexpected entry), -1 on error. */
static int leaf_of(PyObject *items, PyObject *key, int hash_values, uint8_t out[32])
{
    PyObject *stored;
    uint8_t value_hash[32];
    if (!PyBytes_CheckExact(key) || PyBytes_GET_SIZE(key) != 32)
        return 1;
    stored = PyDict_GetItemWithError(items, key); /* borrowed */
    if (stored == NULL)
        return PyErr_Occurred() ? -1 : 1;
    if (!PyBytes_CheckExact(stored))
        return 1;
    if (hash_values) {
        sponge256((const uint8_t *)PyBytes_AS_STRING(stored), (size_t)PyBytes_GET_SIZE(stored), 0x01, value_hash);
    } else {
        if (PyBytes_GET_SIZE(stored) != 32)
            return 1;
        memcpy(value_hash, PyBytes_AS_STRING(stored), 32);
    }
    hash_pair(0x00, (const uint8_t *)PyBytes_AS_STRING(key), value_hash, out);
    return 0;
}

typedef struct {
    uint64_t top, child;
    uint8_t sibling[32];
    uint64_t sibling_b; /* the sibling's branching node if it is a stored subtree, else 0 (a leaf) */
    PyObject *sibling_leaf; /* borrowed: the sibling's key if it is a leaf */
} level;

/* Remove a position's entry from a map if present (the Python loop's `map.pop(position, None)`). */
static void drop(PosMap *m, uint64_t position)
{
    slot *s = find(m, position);
    if (s != NULL)
        Py_DECREF(remove_slot(m, s));
}

/* Write the subtree result (h, info) at `position` just below a branching node, as nodes.py's place() does:
   a leaf key goes to leaf_at (and any branch entry there goes), a branching node to branch (hash, plus its
   position when it is lower). */
static int place_result(PosMap *branch, PosMap *leaf_at, uint64_t position, const uint8_t h[32], uint64_t info,
                        PyObject *info_leaf)
{
    PyObject *value;
    int r;
    if (info_leaf != NULL) {
        r = store(leaf_at, position, info_leaf);
        if (r == 0)
            drop(branch, position);
        return r;
    }
    if (info == position) {
        value = PyBytes_FromStringAndSize((const char *)h, 32);
    } else {
        int nbytes = (depth_of(info) + 1 + 7) >> 3, j;
        value = PyBytes_FromStringAndSize(NULL, 32 + nbytes);
        if (value != NULL) {
            uint8_t *p = (uint8_t *)PyBytes_AS_STRING(value);
            memcpy(p, h, 32);
            for (j = 0; j < nbytes; j++)
                p[32 + j] = (uint8_t)(info >> (8 * (nbytes - 1 - j)));
        }
    }
    if (value == NULL)
        return -1;
    r = store(branch, position, value);
    Py_DECREF(value);
    return r;
}

static void fold(uint8_t h[32], uint64_t from, uint64_t to)
{
    while (from != to) {
        if (from & 1)
            hash_pair(0x01, ZERO32, h, h);
        else
            hash_pair(0x01, h, ZERO32, h);
        from >>= 1;
    }
}

enum { BOTTOM_UPDATE, BOTTOM_DELETE, BOTTOM_INSERT };

/* single_path(branch, leaf_at, items, hash_values, key, position, old) -> (hash, info) or None

   Three cases at the bottom of the key's path, as nodes.py's `single` and `rebuilt` handle them: the key's own
   leaf with a new value; the key's own leaf deleted (its sibling moves up); a new key landing on another item's
   leaf (the two become a new branching node). Each is decided before the first write. */
static PyObject *py_single_path(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PosMap *branch, *leaf_at;
    PyObject *items, *key, *info_leaf = NULL, *other = NULL, *held = NULL, *result;
    int hash_values, n = 0, i, r, bottom = BOTTOM_UPDATE, present;
    uint64_t top, b, prefix, info = 0, child = 0, split = 0;
    level path[64];
    uint8_t h[32], other_hash[32];

    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "single_path(branch, leaf_at, items, hash_values, key, position, old)");
        return NULL;
    }
    if (Py_TYPE(args[0]) != &PosMapType || Py_TYPE(args[1]) != &PosMapType || !PyDict_CheckExact(args[2]))
        Py_RETURN_NONE;
    branch = (PosMap *)args[0];
    leaf_at = (PosMap *)args[1];
    items = args[2];
    hash_values = PyObject_IsTrue(args[3]);
    key = args[4];
    if (hash_values < 0)
        return NULL;
    if (!PyBytes_CheckExact(key) || PyBytes_GET_SIZE(key) != 32)
        Py_RETURN_NONE;
    if ((r = small_key(args[5], &top)) != 1 || (r = small_key(args[6], &b)) != 1) {
        if (r < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    prefix = load_be64((const uint8_t *)PyBytes_AS_STRING(key));
    present = PyDict_Contains(items, key);
    if (present < 0)
        return NULL;

    /* Walk down, reading only. */
    for (;;) {
        int db = depth_of(b);
        slot *s;
        if (db >= 62 || n >= 64)
            Py_RETURN_NONE;
        if (b != top && position_at(prefix, db) != b)
            Py_RETURN_NONE; /* the key leaves the chain: a structural change */
        child = position_at(prefix, db + 1);
        s = find(branch, child ^ 1);
        if (s != NULL) {
            if (!PyBytes_CheckExact(s->value) || PyBytes_GET_SIZE(s->value) < 32)
                Py_RETURN_NONE;
            memcpy(path[n].sibling, PyBytes_AS_STRING(s->value), 32);
            path[n].sibling_b = branching_below_entry(s->value, child ^ 1);
            path[n].sibling_leaf = NULL;
            if (path[n].sibling_b == 0)
                Py_RETURN_NONE;
        } else {
            s = find(leaf_at, child ^ 1);
            if (s == NULL)
                Py_RETURN_NONE;
            if ((r = leaf_of(items, s->value, hash_values, path[n].sibling)) != 0) {
                if (r < 0)
                    return NULL;
                Py_RETURN_NONE;
            }
            path[n].sibling_b = 0;
            path[n].sibling_leaf = s->value;
        }
        path[n].top = top;
        path[n].child = child;
        n++;
        s = find(branch, child);
        if (s == NULL) { /* the bottom: a leaf */
            PyObject *old_leaf;
            int same;
            s = find(leaf_at, child);
            if (s == NULL)
                Py_RETURN_NONE;
            old_leaf = s->value;
            if (!PyBytes_CheckExact(old_leaf) || PyBytes_GET_SIZE(old_leaf) != 32)
                Py_RETURN_NONE;
            same = memcmp(PyBytes_AS_STRING(old_leaf), PyBytes_AS_STRING(key), 32) == 0;
            if (same && present) {
                bottom = BOTTOM_UPDATE;
                if ((r = leaf_of(items, old_leaf, hash_values, h)) != 0) {
                    if (r < 0)
                        return NULL;
                    Py_RETURN_NONE;
                }
            } else if (same) {
                bottom = BOTTOM_DELETE;
            } else if (present) {
                /* A new key on another item's leaf: they branch where they first differ. */
                const uint8_t *k = (const uint8_t *)PyBytes_AS_STRING(key);
                const uint8_t *o = (const uint8_t *)PyBytes_AS_STRING(old_leaf);
                int d = 0, kbit;
                uint8_t key_hash[32];
                while (d < 256 && bit_at(k, d) == bit_at(o, d))
                    d++;
                if (d >= 62 || d < db + 1)
                    Py_RETURN_NONE;
                if ((r = leaf_of(items, key, hash_values, key_hash)) != 0 ||
                    (r = leaf_of(items, old_leaf, hash_values, other_hash)) != 0) {
                    if (r < 0)
                        return NULL;
                    Py_RETURN_NONE;
                }
                bottom = BOTTOM_INSERT;
                other = old_leaf;
                split = position_at(prefix, d);
                kbit = bit_at(k, d);
                if (kbit)
                    hash_pair(0x01, other_hash, key_hash, h);
                else
                    hash_pair(0x01, key_hash, other_hash, h);
                fold(h, split, child);
            } else {
                Py_RETURN_NONE; /* inserted and deleted in the same batch: rare, left to Python */
            }
            break;
        }
        if (!PyBytes_CheckExact(s->value) || PyBytes_GET_SIZE(s->value) < 32)
            Py_RETURN_NONE;
        top = child;
        b = branching_below_entry(s->value, child);
        if (b == 0)
            Py_RETURN_NONE;
    }

    /* From here on, write: the bottom first, then each level on the way up. */
    if (bottom == BOTTOM_UPDATE) {
        info_leaf = key; /* the leaf stays where it is: the Python loop's writes there change nothing */
        n--;
        i = n;
        goto hash_level;
    }
    if (bottom == BOTTOM_INSERT) {
        int kbit = bit_at((const uint8_t *)PyBytes_AS_STRING(key), depth_of(split));
        Py_INCREF(other);
        r = store(leaf_at, (split << 1) | (uint64_t)kbit, key);
        if (r == 0)
            r = store(leaf_at, (split << 1) | (uint64_t)(kbit ^ 1), other);
        if (r == 0 && child != (split << 1) && child != ((split << 1) | 1))
            drop(leaf_at, child);
        Py_DECREF(other);
        if (r < 0)
            return NULL;
        info = split;
        info_leaf = NULL;
    } else { /* BOTTOM_DELETE: the key's leaf goes, its sibling moves up to the top of the chain above */
        level *last = &path[n - 1];
        drop(leaf_at, last->child);
        memcpy(h, last->sibling, 32);
        if (last->sibling_leaf != NULL) {
            info_leaf = held = last->sibling_leaf;
            Py_INCREF(held); /* kept alive across its removal from leaf_at until the end */
            drop(leaf_at, last->child ^ 1);
        } else {
            info = last->sibling_b;
            info_leaf = NULL;
            drop(branch, last->child ^ 1);
            fold(h, last->child ^ 1, last->top);
        }
        n--;
    }
    for (i = n - 1; i >= 0; i--) {
        if (place_result(branch, leaf_at, path[i].child, h, info, info_leaf) < 0) {
            Py_XDECREF(held);
            return NULL;
        }
    hash_level:
        if (path[i].child & 1)
            hash_pair(0x01, path[i].sibling, h, h);
        else
            hash_pair(0x01, h, path[i].sibling, h);
        info = path[i].child >> 1;
        info_leaf = NULL;
        fold(h, info, path[i].top);
    }
    if (info_leaf != NULL)
        result = Py_BuildValue("(y#O)", (const char *)h, (Py_ssize_t)32, info_leaf);
    else
        result = Py_BuildValue("(y#K)", (const char *)h, (Py_ssize_t)32, (unsigned long long)info);
    Py_XDECREF(held);
    return result;
}

/* ------------------------------------------------------------------ multi_path: a whole clean subtree

   nodes.py's `general` for a range of pending keys that are all value updates of items already in the tree
   (StateTree tracks inserts and deletes; the caller passes only ranges free of them), so no path changes shape.
   The walk hashes as it goes and queues its writes; if it meets anything it does not expect (a position deeper
   than 62 bits, a chain a key leaves, an entry of the wrong form), it drops the queue and returns None, having
   changed nothing, and nodes.py runs its Python `general` for that range. */

typedef struct {
    uint64_t position;
    PyObject *value;
} pending_write;

typedef struct {
    PosMap *branch, *leaf_at;
    PyObject *items, *batch;
    int hash_values;
    pending_write *writes;
    Py_ssize_t n_writes, cap_writes;
} walk_ctx;

static const uint8_t *key_at(walk_ctx *c, Py_ssize_t i)
{
    PyObject *k = PyList_GET_ITEM(c->batch, i);
    if (!PyBytes_CheckExact(k) || PyBytes_GET_SIZE(k) != 32)
        return NULL;
    return (const uint8_t *)PyBytes_AS_STRING(k);
}

static int queue_write(walk_ctx *c, uint64_t position, const uint8_t h[32], uint64_t b)
{
    PyObject *value;
    if (b == position) {
        value = PyBytes_FromStringAndSize((const char *)h, 32);
    } else {
        int nbytes = (depth_of(b) + 1 + 7) >> 3, j;
        value = PyBytes_FromStringAndSize(NULL, 32 + nbytes);
        if (value != NULL) {
            uint8_t *p = (uint8_t *)PyBytes_AS_STRING(value);
            memcpy(p, h, 32);
            for (j = 0; j < nbytes; j++)
                p[32 + j] = (uint8_t)(b >> (8 * (nbytes - 1 - j)));
        }
    }
    if (value == NULL)
        return -1;
    if (c->n_writes == c->cap_writes) {
        Py_ssize_t cap = c->cap_writes ? c->cap_writes * 2 : 64;
        pending_write *grown = PyMem_Realloc(c->writes, (size_t)cap * sizeof(pending_write));
        if (grown == NULL) {
            Py_DECREF(value);
            PyErr_NoMemory();
            return -1;
        }
        c->writes = grown;
        c->cap_writes = cap;
    }
    c->writes[c->n_writes].position = position;
    c->writes[c->n_writes].value = value;
    c->n_writes++;
    return 0;
}

/* Hash at `top` of the subtree whose topmost branching node is b, with pending keys batch[lo:hi] (all under b).
   0: done; 1: hand back to Python; -1: error. */
static int walk(walk_ctx *c, uint64_t top, uint64_t b, Py_ssize_t lo, Py_ssize_t hi, uint8_t out[32])
{
    int db = depth_of(b), side, r;
    const uint8_t *first = key_at(c, lo), *last = key_at(c, hi - 1);
    Py_ssize_t mid, a, z;
    uint8_t halves[2][32];
    if (first == NULL || last == NULL || db >= 62)
        return 1;
    if (position_at(load_be64(first), db) != b || position_at(load_be64(last), db) != b)
        return 1; /* a key off the chain (or not under b at all) */
    /* the first key whose bit at depth db is 1 (all keys share the bits above it) */
    a = lo;
    z = hi;
    while (a < z) {
        Py_ssize_t m = a + (z - a) / 2;
        const uint8_t *k = key_at(c, m);
        if (k == NULL)
            return 1;
        if (bit_at(k, db))
            z = m;
        else
            a = m + 1;
    }
    mid = a;
    for (side = 0; side < 2; side++) {
        uint64_t child = (b << 1) | (uint64_t)side;
        Py_ssize_t from = side ? mid : lo, to = side ? hi : mid;
        slot *s = find(c->branch, child);
        if (from == to) { /* no pending key on this side: its stored hash */
            if (s != NULL) {
                if (!PyBytes_CheckExact(s->value) || PyBytes_GET_SIZE(s->value) < 32)
                    return 1;
                memcpy(halves[side], PyBytes_AS_STRING(s->value), 32);
            } else {
                s = find(c->leaf_at, child);
                if (s == NULL)
                    return 1;
                if ((r = leaf_of(c->items, s->value, c->hash_values, halves[side])) != 0)
                    return r;
            }
        } else if (s != NULL) { /* a stored subtree: recurse, then queue its new entry */
            uint64_t cb = branching_below_entry(s->value, child);
            if (cb == 0)
                return 1;
            if ((r = walk(c, child, cb, from, to, halves[side])) != 0)
                return r;
            if (queue_write(c, child, halves[side], cb) < 0)
                return -1;
        } else { /* a leaf: it must be the one pending key, still present with a new value */
            const uint8_t *k = key_at(c, from);
            s = find(c->leaf_at, child);
            if (to - from != 1 || s == NULL || k == NULL || !PyBytes_CheckExact(s->value) ||
                PyBytes_GET_SIZE(s->value) != 32 || memcmp(PyBytes_AS_STRING(s->value), k, 32) != 0)
                return 1;
            if ((r = leaf_of(c->items, s->value, c->hash_values, halves[side])) != 0)
                return r;
        }
    }
    hash_pair(0x01, halves[0], halves[1], out);
    while (b != top) {
        if (b & 1)
            hash_pair(0x01, ZERO32, out, out);
        else
            hash_pair(0x01, out, ZERO32, out);
        b >>= 1;
    }
    return 0;
}

/* multi_path(branch, leaf_at, items, hash_values, batch, lo, hi, position, old) -> (hash, old) or None */
static PyObject *py_multi_path(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    walk_ctx c;
    Py_ssize_t lo, hi, i;
    uint64_t top, b;
    uint8_t h[32];
    int r;
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "multi_path(branch, leaf_at, items, hash_values, batch, lo, hi, position, old)");
        return NULL;
    }
    if (Py_TYPE(args[0]) != &PosMapType || Py_TYPE(args[1]) != &PosMapType || !PyDict_CheckExact(args[2]) ||
        !PyList_CheckExact(args[4]))
        Py_RETURN_NONE;
    lo = PyLong_AsSsize_t(args[5]);
    hi = PyLong_AsSsize_t(args[6]);
    if ((lo == -1 || hi == -1) && PyErr_Occurred())
        return NULL;
    if (lo < 0 || hi > PyList_GET_SIZE(args[4]) || hi - lo < 1)
        Py_RETURN_NONE;
    if ((r = small_key(args[7], &top)) != 1 || (r = small_key(args[8], &b)) != 1) {
        if (r < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    c.branch = (PosMap *)args[0];
    c.leaf_at = (PosMap *)args[1];
    c.items = args[2];
    c.batch = args[4];
    c.hash_values = PyObject_IsTrue(args[3]);
    if (c.hash_values < 0)
        return NULL;
    c.writes = NULL;
    c.n_writes = c.cap_writes = 0;
    r = walk(&c, top, b, lo, hi, h);
    if (r == 0) {
        for (i = 0; i < c.n_writes; i++) {
            if (store(c.branch, c.writes[i].position, c.writes[i].value) < 0) {
                r = -1;
                break;
            }
        }
    }
    for (i = 0; i < c.n_writes; i++)
        Py_DECREF(c.writes[i].value);
    PyMem_Free(c.writes);
    if (r < 0)
        return NULL;
    if (r > 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(y#O)", (const char *)h, (Py_ssize_t)32, args[8]);
}

/* ------------------------------------------------------------------ module */

static PyMethodDef module_methods[] = {
    {"keccak256", (PyCFunction)py_keccak256, METH_O, "keccak256(data) -> 32 bytes (Ethereum's Keccak-256)"},
    {"sha3_256", (PyCFunction)py_sha3_256, METH_O, "FIPS 202 SHA3-256, for checking the permutation only"},
    {"node_hash", (PyCFunction)(void (*)(void))py_node_hash, METH_FASTCALL, "keccak256(0x01 || left || right)"},
    {"leaf_hash", (PyCFunction)(void (*)(void))py_leaf_hash, METH_FASTCALL, "keccak256(0x00 || key || value_hash)"},
    {"value_leaf_hash", (PyCFunction)(void (*)(void))py_value_leaf_hash, METH_FASTCALL,
     "leaf_hash(key, keccak256(value))"},
    {"single_path", (PyCFunction)(void (*)(void))py_single_path, METH_FASTCALL,
     "nodes.py's single() for its usual case, or None"},
    {"multi_path", (PyCFunction)(void (*)(void))py_multi_path, METH_FASTCALL,
     "nodes.py's general() for a range of value updates, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "ddx_offchain.tree._native", "Compiled kernels of the state tree.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
    PyObject *m;
    if (PyType_Ready(&PosMapType) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&PosMapType);
    if (PyModule_AddObject(m, "PosMap", (PyObject *)&PosMapType) < 0) {
        Py_DECREF(&PosMapType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
