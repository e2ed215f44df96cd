/*
 * gen.c - bench helper: write N generated employee records as JSON Lines
 * (HR export column names, ~155 bytes a record: 1 M records are 155 MB) to stdout or a file.
 * Deterministic (a fixed xorshift seed), so runs compare.
 *
 * Usage: bench_gen N [FILE]
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
}

int main(int argc, char **argv)
{
    static const char *const first[] = {"Alice",  "Bruno", "Chen", "Dana",  "Emeka", "Fatima",
                                        "Gustav", "Hana",  "Ivan", "Julia", "Kofi",  "Lena"};
    static const char *const last[] = {"Smith",  "Okafor",  "Wang",      "Kowalski",
                                       "Nwosu",  "Haddad",  "Lindqvist", "Sato",
                                       "Petrov", "Fischer", "Mensah"};
    static const char *const dept[] = {"Engineering", "Sales",      "Finance",
                                       "People",      "Facilities", "Marketing"};
    static const char *const title[] = {"Software Engineer", "Account Executive", "Controller",
                                        "Recruiter",         "Workplace Manager", "Content Lead"};
    char *end;
    unsigned long long n;
    FILE *out = stdout;
    static char buf[1 << 20];

    if (argc < 2 || (n = strtoull(argv[1], &end, 10), *end)) {
        fprintf(stderr, "usage: bench_gen N [FILE]\n");
        return 64;
    }
    if (argc > 2 && !(out = fopen(argv[2], "w"))) {
        perror(argv[2]);
        return 73;
    }
    setvbuf(out, buf, _IOFBF, sizeof(buf));
    for (unsigned long long i = 0; i < n; i++) {
        uint64_t r = next();
        const char *f = first[r % 12], *l = last[(r >> 8) % 11];
        unsigned d = (unsigned)((r >> 16) % 6);
        fprintf(out,
                "{\"employee_id\":\"E%07llu\",\"first_name\":\"%s\",\"last_name\":\"%s\","
                "\"email\":\"%c%s.%llu@example.com\",\"department\":\"%s\",\"title\":\"%s\"}\n",
                i, f, l, f[0] | 0x20, l, i, dept[d], title[d]);
    }
    if (fclose(out) != 0) {
        perror("write");
        return 74;
    }
    return 0;
}
