#!/usr/bin/python3
"""Memory alarm: above vm_memory_high_watermark.absolute the broker blocks
publishing connections (connection.blocked, and it stops reading from them)
while other connections go on; once consumers bring memory back down,
publishers are unblocked (connection.unblocked) and nothing published was
lost."""

import socket
import time

import pika

from harness import (BrokerTestCase, assert_broker_alive, enc_bits,
                     enc_short, enc_shortstr, main, method_frame,
                     raw_connect, skip_if_external, skip_if_sanitized,
                     wait_until)

QUEUE_PURGE, QUEUE_PURGE_OK = (50, 30), (50, 31)

BODY = 64 * 1024
COUNT = 400                     # 25 MB: more than loopback socket buffers hold
WATERMARK = 4 * 1024 * 1024
BLOCKED, UNBLOCKED = (10, 60), (10, 61)


@skip_if_external("sets vm_memory_high_watermark.absolute")
class MemoryAlarmTest(BrokerTestCase):
    config = {"vm_memory_high_watermark.absolute": WATERMARK}

    def pump(self, pub, burst, sent, seen_methods, seconds):
        """Send what the socket takes and read what arrives, for a while."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if sent < len(burst):
                pub.sock.settimeout(0)      # read_frame sets a timeout
                try:
                    sent += pub.sock.send(burst[sent:sent + (1 << 20)])
                except (BlockingIOError, socket.timeout):
                    pass
            try:
                f = pub.read_frame(timeout=0.02)
                if f.method:
                    seen_methods.append(f.method)
            except (socket.timeout, BlockingIOError):
                pass
        return sent

    def pump_until(self, pub, burst, sent, seen, done, what, timeout=30.0):
        """Pump until done(sent) is true; fail naming `what` after timeout."""
        deadline = time.monotonic() + timeout
        while not done(sent):
            if time.monotonic() > deadline:
                self.fail("not %s within %.0f s (%d of %d bytes sent, seen %r)"
                          % (what, timeout, sent, len(burst), seen))
            sent = self.pump(pub, burst, sent, seen, 0.1)
        return sent

    def test_publisher_blocked_then_unblocked_without_loss(self):
        pub = raw_connect(self.broker, timeout=30)  # announces connection.blocked
        self.addCleanup(pub.close)
        pub.channel_open(1)
        pub.queue_declare(1, queue="alarm")
        burst = b"".join(pub.publish_frames(1, b"%08d" % i + b"x" * (BODY - 8),
                                            routing_key="alarm")
                         for i in range(COUNT))
        seen = []
        sent = self.pump_until(pub, burst, 0, seen, lambda s: BLOCKED in seen,
                               "connection.blocked")
        # Blocked, the broker stops reading from the publisher: the socket
        # stops taking data once the kernel's buffers are full.  A broker
        # that went on reading would take all 25 MB.
        progress = {"sent": sent, "at": time.monotonic()}

        def stalled(s):
            now = time.monotonic()
            if s != progress["sent"]:
                progress.update(sent=s, at=now)
            return s == len(burst) or now - progress["at"] > 1.0
        sent = self.pump_until(pub, burst, sent, seen, stalled,
                               "the publisher held back or done")
        self.assertLess(sent, len(burst), "the publisher was never held back")

        watcher = pika.BlockingConnection(self.broker.params())
        self.addCleanup(lambda: watcher.is_open and watcher.close())
        wch = watcher.channel()
        queued = wch.queue_declare("alarm", passive=True).method.message_count
        self.assertLess(queued * BODY, 3 * WATERMARK,
                        "the queue kept growing under the alarm: %d" % queued)

        # Another connection drains the queue; the alarm clears.
        got = set()
        deadline = time.monotonic() + 45
        while len(got) < COUNT:
            if time.monotonic() > deadline:
                self.fail("drained %d of %d messages in 45 s (%d of %d bytes "
                          "sent, seen %r)" % (len(got), COUNT, sent, len(burst), seen))
            method, _props, body = wch.basic_get("alarm", auto_ack=True)
            if method is None:
                sent = self.pump(pub, burst, sent, seen, 0.1)
                continue
            got.add(int(body[:8]))
        self.pump_until(pub, burst, sent, seen, lambda s: UNBLOCKED in seen,
                        "connection.unblocked")
        self.assertEqual(sent, len(burst))
        self.assertEqual(got, set(range(COUNT)), "messages lost")
        self.assertEqual(wch.queue_declare("alarm", passive=True).method.message_count,
                         0, "more messages than were published")
        watcher.close()
        assert_broker_alive(self.broker)


@skip_if_external("reads warrend's resident memory from /proc")
@skip_if_sanitized("resident memory counts the allocator's quarantine")
class MemoryReturnedTest(BrokerTestCase):
    """Once a large backlog is gone, warrend's resident size comes back
    down (the allocator keeps freed memory unless asked to return it)."""

    def test_rss_falls_after_backlog_is_purged(self):
        c = raw_connect(self.broker, timeout=30)
        self.addCleanup(c.close)
        c.channel_open(1)
        c.queue_declare(1, "backlog")
        base = self.broker.rss_kib()
        burst = b"".join(c.publish_frames(1, b"x" * 1024, routing_key="backlog")
                         for _ in range(1000))
        for _ in range(100):                    # 100,000 1 KB messages
            c.send(burst)
        declare_ok = c.queue_declare(1, "backlog", passive=True)
        self.assertEqual(declare_ok["message_count"], 100000)
        peak = self.broker.rss_kib()
        self.assertGreater(peak - base, 80 * 1024, "the backlog takes memory")
        c.send(method_frame(1, QUEUE_PURGE, enc_short(0) +
                            enc_shortstr("backlog") + enc_bits(False)))
        c.expect_method(QUEUE_PURGE_OK, 1)
        # The allocator hands memory back some time after the purge (on
        # warrend's next tick): wait for it, with a bound only a broker that
        # keeps the memory reaches.
        last = [peak]

        def fallen():
            last[0] = self.broker.rss_kib()
            return last[0] - base < (peak - base) / 4
        if not wait_until(fallen, timeout=30, interval=0.1):
            self.fail("RSS still %d KiB 30 s after the purge: base %d, peak %d"
                      % (last[0], base, peak))
        assert_broker_alive(self.broker, self)


if __name__ == "__main__":
    main()
