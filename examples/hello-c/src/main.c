/* hello-c: kiln's C example. Prints the CPU and C library it was built for; both come from
 * libgreet.a, the static library the Makefile builds first. */
#include <stdio.h>

#include "greet.h"

int main(void) {
    printf("Hello from kiln! arch=%s libc=%s\n", greet_arch(), greet_libc());
    return 0;
}
