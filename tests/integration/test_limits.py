#!/usr/bin/python3
"""Limits (issue 14), each with RabbitMQ's key or API and reply:

- connection_max: connection.open refused 530 "connection refused: node
  connection limit (N) is reached";
- vhost limits (PUT /api/vhost-limits/{vhost}/{name} {"value": N}):
  max-connections refuses connection.open with 530, max-queues refuses
  queue.declare of a new queue with 406;
- user limits (PUT /api/user-limits/{user}/{name}): max-connections 530
  at connection.open, max-channels 530 at channel.open (connection-level);
- channel_max (the negotiated maximum, 530 past it) is test_channels.py's;
- consumer_max_per_channel: basic.consume past it 530;
- field tables nest at most 64 deep: a deeper one, in method arguments or
  in message headers, closes the connection with 501 FRAME_ERROR and the
  broker serves everyone else (RabbitMQ 3.10's node can crash on one);
- limits survive a restart (they live in the definitions file, vhost
  limits as RabbitMQ's "vhost-limits" runtime parameter, user limits in
  the user's "limits").
"""

import struct

import pika
import pika.exceptions

from harness import (BASIC_PUBLISH, FRAME_HEADER, QUEUE_DECLARE, BrokerTestCase,
                     content_header_payload, enc_bits, enc_short, enc_shortstr,
                     PikaTestCase, frame, main, method_frame, raw_connect,
                     require_own_broker)
from test_mgmt_api import Api

NOT_ALLOWED = 530
PRECONDITION_FAILED = 406


class LimitsCase(PikaTestCase):
    config = {"connection_max": "4", "consumer_max_per_channel": "3"}

    @classmethod
    def setUpClass(cls):
        require_own_broker("sets limits through warrend's management API")
        super().setUpClass()
        if cls._skip_reason:
            return
        cls.api = Api(cls.broker)

    def tearDown(self):
        for path in ("/vhost-limits/%2F/max-connections",
                     "/vhost-limits/%2F/max-queues",
                     "/user-limits/guest/max-connections",
                     "/user-limits/guest/max-channels"):
            self.api.ok("DELETE", path)
        super().tearDown()

    def refused_open(self, text, **kw):
        with self.assertRaises(pika.exceptions.ProbableAccessDeniedError) as cm:
            self.connect(**kw)
        self.assertIn(text, str(cm.exception))

    def test_connection_max(self):
        for _ in range(4):
            self.connect()
        self.refused_open("connection refused: node connection limit (4) is "
                          "reached")
        # A slot freed is a slot usable again.
        self.conns.pop(0).close()
        self.connect()

    def test_vhost_max_connections(self):
        self.api.ok("PUT", "/vhost-limits/%2F/max-connections", {"value": 2})
        self.assertEqual(self.api.ok("GET", "/vhost-limits/%2F"),
                         [{"vhost": "/", "value": {"max-connections": 2}}])
        self.connect()
        self.connect()
        self.refused_open("access to vhost '/' refused for user 'guest': "
                          "connection limit (2) is reached")
        # 0 refuses every connection; a negative value lifts the limit.
        self.conns.pop().close()
        self.api.ok("PUT", "/vhost-limits/%2F/max-connections", {"value": 0})
        self.refused_open("connection limit (0) is reached")
        self.api.ok("PUT", "/vhost-limits/%2F/max-connections", {"value": -1})
        self.connect()
        self.assertEqual(self.api.ok("GET", "/vhost-limits/%2F"), [])

    def test_vhost_max_queues(self):
        ch = self.connect().channel()
        for q in ("lq-a", "lq-b"):
            ch.queue_declare(q, auto_delete=True)
        self.api.ok("PUT", "/vhost-limits/%2F/max-queues",
                    {"value": len(self.api.ok("GET", "/queues/%2F"))})
        # Redeclaring an existing queue is not a new queue.
        ch.queue_declare("lq-a", auto_delete=True)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.queue_declare("lq-c")
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("cannot declare queue 'lq-c': queue limit in vhost '/'",
                      cm.exception.reply_text)
        # The management API is held to the same limit.
        status, reply, _ = self.api("PUT", "/queues/%2F/lq-d", {})
        self.assertEqual(status, 400, reply)
        self.assertIn("queue limit", reply["reason"])

    def test_user_max_connections(self):
        self.api.ok("PUT", "/user-limits/guest/max-connections", {"value": 1})
        self.assertEqual(self.api.ok("GET", "/user-limits/guest"),
                         [{"user": "guest", "value": {"max-connections": 1}}])
        self.connect()
        self.refused_open("connection refused for user 'guest': user "
                          "connection limit (1) is reached")

    def test_user_max_channels(self):
        self.api.ok("PUT", "/user-limits/guest/max-channels", {"value": 2})
        first = self.connect()
        first.channel()
        second = self.connect()
        second.channel()
        # Counted over all of the user's connections.
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            second.channel()
        self.assertEqual(cm.exception.reply_code, NOT_ALLOWED)
        self.assertIn("number of channels opened for user 'guest' has reached "
                      "the maximum allowed user limit of (2)",
                      cm.exception.reply_text)
        self.assertTrue(first.is_open)

    def test_consumer_max_per_channel(self):
        ch = self.connect().channel()
        q = ch.queue_declare("", auto_delete=True).method.queue
        for _ in range(3):
            ch.basic_consume(q, lambda *a: None)
        # Another channel has its own allowance.
        other = self.connect().channel()
        other.basic_consume(q, lambda *a: None)
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            ch.basic_consume(q, lambda *a: None)
        self.assertEqual(cm.exception.reply_code, NOT_ALLOWED)
        self.assertIn("reached maximum (3) of consumers per channel",
                      cm.exception.reply_text)

    def test_bad_limit_requests(self):
        status, _, _ = self.api("PUT", "/vhost-limits/%2F/max-bananas",
                                {"value": 1})
        self.assertEqual(status, 400)
        status, _, _ = self.api("PUT", "/vhost-limits/%2F/max-queues",
                                {"value": "many"})
        self.assertEqual(status, 400)
        status, _, _ = self.api("PUT", "/user-limits/nobody/max-channels",
                                {"value": 1})
        self.assertEqual(status, 404)
        status, _, _ = self.api("PUT", "/vhost-limits/no-such-vhost/max-queues",
                                {"value": 1})
        self.assertEqual(status, 404)

    def test_limits_survive_restart_and_export(self):
        self.api.ok("PUT", "/vhost-limits/%2F/max-queues", {"value": 1000})
        self.api.ok("PUT", "/user-limits/guest/max-channels", {"value": 7})
        defs = self.api.ok("GET", "/definitions")
        self.assertIn({"vhost": "/", "component": "vhost-limits",
                       "name": "limits", "value": {"max-queues": 1000}},
                      defs["parameters"])
        guest = [u for u in defs["users"] if u["name"] == "guest"][0]
        self.assertEqual(guest["limits"], {"max-channels": 7})
        self.broker.restart()
        self.assertEqual(self.api.ok("GET", "/vhost-limits"),
                         [{"vhost": "/", "value": {"max-queues": 1000}}])
        self.assertEqual(self.api.ok("GET", "/user-limits"),
                         [{"user": "guest", "value": {"max-channels": 7}}])


def nested_table(depth):
    """A field table nested depth deep: {"n": {"n": ... {}}}."""
    t = struct.pack(">I", 0)
    for _ in range(depth - 1):
        inner = enc_shortstr("n") + b"F" + t
        t = struct.pack(">I", len(inner)) + inner
    return t


class FieldTableNesting(BrokerTestCase):
    def declare(self, c, arguments):
        c.send(method_frame(1, QUEUE_DECLARE, enc_short(0) + enc_shortstr("nest-q") +
                            enc_bits(False, False, False, True, False) + arguments))

    def publish_with_headers(self, c, headers):
        c.send(method_frame(1, BASIC_PUBLISH, enc_short(0) + enc_shortstr("") +
                            enc_shortstr("nest-q") + enc_bits(False, False)))
        c.send(frame(FRAME_HEADER, 1, content_header_payload(
            0, raw_props=struct.pack(">H", 0x2000) + headers)))

    def check(self, send, depth, accepted):
        with raw_connect(self.broker) as c:
            c.channel_open(1)
            send(c, nested_table(depth))
            if accepted:
                # A round trip proves the frame was taken.
                self.declare(c, struct.pack(">I", 0))
                c.expect_method((50, 11), 1, timeout=30)
            else:
                c.expect_connection_close(501, timeout=30)
        # Everyone else is served.
        pika.BlockingConnection(self.broker.params()).close()

    def test_arguments_64_deep_accepted_deeper_refused(self):
        self.check(self.declare, 64, True)
        self.check(self.declare, 65, False)
        self.check(self.declare, 10000, False)

    def test_headers_64_deep_accepted_deeper_refused(self):
        self.check(self.publish_with_headers, 64, True)
        self.check(self.publish_with_headers, 65, False)
        self.check(self.publish_with_headers, 10000, False)


if __name__ == "__main__":
    main()
