/* bareprop.fast._kernel: the private compiled fast path. Not public API; see kernel.py and docs/speed.md.
 *
 * It trains the nets kernel.why_not accepts (Linear, (ReLU, Linear)*, fused softmax +
 * cross-entropy with the summed gradient, plain SGD) with the same algorithm as the readable
 * layers, written as loops over each example's nonzero inputs: MNIST pixels are about 80% zeros
 * and a ReLU's outputs about half, and a zero input adds nothing to a product. The sums run in a
 * different order from BLAS's, so the numbers agree with the readable path to rounding, not bit
 * for bit: tests/test_kernel.py checks both float types against it.
 *
 * The data goes in once as SparseRows (the nonzero columns and values of each row),
 * which every epoch then reads. The arrays come in through the buffer protocol (no NumPy headers
 * needed to build). kernel.py checks dtypes and shapes; this file checks sizes and indices again,
 * so a wrong call raises instead of reading out of bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stddef.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 64
#define MAX_THREADS 64
#define AHEAD 4 /* examples: how far ahead a thread asks for the rows it will train on */

#ifdef _OPENMP
#include <omp.h>
#define THREAD_ID() omp_get_thread_num()
#define THREAD_COUNT() omp_get_num_threads()
#define BARRIER() _Pragma("omp barrier")
#else
#define THREAD_ID() 0
#define THREAD_COUNT() 1
#define BARRIER() ((void)0)
#endif
#define ROW_BYTES 64 /* every padded row is a whole number of cache lines, so of vectors in every build */
#define VEC ((int)(VECTOR_BYTES / sizeof(REAL))) /* values in a vector: VECTOR_BYTES is set for each build below */
#define BLOCK (4 * VEC) /* outputs summed side by side, in registers */
#ifndef TILE_BYTES /* the constants marked "tuned" can be set with -D: benchmarks/tune_kernel.py */
#define TILE_BYTES 512 /* tuned: of a weight row: see TILE (9% faster than no tiles at width 1024; 128-1024 alike) */
#endif
/* A padded row whose size is a multiple of this gets one cache line (64 bytes) of zeros more. The
 * first layer reads W a tile of columns at a time, the tile of every row for the whole batch (TILE);
 * a cache keeps a line in one of a few sets, chosen by the line's address, and at a row stride of
 * 2048 bytes or a multiple the same line of every row falls in a small share of the L2's sets: most
 * of MNIST's 785 rows are read from L3 again and again. One more line a row spreads them over all the
 * sets: 5-25% faster at widths 512-1024 (floats) on two machines (benchmarks/HISTORY.md). The numbers
 * do not change: the padding columns are zero and sum apart. */
#ifndef SPREAD_BYTES /* tuned; 0: no padding */
#define SPREAD_BYTES 2048
#endif
#define ROUND64(bytes) (((size_t)(bytes) + 63) / 64 * 64)
/* Where a first layer's rows are at least this many bytes (128 floats, 64 doubles), the kernel
 * updates it from the batch's inputs by column (update_by_column), each thread with its own copy:
 * BY_COLUMN_BYTES each. Narrower, one input at a time (update_first). The choice depends on the
 * width only, so the numbers do not depend on the number of threads. */
#ifndef BY_COLUMN_MIN_ROW_BYTES /* tuned; 0: never by column */
#define BY_COLUMN_MIN_ROW_BYTES 512
#endif
#define BY_COLUMN_BYTES(I, B, real) \
    (ROUND64(((I) + 2) * sizeof(int32_t)) + ROUND64((B) * (I) * sizeof(int32_t)) + ROUND64((B) * (I) * (real)))
#define TILE ((Py_ssize_t)(TILE_BYTES / sizeof(REAL))) /* outputs of the first layer done for the whole batch
                                                   before the next: (I+1) rows of TILE_BYTES of W stay in cache */

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define PREFETCH(address) __builtin_prefetch(address)
#else
#define ALWAYS_INLINE inline
#define PREFETCH(address) ((void)0)
#endif

/* Per-thread scratch for building sparse rows: `threads` rows of `a_size` and of `b_size` bytes, in
 * *a and *b. Returns -1, with both NULL, if out of memory. */
static int row_scratch(int threads, size_t a_size, size_t b_size, void **a, void **b)
{
    *a = malloc(threads * a_size);
    *b = malloc(threads * b_size);
    if (*a == NULL || *b == NULL) {
        free(*a);
        free(*b);
        *a = *b = NULL;
        return -1;
    }
    return 0;
}

/* Types and functions for float (_f32) and double (_f64). The functions are compiled three times on
 * x86-64 with GCC (_kernel_builds.h): for any x86-64 CPU and for those with AVX2 and FMA (_avx2),
 * 32-byte vectors, and for those with AVX-512 (_avx512), 64-byte vectors, the widest the CPU has chosen
 * when the module is loaded. -DNO_AVX512_VARIANT or -DNO_AVX2_VARIANT leaves builds out (tests/test_kernel.py). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(NO_AVX2_VARIANT)
#define HAVE_AVX2_VARIANT 1
#else
#define HAVE_AVX2_VARIANT 0
#endif
#if HAVE_AVX2_VARIANT && !defined(NO_AVX512_VARIANT)
#define HAVE_AVX512_VARIANT 1
#else
#define HAVE_AVX512_VARIANT 0
#endif

#define REAL float
#define TY(name) name##_f32
#define LOG logf
#define REAL_BITS int32_t /* an integer of REAL's size, for exp's bits (see exp in _kernel_body.h) */
#include "_kernel_types.h"
#include "_kernel_builds.h"
#undef REAL
#undef TY
#undef LOG
#undef REAL_BITS

#define REAL double
#define TY(name) name##_f64
#define LOG log
#define REAL_BITS int64_t
#include "_kernel_types.h"
#include "_kernel_builds.h"
#undef REAL
#undef TY
#undef LOG
#undef REAL_BITS

static int isa = 0; /* 0 generic, 1 AVX2 + FMA, 2 AVX-512: set when the module is loaded */

#if HAVE_AVX512_VARIANT
#define DISPATCH(name, suffix) (isa == 2 ? name##_avx512##suffix : isa == 1 ? name##_avx2##suffix : name##suffix)
#elif HAVE_AVX2_VARIANT
#define DISPATCH(name, suffix) (isa >= 1 ? name##_avx2##suffix : name##suffix)
#else
#define DISPATCH(name, suffix) (name##suffix)
#endif

/* The buffers a call borrows, released together. */
typedef struct {
    Py_buffer views[MAX_LAYERS + 8];
    int count;
} Borrowed;

static void release(Borrowed *b)
{
    for (int i = 0; i < b->count; i++) PyBuffer_Release(&b->views[i]);
    b->count = 0;
}

/* A C-contiguous buffer of at least nbytes bytes, writable if asked. */
static void *borrow(Borrowed *b, PyObject *obj, int writable, Py_ssize_t nbytes, const char *what)
{
    Py_buffer *view = &b->views[b->count];
    if (PyObject_GetBuffer(obj, view, writable ? PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS : PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    b->count++;
    if (nbytes < 0 || view->len < nbytes) {
        PyErr_Format(PyExc_ValueError, "_kernel: %s has %zd bytes, needs %zd", what, view->len, nbytes);
        return NULL;
    }
    return view->buf;
}

/* Workspace: the scratch memory of sgd_steps and score, kept from one call to the next (allocating
 * and first touching a megabyte costs more than a chunk of steps). It is reused as it is when the
 * next call has the same layout, and made anew otherwise. One call at a time may use it. */
typedef struct {
    PyObject_HEAD
    char *block;
    size_t size;
    int L, is_double, in_use;
    Py_ssize_t n[MAX_LAYERS + 1], B;
} Workspace;

static void Workspace_dealloc(Workspace *self)
{
    free(self->block);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject WorkspaceType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bareprop.fast._kernel.Workspace",
    .tp_basicsize = sizeof(Workspace),
    .tp_dealloc = (destructor)Workspace_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Workspace(): scratch memory for sgd_steps and score, kept between calls.",
    .tp_new = PyType_GenericNew,
};

/* The net as C sees it: the sizes, the padded weight copies, and scratch for batches of B rows. */
typedef struct {
    int L, is_double;
    Py_ssize_t n[MAX_LAYERS + 1], p[MAX_LAYERS + 1];
    void *outside[MAX_LAYERS]; /* the net's own weight arrays */
    void *W[MAX_LAYERS];       /* their padded copies */
    Workspace *workspace;      /* holds the memory below, in one block */
    Net_f32 f32;
    Net_f64 f64;
    Inputs_f32 in32[MAX_LAYERS];
    Inputs_f64 in64[MAX_LAYERS];
    void *Z[MAX_LAYERS], *WT[MAX_LAYERS], *H[MAX_LAYERS];
} Layout;

static size_t round64(size_t bytes)
{
    return (bytes + 63) / 64 * 64;
}

/* Whether hidden layer l, of padded width P, keeps its W[:-1].T (see bp_input_narrow): rows of one cache
 * line (two AVX2 vectors, one AVX-512 vector). */
#define HAS_WT(l, P) ((l) > 0 && (P) * real <= ROW_BYTES)

/* Parse (Ws, sizes), lay out scratch for batches of B rows in the workspace, copy the weights in.
 * On success the workspace is in use until layout_done. */
static int layout_init(Layout *lay, Borrowed *borrowed, PyObject *Ws, PyObject *sizes, int is_double, Py_ssize_t B,
                       Workspace *ws)
{
    memset(lay, 0, sizeof(*lay));
    lay->is_double = is_double;
    if (ws->in_use) {
        PyErr_SetString(PyExc_RuntimeError, "_kernel: the workspace is in use by another call");
        return -1;
    }
    if (!PyTuple_Check(Ws) || !PyTuple_Check(sizes)) {
        PyErr_SetString(PyExc_TypeError, "_kernel: Ws and sizes must be tuples");
        return -1;
    }
    const Py_ssize_t L = PyTuple_GET_SIZE(Ws);
    if (L < 1 || L > MAX_LAYERS || PyTuple_GET_SIZE(sizes) != L + 1 || B < 1) {
        PyErr_SetString(PyExc_ValueError, "_kernel: need 1..64 layers, len(sizes) == len(Ws) + 1 and B >= 1");
        return -1;
    }
    lay->L = (int)L;
    const size_t real = is_double ? sizeof(double) : sizeof(float);
    for (Py_ssize_t l = 0; l <= L; l++) {
        lay->n[l] = PyLong_AsSsize_t(PyTuple_GET_ITEM(sizes, l));
        if (lay->n[l] == -1 && PyErr_Occurred()) return -1;
        if (lay->n[l] < 1 || lay->n[l] > INT32_MAX - 8) {
            PyErr_SetString(PyExc_ValueError, "_kernel: every width must be in 1..2**31-9");
            return -1;
        }
        const Py_ssize_t line = ROW_BYTES / (Py_ssize_t)real;
        lay->p[l] = (lay->n[l] + line - 1) / line * line;
        if (SPREAD_BYTES && lay->p[l] * real % SPREAD_BYTES == 0) lay->p[l] += 64 / real; /* one cache line more: see SPREAD_BYTES */
    }
    /* Every size below is a product of B and the widths: refuse those beyond the address space here, in
     * floating point, before they are computed in size_t, where they would wrap around. */
    double bytes = 0;
    for (int l = 0; l < L; l++) {
        const double I = (double)lay->n[l], O = (double)lay->n[l + 1], P = (double)lay->p[l + 1];
        bytes += (double)B * (24 + 12 * I + 8 * P) + 8 * (I + 1) * P; /* at most what the loop below takes */
        if (l > 0) bytes += 8 * (O + (double)B) * (double)lay->p[l];  /* WT and H, if it keeps them */
    }
    if (bytes > (double)PY_SSIZE_T_MAX / 4) {
        char message[120];
        snprintf(message, sizeof message, "_kernel: batches of %zd rows at these widths need %.3g bytes", B, bytes);
        PyErr_SetString(PyExc_MemoryError, message);
        return -1;
    }
    const size_t ptr = sizeof(void *);
    size_t total = 0;
    for (int l = 0; l < L; l++) {
        const size_t I = (size_t)lay->n[l], O = (size_t)lay->n[l + 1], P = (size_t)lay->p[l + 1];
        lay->outside[l] = borrow(borrowed, PyTuple_GET_ITEM(Ws, l), 1, (Py_ssize_t)((I + 1) * O * real), "a weight matrix");
        if (lay->outside[l] == NULL) return -1;
        const size_t S = l == 0 ? 0 : I; /* the first layer reads the data's rows: no store */
        total += 2 * round64(B * ptr) + round64(B * sizeof(int32_t));           /* inputs: col, val, len */
        total += round64(B * S * sizeof(int32_t)) + round64(B * S * real);      /* inputs: the stores */
        total += round64(B * P * real) + round64((I + 1) * P * real);           /* Z, W */
        if (HAS_WT(l, P)) total += round64(O * (size_t)lay->p[l] * real) + round64(B * (size_t)lay->p[l] * real); /* WT, H */
    }
    int same = ws->block != NULL && ws->size == total && ws->L == L && ws->is_double == is_double && ws->B == B;
    for (Py_ssize_t l = 0; same && l <= L; l++) same = ws->n[l] == lay->n[l];
    if (!same) {
        free(ws->block);
        void *block = NULL; /* aligned to a cache line, as every array in it: a row of W is whole lines */
        if (posix_memalign(&block, 64, total) != 0) {
            ws->block = NULL, ws->size = 0;
            PyErr_Format(PyExc_MemoryError, "_kernel: batches of %zd rows at these widths need %zu bytes", B, total);
            return -1;
        }
        ws->block = block;
        ws->size = total, ws->L = (int)L, ws->is_double = is_double, ws->B = B;
        memcpy(ws->n, lay->n, (L + 1) * sizeof(Py_ssize_t));
    }
    ws->in_use = 1;
    lay->workspace = ws;
    char *next = ws->block;
#define TAKE(ptr, type, count) do { ptr = (type *)next; next += round64((count) * sizeof(type)); } while (0)
/* One layer's memory, for either float type: its inputs (see Inputs), Z, and the padded W (zeroed). */
#define LAY_OUT_LAYER(in, real_t) do {                                                                   \
        TAKE((in)->col, const int32_t *, (size_t)B);                                                     \
        TAKE((in)->val, const real_t *, (size_t)B);                                                      \
        TAKE((in)->len, int32_t, (size_t)B);                                                             \
        TAKE((in)->col_store, int32_t, B * S);                                                           \
        TAKE((in)->val_store, real_t, B * S);                                                            \
        for (Py_ssize_t b = 0; b < B; b++)                                                               \
            (in)->col[b] = (in)->col_store + b * S, (in)->val[b] = (in)->val_store + b * S;              \
        TAKE(lay->Z[l], real_t, B * P);                                                                  \
        TAKE(lay->W[l], real_t, (I + 1) * P);                                                            \
        memset(lay->W[l], 0, (I + 1) * P * sizeof(real_t)); /* the padding columns: zero */             \
        if (HAS_WT(l, P)) {                                                                              \
            TAKE(lay->WT[l], real_t, O * (size_t)lay->p[l]);                                             \
            memset(lay->WT[l], 0, O * (size_t)lay->p[l] * sizeof(real_t));                               \
            TAKE(lay->H[l], real_t, B * (size_t)lay->p[l]);                                              \
        }                                                                                                \
    } while (0)
    for (int l = 0; l < L; l++) {
        const size_t I = (size_t)lay->n[l], O = (size_t)lay->n[l + 1], P = (size_t)lay->p[l + 1], S = l == 0 ? 0 : I;
        if (is_double)
            LAY_OUT_LAYER(&lay->in64[l], double);
        else
            LAY_OUT_LAYER(&lay->in32[l], float);
    }
#undef LAY_OUT_LAYER
#undef TAKE
    Net_f32 *f = &lay->f32;
    Net_f64 *d = &lay->f64;
    f->L = d->L = lay->L;
    f->n = d->n = lay->n;
    f->p = d->p = lay->p;
    f->B = d->B = B;
    f->W = (float **)lay->W, d->W = (double **)lay->W;
    f->in = lay->in32, d->in = lay->in64;
    f->Z = (float **)lay->Z, d->Z = (double **)lay->Z;
    f->WT = (float **)lay->WT, d->WT = (double **)lay->WT;
    f->H = (float **)lay->H, d->H = (double **)lay->H;
    if (is_double)
        DISPATCH(copy_weights, _f64)(d, (double *const *)lay->outside, 0);
    else
        DISPATCH(copy_weights, _f32)(f, (float *const *)lay->outside, 0);
    return 0;
}

/* SparseRows: the data X (N, I) as sparse rows, built once and read by every epoch. Row i's nonzero
 * columns and values are col[indptr[i]:indptr[i+1]] and val[...], columns ascending: int32 columns
 * and REAL values; or, for uint8 pixels (with I <= 65536), compact rows of uint16 columns and the
 * pixel bytes themselves (3 bytes an entry instead of 8: less memory to fill and to read). The
 * object owns its memory and nothing outside can change it, so it is checked once, when built. */
typedef struct {
    PyObject_HEAD
    Py_ssize_t N, I, nnz;
    int is_double, compact;
    int64_t *indptr;    /* (N+1,) */
    void *col;          /* (nnz+1,) int32 or, compact, uint16: a row is built writing one entry past its last */
    void *val;          /* (nnz+1,) REAL or, compact, uint8 */
} SparseRows;

/* The sizes of a column and of a value in these rows. */
static size_t col_size(const SparseRows *rows)
{
    return rows->compact ? sizeof(uint16_t) : sizeof(int32_t);
}

static size_t val_size(const SparseRows *rows)
{
    return rows->compact ? sizeof(uint8_t) : rows->is_double ? sizeof(double) : sizeof(float);
}

#if HAVE_AVX2_VARIANT
#include <immintrin.h>
static uint8_t kept_places[256][8]; /* for each byte of 8 bits, the places of its set bits (then zeros) */

/* The first I8 pixels (a multiple of 8) of the row x compressed as compact_rows does, 8 at a time with
 * SSSE3 and no branch: the nonzero pixels and their places picked by one byte shuffle (kept_places).
 * Writes up to 8 entries past the last; returns how many. (A CPU with AVX2 has SSSE3, SSE4.1 and POPCNT.) */
__attribute__((target("ssse3,sse4.1,popcnt"))) static int32_t compact_row_ssse3(const unsigned char *x, Py_ssize_t I8,
                                                                                  uint16_t *col, uint8_t *pixel)
{
    int32_t len = 0;
    for (Py_ssize_t j0 = 0; j0 < I8; j0 += 8) {
        const __m128i w = _mm_loadl_epi64((const __m128i *)(x + j0)); /* branch-free: zeros keep nothing */
        const unsigned kept = ~(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(w, _mm_setzero_si128())) & 0xFF;
        const __m128i at = _mm_loadl_epi64((const __m128i *)kept_places[kept]);
        _mm_storel_epi64((__m128i *)(pixel + len), _mm_shuffle_epi8(w, at));
        _mm_storeu_si128((__m128i *)(col + len), _mm_add_epi16(_mm_cvtepu8_epi16(at), _mm_set1_epi16((short)j0)));
        len += __builtin_popcount(kept);
    }
    return len;
}
#endif

/* Compact rows of uint8 pixels: the columns of each row's nonzero pixels as uint16, and the pixels.
 * Each thread compresses a row into its own scratch (branch-free: it writes up to 8 entries past the
 * last) and copies it to its place, as sparse_rows does. Returns -1 if out of memory. */
static int compact_rows(const unsigned char *X, Py_ssize_t N, Py_ssize_t I, const int64_t *indptr, uint16_t *col,
                        uint8_t *pixel, int threads)
{
    uint16_t *col_rows; /* (threads, I+8) */
    uint8_t *pixel_rows; /* (threads, I+8) */
    if (row_scratch(threads, (I + 8) * sizeof(uint16_t), I + 8, (void **)&col_rows, (void **)&pixel_rows) != 0)
        return -1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
    for (Py_ssize_t i = 0; i < N; i++) {
        const unsigned char *x = X + i * I;
        uint16_t *col_row = col_rows + THREAD_ID() * (I + 8);
        uint8_t *pixel_row = pixel_rows + THREAD_ID() * (I + 8);
        int32_t len = 0;
        Py_ssize_t done = 0; /* the columns compressed so far */
#if HAVE_AVX2_VARIANT
        if (isa >= 1) {
            done = I / 8 * 8;
            len = compact_row_ssse3(x, done, col_row, pixel_row);
        }
#endif
        for (Py_ssize_t j0 = done; j0 < I; j0 += 8) {
            const Py_ssize_t j1 = j0 + 8 < I ? j0 + 8 : I;
            if (j1 - j0 == 8) {
                uint64_t word;
                memcpy(&word, x + j0, 8);
                if (word == 0) continue; /* eight zero pixels: MNIST's borders are blank */
            }
            for (Py_ssize_t j = j0; j < j1; j++) {
                col_row[len] = (uint16_t)j;
                pixel_row[len] = x[j];
                len += x[j] != 0;
            }
        }
        memcpy(col + indptr[i], col_row, len * sizeof(uint16_t));
        memcpy(pixel + indptr[i], pixel_row, len);
    }
    free(col_rows);
    free(pixel_rows);
    return 0;
}

/* Memory for the large arrays of SparseRows: on Linux mapped with its pages made at once
 * (MAP_POPULATE), faster than a page fault per 4 KB when the rows are first written. */
static void *big_alloc(size_t bytes)
{
#if defined(MAP_POPULATE)
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
#else
    return malloc(bytes);
#endif
}

static void big_free(void *p, size_t bytes)
{
    if (p == NULL) return;
#if defined(MAP_POPULATE)
    munmap(p, bytes ? bytes : 1);
#else
    (void)bytes;
    free(p);
#endif
}

static void SparseRows_dealloc(SparseRows *self)
{
    free(self->indptr);
    big_free(self->col, (self->nnz + 1) * col_size(self));
    big_free(self->val, (self->nnz + 1) * val_size(self));
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *SparseRows_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"X", "pixels", "N", "I", "is_double", "threads", NULL};
    PyObject *X;
    int pixels, is_double, threads = 1;
    Py_ssize_t N, I;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Opnnp|i", names, &X, &pixels, &N, &I, &is_double, &threads))
        return NULL;
    if (N < 0 || I < 1 || I > INT32_MAX - 8 || threads < 1 || threads > MAX_THREADS) {
        PyErr_SetString(PyExc_ValueError, "SparseRows: need N >= 0, 1 <= I <= 2**31-9 and 1 <= threads <= 64");
        return NULL;
    }
    const size_t real = is_double ? sizeof(double) : sizeof(float);
    Borrowed borrowed = {.count = 0};
    const void *vX = borrow(&borrowed, X, 0, N * I * (pixels ? 1 : (Py_ssize_t)real), "X");
    if (vX != NULL && !pixels && (uintptr_t)vX % real != 0) {
        PyErr_SetString(PyExc_ValueError, "SparseRows: X must be aligned to its item size");
        vX = NULL;
    }
    if (vX == NULL) {
        release(&borrowed);
        return NULL;
    }
    SparseRows *self = (SparseRows *)type->tp_alloc(type, 0);
    if (self == NULL) goto no_memory;
    self->N = N, self->I = I, self->is_double = is_double, self->compact = pixels && I <= 65536;
    self->indptr = malloc((N + 1) * sizeof(int64_t));
    if (self->indptr == NULL) goto no_memory;
    self->indptr[0] = 0;
    Py_BEGIN_ALLOW_THREADS /* count each row's nonzeros, then add them up */
    if (is_double)
        DISPATCH(sparse_rows, _f64)(vX, pixels, N, I, self->indptr, NULL, NULL, threads);
    else
        DISPATCH(sparse_rows, _f32)(vX, pixels, N, I, self->indptr, NULL, NULL, threads);
    for (Py_ssize_t i = 0; i < N; i++) self->indptr[i + 1] += self->indptr[i];
    Py_END_ALLOW_THREADS
    self->nnz = self->indptr[N];
    self->col = big_alloc((self->nnz + 1) * col_size(self));
    self->val = big_alloc((self->nnz + 1) * val_size(self));
    if (self->col == NULL || self->val == NULL) goto no_memory;
    int filled;
    Py_BEGIN_ALLOW_THREADS
    if (self->compact)
        filled = compact_rows(vX, N, I, self->indptr, self->col, self->val, threads);
    else if (is_double)
        filled = DISPATCH(sparse_rows, _f64)(vX, pixels, N, I, self->indptr, self->col, self->val, threads);
    else
        filled = DISPATCH(sparse_rows, _f32)(vX, pixels, N, I, self->indptr, self->col, self->val, threads);
    Py_END_ALLOW_THREADS
    if (filled < 0) goto no_memory;
    release(&borrowed);
    return (PyObject *)self;
no_memory:
    release(&borrowed);
    Py_XDECREF(self);
    return PyErr_NoMemory();
}

static PyObject *SparseRows_arrays(SparseRows *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(y#y#y#)", (const char *)self->indptr, (Py_ssize_t)((self->N + 1) * sizeof(int64_t)),
                         (const char *)self->col, (Py_ssize_t)(self->nnz * col_size(self)), (const char *)self->val,
                         (Py_ssize_t)(self->nnz * val_size(self)));
}

static PyMethodDef SparseRows_methods[] = {
    {"arrays", (PyCFunction)SparseRows_arrays, METH_NOARGS,
     "arrays() -> (indptr, col, val) as bytes: int64 (N+1,); int32 (nnz,) and float32 or float64 (nnz,),\n"
     "or, compact, uint16 (nnz,) and the uint8 pixels (nnz,)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef SparseRows_members[] = {
    {"N", T_PYSSIZET, offsetof(SparseRows, N), READONLY, "number of rows"},
    {"I", T_PYSSIZET, offsetof(SparseRows, I), READONLY, "number of columns"},
    {"nnz", T_PYSSIZET, offsetof(SparseRows, nnz), READONLY, "number of nonzero entries"},
    {"is_double", T_INT, offsetof(SparseRows, is_double), READONLY, "1 if the values are float64"},
    {"compact", T_INT, offsetof(SparseRows, compact), READONLY, "1 if the rows are compact (uint8 pixels)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SparseRowsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bareprop.fast._kernel.SparseRows",
    .tp_basicsize = sizeof(SparseRows),
    .tp_dealloc = (destructor)SparseRows_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SparseRows(X, pixels, N, I, is_double, threads=1): X (N, I), uint8 pixels (scaled by 1/255) or\n"
              "floats of the net's dtype, as sparse rows: the nonzero columns and values of each row.",
    .tp_members = SparseRows_members,
    .tp_methods = SparseRows_methods,
    .tp_new = SparseRows_new,
};

/* The rows as the kernel reads them (Data), for either float type, with the table of pixel values. */
typedef struct {
    float scaled32[256];
    double scaled64[256];
    Data_f32 f32;
    Data_f64 f64;
} RowsView;

static void view_rows(const SparseRows *rows, RowsView *view)
{
    DISPATCH(init_scaled, _f32)(view->scaled32);
    DISPATCH(init_scaled, _f64)(view->scaled64);
    view->f32 = (Data_f32){rows->indptr, rows->col, rows->val, rows->compact, view->scaled32};
    view->f64 = (Data_f64){rows->indptr, rows->col, rows->val, rows->compact, view->scaled64};
}

/* The data must match the net, and the rows order[start:stop] (or start..stop-1 without order)
 * must exist and have labels 0..K-1. */
static int check_rows(const SparseRows *rows, int is_double, const int64_t *order, Py_ssize_t start, Py_ssize_t stop,
                      const int64_t *y, Py_ssize_t I, Py_ssize_t K)
{
    if (rows->I != I || rows->is_double != is_double) {
        PyErr_Format(PyExc_ValueError, "_kernel: the rows have %zd columns (is_double %d), the net takes %zd (is_double %d)",
                     rows->I, rows->is_double, I, is_double);
        return -1;
    }
    for (Py_ssize_t i = start; i < stop; i++) {
        const int64_t row = order ? order[i] : i;
        if (row < 0 || row >= rows->N || y[row] < 0 || y[row] >= K) {
            PyErr_Format(PyExc_ValueError, "_kernel: row %lld or its label out of range", (long long)row);
            return -1;
        }
    }
    return 0;
}

PyDoc_STRVAR(sgd_steps_doc,
"sgd_steps(Ws, sizes, is_double, rows, y, order, start, stop, batch_size, lr, picked, predicted, threads,\n"
"          workspace)\n\n"
"SGD steps on the batches order[start:stop] of the SparseRows `rows`, in place on the weights Ws.\n"
"Example order[i]'s log P(true class) goes to picked[i], its predicted class to predicted[i].");

static PyObject *sgd_steps(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *Ws, *sizes, *y, *order, *picked, *predicted;
    SparseRows *rows;
    int is_double;
    Py_ssize_t start, stop, B;
    double lr;
    int threads;
    Workspace *ws;
    if (!PyArg_ParseTuple(args, "OOpO!OOnnndOOiO!", &Ws, &sizes, &is_double, &SparseRowsType, &rows, &y, &order, &start,
                          &stop, &B, &lr, &picked, &predicted, &threads, &WorkspaceType, &ws))
        return NULL;
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_SetString(PyExc_ValueError, "_kernel: threads must be in 1..64");
        return NULL;
    }
    const size_t real = is_double ? sizeof(double) : sizeof(float);
    Borrowed borrowed = {.count = 0};
    Layout lay;
    PyObject *result = NULL;
    if (layout_init(&lay, &borrowed, Ws, sizes, is_double, B, ws) < 0) goto done;
    if (start < 0 || stop < start || stop > PY_SSIZE_T_MAX / 8) {
        PyErr_SetString(PyExc_ValueError, "_kernel: need 0 <= start <= stop < 2**60");
        goto done;
    }
    const int64_t *vy = borrow(&borrowed, y, 0, rows->N * (Py_ssize_t)sizeof(int64_t), "y");
    const int64_t *vo = vy ? borrow(&borrowed, order, 0, stop * (Py_ssize_t)sizeof(int64_t), "order") : NULL;
    void *vp = vo ? borrow(&borrowed, picked, 1, stop * (Py_ssize_t)real, "picked") : NULL;
    int64_t *vq = vp ? borrow(&borrowed, predicted, 1, stop * (Py_ssize_t)sizeof(int64_t), "predicted") : NULL;
    if (vq == NULL) goto done;
    if (check_rows(rows, is_double, vo, start, stop, vy, lay.n[0], lay.n[lay.L]) < 0) goto done;
    char *by_column = NULL; /* the wide first layer's scratch, a copy for each thread (see BY_COLUMN_BYTES) */
    if (BY_COLUMN_MIN_ROW_BYTES && lay.p[1] * (Py_ssize_t)real >= BY_COLUMN_MIN_ROW_BYTES) {
        by_column = malloc(threads * BY_COLUMN_BYTES(lay.n[0], B, real));
        if (by_column == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    RowsView view;
    view_rows(rows, &view);
    Py_BEGIN_ALLOW_THREADS
    if (is_double) {
        DISPATCH(sgd_steps, _f64)(&lay.f64, &view.f64, vy, vo, start, stop, lr, vp, vq, threads, by_column);
        DISPATCH(copy_weights, _f64)(&lay.f64, (double *const *)lay.outside, 1);
    } else {
        DISPATCH(sgd_steps, _f32)(&lay.f32, &view.f32, vy, vo, start, stop, (float)lr, vp, vq, threads, by_column);
        DISPATCH(copy_weights, _f32)(&lay.f32, (float *const *)lay.outside, 1);
    }
    Py_END_ALLOW_THREADS
    free(by_column);
    result = Py_None;
    Py_INCREF(result);
done:
    if (lay.workspace != NULL) lay.workspace->in_use = 0;
    release(&borrowed);
    return result;
}

PyDoc_STRVAR(score_doc,
"score(Ws, sizes, is_double, rows, y, picked, predicted, threads, workspace)\n\n"
"Inference on the SparseRows `rows`: log P(true class) into picked, the predicted class into predicted.");

static PyObject *score(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *Ws, *sizes, *y, *picked, *predicted;
    SparseRows *rows;
    int is_double, threads;
    Workspace *ws;
    if (!PyArg_ParseTuple(args, "OOpO!OOOiO!", &Ws, &sizes, &is_double, &SparseRowsType, &rows, &y, &picked, &predicted,
                          &threads, &WorkspaceType, &ws))
        return NULL;
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_SetString(PyExc_ValueError, "_kernel: threads must be in 1..64");
        return NULL;
    }
    const size_t real = is_double ? sizeof(double) : sizeof(float);
    const Py_ssize_t N = rows->N;
    Borrowed borrowed = {.count = 0};
    Layout lay;
    PyObject *result = NULL;
    if (layout_init(&lay, &borrowed, Ws, sizes, is_double, threads, ws) < 0) goto done;
    const int64_t *vy = borrow(&borrowed, y, 0, N * (Py_ssize_t)sizeof(int64_t), "y");
    void *vp = vy ? borrow(&borrowed, picked, 1, N * (Py_ssize_t)real, "picked") : NULL;
    int64_t *vq = vp ? borrow(&borrowed, predicted, 1, N * (Py_ssize_t)sizeof(int64_t), "predicted") : NULL;
    if (vq == NULL) goto done;
    if (check_rows(rows, is_double, NULL, 0, N, vy, lay.n[0], lay.n[lay.L]) < 0) goto done;
    RowsView view;
    view_rows(rows, &view);
    Py_BEGIN_ALLOW_THREADS
    if (is_double)
        DISPATCH(score, _f64)(&lay.f64, &view.f64, vy, N, vp, vq, threads);
    else
        DISPATCH(score, _f32)(&lay.f32, &view.f32, vy, N, vp, vq, threads);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    if (lay.workspace != NULL) lay.workspace->in_use = 0;
    release(&borrowed);
    return result;
}

static PyMethodDef methods[] = {
    {"sgd_steps", sgd_steps, METH_VARARGS, sgd_steps_doc},
    {"score", score, METH_VARARGS, score_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bareprop.fast._kernel", "The private compiled fast path (see kernel.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernel(void)
{
#if HAVE_AVX2_VARIANT
    __builtin_cpu_init();
    isa = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (HAVE_AVX512_VARIANT && isa && __builtin_cpu_supports("avx512f")) isa = 2;
    for (int bits = 0; bits < 256; bits++)
        for (int b = 0, k = 0; b < 8; b++)
            if (bits >> b & 1) kept_places[bits][k++] = (uint8_t)b;
#endif
    if (PyType_Ready(&SparseRowsType) < 0 || PyType_Ready(&WorkspaceType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    static const char *names[] = {"generic", "avx2+fma", "avx512f"};
    if (PyModule_AddStringConstant(m, "ISA", names[isa]) < 0
#ifdef _OPENMP
        || PyModule_AddIntConstant(m, "OPENMP", 1) < 0
#else
        || PyModule_AddIntConstant(m, "OPENMP", 0) < 0
#endif
    ) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&SparseRowsType);
    if (PyModule_AddObject(m, "SparseRows", (PyObject *)&SparseRowsType) < 0) {
        Py_DECREF(&SparseRowsType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&WorkspaceType);
    if (PyModule_AddObject(m, "Workspace", (PyObject *)&WorkspaceType) < 0) {
        Py_DECREF(&WorkspaceType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
