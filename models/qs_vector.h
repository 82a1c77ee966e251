/* Loops that vectorize are also compiled for AVX2 and picked at run time by
 * the CPU (GCC/Clang function multiversioning), as the build targets baseline
 * x86-64. Integer arithmetic only: every version gives the same results. Not
 * under the sanitizers, whose start-up does not mix with ifunc resolvers, and
 * not with -DQS_NO_CLONES (to test the baseline versions on an AVX2 machine). */
#ifndef QS_VECTOR_H
#define QS_VECTOR_H

/* GCC says __SANITIZE_ADDRESS__, Clang __has_feature(address_sanitizer) */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QS_VECTOR_ASAN 1
#endif
#endif
#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(QS_VECTOR_ASAN) && !defined(QS_NO_CLONES)
#if __has_attribute(target_clones)
#define QS_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef QS_VECTOR_CLONES
#define QS_VECTOR_CLONES
#endif

#endif
