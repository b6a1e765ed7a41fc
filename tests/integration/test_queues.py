#!/usr/bin/python3
"""Queue semantics: queue.declare (passive, durable, exclusive, auto-delete,
server-named, arguments, equivalence, declare-ok counts), exclusive-queue
locking (405 for other connections), queue.purge and queue.delete
(if-unused / if-empty) -- all as RabbitMQ 3.10 does them."""

import os
import time

import pika
import pika.exceptions

from harness import (ACCESS_REFUSED, NOT_FOUND, PRECONDITION_FAILED, RESOURCE_LOCKED,
                     BrokerTestCase, assert_broker_alive, main, raw_connect,
                     wait_message_count, wait_until)


def uniq(stem):
    return "warren-it-q-%s-%s" % (stem, os.urandom(4).hex())


class QueueTestBase(BrokerTestCase):

    def setUp(self):
        self.conns = []
        self.conn = self.connect()
        self.ch = self.conn.channel()
        self.to_delete = []

    def tearDown(self):
        try:
            for c in self.conns:
                if c.is_open and c is not self.conn:
                    try:
                        c.close()
                    except Exception:
                        pass
            if self.to_delete:
                c = self.connect()
                ch = c.channel()
                for q in self.to_delete:
                    ch.queue_delete(q)
                c.close()
            if self.conn.is_open:
                self.conn.close()
        finally:
            assert_broker_alive(self.broker)

    def connect(self):
        c = pika.BlockingConnection(self.broker.params())
        self.conns.append(c)
        return c

    def queue(self, stem, **kw):
        name = uniq(stem)
        self.ch.queue_declare(queue=name, **kw)
        self.to_delete.append(name)
        return name

    def exists(self, q):
        """Passive declare on a throw-away channel: the declare-ok, None (404)
        or "locked" (405: another connection's exclusive queue)."""
        ch = self.conn.channel()
        try:
            ok = ch.queue_declare(queue=q, passive=True).method
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code == RESOURCE_LOCKED:
                return "locked"
            self.assertEqual(e.reply_code, NOT_FOUND, "passive declare: %r" % (e,))
            return None
        ch.close()
        return ok

    def wait_gone(self, q, timeout=30.0):
        deadline = time.monotonic() + timeout
        while self.exists(q) is not None:
            if time.monotonic() > deadline:
                self.fail("queue %s still exists after %.1f s" % (q, timeout))
            time.sleep(0.05)

    def channel_error(self, code, fn, *a, **kw):
        """fn(...) must close its channel with `code`; returns the exception."""
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            fn(*a, **kw)
        self.assertEqual(cm.exception.reply_code, code,
                         "expected channel.close %d, got %r" % (code, cm.exception))
        return cm.exception

    def publish(self, q, n, prefix=b"m"):
        for i in range(n):
            self.ch.basic_publish(exchange="", routing_key=q, body=prefix + b"%d" % i)
        ok = wait_message_count(self.ch, q, n)
        self.assertEqual(ok.message_count, n)


class DeclareTest(QueueTestBase):

    def test_passive_declare_missing_queue_404(self):
        e = self.channel_error(NOT_FOUND, self.ch.queue_declare,
                               queue=uniq("missing"), passive=True)
        self.assertIn("NOT_FOUND", e.reply_text)
        # the connection survives a channel error
        self.assertTrue(self.conn.is_open)
        self.conn.channel().queue_declare(queue="", exclusive=True)

    def test_passive_declare_existing_returns_counts(self):
        q = self.queue("passive")
        self.publish(q, 3)
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual((ok.queue, ok.message_count, ok.consumer_count), (q, 3, 0))

    def test_passive_declare_ignores_other_flags_and_arguments(self):
        q = self.queue("passive-flags")
        ok = self.ch.queue_declare(queue=q, passive=True, durable=True, auto_delete=True,
                                   arguments={"x-message-ttl": 1}).method
        self.assertEqual(ok.queue, q)
        # ...and did not change the queue: the original flags still match
        ok = self.ch.queue_declare(queue=q).method
        self.assertEqual(ok.queue, q)

    def test_declare_ok_counts(self):
        q = self.queue("counts")
        ok = self.ch.queue_declare(queue=q).method
        self.assertEqual((ok.queue, ok.message_count, ok.consumer_count), (q, 0, 0))
        self.publish(q, 4)
        # a message fetched but not acked is not counted
        m, _, _ = self.ch.basic_get(q, auto_ack=False)
        self.assertIsNotNone(m)
        ok = self.ch.queue_declare(queue=q).method
        self.assertEqual((ok.message_count, ok.consumer_count), (3, 0))
        # consumers are counted (on an empty queue so they take nothing)
        q2 = self.queue("counts-consumers")
        cch = self.conn.channel()
        t1 = cch.basic_consume(q2, lambda *a: None)
        cch.basic_consume(q2, lambda *a: None)
        ok = self.ch.queue_declare(queue=q2, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (0, 2))
        cch.basic_cancel(t1)
        ok = self.ch.queue_declare(queue=q2, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (0, 1))

    def test_redeclare_equivalent_is_ok(self):
        q = self.queue("redeclare", durable=True, arguments={"x-message-ttl": 60000})
        self.publish(q, 2)
        ok = self.ch.queue_declare(queue=q, durable=True,
                                   arguments={"x-message-ttl": 60000}).method
        self.assertEqual((ok.queue, ok.message_count), (q, 2))

    def test_durable_queue(self):
        q = self.queue("durable", durable=True)
        self.ch.basic_publish(exchange="", routing_key=q, body=b"p",
                              properties=pika.BasicProperties(delivery_mode=2))
        self.assertEqual(wait_message_count(self.ch, q, 1).message_count, 1)
        e = self.channel_error(PRECONDITION_FAILED, self.ch.queue_declare, queue=q, durable=False)
        self.assertIn("durable", e.reply_text)
        # and the other way round
        ch = self.conn.channel()
        q2 = uniq("nondurable")
        ch.queue_declare(queue=q2)
        self.to_delete.append(q2)
        e = self.channel_error(PRECONDITION_FAILED, ch.queue_declare, queue=q2, durable=True)
        self.assertIn("durable", e.reply_text)

    def test_inequivalent_auto_delete_406(self):
        q = self.queue("ineq-ad")
        e = self.channel_error(PRECONDITION_FAILED, self.ch.queue_declare, queue=q,
                               auto_delete=True)
        self.assertIn("auto_delete", e.reply_text)

    def test_inequivalent_arguments_406(self):
        q = self.queue("ineq-args", arguments={"x-message-ttl": 60000})
        for args in ({"x-message-ttl": 1000}, {}, {"x-message-ttl": 60000, "x-max-length": 5}):
            with self.subTest(args=args):
                ch = self.conn.channel()
                e = self.channel_error(PRECONDITION_FAILED, ch.queue_declare, queue=q,
                                       arguments=args)
                self.assertIn("inequivalent arg", e.reply_text)

    def test_unknown_arguments_are_not_compared(self):
        # RabbitMQ only checks equivalence of the arguments it knows
        q = self.queue("unknown-args", arguments={"x-warren-test": 1, "foo": "bar"})
        ok = self.ch.queue_declare(queue=q, arguments={"x-warren-test": 2}).method
        self.assertEqual(ok.queue, q)
        ok = self.ch.queue_declare(queue=q).method
        self.assertEqual(ok.queue, q)

    def test_invalid_argument_values_406(self):
        cases = [{"x-message-ttl": "abc"}, {"x-max-length": -1}, {"x-expires": 0}]
        for args in cases:
            with self.subTest(args=args):
                ch = self.conn.channel()
                q = uniq("badarg")
                e = self.channel_error(PRECONDITION_FAILED, ch.queue_declare, queue=q,
                                       arguments=args)
                self.assertIn("invalid arg", e.reply_text)
                self.assertIsNone(self.exists(q), "queue created despite invalid argument")

    def test_server_named_queue(self):
        names = set()
        for _ in range(3):
            ok = self.ch.queue_declare(queue="", exclusive=True).method
            self.assertTrue(ok.queue.startswith("amq.gen-"), ok.queue)
            self.assertGreater(len(ok.queue), len("amq.gen-") + 8, ok.queue)
            self.assertEqual((ok.message_count, ok.consumer_count), (0, 0))
            names.add(ok.queue)
        self.assertEqual(len(names), 3, "server-named queues must be unique")
        q = names.pop()
        self.ch.basic_publish(exchange="", routing_key=q, body=b"hi")
        self.assertEqual(wait_message_count(self.ch, q, 1).message_count, 1)
        m, _, body = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual(body, b"hi")

    def test_server_named_non_exclusive_queue(self):
        ok = self.ch.queue_declare(queue="").method
        self.to_delete.append(ok.queue)
        self.assertTrue(ok.queue.startswith("amq.gen-"), ok.queue)
        other = self.connect().channel()
        self.assertEqual(other.queue_declare(queue=ok.queue, passive=True).method.queue, ok.queue)

    def test_reserved_amq_prefix_403(self):
        e = self.channel_error(ACCESS_REFUSED, self.ch.queue_declare, queue="amq.warren-" +
                               os.urandom(4).hex())
        self.assertIn("amq.", e.reply_text)
        # a passive declare of a missing amq.* name is a plain 404
        ch = self.conn.channel()
        self.channel_error(NOT_FOUND, ch.queue_declare, queue="amq.warren-" +
                           os.urandom(4).hex(), passive=True)

    def test_owner_cannot_redeclare_server_named_queue(self):
        # RabbitMQ refuses every non-passive declare of an amq.* name, even the
        # owner re-declaring its own amq.gen- queue; passive is fine
        q = self.ch.queue_declare(queue="", exclusive=True).method.queue
        for kw in ({"exclusive": True}, {}):
            with self.subTest(**kw):
                ch = self.conn.channel()
                e = self.channel_error(ACCESS_REFUSED, ch.queue_declare, queue=q, **kw)
                self.assertIn("amq.", e.reply_text)
        ok = self.conn.channel().queue_declare(queue=q, passive=True).method
        self.assertEqual(ok.queue, q)


class ExclusiveQueueTest(QueueTestBase):

    def exclusive_queue(self):
        q = uniq("excl")
        ok = self.ch.queue_declare(queue=q, exclusive=True).method
        self.assertEqual(ok.queue, q)
        return q

    def test_other_connection_gets_405_for_every_operation(self):
        q = self.exclusive_queue()
        self.ch.exchange_declare("amq.direct", passive=True)
        other = self.connect()
        ops = {
            "declare": lambda ch: ch.queue_declare(queue=q),
            "declare-exclusive": lambda ch: ch.queue_declare(queue=q, exclusive=True),
            "declare-passive": lambda ch: ch.queue_declare(queue=q, passive=True),
            "consume": lambda ch: ch.basic_consume(q, lambda *a: None),
            "get": lambda ch: ch.basic_get(q),
            "purge": lambda ch: ch.queue_purge(q),
            "delete": lambda ch: ch.queue_delete(q),
            "bind": lambda ch: ch.queue_bind(q, "amq.direct", routing_key=q),
        }
        for name, op in ops.items():
            with self.subTest(op=name):
                ch = other.channel()
                e = self.channel_error(RESOURCE_LOCKED, op, ch)
                self.assertIn("RESOURCE_LOCKED", e.reply_text)
        # 405 is a channel error: the other connection still serves
        other.channel().queue_declare(queue="", exclusive=True)
        # the queue is untouched
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (0, 0))

    def test_server_named_exclusive_redeclare_by_other_is_403(self):
        # a non-passive declare of an amq.gen- name hits the reserved-prefix check first
        q = self.ch.queue_declare(queue="", exclusive=True).method.queue
        ch = self.connect().channel()
        self.channel_error(ACCESS_REFUSED, ch.queue_declare, queue=q)
        ch = self.conns[-1].channel()
        self.channel_error(RESOURCE_LOCKED, ch.queue_declare, queue=q, passive=True)

    def test_owner_uses_it_from_any_channel(self):
        q = self.exclusive_queue()
        ch2 = self.conn.channel()
        ok = ch2.queue_declare(queue=q, exclusive=True).method
        self.assertEqual(ok.queue, q)
        ch2.queue_declare(queue=q, passive=True)
        ch2.queue_bind(q, "amq.direct", routing_key=q)
        ch2.basic_publish(exchange="amq.direct", routing_key=q, body=b"x")
        self.assertEqual(wait_message_count(ch2, q, 1).message_count, 1)
        m, _, body = ch2.basic_get(q, auto_ack=True)
        self.assertEqual(body, b"x")
        self.assertEqual(ch2.queue_purge(q).method.message_count, 0)
        tag = ch2.basic_consume(q, lambda *a: None)
        ch2.basic_cancel(tag)
        self.assertEqual(ch2.queue_delete(q).method.message_count, 0)
        self.assertIsNone(self.exists(q))

    def test_owner_redeclare_non_exclusive_405(self):
        q = self.exclusive_queue()
        ch = self.conn.channel()
        self.channel_error(RESOURCE_LOCKED, ch.queue_declare, queue=q)

    def test_other_connections_may_publish_to_it(self):
        q = self.exclusive_queue()
        other = self.connect().channel()
        other.basic_publish(exchange="", routing_key=q, body=b"from-other")
        other.exchange_declare("amq.direct", passive=True)
        self.assertEqual(wait_message_count(self.ch, q, 1).message_count, 1)

    def test_deleted_when_owner_connection_closes(self):
        owner = self.connect()
        och = owner.channel()
        q = uniq("excl-close")
        och.queue_declare(queue=q, exclusive=True)
        och.basic_publish(exchange="", routing_key=q, body=b"x")
        self.assertEqual(wait_message_count(och, q, 1).message_count, 1)
        och.close()
        # closing the declaring channel does not delete it
        self.assertEqual(self.exists(q), "locked")
        owner.close()
        self.wait_gone(q)
        # the name is free again, for anyone
        ok = self.ch.queue_declare(queue=q, exclusive=True).method
        self.assertEqual((ok.queue, ok.message_count), (q, 0))

    def test_deleted_when_owner_connection_drops(self):
        q = uniq("excl-drop")
        raw = raw_connect(self.broker)
        try:
            raw.channel_open(1)
            raw.queue_declare(1, q, exclusive=True)
            self.assertEqual(self.exists(q), "locked")
        finally:
            raw.close()   # socket close, no connection.close
        self.wait_gone(q)


class AutoDeleteTest(QueueTestBase):

    def test_not_deleted_before_first_consumer(self):
        c = self.connect()
        ch = c.channel()
        q = uniq("ad-never")
        ch.queue_declare(queue=q, auto_delete=True)
        self.to_delete.append(q)
        ch.basic_publish(exchange="", routing_key=q, body=b"x")
        # basic.get is not a consumer
        m = wait_until(lambda: ch.basic_get(q, auto_ack=True)[0],
                       what="the message fetched with basic.get")
        self.assertIsNotNone(m)
        ch.close()
        c.close()
        time.sleep(0.3)
        ok = self.exists(q)
        self.assertIsNotNone(ok, "auto-delete queue deleted although it never had a consumer")
        self.assertEqual(ok.consumer_count, 0)

    def test_deleted_when_last_consumer_cancels(self):
        q = self.queue("ad-cancel", auto_delete=True)
        cch = self.conn.channel()
        t1 = cch.basic_consume(q, lambda *a: None)
        t2 = cch.basic_consume(q, lambda *a: None)
        cch.basic_cancel(t1)
        ok = self.exists(q)
        self.assertIsNotNone(ok, "deleted while a consumer was left")
        self.assertEqual(ok.consumer_count, 1)
        cch.basic_cancel(t2)
        self.wait_gone(q)

    def test_deleted_when_consumer_channel_closes(self):
        q = self.queue("ad-chclose", auto_delete=True)
        self.publish(q, 3)
        cch = self.conn.channel()
        cch.basic_qos(prefetch_count=1)
        cch.basic_consume(q, lambda *a: None)
        self.assertEqual(self.exists(q).consumer_count, 1)
        cch.close()
        self.wait_gone(q)

    def test_deleted_when_consumer_connection_closes(self):
        q = self.queue("ad-connclose", auto_delete=True)
        c = self.connect()
        c.channel().basic_consume(q, lambda *a: None)
        self.assertEqual(self.exists(q).consumer_count, 1)
        c.close()
        self.wait_gone(q)


class PurgeTest(QueueTestBase):

    def test_purge_returns_count(self):
        q = self.queue("purge")
        self.publish(q, 7)
        self.assertEqual(self.ch.queue_purge(q).method.message_count, 7)
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count, 0)
        self.assertEqual(self.ch.queue_purge(q).method.message_count, 0)

    def test_purge_leaves_unacked_messages(self):
        q = self.queue("purge-unacked")
        self.publish(q, 5)
        gch = self.conn.channel()
        got = [gch.basic_get(q, auto_ack=False) for _ in range(2)]
        self.assertEqual([g[2] for g in got], [b"m0", b"m1"])
        self.assertEqual(self.ch.queue_purge(q).method.message_count, 3)
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count, 0)
        gch.close()   # the two unacked come back
        ok = wait_message_count(self.ch, q, 2)
        self.assertEqual(ok.message_count, 2)
        bodies = []
        for _ in range(2):
            m, _, body = self.ch.basic_get(q, auto_ack=True)
            self.assertTrue(m.redelivered)
            bodies.append(body)
        self.assertEqual(bodies, [b"m0", b"m1"])

    def test_purge_missing_queue_404(self):
        self.channel_error(NOT_FOUND, self.ch.queue_purge, uniq("purge-missing"))


class DeleteTest(QueueTestBase):

    def test_delete_returns_message_count(self):
        q = uniq("delete")
        self.ch.queue_declare(queue=q)
        self.publish(q, 4)
        self.assertEqual(self.ch.queue_delete(q).method.message_count, 4)
        self.assertIsNone(self.exists(q))

    def test_delete_missing_queue_is_ok(self):
        # RabbitMQ answers delete-ok(0) for a queue that does not exist
        ok = self.ch.queue_delete(uniq("delete-missing")).method
        self.assertEqual(ok.message_count, 0)

    def test_if_unused(self):
        q = self.queue("if-unused")
        cch = self.conn.channel()
        tag = cch.basic_consume(q, lambda *a: None)
        e = self.channel_error(PRECONDITION_FAILED, self.ch.queue_delete, q, if_unused=True)
        self.assertIn("in use", e.reply_text)
        self.assertIsNotNone(self.exists(q))
        cch.basic_cancel(tag)
        ch = self.conn.channel()
        self.assertEqual(ch.queue_delete(q, if_unused=True).method.message_count, 0)
        self.assertIsNone(self.exists(q))

    def test_if_empty(self):
        q = self.queue("if-empty")
        self.publish(q, 2)
        e = self.channel_error(PRECONDITION_FAILED, self.ch.queue_delete, q, if_empty=True)
        self.assertIn("not empty", e.reply_text)
        ch = self.conn.channel()
        self.assertEqual(ch.queue_declare(queue=q, passive=True).method.message_count, 2)
        ch.queue_purge(q)
        self.assertEqual(ch.queue_delete(q, if_empty=True).method.message_count, 0)
        self.assertIsNone(self.exists(q))

    def test_if_empty_ignores_unacked_messages(self):
        # RabbitMQ: "empty" means no ready messages; unacked ones don't count
        q = self.queue("if-empty-unacked")
        self.publish(q, 1)
        gch = self.conn.channel()
        m, _, _ = gch.basic_get(q, auto_ack=False)
        self.assertIsNotNone(m)
        self.assertEqual(self.ch.queue_delete(q, if_empty=True).method.message_count, 0)
        self.assertIsNone(self.exists(q))
        # acking a message of a deleted queue is fine
        gch.basic_ack(m.delivery_tag)
        gch.exchange_declare("amq.direct", passive=True)

    def test_if_unused_and_if_empty_ok(self):
        q = self.queue("if-both")
        self.assertEqual(self.ch.queue_delete(q, if_unused=True, if_empty=True)
                         .method.message_count, 0)
        self.assertIsNone(self.exists(q))

    def test_delete_cancels_consumers_and_drops_bindings(self):
        # Consumers on another channel of this connection and on another
        # connection (pika announces consumer_cancel_notify) each get
        # basic.cancel for their tag when the queue is deleted.
        q = self.queue("delete-bound")
        self.ch.queue_bind(q, "amq.direct", routing_key=q)
        cancelled = {}
        here = self.conn.channel()
        there_conn = self.connect()
        there = there_conn.channel()
        for ch, tags in ((here, ("here-1", "here-2")), (there, ("there-1",))):
            ch.add_on_cancel_callback(
                lambda frame, ch=ch: cancelled.setdefault(ch.channel_number, []).append(
                    frame.method.consumer_tag))
            for tag in tags:
                ch.basic_consume(q, lambda *a: None, consumer_tag=tag)
        self.assertEqual(self.exists(q).consumer_count, 3)
        self.assertEqual(self.ch.queue_delete(q).method.message_count, 0)

        def all_cancelled():
            for c in (self.conn, there_conn):
                c.process_data_events(time_limit=0.02)
            return sum(map(len, cancelled.values())) >= 3
        self.assertTrue(wait_until(all_cancelled, timeout=30),
                        "basic.cancel after queue.delete: %r" % cancelled)
        self.assertEqual({k: sorted(v) for k, v in cancelled.items()},
                         {here.channel_number: ["here-1", "here-2"],
                          there.channel_number: ["there-1"]})
        # the channels live on without those consumers
        for ch in (here, there):
            self.assertEqual(ch.consumer_tags, [])
            ch.queue_declare(queue="", exclusive=True)
        self.assertIsNone(self.exists(q))
        # recreating the queue gives an empty, unbound queue: the publish
        # through the old binding is dropped, the one after it arrives
        self.ch.queue_declare(queue=q)
        self.ch.basic_publish(exchange="amq.direct", routing_key=q, body=b"x")
        self.ch.basic_publish(exchange="", routing_key=q, body=b"y")
        got = []
        wait_until(lambda: got.append(self.ch.basic_get(q, auto_ack=True)) or got[-1][0],
                   what="the message published after the re-declare")
        self.assertEqual(got[-1][2], b"y", "old binding survived queue.delete")
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count,
                         0, "old binding survived queue.delete")

if __name__ == "__main__":
    main()
