/* The polyglot example's C helper: prints the FNV-1a hash of each file given (or of
   standard input). `--check` prints what it is and exits (kiln's smoke run). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint32_t fnv1a(FILE *f) {
    uint32_t h = 2166136261u;
    int c;
    while ((c = getc(f)) != EOF) {
        h ^= (uint32_t)c;
        h *= 16777619u;
    }
    return h;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--check") == 0) {
        printf("checksum ok\n");
        return 0;
    }
    if (argc == 1) {
        printf("%08x  -\n", fnv1a(stdin));
        return 0;
    }
    int status = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            status = 1;
            continue;
        }
        printf("%08x  %s\n", fnv1a(f), argv[i]);
        fclose(f);
    }
    return status;
}
