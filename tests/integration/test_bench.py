#!/usr/bin/python3
"""warren-bench against warrend: the load generator's own correctness count
(published, consumed, confirmed, lost, duplicated) must be right, or every
figure in BENCHMARKS.md is suspect.  Short runs; no speed is asserted."""

import json
import os
import subprocess
import threading

from harness import BrokerTestCase, find_warrend, main, metric_samples


def find_bench():
    path = os.path.join(os.path.dirname(find_warrend()), "..", "bench", "warren-bench")
    if not os.access(path, os.X_OK):
        raise AssertionError("no warren-bench at %s (make builds it)" % path)
    return os.path.abspath(path)


class WarrenBenchTest(BrokerTestCase):

    def run_bench(self, *args, seconds="1"):
        cmd = [find_bench(), "-h", "127.0.0.1", "-P", str(self.broker.port), "-z", seconds,
               "-d", "20"] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, "warren-bench %s failed:\n%s%s"
                         % (" ".join(args), p.stdout, p.stderr))
        result = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertEqual(result["errors"], 0, p.stderr)
        return result

    def assert_all_delivered(self, r):
        self.assertGreater(r["published"], 0, r)
        self.assertEqual(r["consumed"], r["published"], r)
        self.assertEqual(r["lost"], 0, r)
        self.assertEqual(r["dup"], 0, r)

    def test_autoack_small_messages_all_arrive(self):
        r = self.run_bench("-a", "-s", "16", "-x", "2", "-y", "2", "-n", "2")
        self.assert_all_delivered(r)

    def test_manual_ack_large_messages_span_body_frames(self):
        # 300 KB bodies need three body frames at frame_max 131072
        r = self.run_bench("-s", "300000", "-q", "10", "-N", "big")
        self.assert_all_delivered(r)

    def test_persistent_confirms_are_all_counted(self):
        r = self.run_bench("-s", "1024", "-q", "100", "-c", "100", "-p", "-N", "durable")
        self.assert_all_delivered(r)
        self.assertEqual(r["confirmed"], r["published"], r)
        self.assertEqual(r["nacked"], 0, r)
        self.assertGreater(r["confirm_p50_us"], 0, r)

    def test_rate_limit_is_kept(self):
        r = self.run_bench("-r", "200", "-s", "16", "-N", "paced", seconds="2")
        self.assert_all_delivered(r)
        # at most one message per 5 ms from the start, and not starved
        self.assertLessEqual(r["published"], 401, r)
        self.assertGreaterEqual(r["published"], 100, r)

    def test_messages_taken_by_someone_else_are_counted_lost(self):
        """A second consumer on the bench's queue takes its share of the
        messages: warren-bench must report exactly those as lost."""
        import pika
        import time
        stolen = []
        stop = threading.Event()

        def thief():
            conn = pika.BlockingConnection(self.broker.params())
            ch = conn.channel()
            while not stop.is_set():  # until the bench's consumer is there
                try:
                    ok = ch.queue_declare("stolen-0", passive=True)
                    if ok.method.consumer_count >= 1:
                        break
                except pika.exceptions.ChannelClosedByBroker:
                    ch = conn.channel()  # 404: not declared yet
                time.sleep(0.01)
            ch.basic_consume("stolen-0", lambda c, m, p, body: stolen.append(body),
                             auto_ack=True)
            while not stop.is_set():
                conn.process_data_events(time_limit=0.05)
            conn.close()

        t = threading.Thread(target=thief)
        t.start()
        try:
            # 5 s: time for the thief to attach on a busy machine
            r = self.run_bench("-r", "500", "-s", "16", "-N", "stolen", seconds="5")
        finally:
            stop.set()
            t.join(30)
        self.assertGreater(len(stolen), 0, "the thief got nothing: %r" % r)
        self.assertEqual(r["lost"], len(stolen), r)
        self.assertEqual(r["consumed"] + len(stolen), r["published"], r)

    def test_fanout_reaches_every_queue_once(self):
        r = self.run_bench("-t", "fanout", "-x", "1", "-y", "4", "-n", "4", "-s", "100",
                           "-q", "50", "-N", "fan")
        self.assertGreater(r["published"], 0, r)
        self.assertEqual(r["exchange_type"], "fanout", r)
        self.assertEqual(r["expected"], 4 * r["published"], r)
        self.assertEqual(r["consumed"], r["expected"], r)
        self.assertEqual((r["lost"], r["dup"], r["misrouted"]), (0, 0, 0), r)

    def test_topic_deliveries_match_the_tools_model(self):
        """100 wildcard bindings over 10 queues: every queue receives exactly
        the messages whose keys its patterns match (some keys match none, some
        several queues)."""
        r = self.run_bench("-t", "topic", "-x", "2", "-y", "10", "-n", "10", "-s", "64",
                           "-a", "-N", "top")
        self.assertGreater(r["published"], 1000, r)
        self.assertEqual(r["consumed"], r["expected"], r)
        self.assertEqual((r["lost"], r["dup"], r["misrouted"]), (0, 0, 0), r)
        # neither one queue per message nor every queue: the model is not trivial
        self.assertLess(r["expected"], 2 * r["published"], r)
        self.assertNotEqual(r["expected"], r["published"], r)

    def test_a_binding_outside_the_model_is_reported_as_misrouting(self):
        """A catch-all binding the tool did not make sends mis-0 messages its
        patterns do not match: warren-bench must count them misrouted."""
        import pika
        conn = pika.BlockingConnection(self.broker.params())
        ch = conn.channel()
        ch.exchange_declare("mis-x", "topic")
        ch.queue_declare("mis-0")
        ch.queue_bind("mis-0", "mis-x", "#")
        conn.close()
        r = self.run_bench("-t", "topic", "-R", "-x", "1", "-y", "2", "-n", "2", "-a",
                           "-M", "2000", "-N", "mis")
        self.assertEqual(r["published"], 2000, r)
        self.assertGreater(r["misrouted"], 0, r)
        # every delivery is either one the model expects or a misrouting
        self.assertEqual(r["consumed"], r["expected"] + r["misrouted"], r)
        self.assertEqual((r["lost"], r["dup"]), (0, 0), r)

    def test_idle_connections_are_opened_and_held(self):
        p = subprocess.Popen([find_bench(), "-h", "127.0.0.1", "-P", str(self.broker.port),
                              "-C", "30", "-z", "8"], stdout=subprocess.PIPE, text=True)
        try:
            first = p.stdout.readline()
            self.assertIn("opened 30 connections", first)
            samples = metric_samples(self.broker.metrics()[1])
            self.assertGreaterEqual(samples.get("rabbitmq_connections", 0), 30, first)
            out, _ = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, out)
        result = json.loads(out.strip().splitlines()[-1])
        self.assertEqual((result["opened"], result["errors"]), (30, 0), result)
        self.assertGreater(result["open_seconds"], 0, result)

    def test_json_has_latency_distribution_and_timeline(self):
        r = self.run_bench("-r", "1000", "-s", "16", "-N", "plot", seconds="2")
        pcts = dict((p, us) for p, us in r["lat_pcts"])
        self.assertLessEqual(pcts[50], pcts[99], r["lat_pcts"])
        self.assertLessEqual(pcts[99], pcts[99.9], r["lat_pcts"])
        self.assertLessEqual(pcts[99.9], pcts[100], r["lat_pcts"])
        self.assertEqual(r["lat_p999_us"], pcts[99.9], r)
        self.assertGreaterEqual(len(r["timeline"]), 2, r["timeline"])
        published, since = 0.0, 0.0
        for t, pub, _ in r["timeline"]:
            published += pub * (t - since)
            since = t
        # the rates per second add up to the count
        self.assertAlmostEqual(published, r["published"], delta=r["published"] * 0.2)


if __name__ == "__main__":
    main()
