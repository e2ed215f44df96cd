/*
 * gql_exec.c - GraphQL validation and execution over a static schema.
 *
 * Validation walks every operation and the fragments it spreads against
 * the schema tables and collects errors in graphql-js wording, each with
 * its location. Execution implements the spec's CollectFields /
 * ExecuteField / CompleteValue steps with field merging, inline fragments,
 * fragment spreads and @skip/@include; data comes from the schema's
 * resolver. Work is bounded: validation and execution count visited nodes
 * against GQL_MAX_FIELDS_RESOLVED and nesting against 2 * GQL_MAX_DEPTH,
 * so fragment tricks cannot make a small document expensive.
 *
 * Ownership: every json_t built here is owned by the response object that
 * gql_execute() returns; resolver outputs are taken over (scalar) or freed
 * (item arrays) right after use.
 */
#include "gql.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS     100
#define MAX_EXEC_DEPTH (2 * GQL_MAX_DEPTH)

struct path_elem {
    const char *key; /* NULL: index */
    size_t index;
};

struct gql_exec {
    const struct gql_schema *schema;
    void *ud;
    struct gql_doc *doc;
    struct gql_op *op;
    json_t *vars;   /* coerced variables (object), owned */
    json_t *errors; /* array, owned */
    size_t work;
    int aborted;
    /* the field being resolved, for field errors */
    char failmsg[512];
    int failed;
    struct path_elem path[MAX_EXEC_DEPTH * 2 + 8];
    size_t depth;
};

/* ---- helpers ------------------------------------------------------------ */

static json_t *jstr(const char *s)
{
    json_t *j = json_string(s ? s : "");
    return j ? j : json_string("\xEF\xBF\xBD");
}

static void add_error(json_t *errors, unsigned line, unsigned col, const char *msg, json_t *path)
{
    json_t *e;

    if (json_array_size(errors) >= MAX_ERRORS) {
        json_decref(path);
        return;
    }
    e = json_object();
    if (!e) {
        json_decref(path);
        return;
    }
    json_object_set_new(e, "message", jstr(msg));
    if (line)
        json_object_set_new(
            e, "locations",
            json_pack("[{s:i,s:i}]", "line", (json_int_t)line, "column", (json_int_t)col));
    if (path)
        json_object_set_new(e, "path", path);
    json_array_append_new(errors, e);
}

static void errorf(json_t *errors, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void errorf(json_t *errors, unsigned line, unsigned col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    add_error(errors, line, col, msg, NULL);
}

json_t *gql_error_body(const char *msg)
{
    json_t *errors = json_array(), *body;

    add_error(errors, 0, 0, msg, NULL);
    body = json_object();
    json_object_set_new(body, "errors", errors);
    return body;
}

int gql_out_push(struct gql_out *out, const char *type, const void *obj)
{
    if (out->n == out->alloc) {
        size_t na = out->alloc ? out->alloc * 2 : 16;
        struct gql_ref *p = realloc(out->items, na * sizeof(*p));
        if (!p)
            return -1;
        out->items = p;
        out->alloc = na;
    }
    out->items[out->n].type = type;
    out->items[out->n].obj = obj;
    out->n++;
    return 0;
}

void gql_exec_fail(struct gql_exec *x, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(x->failmsg, sizeof(x->failmsg), fmt, ap);
    va_end(ap);
    x->failed = 1;
}

static const struct gql_typedef *find_type(const struct gql_schema *s, const char *name)
{
    if (!name)
        return NULL;
    for (const struct gql_typedef *t = s->types; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static const struct gql_fielddef *find_field(const struct gql_typedef *t, const char *name)
{
    if (!t || (t->kind != GQL_O_OBJECT && t->kind != GQL_O_INTERFACE) || !t->fields)
        return NULL;
    for (const struct gql_fielddef *f = t->fields; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static const struct gql_argdef *find_arg(const struct gql_argdef *args, const char *name)
{
    for (const struct gql_argdef *a = args; a && a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

static const struct gql_frag *find_frag(const struct gql_doc *doc, const char *name)
{
    for (const struct gql_frag *f = doc->frags; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static int is_member(const struct gql_typedef *u, const char *name)
{
    for (const char *const *m = u->members; m && *m; m++)
        if (strcmp(*m, name) == 0)
            return 1;
    return 0;
}

/* Can an object of concrete type `obj` be of type `cond` (object or union)? */
static int type_applies(const struct gql_schema *s, const char *cond, const char *obj)
{
    const struct gql_typedef *c;

    if (!cond || strcmp(cond, obj) == 0)
        return 1;
    c = find_type(s, cond);
    return c && (c->kind == GQL_O_UNION || c->kind == GQL_O_INTERFACE) && is_member(c, obj);
}

/* Do the possible types of parent and cond overlap? */
static int types_overlap(const struct gql_schema *s, const struct gql_typedef *parent,
                         const struct gql_typedef *cond)
{
    if (parent == cond)
        return 1;
    if (parent->kind == GQL_O_OBJECT)
        return cond->kind != GQL_O_OBJECT ? is_member(cond, parent->name) : 0;
    if (cond->kind == GQL_O_OBJECT)
        return is_member(parent, cond->name);
    for (const char *const *m = parent->members; m && *m; m++)
        if (is_member(cond, *m))
            return 1;
    (void)s;
    return 0;
}

static void itype_name(const struct gql_itype *t, char *out, size_t cap)
{
    if (t->kind == GQL_I_NONNULL) {
        char in[120];
        itype_name(t->of, in, sizeof(in));
        snprintf(out, cap, "%s!", in);
    } else if (t->kind == GQL_I_LIST) {
        char in[120];
        itype_name(t->of, in, sizeof(in));
        snprintf(out, cap, "[%s]", in);
    } else {
        snprintf(out, cap, "%s", t->name);
    }
}

static void typeref_name(const struct gql_typeref *t, char *out, size_t cap)
{
    char in[120];

    if (t->kind == GQL_T_NONNULL) {
        typeref_name(t->of, in, sizeof(in));
        snprintf(out, cap, "%s!", in);
    } else if (t->kind == GQL_T_LIST) {
        typeref_name(t->of, in, sizeof(in));
        snprintf(out, cap, "[%s]", in);
    } else {
        snprintf(out, cap, "%s", t->name);
    }
}

/* Short text of a literal for messages ("abc" with quotes, 5, FOO, {...}). */
static void print_value(const struct gql_value *v, char *out, size_t cap)
{
    switch (v->kind) {
    case GQL_V_STRING: snprintf(out, cap, "\"%.60s\"", v->str); break;
    case GQL_V_VAR: snprintf(out, cap, "$%.60s", v->str); break;
    case GQL_V_LIST: snprintf(out, cap, "[...]"); break;
    case GQL_V_OBJECT: snprintf(out, cap, "{...}"); break;
    default: snprintf(out, cap, "%.60s", v->str ? v->str : "");
    }
}

static const struct gql_itype builtin_string = {GQL_I_STRING, "String", NULL, NULL, NULL};
static const struct gql_itype builtin_int = {GQL_I_INT, "Int", NULL, NULL, NULL};
static const struct gql_itype builtin_float = {GQL_I_FLOAT, "Float", NULL, NULL, NULL};
static const struct gql_itype builtin_boolean = {GQL_I_BOOLEAN, "Boolean", NULL, NULL, NULL};
static const struct gql_itype builtin_id = {GQL_I_ID, "ID", NULL, NULL, NULL};
static const struct gql_itype builtin_boolean_nn = {GQL_I_NONNULL, NULL, &builtin_boolean, NULL,
                                                    NULL};

static const struct gql_itype *find_itype(const struct gql_schema *s, const char *name)
{
    static const struct gql_itype *const builtins[] = {
        &builtin_string, &builtin_int, &builtin_float, &builtin_boolean, &builtin_id};

    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        if (strcmp(builtins[i]->name, name) == 0)
            return builtins[i];
    for (const struct gql_itype *const *t = s->inputs; t && *t; t++)
        if (strcmp((*t)->name, name) == 0)
            return *t;
    return NULL;
}

static int parse_int_text(const char *s, long long *out)
{
    char *end;

    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == ERANGE || *end ? -1 : 0;
}

/* ---- validation --------------------------------------------------------- */

struct vctx {
    const struct gql_schema *schema;
    struct gql_doc *doc;
    struct gql_op *op;
    json_t *errors;
    size_t work;
    int too_complex;
};

static void validate_value(struct vctx *v, const struct gql_value *val, const struct gql_itype *t,
                           int depth);

/* The spec's "All Variable Usages Are Allowed": can a variable of type vt sit where t is
 * expected? A nullable variable fits a non-null position only when it has a default. */
static int var_fits(const struct gql_typeref *vt, int has_default, const struct gql_itype *t,
                    int depth)
{
    if (depth > MAX_EXEC_DEPTH)
        return 0;
    if (t->kind == GQL_I_NONNULL) {
        if (vt->kind != GQL_T_NONNULL && !has_default)
            return 0;
        return var_fits(vt->kind == GQL_T_NONNULL ? vt->of : vt, 0, t->of, depth + 1);
    }
    if (vt->kind == GQL_T_NONNULL)
        vt = vt->of;
    if (t->kind == GQL_I_LIST)
        return vt->kind == GQL_T_LIST && var_fits(vt->of, 0, t->of, depth + 1);
    return vt->kind == GQL_T_NAMED && t->name && strcmp(vt->name, t->name) == 0;
}

static void validate_value(struct vctx *v, const struct gql_value *val, const struct gql_itype *t,
                           int depth)
{
    char tn[256], vn[96];

    if (depth > MAX_EXEC_DEPTH || ++v->work > GQL_MAX_FIELDS_RESOLVED)
        return;
    if (val->kind == GQL_V_VAR) {
        for (struct gql_vardef *d = v->op->vars; d; d = d->next)
            if (strcmp(d->name, val->str) == 0) {
                d->used = 1;
                if (!var_fits(d->type, d->def != NULL, t, 0)) {
                    typeref_name(d->type, tn, sizeof(tn));
                    itype_name(t, vn, sizeof(vn));
                    errorf(v->errors, val->line, val->col,
                           "Variable \"$%s\" of type \"%s\" used in position expecting type "
                           "\"%s\".",
                           val->str, tn, vn);
                }
                return;
            }
        if (v->op->name)
            errorf(v->errors, val->line, val->col,
                   "Variable \"$%s\" is not defined by operation \"%s\".", val->str, v->op->name);
        else
            errorf(v->errors, val->line, val->col, "Variable \"$%s\" is not defined.", val->str);
        return;
    }
    itype_name(t, tn, sizeof(tn));
    print_value(val, vn, sizeof(vn));
    if (val->kind == GQL_V_NULL) {
        if (t->kind == GQL_I_NONNULL)
            errorf(v->errors, val->line, val->col, "Expected value of type \"%s\", found null.",
                   tn);
        return;
    }
    switch (t->kind) {
    case GQL_I_NONNULL: validate_value(v, val, t->of, depth + 1); return;
    case GQL_I_LIST:
        if (val->kind == GQL_V_LIST) {
            for (const struct gql_value *it = val->items; it; it = it->next)
                validate_value(v, it, t->of, depth + 1);
        } else {
            validate_value(v, val, t->of, depth + 1);
        }
        return;
    case GQL_I_INPUT:
        if (val->kind != GQL_V_OBJECT) {
            errorf(v->errors, val->line, val->col, "Expected value of type \"%s\", found %s.", tn,
                   vn);
            return;
        }
        for (const struct gql_value *f = val->items; f; f = f->next) {
            const struct gql_argdef *fd = find_arg(t->fields, f->key);
            int dup = 0;
            for (const struct gql_value *g = val->items; g != f; g = g->next)
                if (strcmp(g->key, f->key) == 0)
                    dup = 1;
            if (dup)
                errorf(v->errors, f->line, f->col,
                       "There can be only one input field named \"%s\".", f->key);
            else if (!fd)
                errorf(v->errors, f->line, f->col, "Field \"%s\" is not defined by type \"%s\".",
                       f->key, t->name);
            else
                validate_value(v, f, fd->type, depth + 1);
        }
        for (const struct gql_argdef *fd = t->fields; fd && fd->name; fd++) {
            const struct gql_value *f;
            if (fd->type->kind != GQL_I_NONNULL)
                continue;
            for (f = val->items; f; f = f->next)
                if (strcmp(f->key, fd->name) == 0)
                    break;
            if (!f) {
                char ftn[256];
                itype_name(fd->type, ftn, sizeof(ftn));
                errorf(v->errors, val->line, val->col,
                       "Field \"%s.%s\" of required type \"%s\" was not provided.", t->name,
                       fd->name, ftn);
            }
        }
        return;
    case GQL_I_ENUM:
        if (val->kind != GQL_V_ENUM) {
            errorf(v->errors, val->line, val->col,
                   "Enum \"%s\" cannot represent non-enum value: %s.", t->name, vn);
            return;
        }
        for (const char *const *e = t->values; e && *e; e++)
            if (strcmp(*e, val->str) == 0)
                return;
        errorf(v->errors, val->line, val->col, "Value \"%s\" does not exist in \"%s\" enum.",
               val->str, t->name);
        return;
    case GQL_I_STRING:
        if (val->kind != GQL_V_STRING)
            errorf(v->errors, val->line, val->col, "String cannot represent a non string value: %s",
                   vn);
        return;
    case GQL_I_ID:
        if (val->kind != GQL_V_STRING && val->kind != GQL_V_INT)
            errorf(v->errors, val->line, val->col,
                   "ID cannot represent a non-string and non-integer value: %s", vn);
        return;
    case GQL_I_INT: {
        long long n;
        if (val->kind != GQL_V_INT)
            errorf(v->errors, val->line, val->col, "Int cannot represent non-integer value: %s",
                   vn);
        else if (parse_int_text(val->str, &n) || n > INT32_MAX || n < INT32_MIN)
            errorf(v->errors, val->line, val->col,
                   "Int cannot represent non 32-bit signed integer value: %s", vn);
        return;
    }
    case GQL_I_FLOAT:
        if (val->kind != GQL_V_FLOAT && val->kind != GQL_V_INT)
            errorf(v->errors, val->line, val->col, "Float cannot represent non numeric value: %s",
                   vn);
        return;
    case GQL_I_BOOLEAN:
        if (val->kind != GQL_V_BOOL)
            errorf(v->errors, val->line, val->col,
                   "Boolean cannot represent a non boolean value: %s", vn);
        return;
    }
}

static void validate_directives(struct vctx *v, const struct gql_directive *d)
{
    for (; d; d = d->next) {
        if (strcmp(d->name, "skip") && strcmp(d->name, "include")) {
            errorf(v->errors, d->line, d->col, "Unknown directive \"@%s\".", d->name);
            continue;
        }
        int have_if = 0;
        for (const struct gql_arg *a = d->args; a; a = a->next) {
            if (strcmp(a->name, "if")) {
                errorf(v->errors, a->line, a->col, "Unknown argument \"%s\" on directive \"@%s\".",
                       a->name, d->name);
                continue;
            }
            have_if = 1;
            validate_value(v, a->value, &builtin_boolean_nn, 0);
        }
        if (!have_if)
            errorf(v->errors, d->line, d->col,
                   "Directive \"@%s\" argument \"if\" of type \"Boolean!\" is required, but it was "
                   "not provided.",
                   d->name);
    }
}

static void validate_selset(struct vctx *v, const struct gql_typedef *parent,
                            const struct gql_sel *sel, int depth);

static void validate_field(struct vctx *v, const struct gql_typedef *parent,
                           const struct gql_sel *s, int depth)
{
    const struct gql_fielddef *fd;
    const struct gql_typedef *rt;

    if (strcmp(s->name, "__typename") == 0) {
        if (s->args)
            errorf(v->errors, s->args->line, s->args->col,
                   "Unknown argument \"%s\" on field \"%s.__typename\".", s->args->name,
                   parent->name);
        if (s->has_sub)
            errorf(v->errors, s->line, s->col,
                   "Field \"__typename\" must not have a selection since type \"String!\" has no "
                   "subfields.");
        return;
    }
    if (parent->kind == GQL_O_UNION) {
        errorf(v->errors, s->line, s->col,
               "Cannot query field \"%s\" on type \"%s\". Did you mean to use an inline fragment "
               "on \"%s\"?",
               s->name, parent->name,
               parent->members && parent->members[0] ? parent->members[0] : "?");
        return;
    }
    fd = find_field(parent, s->name);
    if (!fd) {
        errorf(v->errors, s->line, s->col, "Cannot query field \"%s\" on type \"%s\".", s->name,
               parent->name);
        return;
    }
    for (const struct gql_arg *a = s->args; a; a = a->next) {
        const struct gql_argdef *ad = find_arg(fd->args, a->name);
        int dup = 0;
        for (const struct gql_arg *b = s->args; b != a; b = b->next)
            if (strcmp(a->name, b->name) == 0)
                dup = 1;
        if (dup)
            errorf(v->errors, a->line, a->col, "There can be only one argument named \"%s\".",
                   a->name);
        else if (!ad)
            errorf(v->errors, a->line, a->col, "Unknown argument \"%s\" on field \"%s.%s\".",
                   a->name, parent->name, s->name);
        else
            validate_value(v, a->value, ad->type, depth);
    }
    for (const struct gql_argdef *ad = fd->args; ad && ad->name; ad++) {
        const struct gql_arg *a;
        if (ad->type->kind != GQL_I_NONNULL)
            continue;
        for (a = s->args; a; a = a->next)
            if (strcmp(a->name, ad->name) == 0)
                break;
        if (!a) {
            char tn[256];
            itype_name(ad->type, tn, sizeof(tn));
            errorf(
                v->errors, s->line, s->col,
                "Field \"%s\" argument \"%s\" of type \"%s\" is required, but it was not provided.",
                s->name, ad->name, tn);
        }
    }
    rt = find_type(v->schema, fd->type);
    if (!rt || rt->kind == GQL_O_SCALAR || rt->kind == GQL_O_ENUM) {
        if (s->has_sub)
            errorf(v->errors, s->line, s->col,
                   "Field \"%s\" must not have a selection since type \"%s%s%s\" has no subfields.",
                   s->name, fd->list ? "[" : "", fd->type, fd->list ? "]" : "");
        return;
    }
    if (!s->has_sub) {
        errorf(v->errors, s->line, s->col,
               "Field \"%s\" of type \"%s%s%s\" must have a selection of subfields. Did you mean "
               "\"%s { ... }\"?",
               s->name, fd->list ? "[" : "", fd->type, fd->list ? "]" : "", s->name);
        return;
    }
    validate_selset(v, rt, s->sub, depth + 1);
}

static void validate_selset(struct vctx *v, const struct gql_typedef *parent,
                            const struct gql_sel *sel, int depth)
{
    if (depth > MAX_EXEC_DEPTH) {
        if (!v->too_complex)
            errorf(v->errors, sel ? sel->line : 0, sel ? sel->col : 0,
                   "Query is nested too deeply (more than %d levels).", MAX_EXEC_DEPTH);
        v->too_complex = 1;
        return;
    }
    for (const struct gql_sel *s = sel; s; s = s->next) {
        if (++v->work > GQL_MAX_FIELDS_RESOLVED) {
            if (!v->too_complex)
                errorf(v->errors, s->line, s->col, "Query is too complex.");
            v->too_complex = 1;
            return;
        }
        validate_directives(v, s->dirs);
        if (s->kind == GQL_S_FIELD) {
            validate_field(v, parent, s, depth);
        } else if (s->kind == GQL_S_INLINE) {
            const struct gql_typedef *c = parent;
            if (s->type_cond) {
                c = find_type(v->schema, s->type_cond);
                if (!c || (c->kind != GQL_O_OBJECT && c->kind != GQL_O_UNION &&
                           c->kind != GQL_O_INTERFACE)) {
                    errorf(v->errors, s->line, s->col, "Unknown type \"%s\".", s->type_cond);
                    continue;
                }
                if (!types_overlap(v->schema, parent, c)) {
                    errorf(v->errors, s->line, s->col,
                           "Fragment cannot be spread here as objects of type \"%s\" can never be "
                           "of type \"%s\".",
                           parent->name, c->name);
                    continue;
                }
            }
            validate_selset(v, c, s->sub, depth + 1);
        } else {
            struct gql_frag *f = (struct gql_frag *)find_frag(v->doc, s->name);
            const struct gql_typedef *c;
            if (!f) {
                errorf(v->errors, s->line, s->col, "Unknown fragment \"%s\".", s->name);
                continue;
            }
            f->used = 1;
            if (f->visiting) {
                errorf(v->errors, s->line, s->col, "Cannot spread fragment \"%s\" within itself.",
                       s->name);
                continue;
            }
            c = find_type(v->schema, f->type_cond);
            if (!c ||
                (c->kind != GQL_O_OBJECT && c->kind != GQL_O_UNION && c->kind != GQL_O_INTERFACE))
                continue; /* reported once for the fragment itself */
            if (!types_overlap(v->schema, parent, c)) {
                errorf(v->errors, s->line, s->col,
                       "Fragment \"%s\" cannot be spread here as objects of type \"%s\" can never "
                       "be of type \"%s\".",
                       s->name, parent->name, c->name);
                continue;
            }
            f->visiting = 1;
            validate_selset(v, c, f->sel, depth + 1);
            f->visiting = 0;
        }
    }
}

static int builtin_or_input_type(const struct gql_schema *s, const struct gql_typeref *t)
{
    while (t->kind != GQL_T_NAMED)
        t = t->of;
    return find_itype(s, t->name) != NULL;
}

static void validate_document(struct vctx *v)
{
    size_t nops = 0;

    for (struct gql_op *op = v->doc->ops; op; op = op->next)
        nops++;
    for (struct gql_op *op = v->doc->ops; op; op = op->next) {
        const char *root_name = op->kind == GQL_OP_QUERY      ? v->schema->query_type
                                : op->kind == GQL_OP_MUTATION ? v->schema->mutation_type
                                                              : NULL;
        const struct gql_typedef *root = find_type(v->schema, root_name);

        if (!op->name && nops > 1)
            errorf(v->errors, op->line, op->col,
                   "This anonymous operation must be the only defined operation.");
        if (op->name)
            for (struct gql_op *o = v->doc->ops; o != op; o = o->next)
                if (o->name && strcmp(o->name, op->name) == 0)
                    errorf(v->errors, op->line, op->col,
                           "There can be only one operation named \"%s\".", op->name);
        for (struct gql_vardef *d = op->vars; d; d = d->next) {
            for (struct gql_vardef *e = op->vars; e != d; e = e->next)
                if (strcmp(e->name, d->name) == 0)
                    errorf(v->errors, d->line, d->col,
                           "There can be only one variable named \"$%s\".", d->name);
            if (!builtin_or_input_type(v->schema, d->type)) {
                const struct gql_typeref *t = d->type;
                while (t->kind != GQL_T_NAMED)
                    t = t->of;
                errorf(v->errors, t->line, t->col, "Unknown type \"%s\".", t->name);
            }
        }
        if (!root) {
            errorf(v->errors, op->line, op->col,
                   "Schema is not configured to execute %s operation.",
                   op->kind == GQL_OP_MUTATION ? "mutation" : "subscription");
            continue;
        }
        v->op = op;
        validate_directives(v, op->dirs);
        validate_selset(v, root, op->sel, 1);
        for (struct gql_vardef *d = op->vars; d; d = d->next)
            if (!d->used) {
                if (op->name)
                    errorf(v->errors, d->line, d->col,
                           "Variable \"$%s\" is never used in operation \"%s\".", d->name,
                           op->name);
                else
                    errorf(v->errors, d->line, d->col, "Variable \"$%s\" is never used.", d->name);
            }
    }
    for (struct gql_frag *f = v->doc->frags; f; f = f->next) {
        const struct gql_typedef *c = find_type(v->schema, f->type_cond);
        for (struct gql_frag *g = v->doc->frags; g != f; g = g->next)
            if (strcmp(g->name, f->name) == 0)
                errorf(v->errors, f->line, f->col, "There can be only one fragment named \"%s\".",
                       f->name);
        if (!c || (c->kind != GQL_O_OBJECT && c->kind != GQL_O_UNION && c->kind != GQL_O_INTERFACE))
            errorf(v->errors, f->line, f->col, "Unknown type \"%s\".", f->type_cond);
        else if (!f->used)
            errorf(v->errors, f->line, f->col, "Fragment \"%s\" is never used.", f->name);
    }
}

/* ---- variables ---------------------------------------------------------- */

static int coerce_itype(struct gql_exec *x, json_t *val, const struct gql_itype *t, char *why,
                        size_t cap, int depth);

static int coerce_itype(struct gql_exec *x, json_t *val, const struct gql_itype *t, char *why,
                        size_t cap, int depth)
{
    char tn[256];

    if (depth > MAX_EXEC_DEPTH) {
        snprintf(why, cap, "Value is nested too deeply.");
        return -1;
    }
    itype_name(t, tn, sizeof(tn));
    if (json_is_null(val)) {
        if (t->kind == GQL_I_NONNULL) {
            snprintf(why, cap, "Expected non-nullable type \"%s\" not to be null.", tn);
            return -1;
        }
        return 0;
    }
    switch (t->kind) {
    case GQL_I_NONNULL: return coerce_itype(x, val, t->of, why, cap, depth + 1);
    case GQL_I_LIST:
        if (json_is_array(val)) {
            size_t i;
            json_t *it;
            json_array_foreach(val, i, it)
            {
                if (coerce_itype(x, it, t->of, why, cap, depth + 1))
                    return -1;
            }
            return 0;
        }
        return coerce_itype(x, val, t->of, why, cap, depth + 1);
    case GQL_I_INPUT: {
        const char *k;
        json_t *it;
        if (!json_is_object(val)) {
            snprintf(why, cap, "Expected type \"%s\" to be an object.", t->name);
            return -1;
        }
        json_object_foreach(val, k, it)
        {
            const struct gql_argdef *fd = find_arg(t->fields, k);
            if (!fd) {
                snprintf(why, cap, "Field \"%.100s\" is not defined by type \"%s\".", k, t->name);
                return -1;
            }
            if (coerce_itype(x, it, fd->type, why, cap, depth + 1))
                return -1;
        }
        for (const struct gql_argdef *fd = t->fields; fd && fd->name; fd++)
            if (fd->type->kind == GQL_I_NONNULL && !json_object_get(val, fd->name)) {
                char ftn[256];
                itype_name(fd->type, ftn, sizeof(ftn));
                snprintf(why, cap, "Field \"%s\" of required type \"%s\" was not provided.",
                         fd->name, ftn);
                return -1;
            }
        return 0;
    }
    case GQL_I_ENUM:
        if (json_is_string(val))
            for (const char *const *e = t->values; e && *e; e++)
                if (strcmp(*e, json_string_value(val)) == 0)
                    return 0;
        snprintf(why, cap, "Value does not exist in \"%s\" enum.", t->name);
        return -1;
    case GQL_I_STRING:
        if (json_is_string(val))
            return 0;
        snprintf(why, cap, "String cannot represent a non string value.");
        return -1;
    case GQL_I_ID:
        if (json_is_string(val) || json_is_integer(val))
            return 0;
        snprintf(why, cap, "ID cannot represent value.");
        return -1;
    case GQL_I_INT:
        if (json_is_integer(val) && json_integer_value(val) <= INT32_MAX &&
            json_integer_value(val) >= INT32_MIN)
            return 0;
        snprintf(why, cap, "Int cannot represent non-integer value.");
        return -1;
    case GQL_I_FLOAT:
        if (json_is_number(val))
            return 0;
        snprintf(why, cap, "Float cannot represent non numeric value.");
        return -1;
    case GQL_I_BOOLEAN:
        if (json_is_boolean(val))
            return 0;
        snprintf(why, cap, "Boolean cannot represent a non boolean value.");
        return -1;
    }
    (void)x;
    return -1;
}

static int coerce_typeref(struct gql_exec *x, json_t *val, const struct gql_typeref *t, char *why,
                          size_t cap, int depth)
{
    if (depth > MAX_EXEC_DEPTH) {
        snprintf(why, cap, "Value is nested too deeply.");
        return -1;
    }
    if (json_is_null(val)) {
        if (t->kind == GQL_T_NONNULL) {
            char tn[256];
            typeref_name(t, tn, sizeof(tn));
            snprintf(why, cap, "Expected non-nullable type \"%s\" not to be null.", tn);
            return -1;
        }
        return 0;
    }
    if (t->kind == GQL_T_NONNULL)
        return coerce_typeref(x, val, t->of, why, cap, depth + 1);
    if (t->kind == GQL_T_LIST) {
        if (json_is_array(val)) {
            size_t i;
            json_t *it;
            json_array_foreach(val, i, it)
            {
                if (coerce_typeref(x, it, t->of, why, cap, depth + 1))
                    return -1;
            }
            return 0;
        }
        return coerce_typeref(x, val, t->of, why, cap, depth + 1);
    }
    return coerce_itype(x, val, find_itype(x->schema, t->name), why, cap, depth + 1);
}

static json_t *literal_to_json(struct gql_exec *x, const struct gql_value *v, int depth);

static json_t *literal_to_json(struct gql_exec *x, const struct gql_value *v, int depth)
{
    json_t *j;

    if (depth > MAX_EXEC_DEPTH)
        return json_null();
    switch (v->kind) {
    case GQL_V_VAR: {
        json_t *val = x->vars ? json_object_get(x->vars, v->str) : NULL;
        return val ? json_incref(val) : json_null();
    }
    case GQL_V_INT: {
        long long n;
        if (parse_int_text(v->str, &n))
            return json_real(strtod(v->str, NULL));
        return json_integer(n);
    }
    case GQL_V_FLOAT: return json_real(strtod(v->str, NULL));
    case GQL_V_STRING:
    case GQL_V_ENUM: return jstr(v->str);
    case GQL_V_BOOL: return json_boolean(v->boolean);
    case GQL_V_NULL: return json_null();
    case GQL_V_LIST:
        j = json_array();
        for (const struct gql_value *it = v->items; it && j; it = it->next)
            json_array_append_new(j, literal_to_json(x, it, depth + 1));
        return j;
    case GQL_V_OBJECT:
        j = json_object();
        for (const struct gql_value *it = v->items; it && j; it = it->next) {
            /* an omitted variable leaves the field out, as the spec says */
            if (it->kind == GQL_V_VAR && (!x->vars || !json_object_get(x->vars, it->str)))
                continue;
            json_object_set_new(j, it->key, literal_to_json(x, it, depth + 1));
        }
        return j;
    }
    return json_null();
}

/* Coerce the request's variables for op into x->vars; errors go to x->errors. */
static int coerce_variables(struct gql_exec *x, json_t *given)
{
    char why[300];

    x->vars = json_object();
    if (!x->vars)
        return -1;
    for (struct gql_vardef *d = x->op->vars; d; d = d->next) {
        json_t *val = json_is_object(given) ? json_object_get(given, d->name) : NULL;
        char tn[256];
        typeref_name(d->type, tn, sizeof(tn));
        if (!val) {
            if (d->def) {
                json_object_set_new(x->vars, d->name, literal_to_json(x, d->def, 0));
                continue;
            }
            if (d->type->kind == GQL_T_NONNULL)
                errorf(x->errors, d->line, d->col,
                       "Variable \"$%s\" of required type \"%s\" was not provided.", d->name, tn);
            continue;
        }
        if (coerce_typeref(x, val, d->type, why, sizeof(why), 0)) {
            char *dump = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
            errorf(x->errors, d->line, d->col, "Variable \"$%s\" got invalid value %.80s; %s",
                   d->name, dump ? dump : "?", why);
            free(dump);
            continue;
        }
        json_object_set(x->vars, d->name, val);
    }
    return json_array_size(x->errors) ? -1 : 0;
}

/* ---- execution ---------------------------------------------------------- */

struct group {
    const char *key;
    const struct gql_sel **fields;
    size_t n, alloc;
};

struct groups {
    struct group *v;
    size_t n, alloc;
};

static void groups_free(struct groups *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->v[i].fields);
    free(g->v);
}

static int group_add(struct groups *g, const struct gql_sel *s)
{
    const char *key = s->alias ? s->alias : s->name;
    struct group *gr = NULL;

    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->v[i].key, key) == 0) {
            gr = &g->v[i];
            break;
        }
    if (!gr) {
        if (g->n == g->alloc) {
            size_t na = g->alloc ? g->alloc * 2 : 8;
            struct group *p = realloc(g->v, na * sizeof(*p));
            if (!p)
                return -1;
            g->v = p;
            g->alloc = na;
        }
        gr = &g->v[g->n++];
        memset(gr, 0, sizeof(*gr));
        gr->key = key;
    }
    if (gr->n == gr->alloc) {
        size_t na = gr->alloc ? gr->alloc * 2 : 2;
        const struct gql_sel **p = realloc(gr->fields, na * sizeof(*p));
        if (!p)
            return -1;
        gr->fields = p;
        gr->alloc = na;
    }
    gr->fields[gr->n++] = s;
    return 0;
}

static int skipped(struct gql_exec *x, const struct gql_directive *d)
{
    for (; d; d = d->next) {
        int is_skip = strcmp(d->name, "skip") == 0;
        for (const struct gql_arg *a = d->args; a; a = a->next) {
            json_t *v = literal_to_json(x, a->value, 0);
            int t = json_is_true(v);
            json_decref(v);
            if (is_skip ? t : !t)
                return 1;
        }
    }
    return 0;
}

static int collect(struct gql_exec *x, const char *type, const struct gql_sel *sel,
                   struct groups *g, int depth)
{
    if (depth > MAX_EXEC_DEPTH)
        return 0;
    for (const struct gql_sel *s = sel; s; s = s->next) {
        if (skipped(x, s->dirs))
            continue;
        if (s->kind == GQL_S_FIELD) {
            if (group_add(g, s))
                return -1;
        } else if (s->kind == GQL_S_INLINE) {
            if (type_applies(x->schema, s->type_cond, type) &&
                collect(x, type, s->sub, g, depth + 1))
                return -1;
        } else {
            const struct gql_frag *f = find_frag(x->doc, s->name);
            if (f && type_applies(x->schema, f->type_cond, type) &&
                collect(x, type, f->sel, g, depth + 1))
                return -1;
        }
    }
    return 0;
}

static json_t *path_json(const struct gql_exec *x)
{
    json_t *p = json_array();

    for (size_t i = 0; p && i < x->depth; i++)
        json_array_append_new(p, x->path[i].key ? jstr(x->path[i].key)
                                                : json_integer((json_int_t)x->path[i].index));
    return p;
}

static json_t *exec_object(struct gql_exec *x, struct gql_ref self,
                           const struct gql_sel *const *subs, size_t nsubs);

static int push_path(struct gql_exec *x, const char *key, size_t index)
{
    if (x->depth >= sizeof(x->path) / sizeof(x->path[0]))
        return -1;
    x->path[x->depth].key = key;
    x->path[x->depth].index = index;
    x->depth++;
    return 0;
}

static json_t *complete_item(struct gql_exec *x, struct gql_ref item, const struct group *gr)
{
    const struct gql_sel **subs = malloc(gr->n * sizeof(*subs));
    json_t *r;

    if (!subs)
        return NULL;
    for (size_t i = 0; i < gr->n; i++)
        subs[i] = gr->fields[i]->sub;
    r = exec_object(x, item, subs, gr->n);
    free(subs);
    return r;
}

static json_t *exec_field(struct gql_exec *x, struct gql_ref self, const struct group *gr)
{
    const struct gql_sel *s = gr->fields[0];
    const struct gql_typedef *t = find_type(x->schema, self.type);
    const struct gql_fielddef *fd;
    const struct gql_typedef *rt;
    struct gql_out out;
    json_t *args = NULL, *result = NULL;

    if (strcmp(s->name, "__typename") == 0)
        return jstr(self.type);
    fd = find_field(t, s->name);
    if (!fd)
        return json_null(); /* cannot happen after validation */
    if (++x->work > GQL_MAX_FIELDS_RESOLVED) {
        if (!x->aborted)
            errorf(x->errors, s->line, s->col, "Query is too complex (more than %u fields).",
                   GQL_MAX_FIELDS_RESOLVED);
        x->aborted = 1;
        return json_null();
    }
    args = json_object();
    for (const struct gql_arg *a = s->args; a && args; a = a->next) {
        if (a->value->kind == GQL_V_VAR && (!x->vars || !json_object_get(x->vars, a->value->str)))
            continue;
        json_object_set_new(args, a->name, literal_to_json(x, a->value, 0));
    }
    memset(&out, 0, sizeof(out));
    x->failed = 0;
    if (!args || x->schema->resolve(x->ud, x, self, fd, args, &out) || x->failed) {
        add_error(x->errors, s->line, s->col, x->failed ? x->failmsg : "internal error",
                  path_json(x));
        result = json_null();
        goto out;
    }
    rt = find_type(x->schema, fd->type);
    if (!rt || rt->kind == GQL_O_SCALAR || rt->kind == GQL_O_ENUM) {
        result = out.scalar ? out.scalar : json_null();
        out.scalar = NULL;
        goto out;
    }
    if (fd->list && out.null_list) {
        result = json_null();
    } else if (fd->list) {
        result = json_array();
        for (size_t i = 0; result && i < out.n && !x->aborted; i++) {
            if (push_path(x, NULL, i))
                break;
            json_array_append_new(result, complete_item(x, out.items[i], gr));
            x->depth--;
        }
    } else if (out.one.type) {
        result = complete_item(x, out.one, gr);
    } else {
        result = json_null();
    }
out:
    json_decref(out.scalar);
    free(out.items);
    json_decref(args);
    return result ? result : json_null();
}

static json_t *exec_object(struct gql_exec *x, struct gql_ref self,
                           const struct gql_sel *const *subs, size_t nsubs)
{
    struct groups g = {0};
    json_t *obj = json_object();

    if (!obj)
        return NULL;
    if (x->depth >= MAX_EXEC_DEPTH * 2) {
        x->aborted = 1;
        return obj;
    }
    for (size_t i = 0; i < nsubs; i++)
        if (collect(x, self.type, subs[i], &g, 0)) {
            x->aborted = 1;
            goto out;
        }
    for (size_t i = 0; i < g.n && !x->aborted; i++) {
        if (push_path(x, g.v[i].key, 0))
            break;
        json_object_set_new(obj, g.v[i].key, exec_field(x, self, &g.v[i]));
        x->depth--;
    }
out:
    groups_free(&g);
    return obj;
}

json_t *gql_execute(const struct gql_schema *schema, void *ud, const void *root, const char *query,
                    size_t query_len, const char *op_name, json_t *variables)
{
    struct gql_exec *x = calloc(1, sizeof(*x));
    struct gql_error perr;
    struct vctx v;
    json_t *body = json_object(), *data = NULL;
    const struct gql_sel *subs[1];

    if (!x || !body)
        goto oom;
    x->schema = schema;
    x->ud = ud;
    x->errors = json_array();
    if (!x->errors)
        goto oom;
    if (gql_parse(query, query_len, &x->doc, &perr)) {
        errorf(x->errors, perr.line, perr.col, "%s", perr.msg);
        goto done;
    }
    memset(&v, 0, sizeof(v));
    v.schema = schema;
    v.doc = x->doc;
    v.errors = x->errors;
    validate_document(&v);
    if (json_array_size(x->errors))
        goto done;
    for (struct gql_op *op = x->doc->ops; op; op = op->next) {
        if (op_name ? op->name && strcmp(op->name, op_name) == 0 : 1) {
            if (x->op && !op_name) {
                errorf(x->errors, 0, 0,
                       "Must provide operation name if query contains multiple operations.");
                goto done;
            }
            x->op = op;
        }
    }
    if (!x->op) {
        errorf(x->errors, 0, 0, "Unknown operation named \"%s\".", op_name ? op_name : "");
        goto done;
    }
    if (coerce_variables(x, variables))
        goto done;
    subs[0] = x->op->sel;
    data = exec_object(x,
                       (struct gql_ref){x->op->kind == GQL_OP_MUTATION ? schema->mutation_type
                                                                       : schema->query_type,
                                        root},
                       subs, 1);
    if (x->aborted) {
        json_decref(data);
        data = json_null();
    }
    json_object_set_new(body, "data", data ? data : json_null());
done:
    if (json_array_size(x->errors))
        json_object_set(body, "errors", x->errors);
    json_decref(x->errors);
    json_decref(x->vars);
    gql_doc_free(x->doc);
    free(x);
    return body;
oom:
    if (x)
        json_decref(x->errors);
    free(x);
    json_decref(body);
    return NULL;
}
