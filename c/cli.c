/* cli.c: flags, sizes, durations and formats of shmpc-c, matching the Go
 * CLI's (docs/cli.md, "Conventions"). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "shmpc.h"

static int parse_int(const char *s, int64_t *out) {
    if (*s == 0)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != 0)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_size(const char *s, int64_t *out) {
    static const struct {
        const char *suffix;
        int64_t mult;
    } units[] = {
        {"KiB", 1LL << 10}, {"MiB", 1LL << 20}, {"GiB", 1LL << 30}, {"TiB", 1LL << 40}, {"KB", 1LL << 10},
        {"MB", 1LL << 20},  {"GB", 1LL << 30},  {"TB", 1LL << 40},  {"K", 1LL << 10},   {"M", 1LL << 20},
        {"G", 1LL << 30},   {"T", 1LL << 40},   {"B", 1},
    };
    char buf[64];
    while (*s == ' ' || *s == '\t')
        s++;
    snprintf(buf, sizeof buf, "%s", s);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = 0;
    int64_t mult = 1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t k = strlen(units[i].suffix);
        if (n >= k && strcmp(buf + n - k, units[i].suffix) == 0) {
            buf[n - k] = 0;
            n -= k;
            while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
                buf[--n] = 0;
            mult = units[i].mult;
            break;
        }
    }
    int64_t v;
    if (buf[0] == '+' || parse_int(buf, &v) != 0 || v < 0 || v > INT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

/* cli_parse_duration parses Go's duration syntax: "0", or a sequence of
 * decimal numbers with a unit each (ns, us, µs, ms, s, m, h), "1m30s". */
int cli_parse_duration(const char *s, int64_t *ns) {
    bool neg = false;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return 0;
    }
    if (*s == 0)
        return -1;
    double total = 0;
    while (*s) {
        const char *start = s;
        while ((*s >= '0' && *s <= '9') || *s == '.')
            s++;
        if (s == start)
            return -1;
        char num[64];
        size_t k = (size_t)(s - start);
        if (k >= sizeof num)
            return -1;
        memcpy(num, start, k);
        num[k] = 0;
        if (strcmp(num, ".") == 0)
            return -1;
        double v = strtod(num, NULL);
        static const struct {
            const char *u;
            double mult;
        } units[] = {{"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3}, {"ms", 1e6},
                     {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
        double mult = 0;
        size_t ul = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t l = strlen(units[i].u);
            if (strncmp(s, units[i].u, l) == 0 && l > ul) {
                mult = units[i].mult;
                ul = l;
            }
        }
        if (ul == 0)
            return -1; /* a number without a unit */
        s += ul;
        total += v * mult;
        if (total > 9.2e18)
            return -1;
    }
    *ns = (int64_t)(total + 0.5);
    if (neg)
        *ns = -*ns;
    return 0;
}

void cli_format_size(char *buf, size_t n, int64_t v) {
    static const struct {
        const char *s;
        int64_t m;
    } units[] = {{"TiB", 1LL << 40}, {"GiB", 1LL << 30}, {"MiB", 1LL << 20}, {"KiB", 1LL << 10}};
    for (size_t i = 0; i < 4; i++)
        if (v >= units[i].m && v % units[i].m == 0) {
            snprintf(buf, n, "%" PRId64 "%s", v / units[i].m, units[i].s);
            return;
        }
    snprintf(buf, n, "%" PRId64, v);
}

void cli_format_bytes(char *buf, size_t n, uint64_t b) {
    if (b >= 1ULL << 30)
        snprintf(buf, n, "%.2f GiB", (double)b / (1ULL << 30));
    else if (b >= 1ULL << 20)
        snprintf(buf, n, "%.2f MiB", (double)b / (1ULL << 20));
    else if (b >= 1ULL << 10)
        snprintf(buf, n, "%.2f KiB", (double)b / (1ULL << 10));
    else
        snprintf(buf, n, "%" PRIu64 " B", b);
}

void cli_format_rate(char *buf, size_t n, uint64_t bytes, double seconds) {
    double r = seconds > 0 ? (double)bytes / seconds : 0;
    if (r >= 1 << 30)
        snprintf(buf, n, "%.2f GiB/s", r / (1 << 30));
    else if (r >= 1 << 20)
        snprintf(buf, n, "%.2f MiB/s", r / (1 << 20));
    else if (r >= 1 << 10)
        snprintf(buf, n, "%.2f KiB/s", r / (1 << 10));
    else if (r > 0)
        snprintf(buf, n, "%.0f B/s", r);
    else
        snprintf(buf, n, "0 B/s");
}

static void print_usage(const struct cli_flag *flags, const char *cmd) {
    fprintf(stderr, "usage: shmpc-c %s -name NAME [flags]\n\nflags:\n", cmd);
    for (const struct cli_flag *f = flags; f->name != NULL; f++)
        fprintf(stderr, "  -%s\n    \t%s\n", f->name, f->usage);
}

static int set_value(struct cli_flag *f, const char *v, char *err, size_t errlen) {
    int64_t x;
    switch (f->kind) {
    case CLI_BOOL:
        if (!strcmp(v, "1") || !strcmp(v, "t") || !strcmp(v, "T") || !strcmp(v, "true") || !strcmp(v, "TRUE") ||
            !strcmp(v, "True"))
            *(bool *)f->value = true;
        else if (!strcmp(v, "0") || !strcmp(v, "f") || !strcmp(v, "F") || !strcmp(v, "false") ||
                 !strcmp(v, "FALSE") || !strcmp(v, "False"))
            *(bool *)f->value = false;
        else
            goto bad;
        break;
    case CLI_STRING:
        *(const char **)f->value = v;
        break;
    case CLI_FILE:
        if (*v == 0) {
            snprintf(err, errlen, "invalid value \"\" for flag -%s: want a file name (it is empty: an unset variable?)",
                     f->name);
            return -1;
        }
        *(const char **)f->value = v;
        break;
    case CLI_INT:
        if (parse_int(v, &x) != 0)
            goto bad;
        *(int64_t *)f->value = x;
        break;
    case CLI_COUNT:
        if (parse_int(v, &x) != 0 || x < 0) {
            snprintf(err, errlen, "invalid value \"%s\" for flag -%s: want a non-negative whole number of items", v,
                     f->name);
            return -1;
        }
        *(int64_t *)f->value = x;
        break;
    case CLI_SIZE:
        if (cli_parse_size(v, &x) != 0) {
            snprintf(err, errlen,
                     "invalid value \"%s\" for flag -%s: invalid size \"%s\": want a non-negative whole number of bytes, "
                     "optionally with KiB, MiB, GiB or TiB (e.g. 4096, 64KiB, 8MiB, 4GiB)",
                     v, f->name, v);
            return -1;
        }
        *(int64_t *)f->value = x;
        break;
    case CLI_DURATION:
        if (cli_parse_duration(v, &x) != 0) {
            snprintf(err, errlen, "invalid value \"%s\" for flag -%s: parse error", v, f->name);
            return -1;
        }
        *(int64_t *)f->value = x;
        break;
    case CLI_POLICY:
        if (!strcmp(v, "auto"))
            *(int *)f->value = SHMPC_AUTO;
        else if (!strcmp(v, "on"))
            *(int *)f->value = SHMPC_ON;
        else if (!strcmp(v, "off"))
            *(int *)f->value = SHMPC_OFF;
        else {
            snprintf(err, errlen, "invalid value \"%s\" for flag -%s: want auto, on or off", v, f->name);
            return -1;
        }
        break;
    case CLI_PERM: {
        char *end;
        errno = 0;
        unsigned long m = strtoul(v, &end, 8);
        if (*v == 0 || *end != 0 || errno != 0 || m > 0777 || (m & 0600) != 0600) {
            snprintf(err, errlen,
                     "invalid value \"%s\" for flag -%s: want octal permission bits within 0777 that include 0600 (e.g. "
                     "0600, 0660)",
                     v, f->name);
            return -1;
        }
        *(int64_t *)f->value = (int64_t)m;
        break;
    }
    }
    f->set = true;
    return 0;
bad:
    snprintf(err, errlen, "invalid value \"%s\" for flag -%s: parse error", v, f->name);
    return -1;
}

int cli_parse(struct cli_flag *flags, int argc, char **argv, const char *cmd, char *err, size_t errlen) {
    int i = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == 0)
            break; /* the first non-flag argument */
        const char *name = a + 1;
        if (*name == '-') {
            name++;
            if (*name == 0) {
                i++;
                break; /* "--" ends the flags */
            }
        }
        if (*name == '-' || *name == '=') {
            snprintf(err, errlen, "bad flag syntax: %s (see 'shmpc-c %s -h')", a, cmd);
            return 2;
        }
        char key[64];
        const char *eq = strchr(name, '=');
        size_t kl = eq ? (size_t)(eq - name) : strlen(name);
        if (kl >= sizeof key)
            kl = sizeof key - 1;
        memcpy(key, name, kl);
        key[kl] = 0;
        if (!strcmp(key, "h") || !strcmp(key, "help")) {
            print_usage(flags, cmd);
            return 1;
        }
        struct cli_flag *f = flags;
        while (f->name != NULL && strcmp(f->name, key) != 0)
            f++;
        if (f->name == NULL) {
            snprintf(err, errlen, "flag provided but not defined: -%s (see 'shmpc-c %s -h')", key, cmd);
            return 2;
        }
        const char *v;
        if (eq != NULL) {
            v = eq + 1;
        } else if (f->kind == CLI_BOOL) {
            v = "true";
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            snprintf(err, errlen, "flag needs an argument: -%s (see 'shmpc-c %s -h')", key, cmd);
            return 2;
        }
        char e[512];
        if (set_value(f, v, e, sizeof e) != 0) {
            snprintf(err, errlen, "%s (see 'shmpc-c %s -h')", e, cmd);
            return 2;
        }
    }
    if (i < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\" (see 'shmpc-c %s -h')", argv[i], cmd);
        return 2;
    }
    return 0;
}
