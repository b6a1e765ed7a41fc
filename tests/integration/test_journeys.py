#!/usr/bin/python3
"""Message journeys and RabbitMQ's firehose: with tracing on for a vhost
(PUT /api/vhosts/V {"tracing": true}, `warrenctl trace on V`), each step
of a message's life is kept in a bounded ring and found by message-id or
correlation-id (GET /api/trace/V, `warrenctl trace show`), and copies of
publishes and deliveries go to amq.rabbitmq.trace, as RabbitMQ's
firehose.  Off, nothing is kept."""

import base64
import json
import os
import subprocess
import tempfile
import urllib.parse
import urllib.request

import pika

from harness import PikaTestCase, find_warrenctl, main, skip_if_external, wait_until

JOURNAL_EVENTS = 10000


@skip_if_external("reads warrend's journeys")
class JourneysTest(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.ch = self.connect().channel()
        self.ch.confirm_delivery()
        self.tracing(True)
        self.addCleanup(self.tracing, False)

    def request(self, method, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d/api/%s" % (
            self.broker.mgmt_port, path), method=method,
            data=None if body is None else json.dumps(body).encode())
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
        return json.loads(text) if text else None

    def tracing(self, on):
        self.request("PUT", "vhosts/%2F", {"tracing": on})

    def journey(self, id_=None, **query):
        if id_ is not None:
            query["message_id"] = id_
        return self.request("GET", "trace/%2F?" + urllib.parse.urlencode(query))

    def steps(self, id_, **query):
        return [(e["step"], e["where"]) for e in self.journey(id_, **query)["events"]]

    def props(self, mid, **kw):
        return pika.BasicProperties(message_id=mid, **kw)

    # ---- each step ---------------------------------------------------------------
    def test_publish_deliver_ack_requeue_reject_dead_letter(self):
        ch = self.ch
        ch.queue_declare("jr-work", arguments={"x-dead-letter-exchange": "",
                                               "x-dead-letter-routing-key": "jr-dead"})
        ch.queue_declare("jr-dead")
        ch.basic_publish("", "jr-work", b"x", self.props("order-1", correlation_id="req-7"))
        m, _p, _b = ch.basic_get("jr-work")
        ch.basic_nack(m.delivery_tag, requeue=True)
        m, _p, _b = ch.basic_get("jr-work")
        ch.basic_reject(m.delivery_tag, requeue=False)
        got = []
        ch.basic_consume("jr-dead", lambda c, m, p, b: got.append(m.delivery_tag))
        wait_until(lambda: ch.connection.process_data_events(0.02) or got, what="delivery")
        ch.basic_ack(got[0])
        wait_until(lambda: ("acked", "jr-dead") in self.steps("order-1"), what="the ack")
        self.assertEqual(self.steps("order-1"), [
            ("published", ""), ("enqueued", "jr-work"), ("delivered", "jr-work"),
            ("requeued", "jr-work"), ("delivered", "jr-work"), ("rejected", "jr-work"),
            ("dead_lettered", "jr-work"), ("enqueued", "jr-dead"),
            ("delivered", "jr-dead"), ("acked", "jr-dead")])
        events = self.journey("order-1")["events"]
        self.assertIn("routing key 'jr-work'", events[0]["detail"])
        self.assertIn("127.0.0.1:", events[0]["connection"])
        self.assertEqual(events[0]["channel"], 1)
        self.assertIn("rejected, to exchange ''", events[6]["detail"])
        self.assertTrue(events[8]["detail"].startswith("consumer '"))
        # the correlation id finds the same journey
        by_corr = self.request("GET", "trace/%2F?correlation_id=req-7")
        self.assertEqual(len(by_corr["events"]), 10)

    def test_expired_dropped_returned_unroutable_duplicate_delayed(self):
        ch = self.ch
        ch.queue_declare("jr-ttl", arguments={"x-message-ttl": 1})
        ch.basic_publish("", "jr-ttl", b"x", self.props("ttl-1"))
        wait_until(lambda: ch.queue_declare("jr-ttl", passive=True).method.message_count == 0,
                   what="the message to expire")
        wait_until(lambda: ("expired", "jr-ttl") in self.steps("ttl-1"), what="expiry")
        ch.queue_declare("jr-max", arguments={"x-max-length": 1})
        ch.basic_publish("", "jr-max", b"x", self.props("max-1"))
        ch.basic_publish("", "jr-max", b"x", self.props("max-2"))
        self.assertEqual(self.journey("max-1")["events"][-1]["step"], "dropped")
        self.assertEqual(self.journey("max-1")["events"][-1]["detail"], "maxlen")
        with self.assertRaises(pika.exceptions.UnroutableError):
            ch.basic_publish("", "jr-nowhere", b"x", self.props("ret-1"), mandatory=True)
        self.assertEqual(self.steps("ret-1"), [("published", ""), ("returned", "")])
        ch.basic_publish("", "jr-nowhere", b"x", self.props("lost-1"))
        self.assertEqual(self.steps("lost-1"), [("published", ""), ("unroutable", "")])
        ch.queue_declare("jr-dedup", arguments={"x-message-deduplication": True})
        ch.basic_publish("", "jr-dedup", b"x", self.props("dup-1"))
        ch.basic_publish("", "jr-dedup", b"x", self.props("dup-1"))
        self.assertEqual(self.steps("dup-1"), [("published", ""), ("enqueued", "jr-dedup"),
                                               ("published", ""), ("duplicate", "jr-dedup")])
        ch.exchange_declare("jr-later", "x-delayed-message",
                            arguments={"x-delayed-type": "direct"})
        ch.basic_publish("jr-later", "k", b"x", self.props("late-1", headers={"x-delay": 60000}))
        events = self.journey("late-1")["events"]
        self.assertEqual([e["step"] for e in events], ["published", "delayed"])
        self.assertEqual(events[1]["detail"], "60000 ms")

    # ---- bounds, off, warrenctl ------------------------------------------------------
    def test_ring_is_bounded(self):
        ch = self.ch
        ch.queue_declare("jr-many")
        n = JOURNAL_EVENTS // 2 + 500      # two events each: published, enqueued
        for i in range(n):
            ch.basic_publish("", "jr-many", b"", self.props("many-%d" % i))
        everything = self.request("GET", "trace/%2F?limit=100000")
        self.assertEqual(everything["matched"], JOURNAL_EVENTS)
        self.assertEqual(self.journey("many-0")["events"], [])           # overwritten
        self.assertEqual(len(self.journey("many-%d" % (n - 1))["events"]), 2)
        last = self.request("GET", "trace/%2F?limit=3")["events"]
        self.assertEqual(len(last), 3)
        self.assertEqual(last[-1]["message_id"], "many-%d" % (n - 1))

    def test_off_keeps_nothing(self):
        ch = self.ch
        ch.queue_declare("jr-off")
        self.tracing(False)
        vhost = self.request("GET", "vhosts/%2F")
        self.assertFalse(vhost["tracing"])
        ch.basic_publish("", "jr-off", b"x", self.props("off-1"))
        t = self.journey("off-1")
        self.assertEqual((t["tracing"], t["events"]), (False, []))
        self.tracing(True)
        self.assertTrue(self.request("GET", "vhosts/%2F")["tracing"])
        self.assertEqual(self.journey("off-1")["events"], [])

    def test_warrenctl(self):
        e = dict(os.environ, HOME=tempfile.gettempdir() + "/no-such-home")

        def ctl(*args):
            p = subprocess.run([find_warrenctl(), "-P", str(self.broker.mgmt_port)] + list(args),
                               capture_output=True, text=True, timeout=60, env=e)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            return p.stdout
        self.assertIn("tracing off", ctl("trace", "off", "/"))
        self.assertIn("tracing is off", ctl("trace", "show", "/", "w-1"))
        self.assertIn("tracing on", ctl("trace", "on", "/"))
        self.ch.queue_declare("jr-ctl")
        self.ch.basic_publish("", "jr-ctl", b"x", self.props("w-1"))
        rows = [line.split() for line in ctl("trace", "show", "/", "w-1").splitlines()]
        self.assertEqual([r[1] for r in rows[1:]], ["published", "enqueued"])
        self.assertEqual(rows[2][2], "jr-ctl")

    # ---- the firehose -----------------------------------------------------------------
    def test_firehose(self):
        ch = self.ch
        ch.queue_declare("jr-fire-publish")
        ch.queue_declare("jr-fire-deliver")
        ch.queue_bind("jr-fire-publish", "amq.rabbitmq.trace", "publish.#")
        ch.queue_bind("jr-fire-deliver", "amq.rabbitmq.trace", "deliver.#")
        ch.exchange_declare("jr-x", "direct")
        ch.queue_declare("jr-target")
        ch.queue_bind("jr-target", "jr-x", "rk")
        ch.basic_publish("jr-x", "rk", b"payload", self.props(
            "fire-1", headers={"h": "v"}, delivery_mode=2))
        m, _p, _b = ch.basic_get("jr-target", auto_ack=True)
        self.assertIsNotNone(m)
        m, p, body = ch.basic_get("jr-fire-publish", auto_ack=True)
        self.assertEqual((m.routing_key, m.exchange, body), ("publish.jr-x",
                                                            "amq.rabbitmq.trace", b"payload"))
        h = p.headers
        self.assertEqual((h["exchange_name"], h["routing_keys"]), ("jr-x", ["rk"]))
        self.assertEqual(h["properties"]["message_id"], "fire-1")
        self.assertEqual(h["properties"]["headers"], {"h": "v"})
        self.assertEqual(h["properties"]["delivery_mode"], 2)
        self.assertEqual((h["vhost"], h["user"], h["channel"]), ("/", "guest", 1))
        self.assertTrue(h["node"].startswith("warren@"))
        m, p, body = ch.basic_get("jr-fire-deliver", auto_ack=True)
        self.assertEqual((m.routing_key, body), ("deliver.jr-target", b"payload"))
        self.assertEqual(p.headers["redelivered"], 0)
        # reading the firehose is not traced into it again
        self.assertEqual(ch.basic_get("jr-fire-deliver", auto_ack=True)[0], None)
        # tracing off: no more copies
        self.tracing(False)
        ch.basic_publish("jr-x", "rk", b"quiet", self.props("fire-2"))
        self.assertEqual(ch.queue_declare("jr-fire-publish", passive=True).method.message_count, 0)


if __name__ == "__main__":
    main()
