/* WKProto payload crypto in one C call per message (the hot path of crypto.py).
 *
 * AES-128-CBC with PKCS#7 (AES-NI), base64 and MD5, composed the way wkproto §5.3-§5.4 needs
 * them: `seal` (RECV payload + msgKey), `open` (SEND msgKey check + payload), and the single
 * steps. Every function is stateless: the caller passes the expanded key schedule (from
 * `expand_key`) and the IV.
 *
 * Only the happy path lives here. Whatever is unusual (bad base64, bad length or padding, a
 * msgKey mismatch) makes `open` / `decrypt_b64` return None and crypto.py runs its pure-Python
 * path, which either produces the same result or raises the precise error. So this module can
 * be strict (it rejects non-canonical base64 too) without changing what the server accepts.
 *
 * The module refuses to import (ImportError) where AES-NI is missing or the CPU is not x86;
 * crypto.py then uses its pure-Python path everywhere.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WK_HAVE_AESNI 1
#include <immintrin.h>
#define WK_TARGET __attribute__((target("aes,sse2")))
#endif

#define BLOCK 16
#define ROUNDS 10
#define SCHEDULE_BYTES (2 * (ROUNDS + 1) * BLOCK) /* encrypt keys, then decrypt keys */
#define STACK_BYTES 2048

/* ---- base64 (standard alphabet, '=' padding) -------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static int8_t B64_VALUE[256];

static Py_ssize_t b64_len(Py_ssize_t n) { return ((n + 2) / 3) * 4; }

static void b64_encode(const uint8_t *src, Py_ssize_t n, uint8_t *dst) {
    Py_ssize_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)src[i] << 16) | ((uint32_t)src[i + 1] << 8) | src[i + 2];
        *dst++ = (uint8_t)B64[(v >> 18) & 63];
        *dst++ = (uint8_t)B64[(v >> 12) & 63];
        *dst++ = (uint8_t)B64[(v >> 6) & 63];
        *dst++ = (uint8_t)B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        *dst++ = (uint8_t)B64[(v >> 18) & 63];
        *dst++ = (uint8_t)B64[(v >> 12) & 63];
        *dst++ = '=';
        *dst++ = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)src[i] << 16) | ((uint32_t)src[i + 1] << 8);
        *dst++ = (uint8_t)B64[(v >> 18) & 63];
        *dst++ = (uint8_t)B64[(v >> 12) & 63];
        *dst++ = (uint8_t)B64[(v >> 6) & 63];
        *dst++ = '=';
    }
}

/* Canonical base64 only (length a multiple of 4, at most two trailing '=', zero unused bits);
 * returns the decoded length, or -1. `dst` holds at least n / 4 * 3 bytes. */
static Py_ssize_t b64_decode(const uint8_t *src, Py_ssize_t n, uint8_t *dst) {
    if (n == 0 || n % 4) {
        return -1;
    }
    Py_ssize_t pad = 0;
    if (src[n - 1] == '=') {
        pad = src[n - 2] == '=' ? 2 : 1;
    }
    Py_ssize_t full = n - (pad ? 4 : 0), out = 0;
    for (Py_ssize_t i = 0; i < full; i += 4) {
        int a = B64_VALUE[src[i]], b = B64_VALUE[src[i + 1]];
        int c = B64_VALUE[src[i + 2]], d = B64_VALUE[src[i + 3]];
        if ((a | b | c | d) < 0) {
            return -1;
        }
        uint32_t v = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6) | (uint32_t)d;
        dst[out++] = (uint8_t)(v >> 16);
        dst[out++] = (uint8_t)(v >> 8);
        dst[out++] = (uint8_t)v;
    }
    if (pad) {
        const uint8_t *q = src + full;
        int a = B64_VALUE[q[0]], b = B64_VALUE[q[1]];
        if ((a | b) < 0) {
            return -1;
        }
        if (pad == 2) {
            if (b & 15) {
                return -1;
            }
            dst[out++] = (uint8_t)((a << 2) | (b >> 4));
        } else {
            int c = B64_VALUE[q[2]];
            if (c < 0 || (c & 3)) {
                return -1;
            }
            dst[out++] = (uint8_t)((a << 2) | (b >> 4));
            dst[out++] = (uint8_t)(((b & 15) << 4) | (c >> 2));
        }
    }
    return out;
}

/* ---- MD5 (RFC 1321) ---------------------------------------------------------------------- */

static uint32_t MD5_K[64];
static const uint8_t MD5_S[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                  5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static uint32_t rotl32(uint32_t x, unsigned c) { return (x << c) | (x >> (32 - c)); }

static void md5_chunk(uint32_t h[4], const uint8_t *p) {
    uint32_t m[16];
    for (int j = 0; j < 16; j++) {
        m[j] = (uint32_t)p[4 * j] | ((uint32_t)p[4 * j + 1] << 8) | ((uint32_t)p[4 * j + 2] << 16) |
               ((uint32_t)p[4 * j + 3] << 24);
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (b & c) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & c);
            g = (5 * i + 1) & 15;
        } else if (i < 48) {
            f = b ^ c ^ d;
            g = (3 * i + 5) & 15;
        } else {
            f = c ^ (b | ~d);
            g = (7 * i) & 15;
        }
        f = f + a + MD5_K[i] + m[g];
        a = d;
        d = c;
        c = b;
        b = b + rotl32(f, MD5_S[i]);
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

/* md5 of `data` as 32 lowercase hex characters into `hex`. */
static void md5_hex(const uint8_t *data, Py_ssize_t n, char hex[32]) {
    uint32_t h[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
    Py_ssize_t i = 0;
    for (; i + 64 <= n; i += 64) {
        md5_chunk(h, data + i);
    }
    uint8_t tail[128];
    Py_ssize_t rest = n - i;
    memcpy(tail, data + i, (size_t)rest);
    tail[rest] = 0x80;
    Py_ssize_t tail_len = rest < 56 ? 64 : 128;
    memset(tail + rest + 1, 0, (size_t)(tail_len - rest - 1));
    uint64_t bits = (uint64_t)n * 8u;
    for (int k = 0; k < 8; k++) {
        tail[tail_len - 8 + k] = (uint8_t)(bits >> (8 * k));
    }
    md5_chunk(h, tail);
    if (tail_len == 128) {
        md5_chunk(h, tail + 64);
    }
    static const char HEX[] = "0123456789abcdef";
    for (int w = 0; w < 4; w++) {
        for (int k = 0; k < 4; k++) {
            uint8_t byte = (uint8_t)(h[w] >> (8 * k));
            hex[8 * w + 2 * k] = HEX[byte >> 4];
            hex[8 * w + 2 * k + 1] = HEX[byte & 15];
        }
    }
}

#ifdef WK_HAVE_AESNI

/* ---- AES-128 (AES-NI) -------------------------------------------------------------------- */

WK_TARGET static __m128i expand_step(__m128i key, __m128i assist) {
    assist = _mm_shuffle_epi32(assist, 0xff);
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, assist);
}

#define EXPAND(i, rcon) k[i] = expand_step(k[i - 1], _mm_aeskeygenassist_si128(k[i - 1], rcon))

WK_TARGET static void aes_expand(const uint8_t key[BLOCK], uint8_t out[SCHEDULE_BYTES]) {
    __m128i k[ROUNDS + 1];
    k[0] = _mm_loadu_si128((const __m128i *)key);
    EXPAND(1, 0x01);
    EXPAND(2, 0x02);
    EXPAND(3, 0x04);
    EXPAND(4, 0x08);
    EXPAND(5, 0x10);
    EXPAND(6, 0x20);
    EXPAND(7, 0x40);
    EXPAND(8, 0x80);
    EXPAND(9, 0x1b);
    EXPAND(10, 0x36);
    for (int i = 0; i <= ROUNDS; i++) {
        _mm_storeu_si128((__m128i *)(out + BLOCK * i), k[i]);
    }
    /* the equivalent inverse cipher: decrypt key i is InvMixColumns(encrypt key 10 - i) */
    uint8_t *dec = out + (ROUNDS + 1) * BLOCK;
    _mm_storeu_si128((__m128i *)dec, k[ROUNDS]);
    for (int i = 1; i < ROUNDS; i++) {
        _mm_storeu_si128((__m128i *)(dec + BLOCK * i), _mm_aesimc_si128(k[ROUNDS - i]));
    }
    _mm_storeu_si128((__m128i *)(dec + BLOCK * ROUNDS), k[0]);
}

/* CBC-encrypt `n` bytes (a multiple of 16) in place. */
WK_TARGET static void cbc_encrypt(const uint8_t *ks, const uint8_t *iv, uint8_t *buf, Py_ssize_t n) {
    __m128i k[ROUNDS + 1];
    for (int i = 0; i <= ROUNDS; i++) {
        k[i] = _mm_loadu_si128((const __m128i *)(ks + BLOCK * i));
    }
    __m128i prev = _mm_loadu_si128((const __m128i *)iv);
    for (Py_ssize_t off = 0; off < n; off += BLOCK) {
        __m128i x = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(buf + off)), prev);
        x = _mm_xor_si128(x, k[0]);
        for (int r = 1; r < ROUNDS; r++) {
            x = _mm_aesenc_si128(x, k[r]);
        }
        prev = _mm_aesenclast_si128(x, k[ROUNDS]);
        _mm_storeu_si128((__m128i *)(buf + off), prev);
    }
}

/* CBC-decrypt `n` bytes (a multiple of 16) from `src` into `dst`. */
WK_TARGET static void cbc_decrypt(const uint8_t *ks, const uint8_t *iv, const uint8_t *src,
                                  uint8_t *dst, Py_ssize_t n) {
    const uint8_t *dks = ks + (ROUNDS + 1) * BLOCK;
    __m128i k[ROUNDS + 1];
    for (int i = 0; i <= ROUNDS; i++) {
        k[i] = _mm_loadu_si128((const __m128i *)(dks + BLOCK * i));
    }
    __m128i prev = _mm_loadu_si128((const __m128i *)iv);
    for (Py_ssize_t off = 0; off < n; off += BLOCK) {
        __m128i c = _mm_loadu_si128((const __m128i *)(src + off));
        __m128i x = _mm_xor_si128(c, k[0]);
        for (int r = 1; r < ROUNDS; r++) {
            x = _mm_aesdec_si128(x, k[r]);
        }
        x = _mm_aesdeclast_si128(x, k[ROUNDS]);
        _mm_storeu_si128((__m128i *)(dst + off), _mm_xor_si128(x, prev));
        prev = c;
    }
}

/* ---- composed steps ---------------------------------------------------------------------- */

/* A scratch buffer: on the stack when small, else PyMem. */
typedef struct {
    uint8_t *p;
    uint8_t stack[STACK_BYTES];
} Scratch;

static uint8_t *scratch_get(Scratch *s, Py_ssize_t n) {
    s->p = n <= STACK_BYTES ? s->stack : (uint8_t *)PyMem_Malloc((size_t)n);
    if (s->p == NULL) {
        PyErr_NoMemory();
    }
    return s->p;
}

static void scratch_free(Scratch *s) {
    if (s->p != NULL && s->p != s->stack) {
        PyMem_Free(s->p);
    }
}

static Py_ssize_t padded_len(Py_ssize_t n) { return (n / BLOCK + 1) * BLOCK; }

static void pkcs7(uint8_t *buf, Py_ssize_t n) {
    uint8_t pad = (uint8_t)(BLOCK - n % BLOCK);
    memset(buf + n, pad, pad);
}

/* md5hex(base64(AES-CBC(pkcs7(a || b)))) into `hex` (the msgKey of §5.4); -1 on no memory. */
static int msg_key_of(const uint8_t *ks, const uint8_t *iv, const uint8_t *a, Py_ssize_t na,
                      const uint8_t *b, Py_ssize_t nb, char hex[32]) {
    Py_ssize_t n = na + nb, p = padded_len(n), w = b64_len(p);
    Scratch s;
    uint8_t *buf = scratch_get(&s, p + w);
    if (buf == NULL) {
        return -1;
    }
    if (na) {
        memcpy(buf, a, (size_t)na);
    }
    if (nb) {
        memcpy(buf + na, b, (size_t)nb);
    }
    pkcs7(buf, n);
    cbc_encrypt(ks, iv, buf, p);
    b64_encode(buf, p, buf + p);
    md5_hex(buf + p, w, hex);
    scratch_free(&s);
    return 0;
}

/* base64(AES-CBC(pkcs7(data))) as a new bytes object. */
static PyObject *encrypt_b64_of(const uint8_t *ks, const uint8_t *iv, const uint8_t *data,
                                Py_ssize_t n) {
    Py_ssize_t p = padded_len(n);
    Scratch s;
    uint8_t *buf = scratch_get(&s, p);
    if (buf == NULL) {
        return NULL;
    }
    memcpy(buf, data, (size_t)n);
    pkcs7(buf, n);
    cbc_encrypt(ks, iv, buf, p);
    PyObject *out = PyBytes_FromStringAndSize(NULL, b64_len(p));
    if (out != NULL) {
        b64_encode(buf, p, (uint8_t *)PyBytes_AS_STRING(out));
    }
    scratch_free(&s);
    return out;
}

/* Plaintext of a base64 wire payload, or Py_None when anything is unusual (the caller's
 * pure-Python path then decides). */
static PyObject *decrypt_b64_of(const uint8_t *ks, const uint8_t *iv, const uint8_t *wire,
                                Py_ssize_t n) {
    Scratch s;
    uint8_t *buf = scratch_get(&s, n / 4 * 3 * 2 + 1);
    if (buf == NULL) {
        return NULL;
    }
    Py_ssize_t c = b64_decode(wire, n, buf);
    PyObject *out = Py_None;
    if (c > 0 && c % BLOCK == 0) {
        uint8_t *plain = buf + n / 4 * 3;
        cbc_decrypt(ks, iv, buf, plain, c);
        uint8_t pad = plain[c - 1];
        int ok = pad >= 1 && pad <= BLOCK;
        for (int i = 1; ok && i <= pad; i++) {
            ok = plain[c - i] == pad;
        }
        if (ok) {
            out = PyBytes_FromStringAndSize((const char *)plain, c - pad);
            scratch_free(&s);
            return out;
        }
    }
    scratch_free(&s);
    Py_RETURN_NONE;
}

/* ---- Python functions -------------------------------------------------------------------- */

static int get_schedule(PyObject *ks, PyObject *iv, const uint8_t **k, const uint8_t **v) {
    if (!PyBytes_CheckExact(ks) || PyBytes_GET_SIZE(ks) != SCHEDULE_BYTES) {
        PyErr_SetString(PyExc_ValueError, "key schedule: bytes from expand_key() expected");
        return -1;
    }
    if (!PyBytes_CheckExact(iv) || PyBytes_GET_SIZE(iv) != BLOCK) {
        PyErr_SetString(PyExc_ValueError, "iv: 16 bytes expected");
        return -1;
    }
    *k = (const uint8_t *)PyBytes_AS_STRING(ks);
    *v = (const uint8_t *)PyBytes_AS_STRING(iv);
    return 0;
}

static int get_bytes(PyObject *o, const char *what, const uint8_t **p, Py_ssize_t *n) {
    if (!PyBytes_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: bytes expected, got %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    *p = (const uint8_t *)PyBytes_AS_STRING(o);
    *n = PyBytes_GET_SIZE(o);
    return 0;
}

static int check_nargs(Py_ssize_t nargs, Py_ssize_t want, const char *name) {
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, want, nargs);
        return -1;
    }
    return 0;
}

static PyObject *py_expand_key(PyObject *self, PyObject *key) {
    if (!PyBytes_CheckExact(key) || PyBytes_GET_SIZE(key) != BLOCK) {
        PyErr_SetString(PyExc_ValueError, "an AES-128 key has 16 bytes");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, SCHEDULE_BYTES);
    if (out != NULL) {
        aes_expand((const uint8_t *)PyBytes_AS_STRING(key), (uint8_t *)PyBytes_AS_STRING(out));
    }
    return out;
}

/* encrypt(ks, iv, data) -> raw ciphertext of pkcs7(data) */
static PyObject *py_encrypt(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    const uint8_t *ks, *iv, *data;
    Py_ssize_t n;
    if (check_nargs(nargs, 3, "encrypt") || get_schedule(args[0], args[1], &ks, &iv) ||
        get_bytes(args[2], "data", &data, &n)) {
        return NULL;
    }
    Py_ssize_t p = padded_len(n);
    PyObject *out = PyBytes_FromStringAndSize(NULL, p);
    if (out != NULL) {
        uint8_t *buf = (uint8_t *)PyBytes_AS_STRING(out);
        memcpy(buf, data, (size_t)n);
        pkcs7(buf, n);
        cbc_encrypt(ks, iv, buf, p);
    }
    return out;
}

/* encrypt_b64(ks, iv, data) -> base64 of the ciphertext (a wire payload) */
static PyObject *py_encrypt_b64(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    const uint8_t *ks, *iv, *data;
    Py_ssize_t n;
    if (check_nargs(nargs, 3, "encrypt_b64") || get_schedule(args[0], args[1], &ks, &iv) ||
        get_bytes(args[2], "data", &data, &n)) {
        return NULL;
    }
    return encrypt_b64_of(ks, iv, data, n);
}

/* decrypt_b64(ks, iv, wire) -> plaintext, or None when not canonical base64 of a well padded
 * ciphertext */
static PyObject *py_decrypt_b64(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    const uint8_t *ks, *iv, *wire;
    Py_ssize_t n;
    if (check_nargs(nargs, 3, "decrypt_b64") || get_schedule(args[0], args[1], &ks, &iv) ||
        get_bytes(args[2], "wire", &wire, &n)) {
        return NULL;
    }
    return decrypt_b64_of(ks, iv, wire, n);
}

/* msg_key(ks, iv, sign) -> md5hex(base64(AES(sign))) */
static PyObject *py_msg_key(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    const uint8_t *ks, *iv, *sign;
    Py_ssize_t n;
    if (check_nargs(nargs, 3, "msg_key") || get_schedule(args[0], args[1], &ks, &iv) ||
        get_bytes(args[2], "sign", &sign, &n)) {
        return NULL;
    }
    char hex[32];
    if (msg_key_of(ks, iv, sign, n, NULL, 0, hex) < 0) {
        return NULL;
    }
    return PyUnicode_FromStringAndSize(hex, 32);
}

/* seal(ks, iv, head, plain) -> (wire, msgKey): wire = encrypt_b64(plain), msgKey over
 * head + wire (a RECV, §5.4) */
static PyObject *py_seal(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    const uint8_t *ks, *iv, *head, *plain;
    Py_ssize_t nh, np;
    if (check_nargs(nargs, 4, "seal") || get_schedule(args[0], args[1], &ks, &iv) ||
        get_bytes(args[2], "head", &head, &nh) || get_bytes(args[3], "plain", &plain, &np)) {
        return NULL;
    }
    PyObject *wire = encrypt_b64_of(ks, iv, plain, np);
    if (wire == NULL) {
        return NULL;
    }
    char hex[32];
    if (msg_key_of(ks, iv, head, nh, (const uint8_t *)PyBytes_AS_STRING(wire),
                   PyBytes_GET_SIZE(wire), hex) < 0) {
        Py_DECREF(wire);
        return NULL;
    }
    PyObject *key = PyUnicode_FromStringAndSize(hex, 32);
    if (key == NULL) {
        Py_DECREF(wire);
        return NULL;
    }
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(wire);
        Py_DECREF(key);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, wire);
    PyTuple_SET_ITEM(pair, 1, key);
    return pair;
}

/* open(ks, iv, head, wire, msg_key) -> plaintext of a SEND whose msgKey (over head + wire)
 * matches, or None when it does not or the payload is unusual */
static PyObject *py_open(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    const uint8_t *ks, *iv, *head, *wire;
    Py_ssize_t nh, nw;
    if (check_nargs(nargs, 5, "open") || get_schedule(args[0], args[1], &ks, &iv) ||
        get_bytes(args[2], "head", &head, &nh) || get_bytes(args[3], "wire", &wire, &nw)) {
        return NULL;
    }
    if (!PyUnicode_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "msg_key: str expected");
        return NULL;
    }
    Py_ssize_t nk;
    const char *given = PyUnicode_AsUTF8AndSize(args[4], &nk);
    if (given == NULL) { /* e.g. a lone surrogate: not ours to judge, the Python path decides */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    char hex[32];
    if (msg_key_of(ks, iv, head, nh, wire, nw, hex) < 0) {
        return NULL;
    }
    if (nk != 32) {
        Py_RETURN_NONE;
    }
    unsigned diff = 0;
    for (int i = 0; i < 32; i++) {
        diff |= (unsigned)(hex[i] ^ given[i]);
    }
    if (diff) {
        Py_RETURN_NONE;
    }
    return decrypt_b64_of(ks, iv, wire, nw);
}

#endif /* WK_HAVE_AESNI */

/* md5_hex(data) -> str (exposed for the tests of the MD5 above) */
static PyObject *py_md5_hex(PyObject *self, PyObject *data) {
    const uint8_t *p;
    Py_ssize_t n;
    if (get_bytes(data, "data", &p, &n)) {
        return NULL;
    }
    char hex[32];
    md5_hex(p, n, hex);
    return PyUnicode_FromStringAndSize(hex, 32);
}

/* b64encode(data) -> bytes, b64decode(data) -> bytes | None (exposed for the tests) */
static PyObject *py_b64encode(PyObject *self, PyObject *data) {
    const uint8_t *p;
    Py_ssize_t n;
    if (get_bytes(data, "data", &p, &n)) {
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, b64_len(n));
    if (out != NULL) {
        b64_encode(p, n, (uint8_t *)PyBytes_AS_STRING(out));
    }
    return out;
}

static PyObject *py_b64decode(PyObject *self, PyObject *data) {
    const uint8_t *p;
    Py_ssize_t n;
    if (get_bytes(data, "data", &p, &n)) {
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n / 4 * 3);
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t m = b64_decode(p, n, (uint8_t *)PyBytes_AS_STRING(out));
    if (m < 0) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    if (_PyBytes_Resize(&out, m) < 0) {
        return NULL;
    }
    return out;
}

static PyMethodDef METHODS[] = {
#ifdef WK_HAVE_AESNI
    {"expand_key", (PyCFunction)py_expand_key, METH_O, NULL},
    {"encrypt", (PyCFunction)(void (*)(void))py_encrypt, METH_FASTCALL, NULL},
    {"encrypt_b64", (PyCFunction)(void (*)(void))py_encrypt_b64, METH_FASTCALL, NULL},
    {"decrypt_b64", (PyCFunction)(void (*)(void))py_decrypt_b64, METH_FASTCALL, NULL},
    {"msg_key", (PyCFunction)(void (*)(void))py_msg_key, METH_FASTCALL, NULL},
    {"seal", (PyCFunction)(void (*)(void))py_seal, METH_FASTCALL, NULL},
    {"open", (PyCFunction)(void (*)(void))py_open, METH_FASTCALL, NULL},
#endif
    {"md5_hex", (PyCFunction)py_md5_hex, METH_O, NULL},
    {"b64encode", (PyCFunction)py_b64encode, METH_O, NULL},
    {"b64decode", (PyCFunction)py_b64decode, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_wkcrypto", NULL, -1, METHODS, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wkcrypto(void) {
#ifndef WK_HAVE_AESNI
    PyErr_SetString(PyExc_ImportError, "_wkcrypto needs an x86-64 CPU with AES-NI");
    return NULL;
#else
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("aes") || !__builtin_cpu_supports("sse2")) {
        PyErr_SetString(PyExc_ImportError, "_wkcrypto needs an x86-64 CPU with AES-NI");
        return NULL;
    }
    for (int i = 0; i < 64; i++) {
        MD5_K[i] = (uint32_t)(fabs(sin((double)(i + 1))) * 4294967296.0);
    }
    memset(B64_VALUE, -1, sizeof B64_VALUE);
    for (int i = 0; i < 64; i++) {
        B64_VALUE[(uint8_t)B64[i]] = (int8_t)i;
    }
    return PyModule_Create(&MODULE);
#endif
}
