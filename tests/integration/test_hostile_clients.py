#!/usr/bin/python3
"""Hostile clients must not hold the broker hostage.

Each test plays one misbehaving client on a raw socket while well-behaved
pika clients on other connections must keep working, and checks the
bound warrend promises:

  * a client that begins a huge message and hangs up part-way, or stalls
    part-way, cannot keep the memory alarm on (content already begun is
    read to its end or EOF; warren.blocked_content_timeout closes a
    connection holding unfinished content through the alarm with 506);
  * unfinished content is bounded per connection (max_message_size +
    frame_max over all its channels) and in total (the watermark);
  * frames are 4096 bytes at most until tune-ok, and frame_max 0 is capped
    at max_message_size + 4096;
  * connections that never finish the handshake cost little memory and go
    at handshake_timeout;
  * a consumer that never reads its socket makes warrend buffer a bounded
    amount of output, not the queue;
  * a consumer with no prefetch limit that reads but never acks cannot
    pull a paged-out queue into memory: under the memory alarm its
    channel, holding 1/16 of the watermark unacked, gets no more, while
    an acking consumer of the same queue keeps draining it;
  * a client trickling a huge message one byte a frame is charged for the
    bytes it sent, not the size it announced.

The broker's message memory is read from its Prometheus metrics
(warren_message_bytes, "Bytes held by messages in memory"; the alarm from
rabbitmq_alarms_memory_used_watermark) and its resident size from
/proc/<pid>/status.
"""

import os
import select
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pika  # noqa: E402

from harness import (  # noqa: E402
    BASIC_GET_OK, BASIC_PUBLISH, CHANNEL_OPEN, CHANNEL_OPEN_OK,
    CONNECTION_CLOSE_OK, CONNECTION_START, CONNECTION_START_OK,
    CONNECTION_TUNE, FRAME_BODY, FRAME_ERROR, FRAME_HEADER, FRAME_METHOD,
    PROTOCOL_HEADER, RESOURCE_ERROR, PikaTestCase,
    RawClient, content_header_payload, enc_bits, enc_longstr,
    enc_short, enc_shortstr, enc_table, frame, main, metric_samples,
    method_frame, method_payload, raw_connect, skip_if_external,
    skip_if_sanitized, wait_cpu_quiet, wait_until,
)

KiB = 1 << 10
MiB = 1 << 20
WATERMARK = 64 * MiB
# Bound for something that must happen (only reached when it does not).
WAIT = 30.0
# The well-behaved publisher's confirms must arrive within this.
CONFIRM_BOUND = 30.0
# Frame size negotiated by raw_connect (warrend's default frame_max).
FRAME_MAX = 131072


# ---------------------------------------------------------------------------
# helpers

def scrape(broker):
    """{metric: value} from warrend's Prometheus endpoint."""
    return metric_samples(broker.metrics()[1])


def message_bytes(broker):
    """Bytes held by messages in memory (incl. half-received content)."""
    return int(scrape(broker)["warren_message_bytes"])


def memory_alarm(broker):
    return scrape(broker)["rabbitmq_alarms_memory_used_watermark"] == 1


def publish_method(ch, routing_key="nowhere"):
    return method_frame(ch, BASIC_PUBLISH, enc_short(0) + enc_shortstr("") +
                        enc_shortstr(routing_key) + enc_bits(False, False))


def start_content(ch, body_size, routing_key="nowhere"):
    """basic.publish and a content header announcing body_size bytes."""
    return (publish_method(ch, routing_key) +
            frame(FRAME_HEADER, ch, content_header_payload(body_size)))


def send_body(client, ch, nbytes, frame_max=FRAME_MAX):
    """Send nbytes of body in frames of frame_max (blocking, with the
    client socket's timeout: a broker that stops reading fails it)."""
    chunk = frame_max - 8
    full = frame(FRAME_BODY, ch, b"x" * chunk)
    batch = full * 64
    n = nbytes
    while n >= 64 * chunk:
        client.sock.sendall(batch)
        n -= 64 * chunk
    while n >= chunk:
        client.sock.sendall(full)
        n -= chunk
    if n:
        client.sock.sendall(frame(FRAME_BODY, ch, b"x" * n))


def pika_roundtrip(testcase, conn, queue, n=200, bound=WAIT):
    """Publish n messages and consume them back on a pika connection,
    within bound seconds; returns the time it took."""
    ch = conn.channel()
    ch.queue_declare(queue)
    testcase.to_delete.append(queue)
    t0 = time.monotonic()
    for i in range(n):
        ch.basic_publish("", queue, b"rt-%d" % i)
    got = []
    for method, _props, body in ch.consume(queue, auto_ack=False,
                                           inactivity_timeout=bound):
        if method is None:
            break
        got.append(body)
        ch.basic_ack(method.delivery_tag)
        if len(got) == n:
            break
    ch.cancel()
    elapsed = time.monotonic() - t0
    testcase.assertEqual(got, [b"rt-%d" % i for i in range(n)],
                         "the well-behaved client lost or reordered messages")
    testcase.assertLess(elapsed, bound, "the well-behaved client was slowed")
    ch.close()
    return elapsed


class ConfirmingPublisher(threading.Thread):
    """A well-behaved pika publisher (publisher confirms) on its own
    connection and thread: publishes `count` messages to `queue`, each
    confirmed before the next (pika's confirm mode)."""

    def __init__(self, broker, queue, count=50):
        super().__init__(daemon=True)
        self.broker, self.queue, self.count = broker, queue, count
        self.error = None
        self.confirmed = 0
        self.started_at = self.done_at = None

    def run(self):
        try:
            conn = pika.BlockingConnection(self.broker.params(
                blocked_connection_timeout=CONFIRM_BOUND + 10))
            try:
                ch = conn.channel()
                ch.confirm_delivery()
                self.started_at = time.monotonic()
                for i in range(self.count):
                    # raises on a nack or (mandatory) an unroutable message
                    ch.basic_publish("", self.queue, b"ok-%d" % i,
                                     mandatory=True)
                    self.confirmed += 1
                self.done_at = time.monotonic()
            finally:
                if conn.is_open:
                    conn.close()
        except BaseException as e:  # reported by finish()
            self.error = e

    def finish(self, testcase, bound=CONFIRM_BOUND):
        """Wait for it; fail unless every publish was confirmed in bound s."""
        self.join(bound + 15)
        testcase.assertFalse(self.is_alive(), "the well-behaved publisher "
                             "was still waiting for confirms after %.0f s "
                             "(%d of %d confirmed)"
                             % (bound + 15, self.confirmed, self.count))
        testcase.assertIsNone(self.error, "the well-behaved publisher failed "
                              "after %d of %d confirms: %r"
                              % (self.confirmed, self.count, self.error))
        took = self.done_at - self.started_at
        testcase.assertLess(took, bound, "confirms took %.1f s" % took)
        return took


class HostileTestCase(PikaTestCase):
    def declare(self, queue):
        conn = pika.BlockingConnection(self.broker.params())
        try:
            conn.channel().queue_declare(queue)
        finally:
            conn.close()
        self.to_delete.append(queue)

    def message_count(self, queue):
        conn = pika.BlockingConnection(self.broker.params())
        try:
            return conn.channel().queue_declare(
                queue, passive=True).method.message_count
        finally:
            conn.close()

    def fill(self, queue, count, size):
        """count messages of size bytes into queue, confirmed."""
        conn = pika.BlockingConnection(self.broker.params())
        try:
            ch = conn.channel()
            ch.queue_declare(queue)
            self.to_delete.append(queue)
            ch.confirm_delivery()
            body = b"b" * size
            for _ in range(count):
                ch.basic_publish("", queue, body, mandatory=True)
        finally:
            conn.close()

    def raw(self, **kw):
        c = raw_connect(self.broker, timeout=WAIT, **kw)
        self.addCleanup(c.close)
        return c

    def wait_metric_below(self, limit, what):
        last = [None]

        def ok():
            last[0] = message_bytes(self.broker)
            return last[0] < limit and not memory_alarm(self.broker)
        if not wait_until(ok, timeout=WAIT, interval=0.1):
            self.fail("%s: warren_message_bytes still %d (want < %d) or the "
                      "memory alarm still on after %.0f s; log tail:\n%s"
                      % (what, last[0], limit, WAIT,
                         self.broker.stderr()[-3000:]))
        return last[0]


# ---------------------------------------------------------------------------
# (a) the memory alarm and content abandoned part-way

@skip_if_external("sets vm_memory_high_watermark.absolute and reads "
                  "warrend's metrics")
class AbandonedContentTest(HostileTestCase):
    # memory_messages 0: queued messages stay in memory (no paging), so a
    # queued ballast counts towards the alarm.
    config = {"vm_memory_high_watermark.absolute": WATERMARK,
              "warren.queue.memory_messages": 0}

    def test_hang_up_after_92_mib_of_128_mib_message(self):
        # The old wedge: heartbeat 0, a content header declaring the
        # largest allowed body (128 MiB), ~92 MiB of it, then the socket
        # closed.  Afterwards no memory may stay held and a well-behaved
        # publisher must be confirmed.
        self.declare("hc-a1")
        before = message_bytes(self.broker)
        c = self.raw(heartbeat=0)
        c.channel_open(1)
        c.send(start_content(1, 134217728))
        sent_all = True
        try:
            send_body(c, 1, 92 * MiB)
        except OSError as e:
            # warrend may refuse the content (506 past the watermark) and
            # close the socket before all of it is sent
            sent_all = False
            print("hang-up test: send stopped: %r" % e)
        print("hang-up test: all 92 MiB sent: %s" % sent_all)
        c.close()
        after = self.wait_metric_below(before + MiB, "after the hang-up")
        print("hang-up test: warren_message_bytes before %d, after %d"
              % (before, after))
        pub = ConfirmingPublisher(self.broker, "hc-a1")
        pub.start()
        took = pub.finish(self)
        print("hang-up test: 50 confirms in %.2f s" % took)
        self.assertEqual(self.message_count("hc-a1"), 50)

    def test_alarm_from_half_received_message_clears_on_hang_up(self):
        # The alarm is raised by a half-received message on top of a
        # queued ballast: 40 MiB queued + 32 MiB of a 128 MiB message
        # > 64 MiB.  The content already begun is still read under the
        # alarm (the connection is blocked only at its next basic.publish),
        # so the hang-up is seen and the memory given back.
        self.fill("hc-ballast", 40, MiB)
        self.declare("hc-a2")
        ballast = wait_until(lambda: (lambda v: v if v >= 40 * MiB else 0)(
            message_bytes(self.broker)), timeout=WAIT, what="the ballast counted")
        self.assertFalse(memory_alarm(self.broker))
        c = self.raw(heartbeat=0)
        c.channel_open(1)
        c.sock.settimeout(WAIT)
        c.send(start_content(1, 134217728))
        try:
            send_body(c, 1, 32 * MiB)
        except socket.timeout:
            self.fail("warrend stopped reading a message it had begun "
                      "(%d bytes held)" % message_bytes(self.broker))
        # Every byte sent is received (counted by bytes received) ...
        wait_until(lambda: message_bytes(self.broker) >= ballast + 32 * MiB,
                   timeout=WAIT, what="the 32 MiB of content received")
        # ... and holds the alarm on.
        wait_until(lambda: memory_alarm(self.broker), timeout=WAIT,
                   what="the memory alarm raised")
        pub = ConfirmingPublisher(self.broker, "hc-a2")
        pub.start()
        c.close()
        after = self.wait_metric_below(ballast + MiB, "after the hang-up")
        took = pub.finish(self)
        print("alarm hang-up test: ballast %d, after hang-up %d bytes; "
              "confirms in %.2f s" % (ballast, after, took))
        self.assertEqual(self.message_count("hc-a2"), 50)

    def test_unfinished_content_above_watermark_refused(self):
        # Unfinished content over all connections is bounded by the
        # watermark: one message left unfinished past it is refused with
        # 506 (else it could hold memory no alarm can shed).
        before = message_bytes(self.broker)
        c = self.raw(heartbeat=0)
        c.channel_open(1)
        c.send(start_content(1, 134217728))
        try:
            send_body(c, 1, 70 * MiB)
        except OSError:
            pass        # closed by warrend part-way: the close is read below
        f = c.read_until_connection_close(timeout=WAIT)
        self.assertEqual(f["reply_code"], RESOURCE_ERROR, f)
        self.assertIn("unfinished message content on all connections exceeds "
                      "the memory high watermark", f["reply_text"])
        c.try_send(method_frame(0, CONNECTION_CLOSE_OK))
        self.assertTrue(c.wait_closed(WAIT), "socket left open after close-ok")
        self.wait_metric_below(before + MiB, "after the refused content")


# ---------------------------------------------------------------------------
# (b) warren.blocked_content_timeout

@skip_if_external("sets warren.blocked_content_timeout")
class BlockedContentTimeoutTest(HostileTestCase):
    config = {"vm_memory_high_watermark.absolute": WATERMARK,
              "warren.queue.memory_messages": 0,
              "warren.blocked_content_timeout": 2000}

    def test_stalled_content_closed_after_timeout_under_alarm(self):
        self.fill("hc-ballast", 40, MiB)
        self.declare("hc-b")
        ballast = wait_until(lambda: (lambda v: v if v >= 40 * MiB else 0)(
            message_bytes(self.broker)), timeout=WAIT, what="the ballast counted")
        c = self.raw(heartbeat=0)
        c.channel_open(1)
        c.sock.settimeout(WAIT)
        c.send(start_content(1, 100 * MiB))
        send_body(c, 1, 20 * MiB)
        wait_until(lambda: message_bytes(self.broker) >= ballast + 20 * MiB,
                   timeout=WAIT, what="the first 20 MiB received")
        self.assertFalse(memory_alarm(self.broker), "alarm below the watermark")
        # Without the alarm, unfinished content may be held longer than
        # the timeout: nothing comes for 2.5 s.
        with self.assertRaises(socket.timeout,
                               msg="closed without a memory alarm"):
            f = c.read_frame(timeout=2.5)
            print("unexpected: %r" % f)
        # 12 MiB more: 40 + 32 MiB > the watermark.  The alarm cannot rise
        # before these bytes arrive.
        t_cross = time.monotonic()
        send_body(c, 1, 12 * MiB)
        wait_until(lambda: memory_alarm(self.broker), timeout=WAIT,
                   what="the memory alarm raised")
        pub = ConfirmingPublisher(self.broker, "hc-b")
        pub.start()
        f = c.read_until_connection_close(timeout=WAIT)
        closed_after = time.monotonic() - t_cross
        self.assertEqual(f["reply_code"], RESOURCE_ERROR, f)
        self.assertIn("not finished within", f["reply_text"])
        # The timeout runs from the alarm, not from the content's start
        # (which was more than 2.5 s earlier).
        self.assertGreaterEqual(closed_after, 1.9, "closed %.2f s after the "
                                "alarm could rise: %r" % (closed_after, f))
        c.try_send(method_frame(0, CONNECTION_CLOSE_OK))
        self.assertTrue(c.wait_closed(WAIT), "socket left open after close-ok")
        self.wait_metric_below(ballast + MiB, "after the 506")
        took = pub.finish(self)
        print("blocked-content test: 506 %.2f s after crossing the watermark "
              "(%r); confirms in %.2f s" % (closed_after, f["reply_text"], took))
        self.assertEqual(self.message_count("hc-b"), 50)


# ---------------------------------------------------------------------------
# (c) unfinished content bounded per connection

@skip_if_external("sets max_message_size = 1048576 and checks warrend's "
                  "per-connection bound")
class PerConnectionContentBoundTest(HostileTestCase):
    config = {"max_message_size": 1048576}

    def test_hundred_channels_of_half_messages(self):
        # Bound: max_message_size + frame_max = 1,048,576 + 131,072 =
        # 1,179,648 bytes of unfinished content (header payloads count).
        # Each channel: a header announcing 1,000,000 bytes (a 14-byte
        # payload) and 20,000 bytes of body: 20,014.  58 channels hold
        # 1,160,812 (allowed), the 59th makes 1,180,826 (refused).
        good = self.connect()
        c = self.raw()
        c.send(b"".join(method_frame(ch, CHANNEL_OPEN, enc_shortstr(""))
                        for ch in range(1, 101)))
        for ch in range(1, 101):
            c.expect_method(CHANNEL_OPEN_OK, ch)
        part = b"y" * 20000

        def half_message(ch):
            return (start_content(ch, 1000000) +
                    frame(FRAME_BODY, ch, part))
        c.send(b"".join(half_message(ch) for ch in range(1, 59)))
        # Everything so far was taken: a later request is answered.
        c.channel_open(101)
        # another client works while this one holds 1.16 MB of halves
        pika_roundtrip(self, good, "hc-c-during")
        c.send(b"".join(half_message(ch) for ch in range(59, 101)))
        f = c.read_until_connection_close(timeout=WAIT)
        self.assertEqual(f["reply_code"], RESOURCE_ERROR, f)
        self.assertIn("unfinished message content on this connection exceeds "
                      "max_message_size", f["reply_text"])
        c.try_send(method_frame(0, CONNECTION_CLOSE_OK))
        self.assertTrue(c.wait_closed(WAIT), "socket left open after close-ok")
        pika_roundtrip(self, good, "hc-c-after")


# ---------------------------------------------------------------------------
# (d) frames before tune-ok, (h) the trickler

@skip_if_external("checks warrend's own limits and metrics")
class FrameBeforeTuneTest(HostileTestCase):

    def start_ok_frame(self, pad):
        props = {"product": "hostile", "pad": "p" * pad}
        return frame(FRAME_METHOD, 0, method_payload(
            CONNECTION_START_OK, enc_table(props) + enc_shortstr("PLAIN") +
            enc_longstr(b"\0guest\0guest") + enc_shortstr("en_US")))

    def test_large_start_ok_refused(self):
        c = RawClient(self.broker.host, self.broker.port, timeout=WAIT)
        self.addCleanup(c.close)
        c.send_protocol_header()
        c.expect_method(CONNECTION_START, 0)
        data = self.start_ok_frame(10000 - 80)
        self.assertGreater(len(data) - 8, 4096)
        self.assertLess(abs(len(data) - 8 - 10000), 100)
        c.send(data)
        # warrend: connection.close 501 FRAME_ERROR, then (reading nothing
        # more, so the close-ok is not seen) the socket is closed.
        f = c.expect_connection_close(FRAME_ERROR, timeout=WAIT,
                                      close_timeout=WAIT)
        self.assertEqual(f["reply_text"],
                         "FRAME_ERROR - frame size exceeds frame_max 4096")

    def test_start_ok_within_4096_accepted(self):
        # the control: the same handshake with a start-ok under 4096 bytes
        c = RawClient(self.broker.host, self.broker.port, timeout=WAIT)
        self.addCleanup(c.close)
        c.send_protocol_header()
        c.expect_method(CONNECTION_START, 0)
        data = self.start_ok_frame(3900)
        self.assertLessEqual(len(data) - 8, 4096)
        c.send(data)
        c.expect_method(CONNECTION_TUNE, 0)

    def test_trickler_charged_for_bytes_received(self):
        # A 100 MiB body announced, 2,000 one-byte body frames sent: the
        # message memory grows by what arrived, not by what was announced.
        good = self.connect()
        before = message_bytes(self.broker)
        c = self.raw()
        c.channel_open(1)
        c.send(start_content(1, 100 * MiB))
        one = frame(FRAME_BODY, 1, b"t")
        for _ in range(20):
            c.send(one * 100)
        # all 2,000 bytes have been received ...
        grown = wait_until(lambda: (lambda g: g if g >= 2000 else 0)(
            message_bytes(self.broker) - before), timeout=WAIT,
            what="the 2,000 trickled bytes counted")
        print("trickler: warren_message_bytes grew by %d bytes" % grown)
        # ... and count as about that many
        self.assertLess(grown, MiB, "a 100 MiB announcement charged %d bytes"
                        % grown)
        pika_roundtrip(self, good, "hc-h")
        # still held open: the trickler is not refused for being slow
        c.channel_open(2)
        c.close()
        self.wait_metric_below(before + MiB, "after the trickler hung up")


# ---------------------------------------------------------------------------
# (e) frame_max 0

@skip_if_external("sets frame_max = 0 and max_message_size = 65536")
class UnlimitedFrameMaxTest(HostileTestCase):
    config = {"frame_max": 0, "max_message_size": 65536}

    def test_frame_max_zero_capped_at_largest_message(self):
        c = self.raw(frame_max=0)
        self.assertEqual(c.tune["frame_max"], 0, "warrend proposes no limit")
        c.channel_open(1)
        # the control: a 65,536-byte body in one frame of 65,544 bytes
        # (frame_max 0: any frame up to the cap) is taken
        q = c.queue_declare(1, exclusive=True)["queue"]
        body = os.urandom(65536)
        c.publish(1, body, routing_key=q, frame_max=65536 + 8)
        c.basic_get(1, q)
        c.expect_method(BASIC_GET_OK, 1)
        _h, got, frames = c.read_content(1)
        self.assertEqual(got, body)
        # a frame header announcing 200,000 bytes (> 65,536 + 4,096) is
        # refused on the header alone
        c.send(struct.pack(">BHI", FRAME_BODY, 1, 200000) + b"z" * 1000)
        f = c.expect_connection_close(FRAME_ERROR, timeout=WAIT,
                                      close_timeout=WAIT)
        self.assertIn("frame size exceeds frame_max", f["reply_text"])
        self.assertIn(str(65536 + 4096), f["reply_text"])
        # the broker serves others (tearDown checks a fresh connection too)
        pika_roundtrip(self, self.connect(), "hc-e")


# ---------------------------------------------------------------------------
# (f) connections that never finish the handshake

@skip_if_external("sets handshake_timeout and reads warrend's memory")
@skip_if_sanitized("resident memory counts the allocator's quarantine")
class HandshakeFloodTest(HostileTestCase):
    config = {"handshake_timeout": 3000}
    N = 300

    def test_partial_frames_before_handshake(self):
        good = self.connect()
        pika_roundtrip(self, good, "hc-f-warm")
        wait_cpu_quiet(self.broker.proc.pid)
        before = self.broker.rss_kib()
        # protocol header + the first 4,000 bytes of a 4,096-byte frame
        partial = (PROTOCOL_HEADER +
                   struct.pack(">BHI", FRAME_METHOD, 0, 4088) +
                   method_payload(CONNECTION_START_OK) +
                   b"q" * (4000 - 7 - 4))
        self.assertEqual(len(partial), 8 + 4000)
        socks, opened = [], []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(self.N):
            s = socket.create_connection((self.broker.host, self.broker.port),
                                         timeout=WAIT)
            opened.append(time.monotonic())
            s.sendall(partial)
            socks.append(s)
        # each gets its connection.start (header read, partial frame held)
        pending = {s.fileno(): s for s in socks}
        got = {fd: b"" for fd in pending}
        deadline = time.monotonic() + WAIT
        while pending:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, "%d connections got no connection.start"
                               % len(pending))
            r, _, _ = select.select(list(pending), [], [], left)
            for fd in r:
                data = pending[fd].recv(65536)
                self.assertTrue(data, "closed before connection.start")
                got[fd] += data
                if len(got[fd]) >= 7:
                    size = struct.unpack(">I", got[fd][3:7])[0]
                    if len(got[fd]) >= size + 8:
                        del pending[fd]
        wait_cpu_quiet(self.broker.proc.pid, quiet=0.3)
        after = self.broker.rss_kib()
        measured_at = time.monotonic()
        grown = after - before
        print("handshake flood: RSS %d -> %d KiB: +%d KiB for %d connections "
              "(%.1f KiB each; bound %d KiB), measured %.2f s after the "
              "first connected" % (before, after, grown, self.N,
                                   grown / self.N, self.N * 64,
                                   measured_at - opened[0]))
        # measured while they were all still open (none has read EOF)
        r, _, _ = select.select(socks, [], [], 0)
        self.assertEqual(r, [], "%d connections closed before RSS was "
                         "measured (%.2f s after the first connected)"
                         % (len(r), measured_at - opened[0]))
        self.assertLess(grown, self.N * 64, "RSS grew by %d KiB for %d "
                        "half-handshaken connections" % (grown, self.N))
        # a well-behaved client works meanwhile
        pika_roundtrip(self, good, "hc-f-during")
        # all are closed at handshake_timeout: each socket reads EOF
        pending = {s.fileno(): i for i, s in enumerate(socks)}
        closed_after = []
        deadline = time.monotonic() + 3.0 + WAIT
        while pending:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, "%d of %d connections still open %.0f "
                               "s after handshake_timeout"
                               % (len(pending), self.N, WAIT))
            r, _, _ = select.select(list(pending), [], [], left)
            for fd in r:
                i = pending[fd]
                try:
                    data = socks[i].recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    closed_after.append(time.monotonic() - opened[i])
                    del pending[fd]
        print("handshake flood: closed %.2f..%.2f s after connecting"
              % (min(closed_after), max(closed_after)))
        # not before the timeout (CLOCK_MONOTONIC_COARSE: a few ms early)
        self.assertGreater(min(closed_after), 2.9)
        pika_roundtrip(self, good, "hc-f-after")


# ---------------------------------------------------------------------------
# (g) a consumer that never reads

@skip_if_external("reads warrend's memory")
@skip_if_sanitized("resident memory counts the allocator's quarantine")
class NonReadingConsumerTest(HostileTestCase):
    BODY = 64 * KiB
    COUNT = 800     # 52 MB

    def test_consumer_that_never_reads(self):
        self.fill("hc-flood", self.COUNT, self.BODY)
        wait_cpu_quiet(self.broker.proc.pid)
        before = self.broker.rss_kib()
        c = self.raw()
        c.channel_open(1)
        c.send(method_frame(1, (60, 20), enc_short(0) + enc_shortstr("hc-flood") +
                            enc_shortstr("sink") +
                            enc_bits(False, True, False, False) +
                            enc_table({})))
        # never read from here on: deliveries stop once its output is full
        last = {"n": None, "at": time.monotonic()}

        def stalled():
            n = self.message_count("hc-flood")
            now = time.monotonic()
            if n != last["n"]:
                last.update(n=n, at=now)
            return now - last["at"] >= 1.5
        wait_until(stalled, timeout=WAIT, interval=0.1,
                   what="deliveries to the non-reading consumer stalled")
        wait_cpu_quiet(self.broker.proc.pid)
        left = self.message_count("hc-flood")
        grown = self.broker.rss_kib() - before
        taken = (self.COUNT - left) * self.BODY
        print("non-reading consumer: %d of %d messages taken from the queue "
              "(%.1f MiB), RSS +%d KiB" % (self.COUNT - left, self.COUNT,
                                           taken / MiB, grown))
        # Output buffer ~4-8 MiB plus what the sockets hold: far from
        # the queue's 50 MB.
        self.assertLess(taken, 24 * MiB, "the whole queue went to a client "
                        "that does not read")
        self.assertLess(grown, 24 * 1024, "RSS grew by %d KiB" % grown)
        # another consumer/publisher pair moves 10,000 messages normally
        good = self.connect()
        took = pika_roundtrip(self, good, "hc-g", n=10000, bound=45)
        print("non-reading consumer: 10,000 messages moved by others in "
              "%.2f s" % took)
        grown = self.broker.rss_kib() - before
        self.assertLess(grown, 32 * 1024, "RSS grew by %d KiB" % grown)
        # it is still stuck, and still holds no more than it did
        self.assertEqual(self.message_count("hc-flood"), left)


# ---------------------------------------------------------------------------
# (h) a consumer that reads everything and acks nothing

@skip_if_external("sets vm_memory_high_watermark.absolute and reads "
                  "warrend's memory")
@skip_if_sanitized("resident memory counts the allocator's quarantine")
class NonAckingConsumerTest(HostileTestCase):
    config = {"vm_memory_high_watermark.absolute": WATERMARK}
    BODY = 64 * KiB
    COUNT = 2400    # 157 MB, paged out: 2.4 times the watermark

    def test_unlimited_prefetch_without_acks_is_bounded(self):
        queue = "hc-unacked"
        conn = self.connect()
        ch = conn.channel()
        ch.queue_declare(queue, durable=True)
        self.to_delete.append(queue)
        ch.confirm_delivery()
        for i in range(self.COUNT):
            ch.basic_publish("", queue, b"%06d" % i + b"u" * (self.BODY - 6),
                             pika.BasicProperties(delivery_mode=2))
        conn.close()
        wait_cpu_quiet(self.broker.proc.pid)
        before = self.broker.rss_kib()

        # prefetch 0 (unlimited), manual acks it never sends
        hog = self.connect()
        hog_ch = hog.channel()
        taken = []
        hog_ch.basic_consume(queue, lambda c, m, p, b: taken.append(
            m.delivery_tag))
        last = {"n": -1, "at": time.monotonic()}

        def stalled():
            hog.process_data_events(0.1)
            now = time.monotonic()
            if len(taken) != last["n"]:
                last.update(n=len(taken), at=now)
            return now - last["at"] >= 1.5
        wait_until(stalled, timeout=WAIT * 2, interval=0,
                   what="deliveries to the non-acking consumer to stop")
        held = len(taken) * self.BODY
        grown = self.broker.rss_kib() - before
        print("non-acking consumer: holds %d of %d messages (%.1f MiB) "
              "unacked, RSS +%d KiB" % (len(taken), self.COUNT, held / MiB,
                                        grown))
        wait_until(lambda: memory_alarm(self.broker), timeout=WAIT,
                   what="the memory alarm (the hog's holding is above it)")
        # The watermark plus its channel's share, not the queue's 157 MB.
        self.assertLess(held, WATERMARK + WATERMARK // 16 + 4 * MiB)
        self.assertLess(grown, (WATERMARK + 40 * MiB) // KiB)

        # An acking consumer of the same queue keeps draining it.
        good = self.connect()
        good_ch = good.channel()
        good_ch.basic_qos(prefetch_count=10)
        seen = []

        def drain(until):
            for method, _p, body in good_ch.consume(queue,
                                                    inactivity_timeout=WAIT):
                self.assertIsNotNone(method, "the acking consumer waited "
                                     "%.0f s for a message" % WAIT)
                good_ch.basic_ack(method.delivery_tag)
                seen.append(int(body[:6]))
                if len(seen) == until:
                    return
        drain(300)
        hog.process_data_events(0.5)
        self.assertLess(len(taken) * self.BODY,
                        WATERMARK + WATERMARK // 16 + 4 * MiB,
                        "the hog was given more meanwhile")

        # The hog goes: what it held is requeued and drained by the other
        # consumer, every message exactly once; the alarm clears.
        hog.close()
        drain(self.COUNT)
        good_ch.cancel()
        self.assertEqual(sorted(seen), list(range(self.COUNT)))
        wait_until(lambda: not memory_alarm(self.broker), timeout=WAIT,
                   what="the memory alarm to clear")
        good.close()

if __name__ == "__main__":
    main()
