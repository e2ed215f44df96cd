/*
 * config.c - the table-driven YAML loader.
 *
 * compose.c reads the whole file into a libyaml node tree (which keeps
 * line and column marks, and bounds depth and aliases); the walk below
 * fills a fresh struct osc_config from the tables in sections.c. Defaults
 * are applied first, then the file's values, then each present section's
 * check hook. Nothing is visible to the caller until all of it succeeded.
 *
 * Linear: every step is proportional to the nodes of the file (aliases
 * included, which compose.c bounds); names are checked for duplicates by
 * sorting, and destinations are found by binary search.
 */
#include "osc/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_table.h"
#include "osc/buf.h"
#include "osc/config_paths.h"
#include "osc/log.h"
#include "osc/parse.h"

#define MAX_CONFIG_BYTES (4 * 1024 * 1024)
#define MAX_SECRET_BYTES 4096
#define MAX_VALUE_BYTES  (1024 * 1024)

#define FIELD(obj, key, type) ((type *)((char *)(obj) + (key)->offset))

static void free_section(const struct conf_section *s, void *obj);

/* Secrets go into HTTP headers: no byte below 0x20 and no DEL. */
static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* ---- positions and messages ------------------------------------------ */

yaml_node_t *conf_map_get(yaml_document_t *doc, yaml_node_t *map, const char *key,
                          yaml_node_t **key_node)
{
    yaml_node_pair_t *p;

    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0) {
            if (key_node)
                *key_node = k;
            return yaml_document_get_node(doc, p->value);
        }
    }
    return NULL;
}

void conf_pos(const struct conf_ctx *ctx, const char *key, unsigned *line, unsigned *col)
{
    yaml_node_t *k = NULL, *n = ctx->node;

    if (key && conf_map_get(ctx->doc, ctx->node, key, &k))
        n = k;
    *line = n ? (unsigned)n->start_mark.line + 1 : 1;
    *col = n ? (unsigned)n->start_mark.column + 1 : 1;
}

static int fail_at(struct osc_err *err, const char *file, yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(struct osc_err *err, const char *file, yaml_node_t *node, const char *fmt, ...)
{
    char msg[OSC_ERR_MSG_MAX];
    unsigned line = node ? (unsigned)node->start_mark.line + 1 : 1;
    unsigned col = node ? (unsigned)node->start_mark.column + 1 : 1;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    osc_err_set(err, OSC_ECONFIG, "%s:%u:%u: %s", file, line, col, msg);
    if (err) {
        err->line = line;
        err->col = col;
    }
    return OSC_ECONFIG;
}

int conf_fail(const struct conf_ctx *ctx, const char *key, struct osc_err *err, const char *fmt,
              ...)
{
    char msg[OSC_ERR_MSG_MAX];
    unsigned line, col;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    conf_pos(ctx, key, &line, &col);
    osc_err_set(err, OSC_ECONFIG, "%s:%u:%u: %s%s%s%s%s", ctx->file, line, col, ctx->path,
                key && *ctx->path ? "." : "", key ? key : "", key || *ctx->path ? ": " : "", msg);
    if (err) {
        err->line = line;
        err->col = col;
    }
    return OSC_ECONFIG;
}

int conf_read_secret_file(const struct conf_ctx *ctx, const char *key, const char *path, char **out,
                          struct osc_err *err)
{
    char buf[MAX_SECRET_BYTES + 1];
    struct stat st;
    ssize_t n;
    size_t len = 0;
    int fd = -1, rc = 0;
    /* relative to the config's folder, as osc_config_resolve_paths() will store it */
    char *resolved = osc_config_path_in(ctx->file, path);

    if (!resolved)
        return OSC_ENOMEM;
    path = resolved;
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer (a hung check or
     * reload); a regular file reads the same with or without it */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        rc = conf_fail(ctx, key, err, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = conf_fail(ctx, key, err, "cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        const char *what = S_ISFIFO(st.st_mode)   ? "a FIFO (named pipe)"
                           : S_ISDIR(st.st_mode)  ? "a directory"
                           : S_ISCHR(st.st_mode)  ? "a character device"
                           : S_ISBLK(st.st_mode)  ? "a block device"
                           : S_ISSOCK(st.st_mode) ? "a socket"
                                                  : "not a regular file";
        rc =
            conf_fail(ctx, key, err,
                      "%s is %s; secrets are read only from regular files (chmod 600)", path, what);
        goto out;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        rc = conf_fail(ctx, key, err,
                       "%s is readable by group or others (mode %04o); run: chmod 600 %s", path,
                       (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    if (n < 0) {
        rc = conf_fail(ctx, key, err, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (len == sizeof(buf) - 1) {
        rc = conf_fail(ctx, key, err, "%s is larger than %d bytes", path, MAX_SECRET_BYTES);
        goto out;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        len--;
    buf[len] = '\0';
    if (len == 0) {
        rc = conf_fail(ctx, key, err, "%s is empty", path);
        goto out;
    }
    if (has_control(buf)) {
        rc = conf_fail(ctx, key, err, "%s holds a control character inside the secret", path);
        goto out;
    }
    free(*out);
    *out = strdup(buf);
    if (!*out)
        rc = OSC_ENOMEM;
    else
        rc = osc_log_secret_add(*out);
out:
    memset(buf, 0, sizeof(buf));
    if (fd >= 0)
        close(fd);
    free(resolved);
    return rc;
}

/* ---- scalars ----------------------------------------------------------- */

static int is_null_scalar(yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0);
}

/*
 * Expand environment references as the shell does: ${VAR}, ${VAR:-default}
 * (the default when VAR is unset or empty) and ${VAR:?message} (an error
 * naming VAR and the message when VAR is unset or empty); $${ is a literal
 * ${. A default or a message ends at the first '}'.
 */
static int interpolate(const char *file, yaml_node_t *node, char **out, struct osc_err *err)
{
    const char *s = (const char *)node->data.scalar.value;
    struct osc_buf b;
    int rc = 0;

    osc_buf_init(&b, MAX_VALUE_BYTES);
    while (*s && rc == 0) {
        if (s[0] == '$' && s[1] == '$' && s[2] == '{') {
            rc = osc_buf_adds(&b, "${");
            s += 3;
        } else if (s[0] == '$' && s[1] == '{') {
            const char *end = strchr(s + 2, '}');
            char name[256];
            const char *def = NULL, *need = NULL, *val;
            size_t nlen;

            if (!end) {
                rc = fail_at(err, file, node, "unterminated ${ in value");
                break;
            }
            nlen = (size_t)(end - (s + 2));
            if (nlen == 0 || nlen >= sizeof(name)) {
                rc = fail_at(err, file, node, "bad environment variable reference");
                break;
            }
            memcpy(name, s + 2, nlen);
            name[nlen] = '\0';
            {
                /* the first ":-" or ":?" is the operator; the rest is its word */
                char *op = strchr(name, ':');
                if (op && (op[1] == '-' || op[1] == '?')) {
                    if (op[1] == '-')
                        def = op + 2;
                    else
                        need = op + 2;
                    *op = '\0';
                }
            }
            if (!name[0]) {
                rc = fail_at(err, file, node, "bad environment variable reference");
                break;
            }
            val = getenv(name);
            if (need && (!val || !*val)) {
                rc = fail_at(err, file, node, "%s: %s (the environment variable is %s)", name,
                             *need ? need : "must be set and not empty", val ? "empty" : "not set");
                break;
            }
            if (!val || (!*val && def))
                val = def;
            if (!val) {
                rc = fail_at(err, file, node, "environment variable %s is not set", name);
                break;
            }
            rc = osc_buf_adds(&b, val);
            s = end + 1;
        } else {
            rc = osc_buf_addc(&b, *s++);
        }
    }
    if (rc == OSC_ETOOBIG)
        rc = fail_at(err, file, node, "value longer than %d bytes", MAX_VALUE_BYTES);
    if (rc) {
        osc_buf_free(&b);
        return rc == OSC_ECONFIG ? rc : fail_at(err, file, node, "%s", osc_strerror(rc));
    }
    *out = osc_buf_steal(&b);
    return *out ? 0 : OSC_ENOMEM;
}

static const char *type_hint(const struct conf_key *k)
{
    switch (k->type) {
    case CONF_INT: return (k->flags & CONF_F_AUTO) ? "an integer or auto" : "an integer";
    case CONF_BOOL: return "true or false";
    case CONF_DURATION: return "a duration such as 500ms, 30s, 15m or 2h";
    case CONF_SIZE: return "a size such as 512, 64KiB or 5MiB";
    default: return "a value";
    }
}

/* Parse text into the field of key k. node (may be NULL for defaults) is for messages. */
static int set_scalar(const struct conf_key *k, void *obj, const char *text, const char *file,
                      yaml_node_t *node, const char *path, struct osc_err *err)
{
    int64_t v;
    int b, rc;

    switch (k->type) {
    case CONF_STR: {
        char **dst = FIELD(obj, k, char *);
        char *copy;
        /* "" never works (an empty key, an empty state path, an empty URL); an empty
         * ${VAR} is the usual cause, so the value as written is shown (never the secret) */
        if (!*text) {
            const char *raw = node ? (const char *)node->data.scalar.value : "";
            if (strstr(raw, "${"))
                return fail_at(err, file, node, "%s: must not be empty (%s expands to nothing)",
                               path, raw);
            return fail_at(err, file, node, "%s: must not be empty%s%s", path,
                           k->def ? "; remove the key for the default, " : "",
                           k->def ? k->def : "");
        }
        /* a key with a stray \r (a CRLF .env file) would be refused by every
         * header; say so here, without echoing it */
        if ((k->flags & CONF_F_SECRET) && has_control(text))
            return fail_at(err, file, node,
                           "%s: contains a control character (a line ending from a CRLF "
                           "file?); the value is not shown",
                           path);
        if (!(copy = strdup(text)))
            return OSC_ENOMEM;
        free(*dst);
        *dst = copy;
        if (k->flags & CONF_F_SECRET)
            return osc_log_secret_add(copy);
        return 0;
    }
    case CONF_INT:
        if ((k->flags & CONF_F_AUTO) && strcasecmp(text, "auto") == 0) {
            *FIELD(obj, k, int64_t) = 0;
            return 0;
        }
        rc = osc_parse_int(text, k->min, k->max, &v);
        break;
    case CONF_RATIO: {
        char *end;
        double d;
        errno = 0;
        d = strtod(text, &end);
        if (!*text || *end || errno || !(d >= 0.0 && d <= 1.0))
            return fail_at(err, file, node,
                           "%s: expected a ratio from 0 to 1 (such as 0.6), got '%s'", path, text);
        memcpy((char *)obj + k->offset, &d, sizeof(d)); /* a double field, not an int64 */
        return 0;
    }
    case CONF_DURATION: rc = osc_parse_duration_ms(text, k->min, k->max, &v); break;
    case CONF_SIZE: rc = osc_parse_size(text, k->min, k->max, &v); break;
    case CONF_BOOL:
        if (osc_parse_bool(text, &b))
            return fail_at(err, file, node, "%s: expected true or false, got '%s'", path, text);
        *FIELD(obj, k, int) = b;
        return 0;
    case CONF_ENUM:
        for (int i = 0; k->choices[i]; i++) {
            if (strcasecmp(text, k->choices[i]) == 0) {
                *FIELD(obj, k, int) = i;
                return 0;
            }
        }
        {
            char list[256] = "";
            for (int i = 0; k->choices[i]; i++) {
                strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
                strncat(list, k->choices[i], sizeof(list) - strlen(list) - 1);
            }
            return fail_at(err, file, node, "%s: expected one of %s, got '%s'", path, list, text);
        }
    default: return fail_at(err, file, node, "%s: internal: not a scalar key", path);
    }
    if (rc == OSC_ETOOBIG)
        return fail_at(err, file, node, "%s: '%s' is out of range (%s from %lld to %lld)", path,
                       text, type_hint(k), (long long)k->min, (long long)k->max);
    if (rc)
        return fail_at(err, file, node, "%s: expected %s, got '%s'", path, type_hint(k), text);
    *FIELD(obj, k, int64_t) = v;
    return 0;
}

/* ---- lists, maps, JSON -------------------------------------------------- */

/*
 * Lists and maps have no capacity field: the capacity is implied by n (4,
 * then doubled each time n reaches a power of two), so n pushes cost O(n).
 */
static int grow(size_t n, void **p, size_t elem)
{
    size_t cap;
    void *np;

    if (n != 0 && (n < 4 || (n & (n - 1)) != 0))
        return 0; /* room left */
    cap = n ? n * 2 : 4;
    if (!(np = realloc(*p, cap * elem)))
        return OSC_ENOMEM;
    *p = np;
    return 0;
}

static int list_push(struct osc_strlist *l, char *s)
{
    if (grow(l->n, (void **)&l->v, sizeof(*l->v))) {
        free(s);
        return OSC_ENOMEM;
    }
    l->v[l->n++] = s;
    return 0;
}

static void list_free(struct osc_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int map_push(struct osc_strmap *m, char *k, char *v)
{
    if (grow(m->n, (void **)&m->keys, sizeof(*m->keys)) ||
        grow(m->n, (void **)&m->vals, sizeof(*m->vals))) {
        free(k);
        free(v);
        return OSC_ENOMEM;
    }
    m->keys[m->n] = k;
    m->vals[m->n] = v;
    m->n++;
    return 0;
}

static void map_free(struct osc_strmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    m->keys = m->vals = NULL;
    m->n = 0;
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return strndup(s, n);
}

/* "name:value,name2:value2" */
static int map_from_string(struct osc_strmap *m, const char *s, const char *file, yaml_node_t *node,
                           const char *path, struct osc_err *err)
{
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        const char *colon = memchr(s, ':', len);
        char *k, *v;
        int rc;

        if (!colon || colon == s)
            return fail_at(err, file, node, "%s: expected name:value pairs separated by commas",
                           path);
        k = trim_dup(s, (size_t)(colon - s));
        v = trim_dup(colon + 1, len - (size_t)(colon - s) - 1);
        if (!k || !v) {
            free(k);
            free(v);
            return OSC_ENOMEM;
        }
        if ((rc = map_push(m, k, v)))
            return rc;
        s += len + (comma ? 1 : 0);
    }
    return 0;
}

static json_t *yaml_to_json(yaml_document_t *doc, yaml_node_t *n, int depth)
{
    json_t *j = NULL;

    if (!n || depth > 64)
        return NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE: {
        const char *v = (const char *)n->data.scalar.value;
        int64_t i;
        int b;
        char *end;
        if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
            return json_stringn(v, n->data.scalar.length);
        if (is_null_scalar(n))
            return json_null();
        if (osc_parse_int(v, INT64_MIN, INT64_MAX, &i) == 0)
            return json_integer(i);
        if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
            osc_parse_bool(v, &b);
            return json_boolean(b);
        }
        {
            double d = strtod(v, &end);
            if (*v && !*end)
                return json_real(d);
        }
        return json_stringn(v, n->data.scalar.length);
    }
    case YAML_SEQUENCE_NODE:
        j = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             j && it < n->data.sequence.items.top; it++) {
            json_t *c = yaml_to_json(doc, yaml_document_get_node(doc, *it), depth + 1);
            if (!c || json_array_append_new(j, c)) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    case YAML_MAPPING_NODE:
        j = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; j && p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            json_t *c = yaml_to_json(doc, yaml_document_get_node(doc, p->value), depth + 1);
            if (!c || !k || k->type != YAML_SCALAR_NODE ||
                json_object_set_new(j, (const char *)k->data.scalar.value, c)) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    default: return NULL;
    }
}

/* ---- sections ------------------------------------------------------------ */

struct walk {
    const char *file;
    yaml_document_t *doc;
    struct osc_err *err;
};

static int parse_section(struct walk *w, const struct conf_section *s, void *obj, yaml_node_t *node,
                         const char *path);

static int apply_defaults(const struct conf_section *s, void *obj, const char *file,
                          struct osc_err *err)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct conf_key *k = &s->keys[i];
        int rc = 0;

        if (k->type == CONF_SECTION)
            rc = apply_defaults(k->sub, (char *)obj + k->offset, file, err);
        else if (k->type == CONF_NAMED)
            FIELD(obj, k, struct osc_conf_named)->item_size = k->sub->size;
        else if (k->def)
            rc = set_scalar(k, obj, k->def, file, NULL, k->name, err);
        if (rc)
            return rc;
    }
    return 0;
}

static int by_name_cmp(const void *a, const void *b, void *names_)
{
    char **names = names_;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(names[i], names[j]);
    return c ? c : (i > j) - (i < j);
}

/*
 * Fill nm->by_name (indices in name order) and refuse a name given twice,
 * at its second place in the file. Sorting instead of comparing every pair
 * keeps this O(n log n): 200,000 names cost about 3.5 million comparisons,
 * not 20 billion.
 */
static int named_index(struct walk *w, struct osc_conf_named *nm, const yaml_node_pair_t *pairs,
                       const char *path)
{
    size_t dup = SIZE_MAX;

    for (size_t i = 0; i < nm->n; i++)
        nm->by_name[i] = i;
    qsort_r(nm->by_name, nm->n, sizeof(size_t), by_name_cmp, nm->names);
    for (size_t i = 1; i < nm->n; i++) {
        size_t a = nm->by_name[i - 1], b = nm->by_name[i];
        if (b < dup && strcmp(nm->names[a], nm->names[b]) == 0)
            dup = b; /* equal names sort by position: b is the later one */
    }
    if (dup == SIZE_MAX)
        return 0;
    return fail_at(w->err, w->file, yaml_document_get_node(w->doc, pairs[dup].key),
                   "%s: duplicate name '%s'", path, nm->names[dup]);
}

static int parse_value(struct walk *w, const struct conf_key *k, void *obj, yaml_node_t *v,
                       const char *path)
{
    char *text = NULL;
    int rc = 0;

    switch (k->type) {
    case CONF_SECTION:
        if (v->type == YAML_SCALAR_NODE && is_null_scalar(v))
            return 0;
        if (v->type != YAML_MAPPING_NODE)
            return fail_at(w->err, w->file, v, "%s: expected a mapping of keys", path);
        return parse_section(w, k->sub, (char *)obj + k->offset, v, path);

    case CONF_NAMED: {
        struct osc_conf_named *nm = FIELD(obj, k, struct osc_conf_named);
        yaml_node_pair_t *pairs;
        size_t count;
        if (v->type == YAML_SCALAR_NODE && is_null_scalar(v))
            return 0;
        if (v->type != YAML_MAPPING_NODE)
            return fail_at(w->err, w->file, v, "%s: expected a mapping of names to sections", path);
        pairs = v->data.mapping.pairs.start;
        count = (size_t)(v->data.mapping.pairs.top - pairs);
        nm->items = calloc(count ? count : 1, k->sub->size);
        nm->names = calloc(count ? count : 1, sizeof(char *));
        nm->by_name = calloc(count ? count : 1, sizeof(size_t));
        if (!nm->items || !nm->names || !nm->by_name)
            return OSC_ENOMEM;
        for (size_t i = 0; i < count; i++) {
            yaml_node_t *kn = yaml_document_get_node(w->doc, pairs[i].key);
            if (!kn || kn->type != YAML_SCALAR_NODE || !*kn->data.scalar.value)
                return fail_at(w->err, w->file, kn, "%s: expected a name", path);
            if (!(nm->names[i] = strdup((char *)kn->data.scalar.value)))
                return OSC_ENOMEM;
            nm->n++;
        }
        if ((rc = named_index(w, nm, pairs, path)))
            return rc;
        for (size_t i = 0; i < count; i++) {
            yaml_node_t *vn = yaml_document_get_node(w->doc, pairs[i].value);
            void *item = (char *)nm->items + i * k->sub->size;
            char sub[256];
            if (!vn || vn->type != YAML_MAPPING_NODE)
                return fail_at(w->err, w->file,
                               vn ? vn : yaml_document_get_node(w->doc, pairs[i].key),
                               "%s.%s: expected a mapping of keys", path, nm->names[i]);
            if ((rc = apply_defaults(k->sub, item, w->file, w->err)))
                return rc;
            snprintf(sub, sizeof(sub), "%s.%s", path, nm->names[i]);
            if ((rc = parse_section(w, k->sub, item, vn, sub)))
                return rc;
        }
        return 0;
    }

    case CONF_LIST: {
        struct osc_strlist *l = FIELD(obj, k, struct osc_strlist);
        list_free(l);
        if (v->type == YAML_SCALAR_NODE) {
            if (is_null_scalar(v))
                return 0;
            if ((rc = interpolate(w->file, v, &text, w->err)))
                return rc;
            if (!*text) {
                free(text);
                return fail_at(w->err, w->file, v, "%s: must not be empty", path);
            }
            return list_push(l, text);
        }
        if (v->type != YAML_SEQUENCE_NODE)
            return fail_at(w->err, w->file, v, "%s: expected a list", path);
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *e = yaml_document_get_node(w->doc, *it);
            if (!e || e->type != YAML_SCALAR_NODE)
                return fail_at(w->err, w->file, e ? e : v, "%s: list items must be scalars", path);
            if ((rc = interpolate(w->file, e, &text, w->err)))
                return rc;
            if (!*text) {
                free(text);
                return fail_at(w->err, w->file, e, "%s: list items must not be empty", path);
            }
            if ((rc = list_push(l, text)))
                return rc;
        }
        return 0;
    }

    case CONF_MAP: {
        struct osc_strmap *m = FIELD(obj, k, struct osc_strmap);
        map_free(m);
        if (v->type == YAML_SCALAR_NODE && (k->flags & CONF_F_MAPSTR)) {
            if (is_null_scalar(v))
                return 0;
            if ((rc = interpolate(w->file, v, &text, w->err)))
                return rc;
            rc = map_from_string(m, text, w->file, v, path, w->err);
            free(text);
            return rc;
        }
        if (v->type != YAML_MAPPING_NODE)
            return fail_at(w->err, w->file, v, "%s: expected a mapping%s", path,
                           (k->flags & CONF_F_MAPSTR) ? " or \"name:value,...\"" : "");
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
             p++) {
            yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
            yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
            char *kt, *vt = NULL;
            if (!kn || kn->type != YAML_SCALAR_NODE || !vn || vn->type != YAML_SCALAR_NODE)
                return fail_at(w->err, w->file, kn ? kn : v, "%s: keys and values must be scalars",
                               path);
            if (!(kt = strdup((char *)kn->data.scalar.value)))
                return OSC_ENOMEM;
            if ((rc = interpolate(w->file, vn, &vt, w->err))) {
                free(kt);
                return rc;
            }
            if ((rc = map_push(m, kt, vt)))
                return rc;
        }
        return 0;
    }

    case CONF_JSON: {
        json_t **dst = FIELD(obj, k, json_t *);
        json_decref(*dst);
        *dst = yaml_to_json(w->doc, v, 0);
        return *dst ? 0 : fail_at(w->err, w->file, v, "%s: cannot convert this value", path);
    }

    default:
        if (v->type != YAML_SCALAR_NODE)
            return fail_at(w->err, w->file, v, "%s: expected %s, not a %s", path, type_hint(k),
                           v->type == YAML_MAPPING_NODE ? "mapping" : "list");
        if (is_null_scalar(v) && k->type == CONF_STR) {
            char **dst = FIELD(obj, k, char *);
            free(*dst);
            *dst = NULL;
            return 0;
        }
        if ((rc = interpolate(w->file, v, &text, w->err)))
            return rc;
        rc = set_scalar(k, obj, text, w->file, v, path, w->err);
        free(text);
        return rc;
    }
}

static int parse_section(struct walk *w, const struct conf_section *s, void *obj, yaml_node_t *node,
                         const char *path)
{
    struct osc_conf_meta *meta = obj;
    struct conf_ctx ctx = {w->file, w->doc, node, path};
    int rc;

    meta->present = 1;
    meta->line = (unsigned)node->start_mark.line + 1;
    meta->col = (unsigned)node->start_mark.column + 1;

    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
        const struct conf_key *k = NULL;
        char sub[256];

        if (!kn || kn->type != YAML_SCALAR_NODE)
            return fail_at(w->err, w->file, kn, "%s: keys must be plain names",
                           *path ? path : "top level");
        for (yaml_node_pair_t *q = node->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *prev = yaml_document_get_node(w->doc, q->key);
            if (prev && prev->type == YAML_SCALAR_NODE &&
                strcmp((char *)prev->data.scalar.value, (char *)kn->data.scalar.value) == 0)
                return fail_at(w->err, w->file, kn, "duplicate key '%s'", kn->data.scalar.value);
        }
        for (size_t i = 0; i < s->nkeys; i++)
            if (strcmp(s->keys[i].name, (char *)kn->data.scalar.value) == 0)
                k = &s->keys[i];
        if (!k) {
            char known[384] = "";
            for (size_t i = 0; i < s->nkeys; i++) {
                strncat(known, i ? ", " : "", sizeof(known) - strlen(known) - 1);
                strncat(known, s->keys[i].name, sizeof(known) - strlen(known) - 1);
            }
            return fail_at(w->err, w->file, kn, "unknown key '%s' in %s (known keys: %s)",
                           kn->data.scalar.value, *path ? path : "the top level", known);
        }
        snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", k->name);
        if ((rc = parse_value(w, k, obj, vn, sub)))
            return rc;
    }
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct conf_key *k = &s->keys[i];
        if ((k->flags & CONF_F_REQUIRED) && !conf_map_get(w->doc, node, k->name, NULL))
            return conf_fail(&ctx, NULL, w->err, "missing required key '%s'", k->name);
    }
    return s->check ? s->check(obj, &ctx, w->err) : 0;
}

/* ---- freeing --------------------------------------------------------------- */

static void free_section(const struct conf_section *s, void *obj)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct conf_key *k = &s->keys[i];
        switch (k->type) {
        case CONF_STR: free(*FIELD(obj, k, char *)); break;
        case CONF_LIST: list_free(FIELD(obj, k, struct osc_strlist)); break;
        case CONF_MAP: map_free(FIELD(obj, k, struct osc_strmap)); break;
        case CONF_JSON: json_decref(*FIELD(obj, k, json_t *)); break;
        case CONF_SECTION: free_section(k->sub, (char *)obj + k->offset); break;
        case CONF_NAMED: {
            struct osc_conf_named *nm = FIELD(obj, k, struct osc_conf_named);
            for (size_t j = 0; j < nm->n; j++) {
                free_section(k->sub, (char *)nm->items + j * k->sub->size);
                free(nm->names[j]);
            }
            free(nm->items);
            free(nm->names);
            free(nm->by_name);
            break;
        }
        default: break;
        }
    }
}

void osc_config_free(struct osc_config *cfg)
{
    if (!cfg)
        return;
    free_section(&conf_root, cfg);
    free(cfg->officespace.rest_base);
    free(cfg->path);
    free(cfg);
}

/* ---- loading ------------------------------------------------------------------ */

int osc_config_load_string(const char *text, size_t len, const char *name, struct osc_config **out,
                           struct osc_err *err)
{
    yaml_document_t doc;
    yaml_node_t *root;
    struct osc_config *cfg = NULL;
    struct walk w = {name, &doc, err};
    int rc;

    if ((rc = conf_compose(text, len, name, &doc, err)))
        return rc;
    root = yaml_document_get_root_node(&doc);
    if (!root || (root->type == YAML_SCALAR_NODE && is_null_scalar(root))) {
        rc = osc_err_set(err, OSC_ECONFIG, "%s: the configuration is empty", name);
        goto out;
    }
    if (root->type != YAML_MAPPING_NODE) {
        rc = fail_at(err, name, root, "expected a mapping of sections at the top level");
        goto out;
    }
    if (!(cfg = calloc(1, sizeof(*cfg))) || !(cfg->path = strdup(name))) {
        rc = osc_err_set(err, OSC_ENOMEM, "out of memory loading %s", name);
        goto out;
    }
    if ((rc = apply_defaults(&conf_root, cfg, name, err)) ||
        (rc = parse_section(&w, &conf_root, cfg, root, "")) ||
        (rc = osc_config_resolve_paths(cfg, err))) {
        if (rc == OSC_ENOMEM)
            osc_err_set(err, rc, "out of memory loading %s", name);
        goto out;
    }
    *out = cfg;
    cfg = NULL;
out:
    osc_config_free(cfg);
    yaml_document_delete(&doc);
    return rc;
}

int osc_config_load(const char *path, struct osc_config **out, struct osc_err *err)
{
    struct osc_buf b;
    char chunk[8192];
    FILE *f;
    size_t n;
    int rc = 0;

    f = fopen(path, "rb");
    if (!f)
        return osc_err_set(err, OSC_ENOINPUT, "cannot open config %s: %s", path, strerror(errno));
    osc_buf_init(&b, MAX_CONFIG_BYTES);
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = osc_buf_add(&b, chunk, n);
    if (rc == 0 && ferror(f))
        rc = osc_err_set(err, OSC_ENOINPUT, "cannot read config %s: %s", path, strerror(errno));
    else if (rc)
        rc = osc_err_set(err, OSC_ECONFIG, "%s: config larger than %d bytes", path,
                         MAX_CONFIG_BYTES);
    fclose(f);
    if (rc == 0)
        rc = osc_config_load_string(osc_buf_str(&b), b.len, path, out, err);
    osc_buf_free(&b);
    return rc;
}

const struct osc_conf_destination *osc_config_destination(const struct osc_config *cfg,
                                                          const char *name)
{
    const struct osc_conf_named *nm = &cfg->destinations;
    const struct osc_conf_destination *d = nm->items;
    size_t lo = 0, hi = nm->n;

    if (!nm->by_name) { /* a config built by hand */
        for (size_t i = 0; i < nm->n; i++)
            if (strcmp(nm->names[i], name) == 0)
                return &d[i];
        return NULL;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(nm->names[nm->by_name[mid]], name);
        if (c == 0)
            return &d[nm->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- dump and reference ---------------------------------------------------------- */

static void dump_string(FILE *out, const char *s)
{
    json_t *j = json_string(s);
    char *q = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    fputs(q ? q : "\"\"", out);
    free(q);
    json_decref(j);
}

static void dump_section(FILE *out, const struct conf_section *s, const void *obj, int indent)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct conf_key *k = &s->keys[i];
        const void *o = obj;
        fprintf(out, "%*s%s:", indent, "", k->name);
        switch (k->type) {
        case CONF_STR: {
            const char *v = *FIELD(o, k, char *const);
            if (!v)
                fputs(" ~", out);
            else if (k->flags & CONF_F_SECRET)
                fputs(" \"***\"", out);
            else {
                fputc(' ', out);
                dump_string(out, v);
            }
            break;
        }
        case CONF_INT:
            if ((k->flags & CONF_F_AUTO) && *FIELD(o, k, const int64_t) == 0) {
                fputs(" auto", out);
                break;
            }
            /* fall through */
        case CONF_SIZE: fprintf(out, " %lld", (long long)*FIELD(o, k, const int64_t)); break;
        case CONF_RATIO: {
            double d;
            memcpy(&d, (const char *)o + k->offset, sizeof(d));
            fprintf(out, " %g", d);
            break;
        }
        case CONF_DURATION: fprintf(out, " %lldms", (long long)*FIELD(o, k, const int64_t)); break;
        case CONF_BOOL: fputs(*FIELD(o, k, const int) ? " true" : " false", out); break;
        case CONF_ENUM: fprintf(out, " %s", k->choices[*FIELD(o, k, const int)]); break;
        case CONF_LIST: {
            const struct osc_strlist *l = FIELD(o, k, const struct osc_strlist);
            fputs(" [", out);
            for (size_t j = 0; j < l->n; j++) {
                fputs(j ? ", " : "", out);
                dump_string(out, l->v[j]);
            }
            fputc(']', out);
            break;
        }
        case CONF_MAP: {
            const struct osc_strmap *m = FIELD(o, k, const struct osc_strmap);
            fputs(m->n ? "" : " {}", out);
            for (size_t j = 0; j < m->n; j++) {
                fprintf(out, "\n%*s", indent + 2, "");
                dump_string(out, m->keys[j]);
                fputs(": ", out);
                dump_string(out, m->vals[j]);
            }
            break;
        }
        case CONF_JSON: {
            json_t *j = *FIELD(o, k, json_t *const);
            char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            fprintf(out, " %s", txt ? txt : "~");
            free(txt);
            break;
        }
        case CONF_SECTION:
            fputc('\n', out);
            dump_section(out, k->sub, (const char *)o + k->offset, indent + 2);
            continue;
        case CONF_NAMED: {
            const struct osc_conf_named *nm = FIELD(o, k, const struct osc_conf_named);
            fputs(nm->n ? "\n" : " {}\n", out);
            for (size_t j = 0; j < nm->n; j++) {
                fprintf(out, "%*s%s:\n", indent + 2, "", nm->names[j]);
                dump_section(out, k->sub, (const char *)nm->items + j * k->sub->size, indent + 4);
            }
            continue;
        }
        }
        fputc('\n', out);
    }
}

void osc_config_dump(const struct osc_config *cfg, FILE *out)
{
    fprintf(out, "# effective configuration of %s (secrets shown as ***)\n", cfg->path);
    dump_section(out, &conf_root, cfg, 0);
}

static const char *type_name(const struct conf_key *k)
{
    static const char *const names[] = {"string", "integer", "boolean", "duration",
                                        "size",   "ratio",   "enum",    "list",
                                        "map",    "any",     "section", "named sections"};
    if (k->type == CONF_INT && (k->flags & CONF_F_AUTO))
        return "int|auto";
    return names[k->type];
}

/* "manual, upsert_employees only" for a destination key not every template uses; "" otherwise. */
static const char *used_by(const struct conf_key *k, char *buf, size_t n)
{
    size_t len = 0;

    buf[0] = '\0';
    if (!(k->flags & CONF_T_ALL) || (k->flags & CONF_T_ALL) == CONF_T_ALL)
        return buf;
    for (int t = 0; t < 3; t++)
        if (k->flags & CONF_T_BIT(t))
            len += (size_t)snprintf(buf + len, len < n ? n - len : 0, "%s%s", len ? ", " : "",
                                    osc_conf_template_name(t));
    snprintf(buf + len, len < n ? n - len : 0, " only");
    return buf;
}

static void describe_section(FILE *out, const struct conf_section *s, const char *prefix, int man)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct conf_key *k = &s->keys[i];
        char path[128], tmpl[96];
        snprintf(path, sizeof(path), "%s%s", prefix, k->name);
        used_by(k, tmpl, sizeof(tmpl));
        if (k->type == CONF_SECTION || k->type == CONF_NAMED) {
            char sub[160];
            if (man)
                fprintf(out, ".SS %s\n%s%s%s%s\n", path, k->help, *tmpl ? " (" : "", tmpl,
                        *tmpl ? ")" : "");
            else
                fprintf(out, "\n%s: %s%s%s%s\n", path, k->help, *tmpl ? " (" : "", tmpl,
                        *tmpl ? ")" : "");
            snprintf(sub, sizeof(sub), "%s%s.", path, k->type == CONF_NAMED ? ".NAME" : "");
            describe_section(out, k->sub, sub, man);
            continue;
        }
        if (man) {
            fprintf(out, ".TP\n.B %s\n(%s", path, type_name(k));
            if (k->def)
                fprintf(out, ", default \\fI%s\\fR", k->def);
            if (k->flags & CONF_F_SECRET)
                fputs(", secret", out);
            if (*tmpl)
                fprintf(out, "; %s", tmpl);
            fprintf(out, ") %s\n", k->help);
        } else {
            fprintf(out, "  %-38s %-8s %-16s %s%s%s%s\n", path, type_name(k), k->def ? k->def : "-",
                    k->help, *tmpl ? " (" : "", tmpl, *tmpl ? ")" : "");
        }
    }
}

/* ---- template keys ------------------------------------------------------------------ */

static int check_template_keys(const struct conf_ctx *ctx, const struct conf_section *s,
                               const char *prefix, unsigned tbit, const char *tname,
                               const char *why, struct osc_err *err)
{
    yaml_node_t *node = ctx->node;

    if (!node || node->type != YAML_MAPPING_NODE)
        return 0;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(ctx->doc, p->key);
        const struct conf_key *k = NULL;
        if (!kn || kn->type != YAML_SCALAR_NODE)
            continue;
        for (size_t i = 0; i < s->nkeys && !k; i++)
            if (strcmp(s->keys[i].name, (const char *)kn->data.scalar.value) == 0)
                k = &s->keys[i];
        if (!k)
            continue;
        if ((k->flags & CONF_T_ALL) && !(k->flags & tbit))
            return conf_fail(ctx, k->name, err, "template %s does not use %s%s (%s)", tname, prefix,
                             k->name, why);
        if (k->type == CONF_SECTION) {
            char path[256], pre[128];
            struct conf_ctx sub = {ctx->file, ctx->doc, yaml_document_get_node(ctx->doc, p->value),
                                   path};
            snprintf(path, sizeof(path), "%s.%s", ctx->path, k->name);
            snprintf(pre, sizeof(pre), "%s%s.", prefix, k->name);
            int rc = check_template_keys(&sub, k->sub, pre, tbit, tname, why, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int conf_check_template_keys(const struct conf_ctx *ctx, const struct conf_section *s,
                             unsigned tbit, const char *tname, const char *why, struct osc_err *err)
{
    return check_template_keys(ctx, s, "", tbit, tname, why, err);
}

void osc_config_describe(FILE *out, int man) { describe_section(out, &conf_root, "", man); }
