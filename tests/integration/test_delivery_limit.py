#!/usr/bin/python3
"""x-delivery-limit on classic queues, with the semantics of RabbitMQ's
quorum queues (issue 15).

A message returned to its queue (basic.nack or basic.reject with requeue,
basic.recover, its channel or connection closed, the consumer timeout)
counts one return; it is delivered again with the header x-delivery-count
= its returns so far (absent on a consumer's first delivery, 0 on a first
basic.get, as RabbitMQ 3.10.8 does); once its returns
exceed the limit it is dead-lettered with reason "delivery_limit", or
dropped when the queue has no dead-letter exchange.  A reject or nack
without requeue is dead-lettered as "rejected" at once, and a queue
without the argument never adds the header.  The counts of persistent
messages in durable queues survive restarts, and a delivery a crash
ended counts as a return.
"""

import unittest

import pika
import pika.exceptions

from harness import (Broker, PikaTestCase, main, skip_if_external,
                     wait_message_count, wait_until)

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def declare_limited(ch, queue, limit, dlq=None, durable=False):
    args = {"x-delivery-limit": limit}
    if dlq is not None:
        ch.queue_declare(dlq, durable=durable)
        args.update({"x-dead-letter-exchange": "",
                     "x-dead-letter-routing-key": dlq})
    ch.queue_declare(queue, durable=durable, arguments=args)


def count_of(props):
    return (props.headers or {}).get("x-delivery-count")


@skip_if_external("RabbitMQ has x-delivery-limit on quorum queues only")
class DeliveryLimit(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.conn = self.connect()
        self.ch = self.conn.channel()

    def fresh(self, name, limit, dlq=True):
        q = "dl-" + name
        self.to_delete.append(q)
        if dlq:
            self.to_delete.append(q + "-dlq")
        declare_limited(self.ch, q, limit, q + "-dlq" if dlq else None)
        return q, q + "-dlq"

    def get(self, queue, ch=None):
        m, p, body = (ch or self.ch).basic_get(queue)
        return m, p, body

    def assert_dead_lettered(self, dlq, body, source, reason="delivery_limit"):
        wait_message_count(self.ch, dlq, 1)
        m, p, got = self.ch.basic_get(dlq, auto_ack=True)
        self.assertEqual(got, body)
        death = p.headers["x-death"][0]
        self.assertEqual((death["reason"], death["queue"], death["count"]),
                         (reason, source, 1))
        self.assertEqual(p.headers["x-first-death-reason"], reason)

    def test_nack_requeue_counts_then_dead_letters(self):
        q, dlq = self.fresh("nack", 2)
        self.ch.basic_publish("", q, b"poison")
        seen = []
        for _ in range(3):
            m, p, _ = self.get(q)
            self.assertIsNotNone(m)
            seen.append((m.redelivered, count_of(p)))
            self.ch.basic_nack(m.delivery_tag, requeue=True)
        # Delivered limit + 1 times: returns 0, 1, 2; the third return is
        # one too many.
        self.assertEqual(seen, [(False, 0), (True, 1), (True, 2)])
        self.assertIsNone(self.get(q)[0])
        self.assert_dead_lettered(dlq, b"poison", q)

    def test_reject_requeue_counts(self):
        q, dlq = self.fresh("reject", 1)
        self.ch.basic_publish("", q, b"r")
        for expect in (0, 1):
            m, p, _ = self.get(q)
            self.assertEqual(count_of(p), expect)
            self.ch.basic_reject(m.delivery_tag, requeue=True)
        self.assert_dead_lettered(dlq, b"r", q)

    def test_limit_zero_allows_no_return(self):
        q, dlq = self.fresh("zero", 0)
        self.ch.basic_publish("", q, b"z")
        m, p, _ = self.get(q)
        self.assertEqual(count_of(p), 0)
        self.ch.basic_nack(m.delivery_tag, requeue=True)
        self.assert_dead_lettered(dlq, b"z", q)

    def test_dropped_without_dead_letter_exchange(self):
        q, _ = self.fresh("drop", 1, dlq=False)
        self.ch.basic_publish("", q, b"d")
        for _ in range(2):
            m, _p, _ = self.get(q)
            self.ch.basic_nack(m.delivery_tag, requeue=True)
        self.assertIsNone(self.get(q)[0])
        self.assertEqual(self.ch.queue_declare(q, passive=True)
                         .method.message_count, 0)

    def test_reject_without_requeue_is_rejected_not_counted(self):
        q, dlq = self.fresh("nreq", 5)
        self.ch.basic_publish("", q, b"n")
        m, _p, _ = self.get(q)
        self.ch.basic_reject(m.delivery_tag, requeue=False)
        self.assert_dead_lettered(dlq, b"n", q, reason="rejected")

    def test_closed_channel_counts(self):
        q, dlq = self.fresh("chclose", 1)
        self.ch.basic_publish("", q, b"c")
        for expect in (0, 1):
            other = self.conn.channel()
            m, p, _ = self.get(q, other)
            self.assertEqual(count_of(p), expect)
            other.close()
        self.assert_dead_lettered(dlq, b"c", q)

    def test_closed_connection_counts(self):
        q, dlq = self.fresh("connclose", 1)
        self.ch.basic_publish("", q, b"k")
        for expect in (None, 1):
            conn = self.connect()
            got = []
            ch = conn.channel()
            ch.basic_consume(q, lambda c, m, p, b: got.append(count_of(p)))
            wait_until(lambda: (conn.process_data_events(0.05), got)[1],
                       what="the delivery")
            self.assertEqual(got, [expect])
            conn.close()
        self.assert_dead_lettered(dlq, b"k", q)

    def test_basic_recover_counts(self):
        q, dlq = self.fresh("recover", 1)
        self.ch.basic_publish("", q, b"v")
        ch = self.conn.channel()
        got = []
        ch.basic_consume(q, lambda c, m, p, b: got.append(count_of(p)))
        wait_until(lambda: (self.conn.process_data_events(0.05), got)[1],
                   what="the first delivery")
        ch.basic_recover(requeue=True)
        wait_until(lambda: (self.conn.process_data_events(0.05),
                            len(got) == 2)[1], what="the redelivery")
        self.assertEqual(got, [None, 1])
        ch.basic_recover(requeue=True)
        self.assert_dead_lettered(dlq, b"v", q)
        self.assertEqual(got, [None, 1])

    def test_no_header_without_the_argument(self):
        q = "dl-plain"
        self.to_delete.append(q)
        self.ch.queue_declare(q)
        self.ch.basic_publish("", q, b"p")
        for _ in range(5):
            m, p, _ = self.get(q)
            self.assertIsNone(count_of(p))
            self.ch.basic_nack(m.delivery_tag, requeue=True)
        self.assertEqual(self.get(q)[0].redelivered, True)

    def test_header_on_consumer_deliveries_and_order_kept(self):
        q, _ = self.fresh("order", 3)
        for i in range(3):
            self.ch.basic_publish("", q, b"%d" % i)
        m, _p, _ = self.get(q)
        self.ch.basic_nack(m.delivery_tag, requeue=True)
        got = []
        ch = self.conn.channel()
        ch.basic_consume(q, lambda c, m, p, b: got.append((b, count_of(p))),
                         auto_ack=True)
        wait_until(lambda: (self.conn.process_data_events(0.05),
                            len(got) == 3)[1], what="three deliveries")
        # Returned to its place at the head, with its count.
        self.assertEqual(got, [(b"0", 1), (b"1", None), (b"2", None)])

    def test_argument_checked(self):
        for bad in ("three", -1):
            ch = self.conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.queue_declare("dl-bad", arguments={"x-delivery-limit": bad})
            self.assertEqual(cm.exception.reply_code, 406)
            self.assertIn("x-delivery-limit", cm.exception.reply_text)
        # A different limit on redeclare is refused, as RabbitMQ's quorum
        # queues refuse it.
        q, _ = self.fresh("redeclare", 2)
        ch = self.conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            declare_limited(ch, q, 3, q + "-dlq")
        self.assertEqual(cm.exception.reply_code, 406)
        self.assertIn("inequivalent arg 'x-delivery-limit'",
                      cm.exception.reply_text)


@skip_if_external("sets consumer_timeout")
class DeliveryLimitConsumerTimeout(PikaTestCase):
    config = {"consumer_timeout": 300}

    def test_consumer_timeout_counts(self):
        conn = self.connect()
        ch = conn.channel()
        q, dlq = "dl-timeout", "dl-timeout-dlq"
        self.to_delete += [q, dlq]
        declare_limited(ch, q, 1, dlq)
        ch.basic_publish("", q, b"t")
        seen = []
        for _ in range(2):
            c = self.connect()
            cch = c.channel()
            closed = []
            cch._impl.add_on_close_callback(lambda x, exc: closed.append(exc))
            cch.basic_consume(q, lambda x, m, p, b: seen.append(count_of(p)))
            # The broker closes the channel (406) when the delivery times out.
            wait_until(lambda: (c.process_data_events(0.05), closed)[1],
                       what="the consumer timeout")
            self.assertEqual(closed[0].reply_code, 406)
            c.close()
        self.assertEqual(seen, [None, 1])
        wait_message_count(ch, dlq, 1)
        conn.close()


@skip_if_external("restarts the broker")
class DeliveryLimitAcrossRestarts(unittest.TestCase):
    """Counts of persistent messages in a durable queue survive SIGTERM and
    SIGKILL; a delivery outstanding at a crash counts as a return."""

    def returns_then_restart(self, kill, outstanding):
        with Broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            declare_limited(ch, "dl-durable", 3, "dl-durable-dlq", durable=True)
            ch.confirm_delivery()
            ch.basic_publish("", "dl-durable", b"keep", PERSISTENT)
            for _ in range(2):
                m, _p, _ = ch.basic_get("dl-durable")
                ch.basic_nack(m.delivery_tag, requeue=True)
            if outstanding:
                m, p, _ = ch.basic_get("dl-durable")
                self.assertEqual(count_of(p), 2)
            # A confirmed publish: every record before it is on disk.
            ch.queue_declare("dl-marker", durable=True)
            ch.basic_publish("", "dl-marker", b"m", PERSISTENT)
            if not kill:
                conn.close()
            b.restart(kill=kill)

            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            m, p, _ = ch.basic_get("dl-durable")
            expect = 3 if outstanding else 2
            self.assertIsNotNone(m, "the message did not survive")
            self.assertTrue(m.redelivered)
            self.assertEqual(count_of(p), expect)
            # The limit (3) still applies to the recovered count.
            while m is not None:
                ch.basic_nack(m.delivery_tag, requeue=True)
                m, p, _ = ch.basic_get("dl-durable")
                if m is not None:
                    expect += 1
                    self.assertEqual(count_of(p), expect)
            self.assertEqual(expect, 3)
            m, p, body = ch.basic_get("dl-durable-dlq", auto_ack=True)
            self.assertEqual(body, b"keep")
            self.assertEqual(p.headers["x-death"][0]["reason"], "delivery_limit")
            conn.close()

    def test_counts_survive_a_clean_restart(self):
        self.returns_then_restart(kill=False, outstanding=False)

    def test_counts_survive_sigkill(self):
        self.returns_then_restart(kill=True, outstanding=False)

    def test_delivery_ended_by_a_crash_counts(self):
        self.returns_then_restart(kill=True, outstanding=True)


if __name__ == "__main__":
    main()
