/* Compiled kernels of the state tree (docs/tree.md, "Compiled build"). Optional: the tree runs without them.
 *
 * - keccak256 and the two domain-separated tree hashes of docs/protocol.md ("Hashing"), computed in one C call
 *   each with the preimage on the stack (no concatenated bytes object, no hash object);
 * - PosMap, the container of the tree's stored positions (nodes.py: `branch` and `leaf_at`): a dict of
 *   int -> object with the few methods nodes.py uses, stored as an open-addressing table of (uint64 position,
 *   object) pairs. A Python dict keyed by ints costs about four cache misses per cold lookup (index, entry, the
 *   stored int object it compares, the value); a PosMap lookup costs one for the slot and one for the value.
 *   Positions that do not fit in 64 bits (items sharing prefixes longer than 62 bits) live in an ordinary dict
 *   inside the map, so every int key works;
 * - single_path and multi_path, nodes.py's re-hash loops for their common cases; multi_path gathers a batch's
 *   hashes first and hashes the independent ones eight at a time (keccakf_x8, AVX-512, where the CPU has it).
 *
 * The permutation is Keccak-f[1600] from tiny_sha3 by Markku-Juhani O. Saarinen (MIT licence,
 * github.com/mjosaarinen/tiny_sha3 commit dcbb319; the implementation CPython 3.11 ships in its hashlib sha3
 * module), copied unchanged except for static linkage. tests/tree/test_native.py checks it against the FIPS 202
 * SHA3-256 vectors (through hashlib) and Keccak-256 (the padding Ethereum uses) against the Keccak team's
 * vectors and every keccak wheel installed, for every length across the 136-byte block boundary. The eight-way
 * permutation (keccakf_x8) is not from tiny_sha3: it is written here from FIPS 202 and tested the same way.
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

/* ------------------------------------------------------------------ many single-block Keccak-256 at once

   The tree's hashes are short: a node or leaf preimage is 65 bytes, a typical value under 136, so each is one
   permutation of one block. A batch re-hash has thousands of them that do not depend on each other (every changed
   path's leaf, its siblings' leaves, the nodes of one height), so multi_path gathers them first and hashes them
   eight at a time: with AVX-512 each of the 25 lanes of the state is one vector holding that lane of eight
   independent instances, and a round is the same FIPS 202 steps as sha3_keccakf above on vectors (theta's
   three-way XOR and chi's `a ^ (~b & c)` are one vpternlogq each, rho one vprolq). Written from FIPS 202 section
   3.2; the round macro below was generated from the specification's rules (rho's offsets by the (t+1)(t+2)/2
   rule, pi's (x, y) -> (y, 2x + 3y)), and tests/tree/test_native.py checks it against the scalar permutation, the
   vectors and the wheels. Where the CPU (or the compiler) lacks AVX-512, the same batch runs one permutation at
   a time. */

#define SINGLE_BLOCK (RATE - 1) /* longest input that pads into one block */
#define X8_LANES 8

static const uint64_t ROUND_CONSTANTS[24] = {
    0x0000000000000001, 0x0000000000008082, 0x800000000000808a, 0x8000000080008000, 0x000000000000808b,
    0x0000000080000001, 0x8000000080008081, 0x8000000000008009, 0x000000000000008a, 0x0000000000000088,
    0x0000000080008009, 0x000000008000000a, 0x000000008000808b, 0x800000000000008b, 0x8000000000008089,
    0x8000000000008003, 0x8000000000008002, 0x8000000000000080, 0x000000000000800a, 0x800000008000000a,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
};

#if defined(__GNUC__) && defined(__x86_64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HAVE_X8 1
#include <immintrin.h>

/* One round from lanes A.. into lanes E.. (lane x + 5y, as in sha3_keccakf); theta folded into rho-pi's reads. */
#define ROUND_X8(A, E, rc) \
    c0 = _mm512_ternarylogic_epi64(_mm512_ternarylogic_epi64(A##00, A##05, A##10, 0x96), A##15, A##20, 0x96); \
    c1 = _mm512_ternarylogic_epi64(_mm512_ternarylogic_epi64(A##01, A##06, A##11, 0x96), A##16, A##21, 0x96); \
    c2 = _mm512_ternarylogic_epi64(_mm512_ternarylogic_epi64(A##02, A##07, A##12, 0x96), A##17, A##22, 0x96); \
    c3 = _mm512_ternarylogic_epi64(_mm512_ternarylogic_epi64(A##03, A##08, A##13, 0x96), A##18, A##23, 0x96); \
    c4 = _mm512_ternarylogic_epi64(_mm512_ternarylogic_epi64(A##04, A##09, A##14, 0x96), A##19, A##24, 0x96); \
    d0 = _mm512_xor_si512(c4, _mm512_rol_epi64(c1, 1)); \
    d1 = _mm512_xor_si512(c0, _mm512_rol_epi64(c2, 1)); \
    d2 = _mm512_xor_si512(c1, _mm512_rol_epi64(c3, 1)); \
    d3 = _mm512_xor_si512(c2, _mm512_rol_epi64(c4, 1)); \
    d4 = _mm512_xor_si512(c3, _mm512_rol_epi64(c0, 1)); \
    b0 = _mm512_xor_si512(A##00, d0); \
    b1 = _mm512_rol_epi64(_mm512_xor_si512(A##06, d1), 44); \
    b2 = _mm512_rol_epi64(_mm512_xor_si512(A##12, d2), 43); \
    b3 = _mm512_rol_epi64(_mm512_xor_si512(A##18, d3), 21); \
    b4 = _mm512_rol_epi64(_mm512_xor_si512(A##24, d4), 14); \
    E##00 = _mm512_ternarylogic_epi64(b0, b1, b2, 0xD2); \
    E##01 = _mm512_ternarylogic_epi64(b1, b2, b3, 0xD2); \
    E##02 = _mm512_ternarylogic_epi64(b2, b3, b4, 0xD2); \
    E##03 = _mm512_ternarylogic_epi64(b3, b4, b0, 0xD2); \
    E##04 = _mm512_ternarylogic_epi64(b4, b0, b1, 0xD2); \
    b0 = _mm512_rol_epi64(_mm512_xor_si512(A##03, d3), 28); \
    b1 = _mm512_rol_epi64(_mm512_xor_si512(A##09, d4), 20); \
    b2 = _mm512_rol_epi64(_mm512_xor_si512(A##10, d0), 3); \
    b3 = _mm512_rol_epi64(_mm512_xor_si512(A##16, d1), 45); \
    b4 = _mm512_rol_epi64(_mm512_xor_si512(A##22, d2), 61); \
    E##05 = _mm512_ternarylogic_epi64(b0, b1, b2, 0xD2); \
    E##06 = _mm512_ternarylogic_epi64(b1, b2, b3, 0xD2); \
    E##07 = _mm512_ternarylogic_epi64(b2, b3, b4, 0xD2); \
    E##08 = _mm512_ternarylogic_epi64(b3, b4, b0, 0xD2); \
    E##09 = _mm512_ternarylogic_epi64(b4, b0, b1, 0xD2); \
    b0 = _mm512_rol_epi64(_mm512_xor_si512(A##01, d1), 1); \
    b1 = _mm512_rol_epi64(_mm512_xor_si512(A##07, d2), 6); \
    b2 = _mm512_rol_epi64(_mm512_xor_si512(A##13, d3), 25); \
    b3 = _mm512_rol_epi64(_mm512_xor_si512(A##19, d4), 8); \
    b4 = _mm512_rol_epi64(_mm512_xor_si512(A##20, d0), 18); \
    E##10 = _mm512_ternarylogic_epi64(b0, b1, b2, 0xD2); \
    E##11 = _mm512_ternarylogic_epi64(b1, b2, b3, 0xD2); \
    E##12 = _mm512_ternarylogic_epi64(b2, b3, b4, 0xD2); \
    E##13 = _mm512_ternarylogic_epi64(b3, b4, b0, 0xD2); \
    E##14 = _mm512_ternarylogic_epi64(b4, b0, b1, 0xD2); \
    b0 = _mm512_rol_epi64(_mm512_xor_si512(A##04, d4), 27); \
    b1 = _mm512_rol_epi64(_mm512_xor_si512(A##05, d0), 36); \
    b2 = _mm512_rol_epi64(_mm512_xor_si512(A##11, d1), 10); \
    b3 = _mm512_rol_epi64(_mm512_xor_si512(A##17, d2), 15); \
    b4 = _mm512_rol_epi64(_mm512_xor_si512(A##23, d3), 56); \
    E##15 = _mm512_ternarylogic_epi64(b0, b1, b2, 0xD2); \
    E##16 = _mm512_ternarylogic_epi64(b1, b2, b3, 0xD2); \
    E##17 = _mm512_ternarylogic_epi64(b2, b3, b4, 0xD2); \
    E##18 = _mm512_ternarylogic_epi64(b3, b4, b0, 0xD2); \
    E##19 = _mm512_ternarylogic_epi64(b4, b0, b1, 0xD2); \
    b0 = _mm512_rol_epi64(_mm512_xor_si512(A##02, d2), 62); \
    b1 = _mm512_rol_epi64(_mm512_xor_si512(A##08, d3), 55); \
    b2 = _mm512_rol_epi64(_mm512_xor_si512(A##14, d4), 39); \
    b3 = _mm512_rol_epi64(_mm512_xor_si512(A##15, d0), 41); \
    b4 = _mm512_rol_epi64(_mm512_xor_si512(A##21, d1), 2); \
    E##20 = _mm512_ternarylogic_epi64(b0, b1, b2, 0xD2); \
    E##21 = _mm512_ternarylogic_epi64(b1, b2, b3, 0xD2); \
    E##22 = _mm512_ternarylogic_epi64(b2, b3, b4, 0xD2); \
    E##23 = _mm512_ternarylogic_epi64(b3, b4, b0, 0xD2); \
    E##24 = _mm512_ternarylogic_epi64(b4, b0, b1, 0xD2); \
    E##00 = _mm512_xor_si512(E##00, _mm512_set1_epi64((long long)rc));

/* Keccak-f[1600] on eight states; s[lane][instance]. Only the digest's four lanes are written back. */
__attribute__((target("avx512f"))) static void keccakf_x8(uint64_t s[25][X8_LANES])
{
    __m512i A00, A01, A02, A03, A04, A05, A06, A07, A08, A09, A10, A11, A12, A13, A14, A15, A16, A17, A18, A19, A20, A21, A22, A23, A24;
    __m512i E00, E01, E02, E03, E04, E05, E06, E07, E08, E09, E10, E11, E12, E13, E14, E15, E16, E17, E18, E19, E20, E21, E22, E23, E24;
    __m512i c0, c1, c2, c3, c4, d0, d1, d2, d3, d4, b0, b1, b2, b3, b4;
    int round;
    A00 = _mm512_load_si512((const void *)s[0]);
    A01 = _mm512_load_si512((const void *)s[1]);
    A02 = _mm512_load_si512((const void *)s[2]);
    A03 = _mm512_load_si512((const void *)s[3]);
    A04 = _mm512_load_si512((const void *)s[4]);
    A05 = _mm512_load_si512((const void *)s[5]);
    A06 = _mm512_load_si512((const void *)s[6]);
    A07 = _mm512_load_si512((const void *)s[7]);
    A08 = _mm512_load_si512((const void *)s[8]);
    A09 = _mm512_load_si512((const void *)s[9]);
    A10 = _mm512_load_si512((const void *)s[10]);
    A11 = _mm512_load_si512((const void *)s[11]);
    A12 = _mm512_load_si512((const void *)s[12]);
    A13 = _mm512_load_si512((const void *)s[13]);
    A14 = _mm512_load_si512((const void *)s[14]);
    A15 = _mm512_load_si512((const void *)s[15]);
    A16 = _mm512_load_si512((const void *)s[16]);
    A17 = _mm512_load_si512((const void *)s[17]);
    A18 = _mm512_load_si512((const void *)s[18]);
    A19 = _mm512_load_si512((const void *)s[19]);
    A20 = _mm512_load_si512((const void *)s[20]);
    A21 = _mm512_load_si512((const void *)s[21]);
    A22 = _mm512_load_si512((const void *)s[22]);
    A23 = _mm512_load_si512((const void *)s[23]);
    A24 = _mm512_load_si512((const void *)s[24]);
    for (round = 0; round < 24; round += 2) {
        ROUND_X8(A, E, ROUND_CONSTANTS[round]);
        ROUND_X8(E, A, ROUND_CONSTANTS[round + 1]);
    }
    _mm512_store_si512((void *)s[0], A00);
    _mm512_store_si512((void *)s[1], A01);
    _mm512_store_si512((void *)s[2], A02);
    _mm512_store_si512((void *)s[3], A03);
}
#else
#define HAVE_X8 0
#endif

/* 1 when keccak256_many uses keccakf_x8: set at import from the CPU's features; tests switch it off and on. */
static int vector_keccak = 0;

/* out[i] = keccak256(in[i][:len[i]]) for n inputs of at most SINGLE_BLOCK bytes each. */
static void keccak256_many(const uint8_t *const *in, const size_t *len, uint8_t *const *out, size_t n)
{
    size_t i;
#if HAVE_X8
    if (vector_keccak) {
        uint64_t s[25][X8_LANES] __attribute__((aligned(64)));
        while (n > 0) {
            size_t k = n < X8_LANES ? n : X8_LANES, j;
            memset(s, 0, sizeof s); /* lanes of unused instances stay zero; their results are not read */
            for (i = 0; i < k; i++) {
                uint8_t block[RATE];
                memset(block, 0, RATE);
                memcpy(block, in[i], len[i]);
                block[len[i]] ^= 0x01;
                block[RATE - 1] ^= 0x80;
                for (j = 0; j < RATE / 8; j++)
                    memcpy(&s[j][i], block + 8 * j, 8);
            }
            keccakf_x8(s);
            for (i = 0; i < k; i++)
                for (j = 0; j < 4; j++)
                    memcpy(out[i] + 8 * j, &s[j][i], 8);
            in += k;
            len += k;
            out += k;
            n -= k;
        }
        return;
    }
#endif
    for (i = 0; i < n; i++)
        sponge256(in[i], len[i], 0x01, out[i]);
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
   It runs in two passes. The walk reads the maps and records every hash the range needs as a job (a preimage
   whose inputs are stored hashes copied in at once, or other jobs' digests) without hashing anything; if it meets
   anything it does not expect (a position deeper than 62 bits, a chain a key leaves, an entry of the wrong form),
   it returns None, having changed nothing, and nodes.py runs its Python `general` for that range. Then the jobs
   are hashed by height, leaves' values first and the range's top last: the jobs of one height are independent,
   so keccak256_many hashes them eight at a time. Last, the new hashes are written to the branch map. */

typedef struct {
    uint8_t pre[65]; /* a node's or leaf's preimage; inputs from other jobs are copied in as they are hashed */
    uint8_t offset;  /* where this job's digest goes in its parent's preimage: 1 or 33 */
    uint8_t height;  /* 0 when every input is known at the walk, else 1 + the greatest height among its inputs */
    int32_t parent;  /* the job whose preimage takes this digest, or -1 */
    const uint8_t *value; /* a value to hash instead of pre (borrowed from the item map: no Python code runs
                             between the walk and the hashing, so it stays alive and unchanged) */
    size_t len;
    uint8_t out[32];
} hash_job;

typedef struct {
    slot *at;     /* the branch-map slot the walk found: the writes only replace values, so no slot moves */
    uint64_t position, b;
    int32_t job; /* its digest is the hash at position */
} pending_write;

/* A job's height is at most 2 + the depth of the range's top below 62 (a value, its leaf, then one node or chain
   job per level), so a byte holds it. */
#define MAX_HEIGHT 255

typedef struct {
    PosMap *branch, *leaf_at;
    PyObject *items, *batch;
    int hash_values;
    hash_job *jobs;
    Py_ssize_t n_jobs, cap_jobs;
    pending_write *writes;
    Py_ssize_t n_writes, cap_writes;
    Py_ssize_t prefetched, start, end; /* batch[:prefetched] had their paths' slots prefetched; start, end = lo, hi */
    int prefetch_from, prefetch_to; /* the depths where a key's path leaves the batch's shared top levels */
} walk_ctx;

/* Keys handled this many keys before the walk reaches them have their slots prefetched: one key's path takes a
   few microseconds to walk, far longer than a memory access, so a short lead hides it. */
#define PREFETCH_AHEAD 4

/* Ask for the branch- and leaf-map slots along the paths of the next keys, before the walk needs them. The walk's
   positions along a key's path are that key's prefixes, so their slots are known from the key alone (a position
   and its sibling share a home slot); the shared top levels are cached already and the levels below the deepest
   leaves hold nothing, so only the depths between are asked for. */
static void prefetch_paths(walk_ctx *c, Py_ssize_t upto)
{
    if (upto > c->end)
        upto = c->end;
    if (c->branch->slots == NULL || c->leaf_at->slots == NULL) {
        c->prefetched = upto;
        return;
    }
    for (; c->prefetched < upto; c->prefetched++) {
        PyObject *k = PyList_GET_ITEM(c->batch, c->prefetched);
        uint64_t prefix;
        int d;
        if (!PyBytes_CheckExact(k) || PyBytes_GET_SIZE(k) != 32)
            continue;
        prefix = load_be64((const uint8_t *)PyBytes_AS_STRING(k));
        for (d = c->prefetch_from; d <= c->prefetch_to; d++) {
            uint64_t position = position_at(prefix, d);
            __builtin_prefetch(&c->branch->slots[slot_of(position, c->branch->mask)]);
            __builtin_prefetch(&c->leaf_at->slots[slot_of(position, c->leaf_at->mask)]);
        }
        /* the entries a key further back asked for have arrived: now ask for what they point to */
        if (c->prefetched - PREFETCH_AHEAD / 2 >= c->start) {
            k = PyList_GET_ITEM(c->batch, c->prefetched - PREFETCH_AHEAD / 2);
            if (!PyBytes_CheckExact(k) || PyBytes_GET_SIZE(k) != 32)
                continue;
            prefix = load_be64((const uint8_t *)PyBytes_AS_STRING(k));
            for (d = c->prefetch_from; d <= c->prefetch_to; d++) {
                uint64_t position = position_at(prefix, d);
                slot *s = find(c->branch, position), *t = find(c->branch, position ^ 1);
                if (s == NULL)
                    s = find(c->leaf_at, position);
                if (t == NULL)
                    t = find(c->leaf_at, position ^ 1);
                if (s != NULL)
                    __builtin_prefetch(s->value);
                if (t != NULL)
                    __builtin_prefetch(t->value);
            }
        }
    }
}

static const uint8_t *key_at(walk_ctx *c, Py_ssize_t i)
{
    PyObject *k = PyList_GET_ITEM(c->batch, i);
    if (!PyBytes_CheckExact(k) || PyBytes_GET_SIZE(k) != 32)
        return NULL;
    return (const uint8_t *)PyBytes_AS_STRING(k);
}

/* A new job hashing pre (65 bytes) at height 0; its index, or -1 on error. Growing the table moves it: hold
   indices across calls, never pointers. */
static int32_t new_job(walk_ctx *c, uint8_t prefix)
{
    hash_job *j;
    if (c->n_jobs == c->cap_jobs) {
        Py_ssize_t cap = c->cap_jobs ? c->cap_jobs * 2 : 256;
        hash_job *grown;
        if (cap > INT32_MAX) {
            PyErr_NoMemory();
            return -1;
        }
        grown = PyMem_Realloc(c->jobs, (size_t)cap * sizeof(hash_job));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        c->jobs = grown;
        c->cap_jobs = cap;
    }
    j = &c->jobs[c->n_jobs];
    j->pre[0] = prefix;
    j->parent = -1;
    j->height = 0;
    j->value = NULL;
    j->len = 65;
    return (int32_t)c->n_jobs++;
}

/* The digest of job `child` becomes pre[offset:offset + 32] of job `parent`. */
static void link_job(walk_ctx *c, int32_t child, int32_t parent, uint8_t offset)
{
    hash_job *ch = &c->jobs[child], *p = &c->jobs[parent];
    ch->parent = parent;
    ch->offset = offset;
    if (p->height < ch->height + 1)
        p->height = (uint8_t)(ch->height + 1);
}

/* The jobs of the leaf `key`'s hash, keccak(value) first when the map holds values; *ref is the leaf's job.
   0 on success, 1 to fall back (unexpected entry), -1 on error. */
static int leaf_job(walk_ctx *c, PyObject *key, int32_t *ref)
{
    PyObject *stored;
    int32_t leaf, v;
    if (!PyBytes_CheckExact(key) || PyBytes_GET_SIZE(key) != 32)
        return 1;
    stored = PyDict_GetItemWithError(c->items, key); /* borrowed */
    if (stored == NULL)
        return PyErr_Occurred() ? -1 : 1;
    if (!PyBytes_CheckExact(stored))
        return 1;
    if (!c->hash_values && PyBytes_GET_SIZE(stored) != 32)
        return 1;
    if ((leaf = new_job(c, 0x00)) < 0)
        return -1;
    memcpy(c->jobs[leaf].pre + 1, PyBytes_AS_STRING(key), 32);
    if (!c->hash_values) {
        memcpy(c->jobs[leaf].pre + 33, PyBytes_AS_STRING(stored), 32);
    } else if (PyBytes_GET_SIZE(stored) > SINGLE_BLOCK) { /* a long value: hashed here, one block at a time */
        sponge256((const uint8_t *)PyBytes_AS_STRING(stored), (size_t)PyBytes_GET_SIZE(stored), 0x01,
                  c->jobs[leaf].pre + 33);
    } else {
        if ((v = new_job(c, 0)) < 0)
            return -1;
        c->jobs[v].value = (const uint8_t *)PyBytes_AS_STRING(stored);
        c->jobs[v].len = (size_t)PyBytes_GET_SIZE(stored);
        __builtin_prefetch(c->jobs[v].value + 64); /* the first line came with the size; the hash pass reads all */
        link_job(c, v, leaf, 33);
    }
    *ref = leaf;
    return 0;
}

static int queue_write(walk_ctx *c, slot *at, uint64_t position, int32_t job, uint64_t b)
{
    if (c->n_writes == c->cap_writes) {
        Py_ssize_t cap = c->cap_writes ? c->cap_writes * 2 : 64;
        pending_write *grown = PyMem_Realloc(c->writes, (size_t)cap * sizeof(pending_write));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        c->writes = grown;
        c->cap_writes = cap;
    }
    c->writes[c->n_writes].at = at;
    c->writes[c->n_writes].position = position;
    c->writes[c->n_writes].b = b;
    c->writes[c->n_writes].job = job;
    c->n_writes++;
    return 0;
}

/* The jobs of the hash at `top` of the subtree whose topmost branching node is b, with pending keys batch[lo:hi]
   (all under b); *ref is the job whose digest that hash is. 0: done; 1: hand back to Python; -1: error. */
static int walk(walk_ctx *c, uint64_t top, uint64_t b, Py_ssize_t lo, Py_ssize_t hi, int32_t *ref)
{
    int db = depth_of(b), side, r;
    const uint8_t *first = key_at(c, lo), *last = key_at(c, hi - 1);
    Py_ssize_t mid, a, z;
    int32_t node, sub, fold_job;
    if (first == NULL || last == NULL || db >= 62)
        return 1;
    if (position_at(load_be64(first), db) != b || position_at(load_be64(last), db) != b)
        return 1; /* a key off the chain (or not under b at all) */
    prefetch_paths(c, lo + PREFETCH_AHEAD);
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
    if ((node = new_job(c, 0x01)) < 0)
        return -1;
    for (side = 0; side < 2; side++) {
        uint64_t child = (b << 1) | (uint64_t)side;
        uint8_t offset = (uint8_t)(1 + 32 * side);
        Py_ssize_t from = side ? mid : lo, to = side ? hi : mid;
        slot *s = find(c->branch, child);
        if (from == to) { /* no pending key on this side: its stored hash */
            if (s != NULL) {
                if (!PyBytes_CheckExact(s->value) || PyBytes_GET_SIZE(s->value) < 32)
                    return 1;
                memcpy(c->jobs[node].pre + offset, PyBytes_AS_STRING(s->value), 32);
                continue;
            }
            s = find(c->leaf_at, child);
            if (s == NULL)
                return 1;
            if ((r = leaf_job(c, s->value, &sub)) != 0)
                return r;
        } else if (s != NULL) { /* a stored subtree: its jobs, then its new entry once hashed */
            uint64_t cb = branching_below_entry(s->value, child);
            if (cb == 0)
                return 1;
            if ((r = walk(c, child, cb, from, to, &sub)) != 0)
                return r;
            if (queue_write(c, s, child, sub, cb) < 0)
                return -1;
        } else { /* a leaf: it must be the one pending key, still present with a new value */
            const uint8_t *k = key_at(c, from);
            s = find(c->leaf_at, child);
            if (to - from != 1 || s == NULL || k == NULL || !PyBytes_CheckExact(s->value) ||
                PyBytes_GET_SIZE(s->value) != 32 || memcmp(PyBytes_AS_STRING(s->value), k, 32) != 0)
                return 1;
            if ((r = leaf_job(c, s->value, &sub)) != 0)
                return r;
        }
        link_job(c, sub, node, offset);
    }
    while (b != top) { /* the chain above b: each level's other child is EMPTY */
        if ((fold_job = new_job(c, 0x01)) < 0)
            return -1;
        memset(c->jobs[fold_job].pre + ((b & 1) ? 1 : 33), 0, 32);
        link_job(c, node, fold_job, (b & 1) ? 33 : 1);
        node = fold_job;
        b >>= 1;
    }
    *ref = node;
    return 0;
}

/* Hash every job, lowest height first (a job's inputs all have lower heights), each height's jobs in one
   keccak256_many call, and copy each digest into its parent's preimage. 0, or -1 on error. */
static int hash_jobs(walk_ctx *c)
{
    Py_ssize_t n = c->n_jobs, i, start[MAX_HEIGHT + 2];
    int32_t *order = PyMem_Malloc((size_t)(n + 1) * sizeof *order);
    const uint8_t **in = PyMem_Malloc((size_t)(n + 1) * sizeof *in);
    size_t *len = PyMem_Malloc((size_t)(n + 1) * sizeof *len);
    uint8_t **out = PyMem_Malloc((size_t)(n + 1) * sizeof *out);
    int h;
    if (order == NULL || in == NULL || len == NULL || out == NULL) {
        PyMem_Free(order);
        PyMem_Free(in);
        PyMem_Free(len);
        PyMem_Free(out);
        PyErr_NoMemory();
        return -1;
    }
    memset(start, 0, sizeof start);
    for (i = 0; i < n; i++) /* a counting sort by height */
        start[c->jobs[i].height + 1]++;
    for (h = 1; h <= MAX_HEIGHT + 1; h++)
        start[h] += start[h - 1];
    for (i = 0; i < n; i++) {
        hash_job *j = &c->jobs[i];
        Py_ssize_t at = start[j->height]++;
        order[at] = (int32_t)i;
    }
    /* start[h] is now the end of height h's run */
    for (h = 0, i = 0; h <= MAX_HEIGHT && i < n; h++) {
        Py_ssize_t from = i, k;
        for (; i < start[h]; i++) {
            hash_job *j = &c->jobs[order[i]];
            in[i] = j->value != NULL ? j->value : j->pre;
            len[i] = j->len;
            out[i] = j->out;
        }
        keccak256_many(in + from, len + from, out + from, (size_t)(i - from));
        for (k = from; k < i; k++) {
            hash_job *j = &c->jobs[order[k]];
            if (j->parent >= 0)
                memcpy(c->jobs[j->parent].pre + j->offset, j->out, 32);
        }
    }
    PyMem_Free(order);
    PyMem_Free(in);
    PyMem_Free(len);
    PyMem_Free(out);
    return 0;
}

/* The branch-map entry for a subtree whose hash at `position` is h and whose topmost branching node is b. */
static PyObject *branch_entry(uint64_t position, const uint8_t h[32], uint64_t b)
{
    PyObject *value;
    if (b == position)
        return PyBytes_FromStringAndSize((const char *)h, 32);
    {
        int nbytes = (depth_of(b) + 1 + 7) >> 3, j;
        value = PyBytes_FromStringAndSize(NULL, 32 + nbytes);
        if (value != NULL) {
            uint8_t *p = (uint8_t *)PyBytes_AS_STRING(value);
            memcpy(p, h, 32);
            for (j = 0; j < nbytes; j++)
                p[32 + j] = (uint8_t)(b >> (8 * (nbytes - 1 - j)));
        }
    }
    return value;
}

/* multi_path(branch, leaf_at, items, hash_values, batch, lo, hi, position, old) -> (hash, old) or None */
static PyObject *py_multi_path(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    walk_ctx c;
    Py_ssize_t lo, hi, i;
    uint64_t top, b;
    int32_t result_job = -1;
    PyObject *result = NULL;
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
    c.jobs = NULL;
    c.n_jobs = c.cap_jobs = 0;
    c.writes = NULL;
    c.n_writes = c.cap_writes = 0;
    c.prefetched = c.start = lo;
    c.end = hi;
    /* keys spread evenly: about log2(hi - lo) shared levels, leaves near log2(items) deep */
    c.prefetch_from = 64 - __builtin_clzll((unsigned long long)(hi - lo));
    c.prefetch_to = 64 - __builtin_clzll((unsigned long long)c.leaf_at->used | 1) + 4;
    if (c.prefetch_to > 62)
        c.prefetch_to = 62;
    r = walk(&c, top, b, lo, hi, &result_job);
    if (r == 0)
        r = hash_jobs(&c);
    for (i = 0; r == 0 && i < c.n_writes; i++) {
        pending_write *w = &c.writes[i];
        PyObject *value = branch_entry(w->position, c.jobs[w->job].out, w->b), *previous;
        if (value == NULL) {
            r = -1; /* out of memory part-way: the tree is left inconsistent, as a failed dict write would */
            break;
        }
        previous = w->at->value; /* the slot of w->position (the walk found it; replacing moves nothing) */
        w->at->value = value;
        Py_DECREF(previous);
    }
    if (r == 0)
        result = Py_BuildValue("(y#O)", (const char *)c.jobs[result_job].out, (Py_ssize_t)32, args[8]);
    PyMem_Free(c.jobs);
    PyMem_Free(c.writes);
    if (r > 0)
        Py_RETURN_NONE;
    return result;
}

/* keccak256_many(messages) -> list of digests, through the batch path multi_path uses (inputs longer than one
   block are hashed one by one, as multi_path does). For tests and measurement. */
static PyObject *py_keccak256_many(PyObject *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "keccak256_many(messages): a sequence of bytes"), *out = NULL;
    Py_ssize_t n, i, m = 0;
    const uint8_t **in = NULL;
    size_t *len = NULL;
    uint8_t **dst = NULL;
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    out = PyList_New(n);
    in = PyMem_Malloc((size_t)(n + 1) * sizeof *in);
    len = PyMem_Malloc((size_t)(n + 1) * sizeof *len);
    dst = PyMem_Malloc((size_t)(n + 1) * sizeof *dst);
    if (out == NULL || in == NULL || len == NULL || dst == NULL) {
        if (out != NULL)
            PyErr_NoMemory();
        goto fail;
    }
    for (i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i), *digest;
        if (!PyBytes_CheckExact(item)) {
            PyErr_SetString(PyExc_TypeError, "keccak256_many: every message must be bytes");
            goto fail;
        }
        digest = PyBytes_FromStringAndSize(NULL, 32);
        if (digest == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, digest);
        if (PyBytes_GET_SIZE(item) > SINGLE_BLOCK) {
            sponge256((const uint8_t *)PyBytes_AS_STRING(item), (size_t)PyBytes_GET_SIZE(item), 0x01,
                      (uint8_t *)PyBytes_AS_STRING(digest));
        } else {
            in[m] = (const uint8_t *)PyBytes_AS_STRING(item);
            len[m] = (size_t)PyBytes_GET_SIZE(item);
            dst[m] = (uint8_t *)PyBytes_AS_STRING(digest);
            m++;
        }
    }
    keccak256_many(in, len, dst, (size_t)m);
    PyMem_Free(in);
    PyMem_Free(len);
    PyMem_Free(dst);
    Py_DECREF(seq);
    return out;
fail:
    PyMem_Free(in);
    PyMem_Free(len);
    PyMem_Free(dst);
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

static int cpu_has_x8(void)
{
#if HAVE_X8
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* set_vector_keccak(enabled) -> bool: whether the eight-way permutation is now in use (never where the CPU lacks
   it). For tests, which run the batch path both ways. */
static PyObject *py_set_vector_keccak(PyObject *self, PyObject *arg)
{
    int enabled = PyObject_IsTrue(arg);
    if (enabled < 0)
        return NULL;
    vector_keccak = enabled && cpu_has_x8();
    return PyBool_FromLong(vector_keccak);
}

/* ------------------------------------------------------------------ module */

static PyMethodDef module_methods[] = {
    {"keccak256", (PyCFunction)py_keccak256, METH_O, "keccak256(data) -> 32 bytes (Ethereum's Keccak-256)"},
    {"sha3_256", (PyCFunction)py_sha3_256, METH_O, "FIPS 202 SHA3-256, for checking the permutation only"},
    {"keccak256_many", (PyCFunction)py_keccak256_many, METH_O, "[keccak256(m) for m in messages], batched"},
    {"set_vector_keccak", (PyCFunction)py_set_vector_keccak, METH_O,
     "use the eight-way AVX-512 permutation where the CPU has it (tests); returns whether it is in use"},
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
    vector_keccak = cpu_has_x8();
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
