#!/usr/bin/python3
"""What survives a restart and a crash (SIGKILL), by RabbitMQ's rules.

Durable exchanges, durable queues and bindings between durable ends come
back; transient ones and exclusive queues do not.  Persistent messages in
durable queues come back in order, those delivered but not acked with
redelivered=True; transient messages do not.  Every confirmed message
survives a SIGKILL at any moment; a message acked (and synced) before the
crash stays gone.  A damaged segment costs only the damaged record.
"""
import glob
import os
import random
import subprocess
import threading
import time
import unittest

import pika
import pika.exceptions

from harness import (Broker, find_warrend, free_port, get_all as drain, main,
                     require_own_broker, wait_until)

PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)


def sync_marker(ch, queue="durability.marker"):
    """Publish a persistent message with a confirm: when it is confirmed,
    every record the broker appended before it (acks too) is on disk."""
    ch.queue_declare(queue, durable=True)
    ch.basic_publish("", queue, b"marker", PERSISTENT)
    ch.queue_purge(queue)


class Restarts(unittest.TestCase):
    def setUp(self):
        require_own_broker("restarts the broker")

    def declare_world(self, ch):
        ch.exchange_declare("d.x", "topic", durable=True)
        ch.exchange_declare("t.x", "direct", durable=False)
        ch.queue_declare("d.q", durable=True,
                         arguments={"x-max-length": 1000,
                                    "x-dead-letter-exchange": "d.x"})
        ch.queue_declare("d.q2", durable=True)
        ch.queue_declare("t.q", durable=False)
        ch.queue_declare("d.excl", durable=True, exclusive=True)
        ch.queue_bind("d.q", "d.x", "a.#")          # durable: stays
        ch.queue_bind("d.q2", "t.x", "k")           # transient source: goes
        ch.queue_bind("t.q", "d.x", "b.#")          # transient queue: goes
        ch.exchange_bind("d.x", "amq.fanout")       # both durable: stays

    def check_world(self, b):
        conn = pika.BlockingConnection(b.params())
        ch = conn.channel()
        # Durable ones exist (passive declare), with their arguments:
        ch.exchange_declare("d.x", "topic", durable=True, passive=True)
        ch.queue_declare("d.q", durable=True, arguments={
            "x-max-length": 1000, "x-dead-letter-exchange": "d.x"})
        ch.queue_declare("d.q2", durable=True, passive=True)
        for kind, name in (("exchange", "t.x"), ("queue", "t.q"),
                           ("queue", "d.excl")):
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker,
                                   msg="%s %s survived" % (kind, name)) as cm:
                if kind == "exchange":
                    ch.exchange_declare(name, passive=True)
                else:
                    ch.queue_declare(name, passive=True)
            self.assertEqual(cm.exception.reply_code, 404)
            ch = conn.channel()
        # A redeclare that differs is still refused: the settings came back.
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.queue_declare("d.q", durable=True,
                             arguments={"x-max-length": 5})
        self.assertEqual(cm.exception.reply_code, 406)
        ch = conn.channel()
        ch.confirm_delivery()
        # The durable bindings route; amq.fanout -> d.x -> d.q too.
        ch.basic_publish("d.x", "a.one", b"via-d.x", TRANSIENT)
        ch.basic_publish("amq.fanout", "a.two", b"via-fanout", TRANSIENT)
        got = drain(ch, "d.q")
        conn.close()
        return got

    def roundtrip(self, kill):
        with Broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            self.declare_world(ch)
            ch.confirm_delivery()
            sent = []
            for i in range(20):
                body = ("persistent-%d" % i).encode()
                ch.basic_publish("", "d.q", body, PERSISTENT)
                sent.append(body)
                ch.basic_publish("", "d.q", b"transient-%d" % i, TRANSIENT)
            ch.basic_publish("", "d.q2", b"q2-persistent", PERSISTENT)
            ch.basic_publish("", "t.q", b"lost-with-queue", PERSISTENT)
            if not kill:
                conn.close()
            b.restart(kill=kill)

            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            got = drain(ch, "d.q")
            self.assertEqual([body for body, _ in got], sent,
                             "exactly the persistent messages, in order")
            self.assertFalse(any(r for _, r in got),
                             "never delivered: not redelivered")
            self.assertEqual(drain(ch, "d.q2"), [(b"q2-persistent", False)])
            conn.close()
            routed = self.check_world(b)
            self.assertEqual(sorted(body for body, _ in routed),
                             [b"via-d.x", b"via-fanout"])

    def test_graceful_restart_keeps_durable_objects_and_persistent_messages(self):
        self.roundtrip(kill=False)

    def test_sigkill_keeps_durable_objects_and_confirmed_messages(self):
        self.roundtrip(kill=True)

    def test_deleted_objects_stay_deleted(self):
        with Broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.confirm_delivery()
            ch.exchange_declare("gone.x", "direct", durable=True)
            ch.queue_declare("gone.q", durable=True)
            ch.queue_bind("gone.q", "gone.x", "k")
            ch.queue_declare("kept.q", durable=True)
            ch.queue_bind("kept.q", "amq.direct", "k1")
            ch.queue_bind("kept.q", "amq.direct", "k2")
            ch.basic_publish("", "gone.q", b"old", PERSISTENT)
            ch.queue_unbind("kept.q", "amq.direct", "k2")
            ch.queue_delete("gone.q")
            ch.exchange_delete("gone.x")
            # Same name again: the old queue's message must not come back.
            ch.queue_declare("gone.q", durable=True)
            ch.basic_publish("", "gone.q", b"new", PERSISTENT)
            conn.close()
            b.restart(kill=True)
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            self.assertEqual(drain(ch, "gone.q"), [(b"new", False)])
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.exchange_declare("gone.x", passive=True)
            self.assertEqual(cm.exception.reply_code, 404)
            ch = conn.channel()
            ch.confirm_delivery()
            ch.basic_publish("amq.direct", "k1", b"bound", TRANSIENT)
            ch.basic_publish("amq.direct", "k2", b"unbound", TRANSIENT)
            self.assertEqual(drain(ch, "kept.q"), [(b"bound", False)])
            conn.close()

    def test_unacked_come_back_redelivered_in_order_acked_stay_gone(self):
        with Broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("work", durable=True)
            ch.confirm_delivery()
            for i in range(10):
                ch.basic_publish("", "work", b"m%d" % i, PERSISTENT)
            # basic.get, so that no ack opens a prefetch window for more.
            c2 = conn.channel()
            tags = []
            for _ in range(5):
                m, _, body = c2.basic_get("work")
                tags.append((m.delivery_tag, body))
            self.assertEqual([body for _, body in tags],
                             [b"m%d" % i for i in range(5)])
            c2.basic_ack(tags[0][0])
            c2.basic_ack(tags[2][0])
            # A confirm for a later persistent publish means the acks
            # before it are on disk too.
            sync_marker(ch)
            b.restart(kill=True)

            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            got = drain(ch, "work")
            self.assertEqual([body for body, _ in got],
                             [b"m1", b"m3", b"m4"] +
                             [b"m%d" % i for i in range(5, 10)])
            self.assertEqual([r for _, r in got],
                             [True, True, True] + [False] * 5)
            conn.close()

    def test_a_second_broker_on_the_same_data_dir_refuses_to_start(self):
        with Broker() as b:
            conf = os.path.join(b.tmpdir, "second.conf")
            with open(conf, "w") as f:
                f.write("listeners.tcp.default = 127.0.0.1:%d\n"
                        % free_port())
                f.write("warren.data_dir = %s\n" % b.data_dir)
                f.write("management.tcp.port = 0\n")
                f.write("prometheus.tcp.port = 0\n")
            second = subprocess.run([find_warrend(), "-c", conf],
                                    capture_output=True, text=True,
                                    timeout=60)
            self.assertEqual(second.returncode, 1)
            self.assertIn("is in use by another warrend, pid %d"
                          % b.proc.pid, second.stderr)
            # The first one is untouched and still serves.
            conn = pika.BlockingConnection(b.params())
            conn.channel().queue_declare("still.here", durable=True)
            conn.close()

    def test_expiry_counts_from_publish_not_from_restart(self):
        with Broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("exp.dlq", durable=True)
            ch.queue_declare("exp", durable=True, arguments={
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "exp.dlq"})
            ch.confirm_delivery()
            published = time.monotonic()
            ch.basic_publish("", "exp", b"short", pika.BasicProperties(
                delivery_mode=2, expiration="1500"))
            ch.basic_publish("", "exp", b"long", pika.BasicProperties(
                delivery_mode=2, expiration="600000"))
            conn.close()
            b.stop(kill=True)
            # Down for longer than the short TTL.
            wait_until(lambda: time.monotonic() - published > 2.0,
                       what="the short TTL to pass")
            b.start()
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            # Expired while the broker was down: dead-lettered at once,
            # not 1.5 s after the restart.
            self.assertEqual(drain(ch, "exp"), [(b"long", False)])
            wait_until(lambda: ch.queue_declare(
                "exp.dlq", durable=True, passive=True).method.message_count == 1,
                what="the expired message dead-lettered")
            self.assertEqual(drain(ch, "exp.dlq"), [(b"short", False)])
            conn.close()

    def test_log_shrinks_after_backlog_is_consumed(self):
        with Broker(config={"warren.store.segment_size": 65536}) as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("big", durable=True)
            ch.confirm_delivery()
            body = b"x" * 1024
            for _ in range(1000):
                ch.basic_publish("", "big", body, PERSISTENT)
            store = os.path.join(b.data_dir, "msg_store")
            grown = len(glob.glob(os.path.join(store, "*.seg")))
            self.assertGreater(grown, 10, "1 MB over 64 KB segments")
            self.assertEqual(len(drain(ch, "big")), 1000)
            sync_marker(ch)
            wait_until(lambda: len(glob.glob(os.path.join(store, "*.seg"))) <= 2,
                       what="settled segments deleted")
            conn.close()


class CrashLoop(unittest.TestCase):
    """Publishers with confirms while warrend is SIGKILLed at random."""

    ROUNDS = 10

    def setUp(self):
        require_own_broker("kills the broker")

    def publish_until_killed(self, b, prefix, confirmed, stop):
        try:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.confirm_delivery()
            i = 0
            while not stop.is_set():
                body = ("%s-%d" % (prefix, i)).encode()
                ch.basic_publish("", "crash", body, PERSISTENT)
                confirmed.append(body)  # only after its confirm arrived
                i += 1
        except (pika.exceptions.AMQPError, OSError):
            pass  # the broker died under us: expected

    def test_confirmed_messages_survive_sigkill_at_random_moments(self):
        rnd = random.Random(int(os.environ.get("WARREN_TEST_SEED", time.time())))
        with Broker() as b:
            conn = pika.BlockingConnection(b.params())
            conn.channel().queue_declare("crash", durable=True)
            conn.close()
            acked_before = set()
            for rnd_no in range(self.ROUNDS):
                confirmed = [[], []]
                stop = threading.Event()
                threads = [threading.Thread(
                    target=self.publish_until_killed,
                    args=(b, "r%d-p%d" % (rnd_no, p), confirmed[p], stop))
                    for p in range(2)]
                for t in threads:
                    t.start()
                wait_until(lambda: sum(map(len, confirmed)) >= 5,
                           what="some confirms")
                time.sleep(rnd.uniform(0, 0.3))
                b.restart(kill=True)
                stop.set()
                for t in threads:
                    t.join(30)
                conn = pika.BlockingConnection(b.params())
                ch = conn.channel()
                got = [body for body, _ in drain(ch, "crash")]
                have = set(got)
                for p in range(2):
                    missing = [m for m in confirmed[p] if m not in have]
                    self.assertEqual(missing, [], "round %d: confirmed but "
                                     "lost after SIGKILL" % rnd_no)
                    # One publisher's messages come back in its order.
                    mine = [m for m in got if m.startswith(
                        ("r%d-p%d-" % (rnd_no, p)).encode())]
                    self.assertEqual(mine, sorted(set(mine), key=mine.index))
                back = have & acked_before
                self.assertEqual(back, set(), "acked before an earlier "
                                 "crash, yet back")
                acked_before |= have
                sync_marker(ch)
                conn.close()


class Corruption(unittest.TestCase):
    def setUp(self):
        require_own_broker("edits the broker's files")

    def test_flipped_byte_and_torn_tail_cost_only_the_damaged_records(self):
        with Broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("fragile", durable=True)
            ch.confirm_delivery()
            bodies = [("message-%d-" % i).encode() + b"z" * 200
                      for i in range(6)]
            for body in bodies:
                ch.basic_publish("", "fragile", body, PERSISTENT)
            conn.close()
            b.restart()  # a clean stop: the files are complete
            segs = sorted(glob.glob(os.path.join(b.data_dir, "msg_store",
                                                 "*.seg")))
            data = bytearray()
            with open(segs[0], "rb") as f:
                data += f.read()
            at = data.find(bodies[2])
            self.assertGreater(at, 0)
            data[at + 20] ^= 0x10           # one bit in message 2's body
            del data[-3:]                   # the last record (message 5's ENQ) torn
            b.stop()
            with open(segs[0], "wb") as f:
                f.write(data)
            mark = b.log_mark()
            b.start()
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            got = [body for body, _ in drain(ch, "fragile")]
            self.assertEqual(got, [bodies[i] for i in (0, 1, 3, 4)])
            log = b.stderr()[mark:]
            self.assertIn("corrupt record", log)
            self.assertIn("torn tail", log)
            self.assertIn("skipped 1 damaged records", log)
            conn.close()


if __name__ == "__main__":
    main()
