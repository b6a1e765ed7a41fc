#!/usr/bin/python3
"""Browsing a queue, GET /api/queues/{vhost}/{name}/browse and `warrenctl
browse`: ready messages in the order consumers would get them (priority
queues highest level first, paged-out messages read from disk), with
properties, headers, delivery count and a body preview, without taking,
requeuing or reordering anything."""

import base64
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import pika

from harness import (
    BrokerTestCase, PikaTestCase, find_warrenctl, get_all, main, skip_if_external,
    wait_message_count,
)


def browse(broker, queue, user="guest", password="guest", expect=200, **query):
    url = "http://127.0.0.1:%d/api/queues/%%2F/%s/browse" % (
        broker.mgmt_port, urllib.parse.quote(queue, safe=""))
    if query:
        url += "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url)
    req.add_header("Authorization", "Basic " + base64.b64encode(
        ("%s:%s" % (user, password)).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, body = r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        status, body = e.code, json.loads(e.read() or b"{}")
    assert status == expect, (status, body)
    return body


def drain(ch, queue):
    """Every ready message's body, in delivery order, acked."""
    return [body for body, _redelivered in get_all(ch, queue)]


@skip_if_external("uses warrend's management API")
class BrowseTest(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.ch = self.connect().channel()
        self.ch.confirm_delivery()

    def test_order_and_nothing_taken(self):
        ch = self.ch
        ch.queue_declare("b-plain")
        for i in range(10):
            ch.basic_publish("", "b-plain", b"m%d" % i, pika.BasicProperties(
                message_id="id-%d" % i, headers={"n": i}, content_type="text/plain"))
        got = browse(self.broker, "b-plain", count=4, offset=3)
        self.assertEqual(got["messages_ready"], 10)
        self.assertEqual([m["payload"] for m in got["messages"]], ["m3", "m4", "m5", "m6"])
        self.assertEqual([m["position"] for m in got["messages"]], [3, 4, 5, 6])
        first = got["messages"][0]
        self.assertEqual(first["properties"]["message_id"], "id-3")
        self.assertEqual(first["properties"]["headers"], {"n": 3})
        self.assertEqual((first["delivery_count"], first["redelivered"], first["paged_out"]),
                         (0, False, False))
        # browsing twice changes nothing; consumers get the same order
        browse(self.broker, "b-plain", count=100)
        self.assertEqual(ch.queue_declare("b-plain", passive=True).method.message_count, 10)
        self.assertEqual(drain(ch, "b-plain"), [b"m%d" % i for i in range(10)])
        self.assertEqual(browse(self.broker, "b-plain")["messages"], [])

    def test_priority_queue(self):
        ch = self.ch
        ch.queue_declare("b-prio", arguments={"x-max-priority": 3})
        for i in range(9):
            ch.basic_publish("", "b-prio", b"p%d-%d" % (i % 3, i),
                             pika.BasicProperties(priority=i % 3))
        shown = browse(self.broker, "b-prio", count=100)["messages"]
        self.assertEqual([m["priority_level"] for m in shown], [2, 2, 2, 1, 1, 1, 0, 0, 0])
        self.assertEqual([m["payload"].encode() for m in shown], drain(ch, "b-prio"))

    def test_delivery_count_and_unacked_not_shown(self):
        ch = self.ch
        ch.queue_declare("b-limited", arguments={"x-delivery-limit": 5})
        ch.basic_publish("", "b-limited", b"retried")
        ch.basic_publish("", "b-limited", b"held")
        m, _p, _b = ch.basic_get("b-limited")
        ch.basic_nack(m.delivery_tag, requeue=True)
        m, _p, _b = ch.basic_get("b-limited")
        ch.basic_nack(m.delivery_tag, requeue=True)
        m, _p, body = ch.basic_get("b-limited")      # the first again, held
        self.assertEqual(body, b"retried")
        shown = browse(self.broker, "b-limited")["messages"]
        self.assertEqual([s["payload"] for s in shown], ["held"])   # unacked: not ready
        ch.basic_nack(m.delivery_tag, requeue=True)
        shown = browse(self.broker, "b-limited")["messages"]
        self.assertEqual([(s["payload"], s["delivery_count"], s["redelivered"]) for s in shown],
                         [("retried", 3, True), ("held", 0, False)])

    def test_preview_binary_and_ttl(self):
        ch = self.ch
        ch.queue_declare("b-bin", arguments={"x-message-ttl": 600000})
        ch.basic_publish("", "b-bin", bytes(range(256)) * 8)
        ch.basic_publish("", "b-bin", b"short text")
        shown = browse(self.broker, "b-bin", preview=16)["messages"]
        self.assertEqual(shown[0]["payload_encoding"], "base64")
        self.assertEqual(base64.b64decode(shown[0]["payload"]), bytes(range(16)))
        self.assertTrue(shown[0]["payload_truncated"])
        self.assertEqual(shown[0]["payload_bytes"], 2048)
        self.assertEqual((shown[1]["payload"], shown[1]["payload_truncated"]),
                         ("short text", False))
        self.assertTrue(0 < shown[0]["expires_in_ms"] <= 600000)

    def test_errors(self):
        self.ch.queue_declare("b-stream", durable=True, arguments={"x-queue-type": "stream"})
        browse(self.broker, "b-stream", expect=400)
        browse(self.broker, "b-none", expect=404)
        browse(self.broker, "b-stream", expect=400, count=5000)
        # a user without read permission on the queue
        self.broker_api_user("b-reader", read="^nothing$")
        self.ch.queue_declare("b-secret")
        got = browse(self.broker, "b-secret", user="b-reader", password="pw", expect=401)
        self.assertEqual(got["error"], "not_authorised")

    def broker_api_user(self, name, read):
        def put(path, body):
            req = urllib.request.Request("http://127.0.0.1:%d/api/%s" % (
                self.broker.mgmt_port, path), method="PUT", data=json.dumps(body).encode())
            req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
            req.add_header("Content-Type", "application/json")
            urllib.request.urlopen(req, timeout=60).close()
        put("users/" + name, {"password": "pw", "tags": "management"})
        put("permissions/%2F/" + name, {"configure": "", "write": "", "read": read})

    def test_warrenctl(self):
        ch = self.ch
        ch.queue_declare("b-ctl")
        for i in range(3):
            ch.basic_publish("", "b-ctl", b"hello %d" % i, pika.BasicProperties(message_id="x%d" % i))
        e = dict(os.environ, HOME=tempfile.gettempdir() + "/no-such-home")
        p = subprocess.run([find_warrenctl(), "-P", str(self.broker.mgmt_port), "browse", "/",
                            "b-ctl", "-n", "2", "--offset", "1"], capture_output=True,
                           text=True, timeout=60, env=e)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["messages_ready", "3"])
        rows = [l.split() for l in lines[2:]]
        self.assertEqual([(r[0], r[6], r[-2], r[-1]) for r in rows],
                         [("1", "x1", "hello", "1"), ("2", "x2", "hello", "2")])


@skip_if_external("configures warrend to page messages out")
class BrowsePagedTest(BrokerTestCase):
    """A queue whose messages mostly wait on disk."""

    config = {"warren.queue.memory_messages": 10}

    def test_disk_backed_queue(self):
        conn = pika.BlockingConnection(self.broker.params())
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("b-deep", durable=True)
        for i in range(200):
            ch.basic_publish("", "b-deep", b"deep %03d" % i, pika.BasicProperties(
                delivery_mode=2, message_id="d%d" % i))
        wait_message_count(ch, "b-deep", 200)
        shown = browse(self.broker, "b-deep", count=1000)["messages"]
        self.assertEqual(len(shown), 200)
        self.assertEqual([m["payload"] for m in shown], ["deep %03d" % i for i in range(200)])
        paged = [m["position"] for m in shown if m["paged_out"]]
        self.assertTrue(paged and min(paged) >= 10, "paged-out positions: %r" % paged[:5])
        self.assertEqual(shown[150]["properties"]["message_id"], "d150")
        # a window deep in the tail
        window = browse(self.broker, "b-deep", count=5, offset=120)["messages"]
        self.assertEqual([m["payload"] for m in window], ["deep %03d" % i for i in range(120, 125)])
        # nothing moved: a consumer gets them all, in that order
        self.assertEqual(drain(ch, "b-deep"), [b"deep %03d" % i for i in range(200)])
        conn.close()


if __name__ == "__main__":
    main()
