/*
 * lease.c - building leases on a JetStream KV bucket with a TTL; see lease.h.
 *
 * Invariants: every lease write is conditional on the subject's last
 * sequence (the KV revision read in this round, or "no message"), so the
 * server arbitrates every race; only a JetStream "wrong last sequence"
 * answer counts as losing one, any other failure ends the round with an
 * error. recs holds the leases this instance wrote and when it sent the
 * write (monotonic ms, taken before sending, so it is never later than the
 * server's own clock start for the key's TTL); it is the only source of
 * held[] when a round fails. Keys are "i.<enc>" and "b.<enc>" where enc
 * keeps [A-Za-z0-9_-] and writes any other byte as "=XX".
 */
#include "osc/lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osc/log.h"
#include "stream_int.h"

#define MS_TO_NS(ms)  ((int64_t)(ms)*1000000LL)
#define CONFLICT      1 /* cas_*: another instance won */
#define SNAPSHOT_WAIT 5000
#define KEY_MAX       (2 + 3 * 256 + 1)
#define ID_MAX        256

struct rec {
    char *key;
    uint64_t rev;
    int64_t sent_ms; /* when the last successful write was sent */
};

struct entry {
    char *key;
    char *value;
    uint64_t rev;
    int put; /* 0: a delete or purge marker */
};

struct osc_lease {
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    char *instance;
    char hb_key[KEY_MAX];
    char prefix[300]; /* "$KV.<bucket>." */
    char display[256];
    int64_t ttl_ms;
    size_t live;
    struct rec *recs;
    size_t nrecs, caprecs;
};

static int valid_bucket(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* kind + '.' + id with bytes outside [A-Za-z0-9_-] as "=XX". 0, or -1 when too long/empty. */
static int make_key(char *out, char kind, const char *id)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;

    if (!id || !*id || strlen(id) > ID_MAX)
        return -1;
    out[k++] = kind;
    out[k++] = '.';
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '_' || *p == '-') {
            out[k++] = (char)*p;
        } else {
            out[k++] = '=';
            out[k++] = hex[*p >> 4];
            out[k++] = hex[*p & 15];
        }
    }
    out[k] = '\0';
    return 0;
}

static int ensure_ttl(struct osc_lease *l, const char *bucket, struct osc_err *err)
{
    kvStatus *st = NULL;
    jsStreamInfo *si = NULL, *si2 = NULL;
    jsStreamConfig cfg;
    jsErrCode jerr = 0;
    char stream[128];
    natsStatus s;
    int rc = 0;

    if ((s = kvStore_Status(&st, l->kv)) != NATS_OK)
        return osc_stream_fail(err, s, 0, "KV bucket status");
    if (kvStatus_TTL(st) == MS_TO_NS(l->ttl_ms))
        goto out;
    snprintf(stream, sizeof(stream), "KV_%s", bucket);
    s = js_GetStreamInfo(&si, l->js, stream, NULL, &jerr);
    if (s == NATS_OK) {
        cfg = *si->Config;
        cfg.MaxAge = MS_TO_NS(l->ttl_ms);
        s = js_UpdateStream(&si2, l->js, &cfg, NULL, &jerr);
    }
    if (s != NATS_OK) {
        rc = osc_stream_fail(err, s, jerr, "changing the TTL of the KV bucket");
        goto out;
    }
    OSC_LOG_INFO("lease", "KV bucket %s: TTL set to %lld ms", bucket, (long long)l->ttl_ms);
out:
    kvStatus_Destroy(st);
    jsStreamInfo_Destroy(si);
    jsStreamInfo_Destroy(si2);
    return rc;
}

static int open_bucket(struct osc_lease *l, const struct osc_lease_opts *o, struct osc_err *err)
{
    kvConfig c;
    char what[512];
    natsStatus s;

    snprintf(what, sizeof(what), "KV bucket \"%s\" on %s", o->bucket, l->display);
    s = js_KeyValue(&l->kv, l->js, o->bucket);
    if (s == NATS_NOT_FOUND) {
        kvConfig_Init(&c);
        c.Bucket = o->bucket;
        c.History = 1;
        c.TTL = MS_TO_NS(o->ttl_ms);
        c.StorageType = js_FileStorage;
        c.Replicas = o->replicas > 0 ? o->replicas : 1;
        s = js_CreateKeyValue(&l->kv, l->js, &c);
        if (s != NATS_OK) /* another instance created it first (maybe with another TTL) */
            s = js_KeyValue(&l->kv, l->js, o->bucket);
        else
            OSC_LOG_INFO("lease", "created KV bucket %s (TTL %lld ms, %d replica(s))", o->bucket,
                         (long long)o->ttl_ms, c.Replicas);
    }
    if (s != NATS_OK) {
        l->kv = NULL;
        return osc_stream_fail(err, s, 0, what);
    }
    return ensure_ttl(l, o->bucket, err);
}

int osc_lease_open(const struct osc_lease_opts *o, struct osc_lease **out, struct osc_err *err)
{
    struct osc_lease *l;
    int rc;

    if (!valid_bucket(o->bucket))
        return osc_err_set(err, OSC_EINVAL, "KV bucket name \"%s\" must be 1-64 of A-Z a-z 0-9 _ -",
                           o->bucket ? o->bucket : "");
    if (!o->instance || !*o->instance || strlen(o->instance) > ID_MAX)
        return osc_err_set(err, OSC_EINVAL, "lease instance id must be 1-%d bytes", ID_MAX);
    if (o->ttl_ms < 1000)
        return osc_err_set(err, OSC_EINVAL, "lease TTL must be at least 1 s");
    if (!(l = calloc(1, sizeof(*l))))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    l->ttl_ms = o->ttl_ms;
    snprintf(l->prefix, sizeof(l->prefix), "$KV.%s.", o->bucket);
    make_key(l->hb_key, 'i', o->instance);
    if (!(l->instance = strdup(o->instance))) {
        rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = osc_stream_connect(&o->conn, &l->nc, l->display, sizeof(l->display), err)) ||
        (rc = osc_stream_js(l->nc, &o->conn, &l->js, err)) || (rc = open_bucket(l, o, err)))
        goto out;
out:
    if (rc) {
        osc_lease_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

void osc_lease_close(struct osc_lease *l)
{
    if (!l)
        return;
    kvStore_Destroy(l->kv);
    jsCtx_Destroy(l->js);
    natsConnection_Destroy(l->nc);
    for (size_t i = 0; i < l->nrecs; i++)
        free(l->recs[i].key);
    free(l->recs);
    free(l->instance);
    free(l);
}

size_t osc_lease_live(const struct osc_lease *l) { return l->live; }

/* ---- records of own leases ---------------------------------------------- */

static struct rec *rec_find(struct osc_lease *l, const char *key)
{
    for (size_t i = 0; i < l->nrecs; i++)
        if (strcmp(l->recs[i].key, key) == 0)
            return &l->recs[i];
    return NULL;
}

static void rec_drop(struct osc_lease *l, const char *key)
{
    struct rec *r = rec_find(l, key);

    if (!r)
        return;
    free(r->key);
    *r = l->recs[--l->nrecs];
}

static int rec_set(struct osc_lease *l, const char *key, uint64_t rev, int64_t sent_ms)
{
    struct rec *r = rec_find(l, key);

    if (!r) {
        if (l->nrecs == l->caprecs) {
            size_t cap = l->caprecs ? l->caprecs * 2 : 16;
            struct rec *p = realloc(l->recs, cap * sizeof(*p));
            if (!p)
                return OSC_ENOMEM;
            l->recs = p;
            l->caprecs = cap;
        }
        r = &l->recs[l->nrecs];
        if (!(r->key = strdup(key)))
            return OSC_ENOMEM;
        l->nrecs++;
    }
    r->rev = rev;
    r->sent_ms = sent_ms;
    return 0;
}

/* ---- conditional writes -------------------------------------------------- */

/*
 * Write value (or a delete marker when value is NULL) to key if the key's
 * last revision is expect (0: the key has no message). 0 (*rev set),
 * CONFLICT, or a negative code with err filled.
 */
static int cas(struct osc_lease *l, const char *key, const char *value, uint64_t expect,
               uint64_t *rev, struct osc_err *err)
{
    char subject[sizeof(l->prefix) + KEY_MAX], what[KEY_MAX + 64];
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsPubOptions po;
    jsErrCode jerr = 0;
    natsStatus s;
    int rc = 0;

    snprintf(subject, sizeof(subject), "%s%s", l->prefix, key);
    s = natsMsg_Create(&m, subject, NULL, value ? value : "", value ? (int)strlen(value) : 0);
    if (s == NATS_OK && !value)
        s = natsMsgHeader_Set(m, "KV-Operation", "DEL");
    if (s != NATS_OK) {
        rc = osc_stream_fail(err, s, 0, "KV message");
        goto out;
    }
    jsPubOptions_Init(&po);
    if (expect)
        po.ExpectLastSubjectSeq = expect;
    else
        po.ExpectNoMessage = true;
    s = js_PublishMsg(&pa, l->js, m, &po, &jerr);
    if (s == NATS_OK) {
        if (rev)
            *rev = pa->Sequence;
    } else if (jerr == JSStreamWrongLastSequenceErr) {
        rc = CONFLICT;
    } else {
        snprintf(what, sizeof(what), "%s KV key %s", value ? "writing" : "deleting", key);
        rc = osc_stream_fail(err, s, jerr, what);
    }
out:
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    return rc;
}

/* ---- the bucket's current content ---------------------------------------- */

struct snapshot {
    struct entry *e;
    size_t n, cap;
};

static void snapshot_free(struct snapshot *sn)
{
    for (size_t i = 0; i < sn->n; i++) {
        free(sn->e[i].key);
        free(sn->e[i].value);
    }
    free(sn->e);
    memset(sn, 0, sizeof(*sn));
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

static const struct entry *snapshot_find(const struct snapshot *sn, const char *key)
{
    struct entry probe = {(char *)key, NULL, 0, 0};

    return sn->n ? bsearch(&probe, sn->e, sn->n, sizeof(*sn->e), cmp_entry) : NULL;
}

static int snapshot_add(struct snapshot *sn, kvEntry *ke)
{
    const char *v = kvEntry_ValueString(ke);
    struct entry *e;

    if (sn->n == sn->cap) {
        size_t cap = sn->cap ? sn->cap * 2 : 64;
        struct entry *p = realloc(sn->e, cap * sizeof(*p));
        if (!p)
            return OSC_ENOMEM;
        sn->e = p;
        sn->cap = cap;
    }
    e = &sn->e[sn->n];
    e->key = strdup(kvEntry_Key(ke));
    e->value = strdup(v ? v : "");
    if (!e->key || !e->value) {
        free(e->key);
        free(e->value);
        return OSC_ENOMEM;
    }
    e->rev = kvEntry_Revision(ke);
    e->put = kvEntry_Operation(ke) == kvOp_Put;
    sn->n++;
    return 0;
}

/* Every key's last entry (deletes included), sorted by key. */
static int snapshot_take(struct osc_lease *l, struct snapshot *sn, struct osc_err *err)
{
    kvWatcher *w = NULL;
    kvWatchOptions wo;
    natsStatus s;
    int rc = 0;

    kvWatchOptions_Init(&wo);
    if ((s = kvStore_WatchAll(&w, l->kv, &wo)) != NATS_OK)
        return osc_stream_fail(err, s, 0, "reading the KV bucket");
    for (;;) {
        kvEntry *ke = NULL;
        s = kvWatcher_Next(&ke, w, SNAPSHOT_WAIT);
        if (s != NATS_OK) {
            rc = osc_stream_fail(err, s, 0, "reading the KV bucket");
            break;
        }
        if (!ke) /* the end of the initial values */
            break;
        rc = snapshot_add(sn, ke);
        kvEntry_Destroy(ke);
        if (rc) {
            osc_err_set(err, rc, "out of memory");
            break;
        }
    }
    kvWatcher_Destroy(w);
    if (!rc)
        qsort(sn->e, sn->n, sizeof(*sn->e), cmp_entry);
    return rc;
}

/* Is instance id's heartbeat in the snapshot? */
static int is_live(const struct snapshot *sn, const char *id)
{
    char key[KEY_MAX];
    const struct entry *e;

    if (make_key(key, 'i', id))
        return 0;
    e = snapshot_find(sn, key);
    return e && e->put;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* ---- one round ------------------------------------------------------------ */

int osc_lease_round(struct osc_lease *l, const char *const *ids, size_t n, unsigned char *held,
                    struct osc_err *err)
{
    struct snapshot sn = {NULL, 0, 0};
    char(*keys)[KEY_MAX] = NULL;
    size_t live = 0, share, count = 0;
    uint64_t rev;
    natsStatus s;
    int rc = 0;

    memset(held, 0, n);
    if (n && !(keys = malloc(n * sizeof(*keys))))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (make_key(keys[i], 'b', ids[i])) {
            rc = osc_err_set(err, OSC_EINVAL, "building id %zu is empty or longer than %d bytes", i,
                             ID_MAX);
            goto out;
        }
    if (natsConnection_Status(l->nc) != NATS_CONN_STATUS_CONNECTED) {
        /* requests would wait for the reconnect (the request timeout): fail now */
        rc = osc_err_set(err, OSC_EUNAVAIL, "NATS connection (%s) is down; reconnecting",
                         l->display);
        goto fallback;
    }
    if ((s = kvStore_PutString(&rev, l->kv, l->hb_key, l->instance)) != NATS_OK) {
        rc = osc_stream_fail(err, s, 0, "writing the instance heartbeat");
        goto fallback;
    }
    if ((rc = snapshot_take(l, &sn, err)))
        goto fallback;
    for (size_t i = 0; i < sn.n; i++)
        live += sn.e[i].put && sn.e[i].key[0] == 'i';
    if (live == 0) /* our own heartbeat expired between the write and the read */
        live = 1;
    share = (n + live - 1) / live;

    /* 1. renew what the bucket says is ours */
    for (size_t i = 0; i < n; i++) {
        const struct entry *e = snapshot_find(&sn, keys[i]);
        int64_t sent;
        if (!e || !e->put || strcmp(e->value, l->instance) != 0) {
            rec_drop(l, keys[i]); /* expired and maybe taken: not ours */
            continue;
        }
        sent = osc_stream_now_ms();
        rc = cas(l, keys[i], l->instance, e->rev, &rev, err);
        if (rc == CONFLICT) {
            rec_drop(l, keys[i]);
            rc = 0;
            continue;
        }
        if (rc || (rc = rec_set(l, keys[i], rev, sent)))
            goto fallback;
        held[i] = 1;
        count++;
    }
    /* 2. above the fair share (more instances now): give up the last ones */
    for (size_t i = n; i-- > 0 && count > share;) {
        struct rec *r;
        if (!held[i])
            continue;
        if ((r = rec_find(l, keys[i])) != NULL && cas(l, keys[i], NULL, r->rev, NULL, NULL) == 0)
            OSC_LOG_DEBUG("lease", "gave up building %s (%zu live instances)", ids[i], live);
        rec_drop(l, keys[i]); /* a failed delete just expires */
        held[i] = 0;
        count--;
    }
    /* 3. take free ones up to the fair share, starting at a per-instance offset */
    for (size_t k = 0, start = n ? fnv1a(l->instance) % n : 0; k < n && count < share; k++) {
        size_t i = (start + k) % n;
        const struct entry *e = snapshot_find(&sn, keys[i]);
        int64_t sent;
        if (held[i] || (e && e->put && is_live(&sn, e->value)))
            continue;
        sent = osc_stream_now_ms();
        rc = cas(l, keys[i], l->instance, e ? e->rev : 0, &rev, err);
        if (rc == CONFLICT) {
            rc = 0;
            continue;
        }
        if (rc || (rc = rec_set(l, keys[i], rev, sent)))
            goto fallback;
        held[i] = 1;
        count++;
    }
    /* leases of buildings no longer in the list: delete them (else they expire) */
    for (size_t r = 0; r < l->nrecs;) {
        int listed = 0;
        for (size_t i = 0; i < n && !listed; i++)
            listed = held[i] && strcmp(keys[i], l->recs[r].key) == 0;
        if (listed) {
            r++;
            continue;
        }
        cas(l, l->recs[r].key, NULL, l->recs[r].rev, NULL, NULL);
        rec_drop(l, l->recs[r].key);
    }
    l->live = live;
    goto out;
fallback:
    /* what was written less than ttl_ms ago cannot have been taken */
    {
        int64_t now = osc_stream_now_ms();
        for (size_t i = 0; i < n; i++) {
            struct rec *r = rec_find(l, keys[i]);
            held[i] = r && now < r->sent_ms + l->ttl_ms;
        }
    }
out:
    snapshot_free(&sn);
    free(keys);
    return rc;
}

int osc_lease_release(struct osc_lease *l, struct osc_err *err)
{
    natsStatus s;
    int rc = 0, r;

    while (l->nrecs > 0) {
        struct rec *last = &l->recs[l->nrecs - 1];
        r = cas(l, last->key, NULL, last->rev, NULL, err);
        if (r < 0 && rc == 0)
            rc = r;
        free(last->key);
        l->nrecs--;
    }
    if ((s = kvStore_Delete(l->kv, l->hb_key)) != NATS_OK && rc == 0)
        rc = osc_stream_fail(err, s, 0, "deleting the instance heartbeat");
    l->live = 0;
    return rc;
}
