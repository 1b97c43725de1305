/*
 * rr-conformance: replays etcd raft v3.6's datadriven transcripts against ringraft.
 *
 *   rr-conformance [-v] [--no-fork] [--kind quorum|confchange|interaction] FILE...
 *
 * Each file runs with a fresh env of its kind: `--kind`, or else picked by path (a path
 * containing "/quorum/" or "/confchange/" is of that kind, any other an interaction
 * transcript). Differing cases are printed as unified diffs, each file ends with a
 * `PASS path (N cases)` or `FAIL path (K of N cases differ)` line. -v prints every case's
 * output. Each file runs in a child process, so that a failed assertion in the core fails
 * that file only (`--no-fork` runs in-process, for debuggers). Exit status: 0 when every
 * file passes, 1 when some case differs or a run crashed, 2 on a usage error or an
 * unreadable or malformed file.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datadriven.h"

static const struct {
    const char *name;
    const rr_dd_kind *kind;
} kinds[] = {
    {"quorum", &rr_dd_kind_quorum},
    {"confchange", &rr_dd_kind_confchange},
    {"interaction", &rr_dd_kind_interaction},
};

static const rr_dd_kind *kind_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(kinds[i].name, name) == 0)
            return kinds[i].kind;
    }
    return NULL;
}

static const rr_dd_kind *kind_by_path(const char *path)
{
    if (strstr(path, "/quorum/") != NULL)
        return &rr_dd_kind_quorum;
    if (strstr(path, "/confchange/") != NULL)
        return &rr_dd_kind_confchange;
    return &rr_dd_kind_interaction;
}

/* Runs one file in a child; a child that dies before finishing fails the file. The child
 * writes one byte to a pipe once rr_dd_run_file returned, so that a sanitizer's exit is
 * told apart from a result. */
static int run_isolated(const char *path, const rr_dd_kind *kind, unsigned flags)
{
    int fds[2];
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0)
        return rr_dd_run_file(path, kind, flags);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return rr_dd_run_file(path, kind, flags);
    }
    if (pid == 0) {
        close(fds[0]);
        int rc = rr_dd_run_file(path, kind, flags);
        fflush(stdout);
        char done = 1;
        ssize_t w = write(fds[1], &done, 1);
        /* exit, not _exit: the sanitizers' leak check runs at exit. stdio was flushed
         * before the fork, so nothing of the parent's is written twice. */
        exit(w == 1 ? rc : 2);
    }
    close(fds[1]);
    char done = 0;
    ssize_t got;
    do
        got = read(fds[0], &done, 1);
    while (got < 0 && errno == EINTR);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return 2;
    }
    if (got == 1 && WIFEXITED(status) && WEXITSTATUS(status) <= 2)
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        printf("FAIL %s (crashed: signal %d)\n", path, WTERMSIG(status));
    else
        printf("FAIL %s (crashed: exit status %d)\n", path, WEXITSTATUS(status));
    fflush(stdout);
    return 1;
}

static int usage(const char *msg)
{
    if (msg != NULL)
        fprintf(stderr, "rr-conformance: %s\n", msg);
    fprintf(stderr, "usage: rr-conformance [-v] [--no-fork] "
                    "[--kind quorum|confchange|interaction] FILE...\n");
    return 2;
}

int main(int argc, char **argv)
{
    unsigned flags = 0;
    bool fork_each = true;
    const rr_dd_kind *forced = NULL;
    int first_file = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            first_file = i + 1;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            first_file = i;
            break;
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            flags |= RR_DD_VERBOSE;
        } else if (strcmp(a, "--no-fork") == 0) {
            fork_each = false;
        } else if (strcmp(a, "--kind") == 0 || strncmp(a, "--kind=", 7) == 0) {
            const char *name = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
            if (name == NULL)
                return usage("--kind needs a name");
            forced = kind_by_name(name);
            if (forced == NULL)
                return usage("unknown kind");
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(NULL);
            return 0;
        } else {
            return usage("unknown option");
        }
    }
    if (first_file >= argc)
        return usage("no transcript given");

    int status = 0;
    for (int i = first_file; i < argc; i++) {
        const rr_dd_kind *kind = forced != NULL ? forced : kind_by_path(argv[i]);
        int rc =
            fork_each ? run_isolated(argv[i], kind, flags) : rr_dd_run_file(argv[i], kind, flags);
        if (rc > status)
            status = rc;
    }
    return status;
}
