#!/usr/bin/python3
"""Queue length limits (issue 6): x-max-length and x-max-length-bytes with
x-overflow = drop-head (the default; dropped messages are dead-lettered with
reason `maxlen`), reject-publish (nacked under confirms, dropped), and
reject-publish-dlx (nacked and dead-lettered).

Behaviour checked against RabbitMQ 3.10.8:
  * only ready messages count: unacked deliveries are outside the limit, but
    when they are requeued the queue is trimmed from the head again, so the
    requeued (oldest) messages are the ones dropped.
  * a consumer that can take a message gets it before the limit applies, so
    x-max-length 0 drops every message unless a consumer is waiting.
  * x-max-length-bytes counts body bytes (empty bodies count 0); drop-head
    drops from the head until the queue is within the limit, so a message
    bigger than the limit empties the queue, itself included.
  * RabbitMQ's confirm nack has requeue=1 (the spec's default for the field).
  * reject-publish: the publish is nacked (no basic.return, even when
    mandatory); without confirms it is silently dropped.  When a message is
    routed to several queues and one of them rejects it, the publisher gets a
    nack but the other queues keep their copy.
"""

import os
import struct
import time

import pika
import pika.exceptions

from harness import (PikaTestCase, BASIC_ACK, CONFIRM_SELECT,
    CONFIRM_SELECT_OK, FRAME_METHOD, enc_bits, main, method_frame,
    raw_connect, wait_message_count)

BASIC_NACK = (60, 120)


def uniq(stem):
    return "warren-it-len-%s-%s" % (stem, os.urandom(4).hex())


class LenBase(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.conn = self.connect()
        self.ch = self.conn.channel()
        self.pub = self.conn.channel()
        self.pub.confirm_delivery()

    def queue(self, stem, args=None):
        name = uniq(stem)
        self.ch.queue_declare(queue=name, arguments=args)
        self.to_delete.append(name)
        return name

    def dlq(self):
        x = uniq("dlx")
        self.ch.exchange_declare(x, exchange_type="fanout")
        self.exchanges_to_delete.append(x)
        q = self.queue("dlq")
        self.ch.queue_bind(q, x)
        return x, q

    def publish(self, q, body, exchange="", **kw):
        """Confirmed publish; raises pika.exceptions.NackError on a nack."""
        self.pub.basic_publish(exchange, q, body, **kw)

    def count(self, q):
        return self.ch.queue_declare(queue=q, passive=True).method.message_count

    def drain(self, q, with_props=False):
        out = []
        while True:
            m, p, body = self.ch.basic_get(q, auto_ack=True)
            if m is None:
                return out
            out.append((body, p) if with_props else body)

    def drain_wait(self, q, n, timeout=30.0):
        """Wait until q holds n messages, then drain it: [(body, props)]."""
        wait_message_count(self.ch, q, n, timeout=timeout)
        return self.drain(q, with_props=True)


class DropHeadTest(LenBase):

    def test_max_length_drops_head(self):
        q = self.queue("dh", {"x-max-length": 3})
        for i in range(1, 6):
            self.publish(q, b"%d" % i)
        self.assertEqual(self.count(q), 3)
        self.assertEqual(self.drain(q), [b"3", b"4", b"5"])

    def test_explicit_drop_head(self):
        q = self.queue("dh-explicit", {"x-max-length": 2, "x-overflow": "drop-head"})
        for i in range(1, 5):
            self.publish(q, b"%d" % i)
        self.assertEqual(self.drain(q), [b"3", b"4"])

    def test_drop_head_dead_letters_maxlen(self):
        dlx, dlq = self.dlq()
        q = self.queue("dh-dl", {"x-max-length": 2, "x-dead-letter-exchange": dlx})
        for i in range(1, 6):
            self.publish(q, b"%d" % i)
        got = self.drain_wait(dlq, 3)
        self.assertEqual([b for b, _ in got], [b"1", b"2", b"3"])
        for b, p in got:
            self.assertEqual([(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]],
                             [(q, "maxlen", 1)])
            self.assertEqual(p.headers["x-first-death-reason"], "maxlen")
        self.assertEqual(self.drain(q), [b"4", b"5"])

    def test_max_length_bytes(self):
        q = self.queue("bytes", {"x-max-length-bytes": 10})
        for i in range(1, 5):
            self.publish(q, b"m%03d" % i)            # 4 bytes each
        self.assertEqual(self.count(q), 2)
        self.assertEqual(self.drain(q), [b"m003", b"m004"])
        # a message bigger than the limit cannot stay either
        dlx, dlq = self.dlq()
        q2 = self.queue("bytes-big", {"x-max-length-bytes": 10, "x-dead-letter-exchange": dlx})
        self.publish(q2, b"small")
        self.publish(q2, b"x" * 11)
        self.assertEqual(self.count(q2), 0)
        got = self.drain_wait(dlq, 2)
        self.assertEqual([b for b, _ in got], [b"small", b"x" * 11])
        self.assertEqual({p.headers["x-death"][0]["reason"] for _, p in got}, {"maxlen"})

    def test_max_length_bytes_zero_length_bodies(self):
        q = self.queue("bytes-empty", {"x-max-length-bytes": 0})
        for _ in range(3):
            self.publish(q, b"")
        self.assertEqual(self.count(q), 3)
        # one byte over: drop-head drops from the head until under the limit,
        # so the empty messages go first and then the new one
        self.publish(q, b"x")
        self.assertEqual(self.count(q), 0)

    def test_both_limits(self):
        q = self.queue("both", {"x-max-length": 3, "x-max-length-bytes": 6})
        for b in (b"a", b"b", b"c", b"d"):
            self.publish(q, b)
        self.assertEqual(self.drain(q), [b"b", b"c", b"d"])
        for b in (b"aa", b"bb", b"cc", b"dd"):
            self.publish(q, b)
        self.assertEqual(self.drain(q), [b"bb", b"cc", b"dd"])
        for b in (b"aaaa", b"bbbb"):
            self.publish(q, b)
        self.assertEqual(self.drain(q), [b"bbbb"])

    def test_max_length_zero_without_consumer_drops(self):
        dlx, dlq = self.dlq()
        q = self.queue("zero", {"x-max-length": 0, "x-dead-letter-exchange": dlx})
        self.publish(q, b"z")
        self.assertEqual(self.count(q), 0)
        got_dl = self.drain_wait(dlq, 1)
        self.assertEqual([b for b, _ in got_dl], [b"z"])
        self.assertEqual(got_dl[0][1].headers["x-death"][0]["reason"], "maxlen")

    def test_max_length_zero_with_waiting_consumer_delivers(self):
        """A consumer that can take the message gets it before the limit
        is applied (like x-message-ttl 0)."""
        dlx, dlq = self.dlq()
        q = self.queue("zero-cons", {"x-max-length": 0, "x-dead-letter-exchange": dlx})
        ch = self.connect().channel()
        got = []
        ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
        self.publish(q, b"z")
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            ch.connection.process_data_events(time_limit=0.02)
        self.assertEqual(got, [b"z"])
        self.assertEqual(self.count(dlq), 0)

    def test_unacked_not_counted_requeue_trims_head(self):
        q = self.queue("unacked", {"x-max-length": 2})
        self.publish(q, b"1")
        self.publish(q, b"2")
        ch2 = self.conn.channel()
        for want in (b"1", b"2"):
            m, _, body = ch2.basic_get(q, auto_ack=False)
            self.assertEqual(body, want)
        for b in (b"3", b"4", b"5"):
            self.publish(q, b)
        self.assertEqual(self.count(q), 2, "unacked deliveries are outside the limit")
        ch2.close()          # requeues 1 and 2 at the head, then the head is trimmed
        wait_message_count(self.ch, q, 2)
        self.assertEqual(self.drain(q), [b"4", b"5"])


class RejectPublishTest(LenBase):

    def test_reject_publish_nacks_under_confirms(self):
        q = self.queue("rp", {"x-max-length": 2, "x-overflow": "reject-publish"})
        self.publish(q, b"1")
        self.publish(q, b"2")
        with self.assertRaises(pika.exceptions.NackError):
            self.publish(q, b"3")
        self.assertTrue(self.pub.is_open)
        self.assertEqual(self.count(q), 2)
        self.assertEqual(self.drain(q), [b"1", b"2"])
        # room again: accepted
        self.publish(q, b"4")
        self.assertEqual(self.drain(q), [b"4"])

    def test_reject_publish_mandatory_is_nack_not_return(self):
        q = self.queue("rp-mand", {"x-max-length": 1, "x-overflow": "reject-publish"})
        self.publish(q, b"1")
        with self.assertRaises(pika.exceptions.NackError) as cm:
            self.publish(q, b"2", mandatory=True)
        # pika hands over a basic.return that came before the nack
        self.assertEqual(cm.exception.messages, [], "rejected publish was also returned")
        self.assertEqual(self.drain(q), [b"1"])

    def test_reject_publish_without_confirms_drops(self):
        q = self.queue("rp-noconfirm", {"x-max-length": 1, "x-overflow": "reject-publish"})
        for b in (b"1", b"2", b"3"):
            self.ch.basic_publish("", q, b)
        # the publishes and the declare share a channel: the count is final
        self.assertEqual(wait_message_count(self.ch, q, 1).message_count, 1)
        self.assertEqual(self.drain(q), [b"1"])
        self.assertTrue(self.ch.is_open)

    def test_reject_publish_does_not_dead_letter(self):
        dlx, dlq = self.dlq()
        q = self.queue("rp-nodl", {"x-max-length": 1, "x-overflow": "reject-publish",
                                   "x-dead-letter-exchange": dlx})
        self.publish(q, b"1")
        with self.assertRaises(pika.exceptions.NackError):
            self.publish(q, b"2")
        time.sleep(0.2)
        self.assertEqual(self.count(dlq), 0)

    def test_reject_publish_bytes(self):
        q = self.queue("rp-bytes", {"x-max-length-bytes": 5, "x-overflow": "reject-publish"})
        self.publish(q, b"abc")
        with self.assertRaises(pika.exceptions.NackError):
            self.publish(q, b"def")
        self.publish(q, b"gh")
        with self.assertRaises(pika.exceptions.NackError):
            self.publish(q, b"i")
        self.assertEqual(self.drain(q), [b"abc", b"gh"])

    def test_reject_publish_unacked_not_counted(self):
        q = self.queue("rp-unacked", {"x-max-length": 1, "x-overflow": "reject-publish"})
        self.publish(q, b"1")
        ch2 = self.conn.channel()
        m, _, _ = ch2.basic_get(q, auto_ack=False)
        self.publish(q, b"2")          # accepted: the unacked one does not count
        with self.assertRaises(pika.exceptions.NackError):
            self.publish(q, b"3")
        ch2.basic_ack(m.delivery_tag)
        self.assertEqual(self.drain(q), [b"2"])

    def test_reject_publish_one_of_two_queues(self):
        x = uniq("fan")
        self.ch.exchange_declare(x, exchange_type="fanout")
        self.exchanges_to_delete.append(x)
        full = self.queue("rp-full", {"x-max-length": 0, "x-overflow": "reject-publish"})
        ok = self.queue("rp-ok")
        self.ch.queue_bind(full, x)
        self.ch.queue_bind(ok, x)
        with self.assertRaises(pika.exceptions.NackError):
            self.publish("", b"fan", exchange=x)
        self.assertEqual(self.count(full), 0)
        self.assertEqual(wait_message_count(self.ch, ok, 1).message_count, 1)

    def test_reject_publish_raw_nack_frames(self):
        q = self.queue("rp-raw", {"x-max-length": 1, "x-overflow": "reject-publish"})
        with raw_connect(self.broker) as r:
            r.channel_open(1)
            r.send(method_frame(1, CONFIRM_SELECT, enc_bits(False)))
            r.expect_method(CONFIRM_SELECT_OK, 1)
            for b in (b"1", b"2", b"3"):
                r.publish(1, b, routing_key=q)
            # confirms may be coalesced (multiple=1): expand them per tag
            outcome = {}
            while len(outcome) < 3:
                f = r.read_frame_skip_heartbeats()
                self.assertEqual(f.type, FRAME_METHOD)
                self.assertIn(f.method, (BASIC_ACK, BASIC_NACK), f)
                tag, bits = struct.unpack(">QB", f.payload[4:13])
                name = "ack" if f.method == BASIC_ACK else "nack"
                if f.method == BASIC_NACK:
                    # RabbitMQ sends basic.nack with requeue=1 (the field's default)
                    self.assertEqual(bits & 2, 2, "RabbitMQ's nack has requeue=1")
                # multiple=1 settles every still-unconfirmed tag up to `tag`
                tags = range(1, tag + 1) if bits & 1 else [tag]
                for t in tags:
                    if t not in outcome:
                        outcome[t] = name
                self.assertLessEqual(max(outcome), 3)
            self.assertEqual(outcome, {1: "ack", 2: "nack", 3: "nack"})
            r.channel_close(1)

    def test_reject_publish_dlx_nacks_and_dead_letters(self):
        dlx, dlq = self.dlq()
        q = self.queue("rpdlx", {"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                 "x-dead-letter-exchange": dlx})
        self.publish(q, b"1")
        with self.assertRaises(pika.exceptions.NackError):
            self.publish(q, b"2", properties=pika.BasicProperties(expiration="60000"))
        got = self.drain_wait(dlq, 1)
        self.assertEqual([b for b, _ in got], [b"2"])
        p = got[0][1]
        xd = p.headers["x-death"]
        self.assertEqual([(d["queue"], d["reason"], d["count"], d["exchange"], d["routing-keys"])
                          for d in xd], [(q, "maxlen", 1, "", [q])])
        self.assertEqual(xd[0]["original-expiration"], "60000")
        self.assertIsNone(p.expiration)
        self.assertEqual(p.headers["x-first-death-reason"], "maxlen")
        self.assertEqual(self.drain(q), [b"1"])

    def test_reject_publish_dlx_without_dlx_just_nacks(self):
        q = self.queue("rpdlx-none", {"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
        self.publish(q, b"1")
        with self.assertRaises(pika.exceptions.NackError):
            self.publish(q, b"2")
        self.assertEqual(self.drain(q), [b"1"])


if __name__ == "__main__":
    main()
