#!/usr/bin/python3
"""Deep queues page out to disk and keep every queue behaviour.

warrend runs with a small warren.queue.memory_messages, so that a few
thousand messages are enough to push most of a queue out of memory into
its paged-out file (data_dir/paged/*.tail).  The tests check that the
paging happened (the file is there, and gone once the queue drained) and
that order, contents, priorities, TTL, length limits, requeue, purge and
restarts behave exactly as they do in memory.
"""
import glob
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pika  # noqa: E402

from harness import Broker, get_all, main, require_own_broker, wait_until  # noqa: E402

PERSISTENT = pika.BasicProperties(delivery_mode=2)
MEMORY = 100  # messages per queue level kept in memory


def drain(ch, queue):
    """The bodies of every message now in queue, in order (acked)."""
    return [body for body, _ in get_all(ch, queue)]


def publish(ch, queue, bodies, props=PERSISTENT):
    for body in bodies:
        ch.basic_publish("", queue, body, props)


class Paging(unittest.TestCase):
    def setUp(self):
        require_own_broker("reads the broker's data directory")

    def broker(self, **extra):
        config = {"warren.queue.memory_messages": MEMORY}
        config.update(extra)
        return Broker(config=config)

    def paged_bytes(self, b):
        """Bytes in the broker's paged-out files now."""
        return sum(os.path.getsize(p) for p in
                   glob.glob(os.path.join(b.data_dir, "paged", "*.tail")))

    def test_deep_durable_queue_pages_out_and_drains_in_order(self):
        with self.broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("deep", durable=True)
            ch.confirm_delivery()
            bodies = [b"m%05d" % i for i in range(3000)]
            publish(ch, "deep", bodies)
            q = ch.queue_declare("deep", durable=True, passive=True)
            self.assertEqual(q.method.message_count, 3000)
            # Most of it waits on disk, not in memory.
            self.assertGreater(self.paged_bytes(b), 2000 * 48)

            got = []
            c = conn.channel()
            c.basic_qos(prefetch_count=50)
            c.basic_consume("deep", lambda ch_, m, p, body: (
                got.append(body), ch_.basic_ack(m.delivery_tag)))
            wait_until(lambda: (conn.process_data_events(0.05),
                                len(got) >= 3000)[1], what="3000 deliveries")
            self.assertEqual(got, bodies)
            wait_until(lambda: self.paged_bytes(b) == 0,
                       what="the paged-out file to go")
            conn.close()

    def test_restart_recovers_a_deep_queue_paged_out(self):
        with self.broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("deep", durable=True)
            ch.confirm_delivery()
            bodies = [b"r%05d" % i for i in range(2500)]
            publish(ch, "deep", bodies)
            conn.close()
            b.restart(kill=True)
            # Recovery puts the backlog straight into the paged-out file.
            self.assertGreater(self.paged_bytes(b), 2000 * 48)
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            q = ch.queue_declare("deep", durable=True, passive=True)
            self.assertEqual(q.method.message_count, 2500)
            self.assertEqual(drain(ch, "deep"), bodies)
            conn.close()
            # Consumed and acked: nothing comes back.
            b.restart(kill=False)
            conn = pika.BlockingConnection(b.params())
            self.assertEqual(drain(conn.channel(), "deep"), [])
            conn.close()

    def test_transient_messages_page_out_past_the_watermark(self):
        with self.broker(**{"warren.paging_watermark.absolute": "1MiB"}) as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("t")
            bodies = [(b"t%05d-" % i) + b"x" * 1000 for i in range(3000)]
            publish(ch, "t", bodies, pika.BasicProperties(delivery_mode=1))
            wait_until(lambda: ch.queue_declare(
                "t", passive=True).method.message_count == 3000,
                what="3000 queued")
            self.assertGreater(self.paged_bytes(b), 1000 * 48)
            self.assertEqual(drain(ch, "t"), bodies)
            conn.close()

    def test_persistent_messages_page_past_the_watermark_too(self):
        # Far below the per-queue limit, but past the memory watermark.
        with self.broker(**{"warren.queue.memory_messages": 100000,
                            "warren.paging_watermark.absolute": "1MiB"}) as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.confirm_delivery()
            bodies = [(b"w%05d-" % i) + b"x" * 1000 for i in range(3000)]
            for q in ("w1", "w2"):
                ch.queue_declare(q, durable=True)
                publish(ch, q, bodies)
            self.assertGreater(self.paged_bytes(b), 2 * 1000 * 48)
            for q in ("w1", "w2"):
                self.assertEqual(drain(ch, q), bodies)
            conn.close()

    def test_priorities_keep_their_order_when_paged(self):
        with self.broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("prio", durable=True,
                             arguments={"x-max-priority": 5})
            ch.confirm_delivery()
            sent = []
            for i in range(3000):
                p = i % 6
                body = b"p%d-%05d" % (p, i)
                ch.basic_publish("", "prio", body, pika.BasicProperties(
                    delivery_mode=2, priority=p))
                sent.append((p, i, body))
            self.assertGreater(self.paged_bytes(b), 1000 * 48)
            want = [body for p, i, body in
                    sorted(sent, key=lambda t: (-t[0], t[1]))]
            self.assertEqual(drain(ch, "prio"), want)
            conn.close()

    def test_ttl_expires_paged_messages_into_the_dead_letter_queue(self):
        with self.broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("dlq", durable=True)
            ch.queue_declare("ttl", durable=True, arguments={
                "x-message-ttl": 500, "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "dlq"})
            ch.confirm_delivery()
            bodies = [b"e%05d" % i for i in range(1000)]
            publish(ch, "ttl", bodies)
            wait_until(lambda: ch.queue_declare(
                "dlq", durable=True, passive=True).method.message_count == 1000,
                what="every message dead-lettered")
            self.assertEqual(ch.queue_declare(
                "ttl", durable=True, passive=True).method.message_count, 0)
            self.assertEqual(drain(ch, "dlq"), bodies)
            conn.close()

    def test_recovered_messages_still_expire_without_a_consumer(self):
        with self.broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("dlq", durable=True)
            ch.queue_declare("ttl", durable=True, arguments={
                "x-message-ttl": 3000, "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "dlq"})
            ch.confirm_delivery()
            bodies = [b"k%05d" % i for i in range(300)]
            publish(ch, "ttl", bodies)
            conn.close()
            # Recovery leaves every entry on disk; expiry still runs
            # (counted from the restart) with nobody using the queue.
            b.restart(kill=True)
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            wait_until(lambda: ch.queue_declare(
                "dlq", durable=True, passive=True).method.message_count == 300,
                what="every recovered message dead-lettered")
            self.assertEqual(drain(ch, "dlq"), bodies)
            conn.close()

    def test_max_length_drops_from_the_head_across_the_page(self):
        with self.broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("len", durable=True,
                             arguments={"x-max-length": 1000})
            ch.confirm_delivery()
            bodies = [b"l%05d" % i for i in range(3000)]
            publish(ch, "len", bodies)
            self.assertEqual(ch.queue_declare(
                "len", durable=True, passive=True).method.message_count, 1000)
            self.assertEqual(drain(ch, "len"), bodies[2000:])
            conn.close()

    def test_requeued_messages_go_back_before_the_paged_ones(self):
        with self.broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("rq", durable=True)
            ch.confirm_delivery()
            bodies = [b"q%05d" % i for i in range(1500)]
            publish(ch, "rq", bodies)
            c = conn.channel()
            for i in range(30):
                m, _, body = c.basic_get("rq")
                self.assertEqual(body, bodies[i])
            c.close()  # the 30 unacked come back, redelivered, first
            got = []
            while True:
                m, _, body = ch.basic_get("rq", auto_ack=True)
                if m is None:
                    break
                got.append((body, m.redelivered))
            self.assertEqual([body for body, _ in got], bodies)
            self.assertEqual([r for _, r in got],
                             [True] * 30 + [False] * 1470)
            conn.close()

    def test_purge_drops_paged_messages_for_good(self):
        with self.broker() as b:
            conn = pika.BlockingConnection(b.params())
            ch = conn.channel()
            ch.queue_declare("pg", durable=True)
            ch.confirm_delivery()
            publish(ch, "pg", [b"x%05d" % i for i in range(2000)])
            self.assertGreater(self.paged_bytes(b), 1000 * 48)
            self.assertEqual(ch.queue_purge("pg").method.message_count, 2000)
            self.assertEqual(self.paged_bytes(b), 0)
            # A confirmed publish after the purge: its ACKs are on disk.
            publish(ch, "pg", [b"after"])
            conn.close()
            b.restart(kill=True)
            conn = pika.BlockingConnection(b.params())
            self.assertEqual(drain(conn.channel(), "pg"), [b"after"])
            conn.close()


class StoreFlow(unittest.TestCase):
    """A disk slower than the publishers slows them down (TCP
    backpressure, no connection.blocked) instead of growing memory."""

    def setUp(self):
        require_own_broker("needs a slow store")

    def test_publishers_wait_for_a_slow_store_and_lose_nothing(self):
        # Each write round waits 100 ms: the store falls behind at once.
        with Broker(config={"warren.store.sync_delay_us": 100000,
                            "warren.store.max_pending": "256KiB"}) as b:
            conn = pika.BlockingConnection(b.params())
            blocked = []
            conn.add_on_connection_blocked_callback(
                lambda _c, frame: blocked.append(frame.method.reason))
            ch = conn.channel()
            ch.queue_declare("flow", durable=True)
            mark = b.log_mark()
            body = b"f" * 4096
            for i in range(3000):
                ch.basic_publish("", "flow", b"%05d" % i + body, PERSISTENT)
            # A confirmed publish after them: all of them are in.
            ch.confirm_delivery()
            ch.basic_publish("", "flow", b"last", PERSISTENT)
            self.assertIsNotNone(b.wait_for_log(
                lambda line: "message store is behind" in line, since=mark))
            caught_up = [line for line in b.stderr()[mark:].splitlines()
                         if "message store caught up" in line]
            self.assertNotEqual(caught_up, [])
            # The publisher was not read while the store was behind: what
            # waited for the disk stayed near the limit (12 MB were sent).
            for line in caught_up:
                waited = int(re.search(r"at most (\d+) bytes", line).group(1))
                self.assertLess(waited, 4 << 20, line)
            self.assertEqual(ch.queue_declare(
                "flow", durable=True, passive=True).method.message_count, 3001)
            conn.process_data_events(0)
            self.assertEqual(blocked, [])
            got = drain(ch, "flow")
            self.assertEqual(got[-1], b"last")
            self.assertEqual([g[:5] for g in got[:-1]],
                             [b"%05d" % i for i in range(3000)])
            conn.close()


if __name__ == "__main__":
    main()
