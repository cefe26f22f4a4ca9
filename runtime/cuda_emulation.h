// CUDA emulation for the host: compile CUDA C kernels with a host C++ compiler.
//
// Force-included (`g++ -std=c++17 -include cuda_emulation.h`) in front of a module of CUDA C
// kernels, this header lets the same source run on the CPU, the way nvcc's device emulation
// once did:
//
// - A launch runs the blocks of the grid one after another. The threads of a block are real
//   threads (pthreads), created once per launch; each runs every block in turn.
// - `__syncthreads()` is a barrier over the block's threads. Warp operations (`__syncwarp`,
//   the shuffles, the votes) are barriers over the 32 threads of one warp, exchanging values
//   through a per-block scratch array. Every thread of a warp must call a warp operation, as
//   a full mask requires on hardware (the mask is not otherwise interpreted).
// - `__shared__` is `static`: a kernel's shared arrays exist once per kernel function, shared
//   by the threads of the block; since blocks run one at a time, that is exact (except that
//   their contents persist from block to block, where hardware leaves them undefined).
//   Launches of one module must therefore not run concurrently (the caller serialises them).
//   Dynamic shared memory (`extern __shared__`) is not supported.
// - Kernels must not return early before a `__syncthreads` (or a warp operation): every
//   thread must reach every barrier, as CUDA requires. Here a thread that returns leaves the
//   barriers of its block for the rest of the block (so such a kernel still completes), and a
//   launch whose threads all wait at barriers that can never complete (a barrier that some
//   thread skips without returning) is stopped: `launch` returns TJ_EMU_DEADLOCK instead of
//   hanging.
// - Atomics are sequentially consistent GCC `__atomic` operations.
//
// Linux only (the barriers wait on futexes). WMMA is in cuda_emulation/mma.h, found by
// `#include <mma.h>` when that folder is on the include path.

#ifndef TJ_CUDA_EMULATION_H
#define TJ_CUDA_EMULATION_H

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// qualifiers

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __shared__ static
#define __constant__
#define __managed__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// `__restrict__` is a GNU C++ keyword already.

// ---------------------------------------------------------------------------------------------
// vector types, with CUDA's sizes and alignments

#define TJ_EMU_VEC1(T, N, A)                                                                    \
    struct __attribute__((aligned(A))) N##1 { T x; };                                           \
    inline N##1 make_##N##1(T x) { N##1 r; r.x = x; return r; }
#define TJ_EMU_VEC2(T, N, A)                                                                    \
    struct __attribute__((aligned(A))) N##2 { T x, y; };                                        \
    inline N##2 make_##N##2(T x, T y) { N##2 r; r.x = x; r.y = y; return r; }
#define TJ_EMU_VEC3(T, N)                                                                       \
    struct N##3 { T x, y, z; };                                                                 \
    inline N##3 make_##N##3(T x, T y, T z) { N##3 r; r.x = x; r.y = y; r.z = z; return r; }
#define TJ_EMU_VEC4(T, N, A)                                                                    \
    struct __attribute__((aligned(A))) N##4 { T x, y, z, w; };                                  \
    inline N##4 make_##N##4(T x, T y, T z, T w) {                                               \
        N##4 r; r.x = x; r.y = y; r.z = z; r.w = w; return r;                                   \
    }

TJ_EMU_VEC1(signed char, char, 1)    TJ_EMU_VEC2(signed char, char, 2)
TJ_EMU_VEC3(signed char, char)       TJ_EMU_VEC4(signed char, char, 4)
TJ_EMU_VEC1(unsigned char, uchar, 1) TJ_EMU_VEC2(unsigned char, uchar, 2)
TJ_EMU_VEC3(unsigned char, uchar)    TJ_EMU_VEC4(unsigned char, uchar, 4)
TJ_EMU_VEC1(short, short, 2)         TJ_EMU_VEC2(short, short, 4)
TJ_EMU_VEC3(short, short)            TJ_EMU_VEC4(short, short, 8)
TJ_EMU_VEC1(unsigned short, ushort, 2) TJ_EMU_VEC2(unsigned short, ushort, 4)
TJ_EMU_VEC3(unsigned short, ushort)  TJ_EMU_VEC4(unsigned short, ushort, 8)
TJ_EMU_VEC1(int, int, 4)             TJ_EMU_VEC2(int, int, 8)
TJ_EMU_VEC3(int, int)                TJ_EMU_VEC4(int, int, 16)
TJ_EMU_VEC1(unsigned int, uint, 4)   TJ_EMU_VEC2(unsigned int, uint, 8)
TJ_EMU_VEC3(unsigned int, uint)      TJ_EMU_VEC4(unsigned int, uint, 16)
TJ_EMU_VEC1(long long, longlong, 8)  TJ_EMU_VEC2(long long, longlong, 16)
TJ_EMU_VEC1(unsigned long long, ulonglong, 8) TJ_EMU_VEC2(unsigned long long, ulonglong, 16)
TJ_EMU_VEC1(float, float, 4)         TJ_EMU_VEC2(float, float, 8)
TJ_EMU_VEC3(float, float)            TJ_EMU_VEC4(float, float, 16)
TJ_EMU_VEC1(double, double, 8)       TJ_EMU_VEC2(double, double, 16)

#undef TJ_EMU_VEC1
#undef TJ_EMU_VEC2
#undef TJ_EMU_VEC3
#undef TJ_EMU_VEC4

// The launch geometry. A constexpr constructor keeps the thread_local variables below
// constant-initialised (no per-access initialisation guard).
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

// Set by tj_emu::launch in each thread of the block, before the kernel runs.
static thread_local uint3 threadIdx;
static thread_local uint3 blockIdx;
static thread_local dim3 blockDim;
static thread_local dim3 gridDim;
constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------------------
// the launch: barriers, blocks, threads

#define TJ_EMU_OK 0
#define TJ_EMU_BAD_LAUNCH 1      // block is 0 or above 1024
#define TJ_EMU_NO_THREADS 2      // the threads could not be created; nothing ran
#define TJ_EMU_DEADLOCK 3        // every thread waits at a barrier that cannot complete

namespace tj_emu {

constexpr unsigned kMaxBlock = 1024;
constexpr size_t kStackBytes = 256 * 1024;
constexpr long kWatchNanos = 250 * 1000 * 1000;   // how often a waiting thread looks around

inline void futex_wait(unsigned* word, unsigned value, long nanos) {
    struct timespec timeout = {0, nanos};
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, &timeout, nullptr, 0);
}

inline void futex_wake_all(unsigned* word) {
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

inline void compiler_fence() {
    // Shared arrays are function-local statics whose address never escapes; the "memory"
    // clobber keeps the compiler from moving their loads and stores across a barrier.
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    __asm__ __volatile__("" ::: "memory");
}

struct Launch;

// A barrier whose participant count can drop (a thread that exits leaves it), like
// std::barrier's arrive_and_drop. `state` packs (expected << 32) | arrived so that arrivals
// and drops are single atomic updates; `phase` is the futex word the waiters sleep on.
struct Barrier {
    unsigned long long state;
    unsigned phase;
};

struct Thread {
    Launch* launch;
    unsigned index;
    pthread_t handle;
};

struct Launch {
    unsigned grid, block;
    int spin;                      // polls of a waiting thread before it sleeps
    void (*call)(void*);
    void* body;
    unsigned gate;                 // 0 wait, 1 run, 2 stop (creating the threads failed)
    unsigned stop;                 // a deadlock was detected: every thread unwinds
    // Threads blocked at a barrier, as a lower bound: a thread adds itself after arriving
    // without completing the phase, and whoever completes a phase subtracts the threads it
    // releases. A released thread may be subtracted before it has added itself, so the count
    // can be transiently low (even negative), never high: when it equals the block size,
    // every thread waits for a phase that no thread is left to complete, a deadlock.
    int waiting;
    Barrier block_barrier;
    Barrier warp_barrier[kMaxBlock / 32];
    Barrier done;                  // the end of a block: every thread, no drops
    // Values exchanged by warp operations (shuffles, votes) and by block votes: one slot a
    // thread, double-buffered (see warp_exchange).
    unsigned long long warp_scratch[2][kMaxBlock];
    unsigned long long block_scratch[2][kMaxBlock];
    Thread threads[kMaxBlock];
};

static thread_local Launch* current;
// How many warp (block) exchanges this thread has made in the current block; their parity
// picks the scratch buffer. The threads of a warp (block) make the same exchanges in the same
// order, so they agree on it.
static thread_local unsigned warp_exchanges, block_exchanges;
static thread_local jmp_buf unwind;   // where a thread goes when its launch is stopped

inline unsigned warp_size_of(const Launch* l, unsigned warp) {
    unsigned rest = l->block - warp * 32;
    return rest < 32 ? rest : 32;
}

inline void barrier_reset(Barrier* b, unsigned expected) {
    __atomic_store_n(&b->state, (unsigned long long)expected << 32, __ATOMIC_SEQ_CST);
}

// Open the barrier's current phase; `released` threads were waiting in it.
inline void barrier_release(Launch* l, Barrier* b, unsigned released) {
    __atomic_sub_fetch(&l->waiting, (int)released, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&b->phase, 1, __ATOMIC_SEQ_CST);
    futex_wake_all(&b->phase);
}

// Wake every barrier so that the waiting threads see `stop` and unwind.
inline void wake_everyone(Launch* l) {
    futex_wake_all(&l->block_barrier.phase);
    futex_wake_all(&l->done.phase);
    for (unsigned w = 0; w < (l->block + 31) / 32; ++w) futex_wake_all(&l->warp_barrier[w].phase);
}

// Arrive at `b` and wait until its phase completes. `on_complete`, if given, runs in the
// thread that completes the phase, before any waiter is released.
inline void barrier_wait(Barrier* b, void (*on_complete)(Launch*) = nullptr) {
    Launch* l = current;
    compiler_fence();
    unsigned phase = __atomic_load_n(&b->phase, __ATOMIC_SEQ_CST);   // before arriving
    unsigned long long s = __atomic_load_n(&b->state, __ATOMIC_SEQ_CST);
    for (;;) {
        unsigned long long expected = s >> 32, arrived = (s & 0xffffffffull) + 1;
        if (arrived == expected) {
            if (__atomic_compare_exchange_n(&b->state, &s, expected << 32, false,
                                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
                if (on_complete) on_complete(l);
                barrier_release(l, b, (unsigned)arrived - 1);
                compiler_fence();
                return;
            }
        } else if (__atomic_compare_exchange_n(&b->state, &s, (expected << 32) | arrived, false,
                                               __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            break;
        }
    }
    __atomic_add_fetch(&l->waiting, 1, __ATOMIC_SEQ_CST);
    for (int spin = 0; __atomic_load_n(&b->phase, __ATOMIC_SEQ_CST) == phase; ++spin) {
        if (__atomic_load_n(&l->stop, __ATOMIC_SEQ_CST)) {
            wake_everyone(l);
            longjmp(unwind, 1);
        }
        if (spin < l->spin) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            continue;
        }
        // A spurious or timed-out wake-up just loops; the phase word decides. Now and then a
        // waiting thread looks for a deadlock.
        futex_wait(&b->phase, phase, kWatchNanos);
        if (__atomic_load_n(&l->waiting, __ATOMIC_SEQ_CST) == (int)l->block)
            __atomic_store_n(&l->stop, 1u, __ATOMIC_SEQ_CST);
    }
    compiler_fence();
}

// Leave `b` for the rest of this block: the other participants stop waiting for this thread.
inline void barrier_drop(Launch* l, Barrier* b) {
    unsigned long long s = __atomic_load_n(&b->state, __ATOMIC_SEQ_CST);
    for (;;) {
        unsigned long long expected = (s >> 32) - 1, arrived = s & 0xffffffffull;
        bool completes = arrived > 0 && arrived == expected;
        unsigned long long next = completes ? expected << 32 : (expected << 32) | arrived;
        if (__atomic_compare_exchange_n(&b->state, &s, next, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
            if (completes) barrier_release(l, b, (unsigned)arrived);
            return;
        }
    }
}

// Runs once per block, when every thread has finished it: the next block starts with every
// thread back in the block and warp barriers.
inline void restore_barriers(Launch* l) {
    barrier_reset(&l->block_barrier, l->block);
    for (unsigned w = 0; w < (l->block + 31) / 32; ++w)
        barrier_reset(&l->warp_barrier[w], warp_size_of(l, w));
}

inline void* thread_main(void* arg) {
    Thread* t = static_cast<Thread*>(arg);
    Launch* l = t->launch;
    current = l;
    threadIdx = uint3{t->index, 0, 0};
    blockDim = dim3(l->block);
    gridDim = dim3(l->grid);
    unsigned gate;
    while ((gate = __atomic_load_n(&l->gate, __ATOMIC_SEQ_CST)) == 0)
        futex_wait(&l->gate, 0, kWatchNanos);
    if (gate != 1) return nullptr;
    unsigned warp = t->index / 32;
    if (setjmp(unwind) != 0) return nullptr;   // the launch was stopped
    for (unsigned b = 0; b < l->grid; ++b) {
        blockIdx = uint3{b, 0, 0};
        warp_exchanges = block_exchanges = 0;
        l->call(l->body);
        barrier_drop(l, &l->block_barrier);
        barrier_drop(l, &l->warp_barrier[warp]);
        barrier_wait(&l->done, restore_barriers);
    }
    return nullptr;
}

// Run `call(body)` as a kernel: `grid` blocks of `block` threads, blocks one after another.
inline int launch_erased(unsigned grid, unsigned block, void (*call)(void*), void* body) {
    if (block == 0 || block > kMaxBlock) return TJ_EMU_BAD_LAUNCH;
    if (grid == 0) return TJ_EMU_OK;
    Launch* l = static_cast<Launch*>(calloc(1, sizeof(Launch)));
    if (!l) return TJ_EMU_NO_THREADS;
    l->grid = grid;
    l->block = block;
    l->call = call;
    l->body = body;
    // Spinning pays only while every thread of the block can have a processor of its own.
    l->spin = (long)block <= sysconf(_SC_NPROCESSORS_ONLN) ? 2000 : 0;
    barrier_reset(&l->done, block);
    restore_barriers(l);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kStackBytes);
    unsigned created = 0;
    for (; created < block; ++created) {
        Thread* t = &l->threads[created];
        t->launch = l;
        t->index = created;
        if (pthread_create(&t->handle, &attr, thread_main, t) != 0) break;
    }
    pthread_attr_destroy(&attr);
    unsigned go = created == block ? 1u : 2u;
    __atomic_store_n(&l->gate, go, __ATOMIC_SEQ_CST);
    futex_wake_all(&l->gate);
    for (unsigned i = 0; i < created; ++i) pthread_join(l->threads[i].handle, nullptr);
    int rc = go != 1 ? TJ_EMU_NO_THREADS : l->stop ? TJ_EMU_DEADLOCK : TJ_EMU_OK;
    free(l);
    return rc;
}

template <class F>
inline void call_body(void* body) { (*static_cast<F*>(body))(); }

// Run `body()` as a kernel of `grid` blocks of `block` (<= 1024) threads. Returns TJ_EMU_OK,
// or nonzero: TJ_EMU_BAD_LAUNCH, TJ_EMU_NO_THREADS (nothing ran), TJ_EMU_DEADLOCK.
template <class F>
inline int launch(unsigned grid, unsigned block, F body) {
    return launch_erased(grid, block, call_body<F>, &body);
}

// Exchanges need one barrier each, not two: exchange n writes buffer n % 2 and reads it after
// the barrier; exchange n + 2 writes that buffer again only after passing the barrier of
// exchange n + 1, which every thread of the group reaches after its reads of exchange n.

// Exchange `bits` within the warp: every thread publishes its value and reads lane `src` of
// its warp (its own value if `src` is not a thread of the warp).
inline unsigned long long warp_exchange(unsigned long long bits, int src) {
    Launch* l = current;
    unsigned t = threadIdx.x, warp = t / 32;
    unsigned long long* slots = l->warp_scratch[warp_exchanges++ & 1];
    slots[t] = bits;
    barrier_wait(&l->warp_barrier[warp]);
    if (src >= 0 && (unsigned)src < warp_size_of(l, warp)) return slots[warp * 32 + src];
    return bits;
}

// The ballot of `predicate` over the warp (bit i: lane i's predicate).
inline unsigned warp_ballot(int predicate) {
    Launch* l = current;
    unsigned t = threadIdx.x, warp = t / 32, n = warp_size_of(l, warp);
    unsigned long long* slots = l->warp_scratch[warp_exchanges++ & 1];
    slots[t] = predicate != 0;
    barrier_wait(&l->warp_barrier[warp]);
    unsigned out = 0;
    for (unsigned i = 0; i < n; ++i) out |= (unsigned)slots[warp * 32 + i] << i;
    return out;
}

// The number of threads of the block whose `predicate` is nonzero (a block barrier).
inline int block_count(int predicate) {
    Launch* l = current;
    unsigned long long* slots = l->block_scratch[block_exchanges++ & 1];
    slots[threadIdx.x] = predicate != 0;
    barrier_wait(&l->block_barrier);
    int out = 0;
    for (unsigned i = 0; i < l->block; ++i) out += (int)slots[i];
    return out;
}

template <class T>
inline unsigned long long to_bits(T v) {
    unsigned long long bits = 0;
    memcpy(&bits, &v, sizeof(T));
    return bits;
}

template <class T>
inline T from_bits(unsigned long long bits) {
    T v;
    memcpy(&v, &bits, sizeof(T));
    return v;
}

inline int lane() { return (int)(threadIdx.x % 32); }

}  // namespace tj_emu

// ---------------------------------------------------------------------------------------------
// synchronisation

inline void __syncthreads() { tj_emu::barrier_wait(&tj_emu::current->block_barrier); }
inline int __syncthreads_count(int predicate) { return tj_emu::block_count(predicate); }
inline int __syncthreads_and(int predicate) {
    return tj_emu::block_count(predicate) == (int)blockDim.x;
}
inline int __syncthreads_or(int predicate) { return tj_emu::block_count(predicate) != 0; }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)mask;
    tj_emu::barrier_wait(&tj_emu::current->warp_barrier[threadIdx.x / 32]);
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline unsigned __activemask() {
    unsigned n = tj_emu::warp_size_of(tj_emu::current, threadIdx.x / 32);
    return n == 32 ? 0xffffffffu : (1u << n) - 1;
}

// ---------------------------------------------------------------------------------------------
// warp shuffles and votes; `width` splits the warp into segments as in CUDA

#define TJ_EMU_SHUFFLES(T)                                                                      \
    inline T __shfl_sync(unsigned mask, T var, int src, int width = warpSize) {                 \
        (void)mask;                                                                             \
        int lane = tj_emu::lane();                                                              \
        int target = (lane / width) * width + ((src % width) + width) % width;                  \
        return tj_emu::from_bits<T>(tj_emu::warp_exchange(tj_emu::to_bits(var), target));       \
    }                                                                                           \
    inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {       \
        (void)mask;                                                                             \
        int lane = tj_emu::lane();                                                              \
        int target = (unsigned)(lane % width) >= delta ? lane - (int)delta : -1;                \
        return tj_emu::from_bits<T>(tj_emu::warp_exchange(tj_emu::to_bits(var), target));       \
    }                                                                                           \
    inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {     \
        (void)mask;                                                                             \
        int lane = tj_emu::lane();                                                              \
        int target = (lane % width) + delta < (unsigned)width ? lane + (int)delta : -1;         \
        return tj_emu::from_bits<T>(tj_emu::warp_exchange(tj_emu::to_bits(var), target));       \
    }                                                                                           \
    inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {       \
        (void)mask;                                                                             \
        int lane = tj_emu::lane();                                                              \
        int target = lane ^ lane_mask;                                                          \
        if (target >= (lane / width + 1) * width || target > 31) target = -1;                   \
        return tj_emu::from_bits<T>(tj_emu::warp_exchange(tj_emu::to_bits(var), target));       \
    }

TJ_EMU_SHUFFLES(int)
TJ_EMU_SHUFFLES(unsigned int)
TJ_EMU_SHUFFLES(long)
TJ_EMU_SHUFFLES(unsigned long)
TJ_EMU_SHUFFLES(long long)
TJ_EMU_SHUFFLES(unsigned long long)
TJ_EMU_SHUFFLES(float)
TJ_EMU_SHUFFLES(double)
#undef TJ_EMU_SHUFFLES

inline unsigned __ballot_sync(unsigned mask, int predicate) {
    return tj_emu::warp_ballot(predicate) & mask;
}
inline int __all_sync(unsigned mask, int predicate) {
    unsigned ballot = tj_emu::warp_ballot(predicate), members = __activemask() & mask;
    return (ballot & members) == members;
}
inline int __any_sync(unsigned mask, int predicate) {
    return (tj_emu::warp_ballot(predicate) & mask) != 0;
}

// ---------------------------------------------------------------------------------------------
// atomics (sequentially consistent); each returns the old value, as in CUDA

#define TJ_EMU_SEQ __ATOMIC_SEQ_CST
#define TJ_EMU_FETCH(NAME, BUILTIN, T)                                                          \
    inline T NAME(T* address, T val) { return BUILTIN(address, val, TJ_EMU_SEQ); }
#define TJ_EMU_INTEGER_ATOMICS(T)                                                               \
    TJ_EMU_FETCH(atomicAdd, __atomic_fetch_add, T)                                              \
    TJ_EMU_FETCH(atomicSub, __atomic_fetch_sub, T)                                              \
    TJ_EMU_FETCH(atomicAnd, __atomic_fetch_and, T)                                              \
    TJ_EMU_FETCH(atomicOr, __atomic_fetch_or, T)                                                \
    TJ_EMU_FETCH(atomicXor, __atomic_fetch_xor, T)                                              \
    TJ_EMU_FETCH(atomicExch, __atomic_exchange_n, T)                                            \
    inline T atomicCAS(T* address, T compare, T val) {                                          \
        __atomic_compare_exchange_n(address, &compare, val, false, TJ_EMU_SEQ, TJ_EMU_SEQ);     \
        return compare; /* the old value, whether or not it was swapped */                      \
    }                                                                                           \
    inline T atomicMax(T* address, T val) {                                                     \
        T old = __atomic_load_n(address, TJ_EMU_SEQ);                                           \
        while (old < val && !__atomic_compare_exchange_n(address, &old, val, true, TJ_EMU_SEQ,  \
                                                         TJ_EMU_SEQ)) {}                        \
        return old;                                                                             \
    }                                                                                           \
    inline T atomicMin(T* address, T val) {                                                     \
        T old = __atomic_load_n(address, TJ_EMU_SEQ);                                           \
        while (old > val && !__atomic_compare_exchange_n(address, &old, val, true, TJ_EMU_SEQ,  \
                                                         TJ_EMU_SEQ)) {}                        \
        return old;                                                                             \
    }

TJ_EMU_INTEGER_ATOMICS(int)
TJ_EMU_INTEGER_ATOMICS(unsigned int)
TJ_EMU_INTEGER_ATOMICS(long long)
TJ_EMU_INTEGER_ATOMICS(unsigned long long)
#undef TJ_EMU_INTEGER_ATOMICS
#undef TJ_EMU_FETCH

namespace tj_emu {
// A floating-point read-modify-write through a compare-and-swap loop on the bits.
template <class F, class U, class Op>
inline F float_rmw(F* address, F val, Op op) {
    U* word = reinterpret_cast<U*>(address);
    U old = __atomic_load_n(word, TJ_EMU_SEQ);
    for (;;) {
        F current_value, next;
        memcpy(&current_value, &old, sizeof(F));
        next = op(current_value, val);
        U next_bits;
        memcpy(&next_bits, &next, sizeof(F));
        if (__atomic_compare_exchange_n(word, &old, next_bits, true, TJ_EMU_SEQ, TJ_EMU_SEQ))
            return current_value;
    }
}
inline float add_f(float a, float b) { return a + b; }
inline double add_d(double a, double b) { return a + b; }
}  // namespace tj_emu

inline float atomicAdd(float* address, float val) {
    return tj_emu::float_rmw<float, uint32_t>(address, val, tj_emu::add_f);
}
inline double atomicAdd(double* address, double val) {
    return tj_emu::float_rmw<double, uint64_t>(address, val, tj_emu::add_d);
}
inline float atomicExch(float* address, float val) {
    uint32_t bits = __atomic_exchange_n(reinterpret_cast<uint32_t*>(address),
                                        tj_emu::from_bits<uint32_t>(tj_emu::to_bits(val)),
                                        TJ_EMU_SEQ);
    return tj_emu::from_bits<float>(bits);
}
#undef TJ_EMU_SEQ

// ---------------------------------------------------------------------------------------------
// math beyond <math.h>, bit casts, loads

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fsub_rn(float x, float y) { return x - y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fdiv_rn(float x, float y) { return x / y; }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline double __dadd_rn(double x, double y) { return x + y; }
inline double __dsub_rn(double x, double y) { return x - y; }
inline double __dmul_rn(double x, double y) { return x * y; }
inline double __fma_rn(double x, double y, double z) { return fma(x, y, z); }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : x > 0.0f ? x : 0.0f; }

inline int __float_as_int(float x) { return tj_emu::from_bits<int>(tj_emu::to_bits(x)); }
inline unsigned __float_as_uint(float x) { return tj_emu::from_bits<unsigned>(tj_emu::to_bits(x)); }
inline float __int_as_float(int x) { return tj_emu::from_bits<float>(tj_emu::to_bits(x)); }
inline float __uint_as_float(unsigned x) { return tj_emu::from_bits<float>(tj_emu::to_bits(x)); }
inline long long __double_as_longlong(double x) {
    return tj_emu::from_bits<long long>(tj_emu::to_bits(x));
}
inline double __longlong_as_double(long long x) {
    return tj_emu::from_bits<double>(tj_emu::to_bits(x));
}

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }

template <class T>
inline T __ldg(const T* p) { return *p; }

// CUDA's min/max overloads (integers, and float/double with mixed forms).
#define TJ_EMU_MINMAX(R, A, B)                                                                  \
    inline R min(A a, B b) { return (R)a < (R)b ? (R)a : (R)b; }                                \
    inline R max(A a, B b) { return (R)a > (R)b ? (R)a : (R)b; }
TJ_EMU_MINMAX(int, int, int)
TJ_EMU_MINMAX(unsigned int, unsigned int, unsigned int)
TJ_EMU_MINMAX(unsigned int, int, unsigned int)
TJ_EMU_MINMAX(unsigned int, unsigned int, int)
TJ_EMU_MINMAX(long, long, long)
TJ_EMU_MINMAX(unsigned long, unsigned long, unsigned long)
TJ_EMU_MINMAX(unsigned long, long, unsigned long)
TJ_EMU_MINMAX(unsigned long, unsigned long, long)
TJ_EMU_MINMAX(long long, long long, long long)
TJ_EMU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
TJ_EMU_MINMAX(unsigned long long, long long, unsigned long long)
TJ_EMU_MINMAX(unsigned long long, unsigned long long, long long)
#undef TJ_EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(double a, float b) { return fmax(a, b); }

#endif  // TJ_CUDA_EMULATION_H
