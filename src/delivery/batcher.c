/*
 * batcher.c - the batch pool: records into open batches, one per URL.
 *
 * Invariants:
 * - A batch is FREE, OPEN (filling), READY (queued), FLIGHT (on the HTTP
 *   client) or WAIT (due for a retry at due_ms). The pool is allocated once
 *   and its buffers are reused, so memory does not grow with the input.
 * - Data batches get increasing sequence numbers when they open. Records
 *   are noted in input order, so the first record of the batch with the
 *   smallest unfinished sequence number is the earliest record not yet
 *   done: the checkpoint position, and the start of the window.
 * - A batch owns its body, its URL and the compact original records it
 *   carries (with input, offset and line), so any outcome can be written
 *   to the dead-letter file record by record.
 */
#include <stdlib.h>
#include <string.h>

#include "delivery_int.h"

#define KEYS_MAX 8192

int dlv_batcher_init(struct dlv_batcher *bt, size_t npool, size_t max_groups, size_t batch_size,
                     size_t max_bytes)
{
    memset(bt, 0, sizeof(*bt));
    bt->npool = npool;
    bt->max_groups = max_groups;
    bt->batch_size = batch_size;
    bt->max_bytes = max_bytes;
    if (!(bt->pool = calloc(npool, sizeof(*bt->pool))))
        return OSC_ENOMEM;
    for (size_t i = 0; i < npool; i++) {
        struct dlv_batch *b = &bt->pool[i];
        osc_buf_init(&b->body, max_bytes + 64);
        osc_buf_init(&b->orig, (size_t)1 << 30);
        osc_http_response_init(&b->resp);
    }
    return 0;
}

void dlv_batcher_free(struct dlv_batcher *bt)
{
    for (size_t i = 0; bt->pool && i < bt->npool; i++) {
        struct dlv_batch *b = &bt->pool[i];
        osc_buf_free(&b->body);
        osc_buf_free(&b->orig);
        free(b->recs);
        free(b->keys);
        free(b->url);
        osc_http_response_free(&b->resp);
    }
    free(bt->pool);
    memset(bt, 0, sizeof(*bt));
}

void dlv_batch_reset(struct dlv_batch *b)
{
    osc_buf_reset(&b->body);
    osc_buf_reset(&b->orig);
    b->nrecs = 0;
    free(b->url);
    b->url = NULL;
    b->method = NULL;
    b->auth = 0;
    b->max_response = 0;
    b->attempts = 0;
    b->seq = 0;
    b->opened_ms = b->first_ms = b->due_ms = b->sent_ms = 0;
    b->next_ready = NULL;
    b->kind = DLV_DATA;
    b->state = DLV_FREE;
    if (b->nkeys)
        memset(b->keys, 0, b->keys_cap * sizeof(*b->keys));
    b->nkeys = 0;
}

struct dlv_batch *dlv_batcher_find(struct dlv_batcher *bt, const char *url)
{
    struct dlv_batch *h = bt->last_open;

    /* the common case: the same batch as the previous record */
    if (h && h->state == DLV_OPEN && (bt->max_groups == 1 || strcmp(h->url, url) == 0))
        return h;
    for (size_t i = 0; i < bt->npool; i++)
        if (bt->pool[i].state == DLV_OPEN && strcmp(bt->pool[i].url, url) == 0)
            return &bt->pool[i];
    return NULL;
}

struct dlv_batch *dlv_batcher_fullest(struct dlv_batcher *bt, size_t *open)
{
    struct dlv_batch *fullest = NULL;

    *open = 0;
    for (size_t i = 0; i < bt->npool; i++)
        if (bt->pool[i].state == DLV_OPEN) {
            (*open)++;
            if (!fullest || bt->pool[i].nrecs > fullest->nrecs)
                fullest = &bt->pool[i];
        }
    return fullest;
}

struct dlv_batch *dlv_batcher_take(struct dlv_batcher *bt)
{
    for (size_t i = 0; i < bt->npool; i++)
        if (bt->pool[i].state == DLV_FREE) {
            dlv_batch_reset(&bt->pool[i]);
            return &bt->pool[i];
        }
    return NULL;
}

int dlv_batcher_open(struct dlv_batcher *bt, struct dlv_batch *b, const char *url, int64_t now)
{
    if (!(b->url = strdup(url)))
        return OSC_ENOMEM;
    b->kind = DLV_DATA;
    b->state = DLV_OPEN;
    b->seq = bt->next_seq++;
    b->opened_ms = now;
    bt->last_open = b;
    return 0;
}

uint64_t dlv_batcher_oldest(const struct dlv_batcher *bt, const struct dlv_batch **oldest)
{
    uint64_t seq = bt->next_seq;

    *oldest = NULL;
    for (size_t i = 0; i < bt->npool; i++) {
        const struct dlv_batch *b = &bt->pool[i];
        if (b->state != DLV_FREE && b->kind == DLV_DATA && b->nrecs && b->seq < seq) {
            seq = b->seq;
            *oldest = b;
        }
    }
    return seq;
}

/* ---- duplicate employees in one batch -------------------------------------- */

static uint64_t key_hash(char tag, const char *s, size_t n, int fold)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (unsigned char)tag;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (fold && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        h = (h ^ c) * 0x100000001b3ULL;
    }
    return h ? h : 1;
}

/* The table of b, allocated on first use; NULL when full or out of memory (nothing checked). */
static struct dlv_key_slot *key_table(struct dlv_batch *b, size_t batch_size)
{
    if (!b->keys) {
        size_t cap = 64;
        while (cap < 4 * batch_size && cap < KEYS_MAX)
            cap *= 2;
        if (!(b->keys = calloc(cap, sizeof(*b->keys))))
            return NULL;
        b->keys_cap = cap;
    }
    return b->nkeys + 2 > b->keys_cap / 2 ? NULL : b->keys;
}

/* Line of an earlier record with key hash in b, or 0. */
static uint64_t key_find(const struct dlv_batch *b, uint64_t hash)
{
    for (size_t i = hash & (b->keys_cap - 1); b->keys[i].hash; i = (i + 1) & (b->keys_cap - 1))
        if (b->keys[i].hash == hash)
            return b->keys[i].line;
    return 0;
}

static void key_add(struct dlv_batch *b, uint64_t hash, uint64_t line)
{
    size_t i = hash & (b->keys_cap - 1);
    while (b->keys[i].hash && b->keys[i].hash != hash)
        i = (i + 1) & (b->keys_cap - 1);
    if (!b->keys[i].hash)
        b->nkeys++;
    b->keys[i].hash = hash;
    b->keys[i].line = line;
}

/*
 * One batch must not hold two records for the same employee (same
 * EmployeeId, or same Email ignoring case): what the API does with both is
 * undefined. The first is kept; the later one gets a reason. Batches beyond
 * KEYS_MAX/2 records are checked only up to that many keys. id and email
 * are JSON value text.
 */
int dlv_batcher_duplicate(struct dlv_batch *b, size_t batch_size, const char *id, size_t id_len,
                          const char *email, size_t email_len, uint64_t line, char *why,
                          size_t why_cap)
{
    uint64_t hid, hem = 0, at, at_id;
    struct osc_buf t;

    if (!id_len || !key_table(b, batch_size))
        return 0;
    hid = key_hash('i', id, id_len, 0);
    if (email_len)
        hem = key_hash('e', email, email_len, 1);
    at_id = key_find(b, hid);
    if (!at_id && (!hem || !key_find(b, hem))) {
        key_add(b, hid, line ? line : 1);
        if (hem)
            key_add(b, hem, line ? line : 1);
        return 0;
    }
    at = at_id ? at_id : key_find(b, hem);
    osc_buf_init(&t, 4096);
    osc_json_value_text(at_id ? id : email, at_id ? id_len : email_len, &t);
    snprintf(why, why_cap,
             "duplicate employee in one batch: '%.*s' is also on line %llu, which was "
             "sent; this record was not (fix the input and send it again)",
             (int)(t.len > 200 ? 200 : t.len), osc_buf_str(&t), (unsigned long long)at);
    osc_buf_free(&t);
    return 1;
}

int dlv_batcher_note(struct dlv_batch *b, const struct osc_record *rec, uint32_t input,
                     uint64_t idx, uint32_t flags, uint64_t tag)
{
    struct dlv_rec *r;

    if (b->nrecs == b->recs_alloc) {
        size_t na = b->recs_alloc ? b->recs_alloc * 2 : 128;
        struct dlv_rec *n = realloc(b->recs, na * sizeof(*n));
        if (!n)
            return OSC_ENOMEM;
        b->recs = n;
        b->recs_alloc = na;
    }
    r = &b->recs[b->nrecs];
    r->tag = tag;
    r->offset = rec->offset;
    r->line = rec->line;
    r->idx = idx;
    r->input = input;
    r->flags = flags;
    r->off = b->orig.len;
    r->len = rec->json_len;
    if (osc_buf_add(&b->orig, rec->json, rec->json_len))
        return OSC_ENOMEM;
    b->nrecs++;
    return 0;
}

void dlv_batcher_unnote(struct dlv_batch *b)
{
    if (!b->nrecs)
        return;
    b->nrecs--;
    b->orig.len = b->recs[b->nrecs].off;
    if (b->orig.data)
        b->orig.data[b->orig.len] = '\0';
}
