#!/usr/bin/python3
"""Stream queues (issue 13): x-queue-type = stream, with RabbitMQ's
semantics over AMQP 0-9-1.  An append-only log: consuming removes nothing,
every message has an offset that each delivery carries in the
x-stream-offset header, consumers start where x-stream-offset says
(first, last, next, an offset, a timestamp, an interval), must ack
manually with a prefetch, and read independently.  basic.get and purge
are refused; retention drops whole segments by size and by age; the log
survives restarts and kill -9.

Reply codes and texts as RabbitMQ 3.10.8 answers them (probed with pika
against a private node): basic.get, queue.purge, basic.nack/reject and
no-ack consumers are 540 (closing the connection); a consumer without a
per-consumer prefetch, a server-named stream, and classic-only arguments
(x-max-length, x-message-ttl, x-max-priority ...) are 406."""

import datetime
import os
import socket
import time

import pika
import pika.exceptions

from harness import (PikaTestCase, NOT_IMPLEMENTED, PRECONDITION_FAILED, main,
                     wait_until)

STREAM = {"x-queue-type": "stream"}


def uniq(stem):
    return "warren-it-stream-%s-%s" % (stem, os.urandom(4).hex())


def drop(conn):
    """Close conn's socket.  A graceful close would have pika cancel its
    consumers and nack what is still in flight, which streams answer with
    540, as RabbitMQ does."""
    conn._impl._transport._sock.shutdown(socket.SHUT_RDWR)


class Reader:
    """A stream consumer on its own channel, recording (offset, body)."""

    def __init__(self, conn, q, offset=None, prefetch=10, extra=None):
        self.conn = conn
        self.ch = conn.channel()
        self.ch.basic_qos(prefetch_count=prefetch)
        self.got = []
        self.headers = []
        args = dict(extra or {})
        if offset is not None:
            args["x-stream-offset"] = offset
        self.tag = self.ch.basic_consume(q, self._on, arguments=args)

    def _on(self, ch, m, p, body):
        self.got.append((p.headers["x-stream-offset"], body))
        self.headers.append(p.headers)
        ch.basic_ack(m.delivery_tag)

    def offsets(self):
        return [o for o, _ in self.got]

    def wait_for(self, n, what=None):
        wait_until(lambda: (self.conn.process_data_events(time_limit=0.02),
                            len(self.got) >= n)[1],
                   what=what or "%d deliveries (have %d)" % (n, len(self.got)))

    def settle(self, seconds=0.3):
        """Pump for a while: nothing more should arrive."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.conn.process_data_events(time_limit=0.05)


class StreamTest(PikaTestCase):

    def stream(self, stem="s", args=None):
        q = uniq(stem)
        ch = self.connect().channel()
        a = dict(STREAM)
        a.update(args or {})
        ch.queue_declare(q, durable=True, arguments=a)
        self.to_delete.append(q)
        return q

    def publish(self, q, bodies, headers=None):
        ch = self.connect().channel()
        ch.confirm_delivery()
        for b in bodies:
            ch.basic_publish("", q, b, properties=pika.BasicProperties(headers=headers))
        ch.connection.close()

    def message_count(self, q):
        ch = self.connect().channel()
        return ch.queue_declare(q, durable=True, passive=True).method.message_count

    # -- declare ----------------------------------------------------------

    def test_stream_must_be_durable_non_exclusive_non_auto_delete(self):
        conn = self.connect()
        for kw, text in [(dict(durable=False), "invalid property 'non-durable'"),
                         (dict(durable=True, exclusive=True),
                          "invalid property 'exclusive-owner'"),
                         (dict(durable=True, auto_delete=True),
                          "invalid property 'auto-delete'")]:
            ch = conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.queue_declare(uniq("bad"), arguments=STREAM, **kw)
            self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED, kw)
            self.assertIn(text, cm.exception.reply_text)
        ch = conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.queue_declare("", durable=True, arguments=STREAM)
        self.assertIn("server-named", cm.exception.reply_text)

    def test_classic_only_arguments_are_refused(self):
        conn = self.connect()
        for arg, value in [("x-max-length", 10), ("x-message-ttl", 1000),
                           ("x-max-priority", 5), ("x-dead-letter-exchange", "dlx"),
                           ("x-overflow", "reject-publish"),
                           ("x-single-active-consumer", True)]:
            ch = conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.queue_declare(uniq("bad"), durable=True,
                                 arguments=dict(STREAM, **{arg: value}))
            self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED, arg)
            self.assertIn("invalid arg '%s'" % arg, cm.exception.reply_text)
        for bad_age in ["0s", "10S", "30", "1.5h"]:
            ch = conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.queue_declare(uniq("bad"), durable=True,
                                 arguments=dict(STREAM, **{"x-max-age": bad_age}))
            self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED, bad_age)

    def test_redeclare_compares_stream_arguments(self):
        q = self.stream(args={"x-max-age": "1h"})
        ch = self.connect().channel()
        ch.queue_declare(q, durable=True, arguments=dict(STREAM, **{"x-max-age": "1h"}))
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.queue_declare(q, durable=True, arguments=dict(STREAM, **{"x-max-age": "2h"}))
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("inequivalent arg 'x-max-age'", cm.exception.reply_text)

    # -- offsets ----------------------------------------------------------

    def test_every_delivery_carries_its_offset_and_keeps_its_headers(self):
        q = self.stream()
        self.publish(q, [b"m%d" % i for i in range(10)], headers={"app": "x"})
        r = Reader(self.connect(), q, "first")
        r.wait_for(10)
        self.assertEqual(r.got, [(i, b"m%d" % i) for i in range(10)])
        self.assertTrue(all(h["app"] == "x" for h in r.headers))

    def test_offset_specs(self):
        q = self.stream()
        self.publish(q, [b"a%d" % i for i in range(20)])
        conn = self.connect()
        first = Reader(conn, q, "first")
        numeric = Reader(conn, q, 15)
        beyond = Reader(conn, q, 21)  # past the end: waits for offset 21
        nxt = Reader(conn, q, "next")
        default = Reader(conn, q)  # no argument: next
        last = Reader(conn, q, "last")
        first.wait_for(20)
        numeric.wait_for(5)
        last.wait_for(1)
        nxt.settle()
        self.assertEqual(first.offsets(), list(range(20)))
        self.assertEqual(numeric.offsets(), list(range(15, 20)))
        # "last" starts at the newest chunk: at most the 20, at least the last
        self.assertEqual(last.offsets()[-1], 19)
        self.assertEqual(last.offsets(), list(range(last.offsets()[0], 20)))
        self.assertEqual(nxt.got, [])
        self.assertEqual(default.got, [])
        self.assertEqual(beyond.got, [])
        self.publish(q, [b"b0", b"b1"])
        for r in (nxt, default):
            r.wait_for(2)
            self.assertEqual(r.got, [(20, b"b0"), (21, b"b1")])
        beyond.wait_for(1)
        self.assertEqual(beyond.got, [(21, b"b1")])

    def test_timestamp_and_interval_offsets(self):
        q = self.stream()
        self.publish(q, [b"old%d" % i for i in range(5)])
        time.sleep(1.2)  # the chunks' clock has a millisecond grain
        mark = datetime.datetime.now()
        mark_s = time.time()
        time.sleep(1.1)
        self.publish(q, [b"new%d" % i for i in range(5)])
        conn = self.connect()
        # pika sends a datetime as an AMQP timestamp (seconds)
        by_time = Reader(conn, q, mark)
        # an interval reaching back to the mark, however long the
        # publishes and the consumers above took on a busy machine
        recent = Reader(conn, q, "%ds" % max(1, round(time.time() - mark_s)))
        long_ago = Reader(conn, q, "1h")
        by_time.wait_for(5)
        long_ago.wait_for(10)
        recent.wait_for(5)
        self.assertEqual(by_time.offsets(), list(range(5, 10)))
        self.assertEqual(recent.offsets(), list(range(5, 10)))
        self.assertEqual(long_ago.offsets(), list(range(10)))
        # the chunks' times come back from disk after a restart
        for c in self.conns:
            if c.is_open:
                c.close()
        self.conns = []
        self.broker.restart()
        again = Reader(self.connect(), q, mark)
        again.wait_for(5)
        again.settle()
        self.assertEqual(again.offsets(), list(range(5, 10)))

    def test_bad_offset_spec_is_refused(self):
        q = self.stream()
        conn = self.connect()
        ch = conn.channel()
        ch.basic_qos(prefetch_count=10)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.basic_consume(q, lambda *a: None, arguments={"x-stream-offset": "soon"})
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)

    # -- reading ----------------------------------------------------------

    def test_consumers_read_independently_and_nothing_is_removed(self):
        q = self.stream()
        self.publish(q, [b"%d" % i for i in range(50)])
        conn = self.connect()
        fast = Reader(conn, q, "first", prefetch=50)
        slow = Reader(conn, q, "first", prefetch=1)
        fast.wait_for(50)
        slow.wait_for(50)
        self.assertEqual(fast.offsets(), list(range(50)))
        self.assertEqual(slow.offsets(), list(range(50)))
        # acked, yet still there for the next reader
        self.assertEqual(self.message_count(q), 50)
        again = Reader(self.connect(), q, "first")
        again.wait_for(50)
        self.assertEqual(again.offsets(), list(range(50)))

    def test_prefetch_is_the_credit(self):
        q = self.stream()
        self.publish(q, [b"%d" % i for i in range(20)])
        conn = self.connect()
        ch = conn.channel()
        ch.basic_qos(prefetch_count=3)
        got = []
        ch.basic_consume(q, lambda c, m, p, b: got.append(m.delivery_tag),
                         arguments={"x-stream-offset": "first"})
        wait_until(lambda: (conn.process_data_events(time_limit=0.02), len(got) >= 3)[1])
        conn.process_data_events(time_limit=0.3)
        self.assertEqual(len(got), 3, "more than the prefetch without acks")
        ch.basic_ack(got[-1], multiple=True)
        wait_until(lambda: (conn.process_data_events(time_limit=0.02), len(got) >= 6)[1])
        conn.process_data_events(time_limit=0.3)
        self.assertEqual(len(got), 6)

    def test_nack_and_reject_are_refused(self):
        q = self.stream()
        self.publish(q, [b"x", b"y"])
        for settle in ("nack", "reject"):
            conn = self.connect()
            ch = conn.channel()
            ch.basic_qos(prefetch_count=5)
            got = []
            ch.basic_consume(q, lambda c, m, p, b: got.append(m.delivery_tag),
                             arguments={"x-stream-offset": "first"})
            wait_until(lambda: (conn.process_data_events(time_limit=0.02), len(got) >= 2)[1])
            with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
                if settle == "nack":
                    ch.basic_nack(got[0], requeue=True)
                else:
                    ch.basic_reject(got[0], requeue=False)
                conn.process_data_events(time_limit=5)
                ch.queue_declare(q, passive=True)
            self.assertEqual(cm.exception.reply_code, NOT_IMPLEMENTED, settle)
            self.assertIn("basic.nack and basic.reject not supported", cm.exception.reply_text)
        self.assertEqual(self.message_count(q), 2)

    # -- refused ----------------------------------------------------------

    def test_basic_get_is_refused(self):
        q = self.stream()
        ch = self.connect().channel()
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            ch.basic_get(q)
        self.assertEqual(cm.exception.reply_code, NOT_IMPLEMENTED)

    def test_purge_is_refused(self):
        q = self.stream()
        self.publish(q, [b"keep"])
        ch = self.connect().channel()
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            ch.queue_purge(q)
        self.assertEqual(cm.exception.reply_code, NOT_IMPLEMENTED)
        self.assertIn("queue.purge not supported by stream queues", cm.exception.reply_text)
        self.assertEqual(self.message_count(q), 1)

    def test_consume_needs_manual_ack_and_a_prefetch(self):
        q = self.stream()
        conn = self.connect()
        ch = conn.channel()
        ch.basic_qos(prefetch_count=10, global_qos=True)  # not per consumer
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.basic_consume(q, lambda *a: None)
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        self.assertIn("consumer prefetch count is not set", cm.exception.reply_text)
        ch = conn.channel()
        ch.basic_qos(prefetch_count=10)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.basic_consume(q, lambda *a: None, arguments={"x-priority": 5})
        self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
        ch = conn.channel()
        ch.basic_qos(prefetch_count=10)
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            ch.basic_consume(q, lambda *a: None, auto_ack=True)
        self.assertEqual(cm.exception.reply_code, NOT_IMPLEMENTED)
        self.assertIn("automatic acknowledgement not supported", cm.exception.reply_text)

    # -- durability -------------------------------------------------------

    def test_survives_restart_and_kill(self):
        q = self.stream()
        self.publish(q, [b"before-%d" % i for i in range(30)])
        self.conns = [c for c in self.conns if c.is_open]
        for c in self.conns:
            c.close()
        self.conns = []
        self.broker.restart()
        self.publish(q, [b"middle-%d" % i for i in range(30)])
        for c in self.conns:
            if c.is_open:
                c.close()
        self.conns = []
        self.broker.restart(kill=True)
        r = Reader(self.connect(), q, "first", prefetch=100)
        r.wait_for(60)
        self.assertEqual(r.offsets(), list(range(60)))
        self.assertEqual([b for _, b in r.got],
                         [b"before-%d" % i for i in range(30)] +
                         [b"middle-%d" % i for i in range(30)])
        self.publish(q, [b"after"])
        r.wait_for(61)
        self.assertEqual(r.got[-1], (60, b"after"))

    def segment_files(self, q):
        streams = os.path.join(self.broker.data_dir, "streams")
        (d,) = os.listdir(streams)  # the test's only stream
        return sorted(os.path.join(streams, d, f)
                      for f in os.listdir(os.path.join(streams, d)) if f.endswith(".seg"))

    def test_damaged_chunks_are_skipped_and_a_torn_tail_cut(self):
        """A flipped byte inside a chunk loses that chunk only (its offsets
        stay a gap); a torn tail is cut off; warrend starts, says so, and
        serves the rest, and appends continue after the last good chunk."""
        q = self.stream()
        # three publishes with confirms: three chunks, in this order
        self.publish(q, [b"a%d" % i + b"." * 200 for i in range(5)])
        self.publish(q, [b"b%d" % i + b"." * 200 for i in range(5)])
        self.publish(q, [b"c%d" % i + b"." * 200 for i in range(5)])
        for c in self.conns:
            if c.is_open:
                c.close()
        self.conns = []
        self.broker.stop()
        (seg,) = self.segment_files(q)
        data = bytearray(open(seg, "rb").read())
        third = len(data) // 3
        data[third + third // 2] ^= 0x40       # inside the second chunk
        data += b"\x99\x00\x00\x00garbage"      # a torn record after the third
        open(seg, "wb").write(bytes(data))
        mark = self.broker.log_mark()
        self.broker.start()
        self.assertIsNotNone(self.broker.wait_for_log(
            lambda l: "skipped" in l or "damaged" in l or "torn" in l, since=mark),
            self.broker.stderr()[mark:])
        r = Reader(self.connect(), q, "first", prefetch=50)
        r.wait_for(14)
        r.settle()
        bodies = [b[:2] for _, b in r.got]
        # pika waits for each confirm: one message per chunk, so exactly
        # the one message in the damaged chunk is gone, and nothing
        # delivered is damaged
        self.assertEqual(len(r.got), 14, (r.got, self.broker.stderr()[mark:]))
        self.assertTrue(all(b.endswith(b"." * 200) for _, b in r.got))
        everything = [b"%s%d" % (k, i) for k in (b"a", b"b", b"c") for i in range(5)]
        (lost,) = set(everything) - set(bodies)
        self.assertTrue(lost.startswith(b"b"), lost)
        self.assertEqual(r.offsets(), [o for o in range(15) if o != everything.index(lost)])
        # appends go on after the cut tail, with the next offset
        self.publish(q, [b"d0"])
        r.wait_for(15)
        self.assertEqual(r.got[-1], (15, b"d0"))

    def test_delete_removes_the_files(self):
        q = self.stream()
        self.publish(q, [b"x" * 1000] * 10)
        streams = os.path.join(self.broker.data_dir, "streams")
        wait_until(lambda: len(os.listdir(streams)) == 1, what="one stream directory")
        self.connect().channel().queue_delete(q)
        self.to_delete.remove(q)
        wait_until(lambda: os.listdir(streams) == [], what="the stream's files gone")

    # -- filtering -------------------------------------------------------

    def test_filtering(self):
        q = self.stream()
        # separate publishes: separate chunks, some of which hold no "eu"
        self.publish(q, [b"eu-%d" % i for i in range(5)],
                     headers={"x-stream-filter-value": "eu"})
        self.publish(q, [b"us-%d" % i for i in range(5)],
                     headers={"x-stream-filter-value": "us"})
        self.publish(q, [b"plain-%d" % i for i in range(3)])
        self.publish(q, [b"eu-late"], headers={"x-stream-filter-value": "eu"})
        conn = self.connect()
        eu = Reader(conn, q, "first", extra={"x-stream-filter": "eu"})
        both = Reader(conn, q, "first", extra={"x-stream-filter": ["eu", "us"]})
        eu_plain = Reader(conn, q, "first", extra={"x-stream-filter": "eu",
                                                   "x-stream-match-unfiltered": True})
        everything = Reader(conn, q, "first")
        everything.wait_for(14)
        eu.wait_for(6)
        both.wait_for(11)
        eu_plain.wait_for(9)
        everything.settle()
        self.assertEqual([b for _, b in eu.got], [b"eu-%d" % i for i in range(5)] + [b"eu-late"])
        self.assertEqual(len(both.got), 11)
        self.assertEqual([b for _, b in eu_plain.got],
                         [b"eu-%d" % i for i in range(5)] +
                         [b"plain-%d" % i for i in range(3)] + [b"eu-late"])
        self.assertEqual(eu.offsets(), [0, 1, 2, 3, 4, 13])
        # new messages are filtered as they arrive
        self.publish(q, [b"us-new"], headers={"x-stream-filter-value": "us"})
        self.publish(q, [b"eu-new"], headers={"x-stream-filter-value": "eu"})
        eu.wait_for(7)
        eu.settle()
        self.assertEqual(eu.got[-1], (15, b"eu-new"))
        self.assertEqual(len(eu.got), 7)

    def test_bad_filter_arguments(self):
        q = self.stream()
        conn = self.connect()
        for args in [{"x-stream-filter": 5}, {"x-stream-filter": ["a", 1]},
                     {"x-stream-filter": "a", "x-stream-match-unfiltered": "yes"}]:
            ch = conn.channel()
            ch.basic_qos(prefetch_count=5)
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.basic_consume(q, lambda *a: None, arguments=args)
            self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED, args)

    def test_filtering_after_restart_reads_chunks_from_disk(self):
        q = self.stream()
        for i in range(20):
            self.publish(q, [b"%d" % i], headers={"x-stream-filter-value": "k%d" % (i % 4)})
        for c in self.conns:
            if c.is_open:
                c.close()
        self.conns = []
        self.broker.restart()
        r = Reader(self.connect(), q, "first", extra={"x-stream-filter": "k1"})
        r.wait_for(5)
        r.settle()
        self.assertEqual(r.offsets(), [1, 5, 9, 13, 17])

    # -- server-side offset tracking -----------------------------------------

    def tracked(self, q, tag, n, **args):
        """Consume n messages as `tag` with tracking on; returns offsets."""
        conn = pika.BlockingConnection(self.broker.params())
        ch = conn.channel()
        ch.basic_qos(prefetch_count=5)
        got = []

        def on(c, m, p, b):
            # ack exactly n: the rest stay unacked, so the stored offset
            # is the one after the n-th
            if len(got) < n:
                got.append(p.headers["x-stream-offset"])
                c.basic_ack(m.delivery_tag)
        a = {"x-stream-automatic-offset-tracking": True}
        a.update(args)
        ch.basic_consume(q, on, consumer_tag=tag, arguments=a)
        wait_until(lambda: (conn.process_data_events(time_limit=0.02),
                            len(got) >= n)[1], what="%d deliveries" % n)
        # the acks have been read once a round trip comes back
        ch.queue_declare(q, passive=True)
        drop(conn)
        return got

    def test_named_consumer_resumes_after_reconnect_and_restart(self):
        q = self.stream()
        self.publish(q, [b"%d" % i for i in range(30)])
        # first time: from x-stream-offset (first)
        self.assertEqual(self.tracked(q, "billing", 10, **{"x-stream-offset": "first"})[:10],
                         list(range(10)))
        # a reconnect resumes where the acks got to, whatever x-stream-offset says
        got = self.tracked(q, "billing", 5, **{"x-stream-offset": "first"})
        self.assertEqual(got, list(range(10, 15)))
        # another name has its own offset
        self.assertEqual(self.tracked(q, "audit", 3, **{"x-stream-offset": "first"})[0], 0)
        for c in self.conns:
            if c.is_open:
                c.close()
        self.conns = []
        # a graceful stop writes every commit
        self.broker.restart()
        self.assertEqual(self.tracked(q, "billing", 1, **{"x-stream-offset": "first"}), [15])
        # a commit reaches the disk with the store's next batch: a kill -9
        # right after an ack may lose that one commit, never an older one
        self.broker.restart(kill=True)
        self.assertIn(self.tracked(q, "billing", 1, **{"x-stream-offset": "first"}),
                      ([15], [16]))

    def test_null_offset_means_tracked_from_the_start(self):
        q = self.stream()
        self.publish(q, [b"%d" % i for i in range(10)])
        got = self.tracked(q, "nul", 4, **{"x-stream-offset": None,
                                           "x-stream-automatic-offset-tracking": False})
        self.assertEqual(got, [0, 1, 2, 3])
        got = self.tracked(q, "nul", 1, **{"x-stream-offset": None,
                                           "x-stream-automatic-offset-tracking": False})
        self.assertEqual(got, [4])

    # -- admin -----------------------------------------------------------

    def test_admin_api_metrics_and_warrenctl_show_offsets_and_lag(self):
        import base64
        import json
        import subprocess
        import urllib.parse
        import urllib.request
        from harness import find_warrenctl

        q = self.stream(args={"x-stream-max-segment-size-bytes": 4000})
        self.publish(q, [b"x" * 1000] * 20)
        self.tracked(q, "reporting", 8, **{"x-stream-offset": "first"})
        auth = "Basic " + base64.b64encode(b"guest:guest").decode()

        def get(port, path):
            req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                         headers={"Authorization": auth})
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.read().decode()

        # the ack commits travel with the store's next batch
        def api():
            return json.loads(get(self.broker.mgmt_port, "/api/queues/%%2F/%s"
                                  % urllib.parse.quote(q, safe="")))
        wait_until(lambda: api()["stream"]["consumer_offsets"], what="a stored offset")
        info = api()
        self.assertEqual(info["type"], "stream")
        st = info["stream"]
        self.assertEqual((st["first_offset"], st["last_offset"]), (0, 19))
        self.assertGreater(st["segments"], 1)
        self.assertGreater(st["disk_bytes"], 20000)
        self.assertEqual(st["consumer_offsets"],
                         [{"name": "reporting", "offset": 8, "lag": 12}])

        metrics = get(self.broker.prometheus_port, "/metrics/per-object")
        label = 'vhost="/",queue="%s"' % q
        self.assertIn('warren_stream_last_offset{%s} 19' % label, metrics)
        self.assertIn('warren_stream_consumer_lag{%s,consumer="reporting"} 12' % label,
                      metrics)

        out = subprocess.run([find_warrenctl(), "-P", str(self.broker.mgmt_port),
                              "show", "stream", q], capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("reporting", out.stdout)
        self.assertRegex(out.stdout, r"reporting\s+8\s+12")
        self.assertRegex(out.stdout, r"last_offset\s*:?\s+19")

    # -- retention --------------------------------------------------------

    def first_offset(self, q):
        conn = pika.BlockingConnection(self.broker.params())
        r = Reader(conn, q, "first", prefetch=1)
        r.wait_for(1)
        drop(conn)
        return r.got[0][0]

    def test_retention_by_size_drops_whole_old_segments(self):
        q = self.stream(args={"x-max-length-bytes": 200000,
                              "x-stream-max-segment-size-bytes": 50000})
        for batch in range(10):
            self.publish(q, [b"%04d" % batch + b"x" * 996] * 50)
        first = self.first_offset(q)
        self.assertGreater(first, 0, "nothing was dropped")
        # whole segments only, and never below the limit
        kept = 500 - first
        self.assertGreaterEqual(kept * 1000, 150000)
        self.assertLessEqual(kept * 1000, 200000 + 60000)
        self.assertEqual(self.message_count(q), kept)

    def test_retention_by_age(self):
        q = self.stream(args={"x-max-age": "1s",
                              "x-stream-max-segment-size-bytes": 20000})
        self.publish(q, [b"o" * 1000] * 100)  # about five segments
        time.sleep(1.2)
        self.publish(q, [b"n" * 1000] * 30)  # a fresh segment or two
        # every segment of the old batch goes; the segment being written
        # never does, so the newest messages stay readable
        wait_until(lambda: self.first_offset(q) >= 100, timeout=30,
                   what="the old segments dropped")
        r = Reader(self.connect(), q, "first", prefetch=50)
        wait_until(lambda: (r.conn.process_data_events(time_limit=0.02),
                            r.got and r.got[-1][0] == 129)[1], what="offset 129")
        self.assertGreaterEqual(r.offsets()[0], 100)
        self.assertEqual(r.offsets(), list(range(r.offsets()[0], 130)))


if __name__ == "__main__":
    main()
