/*
 * lua_batch.c - grouping: code. A user's Lua 5.4 function turns a batch of
 * records into a request body, inside a sandbox.
 *
 * Invariants: the state is created with our allocator, which refuses to go
 * past mem_limit; a count hook raises an error after instr_limit VM
 * instructions per call (the counter is reset before each call) and, once
 * spent, on every instruction until the call returns, so a pcall in the
 * user's code cannot swallow it; setmetatable refuses __gc, so no user code
 * runs as a finalizer outside the hook; the global table holds only safe
 * libraries (no io, os, package, debug, and base without
 * dofile/loadfile/load/require/collectgarbage), so the code can neither
 * touch files nor run other code. Every call that can raise a Lua error
 * (memory, stack) runs under lua_pcall: an unprotected one would abort the
 * process. JSON crosses the boundary through jansson: records in, body out.
 */
#include "delivery_int.h"

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEPTH_MAX 64

struct lua_batch {
    lua_State *L;
    size_t used, limit;
    long instr_limit;
    int spent;    /* the instruction budget of the current call is used up */
    int batch_fn; /* registry reference to the user's batch function */
};

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lua_batch *lb = ud;
    size_t old = ptr ? osize : 0;

    if (nsize == 0) {
        free(ptr);
        lb->used -= old;
        return NULL;
    }
    if (nsize > old && lb->used - old + nsize > lb->limit)
        return NULL; /* Lua raises "not enough memory" */
    void *p = realloc(ptr, nsize);
    if (p)
        lb->used = lb->used - old + nsize;
    return p;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    void *ud;
    struct lua_batch *lb;

    (void)ar;
    lua_getallocf(L, &ud);
    lb = ud;
    if (!lb->spent) {
        /* from now on every instruction fails: a pcall in the code only delays the end */
        lb->spent = 1;
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    }
    luaL_error(L, "instruction limit exceeded");
}

/* The message of the error at the top; error({}) or error(nil) leave no string. */
static const char *err_text(lua_State *L)
{
    const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    return m ? m : "(an error value that is not a string)";
}

/* ---- JSON <-> Lua ---------------------------------------------------------- */

static void push_json(lua_State *L, json_t *v, int depth)
{
    size_t i;
    const char *k;
    json_t *x;

    luaL_checkstack(L, 4, "json nesting");
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        lua_createtable(L, 0, (int)json_object_size(v));
        json_object_foreach(v, k, x)
        {
            push_json(L, x, depth + 1);
            lua_setfield(L, -2, k);
        }
        break;
    case JSON_ARRAY:
        lua_createtable(L, (int)json_array_size(v), 0);
        json_array_foreach(v, i, x)
        {
            push_json(L, x, depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    case JSON_STRING: lua_pushlstring(L, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(v)); break;
    case JSON_REAL: lua_pushnumber(L, json_real_value(v)); break;
    case JSON_TRUE: lua_pushboolean(L, 1); break;
    case JSON_FALSE: lua_pushboolean(L, 0); break;
    default: lua_getfield(L, LUA_REGISTRYINDEX, "osc_json_null"); break;
    }
}

/* Lua value at idx -> new json_t; NULL with *why on unsupported values. */
static json_t *to_json(lua_State *L, int idx, int depth, const char **why)
{
    idx = lua_absindex(L, idx);
    /* each level pushes up to 2 slots; C code gets only LUA_MINSTACK unless it asks */
    if (depth > JSON_DEPTH_MAX || !lua_checkstack(L, 3)) {
        *why = "value nested too deeply";
        return NULL;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return json_null();
    case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return json_integer((json_int_t)lua_tointeger(L, idx));
        return json_real(lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        json_t *j = json_stringn(s, n);
        if (!j)
            *why = "string is not valid UTF-8";
        return j;
    }
    case LUA_TLIGHTUSERDATA: return json_null(); /* json.null */
    case LUA_TTABLE: {
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        int is_array = n > 0;
        json_t *out;
        if (!is_array) {
            /* an empty table or one with keys: an object (empty -> {}) */
            lua_pushnil(L);
            if (lua_next(L, idx) == 0) {
                return json_object();
            }
            lua_pop(L, 2);
        }
        if (is_array) {
            out = json_array();
            for (lua_Integer i = 1; i <= n && out; i++) {
                json_t *e;
                lua_rawgeti(L, idx, i);
                e = to_json(L, -1, depth + 1, why);
                lua_pop(L, 1);
                if (!e || json_array_append_new(out, e)) {
                    json_decref(out);
                    return NULL;
                }
            }
            return out;
        }
        out = json_object();
        lua_pushnil(L);
        while (out && lua_next(L, idx) != 0) {
            json_t *e;
            if (lua_type(L, -2) != LUA_TSTRING) {
                *why = "object keys must be strings";
                lua_pop(L, 2);
                json_decref(out);
                return NULL;
            }
            e = to_json(L, -1, depth + 1, why);
            if (!e || json_object_set_new(out, lua_tostring(L, -2), e)) {
                lua_pop(L, 2);
                json_decref(out);
                return NULL;
            }
            lua_pop(L, 1);
        }
        return out;
    }
    default: *why = "functions and userdata cannot be encoded as JSON"; return NULL;
    }
}

static int l_json_encode(lua_State *L)
{
    const char *why = "out of memory";
    json_t *j;
    char *s;

    luaL_checkany(L, 1);
    j = to_json(L, 1, 0, &why);
    if (!j)
        return luaL_error(L, "json.encode: %s", why);
    s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s)
        return luaL_error(L, "json.encode: cannot encode");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_json_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    json_error_t e;
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY, &e);

    if (!j)
        return luaL_error(L, "json.decode: %s", e.text);
    push_json(L, j, 0);
    json_decref(j);
    return 1;
}

/* ---- the sandbox ----------------------------------------------------------- */

/*
 * setmetatable without __gc: a finalizer runs during collection, outside the
 * instruction hook, where an endless loop would hang the run. Otherwise as
 * the base library's: a table, a nil or table metatable, __metatable kept.
 */
static int l_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);

    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) /* raw, as the collector looks it up */
            return luaL_error(L, "__gc metamethods are not allowed in batch code");
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static int open_sandbox(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL}};
    static const char *const banned[] = {"dofile",  "loadfile",       "load",
                                         "require", "collectgarbage", NULL};

    for (const luaL_Reg *l = libs; l->func; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    for (const char *const *b = banned; *b; b++) {
        lua_pushnil(L);
        lua_setglobal(L, *b);
    }
    lua_pushcfunction(L, l_setmetatable);
    lua_setglobal(L, "setmetatable");
    /* string.dump could expose bytecode; the string metatable stays for s:upper() */
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, LUA_REGISTRYINDEX, "osc_json_null");
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, l_json_encode);
    lua_setfield(L, -2, "encode");
    lua_pushcfunction(L, l_json_decode);
    lua_setfield(L, -2, "decode");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_setglobal(L, "json");
    return 0;
}

static int pcall_limited(struct lua_batch *lb, int nargs, int nres)
{
    int rc;

    lb->spent = 0;
    lua_sethook(lb->L, count_hook, LUA_MASKCOUNT, (int)lb->instr_limit);
    rc = lua_pcall(lb->L, nargs, nres, 0);
    lua_sethook(lb->L, NULL, 0, 0);
    if (lb->spent && rc == LUA_OK) {
        /* cannot happen (returning is an instruction), but never accept a call past its budget */
        lua_pop(lb->L, nres);
        lua_pushliteral(lb->L, "instruction limit exceeded");
        rc = LUA_ERRRUN;
    } else if (lb->spent) {
        /* whatever the code made of the error on its way out, this is why it stopped */
        lua_pop(lb->L, 1);
        lua_pushliteral(lb->L, "instruction limit exceeded");
    }
    return rc;
}

/*
 * Protected (light userdata: the lua_batch): keep the global batch function in
 * the registry, read raw so no __index the code gave _G runs unhooked, and
 * kept because the code may reassign the global while it runs.
 */
static int find_batch(lua_State *L)
{
    struct lua_batch *lb = lua_touserdata(L, 1);

    lua_pushglobaltable(L);
    lua_pushliteral(L, "batch");
    if (lua_rawget(L, -2) == LUA_TFUNCTION)
        lb->batch_fn = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

void lua_batch_free(struct lua_batch *lb)
{
    if (!lb)
        return;
    if (lb->L)
        lua_close(lb->L);
    free(lb);
}

struct lua_batch *lua_batch_new(const char *code, size_t len, const char *chunkname,
                                size_t mem_limit, long instr_limit, struct osc_err *err)
{
    struct lua_batch *lb = calloc(1, sizeof(*lb));

    if (!lb) {
        osc_err_set(err, OSC_ENOMEM, "out of memory creating the Lua state");
        return NULL;
    }
    lb->limit = mem_limit ? mem_limit : LUA_BATCH_MEM_LIMIT;
    lb->instr_limit = instr_limit > 0 ? instr_limit : LUA_BATCH_INSTR_LIMIT;
    lb->batch_fn = LUA_NOREF;
    if (!(lb->L = lua_newstate(l_alloc, lb))) {
        osc_err_set(err, OSC_ENOMEM, "out of memory creating the Lua state");
        goto fail;
    }
    lua_pushcfunction(lb->L, open_sandbox);
    if (lua_pcall(lb->L, 0, 0, 0) != LUA_OK) {
        osc_err_set(err, OSC_ENOMEM, "cannot set up the Lua sandbox");
        goto fail;
    }
    /* text only: a precompiled chunk could break out of the VM's checks */
    if (luaL_loadbufferx(lb->L, code, len, chunkname, "t") != LUA_OK ||
        pcall_limited(lb, 0, 0) != LUA_OK) {
        osc_err_set(err, OSC_ECONFIG, "batch code: %s", err_text(lb->L));
        goto fail;
    }
    lua_pushcfunction(lb->L, find_batch);
    lua_pushlightuserdata(lb->L, lb);
    if (lua_pcall(lb->L, 1, 0, 0) != LUA_OK) {
        osc_err_set(err, OSC_ENOMEM, "batch code: %s", err_text(lb->L));
        goto fail;
    }
    if (lb->batch_fn == LUA_NOREF) {
        osc_err_set(err, OSC_ECONFIG,
                    "batch code: define a function batch(records) that "
                    "returns body, content_type");
        goto fail;
    }
    return lb;
fail:
    lua_batch_free(lb);
    return NULL;
}

/* Protected (light userdata: the records): push the batch function and its records. */
static int push_call(lua_State *L)
{
    json_t *recs = lua_touserdata(L, 1);
    struct lua_batch *lb = lua_touserdata(L, 2);

    lua_rawgeti(L, LUA_REGISTRYINDEX, lb->batch_fn);
    push_json(L, recs, 0);
    return 2;
}

struct conv {
    json_t *j;
    const char *why;
};

/* Protected (light userdata: a struct conv; the value): the returned table as JSON. */
static int convert(lua_State *L)
{
    struct conv *c = lua_touserdata(L, 1);

    c->j = to_json(L, 2, 0, &c->why);
    return 0;
}

int lua_batch_run(struct lua_batch *lb, const char *records_json, size_t len, struct osc_buf *body,
                  char *ctype, size_t ctype_cap, struct osc_err *err)
{
    lua_State *L = lb->L;
    json_error_t je;
    json_t *recs = json_loadb(records_json, len, 0, &je);
    int rc = 0, top = lua_gettop(L), prc;

    if (!recs)
        return osc_err_set(err, OSC_EDATA, "batch code: records are not JSON: %s", je.text);
    snprintf(ctype, ctype_cap, "application/json; charset=utf-8");
    /* building the records table can run out of the state's memory: protected, like the call */
    lua_pushcfunction(L, push_call);
    lua_pushlightuserdata(L, recs);
    lua_pushlightuserdata(L, lb);
    prc = lua_pcall(L, 2, 2, 0);
    json_decref(recs);
    if (prc != LUA_OK) {
        rc = osc_err_set(err, OSC_EDATA, "batch code failed: cannot pass the records: %s",
                         err_text(L));
        goto out;
    }
    if (pcall_limited(lb, 1, 2) != LUA_OK) {
        rc = osc_err_set(err, OSC_EDATA, "batch code failed: %s", err_text(L));
        goto out;
    }
    if (lua_type(L, -2) == LUA_TTABLE) {
        struct conv c = {NULL, "out of memory"};
        json_t *j;
        char *s;
        lua_pushcfunction(L, convert);
        lua_pushlightuserdata(L, &c);
        lua_pushvalue(L, -4);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
            /* to_json raises nothing itself; a parts-built value may leak, never the process */
            c.why = err_text(L);
            json_decref(c.j);
            c.j = NULL;
        }
        j = c.j;
        s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(j);
        if (!s) {
            rc = osc_err_set(err, OSC_EDATA, "batch code returned a table that is not JSON: %s",
                             c.why);
            goto out;
        }
        osc_buf_reset(body);
        rc = osc_buf_adds(body, s);
        free(s);
    } else if (lua_type(L, -2) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -2, &n);
        osc_buf_reset(body);
        rc = osc_buf_add(body, s, n);
    } else {
        rc = osc_err_set(err, OSC_EDATA, "batch code must return a string (or a table), got %s",
                         luaL_typename(L, -2));
        goto out;
    }
    if (rc) {
        rc = osc_err_set(err, rc, "batch code returned a body larger than batch.max_bytes");
        goto out;
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *ct = lua_tostring(L, -1);
        if (strpbrk(ct, "\r\n")) {
            rc = osc_err_set(err, OSC_EDATA, "batch code returned a content type with a newline");
            goto out;
        }
        snprintf(ctype, ctype_cap, "%s", ct);
    }
out:
    lua_settop(L, top);
    lua_gc(L, LUA_GCCOLLECT);
    return rc;
}
