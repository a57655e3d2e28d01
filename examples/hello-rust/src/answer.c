/* A C part, compiled by cc-rs with kiln's zig wrapper for every target. */
#include <string.h>

int kiln_answer(void) { return 42; }

unsigned long kiln_c_strlen(const char *s) { return strlen(s); }
