#!/usr/bin/python3
"""Message deduplication (issue 15): LavinMQ's x-message-deduplication on
queues and exchanges.

A message whose key (the message-id, or the header named by
x-deduplication-header) is among the last x-cache-size keys seen, within
x-cache-ttl ms (or its own x-cache-ttl header) of the first, is dropped
and still confirmed, and a mandatory duplicate is not returned.  The cache
of a durable queue or exchange survives a restart and a SIGKILL, so a
producer that publishes again after losing its confirm (or its
connection) gets exactly one copy delivered.
"""

import socket
import time
import unittest

import pika
import pika.exceptions

from harness import (Broker, PikaTestCase, main, skip_if_external,
                     wait_message_count, wait_until)
from test_mgmt_api import Api
from harness import (BASIC_PUBLISH, FRAME_BODY, FRAME_HEADER,
                     content_header_payload, enc_bits, enc_short,
                     enc_shortstr, frame, method_frame, raw_connect)

DEDUP = {"x-message-deduplication": True}
PERSISTENT = 2


def props(message_id=None, headers=None, persistent=False):
    return pika.BasicProperties(message_id=message_id, headers=headers,
                                delivery_mode=PERSISTENT if persistent else None)


def drain(ch, queue):
    out = []
    while True:
        m, _p, body = ch.basic_get(queue, auto_ack=True)
        if m is None:
            return out
        out.append(body)


@skip_if_external("deduplication is Warren's (LavinMQ's), not RabbitMQ's")
class Dedup(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.conn = self.connect()
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()

    def queue(self, name, **args):
        self.to_delete.append(name)
        self.ch.queue_declare(name, arguments=dict(DEDUP, **args))
        return name

    def test_queue_drops_a_repeated_message_id_and_confirms_it(self):
        q = self.queue("dd-mid")
        # pika's confirm mode raises on a nack: each publish is acked.
        for mid in ("a", "b", "a", "c", "b"):
            self.ch.basic_publish("", q, mid.encode(), props(mid),
                                  mandatory=True)
        self.ch.basic_publish("", q, b"no-id")
        self.ch.basic_publish("", q, b"no-id")
        self.assertEqual(drain(self.ch, q), [b"a", b"b", b"c", b"no-id",
                                             b"no-id"])
        # The management API counts them.
        status, reply, _ = Api(self.broker)("GET", "/queues/%2F/" + q)
        self.assertEqual(reply["deduplication"],
                         {"keys": 3, "duplicates_dropped": 2})

    def test_cache_size_evicts_the_oldest(self):
        q = self.queue("dd-size", **{"x-cache-size": 2})
        for mid in ("a", "b", "a", "c", "a", "c"):
            self.ch.basic_publish("", q, mid.encode(), props(mid))
        # a, b kept; a dup; c evicts a; a is new again (evicts b); c dup.
        self.assertEqual(drain(self.ch, q), [b"a", b"b", b"c", b"a"])

    def test_cache_ttl_and_per_message_ttl(self):
        # 3 s: the two first publishes are well within it on a busy machine
        q = self.queue("dd-ttl", **{"x-cache-ttl": 3000})
        self.ch.basic_publish("", q, b"1", props("t"))
        self.ch.basic_publish("", q, b"2", props("t"))
        # The message's own x-cache-ttl: far longer than the queue's.
        self.ch.basic_publish("", q, b"3", props("long", {"x-cache-ttl": 60000}))
        start = time.monotonic()
        wait_until(lambda: time.monotonic() - start > 3.2, interval=0.05,
                   what="the 3 s cache TTL to pass")
        self.ch.basic_publish("", q, b"4", props("t"))
        self.ch.basic_publish("", q, b"5", props("long"))
        self.assertEqual(drain(self.ch, q), [b"1", b"3", b"4"])

    def test_exchange_by_header_not_returned_when_mandatory(self):
        x, q = "dd-x", "dd-xq"
        self.to_delete.append(q)
        self.ch.exchange_declare(x, "fanout", arguments=dict(
            DEDUP, **{"x-deduplication-header": "order"}))
        self.addCleanup(lambda: self.connect().channel().exchange_delete(x))
        self.ch.queue_declare(q)
        self.ch.queue_bind(q, x)
        returned = []
        self.ch.add_on_return_callback(lambda *a: returned.append(a))
        for order in (17, 18, 17, "17"):
            self.ch.basic_publish(x, "", b"%s" % str(order).encode(),
                                  props(headers={"order": order}),
                                  mandatory=True)
        # the message-id is not the key on this exchange
        self.ch.basic_publish(x, "", b"m1", props("same", {"order": 1}))
        self.ch.basic_publish(x, "", b"m2", props("same", {"order": 2}))
        self.conn.process_data_events(0.2)
        self.assertEqual(returned, [])
        self.assertEqual(drain(self.ch, q), [b"17", b"18", b"m1", b"m2"])

    def test_lavinmq_default_header_without_message_id(self):
        q = self.queue("dd-lavin")
        for body in (b"1", b"2"):
            self.ch.basic_publish("", q, body, props(
                headers={"x-deduplication-header": "k1"}))
        self.assertEqual(drain(self.ch, q), [b"1"])

    def test_arguments_checked(self):
        for bad in ({"x-message-deduplication": "yes"},
                    dict(DEDUP, **{"x-cache-size": 0}),
                    dict(DEDUP, **{"x-cache-size": "big"}),
                    dict(DEDUP, **{"x-cache-ttl": -5}),
                    dict(DEDUP, **{"x-deduplication-header": 7})):
            ch = self.conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.queue_declare("dd-bad", arguments=bad)
            self.assertEqual(cm.exception.reply_code, 406, bad)
            key = [k for k in bad if k != "x-message-deduplication"] or \
                ["x-message-deduplication"]
            self.assertIn(key[-1], cm.exception.reply_text)
        ch = self.conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.exchange_declare("dd-badx", "direct", arguments=dict(
                DEDUP, **{"x-cache-size": -1}))
        self.assertEqual(cm.exception.reply_code, 406)

    def test_dead_lettered_messages_are_deduplicated_too(self):
        dlq = self.queue("dd-dlq")
        src = "dd-src"
        self.to_delete.append(src)
        self.ch.queue_declare(src, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
        self.ch.basic_publish("", src, b"x", props("once"))
        self.ch.basic_publish("", src, b"x", props("once"))
        for _ in range(2):
            m, _p, _b = self.ch.basic_get(src)
            self.ch.basic_reject(m.delivery_tag, requeue=False)
        wait_message_count(self.ch, dlq, 1)
        self.assertEqual(drain(self.ch, dlq), [b"x"])

    def test_deleted_queue_forgets_its_keys(self):
        q = self.queue("dd-del")
        self.ch.basic_publish("", q, b"1", props("k"))
        self.ch.queue_delete(q)
        self.queue("dd-del")
        self.ch.basic_publish("", q, b"2", props("k"))
        self.assertEqual(drain(self.ch, q), [b"2"])

    def test_retry_after_a_dropped_connection_delivers_once(self):
        q = self.queue("dd-retry")
        # A publisher sends a message and loses its connection before any
        # confirm can reach it.
        c = raw_connect(self.broker)
        c.channel_open(1)
        c.send(method_frame(1, BASIC_PUBLISH, enc_short(0) + enc_shortstr("")
                            + enc_shortstr(q) + enc_bits(False, False)) +
               frame(FRAME_HEADER, 1, content_header_payload(
                   5, {"message_id": "order-1"})) +
               frame(FRAME_BODY, 1, b"first"))
        c.sock.shutdown(socket.SHUT_RDWR)
        c.sock.close()
        wait_message_count(self.ch, q, 1)
        # It reconnects and publishes the same message again: confirmed,
        # and still one delivery.
        conn = self.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", q, b"again", props("order-1"), mandatory=True)
        conn.close()
        self.assertEqual(drain(self.ch, q), [b"first"])


@skip_if_external("restarts the broker")
class DedupAcrossRestarts(unittest.TestCase):
    """The caches of durable queues and exchanges are on disk when the
    publish that filled them is confirmed."""

    def roundtrip(self, kill):
        with Broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare("dd-dq", durable=True, arguments=dict(
                DEDUP, **{"x-cache-size": 3}))
            ch.exchange_declare("dd-dx", "fanout", durable=True,
                                arguments=DEDUP)
            ch.queue_declare("dd-dxq", durable=True)
            ch.queue_bind("dd-dxq", "dd-dx")
            ch.queue_declare("dd-tq", arguments=DEDUP)   # transient
            for mid in ("a", "b", "c", "d"):   # a falls out of the cache
                ch.basic_publish("", "dd-dq", mid.encode(),
                                 props(mid, persistent=True))
            ch.basic_publish("dd-dx", "", b"x1", props("x1", persistent=True))
            ch.basic_publish("", "dd-tq", b"t", props("t"))
            if not kill:
                conn.close()
            b.restart(kill=kill)

            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.confirm_delivery()
            for mid in ("b", "c", "d", "a"):
                ch.basic_publish("", "dd-dq", b"again-" + mid.encode(),
                                 props(mid, persistent=True))
            ch.basic_publish("dd-dx", "", b"x1-again",
                             props("x1", persistent=True))
            self.assertEqual(drain(ch, "dd-dq"), [b"a", b"b", b"c", b"d",
                                                  b"again-a"])
            self.assertEqual(drain(ch, "dd-dxq"), [b"x1"])
            # The transient queue came back empty, its cache too.
            ch.queue_declare("dd-tq", arguments=DEDUP)
            ch.basic_publish("", "dd-tq", b"t2", props("t"))
            self.assertEqual(drain(ch, "dd-tq"), [b"t2"])
            conn.close()

    def test_clean_restart(self):
        self.roundtrip(kill=False)

    def test_sigkill(self):
        self.roundtrip(kill=True)


if __name__ == "__main__":
    main()
