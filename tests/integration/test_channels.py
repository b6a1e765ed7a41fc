#!/usr/bin/python3
"""Channels: many concurrent channels, close/reopen, channel errors are
isolated, channel-state protocol errors."""

import time

import pika

from harness import (
    BASIC_GET_OK, CHANNEL_CLOSE, CHANNEL_CLOSE_OK, CHANNEL_ERROR, CHANNEL_OPEN,
    CHANNEL_OPEN_OK, NOT_ALLOWED, NOT_FOUND, QUEUE_DECLARE, BrokerTestCase,
    assert_broker_alive, enc_bits, enc_short, enc_shortstr, enc_table, main,
    method_frame, raw_connect,
)


def declare_frame(ch, queue=""):
    return method_frame(ch, QUEUE_DECLARE, enc_short(0) + enc_shortstr(queue) +
                        enc_bits(False, False, True, False, False) + enc_table({}))


class ChannelTest(BrokerTestCase):

    def tearDown(self):
        assert_broker_alive(self.broker)

    def test_fifty_channels_used_concurrently(self):
        conn = pika.BlockingConnection(self.broker.params())
        try:
            chans = [conn.channel() for _ in range(50)]
            self.assertEqual(len({c.channel_number for c in chans}), 50)
            queues = [c.queue_declare(queue="", exclusive=True).method.queue for c in chans]
            self.assertEqual(len(set(queues)), 50)
            # interleave: every channel publishes 3 messages to its own queue
            for r in range(3):
                for i, c in enumerate(chans):
                    c.basic_publish("", queues[i], b"ch%d-msg%d" % (i, r))
            # read back through the channels in reverse order
            for i in reversed(range(50)):
                c = chans[i]
                got = []
                deadline = time.monotonic() + 30
                while len(got) < 3 and time.monotonic() < deadline:
                    m, _p, body = c.basic_get(queues[i], auto_ack=False)
                    if m is None:
                        time.sleep(0.01)
                        continue
                    c.basic_ack(m.delivery_tag)
                    got.append(body)
                self.assertEqual(got, [b"ch%d-msg%d" % (i, r) for r in range(3)],
                                 "channel %d got the wrong messages" % c.channel_number)
                m, _p, _b = c.basic_get(queues[i], auto_ack=True)
                self.assertIsNone(m)
            for c in chans:
                self.assertTrue(c.is_open)
                c.close()
        finally:
            conn.close()

    def test_fifty_channels_pipelined_raw(self):
        # all 50 channels have requests in flight at the same time
        n = 50
        with raw_connect(self.broker) as c:
            c.send(b"".join(method_frame(ch, CHANNEL_OPEN, enc_shortstr(""))
                            for ch in range(1, n + 1)))
            opened = set()
            for _ in range(n):
                f = c.read_frame_skip_heartbeats()
                self.assertEqual(f.method, CHANNEL_OPEN_OK, "got %r" % f)
                opened.add(f.channel)
            self.assertEqual(opened, set(range(1, n + 1)))
            c.send(b"".join(declare_frame(ch) for ch in range(1, n + 1)))
            queues = {}
            for _ in range(n):
                f = c.read_frame_skip_heartbeats()
                self.assertEqual(f.method, (50, 11), "got %r" % f)
                self.assertNotIn(f.channel, queues)
                queues[f.channel] = f["queue"]
            self.assertEqual(len(set(queues.values())), n)
            c.send(b"".join(c.publish_frames(ch, b"body-%d" % ch, routing_key=queues[ch])
                            for ch in range(1, n + 1)))
            # drain asynchronously delivered publishes before basic.get
            pending = set(range(1, n + 1))
            deadline = time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                batch = sorted(pending)
                for ch in batch:
                    c.basic_get(ch, queues[ch], no_ack=True)
                for _ in batch:
                    f = c.read_frame_skip_heartbeats()
                    if f.method == BASIC_GET_OK:
                        _h, body, _fr = c.read_content(f.channel)
                        self.assertEqual(body, b"body-%d" % f.channel)
                        self.assertEqual(f["routing_key"], queues[f.channel])
                        pending.discard(f.channel)
                    else:
                        self.assertEqual(f.method, (60, 72), "got %r" % f)
            self.assertFalse(pending, "no message on channels %r" % sorted(pending))
            c.connection_close()

    def test_close_and_reopen_same_number(self):
        conn = pika.BlockingConnection(self.broker.params())
        try:
            ch = conn.channel(channel_number=7)
            ch.queue_declare(queue="", exclusive=True)
            ch.close()   # waits for the broker's close-ok
            # reopening 7 is a 504 connection error unless the broker freed it
            ch2 = conn.channel(channel_number=7)
            q = ch2.queue_declare(queue="", exclusive=True).method.queue
            ch2.basic_publish("", q, b"again")
            self.assertEqual(self._get(ch2, q), b"again")
        finally:
            conn.close()

    def test_raw_close_and_reopen(self):
        with raw_connect(self.broker) as c:
            for _ in range(3):
                c.channel_open(1)
                c.queue_declare(1, exclusive=True)
                c.channel_close(1)
            c.channel_open(1)
            c.connection_close()

    @staticmethod
    def _get(ch, q, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m, _p, body = ch.basic_get(q, auto_ack=True)
            if m is not None:
                return body
            time.sleep(0.01)
        return None

    def test_channel_error_leaves_connection_and_other_channels(self):
        conn = pika.BlockingConnection(self.broker.params())
        try:
            good = conn.channel()
            q = good.queue_declare(queue="", exclusive=True).method.queue
            bad = conn.channel()
            bad.basic_publish("no-such-exchange-xyz", "rk", b"lost")
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                bad.queue_declare(queue="", exclusive=True)
            self.assertEqual(cm.exception.reply_code, NOT_FOUND)
            self.assertTrue(cm.exception.reply_text.startswith("NOT_FOUND"),
                            cm.exception.reply_text)
            self.assertTrue(bad.is_closed)
            self.assertTrue(conn.is_open)
            good.basic_publish("", q, b"fine")
            self.assertEqual(self._get(good, q), b"fine")
            third = conn.channel()
            third.queue_declare(queue=q, passive=True)
        finally:
            conn.close()

    def test_raw_channel_close_details_and_reopen(self):
        with raw_connect(self.broker) as c:
            c.channel_open(1)
            c.channel_open(2)
            c.publish(1, b"x", exchange="no-such-exchange-xyz", routing_key="rk")
            f = c.expect_method(CHANNEL_CLOSE, channel=1)
            self.assertEqual(f["reply_code"], NOT_FOUND)
            self.assertTrue(f["reply_text"].startswith("NOT_FOUND"), f["reply_text"])
            self.assertEqual((f["class_id"], f["method_id"]), (60, 40))
            # until the client's close-ok, other methods on channel 1 are discarded
            c.send(declare_frame(1))
            # channel 2 keeps working meanwhile
            c.send(declare_frame(2))
            ok = c.read_frame_skip_heartbeats()
            self.assertEqual((ok.channel, ok.method), (2, (50, 11)),
                             "expected declare-ok on channel 2 only, got %r" % ok)
            c.send(method_frame(1, CHANNEL_CLOSE_OK))
            c.channel_open(1)
            c.queue_declare(1, exclusive=True)
            c.connection_close()

    def test_client_initiated_channel_close(self):
        with raw_connect(self.broker) as c:
            c.channel_open(3)
            c.send(method_frame(3, CHANNEL_CLOSE, enc_short(200) + enc_shortstr("done") +
                                enc_short(0) + enc_short(0)))
            c.expect_method(CHANNEL_CLOSE_OK, channel=3)
            # the closed channel number is free again; using it unopened is an error
            c.send(declare_frame(3))
            f = c.expect_connection_close(CHANNEL_ERROR)
            self.assertEqual((f["class_id"], f["method_id"]), (50, 10))

    def test_method_on_never_opened_channel(self):
        with raw_connect(self.broker) as c:
            c.channel_open(1)
            c.send(declare_frame(5))
            f = c.expect_connection_close(CHANNEL_ERROR)
            self.assertTrue(f["reply_text"].startswith("CHANNEL_ERROR"), f["reply_text"])
            self.assertEqual((f["class_id"], f["method_id"]), (50, 10))

    def test_channel_close_on_never_opened_channel(self):
        with raw_connect(self.broker) as c:
            c.send(method_frame(9, CHANNEL_CLOSE, enc_short(200) + enc_shortstr("") +
                                enc_short(0) + enc_short(0)))
            f = c.expect_connection_close(CHANNEL_ERROR)
            self.assertEqual((f["class_id"], f["method_id"]), (20, 40))

    def test_channel_open_on_open_channel(self):
        # RabbitMQ: connection.close 504 "CHANNEL_ERROR - second 'channel.open' seen"
        with raw_connect(self.broker) as c:
            c.channel_open(1)
            c.send(method_frame(1, CHANNEL_OPEN, enc_shortstr("")))
            f = c.expect_connection_close(CHANNEL_ERROR)
            self.assertTrue(f["reply_text"].startswith("CHANNEL_ERROR"), f["reply_text"])
            self.assertEqual((f["class_id"], f["method_id"]), (20, 10))

    def test_channel_method_on_channel_zero(self):
        # RabbitMQ: 504 CHANNEL_ERROR "unexpected method in connection state running"
        with raw_connect(self.broker) as c:
            c.send(method_frame(0, CHANNEL_OPEN, enc_shortstr("")))
            f = c.expect_connection_close(CHANNEL_ERROR)
            self.assertEqual((f["class_id"], f["method_id"]), (20, 10))

    def test_channel_number_above_channel_max(self):
        # RabbitMQ limits the number of open channels to channel_max, not the
        # channel number: with channel_max 10, channel 11 opens fine ...
        with raw_connect(self.broker, channel_max=10) as c:
            c.send(method_frame(11, CHANNEL_OPEN, enc_shortstr("")))
            c.expect_method(CHANNEL_OPEN_OK, channel=11)
            c.queue_declare(11, exclusive=True)
            c.send(method_frame(65535, CHANNEL_OPEN, enc_shortstr("")))
            c.expect_method(CHANNEL_OPEN_OK, channel=65535)
            c.connection_close()

    def test_more_open_channels_than_channel_max(self):
        # ... but an 11th simultaneously open channel is refused with
        # connection.close 530 NOT_ALLOWED.
        with raw_connect(self.broker, channel_max=10) as c:
            for n in range(1, 11):
                c.channel_open(n)
            c.send(method_frame(11, CHANNEL_OPEN, enc_shortstr("")))
            f = c.expect_connection_close(NOT_ALLOWED)
            self.assertTrue(f["reply_text"].startswith("NOT_ALLOWED"), f["reply_text"])

    def test_closed_channels_do_not_count_against_channel_max(self):
        with raw_connect(self.broker, channel_max=3) as c:
            for n in range(1, 21):
                c.channel_open(n)
                c.channel_close(n)
            for n in (100, 200, 300):
                c.channel_open(n)
            c.connection_close()


if __name__ == "__main__":
    main()
