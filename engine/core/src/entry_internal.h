/*
 * entry_internal.h: helpers over entries, entry arrays and snapshots shared by the core's
 * modules (entry.c implements them). Depends on core.h only.
 *
 * Ownership follows core.h: an rr_entry or rr_snapshot owns one reference on its buffer.
 * "copy" takes a new reference, "clear"/"truncate"/"drop" release the references of what
 * they discard. Single-threaded like the rest of the core.
 */
#ifndef RR_CORE_ENTRY_INTERNAL_H
#define RR_CORE_ENTRY_INTERNAL_H

#include "ringraft/core.h"

/* *dst = *src with a new reference on src->buf. dst holds nothing beforehand. */
void rr_entry_copy(rr_entry *dst, const rr_entry *src);

/* Entry sizes summed for size limits (rr_entry_size_bytes) and payload sizes (data_len). */
uint64_t rr_entries_size_bytes(const rr_entry *ents, size_t n);
uint64_t rr_entries_payload_bytes(const rr_entry *ents, size_t n);

/* Most bytes rr_entry_size_bytes adds to data_len: tags of 4 fields, varints of type (1),
 * term and index (10 each) and of the length (5). */
#define RR_ENTRY_SIZE_OVERHEAD_MAX 30u

/* How many of ents[0..n) a size-limited read takes: the longest prefix whose sizes, added to
 * *size_bytes (what the read holds so far, in `taken` entries), stay within max_bytes, and
 * at least one entry in all (etcd's limitSize). Adds the prefix's sizes to *size_bytes,
 * except when max_bytes is RR_NO_LIMIT: then all are taken and sizes are not computed. */
size_t rr_entries_within(const rr_entry *ents, size_t n, size_t taken, uint64_t *size_bytes,
                         uint64_t max_bytes);

/* Makes room for at least cap entries without changing n. Returns 0 or -ENOMEM. */
int rr_entry_vec_reserve(rr_entry_vec *vec, size_t cap);
/* Appends copies of ents[0..n) (new references). All or nothing: returns 0, or -ENOMEM
 * with vec unchanged. */
int rr_entry_vec_push_n(rr_entry_vec *vec, const rr_entry *ents, size_t n);
/* Keeps the first n entries and releases the rest (n <= vec->n). */
void rr_entry_vec_truncate(rr_entry_vec *vec, size_t n);
/* Releases the first k entries and shifts the rest down (k <= vec->n). */
void rr_entry_vec_drop_front(rr_entry_vec *vec, size_t k);

/* *dst = *src with a new reference on src->buf. dst holds nothing beforehand. */
void rr_snapshot_copy(rr_snapshot *dst, const rr_snapshot *src);

#endif
