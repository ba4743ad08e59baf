/* The body of _kernel.c, included once per float type and instruction set: REAL is float or
 * double, TY(name) adds the type's suffix to a type of _kernel_types.h, FN(name) the type's and
 * the instruction set's to a function, VECTOR_BYTES is the instruction set's vector size, LOG is log
 * in REAL and REAL_BITS an integer of its size. It is the readable layers' arithmetic
 * (layers.py, losses.py), written as loops that skip the zeros of each layer's input.
 *
 * Glossary as in layers.py: B batch, I in, O out, K classes; P an O padded to a whole
 * number of cache lines (ROW_BYTES), so of VEC.
 * Every matrix is row-major. The kernel trains private copies of the weights, each (I+1, P): the
 * net's W (I+1, O) with zero columns appended, so that every row is a whole number of vectors;
 * the zero columns give zero outputs, zero gradients and stay zero. */


/* VEC values side by side: one vector register of this build, for GCC's and Clang's vector extensions.
 * Rows are loaded and stored with memcpy: they need no alignment. */
typedef REAL FN(vec) __attribute__((vector_size(VECTOR_BYTES)));
typedef REAL_BITS FN(bits) __attribute__((vector_size(VECTOR_BYTES))); /* the same lanes' bits */

static void FN(init_scaled)(REAL *scaled)
{
    for (int v = 0; v < 256; v++) scaled[v] = (REAL)v / (REAL)255; /* (256,) as as_inputs divides: in REAL */
}

/* One row x (I,) of the data, its zeros skipped: writes the columns and values of its nonzero
 * entries and returns how many. Pixels (uint8) are divided by 255 in REAL, exactly as
 * net.as_inputs divides them; other inputs are taken as they are. Zeros are skipped 8 entries at a
 * time (MNIST's borders are blank). */
static int32_t FN(compress_row)(const unsigned char *x, int pixels, Py_ssize_t I, const REAL *scaled,
                                int32_t *col, REAL *val)
{
    const Py_ssize_t itemsize = pixels ? 1 : (Py_ssize_t)sizeof(REAL), words = itemsize; /* 8 entries = words * 8 bytes */
    int32_t len = 0;
    for (Py_ssize_t j0 = 0; j0 < I; j0 += 8) {
        const Py_ssize_t j1 = j0 + 8 < I ? j0 + 8 : I;
        if (j1 - j0 == 8) {
            uint64_t any = 0, word;
            for (Py_ssize_t w = 0; w < words; w++) {
                memcpy(&word, x + j0 * itemsize + 8 * w, 8);
                any |= word;
            }
            if (any == 0) continue; /* all zero bits */
        }
        for (Py_ssize_t j = j0; j < j1; j++) { /* branch-free: always write, advance past nonzeros (-0.0 is a zero) */
            const REAL v = pixels ? scaled[x[j]] : ((const REAL *)x)[j];
            col[len] = (int32_t)j;
            val[len] = v;
            len += v != 0;
        }
    }
    return len;
}

/* The number of nonzero entries of a row x (I,) of the data. */
static int32_t FN(count_nonzero)(const unsigned char *x, int pixels, Py_ssize_t I)
{
    int32_t count = 0;
    if (pixels) {
        for (Py_ssize_t j = 0; j < I; j++) count += x[j] != 0;
    } else {
        const REAL *v = (const REAL *)x; /* aligned: SparseRows takes aligned arrays only */
        for (Py_ssize_t j = 0; j < I; j++) count += v[j] != 0;
    }
    return count;
}

/* The data X (N, I) as sparse rows: row i's nonzero columns and values are col[indptr[i]:indptr[i+1]]
 * and val[...]. With col == NULL, only counts: indptr[i+1] = row i's number of nonzeros. `threads`
 * threads take a share of the rows each; each compresses a row into its own scratch (compress_row
 * writes one entry past the last) and copies it to its place. Returns -1 if out of memory. */
static int FN(sparse_rows)(const void *X, int pixels, Py_ssize_t N, Py_ssize_t I, int64_t *indptr, int32_t *col,
                           REAL *val, int threads)
{
    REAL scaled[256];
    FN(init_scaled)(scaled);
    const Py_ssize_t itemsize = pixels ? 1 : (Py_ssize_t)sizeof(REAL);
    int32_t *col_rows = NULL; /* (threads, I+1) */
    REAL *val_rows = NULL;    /* (threads, I+1) */
    if (col != NULL && row_scratch(threads, (I + 1) * sizeof(int32_t), (I + 1) * sizeof(REAL), (void **)&col_rows,
                                   (void **)&val_rows) != 0)
        return -1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
    for (Py_ssize_t i = 0; i < N; i++) {
        const unsigned char *x = (const unsigned char *)X + i * I * itemsize;
        if (col == NULL) {
            indptr[i + 1] = FN(count_nonzero)(x, pixels, I);
        } else {
            int32_t *col_row = col_rows + THREAD_ID() * (I + 1); /* (I+1,) this thread's */
            REAL *val_row = val_rows + THREAD_ID() * (I + 1);
            const int32_t len = FN(compress_row)(x, pixels, I, scaled, col_row, val_row);
            memcpy(col + indptr[i], col_row, len * sizeof(int32_t));
            memcpy(val + indptr[i], val_row, len * sizeof(REAL));
        }
    }
    free(col_rows);
    free(val_rows);
    return 0;
}


static ALWAYS_INLINE FN(vec) FN(load)(const REAL *p)
{
    FN(vec) v;
    memcpy(&v, p, sizeof v);
    return v;
}

static ALWAYS_INLINE void FN(store)(REAL *p, FN(vec) v)
{
    memcpy(p, &v, sizeof v);
}

/* Entry t of a row: its column and its value x, from full rows (int32 columns, REAL values) or from
 * compact ones (uint16 columns, pixel bytes: x = scaled[pixel]). Always inlined with a constant
 * `compact`, so each kind of row gets its own loops. */
static ALWAYS_INLINE Py_ssize_t FN(col_at)(const void *col, const int compact, int32_t t)
{
    return compact ? (Py_ssize_t)((const uint16_t *)col)[t] : (Py_ssize_t)((const int32_t *)col)[t];
}

static ALWAYS_INLINE REAL FN(x_at)(const void *val, const int compact, const REAL *scaled, int32_t t)
{
    return compact ? scaled[((const uint8_t *)val)[t]] : ((const REAL *)val)[t];
}

static ALWAYS_INLINE size_t FN(col_bytes)(const int compact)
{
    return compact ? sizeof(uint16_t) : sizeof(int32_t);
}

static ALWAYS_INLINE size_t FN(val_bytes)(const int compact)
{
    return compact ? sizeof(uint8_t) : sizeof(REAL);
}

/* Row `row` of the data: its entries' columns and values (for col_at and x_at) and their number. */
static ALWAYS_INLINE int32_t FN(row_at)(const TY(Data) *data, const int compact, int64_t row, const void **col,
                                        const void **val)
{
    const int64_t a = data->indptr[row];
    *col = (const char *)data->col + a * FN(col_bytes)(compact);
    *val = (const char *)data->val + a * FN(val_bytes)(compact);
    return (int32_t)(data->indptr[row + 1] - a);
}

/* z[0:nv*VEC] = bias + sum_t x_t W[j_t, 0:nv*VEC], the sums kept in 2*nv vector registers: the
 * even t in one set, the odd in the other, so that two additions are in flight at a time. Always
 * inlined with a constant nv and `compact`. */
static ALWAYS_INLINE void FN(linear_block)(const void *col, const void *val, const int compact, const REAL *scaled,
                                           int32_t n, const REAL *W, Py_ssize_t P, const REAL *bias, REAL *z,
                                           const int nv)
{
    FN(vec) even[BLOCK / VEC], odd[BLOCK / VEC]; /* (nv, VEC) each */
    for (int v = 0; v < nv; v++) even[v] = FN(load)(bias + v * VEC), odd[v] = (FN(vec)){0};
    int32_t t = 0;
    for (; t + 1 < n; t += 2) {
        const REAL x0 = FN(x_at)(val, compact, scaled, t), *w0 = W + FN(col_at)(col, compact, t) * P;
        const REAL x1 = FN(x_at)(val, compact, scaled, t + 1), *w1 = W + FN(col_at)(col, compact, t + 1) * P;
        for (int v = 0; v < nv; v++) {
            even[v] += x0 * FN(load)(w0 + v * VEC); /* (VEC,) += () * (VEC,) */
            odd[v] += x1 * FN(load)(w1 + v * VEC);
        }
    }
    if (t < n) {
        const REAL x = FN(x_at)(val, compact, scaled, t), *w = W + FN(col_at)(col, compact, t) * P;
        for (int v = 0; v < nv; v++) even[v] += x * FN(load)(w + v * VEC);
    }
    for (int v = 0; v < nv; v++) FN(store)(z + v * VEC, even[v] + odd[v]);
}

/* Linear.__call__ for one example, its outputs k_lo..k_hi-1: z = [x, 1] @ W = W[I] + sum_j x_j W[j],
 * over the n nonzero x_j (a row's entries: see col_at, x_at), BLOCK outputs at a time. z is (P,);
 * its padding comes out zero. Always inlined with a constant `compact`. */
static ALWAYS_INLINE void FN(linear_of)(const void *col, const void *val, const int compact, const REAL *scaled,
                                        int32_t n, Py_ssize_t I, Py_ssize_t P, const REAL *W, REAL *z,
                                        Py_ssize_t k_lo, Py_ssize_t k_hi)
{
    for (Py_ssize_t k0 = k_lo; k0 < k_hi; k0 += BLOCK) {
        const REAL *Wk = W + k0, *bias = W + I * P + k0;
        switch (k_hi - k0 < BLOCK ? (k_hi - k0) / VEC : BLOCK / VEC) { /* k_lo, k_hi: multiples of VEC */
        case 4: FN(linear_block)(col, val, compact, scaled, n, Wk, P, bias, z + k0, 4); break;
        case 3: FN(linear_block)(col, val, compact, scaled, n, Wk, P, bias, z + k0, 3); break;
        case 2: FN(linear_block)(col, val, compact, scaled, n, Wk, P, bias, z + k0, 2); break;
        default: FN(linear_block)(col, val, compact, scaled, n, Wk, P, bias, z + k0, 1); break;
        }
    }
}

/* linear_of for a hidden layer's inputs (full rows, all outputs), and for the first layer, whose
 * inputs are row `row` of the data, read as they are: z, (P,), gets its outputs k_lo..k_hi-1. */
static void FN(linear)(const int32_t *col, const REAL *val, int32_t n, Py_ssize_t I, Py_ssize_t P, const REAL *W,
                       REAL *z)
{
    FN(linear_of)(col, val, 0, NULL, n, I, P, W, z, 0, P);
}

static void FN(linear_first)(TY(Net) *net, const TY(Data) *data, int64_t row, REAL *z, Py_ssize_t k_lo,
                             Py_ssize_t k_hi)
{
    const void *col, *val;
    if (data->compact) {
        const int32_t n = FN(row_at)(data, 1, row, &col, &val);
        FN(linear_of)(col, val, 1, data->scaled, n, net->n[0], net->p[1], net->W[0], z, k_lo, k_hi);
    } else {
        const int32_t n = FN(row_at)(data, 0, row, &col, &val);
        FN(linear_of)(col, val, 0, NULL, n, net->n[0], net->p[1], net->W[0], z, k_lo, k_hi);
    }
}

/* z[0:nv*VEC] = bias + sum_j h_j W[j, 0:nv*VEC] over all I inputs of a narrow layer (a zero adds a
 * zero), the even j in one set of registers, the odd in the other. Always inlined with a constant nv. */
static ALWAYS_INLINE void FN(dense_block)(const REAL *h, Py_ssize_t I, const REAL *W, Py_ssize_t P, REAL *z,
                                          const int nv)
{
    FN(vec) even[2], odd[2]; /* (nv, VEC) each */
    for (int v = 0; v < nv; v++) even[v] = FN(load)(W + I * P + v * VEC), odd[v] = (FN(vec)){0}; /* the bias */
    Py_ssize_t j = 0;
    for (; j + 1 < I; j += 2)
        for (int v = 0; v < nv; v++) {
            even[v] += h[j] * FN(load)(W + j * P + v * VEC); /* (VEC,) += () * (VEC,) */
            odd[v] += h[j + 1] * FN(load)(W + (j + 1) * P + v * VEC);
        }
    if (j < I)
        for (int v = 0; v < nv; v++) even[v] += h[j] * FN(load)(W + j * P + v * VEC);
    for (int v = 0; v < nv; v++) FN(store)(z + v * VEC, even[v] + odd[v]);
}

/* ReLU.__call__ for example b, writing the next layer's inputs: max(z, 0), its zeros skipped.
 * A NaN is kept, as np.maximum keeps it; its mask (z > 0) is false, as in ReLU. */
static void FN(relu)(const REAL *z, Py_ssize_t O, TY(Inputs) *next, Py_ssize_t b)
{
    int32_t *col = next->col_store + b * O, len = 0;
    REAL *val = next->val_store + b * O;
    for (Py_ssize_t k = 0; k < O; k++) { /* branch-free, as in compress_row */
        col[len] = (int32_t)k;
        val[len] = z[k];
        len += !(z[k] <= 0);
    }
    next->len[b] = len;
}

/* e^x in each lane, for x <= 0 (a logit less the largest), as exp gives it to about an ulp: x = n ln 2 + r
 * with n whole and |r| <= ln 2 / 2, e^r by its Taylor series to r^TERMS (Horner's rule), 2^n written in
 * the exponent's bits. Below e^-87 (float) or e^-708 (double), where 2^n would not be a normal number, 0;
 * a NaN stays NaN. Always inlined. */
static ALWAYS_INLINE FN(vec) FN(exp)(FN(vec) x)
{
    const int is_float = sizeof(REAL) == 4, TERMS = is_float ? 7 : 13, MANTISSA = is_float ? 23 : 52;
    const REAL magic = (REAL)1.5 * (is_float ? 0x1p23 : 0x1p52); /* a number plus magic is rounded to a whole one */
    const FN(vec) m = x * (REAL)1.4426950408889634 + magic;     /* (VEC,) n + magic: n in its last bits */
    const FN(vec) n = m - magic;                                 /* (VEC,) round(x / ln 2) */
    FN(vec) r = x - n * (REAL)0.693359375;                       /* (VEC,) exact: ln 2 to 9 bits */
    r = r - n * (REAL)(0.69314718055994530942L - 0.693359375L);   /* (VEC,) and the rest of ln 2 */
    FN(vec) p = 1 + r * (REAL)(1.0 / TERMS);                     /* (VEC,) 1 + r/TERMS */
    for (int k = TERMS - 1; k >= 1; k--) p = 1 + r * (REAL)(1.0 / k) * p; /* 1 + r/k (1 + r/(k+1) (...)) */
    const FN(bits) two_n = ((FN(bits))m - (FN(bits))((FN(vec)){0} + magic) + (is_float ? 127 : 1023)) << MANTISSA;
    const FN(bits) tiny = (FN(bits))(x < (FN(vec)){0} + (REAL)(is_float ? -87 : -708)); /* (VEC,) all ones where 0 */
    return (FN(vec))((FN(bits))(p * (FN(vec))two_n) & ~tiny);
}

/* losses.log_softmax and SoftmaxCrossEntropy for example b, label t: turns the logits z (K,)
 * into dloss/dz = P - Y in place; returns log P[t] and writes the predicted class (the first
 * largest logit, as argmax picks it). P is exp(shifted) / sum rather than exp(log P): the same
 * number to rounding, with half the exponentials. The padding (K..P-1) comes out zero. */
static REAL FN(softmax_ce)(REAL *z, Py_ssize_t K, Py_ssize_t P, int64_t t, int64_t *predicted)
{
    Py_ssize_t best = 0;
    REAL top = z[0], sum = 0;
    for (Py_ssize_t k = 1; k < K; k++) { /* with no branch: which class wins is unpredictable */
        const int wins = (z[k] > top) | ((z[k] != z[k]) & (top == top)); /* a NaN wins, as in argmax */
        best = wins ? k : best;
        top = wins ? z[k] : top;
    }
    *predicted = best;
    const REAL shifted_t = z[t] - top; /* () the true class's shifted logit */
    FN(vec) lane, classes = (FN(vec)){0} + (REAL)K, sums = {0}; /* (VEC,) 0, 1, 2, ...; K, K, ...; partial sums */
    for (int v = 0; v < VEC; v++) lane[v] = (REAL)v;
    for (Py_ssize_t k0 = 0; k0 < P; k0 += VEC) {
        const FN(bits) real = (FN(bits))(lane + (REAL)k0 < classes); /* (VEC,) all ones for k < K */
        const FN(vec) e = (FN(vec))((FN(bits))FN(exp)(FN(load)(z + k0) - top) & real); /* (VEC,) exp(shifted) */
        FN(store)(z + k0, e);
        sums += e;
    }
    for (int w = VEC / 2; w >= 1; w /= 2) /* the lanes added in halves */
        for (int v = 0; v < w; v++) sums[v] += sums[v + w];
    sum = sums[0]; /* () */
    const REAL scale = 1 / sum;
    for (Py_ssize_t k0 = 0; k0 < P; k0 += VEC) { /* (K,) P = exp(shifted) / sum = exp(log P); the padding 0 */
        const FN(bits) real = (FN(bits))(lane + (REAL)k0 < classes); /* even if sum is NaN */
        FN(store)(z + k0, (FN(vec))((FN(bits))(FN(load)(z + k0) * scale) & real));
    }
    z[t] -= 1; /* (K,) P - Y */
    return shifted_t - LOG(sum); /* () log P[t] */
}

/* Linear.bp_input then ReLU.bp_input for example b: g_in[j] = (g @ W[:-1].T)[j] where the ReLU
 * let x_j through (x_j > 0), else 0. `in` holds the layer's inputs, which are the ReLU's outputs;
 * g is (P,), g_in is (P_in,): the padded width of the layer below. */
static void FN(bp_input)(const TY(Inputs) *in, Py_ssize_t b, Py_ssize_t P, const REAL *W,
                         const REAL *g, REAL *g_in, Py_ssize_t P_in)
{
    const int32_t *col = in->col[b];
    const REAL *val = in->val[b];
    memset(g_in, 0, P_in * sizeof(REAL)); /* (P_in,) zero where the ReLU was closed, and the padding */
    for (int32_t t = 0; t < in->len[b]; t++) {
        if (!(val[t] > 0)) continue; /* a NaN input: its mask is false */
        const REAL *w = W + (Py_ssize_t)col[t] * P; /* (P,) */
        FN(vec) acc = {0}; /* (VEC,) partial sums */
        for (Py_ssize_t k0 = 0; k0 < P; k0 += VEC)
            acc += FN(load)(g + k0) * FN(load)(w + k0); /* (VEC,) += (VEC,) * (VEC,) */
        REAL s = 0;
        for (int k = 0; k < VEC; k++) s += acc[k]; /* () = (P,) . (P,) */
        g_in[col[t]] = s;
    }
}

/* bp_input for a narrow layer, with rows of one cache line (where WT is kept): g_in = (W[:-1] @ g) where
 * the ReLU let its input through (z > 0), else 0, as the rows of WT = W[:-1].T, (K, P_in), added with the
 * weights g[k] for the K outputs; z, the layer below's output (P_in,), becomes g_in in place. */
static void FN(bp_input_narrow)(const REAL *WT, Py_ssize_t K, Py_ssize_t P_in, const REAL *g, REAL *z)
{
    for (Py_ssize_t k0 = 0; k0 < P_in; k0 += VEC) {
        FN(vec) acc = {0}; /* (VEC,) */
        for (Py_ssize_t k = 0; k < K; k++) acc += g[k] * FN(load)(WT + k * P_in + k0); /* (VEC,) += () * (VEC,) */
        for (int v = 0; v < VEC; v++) z[k0 + v] = z[k0 + v] > 0 ? acc[v] : 0; /* a NaN z: its mask is false */
    }
}

/* W[j, 0:nv*VEC] -= lr * x_bj * G[b] for example b's nonzero inputs j (a row's entries from the t-th,
 * see col_at and x_at) up to j_hi-1, its G row kept in nv registers. Always inlined with a constant
 * nv and `compact`. */
static ALWAYS_INLINE void FN(update_example)(const void *col, const void *val, const int compact, const REAL *scaled,
                                             int32_t t, int32_t len, int32_t j_hi, const REAL *g, Py_ssize_t P,
                                             REAL *W, REAL lr, const int nv)
{
    FN(vec) gv[BLOCK / VEC]; /* (nv, VEC) */
    for (int v = 0; v < nv; v++) gv[v] = FN(load)(g + v * VEC);
    for (; t < len && FN(col_at)(col, compact, t) < j_hi; t++) {
        const REAL c = -lr * FN(x_at)(val, compact, scaled, t); /* () */
        REAL *w = W + FN(col_at)(col, compact, t) * P;
        for (int v = 0; v < nv; v++) FN(store)(w + v * VEC, FN(load)(w + v * VEC) + c * gv[v]);
    }
}

/* The bias row's update, columns k_lo..k_hi-1: its input is the ones column, so dW's row is the sum of G
 * over the batch. */
static void FN(update_bias)(REAL *w, const REAL *G, Py_ssize_t b_count, Py_ssize_t P, REAL lr, Py_ssize_t k_lo,
                            Py_ssize_t k_hi)
{
    for (Py_ssize_t k0 = k_lo; k0 < k_hi; k0 += VEC) {
        FN(vec) sum = {0}; /* (VEC,) */
        for (Py_ssize_t b = 0; b < b_count; b++) sum += FN(load)(G + b * P + k0);
        FN(store)(w + k0, FN(load)(w + k0) - lr * sum);
    }
}

/* update_example over the columns kt..kt_hi-1 of W, BLOCK at a time. Always inlined with a constant
 * `compact`. */
static ALWAYS_INLINE void FN(update_row_of)(const void *col, const void *val, const int compact, const REAL *scaled,
                                            int32_t t, int32_t len, int32_t j_hi, const REAL *g, Py_ssize_t P,
                                            REAL *W, REAL lr, Py_ssize_t kt, Py_ssize_t kt_hi)
{
    for (Py_ssize_t k0 = kt; k0 < kt_hi; k0 += BLOCK) {
        switch (kt_hi - k0 < BLOCK ? (kt_hi - k0) / VEC : BLOCK / VEC) {
        case 4: FN(update_example)(col, val, compact, scaled, t, len, j_hi, g + k0, P, W + k0, lr, 4); break;
        case 3: FN(update_example)(col, val, compact, scaled, t, len, j_hi, g + k0, P, W + k0, lr, 3); break;
        case 2: FN(update_example)(col, val, compact, scaled, t, len, j_hi, g + k0, P, W + k0, lr, 2); break;
        default: FN(update_example)(col, val, compact, scaled, t, len, j_hi, g + k0, P, W + k0, lr, 1); break;
        }
    }
}

/* w[r * P + 0:nv*VEC] -= lr * sum_b h[b * P_in + r] G[b, 0:nv*VEC] for the `rows` (1 or 4) rows r of a
 * narrow layer's W at w: rows of dW summed in registers, b = 0, 1, ... (the same order for 1 row or 4,
 * so that the numbers do not depend on which rows a thread takes), then subtracted. Always inlined with
 * constant rows and nv. */
static ALWAYS_INLINE void FN(update_rows)(const REAL *h, Py_ssize_t P_in, const REAL *G, Py_ssize_t P,
                                          Py_ssize_t b_count, REAL *w, REAL lr, const int rows, const int nv)
{
    FN(vec) acc[4][2]; /* (rows, nv, VEC) */
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = (FN(vec)){0};
    for (Py_ssize_t b = 0; b < b_count; b++)
        for (int v = 0; v < nv; v++) {
            const FN(vec) g = FN(load)(G + b * P + v * VEC); /* (VEC,) */
            for (int r = 0; r < rows; r++) acc[r][v] += h[b * P_in + r] * g; /* (VEC,) += () * (VEC,) */
        }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) FN(store)(w + r * P + v * VEC, FN(load)(w + r * P + v * VEC) - lr * acc[r][v]);
}

/* Column j of a narrow layer l's WT = W[:-1].T from row j of its W. */
static void FN(wt_column)(TY(Net) *net, int l, Py_ssize_t j)
{
    const Py_ssize_t K = net->n[l + 1], P_in = net->p[l], P = net->p[l + 1];
    for (Py_ssize_t k = 0; k < K; k++) net->WT[l][k * P_in + j] = net->W[l][j * P + k];
}

/* bp_param_and_update for a narrow layer (with WT): its inputs H are dense, so dW = [H, 1].T @ G is formed
 * 4 rows at a time, each row summed over the batch and subtracted once; WT's columns j_lo..j_hi-1 follow. */
static void FN(update_narrow)(TY(Net) *net, int l, Py_ssize_t b_count, REAL lr, int32_t j_lo, int32_t j_hi, int bias)
{
    const Py_ssize_t I = net->n[l], P_in = net->p[l], P = net->p[l + 1];
    REAL *W = net->W[l], *G = net->Z[l];
    const REAL *H = net->H[l];
    for (Py_ssize_t j = j_lo; j < j_hi;) {
        const int rows = j_hi - j >= 4 ? 4 : 1;
        if (rows == 4 && P == 2 * VEC) FN(update_rows)(H + j, P_in, G, P, b_count, W + j * P, lr, 4, 2);
        else if (rows == 4) FN(update_rows)(H + j, P_in, G, P, b_count, W + j * P, lr, 4, 1);
        else if (P == 2 * VEC) FN(update_rows)(H + j, P_in, G, P, b_count, W + j * P, lr, 1, 2);
        else FN(update_rows)(H + j, P_in, G, P, b_count, W + j * P, lr, 1, 1);
        for (int r = 0; r < rows; r++, j++) FN(wt_column)(net, l, j);
    }
    if (bias) FN(update_bias)(W + I * P, G, b_count, P, lr, 0, P);
}

/* Linear.bp_param and the post's SGD update for a hidden layer l, W -= lr * dW with dW = [X, 1].T @ G
 * summed over the batch, for the rows j_lo..j_hi-1 of W (and the bias row if `bias`): one thread's
 * share. dW's row j is the sum over the examples of x_bj G[b]; each nonzero term is subtracted from W
 * as it comes (the same sum, in another order), so a zero input costs nothing. */
static void FN(bp_param_and_update)(TY(Net) *net, int l, Py_ssize_t b_count, REAL lr, int32_t j_lo, int32_t j_hi,
                                    int bias)
{
    if (net->WT[l] != NULL) {
        FN(update_narrow)(net, l, b_count, lr, j_lo, j_hi, bias);
        return;
    }
    const Py_ssize_t I = net->n[l], P = net->p[l + 1];
    const TY(Inputs) *in = &net->in[l];
    REAL *W = net->W[l], *G = net->Z[l];
    for (Py_ssize_t kt = 0; kt < P; kt += TILE) { /* a tile of columns for every example, then the next */
        const Py_ssize_t kt_hi = P - kt < TILE ? P : kt + TILE;
        for (Py_ssize_t b = 0; b < b_count; b++) {
            const int32_t *col = in->col[b], len = in->len[b];
            int32_t t = 0, hi = len;
            while (j_lo > 0 && t < hi) { /* the first t with col[t] >= j_lo: the columns are ascending */
                const int32_t mid = t + (hi - t) / 2;
                if (col[mid] < j_lo) t = mid + 1; else hi = mid;
            }
            FN(update_row_of)(col, in->val[b], 0, NULL, t, len, j_hi, G + b * P, P, W, lr, kt, kt_hi);
        }
    }
    if (bias) FN(update_bias)(W + I * P, G, b_count, P, lr, 0, P);
}

/* The same for the first layer, all its rows and the columns k_lo..k_hi-1 (one thread's share), its
 * inputs read straight from the data's rows (those of the examples rows[0..b_count-1]). Always
 * inlined with a constant `compact`. */
static ALWAYS_INLINE void FN(update_first_of)(TY(Net) *net, const TY(Data) *data, const int compact,
                                              const int64_t *rows, Py_ssize_t b_count, REAL lr, Py_ssize_t k_lo,
                                              Py_ssize_t k_hi)
{
    const Py_ssize_t I = net->n[0], P = net->p[1];
    REAL *W = net->W[0], *G = net->Z[0];
    for (Py_ssize_t kt = k_lo; kt < k_hi; kt += TILE) { /* a tile of columns for every example, then the next */
        const Py_ssize_t kt_hi = k_hi - kt < TILE ? k_hi : kt + TILE;
        for (Py_ssize_t b = 0; b < b_count; b++) {
            const void *col, *val;
            const int32_t len = FN(row_at)(data, compact, rows[b], &col, &val);
            FN(update_row_of)(col, val, compact, data->scaled, 0, len, (int32_t)I, G + b * P, P, W, lr, kt, kt_hi);
        }
    }
    FN(update_bias)(W + I * P, G, b_count, P, lr, k_lo, k_hi);
}

static void FN(update_first)(TY(Net) *net, const TY(Data) *data, const int64_t *rows, Py_ssize_t b_count, REAL lr,
                             Py_ssize_t k_lo, Py_ssize_t k_hi)
{
    if (data->compact)
        FN(update_first_of)(net, data, 1, rows, b_count, lr, k_lo, k_hi);
    else
        FN(update_first_of)(net, data, 0, rows, b_count, lr, k_lo, k_hi);
}

/* The batch's first-layer inputs (the data's rows rows[0..b_count-1]) by column: for each input j, the
 * examples b with x_bj != 0 and their x_bj, b ascending, at place start[j]..start[j+1]-1 of eb and ex
 * (a counting sort of the entries). */
static ALWAYS_INLINE void FN(by_column_of)(const TY(Data) *data, const int compact, const int64_t *rows,
                                            Py_ssize_t b_count, Py_ssize_t I, int32_t *start, int32_t *eb, REAL *ex)
{
    const void *col, *val;
    memset(start, 0, (I + 2) * sizeof(int32_t));
    for (Py_ssize_t b = 0; b < b_count; b++) {
        const int32_t len = FN(row_at)(data, compact, rows[b], &col, &val);
        for (int32_t t = 0; t < len; t++) start[FN(col_at)(col, compact, t) + 2]++; /* counts, two places on */
    }
    for (Py_ssize_t j = 2; j <= I + 1; j++) start[j] += start[j - 1]; /* start[j+1]: where column j begins */
    for (Py_ssize_t b = 0; b < b_count; b++) {
        const int32_t len = FN(row_at)(data, compact, rows[b], &col, &val);
        for (int32_t t = 0; t < len; t++) {
            const int32_t at = start[FN(col_at)(col, compact, t) + 1]++; /* ends where column j+1 begins */
            eb[at] = (int32_t)b;
            ex[at] = FN(x_at)(val, compact, data->scaled, t);
        }
    }
}

static void FN(by_column)(const TY(Data) *data, const int64_t *rows, Py_ssize_t b_count, Py_ssize_t I,
                          int32_t *start, int32_t *eb, REAL *ex)
{
    if (data->compact)
        FN(by_column_of)(data, 1, rows, b_count, I, start, eb, ex);
    else
        FN(by_column_of)(data, 0, rows, b_count, I, start, eb, ex);
}

/* w[0:nv*VEC] -= lr * sum_t ex[t] G[eb[t]] over the n entries of one column: dW's row j, summed in
 * registers (even and odd t apart, as in linear_block) and subtracted once. Always inlined with a
 * constant nv. */
static ALWAYS_INLINE void FN(update_column)(const int32_t *eb, const REAL *ex, int32_t n, const REAL *G,
                                            Py_ssize_t P, REAL *w, REAL lr, const int nv)
{
    FN(vec) even[BLOCK / VEC], odd[BLOCK / VEC]; /* (nv, VEC) each */
    for (int v = 0; v < nv; v++) even[v] = odd[v] = (FN(vec)){0};
    int32_t t = 0;
    for (; t + 1 < n; t += 2) {
        const REAL x0 = ex[t], *g0 = G + (Py_ssize_t)eb[t] * P;         /* (), (nv*VEC,) */
        const REAL x1 = ex[t + 1], *g1 = G + (Py_ssize_t)eb[t + 1] * P; /* (), (nv*VEC,) */
        for (int v = 0; v < nv; v++) {
            even[v] += x0 * FN(load)(g0 + v * VEC); /* (VEC,) += () * (VEC,) */
            odd[v] += x1 * FN(load)(g1 + v * VEC);
        }
    }
    if (t < n)
        for (int v = 0; v < nv; v++) even[v] += ex[t] * FN(load)(G + (Py_ssize_t)eb[t] * P + v * VEC);
    for (int v = 0; v < nv; v++) FN(store)(w + v * VEC, FN(load)(w + v * VEC) - lr * (even[v] + odd[v]));
}

/* Linear.bp_param and the update for the first layer, its columns k_lo..k_hi-1 (one thread's share),
 * from its inputs by column (by_column): each row of dW summed over the batch in registers, then
 * subtracted from W once, a tile of columns at a time. For wide layers, where the updates one input
 * at a time (bp_param_and_update) would read and write each row of W once per example. */
static void FN(update_by_column)(TY(Net) *net, const int32_t *start, const int32_t *eb, const REAL *ex,
                                 Py_ssize_t b_count, REAL lr, Py_ssize_t k_lo, Py_ssize_t k_hi)
{
    const Py_ssize_t I = net->n[0], P = net->p[1];
    REAL *W = net->W[0];
    const REAL *G = net->Z[0];
    for (Py_ssize_t kt = k_lo; kt < k_hi; kt += TILE) { /* a tile of columns, every row, then the next */
        const Py_ssize_t kt_hi = k_hi - kt < TILE ? k_hi : kt + TILE;
        for (Py_ssize_t j = 0; j < I; j++) {
            const int32_t at = start[j], n = start[j + 1] - at;
            if (n == 0) continue;
            for (Py_ssize_t k0 = kt; k0 < kt_hi; k0 += BLOCK) {
                REAL *w = W + j * P + k0;
                switch (kt_hi - k0 < BLOCK ? (kt_hi - k0) / VEC : BLOCK / VEC) {
                case 4: FN(update_column)(eb + at, ex + at, n, G + k0, P, w, lr, 4); break;
                case 3: FN(update_column)(eb + at, ex + at, n, G + k0, P, w, lr, 3); break;
                case 2: FN(update_column)(eb + at, ex + at, n, G + k0, P, w, lr, 2); break;
                default: FN(update_column)(eb + at, ex + at, n, G + k0, P, w, lr, 1); break;
                }
            }
        }
    }
    FN(update_bias)(W + I * P, G, b_count, P, lr, k_lo, k_hi);
}

/* The outputs k_lo..k_hi-1 of the first layer (padded width P) that thread h of T computes and updates:
 * whole 64-byte cache lines of a row, so that where rows are whole lines (P * sizeof(REAL) a multiple
 * of 64), no two threads write one line of W or Z. */
static void FN(share_outputs)(Py_ssize_t P, int h, int T, Py_ssize_t *k_lo, Py_ssize_t *k_hi)
{
    const Py_ssize_t line = 64 / (Py_ssize_t)sizeof(REAL), lines = (P + line - 1) / line;
    *k_lo = lines * h / T * line;
    *k_hi = lines * (h + 1) / T * line < P ? lines * (h + 1) / T * line : P;
}

/* The place in `order` of the example `d` examples after example b of the batch at s, or -1 if there
 * is none before stop. */
static Py_ssize_t FN(place_ahead)(Py_ssize_t s, Py_ssize_t b, Py_ssize_t d, Py_ssize_t stop)
{
    return s + b + d < stop ? s + b + d : -1;
}

/* Start loading the cache lines of the bytes from `begin` up to `end` (a hint: it changes no result). */
static ALWAYS_INLINE void FN(prefetch_range)(const void *begin, const void *end)
{
    for (uintptr_t line = (uintptr_t)begin & ~(uintptr_t)63; line < (uintptr_t)end; line += 64)
        PREFETCH((const void *)line);
}

/* Start loading into the cache (hints: they change no result) what the example at place `near` of
 * `order` will need, its sparse row (whose indptr entries were asked for earlier), and the indptr
 * entries and label of the example at place `far` (-1: none). Always inlined: GCC counts a prefetch
 * as no side effect, and deletes the calls of a function that only prefetches and returns nothing. */
static ALWAYS_INLINE void FN(prefetch_ahead)(const TY(Data) *data, const int64_t *y, const int64_t *order,
                                             Py_ssize_t near, Py_ssize_t far)
{
    if (far >= 0) {
        PREFETCH(data->indptr + order[far]);
        PREFETCH(y + order[far]);
    }
    if (near >= 0) {
        const void *col, *val;
        const int32_t n = FN(row_at)(data, data->compact, order[near], &col, &val);
        FN(prefetch_range)(col, (const char *)col + n * FN(col_bytes)(data->compact));
        FN(prefetch_range)(val, (const char *)val + n * FN(val_bytes)(data->compact));
    }
}

/* ReLU.__call__ for example b, the inputs of layer l from z, the output of the layer below: for a narrow
 * layer (with WT) all of them, h = max(z, 0), (p[l],), a NaN kept as np.maximum keeps it; else their
 * nonzeros (relu). */
static void FN(relu_of)(TY(Net) *net, int l, const REAL *z, Py_ssize_t b)
{
    if (net->WT[l] == NULL) {
        FN(relu)(z, net->n[l], &net->in[l], b);
        return;
    }
    REAL *h = net->H[l] + b * net->p[l]; /* (p[l],) */
    for (Py_ssize_t k = 0; k < net->p[l]; k++) h[k] = z[k] <= 0 ? 0 : z[k];
}

/* Forward for example b through the layers from `first` on (whose inputs are gathered); returns the
 * logits, (K,), in the last Z. */
static REAL *FN(forward)(TY(Net) *net, Py_ssize_t b, int first)
{
    for (int l = first; l < net->L; l++) {
        const Py_ssize_t P = net->p[l + 1];
        const TY(Inputs) *in = &net->in[l];
        REAL *z = net->Z[l] + b * P;
        if (net->WT[l] != NULL) /* narrow: every input */
            FN(dense_block)(net->H[l] + b * net->p[l], net->n[l], net->W[l], P, z, P / VEC);
        else
            FN(linear)(in->col[b], in->val[b], in->len[b], net->n[l], P, net->W[l], z);
        if (l < net->L - 1) FN(relu_of)(net, l + 1, z, b);
    }
    return net->Z[net->L - 1] + b * net->p[net->L];
}

/* SGD steps on the batches order[start:stop] (batch size B, the last may be smaller): per example,
 * log P(true class) into picked and the predicted class into predicted, at its place in order.
 *
 * `threads` threads share each step. The first layer, the widest, is shared by its outputs: each
 * thread computes and updates its own columns of W (share_outputs), for every example, so each keeps
 * its part of W in its own cache. The rest is shared by examples (the forward of the other layers,
 * the loss, bp_input: one example needs only its own numbers and the weights before the update),
 * then by rows of W (bp_param and the update of the other layers). They wait for each other twice a
 * step: after the first layer's forward, and before the updates. Every sum runs in the same order
 * whatever the number of threads, so the numbers do not depend on it.
 *
 * The first layer reads the data's rows as they are (full or compact). It is updated one input at a
 * time (update_first) or, given by_column_scratch (BY_COLUMN_BYTES a thread), by column. */
static void FN(sgd_steps)(TY(Net) *net, const TY(Data) *data, const int64_t *y, const int64_t *order,
                          Py_ssize_t start, Py_ssize_t stop, REAL lr, REAL *picked,
                          int64_t *predicted, int threads, char *by_column_scratch)
{
    const int L = net->L;
    const Py_ssize_t K = net->n[L], B = net->B, I = net->n[0], P1 = net->p[1];
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        const int h = THREAD_ID(), T = THREAD_COUNT();
        Py_ssize_t k_lo, k_hi; /* this thread's outputs of the first layer */
        FN(share_outputs)(P1, h, T, &k_lo, &k_hi);
        int32_t *cstart = NULL, *eb = NULL; /* this thread's copy of the batch's inputs by column, if wide */
        REAL *ex = NULL;
        if (by_column_scratch != NULL) {
            char *mine = by_column_scratch + h * BY_COLUMN_BYTES(I, B, sizeof(REAL));
            cstart = (int32_t *)mine;
            eb = (int32_t *)(mine + ROUND64((I + 2) * sizeof(int32_t)));
            ex = (REAL *)(mine + ROUND64((I + 2) * sizeof(int32_t)) + ROUND64(B * I * sizeof(int32_t)));
        }
        for (Py_ssize_t s = start; s < stop; s += B) {
            const Py_ssize_t b_count = stop - s < B ? stop - s : B;
            const Py_ssize_t b_lo = b_count * h / T, b_hi = b_count * (h + 1) / T; /* this thread's examples */
            for (Py_ssize_t kt = k_lo; kt < k_hi; kt += TILE) { /* the first Linear: this thread's outputs, */
                const Py_ssize_t kt_hi = k_hi - kt < TILE ? k_hi : kt + TILE; /* a tile for every example */
                for (Py_ssize_t b = 0; b < b_count; b++) {
                    if (kt == k_lo)
                        FN(prefetch_ahead)(data, y, order, FN(place_ahead)(s, b, AHEAD, stop),
                                           FN(place_ahead)(s, b, 2 * AHEAD, stop));
                    FN(linear_first)(net, data, order[s + b], net->Z[0] + b * P1, kt, kt_hi);
                }
            }
            BARRIER(); /* the first layer's outputs are there */
            for (Py_ssize_t b = b_lo; b < b_hi; b++) { /* example by example: the other layers, loss, bp_input */
                const int64_t row = order[s + b];
                REAL *logits = net->Z[0] + b * P1; /* (P1,) */
                if (L > 1) {
                    FN(relu_of)(net, 1, logits, b);
                    logits = FN(forward)(net, b, 1);
                }
                picked[s + b] = FN(softmax_ce)(logits, K, net->p[L], y[row], &predicted[s + b]);
                for (int l = L - 1; l > 0; l--) { /* dloss/dZ of each layer below: needs only this example */
                    const Py_ssize_t P = net->p[l + 1], P_in = net->p[l];
                    if (net->WT[l] != NULL)
                        FN(bp_input_narrow)(net->WT[l], net->n[l + 1], P_in, net->Z[l] + b * P, net->Z[l - 1] + b * P_in);
                    else
                        FN(bp_input)(&net->in[l], b, P, net->W[l], net->Z[l] + b * P, net->Z[l - 1] + b * P_in, P_in);
                }
            }
            BARRIER(); /* every example's dloss/dZ is there, and no W is read any more in this step */
            for (int l = L - 1; l > 0; l--) { /* bp_param and the update: each thread its rows of these W */
                const Py_ssize_t I_l = net->n[l];
                FN(bp_param_and_update)(net, l, b_count, lr, (int32_t)(I_l * h / T), (int32_t)(I_l * (h + 1) / T),
                                        h == 0);
            }
            if (by_column_scratch == NULL) { /* and its columns of the first */
                FN(update_first)(net, data, order + s, b_count, lr, k_lo, k_hi);
            } else {
                FN(by_column)(data, order + s, b_count, I, cstart, eb, ex);
                FN(update_by_column)(net, cstart, eb, ex, b_count, lr, k_lo, k_hi);
            }
            /* No wait here: the next step's first Linear reads and writes this thread's columns of the
             * first W and Z only, and everything else waits at its barriers. */
        }
    }
}

/* Inference on rows 0..N-1: log P(true class) and the predicted class of each row; `threads`
 * threads take a share of the rows each, thread h using the scratch of example h. */
static void FN(score)(TY(Net) *net, const TY(Data) *data, const int64_t *y, Py_ssize_t N, REAL *picked,
                      int64_t *predicted, int threads)
{
    const int L = net->L;
    const Py_ssize_t K = net->n[L], P1 = net->p[1];
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        const int h = THREAD_ID(), T = THREAD_COUNT();
        for (Py_ssize_t i = N * h / T; i < N * (h + 1) / T; i++) {
            REAL *logits = net->Z[0] + h * P1; /* (P1,) */
            FN(linear_first)(net, data, i, logits, 0, P1);
            if (L > 1) {
                FN(relu_of)(net, 1, logits, h);
                logits = FN(forward)(net, h, 1);
            }
            picked[i] = FN(softmax_ce)(logits, K, net->p[L], y[i], &predicted[i]);
        }
    }
}

/* Copy the net's weights (n[l]+1, n[l+1]) into the padded copies, or back. */
static void FN(copy_weights)(TY(Net) *net, REAL *const *outside, int back)
{
    for (int l = 0; l < net->L; l++) {
        const Py_ssize_t rows = net->n[l] + 1, O = net->n[l + 1], P = net->p[l + 1];
        for (Py_ssize_t i = 0; i < rows; i++) {
            if (back) {
                memcpy(outside[l] + i * O, net->W[l] + i * P, O * sizeof(REAL));
            } else {
                memcpy(net->W[l] + i * P, outside[l] + i * O, O * sizeof(REAL)); /* the padding stays zero */
                if (net->WT[l] != NULL && i < rows - 1) FN(wt_column)(net, l, i);
            }
        }
    }
}

#undef FN /* each copy brings its own */
#undef VECTOR_BYTES
