#!/usr/bin/python3
"""Publisher confirms: confirm.select, exactly one ack (or nack) per publish
with tags in order and `multiple` batching, a confirmed message is in its
queue (counted at once, consumable, delivery_mode 2 kept), unroutable
messages confirmed (basic.return before the ack), nacks, and tx/confirm
exclusivity (406).

Warren keeps messages in memory only, so "confirmed persistent messages
survive a restart" cannot be tested yet; what is observable over AMQP is."""

import os
import time

import pika
import pika.exceptions

from harness import (PikaTestCase, BASIC_ACK, BASIC_RETURN, CHANNEL_CLOSE,
    CONFIRM_SELECT, CONFIRM_SELECT_OK, FRAME_METHOD, NO_ROUTE,
    PRECONDITION_FAILED, enc_bits, main, method_frame, raw_connect,
    wait_message_count)

BASIC_NACK = (60, 120)
TX_SELECT = (90, 10)
TX_SELECT_OK = (90, 11)


def uniq(stem):
    return "warren-it-cf-%s-%s" % (stem, os.urandom(4).hex())


class ConfirmTestBase(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.raws = []
        self.conn = self.connect()
        self.ch = self.conn.channel()

    def tearDown(self):
        for r in self.raws:
            r.close()
        super().tearDown()

    def raw(self, confirm_channels=(1,)):
        r = raw_connect(self.broker, timeout=30)
        self.raws.append(r)
        for ch in confirm_channels:
            r.channel_open(ch)
            r.send(method_frame(ch, CONFIRM_SELECT, enc_bits(False)))
            r.expect_method(CONFIRM_SELECT_OK, ch)
        return r

    def queue(self, stem, **kw):
        name = uniq(stem)
        self.ch.queue_declare(queue=name, **kw)
        self.to_delete.append(name)
        return name

    def read_confirms(self, raw, ch, n, timeout=30.0):
        """Read until publishes 1..n on channel ch are all confirmed.
        Returns the list of events in arrival order:
        ("ack"|"nack", tag, multiple) and ("return", reply_code, routing_key)."""
        deadline = time.monotonic() + timeout
        events = []
        outstanding = set(range(1, n + 1))
        while outstanding:
            f = raw.read_frame_skip_heartbeats(max(0.01, deadline - time.monotonic()))
            self.assertEqual(f.channel, ch, "frame on unexpected channel: %r" % f)
            self.assertEqual(f.type, FRAME_METHOD, "unexpected frame %r" % f)
            if f.method == BASIC_RETURN:
                raw.read_content(ch)
                events.append(("return", f["reply_code"], f["routing_key"]))
                continue
            if f.method == BASIC_ACK:
                kind, tag, multiple = "ack", f["delivery_tag"], f["multiple"]
            elif f.method == BASIC_NACK:
                tag, bits = f.payload[4:12], f.payload[12]
                kind, tag, multiple = "nack", int.from_bytes(tag, "big"), bool(bits & 1)
            else:
                self.fail("unexpected method %r" % f)
            events.append((kind, tag, multiple))
            outstanding -= {t for t in outstanding if t <= tag} if multiple else {tag}
        return events

    def assert_exact_cover(self, events, n, ordered=False):
        """Every tag 1..n confirmed exactly once.  A multiple=true confirm for
        tag T covers every still-unconfirmed tag <= T; T itself must still be
        unconfirmed.  RabbitMQ does not promise order across routing outcomes
        (an unroutable message is confirmed at once, a routed one when its
        queue has it), so order is only checked when `ordered`."""
        outstanding = set(range(1, n + 1))
        prev = 0
        for e in events:
            if e[0] == "return":
                continue
            kind, tag, multiple = e
            self.assertIn(tag, outstanding, "tag %d confirmed twice or never published: %r"
                          % (tag, events))
            if ordered:
                self.assertGreater(tag, prev, "confirms out of order: %r" % (events,))
                if not multiple:
                    self.assertEqual(tag, prev + 1,
                                     "single confirm for %d leaves %d..%d unconfirmed"
                                     % (tag, prev + 1, tag - 1))
            prev = tag
            covered = {t for t in outstanding if t <= tag} if multiple else {tag}
            outstanding -= covered
        self.assertEqual(outstanding, set(), "never confirmed: %r" % sorted(outstanding))

    def confirm_index(self, events):
        """{tag: index in events of the confirm that covered it}"""
        outstanding = set(range(1, max([e[1] for e in events if e[0] != "return"] + [0]) + 1))
        where = {}
        for i, e in enumerate(events):
            if e[0] == "return":
                continue
            covered = {t for t in outstanding if t <= e[1]} if e[2] else {e[1]}
            outstanding -= covered
            where.update((t, i) for t in covered)
        return where

    def split_acks(self, events):
        """(acked tags, nacked tags) from a valid confirm stream."""
        outstanding = set(range(1, max([e[1] for e in events if e[0] != "return"] + [0]) + 1))
        acked, nacked = set(), set()
        for e in events:
            if e[0] == "return":
                continue
            kind, tag, multiple = e
            covered = {t for t in outstanding if t <= tag} if multiple else {tag}
            outstanding -= covered
            (acked if kind == "ack" else nacked).update(covered)
        return acked, nacked


class ConfirmTest(ConfirmTestBase):

    def test_confirm_select_is_idempotent(self):
        raw = self.raw()
        raw.send(method_frame(1, CONFIRM_SELECT, enc_bits(False)))
        raw.expect_method(CONFIRM_SELECT_OK, 1)
        q = self.queue("idem")
        raw.publish(1, b"x", routing_key=q)
        # the second select did not restart the numbering at 0 or skip a tag
        self.assertEqual(self.read_confirms(raw, 1, 1), [("ack", 1, False)])
        self.assertEqual(self.ch.queue_declare(q, passive=True).method.message_count, 1)

    def test_confirm_select_nowait(self):
        raw = self.raw(confirm_channels=())
        raw.channel_open(1)
        raw.send(method_frame(1, CONFIRM_SELECT, enc_bits(True)))
        q = self.queue("nowait")
        raw.publish(1, b"x", routing_key=q)
        # no select-ok (read_confirms fails on any other method), just the ack
        self.assertEqual(self.read_confirms(raw, 1, 1), [("ack", 1, False)])
        self.assertEqual(self.ch.queue_declare(q, passive=True).method.message_count, 1)

    def test_thousand_pipelined_publishes(self):
        n = 1000
        q = self.queue("1000")
        raw = self.raw()
        raw.send(b"".join(raw.publish_frames(1, b"msg-%d" % i, routing_key=q)
                          for i in range(n)))
        events = self.read_confirms(raw, 1, n)
        self.assertTrue(all(e[0] == "ack" for e in events), events[:10])
        # all routed to one queue: RabbitMQ confirms them in order
        self.assert_exact_cover(events, n, ordered=True)
        self.assertTrue(any(e[2] for e in events),
                        "no ack used multiple=true for %d pipelined publishes" % n)
        # nothing more arrives
        with self.assertRaises(OSError):
            raw.read_frame_skip_heartbeats(0.3)
        self.assertEqual(wait_message_count(self.ch, q, n).message_count, n)

    def test_pika_select_connection_confirms(self):
        n = 1000
        q = self.queue("select")
        state = {"acks": [], "nacks": [], "error": None}

        def on_open(conn):
            conn.channel(on_open_callback=on_channel)

        def on_channel(ch):
            state["ch"] = ch
            ch.confirm_delivery(ack_nack_callback=on_confirm, callback=on_select_ok)

        def on_select_ok(_frame):
            ch = state["ch"]
            for i in range(n):
                ch.basic_publish(exchange="", routing_key=q, body=b"s%d" % i)

        def on_confirm(frame):
            m = frame.method
            (state["acks"] if isinstance(m, pika.spec.Basic.Ack) else state["nacks"]).append(
                (m.delivery_tag, m.multiple))
            if m.delivery_tag == n:
                state["conn"].close()

        def on_fail(conn, err):
            state["error"] = err
            conn.ioloop.stop()

        def on_closed(conn, reason):
            conn.ioloop.stop()

        conn = pika.SelectConnection(self.broker.params(), on_open_callback=on_open,
                                     on_open_error_callback=on_fail,
                                     on_close_callback=on_closed)
        state["conn"] = conn
        conn.ioloop.call_later(45, lambda: (state.update(error="timeout"), conn.ioloop.stop()))
        conn.ioloop.start()
        self.assertIsNone(state["error"])
        self.assertEqual(state["nacks"], [])
        self.assert_exact_cover([("ack", t, m) for t, m in state["acks"]], n, ordered=True)
        self.assertEqual(wait_message_count(self.ch, q, n).message_count, n)

    def test_blocking_connection_confirms(self):
        q = self.queue("blocking")
        ch = self.conn.channel()
        ch.confirm_delivery()
        for i in range(50):
            ch.basic_publish(exchange="", routing_key=q, body=b"b%d" % i)
        # mandatory + unroutable: pika raises UnroutableError after the return
        with self.assertRaises(pika.exceptions.UnroutableError):
            ch.basic_publish(exchange="", routing_key=uniq("nowhere"), body=b"u",
                             mandatory=True)
        # non-mandatory unroutable: confirmed silently
        ch.basic_publish(exchange="", routing_key=uniq("nowhere"), body=b"u")
        self.assertEqual(wait_message_count(self.ch, q, 50).message_count, 50)

    def test_unroutable_messages_are_acked(self):
        raw = self.raw()
        for i in range(5):
            raw.publish(1, b"x", routing_key=uniq("nowhere"))
        events = self.read_confirms(raw, 1, 5)
        self.assert_exact_cover(events, 5, ordered=True)
        # acked (not nacked), and not returned: they were not mandatory
        self.assertEqual(self.split_acks(events), ({1, 2, 3, 4, 5}, set()))
        self.assertEqual([e for e in events if e[0] == "return"], [])

    def test_mandatory_unroutable_returned_before_ack(self):
        q = self.queue("mixed")
        raw = self.raw()
        # 1 routed, 2 returned, 3 routed, 4 returned
        missing = uniq("nowhere")
        raw.publish(1, b"1", routing_key=q, mandatory=True)
        raw.publish(1, b"2", routing_key=missing, mandatory=True)
        raw.publish(1, b"3", routing_key=q, mandatory=True)
        raw.publish(1, b"4", routing_key=missing, mandatory=True)
        events = self.read_confirms(raw, 1, 4)
        self.assert_exact_cover(events, 4)
        returns = [i for i, e in enumerate(events) if e[0] == "return"]
        self.assertEqual(len(returns), 2, events)
        for i in returns:
            self.assertEqual(events[i][1:], (NO_ROUTE, missing))
        # each return precedes the confirm that covers its publish (tags 2 and 4)
        where = self.confirm_index(events)
        self.assertLess(returns[0], where[2], events)
        self.assertLess(returns[1], where[4], events)
        self.assertEqual(self.split_acks(events), ({1, 2, 3, 4}, set()))
        # the routed two are in the queue, the returned two are not
        self.assertEqual(self.ch.queue_declare(q, passive=True).method.message_count, 2)
        self.assertEqual([self.ch.basic_get(q, auto_ack=True)[2] for _ in range(2)],
                         [b"1", b"3"])

    def test_one_confirm_for_many_queues(self):
        x = uniq("fanout")
        self.ch.exchange_declare(x, "fanout", auto_delete=False)
        self.exchanges_to_delete.append(x)
        qs = [self.queue("fan%d" % i) for i in range(3)]
        for q in qs:
            self.ch.queue_bind(q, x)
        raw = self.raw()
        for i in range(10):
            raw.publish(1, b"f%d" % i, exchange=x)
        self.assert_exact_cover(self.read_confirms(raw, 1, 10), 10)
        with self.assertRaises(OSError):
            raw.read_frame_skip_heartbeats(0.3)
        for q in qs:
            self.assertEqual(wait_message_count(self.ch, q, 10).message_count, 10)

    def test_confirmed_persistent_messages_are_in_the_durable_queue(self):
        # What "confirmed" promises that AMQP can see today (no restart
        # test: Warren has no persistence yet): each ack comes in order and
        # only once the durable queue holds the message, and the message
        # keeps delivery_mode 2 and can be consumed.
        n = 20
        q = self.queue("durable", durable=True)
        other = self.conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            other.queue_declare(q, durable=False)
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED,
                         "the queue is not durable")
        raw = self.raw()
        raw.send(b"".join(raw.publish_frames(
            1, b"p%d" % i, routing_key=q,
            props={"delivery_mode": 2, "message_id": "id-%d" % i})
            for i in range(n)))
        events = self.read_confirms(raw, 1, n)
        self.assert_exact_cover(events, n, ordered=True)
        self.assertEqual(self.split_acks(events), (set(range(1, n + 1)), set()))
        # all confirmed: all in the queue now, without waiting
        ok = self.ch.queue_declare(q, passive=True).method
        self.assertEqual(ok.message_count, n, "confirmed messages missing from the queue")
        for i in range(n):
            m, props, body = self.ch.basic_get(q, auto_ack=False)
            self.assertIsNotNone(m, "confirmed message %d cannot be fetched" % i)
            self.assertEqual((body, props.delivery_mode, props.message_id, m.redelivered),
                             (b"p%d" % i, 2, "id-%d" % i, False))
        self.ch.basic_ack(m.delivery_tag, multiple=True)
        self.assertEqual(self.ch.queue_declare(q, passive=True).method.message_count, 0)

    def test_tags_are_per_channel(self):
        q = self.queue("perch")
        raw = self.raw(confirm_channels=(1, 2))
        raw.publish(1, b"a", routing_key=q)
        raw.publish(1, b"b", routing_key=q)
        raw.publish(2, b"c", routing_key=q)
        got = {1: 0, 2: 0}
        deadline = time.monotonic() + 5
        while got != {1: 2, 2: 1}:
            f = raw.read_frame_skip_heartbeats(max(0.01, deadline - time.monotonic()))
            self.assertEqual(f.method, BASIC_ACK, f)
            self.assertGreater(f["delivery_tag"], got[f.channel])
            got[f.channel] = f["delivery_tag"]
        self.assertEqual(got, {1: 2, 2: 1})

    def test_nack_when_queue_rejects_publish(self):
        # x-overflow=reject-publish makes RabbitMQ nack what the full queue refuses
        q = self.queue("reject-publish", arguments={"x-max-length": 2,
                                                      "x-overflow": "reject-publish"})
        raw = self.raw()
        for i in range(4):
            raw.publish(1, b"r%d" % i, routing_key=q)
        events = self.read_confirms(raw, 1, 4)
        self.assert_exact_cover(events, 4)
        self.assertEqual(self.split_acks(events), ({1, 2}, {3, 4}))
        self.assertEqual(self.ch.queue_declare(queue=q, passive=True).method.message_count, 2)


class ConfirmTxTest(ConfirmTestBase):

    def test_tx_select_after_confirm_select_406(self):
        ch = self.conn.channel()
        ch.confirm_delivery()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.tx_select()
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("confirm", cm.exception.reply_text)
        # a channel error: the connection still serves
        self.conn.channel().queue_declare("", exclusive=True)

    def test_confirm_select_after_tx_select_406(self):
        ch = self.conn.channel()
        ch.tx_select()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.confirm_delivery()
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("tx", cm.exception.reply_text)
        # a channel error: the connection still serves
        self.conn.channel().queue_declare("", exclusive=True)

    def test_raw_tx_after_confirm(self):
        raw = self.raw()
        raw.send(method_frame(1, TX_SELECT))
        f = raw.read_frame_skip_heartbeats()
        self.assertEqual(f.method, CHANNEL_CLOSE, f)
        self.assertEqual((f["reply_code"], f["class_id"], f["method_id"]),
                         (PRECONDITION_FAILED,) + TX_SELECT)


if __name__ == "__main__":
    main()
