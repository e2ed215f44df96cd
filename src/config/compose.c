/*
 * compose.c - YAML text to a yaml_document_t, with the limits a config needs.
 *
 * libyaml's own loader (yaml_parser_load) is replaced by this composer on
 * its event parser because the loader has no limits: an alias bomb of a
 * few hundred bytes expands to billions of nodes in any walk of the tree,
 * and its scanner does work proportional to the flow nesting depth for
 * every token, so a deep [[[[...]]]] costs depth squared. Here:
 *
 * - Nesting stops at CONF_MAX_DEPTH levels (aliases included), so the
 *   scanner's per-token work is bounded and parsing is linear.
 * - Every node knows how many nodes it stands for with its aliases
 *   expanded; the aliases of a file together may stand for at most
 *   CONF_MAX_ALIAS_NODES nodes. That bounds every later walk of the tree
 *   (the config walk, yaml_to_json) by the file size plus that limit.
 * - Anchors are found by hash, not by a linear search per alias.
 * - Exactly one document: a second one is an error, not silently ignored.
 *
 * Errors carry file:line:col and the path of keys to the failing node.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_table.h"

struct anchor {
    char *name; /* NULL: empty slot */
    int id;     /* node id */
    int open;   /* the collection is still being read: an alias to it would be a cycle */
    uint64_t expanded;
    unsigned height;
};

struct frame {
    int id;
    int is_map;
    int key;      /* mapping: the key waiting for its value, 0 if none */
    size_t items; /* entries attached so far (for "[i]" in paths) */
    char *anchor; /* the collection's own anchor, or NULL */
    uint64_t expanded;
    unsigned height; /* collection levels from this node down (itself included) */
};

struct composer {
    const char *file;
    yaml_document_t *doc;
    struct osc_err *err;
    struct frame frames[CONF_MAX_DEPTH];
    unsigned depth;
    struct anchor *anchors;
    size_t nanchors, cap;
    uint64_t alias_nodes; /* nodes the aliases seen so far stand for */
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct anchor *anchor_find(struct composer *c, const char *name)
{
    if (!c->cap)
        return NULL;
    for (size_t i = hash(name) & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        if (!c->anchors[i].name)
            return NULL;
        if (strcmp(c->anchors[i].name, name) == 0)
            return &c->anchors[i];
    }
}

/* Insert name (copied) or redefine it, as YAML allows. Kept at most half full. */
static struct anchor *anchor_put(struct composer *c, const char *name, int id)
{
    struct anchor *a = anchor_find(c, name);
    size_t i;

    if (a) {
        a->id = id;
        return a;
    }
    if ((c->nanchors + 1) * 2 > c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 64;
        struct anchor *n = calloc(ncap, sizeof(*n));
        if (!n)
            return NULL;
        for (size_t j = 0; j < c->cap; j++) {
            if (!c->anchors[j].name)
                continue;
            for (i = hash(c->anchors[j].name) & (ncap - 1); n[i].name; i = (i + 1) & (ncap - 1))
                ;
            n[i] = c->anchors[j];
        }
        free(c->anchors);
        c->anchors = n;
        c->cap = ncap;
    }
    for (i = hash(name) & (c->cap - 1); c->anchors[i].name; i = (i + 1) & (c->cap - 1))
        ;
    if (!(c->anchors[i].name = strdup(name)))
        return NULL;
    c->anchors[i].id = id;
    c->nanchors++;
    return &c->anchors[i];
}

/* "destinations.d.batch.other_props.b[3]": where the reader is now; "" at the top. */
static void where(const struct composer *c, char *buf, size_t n)
{
    size_t len = 0;

    buf[0] = '\0';
    for (unsigned i = 0; i < c->depth && len < n; i++) {
        const struct frame *f = &c->frames[i];
        if (f->is_map && f->key) {
            yaml_node_t *k = yaml_document_get_node(c->doc, f->key);
            const char *name =
                k && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
            len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? "." : "", name);
        } else if (!f->is_map) {
            len += (size_t)snprintf(buf + len, n - len, "[%zu]", f->items);
        }
    }
}

static int fail(struct composer *c, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct composer *c, yaml_mark_t mark, const char *fmt, ...)
{
    char path[256], msg[OSC_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    where(c, path, sizeof(path));
    osc_err_set(c->err, OSC_ECONFIG, "%s:%zu:%zu: %s%s%s", c->file, mark.line + 1, mark.column + 1,
                path, *path ? ": " : "", msg);
    if (c->err) {
        c->err->line = (unsigned)mark.line + 1;
        c->err->col = (unsigned)mark.column + 1;
    }
    return OSC_ECONFIG;
}

static void set_marks(struct composer *c, int id, const yaml_event_t *ev)
{
    yaml_node_t *n = yaml_document_get_node(c->doc, id);
    n->start_mark = ev->start_mark;
    n->end_mark = ev->end_mark;
}

/* Attach node id (standing for `expanded` nodes, `height` levels) to the open collection. */
static int attach(struct composer *c, int id, uint64_t expanded, unsigned height)
{
    struct frame *f;
    int ok;

    if (!c->depth)
        return 0; /* the root: node 1 */
    f = &c->frames[c->depth - 1];
    f->expanded += expanded;
    if (height + 1 > f->height)
        f->height = height + 1; /* a scalar (height 0) adds no level */
    if (!f->is_map) {
        ok = yaml_document_append_sequence_item(c->doc, f->id, id);
        f->items++;
    } else if (!f->key) {
        f->key = id;
        return 0;
    } else {
        ok = yaml_document_append_mapping_pair(c->doc, f->id, f->key, id);
        f->key = 0;
        f->items++;
    }
    return ok ? 0 : OSC_ENOMEM;
}

static int on_scalar(struct composer *c, const yaml_event_t *ev)
{
    int id = yaml_document_add_scalar(c->doc, ev->data.scalar.tag, ev->data.scalar.value,
                                      (int)ev->data.scalar.length, ev->data.scalar.style);
    struct anchor *a;

    if (!id)
        return OSC_ENOMEM;
    set_marks(c, id, ev);
    if (ev->data.scalar.anchor) {
        if (!(a = anchor_put(c, (const char *)ev->data.scalar.anchor, id)))
            return OSC_ENOMEM;
        a->open = 0;
        a->expanded = 1;
        a->height = 0;
    }
    return attach(c, id, 1, 0);
}

static int on_start(struct composer *c, const yaml_event_t *ev, int is_map)
{
    const yaml_char_t *anchor =
        is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    struct frame *f;
    struct anchor *a;
    int id;

    if (c->depth == CONF_MAX_DEPTH)
        return fail(c, ev->start_mark, "nested deeper than %d levels", CONF_MAX_DEPTH);
    id = is_map ? yaml_document_add_mapping(c->doc, ev->data.mapping_start.tag,
                                            ev->data.mapping_start.style)
                : yaml_document_add_sequence(c->doc, ev->data.sequence_start.tag,
                                             ev->data.sequence_start.style);
    if (!id)
        return OSC_ENOMEM;
    set_marks(c, id, ev);
    f = &c->frames[c->depth++];
    memset(f, 0, sizeof(*f));
    f->id = id;
    f->is_map = is_map;
    f->expanded = 1;
    f->height = 1; /* the collection's own level */
    if (anchor) {
        if (!(f->anchor = strdup((const char *)anchor)) ||
            !(a = anchor_put(c, (const char *)anchor, id)))
            return OSC_ENOMEM;
        a->open = 1;
    }
    return 0;
}

static int on_end(struct composer *c, const yaml_event_t *ev)
{
    struct frame f = c->frames[--c->depth];
    struct anchor *a = f.anchor ? anchor_find(c, f.anchor) : NULL;

    yaml_document_get_node(c->doc, f.id)->end_mark = ev->end_mark;
    if (a && a->id == f.id) { /* not redefined inside itself */
        a->open = 0;
        a->expanded = f.expanded;
        a->height = f.height;
    }
    free(f.anchor);
    return attach(c, f.id, f.expanded, f.height);
}

static int on_alias(struct composer *c, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    struct anchor *a = anchor_find(c, name);

    if (!a)
        return fail(c, ev->start_mark, "alias *%s names no anchor (&%s) before it", name, name);
    if (a->open)
        return fail(c, ev->start_mark, "alias *%s is inside the node it names (a cycle)", name);
    if (c->depth + a->height > CONF_MAX_DEPTH)
        return fail(c, ev->start_mark, "alias *%s nests deeper than %d levels", name,
                    CONF_MAX_DEPTH);
    c->alias_nodes += a->expanded;
    if (c->alias_nodes > CONF_MAX_ALIAS_NODES)
        return fail(c, ev->start_mark,
                    "alias *%s takes the YAML aliases of this file past %d expanded nodes (the "
                    "limit: aliases may not multiply a file's size)",
                    name, CONF_MAX_ALIAS_NODES);
    return attach(c, a->id, a->expanded, a->height);
}

int conf_compose(const char *text, size_t len, const char *file, yaml_document_t *doc,
                 struct osc_err *err)
{
    struct composer c = {.file = file, .doc = doc, .err = err};
    yaml_parser_t parser;
    yaml_event_t ev;
    int rc = 0, have_doc = 0, done = 0;

    if (!yaml_parser_initialize(&parser))
        return osc_err_set(err, OSC_ENOMEM, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!done && rc == 0) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = osc_err_set(err, OSC_ECONFIG, "%s:%zu:%zu: YAML syntax error: %s%s%s", file,
                             parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                             parser.problem ? parser.problem : "unknown problem",
                             parser.context ? " " : "", parser.context ? parser.context : "");
            break;
        }
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (have_doc) {
                rc = fail(&c, ev.start_mark,
                          "a second YAML document starts here; a config file holds one");
                break;
            }
            if (!yaml_document_initialize(doc, NULL, NULL, NULL, 1, 1))
                rc = OSC_ENOMEM;
            else
                have_doc = 1;
            break;
        case YAML_SCALAR_EVENT: rc = on_scalar(&c, &ev); break;
        case YAML_SEQUENCE_START_EVENT: rc = on_start(&c, &ev, 0); break;
        case YAML_MAPPING_START_EVENT: rc = on_start(&c, &ev, 1); break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: rc = on_end(&c, &ev); break;
        case YAML_ALIAS_EVENT: rc = on_alias(&c, &ev); break;
        case YAML_STREAM_END_EVENT: done = 1; break;
        default: break;
        }
        yaml_event_delete(&ev);
    }
    if (rc == OSC_ENOMEM)
        osc_err_set(err, rc, "out of memory reading %s", file);
    if (rc == 0 && !have_doc) /* an empty stream: a document without nodes */
        rc = yaml_document_initialize(doc, NULL, NULL, NULL, 1, 1) ? 0 : OSC_ENOMEM;
    else if (rc && have_doc)
        yaml_document_delete(doc);
    while (c.depth)
        free(c.frames[--c.depth].anchor);
    for (size_t i = 0; i < c.cap; i++)
        free(c.anchors[i].name);
    free(c.anchors);
    yaml_parser_delete(&parser);
    return rc;
}
