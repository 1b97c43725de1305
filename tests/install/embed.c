/*
 * embed.c: an embedder built only from what `cmake --install` puts on disk, found through
 * `pkg-config --cflags --libs ringraft` (tests/tools/check_install.sh). One voter over an
 * in-memory WAL and an in-process transport: created, started, one proposal committed and
 * applied, stopped and freed. Exits 0 on success.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep under -std=c11 */

#include <ringraft/node.h>
#include <ringraft/transport.h>
#include <ringraft/wal.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct state {
    int applied; /* atomic: entries applied with our payload */
    int status;  /* atomic: the proposal's result + 1 (0: not yet) */
} state;

static void apply(void *ctx, const rr_entry *ents, size_t n)
{
    state *s = ctx;
    for (size_t i = 0; i < n; i++)
        if (ents[i].data_len == 5 && memcmp(ents[i].data, "hello", 5) == 0)
            __atomic_fetch_add(&s->applied, 1, __ATOMIC_RELEASE);
}

static void done(void *ctx, const rr_node_result *res)
{
    state *s = ctx;
    __atomic_store_n(&s->status, res->status + 1, __ATOMIC_RELEASE);
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "embed: %s: %d\n", what, rc);
    return 1;
}

int main(void)
{
    rr_wal_config wc;
    rr_wal_config_init(&wc, NULL); /* no directory: the in-memory backend */
    rr_wal *wal;
    int rc = rr_wal_open(&wc, &wal, NULL);
    if (rc != 0)
        return fail("rr_wal_open", rc);
    rr_transport_hub *hub;
    if ((rc = rr_transport_hub_new(&hub)) != 0)
        return fail("rr_transport_hub_new", rc);
    rr_transport_config tc;
    rr_transport_config_init(&tc, 7, 1);
    rr_transport *net;
    if ((rc = rr_transport_inproc_new(hub, &tc, &net)) != 0)
        return fail("rr_transport_inproc_new", rc);
    if ((rc = rr_transport_start(net)) != 0)
        return fail("rr_transport_start", rc);

    state s = {0};
    rr_node_config cfg;
    rr_node_config_init(&cfg, 1);
    cfg.n_voters = 1;
    cfg.voters[0] = 1;
    cfg.tick_ms = 10;
    if ((rc = rr_node_disk_wal(wal, &cfg.disk, &cfg.disk_ctx)) != 0)
        return fail("rr_node_disk_wal", rc);
    cfg.net = rr_node_net_transport();
    cfg.net_ctx = net;
    rr_node_callbacks cb = {.ctx = &s, .apply = apply};
    rr_node *n;
    if ((rc = rr_node_create(&cfg, &cb, &n)) != 0)
        return fail("rr_node_create", rc);
    if ((rc = rr_node_start(n)) != 0)
        return fail("rr_node_start", rc);
    /* A lone voter elects itself within an election timeout; until then: not leader. */
    for (int t = 0;
         t < 1000 && __atomic_load_n(&s.status, __ATOMIC_ACQUIRE) != RR_NODE_COMMITTED + 1; t++) {
        __atomic_store_n(&s.status, 0, __ATOMIC_RELEASE);
        if ((rc = rr_node_propose(n, "hello", 5, done, &s)) != 0)
            return fail("rr_node_propose", rc);
        while (__atomic_load_n(&s.status, __ATOMIC_ACQUIRE) == 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        struct timespec ts = {0, 10000000};
        if (__atomic_load_n(&s.status, __ATOMIC_ACQUIRE) != RR_NODE_COMMITTED + 1)
            nanosleep(&ts, NULL);
    }
    int status = __atomic_load_n(&s.status, __ATOMIC_ACQUIRE) - 1;
    rr_node_free(n);
    rr_transport_hub_free(hub);
    if (status != RR_NODE_COMMITTED)
        return fail("proposal status", status);
    if (__atomic_load_n(&s.applied, __ATOMIC_ACQUIRE) != 1)
        return fail("applied", s.applied);
    puts("embed: one entry committed and applied through the installed library");
    return 0;
}
