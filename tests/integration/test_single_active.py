#!/usr/bin/python3
"""Single active consumer (issue 6): x-single-active-consumer = true; only the
first registered consumer receives; when it cancels or its channel (or
connection) closes, the next one in registration order takes over; the
unacked messages of a closed channel are requeued and go to the next one.

Behaviour checked against RabbitMQ 3.10.8:
  * queue.declare-ok consumer_count counts every registered consumer, active
    or waiting.
  * basic.cancel of the active consumer does not requeue its unacked
    deliveries (as for any cancel); they go to the new active consumer once
    rejected or when the old channel closes.  (RabbitMQ 3.10 quirk, not
    encoded: while the cancelled consumer still holds unacked deliveries the
    next consumer gets nothing, not even after an ack; a reject, a channel
    close or a new publish gets things moving.)
  * after a channel close the requeued deliveries are not ordered against
    the ready messages.
  * basic.get works on such a queue as on any other.
  * x-single-active-consumer must be a boolean: 'yes' or 1 are 406.
"""

import os
import time

import pika
import pika.exceptions

from harness import PikaTestCase, PRECONDITION_FAILED, main, wait_message_count


def uniq(stem):
    return "warren-it-sac-%s-%s" % (stem, os.urandom(4).hex())


class Consumer:
    """A consumer on its own connection and channel, recording deliveries."""

    def __init__(self, test, q, prefetch=0, auto_ack=False, name=None):
        self.conn = test.connect()
        self.ch = self.conn.channel()
        if prefetch:
            self.ch.basic_qos(prefetch_count=prefetch)
        self.got = []          # (body, redelivered, delivery_tag)
        self.name = name
        self.tag = self.ch.basic_consume(q, self._on, auto_ack=auto_ack)

    def _on(self, ch, m, p, body):
        self.got.append((body, m.redelivered, m.delivery_tag))

    def bodies(self):
        return [b for b, _, _ in self.got]

    def pump(self, t=0.05):
        if self.conn.is_open:
            self.conn.process_data_events(time_limit=t)


class SACTest(PikaTestCase):

    def setUp(self):
        super().setUp()
        self.conn = self.connect()
        self.ch = self.conn.channel()
        self.pub = self.conn.channel()
        self.pub.confirm_delivery()

    def queue(self, stem, sac=True):
        name = uniq(stem)
        self.ch.queue_declare(queue=name, arguments={"x-single-active-consumer": sac})
        self.to_delete.append(name)
        return name

    def publish(self, q, *bodies):
        for b in bodies:
            self.pub.basic_publish("", q, b)

    def pump_until(self, consumers, cond, timeout=30.0, settle=0.2):
        """Pump every consumer until cond() holds, then settle a little more
        so extra deliveries would show up."""
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            for c in consumers:
                c.pump(0.02)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            for c in consumers:
                c.pump(0.02)
        return cond()

    def test_only_first_consumer_receives(self):
        q = self.queue("first")
        a, b, c = (Consumer(self, q, auto_ack=True) for _ in range(3))
        bodies = [b"%d" % i for i in range(20)]
        self.publish(q, *bodies)
        self.pump_until([a, b, c], lambda: len(a.got) == 20)
        self.assertEqual(a.bodies(), bodies)
        self.assertEqual(b.got, [])
        self.assertEqual(c.got, [])

    def test_consumer_count_counts_all(self):
        q = self.queue("count")
        Consumer(self, q)
        Consumer(self, q)
        ok = self.ch.queue_declare(q, passive=True).method
        self.assertEqual(ok.consumer_count, 2)

    def test_cancel_hands_over_in_registration_order(self):
        q = self.queue("cancel")
        a, b, c = (Consumer(self, q, auto_ack=True) for _ in range(3))
        self.publish(q, b"1")
        self.pump_until([a, b, c], lambda: len(a.got) == 1)
        a.ch.basic_cancel(a.tag)
        self.publish(q, b"2")
        self.pump_until([a, b, c], lambda: len(b.got) == 1)
        b.ch.basic_cancel(b.tag)
        self.publish(q, b"3")
        self.pump_until([a, b, c], lambda: len(c.got) == 1)
        self.assertEqual((a.bodies(), b.bodies(), c.bodies()), ([b"1"], [b"2"], [b"3"]))

    def test_waiting_consumer_cancel_keeps_active(self):
        q = self.queue("cancel-waiting")
        a, b, c = (Consumer(self, q, auto_ack=True) for _ in range(3))
        b.ch.basic_cancel(b.tag)
        self.publish(q, b"1")
        self.pump_until([a, b, c], lambda: len(a.got) == 1)
        a.ch.basic_cancel(a.tag)
        self.publish(q, b"2")
        self.pump_until([a, b, c], lambda: len(c.got) == 1)
        self.assertEqual((a.bodies(), b.bodies(), c.bodies()), ([b"1"], [], [b"2"]))

    def test_channel_close_hands_over_and_requeues_unacked(self):
        q = self.queue("close")
        a = Consumer(self, q, prefetch=3)
        b = Consumer(self, q)
        c = Consumer(self, q)
        self.publish(q, *[b"%d" % i for i in range(5)])
        self.pump_until([a, b, c], lambda: len(a.got) == 3)
        self.assertEqual(a.bodies(), [b"0", b"1", b"2"], "prefetch 3: the rest waits")
        self.assertEqual((b.got, c.got), ([], []))
        a.ch.close()
        self.pump_until([b, c], lambda: len(b.got) == 5)
        # RabbitMQ does not order the requeued deliveries against the ready
        # ones here; the redelivered flags must be right.
        self.assertEqual(sorted((x, r) for x, r, _ in b.got),
                         [(b"0", True), (b"1", True), (b"2", True), (b"3", False), (b"4", False)])
        self.assertEqual(c.got, [])

    def test_connection_close_hands_over(self):
        q = self.queue("conn-close")
        a = Consumer(self, q)
        b = Consumer(self, q)
        self.publish(q, b"x")
        self.pump_until([a, b], lambda: len(a.got) == 1)
        a.conn.close()
        self.pump_until([b], lambda: len(b.got) == 1)
        self.assertEqual([(x, r) for x, r, _ in b.got], [(b"x", True)])

    def test_cancel_leaves_unacked_with_old_channel(self):
        """basic.cancel does not requeue: the old channel still owns its
        delivery; once it rejects it, the new active consumer gets it."""
        q = self.queue("cancel-unacked")
        a = Consumer(self, q, prefetch=1)
        b = Consumer(self, q)
        self.publish(q, b"1", b"2", b"3")
        self.pump_until([a, b], lambda: len(a.got) == 1)
        a.ch.basic_cancel(a.tag)
        self.pump_until([a, b], lambda: False, timeout=0.3, settle=0)
        self.assertEqual(a.bodies(), [b"1"])
        self.assertNotIn(b"1", b.bodies(), "the cancelled consumer's delivery is not requeued")
        a.ch.basic_reject(a.got[0][2], requeue=True)
        self.pump_until([a, b], lambda: len(b.got) == 3)
        self.assertEqual(sorted((x, r) for x, r, _ in b.got),
                         [(b"1", True), (b"2", False), (b"3", False)])
        self.assertEqual(a.bodies(), [b"1"])
        self.assertTrue(a.ch.is_open)

    def test_new_consumer_after_all_left_becomes_active(self):
        q = self.queue("again")
        a = Consumer(self, q, auto_ack=True)
        a.ch.basic_cancel(a.tag)
        self.publish(q, b"1")
        d = Consumer(self, q, auto_ack=True)
        e = Consumer(self, q, auto_ack=True)
        self.pump_until([d, e], lambda: len(d.got) == 1)
        self.assertEqual((d.bodies(), e.bodies()), ([b"1"], []))

    def test_basic_get_works(self):
        q = self.queue("get")
        a = Consumer(self, q, prefetch=1)
        self.publish(q, b"1", b"2")
        self.pump_until([a], lambda: len(a.got) == 1)
        m, _, body = self.ch.basic_get(q, auto_ack=True)
        self.assertEqual(body, b"2")
        self.assertEqual(a.bodies(), [b"1"])

    def test_false_means_round_robin(self):
        q = self.queue("off", sac=False)
        a = Consumer(self, q, auto_ack=True)
        b = Consumer(self, q, auto_ack=True)
        self.publish(q, *[b"%d" % i for i in range(10)])
        self.pump_until([a, b], lambda: len(a.got) + len(b.got) == 10)
        self.assertEqual(len(a.got), 5)
        self.assertEqual(len(b.got), 5)

    def test_invalid_value_406(self):
        for v in ("yes", 1):
            with self.subTest(value=v):
                ch = self.conn.channel()
                with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                    ch.queue_declare(uniq("bad"), arguments={"x-single-active-consumer": v})
                self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
                self.assertIn("x-single-active-consumer", cm.exception.reply_text)


if __name__ == "__main__":
    main()
