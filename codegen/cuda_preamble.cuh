// tracejit device helpers: NumPy's semantics where C's differ, and the block reduction.
// Compiled with --fmad=false: arithmetic is NumPy's, operation by operation (the dot kernels
// call fmaf/fma explicitly).

// -- max/min: a NaN in either operand wins (NumPy's maximum/minimum) -------------------------
__device__ __forceinline__ float tj_max(float a, float b) { return (a > b || a != a) ? a : b; }
__device__ __forceinline__ double tj_max(double a, double b) { return (a > b || a != a) ? a : b; }
__device__ __forceinline__ float tj_min(float a, float b) { return (a < b || a != a) ? a : b; }
__device__ __forceinline__ double tj_min(double a, double b) { return (a < b || a != a) ? a : b; }
__device__ __forceinline__ int tj_max(int a, int b) { return a > b ? a : b; }
__device__ __forceinline__ long long tj_max(long long a, long long b) { return a > b ? a : b; }
__device__ __forceinline__ int tj_min(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ long long tj_min(long long a, long long b) { return a < b ? a : b; }
__device__ __forceinline__ bool tj_max(bool a, bool b) { return a || b; }
__device__ __forceinline__ bool tj_min(bool a, bool b) { return a && b; }

// -- integer arithmetic wraps (two's complement), as NumPy's does -----------------------------
__device__ __forceinline__ int tj_add(int a, int b) { return (int)((unsigned)a + (unsigned)b); }
__device__ __forceinline__ int tj_sub(int a, int b) { return (int)((unsigned)a - (unsigned)b); }
__device__ __forceinline__ int tj_mul(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
__device__ __forceinline__ long long tj_add(long long a, long long b) {
    return (long long)((unsigned long long)a + (unsigned long long)b);
}
__device__ __forceinline__ long long tj_sub(long long a, long long b) {
    return (long long)((unsigned long long)a - (unsigned long long)b);
}
__device__ __forceinline__ long long tj_mul(long long a, long long b) {
    return (long long)((unsigned long long)a * (unsigned long long)b);
}
__device__ __forceinline__ float tj_add(float a, float b) { return a + b; }
__device__ __forceinline__ double tj_add(double a, double b) { return a + b; }
__device__ __forceinline__ float tj_mul(float a, float b) { return a * b; }
__device__ __forceinline__ double tj_mul(double a, double b) { return a * b; }
__device__ __forceinline__ int tj_neg(int a) { return tj_sub(0, a); }
__device__ __forceinline__ long long tj_neg(long long a) { return tj_sub(0LL, a); }
__device__ __forceinline__ int tj_abs(int a) { return a < 0 ? tj_neg(a) : a; }
__device__ __forceinline__ long long tj_abs(long long a) { return a < 0 ? tj_neg(a) : a; }

// -- sign: sign(±0) = +0, sign(NaN) = NaN -----------------------------------------------------
__device__ __forceinline__ float tj_sign(float x) {
    return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : x == 0.0f ? 0.0f : x;
}
__device__ __forceinline__ double tj_sign(double x) {
    return x > 0.0 ? 1.0 : x < 0.0 ? -1.0 : x == 0.0 ? 0.0 : x;
}
__device__ __forceinline__ int tj_sign(int x) { return (x > 0) - (x < 0); }
__device__ __forceinline__ long long tj_sign(long long x) { return (x > 0) - (x < 0); }

// -- floor division and remainder: Python's signs; integer division by 0 gives 0 --------------
#define TJ_INT_DIVMOD(T)                                                                       \
    __device__ __forceinline__ T tj_floordiv(T a, T b) {                                       \
        if (b == 0) return 0;                                                                  \
        if (b == -1) return tj_neg(a); /* MIN // -1 wraps instead of trapping */               \
        T q = a / b, r = a % b;                                                                \
        return (r != 0 && ((r < 0) != (b < 0))) ? q - 1 : q;                                   \
    }                                                                                          \
    __device__ __forceinline__ T tj_mod(T a, T b) {                                            \
        if (b == 0 || b == -1) return 0;                                                       \
        T r = a % b;                                                                           \
        return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;                                   \
    }
TJ_INT_DIVMOD(int)
TJ_INT_DIVMOD(long long)

// C's fmod (np.fmod): the remainder with the sign of a; integer division by 0 (or by -1, whose
// MIN % -1 would trap) gives 0.
__device__ __forceinline__ int tj_fmod(int a, int b) { return (b == 0 || b == -1) ? 0 : a % b; }
__device__ __forceinline__ long long tj_fmod(long long a, long long b) {
    return (b == 0 || b == -1) ? 0 : a % b;
}
__device__ __forceinline__ float tj_fmod(float a, float b) { return fmodf(a, b); }
__device__ __forceinline__ double tj_fmod(double a, double b) { return fmod(a, b); }

// As NumPy's npy_divmod: mod = fmod(a, b), div = (a - mod) / b corrected to the floor.
#define TJ_FLOAT_DIVMOD(T, FMOD, FLOOR, COPYSIGN)                                              \
    __device__ __forceinline__ T tj_floordiv(T a, T b) {                                       \
        if (b == (T)0) return a / b;                                                           \
        T mod = FMOD(a, b);                                                                    \
        T div = (a - mod) / b;                                                                 \
        if (mod != (T)0 && ((b < (T)0) != (mod < (T)0))) div -= (T)1;                          \
        if (div == (T)0) return COPYSIGN((T)0, a / b);                                         \
        T fl = FLOOR(div);                                                                     \
        return (div - fl > (T)0.5) ? fl + (T)1 : fl;                                           \
    }                                                                                          \
    __device__ __forceinline__ T tj_mod(T a, T b) {                                            \
        T mod = FMOD(a, b);                                                                    \
        if (b == (T)0) return mod;                                                             \
        if (mod == (T)0) return COPYSIGN((T)0, b);                                             \
        return ((b < (T)0) != (mod < (T)0)) ? mod + b : mod;                                   \
    }
TJ_FLOAT_DIVMOD(float, fmodf, floorf, copysignf)
TJ_FLOAT_DIVMOD(double, fmod, floor, copysign)

// -- integer powers by repeated squaring; a negative exponent gives 0 except for ±1 -----------
#define TJ_INT_POW(T)                                                                          \
    __device__ __forceinline__ T tj_pow(T x, T y) {                                            \
        if (y < 0) return x == 1 ? 1 : x == -1 ? ((y & 1) ? -1 : 1) : 0;                       \
        T acc = 1;                                                                             \
        while (y > 0) {                                                                        \
            if (y & 1) acc = tj_mul(acc, x);                                                   \
            x = tj_mul(x, x);                                                                  \
            y >>= 1;                                                                           \
        }                                                                                      \
        return acc;                                                                            \
    }
TJ_INT_POW(int)
TJ_INT_POW(long long)

// -- float → integer casts give x86's value (the minimum) for NaN and out-of-range values -----
__device__ __forceinline__ int tj_to_i32(float x) {
    return (x >= -2147483648.0f && x < 2147483648.0f) ? (int)x : (int)0x80000000;
}
__device__ __forceinline__ int tj_to_i32(double x) {
    return (x >= -2147483648.0 && x < 2147483648.0) ? (int)x : (int)0x80000000;
}
__device__ __forceinline__ long long tj_to_i64(float x) {
    return (x >= -9223372036854775808.0f && x < 9223372036854775808.0f)
               ? (long long)x : (long long)0x8000000000000000ULL;
}
__device__ __forceinline__ long long tj_to_i64(double x) {
    return (x >= -9223372036854775808.0 && x < 9223372036854775808.0)
               ? (long long)x : (long long)0x8000000000000000ULL;
}

__device__ __forceinline__ unsigned long long tj_to_u64(float x) {
    // [2**63, 2**64): the conversion of x - 2**63 with the top bit set; else as int64.
    return (x >= 9223372036854775808.0f && x < 18446744073709551616.0f)
               ? (unsigned long long)(long long)(x - 9223372036854775808.0f) ^ (1ULL << 63)
               : (unsigned long long)tj_to_i64(x);
}
__device__ __forceinline__ unsigned long long tj_to_u64(double x) {
    return (x >= 9223372036854775808.0 && x < 18446744073709551616.0)
               ? (unsigned long long)(long long)(x - 9223372036854775808.0) ^ (1ULL << 63)
               : (unsigned long long)tj_to_i64(x);
}

// -- float16 and bfloat16: stored as their 16 bits, computed in float ---------------------------
// Every conversion to them rounds once to nearest even, as NumPy's and ml_dtypes' do; from a
// double through the float rounded to odd (exact: float keeps more than two extra bits).
__device__ __forceinline__ float tj_round_to_odd(double x) {
    const float r = (float)x;
    const double w = (double)r;
    if (w == x || x != x) return r;
    unsigned bits = __float_as_uint(r);
    if (fabs(w) > fabs(x)) bits -= 1u;                 // one step toward zero
    return __uint_as_float(bits | 1u);
}
__device__ __forceinline__ unsigned short tj_f16_bits(float f) {
#ifdef __CUDA_ARCH__
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#else
    const unsigned x = __float_as_uint(f), a = x & 0x7fffffffu;
    const unsigned sign = (x >> 16) & 0x8000u;
    if (a > 0x7f800000u) return (unsigned short)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
    if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);     // |f| >= 65520: inf
    if (a < 0x38800000u)             // below 2**-14: a multiple of 2**-24, rounded (exact scaling)
        return (unsigned short)(sign | (unsigned)rintf(__uint_as_float(a) * 16777216.0f));
    const unsigned r = a + 0xfffu + ((a >> 13) & 1u);   // round the 13 dropped bits to even
    return (unsigned short)(sign | ((r >> 13) - (112u << 10)));   // rebias 127 -> 15
#endif
}
__device__ __forceinline__ float tj_f16_value(unsigned short h) {
#ifdef __CUDA_ARCH__
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    const unsigned sign = (unsigned)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {                                       // zero and the subnormals: m * 2**-24
        const float v = (float)m * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return __uint_as_float(sign | (e == 31 ? 0x7f800000u : (e + 112u) << 23) | (m << 13));
#endif
}
__device__ __forceinline__ unsigned short tj_bf16_bits(float f) {
    const unsigned x = __float_as_uint(f);
    if (f != f) return (unsigned short)((x | 0x00400000u) >> 16);             // a quiet NaN
    return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
struct tj_half {                   // float16: converts to and from float (and from double)
    unsigned short bits;
    tj_half() = default;
    __device__ __forceinline__ tj_half(float f) : bits(tj_f16_bits(f)) {}
    __device__ __forceinline__ tj_half(double d) : bits(tj_f16_bits(tj_round_to_odd(d))) {}
    __device__ __forceinline__ operator float() const { return tj_f16_value(bits); }
};
struct tj_bfloat16 {               // bfloat16: the top half of a float
    unsigned short bits;
    tj_bfloat16() = default;
    __device__ __forceinline__ tj_bfloat16(float f) : bits(tj_bf16_bits(f)) {}
    __device__ __forceinline__ tj_bfloat16(double d) : bits(tj_bf16_bits(tj_round_to_odd(d))) {}
    __device__ __forceinline__ operator float() const {
        return __uint_as_float((unsigned)bits << 16);
    }
};

// -- reductions -------------------------------------------------------------------------------
struct TjSum {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return tj_add(a, b); }
};
struct TjProd {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return tj_mul(a, b); }
};
struct TjMax {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return tj_max(a, b); }
};
struct TjMin {
    template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return tj_min(a, b); }
};

// The reduction of `v` over the block (its size a multiple of 32, at most 1024), valid in
// thread 0: a shuffle tree in each warp, the warps' results through `scratch` (32 values),
// and a shuffle tree again. Every thread of the block must call it (it has barriers); the
// order of the combination is fixed, so the result has the same bits on every run.
template <class T, class Op>
__device__ __forceinline__ T tj_block_reduce(T v, T identity, Op op, T* scratch) {
    for (int offset = 16; offset > 0; offset >>= 1)
        v = op(v, __shfl_down_sync(0xffffffffu, v, offset));
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = threadIdx.x < blockDim.x / 32 ? scratch[threadIdx.x] : identity;
    for (int offset = 16; offset > 0; offset >>= 1)
        v = op(v, __shfl_down_sync(0xffffffffu, v, offset));
    __syncthreads();   // scratch may be reused by the next reduction
    return v;
}

// The inclusive scan of `v` over the block (its size a multiple of 32, at most 1024) by `op`:
// thread t gets op(v_0, ..., v_t), and `total` the whole block's. Shuffles in each warp, the
// warps' totals scanned by warp 0 through `scratch` (32 values), then added to the warps after
// the first. Every thread of the block must call it (it has barriers); the order of the
// combination is fixed, so the result has the same bits on every run.
template <class T, class Op>
__device__ __forceinline__ T tj_block_scan(T v, T identity, Op op, T* scratch, T& total) {
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    for (int d = 1; d < 32; d <<= 1) {
        const T u = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d) v = op(u, v);
    }
    if (lane == 31) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        T w = lane < warps ? scratch[lane] : identity;
        for (int d = 1; d < 32; d <<= 1) {
            const T u = __shfl_up_sync(0xffffffffu, w, d);
            if (lane >= d) w = op(u, w);
        }
        scratch[lane] = w;
    }
    __syncthreads();
    if (warp > 0) v = op(scratch[warp - 1], v);
    total = scratch[warps - 1];
    __syncthreads();   // scratch may be reused by the next scan
    return v;
}

// -- sort keys (codegen/lowering.py): unsigned integers ordered as NumPy sorts ----------------
__device__ __forceinline__ unsigned tj_sort_key(float v) {
    if (v != v) return 0xffffffffu;                        // every NaN last
    const unsigned bits = v == 0.0f ? 0u : __float_as_uint(v);   // -0.0 as 0.0
    return bits ^ ((unsigned)((int)bits >> 31) | 0x80000000u);
}
__device__ __forceinline__ unsigned long long tj_sort_key(double v) {
    if (v != v) return 0xffffffffffffffffull;
    const unsigned long long bits = v == 0.0 ? 0ull : (unsigned long long)__double_as_longlong(v);
    return bits ^ ((unsigned long long)((long long)bits >> 63) | 0x8000000000000000ull);
}
__device__ __forceinline__ unsigned tj_sort_key(int v) { return (unsigned)v ^ 0x80000000u; }
__device__ __forceinline__ unsigned long long tj_sort_key(long long v) {
    return (unsigned long long)v ^ 0x8000000000000000ull;
}
__device__ __forceinline__ unsigned tj_sort_key(bool v) { return v ? 1u : 0u; }

// -- errors NumPy raises on values (codegen/status.py): the first one reported wins ----------
__device__ __forceinline__ void tj_report(long long* status, long long code, long long a,
                                          long long b, long long c) {
    if (atomicCAS((unsigned long long*)status, 0ULL, (unsigned long long)code) == 0ULL) {
        status[1] = a;
        status[2] = b;
        status[3] = c;
        __threadfence();
    }
}

// Threefry-2x32, 20 rounds (Salmon et al. 2011): output word `word` (0 or 1, or 2 for the
// two xored) for the key (k0, k1) and the counter (x0, x1), as
// tracejit.primitives.threefry2x32_words computes it.
__device__ __forceinline__ unsigned int tj_threefry2x32(unsigned int k0, unsigned int k1,
                                                       unsigned int x0, unsigned int x1,
                                                       int word) {
    const unsigned int rot[2][4] = {{13u, 15u, 26u, 6u}, {17u, 29u, 16u, 24u}};
    const unsigned int keys[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
    x0 += keys[0];
    x1 += keys[1];
#pragma unroll
    for (int i = 0; i < 5; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const unsigned int r = rot[i % 2][j];
            x0 += x1;
            x1 = ((x1 << r) | (x1 >> (32u - r))) ^ x0;
        }
        x0 += keys[(i + 1) % 3];
        x1 += keys[(i + 2) % 3] + (unsigned int)(i + 1);
    }
    return word == 2 ? x0 ^ x1 : word ? x1 : x0;
}
