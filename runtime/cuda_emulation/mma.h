// WMMA (nvcuda::wmma) for the host emulation of CUDA; found by `#include <mma.h>` when this
// folder is on the include path, after cuda_emulation.h was force-included.
//
// The lane layout of a fragment is opaque in CUDA, so the emulation keeps the WHOLE tile in
// every lane's fragment (row-major): `num_elements` is the tile size, every lane loads the
// whole tile and computes the whole product (redundantly, and identically), and
// `store_matrix_sync` writes from lane 0 of the warp only (`threadIdx.x % 32 == 0`), so that
// the lanes do not race on the destination. As on hardware, other lanes must synchronise
// (`__syncwarp`, `__syncthreads`) before reading what a store wrote.
//
// Element-wise code that works for any lane layout (a loop over `num_elements` applying the
// same function to every `x[i]`, such as `__float_to_tf32`) behaves exactly as on hardware.
//
// precision::tf32: the fragments hold floats. `mma_sync` uses only the tf32 part of each input
// (sign, exponent and the top 10 mantissa bits: the low 13 bits are ignored, that is
// truncated), so that inputs not rounded with `__float_to_tf32` are never more precise than
// tf32 here. Products of tf32 values are exact in float; they are accumulated in float, in k
// order starting from c. Tensor cores sum in an unspecified order, so results agree with
// hardware to float rounding, not bit for bit.

#ifndef TJ_CUDA_EMULATION_MMA_H
#define TJ_CUDA_EMULATION_MMA_H

#ifndef TJ_CUDA_EMULATION_H
#error "mma.h of the CUDA emulation needs cuda_emulation.h included first (g++ -include)"
#endif

namespace nvcuda {
namespace wmma {

// uses and layouts (tags)
struct matrix_a;
struct matrix_b;
struct accumulator;
struct row_major;
struct col_major;

namespace precision {
struct tf32;
}

enum layout_t { mem_row_major, mem_col_major };

// Round `in` to tf32: to nearest, ties away from zero, keeping 10 explicit mantissa bits; the
// low 13 bits of the result are zero. NaN and infinity are returned unchanged. (PTX's
// cvt.rna.tf32.f32; a finite value may round up to infinity.)
inline float __float_to_tf32(float in) {
    uint32_t bits;
    memcpy(&bits, &in, sizeof bits);
    if ((bits & 0x7f800000u) != 0x7f800000u) {
        // Adding half an ulp of tf32 to the magnitude bits rounds the magnitude half up,
        // that is to nearest with ties away from zero; a carry into the exponent is right.
        bits = (bits + 0x1000u) & 0xffffe000u;
    }
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

namespace detail {

template <class T>
struct storage {
    typedef T type;
};
template <>
struct storage<precision::tf32> {
    typedef float type;
};

// The tile shape of a use: matrix_a is m x k, matrix_b k x n, the accumulator m x n.
template <class Use, int M, int N, int K>
struct tile;
template <int M, int N, int K>
struct tile<matrix_a, M, N, K> {
    enum { rows = M, cols = K };
};
template <int M, int N, int K>
struct tile<matrix_b, M, N, K> {
    enum { rows = K, cols = N };
};
template <int M, int N, int K>
struct tile<accumulator, M, N, K> {
    enum { rows = M, cols = N };
};

// The value an input element contributes to a product: tf32 inputs lose their low 13 bits.
template <class T>
inline typename storage<T>::type operand(typename storage<T>::type v) {
    return v;
}
template <>
inline float operand<precision::tf32>(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= 0xffffe000u;
    memcpy(&v, &bits, sizeof v);
    return v;
}

template <class Layout>
struct is_col_major {
    enum { value = 0 };
};
template <>
struct is_col_major<col_major> {
    enum { value = 1 };
};

}  // namespace detail

// A fragment: the whole tile, row-major, in every lane.
template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
  public:
    enum { rows = detail::tile<Use, M, N, K>::rows, cols = detail::tile<Use, M, N, K>::cols };
    enum { num_elements = rows * cols, num_storage_elements = rows * cols };
    typedef T element_type;
    typedef typename detail::storage<T>::type storage_element_type;
    storage_element_type x[num_elements];
};

template <class Use, int M, int N, int K, class T, class Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f,
                          const typename detail::storage<T>::type& value) {
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = value;
}

// matrix_a / matrix_b: the fragment's layout says how the tile lies in memory.
template <class Use, int M, int N, int K, class T, class Layout>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f,
                             const typename detail::storage<T>::type* p, unsigned ldm) {
    typedef fragment<Use, M, N, K, T, Layout> F;
    for (int r = 0; r < F::rows; ++r)
        for (int c = 0; c < F::cols; ++c)
            f.x[r * F::cols + c] = detail::is_col_major<Layout>::value
                                       ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c];
}

// accumulators: the layout is an argument.
template <int M, int N, int K, class T>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm,
                             layout_t layout) {
    for (int r = 0; r < M; ++r)
        for (int c = 0; c < N; ++c)
            f.x[r * N + c] = layout == mem_col_major ? p[(size_t)c * ldm + r]
                                                     : p[(size_t)r * ldm + c];
}

template <int M, int N, int K, class T>
inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm,
                              layout_t layout) {
    if (threadIdx.x % 32 != 0) return;   // one writer a warp; every lane holds the same tile
    for (int r = 0; r < M; ++r)
        for (int c = 0; c < N; ++c) {
            size_t at = layout == mem_col_major ? (size_t)c * ldm + r : (size_t)r * ldm + c;
            p[at] = f.x[r * N + c];
        }
}

// d = a b + c. `satf` (saturate to finite) is accepted and ignored.
template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC>
inline void mma_sync(fragment<accumulator, M, N, K, TC>& d,
                     const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b,
                     const fragment<accumulator, M, N, K, TC>& c, bool satf = false) {
    (void)satf;
    TC out[M * N];   // d may be c
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            TC sum = c.x[i * N + j];
            for (int k = 0; k < K; ++k)
                sum += (TC)detail::operand<TA>(a.x[i * K + k]) *
                       (TC)detail::operand<TB>(b.x[k * N + j]);
            out[i * N + j] = sum;
        }
    for (int i = 0; i < M * N; ++i) d.x[i] = out[i];
}

}  // namespace wmma
}  // namespace nvcuda

#endif  // TJ_CUDA_EMULATION_MMA_H
