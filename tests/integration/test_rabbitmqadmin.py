#!/usr/bin/python3
"""RabbitMQ's own management CLI, rabbitmqadmin (Debian's rabbitmq-server
package; RabbitMQ itself is never run), pointed at Warren's management
API: show overview, list, declare, publish, get, purge, export, import,
delete.  What it reports is checked against pika on the AMQP side.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pika  # noqa: E402
import pika.exceptions  # noqa: E402

from harness import BrokerTestCase, main, wait_until, require_own_broker  # noqa: E402

RABBITMQADMIN = "/usr/bin/rabbitmqadmin"


class RabbitmqAdmin(BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        require_own_broker("talks to warrend's management port")
        if not os.access(RABBITMQADMIN, os.X_OK):
            raise unittest.SkipTest("%s is missing (scripts/bootstrap installs "
                                    "Debian's rabbitmq-server for it)" % RABBITMQADMIN)
        super().setUpClass()

    def admin(self, *args, ok=True):
        """rabbitmqadmin's stdout (its JSON parsed when -f raw_json)."""
        argv = ["/usr/bin/python3", RABBITMQADMIN, "-H", "127.0.0.1",
                "-P", str(self.broker.mgmt_port), "-u", "guest", "-p", "guest"]
        p = subprocess.run(argv + list(args), capture_output=True, text=True,
                           timeout=60)
        if ok:
            self.assertEqual(p.returncode, 0, "%s: %s%s" % (args, p.stdout, p.stderr))
        return p

    def json(self, *args):
        return json.loads(self.admin("-f", "raw_json", *args).stdout)

    def test_overview(self):
        o = self.json("show", "overview")
        self.assertEqual(o[0]["rabbitmq_version"], "3.10.8")

    def test_declare_publish_get_purge_delete(self):
        self.admin("declare", "queue", "name=ra-q", "durable=true",
                   'arguments={"x-max-length": 10}')
        self.admin("declare", "exchange", "name=ra-x", "type=topic")
        self.admin("declare", "binding", "source=ra-x", "destination=ra-q",
                   "routing_key=a.#")
        q = [x for x in self.json("list", "queues") if x["name"] == "ra-q"][0]
        self.assertEqual((q["durable"], q["arguments"]), (True, {"x-max-length": 10}))
        self.assertIn(("ra-x", "ra-q", "a.#"),
                      [(b["source"], b["destination"], b["routing_key"])
                       for b in self.json("list", "bindings")])
        self.assertIn(("ra-x", "topic"),
                      [(x["name"], x["type"]) for x in self.json("list", "exchanges")])
        self.admin("publish", "exchange=ra-x", "routing_key=a.b", "payload=hello")
        got = self.json("get", "queue=ra-q", "ackmode=ack_requeue_true")
        self.assertEqual(got[0]["payload"], "hello")
        # Still there (requeued), and pika agrees.
        conn = pika.BlockingConnection(self.broker.params())
        ch = conn.channel()
        self.assertEqual(ch.queue_declare("ra-q", passive=True).method.message_count, 1)
        self.admin("purge", "queue", "name=ra-q")
        self.assertEqual(ch.queue_declare("ra-q", passive=True).method.message_count, 0)
        self.admin("delete", "queue", "name=ra-q")
        self.admin("delete", "exchange", "name=ra-x")
        conn.close()
        self.assertNotIn("ra-q", [x["name"] for x in self.json("list", "queues")])

    def test_users_vhosts_permissions(self):
        self.admin("declare", "vhost", "name=ra-v")
        self.admin("declare", "user", "name=ra-u", "password=ra-pw", "tags=management")
        self.admin("declare", "permission", "vhost=ra-v", "user=ra-u",
                   "configure=.*", "write=.*", "read=.*")
        pika.BlockingConnection(self.broker.params(
            user="ra-u", password="ra-pw", vhost="ra-v")).close()
        self.assertIn(("ra-v", "ra-u"), [(p["vhost"], p["user"])
                                         for p in self.json("list", "permissions")])
        self.assertIn("ra-u", [u["name"] for u in self.json("list", "users")])
        self.assertIn("ra-v", [v["name"] for v in self.json("list", "vhosts")])
        self.admin("delete", "user", "name=ra-u")
        self.admin("delete", "vhost", "name=ra-v")
        self.assertNotIn("ra-v", [v["name"] for v in self.json("list", "vhosts")])

    def test_export_import(self):
        self.admin("declare", "queue", "name=ra-exported", "durable=true")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "defs.json")
            self.admin("export", path)
            with open(path) as f:
                defs = json.load(f)
            self.assertIn("ra-exported", [q["name"] for q in defs["queues"]])
            self.admin("delete", "queue", "name=ra-exported")
            self.admin("import", path)
        self.assertIn("ra-exported", [q["name"] for q in self.json("list", "queues")])
        self.admin("delete", "queue", "name=ra-exported")

    def test_connections_listed_and_closed(self):
        conn = pika.BlockingConnection(self.broker.params())
        names = [c["name"] for c in self.json("list", "connections")]
        self.assertEqual(len(names), 1)
        self.admin("close", "connection", "name=" + names[0])
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            wait_until(lambda: (conn.process_data_events(0.05), False)[1],
                       what="connection.close from the broker")
        self.assertEqual(cm.exception.reply_code, 320)

    def test_errors_are_reported(self):
        p = self.admin("delete", "queue", "name=no-such-queue", ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("Not found", p.stdout + p.stderr)


if __name__ == "__main__":
    main()
