/*
 * delivery_int.h - pieces of src/delivery shared between its files (not
 * public): the Lua grouping sandbox and the response-webhook queue.
 */
#ifndef OSC_DELIVERY_INT_H
#define OSC_DELIVERY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "osc/buf.h"
#include "osc/err.h"
#include "osc/http.h"

/* ---- Lua grouping (lua_batch.c) ---------------------------------------- */

#define LUA_BATCH_MEM_LIMIT   (32u * 1024 * 1024)
#define LUA_BATCH_INSTR_LIMIT 50000000L

struct lua_batch;

/*
 * Load code (a chunk defining global function batch(records)) in a fresh
 * sandbox: base library without dofile/loadfile/load/require/collectgarbage,
 * string, table, math, utf8, plus json.encode/json.decode/json.null; no io,
 * os, package or debug. Memory and instructions are limited. Caller frees
 * with lua_batch_free(). NULL with err (OSC_ECONFIG) when the code does not
 * load or defines no batch function.
 */
struct lua_batch *lua_batch_new(const char *code, size_t len, const char *chunkname,
                                size_t mem_limit, long instr_limit, struct osc_err *err);
void lua_batch_free(struct lua_batch *lb);

/*
 * Call batch(records) with records decoded from the JSON array text
 * records_json. On success body receives the returned string and ctype the
 * returned content type ("application/json; charset=utf-8" when none, or
 * when a table is returned, which is JSON-encoded). Returns 0 or OSC_EDATA
 * (err says what the code did wrong) / OSC_ENOMEM.
 */
int lua_batch_run(struct lua_batch *lb, const char *records_json, size_t len, struct osc_buf *body,
                  char *ctype, size_t ctype_cap, struct osc_err *err);

/* ---- response webhook (webhook.c) --------------------------------------- */

#define WEBHOOK_QUEUE_MAX 256
#define WEBHOOK_ATTEMPTS  3

struct webhook;

/* POSTs JSON reports to url on its own HTTP client. NULL with err on failure. */
struct webhook *webhook_new(const char *url, const struct osc_http_opts *opts, struct osc_err *err);
void webhook_free(struct webhook *w);
/* Queue a copy of doc; when the queue is full the oldest report is dropped. */
void webhook_post(struct webhook *w, const char *doc, size_t len);
/* Start what can start and complete what finished; never blocks. */
void webhook_pump(struct webhook *w);
/* Wait until the queue is empty or deadline_ms (monotonic) passes. */
void webhook_drain(struct webhook *w, int64_t deadline_ms);
/* Reports given up (failed every attempt, or dropped from a full queue). */
uint64_t webhook_failed(const struct webhook *w);
uint64_t webhook_delivered(const struct webhook *w);

#endif
