/* test_kvcheck.c: the rrkv linearizability checker (examples/kv/check.c) on hand-made
 * histories, and against a brute-force checker on random small ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "check.h"

#define OUT_BYTES 8192

static char out_text[OUT_BYTES];

/* Runs the checker on `history`; its explanation lands in out_text. */
static int check_limited(const char *history, uint64_t steps_max)
{
    struct rr_kvcheck_limits limits;
    rr_kvcheck_limits_default(&limits);
    limits.steps_max = steps_max;
    FILE *in = fmemopen((void *)history, strlen(history), "r");
    assert_non_null(in);
    memset(out_text, 0, sizeof out_text);
    FILE *out = fmemopen(out_text, sizeof out_text - 1, "w");
    assert_non_null(out);
    int rc = rr_kvcheck_file(in, &limits, NULL, out);
    fclose(out);
    fclose(in);
    return rc;
}

static int check(const char *history)
{
    return check_limited(history, 1000000);
}

#define OP(c, kind, key, value, call, ret, status)                                                 \
    "{\"client\":" #c ",\"op\":\"" kind "\",\"key\":\"" key "\",\"value\":" value                  \
    ",\"call\":" #call ",\"ret\":" #ret ",\"status\":\"" status "\"}\n"

static void test_empty_and_sequential(void **state)
{
    (void)state;
    assert_int_equal(check(""), RR_KVCHECK_LINEARIZABLE);
    assert_int_equal(check(OP(0, "get", "a", "null", 1, 2, "ok")
                               OP(0, "put", "a", "\"v1\"", 3, 4, "ok")
                                   OP(0, "get", "a", "\"v1\"", 5, 6, "ok")),
                     RR_KVCHECK_LINEARIZABLE);
}

/* A get concurrent with a put may see either value, and two concurrent gets may see them
 * in either order as long as some order of the puts explains both. */
static void test_concurrent_orders_are_fine(void **state)
{
    (void)state;
    const char *old_then_new = OP(0, "put", "a", "\"v1\"", 10, 100, "ok")
        OP(1, "get", "a", "\"v1\"", 20, 30, "ok") OP(2, "get", "a", "null", 25, 90, "ok");
    assert_int_equal(check(old_then_new), RR_KVCHECK_LINEARIZABLE);
    const char *two_puts =
        OP(0, "put", "a", "\"v1\"", 10, 100, "ok") OP(1, "put", "a", "\"v2\"", 10, 100, "ok")
            OP(2, "get", "a", "\"v2\"", 20, 30, "ok") OP(3, "get", "a", "\"v1\"", 40, 50, "ok");
    assert_int_equal(check(two_puts), RR_KVCHECK_LINEARIZABLE);
    /* Lines in any order; calls and returns at equal times count as concurrent. */
    const char *shuffled =
        OP(1, "get", "a", "\"v1\"", 100, 120, "ok") OP(0, "put", "a", "\"v1\"", 10, 100, "ok");
    assert_int_equal(check(shuffled), RR_KVCHECK_LINEARIZABLE);
}

static void test_stale_read(void **state)
{
    (void)state;
    const char *h = OP(0, "put", "a", "\"v1\"", 1, 2, "ok") OP(0, "put", "a", "\"v2\"", 3, 4, "ok")
        OP(1, "get", "a", "\"v1\"", 5, 6, "ok");
    assert_int_equal(check(h), RR_KVCHECK_VIOLATION);
    assert_non_null(strstr(out_text, "key \"a\""));
    assert_non_null(strstr(out_text, "line 3"));
    /* Two reads that disagree on the order of two puts. */
    const char *flip = OP(0, "put", "a", "\"v1\"", 10, 100, "ok")
        OP(1, "put", "a", "\"v2\"", 10, 100, "ok") OP(2, "get", "a", "\"v2\"", 20, 30, "ok")
            OP(3, "get", "a", "\"v1\"", 40, 50, "ok") OP(2, "get", "a", "\"v2\"", 60, 70, "ok");
    assert_int_equal(check(flip), RR_KVCHECK_VIOLATION);
}

static void test_lost_write(void **state)
{
    (void)state;
    const char *h = OP(0, "put", "k", "\"v1\"", 1, 2, "ok") OP(1, "get", "k", "null", 3, 4, "ok");
    assert_int_equal(check(h), RR_KVCHECK_VIOLATION);
    assert_non_null(strstr(out_text, "key \"k\""));
}

static void test_read_of_unwritten_value(void **state)
{
    (void)state;
    assert_int_equal(check(OP(0, "get", "k", "\"zz\"", 1, 2, "ok")), RR_KVCHECK_VIOLATION);
    assert_non_null(strstr(out_text, "no put wrote it"));
    /* A value written to another key. */
    assert_int_equal(
        check(OP(0, "put", "a", "\"v1\"", 1, 2, "ok") OP(0, "get", "b", "\"v1\"", 3, 4, "ok")),
        RR_KVCHECK_VIOLATION);
    /* A put that failed with `error` was not applied. */
    assert_int_equal(
        check(OP(0, "put", "a", "\"v1\"", 1, 2, "error") OP(0, "get", "a", "\"v1\"", 3, 4, "ok")),
        RR_KVCHECK_VIOLATION);
    assert_int_equal(
        check(OP(0, "put", "a", "\"v1\"", 1, 2, "error") OP(0, "get", "a", "null", 3, 4, "ok")),
        RR_KVCHECK_LINEARIZABLE);
}

static void test_timeout_puts(void **state)
{
    (void)state;
    /* Took effect long after the client gave up. */
    assert_int_equal(check(OP(0, "put", "k", "\"v1\"", 1, 2, "timeout")
                               OP(1, "get", "k", "null", 3, 4, "ok")
                                   OP(1, "get", "k", "\"v1\"", 50, 60, "ok")),
                     RR_KVCHECK_LINEARIZABLE);
    /* Never took effect. */
    assert_int_equal(check(OP(0, "put", "k", "\"v1\"", 1, 2, "ok")
                               OP(0, "put", "k", "\"v2\"", 3, 4, "timeout")
                                   OP(1, "get", "k", "\"v1\"", 5, 6, "ok")),
                     RR_KVCHECK_LINEARIZABLE);
    /* Read before it was even called. */
    assert_int_equal(
        check(OP(1, "get", "k", "\"v1\"", 1, 2, "ok") OP(0, "put", "k", "\"v1\"", 3, 4, "timeout")),
        RR_KVCHECK_VIOLATION);
    /* Seen, then unseen while nothing else was written: it cannot flicker. */
    assert_int_equal(check(OP(0, "put", "k", "\"v1\"", 1, 2, "timeout")
                               OP(1, "get", "k", "\"v1\"", 3, 4, "ok")
                                   OP(1, "get", "k", "null", 5, 6, "ok")),
                     RR_KVCHECK_VIOLATION);
    /* A timed-out get returned nothing: whatever it carries is ignored. */
    assert_int_equal(check(OP(0, "get", "k", "\"junk\"", 1, 2, "timeout")),
                     RR_KVCHECK_LINEARIZABLE);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *good = OP(0, "put", "k", "\"v1\"", 1, 2, "ok");
    char buf[1024];
    const char *bad[] = {
        "{\"client\":0,\"op\":\"put\"", /* truncated */
        "{\"client\":0,\"op\":\"put\",\"key\":\"k\",\"value\":\"v\",\"call\":1,\"ret\":"
        "2}",                                       /* no status */
        OP(0, "put", "k", "\"v2\"", 5, 4, "ok"),    /* ret < call */
        OP(0, "put", "k", "\"v2\"", 3, 4, "maybe"), /* bad status */
        OP(0, "del", "k", "\"v2\"", 3, 4, "ok"),    /* bad op */
        OP(0, "put", "k", "null", 3, 4, "ok"),      /* put of null */
        OP(0, "put", "k", "\"v1\"", 3, 4, "ok"),    /* duplicate value */
        OP(0, "get", "k", "null", 1, 4, "ok"),      /* client overlap */
        OP(-1, "get", "k", "null", 3, 4, "ok"),     /* negative client */
        "[1,2]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s\n", good, bad[i]);
        assert_int_equal(check(buf), RR_KVCHECK_MALFORMED);
        assert_non_null(strstr(out_text, "line 2"));
    }
}

static void test_undecided_is_not_a_pass(void **state)
{
    (void)state;
    const char *h =
        OP(0, "put", "a", "\"v1\"", 10, 100, "ok") OP(1, "put", "a", "\"v2\"", 10, 100, "ok")
            OP(2, "get", "a", "\"v2\"", 20, 30, "ok") OP(3, "get", "a", "\"v1\"", 40, 50, "ok");
    assert_int_equal(check_limited(h, 2), RR_KVCHECK_UNDECIDED);
    assert_non_null(strstr(out_text, "undecided"));
}

/* ---- random small histories against brute force ---- */

#define RAND_OPS 6

static const char *const status_names[] = {"ok", "timeout", "error"};

struct rop {
    int put;
    int status; /* 0 ok, 1 timeout, 2 error */
    int value;  /* put: its value (i + 1); get: the value read, 0 = null */
    uint64_t call, ret;
};

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33) % n;
}

/* Tries every subset of the timeout puts and every order of the rest. */
static bool brute_force(const struct rop *ops, int n)
{
    int timeouts[RAND_OPS], t = 0;
    for (int i = 0; i < n; i++) {
        if (ops[i].put && ops[i].status == 1)
            timeouts[t++] = i;
    }
    for (int mask = 0; mask < (1 << t); mask++) {
        int idx[RAND_OPS], m = 0;
        for (int i = 0; i < n; i++) {
            /* Not applied: errors, and gets that returned nothing. */
            bool skip = ops[i].status == 2 || (ops[i].status == 1 && !ops[i].put);
            for (int k = 0; k < t; k++)
                skip |= timeouts[k] == i && !(mask & (1 << k));
            if (!skip)
                idx[m++] = i;
        }
        for (;;) {
            bool ok = true;
            int value = 0;
            for (int a = 0; a < m && ok; a++) {
                const struct rop *o = &ops[idx[a]];
                for (int b = a + 1; b < m && ok; b++) {
                    const struct rop *p = &ops[idx[b]];
                    bool p_done = !(p->put && p->status == 1);
                    ok = !(p_done && p->ret < o->call); /* p returned before o was called */
                }
                if (o->put)
                    value = o->value;
                else
                    ok = ok && o->value == value;
            }
            if (ok)
                return true;
            /* next permutation of idx[0..m) */
            int i = m - 2;
            while (i >= 0 && idx[i] >= idx[i + 1])
                i--;
            if (i < 0)
                break;
            int j = m - 1;
            while (idx[j] <= idx[i])
                j--;
            int tmp = idx[i];
            idx[i] = idx[j];
            idx[j] = tmp;
            for (int a = i + 1, b = m - 1; a < b; a++, b--) {
                tmp = idx[a];
                idx[a] = idx[b];
                idx[b] = tmp;
            }
        }
    }
    return false;
}

static void test_random_against_brute_force(void **state)
{
    (void)state;
    uint64_t seed = 20261122;
    int verdicts[2] = {0, 0};
    for (int round = 0; round < 3000; round++) {
        rng_state = seed + (uint64_t)round;
        struct rop ops[RAND_OPS];
        char text[4096];
        size_t len = 0;
        /* Client i has a single op, so per-client sequencing holds trivially. */
        for (int i = 0; i < RAND_OPS; i++) {
            uint32_t dice = rnd(6);
            ops[i].put = rnd(2) == 0;
            ops[i].status = dice == 0 ? 1 : dice == 1 ? 2 : 0;
            ops[i].call = rnd(20);
            ops[i].ret = ops[i].call + 1 + rnd(8);
        }
        for (int i = 0; i < RAND_OPS; i++) {
            /* A get reads null or the value of some put, possibly one that cannot explain it. */
            uint32_t of = rnd(RAND_OPS + 1);
            ops[i].value = ops[i].put ? i + 1 : (of && ops[of - 1].put ? (int)of : 0);
            char value[16];
            if (ops[i].value)
                snprintf(value, sizeof value, "\"v%d\"", ops[i].value);
            else
                snprintf(value, sizeof value, "null");
            len += (size_t)snprintf(text + len, sizeof text - len,
                                    "{\"client\":%d,\"op\":\"%s\",\"key\":\"k\",\"value\":%s,"
                                    "\"call\":%llu,\"ret\":%llu,\"status\":\"%s\"}\n",
                                    i, ops[i].put ? "put" : "get", value,
                                    (unsigned long long)ops[i].call, (unsigned long long)ops[i].ret,
                                    status_names[ops[i].status]);
        }
        bool expect = brute_force(ops, RAND_OPS);
        int rc = check(text);
        if (rc != (expect ? RR_KVCHECK_LINEARIZABLE : RR_KVCHECK_VIOLATION))
            fail_msg("round %d (seed %llu): checker %d, brute force %s\n%s", round,
                     (unsigned long long)seed, rc, expect ? "linearizable" : "not", text);
        verdicts[expect]++;
    }
    /* Both verdicts must actually be exercised. */
    assert_true(verdicts[0] > 100);
    assert_true(verdicts[1] > 100);
}

/* ---- a large simulated history: the checker must stay fast ---- */

#define SIM_CLIENTS 10
#define SIM_KEYS    10
#define SIM_OPS     100000

struct simop {
    uint64_t call, ret, lin;
    uint32_t client, key, seq;
    int put, status, applied;
    int64_t read; /* get: index of the put whose value it read, -1 = null */
};

static struct simop sim[SIM_OPS];
static uint32_t sim_order[SIM_OPS];

static int cmp_lin(const void *a, const void *b)
{
    const struct simop *x = &sim[*(const uint32_t *)a], *y = &sim[*(const uint32_t *)b];
    return x->lin < y->lin ? -1 : (x->lin > y->lin);
}

/* A register per key with a linearization point drawn in each op's interval; 1% of puts
 * time out, half of those never apply. */
static void simulate(void)
{
    rng_state = 42;
    uint64_t t[SIM_CLIENTS];
    for (uint32_t c = 0; c < SIM_CLIENTS; c++)
        t[c] = 1000000 + rnd(1000);
    for (uint32_t i = 0; i < SIM_OPS; i++) {
        struct simop *o = &sim[i];
        o->client = i % SIM_CLIENTS;
        o->call = t[o->client] + 1 + rnd(50000);
        o->ret = o->call + 100000 + rnd(3000000);
        o->lin = o->call + rnd((uint32_t)(o->ret - o->call) + 1);
        o->key = rnd(SIM_KEYS);
        o->put = rnd(2) == 0;
        o->seq = i;
        o->status = o->put && rnd(100) == 0 ? 1 : 0;
        o->applied = o->status == 0 || rnd(2) == 0;
        t[o->client] = o->ret;
        sim_order[i] = i;
    }
    qsort(sim_order, SIM_OPS, sizeof *sim_order, cmp_lin);
    int64_t current[SIM_KEYS];
    for (uint32_t k = 0; k < SIM_KEYS; k++)
        current[k] = -1;
    for (uint32_t n = 0; n < SIM_OPS; n++) {
        struct simop *o = &sim[sim_order[n]];
        if (o->put && o->applied)
            current[o->key] = sim_order[n];
        else if (!o->put)
            o->read = current[o->key];
    }
}

/* Makes one get read a value overwritten before it was called: P -> W -> G in real time,
 * G reads P. Returns the line of G. */
static uint32_t inject_stale_read(void)
{
    int64_t current[SIM_KEYS], previous[SIM_KEYS];
    for (uint32_t k = 0; k < SIM_KEYS; k++)
        current[k] = previous[k] = -1;
    for (uint32_t n = 0; n < SIM_OPS; n++) {
        uint32_t i = sim_order[n];
        struct simop *o = &sim[i];
        if (o->put && o->applied) {
            previous[o->key] = current[o->key];
            current[o->key] = i;
            continue;
        }
        int64_t w = current[o->key], p = previous[o->key];
        if (o->put || n < SIM_OPS / 2 || w < 0 || p < 0 || sim[w].status || sim[p].status ||
            sim[w].ret >= o->call || sim[p].ret >= sim[w].call)
            continue;
        o->read = p;
        return i + 1;
    }
    fail_msg("no get to make stale");
    return 0;
}

static int check_sim(struct rr_kvcheck_stats *st)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    for (uint32_t i = 0; i < SIM_OPS; i++) {
        const struct simop *o = &sim[i];
        fprintf(f, "{\"client\":%u,\"op\":\"%s\",\"key\":\"k%u\",\"value\":", o->client,
                o->put ? "put" : "get", o->key);
        if (o->put)
            fprintf(f, "\"c%u-%u\"", o->client, o->seq);
        else if (o->read < 0)
            fprintf(f, "null");
        else
            fprintf(f, "\"c%u-%u\"", sim[o->read].client, sim[o->read].seq);
        fprintf(f, ",\"call\":%llu,\"ret\":%llu,\"status\":\"%s\"}\n", (unsigned long long)o->call,
                (unsigned long long)o->ret, o->status ? "timeout" : "ok");
    }
    fclose(f);
    FILE *in = fmemopen(text, len, "r");
    assert_non_null(in);
    memset(out_text, 0, sizeof out_text);
    FILE *out = fmemopen(out_text, sizeof out_text - 1, "w");
    struct rr_kvcheck_limits limits;
    rr_kvcheck_limits_default(&limits);
    int rc = rr_kvcheck_file(in, &limits, st, out);
    fclose(out);
    fclose(in);
    free(text);
    return rc;
}

static void test_large_history(void **state)
{
    (void)state;
    struct rr_kvcheck_stats st;
    simulate();
    assert_int_equal(check_sim(&st), RR_KVCHECK_LINEARIZABLE);
    assert_int_equal(st.ops_count, SIM_OPS);
    assert_int_equal(st.keys_count, SIM_KEYS);
    /* The pruning and the memo keep the search near one step per op; an exponential
     * search (or a lost optimization) shows up here long before it shows up in time. */
    assert_true(st.steps_count < 10ull * SIM_OPS);
    uint32_t line = inject_stale_read();
    assert_int_equal(check_sim(&st), RR_KVCHECK_VIOLATION);
    assert_int_equal(st.violations_count, 1);
    /* The explanation names the key; its deepest dead end need not be the injected get. */
    char where[32];
    snprintf(where, sizeof where, "key \"k%u\": not linearizable", sim[line - 1].key);
    assert_non_null(strstr(out_text, where));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_sequential),
        cmocka_unit_test(test_concurrent_orders_are_fine),
        cmocka_unit_test(test_stale_read),
        cmocka_unit_test(test_lost_write),
        cmocka_unit_test(test_read_of_unwritten_value),
        cmocka_unit_test(test_timeout_puts),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_undecided_is_not_a_pass),
        cmocka_unit_test(test_random_against_brute_force),
        cmocka_unit_test(test_large_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
