#!/usr/bin/python3
"""Acknowledgements: basic.ack / basic.nack / basic.reject with multiple and
requeue, unknown / double acks (406), requeue to the original position with
redelivered=true, requeue on channel and connection close, basic.recover,
per-channel delivery tags."""

import os
import time

import pika
import pika.exceptions

from harness import (PikaTestCase, NOT_IMPLEMENTED, PRECONDITION_FAILED, get_all, main,
    raw_connect, wait_message_count, wait_until)


def uniq(stem):
    return "warren-it-a-%s-%s" % (stem, os.urandom(4).hex())


class AckTestBase(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.conn = self.connect()
        self.ch = self.conn.channel()


    def queue(self, stem, n=0):
        name = uniq(stem)
        self.ch.queue_declare(queue=name)
        self.to_delete.append(name)
        for i in range(1, n + 1):
            self.ch.basic_publish(exchange="", routing_key=name, body=b"%d" % i)
        if n:
            self.assertEqual(wait_message_count(self.ch, name, n).message_count, n)
        return name

    def get(self, ch, q, n):
        """n basic.gets without ack: [(tag, body, redelivered)]"""
        out = []
        for _ in range(n):
            m, _, body = ch.basic_get(q, auto_ack=False)
            self.assertIsNotNone(m, "queue %s ran dry" % q)
            out.append((m.delivery_tag, body, m.redelivered))
        return out

    def drain(self, q, ch=None):
        """Everything left in the queue, in order: [(body, redelivered)] (auto-ack)."""
        return get_all(ch or self.conn.channel(), q)

    def count(self, q):
        return self.conn.channel().queue_declare(queue=q, passive=True).method.message_count

    def pump(self, cond, timeout=30.0):
        """Process events until cond() holds (bounded; only reached on failure)."""
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.05)
        return cond()

    def sync(self, ch):
        """A round trip on ch, so that earlier asynchronous methods (ack, nack,
        reject, publish) have been processed -- or their channel error raised."""
        ch.exchange_declare("amq.direct", passive=True)

    def channel_error(self, code, fn, *a, **kw):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            fn(*a, **kw)
        self.assertEqual(cm.exception.reply_code, code,
                         "expected channel.close %d, got %r" % (code, cm.exception))
        return cm.exception


class AckTest(AckTestBase):

    def test_delivery_tags_start_at_1_per_channel(self):
        q = self.queue("tags", 6)
        a, b = self.conn.channel(), self.conn.channel()
        self.assertEqual([t for t, _, _ in self.get(a, q, 2)], [1, 2])
        self.assertEqual([t for t, _, _ in self.get(b, q, 2)], [1, 2])
        self.assertEqual([t for t, _, _ in self.get(a, q, 1)], [3])
        # a new channel starts at 1 again, also for consumers
        c = self.conn.channel()
        got = []
        c.basic_consume(q, lambda ch, m, p, body: got.append(m.delivery_tag))
        self.pump(lambda: len(got) >= 1)
        self.assertEqual(got, [1])

    def test_ack_single(self):
        q = self.queue("ack1", 3)
        got = self.get(self.ch, q, 3)
        self.ch.basic_ack(got[1][0])
        self.sync(self.ch)
        self.ch.close()
        self.assertEqual(self.drain(q), [(b"1", True), (b"3", True)])

    def test_ack_multiple(self):
        q = self.queue("ackm", 5)
        got = self.get(self.ch, q, 5)
        self.ch.basic_ack(got[2][0], multiple=True)   # 1..3
        self.sync(self.ch)
        self.ch.close()
        self.assertEqual(self.drain(q), [(b"4", True), (b"5", True)])

    def test_ack_multiple_skips_already_acked(self):
        q = self.queue("ackm-gap", 4)
        self.get(self.ch, q, 4)
        self.ch.basic_ack(2)
        self.ch.basic_ack(3, multiple=True)   # 1 and 3
        self.sync(self.ch)
        self.ch.close()
        self.assertEqual(self.drain(q), [(b"4", True)])

    def test_ack_zero_multiple_acks_everything(self):
        q = self.queue("ack0", 4)
        self.get(self.ch, q, 4)
        self.ch.basic_ack(0, multiple=True)
        self.sync(self.ch)
        self.ch.close()
        self.assertEqual(self.drain(q), [])

    def test_nack_requeue_goes_back_to_original_position(self):
        # publish 1..5, get 1,2,3, nack 2 with requeue: the queue is 2,4,5
        q = self.queue("nack-pos", 5)
        got = self.get(self.ch, q, 3)
        self.ch.basic_nack(got[1][0], requeue=True)
        self.sync(self.ch)
        other = self.conn.channel()
        self.assertEqual([(b, r) for _, b, r in self.get(other, q, 3)],
                         [(b"2", True), (b"4", False), (b"5", False)])
        self.assertEqual(self.count(q), 0)
        # returning 1 and 3 (channel close) and then 2,4,5 restores 1..5
        self.ch.close()
        other.close()
        self.assertEqual(self.drain(q), [(b"%d" % i, True) for i in range(1, 6)])

    def test_requeued_message_goes_ahead_of_later_ones(self):
        q = self.queue("nack-front", 3)
        got = self.get(self.ch, q, 1)
        self.ch.basic_reject(got[0][0], requeue=True)
        self.sync(self.ch)
        self.assertEqual(self.drain(q), [(b"1", True), (b"2", False), (b"3", False)])

    def test_nack_multiple_requeue(self):
        q = self.queue("nackm-rq", 5)
        got = self.get(self.ch, q, 4)
        self.ch.basic_nack(got[2][0], multiple=True, requeue=True)   # 1..3 back
        self.sync(self.ch)
        self.assertEqual(self.drain(q), [(b"1", True), (b"2", True), (b"3", True),
                                         (b"5", False)])
        self.ch.close()
        self.assertEqual(self.drain(q), [(b"4", True)])

    def test_nack_multiple_discard(self):
        q = self.queue("nackm-drop", 5)
        got = self.get(self.ch, q, 4)
        self.ch.basic_nack(got[2][0], multiple=True, requeue=False)
        self.sync(self.ch)
        self.ch.close()
        self.assertEqual(self.drain(q), [(b"4", True), (b"5", False)])

    def test_nack_single_discard(self):
        q = self.queue("nack-drop", 2)
        got = self.get(self.ch, q, 2)
        self.ch.basic_nack(got[0][0], multiple=False, requeue=False)
        self.sync(self.ch)
        self.ch.close()
        self.assertEqual(self.drain(q), [(b"2", True)])

    def test_reject(self):
        q = self.queue("reject", 3)
        got = self.get(self.ch, q, 3)
        self.ch.basic_reject(got[0][0], requeue=False)
        self.ch.basic_reject(got[1][0], requeue=True)
        self.sync(self.ch)
        self.assertEqual(self.drain(q), [(b"2", True)])
        self.ch.basic_ack(got[2][0])
        self.sync(self.ch)
        self.ch.close()
        self.assertEqual(self.count(q), 0)

    def test_nack_and_reject_with_consumer_redeliver(self):
        q = self.queue("nack-consumer", 3)
        seen = []
        cch = self.conn.channel()

        def on_msg(ch, m, props, body):
            seen.append((body, m.redelivered))
            if not m.redelivered and body == b"2":
                ch.basic_reject(m.delivery_tag, requeue=True)
            elif not m.redelivered and body == b"3":
                ch.basic_nack(m.delivery_tag, requeue=True)
            else:
                ch.basic_ack(m.delivery_tag)
        cch.basic_consume(q, on_msg)
        self.pump(lambda: len(seen) >= 5)
        self.assertEqual(sorted(seen), sorted([(b"1", False), (b"2", False), (b"3", False),
                                               (b"2", True), (b"3", True)]))
        self.conn.process_data_events(time_limit=0.2)
        self.assertEqual(len(seen), 5)
        self.assertEqual(self.count(q), 0)


class AckErrorTest(AckTestBase):

    def test_unknown_tag_406(self):
        q = self.queue("unknown", 2)
        self.get(self.ch, q, 2)
        for op in ("ack", "ack-multiple", "nack", "reject", "ack-zero"):
            with self.subTest(op=op):
                ch = self.conn.channel()
                if op == "ack":
                    ch.basic_ack(99)
                elif op == "ack-multiple":
                    ch.basic_ack(99, multiple=True)
                elif op == "nack":
                    ch.basic_nack(99, requeue=True)
                elif op == "reject":
                    ch.basic_reject(99)
                else:
                    ch.basic_ack(0)   # tag 0 without multiple
                e = self.channel_error(PRECONDITION_FAILED, self.sync, ch)
                self.assertIn("unknown delivery tag", e.reply_text)
        # 406 is a channel error: the connection and self.ch (which holds
        # both deliveries, untouched by the other channels' errors) live on
        self.sync(self.ch)
        self.assertEqual(self.count(q), 0)
        self.ch.basic_ack(2, multiple=True)
        self.sync(self.ch)
        self.ch.close()
        self.assertEqual(self.count(q), 0)

    def test_double_ack_406(self):
        q = self.queue("double", 2)
        got = self.get(self.ch, q, 2)
        self.ch.basic_ack(got[0][0])
        self.ch.basic_ack(got[0][0])
        e = self.channel_error(PRECONDITION_FAILED, self.sync, self.ch)
        self.assertIn("unknown delivery tag %d" % got[0][0], e.reply_text)
        # the channel error requeued the other unacked message, not the acked one
        self.assertEqual(self.drain(q), [(b"2", True)])

    def test_ack_after_nack_406(self):
        q = self.queue("ack-after-nack", 1)
        got = self.get(self.ch, q, 1)
        self.ch.basic_nack(got[0][0], requeue=True)
        self.ch.basic_ack(got[0][0])
        self.channel_error(PRECONDITION_FAILED, self.sync, self.ch)
        self.assertEqual(self.drain(q), [(b"1", True)])

    def test_ack_multiple_of_already_acked_tag_406(self):
        q = self.queue("ackm-acked", 3)
        self.get(self.ch, q, 3)
        self.ch.basic_ack(2)
        self.ch.basic_ack(2, multiple=True)
        e = self.channel_error(PRECONDITION_FAILED, self.sync, self.ch)
        self.assertIn("unknown delivery tag 2", e.reply_text)
        # the 406 did not ack 1 (nor 3): the channel's close requeued them
        self.assertEqual(self.drain(q), [(b"1", True), (b"3", True)])

    def test_tags_are_per_channel(self):
        q = self.queue("tag-other-channel", 1)
        got = self.get(self.ch, q, 1)
        other = self.conn.channel()
        other.basic_ack(got[0][0])
        self.channel_error(PRECONDITION_FAILED, self.sync, other)
        self.ch.basic_ack(got[0][0])
        self.sync(self.ch)
        self.ch.close()
        self.assertEqual(self.count(q), 0, "the ack on the right channel was lost")

    def test_ack_of_no_ack_get_406(self):
        q = self.queue("noack-get", 1)
        m, _, _ = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual(m.delivery_tag, 1)
        self.ch.basic_ack(1)
        self.channel_error(PRECONDITION_FAILED, self.sync, self.ch)


class RequeueOnCloseTest(AckTestBase):

    def test_channel_close_requeues_in_order(self):
        q = self.queue("chclose", 6)
        ch = self.conn.channel()
        got = self.get(ch, q, 4)
        ch.basic_ack(got[1][0])
        self.sync(ch)
        self.assertEqual(self.count(q), 2)
        ch.close()
        self.assertEqual(self.drain(q), [(b"1", True), (b"3", True), (b"4", True),
                                         (b"5", False), (b"6", False)])

    def test_consumer_channel_close_requeues(self):
        q = self.queue("consumer-close", 10)
        cch = self.conn.channel()
        cch.basic_qos(prefetch_count=4)
        seen = []
        cch.basic_consume(q, lambda ch, m, p, b: seen.append(m.delivery_tag))
        self.pump(lambda: len(seen) >= 4)
        self.conn.process_data_events(time_limit=0.2)   # a 5th would show up
        self.assertEqual(seen, [1, 2, 3, 4])
        cch.basic_ack(2, multiple=True)
        # the freed credit brings 5 and 6
        self.pump(lambda: len(seen) >= 6)
        self.conn.process_data_events(time_limit=0.2)
        self.assertEqual(seen, [1, 2, 3, 4, 5, 6])
        cch.close()
        left = self.drain(q)
        self.assertEqual(left, [(b"%d" % i, True) for i in range(3, 7)] +
                         [(b"%d" % i, False) for i in range(7, 11)])

    def test_connection_close_requeues(self):
        q = self.queue("connclose", 3)
        c = self.connect()
        a, b = c.channel(), c.channel()
        self.get(a, q, 1)
        self.get(b, q, 1)
        c.close()
        self.assertEqual(self.drain(q), [(b"1", True), (b"2", True), (b"3", False)])

    def test_connection_drop_requeues(self):
        q = self.queue("conndrop", 3)
        raw = raw_connect(self.broker)
        try:
            raw.channel_open(1)
            for i in range(2):
                raw.basic_get(1, q, no_ack=False)
                f = raw.read_frame_skip_heartbeats()
                self.assertEqual(f["delivery_tag"], i + 1)
                raw.read_content(1)
        finally:
            raw.close()   # no connection.close
        wait_until(lambda: self.count(q) == 3, interval=0.05)
        self.assertEqual(self.drain(q), [(b"1", True), (b"2", True), (b"3", False)])


class RecoverTest(AckTestBase):

    def test_recover_requeue_with_get(self):
        q = self.queue("recover-get", 3)
        got = self.get(self.ch, q, 2)
        self.assertEqual(self.count(q), 1)
        self.ch.basic_recover(requeue=True)
        self.assertEqual(self.count(q), 3)
        again = self.get(self.ch, q, 3)
        # tags keep counting on the channel; the old ones are gone
        self.assertEqual([(t, b, r) for t, b, r in again],
                         [(3, b"1", True), (4, b"2", True), (5, b"3", False)])
        self.ch.basic_ack(got[0][0])
        self.channel_error(PRECONDITION_FAILED, self.sync, self.ch)

    def test_recover_requeue_with_consumer(self):
        q = self.queue("recover-consumer", 2)
        cch = self.conn.channel()
        seen = []
        cch.basic_consume(q, lambda ch, m, p, b: seen.append((m.delivery_tag, b, m.redelivered)))
        self.pump(lambda: len(seen) >= 2)
        self.assertEqual(seen, [(1, b"1", False), (2, b"2", False)])
        cch.basic_recover(requeue=True)
        self.pump(lambda: len(seen) >= 4)
        self.conn.process_data_events(time_limit=0.2)   # no third copy
        self.assertEqual(seen[2:], [(3, b"1", True), (4, b"2", True)])
        cch.basic_ack(4, multiple=True)
        self.sync(cch)
        cch.close()
        self.assertEqual(self.count(q), 0)

    def test_recover_without_requeue_not_implemented(self):
        # RabbitMQ: basic.recover{requeue=false} -> connection.close 540
        q = self.queue("recover-false", 1)
        self.get(self.ch, q, 1)
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            self.ch.basic_recover(requeue=False)
        self.assertEqual(cm.exception.reply_code, NOT_IMPLEMENTED)
        self.assertEqual(self.drain(q, self.connect().channel()), [(b"1", True)])


if __name__ == "__main__":
    main()
