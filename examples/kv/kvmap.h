/*
 * kvmap.h: rrkv's state machine — a hash map of byte-string keys to byte-string values,
 * plus the cluster's member addresses and removed ids, and the entry and snapshot formats
 * that change it.
 *
 * Threads: one writer (the node's apply thread: kvmap_apply, kvmap_restore) and any number
 * of readers (HTTP threads: kvmap_get); a rwlock orders them. kvmap_save runs on the
 * writer's thread.
 *
 * Entry format (little-endian, one command per log entry):
 *   'P' u32 key_len, key, value (the rest)   put
 *   'M' u64 id, address (the rest)           member id listens at "host:port" (clears removal)
 *   'R' u64 id                               member id is being removed (it stops serving)
 * Snapshot format: "RRKV" u32 version=1, u64 n_pairs, n_pairs x (u32 key_len, u32 value_len,
 * key, value), u32 n_members, n_members x (u64 id, u8 removed, u8 addr_len, addr).
 */
#ifndef RRKV_KVMAP_H
#define RRKV_KVMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringraft/core.h"

#define KV_KEY_BYTES_MAX    1024u      /* documented in README: 414 above */
#define KV_VALUE_BYTES_MAX  (1u << 20) /* documented in README: 413 above */
#define KV_ADDR_BYTES_MAX   64u        /* "host:port" of a member */
#define KV_MEMBERS_MAX      RR_NODES_MAX
#define KV_SNAPSHOT_MAGIC   0x564b5252u /* "RRKV" */
#define KV_SNAPSHOT_VERSION 1u
#define KV_CMD_HEADER_BYTES 5u /* 'P' + u32 key_len */
#define KV_CMD_BYTES_MAX    (KV_CMD_HEADER_BYTES + KV_KEY_BYTES_MAX + KV_VALUE_BYTES_MAX)
_Static_assert(KV_CMD_BYTES_MAX <= RR_ENTRY_BYTES_MAX, "a put fits one entry");

typedef struct kvmap kvmap;

/* What a member change does to the transport, handed from the apply thread to the raft
 * thread (see rrkv.c: members_take). */
typedef struct kv_member {
    rr_node_id_t id;
    bool removed;
    char addr[KV_ADDR_BYTES_MAX]; /* "" when unknown */
} kv_member;

/* Called (writer thread) when a member's address or removal is learnt. */
typedef void (*kvmap_member_fn)(void *ctx, const kv_member *m);

int kvmap_new(kvmap **out, kvmap_member_fn on_member, void *ctx);
void kvmap_free(kvmap *m);

/* Encodes a command into out (capacity at least KV_CMD_BYTES_MAX for a put). Returns its
 * length. */
uint32_t kvmap_encode_put(uint8_t *out, const char *key, uint32_t key_len, const uint8_t *val,
                          uint32_t val_len);
uint32_t kvmap_encode_member(uint8_t *out, rr_node_id_t id, const char *addr);
uint32_t kvmap_encode_remove(uint8_t *out, rr_node_id_t id);

/* Applies committed entries (the node's apply callback). Malformed commands are skipped
 * (logged): every replica skips the same ones. */
void kvmap_apply(kvmap *m, const rr_entry *ents, size_t n);
/* Copies the value of key into a new malloc'd buffer (*val, *val_len). Returns 1 found,
 * 0 absent, -ENOMEM. */
int kvmap_get(kvmap *m, const char *key, uint32_t key_len, uint8_t **val, uint32_t *val_len);
/* Whether id was removed (a 'R' command applied and no 'M' after it). */
bool kvmap_removed(kvmap *m, rr_node_id_t id);
/* The known address of member id into addr (KV_ADDR_BYTES_MAX). Returns true if known. */
bool kvmap_member_addr(kvmap *m, rr_node_id_t id, char *addr);
uint64_t kvmap_count(kvmap *m);

/* Snapshot hooks (rr_node_callbacks). */
int kvmap_save(kvmap *m, rr_buf **buf, const uint8_t **data, uint64_t *len);
int kvmap_restore(kvmap *m, const uint8_t *data, uint64_t len);

#endif
