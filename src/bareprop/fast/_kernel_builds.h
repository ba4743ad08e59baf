/* _kernel_body.h compiled once per instruction set, for the float type _kernel.c has defined (REAL,
 * TY, LOG, REAL_BITS): FN(name) is the function's name with the instruction set's and the type's
 * suffixes, VECTOR_BYTES the size of a vector. The body ends by undefining both. */
#define FN(name) TY(name)
#define VECTOR_BYTES 32
#include "_kernel_body.h"
#if HAVE_AVX2_VARIANT
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define FN(name) TY(name##_avx2)
#define VECTOR_BYTES 32
#include "_kernel_body.h"
#pragma GCC pop_options
#endif
#if HAVE_AVX512_VARIANT
#pragma GCC push_options
#pragma GCC target("avx512f")
#define FN(name) TY(name##_avx512)
#define VECTOR_BYTES 64
#include "_kernel_body.h"
#pragma GCC pop_options
#endif
