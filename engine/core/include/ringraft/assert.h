/*
 * assert.h: ringraft's two assertions (STYLE.md habit 6).
 *
 * RR_ASSERT(cond)       always on, in every build: cheap invariants. On failure it reports
 *                       the expression, file and line through glibc's __assert_fail, which
 *                       prints and aborts (the core stays free of stdio: see the purity test).
 * RR_DEBUG_ASSERT(cond) O(n) checks: compiled in every build (so they keep compiling) but
 *                       evaluated only when RR_DEBUG_ASSERTS is nonzero (debug preset).
 * One condition per assert; write implications as `if (a) RR_ASSERT(b)`.
 */
#ifndef RINGRAFT_ASSERT_H
#define RINGRAFT_ASSERT_H

#ifdef __cplusplus
extern "C" {
#endif

extern void __assert_fail(const char *expr, const char *file, unsigned int line, const char *func)
    __attribute__((__noreturn__));

#define RR_ASSERT(cond)                                                                            \
    ((__builtin_expect(!!(cond), 1))                                                               \
         ? (void)0                                                                                 \
         : __assert_fail("RR_ASSERT(" #cond ")", __FILE__, (unsigned int)__LINE__, __func__))

#ifndef RR_DEBUG_ASSERTS
#define RR_DEBUG_ASSERTS 0
#endif

#define RR_DEBUG_ASSERT(cond)                                                                      \
    do {                                                                                           \
        if (RR_DEBUG_ASSERTS)                                                                      \
            RR_ASSERT(cond);                                                                       \
    } while (0)

#define RR_UNREACHABLE() RR_ASSERT(0 && "unreachable")

#ifdef __cplusplus
}
#endif
#endif
