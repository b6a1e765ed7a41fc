#!/usr/bin/python3
"""Exchanges, bindings and routing, as RabbitMQ does them.

Covers: the default exchange and its 403s; the predeclared amq.* exchanges;
exchange.declare (passive, durable, auto-delete, internal, arguments,
inequivalent redeclares, reserved names, unknown types); exchange.delete
(if-unused, bindings removed); queue.bind/unbind and exchange.bind/unbind
with binding arguments as part of a binding's identity; direct, fanout,
topic and headers routing; exchange-to-exchange routing with cycles and
diamonds delivering one copy per queue; alternate exchanges; mandatory
returns; immediate=true; publishing to missing and internal exchanges.

Every expectation was checked against RabbitMQ 3.10 (run this file with
WARREN_TEST_EXTERNAL=127.0.0.1:PORT against a RabbitMQ node).

Counting deliveries: a test publishes, then publishes a sentinel to the
same queue through the default exchange on the same channel; the queue is
FIFO and a channel's publishes are routed in order, so everything the test
message was routed to the queue is in front of the sentinel.
"""

import os
import time

import pika
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from harness import (
    ACCESS_REFUSED, BASIC_PUBLISH, BASIC_RETURN, COMMAND_INVALID,
    FRAME_BODY, FRAME_HEADER, NO_ROUTE, NOT_FOUND, NOT_IMPLEMENTED,
    PRECONDITION_FAILED, BrokerTestCase, T, assert_broker_alive,
    content_header_payload, enc_bits, enc_short,
    enc_shortstr, enc_table, frame, main, method_frame, raw_connect,
    wait_until,
)

SENTINEL = b"--sentinel--"

EXCHANGE_DECLARE = (40, 10)
EXCHANGE_DECLARE_OK = (40, 11)
QUEUE_BIND = (50, 20)
QUEUE_BIND_OK = (50, 21)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)


class RoutingBase(BrokerTestCase):
    """One connection + channel per test; unique names; cleanup."""

    def setUp(self):
        self.tag = os.urandom(4).hex()
        self.exchanges = []
        self.queues = []
        self.raws = []
        self.conn = pika.BlockingConnection(self.broker.params())
        self.ch = self.conn.channel()
        self.returns = []
        self.ch.add_on_return_callback(self._on_return)

    def tearDown(self):
        for r in self.raws:
            r.close()
        try:
            if self.conn.is_open:
                self.conn.close()
        except Exception:
            pass
        conn = pika.BlockingConnection(self.broker.params())
        try:
            for x in self.exchanges:
                ch = conn.channel()
                try:
                    ch.exchange_delete(x)
                    ch.close()
                except Exception:
                    pass
            for q in self.queues:
                ch = conn.channel()
                try:
                    ch.queue_delete(q)
                    ch.close()
                except Exception:
                    pass
        finally:
            conn.close()
        assert_broker_alive(self.broker)

    # ---- names and declarations ------------------------------------------
    def name(self, stem):
        return "rt-%s-%s" % (stem, self.tag)

    def exchange(self, stem, type_="direct", **kw):
        x = self.name(stem)
        self.ch.exchange_declare(x, exchange_type=type_, **kw)
        self.exchanges.append(x)
        return x

    def queue(self, stem=None):
        """A named, non-exclusive queue (raw connections may use it)."""
        q = self.name(stem or "q%d" % len(self.queues))
        self.ch.queue_declare(q)
        self.queues.append(q)
        return q

    def reopen(self):
        """A fresh channel after a channel error."""
        self.ch = self.conn.channel()
        self.ch.add_on_return_callback(self._on_return)
        return self.ch

    def reconnect(self):
        """A fresh connection after a connection error."""
        try:
            if self.conn.is_open:
                self.conn.close()
        except Exception:
            pass
        self.conn = pika.BlockingConnection(self.broker.params())
        return self.reopen()

    def raw(self):
        c = raw_connect(self.broker)
        self.raws.append(c)
        c.channel_open(1)
        return c

    # ---- errors ----------------------------------------------------------------
    def channel_error(self, code, fn, *a, **kw):
        """fn must close the channel with `code`; reopens self.ch."""
        with self.assertRaises(ChannelClosedByBroker) as cm:
            fn(*a, **kw)
            # asynchronous methods (publish): a round trip surfaces the error
            self.ch.basic_qos(prefetch_count=0)
        self.assertEqual(cm.exception.reply_code, code, cm.exception.reply_text)
        self.reopen()
        return cm.exception

    def connection_error(self, code, fn, *a, **kw):
        with self.assertRaises(ConnectionClosedByBroker) as cm:
            fn(*a, **kw)
            self.ch.basic_qos(prefetch_count=0)
        self.assertEqual(cm.exception.reply_code, code, cm.exception.reply_text)
        self.reconnect()
        return cm.exception

    def exists(self, x):
        """Passive declare: True, or False on 404 (channel reopened)."""
        try:
            self.ch.exchange_declare(x, passive=True)
            return True
        except ChannelClosedByBroker as e:
            self.assertEqual(e.reply_code, NOT_FOUND, e.reply_text)
            self.reopen()
            return False

    # ---- publishing and counting ----------------------------------------------
    def _on_return(self, ch, method, props, body):
        self.returns.append((method, props, body))

    def publish(self, x, key, body=b"m", props=None, mandatory=False):
        self.ch.basic_publish(x, key, body, properties=props, mandatory=mandatory)

    def drain(self, q, timeout=30.0, ch=None):
        """Bodies in q in front of a freshly published sentinel."""
        ch = ch or self.ch
        ch.basic_publish("", q, SENTINEL)
        return self._drain_until_sentinel(q, timeout, ch)

    def _drain_until_sentinel(self, q, timeout=30.0, ch=None):
        ch = ch or self.ch
        got = []
        deadline = time.monotonic() + timeout
        while True:
            m, _p, body = ch.basic_get(q, auto_ack=True)
            if m is None:
                if time.monotonic() > deadline:
                    self.fail("sentinel never reached %s (got %r)" % (q, got))
                time.sleep(0.01)
                continue
            if body == SENTINEL:
                return got
            got.append(body)

    def deliveries(self, x, key, queues, body=b"m", props=None):
        """Publish once; the number of copies each queue received."""
        self.publish(x, key, body, props)
        return [self.drain(q).count(body) for q in queues]

    def wait_returns(self, n, timeout=30.0):
        """The returns once n have arrived, plus any that the broker sent
        before answering a later round trip on the channel: a return is sent
        while the publish is routed, so a duplicate would be in front of the
        qos-ok."""
        deadline = time.monotonic() + timeout
        while len(self.returns) < n and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.05)
        if self.ch.is_open:
            self.ch.basic_qos(prefetch_count=0)
            self.conn.process_data_events(time_limit=0)
        return self.returns

    def assert_returned_once(self, x, key, body):
        """Exactly one basic.return 312 NO_ROUTE of (x, key, body)."""
        r = self.wait_returns(1)
        self.assertEqual([(m.reply_code, m.reply_text, m.exchange, m.routing_key, b)
                          for m, _p, b in r],
                         [(NO_ROUTE, "NO_ROUTE", x, key, body)])

    def no_returns(self):
        """After a round trip, nothing was returned."""
        self.ch.basic_qos(prefetch_count=0)
        self.conn.process_data_events(time_limit=0.2)
        return self.returns == []


# ===========================================================================
class DefaultExchangeTest(RoutingBase):

    def test_routes_by_queue_name(self):
        q1, q2 = self.queue("a"), self.queue("b")
        self.assertEqual(self.deliveries("", q1, [q1, q2]), [1, 0])

    def test_unknown_queue_name_is_dropped(self):
        q = self.queue()
        self.publish("", self.name("nosuchqueue"), b"lost")
        self.assertEqual(self.drain(q), [])
        self.assertTrue(self.ch.is_open)

    def test_declare_default_is_refused(self):
        self.channel_error(ACCESS_REFUSED, self.ch.exchange_declare, "",
                           exchange_type="direct")

    def test_passive_declare_default_is_refused(self):
        self.channel_error(ACCESS_REFUSED, self.ch.exchange_declare, "",
                           passive=True)

    def test_delete_default_is_refused(self):
        self.channel_error(ACCESS_REFUSED, self.ch.exchange_delete, "")

    def test_bind_to_default_is_refused(self):
        q = self.queue()
        self.channel_error(ACCESS_REFUSED, self.ch.queue_bind, q, "", q)

    def test_unbind_from_default_is_refused(self):
        q = self.queue()
        self.channel_error(ACCESS_REFUSED, self.ch.queue_unbind, q, "", q)

    def test_exchange_bind_with_default_is_refused(self):
        x = self.exchange("x")
        self.channel_error(ACCESS_REFUSED, self.ch.exchange_bind, x, "", "k")
        self.channel_error(ACCESS_REFUSED, self.ch.exchange_bind, "", x, "k")
        self.channel_error(ACCESS_REFUSED, self.ch.exchange_unbind, x, "", "k")


# ===========================================================================
class PredeclaredTest(RoutingBase):

    PREDECLARED = [("amq.direct", "direct"), ("amq.fanout", "fanout"),
                   ("amq.topic", "topic"), ("amq.headers", "headers"),
                   ("amq.match", "headers")]

    def test_predeclared_exist(self):
        for x, _t in self.PREDECLARED:
            self.assertTrue(self.exists(x), x)

    def test_predeclared_types_and_durability(self):
        # an equivalent redeclare succeeds: they are durable, of these types
        for x, t in self.PREDECLARED:
            self.ch.exchange_declare(x, exchange_type=t, durable=True)
        for x, t in self.PREDECLARED:
            other = "fanout" if t != "fanout" else "direct"
            self.channel_error(PRECONDITION_FAILED, self.ch.exchange_declare,
                               x, exchange_type=other, durable=True)
            self.channel_error(PRECONDITION_FAILED, self.ch.exchange_declare,
                               x, exchange_type=t, durable=False)

    def test_predeclared_cannot_be_deleted(self):
        self.channel_error(ACCESS_REFUSED, self.ch.exchange_delete, "amq.direct")
        self.assertTrue(self.exists("amq.direct"))
        # any amq.* name, even one that does not exist
        self.channel_error(ACCESS_REFUSED, self.ch.exchange_delete,
                           "amq.rt-%s" % self.tag)

    def test_amq_rabbitmq_trace_exists(self):
        # RabbitMQ predeclares amq.rabbitmq.trace: topic, durable, internal
        x = "amq.rabbitmq.trace"
        self.assertTrue(self.exists(x))
        self.ch.exchange_declare(x, exchange_type="topic", durable=True, internal=True)
        self.channel_error(PRECONDITION_FAILED, self.ch.exchange_declare, x,
                           exchange_type="topic", durable=True)
        self.channel_error(ACCESS_REFUSED, self.publish, x, "k", b"m")

    def test_new_amq_names_are_refused(self):
        for x in ("amq.foo", "amq.", "amq.direct.x"):
            self.channel_error(ACCESS_REFUSED, self.ch.exchange_declare, x,
                               exchange_type="direct")
            self.assertFalse(self.exists(x))

    def test_amq_prefix_is_case_sensitive(self):
        x = "AMQ.rt-%s" % self.tag
        self.ch.exchange_declare(x, exchange_type="direct")
        self.exchanges.append(x)
        self.assertTrue(self.exists(x))

    def test_amq_direct_routes(self):
        q = self.queue()
        self.ch.queue_bind(q, "amq.direct", q)
        self.assertEqual(self.deliveries("amq.direct", q, [q]), [1])
        self.assertEqual(self.deliveries("amq.direct", q + ".x", [q]), [0])
        self.ch.queue_unbind(q, "amq.direct", q)

    def test_amq_fanout_and_topic_route(self):
        q = self.queue()
        self.ch.queue_bind(q, "amq.fanout", "ignored")
        self.assertEqual(self.deliveries("amq.fanout", "whatever", [q]), [1])
        self.ch.queue_unbind(q, "amq.fanout", "ignored")
        self.ch.queue_bind(q, "amq.topic", "%s.#" % self.tag)
        self.assertEqual(self.deliveries("amq.topic", "%s.a.b" % self.tag, [q]), [1])
        self.assertEqual(self.deliveries("amq.topic", "x.%s" % self.tag, [q]), [0])
        self.ch.queue_unbind(q, "amq.topic", "%s.#" % self.tag)

    def test_amq_match_and_amq_headers_are_headers_exchanges(self):
        for x in ("amq.match", "amq.headers"):
            q = self.queue("hq-" + x)
            args = {"x-match": "all", "rt-tag": self.tag}
            self.ch.queue_bind(q, x, "", arguments=args)
            hit = pika.BasicProperties(headers={"rt-tag": self.tag, "z": 1})
            miss = pika.BasicProperties(headers={"rt-tag": "other"})
            self.assertEqual(self.deliveries(x, "any-key", [q], props=hit), [1], x)
            self.assertEqual(self.deliveries(x, "any-key", [q], props=miss), [0], x)
            # the routing key plays no part
            self.assertEqual(self.deliveries(x, "", [q], props=hit), [1], x)
            self.ch.queue_unbind(q, x, "", arguments=args)


# ===========================================================================
class DeclareTest(RoutingBase):

    def test_declare_each_type(self):
        for t in ("direct", "fanout", "topic", "headers"):
            x = self.exchange("t-" + t, t)
            self.assertTrue(self.exists(x))
            # equivalent redeclare
            self.ch.exchange_declare(x, exchange_type=t)

    def test_passive_missing_is_404(self):
        self.channel_error(NOT_FOUND, self.ch.exchange_declare,
                           self.name("missing"), passive=True)

    def test_passive_ignores_other_fields(self):
        x = self.exchange("p", "fanout", durable=False)
        self.ch.exchange_declare(x, exchange_type="topic", passive=True,
                                 durable=True, auto_delete=True, internal=True)
        self.assertTrue(self.exists(x))

    def test_inequivalent_type(self):
        x = self.exchange("it", "direct")
        e = self.channel_error(PRECONDITION_FAILED, self.ch.exchange_declare,
                               x, exchange_type="fanout")
        self.assertIn("type", e.reply_text)

    def test_inequivalent_durable(self):
        x = self.exchange("id", "direct", durable=False)
        e = self.channel_error(PRECONDITION_FAILED, self.ch.exchange_declare,
                               x, exchange_type="direct", durable=True)
        self.assertIn("durable", e.reply_text)

    def test_inequivalent_auto_delete(self):
        x = self.exchange("ia", "direct")
        e = self.channel_error(PRECONDITION_FAILED, self.ch.exchange_declare,
                               x, exchange_type="direct", auto_delete=True)
        self.assertIn("auto_delete", e.reply_text)

    def test_inequivalent_internal(self):
        x = self.exchange("ii", "direct")
        e = self.channel_error(PRECONDITION_FAILED, self.ch.exchange_declare,
                               x, exchange_type="direct", internal=True)
        self.assertIn("internal", e.reply_text)

    def test_inequivalent_alternate_exchange(self):
        x = self.exchange("iae", "direct", arguments={"alternate-exchange": "ae1"})
        for args in ({"alternate-exchange": "ae2"}, {}, None):
            self.channel_error(PRECONDITION_FAILED, self.ch.exchange_declare,
                               x, exchange_type="direct", arguments=args)
        self.ch.exchange_declare(x, exchange_type="direct",
                                 arguments={"alternate-exchange": "ae1"})
        y = self.exchange("iae2", "direct")
        self.channel_error(PRECONDITION_FAILED, self.ch.exchange_declare,
                           y, exchange_type="direct",
                           arguments={"alternate-exchange": "ae1"})

    def test_other_arguments_are_not_compared(self):
        # RabbitMQ compares only alternate-exchange on redeclare.
        x = self.exchange("oa", "direct", arguments={"foo": "bar"})
        self.ch.exchange_declare(x, exchange_type="direct", arguments={"foo": "baz"})
        self.ch.exchange_declare(x, exchange_type="direct")
        self.ch.exchange_declare(x, exchange_type="direct",
                                 arguments={"foo": "bar", "n": 1})
        self.assertTrue(self.exists(x))

    def test_alternate_exchange_must_be_a_string(self):
        x = self.name("aeint")
        self.channel_error(PRECONDITION_FAILED, self.ch.exchange_declare, x,
                           exchange_type="direct",
                           arguments={"alternate-exchange": 5})
        self.assertFalse(self.exists(x))

    def test_unknown_type_is_503_connection_error(self):
        x = self.name("ut")
        self.connection_error(COMMAND_INVALID, self.ch.exchange_declare, x,
                              exchange_type="no-such-type")
        self.assertFalse(self.exists(x))

    def test_unknown_type_checked_before_default_name(self):
        # RabbitMQ validates the type before refusing the default exchange
        self.connection_error(COMMAND_INVALID, self.ch.exchange_declare, "",
                              exchange_type="no-such-type")

    def test_unknown_type_on_existing_exchange_is_503(self):
        x = self.exchange("ut2", "direct")
        self.connection_error(COMMAND_INVALID, self.ch.exchange_declare, x,
                              exchange_type="bogus")
        self.assertTrue(self.exists(x))

    def test_unknown_type_with_amq_name_is_503(self):
        self.connection_error(COMMAND_INVALID, self.ch.exchange_declare,
                              "amq.rt-%s" % self.tag, exchange_type="bogus")

    def test_internal_publish_is_refused(self):
        x = self.exchange("int", "fanout", internal=True)
        self.channel_error(ACCESS_REFUSED, self.publish, x, "k", b"m")
        self.assertTrue(self.exists(x))

    def test_internal_exchange_reached_through_binding(self):
        src = self.exchange("int-src", "fanout")
        x = self.exchange("int-dst", "fanout", internal=True)
        q = self.queue()
        self.ch.queue_bind(q, x, "")
        self.ch.exchange_bind(x, src, "")
        self.assertEqual(self.deliveries(src, "k", [q]), [1])

    def test_internal_exchange_as_alternate(self):
        ae = self.exchange("int-ae", "fanout", internal=True)
        x = self.exchange("int-x", "direct", arguments={"alternate-exchange": ae})
        q = self.queue()
        self.ch.queue_bind(q, ae, "")
        self.assertEqual(self.deliveries(x, "nomatch", [q]), [1])

    def test_publish_to_missing_exchange_is_404(self):
        self.channel_error(NOT_FOUND, self.publish, self.name("nox"), "k", b"m")
        # the connection survives a channel error
        q = self.queue()
        self.assertEqual(self.deliveries("", q, [q]), [1])

    def test_publish_to_missing_exchange_with_mandatory_is_404(self):
        self.channel_error(NOT_FOUND, self.publish, self.name("nox"), "k",
                           b"m", None, True)
        self.assertEqual(self.returns, [])


# ===========================================================================
class ErrorTextTest(RoutingBase):
    """Reply texts are visible to clients: RabbitMQ's, word for word."""

    def text(self, code, fn, *a, **kw):
        return self.channel_error(code, fn, *a, **kw).reply_text

    def test_not_found_texts(self):
        x, q = self.name("nox"), self.name("noq")
        want_x = "NOT_FOUND - no exchange '%s' in vhost '/'" % x
        self.assertEqual(self.text(NOT_FOUND, self.publish, x, "k"), want_x)
        self.assertEqual(self.text(NOT_FOUND, self.ch.exchange_declare, x,
                                   passive=True), want_x)
        self.assertEqual(self.text(NOT_FOUND, self.ch.queue_bind, q, x, "k"), want_x)
        y = self.exchange("y")
        self.assertEqual(self.text(NOT_FOUND, self.ch.queue_bind, q, y, "k"),
                         "NOT_FOUND - no queue '%s' in vhost '/'" % q)
        self.assertEqual(self.text(NOT_FOUND, self.ch.exchange_bind, x, y, "k"), want_x)

    def test_access_refused_texts(self):
        self.assertEqual(self.text(ACCESS_REFUSED, self.ch.exchange_declare, ""),
                         "ACCESS_REFUSED - operation not permitted on the default exchange")
        self.assertEqual(self.text(ACCESS_REFUSED, self.ch.exchange_declare, "amq.foo"),
                         "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved "
                         "prefix 'amq.*'")
        self.assertEqual(self.text(ACCESS_REFUSED, self.ch.exchange_delete, "amq.direct"),
                         "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in "
                         "vhost '/' not allowed")
        x = self.exchange("int", "fanout", internal=True)
        self.assertEqual(self.text(ACCESS_REFUSED, self.publish, x, "k"),
                         "ACCESS_REFUSED - cannot publish to internal exchange '%s' in "
                         "vhost '/'" % x)

    def test_precondition_failed_texts(self):
        x = self.exchange("pf", "direct")
        q = self.queue()
        self.ch.queue_bind(q, x, "k")
        self.assertEqual(self.text(PRECONDITION_FAILED, self.ch.exchange_delete, x,
                                   if_unused=True),
                         "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use" % x)
        pre = "PRECONDITION_FAILED - inequivalent arg '%s' for exchange '" + x + \
            "' in vhost '/': received '%s' but current is '%s'"
        self.assertEqual(self.text(PRECONDITION_FAILED, self.ch.exchange_declare, x,
                                   "fanout"), pre % ("type", "fanout", "direct"))
        self.assertEqual(self.text(PRECONDITION_FAILED, self.ch.exchange_declare, x,
                                   "direct", durable=True), pre % ("durable", "true", "false"))
        self.assertEqual(self.text(PRECONDITION_FAILED, self.ch.exchange_declare, x,
                                   "direct", auto_delete=True),
                         pre % ("auto_delete", "true", "false"))
        self.assertEqual(self.text(PRECONDITION_FAILED, self.ch.exchange_declare, x,
                                   "direct", internal=True), pre % ("internal", "true", "false"))

    def test_alternate_exchange_texts(self):
        x = self.exchange("aet", "direct", arguments={"alternate-exchange": "ae1"})
        y = self.exchange("aet2", "direct")
        head = ("PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for "
                "exchange '%s' in vhost '/': ")
        self.assertEqual(
            self.text(PRECONDITION_FAILED, self.ch.exchange_declare, x, "direct",
                      arguments={"alternate-exchange": "ae2"}),
            head % x + "received 'ae2' but current is 'ae1'")
        self.assertEqual(
            self.text(PRECONDITION_FAILED, self.ch.exchange_declare, x, "direct"),
            head % x + "received none but current is the value 'ae1' of type 'longstr'")
        self.assertEqual(
            self.text(PRECONDITION_FAILED, self.ch.exchange_declare, y, "direct",
                      arguments={"alternate-exchange": "ae1"}),
            head % y + "received the value 'ae1' of type 'longstr' but current is none")
        # the same bytes as a binary ('x') are equivalent
        self.ch.exchange_declare(x, "direct", arguments={"alternate-exchange": b"ae1"})
        z = self.name("aet3")
        self.assertEqual(
            self.text(PRECONDITION_FAILED, self.ch.exchange_declare, z, "direct",
                      arguments={"alternate-exchange": b"ae1"}),
            "PRECONDITION_FAILED - invalid type 'binary' for arg 'alternate-exchange' "
            "in exchange '%s' in vhost '/'" % z)
        self.assertEqual(
            self.text(PRECONDITION_FAILED, self.ch.exchange_declare, z, "direct",
                      arguments={"alternate-exchange": True}),
            "PRECONDITION_FAILED - invalid type 'bool' for arg 'alternate-exchange' "
            "in exchange '%s' in vhost '/'" % z)

    def test_x_match_texts(self):
        x = self.exchange("xm", "headers")
        q = self.queue()
        self.assertEqual(
            self.text(PRECONDITION_FAILED, self.ch.queue_bind, q, x, "",
                      arguments={"x-match": "some"}),
            'PRECONDITION_FAILED - Invalid x-match field value <<"some">>; expected '
            'all, any, all-with-x, or any-with-x')
        self.assertEqual(
            self.text(PRECONDITION_FAILED, self.ch.queue_bind, q, x, "",
                      arguments={"x-match": b"all"}),
            'PRECONDITION_FAILED - Invalid x-match field type binary (value <<"all">>); '
            'expected longstr')
        # existence is checked before the arguments
        self.assertEqual(
            self.text(NOT_FOUND, self.ch.queue_bind, self.name("noq"), x, "",
                      arguments={"x-match": "some"}),
            "NOT_FOUND - no queue '%s' in vhost '/'" % self.name("noq"))

    def test_connection_error_texts(self):
        e = self.connection_error(COMMAND_INVALID, self.ch.exchange_declare,
                                  self.name("ut"), "no-such-type")
        self.assertEqual(e.reply_text, "COMMAND_INVALID - unknown exchange type "
                                       "'no-such-type'")


# ===========================================================================
class DeleteTest(RoutingBase):

    def test_delete(self):
        x = self.exchange("d")
        self.ch.exchange_delete(x)
        self.assertFalse(self.exists(x))

    def test_delete_missing_succeeds(self):
        self.ch.exchange_delete(self.name("never"))
        self.ch.exchange_delete(self.name("never"), if_unused=True)

    def test_if_unused_with_bindings_is_406(self):
        x = self.exchange("iu")
        q = self.queue()
        self.ch.queue_bind(q, x, "k")
        self.channel_error(PRECONDITION_FAILED, self.ch.exchange_delete, x,
                           if_unused=True)
        self.assertTrue(self.exists(x))
        self.assertEqual(self.deliveries(x, "k", [q]), [1])
        self.ch.queue_unbind(q, x, "k")
        self.ch.exchange_delete(x, if_unused=True)
        self.assertFalse(self.exists(x))

    def test_if_unused_with_exchange_binding_as_source_is_406(self):
        x, y = self.exchange("iux"), self.exchange("iuy")
        self.ch.exchange_bind(y, x, "k")        # x -> y
        self.channel_error(PRECONDITION_FAILED, self.ch.exchange_delete, x,
                           if_unused=True)

    def test_if_unused_counts_only_outgoing_bindings(self):
        x, y = self.exchange("iu-src"), self.exchange("iu-dst")
        self.ch.exchange_bind(y, x, "k")        # y is only a destination
        self.ch.exchange_delete(y, if_unused=True)
        self.assertFalse(self.exists(y))
        # and x's binding to it went too
        self.ch.exchange_delete(x, if_unused=True)
        self.assertFalse(self.exists(x))

    def test_delete_removes_queue_bindings(self):
        x = self.exchange("db", "fanout")
        q = self.queue()
        self.ch.queue_bind(q, x, "")
        self.ch.exchange_delete(x)
        self.ch.exchange_declare(x, exchange_type="fanout")
        self.assertEqual(self.deliveries(x, "k", [q]), [0])

    def test_delete_removes_bindings_to_it(self):
        src, dst = self.exchange("dsrc", "fanout"), self.exchange("ddst", "fanout")
        q = self.queue()
        self.ch.exchange_bind(dst, src, "")
        self.ch.queue_bind(q, dst, "")
        self.assertEqual(self.deliveries(src, "k", [q]), [1])
        self.ch.exchange_delete(dst)
        self.ch.exchange_declare(dst, exchange_type="fanout")
        self.ch.queue_bind(q, dst, "")
        self.assertEqual(self.deliveries(src, "k", [q]), [0])
        self.assertEqual(self.deliveries(dst, "k", [q]), [1])

    def test_queue_delete_removes_its_bindings(self):
        x = self.exchange("qd", "fanout")
        q = self.queue()
        self.ch.queue_bind(q, x, "")
        self.ch.queue_delete(q)
        self.ch.queue_declare(q)
        self.assertEqual(self.deliveries(x, "k", [q]), [0])


# ===========================================================================
class AutoDeleteTest(RoutingBase):

    def test_unused_auto_delete_exchange_stays(self):
        x = self.exchange("ad0", auto_delete=True)
        time.sleep(0.1)
        self.assertTrue(self.exists(x))

    def test_deleted_when_last_binding_removed(self):
        x = self.exchange("ad1", auto_delete=True)
        q1, q2 = self.queue("a"), self.queue("b")
        self.ch.queue_bind(q1, x, "k1")
        self.ch.queue_bind(q2, x, "k2")
        self.ch.queue_unbind(q1, x, "k1")
        self.assertTrue(self.exists(x))
        self.ch.queue_unbind(q2, x, "k2")
        self.assertFalse(self.exists(x))

    def test_deleted_when_bound_queue_deleted(self):
        x = self.exchange("ad2", "fanout", auto_delete=True)
        q = self.queue()
        self.ch.queue_bind(q, x, "")
        self.ch.queue_delete(q)
        self.assertFalse(self.exists(x))

    def test_deleted_when_exclusive_queue_goes_with_its_connection(self):
        x = self.exchange("ad3", "fanout", auto_delete=True)
        conn = pika.BlockingConnection(self.broker.params())
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, x, "")
        self.assertTrue(self.exists(x), "deleted while still bound")
        conn.close()
        wait_until(lambda: not self.exists(x), interval=0.05,
                   what="auto-delete exchange %s gone after its queue's "
                        "connection closed" % x)

    def test_deleted_when_last_exchange_binding_removed(self):
        src = self.exchange("ad4src", "fanout", auto_delete=True)
        dst = self.exchange("ad4dst", "fanout")
        self.ch.exchange_bind(dst, src, "k")
        self.ch.exchange_unbind(dst, src, "k")
        self.assertFalse(self.exists(src))
        self.assertTrue(self.exists(dst))

    def test_deleted_when_destination_exchange_deleted(self):
        src = self.exchange("ad5src", "fanout", auto_delete=True)
        dst = self.exchange("ad5dst", "fanout")
        self.ch.exchange_bind(dst, src, "")
        self.ch.exchange_delete(dst)
        self.assertFalse(self.exists(src))

    def test_not_deleted_when_only_a_destination(self):
        src = self.exchange("ad6src", "fanout")
        dst = self.exchange("ad6dst", "fanout", auto_delete=True)
        self.ch.exchange_bind(dst, src, "")
        self.ch.exchange_unbind(dst, src, "")
        self.assertTrue(self.exists(dst))

    def test_cascade(self):
        # a (auto-delete) -> b (auto-delete) -> q: deleting q removes b's
        # last binding, b's deletion removes a's last binding.
        a = self.exchange("ad7a", "fanout", auto_delete=True)
        b = self.exchange("ad7b", "fanout", auto_delete=True)
        q = self.queue()
        self.ch.queue_bind(q, b, "")
        self.ch.exchange_bind(b, a, "")
        self.ch.queue_delete(q)
        self.assertFalse(self.exists(b))
        self.assertFalse(self.exists(a))

    def test_unbind_of_missing_binding_keeps_exchange(self):
        x = self.exchange("ad8", auto_delete=True)
        q = self.queue()
        self.ch.queue_bind(q, x, "k")
        self.ch.queue_unbind(q, x, "other")
        self.assertTrue(self.exists(x))


# ===========================================================================
class BindingTest(RoutingBase):

    def test_bind_to_missing_queue_is_404(self):
        x = self.exchange("b1")
        self.channel_error(NOT_FOUND, self.ch.queue_bind, self.name("noq"), x, "k")

    def test_bind_from_missing_exchange_is_404(self):
        q = self.queue()
        self.channel_error(NOT_FOUND, self.ch.queue_bind, q, self.name("nox"), "k")

    def test_bind_with_both_missing_names_the_exchange(self):
        e = self.channel_error(NOT_FOUND, self.ch.queue_bind, self.name("noq"),
                               self.name("nox"), "k")
        self.assertIn("exchange", e.reply_text)
        e = self.channel_error(NOT_FOUND, self.ch.exchange_bind, self.name("noy"),
                               self.name("nox"), "k")
        self.assertIn(self.name("nox"), e.reply_text)

    def test_exchange_bind_missing_source_or_destination_is_404(self):
        x = self.exchange("b3")
        self.channel_error(NOT_FOUND, self.ch.exchange_bind, x, self.name("nox"), "k")
        self.channel_error(NOT_FOUND, self.ch.exchange_bind, self.name("nox"), x, "k")

    def test_unbind_with_missing_queue_or_exchange_succeeds(self):
        # RabbitMQ: unbinding a binding that does not exist is a no-op,
        # even when its queue or exchange does not exist either.
        x, q = self.exchange("b2"), self.queue()
        self.ch.queue_unbind(self.name("noq"), x, "k")
        self.ch.queue_unbind(q, self.name("nox"), "k")
        self.ch.queue_unbind(self.name("noq"), self.name("nox"), "k")
        self.ch.exchange_unbind(x, self.name("nox"), "k")
        self.ch.exchange_unbind(self.name("nox"), x, "k")
        self.ch.exchange_unbind(self.name("nox"), self.name("noy"), "k")
        # ... but the default exchange is still refused
        self.channel_error(ACCESS_REFUSED, self.ch.queue_unbind, self.name("noq"), "", "k")

    def test_unbind_empty_queue_name_without_declared_queue_is_404(self):
        x = self.exchange("b2e")
        ch = self.conn.channel()
        with self.assertRaises(ChannelClosedByBroker) as cm:
            ch.queue_unbind("", x, "k")
        self.assertEqual(cm.exception.reply_code, NOT_FOUND)

    def test_empty_queue_and_key_mean_last_declared_queue(self):
        # queue.bind/unbind with queue "" and routing key "": both become
        # the channel's most recently declared queue.
        x = self.exchange("b2s", "direct")
        q = self.queue("last")
        self.ch.queue_bind("", x, "")
        self.assertEqual(self.deliveries(x, q, [q]), [1])
        self.assertEqual(self.deliveries(x, "", [q]), [0])
        self.ch.queue_unbind("", x, "")
        self.assertEqual(self.deliveries(x, q, [q]), [0])
        # with an explicit key only the queue name is filled in
        self.ch.queue_bind("", x, "explicit")
        self.assertEqual(self.deliveries(x, "explicit", [q]), [1])

    def test_unbind_of_missing_binding_succeeds(self):
        x, q = self.exchange("b4"), self.queue()
        self.ch.queue_unbind(q, x, "never-bound")
        y = self.exchange("b4y")
        self.ch.exchange_unbind(y, x, "never-bound")

    def test_bind_twice_is_one_binding(self):
        x, q = self.exchange("b5"), self.queue()
        self.ch.queue_bind(q, x, "k")
        self.ch.queue_bind(q, x, "k")
        self.assertEqual(self.deliveries(x, "k", [q]), [1])
        self.ch.queue_unbind(q, x, "k")
        self.assertEqual(self.deliveries(x, "k", [q]), [0])

    def test_arguments_are_part_of_identity(self):
        x, q = self.exchange("b6"), self.queue()
        self.ch.queue_bind(q, x, "k", arguments={"a": "1"})
        self.ch.queue_bind(q, x, "k", arguments={"a": "2"})
        # two bindings, one copy
        self.assertEqual(self.deliveries(x, "k", [q]), [1])
        self.ch.queue_unbind(q, x, "k", arguments={"a": "2"})
        self.assertEqual(self.deliveries(x, "k", [q]), [1])
        self.ch.queue_unbind(q, x, "k", arguments={"a": "3"})
        self.ch.queue_unbind(q, x, "k")
        self.assertEqual(self.deliveries(x, "k", [q]), [1])
        self.ch.queue_unbind(q, x, "k", arguments={"a": "1"})
        self.assertEqual(self.deliveries(x, "k", [q]), [0])

    def test_arguments_identity_keeps_auto_delete_exchange(self):
        x = self.exchange("b7", auto_delete=True)
        q = self.queue()
        self.ch.queue_bind(q, x, "k", arguments={"a": "1"})
        self.ch.queue_bind(q, x, "k", arguments={"a": "2"})
        self.ch.queue_unbind(q, x, "k", arguments={"a": "2"})
        self.assertTrue(self.exists(x))
        self.ch.queue_unbind(q, x, "k", arguments={"a": "1"})
        self.assertFalse(self.exists(x))

    def test_exchange_binding_arguments_are_part_of_identity(self):
        src, dst = self.exchange("b8s", "fanout"), self.exchange("b8d", "fanout")
        q = self.queue()
        self.ch.queue_bind(q, dst, "")
        self.ch.exchange_bind(dst, src, "k", arguments={"a": "1"})
        self.ch.exchange_bind(dst, src, "k", arguments={"a": "2"})
        self.ch.exchange_unbind(dst, src, "k", arguments={"a": "1"})
        self.assertEqual(self.deliveries(src, "k", [q]), [1])
        self.ch.exchange_unbind(dst, src, "k", arguments={"a": "2"})
        self.assertEqual(self.deliveries(src, "k", [q]), [0])

    def test_routing_key_is_part_of_identity(self):
        x, q = self.exchange("b9"), self.queue()
        self.ch.queue_bind(q, x, "k1")
        self.ch.queue_bind(q, x, "k2")
        self.ch.queue_unbind(q, x, "k1")
        self.assertEqual(self.deliveries(x, "k1", [q]), [0])
        self.assertEqual(self.deliveries(x, "k2", [q]), [1])


# ===========================================================================
class RoutingTest(RoutingBase):

    def test_direct(self):
        x = self.exchange("dir", "direct")
        q1, q2, q3 = self.queue("a"), self.queue("b"), self.queue("c")
        self.ch.queue_bind(q1, x, "red")
        self.ch.queue_bind(q2, x, "red")
        self.ch.queue_bind(q2, x, "green")
        self.ch.queue_bind(q3, x, "")
        self.assertEqual(self.deliveries(x, "red", [q1, q2, q3]), [1, 1, 0])
        self.assertEqual(self.deliveries(x, "green", [q1, q2, q3]), [0, 1, 0])
        self.assertEqual(self.deliveries(x, "", [q1, q2, q3]), [0, 0, 1])
        self.assertEqual(self.deliveries(x, "Red", [q1, q2, q3]), [0, 0, 0])

    def test_fanout(self):
        x = self.exchange("fan", "fanout")
        q1, q2 = self.queue("a"), self.queue("b")
        self.ch.queue_bind(q1, x, "a")
        self.ch.queue_bind(q1, x, "b")
        self.ch.queue_bind(q2, x, "")
        self.assertEqual(self.deliveries(x, "zzz", [q1, q2]), [1, 1])

    def test_topic(self):
        x = self.exchange("top", "topic")
        pats = ["*.orange.*", "*.*.rabbit", "lazy.#", "#", "", "a..b", "*",
                "#.#", "a.*.#", "a*b"]
        qs = [self.queue("t%d" % i) for i in range(len(pats))]
        for q, p in zip(qs, pats):
            self.ch.queue_bind(q, x, p)
        cases = {
            "quick.orange.rabbit": [1, 1, 0, 1, 0, 0, 0, 1, 0, 0],
            "lazy.orange.elephant": [1, 0, 1, 1, 0, 0, 0, 1, 0, 0],
            "lazy": [0, 0, 1, 1, 0, 0, 1, 1, 0, 0],
            "": [0, 0, 0, 1, 1, 0, 0, 1, 0, 0],
            "a..b": [0, 0, 0, 1, 0, 1, 0, 1, 1, 0],
            "a.b": [0, 0, 0, 1, 0, 0, 0, 1, 1, 0],
            "a": [0, 0, 0, 1, 0, 0, 1, 1, 0, 0],
            "a*b": [0, 0, 0, 1, 0, 0, 1, 1, 0, 1],
            ".": [0, 0, 0, 1, 0, 0, 0, 1, 0, 0],
        }
        for key, want in cases.items():
            self.assertEqual(self.deliveries(x, key, qs), want, key)

    def test_topic_after_warm_up_and_binding_changes(self):
        """Hundreds of publishes (past the 128-key warm-up, so the exchange
        routes through its compiled automaton), then bindings change: new
        pattern words, a value joining an existing pattern, an unbind; every
        phase's messages land exactly where the patterns say."""
        x = self.exchange("warm", "topic")
        qa, qb, qc = self.queue("a"), self.queue("b"), self.queue("c")
        self.ch.queue_bind(qa, x, "eu.*.trade")
        self.ch.queue_bind(qb, x, "#.quote")
        keys = ["eu.%s.%s" % (v, e) for v in ("lse", "xetra", "bats")
                for e in ("trade", "quote", "cancel")]

        sent = [keys[i % len(keys)] for i in range(300)]

        def publish_round():
            for k in sent:
                self.publish(x, k, body=k.encode())
            return {q: sorted(self.drain(q)) for q in (qa, qb, qc)}

        def want(pred):
            """One copy of every message whose key satisfies pred."""
            return sorted(k.encode() for k in sent if pred(k))

        got = publish_round()
        self.assertEqual(got[qa], want(lambda k: k.endswith(".trade")))
        self.assertEqual(got[qb], want(lambda k: k.endswith(".quote")))
        self.assertEqual(got[qc], [])

        # A new word (and so new trie nodes) after the automaton is built.
        self.ch.queue_bind(qc, x, "eu.bats.#")
        # A second binding on an existing pattern: same nodes, new value.
        self.ch.queue_bind(qc, x, "eu.*.trade")
        got = publish_round()
        self.assertEqual(got[qc], want(lambda k: k.startswith("eu.bats.") or
                                       k.endswith(".trade")))
        self.assertEqual(got[qa], want(lambda k: k.endswith(".trade")))

        self.ch.queue_unbind(qc, x, "eu.bats.#")
        self.ch.queue_unbind(qa, x, "eu.*.trade")
        got = publish_round()
        self.assertEqual(got[qa], [])
        self.assertEqual(got[qc], want(lambda k: k.endswith(".trade")))
        self.assertEqual(got[qb], want(lambda k: k.endswith(".quote")))

    def test_topic_overlapping_patterns_one_copy(self):
        x = self.exchange("top2", "topic")
        q = self.queue()
        for p in ("#", "a.#", "*.b", "a.b", "#.b", "#.#.#"):
            self.ch.queue_bind(q, x, p)
        self.assertEqual(self.deliveries(x, "a.b", [q]), [1])
        self.ch.queue_unbind(q, x, "#")
        self.ch.queue_unbind(q, x, "a.#")
        self.assertEqual(self.deliveries(x, "a.b", [q]), [1])
        self.assertEqual(self.deliveries(x, "a.c", [q]), [1])   # #.#.#
        self.ch.queue_unbind(q, x, "#.#.#")
        self.assertEqual(self.deliveries(x, "a.c", [q]), [0])

    def test_exchange_to_exchange(self):
        src = self.exchange("e2es", "topic")
        dst = self.exchange("e2ed", "direct")
        q = self.queue()
        self.ch.exchange_bind(dst, src, "a.*")
        self.ch.queue_bind(q, dst, "a.b")
        self.assertEqual(self.deliveries(src, "a.b", [q]), [1])
        self.assertEqual(self.deliveries(src, "a.c", [q]), [0])   # dst: no match
        self.assertEqual(self.deliveries(src, "b.b", [q]), [0])   # src: no match

    def test_cycle_delivers_once(self):
        x1 = self.exchange("cyc1", "fanout")
        x2 = self.exchange("cyc2", "fanout")
        q1, q2 = self.queue("a"), self.queue("b")
        self.ch.exchange_bind(x2, x1, "")
        self.ch.exchange_bind(x1, x2, "")
        self.ch.queue_bind(q1, x1, "")
        self.ch.queue_bind(q2, x2, "")
        self.assertEqual(self.deliveries(x1, "k", [q1, q2]), [1, 1])
        self.assertEqual(self.deliveries(x2, "k", [q1, q2]), [1, 1])

    def test_self_binding_delivers_once(self):
        x = self.exchange("self", "fanout")
        q = self.queue()
        self.ch.exchange_bind(x, x, "")
        self.ch.queue_bind(q, x, "")
        self.assertEqual(self.deliveries(x, "k", [q]), [1])

    def test_diamond_delivers_once(self):
        x = self.exchange("dia", "fanout")
        a = self.exchange("dia-a", "fanout")
        b = self.exchange("dia-b", "topic")
        q, q2 = self.queue("a"), self.queue("b")
        self.ch.exchange_bind(a, x, "")
        self.ch.exchange_bind(b, x, "")
        self.ch.queue_bind(q, a, "")
        self.ch.queue_bind(q, b, "#")
        self.ch.queue_bind(q, x, "")
        self.ch.queue_bind(q2, b, "k.#")
        self.assertEqual(self.deliveries(x, "k", [q, q2]), [1, 1])
        self.assertEqual(self.deliveries(x, "j", [q, q2]), [1, 0])

    def test_longer_cycle_with_topic_keys(self):
        xs = [self.exchange("ring%d" % i, "topic") for i in range(4)]
        qs = [self.queue("r%d" % i) for i in range(4)]
        for i in range(4):
            self.ch.exchange_bind(xs[(i + 1) % 4], xs[i], "#")
            self.ch.queue_bind(qs[i], xs[i], "k.*")
        for i in range(4):
            self.assertEqual(self.deliveries(xs[i], "k.x", qs), [1, 1, 1, 1])
            self.assertEqual(self.deliveries(xs[i], "k", qs), [0, 0, 0, 0])

    def test_unbound_exchange_binding_stops_routing(self):
        src, dst = self.exchange("ub-s", "fanout"), self.exchange("ub-d", "fanout")
        q = self.queue()
        self.ch.queue_bind(q, dst, "")
        self.ch.exchange_bind(dst, src, "")
        self.assertEqual(self.deliveries(src, "k", [q]), [1])
        self.ch.exchange_unbind(dst, src, "")
        self.assertEqual(self.deliveries(src, "k", [q]), [0])


# ===========================================================================
class AlternateExchangeTest(RoutingBase):

    def test_unroutable_goes_to_alternate(self):
        ae = self.exchange("ae", "fanout")
        x = self.exchange("aex", "direct", arguments={"alternate-exchange": ae})
        qx, qae = self.queue("x"), self.queue("ae")
        self.ch.queue_bind(qx, x, "k")
        self.ch.queue_bind(qae, ae, "")
        self.assertEqual(self.deliveries(x, "k", [qx, qae]), [1, 0])
        self.assertEqual(self.deliveries(x, "other", [qx, qae]), [0, 1])

    def test_alternate_chain(self):
        ae2 = self.exchange("ae2", "fanout")
        ae1 = self.exchange("ae1", "direct", arguments={"alternate-exchange": ae2})
        x = self.exchange("aec", "direct", arguments={"alternate-exchange": ae1})
        q1, q2 = self.queue("1"), self.queue("2")
        self.ch.queue_bind(q1, ae1, "k1")
        self.ch.queue_bind(q2, ae2, "")
        self.assertEqual(self.deliveries(x, "k1", [q1, q2]), [1, 0])
        self.assertEqual(self.deliveries(x, "k2", [q1, q2]), [0, 1])

    def test_alternate_cycle_terminates(self):
        a, b = self.name("aecyc-a"), self.name("aecyc-b")
        self.ch.exchange_declare(a, "direct", arguments={"alternate-exchange": b})
        self.ch.exchange_declare(b, "direct", arguments={"alternate-exchange": a})
        self.exchanges += [a, b]
        q = self.queue()
        self.ch.queue_bind(q, b, "kb")
        self.assertEqual(self.deliveries(a, "kb", [q]), [1])
        self.publish(a, "nothing", b"m", mandatory=True)
        self.assert_returned_once(a, "nothing", b"m")

    def test_missing_alternate_is_ignored(self):
        x = self.exchange("aemiss", "direct",
                          arguments={"alternate-exchange": self.name("none")})
        self.publish(x, "k", b"m", mandatory=True)
        self.assert_returned_once(x, "k", b"m")

    def test_alternate_declared_later(self):
        aename = self.name("aelater")
        x = self.exchange("aelx", "direct", arguments={"alternate-exchange": aename})
        self.ch.exchange_declare(aename, "fanout")
        self.exchanges.append(aename)
        q = self.queue()
        self.ch.queue_bind(q, aename, "")
        self.assertEqual(self.deliveries(x, "k", [q]), [1])

    def test_alternate_not_used_when_a_binding_matched(self):
        # x's binding to an exchange that routes nowhere still counts as a
        # match: RabbitMQ uses the alternate only when x itself matched
        # nothing.
        ae = self.exchange("aenu", "fanout")
        sink = self.exchange("aenu-sink", "direct")
        x = self.exchange("aenux", "direct", arguments={"alternate-exchange": ae})
        q = self.queue()
        self.ch.queue_bind(q, ae, "")
        self.ch.exchange_bind(sink, x, "k")
        self.assertEqual(self.deliveries(x, "k", [q]), [0])
        self.assertEqual(self.deliveries(x, "j", [q]), [1])

    def test_alternate_of_exchange_reached_by_binding(self):
        ae = self.exchange("aeinner", "fanout")
        inner = self.exchange("aeinner-x", "direct",
                              arguments={"alternate-exchange": ae})
        outer = self.exchange("aeouter", "fanout")
        q = self.queue()
        self.ch.queue_bind(q, ae, "")
        self.ch.exchange_bind(inner, outer, "")
        self.assertEqual(self.deliveries(outer, "k", [q]), [1])

    def test_alternate_routed_message_is_not_returned(self):
        ae = self.exchange("aer", "fanout")
        x = self.exchange("aerx", "direct", arguments={"alternate-exchange": ae})
        q = self.queue()
        self.ch.queue_bind(q, ae, "")
        self.publish(x, "k", b"m", mandatory=True)
        self.assertEqual(self.drain(q), [b"m"])
        self.assertTrue(self.no_returns())

    def test_alternate_with_no_queues_returns(self):
        ae = self.exchange("aenq", "fanout")
        x = self.exchange("aenqx", "direct", arguments={"alternate-exchange": ae})
        self.publish(x, "k", b"m", mandatory=True)
        # returned as published to x, not as seen by the alternate
        self.assert_returned_once(x, "k", b"m")


# ===========================================================================
class MandatoryTest(RoutingBase):

    PROPS = dict(content_type="application/x-test", content_encoding="gzip",
                 headers={"h1": "v1", "n": 42, "nested": {"a": [1, "b"]}},
                 delivery_mode=2, priority=7, correlation_id="corr-1",
                 reply_to="reply-q", expiration="60000", message_id="mid-9",
                 timestamp=1700000000, type="t-type", app_id="app-x")

    def test_unroutable_mandatory_is_returned_intact(self):
        x = self.exchange("mand", "direct")
        body = bytes(range(256)) * 4
        props = pika.BasicProperties(**self.PROPS)
        self.publish(x, "nowhere", body, props, mandatory=True)
        r = self.wait_returns(1)
        self.assertEqual(len(r), 1)
        method, rprops, rbody = r[0]
        self.assertEqual(method.reply_code, NO_ROUTE)
        self.assertEqual(method.reply_text, "NO_ROUTE")
        self.assertEqual(method.exchange, x)
        self.assertEqual(method.routing_key, "nowhere")
        self.assertEqual(rbody, body)
        for k, v in self.PROPS.items():
            got = getattr(rprops, k)
            if k == "headers":
                got = dict(got)
                got["h1"] = got["h1"].decode() if isinstance(got["h1"], bytes) else got["h1"]
                nested = got["nested"]["a"]
                got["nested"] = {"a": [nested[0], nested[1].decode()
                                       if isinstance(nested[1], bytes) else nested[1]]}
            self.assertEqual(got, v, k)
        self.assertTrue(self.ch.is_open)

    def test_default_exchange_unknown_queue_returned(self):
        self.publish("", self.name("noq"), b"m", mandatory=True)
        self.assert_returned_once("", self.name("noq"), b"m")

    def test_routable_mandatory_is_not_returned(self):
        x = self.exchange("mand2", "fanout")
        q = self.queue()
        self.ch.queue_bind(q, x, "")
        self.publish(x, "k", b"m", mandatory=True)
        self.assertEqual(self.drain(q), [b"m"])
        self.assertTrue(self.no_returns())

    def test_unroutable_without_mandatory_is_dropped(self):
        x = self.exchange("mand3", "direct")
        self.publish(x, "k", b"m", mandatory=False)
        self.assertTrue(self.no_returns())
        self.assertTrue(self.ch.is_open)

    def test_routed_through_exchange_binding_is_not_returned(self):
        src, dst = self.exchange("m4s", "fanout"), self.exchange("m4d", "fanout")
        q = self.queue()
        self.ch.exchange_bind(dst, src, "")
        self.ch.queue_bind(q, dst, "")
        self.publish(src, "k", b"m", mandatory=True)
        self.assertEqual(self.drain(q), [b"m"])
        self.assertTrue(self.no_returns())

    def test_matched_exchange_routing_nowhere_is_returned(self):
        src, dst = self.exchange("m5s", "fanout"), self.exchange("m5d", "direct")
        self.ch.exchange_bind(dst, src, "")
        self.publish(src, "k", b"m", mandatory=True)
        self.assert_returned_once(src, "k", b"m")

    def test_return_raw_frames_byte_exact(self):
        c = self.raw()
        props = {"content_type": "text/plain", "headers": [("a", T("I", 1)), ("b", T("S", b"x"))],
                 "delivery_mode": 1, "message_id": "m1", "timestamp": 12345,
                 "cluster_id": ""}
        body = b"raw-body-" * 50
        key = "rt-unroutable-%s" % self.tag
        c.publish(1, body, exchange="amq.direct", routing_key=key,
                  props=props, mandatory=True)
        sent = content_header_payload(len(body), props)
        f = c.expect_method(BASIC_RETURN, 1)
        self.assertEqual(f["reply_code"], NO_ROUTE)
        self.assertEqual(f["reply_text"], "NO_ROUTE")
        self.assertEqual(f["exchange"], "amq.direct")
        self.assertEqual(f["routing_key"], key)
        header, got, _frames = c.read_content(1)
        self.assertEqual(header["raw_properties"], sent[12:])
        self.assertEqual(header["body_size"], len(body))
        self.assertEqual(got, body)

    def test_immediate_is_540_connection_error(self):
        c = self.raw()
        args = (enc_short(0) + enc_shortstr("amq.direct") + enc_shortstr("k") +
                enc_bits(False, True))
        c.send(method_frame(1, BASIC_PUBLISH, args) +
               frame(FRAME_HEADER, 1, content_header_payload(1)) +
               frame(FRAME_BODY, 1, b"x"))
        f = c.expect_connection_close(NOT_IMPLEMENTED)
        self.assertEqual((f["class_id"], f["method_id"]), BASIC_PUBLISH)
        self.assertEqual(f["reply_text"], "NOT_IMPLEMENTED - immediate=true")

    def test_immediate_and_mandatory_is_540(self):
        c = self.raw()
        args = (enc_short(0) + enc_shortstr("") + enc_shortstr("k") +
                enc_bits(True, True))
        c.send(method_frame(1, BASIC_PUBLISH, args) +
               frame(FRAME_HEADER, 1, content_header_payload(0)))
        c.expect_connection_close(NOT_IMPLEMENTED)


# ===========================================================================
class HeadersTest(RoutingBase):
    """Headers-exchange matching with exact AMQP field types (raw client)."""

    def raw_bind(self, c, q, x, args, expect_ok=True):
        c.send(method_frame(1, QUEUE_BIND, enc_short(0) + enc_shortstr(q) +
                            enc_shortstr(x) + enc_shortstr("") +
                            enc_bits(False) + enc_table(args)))
        f = c.read_frame_skip_heartbeats()
        if expect_ok:
            self.assertEqual(f.method, QUEUE_BIND_OK, f)
        return f

    def matches(self, args, header_sets, x=None):
        """Bind a fresh queue with args; publish each header table (a list
        of (key, value) pairs, or None for no headers property); return
        the list of 0/1 per publish."""
        c = self.raw()
        x = x or self.hx
        q = self.queue("h%d" % len(self.queues))
        self.raw_bind(c, q, x, args)
        for i, h in enumerate(header_sets):
            props = {} if h is None else {"headers": h}
            c.publish(1, b"%d" % i, exchange=x, routing_key="", props=props)
        c.publish(1, SENTINEL, exchange="", routing_key=q)
        got = self._drain_until_sentinel(q)
        c.close()
        return [got.count(b"%d" % i) for i in range(len(header_sets))]

    def setUp(self):
        super().setUp()
        self.hx = self.exchange("hdr", "headers")

    def test_all_is_default(self):
        args = [("a", T("S", b"1")), ("b", T("S", b"2"))]
        hs = [[("a", T("S", b"1")), ("b", T("S", b"2"))],
              [("a", T("S", b"1")), ("b", T("S", b"2")), ("c", T("S", b"3"))],
              [("b", T("S", b"2")), ("a", T("S", b"1"))],
              [("a", T("S", b"1"))],
              [("a", T("S", b"1")), ("b", T("S", b"3"))],
              [],
              None]
        self.assertEqual(self.matches(args, hs), [1, 1, 1, 0, 0, 0, 0])
        self.assertEqual(self.matches([("x-match", T("S", b"all"))] + args, hs),
                         [1, 1, 1, 0, 0, 0, 0])

    def test_any(self):
        args = [("x-match", T("S", b"any")), ("a", T("S", b"1")), ("b", T("S", b"2"))]
        hs = [[("a", T("S", b"1"))],
              [("b", T("S", b"2"))],
              [("a", T("S", b"0")), ("b", T("S", b"2"))],
              [("a", T("S", b"0")), ("b", T("S", b"0"))],
              [("c", T("S", b"1"))],
              [],
              None]
        self.assertEqual(self.matches(args, hs), [1, 1, 1, 0, 0, 0, 0])

    def test_no_match_keys(self):
        hs = [[("a", T("S", b"1"))], [], None]
        # all with nothing to match: everything matches
        self.assertEqual(self.matches([], hs), [1, 1, 1])
        self.assertEqual(self.matches([("x-match", T("S", b"all"))], hs), [1, 1, 1])
        # any with nothing to match: nothing matches
        self.assertEqual(self.matches([("x-match", T("S", b"any"))], hs), [0, 0, 0])

    def test_x_args_ignored_for_all_and_any(self):
        hs = [[("a", T("S", b"1"))],
              [("a", T("S", b"1")), ("x-foo", T("S", b"bar"))],
              [("x-foo", T("S", b"bar"))]]
        self.assertEqual(self.matches([("x-match", T("S", b"all")), ("a", T("S", b"1")),
                                       ("x-foo", T("S", b"bar"))], hs), [1, 1, 0])
        self.assertEqual(self.matches([("x-match", T("S", b"any")), ("a", T("S", b"1")),
                                       ("x-foo", T("S", b"bar"))], hs), [1, 1, 0])
        # only x- args: all matches everything, any nothing
        self.assertEqual(self.matches([("x-foo", T("S", b"bar"))], hs), [1, 1, 1])
        self.assertEqual(self.matches([("x-match", T("S", b"any")),
                                       ("x-foo", T("S", b"bar"))], hs), [0, 0, 0])

    def test_all_with_x(self):
        args = [("x-match", T("S", b"all-with-x")), ("a", T("S", b"1")),
                ("x-foo", T("S", b"bar"))]
        hs = [[("a", T("S", b"1"))],
              [("a", T("S", b"1")), ("x-foo", T("S", b"bar"))],
              [("a", T("S", b"1")), ("x-foo", T("S", b"baz"))],
              [("x-foo", T("S", b"bar"))]]
        self.assertEqual(self.matches(args, hs), [0, 1, 0, 0])

    def test_any_with_x(self):
        args = [("x-match", T("S", b"any-with-x")), ("a", T("S", b"1")),
                ("x-foo", T("S", b"bar"))]
        hs = [[("a", T("S", b"1"))],
              [("x-foo", T("S", b"bar"))],
              [("a", T("S", b"2")), ("x-foo", T("S", b"baz"))],
              [("x-match", T("S", b"any-with-x"))],
              []]
        self.assertEqual(self.matches(args, hs), [1, 1, 0, 0, 0])

    def test_with_x_and_only_x_match(self):
        # x-match itself is not a header to match, even with -with-x
        hs = [[("a", T("S", b"1"))], [], None]
        self.assertEqual(self.matches([("x-match", T("S", b"all-with-x"))], hs), [1, 1, 1])
        self.assertEqual(self.matches([("x-match", T("S", b"any-with-x"))], hs), [0, 0, 0])

    def test_void_binding_value_means_present(self):
        args = [("a", T("V", None))]
        hs = [[("a", T("S", b"anything"))], [("a", T("I", 0))], [("a", T("V", None))],
              [("b", T("S", b"x"))], [], None]
        self.assertEqual(self.matches(args, hs), [1, 1, 1, 0, 0, 0])
        args = [("x-match", T("S", b"any")), ("a", T("V", None)), ("b", T("S", b"1"))]
        hs = [[("a", T("t", False))], [("b", T("S", b"1"))], [("b", T("S", b"2"))]]
        self.assertEqual(self.matches(args, hs), [1, 1, 0])

    def test_void_header_does_not_match_a_value(self):
        self.assertEqual(self.matches([("a", T("S", b""))], [[("a", T("V", None))]]), [0])
        self.assertEqual(self.matches([("a", T("I", 0))], [[("a", T("V", None))]]), [0])

    def test_integer_types_compare_by_value(self):
        hs = [[("n", T("b", 1))], [("n", T("B", 1))], [("n", T("s", 1))],
              [("n", T("u", 1))], [("n", T("I", 1))], [("n", T("i", 1))],
              [("n", T("l", 1))], [("n", T("L", 1))],
              [("n", T("S", b"1"))], [("n", T("x", b"1"))], [("n", T("t", True))],
              [("n", T("l", 2))], [("n", T("I", -1))]]
        want = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
        self.assertEqual(self.matches([("n", T("I", 1))], hs), want)
        self.assertEqual(self.matches([("n", T("l", 1))], hs), want)
        self.assertEqual(self.matches([("n", T("B", 1))], hs), want)

    def test_negative_and_large_integers(self):
        # RabbitMQ reads 'L' as a signed 64-bit integer: 2**64-1 is -1.
        hs = [[("n", T("b", -1))], [("n", T("l", -1))], [("n", T("L", 2**64 - 1))],
              [("n", T("I", 1))], [("n", T("i", 2**32 - 1))]]
        self.assertEqual(self.matches([("n", T("I", -1))], hs), [1, 1, 1, 0, 0])
        self.assertEqual(self.matches([("n", T("L", 2**64 - 1))], hs), [1, 1, 1, 0, 0])
        self.assertEqual(self.matches([("n", T("l", 2**32 - 1))], hs), [0, 0, 0, 0, 1])
        hs = [[("n", T("L", 2**63))], [("n", T("l", -2**63))], [("n", T("l", 2**33))],
              [("n", T("T", 2**33))]]
        self.assertEqual(self.matches([("n", T("l", -2**63))], hs), [1, 1, 0, 0])
        self.assertEqual(self.matches([("n", T("d", -2.0**63))], hs), [1, 1, 0, 0])
        self.assertEqual(self.matches([("n", T("T", 2**33))], hs), [0, 0, 1, 1])
        self.assertEqual(self.matches([("n", T("d", 2.0**33))], hs), [0, 0, 1, 1])
        self.assertEqual(self.matches([("n", T("d", 2.0**33 + 0.5))], hs), [0, 0, 0, 0])

    def test_string_types(self):
        hs = [[("s", T("S", b"abc"))], [("s", T("x", b"abc"))], [("s", T("S", b"abd"))],
              [("s", T("S", b"ABC"))]]
        self.assertEqual(self.matches([("s", T("S", b"abc"))], hs), [1, 1, 0, 0])

    def test_float_types(self):
        hs = [[("f", T("d", 1.5))], [("f", T("f", 1.5))], [("f", T("d", 1.25))],
              [("f", T("S", b"1.5"))]]
        self.assertEqual(self.matches([("f", T("d", 1.5))], hs), [1, 1, 0, 0])
        self.assertEqual(self.matches([("f", T("f", 1.5))], hs), [1, 1, 0, 0])

    def test_integer_against_float(self):
        hs = [[("n", T("d", 1.0))], [("n", T("f", 1.0))], [("n", T("d", 1.5))],
              [("n", T("I", 1))]]
        self.assertEqual(self.matches([("n", T("I", 1))], hs), [1, 1, 0, 1])
        self.assertEqual(self.matches([("n", T("d", 1.0))], hs), [1, 1, 0, 1])

    def test_boolean(self):
        hs = [[("b", T("t", True))], [("b", T("t", False))], [("b", T("I", 1))],
              [("b", T("S", b"true"))]]
        self.assertEqual(self.matches([("b", T("t", True))], hs), [1, 0, 0, 0])

    def test_timestamp_and_decimal(self):
        hs = [[("t", T("T", 5))], [("t", T("l", 5))], [("t", T("T", 6))]]
        self.assertEqual(self.matches([("t", T("T", 5))], hs), [1, 1, 0])
        hs = [[("d", T("D", (2, 150)))], [("d", T("D", (1, 15)))], [("d", T("D", (2, 151)))]]
        self.assertEqual(self.matches([("d", T("D", (2, 150)))], hs), [1, 0, 0])

    def test_tables_and_arrays(self):
        hs = [[("a", T("A", [T("I", 1), T("S", b"x")]))],
              [("a", T("A", [T("l", 1), T("S", b"x")]))],
              [("a", T("A", [T("I", 1)]))],
              [("a", T("F", [("k", T("I", 1))]))]]
        self.assertEqual(self.matches([("a", T("A", [T("I", 1), T("S", b"x")]))], hs),
                         [1, 0, 0, 0])
        hs = [[("t", T("F", [("k", T("I", 1))]))], [("t", T("F", [("k", T("l", 1))]))],
              [("t", T("F", [("k", T("I", 2))]))]]
        self.assertEqual(self.matches([("t", T("F", [("k", T("I", 1))]))], hs), [1, 0, 0])

    def test_invalid_x_match_is_406(self):
        for bad in (T("S", b"some"), T("S", b"ALL"), T("I", 1), T("x", b"all")):
            c = self.raw()
            q = self.queue("bad%d" % len(self.queues))
            f = self.raw_bind(c, q, self.hx, [("x-match", bad), ("a", T("S", b"1"))],
                              expect_ok=False)
            self.assertEqual(f.method, CHANNEL_CLOSE, f)
            self.assertEqual(f["reply_code"], PRECONDITION_FAILED, (bad, f))
            c.send(method_frame(1, CHANNEL_CLOSE_OK))
            c.close()

    def test_routing_key_ignored(self):
        args = [("a", T("S", b"1"))]
        c = self.raw()
        q = self.queue("rk")
        self.raw_bind(c, q, self.hx, args)
        for i, key in enumerate(["", "a", "a.b.c"]):
            c.publish(1, b"%d" % i, exchange=self.hx, routing_key=key,
                      props={"headers": [("a", T("S", b"1"))]})
        c.publish(1, SENTINEL, exchange="", routing_key=q)
        self.assertEqual(sorted(self._drain_until_sentinel(q)), [b"0", b"1", b"2"])

    def test_pika_bind_and_publish(self):
        q = self.queue("pk")
        self.ch.queue_bind(q, self.hx, "", arguments={"x-match": "any", "color": "red",
                                                      "size": 3})
        def props(h):
            return pika.BasicProperties(headers=h)
        self.assertEqual(self.deliveries(self.hx, "", [q], props=props({"color": "red"})), [1])
        self.assertEqual(self.deliveries(self.hx, "", [q], props=props({"size": 3})), [1])
        self.assertEqual(self.deliveries(self.hx, "", [q], props=props({"size": 4})), [0])
        self.ch.queue_unbind(q, self.hx, "", arguments={"x-match": "any", "color": "red",
                                                        "size": 3})
        self.assertEqual(self.deliveries(self.hx, "", [q], props=props({"size": 3})), [0])

    def test_headers_exchange_to_exchange(self):
        dst = self.exchange("hdr-dst", "fanout")
        q = self.queue("e2e")
        self.ch.queue_bind(q, dst, "")
        self.ch.exchange_bind(dst, self.hx, "", arguments={"a": "1"})
        self.assertEqual(self.deliveries(self.hx, "", [q], props=pika.BasicProperties(
            headers={"a": "1"})), [1])
        self.assertEqual(self.deliveries(self.hx, "", [q], props=pika.BasicProperties(
            headers={"a": "2"})), [0])


if __name__ == "__main__":
    main()
