/* The types of _kernel.c, included once per float type: REAL is float or double, TY(name) adds
 * the type's suffix. Glossary as in _kernel_body.h. */

/* Each example's nonzero inputs of a hidden layer: the columns j and values x_j of its x_j != 0, written
 * by the ReLU below into `store`. (The first layer reads the data's rows, Data, directly: its Inputs
 * are laid out with no store and never used.) */
typedef struct {
    const int32_t **col; /* (B,) pointers to (len[b],) */
    const REAL **val;    /* (B,) pointers to (len[b],) */
    int32_t *len;        /* (B,) */
    int32_t *col_store;  /* (B*I,) where a ReLU writes example b's columns, from b*I on */
    REAL *val_store;     /* (B*I,) and their values */
} TY(Inputs);

typedef struct {
    int L;               /* number of Linear layers */
    const Py_ssize_t *n; /* (L+1,): widths, n[0] = I of the first layer, n[L] = K */
    const Py_ssize_t *p; /* (L+1,): the widths padded to a multiple of VEC, one line more at SPREAD_BYTES (p[0] unused) */
    REAL **W;            /* (L,): (n[l]+1, p[l+1]) the padded copies of the weights */
    Py_ssize_t B;        /* largest batch */
    TY(Inputs) *in;      /* (L,): each layer's inputs for the batch */
    REAL **Z;            /* (L,): (B, p[l+1]) each layer's output, then its gradient dloss/dZ */
    REAL **WT;           /* (L,): (n[l+1], p[l]) W[:-1].T of the narrow hidden layers, those with at most 2
                            vectors of outputs (see bp_input_narrow), else NULL */
    REAL **H;            /* (L,): (B, p[l]) the inputs of the narrow hidden layers, all of them, else NULL */
} TY(Net);

/* The data's sparse rows as the kernel reads them (see SparseRows): row i's nonzero entries are at
 * indptr[i]..indptr[i+1]-1 of col and val. Full rows: col int32, val REAL. Compact rows, for uint8
 * pixels: col uint16, val the pixel bytes themselves, whose value x is scaled[pixel]. */
typedef struct {
    const int64_t *indptr;
    const void *col, *val;
    int compact;
    const REAL *scaled; /* (256,): pixel / 255 in REAL, as net.as_inputs divides */
} TY(Data);
