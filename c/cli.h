/* cli.h: command-line helpers of shmpc-c: flags in Go's syntax, sizes,
 * durations, and the output formats of the Go CLI (docs/cli.md). */
#ifndef SHMPC_CLI_H
#define SHMPC_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cli_kind { CLI_BOOL, CLI_STRING, CLI_INT, CLI_COUNT, CLI_SIZE, CLI_DURATION, CLI_POLICY, CLI_PERM, CLI_FILE };

/* A flag: its name, kind, where its value goes, and whether it was given. */
struct cli_flag {
    const char *name;
    enum cli_kind kind;
    void *value; /* bool, const char *, int64_t (int, count, size, duration ns, perm), int (policy) */
    const char *usage;
    bool set;
};

/* cli_parse parses args (Go's flag syntax: -flag value, -flag=value, one or
 * two dashes, a boolean turned off with -flag=false). It returns 0, 1 for
 * -h/-help (usage printed on stderr), or 2 with the one-line error in err. */
int cli_parse(struct cli_flag *flags, int argc, char **argv, const char *cmd, char *err, size_t errlen);

int cli_parse_size(const char *s, int64_t *out);
int cli_parse_duration(const char *s, int64_t *ns);
void cli_format_bytes(char *buf, size_t n, uint64_t b);
void cli_format_rate(char *buf, size_t n, uint64_t bytes, double seconds);
void cli_format_size(char *buf, size_t n, int64_t v);

#endif /* SHMPC_CLI_H */
