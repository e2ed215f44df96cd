/*
 * notify.c - sd_notify messages to systemd; see notify.h.
 *
 * sd_notify() itself returns 0 without a socket, so the no-op rule needs
 * no test here. Only the first failure is logged: a watchdog ping every
 * few seconds must not flood the journal when the socket went away.
 */
#include "osc/notify.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "osc/log.h"

static atomic_int warned;

static void send_state(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0 && !atomic_exchange(&warned, 1))
        OSC_LOG_WARN("notify", "cannot notify systemd (%.*s): %s", (int)strcspn(state, "="), state,
                     strerror(-rc));
}

void osc_notify_ready(void) { send_state("READY=1"); }

void osc_notify_watchdog(void) { send_state("WATCHDOG=1"); }

void osc_notify_stopping(void) { send_state("STOPPING=1"); }

void osc_notify_status(const char *fmt, ...)
{
    char msg[7 + 256];
    va_list ap;

    memcpy(msg, "STATUS=", 7);
    va_start(ap, fmt);
    vsnprintf(msg + 7, sizeof(msg) - 7, fmt, ap);
    va_end(ap);
    msg[strcspn(msg, "\n")] = '\0'; /* a newline would start another assignment */
    send_state(msg);
}

int64_t osc_notify_watchdog_ms(void)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0)
        return 0;
    return (int64_t)(usec / 1000);
}
