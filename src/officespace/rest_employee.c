/*
 * rest_employee.c - map input records to OfficeSpace batch-import records.
 *
 * Invariants: a column's slot is resolved once per distinct key position
 * (a positional cache: CSV files and homogeneous JSON Lines repeat the
 * same keys in the same order, so the common case is one memcmp per
 * field); values are copied as JSON text from the record, never parsed
 * into a DOM; the output object has EmployeeId and Source first, then the
 * known keys in table order, then `fields:` targets that are not known
 * keys. Unmapped columns are reported once each (bounded) at INFO.
 */
#include "osc/employee.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "osc/log.h"

/* Known OfficeSpace batch keys, in output order. */
static const char *const known_keys[] = {
    "EmployeeId", "Source",    "FirstName", "LastName", "Email",     "Title",     "Department",
    "WorkPhone",  "Extension", "Bio",       "Photo",    "ImageData", "StartDate", "EndDate",
    "ShowInVd",   "Udf0",      "Udf1",      "Udf2",     "Udf3",      "Udf4",      "Udf5",
    "Udf6",       "Udf7",      "Udf8",      "Udf9",     "Udf10",     "Udf11",     "Udf12",
    "Udf13",      "Udf14",     "Udf15",     "Udf16",    "Udf17",     "Udf18",     "Udf19",
    "Udf20",      "Udf21",     "Udf22",     "Udf23",    "Udf24",     "Udf25",     "Udf26",
    "Udf27",      "Udf28",     "Udf29",     "Udf30",    "Udf31",     "Udf32",     "Udf33",
    "Udf34"};
#define NKNOWN (sizeof(known_keys) / sizeof(known_keys[0]))
enum { K_ID = 0, K_SOURCE = 1, K_FIRST = 2, K_LAST = 3, K_EMAIL = 4 };

/* Folded aliases (lower case, no '_', '-', ' ', '.') -> known key index. */
static const struct {
    const char *alias;
    int slot;
} aliases[] = {
    {"employeeid", K_ID},
    {"id", K_ID},
    {"clientemployeeid", K_ID},
    {"externalid", K_ID},
    {"empid", K_ID},
    {"employeenumber", K_ID},
    {"firstname", K_FIRST},
    {"givenname", K_FIRST},
    {"first", K_FIRST},
    {"lastname", K_LAST},
    {"surname", K_LAST},
    {"familyname", K_LAST},
    {"last", K_LAST},
    {"email", K_EMAIL},
    {"mail", K_EMAIL},
    {"emailaddress", K_EMAIL},
    {"workemail", K_EMAIL},
    {"title", 5},
    {"jobtitle", 5},
    {"department", 6},
    {"dept", 6},
    {"workphone", 7},
    {"phone", 7},
    {"telephone", 7},
    {"phonenumber", 7},
    {"extension", 8},
    {"ext", 8},
    {"bio", 9},
    {"photo", 10},
    {"photourl", 10},
    {"imagedata", 11},
    {"startdate", 12},
    {"hiredate", 12},
    {"enddate", 13},
    {"terminationdate", 13},
    {"showinvd", 14},
    {"source", K_SOURCE},
};

#define SLOT_NAME (-2) /* a full name to split */
#define SLOT_DROP (-1) /* not sent */
#define CACHE_N   64
#define WARN_MAX  32
#define KEY_MAX   128

static int is_empty(const char *v, size_t n);

struct cache_ent {
    char key[KEY_MAX];
    size_t len;
    int slot;
    int valid;
};

struct osc_employee_map {
    char *source_json; /* "\"osconnect\"" */
    char *dest;
    struct osc_strmap fields;
    char **extra; /* fields: targets that are not known keys */
    size_t nextra;
    size_t nslots;
    struct cache_ent cache[CACHE_N];
    const char **val; /* per slot, this record's value, or NULL */
    size_t *vlen;
    size_t *filled; /* slots with a value in this record, then sorted: output order */
    size_t nfilled;
    char **keylit; /* per slot, the key as written: "Key": */
    size_t *keylen;
    size_t source_len;
    char *warned[WARN_MAX];
    size_t nwarned;
    struct osc_buf tmp;
};

static void fold(const char *s, size_t n, char *out, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '_' || c == '-' || c == ' ' || c == '.')
            continue;
        out[j++] = (char)tolower(c);
    }
    out[j] = '\0';
}

static int default_slot(const char *key, size_t n)
{
    char f[KEY_MAX];

    for (size_t i = 0; i < NKNOWN; i++)
        if (strlen(known_keys[i]) == n && memcmp(known_keys[i], key, n) == 0)
            return (int)i;
    fold(key, n, f, sizeof(f));
    if (strcmp(f, "name") == 0 || strcmp(f, "fullname") == 0 || strcmp(f, "displayname") == 0)
        return SLOT_NAME;
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strcmp(f, aliases[i].alias) == 0)
            return aliases[i].slot;
    if (strncmp(f, "udf", 3) == 0 && f[3]) {
        char *end;
        long u = strtol(f + 3, &end, 10);
        if (!*end && u >= 0 && u <= 34 && (f[3] != '0' || !f[4]))
            return (int)(15 + u);
    }
    return SLOT_DROP;
}

void osc_employee_last_keys(const struct osc_employee_map *m, const char **id, size_t *id_len,
                            const char **email, size_t *email_len)
{
    *id = m->val[K_ID];
    *id_len = m->val[K_ID] ? m->vlen[K_ID] : 0;
    *email = m->val[K_EMAIL];
    *email_len =
        m->val[K_EMAIL] && !is_empty(m->val[K_EMAIL], m->vlen[K_EMAIL]) ? m->vlen[K_EMAIL] : 0;
}

const char *osc_employee_default_key(const char *column)
{
    int s = default_slot(column, strlen(column));
    return s >= 0 ? known_keys[s] : s == SLOT_NAME ? "FirstName+LastName" : NULL;
}

static int target_slot(struct osc_employee_map *m, const char *target)
{
    if (!target[0] || strcmp(target, "-") == 0)
        return SLOT_DROP;
    for (size_t i = 0; i < NKNOWN; i++)
        if (strcmp(known_keys[i], target) == 0)
            return (int)i;
    if (strcmp(target, "FirstName+LastName") == 0 || strcmp(target, "Name") == 0)
        return SLOT_NAME;
    for (size_t i = 0; i < m->nextra; i++)
        if (strcmp(m->extra[i], target) == 0)
            return (int)(NKNOWN + i);
    return SLOT_DROP; /* not reached: extras are registered in _new */
}

static int resolve(struct osc_employee_map *m, const char *key, size_t n)
{
    for (size_t i = 0; i < m->fields.n; i++)
        if (strlen(m->fields.keys[i]) == n && memcmp(m->fields.keys[i], key, n) == 0)
            return target_slot(m, m->fields.vals[i]);
    return default_slot(key, n);
}

static void strmap_free(struct osc_strmap *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->keys[i]);
        free(s->vals[i]);
    }
    free(s->keys);
    free(s->vals);
    memset(s, 0, sizeof(*s));
}

void osc_employee_map_free(struct osc_employee_map *m)
{
    if (!m)
        return;
    free(m->source_json);
    free(m->dest);
    strmap_free(&m->fields);
    for (size_t i = 0; i < m->nextra; i++)
        free(m->extra[i]);
    free(m->extra);
    free(m->val);
    free(m->vlen);
    free(m->filled);
    for (size_t i = 0; m->keylit && i < m->nslots; i++)
        free(m->keylit[i]);
    free(m->keylit);
    free(m->keylen);
    for (size_t i = 0; i < m->nwarned; i++)
        free(m->warned[i]);
    osc_buf_free(&m->tmp);
    free(m);
}

struct osc_employee_map *osc_employee_map_new(const struct osc_strmap *fields,
                                              const char *source_name, const char *destination,
                                              struct osc_err *err)
{
    struct osc_employee_map *m = calloc(1, sizeof(*m));
    struct osc_buf b;
    size_t nf = fields ? fields->n : 0;

    osc_buf_init(&b, 4096);
    if (!m)
        goto nomem;
    osc_buf_init(&m->tmp, 1u << 20);
    if (osc_json_quote(&b, source_name ? source_name : "osconnect",
                       strlen(source_name ? source_name : "osconnect")) ||
        !(m->source_json = osc_buf_steal(&b)))
        goto nomem;
    if (!(m->dest = strdup(destination ? destination : "")))
        goto nomem;
    if (nf) {
        m->fields.keys = calloc(nf, sizeof(char *));
        m->fields.vals = calloc(nf, sizeof(char *));
        m->extra = calloc(nf, sizeof(char *));
        if (!m->fields.keys || !m->fields.vals || !m->extra)
            goto nomem;
        for (size_t i = 0; i < nf; i++) {
            if (!(m->fields.keys[i] = strdup(fields->keys[i])) ||
                !(m->fields.vals[i] = strdup(fields->vals[i])))
                goto nomem;
            m->fields.n++;
            if (target_slot(m, fields->vals[i]) == SLOT_DROP && fields->vals[i][0] &&
                strcmp(fields->vals[i], "-") != 0) {
                if (!(m->extra[m->nextra] = strdup(fields->vals[i])))
                    goto nomem;
                m->nextra++;
            }
        }
    }
    m->nslots = NKNOWN + m->nextra;
    m->val = calloc(m->nslots, sizeof(*m->val));
    m->vlen = calloc(m->nslots, sizeof(*m->vlen));
    m->keylit = calloc(m->nslots, sizeof(*m->keylit));
    m->keylen = calloc(m->nslots, sizeof(*m->keylen));
    m->filled = calloc(m->nslots, sizeof(*m->filled));
    if (!m->val || !m->vlen || !m->keylit || !m->keylen || !m->filled)
        goto nomem;
    for (size_t i = 0; i < m->nslots; i++) {
        const char *key = i < NKNOWN ? known_keys[i] : m->extra[i - NKNOWN];
        osc_buf_reset(&b);
        if (osc_json_quote(&b, key, strlen(key)) || osc_buf_addc(&b, ':') ||
            !(m->keylit[i] = strdup(b.data)))
            goto nomem;
        m->keylen[i] = b.len;
    }
    m->source_len = strlen(m->source_json);
    osc_buf_free(&b);
    return m;
nomem:
    osc_buf_free(&b);
    osc_employee_map_free(m);
    osc_err_set(err, OSC_ENOMEM, "out of memory building the field map");
    return NULL;
}

static void warn_unmapped(struct osc_employee_map *m, const char *key, size_t n)
{
    if (m->nwarned >= WARN_MAX)
        return;
    for (size_t i = 0; i < m->nwarned; i++)
        if (strlen(m->warned[i]) == n && memcmp(m->warned[i], key, n) == 0)
            return;
    if (!(m->warned[m->nwarned] = strndup(key, n)))
        return;
    m->nwarned++;
    OSC_LOG_INFO("delivery",
                 "%s: column '%.*s' is not an OfficeSpace field and is not sent "
                 "(map it with fields:)",
                 m->dest, (int)n, key);
}

static int slot_of(struct osc_employee_map *m, size_t pos, const struct osc_record_field *f)
{
    struct cache_ent *c;

    if (pos >= CACHE_N || f->key_len >= KEY_MAX)
        return resolve(m, f->key, f->key_len);
    c = &m->cache[pos];
    if (c->valid && c->len == f->key_len && memcmp(c->key, f->key, f->key_len) == 0)
        return c->slot;
    c->slot = resolve(m, f->key, f->key_len);
    memcpy(c->key, f->key, f->key_len);
    c->len = f->key_len;
    c->valid = 1;
    if (c->slot == SLOT_DROP)
        warn_unmapped(m, f->key, f->key_len);
    return c->slot;
}

static int is_empty(const char *v, size_t n)
{
    return !v || n == 0 || (n == 2 && v[0] == '"') || (n == 4 && memcmp(v, "null", 4) == 0);
}

static char *put_key(char *o, int any, const struct osc_employee_map *m, size_t slot)
{
    if (any)
        *o++ = ',';
    memcpy(o, m->keylit[slot], m->keylen[slot]);
    return o + m->keylen[slot];
}

/* s (valid UTF-8 text) as a JSON string; at most 6 * n + 2 bytes. */
static char *put_text(char *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    return o;
}

int osc_employee_encode(struct osc_employee_map *m, const struct osc_record *rec,
                        struct osc_buf *out, struct osc_err *err)
{
    const char *name = NULL, *first = NULL, *last = NULL;
    size_t name_len = 0, first_len = 0, last_len = 0, before = out->len;
    int rc = 0, any = 0;

    memset(m->val, 0, m->nslots * sizeof(*m->val));
    m->nfilled = 0;
    m->filled[m->nfilled++] = K_SOURCE; /* always sent, from source_name */
    for (size_t i = 0; i < rec->nfields; i++) {
        const struct osc_record_field *f = &rec->fields[i];
        int s = slot_of(m, i, f);
        if (s == SLOT_NAME) {
            name = f->val;
            name_len = f->val_len;
        } else if (s >= 0 && s != K_SOURCE && (!m->val[s] || is_empty(m->val[s], m->vlen[s]))) {
            if (!m->val[s])
                m->filled[m->nfilled++] = (size_t)s;
            m->val[s] = f->val;
            m->vlen[s] = f->val_len;
        }
    }
    /* EmployeeId falls back to Email */
    if (is_empty(m->val[K_ID], m->vlen[K_ID])) {
        if (is_empty(m->val[K_EMAIL], m->vlen[K_EMAIL]))
            return osc_err_set(err, OSC_EDATA,
                               "no EmployeeId or Email (give it an employee_id, id or email "
                               "column, or map one with fields:)");
        if (!m->val[K_ID])
            m->filled[m->nfilled++] = K_ID;
        m->val[K_ID] = m->val[K_EMAIL];
        m->vlen[K_ID] = m->vlen[K_EMAIL];
    }
    /* a single name column fills whichever of FirstName/LastName is missing */
    if (name && !is_empty(name, name_len) &&
        (is_empty(m->val[K_FIRST], m->vlen[K_FIRST]) ||
         is_empty(m->val[K_LAST], m->vlen[K_LAST]))) {
        size_t n, cut;
        osc_buf_reset(&m->tmp);
        if ((rc = osc_json_value_text(name, name_len, &m->tmp)) < 0)
            goto fail;
        n = m->tmp.len;
        first = m->tmp.data;
        while (n && *first == ' ')
            first++, n--;
        while (n && first[n - 1] == ' ')
            n--;
        cut = n;
        while (cut && first[cut - 1] != ' ')
            cut--;
        if (cut == 0) { /* one word: a first name */
            first_len = n;
        } else {
            last = first + cut;
            last_len = n - cut;
            first_len = cut - 1;
            while (first_len && first[first_len - 1] == ' ')
                first_len--;
        }
    }

    /* one reservation for the whole object, then plain copies: this runs per record */
    {
        size_t need = 2 + m->keylen[K_SOURCE] + 1 + m->source_len;
        char *o;
        if (first && !m->val[K_FIRST])
            m->filled[m->nfilled++] = K_FIRST;
        if (last && !m->val[K_LAST])
            m->filled[m->nfilled++] = K_LAST;
        /* output in table order: a few slots, insertion sort */
        for (size_t i = 1; i < m->nfilled; i++) {
            size_t v = m->filled[i], j = i;
            for (; j > 0 && m->filled[j - 1] > v; j--)
                m->filled[j] = m->filled[j - 1];
            m->filled[j] = v;
        }
        for (size_t i = 0; i < m->nfilled; i++)
            if (m->val[m->filled[i]])
                need += m->keylen[m->filled[i]] + 1 + m->vlen[m->filled[i]] + 2;
        need += 2 * (6 * (first_len + last_len) + m->keylen[K_FIRST] + m->keylen[K_LAST] + 6);
        if ((rc = osc_buf_reserve(out, need)))
            goto fail;
        o = out->data + out->len;
        *o++ = '{';
        for (size_t i = 0; i < m->nfilled; i++) {
            size_t k = m->filled[i];
            const char *v = m->val[k];
            size_t n = m->vlen[k];
            if (k == K_SOURCE) {
                v = m->source_json;
                n = m->source_len;
            } else if (k == K_FIRST && first && is_empty(v, n)) {
                o = put_key(o, any, m, k);
                o = put_text(o, first, first_len);
                any = 1;
                continue;
            } else if (k == K_LAST && last && is_empty(v, n)) {
                o = put_key(o, any, m, k);
                o = put_text(o, last, last_len);
                any = 1;
                continue;
            } else if (!v) {
                continue;
            }
            o = put_key(o, any, m, k);
            any = 1;
            if (v[0] == '"' || v[0] == '{' || v[0] == '[' ||
                (n == 4 && memcmp(v, "null", 4) == 0)) {
                memcpy(o, v, n);
                o += n;
            } else { /* a number or boolean: its text, as a string */
                *o++ = '"';
                memcpy(o, v, n);
                o += n;
                *o++ = '"';
            }
        }
        *o++ = '}';
        out->len = (size_t)(o - out->data);
        *o = '\0';
        return 0;
    }
fail:
    out->len = before;
    if (out->data)
        out->data[before] = '\0';
    return osc_err_set(err, rc, "record too large to encode");
}
