#!/usr/bin/python3
"""Malformed input on raw sockets: each must end in the reply code RabbitMQ
uses, the socket must be closed afterwards, and the broker must keep
serving new connections."""

import socket
import struct
import time

from harness import (
    BASIC_PUBLISH, CHANNEL_ERROR, COMMAND_INVALID, CONNECTION_CLOSE,
    CONNECTION_CLOSE_OK, CONNECTION_OPEN, CONNECTION_START, CONNECTION_TUNE,
    CONNECTION_TUNE_OK, FRAME_BODY, FRAME_ERROR, FRAME_HEADER, FRAME_HEARTBEAT,
    FRAME_METHOD, NOT_IMPLEMENTED, PROTOCOL_HEADER, QUEUE_DECLARE, SYNTAX_ERROR,
    UNEXPECTED_FRAME, BrokerTestCase, ConnectionClosedByPeer, RawClient,
    assert_broker_alive, content_header_payload, enc_bits, enc_long, enc_short,
    enc_shortstr, enc_table, frame, heartbeat_frame, main, method_frame,
    method_payload, raw_connect, wait_cpu_quiet, wait_until,
)

# RabbitMQ (and warrend) waits ~3 s before closing the socket after a fatal
# framing error; the bound is only reached when the socket is never closed.
CLOSE_TIMEOUT = 30.0
# How long to wait for a reply that must come (only reached on failure).
REPLY_TIMEOUT = 30.0


def declare_args(queue="q", exclusive=True, table=None):
    return (enc_short(0) + enc_shortstr(queue) +
            enc_bits(False, False, exclusive, False, False) +
            (enc_table({}) if table is None else table))


def publish_method(ch, routing_key="nowhere"):
    return method_frame(ch, BASIC_PUBLISH, enc_short(0) + enc_shortstr("") +
                        enc_shortstr(routing_key) + enc_bits(False, False))


class ProtocolErrorTest(BrokerTestCase):

    def tearDown(self):
        # the broker neither crashed nor wedged
        assert_broker_alive(self.broker)

    def open_conn(self, frame_max=None, channel=1):
        c = raw_connect(self.broker, timeout=REPLY_TIMEOUT, frame_max=frame_max)
        self.addCleanup(c.close)
        if channel:
            c.channel_open(channel)
        return c

    def expect_close(self, c, code, method=None, prefix=None):
        f = c.expect_connection_close(code, close_timeout=CLOSE_TIMEOUT)
        names = {FRAME_ERROR: "FRAME_ERROR", UNEXPECTED_FRAME: "UNEXPECTED_FRAME",
                 CHANNEL_ERROR: "CHANNEL_ERROR", COMMAND_INVALID: "COMMAND_INVALID",
                 SYNTAX_ERROR: "SYNTAX_ERROR", NOT_IMPLEMENTED: "NOT_IMPLEMENTED"}
        want = prefix or names.get(code)
        if want:
            self.assertTrue(f["reply_text"].startswith(want), f["reply_text"])
        if method is not None:
            self.assertEqual((f["class_id"], f["method_id"]), method)
        return f

    def expect_close_or_drop(self, c, allowed_codes):
        """Accept connection.close with one of allowed_codes, or the socket
        simply being closed; anything else (or no close at all) fails."""
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while True:
            try:
                f = c.read_frame(max(0.01, deadline - time.monotonic()))
            except ConnectionClosedByPeer:
                return None
            except socket.timeout:
                self.fail("connection neither closed nor dropped")
            if f.type == FRAME_METHOD and f.method == CONNECTION_CLOSE:
                self.assertIn(f["reply_code"], allowed_codes, "got %r" % f)
                c.try_send(method_frame(0, CONNECTION_CLOSE_OK))
                self.assertTrue(c.wait_closed(CLOSE_TIMEOUT), "socket left open")
                return f
            self.assertEqual(f.type, FRAME_HEARTBEAT, "unexpected %r" % f)

    # ---- framing ---------------------------------------------------------------
    def test_bad_frame_end_octet(self):
        c = self.open_conn()
        c.send(frame(FRAME_METHOD, 1, method_payload(QUEUE_DECLARE, declare_args()), end=0x00))
        self.expect_close(c, FRAME_ERROR)

    def test_bad_frame_end_on_heartbeat(self):
        c = self.open_conn(channel=0)
        c.send(frame(FRAME_HEARTBEAT, 0, b"", end=0xCD))
        self.expect_close(c, FRAME_ERROR)

    def test_frame_larger_than_frame_max(self):
        c = self.open_conn(frame_max=4096)
        c.send(publish_method(1) + frame(FRAME_HEADER, 1, content_header_payload(5000)) +
               frame(FRAME_BODY, 1, b"x" * 5000))
        self.expect_close(c, FRAME_ERROR)

    def test_frame_size_fudge(self):
        # RabbitMQ accepts a payload of up to frame_max bytes (a frame of
        # frame_max + 8: FRAME_SIZE_FUDGE, for old clients) and refuses one
        # byte more with 501.
        c = self.open_conn(frame_max=4096)
        q = c.queue_declare(1)["queue"]
        body = b"f" * 4096
        c.send(publish_method(1, q) + frame(FRAME_HEADER, 1, content_header_payload(len(body))) +
               frame(FRAME_BODY, 1, body))
        c.basic_get(1, q)
        c.expect_method((60, 71), channel=1)
        _h, got, frames = c.read_content(1)
        self.assertEqual(got, body)
        for f in frames:  # but the server itself stays within frame_max
            self.assertLessEqual(len(f.payload) + 8, 4096)
        c.send(publish_method(1, q) + frame(FRAME_HEADER, 1, content_header_payload(4097)) +
               frame(FRAME_BODY, 1, b"g" * 4097))
        self.expect_close(c, FRAME_ERROR)

    def test_method_frame_larger_than_frame_max(self):
        c = self.open_conn(frame_max=4096)
        big = enc_table({"x-pad": "y" * 5000})
        c.send(method_frame(1, QUEUE_DECLARE, declare_args(table=big)))
        self.expect_close(c, FRAME_ERROR)

    def test_huge_frame_size_field(self):
        # must be refused on the header alone, not buffered
        c = self.open_conn()
        c.send(struct.pack(">BHI", FRAME_METHOD, 1, 0x7FFFFFFF) + b"abc")
        self.expect_close(c, FRAME_ERROR)

    def test_frame_of_exactly_frame_max_accepted(self):
        c = self.open_conn(frame_max=4096)
        q = c.queue_declare(1)["queue"]
        body = b"b" * (4096 - 8)
        c.send(publish_method(1, q) + frame(FRAME_HEADER, 1, content_header_payload(len(body))) +
               frame(FRAME_BODY, 1, body))
        c.basic_get(1, q)
        c.expect_method((60, 71), channel=1)
        _h, got, _f = c.read_content(1)
        self.assertEqual(got, body)
        c.connection_close()

    def test_unknown_frame_types(self):
        for ftype in (0, 4, 7, 9, 255):
            with self.subTest(frame_type=ftype):
                c = self.open_conn()
                c.send(frame(ftype, 1, b"abc"))
                self.expect_close(c, FRAME_ERROR)

    def test_heartbeat_with_payload(self):
        c = self.open_conn(channel=0)
        c.send(frame(FRAME_HEARTBEAT, 0, b"abc"))
        self.expect_close(c, FRAME_ERROR)

    def test_heartbeat_on_nonzero_channel(self):
        # RabbitMQ: 505 UNEXPECTED_FRAME (not 501)
        c = self.open_conn()
        c.send(heartbeat_frame(1))
        self.expect_close(c, UNEXPECTED_FRAME)

    def test_method_payload_too_short_for_ids(self):
        # RabbitMQ: 501 FRAME_ERROR
        c = self.open_conn()
        c.send(frame(FRAME_METHOD, 1, b"\x00\x32"))
        self.expect_close(c, FRAME_ERROR)

    # ---- content sequencing ---------------------------------------------------
    def test_content_header_without_publish(self):
        c = self.open_conn()
        c.send(frame(FRAME_HEADER, 1, content_header_payload(5)))
        self.expect_close(c, UNEXPECTED_FRAME)

    def test_content_body_without_publish(self):
        c = self.open_conn()
        c.send(frame(FRAME_BODY, 1, b"hello"))
        self.expect_close(c, UNEXPECTED_FRAME)

    def test_method_while_header_expected(self):
        c = self.open_conn()
        c.send(publish_method(1) + method_frame(1, QUEUE_DECLARE, declare_args()))
        self.expect_close(c, UNEXPECTED_FRAME, method=(60, 40))

    def test_method_while_body_expected(self):
        c = self.open_conn()
        c.send(publish_method(1) + frame(FRAME_HEADER, 1, content_header_payload(10)) +
               frame(FRAME_BODY, 1, b"12345") +
               method_frame(1, QUEUE_DECLARE, declare_args()))
        self.expect_close(c, UNEXPECTED_FRAME, method=(60, 40))

    def test_content_header_with_wrong_class(self):
        c = self.open_conn()
        c.send(publish_method(1) + frame(FRAME_HEADER, 1, content_header_payload(3, class_id=50)) +
               frame(FRAME_BODY, 1, b"abc"))
        self.expect_close(c, UNEXPECTED_FRAME, method=(60, 40))

    def test_content_header_on_channel_zero(self):
        c = self.open_conn(channel=0)
        c.send(frame(FRAME_HEADER, 0, content_header_payload(5)))
        self.expect_close(c, UNEXPECTED_FRAME)

    def test_content_body_on_channel_zero(self):
        c = self.open_conn(channel=0)
        c.send(frame(FRAME_BODY, 0, b"abc"))
        self.expect_close(c, UNEXPECTED_FRAME)

    def test_content_interleaved_from_other_channel(self):
        c = self.open_conn()
        c.channel_open(2)
        c.send(publish_method(1) + frame(FRAME_HEADER, 1, content_header_payload(3)) +
               frame(FRAME_BODY, 2, b"abc"))
        self.expect_close(c, UNEXPECTED_FRAME)

    # ---- method decoding --------------------------------------------------------
    def test_truncated_method_arguments(self):
        # RabbitMQ: 501 FRAME_ERROR "cannot decode ..." naming the method
        c = self.open_conn()
        c.send(method_frame(1, QUEUE_DECLARE, enc_short(0) + b"\x05ab"))
        self.expect_close(c, FRAME_ERROR, method=(50, 10))

    def test_truncated_publish_arguments(self):
        c = self.open_conn()
        c.send(method_frame(1, BASIC_PUBLISH, enc_short(0)))
        self.expect_close(c, FRAME_ERROR, method=(60, 40))

    def test_trailing_bytes_after_arguments(self):
        c = self.open_conn()
        c.send(method_frame(1, QUEUE_DECLARE, declare_args(queue="") + b"junk"))
        self.expect_close(c, FRAME_ERROR, method=(50, 10))

    def test_field_table_length_overruns_payload(self):
        c = self.open_conn()
        c.send(method_frame(1, QUEUE_DECLARE, declare_args(table=enc_long(300) + b"\x01aV")))
        self.expect_close(c, FRAME_ERROR, method=(50, 10))

    def test_unknown_field_type_in_table(self):
        # RabbitMQ 3.10 drops the connection without connection.close here
        c = self.open_conn()
        c.send(method_frame(1, QUEUE_DECLARE, declare_args(table=enc_long(3) + b"\x01aZ")))
        self.expect_close_or_drop(c, (FRAME_ERROR, SYNTAX_ERROR))

    def test_unknown_class(self):
        # RabbitMQ 3.10 drops the connection (reader crash) without
        # connection.close; a close with 503/540 is also accepted
        c = self.open_conn()
        c.send(method_frame(1, (99, 10)))
        self.expect_close_or_drop(c, (COMMAND_INVALID, NOT_IMPLEMENTED))

    def test_unknown_method_of_known_class(self):
        c = self.open_conn()
        c.send(method_frame(1, (50, 99)))
        self.expect_close_or_drop(c, (COMMAND_INVALID, NOT_IMPLEMENTED))

    def test_unknown_method_on_channel_zero(self):
        c = self.open_conn(channel=0)
        c.send(method_frame(0, (10, 99)))
        self.expect_close_or_drop(c, (COMMAND_INVALID, NOT_IMPLEMENTED))

    def test_connection_method_on_channel_one(self):
        # RabbitMQ: 503 COMMAND_INVALID
        c = self.open_conn()
        c.send(method_frame(1, CONNECTION_OPEN, enc_shortstr("/") + enc_shortstr("") +
                            enc_bits(False)))
        self.expect_close(c, COMMAND_INVALID, method=(10, 40))

    def test_tune_ok_after_open(self):
        # RabbitMQ: 504 CHANNEL_ERROR "unexpected method in connection state running"
        c = self.open_conn(channel=0)
        c.send(method_frame(0, CONNECTION_TUNE_OK, enc_short(0) + enc_long(131072) + enc_short(0)))
        self.expect_close(c, CHANNEL_ERROR, method=(10, 31))

    def test_queue_method_on_channel_zero(self):
        c = self.open_conn(channel=0)
        c.send(method_frame(0, QUEUE_DECLARE, declare_args()))
        self.expect_close(c, CHANNEL_ERROR, method=(50, 10))

    # ---- disconnects ----------------------------------------------------------
    def _disconnect_after(self, data, handshake=True):
        if handshake:
            c = raw_connect(self.broker)
            c.channel_open(1)
        else:
            c = RawClient(self.broker.host, self.broker.port)
        if data:
            c.send(data)
        time.sleep(0.05)
        c.close()

    def test_disconnect_mid_protocol_header(self):
        self._disconnect_after(PROTOCOL_HEADER[:5], handshake=False)

    def test_disconnect_mid_handshake(self):
        for stage in ("after-header", "after-start-ok", "after-tune-ok", "mid-start-ok"):
            with self.subTest(stage=stage):
                c = RawClient(self.broker.host, self.broker.port)
                c.send_protocol_header()
                c.expect_method(CONNECTION_START)
                if stage == "mid-start-ok":
                    c.send(method_frame(0, (10, 11), enc_table({"product": "x"}))[:20])
                elif stage != "after-header":
                    c.start_ok(self.broker.user, self.broker.password)
                    t = c.expect_method(CONNECTION_TUNE)
                    if stage == "after-tune-ok":
                        c.tune_ok(t["channel_max"], t["frame_max"], 0)
                c.close()
                assert_broker_alive(self.broker)

    def test_disconnect_mid_frame(self):
        whole = method_frame(1, QUEUE_DECLARE, declare_args())
        for cut in (1, 6, 7, len(whole) - 1):
            with self.subTest(cut=cut):
                self._disconnect_after(whole[:cut])
                assert_broker_alive(self.broker)

    def wait_connection_gone(self, ch, marker):
        """Wait until the broker has torn down the connection that declared
        the exclusive queue `marker` (the queue goes with it): by then it
        has handled everything that connection sent."""
        import pika.exceptions

        def gone():
            probe = ch.connection.channel()
            try:
                probe.queue_declare(queue=marker, passive=True)
            except pika.exceptions.ChannelClosedByBroker as e:
                self.assertEqual(e.reply_code, 404)
                return True
            probe.close()
            return False
        wait_until(gone, timeout=30, interval=0.05,
                   what="the dropped connection torn down (its exclusive "
                        "queue %s deleted)" % marker)

    def test_disconnect_mid_content_enqueues_nothing(self):
        import pika
        conn = pika.BlockingConnection(self.broker.params())
        try:
            ch = conn.channel()
            q = ch.queue_declare(queue="", exclusive=True).method.queue
            c = raw_connect(self.broker, timeout=REPLY_TIMEOUT)
            c.channel_open(1)
            marker1 = c.queue_declare(1, exclusive=True)["queue"]
            body = b"z" * 10000
            data = c.publish_frames(1, body, routing_key=q, frame_max=4096)
            c.send(data[:len(data) - 3000])  # header + part of the body
            time.sleep(0.1)
            c.close()
            # also: publish method only, then disconnect
            c = raw_connect(self.broker, timeout=REPLY_TIMEOUT)
            c.channel_open(1)
            marker2 = c.queue_declare(1, exclusive=True)["queue"]
            c.send(publish_method(1, q))
            c.close()
            self.wait_connection_gone(ch, marker1)
            self.wait_connection_gone(ch, marker2)
            self.assertEqual(ch.queue_declare(queue=q, passive=True).method.message_count, 0,
                             "a partially received message was enqueued")
        finally:
            conn.close()

    def test_many_abrupt_disconnects(self):
        for i in range(50):
            c = raw_connect(self.broker)
            if i % 2:
                c.channel_open(1)
                c.send(publish_method(1, "x")[:9])
            c.close()


class SlowReaderTest(BrokerTestCase):
    """A client that sends requests but never reads the replies must not make
    the broker buffer replies without bound, nor wedge it for others."""

    def vm_rss_kb(self):
        with open("/proc/%d/status" % self.broker.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def test_unread_replies_do_not_grow_memory(self):
        if self.broker.external:
            self.skipTest("needs the broker's pid to read its memory")
        c = raw_connect(self.broker, timeout=REPLY_TIMEOUT)
        self.addCleanup(c.close)
        c.channel_open(1)
        q = "q" * 255
        c.send(method_frame(1, QUEUE_DECLARE, declare_args(queue=q)))
        c.expect_method((50, 11), channel=1)
        # A passive queue.declare of a 255-byte name is answered by a
        # declare-ok as long as the request: 400,000 of them, never read,
        # would be 110 MB of replies held by a broker without backpressure.
        passive = method_frame(1, QUEUE_DECLARE, enc_short(0) +
                               enc_shortstr(q) +
                               enc_bits(True, False, True, False, False) +
                               enc_table({}))
        burst = passive * 400000
        bound = 48 * 1024
        before = self.vm_rss_kb()
        c.sock.setblocking(False)
        # Send until the broker stops reading (the socket takes nothing for
        # a second: the kernel's buffers are full) or everything is sent.
        # Any time RSS crosses the bound it is a failure at once.
        sent, last_progress, next_rss = 0, time.monotonic(), 0.0
        while sent < len(burst):
            now = time.monotonic()
            if now >= next_rss:
                grown = self.vm_rss_kb() - before
                self.assertLess(grown, bound, "RSS grew by %d kB while a client "
                                "did not read its replies (%d bytes sent)"
                                % (grown, sent))
                next_rss = now + 0.1
            try:
                sent += c.sock.send(burst[sent:sent + (1 << 20)])
                last_progress = now
            except BlockingIOError:
                if now - last_progress > 1.0:
                    break
                time.sleep(0.01)
        # Once the broker has done all it took in, its size is final.
        wait_cpu_quiet(self.broker.proc.pid)
        grown = self.vm_rss_kb() - before
        self.assertLess(grown, bound, "RSS grew by %d kB while a client "
                        "did not read its replies (%d bytes sent)" % (grown, sent))
        self.assertLess(sent, len(burst), "the broker read all %d requests "
                        "without its replies being read" % 400000)
        # others are still served meanwhile
        other = raw_connect(self.broker)
        other.channel_open(1)
        other.queue_declare(1)
        other.close()
        assert_broker_alive(self.broker)


if __name__ == "__main__":
    main()
