#!/usr/bin/python3
"""Transactions: tx.select / tx.commit / tx.rollback for publishes (invisible
until commit, discarded on rollback or channel close) and for acks, nacks and
rejects (applied at commit, dropped on rollback); commit/rollback without
tx.select -> 406; mandatory returns at commit time."""

import os
import time

import pika
import pika.exceptions

from harness import (PikaTestCase, BASIC_RETURN, NO_ROUTE,
    PRECONDITION_FAILED, main, method_frame, raw_connect, wait_message_count)

TX_SELECT = (90, 10)
TX_SELECT_OK = (90, 11)
TX_COMMIT = (90, 20)
TX_COMMIT_OK = (90, 21)
TX_ROLLBACK = (90, 30)
TX_ROLLBACK_OK = (90, 31)


def uniq(stem):
    return "warren-it-tx-%s-%s" % (stem, os.urandom(4).hex())


class TxTestBase(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.conn = self.connect()
        self.ch = self.conn.channel()


    def queue(self, stem, n=0):
        name = uniq(stem)
        self.ch.queue_declare(queue=name)
        self.to_delete.append(name)
        for i in range(1, n + 1):
            self.ch.basic_publish(exchange="", routing_key=name, body=b"%d" % i)
        if n:
            self.assertEqual(wait_message_count(self.ch, name, n).message_count, n)
        return name

    def count(self, q):
        return self.ch.queue_declare(queue=q, passive=True).method.message_count

    def drain(self, q):
        ch = self.conn.channel()
        out = []
        while True:
            m, _, body = ch.basic_get(q, auto_ack=True)
            if m is None:
                ch.close()
                return out
            out.append((body, m.redelivered))

    def sync(self, ch):
        ch.exchange_declare("amq.direct", passive=True)

    def tx_channel(self):
        ch = self.conn.channel()
        ch.tx_select()
        return ch

    def pump(self, seconds, until=None):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.02)
            if until is not None and until():
                return True
        return until() if until is not None else None


class TxPublishTest(TxTestBase):

    def test_publishes_invisible_until_commit(self):
        q = self.queue("commit")
        t = self.tx_channel()
        for i in range(3):
            t.basic_publish(exchange="", routing_key=q, body=b"t%d" % i)
        self.sync(t)
        time.sleep(0.2)
        self.assertEqual(self.count(q), 0, "uncommitted publishes visible")
        t.tx_commit()
        self.assertEqual(self.count(q), 3)
        self.assertEqual(self.drain(q), [(b"t0", False), (b"t1", False), (b"t2", False)])

    def test_rollback_discards_publishes(self):
        q = self.queue("rollback")
        t = self.tx_channel()
        t.basic_publish(exchange="", routing_key=q, body=b"gone")
        t.tx_rollback()
        t.tx_commit()   # an empty commit
        self.assertEqual(self.count(q), 0)
        # the channel is still transactional and commits what follows
        t.basic_publish(exchange="", routing_key=q, body=b"kept")
        self.sync(t)
        self.assertEqual(self.count(q), 0, "publish after rollback not held for commit")
        t.tx_commit()
        self.assertEqual(self.drain(q), [(b"kept", False)])

    def test_several_transactions_on_one_channel(self):
        q = self.queue("several")
        t = self.tx_channel()
        t.basic_publish(exchange="", routing_key=q, body=b"a")
        t.tx_commit()
        t.basic_publish(exchange="", routing_key=q, body=b"b")
        t.tx_rollback()
        t.basic_publish(exchange="", routing_key=q, body=b"c")
        t.basic_publish(exchange="", routing_key=q, body=b"d")
        t.tx_commit()
        t.tx_select()   # idempotent
        t.basic_publish(exchange="", routing_key=q, body=b"e")
        t.tx_commit()
        self.assertEqual([b for b, _ in self.drain(q)], [b"a", b"c", b"d", b"e"])

    def test_channel_close_discards_uncommitted(self):
        q = self.queue("close")
        t = self.tx_channel()
        t.basic_publish(exchange="", routing_key=q, body=b"never")
        self.sync(t)
        t.close()
        # anything the close committed would be in front of this marker
        self.ch.basic_publish(exchange="", routing_key=q, body=b"marker")
        self.assertEqual(wait_message_count(self.ch, q, 1).message_count, 1)
        self.assertEqual(self.drain(q), [(b"marker", False)])

    def test_mandatory_return_at_commit(self):
        raw = raw_connect(self.broker)
        try:
            raw.channel_open(1)
            raw.send(method_frame(1, TX_SELECT))
            raw.expect_method(TX_SELECT_OK, 1)
            missing = uniq("nowhere")
            raw.publish(1, b"r", routing_key=missing, mandatory=True)
            with self.assertRaises(OSError):
                f = raw.read_frame_skip_heartbeats(0.3)
                self.fail("frame before tx.commit: %r" % f)
            raw.send(method_frame(1, TX_COMMIT))
            f = raw.expect_method(BASIC_RETURN, 1)
            self.assertEqual((f["reply_code"], f["routing_key"]), (NO_ROUTE, missing))
            _, body, _ = raw.read_content(1)
            self.assertEqual(body, b"r")
            raw.expect_method(TX_COMMIT_OK, 1)
        finally:
            raw.close()


class TxAckTest(TxTestBase):

    def get(self, ch, q, n):
        return [ch.basic_get(q, auto_ack=False)[0].delivery_tag for _ in range(n)]

    def test_ack_takes_effect_at_commit(self):
        q = self.queue("ack-commit", 2)
        t = self.tx_channel()
        tags = self.get(t, q, 2)
        t.basic_ack(tags[0])
        t.tx_commit()
        t.close()
        self.assertEqual(self.drain(q), [(b"2", True)])

    def test_uncommitted_ack_is_lost_on_close(self):
        q = self.queue("ack-close", 2)
        t = self.tx_channel()
        tags = self.get(t, q, 2)
        t.basic_ack(tags[1], multiple=True)
        self.sync(t)
        t.close()
        self.assertEqual(self.drain(q), [(b"1", True), (b"2", True)])

    def test_rollback_leaves_message_unacked(self):
        q = self.queue("ack-rollback", 1)
        t = self.tx_channel()
        tag = self.get(t, q, 1)[0]
        t.basic_ack(tag)
        t.tx_rollback()
        # still unacked: not back in the queue...
        self.assertEqual(self.count(q), 0)
        # ...and still ackable (no 406 for the rolled-back ack)
        t.basic_ack(tag)
        t.tx_commit()
        t.close()
        self.assertEqual(self.count(q), 0)

    def test_rollback_then_close_requeues(self):
        q = self.queue("ack-rollback-close", 1)
        t = self.tx_channel()
        tag = self.get(t, q, 1)[0]
        t.basic_ack(tag)
        t.tx_rollback()
        t.close()
        self.assertEqual(self.drain(q), [(b"1", True)])

    def test_reject_and_nack_in_tx(self):
        q = self.queue("reject", 3)
        t = self.tx_channel()
        tags = self.get(t, q, 3)
        t.basic_reject(tags[0], requeue=True)
        t.basic_nack(tags[1], requeue=False)
        self.sync(t)
        self.assertEqual(self.count(q), 0, "reject applied before commit")
        t.tx_commit()
        self.assertEqual(self.count(q), 1)
        t.basic_ack(tags[2])
        t.tx_commit()
        t.close()
        self.assertEqual(self.drain(q), [(b"1", True)])

    def test_ack_in_tx_frees_prefetch_at_commit(self):
        q = self.queue("credit", 4)
        t = self.tx_channel()
        t.basic_qos(prefetch_count=1)
        got = []
        t.basic_consume(q, lambda ch, m, p, b: got.append((m.delivery_tag, b)))
        self.assertTrue(self.pump(30, until=lambda: len(got) == 1))
        t.basic_ack(got[0][0])
        self.pump(0.4)
        self.assertEqual(len(got), 1, "uncommitted ack released prefetch credit")
        t.tx_commit()
        self.assertTrue(self.pump(30, until=lambda: len(got) == 2))
        self.pump(0.2)   # and only the one the committed ack made room for
        self.assertEqual(len(got), 2)
        self.assertEqual(got, [(1, b"1"), (2, b"2")])

    def test_tx_publish_and_ack_together(self):
        src, dst = self.queue("src", 2), self.queue("dst")
        t = self.tx_channel()
        tags = self.get(t, src, 2)
        t.basic_publish(exchange="", routing_key=dst, body=b"moved")
        t.basic_ack(tags[0])
        t.tx_rollback()
        t.basic_publish(exchange="", routing_key=dst, body=b"moved-2")
        t.basic_ack(tags[1])
        t.tx_commit()
        t.close()
        self.assertEqual(self.drain(dst), [(b"moved-2", False)])
        self.assertEqual(self.drain(src), [(b"1", True)])


class TxCollectTest(TxTestBase):
    """RabbitMQ collects a transaction's acks, nacks and rejects when they
    arrive: the deliveries they name stop being outstanding at once (a
    second ack of one is 406 there and then, "ack everything" skips them,
    basic.recover leaves them for the commit), and rollback makes them
    outstanding again. Each case: three messages fetched (tags t1..t3),
    tx.select, the steps, then how many messages are ready in the queue or
    the 406 and its tag. All checked against RabbitMQ 3.10.8."""

    CASES = [
        ("ack t2, ack all", ["ack 2", "ack-all", "commit", "recover"], 0),
        ("ack t3, ack all", ["ack 3", "ack-all", "commit", "recover"], 0),
        ("ack all twice", ["ack-all", "ack-all", "commit", "recover"], 0),
        ("ack t2 twice", ["ack 2", "ack 2"], 2),
        ("ack up to t2, ack t1", ["ack-upto 2", "ack 1"], 1),
        ("ack t3, ack up to t3", ["ack 3", "ack-upto 3"], 3),
        ("nack t1, ack t1", ["nack 1", "ack 1"], 1),
        ("ack t1, rollback, recover", ["ack 1", "rollback", "recover"], 3),
        ("ack t1, recover, commit", ["ack 1", "recover", "commit"], 2),
        ("ack t1, rollback, ack t1 again",
         ["ack 1", "rollback", "ack 1", "commit", "recover"], 2),
        ("nack all, commit", ["nack-all", "commit"], 3),
        ("reject t2, ack all", ["reject 2", "ack-all", "commit"], 1),
    ]

    def run_case(self, steps):
        q = self.queue("collect", 3)
        t = self.tx_channel()
        tags = [t.basic_get(q, auto_ack=False)[0].delivery_tag
                for _ in range(3)]
        for step in steps:
            verb, _, arg = step.partition(" ")
            tag = tags[int(arg) - 1] if arg else 0
            if verb == "ack":
                t.basic_ack(tag)
            elif verb == "ack-upto":
                t.basic_ack(tag, multiple=True)
            elif verb == "ack-all":
                t.basic_ack(0, multiple=True)
            elif verb == "nack":
                t.basic_nack(tag, requeue=True)
            elif verb == "nack-all":
                t.basic_nack(0, multiple=True, requeue=True)
            elif verb == "reject":
                t.basic_reject(tag, requeue=True)
            elif verb == "commit":
                t.tx_commit()
            elif verb == "rollback":
                t.tx_rollback()
            elif verb == "recover":
                t.basic_recover(requeue=True)
        self.sync(t)
        return q, tags

    def test_cases(self):
        for name, steps, want in self.CASES:
            with self.subTest(name):
                if steps[-1].startswith(("ack", "nack")) and "commit" not in steps:
                    with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                        self.run_case(steps)
                    self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
                    self.assertEqual(cm.exception.reply_text,
                                     "PRECONDITION_FAILED - unknown delivery tag %d" % want)
                else:
                    q, _ = self.run_case(steps)
                    self.assertEqual(self.count(q), want)


class TxErrorTest(TxTestBase):

    def test_commit_without_select_406(self):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.tx_commit()
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("not transactional", cm.exception.reply_text)
        self.assertTrue(self.conn.is_open)

    def test_rollback_without_select_406(self):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            self.ch.tx_rollback()
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("not transactional", cm.exception.reply_text)
        self.assertTrue(self.conn.is_open)

    def test_raw_commit_without_select(self):
        raw = raw_connect(self.broker)
        try:
            raw.channel_open(1)
            raw.send(method_frame(1, TX_COMMIT))
            f = raw.read_frame_skip_heartbeats()
            self.assertEqual(f.name, "channel.close", f)
            self.assertEqual((f["reply_code"], f["class_id"], f["method_id"]),
                             (PRECONDITION_FAILED,) + TX_COMMIT)
        finally:
            raw.close()


if __name__ == "__main__":
    main()
