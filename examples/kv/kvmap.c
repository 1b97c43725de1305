/* kvmap.c: rrkv's state machine (formats and threads in kvmap.h). */
#include "kvmap.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS_MIN 1024u

typedef struct pair {
    struct pair *next;
    uint64_t hash;
    uint32_t key_len;
    uint32_t val_len;
    uint8_t *val;
    char key[]; /* key_len bytes, not terminated */
} pair;

typedef struct member {
    rr_node_id_t id; /* RR_NODE_ID_NONE: free */
    bool removed;
    char addr[KV_ADDR_BYTES_MAX];
} member;

struct kvmap {
    pthread_rwlock_t lock; /* writer: the apply thread; readers: HTTP threads */
    pair **buckets;
    uint64_t n_buckets; /* power of two */
    uint64_t n_pairs;
    member members[KV_MEMBERS_MAX];
    kvmap_member_fn on_member;
    void *ctx;
};

typedef struct snap_buf {
    rr_buf hdr;
    uint64_t len;
    uint8_t data[];
} snap_buf;

/* ---- little-endian helpers ---- */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t hash_bytes(const char *p, uint32_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint32_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- the map ---- */

int kvmap_new(kvmap **out, kvmap_member_fn on_member, void *ctx)
{
    kvmap *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    m->buckets = calloc(BUCKETS_MIN, sizeof(pair *));
    if (m->buckets == NULL) {
        free(m);
        return -ENOMEM;
    }
    m->n_buckets = BUCKETS_MIN;
    m->on_member = on_member;
    m->ctx = ctx;
    pthread_rwlock_init(&m->lock, NULL);
    *out = m;
    return 0;
}

static void pairs_clear(kvmap *m)
{
    for (uint64_t b = 0; b < m->n_buckets; b++) {
        pair *p = m->buckets[b];
        while (p != NULL) {
            pair *next = p->next;
            free(p->val);
            free(p);
            p = next;
        }
        m->buckets[b] = NULL;
    }
    m->n_pairs = 0;
}

void kvmap_free(kvmap *m)
{
    if (m == NULL)
        return;
    pairs_clear(m);
    free(m->buckets);
    pthread_rwlock_destroy(&m->lock);
    free(m);
}

static pair **slot_of(kvmap *m, const char *key, uint32_t key_len, uint64_t h)
{
    pair **pp = &m->buckets[h & (m->n_buckets - 1)];
    while (*pp != NULL) {
        pair *p = *pp;
        if (p->hash == h && p->key_len == key_len && memcmp(p->key, key, key_len) == 0)
            return pp;
        pp = &p->next;
    }
    return pp;
}

/* Doubles the table when it holds more pairs than buckets (writer, under the lock). A
 * failed allocation keeps the old table: longer chains, still correct. */
static void grow(kvmap *m)
{
    if (m->n_pairs <= m->n_buckets)
        return;
    uint64_t n = m->n_buckets * 2;
    pair **nb = calloc(n, sizeof(pair *));
    if (nb == NULL)
        return;
    for (uint64_t b = 0; b < m->n_buckets; b++) {
        pair *p = m->buckets[b];
        while (p != NULL) {
            pair *next = p->next;
            p->next = nb[p->hash & (n - 1)];
            nb[p->hash & (n - 1)] = p;
            p = next;
        }
    }
    free(m->buckets);
    m->buckets = nb;
    m->n_buckets = n;
}

/* Sets key to val (writer, under the lock). Returns 0 or -ENOMEM (the old value stays). */
static int pair_set(kvmap *m, const char *key, uint32_t key_len, const uint8_t *val,
                    uint32_t val_len)
{
    uint8_t *copy = malloc(val_len > 0 ? val_len : 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, val, val_len);
    uint64_t h = hash_bytes(key, key_len);
    pair **pp = slot_of(m, key, key_len, h);
    if (*pp != NULL) {
        free((*pp)->val);
        (*pp)->val = copy;
        (*pp)->val_len = val_len;
        return 0;
    }
    pair *p = malloc(sizeof(*p) + key_len);
    if (p == NULL) {
        free(copy);
        return -ENOMEM;
    }
    *p = (pair){.hash = h, .key_len = key_len, .val_len = val_len, .val = copy};
    memcpy(p->key, key, key_len);
    *pp = p;
    m->n_pairs++;
    grow(m);
    return 0;
}

static member *member_slot(kvmap *m, rr_node_id_t id, bool create)
{
    member *free_slot = NULL;
    for (uint32_t i = 0; i < KV_MEMBERS_MAX; i++) {
        if (m->members[i].id == id)
            return &m->members[i];
        if (m->members[i].id == RR_NODE_ID_NONE && free_slot == NULL)
            free_slot = &m->members[i];
    }
    if (!create || free_slot == NULL)
        return NULL;
    *free_slot = (member){.id = id};
    return free_slot;
}

static void member_tell(kvmap *m, const member *mb)
{
    if (m->on_member == NULL)
        return;
    kv_member k = {.id = mb->id, .removed = mb->removed};
    memcpy(k.addr, mb->addr, sizeof k.addr);
    m->on_member(m->ctx, &k);
}

/* ---- commands ---- */

uint32_t kvmap_encode_put(uint8_t *out, const char *key, uint32_t key_len, const uint8_t *val,
                          uint32_t val_len)
{
    out[0] = 'P';
    put_u32(out + 1, key_len);
    memcpy(out + KV_CMD_HEADER_BYTES, key, key_len);
    if (val_len > 0)
        memcpy(out + KV_CMD_HEADER_BYTES + key_len, val, val_len);
    return KV_CMD_HEADER_BYTES + key_len + val_len;
}

uint32_t kvmap_encode_member(uint8_t *out, rr_node_id_t id, const char *addr)
{
    size_t n = strnlen(addr, KV_ADDR_BYTES_MAX - 1);
    out[0] = 'M';
    put_u64(out + 1, id);
    memcpy(out + 9, addr, n);
    return 9 + (uint32_t)n;
}

uint32_t kvmap_encode_remove(uint8_t *out, rr_node_id_t id)
{
    out[0] = 'R';
    put_u64(out + 1, id);
    return 9;
}

static void apply_one(kvmap *m, const rr_entry *e)
{
    const uint8_t *d = e->data;
    uint32_t n = e->data_len;
    if (d[0] == 'P' && n >= KV_CMD_HEADER_BYTES) {
        uint32_t key_len = get_u32(d + 1);
        if (key_len == 0 || key_len > n - KV_CMD_HEADER_BYTES || key_len > KV_KEY_BYTES_MAX)
            goto bad;
        const char *key = (const char *)d + KV_CMD_HEADER_BYTES;
        if (pair_set(m, key, key_len, d + KV_CMD_HEADER_BYTES + key_len,
                     n - KV_CMD_HEADER_BYTES - key_len) != 0) {
            /* The replica would diverge from the others: stopping is the only safe move. */
            fprintf(stderr, "rrkv: out of memory applying entry %" PRIu64 "\n", e->index);
            abort();
        }
        return;
    }
    if ((d[0] == 'M' || d[0] == 'R') && n >= 9 && n - 9 < KV_ADDR_BYTES_MAX) {
        rr_node_id_t id = get_u64(d + 1);
        member *mb = member_slot(m, id, true);
        if (id == RR_NODE_ID_NONE || mb == NULL)
            goto bad;
        mb->removed = d[0] == 'R';
        if (d[0] == 'M') {
            memset(mb->addr, 0, sizeof mb->addr);
            memcpy(mb->addr, d + 9, n - 9);
        }
        member_tell(m, mb);
        return;
    }
bad:
    fprintf(stderr, "rrkv: skipping malformed entry %" PRIu64 " (%u bytes)\n", e->index, n);
}

void kvmap_apply(kvmap *m, const rr_entry *ents, size_t n)
{
    pthread_rwlock_wrlock(&m->lock);
    for (size_t i = 0; i < n; i++)
        if (ents[i].type == RR_ENTRY_NORMAL && ents[i].data_len > 0) /* empty: new leader */
            apply_one(m, &ents[i]);
    pthread_rwlock_unlock(&m->lock);
}

int kvmap_get(kvmap *m, const char *key, uint32_t key_len, uint8_t **val, uint32_t *val_len)
{
    int rc = 0;
    pthread_rwlock_rdlock(&m->lock);
    pair *p = *slot_of(m, key, key_len, hash_bytes(key, key_len));
    if (p != NULL) {
        *val = malloc(p->val_len > 0 ? p->val_len : 1);
        rc = *val == NULL ? -ENOMEM : 1;
        if (rc == 1) {
            memcpy(*val, p->val, p->val_len);
            *val_len = p->val_len;
        }
    }
    pthread_rwlock_unlock(&m->lock);
    return rc;
}

bool kvmap_removed(kvmap *m, rr_node_id_t id)
{
    pthread_rwlock_rdlock(&m->lock);
    member *mb = member_slot(m, id, false);
    bool removed = mb != NULL && mb->removed;
    pthread_rwlock_unlock(&m->lock);
    return removed;
}

bool kvmap_member_addr(kvmap *m, rr_node_id_t id, char *addr)
{
    pthread_rwlock_rdlock(&m->lock);
    member *mb = member_slot(m, id, false);
    bool known = mb != NULL && mb->addr[0] != '\0';
    if (known)
        memcpy(addr, mb->addr, KV_ADDR_BYTES_MAX);
    pthread_rwlock_unlock(&m->lock);
    return known;
}

uint64_t kvmap_count(kvmap *m)
{
    pthread_rwlock_rdlock(&m->lock);
    uint64_t n = m->n_pairs;
    pthread_rwlock_unlock(&m->lock);
    return n;
}

/* ---- snapshots ---- */

static void snap_release(rr_buf *b)
{
    free(b);
}

int kvmap_save(kvmap *m, rr_buf **buf, const uint8_t **data, uint64_t *len)
{
    pthread_rwlock_rdlock(&m->lock);
    uint64_t total = 4 + 4 + 8 + 4;
    for (uint64_t b = 0; b < m->n_buckets; b++)
        for (pair *p = m->buckets[b]; p != NULL; p = p->next)
            total += 8 + (uint64_t)p->key_len + p->val_len;
    total += (uint64_t)KV_MEMBERS_MAX * (8 + 1 + 1 + KV_ADDR_BYTES_MAX);
    snap_buf *s = malloc(sizeof(*s) + total);
    if (s == NULL) {
        pthread_rwlock_unlock(&m->lock);
        return -ENOMEM;
    }
    uint8_t *w = s->data;
    put_u32(w, KV_SNAPSHOT_MAGIC);
    put_u32(w + 4, KV_SNAPSHOT_VERSION);
    put_u64(w + 8, m->n_pairs);
    w += 16;
    for (uint64_t b = 0; b < m->n_buckets; b++) {
        for (pair *p = m->buckets[b]; p != NULL; p = p->next) {
            put_u32(w, p->key_len);
            put_u32(w + 4, p->val_len);
            memcpy(w + 8, p->key, p->key_len);
            memcpy(w + 8 + p->key_len, p->val, p->val_len);
            w += 8 + (uint64_t)p->key_len + p->val_len;
        }
    }
    uint8_t *count = w;
    uint32_t n_members = 0;
    w += 4;
    for (uint32_t i = 0; i < KV_MEMBERS_MAX; i++) {
        const member *mb = &m->members[i];
        if (mb->id == RR_NODE_ID_NONE)
            continue;
        uint8_t alen = (uint8_t)strnlen(mb->addr, KV_ADDR_BYTES_MAX - 1);
        put_u64(w, mb->id);
        w[8] = mb->removed ? 1 : 0;
        w[9] = alen;
        memcpy(w + 10, mb->addr, alen);
        w += 10 + alen;
        n_members++;
    }
    put_u32(count, n_members);
    pthread_rwlock_unlock(&m->lock);
    s->hdr = (rr_buf){.refs = 1, .release = snap_release};
    s->len = (uint64_t)(w - s->data);
    *buf = &s->hdr;
    *data = s->data;
    *len = s->len;
    return 0;
}

/* Parses a snapshot into m (empty beforehand). Returns 0 or -EINVAL (truncated, bad). */
static int restore_parse(kvmap *m, const uint8_t *d, uint64_t len)
{
    if (len < 16 || get_u32(d) != KV_SNAPSHOT_MAGIC || get_u32(d + 4) != KV_SNAPSHOT_VERSION)
        return -EINVAL;
    uint64_t n_pairs = get_u64(d + 8), off = 16;
    for (uint64_t i = 0; i < n_pairs; i++) {
        if (len - off < 8)
            return -EINVAL;
        uint32_t kl = get_u32(d + off), vl = get_u32(d + off + 4);
        if (kl == 0 || kl > KV_KEY_BYTES_MAX || vl > KV_VALUE_BYTES_MAX ||
            len - off - 8 < (uint64_t)kl + vl)
            return -EINVAL;
        if (pair_set(m, (const char *)d + off + 8, kl, d + off + 8 + kl, vl) != 0)
            return -ENOMEM;
        off += 8 + (uint64_t)kl + vl;
    }
    if (len - off < 4)
        return -EINVAL;
    uint32_t n_members = get_u32(d + off);
    off += 4;
    for (uint32_t i = 0; i < n_members; i++) {
        if (len - off < 10 || d[off + 9] >= KV_ADDR_BYTES_MAX || len - off - 10 < d[off + 9])
            return -EINVAL;
        member *mb = member_slot(m, get_u64(d + off), true);
        if (mb == NULL || mb->id == RR_NODE_ID_NONE)
            return -EINVAL;
        mb->removed = d[off + 8] != 0;
        memset(mb->addr, 0, sizeof mb->addr);
        memcpy(mb->addr, d + off + 10, d[off + 9]);
        off += 10 + (uint64_t)d[off + 9];
    }
    return off == len ? 0 : -EINVAL;
}

int kvmap_restore(kvmap *m, const uint8_t *data, uint64_t len)
{
    pthread_rwlock_wrlock(&m->lock);
    pairs_clear(m);
    memset(m->members, 0, sizeof m->members);
    /* Empty: the bootstrap snapshot every node starts from (no state yet). */
    int rc = len == 0 ? 0 : restore_parse(m, data, len);
    if (rc == 0)
        for (uint32_t i = 0; i < KV_MEMBERS_MAX; i++)
            if (m->members[i].id != RR_NODE_ID_NONE)
                member_tell(m, &m->members[i]);
    pthread_rwlock_unlock(&m->lock);
    if (rc != 0)
        fprintf(stderr, "rrkv: snapshot of %" PRIu64 " bytes is malformed\n", len);
    return rc;
}
