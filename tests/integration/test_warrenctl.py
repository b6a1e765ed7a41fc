#!/usr/bin/python3
"""warrenctl, the admin CLI, against a running warrend: every verb, what
it changes checked with pika or the management API, its tables and JSON,
its exit codes (0 done, 1 refused, 2 usage, 3 unreachable), --help for
every verb, and credentials from the environment and an rc file.
"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pika  # noqa: E402
import pika.exceptions  # noqa: E402

from harness import BrokerTestCase, find_warrenctl, free_port, main, wait_until, require_own_broker  # noqa: E402

VERBS = ["status", "list", "declare queue", "declare exchange", "declare binding",
         "delete queue", "delete exchange", "delete binding", "purge queue",
         "add user", "delete user", "change password", "set user tags",
         "set permissions", "clear permissions", "set vhost limit",
         "clear vhost limit", "set user limit", "clear user limit",
         "add vhost", "delete vhost",
         "close connection", "publish", "trace route", "trace on", "trace off", "trace show", "browse",
         "show queue", "get", "export", "import"]


class Warrenctl(BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        require_own_broker("runs warrenctl against warrend's management port")
        super().setUpClass()

    def ctl(self, *args, rc=0, stdin=None, env=None, port=None):
        argv = [find_warrenctl(), "-P", str(port or self.broker.mgmt_port)]
        e = dict(os.environ, HOME=tempfile.gettempdir() + "/no-such-home")
        e.pop("WARRENCTL_USER", None)
        e.pop("WARRENCTL_PASSWORD", None)
        e.update(env or {})
        p = subprocess.run(argv + list(args), capture_output=True, text=True,
                           input=stdin, env=e, timeout=60)
        self.assertEqual(p.returncode, rc, "%s -> %d\n%s%s" % (
            args, p.returncode, p.stdout, p.stderr))
        return p

    def rows(self, *args):
        """A table's rows as dicts (the header names the columns)."""
        lines = self.ctl(*args).stdout.splitlines()
        header = lines[0].split()
        return [dict(zip(header, line.split())) for line in lines[1:]]

    def js(self, *args):
        return json.loads(self.ctl(*args, "--format", "json").stdout)

    def amqp(self, **kw):
        return pika.BlockingConnection(self.broker.params(**kw))

    # ---------------------------------------------------------------------
    def test_status(self):
        out = self.ctl("status").stdout
        self.assertRegex(out, r"product_name\s+Warren")
        self.assertEqual(self.js("status")["product_name"], "Warren")

    def test_queue_exchange_binding_publish_get_purge(self):
        self.ctl("declare", "queue", "c-q", "--arg", "x-max-length=10")
        self.ctl("declare", "exchange", "c-x", "topic")
        self.ctl("declare", "binding", "c-x", "c-q", "--routing-key", "a.#")
        q = [r for r in self.rows("list", "queues") if r["name"] == "c-q"][0]
        self.assertEqual((q["durable"], q["messages_ready"]), ("true", "0"))
        conn = self.amqp()
        ch = conn.channel()
        # The AMQP side sees the same queue, arguments included.
        ch.queue_declare("c-q", durable=True, arguments={"x-max-length": 10})
        self.assertIn(("c-x", "c-q", "a.#"),
                      [(b["source"], b["destination"], b["routing_key"])
                       for b in self.js("list", "bindings")])
        self.assertIn("routed to any queue",
                      self.ctl("publish", "c-x", "nomatch", "x").stdout)
        self.ctl("publish", "c-x", "a.b", "hello", "--persistent")
        self.ctl("publish", "", "c-q", stdin="from stdin")
        got = self.js("get", "c-q", "--count", "5")
        self.assertEqual([g["payload"] for g in got], ["hello", "from stdin"])
        self.assertEqual(got[0]["properties"], {"delivery_mode": 2})
        self.assertEqual(ch.queue_declare("c-q", passive=True).method.message_count, 2)
        self.ctl("get", "c-q", "--ack")
        self.assertEqual(ch.queue_declare("c-q", passive=True).method.message_count, 1)
        self.ctl("purge", "queue", "c-q")
        self.assertEqual(ch.queue_declare("c-q", passive=True).method.message_count, 0)
        self.assertIn("1 binding deleted",
                      self.ctl("delete", "binding", "c-x", "c-q",
                               "--routing-key", "a.#").stdout)
        self.ctl("delete", "binding", "c-x", "c-q", "--routing-key", "a.#", rc=1)
        ch.basic_publish("", "c-q", b"keep")
        self.ctl("delete", "queue", "c-q", "--if-empty", rc=1)
        self.ctl("delete", "queue", "c-q")
        self.ctl("delete", "exchange", "c-x")
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker):
            ch.queue_declare("c-q", passive=True)
        conn.close()

    def test_users_vhosts_permissions(self):
        self.ctl("add", "user", "c-u", "-", "--tags", "management", stdin="pw1\n")
        self.ctl("add", "vhost", "c-v")
        self.ctl("--vhost", "c-v", "set", "permissions", "c-u", ".*", ".*", ".*")
        self.amqp(user="c-u", password="pw1", vhost="c-v").close()
        self.ctl("change", "password", "c-u", "pw2")
        self.amqp(user="c-u", password="pw2", vhost="c-v").close()
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError):
            self.amqp(user="c-u", password="pw1", vhost="c-v")
        self.ctl("set", "user", "tags", "c-u", "monitoring", "management")
        users = {u["name"]: u for u in self.js("list", "users")}
        self.assertEqual(users["c-u"]["tags"], ["monitoring", "management"])
        self.amqp(user="c-u", password="pw2", vhost="c-v").close()
        perms = self.js("--vhost", "c-v", "list", "permissions")
        # The vhost's creator (guest) got every permission on it, as in RabbitMQ.
        self.assertEqual(sorted((p["user"], p["read"]) for p in perms),
                         [("c-u", ".*"), ("guest", ".*")])
        self.assertIn("c-v", [r["name"] for r in self.rows("list", "vhosts")])
        self.ctl("--vhost", "c-v", "clear", "permissions", "c-u")
        with self.assertRaises(pika.exceptions.ProbableAccessDeniedError):
            self.amqp(user="c-u", password="pw2", vhost="c-v")
        self.ctl("delete", "vhost", "c-v")
        self.ctl("delete", "user", "c-u")
        self.ctl("delete", "user", "c-u", rc=1)
        self.assertNotIn("c-u", [u["name"] for u in self.js("list", "users")])

    def test_limits(self):
        self.ctl("add", "vhost", "l-v")
        self.ctl("add", "user", "l-u", "pw")
        self.ctl("--vhost", "l-v", "set", "permissions", "l-u", ".*", ".*", ".*")
        self.ctl("--vhost", "l-v", "set", "vhost", "limit", "max-connections", "1")
        self.ctl("set", "user", "limit", "l-u", "max-channels", "1")
        self.assertEqual(self.js("--vhost", "l-v", "list", "vhost-limits"),
                         [{"vhost": "l-v", "value": {"max-connections": 1}}])
        self.assertEqual(self.js("list", "user-limits"),
                         [{"user": "l-u", "value": {"max-channels": 1}}])
        conn = self.amqp(user="l-u", password="pw", vhost="l-v")
        conn.channel()
        with self.assertRaises(pika.exceptions.ProbableAccessDeniedError):
            self.amqp(user="l-u", password="pw", vhost="l-v")
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker):
            conn.channel()
        self.ctl("--vhost", "l-v", "clear", "vhost", "limit", "max-connections")
        self.ctl("clear", "user", "limit", "l-u", "max-channels")
        conn = self.amqp(user="l-u", password="pw", vhost="l-v")
        conn.channel()
        conn.channel()
        conn.close()
        self.ctl("set", "user", "limit", "l-u", "max-channels", "many", rc=2)
        self.ctl("set", "user", "limit", "l-u", "max-bananas", "1", rc=1)
        self.ctl("delete", "vhost", "l-v")
        self.ctl("delete", "user", "l-u")

    def test_connections_channels_consumers_close(self):
        conn = self.amqp()
        ch = conn.channel()
        ch.queue_declare("c-cons", exclusive=True)
        ch.basic_consume("c-cons", lambda *a: None, consumer_tag="c-tag")
        conns = self.js("list", "connections")
        self.assertEqual(len(conns), 1)
        self.assertEqual(len(self.js("list", "channels")), 1)
        self.assertEqual([c["consumer_tag"] for c in self.js("list", "consumers")],
                         ["c-tag"])
        self.ctl("close", "connection", conns[0]["name"])
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            wait_until(lambda: (conn.process_data_events(0.05), False)[1],
                       what="connection.close from the broker")
        self.assertEqual(cm.exception.reply_code, 320)
        self.ctl("close", "connection", "no such connection", rc=1)

    def test_export_import(self):
        self.ctl("declare", "queue", "c-exported")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "defs.json")
            self.ctl("export", path)
            with open(path) as f:
                self.assertIn("c-exported", [q["name"] for q in json.load(f)["queues"]])
            self.ctl("delete", "queue", "c-exported")
            self.ctl("import", path)
            with open(os.path.join(d, "bad.json"), "w") as f:
                f.write("{ not json")
            p = self.ctl("import", os.path.join(d, "bad.json"), rc=1)
            self.assertIn("bad.json:1:", p.stderr)
        self.assertIn("c-exported", [q["name"] for q in self.js("list", "queues")])
        self.ctl("delete", "queue", "c-exported")

    def test_exit_codes_and_messages(self):
        p = self.ctl("delete", "queue", "nope", rc=1)
        self.assertIn("no queue 'nope'", p.stderr)
        self.assertIn("HTTP 404", p.stderr)
        p = self.ctl("list", "things", rc=2)
        self.assertIn("usage:", p.stderr)
        self.ctl("frobnicate", rc=2)
        self.ctl("declare", "queue", rc=2)
        self.ctl("declare", "queue", "a", "b", rc=2)
        self.ctl("declare", "queue", "a", "--bogus", rc=2)
        self.ctl("get", "q", "--count", "zero", rc=2)
        self.ctl("--format", "xml", "status", rc=2)
        p = self.ctl("-u", "guest", "-p", "wrong", "status", rc=1)
        self.assertIn("HTTP 401", p.stderr)
        p = self.ctl("status", rc=3, port=free_port())
        self.assertIn("cannot reach the management API", p.stderr)

    def test_help_for_every_verb(self):
        listed = self.ctl("--help").stdout
        for verb in VERBS:
            self.assertIn(verb, listed)
            p = self.ctl(*verb.split(), "--help")
            self.assertTrue(p.stdout.startswith("usage: warrenctl"), verb)

    def test_credentials_from_env_and_rc(self):
        api = "http://127.0.0.1:%d/api/users/c-env" % self.broker.mgmt_port
        self.ctl("add", "user", "c-env", "envpw", "--tags", "administrator")
        self.ctl("-u", "c-env", "status", rc=1)  # guest's password: refused
        self.ctl("status", env={"WARRENCTL_USER": "c-env",
                                "WARRENCTL_PASSWORD": "envpw"})
        with tempfile.TemporaryDirectory() as d:
            rc_file = os.path.join(d, "rc")
            with open(rc_file, "w") as f:
                f.write("# warrenctl rc\nuser = c-env\npassword = envpw\n")
            self.ctl("status", env={"WARRENCTL_RC": rc_file})
            # The command line wins over the file.
            self.ctl("-p", "wrong", "status", rc=1, env={"WARRENCTL_RC": rc_file})
            with open(rc_file, "w") as f:
                f.write("colour = blue\n")
            p = self.ctl("status", rc=2, env={"WARRENCTL_RC": rc_file})
            self.assertIn("rc:1: unknown key 'colour'", p.stderr)
        self.ctl("delete", "user", "c-env")
        with self.assertRaises(urllib.error.HTTPError):
            req = urllib.request.Request(api)
            req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
            urllib.request.urlopen(req, timeout=30)


if __name__ == "__main__":
    main()
