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
