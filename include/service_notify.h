/*
 * systemd's readiness protocol (sd_notify(3)) without libsystemd: a
 * datagram of "KEY=VALUE" lines to the socket named by $NOTIFY_SOCKET.
 * The protocol is small and documented as stable, so a dependency for
 * one sendmsg is not worth it.  Nothing happens when the variable is not
 * set (not started by systemd, or Type= is not notify).
 */
#ifndef WARREN_SERVICE_NOTIFY_H
#define WARREN_SERVICE_NOTIFY_H

/* state as "READY=1", "STOPPING=1", "RELOADING=1", "STATUS=...". */
void service_notify(const char *state);

#endif
