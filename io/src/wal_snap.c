/*
 * wal_snap.c: snapshot files. Written to snap.tmp, fdatasynced, renamed to
 * <16 hex digits of the index>.snap, directory fsynced (the rename is the commit point, as
 * LMDB's and SQLite's "write, sync, then publish"); older snapshot files are then deleted.
 *
 * Format, little-endian:
 *
 *   offset size field
 *   0      8    magic "RRSNAPF1"
 *   8      4    version (1)
 *   12     4    crc32c of every byte from offset 16 to the end of the file
 *   16     8    index
 *   24     8    term
 *   32     8    data_bytes
 *   40     4    conf_bytes
 *   44     4    reserved (zero)
 *   48     conf_bytes: voters, voters_outgoing, learners, learners_next, each as
 *               count u32 then count node ids u64; then auto_leave u8
 *   then   data_bytes of state machine data
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringraft/crc32c.h"
#include "ringraft/errors.h"
#include "wal_internal.h"

#define SNAP_HEADER_BYTES   48
#define SNAP_MAGIC          0x314650414E535252ull /* "RRSNAPF1" little-endian */
#define SNAP_TMP            "snap.tmp"
#define SNAP_CONF_BYTES_MAX (4 * (4 + 8 * RR_NODES_MAX) + 1)
_Static_assert(SNAP_HEADER_BYTES == 8 + 4 + 4 + 8 + 8 + 8 + 4 + 4, "snapshot header layout");

static size_t conf_encode(const rr_conf_state *cs, uint8_t *out)
{
    const rr_id_set *sets[4] = {&cs->voters, &cs->voters_outgoing, &cs->learners,
                                &cs->learners_next};
    size_t off = 0;
    for (int k = 0; k < 4; k++) {
        rr_le_put_u32(out + off, sets[k]->n);
        off += 4;
        for (uint32_t i = 0; i < sets[k]->n; i++, off += 8)
            rr_le_put_u64(out + off, sets[k]->ids[i]);
    }
    out[off++] = cs->auto_leave ? 1 : 0;
    return off;
}

static int conf_decode(const uint8_t *p, size_t len, rr_conf_state *cs)
{
    rr_id_set *sets[4] = {&cs->voters, &cs->voters_outgoing, &cs->learners, &cs->learners_next};
    size_t off = 0;
    memset(cs, 0, sizeof(*cs));
    for (int k = 0; k < 4; k++) {
        if (len - off < 4)
            return RR_ERR_CORRUPT;
        uint32_t n = rr_le_get_u32(p + off);
        off += 4;
        if (n > RR_NODES_MAX || len - off < 8 * (size_t)n)
            return RR_ERR_CORRUPT;
        sets[k]->n = n;
        for (uint32_t i = 0; i < n; i++, off += 8)
            sets[k]->ids[i] = rr_le_get_u64(p + off);
    }
    if (len - off != 1 || p[off] > 1)
        return RR_ERR_CORRUPT;
    cs->auto_leave = p[off] == 1;
    return 0;
}

static int write_full(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Deletes snapshot files older than keep_index. */
static void remove_older(rr_wal *w, rr_index_t keep_index)
{
    DIR *d = fdopendir(dup(w->dir_fd));
    if (d == NULL)
        return;
    rewinddir(d); /* the dup shares dir_fd's position */
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        uint64_t idx = strtoull(de->d_name, &end, 16);
        if (strlen(de->d_name) == 21 && end == de->d_name + 16 && strcmp(end, ".snap") == 0 &&
            idx < keep_index)
            unlinkat(w->dir_fd, de->d_name, 0);
    }
    closedir(d);
}

int wal_snap_write(rr_wal *w, const rr_snapshot *snap)
{
    uint8_t head[SNAP_HEADER_BYTES + SNAP_CONF_BYTES_MAX];
    size_t conf = conf_encode(&snap->meta.conf_state, head + SNAP_HEADER_BYTES);
    rr_le_put_u64(head, SNAP_MAGIC);
    rr_le_put_u32(head + 8, WAL_FORMAT_VERSION);
    rr_le_put_u64(head + 16, snap->meta.index);
    rr_le_put_u64(head + 24, snap->meta.term);
    rr_le_put_u64(head + 32, snap->data_len);
    rr_le_put_u32(head + 40, (uint32_t)conf);
    rr_le_put_u32(head + 44, 0);
    uint32_t crc = rr_crc32c(0, head + 16, SNAP_HEADER_BYTES - 16 + conf);
    if (snap->data_len > 0)
        crc = rr_crc32c(crc, snap->data, (size_t)snap->data_len);
    rr_le_put_u32(head + 12, crc);

    int fd = openat(w->dir_fd, SNAP_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = write_full(fd, head, SNAP_HEADER_BYTES + conf);
    if (rc == 0 && snap->data_len > 0)
        rc = write_full(fd, snap->data, (size_t)snap->data_len);
    if (rc == 0 && fdatasync(fd) != 0)
        rc = -errno;
    close(fd);
    char name[32];
    snprintf(name, sizeof name, "%016" PRIx64 ".snap", snap->meta.index);
    if (rc == 0 && renameat(w->dir_fd, SNAP_TMP, w->dir_fd, name) != 0)
        rc = -errno;
    if (rc == 0 && fsync(w->dir_fd) != 0)
        rc = -errno;
    if (rc == 0) {
        remove_older(w, snap->meta.index);
        fsync(w->dir_fd); /* deletions only free space: best effort */
    }
    return rc;
}

typedef struct snap_buf {
    rr_buf b;
    uint8_t bytes[];
} snap_buf;

static void snap_buf_release(rr_buf *b)
{
    free(b);
}

static int snap_parse(snap_buf *sb, size_t len, rr_snapshot *out)
{
    const uint8_t *p = sb->bytes;
    if (len < SNAP_HEADER_BYTES || rr_le_get_u64(p) != SNAP_MAGIC)
        return RR_ERR_CORRUPT;
    if (rr_le_get_u32(p + 8) != WAL_FORMAT_VERSION)
        return RR_ERR_BAD_VERSION;
    if (rr_crc32c(0, p + 16, len - 16) != rr_le_get_u32(p + 12) || rr_le_get_u32(p + 44) != 0)
        return RR_ERR_CORRUPT;
    uint64_t data = rr_le_get_u64(p + 32);
    uint32_t conf = rr_le_get_u32(p + 40);
    if (conf > SNAP_CONF_BYTES_MAX || SNAP_HEADER_BYTES + conf + data != len)
        return RR_ERR_CORRUPT;
    memset(out, 0, sizeof(*out));
    int rc = conf_decode(p + SNAP_HEADER_BYTES, conf, &out->meta.conf_state);
    if (rc != 0)
        return rc;
    out->meta.index = rr_le_get_u64(p + 16);
    out->meta.term = rr_le_get_u64(p + 24);
    out->data = p + SNAP_HEADER_BYTES + conf;
    out->data_len = data;
    out->buf = &sb->b;
    return 0;
}

static int newest_snapshot(rr_wal *w, uint64_t *index, bool *found)
{
    DIR *d = fdopendir(dup(w->dir_fd));
    if (d == NULL)
        return -errno;
    rewinddir(d); /* the dup shares dir_fd's position, which an earlier listing moved */
    struct dirent *de;
    *found = false;
    while ((de = readdir(d)) != NULL) {
        char *end;
        uint64_t idx = strtoull(de->d_name, &end, 16);
        if (strlen(de->d_name) != 21 || end != de->d_name + 16 || strcmp(end, ".snap") != 0)
            continue;
        if (!*found || idx > *index)
            *index = idx;
        *found = true;
    }
    closedir(d);
    return 0;
}

int wal_snap_load(rr_wal *w, rr_wal_error *err)
{
    uint64_t index = 0;
    bool found = false;
    int rc = newest_snapshot(w, &index, &found);
    if (rc != 0 || !found)
        return rc;
    char path[RR_WAL_PATH_BYTES_MAX + 32];
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".snap", w->dir, index);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    snap_buf *sb = NULL;
    rc = fstat(fd, &st) == 0 ? 0 : -errno;
    if (rc == 0) {
        sb = malloc(sizeof(snap_buf) + (size_t)st.st_size);
        rc = sb == NULL ? -ENOMEM : 0;
    }
    if (rc == 0) {
        sb->b = (rr_buf){.refs = 1, .release = snap_buf_release};
        ssize_t n = pread(fd, sb->bytes, (size_t)st.st_size, 0);
        rc = n == st.st_size ? 0 : (n < 0 ? -errno : RR_ERR_TRUNCATED);
    }
    close(fd);
    if (rc == 0)
        rc = snap_parse(sb, (size_t)st.st_size, &w->snap);
    if (rc == 0 && w->snap.meta.index != index)
        rc = RR_ERR_CORRUPT;
    if (rc != 0) {
        free(sb);
        memset(&w->snap, 0, sizeof w->snap);
        wal_set_error(err, path, 0, "bad snapshot file");
        return rc;
    }
    remove_older(w, index);
    return 0;
}
