/*
 * faults.c - fault injection rules and the token-bucket rate limiter.
 *
 * Grammar (docs/simulator.md):  rules := rule ("," rule)*
 *   rule   := action ("@" PROB | "x" COUNT)* (":" param)*
 *   action := STATUS (400..599) | "delay=" DURATION | "reset" | "reset-after" | "timeout"
 *   param  := "retry-after=" SECONDS | "path=" PREFIX | "server=" mapped|officespace
 *           | "hold=" DURATION (timeout only)
 * Rules are checked in order for every API request (never /_sim). A delay
 * adds up and evaluation goes on; the first status/reset/timeout rule that
 * fires decides the answer. Random draws come from one xorshift64* stream
 * seeded with --seed, so a run is reproducible for a given request order.
 */
#include "sim_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osc/err.h"
#include "osc/parse.h"

#define MAX_RULES 64

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int parse_rule(char *text, struct sim_fault_rule *r, char *msg, size_t cap)
{
    char *params = strchr(text, ':'), *p;
    size_t k;
    int64_t v;

    memset(r, 0, sizeof(*r));
    r->prob = 1.0;
    r->count = -1;
    r->retry_after_s = -1;
    r->delay_ms = 60000;
    if (params)
        *params++ = '\0';
    k = strcspn(text, "@x");
    p = text + k;
    {
        char action[64];
        if (k == 0 || k >= sizeof(action)) {
            snprintf(msg, cap, "rule \"%s\": expected a status, delay=, reset or timeout", text);
            return -1;
        }
        memcpy(action, text, k);
        action[k] = '\0';
        if (strcmp(action, "reset") == 0) {
            r->kind = SIM_FAULT_RESET;
        } else if (strcmp(action, "reset-after") == 0) {
            r->kind = SIM_FAULT_RESET_AFTER;
        } else if (strcmp(action, "timeout") == 0) {
            r->kind = SIM_FAULT_TIMEOUT;
        } else if (strncmp(action, "delay=", 6) == 0) {
            r->kind = SIM_FAULT_DELAY;
            if (osc_parse_duration_ms(action + 6, 0, 3600000, &r->delay_ms)) {
                snprintf(msg, cap, "rule \"%s\": bad delay \"%s\" (e.g. 300ms, 2s)", text,
                         action + 6);
                return -1;
            }
        } else if (osc_parse_int(action, 400, 599, &v) == 0) {
            r->kind = SIM_FAULT_STATUS;
            r->status = (int)v;
        } else {
            snprintf(msg, cap, "rule \"%s\": unknown action \"%s\"", text, action);
            return -1;
        }
    }
    while (*p) {
        char num[32];
        char op = *p++;
        size_t n = strcspn(p, "@x");
        if (n == 0 || n >= sizeof(num)) {
            snprintf(msg, cap, "rule \"%s\": expected a number after '%c'", text, op);
            return -1;
        }
        memcpy(num, p, n);
        num[n] = '\0';
        p += n;
        if (op == '@') {
            char *end;
            double d = strtod(num, &end);
            if (*end || !(d >= 0 && d <= 1)) {
                snprintf(msg, cap, "rule \"%s\": probability must be in [0, 1]", text);
                return -1;
            }
            r->prob = d;
        } else {
            if (osc_parse_int(num, 1, 1000000000, &v)) {
                snprintf(msg, cap, "rule \"%s\": count must be a positive integer", text);
                return -1;
            }
            r->count = (long)v;
        }
    }
    while (params && *params) {
        char *next = strchr(params, ':'), *eq;
        if (next)
            *next++ = '\0';
        eq = strchr(params, '=');
        if (!eq) {
            snprintf(msg, cap, "parameter \"%s\": expected key=value", params);
            return -1;
        }
        *eq++ = '\0';
        if (strcmp(params, "retry-after") == 0) {
            if (osc_parse_int(eq, 0, 86400, &v)) {
                snprintf(msg, cap, "retry-after must be 0..86400 seconds");
                return -1;
            }
            r->retry_after_s = v;
        } else if (strcmp(params, "path") == 0) {
            if (*eq != '/' || strlen(eq) >= sizeof(r->path)) {
                snprintf(msg, cap, "path must start with '/' and be shorter than %zu bytes",
                         sizeof(r->path));
                return -1;
            }
            snprintf(r->path, sizeof(r->path), "%s", eq);
        } else if (strcmp(params, "server") == 0) {
            if (strcmp(eq, "mapped") && strcmp(eq, "officespace")) {
                snprintf(msg, cap, "server must be mapped or officespace");
                return -1;
            }
            snprintf(r->server, sizeof(r->server), "%s", eq);
        } else if (strcmp(params, "hold") == 0 && r->kind == SIM_FAULT_TIMEOUT) {
            if (osc_parse_duration_ms(eq, 0, 3600000, &r->delay_ms)) {
                snprintf(msg, cap, "bad hold duration \"%s\"", eq);
                return -1;
            }
        } else {
            snprintf(msg, cap, "unknown parameter \"%s\"", params);
            return -1;
        }
        params = next;
    }
    return 0;
}

int sim_faults_parse(struct sim_faults *f, const char *text, char *msg, size_t cap)
{
    struct sim_fault_rule *rules = NULL;
    size_t n = 0;
    char *copy = NULL, *save = NULL, *tok;
    int rc = OSC_EINVAL;

    if (!text)
        text = "";
    if (strlen(text) >= sizeof(f->text)) {
        snprintf(msg, cap, "fault rules longer than %zu bytes", sizeof(f->text) - 1);
        return OSC_EINVAL;
    }
    copy = strdup(text);
    rules = calloc(MAX_RULES, sizeof(*rules));
    if (!copy || !rules) {
        rc = OSC_ENOMEM;
        goto out;
    }
    for (tok = strtok_r(copy, ", \t\r\n", &save); tok; tok = strtok_r(NULL, ", \t\r\n", &save)) {
        if (n == MAX_RULES) {
            snprintf(msg, cap, "more than %d fault rules", MAX_RULES);
            goto out;
        }
        if (parse_rule(tok, &rules[n], msg, cap))
            goto out;
        n++;
    }
    free(f->v);
    f->v = rules;
    f->n = n;
    rules = NULL;
    snprintf(f->text, sizeof(f->text), "%s", text);
    rc = 0;
out:
    free(rules);
    free(copy);
    return rc;
}

void sim_faults_free(struct sim_faults *f)
{
    free(f->v);
    f->v = NULL;
    f->n = 0;
}

void sim_faults_eval(struct sim_faults *f, const char *server, const char *path,
                     struct sim_fault_action *out)
{
    memset(out, 0, sizeof(*out));
    out->retry_after_s = -1;
    for (size_t i = 0; i < f->n; i++) {
        struct sim_fault_rule *r = &f->v[i];
        if (r->count == 0)
            continue;
        if (r->server[0] && strcmp(r->server, server) != 0)
            continue;
        if (r->path[0] && strncmp(path, r->path, strlen(r->path)) != 0)
            continue;
        if (r->prob < 1.0) {
            double d = (double)(rng_next(&f->rng) >> 11) / 9007199254740992.0;
            if (d >= r->prob)
                continue;
        }
        if (r->count > 0)
            r->count--;
        switch (r->kind) {
        case SIM_FAULT_DELAY: out->delay_ms += r->delay_ms; continue;
        case SIM_FAULT_STATUS:
            out->status = r->status;
            out->retry_after_s = r->retry_after_s;
            return;
        case SIM_FAULT_RESET: out->reset = 1; return;
        case SIM_FAULT_RESET_AFTER: out->reset = 2; return;
        case SIM_FAULT_TIMEOUT: out->hold_ms = r->delay_ms; return;
        }
    }
}

json_t *sim_faults_json(const struct sim_faults *f)
{
    static const char *const kinds[] = {"status", "delay", "reset", "reset-after", "timeout"};
    json_t *arr = json_array();

    for (size_t i = 0; i < f->n; i++) {
        const struct sim_fault_rule *r = &f->v[i];
        json_t *o = json_pack("{s:s,s:f,s:I}", "kind", kinds[r->kind], "probability", r->prob,
                              "remaining", (json_int_t)r->count);
        if (r->kind == SIM_FAULT_STATUS)
            json_object_set_new(o, "status", json_integer(r->status));
        if (r->kind == SIM_FAULT_DELAY || r->kind == SIM_FAULT_TIMEOUT)
            json_object_set_new(o, "ms", json_integer(r->delay_ms));
        if (r->retry_after_s >= 0)
            json_object_set_new(o, "retry_after", json_integer(r->retry_after_s));
        if (r->path[0])
            json_object_set_new(o, "path", json_string(r->path));
        if (r->server[0])
            json_object_set_new(o, "server", json_string(r->server));
        json_array_append_new(arr, o);
    }
    return json_pack("{s:s,s:o}", "rules", f->text, "parsed", arr);
}

int64_t sim_bucket_take(struct sim_bucket *b, int64_t now_ms)
{
    double cap;

    if (b->rate <= 0)
        return 0;
    cap = b->rate < 1 ? 1 : b->rate;
    if (!b->started) {
        b->tokens = cap;
        b->last_ms = now_ms;
        b->started = 1;
    }
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
        if (b->tokens > cap)
            b->tokens = cap;
        b->last_ms = now_ms;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    {
        int64_t wait = (int64_t)ceil((1.0 - b->tokens) / b->rate);
        return wait < 1 ? 1 : wait;
    }
}
