#!/usr/bin/python3
"""Users, vhosts and permissions as data, with pika.

- A fresh data directory gets the config's default user, tagged
  administrator, with full permissions on the default vhost, written to
  the definitions file in RabbitMQ's format.
- A definitions file exported by RabbitMQ 3.10.8
  (tests/data/rabbitmq-3.10-definitions.json: users alice, bob and guest
  with RabbitMQ's password hashes, vhost tenant-a, permissions, a topic
  permission, queues, an exchange and a binding) imports through
  load_definitions: its users log in with their RabbitMQ passwords, a user
  without permissions on a vhost is refused with 530, and tenant-a is a
  vhost of its own (its own amq.* exchanges, its objects invisible from /).
- All of it survives kill -9 without load_definitions in the config.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pika  # noqa: E402
import pika.exceptions  # noqa: E402

from harness import Broker, main, require_own_broker  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RABBIT_DEFS = os.path.join(HERE, "..", "data", "rabbitmq-3.10-definitions.json")


def definitions(b):
    with open(os.path.join(b.data_dir, "definitions.json")) as f:
        return json.load(f)


class FirstStart(unittest.TestCase):
    def setUp(self):
        require_own_broker("reads the broker's data directory")

    def test_default_user_seeded_as_administrator(self):
        with Broker(config={"default_user": "admin", "default_pass": "s3cret",
                            "default_vhost": "main"}) as b:
            conn = pika.BlockingConnection(b.params())
            conn.close()
            d = definitions(b)
            users = {u["name"]: u for u in d["users"]}
            self.assertEqual(list(users), ["admin"])
            self.assertEqual(users["admin"]["tags"], ["administrator"])
            self.assertEqual(users["admin"]["hashing_algorithm"],
                             "rabbit_password_hashing_sha256")
            self.assertNotIn("s3cret", json.dumps(d), "password stored in clear")
            self.assertEqual([v["name"] for v in d["vhosts"]], ["main"])
            self.assertEqual(d["permissions"], [
                {"user": "admin", "vhost": "main", "configure": ".*",
                 "write": ".*", "read": ".*"}])
            # A new default password in the config does not change an
            # existing user (RabbitMQ seeds only an empty database).
            b.stop()
            with open(b.config_path) as f:
                text = f.read().replace("default_pass = s3cret",
                                        "default_pass = other")
            with open(b.config_path, "w") as f:
                f.write(text)
            b.start()
            pika.BlockingConnection(b.params(password="s3cret")).close()
            with self.assertRaises(pika.exceptions.ProbableAuthenticationError):
                pika.BlockingConnection(b.params(password="other"))


class RabbitMQDefinitions(unittest.TestCase):
    """The users, vhosts and permissions of a RabbitMQ 3.10.8 export."""

    def setUp(self):
        require_own_broker("starts warrend with load_definitions")

    def connect(self, b, user, password, vhost="/"):
        return pika.BlockingConnection(b.params(user=user, password=password,
                                                vhost=vhost))

    def check_access(self, b):
        # RabbitMQ's password hashes verify: alice, and guest's "guest".
        for vhost in ("/", "tenant-a"):
            self.connect(b, "alice", "alice-secret", vhost).close()
        self.connect(b, "guest", "guest", "tenant-a").close()
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError) as cm:
            self.connect(b, "alice", "alice-secreT")
        self.assertIn("403", str(cm.exception))
        # bob has permissions on tenant-a only: / refuses him with 530.
        self.connect(b, "bob", "bob-secret", "tenant-a").close()
        with self.assertRaises(pika.exceptions.ProbableAccessDeniedError) as cm:
            self.connect(b, "bob", "bob-secret", "/")
        self.assertIn("530", str(cm.exception))
        self.assertIn("access to vhost '/' refused for user 'bob'",
                      str(cm.exception))

    def check_isolation(self, b):
        conn = self.connect(b, "alice", "alice-secret", "tenant-a")
        ch = conn.channel()
        q = ch.queue_declare("alice-work", durable=True, passive=True,
                             arguments={"x-max-length": 1000})
        self.assertEqual(q.method.message_count, 0)
        # Its own amq.* exchanges, and the imported binding routes.
        ch.exchange_declare("amq.topic", "topic", durable=True, passive=True)
        ch.confirm_delivery()
        ch.basic_publish("alice-events", "orders.new", b"o1")
        q = ch.queue_declare("alice-work", passive=True)
        self.assertEqual(q.method.message_count, 1)
        conn.close()
        # Nothing of tenant-a is visible from /.
        conn = self.connect(b, "guest", "guest", "/")
        ch = conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.queue_declare("alice-work", passive=True)
        self.assertEqual(cm.exception.reply_code, 404)
        conn.close()

    def test_import_then_restart_without_it(self):
        with Broker(config={"load_definitions": os.path.abspath(RABBIT_DEFS)}) as b:
            self.check_access(b)
            self.check_isolation(b)
            d = definitions(b)
            self.assertEqual(sorted(u["name"] for u in d["users"]),
                             ["alice", "bob", "guest"])
            self.assertEqual(d["topic_permissions"], [
                {"user": "alice", "vhost": "tenant-a", "exchange": "amq.topic",
                 "write": "^orders\\.", "read": "^orders\\."}])

            # Crash, and start without load_definitions: all of it was
            # stored, the message in the durable queue is gone (it was
            # transient), and the default user was not seeded again.
            b.stop(kill=True)
            with open(b.config_path) as f:
                lines = [l for l in f if not l.startswith("load_definitions")]
            with open(b.config_path, "w") as f:
                f.writelines(lines)
            b.start()
            self.check_access(b)
            conn = self.connect(b, "alice", "alice-secret", "tenant-a")
            q = conn.channel().queue_declare("alice-work", passive=True)
            self.assertEqual(q.method.message_count, 0)
            conn.close()
            after = definitions(b)
            for key in ("users", "vhosts", "permissions", "topic_permissions"):
                self.assertEqual(after[key], d[key], key)


if __name__ == "__main__":
    main()
