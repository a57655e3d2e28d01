#ifndef GREET_H
#define GREET_H

/* The CPU this library was compiled for, from the compiler's predefined macros. */
const char *greet_arch(void);

/* The C library it was compiled against. */
const char *greet_libc(void);

#endif
