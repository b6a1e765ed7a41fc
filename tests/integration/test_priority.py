#!/usr/bin/python3
"""Priority queues (issue 6): x-max-priority; higher-priority messages first,
FIFO within a priority, a priority above the maximum counts as the maximum,
no priority property counts as 0; argument limits.

Behaviour checked against RabbitMQ 3.10.8:
  * x-max-priority accepts 0..255 (any AMQP integer type); 0 is accepted and
    gives a queue where every message has the same priority (plain FIFO).
    256, 300, -1 and non-integers are 406 "invalid arg 'x-max-priority' ...".
  * a requeued message goes back by its priority, before later messages of
    the same priority.
  * the delivered message keeps its priority property as published (a value
    above the maximum is not rewritten).
  * with a length limit, drop-head drops the message that would be delivered
    next (the highest priority), not the oldest.
"""

import os
import time

import pika
import pika.exceptions

from harness import (PikaTestCase, PRECONDITION_FAILED, T, main, raw_connect,
    BASIC_GET_OK, QUEUE_DECLARE_OK, CHANNEL_CLOSE, CHANNEL_CLOSE_OK, method_frame)


def uniq(stem):
    return "warren-it-prio-%s-%s" % (stem, os.urandom(4).hex())


class PriorityTest(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.conn = self.connect()
        self.ch = self.conn.channel()
        self.pub = self.conn.channel()
        self.pub.confirm_delivery()

    def queue(self, stem, max_priority, extra=None):
        name = uniq(stem)
        args = {"x-max-priority": max_priority}
        args.update(extra or {})
        self.ch.queue_declare(queue=name, arguments=args)
        self.to_delete.append(name)
        return name

    def publish(self, q, body, priority=None):
        self.pub.basic_publish("", q, body, pika.BasicProperties(priority=priority))

    def drain(self, q):
        out = []
        while True:
            m, p, body = self.ch.basic_get(q, auto_ack=True)
            if m is None:
                return out
            out.append(body)

    def test_higher_priority_first_fifo_within(self):
        q = self.queue("order", 10)
        plan = [(b"a0", 0), (b"b5", 5), (b"c1", 1), (b"d10", 10), (b"e5", 5),
                (b"f0", None), (b"g10", 10), (b"h1", 1), (b"i0", 0), (b"j5", 5)]
        for body, p in plan:
            self.publish(q, body, p)
        want = [plan[i][0] for i, _ in sorted(enumerate(plan),
                                              key=lambda x: (-(x[1][1] or 0), x[0]))]
        self.assertEqual(self.drain(q), want)

    def test_priority_above_max_is_max(self):
        q = self.queue("cap", 5)
        for body, p in [(b"x5", 5), (b"y200", 200), (b"z4", 4), (b"w9", 9), (b"v-", None)]:
            self.publish(q, body, p)
        self.assertEqual(self.drain(q), [b"x5", b"y200", b"w9", b"z4", b"v-"])

    def test_priority_property_preserved(self):
        q = self.queue("prop", 3)
        self.publish(q, b"hi", 200)
        m, p, body = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual(p.priority, 200)

    def test_max_priority_one(self):
        q = self.queue("one", 1)
        for body, p in [(b"a", 0), (b"b", 1), (b"c", 0), (b"d", 7)]:
            self.publish(q, body, p)
        self.assertEqual(self.drain(q), [b"b", b"d", b"a", b"c"])

    def test_max_priority_255(self):
        q = self.queue("max", 255)
        for body, p in [(b"a", 1), (b"b", 255), (b"c", 254), (b"d", 128)]:
            self.publish(q, body, p)
        self.assertEqual(self.drain(q), [b"b", b"c", b"d", b"a"])

    def test_max_priority_zero_is_fifo(self):
        q = self.queue("zero", 0)
        for body, p in [(b"a", 0), (b"b", 5), (b"c", 1), (b"d", 255)]:
            self.publish(q, body, p)
        self.assertEqual(self.drain(q), [b"a", b"b", b"c", b"d"])

    def test_consumer_gets_priority_order(self):
        q = self.queue("consume", 10)
        for body, p in [(b"low", 1), (b"high", 9), (b"mid", 5), (b"high2", 9)]:
            self.publish(q, body, p)
        ch = self.connect().channel()
        ch.basic_qos(prefetch_count=1)
        got = []

        def on_msg(c, m, p, body):
            got.append(body)
            c.basic_ack(m.delivery_tag)
        ch.basic_consume(q, on_msg)
        deadline = time.monotonic() + 30
        while len(got) < 4 and time.monotonic() < deadline:
            ch.connection.process_data_events(time_limit=0.02)
        self.assertEqual(got, [b"high", b"high2", b"mid", b"low"])

    def test_requeue_goes_back_by_priority(self):
        q = self.queue("requeue", 10)
        for body, p in [(b"h1", 8), (b"h2", 8), (b"l1", 2)]:
            self.publish(q, body, p)
        ch = self.conn.channel()
        m, _, body = ch.basic_get(q, auto_ack=False)
        self.assertEqual(body, b"h1")
        self.publish(q, b"h3", 8)
        self.publish(q, b"top", 9)
        ch.basic_nack(m.delivery_tag, requeue=True)
        ch.queue_declare(q, passive=True)   # sync
        self.assertEqual(self.drain(q), [b"top", b"h1", b"h2", b"h3", b"l1"])

    def test_priority_with_max_length_drops_the_head(self):
        """drop-head drops the message that would be delivered next: the
        highest priority one, not the oldest or the lowest."""
        q = self.queue("maxlen", 10, {"x-max-length": 2})
        for body, p in [(b"hi", 9), (b"lo", 1), (b"mid", 5)]:
            self.publish(q, body, p)
        self.assertEqual(self.drain(q), [b"mid", b"lo"])

    def test_invalid_max_priority_406(self):
        for value in (256, 300, -1, "5", True):
            with self.subTest(value=value):
                ch = self.conn.channel()
                with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                    ch.queue_declare(uniq("bad"), arguments={"x-max-priority": value})
                self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
                self.assertIn("x-max-priority", cm.exception.reply_text)

    def test_max_priority_integer_types(self):
        """Every AMQP integer type is accepted (raw client for exact types)."""
        with raw_connect(self.broker) as r:
            ch = 1
            for t in ("b", "B", "s", "u", "I", "i", "l"):
                name = uniq("type-" + t)
                r.channel_open(ch)
                r.queue_declare(ch, name, arguments={"x-max-priority": T(t, 7)}, wait=False)
                f = r.read_frame_skip_heartbeats()
                self.assertEqual(f.method, QUEUE_DECLARE_OK,
                                 "x-max-priority of type %s: %r" % (t, f))
                # and the queue really is a priority queue with maximum 7
                for body, prio in ((b"p1", 1), (b"p9", 9), (b"p7", 7), (b"p6", 6)):
                    r.publish(ch, body, routing_key=name, props={"priority": prio})
                got = []
                for _ in range(4):
                    r.basic_get(ch, name)
                    r.expect_method(BASIC_GET_OK, ch)
                    got.append(r.read_content(ch)[1])
                self.assertEqual(got, [b"p9", b"p7", b"p6", b"p1"],
                                 "x-max-priority of type %s not applied" % t)
                r.queue_delete(ch, name)
                r.channel_close(ch)
                ch += 1
            # a double is not an integer
            r.channel_open(ch)
            r.queue_declare(ch, uniq("double"), arguments={"x-max-priority": T("d", 7.0)},
                            wait=False)
            f = r.read_frame_skip_heartbeats()
            self.assertEqual(f.method, CHANNEL_CLOSE)
            self.assertEqual(f["reply_code"], PRECONDITION_FAILED)
            self.assertIn("x-max-priority", f["reply_text"])
            r.send(method_frame(ch, CHANNEL_CLOSE_OK))


if __name__ == "__main__":
    main()
