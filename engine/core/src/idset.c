/* idset.c: sorted node id sets and configuration states. See ringraft/core.h. */
#include "ringraft/core.h"

#include <string.h>

#include "ringraft/assert.h"

/* Position of the first id >= id (binary search over at most RR_NODES_MAX ids). */
static uint32_t lower_bound(const rr_id_set *s, rr_node_id_t id)
{
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool rr_id_set_contains(const rr_id_set *s, rr_node_id_t id)
{
    uint32_t i = lower_bound(s, id);
    return i < s->n && s->ids[i] == id;
}

bool rr_id_set_insert(rr_id_set *s, rr_node_id_t id)
{
    uint32_t i = lower_bound(s, id);
    if (i < s->n && s->ids[i] == id)
        return true;
    if (s->n == RR_NODES_MAX)
        return false;
    memmove(&s->ids[i + 1], &s->ids[i], (s->n - i) * sizeof(s->ids[0]));
    s->ids[i] = id;
    s->n++;
    return true;
}

void rr_id_set_remove(rr_id_set *s, rr_node_id_t id)
{
    uint32_t i = lower_bound(s, id);
    if (i == s->n || s->ids[i] != id)
        return;
    memmove(&s->ids[i], &s->ids[i + 1], (s->n - i - 1) * sizeof(s->ids[0]));
    s->n--;
}

static bool id_set_equal(const rr_id_set *a, const rr_id_set *b)
{
    return a->n == b->n && memcmp(a->ids, b->ids, a->n * sizeof(a->ids[0])) == 0;
}

bool rr_conf_state_equal(const rr_conf_state *a, const rr_conf_state *b)
{
    return id_set_equal(&a->voters, &b->voters) &&
           id_set_equal(&a->voters_outgoing, &b->voters_outgoing) &&
           id_set_equal(&a->learners, &b->learners) &&
           id_set_equal(&a->learners_next, &b->learners_next) && a->auto_leave == b->auto_leave;
}
