/*
 * retry.h - the retry policy: per-status outcome overrides and backoff.
 *
 * osc_http_classify() gives the default outcome; a destination's
 * retry.classes may override it per status code ("409") or class ("4xx").
 * Backoff is capped exponential with full jitter (AWS's "full jitter"):
 * a uniform draw from [0, min(cap, base * 2^attempt)].
 */
#ifndef OSC_RETRY_H
#define OSC_RETRY_H

#include <stdint.h>

#include "osc/config.h"
#include "osc/http.h"

/* Outcome of status/transport under policy (NULL: the defaults). */
enum osc_http_outcome osc_retry_classify(const struct osc_conf_retry *policy, long status,
                                         int transport);

/* Delay before attempt number `attempt` (1 = first retry). rng is the caller's state. */
int64_t osc_retry_backoff_ms(const struct osc_conf_retry *policy, unsigned attempt, uint64_t *rng);

/* xorshift64* step: a small deterministic generator (seed must be non-zero). */
uint64_t osc_retry_rand(uint64_t *state);

#endif
