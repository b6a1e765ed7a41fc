#!/usr/bin/python3
"""Dead-lettering (issue 6): x-dead-letter-exchange / x-dead-letter-routing-key;
messages rejected/nacked with requeue=false, expired, or dropped by a length
limit are republished to the DLX with an `x-death` header and
`x-first-death-*` headers, compared field by field (and type by type, through
the raw client) with what RabbitMQ 3.10 produces; count increments and
ordering of x-death entries; cycle detection; the "retry with delay" pattern.

Behaviour checked against RabbitMQ 3.10.8:
  * x-death is an array of tables, the most recent death first; an entry is
    keyed by (queue, reason): a repeat increments its `count` (a long), keeps
    its other fields (time, exchange, routing-keys, original-expiration) and
    moves it to the head of the array.
  * entry keys: count (l), reason (S), queue (S), time (T), exchange (S),
    routing-keys (A of S), and original-expiration (S) only when the message
    had an `expiration` property; the dead-lettered copy has no `expiration`.
  * routing-keys = the publish routing key followed by the CC header's keys;
    the CC header is removed from the dead-lettered copy.
  * x-first-death-exchange / -queue / -reason (S) are set by the first death
    and never change.
  * a message that would be dead-lettered back into a queue it already died
    in, with no rejection anywhere in its x-death history, is dropped; any
    rejection in the cycle lets it go round.
  * the DLX delivery uses the DLX name as exchange and the original routing
    key (or x-dead-letter-routing-key); redelivered is false.
"""

import os
import time

import pika
import pika.exceptions

from harness import (PikaTestCase, BASIC_GET_EMPTY, BASIC_GET_OK, T,
    TEST_TIMEOUT, main, assert_broker_alive, raw_connect, skip_if_external,
    wait_message_count, wait_until)

# Bound for waiting on something that must happen (only reached on failure).
WAIT = 30.0


def uniq(stem):
    return "warren-it-dl-%s-%s" % (stem, os.urandom(4).hex())


class DLBase(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.conn = self.connect()
        self.ch = self.conn.channel()
        self._raw = None

    def tearDown(self):
        if self._raw is not None:
            self._raw.close()
        super().tearDown()

    def queue(self, stem, args=None, name=None):
        name = name or uniq(stem)
        self.ch.queue_declare(queue=name, arguments=args)
        self.to_delete.append(name)
        return name

    def exchange(self, stem, type_="direct"):
        name = uniq(stem)
        self.ch.exchange_declare(name, exchange_type=type_)
        self.exchanges_to_delete.append(name)
        return name

    def dlq(self, stem="dlq"):
        """A fanout DLX with one queue bound: (exchange, queue)."""
        x = self.exchange(stem + "-x", "fanout")
        q = self.queue(stem)
        self.ch.queue_bind(q, x)
        return x, q

    def publish_confirmed(self, rk, body, exchange="", props=None):
        """Publish on a confirm channel: returns once the broker has routed it."""
        if not hasattr(self, "_pub"):
            self._pub = self.conn.channel()
            self._pub.confirm_delivery()
        self._pub.basic_publish(exchange, rk, body, props)

    def count(self, q):
        return self.ch.queue_declare(queue=q, passive=True).method.message_count

    @property
    def raw(self):
        if self._raw is None:
            self._raw = raw_connect(self.broker, timeout=WAIT)
            self._raw.channel_open(1)
        return self._raw

    def raw_get(self, q, timeout=WAIT):
        """basic.get (no-ack) through the raw client, polling until a message
        arrives: (get-ok frame, properties with typed tables, body)."""
        deadline = time.monotonic() + timeout
        while True:
            self.raw.basic_get(1, q, no_ack=True)
            f = self.raw.read_frame_skip_heartbeats()
            if f.method == BASIC_GET_OK:
                header, body, _ = self.raw.read_content(1)
                return f, header["properties"], body
            self.assertEqual(f.method, BASIC_GET_EMPTY, "unexpected %r" % f)
            if time.monotonic() > deadline:
                self.fail("no message arrived in %s within %.1f s" % (q, timeout))
            time.sleep(0.02)

    def get(self, q, timeout=WAIT, ch=None):
        """pika basic.get without ack, polling: (method, props, body)."""
        ch = ch or self.ch
        deadline = time.monotonic() + timeout
        while True:
            m, p, b = ch.basic_get(q, auto_ack=False)
            if m is not None:
                return m, p, b
            if time.monotonic() > deadline:
                self.fail("no message arrived in %s within %.1f s" % (q, timeout))
            time.sleep(0.02)

    def assert_stays_empty(self, q, seconds=0.3):
        """An extra look for a message arriving late (a broker that keeps
        re-dead-lettering); never the judge of whether things settled."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.assertEqual(self.count(q), 0, "queue %s got a message" % q)
            time.sleep(0.05)

    def assert_nothing_dead_lettered_to(self, q):
        """Nothing was routed to q by what this connection did so far: a
        marker published to q now is the first and only message there.
        (Dead-lettering happens as the broker handles the reject, nack,
        close or delete that causes it, so anything it routed to q is ahead
        of a marker sent after that.)"""
        self.assertEqual(self.count(q), 0, "queue %s got a message" % q)
        marker = b"marker-" + os.urandom(4).hex().encode()
        self.publish_confirmed(q, marker)
        m, _p, body = self.get(q)
        self.ch.basic_ack(m.delivery_tag)
        self.assertEqual(body, marker, "queue %s got a message" % q)
        self.assertEqual(self.count(q), 0, "queue %s got a message" % q)

    def check_entry(self, entry, queue, reason, count, exchange, routing_keys,
                    original_expiration=None, t_min=None):
        """One typed x-death entry against what RabbitMQ sends."""
        self.assertEqual(entry.type, "F", "x-death entries are tables")
        d = entry.value
        keys = {"count", "reason", "queue", "time", "exchange", "routing-keys"}
        if original_expiration is not None:
            keys.add("original-expiration")
        self.assertEqual(set(d), keys, "x-death entry keys")
        self.assertEqual(d["count"], T("l", count), "count is a long")
        self.assertEqual(d["reason"], T("S", reason.encode()))
        self.assertEqual(d["queue"], T("S", queue.encode()))
        self.assertEqual(d["exchange"], T("S", exchange.encode()))
        self.assertEqual(d["routing-keys"],
                         T("A", [T("S", k.encode()) for k in routing_keys]))
        if original_expiration is not None:
            self.assertEqual(d["original-expiration"],
                             T("S", original_expiration.encode()))
        self.assertEqual(d["time"].type, "T", "time is a timestamp")
        now = time.time()
        lo = (t_min if t_min is not None else now - 60) - 1
        self.assertTrue(lo <= d["time"].value <= now + 2,
                        "x-death time %r not near now (%d)" % (d["time"].value, now))

    def check_first_death(self, headers, queue, reason, exchange):
        self.assertEqual(headers["x-first-death-queue"], T("S", queue.encode()))
        self.assertEqual(headers["x-first-death-reason"], T("S", reason.encode()))
        self.assertEqual(headers["x-first-death-exchange"], T("S", exchange.encode()))


class DeadLetterTest(DLBase):

    def test_reject_requeue_false_x_death(self):
        dlx, dlq = self.dlq()
        q = self.queue("src", {"x-dead-letter-exchange": dlx})
        t0 = int(time.time())
        props = pika.BasicProperties(content_type="text/plain", message_id="m-1",
                                     correlation_id="c-1", delivery_mode=2,
                                     priority=3, headers={"x-app": "keep", "n": 7})
        self.ch.basic_publish("", q, b"payload", props)
        m, _, _ = self.get(q)
        self.ch.basic_reject(m.delivery_tag, requeue=False)
        f, p, body = self.raw_get(dlq)
        self.assertEqual(body, b"payload")
        self.assertEqual(f["exchange"], dlx)
        self.assertEqual(f["routing_key"], q)
        self.assertFalse(f["redelivered"])
        self.assertEqual(p["content_type"], "text/plain")
        self.assertEqual(p["message_id"], "m-1")
        self.assertEqual(p["correlation_id"], "c-1")
        self.assertEqual(p["delivery_mode"], 2)
        self.assertEqual(p["priority"], 3)
        self.assertNotIn("expiration", p)
        h = p["headers"]
        self.assertEqual(set(h), {"x-app", "n", "x-death", "x-first-death-exchange",
                                  "x-first-death-queue", "x-first-death-reason"})
        self.assertEqual(h["x-app"], T("S", b"keep"))
        self.assertEqual(h["n"], T("I", 7))
        self.assertEqual(h["x-death"].type, "A")
        self.assertEqual(len(h["x-death"].value), 1)
        self.check_entry(h["x-death"].value[0], q, "rejected", 1, "", [q], t_min=t0)
        self.check_first_death(h, q, "rejected", "")
        self.assertEqual(self.count(q), 0)

    def test_nack_requeue_false_multiple(self):
        dlx, dlq = self.dlq()
        q = self.queue("src", {"x-dead-letter-exchange": dlx})
        for i in range(3):
            self.ch.basic_publish("", q, b"%d" % i)
        tags = [self.get(q)[0].delivery_tag for _ in range(3)]
        self.ch.basic_nack(tags[-1], multiple=True, requeue=False)
        for i in range(3):
            f, p, body = self.raw_get(dlq)
            self.assertEqual(body, b"%d" % i)
            self.check_entry(p["headers"]["x-death"].value[0], q, "rejected", 1, "", [q])
        self.assertEqual(self.count(q), 0)

    def test_requeue_true_does_not_dead_letter(self):
        dlx, dlq = self.dlq()
        q = self.queue("src", {"x-dead-letter-exchange": dlx})
        self.ch.basic_publish("", q, b"a")
        self.ch.basic_publish("", q, b"b")
        m1, _, _ = self.get(q)
        m2, _, _ = self.get(q)
        self.ch.basic_reject(m1.delivery_tag, requeue=True)
        self.ch.basic_nack(m2.delivery_tag, requeue=True)
        self.assertEqual(wait_message_count(self.ch, q, 2).message_count, 2)
        self.assert_nothing_dead_lettered_to(dlq)

    def test_expired_per_message_x_death(self):
        dlx, dlq = self.dlq()
        q = self.queue("src", {"x-dead-letter-exchange": dlx})
        self.ch.basic_publish("", q, b"e", pika.BasicProperties(expiration="100",
                                                                headers={"k": "v"}))
        f, p, body = self.raw_get(dlq)
        self.assertEqual(body, b"e")
        self.assertNotIn("expiration", p, "the dead-lettered copy has no expiration")
        h = p["headers"]
        self.assertEqual(h["k"], T("S", b"v"))
        self.assertEqual(len(h["x-death"].value), 1)
        self.check_entry(h["x-death"].value[0], q, "expired", 1, "", [q],
                         original_expiration="100")
        self.check_first_death(h, q, "expired", "")

    def test_expired_queue_ttl_x_death(self):
        dlx, dlq = self.dlq()
        q = self.queue("src", {"x-dead-letter-exchange": dlx, "x-message-ttl": 100})
        self.ch.queue_bind(q, "amq.direct", "rk-1")
        self.ch.basic_publish("amq.direct", "rk-1", b"e")
        f, p, body = self.raw_get(dlq)
        self.assertEqual(body, b"e")
        self.assertEqual(f["routing_key"], "rk-1")
        h = p["headers"]
        self.check_entry(h["x-death"].value[0], q, "expired", 1, "amq.direct", ["rk-1"])
        self.check_first_death(h, q, "expired", "amq.direct")

    def test_maxlen_x_death(self):
        dlx, dlq = self.dlq()
        q = self.queue("src", {"x-dead-letter-exchange": dlx, "x-max-length": 1})
        self.ch.basic_publish("", q, b"first", pika.BasicProperties(expiration="60000"))
        self.ch.basic_publish("", q, b"second")
        f, p, body = self.raw_get(dlq)
        self.assertEqual(body, b"first")
        h = p["headers"]
        self.check_entry(h["x-death"].value[0], q, "maxlen", 1, "", [q],
                         original_expiration="60000")
        self.check_first_death(h, q, "maxlen", "")
        self.assertNotIn("expiration", p)
        self.assertEqual(self.count(q), 1)

    def test_dead_letter_routing_key(self):
        dlx = self.exchange("dlx", "direct")
        dlq = self.queue("dlq")
        self.ch.queue_bind(dlq, dlx, "dl-key")
        q = self.queue("src", {"x-dead-letter-exchange": dlx,
                               "x-dead-letter-routing-key": "dl-key"})
        self.ch.queue_bind(q, "amq.direct", "k1")
        self.ch.basic_publish("amq.direct", "k1", b"c")
        m, p, _ = self.get(q)
        self.ch.basic_nack(m.delivery_tag, requeue=False)
        f, p, body = self.raw_get(dlq)
        self.assertEqual(body, b"c")
        self.assertEqual(f["exchange"], dlx)
        self.assertEqual(f["routing_key"], "dl-key")
        h = p["headers"]
        self.check_entry(h["x-death"].value[0], q, "rejected", 1, "amq.direct", ["k1"])
        self.check_first_death(h, q, "rejected", "amq.direct")
        # the message is not routed with its original key
        self.assertEqual(self.count(q), 0)

    def test_dead_letter_cc_routing_keys(self):
        """Sender-selected distribution: BCC is stripped on publish; the CC
        keys join x-death routing-keys.  Without x-dead-letter-routing-key the
        copy keeps CC and is routed by the DLX on the key and CC again."""
        dlx = self.exchange("dlx", "direct")
        dlq1, dlq2 = self.queue("dlq1"), self.queue("dlq2")
        self.ch.queue_bind(dlq1, dlx, "k1")
        self.ch.queue_bind(dlq2, dlx, "k2")
        q = self.queue("src", {"x-dead-letter-exchange": dlx})
        self.ch.queue_bind(q, "amq.direct", "k1")
        self.ch.queue_bind(q, "amq.direct", "k2")
        self.ch.basic_publish("amq.direct", "k1", b"c", pika.BasicProperties(
            headers={"CC": ["k2"], "BCC": ["k-none"], "other": 1}))
        m, p, _ = self.get(q)
        self.assertEqual(p.headers, {"CC": ["k2"], "other": 1}, "BCC is stripped on publish")
        self.ch.basic_nack(m.delivery_tag, requeue=False)
        for dq in (dlq1, dlq2):
            f, p, body = self.raw_get(dq)
            self.assertEqual((f["exchange"], f["routing_key"]), (dlx, "k1"))
            h = p["headers"]
            self.assertEqual(h["CC"], T("A", [T("S", b"k2")]))
            self.assertNotIn("BCC", h)
            self.assertEqual(h["other"], T("I", 1))
            self.check_entry(h["x-death"].value[0], q, "rejected", 1, "amq.direct",
                             ["k1", "k2"])
        self.assertEqual(self.count(q), 0, "one copy per queue")

    def test_dead_letter_routing_key_removes_cc(self):
        dlx = self.exchange("dlx", "direct")
        dlq = self.queue("dlq")
        self.ch.queue_bind(dlq, dlx, "dl-key")
        other = self.queue("other")
        self.ch.queue_bind(other, dlx, "k2")
        q = self.queue("src", {"x-dead-letter-exchange": dlx,
                               "x-dead-letter-routing-key": "dl-key"})
        self.ch.queue_bind(q, "amq.direct", "k1")
        self.ch.basic_publish("amq.direct", "k1", b"c", pika.BasicProperties(
            headers={"CC": ["k2"]}))
        m, p, _ = self.get(q)
        self.ch.basic_nack(m.delivery_tag, requeue=False)
        f, p, body = self.raw_get(dlq)
        self.assertEqual((f["exchange"], f["routing_key"]), (dlx, "dl-key"))
        h = p["headers"]
        self.assertNotIn("CC", h, "CC is removed when x-dead-letter-routing-key is set")
        self.check_entry(h["x-death"].value[0], q, "rejected", 1, "amq.direct",
                         ["k1", "k2"])
        self.assert_nothing_dead_lettered_to(other)

    def test_dlx_default_exchange_with_routing_key(self):
        target = self.queue("target")
        q = self.queue("src", {"x-dead-letter-exchange": "",
                               "x-dead-letter-routing-key": target})
        self.ch.basic_publish("", q, b"d")
        m, _, _ = self.get(q)
        self.ch.basic_reject(m.delivery_tag, requeue=False)
        f, p, body = self.raw_get(target)
        self.assertEqual((f["exchange"], f["routing_key"], body), ("", target, b"d"))

    def test_x_death_count_increments_and_moves_to_head(self):
        a_name, b_name = uniq("a"), uniq("b")
        a = self.queue("a", {"x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": b_name}, name=a_name)
        b = self.queue("b", {"x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": a_name}, name=b_name)
        self.ch.basic_publish("", a, b"m", pika.BasicProperties(expiration="60000"))
        m, _, _ = self.get(a)
        self.ch.basic_reject(m.delivery_tag, requeue=False)        # a/rejected 1
        m, p, _ = self.get(b)
        self.assertEqual([(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]],
                         [(a, "rejected", 1)])
        self.assertIsNone(p.expiration)
        # The first death is stamped (whole seconds) no later than now: let
        # the next one fall into a later second.
        seen_at = time.time()
        time.sleep(int(seen_at) + 1.05 - seen_at)
        self.ch.basic_reject(m.delivery_tag, requeue=False)        # b/rejected 1
        m, p, _ = self.get(a)
        self.assertEqual([(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]],
                         [(b, "rejected", 1), (a, "rejected", 1)])
        self.ch.basic_reject(m.delivery_tag, requeue=False)        # a/rejected 2
        f, p, body = self.raw_get(b)
        h = p["headers"]
        xd = h["x-death"].value
        self.assertEqual(len(xd), 2)
        # the updated entry moved to the head and kept its original fields
        self.check_entry(xd[0], a, "rejected", 2, "", [a], original_expiration="60000")
        self.check_entry(xd[1], b, "rejected", 1, "", [b])
        self.assertLess(xd[0].value["time"].value, xd[1].value["time"].value,
                        "an incremented entry keeps the time of its first death")
        self.check_first_death(h, a, "rejected", "")

    def test_self_cycle_expired_is_dropped(self):
        name = uniq("selfcycle")
        q = self.queue("selfcycle", {"x-message-ttl": 50, "x-dead-letter-exchange": "",
                                     "x-dead-letter-routing-key": name}, name=name)
        self.publish_confirmed(q, b"loop")
        self.assertEqual(wait_message_count(self.ch, q, 0, timeout=WAIT).message_count, 0)
        self.assert_stays_empty(q, 0.5)

    def test_two_queue_expiry_cycle_is_dropped(self):
        a_name, b_name = uniq("ca"), uniq("cb")
        a = self.queue("ca", {"x-message-ttl": 50, "x-dead-letter-exchange": "",
                              "x-dead-letter-routing-key": b_name}, name=a_name)
        b = self.queue("cb", {"x-message-ttl": 50, "x-dead-letter-exchange": "",
                              "x-dead-letter-routing-key": a_name}, name=b_name)
        self.publish_confirmed(a, b"loop")
        wait_until(lambda: (self.count(a), self.count(b)) == (0, 0), timeout=WAIT,
                   what="the cycling message dropped")
        for _ in range(10):
            self.assertEqual((self.count(a), self.count(b)), (0, 0))
            time.sleep(0.05)

    def test_self_cycle_rejected_is_not_dropped(self):
        name = uniq("selfrej")
        q = self.queue("selfrej", {"x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": name}, name=name)
        self.ch.basic_publish("", q, b"r")
        for i in range(1, 4):
            m, p, body = self.get(q)
            self.assertEqual(body, b"r")
            self.assertFalse(m.redelivered)
            if i == 1:
                self.assertIsNone(p.headers)
            else:
                self.assertEqual([(d["queue"], d["reason"], d["count"])
                                  for d in p.headers["x-death"]], [(q, "rejected", i - 1)])
            self.ch.basic_reject(m.delivery_tag, requeue=False)
        f, p, body = self.raw_get(q)
        self.check_entry(p["headers"]["x-death"].value[0], q, "rejected", 3, "", [q])

    def test_cycle_with_rejection_and_expiry_is_not_dropped(self):
        work_name, wait_name = uniq("work"), uniq("wait")
        work = self.queue("work", {"x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": wait_name}, name=work_name)
        wait = self.queue("wait", {"x-message-ttl": 50, "x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": work_name}, name=wait_name)
        self.ch.basic_publish("", work, b"w")
        for i in range(1, 4):
            m, p, body = self.get(work)
            if i > 1:
                self.assertEqual([(d["queue"], d["reason"], d["count"])
                                  for d in p.headers["x-death"]],
                                 [(wait, "expired", i - 1), (work, "rejected", i - 1)])
                self.assertEqual(p.headers["x-first-death-queue"], work)
                self.assertEqual(p.headers["x-first-death-reason"], "rejected")
            self.ch.basic_reject(m.delivery_tag, requeue=False)
        m, p, body = self.get(work)
        self.ch.basic_ack(m.delivery_tag)

    def test_missing_or_unroutable_dlx_drops(self):
        q1 = self.queue("nodlx", {"x-dead-letter-exchange": uniq("no-such-exchange")})
        x = self.exchange("empty-dlx", "direct")
        q2 = self.queue("unroutable", {"x-dead-letter-exchange": x})
        ch2 = self.conn.channel()
        for q in (q1, q2):
            self.ch.basic_publish("", q, b"gone")
            m, _, _ = self.get(q, ch=ch2)
            ch2.basic_reject(m.delivery_tag, requeue=False)
        # the channel is still open (a round trip on it; it raises if the
        # broker closed it) and closing it gives nothing back: the messages
        # were dropped, not kept unacked
        ch2.queue_declare(q1, passive=True)
        ch2.close()
        self.assertEqual(wait_message_count(self.ch, q1, 0).message_count, 0)
        self.assertEqual(wait_message_count(self.ch, q2, 0).message_count, 0)
        self.assertEqual(self.ch.queue_declare(q1, passive=True).method.consumer_count, 0)

    def test_purge_and_delete_do_not_dead_letter(self):
        dlx, dlq = self.dlq()
        q = self.queue("src", {"x-dead-letter-exchange": dlx})
        for i in range(3):
            self.ch.basic_publish("", q, b"p")
        wait_message_count(self.ch, q, 3)
        self.assertEqual(self.ch.queue_purge(q).method.message_count, 3)
        self.ch.basic_publish("", q, b"d")
        wait_message_count(self.ch, q, 1)
        self.ch.queue_delete(q)
        self.assert_nothing_dead_lettered_to(dlq)

    def test_channel_close_requeues_not_dead_letters(self):
        dlx, dlq = self.dlq()
        q = self.queue("src", {"x-dead-letter-exchange": dlx})
        self.ch.basic_publish("", q, b"u")
        ch2 = self.conn.channel()
        self.get(q, ch=ch2)
        ch2.close()
        self.assertEqual(wait_message_count(self.ch, q, 1).message_count, 1)
        self.assert_nothing_dead_lettered_to(dlq)


@skip_if_external("RabbitMQ has no cascade bound: it makes every copy")
class CascadeBoundTest(DLBase):
    """A fanout dead-letter exchange over TTL-0 queues that dead-letter into
    it: the cycle rule ends every path, but copies multiply (9 queues give
    8! paths, ~110,000 copies from one publish, all made synchronously).
    Warren bounds one event's cascade at 10,000 copies and depth 32, drops
    the rest with a warning, and keeps serving."""

    BOUND = 10000

    def test_fanout_of_ttl0_queues_is_bounded(self):
        x = self.exchange("storm", "fanout")
        qs = [self.queue("storm%d" % i, {"x-message-ttl": 0,
                                         "x-dead-letter-exchange": x})
              for i in range(9)]
        sink = self.queue("sink")
        for q in qs + [sink]:
            self.ch.queue_bind(q, x)
        self.publish_confirmed(qs[0], b"storm")
        # Every copy passes through the sink once.  The cascade is over when
        # the broker has said it hit the bound and no copy is left in a TTL-0
        # queue (only those make more copies): then the sink's count is final.
        self.assertIsNotNone(self.broker.wait_for_log(
            lambda line: "dead-letter cascade too deep or wide" in line, timeout=WAIT),
            "no warning about the cascade's bound")
        wait_until(lambda: all(self.count(q) == 0 for q in qs), timeout=WAIT,
                   what="the TTL-0 queues empty")
        n = self.count(sink)
        self.assertGreater(n, 1000, "the cascade should run until the bound")
        self.assertLessEqual(n, self.BOUND)
        assert_broker_alive(self.broker, self)


class RetryPatternTest(DLBase):

    N = 100

    def test_retry_with_delay_100_messages(self):
        self.t0 = time.monotonic()
        work_x = self.exchange("work-x", "direct")
        retry_x = self.exchange("retry-x", "fanout")
        work_q = self.queue("work-q", {"x-dead-letter-exchange": retry_x})
        wait_q = self.queue("wait-q", {"x-message-ttl": 100,
                                       "x-dead-letter-exchange": work_x})
        self.ch.queue_bind(work_q, work_x, "job")
        self.ch.queue_bind(wait_q, retry_x)
        pub = self.conn.channel()
        pub.confirm_delivery()
        for i in range(self.N):
            pub.basic_publish(work_x, "job", b"job-%d" % i,
                              pika.BasicProperties(message_id="id-%d" % i))
        seen = {}
        problems = []
        acked = []
        cons = self.connect().channel()
        cons.basic_qos(prefetch_count=50)

        def on_msg(ch, m, p, body):
            mid = p.message_id
            n = seen.get(mid, 0) + 1
            seen[mid] = n
            if body != b"job-" + mid[3:].encode():
                problems.append("body %r for %s" % (body, mid))
            if m.redelivered:
                problems.append("%s delivery %d redelivered" % (mid, n))
            if (m.exchange, m.routing_key) != ((work_x, "job")):
                problems.append("%s delivery %d via %r/%r" % (mid, n, m.exchange, m.routing_key))
            xd = (p.headers or {}).get("x-death")
            if n == 1:
                if p.headers:
                    problems.append("%s first delivery has headers %r" % (mid, p.headers))
            else:
                got = [(d["queue"], d["reason"], d["count"], d["exchange"], d["routing-keys"])
                       for d in (xd or [])]
                want = [(wait_q, "expired", n - 1, retry_x, ["job"]),
                        (work_q, "rejected", n - 1, work_x, ["job"])]
                if got != want:
                    problems.append("%s delivery %d x-death %r" % (mid, n, got))
                first = (p.headers.get("x-first-death-queue"),
                         p.headers.get("x-first-death-reason"),
                         p.headers.get("x-first-death-exchange"))
                if first != (work_q, "rejected", work_x):
                    problems.append("%s x-first-death %r" % (mid, first))
            if n < 3:
                ch.basic_reject(m.delivery_tag, requeue=False)
            else:
                ch.basic_ack(m.delivery_tag)
                acked.append(mid)

        cons.basic_consume(work_q, on_msg)
        conn = cons.connection
        deadline = self.t0 + max(WAIT, TEST_TIMEOUT - 10)
        while len(acked) < self.N and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        # an extra look for anything more (a copy too many) arriving late
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            conn.process_data_events(time_limit=0.05)
        # nothing is left unacked either: closing the channel would put it back
        cons.close()
        self.assertEqual(problems[:5], [])
        self.assertEqual(len(acked), self.N, "acked %d of %d" % (len(acked), self.N))
        self.assertEqual(sorted(seen), sorted("id-%d" % i for i in range(self.N)))
        self.assertEqual(set(seen.values()), {3},
                         {k: v for k, v in seen.items() if v != 3})
        self.assertEqual(self.count(work_q), 0)
        self.assertEqual(self.count(wait_q), 0)


if __name__ == "__main__":
    main()
