/* rrkv-load: closed-loop load generator for rrkv (or any server with etcd raftexample's
 * HTTP API), recording a client history for rrkv-check.
 *
 *   rrkv-load --endpoints http://127.0.0.1:12380[,URL...] [--clients C] [--keys K]
 *             [--duration S] [--put-ratio R] [--value-bytes N] [--timeout-ms T]
 *             [--history FILE] [--serializable] [--seed N] [--json]
 *
 * Each client is a thread with one libcurl easy handle (keep-alive) and one outstanding
 * request at a time, as the history format (HISTORY.md) requires. Client i starts on
 * endpoint i mod E. A put writes "c<client>-<seq>" padded with '.' to --value-bytes (a
 * minimum: the id is never cut), so every put value is unique.
 *
 * Outcomes, for the history:
 * - PUT 2xx -> ok. GET 200 -> ok with the body as the value; GET 404 -> ok with null.
 * - 307 with a Location -> the server did not take the request (it is not the leader);
 *   follow it within the same operation, at most REDIRECTS_MAX times.
 * - 400, 405, 413, 414, 431 -> error: the server refused the request as such, before any
 *   proposal could exist.
 * - anything else (503 no leader, other 5xx, client timeout, connection failure, an
 *   oversized answer) -> timeout: the put may or may not have been applied. The client
 *   then moves to the next endpoint and pauses briefly, so a dead node is not hammered.
 * A failed put is never retried with the same value: a duplicate apply could make a
 * value reappear after being overwritten, which no single put explains.
 *
 * Latency percentiles are over `ok` operations, from log-linear histograms (relative
 * error below 1/32); max is exact.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLIENTS_MAX     1024u
#define ENDPOINTS_MAX   64u
#define KEYS_MAX        (1u << 20)
#define VALUE_BYTES_MAX (1u << 20)
#define URL_BYTES_MAX   1024u
#define REDIRECTS_MAX   3
#define BACKOFF_NS      20000000ull /* after a timeout: 20 ms before the next request */
#define HIST_SUB_BITS   5
#define HIST_SUB        (1u << HIST_SUB_BITS)
#define HIST_BUCKETS    (64u * HIST_SUB)

enum { OP_GET, OP_PUT, OPS_KINDS };
enum { ST_OK, ST_TIMEOUT, ST_ERROR, STATUSES };

static const char *const op_names[] = {"get", "put"};
static const char *const status_names[] = {"ok", "timeout", "error"};

struct config {
    char *endpoints[ENDPOINTS_MAX];
    uint32_t endpoints_count;
    uint32_t clients_count;
    uint32_t keys_count;
    double duration_s;
    double put_ratio;
    uint32_t value_bytes;
    uint32_t timeout_ms;
    const char *history_path;
    bool serializable;
    bool json;
    uint64_t seed;
};

/* Log-linear latency histogram: 32 sub-buckets per power of two. */
struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max_ns;
};

struct client {
    pthread_t thread;
    uint32_t id;
    uint32_t endpoint;
    uint64_t rng;
    uint64_t seq;
    CURL *curl;
    struct curl_slist *headers;
    char *body; /* response body, body_cap bytes */
    size_t body_len;
    size_t body_cap;
    bool body_overflow;
    char *value; /* the value of the current put */
    struct hist latency[OPS_KINDS];
    uint64_t outcomes[OPS_KINDS][STATUSES];
    uint64_t redirects_count;
};

static struct config cfg;
static FILE *history;
static atomic_bool stopping;
static uint64_t deadline_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13; /* xorshift64 */
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint32_t hist_bucket(uint64_t v)
{
    if (v < HIST_SUB)
        return (uint32_t)v;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(v);
    uint32_t sub = (uint32_t)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return (e - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

/* The middle of bucket b. */
static uint64_t hist_value(uint32_t b)
{
    if (b < HIST_SUB)
        return b;
    uint32_t e = b / HIST_SUB + HIST_SUB_BITS - 1;
    uint64_t low = (uint64_t)(HIST_SUB + b % HIST_SUB) << (e - HIST_SUB_BITS);
    return low + ((1ull << (e - HIST_SUB_BITS)) >> 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->counts[hist_bucket(v)]++;
    h->total++;
    if (v > h->max_ns)
        h->max_ns = v;
}

static void hist_merge(struct hist *into, const struct hist *h)
{
    for (uint32_t b = 0; b < HIST_BUCKETS; b++)
        into->counts[b] += h->counts[b];
    into->total += h->total;
    if (h->max_ns > into->max_ns)
        into->max_ns = h->max_ns;
}

static uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total);
    uint64_t seen = 0;
    for (uint32_t b = 0; b < HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= rank && seen > 0)
            return hist_value(b) < h->max_ns ? hist_value(b) : h->max_ns;
    }
    return h->max_ns;
}

/* ---- one HTTP exchange ---- */

static size_t body_write(char *data, size_t size, size_t n, void *arg)
{
    struct client *c = arg;
    size_t len = size * n;
    if (c->body_len + len > c->body_cap) {
        c->body_overflow = true; /* keep draining so the connection stays usable */
        return len;
    }
    memcpy(c->body + c->body_len, data, len);
    c->body_len += len;
    return len;
}

static bool refused_as_such(long code)
{
    return code == 400 || code == 405 || code == 413 || code == 414 || code == 431;
}

/* Performs one request on `url` with what remains of the operation's time. Returns the
 * HTTP status, or 0 when no interpretable answer came (timeout, reset, refused). */
static long http_once(struct client *c, const char *url, int kind, uint64_t op_deadline_ns)
{
    uint64_t t = now_ns();
    if (t >= op_deadline_ns)
        return 0;
    long left_ms = (long)((op_deadline_ns - t) / 1000000u) + 1;
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, left_ms);
    if (kind == OP_PUT) {
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, c->value);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(c->value));
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, "PUT");
    } else {
        curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, NULL);
    }
    c->body_len = 0;
    c->body_overflow = false;
    if (curl_easy_perform(c->curl) != CURLE_OK)
        return 0;
    long code = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* Runs one operation to its outcome, following leader redirects. */
static int http_op(struct client *c, const char *key, int kind, uint64_t call_ns)
{
    char url[URL_BYTES_MAX];
    snprintf(url, sizeof url, "%s/%s%s", cfg.endpoints[c->endpoint], key,
             kind == OP_GET && cfg.serializable ? "?serializable=true" : "");
    uint64_t op_deadline_ns = call_ns + (uint64_t)cfg.timeout_ms * 1000000u;
    for (int hop = 0; hop <= REDIRECTS_MAX; hop++) {
        long code = http_once(c, url, kind, op_deadline_ns);
        if (code == 307) {
            char *location = NULL;
            curl_easy_getinfo(c->curl, CURLINFO_REDIRECT_URL, &location);
            if (!location || strlen(location) >= sizeof url)
                return ST_TIMEOUT;
            snprintf(url, sizeof url, "%s", location);
            c->redirects_count++;
            continue;
        }
        if (c->body_overflow)
            return ST_TIMEOUT;
        if (kind == OP_PUT && code >= 200 && code < 300)
            return ST_OK;
        if (kind == OP_GET && (code == 200 || code == 404))
            return ST_OK;
        return refused_as_such(code) ? ST_ERROR : ST_TIMEOUT;
    }
    return ST_TIMEOUT; /* a redirect loop: nothing is known */
}

/* ---- the history ---- */

/* Writes s as a JSON string body: quotes, backslashes and control bytes escaped. */
static void json_string(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void record(struct client *c, int kind, const char *key, int status, uint64_t call_ns,
                   uint64_t ret_ns, long get_found)
{
    if (!history)
        return;
    /* One locked stream for the whole line, so lines from clients never interleave. */
    flockfile(history);
    fprintf(history, "{\"client\":%u,\"op\":\"%s\",\"key\":", c->id, op_names[kind]);
    json_string(history, key, strlen(key));
    fputs(",\"value\":", history);
    if (kind == OP_PUT)
        json_string(history, c->value, strlen(c->value));
    else if (status == ST_OK && get_found)
        json_string(history, c->body, c->body_len);
    else
        fputs("null", history);
    fprintf(history, ",\"call\":%" PRIu64 ",\"ret\":%" PRIu64 ",\"status\":\"%s\"}\n", call_ns,
            ret_ns, status_names[status]);
    funlockfile(history);
}

/* ---- clients ---- */

/* The id always fits (value_bytes + 32 bytes are allocated): a value shorter than its id
 * would not be unique, so --value-bytes is a minimum. */
static void make_value(struct client *c)
{
    int n = snprintf(c->value, 32, "c%u-%" PRIu64, c->id, ++c->seq);
    /* Padding with a non-digit keeps values unique whatever their ids' lengths. */
    for (size_t i = (size_t)n; i < cfg.value_bytes; i++)
        c->value[i] = '.';
    if ((size_t)n < cfg.value_bytes)
        c->value[cfg.value_bytes] = '\0';
}

static void client_op(struct client *c)
{
    char key[32];
    snprintf(key, sizeof key, "k%" PRIu64, rng_next(&c->rng) % cfg.keys_count);
    int kind =
        (double)(rng_next(&c->rng) >> 11) / 9007199254740992.0 < cfg.put_ratio ? OP_PUT : OP_GET;
    if (kind == OP_PUT)
        make_value(c);
    uint64_t call_ns = now_ns();
    int status = http_op(c, key, kind, call_ns);
    uint64_t ret_ns = now_ns();
    long code = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
    record(c, kind, key, status, call_ns, ret_ns, code == 200);
    c->outcomes[kind][status]++;
    if (status == ST_OK)
        hist_add(&c->latency[kind], ret_ns - call_ns);
    if (status == ST_TIMEOUT) {
        c->endpoint = (c->endpoint + 1) % cfg.endpoints_count;
        struct timespec pause = {0, (long)BACKOFF_NS};
        nanosleep(&pause, NULL);
    }
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    while (!atomic_load_explicit(&stopping, memory_order_relaxed) && now_ns() < deadline_ns)
        client_op(c);
    return NULL;
}

static int client_init(struct client *c, uint32_t id)
{
    memset(c, 0, sizeof *c);
    c->id = id;
    c->endpoint = id % cfg.endpoints_count;
    c->rng = cfg.seed * 0x9E3779B97F4A7C15ull + id + 1;
    c->rng = c->rng ? c->rng : 1;
    /* A get answers with a value some put wrote: room for the largest plus slack. */
    c->body_cap = (size_t)cfg.value_bytes + 4096;
    c->body = malloc(c->body_cap);
    c->value = malloc((size_t)cfg.value_bytes + 32);
    c->curl = curl_easy_init();
    /* No 100-continue round trip before large values; the body is bytes, not a form. */
    c->headers = curl_slist_append(NULL, "Expect:");
    if (c->headers)
        c->headers = curl_slist_append(c->headers, "Content-Type: application/octet-stream");
    if (!c->body || !c->value || !c->curl || !c->headers)
        return -ENOMEM;
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L); /* followed by hand, bounded */
    curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg.timeout_ms);
    return 0;
}

static void client_free(struct client *c)
{
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c->body);
    free(c->value);
}

/* ---- report ---- */

static const double percentiles[] = {50, 90, 99, 99.9};
static const char *const percentile_names[] = {"p50", "p90", "p99", "p99.9"};

static void report_text(const struct hist *lat, const uint64_t (*outcomes)[STATUSES],
                        uint64_t redirects, double elapsed_s)
{
    printf("rrkv-load: %u clients, %u keys, %.1f s, put ratio %.2f, %u-byte values, %u "
           "endpoints, %" PRIu64 " redirects followed\n",
           cfg.clients_count, cfg.keys_count, elapsed_s, cfg.put_ratio, cfg.value_bytes,
           cfg.endpoints_count, redirects);
    printf("%-4s %10s %8s %8s %10s %9s %9s %9s %9s %9s  (latency of ok ops, ms)\n", "op", "ok",
           "timeout", "error", "ok/s", "p50", "p90", "p99", "p99.9", "max");
    for (int k = 0; k < OPS_KINDS; k++) {
        printf("%-4s %10" PRIu64 " %8" PRIu64 " %8" PRIu64 " %10.1f", op_names[k],
               outcomes[k][ST_OK], outcomes[k][ST_TIMEOUT], outcomes[k][ST_ERROR],
               (double)outcomes[k][ST_OK] / elapsed_s);
        for (int p = 0; p < 4; p++)
            printf(" %9.3f", (double)hist_percentile(&lat[k], percentiles[p]) / 1e6);
        printf(" %9.3f\n", (double)lat[k].max_ns / 1e6);
    }
}

static void report_json(const struct hist *lat, const uint64_t (*outcomes)[STATUSES],
                        uint64_t redirects, double elapsed_s)
{
    printf("{\"clients\":%u,\"keys\":%u,\"elapsed_s\":%.3f,\"put_ratio\":%.3f,"
           "\"value_bytes\":%u,\"redirects\":%" PRIu64,
           cfg.clients_count, cfg.keys_count, elapsed_s, cfg.put_ratio, cfg.value_bytes, redirects);
    for (int k = 0; k < OPS_KINDS; k++) {
        printf(",\"%s\":{\"ok\":%" PRIu64 ",\"timeout\":%" PRIu64 ",\"error\":%" PRIu64
               ",\"ok_per_s\":%.1f,\"latency_ns\":{",
               op_names[k], outcomes[k][ST_OK], outcomes[k][ST_TIMEOUT], outcomes[k][ST_ERROR],
               (double)outcomes[k][ST_OK] / elapsed_s);
        for (int p = 0; p < 4; p++)
            printf("\"%s\":%" PRIu64 ",", percentile_names[p],
                   hist_percentile(&lat[k], percentiles[p]));
        printf("\"max\":%" PRIu64 "}}", lat[k].max_ns);
    }
    printf("}\n");
}

static int report(struct client *clients, double elapsed_s)
{
    static struct hist lat[OPS_KINDS];
    uint64_t outcomes[OPS_KINDS][STATUSES] = {{0}};
    uint64_t redirects = 0;
    for (uint32_t i = 0; i < cfg.clients_count; i++) {
        for (int k = 0; k < OPS_KINDS; k++) {
            hist_merge(&lat[k], &clients[i].latency[k]);
            for (int s = 0; s < STATUSES; s++)
                outcomes[k][s] += clients[i].outcomes[k][s];
        }
        redirects += clients[i].redirects_count;
    }
    if (cfg.json)
        report_json(lat, (const uint64_t(*)[STATUSES])outcomes, redirects, elapsed_s);
    else
        report_text(lat, (const uint64_t(*)[STATUSES])outcomes, redirects, elapsed_s);
    return outcomes[OP_GET][ST_OK] + outcomes[OP_PUT][ST_OK] > 0 ? 0 : 1;
}

/* ---- options ---- */

static void usage(void)
{
    fprintf(stderr,
            "usage: rrkv-load --endpoints URL[,URL...] [--clients C] [--keys K] [--duration S]\n"
            "                 [--put-ratio R] [--value-bytes N] [--timeout-ms T] [--history FILE]\n"
            "                 [--serializable] [--seed N] [--json]\n"
            "exit: 0 done, 1 no operation succeeded or a run-time failure, 2 usage\n");
}

static bool parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

static bool parse_endpoints(char *list)
{
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (cfg.endpoints_count == ENDPOINTS_MAX || strncmp(tok, "http://", 7) != 0)
            return false;
        size_t len = strlen(tok);
        while (len > 7 && tok[len - 1] == '/')
            tok[--len] = '\0';
        cfg.endpoints[cfg.endpoints_count++] = tok;
    }
    return cfg.endpoints_count > 0;
}

static bool parse_option(const char *opt, char *arg)
{
    uint32_t seed32;
    if (strcmp(opt, "--endpoints") == 0)
        return parse_endpoints(arg);
    if (strcmp(opt, "--clients") == 0)
        return parse_u32(arg, 1, CLIENTS_MAX, &cfg.clients_count);
    if (strcmp(opt, "--keys") == 0)
        return parse_u32(arg, 1, KEYS_MAX, &cfg.keys_count);
    if (strcmp(opt, "--duration") == 0)
        return parse_double(arg, 0.001, 86400, &cfg.duration_s);
    if (strcmp(opt, "--put-ratio") == 0)
        return parse_double(arg, 0, 1, &cfg.put_ratio);
    if (strcmp(opt, "--value-bytes") == 0)
        return parse_u32(arg, 1, VALUE_BYTES_MAX, &cfg.value_bytes);
    if (strcmp(opt, "--timeout-ms") == 0)
        return parse_u32(arg, 1, 3600000, &cfg.timeout_ms);
    if (strcmp(opt, "--history") == 0) {
        cfg.history_path = arg;
        return true;
    }
    if (strcmp(opt, "--seed") == 0 && parse_u32(arg, 0, UINT32_MAX, &seed32)) {
        cfg.seed = seed32;
        return true;
    }
    return false;
}

static bool parse_args(int argc, char **argv)
{
    cfg = (struct config){.clients_count = 10,
                          .keys_count = 10,
                          .duration_s = 10,
                          .put_ratio = 0.5,
                          .value_bytes = 16,
                          .timeout_ms = 1000,
                          .seed = 1};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            cfg.json = true;
        else if (strcmp(argv[i], "--serializable") == 0)
            cfg.serializable = true;
        else if (i + 1 >= argc || !parse_option(argv[i], argv[i + 1]))
            return false;
        else
            i++;
    }
    return cfg.endpoints_count > 0;
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stopping, true); /* clients finish their current operation */
}

static int run(struct client *clients)
{
    uint32_t started = 0;
    int rc = 0;
    uint64_t start_ns = now_ns();
    deadline_ns = start_ns + (uint64_t)(cfg.duration_s * 1e9);
    for (; started < cfg.clients_count && rc == 0; started++) {
        rc = client_init(&clients[started], started);
        if (rc == 0)
            rc = -pthread_create(&clients[started].thread, NULL, client_main, &clients[started]);
        if (rc != 0)
            break;
    }
    if (rc != 0) {
        fprintf(stderr, "rrkv-load: starting client %u: %s\n", started, strerror(-rc));
        atomic_store(&stopping, true);
    }
    for (uint32_t i = 0; i < started; i++)
        pthread_join(clients[i].thread, NULL);
    double elapsed_s = (double)(now_ns() - start_ns) / 1e9;
    if (rc == 0)
        rc = report(clients, elapsed_s);
    for (uint32_t i = 0; i <= started && i < cfg.clients_count; i++)
        client_free(&clients[i]);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (!parse_args(argc, argv)) {
        usage();
        return 2;
    }
    if (cfg.history_path) {
        history = fopen(cfg.history_path, "w");
        if (!history) {
            fprintf(stderr, "rrkv-load: %s: %s\n", cfg.history_path, strerror(errno));
            return 1;
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "rrkv-load: curl_global_init failed\n");
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct client *clients = calloc(cfg.clients_count, sizeof *clients);
    int rc = clients ? run(clients) : 1;
    free(clients);
    curl_global_cleanup();
    if (history && fclose(history) != 0) {
        fprintf(stderr, "rrkv-load: %s: %s\n", cfg.history_path, strerror(errno));
        rc = 1;
    }
    return rc;
}
