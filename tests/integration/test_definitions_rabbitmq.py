#!/usr/bin/python3
"""Definitions go both ways between Warren and RabbitMQ: what Warren
exports (GET /api/definitions) imports into a private RabbitMQ 3.10 node
(rabbitmqctl import_definitions), and there the users log in with the
passwords they were given in Warren, and the vhost, permissions, queue
arguments, exchange and binding are RabbitMQ's own again.  (The other
way, a RabbitMQ export into Warren, is test_users.py and
test_mgmt_api.py.)

The RabbitMQ node is started the way bench/compare starts it (private
ports, data and Erlang cookie) and stopped afterwards.
"""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pika  # noqa: E402

from harness import Broker, main, require_own_broker  # noqa: E402
from test_mgmt_api import Api  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


def load_compare():
    """bench/compare as a module, for its RabbitMQ launcher."""
    path = os.path.join(HERE, "..", "..", "bench", "compare")
    loader = importlib.machinery.SourceFileLoader("warren_compare", path)
    spec = importlib.util.spec_from_loader("warren_compare", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class DefinitionsIntoRabbitMQ(unittest.TestCase):
    def setUp(self):
        require_own_broker("starts warrend and a private RabbitMQ node")
        if not os.access(RABBITMQ_SERVER, os.X_OK):
            self.skipTest("%s is missing (scripts/bootstrap installs Debian's "
                          "rabbitmq-server)" % RABBITMQ_SERVER)

    def test_warren_export_imports_into_rabbitmq(self):
        with Broker() as b:
            api = Api(b)
            api.ok("PUT", "/vhosts/wv")
            api.ok("PUT", "/users/wu", {"password": "wu-pw", "tags": "management"})
            api.ok("PUT", "/permissions/wv/wu",
                   {"configure": "^w", "write": ".*", "read": ".*"})
            api.ok("PUT", "/queues/wv/wq", {"arguments": {"x-max-length": 7,
                                                          "x-message-ttl": 60000}})
            api.ok("PUT", "/exchanges/wv/wx", {"type": "topic"})
            api.ok("POST", "/bindings/wv/e/wx/q/wq", {"routing_key": "w.#"})
            exported = api.ok("GET", "/definitions")

        compare = load_compare()
        tmp = tempfile.mkdtemp(prefix="warren-defs-rmq-")
        try:
            path = os.path.join(tmp, "from-warren.json")
            with open(path, "w") as f:
                json.dump(exported, f)
            node = compare.RabbitMQ(tmp)

            def ctl(*args):
                p = subprocess.run([RABBITMQCTL, "-n", node.node] + list(args),
                                   env=node.env, capture_output=True, text=True,
                                   timeout=120)
                self.assertEqual(p.returncode, 0, "%s: %s%s" % (args, p.stdout, p.stderr))
                return p

            ctl("import_definitions", path)
            # The password set in Warren works in RabbitMQ: same hashes.
            conn = pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", node.port, "wv", pika.PlainCredentials("wu", "wu-pw")))
            ch = conn.channel()
            ch.queue_declare("wq", durable=True, passive=True)
            ch.confirm_delivery()
            ch.basic_publish("wx", "w.x", b"routed by RabbitMQ", mandatory=True)
            self.assertEqual(ch.queue_declare("wq", durable=True, passive=True)
                             .method.message_count, 1)
            conn.close()

            back = os.path.join(tmp, "from-rabbitmq.json")
            ctl("export_definitions", back)
            with open(back) as f:
                rmq = json.load(f)
            users = {u["name"]: u for u in rmq["users"]}
            mine = {u["name"]: u for u in exported["users"]}
            self.assertEqual(users["wu"]["password_hash"], mine["wu"]["password_hash"])
            self.assertEqual(users["wu"]["tags"], ["management"])
            self.assertIn({"user": "wu", "vhost": "wv", "configure": "^w",
                           "write": ".*", "read": ".*"}, rmq["permissions"])
            q = [q for q in rmq["queues"] if q["name"] == "wq"][0]
            self.assertEqual(q["arguments"], {"x-max-length": 7, "x-message-ttl": 60000})
            self.assertIn(("wx", "wq", "w.#"), [(x["source"], x["destination"],
                                                 x["routing_key"])
                                                for x in rmq["bindings"]])
        finally:
            if "compare" in locals():
                compare.stop_all()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
