#!/usr/bin/python3
"""warren-bench against warrend: the load generator's own correctness count
(published, consumed, confirmed, lost, duplicated) must be right, or every
figure in BENCHMARKS.md is suspect.  Short runs; no speed is asserted."""

import json
import os
import subprocess
import threading

from harness import BrokerTestCase, find_warrend, main


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


if __name__ == "__main__":
    main()
