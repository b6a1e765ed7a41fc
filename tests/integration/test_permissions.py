#!/usr/bin/python3
"""Permission checks on AMQP operations (issue 14), as RabbitMQ 3.10.8
makes them (probed against a private node with this very setup): user
"limited" may configure ^(cfg-.*|amq\\.gen-.*)$, write ^(w-.*|amq\\.default)$
and read ^(r-.*)$ on vhost /.

- declare (not passive) and delete need configure; a passive declare
  checks nothing;
- queue.bind and exchange.bind need write on the destination, then read
  on the source (the destination is named when both fail);
- basic.publish needs write on the exchange ("" is amq.default), checked
  before the exchange's existence;
- basic.consume, basic.get and queue.purge need read on the queue,
  checked before its existence.
A refusal closes the channel with 403 "access to queue 'q' in vhost '/'
refused for user 'limited'" (or exchange), and nothing is changed.
"""

import base64
import json
import urllib.request

import pika
import pika.exceptions

from harness import BrokerTestCase, main, require_own_broker
from test_mgmt_api import Api

ACCESS_REFUSED = 403
NOT_FOUND = 404


class PermissionTest(BrokerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls._skip_reason:
            return
        api = "http://127.0.0.1:%d/api/" % cls.broker.mgmt_port
        auth = "Basic " + base64.b64encode(b"guest:guest").decode()

        def put(path, body):
            req = urllib.request.Request(api + path, data=json.dumps(body).encode(),
                                         method="PUT",
                                         headers={"Authorization": auth,
                                                  "Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=30).close()
        put("users/limited", {"password": "pw", "tags": ""})
        put("permissions/%2F/limited", {"configure": "^(cfg-.*|amq\\.gen-.*)$",
                                        "write": "^(w-.*|amq\\.default)$",
                                        "read": "^(r-.*)$"})
        conn = pika.BlockingConnection(cls.broker.params())
        ch = conn.channel()
        for q in ("cfg-q", "w-q", "r-q", "other-q"):
            ch.queue_declare(q)
        for x in ("cfg-x", "w-x", "r-x", "other-x"):
            ch.exchange_declare(x, "direct")
        conn.close()

    def limited(self):
        conn = pika.BlockingConnection(self.broker.params(user="limited", password="pw"))
        self.addCleanup(lambda: conn.is_open and conn.close())
        return conn

    def refused(self, op, kind, name):
        """op(channel) is refused with 403 naming kind 'name'; the
        connection stays open."""
        conn = self.limited()
        ch = conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            op(ch)
            ch.queue_declare("r-q", passive=True)  # a round trip after a publish
        self.assertEqual(cm.exception.reply_code, ACCESS_REFUSED)
        self.assertEqual(cm.exception.reply_text,
                         "ACCESS_REFUSED - access to %s '%s' in vhost '/' refused "
                         "for user 'limited'" % (kind, name))
        self.assertTrue(conn.is_open)

    def allowed(self, op):
        conn = self.limited()
        op(conn.channel())

    def exists(self, queue=None, exchange=None):
        conn = pika.BlockingConnection(self.broker.params())
        ch = conn.channel()
        try:
            if queue:
                ch.queue_declare(queue, passive=True)
            else:
                ch.exchange_declare(exchange, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker:
            return False
        finally:
            if conn.is_open:
                conn.close()

    def test_declare_needs_configure_passive_needs_nothing(self):
        self.allowed(lambda ch: ch.queue_declare("cfg-new"))
        self.allowed(lambda ch: ch.queue_declare(""))  # amq.gen-...
        self.refused(lambda ch: ch.queue_declare("other-new"), "queue", "other-new")
        self.assertFalse(self.exists(queue="other-new"))
        self.refused(lambda ch: ch.queue_declare("other-q"), "queue", "other-q")
        self.allowed(lambda ch: ch.queue_declare("other-q", passive=True))
        self.allowed(lambda ch: ch.exchange_declare("cfg-xnew", "fanout"))
        self.refused(lambda ch: ch.exchange_declare("other-xnew", "fanout"),
                     "exchange", "other-xnew")
        # before the equivalence check: another type is still a 403
        self.refused(lambda ch: ch.exchange_declare("other-x", "topic"), "exchange", "other-x")
        self.allowed(lambda ch: ch.exchange_declare("other-x", passive=True))

    def test_delete_needs_configure_even_for_missing_objects(self):
        self.refused(lambda ch: ch.queue_delete("other-q"), "queue", "other-q")
        self.assertTrue(self.exists(queue="other-q"))
        self.refused(lambda ch: ch.queue_delete("other-missing"), "queue", "other-missing")
        self.refused(lambda ch: ch.exchange_delete("other-x"), "exchange", "other-x")
        self.assertTrue(self.exists(exchange="other-x"))
        self.allowed(lambda ch: (ch.queue_declare("cfg-tmp"), ch.queue_delete("cfg-tmp")))

    def test_bindings_need_write_on_destination_then_read_on_source(self):
        self.allowed(lambda ch: ch.queue_bind("w-q", "r-x", "k"))
        self.allowed(lambda ch: ch.queue_unbind("w-q", "r-x", "k"))
        self.refused(lambda ch: ch.queue_bind("other-q", "r-x", "k"), "queue", "other-q")
        self.refused(lambda ch: ch.queue_bind("w-q", "other-x", "k"), "exchange", "other-x")
        # both missing: the destination is named
        self.refused(lambda ch: ch.queue_bind("other-q", "other-x", "k"), "queue", "other-q")
        self.allowed(lambda ch: ch.exchange_bind("w-x", "r-x", "k"))
        self.refused(lambda ch: ch.exchange_bind("other-x", "r-x", "k"), "exchange", "other-x")
        self.refused(lambda ch: ch.exchange_bind("w-x", "other-x", "k"), "exchange", "other-x")

    def test_publish_needs_write_on_the_exchange(self):
        self.allowed(lambda ch: (ch.basic_publish("w-x", "k", b"x"),
                                 ch.queue_declare("r-q", passive=True)))
        # the default exchange is amq.default; the target queue is not checked
        self.allowed(lambda ch: (ch.basic_publish("", "other-q", b"x"),
                                 ch.queue_declare("r-q", passive=True)))
        self.refused(lambda ch: ch.basic_publish("other-x", "k", b"x"), "exchange", "other-x")
        self.refused(lambda ch: ch.basic_publish("amq.direct", "k", b"x"),
                     "exchange", "amq.direct")
        # permission before existence
        self.refused(lambda ch: ch.basic_publish("other-missing", "k", b"x"),
                     "exchange", "other-missing")

    def test_publishing_stops_when_permission_is_taken_away(self):
        """The channel's cache of the last allowed exchange does not
        outlive a permission change."""
        conn = self.limited()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("w-x", "k", b"1")
        api = "http://127.0.0.1:%d/api/permissions/%%2F/limited" % self.broker.mgmt_port
        auth = "Basic " + base64.b64encode(b"guest:guest").decode()
        body = {"configure": "^(cfg-.*|amq\\.gen-.*)$", "write": "^(amq\\.default)$",
                "read": "^(r-.*)$"}
        restore = dict(body, write="^(w-.*|amq\\.default)$")

        def put(b):
            req = urllib.request.Request(api, data=json.dumps(b).encode(), method="PUT",
                                         headers={"Authorization": auth,
                                                  "Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=30).close()
        put(body)
        self.addCleanup(put, restore)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.basic_publish("w-x", "k", b"2")
        self.assertEqual(cm.exception.reply_code, ACCESS_REFUSED)

    def test_consume_get_purge_need_read(self):
        self.allowed(lambda ch: ch.basic_get("r-q"))
        self.allowed(lambda ch: ch.queue_purge("r-q"))
        self.allowed(lambda ch: ch.basic_consume("r-q", lambda *a: None))
        self.refused(lambda ch: ch.basic_get("other-q"), "queue", "other-q")
        self.refused(lambda ch: ch.queue_purge("other-q"), "queue", "other-q")
        self.refused(lambda ch: ch.basic_consume("other-q", lambda *a: None), "queue", "other-q")
        self.refused(lambda ch: ch.basic_get("other-missing"), "queue", "other-missing")
        # with permission, a missing queue is a 404
        conn = self.limited()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            conn.channel().basic_consume("r-missing", lambda *a: None)
        self.assertEqual(cm.exception.reply_code, NOT_FOUND)

    def test_refusals_are_logged(self):
        mark = self.broker.log_mark()
        self.refused(lambda ch: ch.queue_delete("other-q"), "queue", "other-q")
        self.assertIsNotNone(self.broker.wait_for_log(
            lambda l: "user 'limited' refused configure access to queue 'other-q'" in l,
            since=mark))


class MgmtPermissionTest(BrokerTestCase):
    """The management API applies the same rules, with RabbitMQ 3.10.8's
    replies (probed): a refused declare, delete, purge or binding is 401
    {"error": "not_authorised", "reason": "Access refused."}; a refused
    publish a 400 carrying the AMQP refusal; a refused get a 401 with it.
    Tags give no exemption: an administrator without permissions on a vhost
    may not change things in it."""

    @classmethod
    def setUpClass(cls):
        require_own_broker("uses warrend's management API")
        super().setUpClass()
        if cls._skip_reason:
            return
        cls.admin = Api(cls.broker)
        cls.admin.ok("PUT", "/users/mlim", {"password": "pw", "tags": "management"})
        cls.admin.ok("PUT", "/permissions/%2F/mlim", {
            "configure": "^(cfg-.*)$", "write": "^(w-.*|amq\\.default)$",
            "read": "^(r-.*)$"})
        for q in ("cfg-q", "w-q", "r-q", "other-q"):
            cls.admin.ok("PUT", "/queues/%2F/" + q, {})
        for x in ("r-x", "other-x"):
            cls.admin.ok("PUT", "/exchanges/%2F/" + x, {"type": "direct"})
        cls.api = Api(cls.broker, "mlim", "pw")

    def assertRefused(self, method, path, body=None):
        status, reply, _ = self.api(method, path, body)
        self.assertEqual((status, reply),
                         (401, {"error": "not_authorised", "reason": "Access refused."}))

    def test_declare_and_delete_need_configure(self):
        self.api.ok("PUT", "/queues/%2F/cfg-new", {})
        self.assertRefused("PUT", "/queues/%2F/other-new", {})
        self.assertEqual(self.admin("GET", "/queues/%2F/other-new")[0], 404)
        self.assertRefused("DELETE", "/queues/%2F/other-q")
        self.assertEqual(self.admin("GET", "/queues/%2F/other-q")[0], 200)
        self.assertRefused("PUT", "/exchanges/%2F/other-xnew", {"type": "fanout"})
        self.assertRefused("DELETE", "/exchanges/%2F/other-x")
        self.api.ok("DELETE", "/queues/%2F/cfg-new")
        # A missing object is a 404 first, as in RabbitMQ.
        self.assertEqual(self.api("DELETE", "/queues/%2F/other-missing")[0], 404)

    def test_purge_and_get_need_read(self):
        self.api.ok("DELETE", "/queues/%2F/r-q/contents")
        self.assertRefused("DELETE", "/queues/%2F/w-q/contents")
        body = {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}
        self.assertEqual(self.api.ok("POST", "/queues/%2F/r-q/get", body), [])
        status, reply, _ = self.api("POST", "/queues/%2F/w-q/get", body)
        self.assertEqual((status, reply), (401, {
            "error": "not_authorised", "reason": "ACCESS_REFUSED - access to "
            "queue 'w-q' in vhost '/' refused for user 'mlim'"}))

    def test_publish_needs_write(self):
        body = {"properties": {}, "routing_key": "w-q", "payload": "p",
                "payload_encoding": "string"}
        self.assertEqual(self.api.ok("POST", "/exchanges/%2F/amq.default/publish",
                                     body), {"routed": True})
        status, reply, _ = self.api("POST", "/exchanges/%2F/other-x/publish", body)
        self.assertEqual((status, reply), (400, {
            "error": "bad_request", "reason": "403 ACCESS_REFUSED - access to "
            "exchange 'other-x' in vhost '/' refused for user 'mlim'"}))
        self.admin.ok("DELETE", "/queues/%2F/w-q/contents")

    def test_bindings_need_write_on_destination_and_read_on_source(self):
        self.api.ok("POST", "/bindings/%2F/e/r-x/q/w-q", {"routing_key": "k"})
        self.assertRefused("POST", "/bindings/%2F/e/r-x/q/other-q", {"routing_key": "k"})
        self.assertRefused("POST", "/bindings/%2F/e/other-x/q/w-q", {"routing_key": "k"})
        self.admin.ok("POST", "/bindings/%2F/e/other-x/q/w-q", {"routing_key": "k2"})
        self.assertRefused("DELETE", "/bindings/%2F/e/other-x/q/w-q/k2")
        self.api.ok("DELETE", "/bindings/%2F/e/r-x/q/w-q/k")

    def test_administrator_needs_permissions_too(self):
        self.admin.ok("PUT", "/vhosts/noperm")
        self.admin.ok("DELETE", "/permissions/noperm/guest")
        status, reply, _ = self.admin("PUT", "/queues/noperm/q", {})
        self.assertEqual(status, 401, reply)
        # Listing is still allowed.
        self.assertEqual(self.admin.ok("GET", "/queues/noperm"), [])
        self.admin.ok("DELETE", "/vhosts/noperm")


class TopicPermissionTest(BrokerTestCase):
    """Topic permissions, as RabbitMQ 3.10.8 applies them (probed): on
    topic exchanges only, write on the routing key of a publish, read on the
    binding key of queue.bind / exchange.bind from the exchange; an exchange
    without a topic permission allows everything; {username} and {vhost}
    are expanded.  A refusal closes the channel with 403 "access to topic
    'K' in exchange 'X' in vhost '/' refused for user 'U'"."""

    @classmethod
    def setUpClass(cls):
        require_own_broker("sets topic permissions through warrend's API")
        super().setUpClass()
        if cls._skip_reason:
            return
        admin = Api(cls.broker)
        admin.ok("PUT", "/users/tp", {"password": "pw", "tags": ""})
        admin.ok("PUT", "/permissions/%2F/tp",
                 {"configure": ".*", "write": ".*", "read": ".*"})
        admin.ok("PUT", "/topic-permissions/%2F/tp",
                 {"exchange": "amq.topic", "write": "^(a|{username})\\.",
                  "read": "^r\\."})
        admin.ok("PUT", "/topic-permissions/%2F/tp",
                 {"exchange": "amq.direct", "write": "^never$", "read": "^never$"})
        conn = pika.BlockingConnection(cls.broker.params(user="tp", password="pw"))
        ch = conn.channel()
        ch.queue_declare("tp-q")
        ch.exchange_declare("tp-free", "topic")
        ch.exchange_declare("tp-dest", "fanout")
        conn.close()

    def channel(self):
        conn = pika.BlockingConnection(self.broker.params(user="tp", password="pw"))
        self.addCleanup(lambda: conn.is_open and conn.close())
        return conn.channel()

    def refused(self, op, key, exchange="amq.topic"):
        ch = self.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            op(ch)
            ch.queue_declare("tp-q", passive=True)
        self.assertEqual(cm.exception.reply_code, ACCESS_REFUSED)
        self.assertEqual(cm.exception.reply_text,
                         "ACCESS_REFUSED - access to topic '%s' in exchange '%s' in "
                         "vhost '/' refused for user 'tp'" % (key, exchange))

    def allowed(self, op):
        ch = self.channel()
        op(ch)
        ch.queue_declare("tp-q", passive=True)

    def test_publish_checks_write_on_the_routing_key(self):
        self.allowed(lambda ch: ch.basic_publish("amq.topic", "a.x", b"m"))
        self.allowed(lambda ch: ch.basic_publish("amq.topic", "tp.x", b"m"))  # {username}
        self.refused(lambda ch: ch.basic_publish("amq.topic", "b.x", b"m"), "b.x")
        # Other exchanges: a topic one without topic permissions, and a
        # direct one (never checked), allow any key.
        self.allowed(lambda ch: ch.basic_publish("tp-free", "b.x", b"m"))
        self.allowed(lambda ch: ch.basic_publish("amq.direct", "b.x", b"m"))

    def test_bind_checks_read_on_the_binding_key(self):
        self.allowed(lambda ch: ch.queue_bind("tp-q", "amq.topic", "r.x"))
        self.allowed(lambda ch: ch.queue_unbind("tp-q", "amq.topic", "r.x"))
        self.refused(lambda ch: ch.queue_bind("tp-q", "amq.topic", "z.x"), "z.x")
        self.refused(lambda ch: ch.exchange_bind("tp-dest", "amq.topic", "z.y"), "z.y")
        self.allowed(lambda ch: ch.queue_bind("tp-q", "tp-free", "z.x"))

    def test_management_publish_checks_them_too(self):
        api = Api(self.broker)
        api.ok("PUT", "/users/tp-admin", {"password": "pw", "tags": "administrator"})
        api.ok("PUT", "/permissions/%2F/tp-admin",
               {"configure": ".*", "write": ".*", "read": ".*"})
        api.ok("PUT", "/topic-permissions/%2F/tp-admin",
               {"exchange": "amq.topic", "write": "^a\\.", "read": ".*"})
        api = Api(self.broker, "tp-admin", "pw")
        body = {"properties": {}, "routing_key": "a.x", "payload": "p",
                "payload_encoding": "string"}
        api.ok("POST", "/exchanges/%2F/amq.topic/publish", body)
        body["routing_key"] = "b.x"
        status, reply, _ = api("POST", "/exchanges/%2F/amq.topic/publish", body)
        self.assertEqual((status, reply["reason"]), (400, "403 ACCESS_REFUSED - "
                         "access to topic 'b.x' in exchange 'amq.topic' in vhost "
                         "'/' refused for user 'tp-admin'"))


if __name__ == "__main__":
    main()
