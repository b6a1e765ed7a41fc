#!/usr/bin/python3
"""Prometheus metrics on prometheus.tcp.port: RabbitMQ's metric names
(rabbitmq_prometheus) whose values follow AMQP activity, Warren's own
(message store, sync latency histogram), the per-object endpoint with
vhost and queue labels, and `promtool check metrics` (Debian's prometheus
package) finding nothing wrong with either.
"""
import os
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pika  # noqa: E402

from harness import (BrokerTestCase, main, metric_samples,  # noqa: E402
                     require_own_broker, wait_until)

PROMTOOL = "/usr/bin/promtool"


class Metrics(BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        require_own_broker("scrapes warrend's metrics port")
        super().setUpClass()

    def test_values_follow_amqp(self):
        ctype, text = self.broker.metrics()
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        before = metric_samples(text)
        conn = pika.BlockingConnection(self.broker.params())
        ch = conn.channel()
        ch.queue_declare("m-q", durable=True)
        ch.confirm_delivery()
        for i in range(5):
            ch.basic_publish("", "m-q", b"x" * 100,
                             pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("", "m-nowhere", b"lost")
        m, _, _ = ch.basic_get("m-q")
        ch.basic_ack(m.delivery_tag)
        ch.basic_consume("m-q", lambda *a: None)
        wait_until(lambda: metric_samples(self.broker.metrics()[1])[
            "rabbitmq_queue_messages_unacked"] == 4, what="4 unacked")
        now = metric_samples(self.broker.metrics()[1])
        self.assertEqual(now["rabbitmq_connections"], before["rabbitmq_connections"] + 1)
        self.assertEqual(now["rabbitmq_channels"], before["rabbitmq_channels"] + 1)
        self.assertEqual(now["rabbitmq_consumers"], before["rabbitmq_consumers"] + 1)
        self.assertEqual(now["rabbitmq_queues"], before["rabbitmq_queues"] + 1)
        self.assertEqual(now["rabbitmq_queue_messages_ready"], 0)
        self.assertEqual(now["rabbitmq_queue_messages"], 4)
        delta = lambda k: now[k] - before[k]  # noqa: E731
        self.assertEqual(delta("rabbitmq_global_messages_received_total"), 6)
        self.assertEqual(delta("rabbitmq_global_messages_routed_total"), 5)
        self.assertEqual(delta("rabbitmq_global_messages_unroutable_dropped_total"), 1)
        self.assertEqual(delta("rabbitmq_global_messages_confirmed_total"), 6)
        self.assertEqual(delta("rabbitmq_global_messages_delivered_total"), 5)
        self.assertEqual(delta("rabbitmq_global_messages_delivered_get_total"), 1)
        self.assertEqual(delta("rabbitmq_global_messages_acknowledged_total"), 1)
        self.assertEqual(delta("rabbitmq_connections_opened_total"), 1)
        self.assertEqual(delta("rabbitmq_queues_created_total"), 1)
        # The persistent messages went through the store, and its syncs
        # are in the histogram.
        self.assertGreater(delta("warren_store_written_bytes_total"), 500)
        self.assertGreater(delta("warren_store_sync_seconds_count"), 0)
        self.assertEqual(now['warren_store_sync_seconds_bucket{le="+Inf"}'],
                         now["warren_store_sync_seconds_count"])
        self.assertGreater(now["rabbitmq_process_resident_memory_bytes"], 1 << 20)
        self.assertEqual(now["rabbitmq_alarms_memory_used_watermark"], 0)
        self.assertIn('rabbitmq_build_info{rabbitmq_version="3.10.8",'
                      'product_name="Warren"', text)
        conn.close()
        after = metric_samples(self.broker.metrics()[1])
        self.assertEqual(after["rabbitmq_connections_closed_total"] -
                         before["rabbitmq_connections_closed_total"], 1)

    def test_per_object_labels(self):
        conn = pika.BlockingConnection(self.broker.params())
        ch = conn.channel()
        ch.queue_declare('odd "name"\\x')
        ch.confirm_delivery()
        ch.basic_publish("", 'odd "name"\\x', b"1")
        ch.basic_publish("", 'odd "name"\\x', b"2")
        _, text = self.broker.metrics("/metrics/per-object")
        got = metric_samples(text)
        key = 'rabbitmq_queue_messages_ready{vhost="/",queue="odd \\"name\\"\\\\x"}'
        self.assertEqual(got[key], 2)
        ch.queue_delete('odd "name"\\x')
        conn.close()

    def test_unknown_path_404(self):
        with self.assertRaises(urllib.error.HTTPError) as cm:
            self.broker.metrics("/nope")
        self.assertEqual(cm.exception.code, 404)

    def test_promtool_finds_nothing(self):
        if not os.access(PROMTOOL, os.X_OK):
            self.skipTest("%s is missing (scripts/bootstrap installs Debian's "
                          "prometheus package for it)" % PROMTOOL)
        conn = pika.BlockingConnection(self.broker.params())
        conn.channel().queue_declare("promtool-q")
        for path in ("/metrics", "/metrics/per-object"):
            _, text = self.broker.metrics(path)
            p = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""),
                             "promtool on %s" % path)
        conn.close()


if __name__ == "__main__":
    main()
