/* The hot loops of _conv.c, included once per vector width: V floats side by side (8: AVX2 or SSE, 16:
 * AVX-512), `vec` their type, FN(name) the width's suffix. Glossary and layouts as in _conv.c. */

INLINE vec FN(load)(const float *p) { vec v; memcpy(&v, p, sizeof v); return v; }
INLINE void FN(store)(float *p, vec v) { memcpy(p, &v, sizeof v); }

/* The output channels from o0 go 2*V at a time (NV = 2 vectors, 4 items a block) and the last V alone (NV = 1,
 * 8 items a block), then the items left over one by one: 8 sums in registers either way. BLOCK is BLOCKS or
 * ROW_BLOCKS below. */
#undef BY_GROUP
#define BY_GROUP(BLOCK) \
    if (O - o0 >= 2 * V) { \
        BLOCK(4, 2) \
        BLOCK(1, 2) \
    } else { \
        BLOCK(8, 1) \
        BLOCK(1, 1) \
    }

/* R outputs (pixels), whose patches start at x + start[r], and NV*V output channels from o0: out[r, o] =
 * bias[o] + sum over the patch's numbers t = (di*k + dj)*C + c, at x[di*Wp*C + dj*C + c], of that number * W[t, o].
 * For each kernel row di, the patch's k*C numbers and their k*C rows of W are consecutive. The R x NV sums
 * stay in registers for the whole patch. */
INLINE void FN(patch_block)(const float *const *start, const int R, Py_ssize_t Wp, Py_ssize_t C, const float *W,
                        Py_ssize_t O, Py_ssize_t k, Py_ssize_t o0, const int NV, float *const *out)
{
    vec acc[8][2];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = FN(load)(W + k * k * C * O + o0 + V * v); /* the bias row */
    for (Py_ssize_t di = 0; di < k; di++) {
        const Py_ssize_t row = di * Wp * C; /* (di, 0, 0) of the patch */
        const float *w = W + di * k * C * O + o0;
        for (Py_ssize_t u = 0; u < k * C; u++, w += O) {
            vec wv[2];
            for (int v = 0; v < NV; v++) wv[v] = FN(load)(w + V * v);
            for (int r = 0; r < R; r++) {
                const float xv = start[r][row + u];
                for (int v = 0; v < NV; v++) acc[r][v] += xv * wv[v];
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) FN(store)(out[r] + o0 + V * v, acc[r][v]);
}

/* R outputs at a time from n: patch_block with R and NV fixed (BY_GROUP), so that the sums fit in registers. */
#undef BLOCKS
#define BLOCKS(R, NV) \
    for (; n + R <= N; n += R) { \
        const float *at[R]; float *dst[R]; \
        for (int r = 0; r < R; r++) at[r] = x + start[n + r], dst[r] = out + (n + r) * O; \
        FN(patch_block)(at, R, Wp, C, W, O, k, o0, NV, dst); \
    }

/* out (B, Ho, Wo, O) = the convolution of x (B, Hp, Wp, C) with W (k*k*C + 1, O), plus its bias: Conv2d's
 * forward. O is a multiple of V; start (N,) is scratch. */
static void FN(forward)(const float *x, Py_ssize_t B, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t C,
                        const float *W, Py_ssize_t O, Py_ssize_t k, Py_ssize_t s, float *out, Py_ssize_t *start)
{
    const Py_ssize_t Ho = (Hp - k) / s + 1, Wo = (Wp - k) / s + 1, N = B * Ho * Wo;
    patch_starts(B, Ho, Wo, Hp, Wp, C, s, start);
    for (Py_ssize_t o0 = 0; o0 < O; o0 += 2 * V) {
        Py_ssize_t n = 0;
        BY_GROUP(BLOCKS)
    }
}

/* TB rows of dW from t (patch order), NV*V columns from o0: dW[t + i, o] = sum over outputs n of
 * x[start[n] + at[i]] * g[n, o], where patch number t + i is at at[i] from the patch's start. */
INLINE void FN(weight_block)(const float *x, const Py_ssize_t *start, Py_ssize_t N, const Py_ssize_t *at, const int TB,
                         const float *g, Py_ssize_t O, Py_ssize_t o0, const int NV, float *dw)
{
    vec acc[8][2];
    Py_ssize_t a[8];
    for (int i = 0; i < TB; i++) {
        a[i] = at[i];
        for (int v = 0; v < NV; v++) acc[i][v] = (vec){0};
    }
    for (Py_ssize_t n = 0; n < N; n++) {
        vec gv[2];
        for (int v = 0; v < NV; v++) gv[v] = FN(load)(g + n * O + o0 + V * v);
        const float *patch = x + start[n];
        for (int i = 0; i < TB; i++)
            for (int v = 0; v < NV; v++) acc[i][v] += patch[a[i]] * gv[v];
    }
    for (int i = 0; i < TB; i++)
        for (int v = 0; v < NV; v++) FN(store)(dw + i * O + o0 + V * v, acc[i][v]);
}

/* TB rows at a time from t: weight_block with TB and NV fixed (BY_GROUP). */
#undef ROW_BLOCKS
#define ROW_BLOCKS(TB, NV) \
    for (; t + TB <= T; t += TB) FN(weight_block)(x, start, N, at + t, TB, g, O, o0, NV, dW + t * O);

/* dW (k*k*C + 1, O) = the weight gradient of the convolution of x (B, Hp, Wp, C) for g (B, Ho, Wo, O), summed
 * over every output: Conv2d's bp_param (the bias row: the sum of g). O is a multiple of V; start (N,) and
 * at (T,) are scratch. */
static void FN(weight_grad)(const float *x, Py_ssize_t B, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t C,
                               const float *g, Py_ssize_t O, Py_ssize_t k, Py_ssize_t s, float *dW, Py_ssize_t *start,
                               Py_ssize_t *at)
{
    const Py_ssize_t Ho = (Hp - k) / s + 1, Wo = (Wp - k) / s + 1, N = B * Ho * Wo, T = k * k * C;
    patch_starts(B, Ho, Wo, Hp, Wp, C, s, start);
    for (Py_ssize_t t = 0; t < T; t++) at[t] = (t / (k * C)) * Wp * C + t % (k * C); /* (di, dj*C + c) */
    for (Py_ssize_t o0 = 0; o0 < O; o0 += 2 * V) {
        Py_ssize_t t = 0;
        BY_GROUP(ROW_BLOCKS)
    }
    float *bias = dW + T * O;
    for (Py_ssize_t o = 0; o < O; o++) bias[o] = 0;
    for (Py_ssize_t n = 0; n < N; n++)
        for (Py_ssize_t o = 0; o < O; o++) bias[o] += g[n * O + o];
}

/* out (B, Ho, Wo, C) = the max of each k x k window of x (B, H, W, C), taken every s pixels, and arg the
 * window's element (di*k + dj) that holds it: the first in row-major order on a tie, a NaN if there is one
 * (as np.argmax and np.max): MaxPool2d's forward. With relu, the ReLU before the pooling too: max(relu(x)) is
 * relu(max(x)), and a window whose max is not above 0 gets out 0 and arg -1 (no gradient: the ReLU's mask
 * is 0 wherever the readable pooling would route it). */
static void FN(pool_forward)(const float *x, Py_ssize_t B, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t k,
                             Py_ssize_t s, int relu, float *out, int32_t *arg)
{
    const Py_ssize_t Ho = (H - k) / s + 1, Wo = (W - k) / s + 1;
    for (Py_ssize_t b = 0, n = 0; b < B; b++)
        for (Py_ssize_t i = 0; i < Ho; i++)
            for (Py_ssize_t j = 0; j < Wo; j++, n++) {
                const float *corner = x + ((b * H + i * s) * W + j * s) * C;
                float *restrict best = out + n * C;
                int32_t *restrict which = arg + n * C;
                for (Py_ssize_t c = 0; c < C; c++) best[c] = corner[c], which[c] = 0;
                for (int32_t d = 1; d < k * k; d++) {
                    const float *restrict at = corner + ((d / k) * W + d % k) * C;
                    for (Py_ssize_t c = 0; c < C; c++) {
                        const int take = at[c] > best[c] || (at[c] != at[c] && best[c] == best[c]);
                        best[c] = take ? at[c] : best[c];
                        which[c] = take ? d : which[c];
                    }
                }
                if (relu)
                    for (Py_ssize_t c = 0; c < C; c++) {
                        const int shut = best[c] <= 0;
                        best[c] = shut ? 0 : best[c];
                        which[c] = shut ? -1 : which[c];
                    }
            }
}
