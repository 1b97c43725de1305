/* rrkv-fake: a single-process stand-in for rrkv's HTTP API, to test rrkv-load and
 * rrkv-check without a cluster. Not a server to use: it exists to be right, or wrong in
 * one chosen way.
 *
 *   rrkv-fake --port-file FILE [--port P] [--mode MODE] [--leader URL] [--lifetime-s S]
 *
 * Modes:
 *   good    PUT/GET on one map under a mutex: trivially linearizable.
 *   stale   GET reads a copy of the map refreshed every STALE_LAG_NS: stale reads, which
 *           rrkv-check must catch.
 *   flaky   like good, but 10% of PUTs are applied and answered 503 (a lost reply), 10%
 *           are answered 503 without being applied, and 10% of GETs are answered 503: the
 *           history stays linearizable only if `timeout` is handled as "maybe".
 *   --leader URL: answer every request with 307 and Location URL/<key> (a follower).
 *
 * Listens on 127.0.0.1 only; with --port 0 (the default) the kernel picks a free port,
 * which is written to the port file once the server accepts connections. Exits on
 * SIGTERM/SIGINT or after --lifetime-s (default 60), so a failed test never leaves it
 * behind.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUCKETS_COUNT  4096u
#define ENTRIES_MAX    (1u << 20)
#define BODY_BYTES_MAX (1u << 16) /* the fake answers 413 above */
#define URL_BYTES_MAX  1024u
#define STALE_LAG_NS   50000000ull /* 50 ms, far longer than a loopback round trip */

enum { MODE_GOOD, MODE_STALE, MODE_FLAKY };

struct entry {
    struct entry *next;
    char *key;
    char *value;
};

struct map {
    struct entry *buckets[BUCKETS_COUNT];
    uint32_t entries_count;
};

struct upload {
    char *body;
    size_t len;
    bool too_large;
};

static int mode = MODE_GOOD;
static const char *leader_url;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* guards both maps, rng, sync time */
static struct map primary;
static struct map replica; /* stale mode: what GET sees */
static uint64_t replica_synced_ns;
static uint64_t rng = 88172645463325252ull;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t percent_locked(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % 100);
}

static uint32_t bucket_of(const char *key)
{
    uint32_t h = 2166136261u;
    for (; *key; key++)
        h = (h ^ (uint8_t)*key) * 16777619u;
    return h % BUCKETS_COUNT;
}

static struct entry *map_find(struct map *m, const char *key)
{
    for (struct entry *e = m->buckets[bucket_of(key)]; e; e = e->next) {
        if (strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

/* Returns 0, -ENOBUFS when full, or -ENOMEM. */
static int map_set(struct map *m, const char *key, const char *value)
{
    struct entry *e = map_find(m, key);
    char *v = strdup(value);
    if (!v)
        return -ENOMEM;
    if (e) {
        free(e->value);
        e->value = v;
        return 0;
    }
    if (m->entries_count == ENTRIES_MAX) {
        free(v);
        return -ENOBUFS;
    }
    e = calloc(1, sizeof *e);
    char *k = strdup(key);
    if (!e || !k) {
        free(e);
        free(k);
        free(v);
        return -ENOMEM;
    }
    *e = (struct entry){.next = m->buckets[bucket_of(key)], .key = k, .value = v};
    m->buckets[bucket_of(key)] = e;
    m->entries_count++;
    return 0;
}

static void replica_sync_locked(void)
{
    for (uint32_t b = 0; b < BUCKETS_COUNT; b++) {
        for (struct entry *e = primary.buckets[b]; e; e = e->next)
            map_set(&replica, e->key, e->value); /* a failed copy only makes it staler */
    }
    replica_synced_ns = now_ns();
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *body,
                             size_t len, const char *location)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (location)
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_line(struct MHD_Connection *conn, unsigned code, const char *line)
{
    return reply(conn, code, line, strlen(line), NULL);
}

static enum MHD_Result do_get(struct MHD_Connection *conn, const char *key)
{
    pthread_mutex_lock(&lock);
    if (mode == MODE_FLAKY && percent_locked() < 10) {
        pthread_mutex_unlock(&lock);
        return reply_line(conn, 503, "no leader\n");
    }
    struct map *m = &primary;
    if (mode == MODE_STALE) {
        if (now_ns() - replica_synced_ns > STALE_LAG_NS)
            replica_sync_locked();
        m = &replica;
    }
    struct entry *e = map_find(m, key);
    enum MHD_Result ret = e ? reply(conn, 200, e->value, strlen(e->value), NULL)
                            : reply_line(conn, 404, "key not found\n");
    pthread_mutex_unlock(&lock);
    return ret;
}

static enum MHD_Result do_put(struct MHD_Connection *conn, const char *key, struct upload *up)
{
    if (up->too_large)
        return reply_line(conn, 413, "value too large\n");
    up->body[up->len] = '\0';
    if (strlen(up->body) != up->len)
        return reply_line(conn, 400, "NUL byte in value\n");
    pthread_mutex_lock(&lock);
    uint32_t dice = mode == MODE_FLAKY ? percent_locked() : 100;
    int rc = dice < 10 ? 0 : map_set(&primary, key, up->body);
    pthread_mutex_unlock(&lock);
    if (rc != 0)
        return reply_line(conn, 503, "out of memory\n");
    if (dice < 20)
        return reply_line(conn, 503, "no leader\n"); /* applied (10..19) or not (0..9) */
    return reply(conn, 204, "", 0, NULL);
}

/* Collects a PUT body across calls; returns true once it is complete. */
static bool upload_collect(struct upload *up, const char *data, size_t *size)
{
    if (*size == 0)
        return true;
    if (up->len + *size > BODY_BYTES_MAX) {
        up->too_large = true;
    } else {
        memcpy(up->body + up->len, data, *size);
        up->len += *size;
    }
    *size = 0;
    return false;
}

static enum MHD_Result redirect(struct MHD_Connection *conn, const char *url)
{
    char location[URL_BYTES_MAX];
    const char *query = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "serializable");
    snprintf(location, sizeof location, "%s%s%s", leader_url, url,
             query ? "?serializable=true" : "");
    return reply(conn, 307, "not leader\n", 11, location);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)cls;
    (void)version;
    bool put = strcmp(method, "PUT") == 0;
    if (put && !*con_cls) {
        struct upload *up = calloc(1, sizeof *up);
        if (!up || !(up->body = malloc(BODY_BYTES_MAX + 1))) {
            free(up);
            return MHD_NO;
        }
        *con_cls = up;
        return MHD_YES;
    }
    if (put && !upload_collect(*con_cls, data, size))
        return MHD_YES;
    if (leader_url)
        return redirect(conn, url);
    if (url[0] != '/' || url[1] == '\0')
        return reply_line(conn, 400, "missing key\n");
    if (put)
        return do_put(conn, url + 1, *con_cls);
    if (strcmp(method, "GET") == 0)
        return do_get(conn, url + 1);
    return reply_line(conn, 405, "method not allowed\n");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct upload *up = *con_cls;
    if (up)
        free(up->body);
    free(up);
    *con_cls = NULL;
}

static int write_port_file(const char *path, unsigned port)
{
    char tmp[URL_BYTES_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0)
        return -errno;
    return rename(tmp, path) == 0 ? 0 : -errno; /* readers never see a partial file */
}

static void usage(void)
{
    fprintf(stderr, "usage: rrkv-fake --port-file FILE [--port P] [--mode good|stale|flaky]\n"
                    "                 [--leader URL] [--lifetime-s S]\n");
}

int main(int argc, char **argv)
{
    const char *port_file = NULL;
    unsigned port = 0, lifetime_s = 60;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port-file") == 0)
            port_file = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--lifetime-s") == 0)
            lifetime_s = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--leader") == 0)
            leader_url = argv[i + 1];
        else if (strcmp(argv[i], "--mode") == 0 && strcmp(argv[i + 1], "good") == 0)
            mode = MODE_GOOD;
        else if (strcmp(argv[i], "--mode") == 0 && strcmp(argv[i + 1], "stale") == 0)
            mode = MODE_STALE;
        else if (strcmp(argv[i], "--mode") == 0 && strcmp(argv[i + 1], "flaky") == 0)
            mode = MODE_FLAKY;
        else
            port_file = NULL, i = argc; /* unknown option: usage */
    }
    if (!port_file || port > 65535 || (argc - 1) % 2 != 0) {
        usage();
        return 2;
    }
    /* Block the stop signals before MHD starts its threads, so only sigtimedwait sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "rrkv-fake: cannot listen on 127.0.0.1:%u\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int rc = info ? write_port_file(port_file, info->port) : -EINVAL;
    if (rc != 0) {
        fprintf(stderr, "rrkv-fake: %s: %s\n", port_file, strerror(-rc));
        MHD_stop_daemon(d);
        return 1;
    }
    struct timespec lifetime = {.tv_sec = (time_t)lifetime_s};
    sigtimedwait(&stop, NULL, &lifetime);
    MHD_stop_daemon(d);
    return 0;
}
