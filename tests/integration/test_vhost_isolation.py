#!/usr/bin/python3
"""Virtual hosts are isolated: nothing in one is visible or reachable from
another.  Two vhosts, iso-a and iso-b, made through the management API
(guest has full permissions on both; "iso-mgr", tagged management, has
permissions on iso-a only).

- Same-named queues and exchanges in two vhosts are distinct objects (their
  own messages, arguments, types, bindings, exclusivity); a passive declare
  of what exists only in the other vhost is a 404.
- Every reference by name resolves in the connection's (or the queue's,
  the exchange's) own vhost: publish, bind/unbind (queue and exchange),
  consume, get, purge, delete, x-dead-letter-exchange (with the default
  exchange and x-dead-letter-routing-key too), alternate-exchange.  What
  names an object of the other vhost is a 404 naming the own vhost, a
  no-op delete/unbind that leaves the other vhost's object alone, or an
  unroutable message; never a message crossing over.
- Direct reply-to: a reply key (amq.rabbitmq.reply-to.…) generated for a
  consumer in iso-a is not deliverable from iso-b (control: it is from
  another connection in iso-a).  Stricter than RabbitMQ 3.10, whose
  rabbit_channel:deliver_reply matches the key alone, whatever the
  publisher's vhost.
- Durable same-named queues keep their own persistent messages over a
  restart.
- The management API, for a management user with permissions on iso-a
  only: listings (queues, exchanges, bindings, vhosts, overview totals)
  show nothing of iso-b, and every iso-b path (GET, DELETE, get, publish,
  bindings) is refused as RabbitMQ 3.10 refuses it: 401
  {"error": "not_authorised", "reason": "User not authorised to access
  virtual host"} (rabbit_mgmt_util:is_authorized_vhost), changing
  nothing and disclosing nothing of B's objects.

Opening a vhost without permissions on it (530) is in test_users.py and
test_mgmt_api.py.  Needs the management API to make vhosts, so it is
skipped against an external broker.
"""

import base64
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import pika
import pika.exceptions

from harness import (BrokerTestCase, NOT_FOUND, main, skip_if_external,
                     wait_until)

VA, VB = "iso-a", "iso-b"
VHOST_REFUSED = {"error": "not_authorised",
                 "reason": "User not authorised to access virtual host"}
MGR, MGR_PW = "iso-mgr", "mgr-pw"
REPLY_TO = "amq.rabbitmq.reply-to"
ALL = {"configure": ".*", "write": ".*", "read": ".*"}


def uniq(stem):
    return "iso-%s-%s" % (stem, os.urandom(3).hex())


def enc(name):
    return urllib.parse.quote(name, safe="")


class Api:
    def __init__(self, broker, user="guest", password="guest"):
        self.base = "http://127.0.0.1:%d/api" % broker.mgmt_port
        self.token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()

    def __call__(self, method, path, body=None):
        """(status, parsed JSON or None)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Basic " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        return status, (json.loads(text) if text else None)

    def ok(self, method, path, body=None):
        status, reply = self(method, path, body)
        if status not in (200, 201, 204):
            raise AssertionError("%s %s: %d %r" % (method, path, status, reply))
        return reply


def make_vhosts(broker):
    api = Api(broker)
    for vh in (VA, VB):
        api.ok("PUT", "/vhosts/" + enc(vh))
        api.ok("PUT", "/permissions/%s/guest" % enc(vh), ALL)
    api.ok("PUT", "/users/" + MGR, {"password": MGR_PW, "tags": "management"})
    api.ok("PUT", "/permissions/%s/%s" % (enc(VA), MGR), ALL)


class IsolationCase(BrokerTestCase):
    """Helpers: connections per vhost, closed after each test."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls._skip_reason:
            return
        make_vhosts(cls.broker)
        cls.api = Api(cls.broker)

    def setUp(self):
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            if c.is_open:
                try:
                    c.close()
                except Exception:
                    pass
        self.assertTrue(self.broker.alive(), "warrend died")

    def conn(self, vhost):
        c = pika.BlockingConnection(self.broker.params(vhost=vhost))
        self.conns.append(c)
        return c

    def chan(self, vhost, confirm=True):
        ch = self.conn(vhost).channel()
        if confirm:
            ch.confirm_delivery()
        return ch

    def count(self, vhost, queue):
        """Messages in queue of vhost (None if it does not exist there)."""
        ch = self.chan(vhost, confirm=False)
        try:
            return ch.queue_declare(queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker as e:
            self.assertEqual(e.reply_code, NOT_FOUND)
            return None

    def exchange_exists(self, vhost, name):
        ch = self.chan(vhost, confirm=False)
        try:
            ch.exchange_declare(name, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker as e:
            self.assertEqual(e.reply_code, NOT_FOUND)
            return False

    def not_found(self, vhost, op, what):
        """op(channel of vhost) closes the channel with 404 naming `what`
        in vhost (the connection's own), and the connection stays open."""
        c = self.conn(vhost)
        ch = c.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            op(ch)
            ch.basic_qos(prefetch_count=1)  # a round trip after a publish
        self.assertEqual(cm.exception.reply_code, NOT_FOUND, cm.exception.reply_text)
        self.assertIn("%s in vhost '%s'" % (what, vhost), cm.exception.reply_text)
        self.assertTrue(c.is_open)

    def publish(self, ch, exchange, key, body, **kw):
        """Publish on a confirm channel; True if routed, False if returned."""
        try:
            ch.basic_publish(exchange, key, body, mandatory=True, **kw)
            return True
        except pika.exceptions.UnroutableError:
            return False

    def bodies(self, vhost, queue):
        ch = self.chan(vhost, confirm=False)
        out = []
        while True:
            m, _, body = ch.basic_get(queue, auto_ack=True)
            if m is None:
                return out
            out.append(body)


@skip_if_external("creates vhosts and users through warrend's management API")
class SameNames(IsolationCase):

    def test_same_named_queues_are_distinct(self):
        q = uniq("q")
        a, b = self.chan(VA), self.chan(VB)
        # Different arguments for the same name: no 406, each its own.
        a.queue_declare(q, arguments={"x-max-length": 2})
        b.queue_declare(q, arguments={"x-message-ttl": 600000})
        for i in range(3):
            self.assertTrue(self.publish(a, "", q, b"a%d" % i))
        self.assertEqual(self.count(VB, q), 0)
        self.assertEqual(self.count(VA, q), 2)  # x-max-length applied in A only
        self.assertTrue(self.publish(b, "", q, b"b0"))
        self.assertEqual(self.count(VA, q), 2)
        self.assertEqual(self.bodies(VB, q), [b"b0"])
        self.assertEqual(self.bodies(VA, q), [b"a1", b"a2"])
        # Each redeclare is checked against its own vhost's arguments.
        a.queue_declare(q, arguments={"x-max-length": 2})
        b.queue_declare(q, arguments={"x-message-ttl": 600000})
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.chan(VB).queue_declare(q, arguments={"x-max-length": 2})
        self.assertEqual(cm.exception.reply_code, 406)
        # Deleting one leaves the other.
        a.queue_delete(q)
        self.assertIsNone(self.count(VA, q))
        self.assertEqual(self.count(VB, q), 0)
        self.chan(VB).queue_delete(q)

    def test_passive_declare_of_other_vhosts_objects_is_404(self):
        q, x = uniq("only-a-q"), uniq("only-a-x")
        a = self.chan(VA)
        a.queue_declare(q)
        a.exchange_declare(x, "fanout")
        self.not_found(VB, lambda ch: ch.queue_declare(q, passive=True), "queue '%s'" % q)
        self.not_found(VB, lambda ch: ch.exchange_declare(x, passive=True),
                       "exchange '%s'" % x)
        self.assertEqual(self.count(VA, q), 0)
        self.assertTrue(self.exchange_exists(VA, x))

    def test_same_named_exchanges_are_distinct(self):
        x, qa, qb = uniq("x"), uniq("qa"), uniq("qb")
        a, b = self.chan(VA), self.chan(VB)
        # Another type under the same name is no 406 across vhosts.
        a.exchange_declare(x, "direct")
        b.exchange_declare(x, "fanout")
        a.queue_declare(qa)
        b.queue_declare(qb)
        a.queue_bind(qa, x, "k")
        b.queue_bind(qb, x, "")
        # B's fanout routes any key to B's queue only; A's direct only "k".
        self.assertTrue(self.publish(b, x, "k", b"b"))
        self.assertFalse(self.publish(a, x, "other", b"a-unroutable"))
        self.assertTrue(self.publish(a, x, "k", b"a"))
        self.assertEqual(self.bodies(VA, qa), [b"a"])
        self.assertEqual(self.bodies(VB, qb), [b"b"])
        # The exchange is deletable in A; B's is untouched and still routes.
        a.exchange_delete(x)
        self.assertFalse(self.exchange_exists(VA, x))
        self.assertTrue(self.publish(b, x, "any", b"b2"))
        self.assertEqual(self.bodies(VB, qb), [b"b2"])

    def test_exclusive_queue_locks_only_in_its_own_vhost(self):
        q1, q2 = uniq("excl-a"), uniq("excl-b")
        self.chan(VA).queue_declare(q1, exclusive=True)
        # Another connection in B: its own q1, no 405 RESOURCE_LOCKED.
        self.chan(VB).queue_declare(q1)
        self.chan(VB).queue_delete(q1)
        # B's exclusive queue is a 404 (not 405) from A.
        self.chan(VB).queue_declare(q2, exclusive=True)
        self.not_found(VA, lambda ch: ch.queue_declare(q2, passive=True),
                       "queue '%s'" % q2)

    def test_default_exchange_routes_within_its_vhost(self):
        q = uniq("only-b")
        self.chan(VB).queue_declare(q)
        self.assertFalse(self.publish(self.chan(VA), "", q, b"from-a"),
                         "a publish in %s reached queue %s of %s" % (VA, q, VB))
        self.assertEqual(self.count(VB, q), 0)
        # Publishing to an exchange of the other vhost: 404.
        x = uniq("only-b-x")
        self.chan(VB).exchange_declare(x, "fanout")
        self.chan(VB).queue_bind(q, x)
        self.not_found(VA, lambda ch: ch.basic_publish(x, "", b"from-a"),
                       "exchange '%s'" % x)
        self.assertEqual(self.count(VB, q), 0)


@skip_if_external("creates vhosts and users through warrend's management API")
class CrossReferences(IsolationCase):

    def setUp(self):
        super().setUp()
        # In B only: exchange bx (fanout) -> queue bq, holding 2 messages.
        self.bx, self.bq = uniq("bx"), uniq("bq")
        b = self.chan(VB)
        b.exchange_declare(self.bx, "fanout")
        b.queue_declare(self.bq)
        b.queue_bind(self.bq, self.bx)
        for i in range(2):
            self.assertTrue(self.publish(b, self.bx, "", b"b%d" % i))

    def assert_b_intact(self):
        self.assertEqual(self.count(VB, self.bq), 2)
        self.assertTrue(self.exchange_exists(VB, self.bx))
        # The binding bx -> bq is still there.
        self.assertTrue(self.publish(self.chan(VB), self.bx, "", b"probe"))
        self.assertEqual(self.count(VB, self.bq), 3)

    def test_queue_operations_on_other_vhosts_queue(self):
        bq = self.bq
        self.not_found(VA, lambda ch: ch.basic_consume(bq, lambda *a: None),
                       "queue '%s'" % bq)
        self.not_found(VA, lambda ch: ch.basic_get(bq), "queue '%s'" % bq)
        self.not_found(VA, lambda ch: ch.queue_purge(bq), "queue '%s'" % bq)
        # A queue.delete of a queue that does not exist (in A) succeeds
        # doing nothing, as in RabbitMQ: B's queue keeps its messages.
        ok = self.chan(VA).queue_delete(bq)
        self.assertEqual(ok.method.message_count, 0)
        ok = self.chan(VA).queue_delete(bq, if_empty=True)
        self.assertEqual(ok.method.message_count, 0)
        self.assertEqual(self.count(VB, bq), 2)
        self.assertEqual(self.bodies(VB, bq), [b"b0", b"b1"])

    def test_exchange_delete_of_other_vhosts_exchange(self):
        self.chan(VA).exchange_delete(self.bx)  # nothing there: a no-op
        self.assertTrue(self.exchange_exists(VB, self.bx))
        self.assert_b_intact()

    def test_queue_bind_across_vhosts_is_404(self):
        ax, aq = uniq("ax"), uniq("aq")
        a = self.chan(VA)
        a.exchange_declare(ax, "fanout")
        a.queue_declare(aq)
        self.not_found(VA, lambda ch: ch.queue_bind(self.bq, ax), "queue '%s'" % self.bq)
        self.not_found(VA, lambda ch: ch.queue_bind(aq, self.bx), "exchange '%s'" % self.bx)
        # Nothing routes across: A's fanout has no binding, B's has only bq.
        self.assertFalse(self.publish(self.chan(VA), ax, "", b"a"))
        self.assertTrue(self.publish(self.chan(VB), self.bx, "", b"b"))
        self.assertEqual(self.count(VA, aq), 0)
        self.assertEqual(self.count(VB, self.bq), 3)
        # Unbinding B's binding from A: nothing there, a no-op.
        self.chan(VA, confirm=False).queue_unbind(self.bq, self.bx)
        self.assertTrue(self.publish(self.chan(VB), self.bx, "", b"b"))
        self.assertEqual(self.count(VB, self.bq), 4)

    def test_exchange_bind_across_vhosts_is_404(self):
        ax, aq = uniq("ax"), uniq("aq")
        a = self.chan(VA)
        a.exchange_declare(ax, "fanout")
        a.queue_declare(aq)
        a.queue_bind(aq, ax)
        # B's exchange as destination, then as source.
        self.not_found(VA, lambda ch: ch.exchange_bind(self.bx, ax),
                       "exchange '%s'" % self.bx)
        self.not_found(VA, lambda ch: ch.exchange_bind(ax, self.bx),
                       "exchange '%s'" % self.bx)
        self.assertTrue(self.publish(self.chan(VA), ax, "", b"a"))
        self.assertTrue(self.publish(self.chan(VB), self.bx, "", b"b"))
        self.assertEqual(self.bodies(VA, aq), [b"a"])
        self.assertEqual(self.count(VB, self.bq), 3)
        # The same names made in A bind within A, never to B's.
        a.exchange_declare(self.bx, "fanout")
        a.exchange_bind(self.bx, ax)
        self.assertFalse(self.publish(self.chan(VA), self.bx, "", b"a2"))  # A's bx: no queue
        self.assertTrue(self.publish(self.chan(VA), ax, "", b"a3"))
        self.assertEqual(self.bodies(VA, aq), [b"a3"])
        self.assertEqual(self.count(VB, self.bq), 3)
        a.exchange_unbind(self.bx, ax)
        a.exchange_delete(self.bx)
        self.assertTrue(self.exchange_exists(VB, self.bx))

    def dead_letter_case(self, args, make_target_in_a):
        """A queue in A dead-letters with args naming what exists only in
        B: a rejected message is dropped.  Then the same target is made in
        A: the next one goes to A's (and the first is not there: it was
        not kept back either).  B's queue gets nothing."""
        aq = uniq("dl-src")
        a = self.chan(VA)
        a.queue_declare(aq, arguments=args)
        self.assertTrue(self.publish(a, "", aq, b"m1"))
        m, _, _ = a.basic_get(aq)
        a.basic_reject(m.delivery_tag, requeue=False)
        # m2 is dead-lettered after m1 (same queue, in order): once m2 is
        # in A's target, m1 had its turn.
        target_q = make_target_in_a(a)
        self.assertTrue(self.publish(a, "", aq, b"m2"))
        m, _, _ = a.basic_get(aq)
        a.basic_reject(m.delivery_tag, requeue=False)
        wait_until(lambda: self.count(VA, target_q) == 1,
                   what="m2 dead-lettered into %s of %s" % (target_q, VA))
        self.assertEqual(self.bodies(VA, target_q), [b"m2"])
        self.assertEqual(self.count(VB, self.bq), 2,
                         "a message dead-lettered in %s reached %s's queue" % (VA, VB))
        self.assertEqual(self.bodies(VB, self.bq), [b"b0", b"b1"])

    def test_dead_letter_exchange_of_other_vhost_is_not_used(self):
        def make(a):
            q = uniq("a-dlq")
            a.exchange_declare(self.bx, "fanout")
            a.queue_declare(q)
            a.queue_bind(q, self.bx)
            return q
        self.dead_letter_case({"x-dead-letter-exchange": self.bx}, make)

    def test_dead_letter_routing_key_to_other_vhosts_queue(self):
        def make(a):
            a.queue_declare(self.bq)  # the same name, in A
            return self.bq
        self.dead_letter_case({"x-dead-letter-exchange": "",
                               "x-dead-letter-routing-key": self.bq}, make)

    def test_dead_letter_by_ttl_to_other_vhosts_exchange(self):
        aq = uniq("ttl-src")
        a = self.chan(VA)
        a.queue_declare(aq, arguments={"x-message-ttl": 0,
                                       "x-dead-letter-exchange": self.bx})
        self.assertTrue(self.publish(a, "", aq, b"expired"))
        # Made in A afterwards: a second expiry lands there, not in B.
        aq2 = uniq("a-dlq")
        a.exchange_declare(self.bx, "fanout")
        a.queue_declare(aq2)
        a.queue_bind(aq2, self.bx)
        self.assertTrue(self.publish(a, "", aq, b"expired2"))
        wait_until(lambda: self.count(VA, aq2) == 1, what="expiry dead-lettered in A")
        self.assertEqual(self.bodies(VA, aq2), [b"expired2"])
        self.assertEqual(self.bodies(VB, self.bq), [b"b0", b"b1"])

    def test_alternate_exchange_of_other_vhost_is_not_used(self):
        ax = uniq("ax")
        a = self.chan(VA)
        a.exchange_declare(ax, "direct", arguments={"alternate-exchange": self.bx})
        self.assertFalse(self.publish(a, ax, "nowhere", b"a1"),
                         "unroutable in %s was routed (through %s's alternate exchange?)"
                         % (VA, VB))
        self.assertEqual(self.count(VB, self.bq), 2)
        # Control: the same alternate exchange made in A is used.
        aq = uniq("a-ae-q")
        a.exchange_declare(self.bx, "fanout")
        a.queue_declare(aq)
        a.queue_bind(aq, self.bx)
        self.assertTrue(self.publish(a, ax, "nowhere", b"a2"))
        self.assertEqual(self.bodies(VA, aq), [b"a2"])
        self.assertEqual(self.bodies(VB, self.bq), [b"b0", b"b1"])


@skip_if_external("creates vhosts and users through warrend's management API")
class DirectReplyTo(IsolationCase):

    def test_reply_key_of_one_vhost_is_not_deliverable_from_another(self):
        client = self.conn(VA)
        cch = client.channel()
        replies = []
        cch.basic_consume(REPLY_TO, lambda ch, m, p, body: replies.append(body),
                          auto_ack=True)
        # A request in A tells the reply key given to the consumer.
        rq = uniq("rpc")
        self.chan(VA).queue_declare(rq)
        cch.basic_publish("", rq, b"req",
                          properties=pika.BasicProperties(reply_to=REPLY_TO))
        getter = self.chan(VA, confirm=False)
        got = []

        def take():
            m, props, _ = getter.basic_get(rq, auto_ack=True)
            if m is not None:
                got.append(props)
            return got
        wait_until(take, what="the request in %s" % rq)
        key = got[0].reply_to
        self.assertTrue(key.startswith(REPLY_TO + "."), key)

        # From B, to that key: must not reach A's consumer.
        b = self.chan(VB)
        routed_from_b = self.publish(b, "", key, b"from-b")
        # Control, and a barrier: from another connection in A it is
        # delivered; it was published after B's was confirmed.
        self.assertTrue(self.publish(self.chan(VA), "", key, b"from-a"))
        deadline = time.monotonic() + 30
        while b"from-a" not in replies and time.monotonic() < deadline:
            client.process_data_events(time_limit=0.05)
        self.assertIn(b"from-a", replies, "the same-vhost reply was not delivered")
        self.assertEqual(replies, [b"from-a"],
                         "a reply published in vhost %s to %s's reply key %s "
                         "was delivered to the consumer in %s" % (VB, VA, key, VA))
        self.assertFalse(routed_from_b,
                         "a mandatory reply from %s to %s's reply key was "
                         "confirmed as routed, not returned" % (VB, VA))


@skip_if_external("creates vhosts and users through warrend's management API")
class Management(IsolationCase):

    def test_management_user_sees_only_its_vhost(self):
        mgr = Api(self.broker, MGR, MGR_PW)
        same, qa, qb, xb = uniq("same"), uniq("qa"), uniq("qb"), uniq("xb")
        a, b = self.chan(VA), self.chan(VB)
        a.queue_declare(same)
        b.queue_declare(same)
        a.queue_declare(qa)
        b.queue_declare(qb)
        b.exchange_declare(xb, "fanout")
        b.queue_bind(qb, xb)
        self.assertTrue(self.publish(b, "", qb, b"b-msg"))
        for i in range(3):
            self.assertTrue(self.publish(b, "", same, b"b%d" % i))
        self.assertTrue(self.publish(a, "", same, b"a0"))

        # The administrator sees the two same-named queues apart.
        self.assertEqual(self.api.ok("GET", "/queues/%s/%s" % (VA, same))["messages"], 1)
        self.assertEqual(self.api.ok("GET", "/queues/%s/%s" % (VB, same))["messages"], 3)

        # Listings: nothing of B.
        queues = mgr.ok("GET", "/queues")
        self.assertEqual({q["vhost"] for q in queues}, {VA})
        names = {q["name"] for q in queues}
        self.assertIn(qa, names)
        self.assertIn(same, names)
        self.assertNotIn(qb, names)
        self.assertEqual([q["messages"] for q in queues if q["name"] == same], [1])
        self.assertEqual({x["vhost"] for x in mgr.ok("GET", "/exchanges")}, {VA})
        self.assertNotIn(xb, [x["name"] for x in mgr.ok("GET", "/exchanges")])
        self.assertEqual({x["vhost"] for x in mgr.ok("GET", "/bindings")}, {VA})
        self.assertEqual([v["name"] for v in mgr.ok("GET", "/vhosts")], [VA])
        totals = mgr.ok("GET", "/overview")["object_totals"]
        self.assertEqual(totals["queues"], len(queues))

        # B's paths: 401 as RabbitMQ's, nothing disclosed.
        for path in ("/queues/%s" % VB, "/queues/%s/%s" % (VB, qb),
                     "/queues/%s/%s/bindings" % (VB, qb),
                     "/exchanges/%s" % VB, "/exchanges/%s/%s" % (VB, xb),
                     "/bindings/%s" % VB, "/vhosts/%s" % VB,
                     "/queues/%s/%s" % (VB, same)):
            status, reply = mgr("GET", path)
            self.assertEqual((status, reply), (401, VHOST_REFUSED), "GET " + path)
        status, reply = mgr("POST", "/queues/%s/%s/get" % (VB, qb),
                        {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
        self.assertEqual((status, reply), (401, VHOST_REFUSED))
        status, reply = mgr("DELETE", "/queues/%s/%s" % (VB, qb))
        self.assertEqual((status, reply), (401, VHOST_REFUSED))
        status, reply = mgr("DELETE", "/exchanges/%s/%s" % (VB, xb))
        self.assertEqual((status, reply), (401, VHOST_REFUSED))
        status, reply = mgr("POST", "/exchanges/%s/amq.default/publish" % VB,
                        {"routing_key": qb, "payload": "m", "properties": {}})
        self.assertEqual((status, reply), (401, VHOST_REFUSED))
        status, reply = mgr("PUT", "/queues/%s/%s" % (VB, uniq("new")), {"durable": False})
        self.assertEqual((status, reply), (401, VHOST_REFUSED))
        status, reply = mgr("DELETE", "/queues/%s/%s/contents" % (VB, qb))
        self.assertEqual((status, reply), (401, VHOST_REFUSED))
        # In its own vhost, B's queue name routes nowhere.
        self.assertEqual(mgr.ok("POST", "/exchanges/%s/amq.default/publish" % VA,
                                {"routing_key": qb, "payload": "m", "properties": {}}),
                         {"routed": False})
        # Nothing of B changed.
        self.assertEqual(self.bodies(VB, qb), [b"b-msg"])
        self.assertEqual(self.count(VB, same), 3)
        self.assertTrue(self.exchange_exists(VB, xb))


@skip_if_external("restarts warrend")
class DurableIsolation(IsolationCase):

    def test_same_named_durable_queues_keep_their_messages_over_restart(self):
        q, x = uniq("dur"), uniq("dur-x")
        a, b = self.chan(VA), self.chan(VB)
        persistent = pika.BasicProperties(delivery_mode=2)
        a.queue_declare(q, durable=True, arguments={"x-max-length": 10})
        b.queue_declare(q, durable=True)
        b.exchange_declare(x, "fanout", durable=True)
        b.queue_bind(q, x)
        for i in range(2):
            self.assertTrue(self.publish(a, "", q, b"a%d" % i, properties=persistent))
        self.assertTrue(self.publish(b, x, "", b"b0", properties=persistent))
        for c in self.conns:
            c.close()
        self.conns = []
        self.broker.restart()
        self.assertEqual(self.bodies(VA, q), [b"a0", b"a1"])
        self.assertEqual(self.bodies(VB, q), [b"b0"])
        self.assertFalse(self.exchange_exists(VA, x))
        # The binding came back in B only.
        self.assertTrue(self.publish(self.chan(VB), x, "", b"b1"))
        self.assertEqual(self.bodies(VB, q), [b"b1"])
        self.assertEqual(self.count(VA, q), 0)
        # Each kept its own arguments.
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.chan(VB).queue_declare(q, durable=True, arguments={"x-max-length": 10})
        self.assertEqual(cm.exception.reply_code, 406)
        self.chan(VA).queue_declare(q, durable=True, arguments={"x-max-length": 10})


if __name__ == "__main__":
    main()
