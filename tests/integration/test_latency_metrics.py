#!/usr/bin/python3
"""How long messages wait, per queue: the oldest ready message's age,
time in queue and delivery to ack (p50/p99 over the last minute), and
consumer utilisation, in /api/queues, /metrics/per-object and `warrenctl
show queue`.  Percentiles are bucketed to within 25% (queue_latency.h),
so the bounds below allow that; waits are made by holding messages, the
test then waits for the condition it measures."""

import base64
import json
import os
import subprocess
import tempfile
import time
import urllib.request

import pika

from harness import PikaTestCase, find_warrenctl, main, skip_if_external, wait_until


@skip_if_external("reads warrend's own latency figures")
class LatencyMetricsTest(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.ch = self.connect().channel()
        self.ch.confirm_delivery()

    def api(self, queue):
        req = urllib.request.Request("http://127.0.0.1:%d/api/queues/%%2F/%s" % (
            self.broker.mgmt_port, queue))
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def publish(self, queue, n):
        for i in range(n):
            self.ch.basic_publish("", queue, b"m%d" % i)

    def test_fresh_queue_has_no_figures(self):
        self.ch.queue_declare("l-fresh")
        q = self.api("l-fresh")
        self.assertEqual((q["oldest_ready_age_ms"], q["time_in_queue_ms"],
                          q["delivery_to_ack_ms"], q["consumer_utilisation"]),
                         (None, None, None, None))

    def test_oldest_age_and_time_in_queue(self):
        self.ch.queue_declare("l-wait")
        t0 = time.monotonic()
        self.publish("l-wait", 50)
        # wait for what is measured: the newest has waited 400 ms, so the
        # oldest has waited that plus the publishing time (slow on a busy
        # machine)
        span = (time.monotonic() - t0) * 1000
        wait_until(lambda: (self.api("l-wait")["oldest_ready_age_ms"] or 0) >= 400 + span,
                   what="the newest message 400 ms old")
        got = 0
        while got < 50:
            m, _p, _b = self.ch.basic_get("l-wait", auto_ack=True)
            self.assertIsNotNone(m)
            got += 1
        waited_at_most = (time.monotonic() - t0) * 1000
        q = self.api("l-wait")
        self.assertIsNone(q["oldest_ready_age_ms"])      # nothing ready now
        tiq = q["time_in_queue_ms"]
        self.assertEqual(tiq["samples"], 50)
        # each waited at least 400 ms; a percentile is its bucket's top,
        # at most 25% above the value (and the clock is the coarse one)
        self.assertGreaterEqual(tiq["p50"], 400 * 0.75)
        self.assertLessEqual(tiq["p99"], waited_at_most * 1.25 + 20)
        self.assertGreaterEqual(tiq["p99"], tiq["p50"])

    def test_delivery_to_ack(self):
        self.ch.queue_declare("l-ack")
        self.publish("l-ack", 20)
        tags = []
        while len(tags) < 20:
            m, _p, _b = self.ch.basic_get("l-ack")
            tags.append(m.delivery_tag)
        t_delivered = time.monotonic()
        time.sleep(0.3)     # the consumer's work: what the figure measures
        self.ch.basic_ack(tags[-1], multiple=True)
        held = (time.monotonic() - t_delivered) * 1000
        d = wait_until(lambda: self.api("l-ack")["delivery_to_ack_ms"],
                       what="delivery-to-ack figures")
        self.assertEqual(d["samples"], 20)
        self.assertGreaterEqual(d["p50"], 300 * 0.75)
        self.assertLessEqual(d["p99"], held * 1.25 + 1000)

    def test_consumer_utilisation(self):
        ch = self.ch
        ch.queue_declare("l-busy")
        self.publish("l-busy", 200)
        # a consumer with prefetch 1 that works 20 ms on each message:
        # messages wait while it has no credit, most of the time
        ch.basic_qos(prefetch_count=1)
        pending = []
        ch.basic_consume("l-busy", lambda c, m, p, b: pending.append(m.delivery_tag))
        done = 0
        while done < 30:
            self.ch.connection.process_data_events(0.05)
            if pending:
                time.sleep(0.02)        # the consumer's work
                ch.basic_ack(pending.pop())
                done += 1
        u = self.api("l-busy")["consumer_utilisation"]
        self.assertIsNotNone(u)
        self.assertLess(u, 0.5)
        # a consumer that keeps up (no ack needed): the queue can always
        # deliver at once
        other = self.connect().channel()
        other.queue_declare("l-idle")
        other.basic_consume("l-idle", lambda *a: None, auto_ack=True)
        self.publish("l-idle", 20)
        wait_until(lambda: self.api("l-idle")["time_in_queue_ms"], what="deliveries")
        self.assertGreater(self.api("l-idle")["consumer_utilisation"], 0.9)

    def test_metrics_and_warrenctl(self):
        self.ch.queue_declare("l-shown")
        self.publish("l-shown", 5)
        m, _p, _b = self.ch.basic_get("l-shown")
        self.ch.basic_ack(m.delivery_tag)
        url = "http://127.0.0.1:%d/metrics/per-object" % self.broker.prometheus_port
        with urllib.request.urlopen(url, timeout=60) as r:
            text = r.read().decode()
        for name in ("warren_queue_oldest_ready_age_seconds",
                     "warren_queue_time_in_queue_p50_seconds",
                     "warren_queue_time_in_queue_p99_seconds",
                     "warren_queue_delivery_to_ack_p50_seconds",
                     "warren_queue_delivery_to_ack_p99_seconds"):
            self.assertIn('%s{vhost="/",queue="l-shown"} ' % name, text)
        e = dict(os.environ, HOME=tempfile.gettempdir() + "/no-such-home")
        p = subprocess.run([find_warrenctl(), "-P", str(self.broker.mgmt_port), "show",
                            "queue", "l-shown"], capture_output=True, text=True,
                           timeout=60, env=e)
        self.assertEqual(p.returncode, 0, p.stderr)
        fields = dict(line.split(None, 1) for line in p.stdout.splitlines()
                      if len(line.split(None, 1)) == 2)
        self.assertEqual(fields["messages_ready"], "4")
        self.assertGreaterEqual(int(fields["oldest_ready_age_ms"]), 0)
        self.assertIn("time_in_queue_ms.p99", fields)
        self.assertIn("delivery_to_ack_ms.p50", fields)


if __name__ == "__main__":
    main()
