#!/usr/bin/python3
"""Message round trips: 10,000 messages through basic.consume with manual
acks and prefetch, basic.get ordering and counts, server-named queues and
declare-ok counters."""

import os
import time

import pika

from harness import (BrokerTestCase, NOT_FOUND, assert_broker_alive, main, wait_message_count,
                     wait_until)

# Bound for waiting on something that must happen: only reached on failure
# (CI may share its cores, so nothing is expected within a tight window).
WAIT = 30.0


class RoundTripTest(BrokerTestCase):

    def setUp(self):
        self.conn = pika.BlockingConnection(self.broker.params())
        self.ch = self.conn.channel()
        self.to_delete = []

    def tearDown(self):
        try:
            if self.conn.is_open:
                ch = self.conn.channel()
                for q in self.to_delete:
                    ch.queue_delete(q)
                self.conn.close()
        finally:
            assert_broker_alive(self.broker)

    def named_queue(self, stem):
        name = "warren-it-%s-%s" % (stem, os.urandom(4).hex())
        ok = self.ch.queue_declare(queue=name)
        self.to_delete.append(name)
        self.assertEqual(ok.method.queue, name)
        self.assertEqual((ok.method.message_count, ok.method.consumer_count), (0, 0))
        return name

    def test_ten_thousand_messages_consume_ack(self):
        n = 10000
        q = self.named_queue("10k")
        bodies = [b"msg-%05d-%s" % (i, os.urandom(6).hex().encode()) for i in range(n)]
        for b in bodies:
            self.ch.basic_publish(exchange="", routing_key=q, body=b)
        self.assertEqual(wait_message_count(self.ch, q, n).message_count, n)

        cch = self.conn.channel()
        cch.basic_qos(prefetch_count=100)
        received = []
        max_unacked = [0]
        unacked = []

        def on_msg(ch, method, props, body):
            received.append(body)
            unacked.append(method.delivery_tag)

        tag = cch.basic_consume(queue=q, on_message_callback=on_msg, auto_ack=False)
        deadline = time.monotonic() + 45
        while len(received) < n and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.05)
            # acks go out only between event-loop runs, so the number of
            # deliveries seen since the last ack shows whether prefetch holds
            max_unacked[0] = max(max_unacked[0], len(unacked))
            if unacked:
                cch.basic_ack(unacked[-1], multiple=True)
                del unacked[:]
        self.assertEqual(len(received), n, "received %d of %d messages" % (len(received), n))
        self.assertEqual(len(set(received)), n, "duplicate deliveries")
        self.assertEqual(received, bodies, "messages missing or out of order")
        self.assertLessEqual(max_unacked[0], 100, "prefetch_count 100 exceeded")
        # nothing more arrives
        self.conn.process_data_events(time_limit=0.5)
        self.assertEqual(len(received), n, "extra deliveries after all %d" % n)
        cch.basic_cancel(tag)
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (0, 0))

    def pump_until(self, what, predicate):
        wait_until(lambda: self.conn.process_data_events(time_limit=0.05) or predicate(),
                   timeout=WAIT, interval=0, what=what)

    def test_prefetch_limits_unacked_deliveries(self):
        """prefetch 5: exactly 5 deliveries until an ack, then exactly one
        more per acked message.  "Exactly" is checked without a time window:
        once the deliveries were seen, the queue's ready count must say that
        no more left it (more could only have been sent before that)."""
        q = self.named_queue("prefetch")
        for i in range(30):
            self.ch.basic_publish("", q, b"p%d" % i)
        self.assertEqual(wait_message_count(self.ch, q, 30).message_count, 30)
        cch = self.conn.channel()
        cch.basic_qos(prefetch_count=5)
        got = []
        cch.basic_consume(q, lambda ch, m, p, b: got.append((m.delivery_tag, b)), auto_ack=False)
        self.pump_until("5 deliveries", lambda: len(got) >= 5)
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count, 25,
                         "with prefetch 5 and no acks exactly 5 must be delivered")
        self.conn.process_data_events(time_limit=0.2)
        self.assertEqual(len(got), 5, "with prefetch 5 and no acks exactly 5 must be delivered")
        cch.basic_ack(got[1][0])  # ack one (not the first)
        self.pump_until("a 6th delivery after one ack", lambda: len(got) >= 6)
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count, 24,
                         "one ack must release exactly one more delivery")
        self.conn.process_data_events(time_limit=0.2)
        self.assertEqual(len(got), 6, "one ack must release exactly one more delivery")
        self.assertEqual([b for _t, b in got], [b"p%d" % i for i in range(6)])
        cch.basic_ack(got[-1][0], multiple=True)
        # the rest flows as we ack
        deadline = time.monotonic() + WAIT
        acked = len(got)
        while len(got) < 30 and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.1)
            if len(got) > acked:
                cch.basic_ack(got[-1][0], multiple=True)
                acked = len(got)
        self.assertEqual([b for _t, b in got], [b"p%d" % i for i in range(30)])

    def test_unacked_messages_requeued_when_channel_closes(self):
        q = self.named_queue("requeue")
        for i in range(3):
            self.ch.basic_publish("", q, b"r%d" % i)
        wait_message_count(self.ch, q, 3)
        cch = self.conn.channel()
        m, _p, body = cch.basic_get(q, auto_ack=False)
        self.assertEqual(body, b"r0")
        self.assertFalse(m.redelivered)
        cch.close()
        self.assertEqual(wait_message_count(self.ch, q, 3).message_count, 3)
        m, _p, body = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual(body, b"r0")
        self.assertTrue(m.redelivered, "requeued message must be flagged redelivered")

    def test_basic_get_order_counts_and_empty(self):
        q = self.named_queue("get")
        for i in range(5):
            self.ch.basic_publish("", q, b"g%d" % i,
                                  pika.BasicProperties(message_id="id%d" % i))
        wait_message_count(self.ch, q, 5)
        tags = []
        for i in range(5):
            m, props, body = self.ch.basic_get(q, auto_ack=False)
            self.assertIsNotNone(m, "basic.get-empty with %d messages left" % (5 - i))
            self.assertEqual(body, b"g%d" % i)
            self.assertEqual(props.message_id, "id%d" % i)
            self.assertEqual(m.message_count, 4 - i, "get-ok message_count")
            self.assertFalse(m.redelivered)
            self.assertEqual(m.exchange, "")
            self.assertEqual(m.routing_key, q)
            tags.append(m.delivery_tag)
        self.assertEqual(tags, sorted(tags))
        self.assertEqual(len(set(tags)), 5)
        m, props, body = self.ch.basic_get(q, auto_ack=False)
        self.assertIsNone(m, "expected basic.get-empty")
        self.ch.basic_ack(tags[-1], multiple=True)
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual(ok.message_count, 0)

    def test_server_named_queue(self):
        ok1 = self.ch.queue_declare(queue="", exclusive=True).method
        ok2 = self.ch.queue_declare(queue="", exclusive=True).method
        for ok in (ok1, ok2):
            self.assertTrue(ok.queue.startswith("amq.gen-"), ok.queue)
            self.assertGreater(len(ok.queue), len("amq.gen-"))
            self.assertEqual((ok.message_count, ok.consumer_count), (0, 0))
        self.assertNotEqual(ok1.queue, ok2.queue)
        self.ch.basic_publish("", ok1.queue, b"to-generated")
        self.assertEqual(wait_message_count(self.ch, ok1.queue, 1).message_count, 1)
        m, _p, body = self.ch.basic_get(ok1.queue, auto_ack=True)
        self.assertEqual(body, b"to-generated")

    def test_declare_ok_counts(self):
        q = self.named_queue("counts")
        for i in range(3):
            self.ch.basic_publish("", q, b"c%d" % i)
        ok = wait_message_count(self.ch, q, 3)
        self.assertEqual((ok.message_count, ok.consumer_count), (3, 0))
        # redeclaring (non-passive, same arguments) reports the same counts
        ok = self.ch.queue_declare(queue=q).method
        self.assertEqual((ok.queue, ok.message_count, ok.consumer_count), (q, 3, 0))
        cch = self.conn.channel()
        cch.basic_qos(prefetch_count=1)
        got = []
        cch.basic_consume(q, lambda ch, m, p, b: got.append(b), auto_ack=False)
        self.pump_until("a delivery", lambda: got)
        self.assertEqual(got, [b"c0"])
        # one unacked at the consumer; declare-ok counts ready messages only
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (2, 1))
        cch.close()  # requeues c0, removes the consumer

        def counts():
            ok = self.ch.queue_declare(queue=q, passive=True).method
            return (ok.message_count, ok.consumer_count)
        wait_until(lambda: counts() == (3, 0), timeout=WAIT)
        self.assertEqual(counts(), (3, 0))
        # queue.delete-ok reports the messages deleted
        d = self.ch.queue_delete(q).method
        self.assertEqual(d.message_count, 3)
        self.to_delete.remove(q)

    def test_passive_declare_of_missing_queue(self):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.queue_declare(queue="warren-it-no-such-queue-%s" % os.urandom(4).hex(),
                                  passive=True)
        self.assertEqual(cm.exception.reply_code, NOT_FOUND)
        self.assertTrue(cm.exception.reply_text.startswith("NOT_FOUND"))
        self.assertTrue(self.conn.is_open)
        self.ch = self.conn.channel()


if __name__ == "__main__":
    main()
