#!/usr/bin/python3
"""Load: 4 producer connections publish 100,000 unique messages while 4
consumer connections (prefetch 50, manual acks) drain the queue -- exact
counts, no loss, no duplicates, per-producer order; and consumers whose
socket is closed without connection.close get their unacked messages
redelivered (redelivered=true) to the other consumers."""

import os
import socket
import threading
import time

import pika

from harness import (BASIC_CONSUME, BASIC_CONSUME_OK, BASIC_DELIVER, FRAME_METHOD,
                     TEST_TIMEOUT, BrokerTestCase, assert_broker_alive, enc_bits,
                     enc_short, enc_shortstr, enc_table, main, method_frame,
                     raw_connect, wait_message_count)

# Bound for waiting on something that must happen (only reached on failure).
WAIT = 30.0


def test_deadline():
    """A deadline for a whole test: as late as the per-test limit allows,
    keeping a few seconds to report and clean up."""
    return time.monotonic() + max(WAIT, TEST_TIMEOUT - 8)


def raw_consume(raw, ch, queue, tag=""):
    raw.send(method_frame(ch, BASIC_CONSUME, enc_short(0) + enc_shortstr(queue) +
                          enc_shortstr(tag) + enc_bits(False, False, False, False) +
                          enc_table({})))


def raw_read_delivery(raw, ch, timeout=WAIT):
    """Next basic.deliver on channel ch with its body: (deliver_frame, body)."""
    f = raw.read_frame_skip_heartbeats(timeout)
    if f.type != FRAME_METHOD or f.method != BASIC_DELIVER or f.channel != ch:
        raise AssertionError("expected basic.deliver on channel %d, got %r" % (ch, f))
    _, body, _ = raw.read_content(ch, timeout)
    return f, body


def wait_until_consumers(ch, queue, n, timeout=WAIT):
    """Poll a passive queue.declare until consumer_count == n."""
    deadline = time.monotonic() + timeout
    while True:
        ok = ch.queue_declare(queue=queue, passive=True).method
        if ok.consumer_count == n or time.monotonic() > deadline:
            return ok
        time.sleep(0.02)


def uniq(stem):
    return "warren-it-load-%s-%s" % (stem, os.urandom(4).hex())


class Consumer(threading.Thread):
    """A pika consumer in its own thread and connection; acks every message."""

    def __init__(self, params, queue, prefetch, stop, deadline, name):
        super().__init__(name=name, daemon=True)
        self.params, self.queue, self.prefetch = params, queue, prefetch
        self.stop, self.deadline = stop, deadline
        self.received = []      # (body, redelivered)
        self.error = None
        self.ready = threading.Event()

    def run(self):
        conn = None
        try:
            conn = pika.BlockingConnection(self.params)
            ch = conn.channel()
            ch.basic_qos(prefetch_count=self.prefetch)

            def on_msg(c, m, props, body):
                self.received.append((body, m.redelivered))
                c.basic_ack(m.delivery_tag)
            ch.basic_consume(self.queue, on_msg)
            self.ready.set()
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                conn.process_data_events(time_limit=0.05)
            ch.close()
        except BaseException as e:   # reported by the test
            self.error = e
        finally:
            self.ready.set()
            if conn is not None and conn.is_open:
                try:
                    conn.close()
                except Exception:
                    pass


class Producer(threading.Thread):

    def __init__(self, params, queue, prefix, n, deadline, name):
        super().__init__(name=name, daemon=True)
        self.params, self.queue, self.prefix, self.n = params, queue, prefix, n
        self.deadline = deadline
        self.sent = 0
        self.error = None

    def run(self):
        conn = None
        try:
            conn = pika.BlockingConnection(self.params)
            ch = conn.channel()
            for i in range(self.n):
                ch.basic_publish(exchange="", routing_key=self.queue,
                                 body=b"%s-%06d" % (self.prefix, i))
                self.sent += 1
                if i % 1000 == 999:
                    # let pika flush and read (flow control / heartbeats)
                    conn.process_data_events(time_limit=0)
                    if time.monotonic() > self.deadline:
                        raise TimeoutError("producer %s: deadline after %d messages"
                                           % (self.prefix, self.sent))
            # a synchronous round trip: everything before it has been received
            ch.queue_declare(queue=self.queue, passive=True)
        except BaseException as e:
            self.error = e
        finally:
            if conn is not None and conn.is_open:
                try:
                    conn.close()
                except Exception:
                    pass


class LoadTest(BrokerTestCase):

    def setUp(self):
        self.conn = pika.BlockingConnection(self.broker.params())
        self.ch = self.conn.channel()
        self.to_delete = []
        self.stop = threading.Event()
        self.threads = []
        self.raws = []

    def tearDown(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        for r in self.raws:
            r.close()
        try:
            if self.conn.is_open:
                for q in self.to_delete:
                    self.ch.queue_delete(q)
                self.conn.close()
        finally:
            assert_broker_alive(self.broker)

    def queue(self, stem):
        q = uniq(stem)
        self.ch.queue_declare(queue=q)
        self.to_delete.append(q)
        return q

    def consumers(self, q, n, prefetch, deadline):
        cs = [Consumer(self.broker.params(), q, prefetch, self.stop, deadline, "consumer-%d" % i)
              for i in range(n)]
        self.threads += cs
        for c in cs:
            c.start()
        for c in cs:
            self.assertTrue(c.ready.wait(WAIT), "consumer did not start")
            self.assertIsNone(c.error, "consumer failed: %r" % (c.error,))
        return cs

    def producers(self, q, n, per, deadline):
        ps = [Producer(self.broker.params(), q, b"p%d" % i, per, deadline, "producer-%d" % i)
              for i in range(n)]
        self.threads += ps
        for p in ps:
            p.start()
        return ps

    def wait_total(self, cs, total, deadline):
        while time.monotonic() < deadline:
            if sum(len(c.received) for c in cs) >= total:
                return
            errs = [c.error for c in cs if c.error]
            if errs:
                self.fail("consumer failed: %r" % (errs[0],))
            time.sleep(0.05)

    def stop_consumers(self, cs):
        """Stop the consumers: each closes its channel (the broker requeues
        whatever it still had unacked) and its connection."""
        self.stop.set()
        for c in cs:
            c.join(WAIT)
            self.assertFalse(c.is_alive(), "%s did not stop" % c.name)
            self.assertIsNone(c.error, "%s failed: %r" % (c.name, c.error))

    def check_per_producer_order(self, cs, ignore=()):
        """Each consumer sees every producer's messages in publish order."""
        for c in cs:
            last = {}
            for body, redelivered in c.received:
                if redelivered or body in ignore:
                    continue
                prefix, seq = body.split(b"-")
                self.assertGreater(int(seq), last.get(prefix, -1),
                                   "%s: %r arrived out of order" % (c.name, body))
                last[prefix] = int(seq)

    def test_100k_messages_4_producers_4_consumers(self):
        total, nprod = 100000, 4
        q = self.queue("100k")
        start = time.monotonic()
        deadline = test_deadline()
        cs = self.consumers(q, 4, 50, deadline)
        ps = self.producers(q, nprod, total // nprod, deadline)
        for p in ps:
            p.join(max(0.1, deadline - time.monotonic()))
            self.assertFalse(p.is_alive(), "producer still running at the deadline")
            self.assertIsNone(p.error, "producer failed: %r" % (p.error,))
        self.assertEqual(sum(p.sent for p in ps), total)
        self.wait_total(cs, total, deadline)
        # Anything extra (a duplicate) is now either received, or ready or
        # unacked in the queue: the consumers' channel.close puts the
        # unacked back, where the count below sees it.
        self.stop_consumers(cs)
        got = [b for c in cs for b, _ in c.received]
        self.assertEqual(len(got), total, "received %d of %d (per consumer %r) in %.1f s"
                         % (len(got), total, [len(c.received) for c in cs],
                            time.monotonic() - start))
        expected = {b"p%d-%06d" % (p, i) for p in range(nprod) for i in range(total // nprod)}
        self.assertEqual(len(set(got)), total, "duplicate deliveries")
        self.assertEqual(set(got), expected)
        self.assertFalse(any(r for c in cs for _, r in c.received), "unexpected redeliveries")
        self.check_per_producer_order(cs)
        for c in cs:
            self.assertGreater(len(c.received), 0, "%s got nothing" % c.name)
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (0, 0))

    def kill_raw_consumer(self, raw):
        """Close the socket without connection.close."""
        try:
            raw.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raw.close()

    def test_dropped_consumer_unacked_are_redelivered(self):
        q = self.queue("drop")
        for i in range(30):
            self.ch.basic_publish(exchange="", routing_key=q, body=b"d-%02d" % i)
        wait_message_count(self.ch, q, 30)
        raw = raw_connect(self.broker)
        self.raws.append(raw)
        raw.channel_open(1)
        raw.basic_qos(1, 10)
        raw_consume(raw, 1, q, tag="doomed")
        raw.expect_method(BASIC_CONSUME_OK, 1)
        held = [raw_read_delivery(raw, 1)[1] for _ in range(10)]
        self.assertEqual(held, [b"d-%02d" % i for i in range(10)])

        deadline = test_deadline()
        (c,) = self.consumers(q, 1, 50, deadline)
        self.wait_total([c], 20, deadline)
        self.assertEqual(c.received, [(b"d-%02d" % i, False) for i in range(10, 30)])
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (0, 2))
        self.kill_raw_consumer(raw)
        self.wait_total([c], 30, deadline)
        self.assertEqual(sorted(c.received[20:]), [(b, True) for b in held])
        # the dropped consumer is gone and nothing is left (the remaining
        # consumer's channel.close would put back anything it had unacked)
        ok = wait_until_consumers(self.ch, q, 1)
        self.assertEqual((ok.message_count, ok.consumer_count), (0, 1))
        self.stop_consumers([c])
        self.assertEqual(len(c.received), 30)
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (0, 0))

    def test_consumer_dropped_under_load(self):
        total, nprod = 20000, 4
        q = self.queue("drop-load")
        deadline = test_deadline()
        cs = self.consumers(q, 3, 50, deadline)
        # a fourth consumer that never acks and dies holding its prefetch
        raw = raw_connect(self.broker)
        self.raws.append(raw)
        raw.channel_open(1)
        raw.basic_qos(1, 50)
        raw_consume(raw, 1, q, tag="doomed")
        raw.expect_method(BASIC_CONSUME_OK, 1)
        ps = self.producers(q, nprod, total // nprod, deadline)
        held = []
        for _ in range(50):
            f, body = raw_read_delivery(raw, 1, timeout=max(0.1, deadline - time.monotonic()))
            self.assertFalse(f["redelivered"])
            held.append(body)
        # with prefetch 50 and no acks nothing more may arrive
        with self.assertRaises(OSError):
            f = raw.read_frame_skip_heartbeats(0.2)
            self.fail("delivery beyond prefetch 50: %r" % f)
        self.kill_raw_consumer(raw)
        for p in ps:
            p.join(max(0.1, deadline - time.monotonic()))
            self.assertIsNone(p.error, "producer failed: %r" % (p.error,))
            self.assertFalse(p.is_alive())
        self.wait_total(cs, total, deadline)
        self.stop_consumers(cs)
        got = [b for c in cs for b, _ in c.received]
        self.assertEqual(len(got), total, "received %d of %d" % (len(got), total))
        self.assertEqual(len(set(got)), total, "duplicate deliveries")
        redelivered = sorted(b for c in cs for b, r in c.received if r)
        self.assertEqual(redelivered, sorted(held),
                         "exactly the dropped consumer's unacked messages come back "
                         "redelivered")
        self.check_per_producer_order(cs, ignore=set(held))
        ok = self.ch.queue_declare(queue=q, passive=True).method
        self.assertEqual((ok.message_count, ok.consumer_count), (0, 0))


if __name__ == "__main__":
    main()
