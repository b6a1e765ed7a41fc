#!/usr/bin/python3
"""Consumers: consumer tags (client-given, server-generated amq.ctag-, reuse
-> 530), no-local, no-ack, exclusive consumers (403), x-priority,
round-robin, basic.cancel (client and server-sent on queue deletion),
basic.get / get-empty, basic.qos prefetch (per consumer and per channel, as
RabbitMQ interprets `global`) and channel.flow."""

import os
import time

import pika
import pika.exceptions

from harness import (PikaTestCase, ACCESS_REFUSED, BASIC_CONSUME,
    BASIC_CONSUME_OK, BASIC_DELIVER, BASIC_GET_EMPTY, CHANNEL_CLOSE,
    CONNECTION_OPEN_OK, CONNECTION_START, CONNECTION_TUNE, FRAME_METHOD,
    NOT_ALLOWED, NOT_FOUND, NOT_IMPLEMENTED, PRECONDITION_FAILED, RawClient, enc_bits, enc_short,
    enc_shortstr, enc_table, main, method_frame, raw_connect)

BASIC_CANCEL = (60, 30)
BASIC_CANCEL_OK = (60, 31)
CHANNEL_FLOW = (20, 20)
CHANNEL_FLOW_OK = (20, 21)


def uniq(stem):
    return "warren-it-c-%s-%s" % (stem, os.urandom(4).hex())


def raw_consume(raw, ch, queue, tag="", no_local=False, no_ack=False, exclusive=False,
                arguments=None):
    raw.send(method_frame(ch, BASIC_CONSUME, enc_short(0) + enc_shortstr(queue) +
                          enc_shortstr(tag) + enc_bits(no_local, no_ack, exclusive, False) +
                          enc_table(arguments or {})))


def raw_read_delivery(raw, ch, timeout=30.0):
    """Next basic.deliver on channel ch with its body: (deliver_frame, body)."""
    f = raw.read_frame_skip_heartbeats(timeout)
    if f.type != FRAME_METHOD or f.method != BASIC_DELIVER or f.channel != ch:
        raise AssertionError("expected basic.deliver on channel %d, got %r" % (ch, f))
    header, body, _ = raw.read_content(ch, timeout)
    return f, body


class ConsumerTestBase(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.raws = []
        self.conn = self.connect()
        self.ch = self.conn.channel()

    def tearDown(self):
        for r in self.raws:
            r.close()
        super().tearDown()

    def raw(self):
        r = raw_connect(self.broker, timeout=30)
        self.raws.append(r)
        return r

    def queue(self, stem, **kw):
        name = uniq(stem)
        self.ch.queue_declare(queue=name, **kw)
        self.to_delete.append(name)
        return name

    def publish(self, q, n, start=0, wait=True):
        for i in range(start, start + n):
            self.ch.basic_publish(exchange="", routing_key=q, body=b"%d" % i)
        if wait:
            # a passive declare on the publishing channel orders after the publishes
            self.ch.queue_declare(queue=q, passive=True)

    def pump(self, seconds, conns=None, until=None):
        """Run the pika event loops for `seconds` (or until until() is true)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for c in (conns or self.conns):
                c.process_data_events(time_limit=0.02)
            if until is not None and until():
                return True
        return until() if until is not None else None

    def collector(self, store, name):
        def cb(ch, method, props, body):
            store.setdefault(name, []).append((method, props, body))
        return cb

    def channel_error(self, code, fn, *a, **kw):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            fn(*a, **kw)
        self.assertEqual(cm.exception.reply_code, code,
                         "expected channel.close %d, got %r" % (code, cm.exception))
        return cm.exception


class ConsumerTagTest(ConsumerTestBase):

    def test_client_given_tag(self):
        q = self.queue("ctag")
        got = {}
        tag = self.ch.basic_consume(q, self.collector(got, "c"), consumer_tag="my-tag-1")
        self.assertEqual(tag, "my-tag-1")
        self.publish(q, 2)
        self.assertTrue(self.pump(30, until=lambda: len(got.get("c", [])) == 2))
        self.assertEqual([m.consumer_tag for m, _, _ in got["c"]], ["my-tag-1"] * 2)

    def test_server_generated_tag(self):
        q = self.queue("srvtag")
        raw = self.raw()
        raw.channel_open(1)
        tags = set()
        for _ in range(3):
            raw_consume(raw, 1, q)
            ok = raw.expect_method(BASIC_CONSUME_OK, 1)
            self.assertTrue(ok["consumer_tag"].startswith("amq.ctag-"), ok["consumer_tag"])
            tags.add(ok["consumer_tag"])
        self.assertEqual(len(tags), 3, "server-generated tags must be unique")
        self.publish(q, 1)
        f, body = raw_read_delivery(raw, 1)
        self.assertIn(f["consumer_tag"], tags)

    def test_reusing_tag_on_channel_is_connection_error_530(self):
        q = self.queue("reuse")
        raw = self.raw()
        raw.channel_open(1)
        raw_consume(raw, 1, q, tag="dup")
        raw.expect_method(BASIC_CONSUME_OK, 1)
        raw_consume(raw, 1, q, tag="dup")
        f = raw.expect_connection_close(NOT_ALLOWED)
        self.assertEqual((f["class_id"], f["method_id"]), BASIC_CONSUME)
        self.assertIn("dup", f["reply_text"])

    def test_same_tag_on_other_channel_and_after_cancel(self):
        q = self.queue("tag-other-ch")
        raw = self.raw()
        raw.channel_open(1)
        raw.channel_open(2)
        for ch in (1, 2):
            raw_consume(raw, ch, q, tag="shared")
            self.assertEqual(raw.expect_method(BASIC_CONSUME_OK, ch)["consumer_tag"], "shared")
        raw.send(method_frame(1, BASIC_CANCEL, enc_shortstr("shared") + enc_bits(False)))
        f = raw.expect_method(BASIC_CANCEL_OK, 1)
        self.assertEqual(f.payload[4:], enc_shortstr("shared"))
        raw_consume(raw, 1, q, tag="shared")
        raw.expect_method(BASIC_CONSUME_OK, 1)

    def test_no_local_is_ignored(self):
        q = self.queue("nolocal")
        raw = self.raw()
        raw.channel_open(1)
        raw_consume(raw, 1, q, tag="nl", no_local=True, no_ack=True)
        raw.expect_method(BASIC_CONSUME_OK, 1)
        raw.publish(1, b"own message", routing_key=q)
        f, body = raw_read_delivery(raw, 1)
        self.assertEqual((f["consumer_tag"], body), ("nl", b"own message"))

    def test_no_ack_consumer(self):
        q = self.queue("noack")
        got = {}
        cch = self.conn.channel()
        cch.basic_consume(q, self.collector(got, "c"), auto_ack=True)
        self.publish(q, 5)
        self.assertTrue(self.pump(30, until=lambda: len(got.get("c", [])) == 5))
        self.assertEqual([b for _, _, b in got["c"]], [b"%d" % i for i in range(5)])
        self.assertEqual([m.delivery_tag for m, _, _ in got["c"]], [1, 2, 3, 4, 5])
        self.assertFalse(any(m.redelivered for m, _, _ in got["c"]))
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (0, 1))
        # nothing is outstanding: acking a no-ack delivery is an unknown tag
        cch.basic_ack(1)
        self.channel_error(PRECONDITION_FAILED, cch.queue_declare, queue=q, passive=True)
        # ...and closing the channel requeues nothing
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count, 0)


class ExclusiveConsumerTest(ConsumerTestBase):

    def test_exclusive_refused_when_queue_has_consumers(self):
        q = self.queue("excl-busy")
        self.conn.channel().basic_consume(q, lambda *a: None)
        other = self.connect().channel()
        e = self.channel_error(ACCESS_REFUSED, other.basic_consume, q, lambda *a: None,
                               exclusive=True)
        self.assertIn("exclusive use", e.reply_text)
        # also on the same connection
        ch = self.conn.channel()
        self.channel_error(ACCESS_REFUSED, ch.basic_consume, q, lambda *a: None, exclusive=True)

    def test_exclusive_consumer_blocks_others_until_cancelled(self):
        q = self.queue("excl-hold")
        ech = self.conn.channel()
        tag = ech.basic_consume(q, lambda *a: None, exclusive=True)
        other = self.connect()
        for kw in ({}, {"exclusive": True}):
            with self.subTest(**kw):
                ch = other.channel()
                self.channel_error(ACCESS_REFUSED, ch.basic_consume, q, lambda *a: None, **kw)
        # the same connection is refused too
        ch = self.conn.channel()
        self.channel_error(ACCESS_REFUSED, ch.basic_consume, q, lambda *a: None)
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.consumer_count, 1)
        ech.basic_cancel(tag)
        ch = other.channel()
        ch.basic_consume(q, lambda *a: None)
        other.channel().basic_consume(q, lambda *a: None)
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.consumer_count, 2)

    def test_exclusive_consumer_released_when_its_channel_closes(self):
        q = self.queue("excl-close")
        ech = self.conn.channel()
        ech.basic_consume(q, lambda *a: None, exclusive=True)
        # a second consume on its own channel is refused, which closes that channel
        self.channel_error(ACCESS_REFUSED, ech.basic_consume, q, lambda *a: None)
        ch = self.connect().channel()
        ch.basic_consume(q, lambda *a: None, exclusive=True)
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.consumer_count, 1)

    def test_exclusive_consumer_gets_everything(self):
        q = self.queue("excl-all")
        got = {}
        ech = self.conn.channel()
        tag = ech.basic_consume(q, self.collector(got, "x"), exclusive=True)
        # a competitor on another connection is refused, as RabbitMQ does
        other = self.connect()
        e = self.channel_error(ACCESS_REFUSED, other.channel().basic_consume, q,
                               self.collector(got, "other"))
        self.assertIn("exclusive use", e.reply_text)
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.consumer_count, 1)
        self.publish(q, 10)
        self.assertTrue(self.pump(30, until=lambda: len(got.get("x", [])) == 10),
                        "exclusive consumer got %r" % got)
        self.pump(0.3)
        self.assertEqual([b for _, _, b in got["x"]], [b"%d" % i for i in range(10)])
        self.assertNotIn("other", got)
        # after the cancel the competitor may consume
        ech.basic_cancel(tag)
        other.channel().basic_consume(q, self.collector(got, "other"))
        self.publish(q, 1, start=10)
        self.assertTrue(self.pump(30, until=lambda: len(got.get("other", [])) == 1))
        self.assertEqual(got["other"][0][2], b"10")


class PriorityTest(ConsumerTestBase):

    def test_higher_priority_consumer_gets_all_while_it_has_credit(self):
        q = self.queue("prio-all")
        got = {}
        low, high = self.conn.channel(), self.conn.channel()
        low.basic_consume(q, self.collector(got, "low"))
        high.basic_consume(q, self.collector(got, "high"), arguments={"x-priority": 10})
        self.publish(q, 20)
        self.assertTrue(self.pump(30, until=lambda: len(got.get("high", [])) == 20))
        self.pump(0.3)
        self.assertEqual([b for _, _, b in got["high"]], [b"%d" % i for i in range(20)])
        self.assertNotIn("low", got)

    def test_lower_priority_only_when_higher_has_no_credit(self):
        q = self.queue("prio-credit")
        got = {}
        low, high = self.conn.channel(), self.conn.channel()
        high.basic_qos(prefetch_count=3)
        low.basic_consume(q, self.collector(got, "low"))
        high.basic_consume(q, self.collector(got, "high"), arguments={"x-priority": 10})
        self.publish(q, 20)
        self.assertTrue(self.pump(30, until=lambda: len(got.get("low", [])) == 17))
        self.pump(0.3)
        self.assertEqual([b for _, _, b in got["high"]], [b"0", b"1", b"2"])
        self.assertEqual([b for _, _, b in got["low"]], [b"%d" % i for i in range(3, 20)])
        # once the high-priority consumer has credit again it is preferred again
        high.basic_ack(got["high"][-1][0].delivery_tag, multiple=True)
        # flush the ack: same connection, so processed before the publishes
        high.queue_declare(queue=q, passive=True)
        self.publish(q, 5, start=20)
        self.assertTrue(self.pump(30, until=lambda: len(got["high"]) + len(got["low"]) == 25))
        self.pump(0.3)
        self.assertEqual([b for _, _, b in got["high"][3:]], [b"20", b"21", b"22"])
        self.assertEqual([b for _, _, b in got["low"][17:]], [b"23", b"24"])

    def test_priority_levels_and_round_robin_within_a_level(self):
        q = self.queue("prio-mix")
        got = {}
        a, b = self.conn.channel(), self.conn.channel()
        a.basic_qos(prefetch_count=3)
        b.basic_qos(prefetch_count=3)
        b.basic_consume(q, self.collector(got, "default"))
        a.basic_consume(q, self.collector(got, "high1"), arguments={"x-priority": 10})
        a.basic_consume(q, self.collector(got, "high2"), arguments={"x-priority": 10})
        b.basic_consume(q, self.collector(got, "negative"), arguments={"x-priority": -5})
        self.publish(q, 20)
        self.assertTrue(self.pump(30, until=lambda: sum(map(len, got.values())) == 12))
        self.pump(0.3)
        bodies = {k: [int(x[2]) for x in v] for k, v in got.items()}
        self.assertEqual(bodies, {"high1": [0, 2, 4], "high2": [1, 3, 5],
                                  "default": [6, 7, 8], "negative": [9, 10, 11]})
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count, 8)


class RoundRobinTest(ConsumerTestBase):

    def test_two_channels_alternate(self):
        q = self.queue("rr2")
        got = {}
        a, b = self.conn.channel(), self.conn.channel()
        a.basic_consume(q, self.collector(got, "a"))
        b.basic_consume(q, self.collector(got, "b"))
        self.publish(q, 20)
        self.assertTrue(self.pump(30, until=lambda: sum(map(len, got.values())) == 20))
        seqs = sorted([int(x[2]) for x in v] for v in got.values())
        self.assertEqual(seqs, [list(range(0, 20, 2)), list(range(1, 20, 2))])

    def test_three_consumers_on_one_channel(self):
        q = self.queue("rr3")
        got = {}
        a = self.conn.channel()
        for n in ("x", "y", "z"):
            a.basic_consume(q, self.collector(got, n))
        self.publish(q, 21)
        self.assertTrue(self.pump(30, until=lambda: sum(map(len, got.values())) == 21))
        seqs = sorted([int(x[2]) for x in v] for v in got.values())
        self.assertEqual(seqs, [list(range(k, 21, 3)) for k in range(3)])

    def test_consumer_without_credit_is_skipped(self):
        q = self.queue("rr-credit")
        got = {}
        a, b = self.conn.channel(), self.conn.channel()
        a.basic_qos(prefetch_count=1)
        a.basic_consume(q, self.collector(got, "a"))
        b.basic_consume(q, self.collector(got, "b"))
        self.publish(q, 10)
        self.assertTrue(self.pump(30, until=lambda: sum(map(len, got.values())) == 10))
        self.assertEqual([int(x[2]) for x in got["a"]], [0])
        self.assertEqual([int(x[2]) for x in got["b"]], list(range(1, 10)))


class CancelTest(ConsumerTestBase):

    def test_basic_cancel_stops_deliveries(self):
        q = self.queue("cancel")
        got = {}
        cch = self.conn.channel()
        cch.basic_qos(prefetch_count=2)
        tag = cch.basic_consume(q, self.collector(got, "c"))
        self.publish(q, 5)
        self.assertTrue(self.pump(30, until=lambda: len(got.get("c", [])) == 2))
        cch.basic_cancel(tag)
        # still unacked, and ackable after the cancel
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (3, 0))
        cch.basic_ack(got["c"][1][0].delivery_tag, multiple=True)
        self.publish(q, 2, start=5)
        self.pump(0.3)
        self.assertEqual(len(got["c"]), 2, "delivery after basic.cancel")
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count, 5)
        cch.close()
        # the acked two do not come back
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count, 5)

    def test_cancel_unknown_tag_is_ok(self):
        raw = self.raw()
        raw.channel_open(1)
        raw.send(method_frame(1, BASIC_CANCEL, enc_shortstr("no-such-tag") + enc_bits(False)))
        f = raw.expect_method(BASIC_CANCEL_OK, 1)
        self.assertEqual(f.payload[4:], enc_shortstr("no-such-tag"))

    def test_queue_delete_cancels_consumers(self):
        q = self.queue("delete-cancel")
        cancelled = []
        cch = self.conn.channel()
        cch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method))
        cch.basic_consume(q, lambda *a: None, consumer_tag="doomed-1")
        cch.basic_consume(q, lambda *a: None, consumer_tag="doomed-2")
        other = self.connect().channel()
        other.queue_delete(q)
        self.assertTrue(self.pump(30, until=lambda: len(cancelled) == 2),
                        "no basic.cancel after queue.delete: %r" % cancelled)
        self.assertEqual(sorted(m.consumer_tag for m in cancelled), ["doomed-1", "doomed-2"])
        self.assertTrue(cch.is_open)
        self.assertEqual(cch.consumer_tags, [])

    def test_queue_delete_cancel_raw(self):
        q = self.queue("delete-cancel-raw")
        raw = self.raw()
        raw.channel_open(1)
        raw_consume(raw, 1, q, tag="rawc")
        raw.expect_method(BASIC_CONSUME_OK, 1)
        self.ch.queue_delete(q)
        f = raw.expect_method(BASIC_CANCEL, 1)
        self.assertEqual(f.payload[4:5 + len("rawc")], enc_shortstr("rawc"))
        # channel still usable
        raw.queue_declare(1, "", exclusive=True)

    def test_no_cancel_notification_without_capability(self):
        # RabbitMQ sends basic.cancel only to clients announcing consumer_cancel_notify
        q = self.queue("delete-nocap")
        raw = RawClient(self.broker.host, self.broker.port, timeout=30)
        self.raws.append(raw)
        raw.send_protocol_header()
        raw.expect_method(CONNECTION_START, 0)
        raw.start_ok(self.broker.user, self.broker.password,
                     client_properties={"product": "no-capabilities"})
        t = raw.expect_method(CONNECTION_TUNE, 0)
        raw.tune_ok(t["channel_max"], t["frame_max"], 0)
        raw.open(self.broker.vhost)
        raw.expect_method(CONNECTION_OPEN_OK, 0)
        raw.channel_open(1)
        raw_consume(raw, 1, q, tag="quiet")
        raw.expect_method(BASIC_CONSUME_OK, 1)
        self.assertEqual(self.ch.queue_delete(q).method.message_count, 0)
        try:
            f = raw.read_frame_skip_heartbeats(0.7)
            self.fail("unexpected frame %r" % f)
        except OSError:
            pass   # timeout: nothing sent
        # the consumer is gone all the same, and the next frame on the
        # channel is the reply to our next request, not a late basic.cancel
        raw_consume(raw, 1, q, tag="quiet")
        f = raw.read_frame_skip_heartbeats()
        self.assertEqual((f.type, f.channel, f.method), (FRAME_METHOD, 1, CHANNEL_CLOSE),
                         "consume on the deleted queue: %r" % (f,))
        self.assertEqual(f["reply_code"], NOT_FOUND)


class BasicGetTest(ConsumerTestBase):

    def test_get_message_count_and_empty(self):
        q = self.queue("get")
        self.publish(q, 3)
        for i in range(3):
            m, props, body = self.ch.basic_get(q, auto_ack=False)
            self.assertEqual(body, b"%d" % i)
            self.assertEqual(m.message_count, 2 - i)
            self.assertEqual(m.delivery_tag, i + 1)
            self.assertFalse(m.redelivered)
            self.assertEqual((m.exchange, m.routing_key), ("", q))
        self.assertEqual(self.ch.basic_get(q), (None, None, None))
        self.ch.basic_ack(3, multiple=True)

    def test_get_empty_raw(self):
        q = self.queue("get-empty-raw")
        raw = self.raw()
        raw.channel_open(1)
        raw.basic_get(1, q)
        f = raw.expect_method(BASIC_GET_EMPTY, 1)
        self.assertEqual(f["cluster_id"], "")

    def test_get_ignores_prefetch(self):
        q = self.queue("get-qos")
        self.publish(q, 3)
        self.ch.basic_qos(prefetch_count=1)
        bodies = [self.ch.basic_get(q, auto_ack=False)[2] for _ in range(3)]
        self.assertEqual(bodies, [b"0", b"1", b"2"])

    def test_get_and_consume_share_delivery_tags(self):
        q = self.queue("get-tags")
        self.publish(q, 3)
        m, _, _ = self.ch.basic_get(q, auto_ack=False)
        self.assertEqual(m.delivery_tag, 1)
        got = {}
        self.ch.basic_consume(q, self.collector(got, "c"))
        self.assertTrue(self.pump(30, until=lambda: len(got.get("c", [])) == 2))
        self.assertEqual([x[0].delivery_tag for x in got["c"]], [2, 3])


class PrefetchTest(ConsumerTestBase):

    def outstanding_after(self, got, expect_total, settle=0.5):
        self.assertTrue(self.pump(30, until=lambda: sum(map(len, got.values())) >= expect_total),
                        "expected %d deliveries, got %d"
                        % (expect_total, sum(map(len, got.values()))))
        self.pump(settle)   # and nothing more arrives
        return {k: len(v) for k, v in got.items()}

    def test_per_consumer_limit(self):
        q = self.queue("qos-consumer")
        got = {}
        ch = self.conn.channel()
        ch.basic_qos(prefetch_count=3)   # global=false: each consumer gets 3
        ch.basic_consume(q, self.collector(got, "a"))
        ch.basic_consume(q, self.collector(got, "b"))
        self.publish(q, 20)
        self.assertEqual(self.outstanding_after(got, 6), {"a": 3, "b": 3})
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count, 14)

    def test_per_channel_limit(self):
        q = self.queue("qos-channel")
        got = {}
        ch = self.conn.channel()
        ch.basic_qos(prefetch_count=5, global_qos=True)   # shared by the channel
        ch.basic_consume(q, self.collector(got, "a"))
        ch.basic_consume(q, self.collector(got, "b"))
        self.publish(q, 20)
        counts = self.outstanding_after(got, 5)
        self.assertEqual(sum(counts.values()), 5, counts)
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count, 15)

    def test_per_consumer_and_per_channel_together(self):
        q = self.queue("qos-both")
        got = {}
        ch = self.conn.channel()
        ch.basic_qos(prefetch_count=2)                    # per consumer
        ch.basic_qos(prefetch_count=5, global_qos=True)   # per channel
        for n in ("a", "b", "c"):
            ch.basic_consume(q, self.collector(got, n))
        self.publish(q, 20)
        counts = self.outstanding_after(got, 5)
        self.assertEqual(sorted(counts.values()), [1, 2, 2], counts)

    def test_per_consumer_qos_clears_channel_limit(self):
        # RabbitMQ quirk: basic.qos(global=false) resets the channel-wide
        # (global=true) limit to unlimited, so order matters
        q = self.queue("qos-reset")
        got = {}
        ch = self.conn.channel()
        ch.basic_qos(prefetch_count=3, global_qos=True)
        ch.basic_qos(prefetch_count=2)
        for n in ("a", "b", "c"):
            ch.basic_consume(q, self.collector(got, n))
        self.publish(q, 20)
        self.assertEqual(self.outstanding_after(got, 6), {"a": 2, "b": 2, "c": 2})

    def test_per_consumer_qos_applies_to_later_consumers_only(self):
        q = self.queue("qos-change")
        got = {}
        ch = self.conn.channel()
        ch.basic_qos(prefetch_count=2)
        ch.basic_consume(q, self.collector(got, "a"))
        ch.basic_qos(prefetch_count=4)
        ch.basic_consume(q, self.collector(got, "b"))
        self.publish(q, 20)
        self.assertEqual(self.outstanding_after(got, 6), {"a": 2, "b": 4})

    def test_global_qos_applies_to_existing_consumers(self):
        q = self.queue("qos-global-late")
        got = {}
        ch = self.conn.channel()
        ch.basic_consume(q, self.collector(got, "a"))
        ch.basic_qos(prefetch_count=2, global_qos=True)
        self.publish(q, 20)
        self.assertEqual(self.outstanding_after(got, 2), {"a": 2})

    def test_zero_is_unlimited(self):
        q = self.queue("qos-zero")
        got = {}
        ch = self.conn.channel()
        ch.basic_qos(prefetch_count=0)
        ch.basic_consume(q, self.collector(got, "a"))
        self.publish(q, 500)
        self.assertEqual(self.outstanding_after(got, 500, settle=0.2), {"a": 500})

    def test_each_ack_releases_one_delivery(self):
        q = self.queue("qos-credit")
        got = {}
        ch = self.conn.channel()
        ch.basic_qos(prefetch_count=4)
        ch.basic_consume(q, self.collector(got, "a"))
        self.publish(q, 12)
        acked = 0
        expected = 4
        while True:
            n = self.outstanding_after(got, expected, settle=0.15)["a"]
            self.assertEqual(n, expected, "unacked limit 4 broken (acked %d)" % acked)
            if n == 12:
                break
            ch.basic_ack(got["a"][acked][0].delivery_tag)
            acked += 1
            expected += 1
        self.assertEqual([int(x[2]) for x in got["a"]], list(range(12)))

    def test_unacked_never_exceeds_limit_while_not_acking(self):
        q = self.queue("qos-hold")
        ch = self.conn.channel()
        ch.basic_qos(prefetch_count=7)
        got = {}
        ch.basic_consume(q, self.collector(got, "a"))
        for rnd in range(3):
            self.publish(q, 10, start=rnd * 10)
            self.assertEqual(self.outstanding_after(got, 7, settle=0.3), {"a": 7})
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (23, 1))


class ChannelFlowTest(ConsumerTestBase):
    """RabbitMQ (3.3+) no longer implements channel.flow active=false: it
    closes the connection with 540 NOT_IMPLEMENTED.  active=true is answered
    with flow-ok and deliveries carry on."""

    def test_flow_active_false_is_not_implemented(self):
        raw = self.raw()
        raw.channel_open(1)
        raw.send(method_frame(1, CHANNEL_FLOW, enc_bits(False)))
        f = raw.expect_connection_close(NOT_IMPLEMENTED)
        self.assertEqual((f["class_id"], f["method_id"]), CHANNEL_FLOW)
        self.assertIn("active=false", f["reply_text"])

    def test_flow_active_true_is_acknowledged(self):
        q = self.queue("flow")
        raw = self.raw()
        raw.channel_open(1)
        raw_consume(raw, 1, q, tag="f", no_ack=True)
        raw.expect_method(BASIC_CONSUME_OK, 1)
        raw.send(method_frame(1, CHANNEL_FLOW, enc_bits(True)))
        f = raw.expect_method(CHANNEL_FLOW_OK, 1)
        self.assertEqual(f.payload[4:], enc_bits(True))
        raw.publish(1, b"still flowing", routing_key=q)
        f, body = raw_read_delivery(raw, 1)
        self.assertEqual(body, b"still flowing")


if __name__ == "__main__":
    main()
