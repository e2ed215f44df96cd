/*
 * notify.h - tell systemd how the service is doing (sd_notify, libsystemd).
 *
 * Every call is a no-op when $NOTIFY_SOCKET is unset (not started by
 * systemd with Type=notify), so callers never test for systemd first.
 * Messages are best effort: a failed send is logged once at WARN and
 * never fails the caller. Safe to call from any thread.
 */
#ifndef OSC_NOTIFY_H
#define OSC_NOTIFY_H

#include <stdint.h>

/* "READY=1": configuration loaded and the service is serving. */
void osc_notify_ready(void);
/* "STATUS=<text>" (one line: a newline ends the text; at most 255 bytes). */
void osc_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "WATCHDOG=1": the main loop is alive. */
void osc_notify_watchdog(void);
/* "STOPPING=1": shutting down. */
void osc_notify_stopping(void);
/*
 * The watchdog period systemd expects pings within (WatchdogSec=, passed as
 * $WATCHDOG_USEC for this process), in milliseconds; 0 when the watchdog is
 * off. Ping at half of it.
 */
int64_t osc_notify_watchdog_ms(void);

#endif
