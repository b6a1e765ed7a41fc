#!/usr/bin/python3
"""The route tracer, POST /api/route/{vhost}/{exchange} and `warrenctl
trace route`: which queues a message would reach, through which bindings,
exchange-to-exchange hops (cycles included) and alternate exchanges, and
why the other bindings did not match, for every exchange type, with
CC/BCC keys and delayed exchanges; that it publishes nothing; and that
it agrees with real publishes (it is the same routing code)."""

import base64
import json
import os
import random
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import pika

from harness import PikaTestCase, find_warrenctl, main, skip_if_external, wait_message_count


@skip_if_external("uses warrend's management API")
class RouteTraceTest(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.ch = self.connect().channel()

    def trace(self, exchange, key, headers=None, vhost="/", expect=200, properties=None):
        props = dict(properties or {})
        if headers is not None:
            props["headers"] = headers
        url = "http://127.0.0.1:%d/api/route/%s/%s" % (
            self.broker.mgmt_port, urllib.parse.quote(vhost, safe=""),
            urllib.parse.quote(exchange or "amq.default", safe=""))
        req = urllib.request.Request(url, method="POST", data=json.dumps(
            {"routing_key": key, "properties": props}).encode())
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, body = r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            status, body = e.code, json.loads(e.read() or b"{}")
        self.assertEqual(status, expect, body)
        return body

    def ctl(self, *args):
        e = dict(os.environ, HOME=tempfile.gettempdir() + "/no-such-home")
        p = subprocess.run([find_warrenctl(), "-P", str(self.broker.mgmt_port)] + list(args),
                           capture_output=True, text=True, timeout=60, env=e)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def queues(self, *names, **args):
        for n in names:
            self.ch.queue_declare(n, arguments=args.get("arguments"))

    def steps(self, t, kind):
        return [s for s in t["steps"] if s["step"] == kind]

    # ---- exchange-to-exchange, cycles, not matched --------------------------------
    def test_e2e_hops_cycle_and_reasons(self):
        ch = self.ch
        ch.exchange_declare("t-orders", "topic")
        ch.exchange_declare("t-eu", "direct")
        self.queues("t-billing", "t-audit", "t-eu-orders")
        ch.queue_bind("t-billing", "t-orders", "order.*")
        ch.queue_bind("t-audit", "t-orders", "audit.#")
        ch.exchange_bind("t-eu", "t-orders", "order.#")      # destination, source
        ch.queue_bind("t-eu-orders", "t-eu", "order.eu")
        ch.exchange_bind("t-orders", "t-eu", "order.created")  # back: a cycle
        t = self.trace("t-orders", "order.created")
        self.assertEqual(t["queues"], ["t-billing"])
        self.assertTrue(t["routed"])
        entered = [(s["exchange"], s["reached"]) for s in self.steps(t, "exchange")]
        self.assertEqual(entered, [("t-orders", "published"), ("t-eu", "binding")])
        hop = self.steps(t, "exchange")[1]["binding"]
        self.assertEqual((hop["source"], hop["destination"], hop["routing_key"]),
                         ("t-orders", "t-eu", "order.#"))
        revisited = self.steps(t, "revisited")
        self.assertEqual([s["exchange"] for s in revisited], ["t-orders"])
        self.assertIn("cycle", revisited[0]["why"])
        why = {(n["source"], n["destination"]): n["why"] for n in t["not_matched"]}
        self.assertEqual(set(why), {("t-orders", "t-audit"), ("t-eu", "t-eu-orders")})
        self.assertIn("pattern 'audit.#' does not match", why[("t-orders", "t-audit")])
        self.assertIn("binding key 'order.eu' is not the routing key",
                      why[("t-eu", "t-eu-orders")])
        # the other key goes the other way
        t = self.trace("t-orders", "order.eu")
        self.assertEqual(sorted(t["queues"]), ["t-billing", "t-eu-orders"])

    # ---- alternate exchanges -------------------------------------------------------
    def test_alternate_exchange(self):
        ch = self.ch
        ch.exchange_declare("a-unrouted", "fanout")
        ch.exchange_declare("a-main", "direct", arguments={"alternate-exchange": "a-unrouted"})
        self.queues("a-lost", "a-known")
        ch.queue_bind("a-lost", "a-unrouted", "")
        ch.queue_bind("a-known", "a-main", "known")
        t = self.trace("a-main", "other")
        self.assertEqual(t["queues"], ["a-lost"])
        alt = self.steps(t, "exchange")[1]
        self.assertEqual((alt["exchange"], alt["reached"], alt["alternate_of"]),
                         ("a-unrouted", "alternate", "a-main"))
        # a match: the alternate exchange is not used
        t = self.trace("a-main", "known")
        self.assertEqual(t["queues"], ["a-known"])
        self.assertEqual(len(self.steps(t, "exchange")), 1)
        # an alternate exchange that does not exist
        ch.exchange_declare("a-broken", "direct", arguments={"alternate-exchange": "a-nope"})
        t = self.trace("a-broken", "x")
        self.assertFalse(t["routed"])
        missing = self.steps(t, "no_alternate")
        self.assertEqual([(s["exchange"], s["alternate_exchange"]) for s in missing],
                         [("a-broken", "a-nope")])
        self.assertIn("unroutable_why", t)

    # ---- headers exchange ----------------------------------------------------------
    def test_headers_exchange(self):
        ch = self.ch
        ch.exchange_declare("h-x", "headers")
        self.queues("h-pdf-big", "h-csv-or-urgent")
        ch.queue_bind("h-pdf-big", "h-x", "", {"x-match": "all", "format": "pdf", "size": 5})
        ch.queue_bind("h-csv-or-urgent", "h-x", "",
                      {"x-match": "any", "format": "csv", "urgent": True})
        t = self.trace("h-x", "", {"format": "pdf", "size": 5})
        self.assertEqual(t["queues"], ["h-pdf-big"])
        self.assertIn("x-match any", t["not_matched"][0]["why"])
        t = self.trace("h-x", "", {"format": "pdf", "urgent": True})
        self.assertEqual(t["queues"], ["h-csv-or-urgent"])
        self.assertIn("x-match all", t["not_matched"][0]["why"])
        # warrenctl's -H NAME=VALUE (VALUE as JSON: 5 is a number)
        out = self.ctl("trace", "route", "/", "h-x", "", "-H", "format=pdf", "-H", "size=5")
        self.assertIn("matched h-x -> queue h-pdf-big", out)
        self.assertIn("reaches 1 queue: h-pdf-big", out)
        out = self.ctl("trace", "route", "/", "h-x", "", "-H", "format=doc")
        self.assertIn("reaches no queue", out)

    # ---- default exchange, CC/BCC, delayed -----------------------------------------
    def test_default_exchange_cc_and_delay(self):
        self.queues("d-one", "d-two", "d-three")
        t = self.trace("", "d-one")
        self.assertEqual(t["queues"], ["d-one"])
        t = self.trace("", "d-none")
        self.assertEqual(t["queues"], [])
        self.assertIn("no queue is named 'd-none'", t["unroutable_why"])
        # sender-selected distribution: CC and BCC keys route too
        t = self.trace("", "d-one", {"CC": ["d-two"], "BCC": ["d-three"]})
        self.assertEqual(sorted(t["queues"]), ["d-one", "d-three", "d-two"])
        self.assertEqual(sorted({s["routing_key"] for s in t["steps"]}),
                         ["d-one", "d-three", "d-two"])
        self.ch.exchange_declare("d-delayed", "x-delayed-message",
                                 arguments={"x-delayed-type": "direct"})
        self.ch.queue_bind("d-one", "d-delayed", "k")
        t = self.trace("d-delayed", "k", {"x-delay": 1500})
        self.assertEqual((t["queues"], t["delayed_ms"]), (["d-one"], 1500))

    # ---- the tracer and publishes agree, and it publishes nothing ------------------
    def test_agrees_with_publishes_and_publishes_nothing(self):
        ch = self.ch
        rnd = random.Random(7)
        words = ["a", "b", "c"]
        ch.exchange_declare("r-top", "topic")
        ch.exchange_declare("r-mid", "topic")
        ch.exchange_bind("r-mid", "r-top", "a.#")
        names = ["r-q%d" % i for i in range(8)]
        for i, name in enumerate(names):
            ch.queue_declare(name)
            for _ in range(2):
                pattern = ".".join(rnd.choice(words + ["*", "#"]) for _ in range(rnd.randint(1, 3)))
                ch.queue_bind(name, "r-top" if i % 2 else "r-mid", pattern)
        for _ in range(40):
            key = ".".join(rnd.choice(words) for _ in range(rnd.randint(1, 4)))
            traced = sorted(self.trace("r-top", key)["queues"])
            # nothing was published by the trace
            for name in names:
                self.assertEqual(ch.queue_declare(name, passive=True).method.message_count, 0)
            ch.basic_publish("r-top", key, b"x")
            reached = []
            for name in names:
                wait_message_count(ch, name, 1 if name in traced else 0)
                if ch.queue_purge(name).method.message_count:
                    reached.append(name)
            self.assertEqual(sorted(reached), traced, key)

    # ---- errors and access -----------------------------------------------------------
    def test_unknown_exchange_and_bad_body(self):
        t = self.trace("no-such-exchange", "k", expect=404)
        self.assertIn("no exchange 'no-such-exchange'", t.get("reason", ""))
        self.trace("", "k", properties={"delivery_mode": "x"}, expect=400)

    def test_warrenctl_json(self):
        self.queues("j-q")
        out = json.loads(self.ctl("--format", "json", "trace", "route", "/", "", "j-q"))
        self.assertEqual(out["queues"], ["j-q"])


if __name__ == "__main__":
    main()
