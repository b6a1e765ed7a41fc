#!/usr/bin/python3
"""The x-delayed-message exchange (issue 15), with the semantics of
RabbitMQ's delayed message plugin: x-delayed-type names the routing, a
message with an x-delay header of 1 .. 2^32-1 ms waits that long and is
then routed by the bindings of that moment, carrying x-delay = -delay (as
the plugin sets it; pika reads the signed 'l' field as unsigned, hence
`signed`); other messages route at once.  Scheduled messages are kept in
the message store: persistent ones to a durable exchange survive SIGTERM
and SIGKILL and fire once, late only by the downtime.  They are listed and
cancelled through the management API and warrenctl, and go when the
exchange is deleted.  A small version of the million-message benchmark
checks that their bodies wait on disk, not in memory.
"""

import base64
import json
import os
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import pika
import pika.exceptions

from harness import (Broker, PikaTestCase, find_warrenctl, main,
                     skip_if_external, skip_if_sanitized, wait_until)

PERSISTENT = 2


def signed(v):
    if not isinstance(v, int):
        return v
    return v - (1 << 64) if v >= 1 << 63 else v


def delayed_props(delay, persistent=False, **kw):
    headers = kw.pop("headers", {})
    if delay is not None:
        headers["x-delay"] = delay
    return pika.BasicProperties(headers=headers,
                                delivery_mode=PERSISTENT if persistent else None,
                                **kw)


def api(broker, method, path, body=None):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/api%s" % (broker.mgmt_port, path),
        data=json.dumps(body).encode() if body is not None else None,
        method=method)
    req.add_header("Authorization", "Basic " +
                   base64.b64encode(b"guest:guest").decode())
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, json.loads(text) if text else None


def collect(conn, ch, queue, n, timeout=30.0):
    """n deliveries from queue: (body, time.monotonic() at arrival, x-delay)."""
    got = []

    def on(c, m, p, body):
        got.append((body, time.monotonic(),
                    signed((p.headers or {}).get("x-delay", 0))))
    tag = ch.basic_consume(queue, on, auto_ack=True)
    wait_until(lambda: (conn.process_data_events(0.01), len(got) >= n)[1],
               timeout=timeout, interval=0, what="%d deliveries" % n)
    ch.basic_cancel(tag)
    return got


# warrend times delays with the coarse monotonic clock (4 ms ticks here), so
# a message may fire up to a tick and a truncated millisecond before its due
# time as measured from its arrival.
CLOCK_SLACK = 0.010


@skip_if_external("uses the x-delayed-message exchange and its API")
class Delayed(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.conn = self.connect()
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()

    def exchange(self, name, kind="direct", durable=False):
        self.ch.exchange_declare(name, "x-delayed-message", durable=durable,
                                 arguments={"x-delayed-type": kind})
        self.addCleanup(lambda: self.connect().channel().exchange_delete(name))
        return name

    def bound_queue(self, name, exchange, key):
        self.to_delete.append(name)
        self.ch.queue_declare(name)
        self.ch.queue_bind(name, exchange, key)
        return name

    def test_order_and_timing(self):
        x = self.exchange("dl-order")
        q = self.bound_queue("dl-order-q", x, "k")
        # Without confirms the four publishes leave back to back, so their
        # due times are 100 ms apart however slow the machine is.  Each
        # arrived after `sent`: it is early if it comes before sent + delay,
        # and late by at most its arrival - sent - delay.  On a busy machine
        # one run can be late; the scheduler is wrong only if every run is.
        ch = self.conn.channel()
        lateness = []
        for _ in range(5):
            sent = time.monotonic()
            for delay in (400, 100, 300, 200):
                ch.basic_publish(x, "k", b"%d" % delay, delayed_props(delay))
            got = collect(self.conn, ch, q, 4)
            self.assertEqual([b for b, _, _ in got],
                             [b"100", b"200", b"300", b"400"])
            self.assertEqual([d for _, _, d in got], [-100, -200, -300, -400])
            late = []
            for body, arrived, _ in got:
                due = sent + int(body) / 1000.0
                self.assertGreaterEqual(arrived, due - CLOCK_SLACK,
                                        "%s fired early" % body)
                late.append(arrived - due)
            lateness.append(max(late))
            if max(late) <= 0.1:
                break
        self.assertLessEqual(min(lateness), 0.1, lateness)

    def test_without_a_delay_routes_at_once(self):
        x = self.exchange("dl-now", "fanout")
        q = self.bound_queue("dl-now-q", x, "")
        for delay in (None, 0, -5, "abc", 2 ** 32):
            self.ch.basic_publish(x, "", b"now", delayed_props(delay))
        # confirmed, so routed already: in the queue, none scheduled
        self.assertEqual(self.ch.queue_declare(q, passive=True)
                         .method.message_count, 5)
        self.assertEqual(api(self.broker, "GET", "/exchanges/%2F/dl-now")[1]
                         ["delayed_messages"], 0)
        got = collect(self.conn, self.ch, q, 5)
        self.assertEqual([b for b, _, _ in got], [b"now"] * 5)
        # a string holding an integer is a delay, as the plugin reads it
        sent = time.monotonic()
        self.ch.basic_publish(x, "", b"str", delayed_props("300"))
        got = collect(self.conn, self.ch, q, 1)
        self.assertGreaterEqual(got[0][1] - sent, 0.3 - CLOCK_SLACK)
        self.assertEqual(got[0][2], -300)

    def test_routed_by_the_bindings_of_fire_time(self):
        x = self.exchange("dl-topic", "topic")
        # long enough that the binding comes first even on a busy machine
        self.ch.basic_publish(x, "a.b", b"t", delayed_props(3000),
                              mandatory=True)    # not returned: scheduled
        q = self.bound_queue("dl-topic-q", x, "a.*")  # bound after publish
        got = collect(self.conn, self.ch, q, 1)
        self.assertEqual(got[0][0], b"t")

    def test_declare_checks_x_delayed_type(self):
        for args, text in (({}, "'x-delayed-type' must be an existing "
                                "exchange type"),
                           ({"x-delayed-type": 5}, "must be an existing"),
                           ({"x-delayed-type": "x-delayed-message"},
                            "can't be used for 'x-delayed-type'"),
                           ({"x-delayed-type": "nope"},
                            "unknown exchange type 'nope'")):
            ch = self.conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.exchange_declare("dl-bad", "x-delayed-message",
                                    arguments=args)
            self.assertEqual(cm.exception.reply_code, 406)
            self.assertIn(text, cm.exception.reply_text)
        x = self.exchange("dl-redeclare")
        ch = self.conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.exchange_declare(x, "direct")
        self.assertEqual(cm.exception.reply_code, 406)
        self.assertIn("current is 'x-delayed-message'",
                      cm.exception.reply_text)

    def test_list_and_cancel(self):
        x = self.exchange("dl-list")
        q = self.bound_queue("dl-list-q", x, "k")
        # The cancelled 8 s message must still be waiting when the cancel
        # arrives (a 204, not a 404), however slow the machine is.
        sent = time.monotonic()
        for i, delay in enumerate((60000, 8000, 30000)):
            self.ch.basic_publish(x, "k", b"m%d" % i, delayed_props(
                delay, message_id="id%d" % i))
        status, reply = api(self.broker, "GET", "/exchanges/%2F/dl-list")
        self.assertEqual(status, 200)
        self.assertEqual(reply["delayed_messages"], 3)
        self.assertLessEqual(reply["delayed_next_in_ms"], 8000)
        status, reply = api(self.broker, "GET",
                            "/exchanges/%2F/dl-list/delayed?count=2")
        self.assertEqual(status, 200)
        self.assertEqual(reply["messages"], 3)
        listed = reply["scheduled"]
        self.assertEqual([m["properties"]["message_id"] for m in listed],
                         ["id1", "id2"])
        self.assertEqual([m["delay"] for m in listed], [8000, 30000])
        self.assertEqual(listed[0]["routing_key"], "k")
        # cancel the soonest with warrenctl, the next through the API
        out = subprocess.run(
            [find_warrenctl(), "-P", str(self.broker.mgmt_port),
             "cancel", "delayed", x, str(listed[0]["id"])],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(api(self.broker, "DELETE", "/exchanges/%%2F/dl-list/"
                             "delayed/%d" % listed[1]["id"])[0], 204)
        self.assertEqual(api(self.broker, "DELETE", "/exchanges/%%2F/dl-list/"
                             "delayed/%d" % listed[1]["id"])[0], 404)
        out = subprocess.run(
            [find_warrenctl(), "-P", str(self.broker.mgmt_port), "show",
             "delayed", x], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("id0", out.stdout)
        self.assertNotIn("id1", out.stdout)
        # the cancelled 8 s one never arrives
        wait_until(lambda: time.monotonic() - sent > 8.5, interval=0.1,
                   what="past the cancelled message's due time")
        self.assertEqual(self.ch.queue_declare(q, passive=True)
                         .method.message_count, 0)
        self.assertEqual(api(self.broker, "GET", "/exchanges/%2F/amq.direct/"
                             "delayed")[0], 400)

    def test_deleting_the_exchange_drops_its_schedule(self):
        # Bound only after the delete: a schedule that outlived its exchange
        # would route into the queue, one that fired early would not.
        x = self.exchange("dl-gone")
        self.to_delete.append("dl-gone-q")
        self.ch.queue_declare("dl-gone-q")
        sent = time.monotonic()
        self.ch.basic_publish(x, "k", b"never", delayed_props(300))
        self.ch.exchange_delete(x)
        self.exchange("dl-gone")
        q = "dl-gone-q"
        self.ch.queue_bind(q, x, "k")
        wait_until(lambda: time.monotonic() - sent > 0.8, interval=0.1,
                   what="past the due time")
        self.assertEqual(self.ch.queue_declare(q, passive=True)
                         .method.message_count, 0)


@skip_if_external("restarts the broker")
class DelayedAcrossRestarts(unittest.TestCase):

    def roundtrip(self, kill):
        with Broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.confirm_delivery()
            ch.exchange_declare("dl-dur", "x-delayed-message", durable=True,
                                arguments={"x-delayed-type": "direct"})
            ch.queue_declare("dl-dur-q", durable=True)
            ch.queue_bind("dl-dur-q", "dl-dur", "k")
            ch.basic_publish("dl-dur", "k", b"soon", delayed_props(
                200, persistent=True))
            published = time.monotonic()
            ch.basic_publish("dl-dur", "k", b"later", delayed_props(
                4000, persistent=True))
            ch.basic_publish("dl-dur", "k", b"transient", delayed_props(4000))
            # "soon" fires before the restart; "later" is pending across it
            # (4 s leaves a busy machine time to see the first firing).
            wait_until(lambda: ch.queue_declare("dl-dur-q", passive=True)
                       .method.message_count >= 1, what="the first firing")
            self.assertEqual(api(b, "GET", "/exchanges/%2F/dl-dur")[1]
                             ["delayed_messages"], 2,
                             "later and transient still scheduled")
            if not kill:
                conn.close()
            b.restart(kill=kill)

            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            got = collect(conn, ch, "dl-dur-q", 2)
            self.assertEqual([body for body, _, _ in got], [b"soon", b"later"])
            self.assertGreaterEqual(got[1][1] - published, 4.0 - CLOCK_SLACK)
            # nothing more: fired once, the transient one did not survive
            start = time.monotonic()
            wait_until(lambda: time.monotonic() - start > 1.0, interval=0.1,
                       what="a second")
            conn.process_data_events(0.1)
            self.assertEqual(ch.queue_declare("dl-dur-q", passive=True)
                             .method.message_count, 0)
            status, reply = api(b, "GET", "/exchanges/%2F/dl-dur")
            self.assertEqual(reply["delayed_messages"], 0)
            conn.close()
            # and not after another restart either
            b.restart(kill=kill)
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            self.assertEqual(ch.queue_declare("dl-dur-q", passive=True)
                             .method.message_count, 0)
            conn.close()

    def test_sigterm(self):
        self.roundtrip(kill=False)

    def test_sigkill(self):
        self.roundtrip(kill=True)


@skip_if_external("reads warrend's memory")
@skip_if_sanitized("resident memory counts the allocator's quarantine")
class DelayedMemory(PikaTestCase):
    """20,000 scheduled 1 KB messages: their 20 MB of bodies wait on disk
    (bench/delayed has the million-message figure)."""

    COUNT = 20000

    def test_scheduled_bodies_are_not_in_memory(self):
        conn = self.connect()
        ch = conn.channel()
        ch.exchange_declare("dl-mem", "x-delayed-message", durable=True,
                            arguments={"x-delayed-type": "direct"})
        self.addCleanup(lambda: self.connect().channel().exchange_delete("dl-mem"))
        ch.confirm_delivery()
        before = self.broker.rss_kib()
        body = os.urandom(1024)
        for i in range(self.COUNT):
            ch.basic_publish("dl-mem", "k", body,
                             delayed_props(3600000, persistent=True))
        wait_until(lambda: api(self.broker, "GET", "/exchanges/%2F/dl-mem")
                   [1]["delayed_messages"] == self.COUNT, what="all scheduled")
        grown = self.broker.rss_kib() - before
        print("%d scheduled 1 KB messages: RSS +%d KiB" % (self.COUNT, grown))
        self.assertLess(grown, 10 * 1024, "the bodies are held in memory")
        conn.close()


if __name__ == "__main__":
    main()
