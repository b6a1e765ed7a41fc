#!/usr/bin/python3
"""Message TTL and queue TTL (issue 6).

Message TTL: x-message-ttl per queue and the `expiration` property per message
(the smaller wins); expired messages are never delivered, are dead-lettered
(reason `expired`) when the queue has a DLX, and are removed with nobody
consuming; an invalid expiration is 406 on publish; TTL 0 drops unless a
consumer is waiting.

Queue TTL: x-expires deletes a queue that has had no consumer, basic.get or
declare for that long; basic.get and declare restart the clock.

Behaviour checked against RabbitMQ 3.10.8:
  * per-message expiration is only acted on at the head of the queue: a
    short-lived message behind a long-lived one stays counted until it
    reaches the head, and is then dropped/dead-lettered, never delivered.
  * expiration strings: '0', '+5', '-0', '00010', up to '315360000000' (ten
    years) are accepted; 'abc', '', ' 10', '1 ', '-1', '1.5', '0x10' and
    anything above 315360000000 are 406
    "PRECONDITION_FAILED - invalid expiration '<value>': <erlang reason>".
  * a passive queue.declare also restarts the x-expires clock (RabbitMQ's
    queue.declare passive=true calls the same `stat` as a redeclare).
"""

import os
import time

import pika
import pika.exceptions

from harness import PikaTestCase, PRECONDITION_FAILED, main, wait_message_count


def uniq(stem):
    return "warren-it-ttl-%s-%s" % (stem, os.urandom(4).hex())


class TTLBase(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.conn = self.connect()
        self.ch = self.conn.channel()
        self.pub = self.conn.channel()
        self.pub.confirm_delivery()

    def queue(self, stem, args=None):
        name = uniq(stem)
        self.ch.queue_declare(queue=name, arguments=args)
        self.to_delete.append(name)
        return name

    def dlq(self):
        x = uniq("dlx")
        self.ch.exchange_declare(x, exchange_type="fanout")
        self.exchanges_to_delete.append(x)
        q = self.queue("dlq")
        self.ch.queue_bind(q, x)
        return x, q

    def publish(self, q, body, expiration=None, **kw):
        """Confirmed publish: the message is in the queue when this returns."""
        self.pub.basic_publish("", q, body, pika.BasicProperties(expiration=expiration, **kw))

    def count(self, q):
        return self.ch.queue_declare(queue=q, passive=True).method.message_count

    def drain(self, q):
        out = []
        while True:
            m, p, body = self.ch.basic_get(q, auto_ack=True)
            if m is None:
                return out
            out.append(body)

    def wait_get(self, q, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            m, p, body = self.ch.basic_get(q, auto_ack=True)
            if m is not None:
                return m, p, body
            if time.monotonic() > deadline:
                self.fail("nothing arrived in %s within %.1f s" % (q, timeout))
            time.sleep(0.02)

    def consume(self, ch, q, n, timeout=3.0, **kw):
        got = []
        ch.basic_consume(q, lambda c, m, p, b: got.append((m, p, b)), **kw)
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            ch.connection.process_data_events(time_limit=0.02)
        return got


class MessageTTLTest(TTLBase):

    def test_queue_ttl_removes_without_consumer(self):
        q = self.queue("qttl", {"x-message-ttl": 150})
        for i in range(5):
            self.publish(q, b"%d" % i)
        self.assertEqual(self.count(q), 5)
        self.assertEqual(wait_message_count(self.ch, q, 0, timeout=3).message_count, 0)
        self.assertEqual(self.drain(q), [])

    def test_per_message_expiration_removes_without_consumer(self):
        q = self.queue("pmttl")
        self.publish(q, b"short", expiration="150")
        self.assertEqual(self.count(q), 1)
        self.assertEqual(wait_message_count(self.ch, q, 0, timeout=3).message_count, 0)
        self.publish(q, b"keep")
        time.sleep(0.4)
        self.assertEqual(self.drain(q), [b"keep"])

    def test_message_expiration_smaller_than_queue_ttl_wins(self):
        q = self.queue("smaller-msg", {"x-message-ttl": 60000})
        self.publish(q, b"short", expiration="100")
        self.publish(q, b"long")
        self.assertEqual(wait_message_count(self.ch, q, 1, timeout=3).message_count, 1)
        self.assertEqual(self.drain(q), [b"long"])

    def test_queue_ttl_smaller_than_message_expiration_wins(self):
        q = self.queue("smaller-queue", {"x-message-ttl": 100})
        self.publish(q, b"a", expiration="60000")
        self.publish(q, b"b")
        self.assertEqual(wait_message_count(self.ch, q, 0, timeout=3).message_count, 0)
        self.assertEqual(self.drain(q), [])

    def test_expired_message_never_delivered(self):
        q = self.queue("never", {"x-message-ttl": 100})
        self.publish(q, b"old-1")
        self.publish(q, b"old-2", expiration="50")
        time.sleep(0.3)
        self.publish(q, b"fresh", expiration="60000")
        ch = self.connect().channel()
        got = self.consume(ch, q, 1, auto_ack=True)
        time.sleep(0.1)
        ch.connection.process_data_events(time_limit=0.1)
        self.assertEqual([b for _, _, b in got], [b"fresh"])

    def test_per_message_expiry_happens_at_head(self):
        """RabbitMQ only expires per-message TTLs at the head of the queue."""
        dlx, dlq = self.dlq()
        q = self.queue("head", {"x-dead-letter-exchange": dlx})
        self.publish(q, b"long", expiration="60000")
        self.publish(q, b"short", expiration="50")
        time.sleep(0.3)
        self.assertEqual(self.count(q), 2, "the expired message behind the head stays counted")
        self.assertEqual(self.count(dlq), 0)
        m, _, body = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual(body, b"long")
        # 'short' is now at the head: dropped (dead-lettered), never delivered
        m, _, body = self.wait_get(dlq)
        self.assertEqual(body, b"short")
        self.assertEqual(m.routing_key, q)
        self.assertEqual(self.count(q), 0)
        self.assertEqual(self.drain(q), [])

    def test_expired_dead_lettered_reason_expired(self):
        dlx, dlq = self.dlq()
        q = self.queue("dl", {"x-message-ttl": 100, "x-dead-letter-exchange": dlx})
        for i in range(3):
            self.publish(q, b"%d" % i)
        for i in range(3):
            m, p, body = self.wait_get(dlq)
            self.assertEqual(body, b"%d" % i)
            self.assertEqual(m.exchange, dlx)
            xd = p.headers["x-death"]
            self.assertEqual([(d["queue"], d["reason"], d["count"]) for d in xd],
                             [(q, "expired", 1)])
            self.assertNotIn("original-expiration", xd[0])
        self.assertEqual(self.count(q), 0)

    def test_per_message_expired_dead_lettered_with_original_expiration(self):
        dlx, dlq = self.dlq()
        q = self.queue("dlpm", {"x-dead-letter-exchange": dlx})
        self.publish(q, b"x", expiration="80")
        m, p, body = self.wait_get(dlq)
        self.assertIsNone(p.expiration)
        xd = p.headers["x-death"]
        self.assertEqual(xd[0]["reason"], "expired")
        self.assertEqual(xd[0]["original-expiration"], "80")
        self.assertEqual(p.headers["x-first-death-reason"], "expired")

    def test_invalid_expiration_is_406(self):
        q = self.queue("badexp")
        for exp in ("abc", "-1", "", "1.5", " 10", "1 ", "0x10", "1e3",
                    "315360000001", "99999999999999999999"):
            with self.subTest(expiration=exp):
                ch = self.conn.channel()
                ch.basic_publish("", q, b"bad", pika.BasicProperties(expiration=exp))
                with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                    ch.queue_declare(q, passive=True)
                self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
                # RabbitMQ appends ": <erlang reason>" (no_integer,
                # {value_negative,-1}, {leftover_string,".5"}, {value_too_large,N})
                prefix = "PRECONDITION_FAILED - invalid expiration '%s'" % exp
                self.assertTrue(cm.exception.reply_text.startswith(prefix),
                                "%r does not start with %r" % (cm.exception.reply_text, prefix))
        self.assertEqual(self.count(q), 0)

    def test_unusual_valid_expirations_accepted(self):
        """Erlang's string:to_integer: a sign and leading zeros are fine; the
        largest accepted value is 315360000000 ms (ten years)."""
        q = self.queue("okexp")
        for exp in ("0", "+5", "-0", "+0", "00010", "4294967296", "315360000000"):
            with self.subTest(expiration=exp):
                ch = self.conn.channel()
                ch.basic_publish("", q, b"ok", pika.BasicProperties(expiration=exp))
                ch.queue_declare(q, passive=True)
                self.assertTrue(ch.is_open)
                ch.close()

    def test_invalid_expiration_confirm_channel(self):
        q = self.queue("badexp-confirm")
        ch = self.conn.channel()
        ch.confirm_delivery()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.basic_publish("", q, b"bad", pika.BasicProperties(expiration="abc"))
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("invalid expiration", cm.exception.reply_text)
        self.assertEqual(self.count(q), 0)

    def test_ttl_zero_without_consumer_dropped(self):
        q = self.queue("zero", {"x-message-ttl": 0})
        self.publish(q, b"a")
        self.publish(q, b"b", expiration="60000")
        self.assertEqual(self.count(q), 0)
        q2 = self.queue("zero-msg")
        self.publish(q2, b"c", expiration="0")
        self.assertEqual(self.count(q2), 0)
        self.assertEqual(self.drain(q) + self.drain(q2), [])

    def test_ttl_zero_without_consumer_dead_lettered(self):
        dlx, dlq = self.dlq()
        q = self.queue("zero-dl", {"x-message-ttl": 0, "x-dead-letter-exchange": dlx})
        self.publish(q, b"z")
        m, p, body = self.wait_get(dlq)
        self.assertEqual(body, b"z")
        self.assertEqual(p.headers["x-death"][0]["reason"], "expired")
        self.assertEqual(self.count(q), 0)

    def test_ttl_zero_with_waiting_consumer_delivered(self):
        q = self.queue("zero-cons", {"x-message-ttl": 0})
        q2 = self.queue("zero-cons-msg")
        ch = self.connect().channel()
        got = []
        ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
        ch.basic_consume(q2, lambda c, m, p, b: got.append(b), auto_ack=True)
        self.publish(q, b"to-consumer")
        self.publish(q2, b"to-consumer-2", expiration="0")
        deadline = time.monotonic() + 3
        while len(got) < 2 and time.monotonic() < deadline:
            ch.connection.process_data_events(time_limit=0.02)
        self.assertEqual(sorted(got), [b"to-consumer", b"to-consumer-2"])

    def test_ttl_zero_consumer_without_credit_drops(self):
        """A consumer whose prefetch is used up is not 'waiting'."""
        q = self.queue("zero-full", {"x-message-ttl": 0})
        ch = self.connect().channel()
        ch.basic_qos(prefetch_count=1)
        got = []
        ch.basic_consume(q, lambda c, m, p, b: got.append(b))
        self.publish(q, b"first")
        deadline = time.monotonic() + 3
        while not got and time.monotonic() < deadline:
            ch.connection.process_data_events(time_limit=0.02)
        self.publish(q, b"second")
        ch.connection.process_data_events(time_limit=0.3)
        self.assertEqual(got, [b"first"])
        self.assertEqual(self.count(q), 0)

    def test_ttl_counts_from_enqueue_requeue_keeps_ttl(self):
        """A requeued message keeps its original expiry time."""
        q = self.queue("requeue", {"x-message-ttl": 300})
        self.publish(q, b"r")
        ch = self.conn.channel()
        m, _, _ = ch.basic_get(q, auto_ack=False)
        self.assertIsNotNone(m)
        time.sleep(0.45)
        ch.basic_reject(m.delivery_tag, requeue=True)
        self.assertEqual(wait_message_count(self.ch, q, 0, timeout=2).message_count, 0)
        self.assertEqual(self.drain(q), [])


class QueueTTLTest(TTLBase):

    def exists(self, q):
        ch = self.conn.channel()
        try:
            ch.queue_declare(q, passive=True)
            ch.close()
            return True
        except pika.exceptions.ChannelClosedByBroker as e:
            self.assertEqual(e.reply_code, 404)
            self.assertIn("no queue '%s'" % q, e.reply_text)
            return False

    def test_unused_queue_deleted(self):
        q = self.queue("unused", {"x-expires": 200})
        self.publish(q, b"messages do not keep it alive")
        time.sleep(0.6)
        self.assertFalse(self.exists(q))
        # the name is free again
        self.ch.queue_declare(q)
        self.assertEqual(self.count(q), 0)

    def test_queue_with_consumer_not_deleted(self):
        q = self.queue("consumed", {"x-expires": 200})
        ch = self.connect().channel()
        tag = ch.basic_consume(q, lambda *a: None)
        ch.connection.process_data_events(time_limit=0.6)
        self.assertTrue(self.exists(q))
        ch.basic_cancel(tag)
        time.sleep(0.6)
        self.assertFalse(self.exists(q))

    def test_consumer_channel_close_starts_clock(self):
        q = self.queue("chclose", {"x-expires": 200})
        c = self.connect()
        c.channel().basic_consume(q, lambda *a: None)
        c.process_data_events(time_limit=0.5)
        c.close()
        time.sleep(0.6)
        self.assertFalse(self.exists(q))

    def test_basic_get_restarts_clock(self):
        q = self.queue("get", {"x-expires": 400})
        ch = self.conn.channel()
        t_end = time.monotonic() + 1.2
        while time.monotonic() < t_end:
            ch.basic_get(q, auto_ack=True)
            time.sleep(0.15)
        time.sleep(0.1)
        self.assertTrue(self.exists(q))
        time.sleep(0.8)
        self.assertFalse(self.exists(q))

    def test_redeclare_restarts_clock(self):
        q = self.queue("redeclare", {"x-expires": 400})
        ch = self.conn.channel()
        t_end = time.monotonic() + 1.2
        while time.monotonic() < t_end:
            ch.queue_declare(q, arguments={"x-expires": 400})
            time.sleep(0.15)
        time.sleep(0.1)
        self.assertTrue(self.exists(q))
        time.sleep(0.8)
        self.assertFalse(self.exists(q))

    def test_passive_declare_restarts_clock(self):
        """RabbitMQ: a passive declare renews the lease like a redeclare."""
        q = self.queue("passive", {"x-expires": 400})
        ch = self.conn.channel()
        t_end = time.monotonic() + 1.2
        while time.monotonic() < t_end:
            ch.queue_declare(q, passive=True)
            time.sleep(0.15)
        time.sleep(0.1)
        self.assertTrue(self.exists(q))
        time.sleep(0.8)
        self.assertFalse(self.exists(q))

    def test_publish_does_not_restart_clock(self):
        q = self.queue("publish", {"x-expires": 300})
        t_end = time.monotonic() + 0.9
        while time.monotonic() < t_end:
            self.ch.basic_publish("", q, b"p")
            time.sleep(0.05)
        time.sleep(0.2)
        self.assertFalse(self.exists(q))


if __name__ == "__main__":
    main()
