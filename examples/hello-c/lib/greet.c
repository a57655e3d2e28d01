#include "greet.h"

#include <stdio.h>

const char *greet_arch(void) {
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#elif defined(__arm__)
    /* __ARM_ARCH is 6 or 7: the -mcpu kiln passes for linux/arm/v6 and linux/arm/v7. */
    static char buf[16];
    snprintf(buf, sizeof buf, "armv%d", __ARM_ARCH);
    return buf;
#elif defined(__i386__)
    return "i386";
#elif defined(__riscv) && __riscv_xlen == 64
    return "riscv64";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
    return "ppc64le";
#elif defined(__s390x__)
    return "s390x";
#elif defined(__loongarch64)
    return "loongarch64";
#else
    return "unknown";
#endif
}

const char *greet_libc(void) {
#if defined(__GLIBC__)
    return "glibc";
#else
    return "musl";
#endif
}
