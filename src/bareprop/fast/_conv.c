/* bareprop.fast._conv: the private compiled convolution and max pooling behind fast/conv.py.
 *
 * The readable Conv2d (core/conv.py) cuts the image into patches (im2col), multiplies them by W and adds
 * the gradient back with col2im: two copies of every patch, 10 MB a batch for the cnn preset's second
 * convolution. These loops compute the same sums straight from the image (a direct convolution), on
 * images stored channels-last, (B, H, W, C), so that the C numbers of a pixel and the O numbers of an
 * output are side by side in memory. W is taken in the same order as a channels-last patch, (k*k*C + 1, O):
 * row (di*k + dj)*C + c for kernel row di, column dj and channel c, the bias last (fast/conv.py reorders the
 * readable layer's (C*k*k + 1, O), whose rows are (c, di, dj), once a call). All arrays are float32 and
 * C-contiguous; the bindings check their sizes.
 *
 * Glossary as in core/conv.py: B batch, C input channels, O output channels, k kernel side, s stride;
 * Hp, Wp the input's height and width (already padded with zeros by the caller), Ho, Wo the output's;
 * N = B*Ho*Wo outputs (pixels), T = C*k*k taps (the numbers of one patch, one row of W each). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* start[n] = where output n's patch starts in x: (b, i*s, j*s, 0) for n = (b*Ho + i)*Wo + j. */
static void patch_starts(Py_ssize_t B, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t C,
                         Py_ssize_t s, Py_ssize_t *start)
{
    for (Py_ssize_t b = 0, n = 0; b < B; b++)
        for (Py_ssize_t i = 0; i < Ho; i++)
            for (Py_ssize_t j = 0; j < Wo; j++) start[n++] = ((b * Hp + i * s) * Wp + j * s) * C;
}

/* The hot loops, three times: 8 floats wide for any x86-64 (two SSE registers) and for AVX2 + FMA (one
 * register), 16 wide for AVX-512 (one register; used where O is a multiple of 16), chosen when the module is
 * loaded, as _kernel.c chooses. -DNO_VARIANTS builds the generic loops alone (tests/test_fast_conv.py). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(NO_VARIANTS)
#define VARIANTS 1
#else
#define VARIANTS 0
#endif
typedef float vec8 __attribute__((vector_size(32)));
typedef float vec16 __attribute__((vector_size(64)));
#define V 8
#define vec vec8
#define FN(name) name##8
#include "_conv_body.h"
#undef FN
#if VARIANTS
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define FN(name) name##8avx2
#include "_conv_body.h"
#undef FN
#pragma GCC pop_options
#undef V
#undef vec
#pragma GCC push_options
#pragma GCC target("avx512f")
#define V 16
#define vec vec16
#define FN(name) name##16
#include "_conv_body.h"
#undef FN
#pragma GCC pop_options
#endif

static int isa = 0; /* 0 generic, 1 AVX2 + FMA, 2 AVX-512: set when the module is loaded */

/* forward and weight_grad at the widest vectors this CPU has that divide O */
static void forward(const float *x, Py_ssize_t B, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t C, const float *W,
                    Py_ssize_t O, Py_ssize_t k, Py_ssize_t s, float *out, Py_ssize_t *start)
{
#if VARIANTS
    if (isa == 2 && O % 16 == 0) return forward16(x, B, Hp, Wp, C, W, O, k, s, out, start);
    if (isa >= 1) return forward8avx2(x, B, Hp, Wp, C, W, O, k, s, out, start);
#endif
    forward8(x, B, Hp, Wp, C, W, O, k, s, out, start);
}

static void weight_grad(const float *x, Py_ssize_t B, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t C, const float *g,
                        Py_ssize_t O, Py_ssize_t k, Py_ssize_t s, float *dW, Py_ssize_t *start, Py_ssize_t *at)
{
#if VARIANTS
    if (isa == 2 && O % 16 == 0) return weight_grad16(x, B, Hp, Wp, C, g, O, k, s, dW, start, at);
    if (isa >= 1) return weight_grad8avx2(x, B, Hp, Wp, C, g, O, k, s, dW, start, at);
#endif
    weight_grad8(x, B, Hp, Wp, C, g, O, k, s, dW, start, at);
}

/* dx (B, H, W, C), zero on entry, += each window's gradient g (B, Ho, Wo, C) at its max (none where arg is
 * -1): MaxPool2d's bp_input. */
static void pool_backward(const float *g, const int32_t *arg, Py_ssize_t B, Py_ssize_t H, Py_ssize_t W,
                          Py_ssize_t C, Py_ssize_t k, Py_ssize_t s, float *dx)
{
    const Py_ssize_t Ho = (H - k) / s + 1, Wo = (W - k) / s + 1;
    for (Py_ssize_t b = 0, n = 0; b < B; b++)
        for (Py_ssize_t i = 0; i < Ho; i++)
            for (Py_ssize_t j = 0; j < Wo; j++, n++) {
                float *corner = dx + ((b * H + i * s) * W + j * s) * C;
                for (Py_ssize_t c = 0; c < C; c++) {
                    const int32_t d = arg[n * C + c];
                    if (d >= 0) corner[((d / k) * W + d % k) * C + c] += g[n * C + c];
                }
            }
}

/* pool_forward at the best instructions this CPU has (the loops are the same) */
static void pool_forward(const float *x, Py_ssize_t B, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t k,
                         Py_ssize_t s, int relu, float *out, int32_t *arg)
{
#if VARIANTS
    if (isa == 2) return pool_forward16(x, B, H, W, C, k, s, relu, out, arg);
    if (isa == 1) return pool_forward8avx2(x, B, H, W, C, k, s, relu, out, arg);
#endif
    pool_forward8(x, B, H, W, C, k, s, relu, out, arg);
}

/* ---- Python bindings: buffers in, checked against the sizes given; nothing returned. ---- */

static int check(Py_buffer *buf, Py_ssize_t items, Py_ssize_t itemsize, const char *name)
{
    if (buf->len != items * itemsize || buf->itemsize != itemsize || !PyBuffer_IsContiguous(buf, 'C')) {
        PyErr_Format(PyExc_ValueError, "_conv: %s has %zd bytes, expected %zd contiguous", name, buf->len,
                     items * itemsize);
        return 0;
    }
    return 1;
}

static int sizes_ok(Py_ssize_t B, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t O, Py_ssize_t k, Py_ssize_t s)
{
    if (B < 0 || C < 1 || O < 1 || k < 1 || s < 1 || H < k || W < k || H > 65536 || W > 65536 || C > 65536
        || O > 65536 || k > 256) {
        PyErr_SetString(PyExc_ValueError, "_conv: sizes out of range");
        return 0;
    }
    return 1;
}

/* forward(x, B, Hp, Wp, C, W, O, k, s, out) and weight_grad(x, B, Hp, Wp, C, g, O, k, s, dW) */
static PyObject *call_conv(PyObject *args, int grad)
{
    Py_buffer x, w, out;
    Py_ssize_t B, H, W, C, O, k, s;
    if (!PyArg_ParseTuple(args, "y*nnnny*nnnw*", &x, &B, &H, &W, &C, &w, &O, &k, &s, &out)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t *start = NULL, *at = NULL;
    if (!sizes_ok(B, H, W, C, O, k, s) || O % 8 != 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_conv: O must be a multiple of 8");
        goto done;
    }
    const Py_ssize_t Ho = (H - k) / s + 1, Wo = (W - k) / s + 1, T = C * k * k;
    if (!check(&x, B * H * W * C, 4, "x") || !check(&w, grad ? B * Ho * Wo * O : (T + 1) * O, 4, grad ? "g" : "W")
        || !check(&out, grad ? (T + 1) * O : B * Ho * Wo * O, 4, grad ? "dW" : "out"))
        goto done;
    if (!(start = PyMem_Malloc((B * Ho * Wo + 1) * sizeof *start)) || (grad && !(at = PyMem_Malloc(T * sizeof *at)))) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (grad) weight_grad(x.buf, B, H, W, C, w.buf, O, k, s, out.buf, start, at);
    else forward(x.buf, B, H, W, C, w.buf, O, k, s, out.buf, start);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(start), PyMem_Free(at);
    PyBuffer_Release(&x), PyBuffer_Release(&w), PyBuffer_Release(&out);
    return result;
}

static PyObject *py_forward(PyObject *self, PyObject *args) { return call_conv(args, 0); }
static PyObject *py_weight_grad(PyObject *self, PyObject *args) { return call_conv(args, 1); }

/* pool_forward(x, B, H, W, C, k, s, relu, out, arg) and pool_backward(g, arg, B, H, W, C, k, s, dx) */
static PyObject *py_pool(PyObject *args, int backward)
{
    Py_buffer a, b, c;
    Py_ssize_t B, H, W, C, k, s;
    int relu = 0;
    int parsed = backward ? PyArg_ParseTuple(args, "y*y*nnnnnnw*", &a, &b, &B, &H, &W, &C, &k, &s, &c)
                          : PyArg_ParseTuple(args, "y*nnnnnnpw*w*", &a, &B, &H, &W, &C, &k, &s, &relu, &b, &c);
    if (!parsed) return NULL;
    PyObject *result = NULL;
    if (!sizes_ok(B, H, W, C, 1, k, s)) goto done;
    const Py_ssize_t Ho = (H - k) / s + 1, Wo = (W - k) / s + 1, outs = B * Ho * Wo * C, ins = B * H * W * C;
    if (backward) {
        if (!check(&a, outs, 4, "g") || !check(&b, outs, 4, "arg") || !check(&c, ins, 4, "dx")) goto done;
        const int32_t *arg = b.buf;
        for (Py_ssize_t i = 0; i < outs; i++)
            if (arg[i] < -1 || arg[i] >= k * k) {
                PyErr_SetString(PyExc_ValueError, "_conv: arg holds a number outside the window");
                goto done;
            }
        Py_BEGIN_ALLOW_THREADS
        pool_backward(a.buf, arg, B, H, W, C, k, s, c.buf);
        Py_END_ALLOW_THREADS
    } else {
        if (!check(&a, ins, 4, "x") || !check(&b, outs, 4, "out") || !check(&c, outs, 4, "arg")) goto done;
        Py_BEGIN_ALLOW_THREADS
        pool_forward(a.buf, B, H, W, C, k, s, relu, b.buf, c.buf);
        Py_END_ALLOW_THREADS
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&a), PyBuffer_Release(&b), PyBuffer_Release(&c);
    return result;
}

static PyObject *py_pool_forward(PyObject *self, PyObject *args) { return py_pool(args, 0); }
static PyObject *py_pool_backward(PyObject *self, PyObject *args) { return py_pool(args, 1); }

static PyMethodDef methods[] = {
    {"forward", py_forward, METH_VARARGS, "forward(x, B, Hp, Wp, C, W, O, k, s, out): Conv2d's forward"},
    {"weight_grad", py_weight_grad, METH_VARARGS, "weight_grad(x, B, Hp, Wp, C, g, O, k, s, dW): Conv2d's bp_param"},
    {"pool_forward", py_pool_forward, METH_VARARGS, "pool_forward(x, B, H, W, C, k, s, relu, out, arg)"},
    {"pool_backward", py_pool_backward, METH_VARARGS, "pool_backward(g, arg, B, H, W, C, k, s, dx)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_conv", "The private compiled convolution (fast/conv.py)",
                                    -1, methods};

PyMODINIT_FUNC PyInit__conv(void)
{
#if VARIANTS
    __builtin_cpu_init();
    isa = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    PyObject *m = PyModule_Create(&module);
    static const char *names[] = {"generic", "avx2+fma", "avx512f"};
    if (m && PyModule_AddStringConstant(m, "ISA", names[isa]) < 0) Py_CLEAR(m);
    return m;
}
