#!/usr/bin/python3
"""The HTTP management API: RabbitMQ's paths, JSON, status codes and
access rules, checked against what pika sees on the AMQP side.

- Basic auth against the broker's users; tags decide access (401 without
  credentials, with wrong ones, without a management tag, and for
  administrator-only paths without the administrator tag); management
  users see only vhosts they have permissions on.
- /api/whoami, /api/overview (object and message totals follow AMQP
  activity), /api/health/checks/alarms, /api/aliveness-test.
- Vhosts, users and permissions: create (201), update (204), read, delete;
  a vhost deleted under a connection closes it with 320; all of it
  survives kill -9.
- Queues and exchanges: declare with arguments (equivalence checked as on
  AMQP), message counts (ready, unacknowledged), purge, delete with
  if-empty, the default exchange as amq.default, amq.* undeletable.
- /api/definitions: export, and import of a RabbitMQ 3.10.8 export.
- Bad input (malformed JSON, wrong types, unknown paths and methods, NUL
  in a name) gets a 4xx with a JSON error, and the broker goes on.
"""
import base64
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pika  # noqa: E402
import pika.exceptions  # noqa: E402

from harness import (BrokerTestCase, Broker, BrokerError, free_port, main,  # noqa: E402
                     require_own_broker, wait_until)
from test_tls import make_pki  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RABBIT_DEFS = os.path.join(HERE, "..", "data", "rabbitmq-3.10-definitions.json")


class Api:
    def __init__(self, broker, user="guest", password="guest"):
        self.base = "http://127.0.0.1:%d/api" % broker.mgmt_port
        self.user, self.password = user, password

    def __call__(self, method, path, body=None, raw=None, auth=True):
        """(status, parsed JSON or None, headers)."""
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth:
            token = base64.b64encode(("%s:%s" % (self.user, self.password)).encode())
            req.add_header("Authorization", "Basic " + token.decode())
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text, headers = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, text, headers = e.code, e.read(), e.headers
        return status, (json.loads(text) if text else None), headers

    def ok(self, method, path, body=None, expect=(200, 201, 204)):
        status, reply, _ = self(method, path, body)
        if status not in expect:
            raise AssertionError("%s %s: %d %r" % (method, path, status, reply))
        return reply


class MgmtApi(BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        require_own_broker("talks to warrend's management port")
        super().setUpClass()
        cls.api = Api(cls.broker)

    def tearDown(self):
        self.assertTrue(self.broker.alive(), "warrend died")

    def amqp(self, user="guest", password="guest", vhost="/"):
        return pika.BlockingConnection(self.broker.params(
            user=user, password=password, vhost=vhost))

    # ---- authentication and access ------------------------------------------
    def test_auth_required_and_checked(self):
        status, reply, headers = self.api("GET", "/overview", auth=False)
        self.assertEqual(status, 401)
        self.assertIn("Basic", headers["WWW-Authenticate"])
        self.assertEqual(reply["error"], "not_authorized")
        status, _, _ = Api(self.broker, "guest", "wrong")("GET", "/overview")
        self.assertEqual(status, 401)

    def test_tags_decide_access(self):
        api = self.api
        api.ok("PUT", "/users/plain", {"password": "pw", "tags": ""})
        api.ok("PUT", "/users/mgr", {"password": "pw", "tags": "management"})
        api.ok("PUT", "/vhosts/mgr-only")
        api.ok("PUT", "/permissions/mgr-only/mgr",
               {"configure": ".*", "write": ".*", "read": ".*"})
        try:
            status, reply, _ = Api(self.broker, "plain", "pw")("GET", "/overview")
            self.assertEqual((status, reply["reason"]), (401, "Not management user"))
            mgr = Api(self.broker, "mgr", "pw")
            self.assertEqual(mgr.ok("GET", "/whoami"),
                             {"name": "mgr", "tags": ["management"]})
            status, _, _ = mgr("GET", "/users")
            self.assertEqual(status, 401)
            # Only the vhosts it has permissions on.
            self.assertEqual([v["name"] for v in mgr.ok("GET", "/vhosts")],
                             ["mgr-only"])
            # A vhost it may not use: 401 as RabbitMQ's; an unknown one 404.
            status, reply, _ = mgr("GET", "/queues/%2F")
            self.assertEqual((status, reply["reason"]),
                             (401, "User not authorised to access virtual host"))
            status, _, _ = mgr("GET", "/queues/no-such-vhost")
            self.assertEqual(status, 404)
            status, _, _ = mgr("PUT", "/vhosts/new-one")
            self.assertEqual(status, 401)
        finally:
            api.ok("DELETE", "/vhosts/mgr-only")
            api.ok("DELETE", "/users/plain")
            api.ok("DELETE", "/users/mgr")

    def test_whoami(self):
        self.assertEqual(self.api.ok("GET", "/whoami"),
                         {"name": "guest", "tags": ["administrator"]})

    # ---- overview, health --------------------------------------------------
    def test_overview_follows_amqp(self):
        before = self.api.ok("GET", "/overview")
        self.assertEqual(before["product_name"], "Warren")
        self.assertEqual(before["rabbitmq_version"], "3.10.8")
        conn = self.amqp()
        ch = conn.channel()
        ch.queue_declare("ov-q")
        ch.confirm_delivery()
        for i in range(3):
            ch.basic_publish("", "ov-q", b"m%d" % i)
        ch.basic_consume("ov-q", lambda *a: None)  # holds all 3 unacked
        conn.process_data_events(0.2)
        after = self.api.ok("GET", "/overview")
        t0, t1 = before["object_totals"], after["object_totals"]
        self.assertEqual(t1["queues"], t0["queues"] + 1)
        self.assertEqual(t1["consumers"], t0["consumers"] + 1)
        self.assertGreaterEqual(t1["connections"], 1)
        wait_until(lambda: self.api.ok("GET", "/queues/%2F/ov-q")[
            "messages_unacknowledged"] == 3, what="3 unacked")
        totals = self.api.ok("GET", "/overview")["queue_totals"]
        self.assertGreaterEqual(totals["messages_unacknowledged"], 3)
        conn.close()
        self.api.ok("DELETE", "/queues/%2F/ov-q")

    def test_health_and_aliveness(self):
        self.assertEqual(self.api.ok("GET", "/health/checks/alarms"),
                         {"status": "ok"})
        self.assertEqual(self.api.ok("GET", "/aliveness-test/%2F"),
                         {"status": "ok"})
        status, _, _ = self.api("GET", "/aliveness-test/no-such-vhost")
        self.assertEqual(status, 404)
        self.assertEqual(self.api.ok("GET", "/health/checks/port-listener/%d"
                                     % self.broker.port)["status"], "ok")
        status, reply, _ = self.api("GET", "/health/checks/port-listener/1")
        self.assertEqual((status, reply["status"]), (503, "failed"))
        self.assertEqual(self.api.ok("GET", "/health/checks/protocol-listener/amqp")[
            "status"], "ok")
        self.assertEqual(self.api("GET", "/health/checks/protocol-listener/stomp")[0], 503)
        for check in ("virtual-hosts", "local-alarms", "node-is-quorum-critical"):
            self.assertEqual(self.api.ok("GET", "/health/checks/" + check)["status"], "ok")

    # ---- vhosts, users, permissions ------------------------------------------
    def test_vhost_lifecycle_and_connection_forced(self):
        api = self.api
        status, _, _ = api("PUT", "/vhosts/v1")
        self.assertEqual(status, 201)
        status, _, _ = api("PUT", "/vhosts/v1")
        self.assertEqual(status, 204)
        self.assertIn("v1", [v["name"] for v in api.ok("GET", "/vhosts")])
        # Its creator got every permission on it, as in RabbitMQ; without
        # them, 530 at connection.open.
        self.assertEqual(api.ok("GET", "/permissions/v1/guest")["configure"], ".*")
        api.ok("DELETE", "/permissions/v1/guest")
        with self.assertRaises(pika.exceptions.ProbableAccessDeniedError):
            self.amqp(vhost="v1")
        status, _, _ = api("PUT", "/permissions/v1/guest",
                           {"configure": ".*", "write": ".*", "read": ".*"})
        self.assertEqual(status, 201)
        conn = self.amqp(vhost="v1")
        conn.channel().queue_declare("in-v1")
        self.assertEqual([q["name"] for q in api.ok("GET", "/queues/v1")], ["in-v1"])
        # Each vhost its own amq.* exchanges.
        names = [x["name"] for x in api.ok("GET", "/exchanges/v1")]
        self.assertEqual(names, ["", "amq.direct", "amq.fanout", "amq.headers",
                                 "amq.match", "amq.rabbitmq.trace", "amq.topic"])
        api.ok("DELETE", "/vhosts/v1")
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            conn.process_data_events(0)
            wait_until(lambda: (conn.process_data_events(0.05), False)[1],
                       what="connection.close from the broker")
        self.assertEqual(cm.exception.reply_code, 320)
        status, _, _ = api("GET", "/vhosts/v1")
        self.assertEqual(status, 404)
        status, _, _ = api("GET", "/permissions/v1/guest")
        self.assertEqual(status, 404)

    def test_users_and_passwords(self):
        api = self.api
        self.assertEqual(api("PUT", "/users/carol", {"tags": "x"})[0], 400)
        self.assertEqual(api("PUT", "/users/carol",
                             {"password": "c-pw", "tags": "management,monitoring"})[0], 201)
        u = api.ok("GET", "/users/carol")
        self.assertEqual(u["tags"], ["management", "monitoring"])
        self.assertEqual(u["hashing_algorithm"], "rabbit_password_hashing_sha256")
        self.assertNotIn("c-pw", json.dumps(u))
        api.ok("PUT", "/permissions/%2F/carol",
               {"configure": "", "write": "", "read": ".*"})
        self.amqp("carol", "c-pw").close()
        # A hash from RabbitMQ: alice-secret (rabbitmqctl add_user).
        self.assertEqual(api("PUT", "/users/carol", {
            "password_hash": "b+CvgCflk8WC8PMD+QMi+f0sRs4fv0CQvmIzc5TzVuwBd4Gb",
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": ""})[0], 204)
        self.amqp("carol", "alice-secret").close()
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError):
            self.amqp("carol", "c-pw")
        self.assertEqual([p["user"] for p in api.ok("GET", "/users/carol/permissions")],
                         ["carol"])
        self.assertIn("carol", [u["name"] for u in api.ok("GET", "/users")])
        status, reply, _ = api("PUT", "/permissions/%2F/carol",
                               {"configure": "(", "write": "", "read": ""})
        self.assertEqual(status, 400)
        self.assertIn("configure", reply["reason"])
        self.assertEqual(api("DELETE", "/users/carol")[0], 204)
        self.assertEqual(api("GET", "/users/carol")[0], 404)
        self.assertEqual(api("DELETE", "/users/carol")[0], 404)
        self.assertNotIn("carol", [p["user"] for p in api.ok("GET", "/permissions")])
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError):
            self.amqp("carol", "alice-secret")

    # ---- queues and exchanges -------------------------------------------------
    def test_queue_declare_counts_purge_delete(self):
        api = self.api
        self.assertEqual(api("PUT", "/queues/%2F/api-q",
                             {"durable": True, "arguments": {"x-max-length": 5}})[0], 201)
        self.assertEqual(api("PUT", "/queues/%2F/api-q",
                             {"durable": True, "arguments": {"x-max-length": 5}})[0], 204)
        status, reply, _ = api("PUT", "/queues/%2F/api-q",
                               {"durable": True, "arguments": {"x-max-length": 6}})
        self.assertEqual(status, 400)
        self.assertIn("x-max-length", reply["reason"])
        conn = self.amqp()
        ch = conn.channel()
        # The same queue on the AMQP side, equivalent arguments.
        ch.queue_declare("api-q", durable=True, arguments={"x-max-length": 5})
        ch.confirm_delivery()
        for i in range(7):
            ch.basic_publish("", "api-q", b"m%d" % i)
        q = api.ok("GET", "/queues/%2F/api-q")
        self.assertEqual((q["messages_ready"], q["messages"], q["consumers"]), (5, 5, 0))
        self.assertEqual(q["arguments"], {"x-max-length": 5})
        self.assertEqual((q["durable"], q["type"], q["vhost"]), (True, "classic", "/"))
        # Memory follows what the queue holds (5 bodies of 1 KB here).
        empty = api.ok("GET", "/queues/%2F/api-q")["memory"]
        ch.queue_declare("api-mem")
        before = api.ok("GET", "/queues/%2F/api-mem")["memory"]
        for i in range(5):
            ch.basic_publish("", "api-mem", b"x" * 1024)
        full = api.ok("GET", "/queues/%2F/api-mem")["memory"]
        self.assertGreaterEqual(full, before + 5 * 1024)
        ch.queue_purge("api-mem")
        # The bodies are gone; the ring's slots stay for the next ones.
        self.assertLessEqual(api.ok("GET", "/queues/%2F/api-mem")["memory"],
                             full - 5 * 1024)
        ch.queue_delete("api-mem")
        self.assertGreater(empty, 0)
        ch.basic_qos(prefetch_count=2)
        ch.basic_consume("api-q", lambda *a: None)
        wait_until(lambda: api.ok("GET", "/queues/%2F/api-q")[
            "messages_unacknowledged"] == 2, what="2 unacked")
        q = api.ok("GET", "/queues/%2F/api-q")
        self.assertEqual((q["messages_ready"], q["messages"], q["consumers"]), (3, 5, 1))
        self.assertEqual(api("DELETE", "/queues/%2F/api-q?if-empty=true")[0], 400)
        self.assertEqual(api("DELETE", "/queues/%2F/api-q/contents")[0], 204)
        self.assertEqual(api.ok("GET", "/queues/%2F/api-q")["messages_ready"], 0)
        self.assertEqual(api("DELETE", "/queues/%2F/api-q?if-unused=true")[0], 400)
        self.assertEqual(api("DELETE", "/queues/%2F/api-q")[0], 204)
        self.assertEqual(api("GET", "/queues/%2F/api-q")[0], 404)
        self.assertEqual(api("DELETE", "/queues/%2F/api-q")[0], 404)
        conn.close()

    def test_exchanges(self):
        api = self.api
        self.assertEqual(api("PUT", "/exchanges/%2F/api-x", {"type": "topic"})[0], 201)
        x = api.ok("GET", "/exchanges/%2F/api-x")
        self.assertEqual((x["type"], x["durable"], x["internal"]), ("topic", True, False))
        status, _, _ = api("PUT", "/exchanges/%2F/api-x", {"type": "fanout"})
        self.assertEqual(status, 400)
        conn = self.amqp()
        conn.channel().exchange_declare("api-x", "topic", durable=True, passive=True)
        conn.close()
        self.assertEqual(api.ok("GET", "/exchanges/%2F/amq.default")["name"], "")
        status, reply, _ = api("DELETE", "/exchanges/%2F/amq.direct")
        self.assertEqual(status, 403)
        self.assertEqual(api("PUT", "/exchanges/%2F/bad", {"type": "nope"})[0], 400)
        self.assertEqual(api("DELETE", "/exchanges/%2F/api-x")[0], 204)
        self.assertEqual(api("DELETE", "/exchanges/%2F/api-x")[0], 404)

    def test_bindings(self):
        api = self.api
        api.ok("PUT", "/exchanges/%2F/bx", {"type": "direct"})
        api.ok("PUT", "/exchanges/%2F/bx2", {"type": "fanout"})
        api.ok("PUT", "/queues/%2F/bq", {"durable": False})
        status, _, headers = api("POST", "/bindings/%2F/e/bx/q/bq",
                                 {"routing_key": "k1"})
        self.assertEqual((status, headers["Location"]), (201, "k1"))
        status, _, headers = api("POST", "/bindings/%2F/e/bx/q/bq",
                                 {"routing_key": "k2", "arguments": {"a": 1}})
        self.assertEqual(status, 201)
        props = headers["Location"]
        self.assertTrue(props.startswith("k2~"), props)
        api.ok("POST", "/bindings/%2F/e/bx/e/bx2", {"routing_key": "to-x"})
        between = api.ok("GET", "/bindings/%2F/e/bx/q/bq")
        self.assertEqual([(b["routing_key"], b["arguments"]) for b in between],
                         [("k1", {}), ("k2", {"a": 1})])
        # The queue's bindings include the default exchange's, as RabbitMQ.
        qb = api.ok("GET", "/queues/%2F/bq/bindings")
        self.assertEqual([(b["source"], b["routing_key"]) for b in qb],
                         [("", "bq"), ("bx", "k1"), ("bx", "k2")])
        src = api.ok("GET", "/exchanges/%2F/bx/bindings/source")
        self.assertEqual([(b["destination"], b["destination_type"]) for b in src],
                         [("bq", "queue"), ("bq", "queue"), ("bx2", "exchange")])
        dst = api.ok("GET", "/exchanges/%2F/bx2/bindings/destination")
        self.assertEqual([b["source"] for b in dst], ["bx"])
        self.assertIn(("bx", "bq", "k1"), [(b["source"], b["destination"],
                                            b["routing_key"])
                                           for b in api.ok("GET", "/bindings")])
        # They route on the AMQP side.
        conn = self.amqp()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("bx", "k1", b"via-k1", mandatory=True)
        m, _, body = ch.basic_get("bq", auto_ack=True)
        self.assertEqual(body, b"via-k1")
        # One binding by its properties key; delete it.
        self.assertEqual(api.ok("GET", "/bindings/%2F/e/bx/q/bq/" + props)["arguments"],
                         {"a": 1})
        self.assertEqual(api("DELETE", "/bindings/%2F/e/bx/q/bq/k1")[0], 204)
        self.assertEqual(api("DELETE", "/bindings/%2F/e/bx/q/bq/k1")[0], 404)
        with self.assertRaises(pika.exceptions.UnroutableError):
            ch.basic_publish("bx", "k1", b"nowhere", mandatory=True)
        conn.close()
        self.assertEqual(api("POST", "/bindings/%2F/e/bx/q/no-such-q", {})[0], 404)
        self.assertEqual(api("POST", "/bindings/%2F/e/amq.default/q/bq", {})[0], 403)
        for path in ("/exchanges/%2F/bx", "/exchanges/%2F/bx2", "/queues/%2F/bq"):
            api.ok("DELETE", path)

    def test_connections_channels_consumers(self):
        api = self.api
        props = {"connection_name": "api-test-client"}
        conn = pika.BlockingConnection(self.broker.params(client_properties=props))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=7)
        ch.confirm_delivery()
        ch.queue_declare("cq", exclusive=True)
        ch.basic_consume("cq", lambda *a: None, consumer_tag="ctag-1")
        mine = [c for c in api.ok("GET", "/connections")
                if c["client_properties"].get("connection_name") == "api-test-client"]
        self.assertEqual(len(mine), 1)
        c = mine[0]
        self.assertEqual((c["user"], c["vhost"], c["channels"], c["protocol"]),
                         ("guest", "/", 1, "AMQP 0-9-1"))
        self.assertEqual(c["name"], "%s:%d -> %s:%d" % (
            c["peer_host"], c["peer_port"], c["host"], c["port"]))
        self.assertEqual(c["port"], self.broker.port)
        name = urllib.request.quote(c["name"], safe="")
        self.assertEqual(api.ok("GET", "/connections/" + name)["name"], c["name"])
        self.assertGreater(c["recv_oct"], 100)   # at least the handshake
        self.assertGreater(c["send_oct"], 100)
        ch.basic_publish("", "cq", b"counted")
        chans = [x for x in api.ok("GET", "/channels")
                 if x["connection_details"]["name"] == c["name"]]
        self.assertEqual(chans[0]["message_stats"]["publish"], 1)
        stats = api.ok("GET", "/connections/" + name)["message_stats"]
        self.assertEqual((stats["publish"], stats["deliver_get"]), (1, 1))
        self.assertEqual(len(chans), 1)
        self.assertEqual((chans[0]["number"], chans[0]["prefetch_count"],
                          chans[0]["confirm"], chans[0]["consumer_count"]),
                         (1, 7, True, 1))
        cons = [x for x in api.ok("GET", "/consumers/%2F")
                if x["consumer_tag"] == "ctag-1"]
        self.assertEqual(len(cons), 1)
        self.assertEqual((cons[0]["queue"]["name"], cons[0]["ack_required"],
                          cons[0]["prefetch_count"]), ("cq", True, 7))
        # Closing it through the API: 320 CONNECTION_FORCED with the reason.
        req_status = api("DELETE", "/connections/" + name)[0]
        self.assertEqual(req_status, 204)
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            wait_until(lambda: (conn.process_data_events(0.05), False)[1],
                       what="connection.close from the broker")
        self.assertEqual(cm.exception.reply_code, 320)
        wait_until(lambda: api("GET", "/connections/" + name)[0] == 404,
                   what="connection gone")
        # Its exclusive queue went with it.
        self.assertEqual(api("GET", "/queues/%2F/cq")[0], 404)

    def test_publish_and_get(self):
        api = self.api
        api.ok("PUT", "/queues/%2F/pg", {"durable": False})
        status, reply, _ = api("POST", "/exchanges/%2F/amq.default/publish", {
            "routing_key": "pg", "payload": "hello", "payload_encoding": "string",
            "properties": {"content_type": "text/plain", "priority": 3,
                           "headers": {"h": 1}, "message_id": "m-1"}})
        self.assertEqual((status, reply), (200, {"routed": True}))
        api.ok("POST", "/exchanges/%2F/amq.default/publish", {
            "routing_key": "pg", "payload": base64.b64encode(b"\x00\xff").decode(),
            "payload_encoding": "base64", "properties": {}})
        self.assertEqual(api.ok("POST", "/exchanges/%2F/amq.direct/publish", {
            "routing_key": "unbound", "payload": "x", "properties": {}}),
            {"routed": False})
        # What pika sees of the first is what was published.
        conn = self.amqp()
        ch = conn.channel()
        m, props, body = ch.basic_get("pg")
        self.assertEqual(body, b"hello")
        self.assertEqual((props.content_type, props.priority, props.headers,
                          props.message_id), ("text/plain", 3, {"h": 1}, "m-1"))
        ch.basic_nack(m.delivery_tag, requeue=True)
        conn.close()
        # Get with requeue: both, in order, left in the queue.
        got = api.ok("POST", "/queues/%2F/pg/get",
                     {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"})
        self.assertEqual([g["payload"] for g in got],
                         ["hello", base64.b64encode(b"\x00\xff").decode()])
        self.assertEqual([g["payload_encoding"] for g in got], ["string", "base64"])
        self.assertEqual(got[0]["properties"]["headers"], {"h": 1})
        self.assertTrue(got[0]["redelivered"])
        self.assertEqual(got[0]["message_count"], 1)
        self.assertEqual(api.ok("GET", "/queues/%2F/pg")["messages_ready"], 2)
        got = api.ok("POST", "/queues/%2F/pg/get",
                     {"count": 1, "ackmode": "ack_requeue_false", "truncate": 2})
        self.assertEqual((got[0]["payload"], got[0]["payload_bytes"]), ("he", 5))
        self.assertEqual(api.ok("GET", "/queues/%2F/pg")["messages_ready"], 1)
        self.assertEqual(api("POST", "/queues/%2F/pg/get",
                             {"count": 1, "ackmode": "maybe"})[0], 400)
        self.assertEqual(api("POST", "/queues/%2F/pg/get", {"ackmode": "ack_requeue_true"})[0], 400)
        self.assertEqual(api("POST", "/exchanges/%2F/amq.default/publish",
                             {"routing_key": "pg", "payload": "x",
                              "properties": {"priority": 999}})[0], 400)
        self.assertEqual(api("POST", "/exchanges/%2F/amq.rabbitmq.trace/publish",
                             {"routing_key": "x", "payload": "x", "properties": {}})[0], 403)
        self.assertEqual(api("POST", "/exchanges/%2F/nope/publish",
                             {"routing_key": "x", "payload": "x"})[0], 404)
        api.ok("DELETE", "/queues/%2F/pg")

    def test_message_stats_counts_and_rates(self):
        api = self.api
        before = api.ok("GET", "/overview")["message_stats"]
        conn = self.amqp()
        ch = conn.channel()
        ch.queue_declare("ms-q")
        ch.confirm_delivery()
        for i in range(4):
            ch.basic_publish("", "ms-q", b"m%d" % i)
        ch.basic_publish("", "ms-nowhere", b"dropped")
        for _ in range(3):
            m, _, _ = ch.basic_get("ms-q")
            ch.basic_ack(m.delivery_tag)
        ch.basic_get("ms-q", auto_ack=True)
        stats = api.ok("GET", "/queues/%2F/ms-q")["message_stats"]
        self.assertEqual((stats["publish"], stats["deliver_get"], stats["ack"]),
                         (4, 4, 3))
        after = api.ok("GET", "/overview")["message_stats"]
        self.assertEqual(after["publish"] - before["publish"], 5)
        self.assertEqual(after["drop_unroutable"] - before["drop_unroutable"], 1)
        self.assertEqual(after["ack"] - before["ack"], 3)
        self.assertEqual(after["confirm"] - before["confirm"], 5)
        # Rates come from RabbitMQ's 5 s sampling: keep publishing until
        # a sample sees it.
        def rate_seen():
            ch.basic_publish("", "ms-q", b"more")
            return api.ok("GET", "/queues/%2F/ms-q")["message_stats"][
                "publish_details"]["rate"] > 0
        wait_until(rate_seen, timeout=30, interval=0.2, what="a publish rate")
        conn.close()
        api.ok("DELETE", "/queues/%2F/ms-q")

    def test_long_lists_pagination_filters(self):
        api = self.api
        conn = self.amqp()
        ch = conn.channel()
        names = ["pg-%03d" % i for i in range(450)]  # several slices
        for n in names:
            ch.queue_declare(n)
        listed = [q["name"] for q in api.ok("GET", "/queues/%2F")
                  if q["name"].startswith("pg-")]
        self.assertEqual(listed, names)
        page = api.ok("GET", "/queues/%2F?page=2&page_size=100&name=pg-")
        self.assertEqual((page["page"], page["page_size"], page["page_count"],
                          page["filtered_count"], page["item_count"]),
                         (2, 100, 5, 450, 100))
        self.assertEqual([q["name"] for q in page["items"]], names[100:200])
        last = api.ok("GET", "/queues/%2F?page=5&page_size=100&name=pg-")
        self.assertEqual(last["item_count"], 50)
        rx = api.ok("GET", "/queues/%2F?name=%5Epg-4%5B0-4%5D1%24&use_regex=true")
        self.assertEqual([q["name"] for q in rx],
                         ["pg-401", "pg-411", "pg-421", "pg-431", "pg-441"])
        self.assertEqual(api("GET", "/queues?page=0")[0], 400)
        self.assertEqual(api("GET", "/queues?page=1&page_size=501")[0], 400)
        self.assertEqual(api("GET", "/queues?name=(&use_regex=true")[0], 400)
        for n in names:
            ch.queue_delete(n)
        conn.close()

    def test_topic_permissions(self):
        api = self.api
        self.assertEqual(api("PUT", "/topic-permissions/%2F/guest",
                             {"exchange": "amq.topic", "write": "^a\\.",
                              "read": ".*"})[0], 201)
        self.assertEqual(api.ok("GET", "/topic-permissions/%2F/guest"),
                         [{"user": "guest", "vhost": "/", "exchange": "amq.topic",
                           "write": "^a\\.", "read": ".*"}])
        self.assertEqual(api("PUT", "/topic-permissions/%2F/guest",
                             {"exchange": "amq.topic", "write": "(", "read": ""})[0], 400)
        self.assertEqual(api("DELETE", "/topic-permissions/%2F/guest")[0], 204)
        self.assertEqual(api("GET", "/topic-permissions/%2F/guest")[0], 404)

    def test_vhost_definitions(self):
        api = self.api
        api.ok("PUT", "/vhosts/vd1")
        api.ok("PUT", "/vhosts/vd2")
        api.ok("PUT", "/queues/vd1/vq", {"arguments": {"x-max-length": 3}})
        api.ok("PUT", "/exchanges/vd1/vx", {"type": "fanout"})
        api.ok("POST", "/bindings/vd1/e/vx/q/vq", {"routing_key": "k"})
        d = api.ok("GET", "/definitions/vd1")
        self.assertEqual([q["name"] for q in d["queues"]], ["vq"])
        self.assertNotIn("vhost", d["queues"][0])
        self.assertEqual([(b["source"], b["destination"]) for b in d["bindings"]],
                         [("vx", "vq")])
        self.assertNotIn("users", d)
        self.assertEqual(api("POST", "/definitions/vd2", d)[0], 204)
        self.assertEqual(api.ok("GET", "/queues/vd2/vq")["arguments"],
                         {"x-max-length": 3})
        self.assertEqual([b["routing_key"] for b in api.ok("GET", "/bindings/vd2/e/vx/q/vq")],
                         ["k"])
        self.assertEqual(api("GET", "/definitions/no-such-vhost")[0], 404)
        api.ok("DELETE", "/vhosts/vd1")
        api.ok("DELETE", "/vhosts/vd2")

    def test_definitions_round_trip(self):
        """export, wipe, import, export: the same definitions."""
        api = self.api
        api.ok("PUT", "/vhosts/rt")
        api.ok("PUT", "/users/rt-user", {"password": "x", "tags": "management"})
        api.ok("PUT", "/permissions/rt/rt-user",
               {"configure": "^rt", "write": ".*", "read": ".*"})
        api.ok("PUT", "/exchanges/rt/rt-x", {"type": "headers",
                                             "arguments": {"alternate-exchange": "ae"}})
        api.ok("PUT", "/queues/rt/rt-q", {"arguments": {"x-max-priority": 5,
                                                        "x-message-ttl": 60000}})
        api.ok("POST", "/bindings/rt/e/rt-x/q/rt-q",
               {"routing_key": "", "arguments": {"x-match": "any", "k": "v"}})
        first = api.ok("GET", "/definitions")
        api.ok("DELETE", "/vhosts/rt")
        api.ok("DELETE", "/users/rt-user")
        self.assertNotEqual(api.ok("GET", "/definitions"), first)
        self.assertEqual(api("POST", "/definitions", first)[0], 204)
        again = api.ok("GET", "/definitions")
        # Store ids are the queue's identity on disk: kept, so equal too.
        self.assertEqual(again, first)
        api.ok("DELETE", "/vhosts/rt")
        api.ok("DELETE", "/users/rt-user")

    # ---- definitions ---------------------------------------------------------
    def test_definitions_export_and_rabbitmq_import(self):
        api = self.api
        d = api.ok("GET", "/definitions")
        self.assertIn("guest", [u["name"] for u in d["users"]])
        self.assertIn("/", [v["name"] for v in d["vhosts"]])
        with open(RABBIT_DEFS) as f:
            rabbit = json.load(f)
        self.assertEqual(api("POST", "/definitions", rabbit)[0], 204)
        conn = self.amqp("alice", "alice-secret", "tenant-a")
        conn.channel().queue_declare("alice-work", passive=True)
        conn.close()
        self.assertEqual(api.ok("GET", "/queues/tenant-a/alice-work")["arguments"],
                         {"x-max-length": 1000, "x-queue-mode": "lazy"})
        # The guest password hash came from RabbitMQ too: still "guest".
        self.amqp().close()
        api.ok("DELETE", "/vhosts/tenant-a")
        for user in ("alice", "bob"):
            api.ok("DELETE", "/users/" + user)

    # ---- bad input ------------------------------------------------------------
    def test_bad_input_gets_4xx(self):
        api = self.api
        status, reply, _ = api("PUT", "/queues/%2F/bad", raw=b"{not json")
        self.assertEqual(status, 400)
        self.assertEqual(reply["error"], "bad_request")
        self.assertEqual(api("PUT", "/queues/%2F/bad", raw=b"[1,2]")[0], 400)
        self.assertEqual(api("PUT", "/queues/%2F/bad", {"durable": "yes"})[0], 400)
        self.assertEqual(api("PUT", "/queues/%2F/bad", {"arguments": 5})[0], 400)
        self.assertEqual(api("PUT", "/queues/%2F/bad",
                             {"arguments": {"x-max-length": "many"}})[0], 400)
        self.assertEqual(api("GET", "/nope")[0], 404)
        self.assertEqual(api("GET", "/queues/%2F/q/x/y/z/w")[0], 404)
        self.assertEqual(api("GET", "/queues/%2F/a%00b")[0], 404)
        self.assertEqual(api("DELETE", "/overview")[0], 405)
        self.assertEqual(api("POST", "/definitions", {"queues": 3})[0], 400)
        self.assertEqual(api("GET", "/queues/no-such-vhost")[0], 404)
        status, _, _ = api("PUT", "/queues/%2F/bad", {})
        self.assertEqual(status, 201)
        api.ok("DELETE", "/queues/%2F/bad")


class MgmtHostileInput(BrokerTestCase):
    """What a broken or hostile HTTP client sends gets a 4xx or a closed
    socket, never a crash, a wedge or unbounded memory."""

    @classmethod
    def setUpClass(cls):
        require_own_broker("sends raw bytes to warrend's management port")
        super().setUpClass()
        cls.api = Api(cls.broker)

    def raw(self, data, read=True):
        """Send bytes, return what came back before the server closed or
        went quiet (b"" if nothing)."""
        s = socket.create_connection(("127.0.0.1", self.broker.mgmt_port), 30)
        got = b""
        try:
            s.sendall(data)
            s.settimeout(30)
            while read:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                if b"\r\n\r\n" in got and not got.startswith(b"HTTP/1.1 2"):
                    break
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            pass
        finally:
            s.close()
        return got

    def status(self, data):
        first = self.raw(data).split(b"\r\n", 1)[0]
        return int(first.split()[1]) if first.startswith(b"HTTP/") else None

    def tearDown(self):
        # Whatever was sent, the API and AMQP still answer.
        self.assertEqual(self.api.ok("GET", "/whoami")["name"], "guest")
        pika.BlockingConnection(self.broker.params()).close()

    def test_garbage_request_lines(self):
        for junk in (b"\x00\xff\xfe garbage\r\n\r\n", b"GET\r\n\r\n",
                     b"GET /api/overview HTTP/9.9\r\n\r\n",
                     b"BREW /api/overview HTTP/1.1\r\n\r\n"):
            status = self.status(junk)
            self.assertTrue(status is None or 400 <= status < 600, (junk, status))

    def test_bad_percent_encoding_and_auth(self):
        self.assertIn(self.status(b"GET /api/queues/%ZZ/%G HTTP/1.1\r\nHost: x\r\n"
                                  b"Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n"),
                      (400, 404))
        for auth in (b"Basic", b"Basic !!!!", b"Basic " + b"A" * 5000, b"Bearer x"):
            self.assertEqual(self.status(b"GET /api/overview HTTP/1.1\r\nHost: x\r\n"
                                         b"Authorization: " + auth + b"\r\n\r\n"), 401)

    def test_oversized_headers_and_body(self):
        huge = b"X-Junk: " + b"a" * (200 << 10) + b"\r\n"
        status = self.status(b"GET /api/overview HTTP/1.1\r\nHost: x\r\n" + huge + b"\r\n")
        self.assertTrue(status is None or status in (400, 413, 431), status)
        body = b"{" + b" " * (21 << 20) + b"}"
        status = self.status(b"PUT /api/queues/%%2F/big HTTP/1.1\r\nHost: x\r\n"
                             b"Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.assertTrue(status is None or status == 413, status)

    def test_deeply_nested_json(self):
        deep = b"[" * 100000 + b"]" * 100000
        status, reply, _ = self.api("PUT", "/queues/%2F/deep", raw=b'{"arguments":' + deep + b"}")
        self.assertEqual(status, 400)
        status, _, _ = self.api("PUT", "/queues/%2F/deep",
                                raw=b'{"arguments": {"a": ' + b"[" * 200 + b"]" * 200 + b"}}")
        self.assertEqual(status, 400)   # deeper than an AMQP table may nest

    def test_client_gone_mid_listing(self):
        conn = pika.BlockingConnection(self.broker.params())
        ch = conn.channel()
        for i in range(1000):
            ch.queue_declare("gone-%04d" % i)
        s = socket.create_connection(("127.0.0.1", self.broker.mgmt_port), 30)
        s.sendall(b"GET /api/queues HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n")
        s.recv(100)
        s.close()           # mid-stream
        for i in range(1000):
            ch.queue_delete("gone-%04d" % i)
        conn.close()


class MgmtHttps(unittest.TestCase):
    """management.ssl.*: the same API over TLS, checked by a client that
    verifies the certificate against the test CA."""

    def setUp(self):
        require_own_broker("starts warrend with management.ssl.*")
        if shutil.which("openssl") is None:
            raise AssertionError("the openssl command is needed (Debian package openssl)")
        self.pki_dir = tempfile.mkdtemp(prefix="warren-mgmt-tls-")
        self.pki = make_pki(self.pki_dir)

    def tearDown(self):
        shutil.rmtree(self.pki_dir, ignore_errors=True)

    def test_api_over_https(self):
        port = free_port()
        with Broker(config={"management.ssl.port": port,
                            "management.ssl.certfile": self.pki["server.pem"],
                            "management.ssl.keyfile": self.pki["server.key"],
                            "management.ssl.cacertfile": self.pki["ca.pem"]}) as b:
            ctx = ssl.create_default_context(cafile=self.pki["ca.pem"])
            req = urllib.request.Request("https://127.0.0.1:%d/api/whoami" % port)
            req.add_header("Authorization", "Basic " +
                           base64.b64encode(b"guest:guest").decode())
            with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                self.assertEqual(json.loads(r.read())["name"], "guest")
            # A client that does not trust the CA is refused by TLS.
            with self.assertRaises(urllib.error.URLError):
                urllib.request.urlopen(req, context=ssl.create_default_context(),
                                       timeout=30)
            # Plain HTTP still works on its own port.
            self.assertEqual(Api(b).ok("GET", "/whoami")["name"], "guest")

    def test_missing_key_is_a_clear_error(self):
        with self.assertRaises(BrokerError) as cm:
            with Broker(config={"management.ssl.port": free_port(),
                                "management.ssl.certfile": self.pki["server.pem"]}):
                pass
        self.assertIn("management.ssl.keyfile", str(cm.exception))


class MgmtPersistence(unittest.TestCase):
    def setUp(self):
        require_own_broker("restarts warrend")

    def test_api_changes_survive_kill(self):
        with Broker() as b:
            api = Api(b)
            api.ok("PUT", "/vhosts/kept")
            api.ok("PUT", "/users/dave", {"password": "d-pw", "tags": "monitoring"})
            api.ok("PUT", "/permissions/kept/dave",
                   {"configure": ".*", "write": ".*", "read": ".*"})
            api.ok("PUT", "/queues/kept/dq", {"durable": True})
            b.restart(kill=True)
            pika.BlockingConnection(b.params(user="dave", password="d-pw",
                                             vhost="kept")).close()
            self.assertEqual(Api(b, "dave", "d-pw").ok("GET", "/whoami")["tags"],
                             ["monitoring"])
            self.assertEqual(api.ok("GET", "/queues/kept/dq")["durable"], True)

    def test_deleted_vhost_stays_deleted_with_its_messages(self):
        with Broker() as b:
            api = Api(b)
            api.ok("PUT", "/vhosts/gone")
            api.ok("PUT", "/permissions/gone/guest",
                   {"configure": ".*", "write": ".*", "read": ".*"})
            conn = pika.BlockingConnection(b.params(vhost="gone"))
            ch = conn.channel()
            ch.queue_declare("gq", durable=True)
            ch.confirm_delivery()
            for i in range(50):
                ch.basic_publish("", "gq", b"m%d" % i,
                                 pika.BasicProperties(delivery_mode=2))
            conn.close()
            api.ok("DELETE", "/vhosts/gone")
            b.restart(kill=True)
            self.assertEqual(api("GET", "/vhosts/gone")[0], 404)
            self.assertNotIn("gone", [p["vhost"] for p in api.ok("GET", "/permissions")])
            # Recreated, it is empty: the stored messages went with it.
            api.ok("PUT", "/vhosts/gone")
            self.assertEqual(api("GET", "/queues/gone/gq")[0], 404)


if __name__ == "__main__":
    main()
