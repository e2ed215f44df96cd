/*
 * gql.h - a small GraphQL engine for the simulator: parser, schema
 * description, validation and execution (private to src/sim).
 *
 * The parser turns a query document into an AST held in one arena (freed
 * at once with gql_doc_free()). It understands the executable part of the
 * GraphQL spec (October 2021): operations with names and variable
 * definitions, aliases, arguments with every literal kind, directives,
 * nested selection sets, inline fragments and fragment spreads. It is
 * meant to face hostile input: nesting depth, document size and AST memory
 * are bounded, and every error carries a 1-based line and column.
 *
 * The schema is a static table of object/union types (output) and input
 * types; the data behind it is reached through one resolver callback, so
 * the same executor serves the Mapped and the OfficeSpace surfaces.
 * gql_execute() validates the whole document first (unknown fields,
 * arguments, literal types, enum values, selection rules, fragments,
 * variables) and only then runs the chosen operation, like a real server:
 * a document with validation errors gives {"errors":[...]} and no data.
 */
#ifndef OSC_SIM_GQL_H
#define OSC_SIM_GQL_H

#include <stddef.h>

#include <jansson.h>

#define GQL_MAX_DEPTH           48                  /* selection and value nesting */
#define GQL_MAX_DOCUMENT        (8u * 1024 * 1024)  /* bytes of query text */
#define GQL_MAX_ARENA           (64u * 1024 * 1024) /* bytes of AST */
#define GQL_MAX_FIELDS_RESOLVED 8000000u            /* work budget of one request */

/* ---- AST ---------------------------------------------------------------- */

enum gql_vkind {
    GQL_V_VAR = 1,
    GQL_V_INT,
    GQL_V_FLOAT,
    GQL_V_STRING,
    GQL_V_BOOL,
    GQL_V_NULL,
    GQL_V_ENUM,
    GQL_V_LIST,
    GQL_V_OBJECT
};

struct gql_value {
    enum gql_vkind kind;
    unsigned line, col;
    const char *str; /* var name, number text, string, enum name */
    int boolean;
    struct gql_value *items; /* list items or object fields (linked by next) */
    const char *key;         /* when this value is an object field */
    struct gql_value *next;
};

struct gql_arg {
    const char *name;
    unsigned line, col;
    struct gql_value *value;
    struct gql_arg *next;
};

struct gql_directive {
    const char *name;
    unsigned line, col;
    struct gql_arg *args;
    struct gql_directive *next;
};

enum gql_skind { GQL_S_FIELD = 1, GQL_S_INLINE, GQL_S_SPREAD };

struct gql_sel {
    enum gql_skind kind;
    unsigned line, col;
    const char *alias;     /* field; NULL when none */
    const char *name;      /* field name or fragment name (spread) */
    const char *type_cond; /* inline fragment; NULL when absent */
    struct gql_arg *args;
    struct gql_directive *dirs;
    struct gql_sel *sub; /* first selection of the sub-selection set, or NULL */
    int has_sub;         /* a { } was written (possibly empty: a syntax error) */
    struct gql_sel *next;
};

enum gql_tkind { GQL_T_NAMED = 1, GQL_T_LIST, GQL_T_NONNULL };

struct gql_typeref {
    enum gql_tkind kind;
    const char *name; /* named */
    struct gql_typeref *of;
    unsigned line, col;
};

struct gql_vardef {
    const char *name;
    unsigned line, col;
    struct gql_typeref *type;
    struct gql_value *def; /* default value or NULL */
    int used;              /* validation: referenced by the operation */
    struct gql_vardef *next;
};

enum gql_opkind { GQL_OP_QUERY = 1, GQL_OP_MUTATION, GQL_OP_SUBSCRIPTION };

struct gql_op {
    enum gql_opkind kind;
    const char *name; /* NULL when anonymous */
    unsigned line, col;
    struct gql_vardef *vars;
    struct gql_directive *dirs;
    struct gql_sel *sel;
    struct gql_op *next;
};

struct gql_frag {
    const char *name;
    const char *type_cond;
    unsigned line, col;
    struct gql_sel *sel;
    int visiting; /* validation: cycle detection */
    int used;     /* validation: spread somewhere */
    struct gql_frag *next;
};

struct gql_doc {
    struct gql_op *ops;
    struct gql_frag *frags;
    struct gql_arena *arena; /* owns every node and string */
};

/* A parse error: message and position (1-based). */
struct gql_error {
    char msg[256];
    unsigned line, col;
};

/*
 * Parse text (len bytes, need not be NUL-terminated). On success returns 0
 * and *out is a document the caller frees with gql_doc_free(). On failure
 * returns -1 with err filled ("Syntax Error: ..." and where) and *out NULL.
 */
int gql_parse(const char *text, size_t len, struct gql_doc **out, struct gql_error *err);
/* Free a document; accepts NULL. */
void gql_doc_free(struct gql_doc *doc);

/* ---- schema ------------------------------------------------------------- */

enum gql_ikind {
    GQL_I_STRING = 1,
    GQL_I_INT,
    GQL_I_FLOAT,
    GQL_I_BOOLEAN,
    GQL_I_ID,
    GQL_I_ENUM,
    GQL_I_INPUT,
    GQL_I_LIST,
    GQL_I_NONNULL
};

struct gql_argdef;

/* An input type. Named kinds have a name; LIST/NONNULL wrap `of`. */
struct gql_itype {
    enum gql_ikind kind;
    const char *name;
    const struct gql_itype *of;
    const struct gql_argdef *fields; /* INPUT: terminated by a NULL name */
    const char *const *values;       /* ENUM: NULL-terminated */
};

struct gql_argdef {
    const char *name;
    const struct gql_itype *type;
};

enum gql_okind { GQL_O_SCALAR = 1, GQL_O_ENUM, GQL_O_OBJECT, GQL_O_UNION, GQL_O_INTERFACE };

struct gql_fielddef {
    const char *name;
    const char *type;              /* named output type of the field (or its items) */
    int list;                      /* 1: a list of `type` */
    const struct gql_argdef *args; /* NULL, or terminated by a NULL name */
    int id;                        /* for the resolver's switch */
};

struct gql_typedef {
    const char *name;
    enum gql_okind kind;
    const struct gql_fielddef *fields; /* OBJECT, INTERFACE: terminated by a NULL name */
    const char *const *members;        /* UNION, INTERFACE: NULL-terminated object types */
};

/* A reference to a data object: its concrete object type and a pointer. */
struct gql_ref {
    const char *type;
    const void *obj;
};

/* What a resolver returns for one field. */
struct gql_out {
    json_t *scalar;        /* scalar/enum fields: a new reference, or NULL for null */
    struct gql_ref one;    /* object fields: one.type NULL means null */
    struct gql_ref *items; /* list fields: filled with gql_out_push() */
    size_t n, alloc;
    int null_list; /* list fields: answer null rather than [] */
};

/* Append to a list result; 0 or -1 (out of memory). */
int gql_out_push(struct gql_out *out, const char *type, const void *obj);

struct gql_exec;

/*
 * Resolve field f of object self. args is a JSON object of the field's
 * arguments (variables substituted, enums as strings; borrowed). Fill out;
 * return 0, or -1 after gql_exec_fail() for a field error.
 */
typedef int (*gql_resolve_fn)(void *ud, struct gql_exec *x, struct gql_ref self,
                              const struct gql_fielddef *f, json_t *args, struct gql_out *out);

struct gql_schema {
    const struct gql_typedef *types;       /* terminated by a NULL name */
    const struct gql_itype *const *inputs; /* named input types (for variables), NULL-terminated */
    const char *query_type;
    const char *mutation_type; /* NULL: no mutations */
    gql_resolve_fn resolve;
};

/* Record a field error with a message (the executor adds path and location). */
void gql_exec_fail(struct gql_exec *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Run a request: parse query, validate it against schema, execute the
 * operation named op_name (may be NULL) with variables (JSON object or
 * NULL, borrowed), resolving through schema->resolve(ud, ...). root is the
 * object passed as `self` to root fields.
 *
 * Returns a new JSON object {"data":...} and/or {"errors":[...]} that the
 * caller owns (json_decref); NULL only when out of memory.
 */
json_t *gql_execute(const struct gql_schema *schema, void *ud, const void *root, const char *query,
                    size_t query_len, const char *op_name, json_t *variables);

/* {"errors":[{"message": msg}]} as a new object (for transport-level failures). */
json_t *gql_error_body(const char *msg);

#endif
