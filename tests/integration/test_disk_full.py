#!/usr/bin/python3
"""A full disk: warrend on a small tmpfs that the test fills.

- Below disk_free_limit.absolute, publishing connections are blocked
  (connection.blocked "low on disk"), consumers keep draining, and
  publishing resumes when space comes back.
- With no limit, a write that fails (ENOSPC) nacks the publishes that
  needed it (under confirms) and blocks publishers, the broker keeps
  running, consumers keep draining, and once space is freed publishing
  and confirms resume; nothing confirmed is lost across a SIGKILL.

Mounting needs root (CI runs as root); elsewhere the tests are skipped
with the reason printed.
"""
import os
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pika  # noqa: E402
import pika.exceptions  # noqa: E402

from harness import Broker, get_all, main, require_own_broker, wait_until  # noqa: E402

PERSISTENT = pika.BasicProperties(delivery_mode=2)
MiB = 1 << 20


def drain(ch, queue):
    """The bodies of every message now in queue, in order (acked)."""
    return [body for body, _ in get_all(ch, queue)]


def fill(mountpoint, leave):
    """Write a filler file until at most `leave` bytes are free."""
    path = os.path.join(mountpoint, "filler")
    chunk = b"\0" * (256 * 1024)
    with open(path, "ab") as f:
        while True:
            st = os.statvfs(mountpoint)
            free = st.f_bavail * st.f_frsize
            if free <= leave:
                break
            try:
                f.write(chunk[:max(4096, min(len(chunk), free - leave))])
                f.flush()
            except OSError:  # ENOSPC: as full as it gets
                break
    return path


class Publisher(threading.Thread):
    """Publishes bodies with confirms on its own connection; `confirmed`
    lists those whose confirm arrived.  It waits as long as it is
    blocked."""

    def __init__(self, broker, queue, bodies):
        super().__init__(daemon=True)
        self.params = broker.params(blocked_connection_timeout=None)
        self.queue, self.bodies = queue, bodies
        self.confirmed, self.nacked, self.error = [], [], None

    def publish(self, ch, body):
        ch.basic_publish("", self.queue, body, PERSISTENT)
        self.confirmed.append(body)

    def run(self):
        try:
            conn = pika.BlockingConnection(self.params)
            ch = conn.channel()
            ch.confirm_delivery()
            for body in self.bodies:
                self.publish(ch, body)
            conn.close()
        except Exception as e:  # reported by the test
            self.error = e


class TallyingPublisher(Publisher):
    """A Publisher that sorts each body into `confirmed` or `nacked` (pika
    raises NackError for a nack) and goes on after a nack, as a retrying
    producer would."""

    def publish(self, ch, body):
        try:
            super().publish(ch, body)
        except pika.exceptions.NackError:
            self.nacked.append(body)


class DiskFull(unittest.TestCase):
    SIZE = 32 * MiB

    def setUp(self):
        require_own_broker("mounts a tmpfs as the broker's data directory")
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a tmpfs (CI runs as root)")
        self.mnt = tempfile.mkdtemp(prefix="warren-diskfull-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%d" % self.SIZE, "tmpfs", self.mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            os.rmdir(self.mnt)
            self.skipTest("cannot mount a tmpfs: %s" % r.stderr.strip())
        self.data = os.path.join(self.mnt, "data")
        os.mkdir(self.data)

    def tearDown(self):
        subprocess.run(["umount", "-l", self.mnt], check=False)
        os.rmdir(self.mnt)

    def wait_events(self, conn, events, what):
        wait_until(lambda: (conn.process_data_events(0.05), events)[1],
                   what=what)

    def probe(self, b):
        """A connection that publishes one message (to no queue), and the
        connection.blocked reasons and unblocks it will see."""
        probe = pika.BlockingConnection(
            b.params(blocked_connection_timeout=None))
        blocked, unblocked = [], []
        probe.add_on_connection_blocked_callback(
            lambda _c, frame: blocked.append(frame.method.reason))
        probe.add_on_connection_unblocked_callback(
            lambda _c, _frame: unblocked.append(True))
        probe.channel().basic_publish("", "nowhere", b"probe")
        return probe, blocked, unblocked

    def ten_confirmed(self, b):
        """Durable queue d with a0..a9 confirmed; a connection to it."""
        conn = pika.BlockingConnection(b.params())
        ch = conn.channel()
        ch.queue_declare("d", durable=True)
        first = Publisher(b, "d", [b"a%d" % i for i in range(10)])
        first.run()
        self.assertIsNone(first.error)
        return conn, ch

    def test_publishers_blocked_below_disk_free_limit_consumers_drain(self):
        with Broker(config={"warren.data_dir": self.data,
                            "disk_free_limit.absolute": "8MiB"}) as b:
            conn, ch = self.ten_confirmed(b)

            mark = b.log_mark()
            filler = fill(self.mnt, 4 * MiB)
            self.assertIsNotNone(b.wait_for_log(
                lambda line: "disk alarm:" in line, since=mark))

            # A connection that publishes is told why it is blocked.
            probe, blocked, unblocked = self.probe(b)
            self.wait_events(probe, blocked, "connection.blocked")
            self.assertEqual(blocked, ["low on disk"])

            pub = Publisher(b, "d", [b"b%d" % i for i in range(20)])
            pub.start()
            # Publishes are not read while blocked: nothing gets in.
            self.assertEqual(pub.confirmed, [])
            q = ch.queue_declare("d", durable=True, passive=True)
            self.assertEqual(q.method.message_count, 10)
            # A connection that only consumes is not blocked.
            for i in range(5):
                m, _, body = ch.basic_get("d")
                self.assertEqual(body, b"a%d" % i)
                ch.basic_ack(m.delivery_tag)

            mark = b.log_mark()
            os.unlink(filler)
            self.assertIsNotNone(b.wait_for_log(
                lambda line: "disk alarm cleared" in line, since=mark))
            self.wait_events(probe, unblocked, "connection.unblocked")
            probe.close()
            pub.join(60)
            self.assertFalse(pub.is_alive(), "publisher still blocked")
            self.assertIsNone(pub.error)
            self.assertEqual(len(pub.confirmed), 20)
            conn.close()

            b.restart(kill=True)
            conn = pika.BlockingConnection(b.params())
            self.assertEqual(drain(conn.channel(), "d"),
                             [b"a%d" % i for i in range(5, 10)] +
                             [b"b%d" % i for i in range(20)])
            conn.close()

    def test_failed_writes_nack_and_resume_when_space_returns(self):
        with Broker(config={"warren.data_dir": self.data,
                            "disk_free_limit.absolute": "0",
                            "warren.store.segment_size": "65536"}) as b:
            conn, ch = self.ten_confirmed(b)

            filler = fill(self.mnt, 0)
            mark = b.log_mark()
            big = b"x" * 20000
            bodies = [b"b%d-" % i + big for i in range(5)]
            pub = TallyingPublisher(b, "d", bodies)
            pub.start()
            self.assertIsNotNone(b.wait_for_log(
                lambda line: "write failed" in line, since=mark),
                "no write failure logged")
            # What could not be written is nacked, not confirmed.
            wait_until(lambda: pub.nacked, what="a nack for the failed write")
            self.assertEqual(pub.confirmed, [])
            self.assertTrue(b.alive())
            # Publishers are blocked while the store cannot write.
            probe, blocked, unblocked = self.probe(b)
            self.wait_events(probe, blocked, "connection.blocked")
            self.assertEqual(blocked, ["low on disk"])
            # Consumers still get what is in the queue.
            m, _, body = ch.basic_get("d")
            self.assertEqual(body, b"a0")
            ch.basic_ack(m.delivery_tag)

            mark = b.log_mark()
            os.unlink(filler)
            pub.join(60)
            self.assertFalse(pub.is_alive(), "publisher still waiting")
            self.assertIsNone(pub.error)
            self.assertEqual(sorted(pub.confirmed + pub.nacked),
                             sorted(bodies))
            self.assertIsNotNone(b.wait_for_log(
                lambda line: "writing again" in line, since=mark))
            self.wait_events(probe, unblocked, "connection.unblocked")
            probe.close()
            # Publishing works again: confirmed, and on disk.
            marker = Publisher(b, "d", [b"marker"])
            marker.run()
            self.assertIsNone(marker.error)
            self.assertEqual(marker.confirmed, [b"marker"])
            conn.close()

            b.restart(kill=True)
            conn = pika.BlockingConnection(b.params())
            after = drain(conn.channel(), "d")
            # Every confirmed message survives, in order; a nacked one
            # may (the broker no longer vouched for it) or may not.
            confirmed = ([b"a%d" % i for i in range(1, 10)] +
                         pub.confirmed + [b"marker"])
            self.assertEqual([m for m in after if m in confirmed], confirmed)
            self.assertTrue(set(after) <= set(confirmed + pub.nacked))
            self.assertNotIn(b"a0", after, "acked a0 came back")
            conn.close()

if __name__ == "__main__":
    main()
