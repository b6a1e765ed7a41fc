#!/usr/bin/python3
"""Direct reply-to (amq.rabbitmq.reply-to): no-ack pseudo-queue consumer,
requests published with reply_to=amq.rabbitmq.reply-to on the same channel,
replies through the default exchange to the generated name, and RabbitMQ's
406s (consume with ack, no consumer, second consumer, other channel)."""

import os
import time

import pika
import pika.exceptions

from harness import PikaTestCase, NO_ROUTE, PRECONDITION_FAILED, main

REPLY_TO = "amq.rabbitmq.reply-to"


def uniq(stem):
    return "warren-it-rt-%s-%s" % (stem, os.urandom(4).hex())


class ReplyToTest(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.connect()
        self.client = self.connect()
        self.sch = self.server.channel()
        self.cch = self.client.channel()
        self.requests = []   # (props, body) seen by the server


    def pump(self, seconds, until=None):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for c in self.conns:
                if c.is_open:
                    c.process_data_events(time_limit=0.01)
            if until is not None and until():
                return True
        return until() if until is not None else None

    def start_server(self, reply=True):
        """A pika consumer on a request queue that answers props.reply_to."""
        q = uniq("rpc")
        self.sch.queue_declare(queue=q)
        self.to_delete.append(q)

        def on_request(ch, method, props, body):
            self.requests.append((props, body))
            if reply:
                ch.basic_publish(exchange="", routing_key=props.reply_to,
                                 body=b"reply:" + body,
                                 properties=pika.BasicProperties(
                                     correlation_id=props.correlation_id))
            ch.basic_ack(method.delivery_tag)
        self.sch.basic_consume(q, on_request)
        return q

    def client_consumer(self, store):
        def on_reply(ch, method, props, body):
            store.append((method, props, body))
        return self.cch.basic_consume(REPLY_TO, on_reply, auto_ack=True)

    def request(self, q, body, corr, ch=None):
        (ch or self.cch).basic_publish(
            exchange="", routing_key=q, body=body,
            properties=pika.BasicProperties(reply_to=REPLY_TO, correlation_id=corr))

    def test_rpc_round_trip(self):
        q = self.start_server()
        replies = []
        self.client_consumer(replies)
        for i in range(20):
            self.request(q, b"req-%d" % i, "corr-%d" % i)
        self.assertTrue(self.pump(30, until=lambda: len(replies) == 20),
                        "got %d of 20 replies" % len(replies))
        self.assertEqual([(p.correlation_id, b) for _, p, b in replies],
                         [("corr-%d" % i, b"reply:req-%d" % i) for i in range(20)])
        # the server saw a generated, per-channel reply address
        names = {p.reply_to for p, _ in self.requests}
        self.assertEqual(len(names), 1, names)
        name = names.pop()
        self.assertTrue(name.startswith(REPLY_TO + "."), name)
        for m, _, _ in replies:
            self.assertEqual((m.exchange, m.routing_key, m.redelivered), ("", name, False))

    def test_two_clients_get_their_own_replies(self):
        q = self.start_server()
        c2 = self.connect().channel()
        r1, r2 = [], []
        self.client_consumer(r1)
        c2.basic_consume(REPLY_TO, lambda ch, m, p, b: r2.append(b), auto_ack=True)
        for i in range(5):
            self.request(q, b"one-%d" % i, "1")
            self.request(q, b"two-%d" % i, "2", ch=c2)
        self.assertTrue(self.pump(30, until=lambda: len(r1) == 5 and len(r2) == 5))
        self.assertEqual([b for _, _, b in r1], [b"reply:one-%d" % i for i in range(5)])
        self.assertEqual(r2, [b"reply:two-%d" % i for i in range(5)])
        self.assertEqual(len({p.reply_to for p, _ in self.requests}), 2)

    def test_consume_with_ack_406(self):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.cch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("reply consumer cannot acknowledge", cm.exception.reply_text)

    def test_second_reply_consumer_406(self):
        self.client_consumer([])
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.cch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("reply consumer already set", cm.exception.reply_text)

    def test_publish_without_reply_consumer_406(self):
        q = self.start_server(reply=False)
        self.request(q, b"orphan", "x")
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.cch.exchange_declare("amq.direct", passive=True)
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("fast reply consumer does not exist", cm.exception.reply_text)
        self.pump(0.3)
        self.assertEqual(self.requests, [], "request routed despite the 406")
        self.assertTrue(self.client.is_open)

    def test_publish_from_other_channel_406(self):
        q = self.start_server(reply=False)
        self.client_consumer([])
        other = self.client.channel()
        self.request(q, b"wrong channel", "x", ch=other)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            other.exchange_declare("amq.direct", passive=True)
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("fast reply consumer does not exist", cm.exception.reply_text)
        self.pump(0.3)
        self.assertEqual(self.requests, [], "request routed despite the 406")
        # the reply consumer's own channel still works
        self.request(q, b"right channel", "y")
        self.assertTrue(self.pump(30, until=lambda: len(self.requests) == 1))
        self.assertEqual(self.requests[0][1], b"right channel")

    def test_declare_pseudo_queue(self):
        # RabbitMQ answers any declare of the pseudo-queue (passive or not, with
        # or without a reply consumer) with message_count 0, consumer_count 1
        for kw in ({"passive": True}, {}):
            with self.subTest(**kw):
                ok = self.client.channel().queue_declare(queue=REPLY_TO, **kw).method
                self.assertEqual((ok.queue, ok.message_count, ok.consumer_count),
                                 (REPLY_TO, 0, 1))

    def test_reply_to_gone_client(self):
        q = self.start_server(reply=False)
        self.client_consumer([])
        self.request(q, b"then leave", "x")
        self.assertTrue(self.pump(30, until=lambda: len(self.requests) == 1))
        self.client.close()
        name = self.requests[0][0].reply_to
        returns = []
        self.sch.add_on_return_callback(lambda ch, m, p, b: returns.append((m, b)))
        # silently dropped without mandatory...
        self.sch.basic_publish(exchange="", routing_key=name, body=b"late")
        self.sch.exchange_declare("amq.direct", passive=True)
        # ...returned with mandatory
        self.sch.basic_publish(exchange="", routing_key=name, body=b"late-mandatory",
                               mandatory=True)
        self.assertTrue(self.pump(30, until=lambda: len(returns) >= 1))
        # a round trip on the channel: a second return would be in front of it
        self.sch.exchange_declare("amq.direct", passive=True)
        self.pump(0.05)
        self.assertEqual([(m.reply_code, m.reply_text, m.routing_key, b) for m, b in returns],
                         [(NO_ROUTE, "NO_ROUTE", name, b"late-mandatory")])

    def test_cancel_then_publish_406(self):
        q = self.start_server(reply=False)
        tag = self.client_consumer([])
        self.cch.basic_cancel(tag)
        self.request(q, b"after cancel", "x")
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.cch.exchange_declare("amq.direct", passive=True)
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)


if __name__ == "__main__":
    main()
