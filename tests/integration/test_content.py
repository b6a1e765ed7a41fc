#!/usr/bin/python3
"""Message content: basic properties and header tables survive unchanged,
property bytes pass through byte-exact, empty and large bodies, frame
splitting, max_message_size and user_id validation."""

import datetime
import decimal
import os
import time

import pika

from harness import (
    BASIC_DELIVER, BASIC_GET_EMPTY, BASIC_GET_OK, CHANNEL_CLOSE,
    CHANNEL_CLOSE_OK, FRAME_BODY, FRAME_HEADER, PRECONDITION_FAILED, BrokerTestCase,
    T, assert_broker_alive, content_header_payload, enc_basic_properties, enc_bits,
    enc_short, enc_shortstr, frame, main, method_frame, raw_connect,
    wait_message_count,
)

ALL_PROPS = dict(
    content_type="application/x-warren-test",
    content_encoding="gzip",
    delivery_mode=2,
    priority=7,
    correlation_id="corr-42",
    reply_to="amq.gen-reply-here",
    expiration="60000",          # a TTL: keep it large
    message_id="msg-\u00e9-1",
    timestamp=1700000000,
    type="warren.test.type",
    user_id="guest",
    app_id="warren-it",
    cluster_id="cluster-x",
)

PIKA_HEADERS = {
    "str": "h\u00e9llo w\u00f6rld",
    "empty-str": "",
    "bytes": b"\x00\x01\xfe\xff",
    "int-small": 7,
    "int-zero": 0,
    "int-negative": -123456,
    "int-large": 2 ** 40 + 3,
    # (no large negative int: pika 1.2 decodes 'l' as unsigned; the raw
    # test covers it)
    "int32-max": 2 ** 31 - 1,
    "int32-min": -(2 ** 31),
    "bool-true": True,
    "bool-false": False,
    "decimal": decimal.Decimal("3.14159"),
    "decimal-int": decimal.Decimal("42"),
    "datetime": datetime.datetime(2024, 2, 29, 12, 34, 56),
    "nested": {"a": 1, "b": {"c": "deep", "d": [1, "two", None]}, "e": {}},
    "list": [1, "two", b"three", True, None, {"k": "v"}, [1, [2, [3]]]],
    "empty-list": [],
    "none": None,
}

# every field type of the RabbitMQ/0-9-1 errata table grammar, including
# the ones pika cannot produce (b B s u I i l L f x V T D A-of-F ...)
RAW_HEADERS = [
    ("b", T("b", -5)), ("B", T("B", 250)), ("s", T("s", -300)), ("u", T("u", 65000)),
    ("I", T("I", -70000)), ("i", T("i", 4000000000)), ("l", T("l", -2 ** 40)),
    ("L", T("L", 2 ** 63 + 5)), ("f", T("f", 1.5)), ("d", T("d", -2.25)),
    ("D", T("D", (2, 12345))), ("x", T("x", b"\x00\xff\x10")), ("V", T("V", None)),
    ("T", T("T", 1700000000)), ("t", T("t", True)), ("t0", T("t", False)),
    ("S", T("S", "h\u00e9llo")),
    ("A", T("A", [T("F", {"a": T("I", 1)}), T("F", {"b": T("S", "x")}), T("A", []),
                  T("b", 1), T("V", None)])),
    ("F", T("F", {"nested": T("F", {"deep": T("B", 1), "arr": T("A", [T("u", 2)])})})),
    ("dup-order-1", T("S", "first")), ("aaa", T("S", "keys are not sorted")),
]


def _as_decoded(v):
    """RAW_HEADERS as harness.Reader decodes them (longstr values as bytes)."""
    if isinstance(v, dict):
        return {k: _as_decoded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_as_decoded(x) for x in v]
    if v.type == "S" and isinstance(v.value, str):
        return T("S", v.value.encode("utf-8"))
    if v.type in "FA":
        return T(v.type, _as_decoded(v.value))
    return v


class ContentTest(BrokerTestCase):

    def setUp(self):
        self.conn = pika.BlockingConnection(self.broker.params())
        self.ch = self.conn.channel()
        self.q = self.ch.queue_declare(queue="", exclusive=True).method.queue

    def tearDown(self):
        try:
            if self.conn.is_open:
                self.conn.close()
        finally:
            assert_broker_alive(self.broker)

    def _get(self, q=None, timeout=30):
        q = q or self.q
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m, props, body = self.ch.basic_get(q, auto_ack=True)
            if m is not None:
                return m, props, body
            time.sleep(0.01)
        self.fail("no message arrived in %s" % q)

    def _consume_one(self, q):
        got = []
        tag = self.ch.basic_consume(q, lambda ch, m, p, b: got.append((m, p, b)), auto_ack=True)
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.1)
        self.ch.basic_cancel(tag)
        self.assertTrue(got, "consumer got nothing")
        return got[0]

    def test_all_basic_properties_reach_consumer(self):
        props = pika.BasicProperties(headers={"x-custom": "v"}, **ALL_PROPS)
        self.ch.basic_publish("", self.q, b"props", props)
        _m, got, body = self._consume_one(self.q)
        self.assertEqual(body, b"props")
        for name, value in ALL_PROPS.items():
            self.assertEqual(getattr(got, name), value, "property %s" % name)
        self.assertEqual(got.headers, {"x-custom": "v"})

    def test_no_properties_stay_absent(self):
        self.ch.basic_publish("", self.q, b"bare")
        _m, got, body = self._get()
        self.assertEqual(body, b"bare")
        for name in list(ALL_PROPS) + ["headers"]:
            self.assertIsNone(getattr(got, name), "property %s appeared from nowhere" % name)

    def test_header_table_all_pika_types(self):
        self.ch.basic_publish("", self.q, b"headers", pika.BasicProperties(headers=PIKA_HEADERS))
        _m, got, _b = self._consume_one(self.q)
        self.assertEqual(set(got.headers), set(PIKA_HEADERS))
        for k, v in PIKA_HEADERS.items():
            self.assertEqual(got.headers[k], v, "header %r" % k)
            self.assertIsInstance(got.headers[k], type(v), "type of header %r" % k)
            self.assertEqual(isinstance(got.headers[k], bool), isinstance(v, bool),
                             "bool/int confusion in header %r" % k)

    def test_user_id_mismatch_rejected(self):
        self.ch.basic_publish("", self.q, b"x", pika.BasicProperties(user_id="mallory"))
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.queue_declare(queue=self.q, passive=True)
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertTrue(cm.exception.reply_text.startswith("PRECONDITION_FAILED"),
                        cm.exception.reply_text)
        self.assertTrue(self.conn.is_open)
        ch = self.conn.channel()
        self.assertEqual(ch.queue_declare(queue=self.q, passive=True).method.message_count, 0,
                         "a message with a forged user_id was enqueued")

    def test_user_id_mismatch_raw_close_details(self):
        with raw_connect(self.broker) as c:
            c.channel_open(1)
            c.publish(1, b"x", routing_key=self.q, props={"user_id": "mallory"})
            f = c.expect_method(CHANNEL_CLOSE, channel=1)
            self.assertEqual(f["reply_code"], PRECONDITION_FAILED)
            self.assertEqual((f["class_id"], f["method_id"]), (60, 40))
            c.send(method_frame(1, CHANNEL_CLOSE_OK))
            c.connection_close()

    def test_raw_property_bytes_pass_through_exactly(self):
        props = dict(ALL_PROPS, headers=RAW_HEADERS)
        raw_props = enc_basic_properties(props)
        partial = enc_basic_properties({"headers": RAW_HEADERS[:5], "priority": 0,
                                        "timestamp": 0, "app_id": ""})
        with raw_connect(self.broker) as c:
            c.channel_open(1)
            q = c.queue_declare(1, exclusive=True)["queue"]
            c.publish(1, b"exact-1", routing_key=q, raw_props=raw_props)
            c.publish(1, b"exact-2", routing_key=q, raw_props=partial)
            c.basic_consume(1, q, tag="exact", no_ack=True)
            for want_props, want_body in ((raw_props, b"exact-1"), (partial, b"exact-2")):
                d = c.expect_method(BASIC_DELIVER, channel=1)
                self.assertEqual(d["consumer_tag"], "exact")
                h, body, _f = c.read_content(1)
                self.assertEqual(body, want_body)
                self.assertEqual(h["class_id"], 60)
                self.assertEqual(h["body_size"], len(want_body))
                self.assertEqual(h["raw_properties"].hex(), want_props.hex(),
                                 "property bytes changed in transit")
            c.connection_close()

    def test_raw_headers_decode_to_published_values(self):
        with raw_connect(self.broker) as c:
            c.channel_open(1)
            q = c.queue_declare(1, exclusive=True)["queue"]
            c.publish(1, b"typed", routing_key=q, props={"headers": RAW_HEADERS})
            c.basic_get(1, q)
            c.expect_method(BASIC_GET_OK, channel=1)
            h, body, _f = c.read_content(1)
            self.assertEqual(h["properties"]["headers"], _as_decoded(dict(RAW_HEADERS)))
            c.connection_close()

    def test_empty_body_has_no_body_frame(self):
        with raw_connect(self.broker) as c:
            c.channel_open(1)
            q = c.queue_declare(1, exclusive=True)["queue"]
            # empty message: header says 0 bytes, no body frame is sent
            c.publish(1, b"", routing_key=q, props={"content_type": "text/plain"})
            c.publish(1, b"marker", routing_key=q)
            c.basic_consume(1, q, no_ack=True)
            c.expect_method(BASIC_DELIVER, channel=1)
            hf = c.read_frame_skip_heartbeats()
            self.assertEqual(hf.type, FRAME_HEADER, "expected content header, got %r" % hf)
            self.assertEqual(content_header_payload(0, {"content_type": "text/plain"}), hf.payload)
            nxt = c.read_frame_skip_heartbeats()
            self.assertNotEqual(nxt.type, FRAME_BODY,
                                "server sent a body frame for an empty message")
            self.assertEqual(nxt.method, BASIC_DELIVER)
            _h, body, _f = c.read_content(1)
            self.assertEqual(body, b"marker")
            c.connection_close()

    def test_empty_body_pika(self):
        self.ch.basic_publish("", self.q, b"", pika.BasicProperties(message_id="empty"))
        _m, props, body = self._get()
        self.assertEqual(body, b"")
        self.assertEqual(props.message_id, "empty")

    def test_body_split_irregularly_by_client(self):
        body = os.urandom(20000)
        pieces = [body[:1], body[1:101], body[101:8000], body[8000:8001], body[8001:]]
        with raw_connect(self.broker) as c:
            c.channel_open(1)
            q = c.queue_declare(1, exclusive=True)["queue"]
            data = (method_frame(1, (60, 40), enc_short(0) + enc_shortstr("") +
                                 enc_shortstr(q) + enc_bits(False, False)) +
                    frame(FRAME_HEADER, 1, content_header_payload(len(body))) +
                    b"".join(frame(FRAME_BODY, 1, p) for p in pieces))
            c.send(data)
            c.basic_get(1, q)
            c.expect_method(BASIC_GET_OK, channel=1)
            _h, got, _f = c.read_content(1)
            self.assertEqual(got, body)
            c.connection_close()

    def test_bodies_around_frame_boundaries(self):
        fm = 4096
        with raw_connect(self.broker, frame_max=fm) as c:
            c.channel_open(1)
            q = c.queue_declare(1, exclusive=True)["queue"]
            sizes = [1, fm - 9, fm - 8, fm - 7, 2 * (fm - 8), 2 * (fm - 8) + 1, 3 * fm]
            bodies = [os.urandom(n) for n in sizes]
            for b in bodies:
                c.publish(1, b, routing_key=q)
            c.basic_consume(1, q, no_ack=True)
            for b in bodies:
                c.expect_method(BASIC_DELIVER, channel=1)
                _h, got, frames = c.read_content(1)
                self.assertEqual(got, b, "body of %d bytes corrupted" % len(b))
                for f in frames:
                    self.assertLessEqual(len(f.payload) + 8, fm)
                    self.assertGreater(len(f.payload), 0, "empty body frame")
            c.connection_close()


class LargeContentTest(BrokerTestCase):
    config = {"max_message_size": 134217728}

    def tearDown(self):
        assert_broker_alive(self.broker)

    def test_five_megabytes_split_to_frame_max(self):
        fm = 8192
        body = os.urandom(5 * 1024 * 1024)
        with raw_connect(self.broker, frame_max=fm, timeout=20) as c:
            c.channel_open(1)
            q = c.queue_declare(1, exclusive=True)["queue"]
            c.publish(1, body, routing_key=q, props={"message_id": "big"})
            c.basic_consume(1, q, no_ack=False)
            d = c.expect_method(BASIC_DELIVER, channel=1, timeout=20)
            h, got, frames = c.read_content(1, timeout=20)
            self.assertEqual(h["body_size"], len(body))
            self.assertEqual(h["properties"]["message_id"], "big")
            self.assertEqual(len(got), len(body))
            self.assertTrue(got == body, "5 MB body corrupted")
            self.assertGreaterEqual(len(frames), len(body) // (fm - 8))
            oversize = [len(f.payload) + 8 for f in frames if len(f.payload) + 8 > fm]
            self.assertFalse(oversize, "frames larger than frame_max %d: %r" % (fm, oversize[:5]))
            c.basic_ack(1, d["delivery_tag"])
            c.connection_close()

    def test_five_megabytes_pika(self):
        conn = pika.BlockingConnection(self.broker.params())
        try:
            ch = conn.channel()
            q = ch.queue_declare(queue="", exclusive=True).method.queue
            body = os.urandom(5 * 1024 * 1024)
            ch.basic_publish("", q, body)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                m, _p, got = ch.basic_get(q, auto_ack=True)
                if m:
                    break
                time.sleep(0.05)
            self.assertTrue(got == body, "5 MB body corrupted")
        finally:
            conn.close()


class MaxMessageSizeTest(BrokerTestCase):
    config = {"max_message_size": 1048576}

    def tearDown(self):
        assert_broker_alive(self.broker)

    def test_over_limit_closes_channel_406(self):
        conn = pika.BlockingConnection(self.broker.params())
        try:
            ch = conn.channel()
            q = ch.queue_declare(queue="", exclusive=True).method.queue
            ch.basic_publish("", q, b"x" * (1048576 + 1))
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.queue_declare(queue=q, passive=True)
            self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
            self.assertTrue(cm.exception.reply_text.startswith("PRECONDITION_FAILED"),
                            cm.exception.reply_text)
            self.assertTrue(conn.is_open, "the connection must survive a channel error")
            ch2 = conn.channel()
            self.assertEqual(ch2.queue_declare(queue=q, passive=True).method.message_count, 0)
        finally:
            conn.close()

    def test_exactly_at_limit_accepted(self):
        conn = pika.BlockingConnection(self.broker.params())
        try:
            ch = conn.channel()
            q = ch.queue_declare(queue="", exclusive=True).method.queue
            body = os.urandom(1048576)
            ch.basic_publish("", q, body)
            self.assertEqual(wait_message_count(ch, q, 1).message_count, 1)
            _m, _p, got = ch.basic_get(q, auto_ack=True)
            self.assertTrue(got == body)
        finally:
            conn.close()

    def test_over_limit_raw_close_details(self):
        with raw_connect(self.broker) as c:
            c.channel_open(1)
            c.channel_open(2)
            q = c.queue_declare(2, exclusive=True)["queue"]
            c.publish(1, b"y" * (1048576 + 100), routing_key=q)
            f = c.expect_method(CHANNEL_CLOSE, channel=1, timeout=10)
            self.assertEqual(f["reply_code"], PRECONDITION_FAILED)
            self.assertEqual((f["class_id"], f["method_id"]), (60, 40))
            c.send(method_frame(1, CHANNEL_CLOSE_OK))
            # channel 2 unaffected; nothing was enqueued
            c.basic_get(2, q)
            c.expect_method(BASIC_GET_EMPTY, channel=2)
            c.connection_close()


if __name__ == "__main__":
    main()
