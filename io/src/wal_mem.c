/*
 * wal_mem.c: the in-memory backend (cfg.dir == NULL) for tests and the simulator's disk:
 * rr_wal's API over the core's rr_memstorage (etcd's MemoryStorage). Every record is
 * durable as soon as it is queued, so rr_wal_poll reports the last entry at once.
 */
#include <errno.h>
#include <stdlib.h>

#include "ringraft/errors.h"
#include "wal_internal.h"

struct wal_mem {
    rr_memstorage *ms;
    uint64_t seq;
};

int wal_mem_open(rr_wal *w)
{
    w->mem = calloc(1, sizeof(struct wal_mem));
    if (w->mem == NULL)
        return -ENOMEM;
    w->mem->ms = rr_memstorage_new();
    return w->mem->ms == NULL ? -ENOMEM : 0;
}

void wal_mem_close(rr_wal *w)
{
    rr_memstorage_free(w->mem->ms);
    free(w->mem);
    w->mem = NULL;
}

int wal_mem_append(rr_wal *w, const rr_entry *ents, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (ents[k].index != ents[0].index + k || ents[k].data_len > RR_ENTRY_BYTES_MAX)
            return -EINVAL;
    int rc = rr_memstorage_append(w->mem->ms, ents, n);
    if (rc == 0)
        w->mem->seq += n;
    return rc;
}

int wal_mem_set_hard_state(rr_wal *w, const rr_hard_state *hs)
{
    rr_memstorage_set_hard_state(w->mem->ms, hs);
    w->mem->seq++;
    return 0;
}

uint64_t wal_mem_last_seq(const rr_wal *w)
{
    return w->mem->seq;
}

int wal_mem_poll(rr_wal *w, rr_wal_durable *out)
{
    if (out == NULL)
        return 0;
    rr_storage st = rr_memstorage_storage(w->mem->ms);
    out->index = st.ops->last_index(st.ctx);
    out->term = 0;
    st.ops->term(st.ctx, out->index, &out->term);
    out->seq = w->mem->seq;
    out->batches = w->mem->seq;
    return 0;
}

rr_storage wal_mem_storage(rr_wal *w)
{
    return rr_memstorage_storage(w->mem->ms);
}

int wal_mem_save_snapshot(rr_wal *w, const rr_snapshot *snap, bool reset)
{
    int rc;
    if (reset) {
        rc = rr_memstorage_apply_snapshot(w->mem->ms, snap);
    } else {
        rr_storage st = rr_memstorage_storage(w->mem->ms);
        rr_term_t t = 0;
        rc = st.ops->term(st.ctx, snap->meta.index, &t);
        if (rc == 0 && t != snap->meta.term)
            rc = -EINVAL;
        if (rc == 0)
            rc = rr_memstorage_create_snapshot(w->mem->ms, snap->meta.index, &snap->meta.conf_state,
                                               snap->data, snap->data_len, snap->buf);
    }
    if (rc == 0)
        w->mem->seq++;
    return rc;
}

int wal_mem_compact(rr_wal *w, rr_index_t i)
{
    rr_storage st = rr_memstorage_storage(w->mem->ms);
    rr_snapshot s;
    st.ops->snapshot(st.ctx, &s);
    rr_index_t snap_index = s.meta.index;
    rr_snapshot_clear(&s);
    if (i > snap_index && i <= st.ops->last_index(st.ctx))
        return RR_ERR_UNAVAILABLE; /* same rule as the file backend */
    return rr_memstorage_compact(w->mem->ms, i);
}
