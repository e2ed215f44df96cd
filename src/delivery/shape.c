/*
 * shape.c - a record as the destination wants it: the exclude list first,
 * then the employee mapping (upsert_employees), the form encoding, or the
 * record's compact JSON as it is.
 *
 * Invariants: the original record is never changed (dead letters hold the
 * record as read); a filtered record is a view whose fields point into
 * s->filtered and lives until the next call; nothing is appended to the
 * output unless the whole record could be encoded.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "delivery_int.h"
#include "osc/employee.h"

int dlv_shape_init(struct dlv_shape *s, const struct osc_conf_destination *t, int form,
                   const char *payload, size_t payload_len, struct osc_err *err)
{
    memset(s, 0, sizeof(*s));
    s->dest = t;
    s->form = form;
    s->payload = payload;
    s->payload_len = payload_len;
    osc_buf_init(&s->filtered, 1u << 26);
    osc_buf_init(&s->tmp, 1u << 26);
    if (t->template_ == OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES &&
        !(s->emap = osc_employee_map_new(&t->fields, t->source_name, t->name, err)))
        return OSC_ENOMEM;
    if (t->exclude.n && !(s->ffields = calloc(OSC_RECORDS_MAX_FIELDS, sizeof(*s->ffields))))
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    return 0;
}

void dlv_shape_free(struct dlv_shape *s)
{
    osc_employee_map_free(s->emap);
    osc_buf_free(&s->filtered);
    osc_buf_free(&s->tmp);
    free(s->ffields);
    memset(s, 0, sizeof(*s));
}

/* Remove a dotted path (a.b.c) from a JSON object. */
static void json_del_path(json_t *obj, const char *path)
{
    const char *dot = strchr(path, '.');
    char key[256];

    if (!json_is_object(obj))
        return;
    if (!dot) {
        json_object_del(obj, path);
        return;
    }
    if ((size_t)(dot - path) >= sizeof(key))
        return;
    memcpy(key, path, (size_t)(dot - path));
    key[dot - path] = '\0';
    json_del_path(json_object_get(obj, key), dot + 1);
}

/*
 * rec minus the exclude list, as a record view over s->filtered: top-level
 * names drop a field, dotted paths (internal.notes) edit a nested object.
 * Field spans are kept as offsets while the buffer may still move, and
 * turned into pointers at the end.
 */
static int exclude(struct dlv_shape *s, const struct osc_record *rec, struct osc_record *view)
{
    const struct osc_strlist *ex = &s->dest->exclude;
    struct osc_buf *b = &s->filtered;
    size_t n = 0;
    int rc = 0;

    osc_buf_reset(b);
    rc |= osc_buf_addc(b, '{');
    for (size_t i = 0; i < rec->nfields && !rc; i++) {
        const struct osc_record_field *f = &rec->fields[i];
        size_t key_at, val_at;
        int drop = 0;
        json_t *sub = NULL;
        for (size_t j = 0; j < ex->n && !drop; j++) {
            const char *e = ex->v[j];
            size_t el = strlen(e);
            if (el == f->key_len && memcmp(e, f->key, el) == 0)
                drop = 1;
            else if (el > f->key_len && e[f->key_len] == '.' &&
                     memcmp(e, f->key, f->key_len) == 0 && f->val[0] == '{') {
                if (!sub)
                    sub = json_loadb(f->val, f->val_len, 0, NULL);
                json_del_path(sub, e + f->key_len + 1);
            }
        }
        if (drop) {
            json_decref(sub);
            continue;
        }
        if (n)
            rc |= osc_buf_addc(b, ',');
        rc |= osc_buf_addc(b, '"');
        key_at = b->len;
        rc |= osc_buf_add(b, f->key, f->key_len);
        rc |= osc_buf_add(b, "\":", 2);
        val_at = b->len;
        if (sub) {
            char *t = json_dumps(sub, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
            rc |= t ? osc_buf_adds(b, t) : OSC_ENOMEM;
            free(t);
            json_decref(sub);
        } else {
            rc |= osc_buf_add(b, f->val, f->val_len);
        }
        /* offsets for now: the buffer may move while it grows */
        s->ffields[n].key = (const char *)(uintptr_t)key_at;
        s->ffields[n].key_len = f->key_len;
        s->ffields[n].val = (const char *)(uintptr_t)val_at;
        s->ffields[n].val_len = b->len - val_at;
        n++;
    }
    rc |= osc_buf_addc(b, '}');
    if (rc)
        return OSC_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        s->ffields[i].key = b->data + (uintptr_t)s->ffields[i].key;
        s->ffields[i].val = b->data + (uintptr_t)s->ffields[i].val;
    }
    *view = *rec;
    view->json = b->data;
    view->json_len = b->len;
    view->fields = s->ffields;
    view->nfields = n;
    return 0;
}

static int url_encode_into(struct osc_buf *out, const char *s, size_t n)
{
    char *e = osc_http_urlencode(s, n);
    int rc = e ? osc_buf_adds(out, e) : OSC_ENOMEM;
    free(e);
    return rc;
}

/* form body: key=value&... of the top-level fields (nested values as JSON text). */
static int encode_form(struct dlv_shape *s, const struct osc_record *rec, struct osc_buf *out)
{
    int rc = 0;

    for (size_t i = 0; i < rec->nfields && !rc; i++) {
        const struct osc_record_field *f = &rec->fields[i];
        if (i)
            rc = osc_buf_addc(out, '&');
        osc_buf_reset(&s->tmp);
        /* the key with its quotes, so escapes in it are decoded like a value's */
        if (!rc && osc_json_value_text(f->key - 1, f->key_len + 2, &s->tmp) < 0)
            rc = OSC_ETOOBIG;
        rc = rc ? rc : url_encode_into(out, s->tmp.data ? s->tmp.data : "", s->tmp.len);
        rc = rc ? rc : osc_buf_addc(out, '=');
        osc_buf_reset(&s->tmp);
        if (!rc && osc_json_value_text(f->val, f->val_len, &s->tmp) < 0)
            rc = OSC_ETOOBIG;
        rc = rc ? rc : url_encode_into(out, s->tmp.data ? s->tmp.data : "", s->tmp.len);
    }
    return rc;
}

int dlv_shape_encode(struct dlv_shape *s, const struct osc_record *rec, struct osc_buf *out,
                     char *why, size_t why_cap)
{
    struct osc_record view;
    const struct osc_record *r = rec;
    struct osc_err err = {0};
    size_t at = out->len;
    int rc;

    if (s->payload) {
        rc = osc_buf_add(out, s->payload, s->payload_len);
        goto out;
    }
    if (s->dest->exclude.n) {
        if ((rc = exclude(s, rec, &view)))
            goto out;
        r = &view;
    }
    if (s->emap) {
        rc = osc_employee_encode(s->emap, r, out, &err);
        if (rc == OSC_EDATA) {
            snprintf(why, why_cap, "%s", err.msg);
            return rc;
        }
    } else if (s->form) {
        rc = encode_form(s, r, out);
    } else {
        rc = osc_buf_add(out, r->json, r->json_len);
    }
out:
    if (rc) {
        out->len = at;
        if (out->data)
            out->data[at] = '\0';
        snprintf(why, why_cap, "record too large to encode");
        return OSC_EDATA;
    }
    return 0;
}

void dlv_shape_last_keys(const struct dlv_shape *s, const char **id, size_t *id_len,
                         const char **email, size_t *email_len)
{
    if (!s->emap) {
        *id = *email = NULL;
        *id_len = *email_len = 0;
        return;
    }
    osc_employee_last_keys(s->emap, id, id_len, email, email_len);
}
