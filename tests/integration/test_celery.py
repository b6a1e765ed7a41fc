#!/usr/bin/python3
"""Celery (Debian python3-celery) against the broker: a worker subprocess
(`celery -A celery_app worker --pool=solo`) with task_acks_late=True and the
rpc:// result backend runs 200 add(i, i) tasks; every result must come back
correct.  The worker is always killed afterwards."""

import os
import signal
import subprocess
import sys
import tempfile
import time

import pika

from harness import (TEST_TIMEOUT, BrokerTestCase, assert_broker_alive, main,
                     wait_message_count, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import celery
    import celery.exceptions
    HAVE_CELERY = True
except ImportError:
    HAVE_CELERY = False


class CeleryTest(BrokerTestCase):

    @classmethod
    def setUpClass(cls):
        # A missing dependency is a failure, not a pass with 0 tests.
        if not HAVE_CELERY:
            raise AssertionError("python3-celery is needed "
                                 "(scripts/bootstrap installs it)")
        super().setUpClass()

    def setUp(self):
        self.queue = "warren-it-celery-%s" % os.urandom(4).hex()
        self.url = "amqp://%s:%s@%s:%d/%s" % (
            self.broker.user, self.broker.password, self.broker.host, self.broker.port,
            "" if self.broker.vhost == "/" else self.broker.vhost)
        if self.broker.vhost == "/":
            self.url += "/"   # amqp://...:port// is vhost "/"
        os.environ["WARREN_CELERY_BROKER"] = self.url
        os.environ["WARREN_CELERY_QUEUE"] = self.queue
        if HERE not in sys.path:
            sys.path.insert(0, HERE)
        self.worker = None
        self.log = tempfile.NamedTemporaryFile(prefix="warren-celery-", suffix=".log",
                                               delete=False)
        self.app = None

    def tearDown(self):
        try:
            self.stop_worker()
            if self.app is not None:
                try:
                    self.app.close()
                except Exception:
                    pass
            conn = pika.BlockingConnection(self.broker.params())
            conn.channel().queue_delete(self.queue)
            conn.close()
        finally:
            self.log.close()
            os.unlink(self.log.name)
            assert_broker_alive(self.broker)

    def start_worker(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_app", "worker",
             "--pool=solo", "--concurrency=1", "--loglevel=INFO",
             "-Q", self.queue, "-n", "warren-%s@localhost" % os.urandom(3).hex()],
            cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def stop_worker(self):
        p, self.worker = self.worker, None
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)   # warm shutdown
            p.wait(8)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)

    def full_worker_log(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def worker_log(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def test_200_tasks_acks_late_rpc_backend(self):
        # One deadline for the whole test, as late as the per-test limit
        # allows (a busy machine makes the worker slow to start).
        t0 = time.monotonic()
        deadline = t0 + max(30, TEST_TIMEOUT - 12)
        import celery_app
        self.app = celery_app.app
        self.start_worker()
        n = 200
        results = [celery_app.add.delay(i, i) for i in range(n)]
        print("sent %d tasks in %.1f s" % (n, time.monotonic() - t0))
        values = []
        for i, r in enumerate(results):
            while True:
                if self.worker.poll() is not None:
                    self.fail("celery worker exited with %s; log:\n%s"
                              % (self.worker.returncode, self.worker_log()))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.fail("only %d of %d results after %.0f s; worker log:\n%s"
                              % (i, n, time.monotonic() - t0, self.worker_log()))
                try:
                    values.append(r.get(timeout=min(2.0, remaining)))
                    break
                except celery.exceptions.TimeoutError:
                    continue
        print("all %d results after %.1f s" % (n, time.monotonic() - t0))
        self.assertEqual(values, [2 * i for i in range(n)])
        self.assertTrue(all(r.successful() for r in results))
        # every task message was delivered: none is ready any more
        conn = pika.BlockingConnection(self.broker.params())
        try:
            ch = conn.channel()
            ok = wait_message_count(ch, self.queue, 0,
                                    timeout=max(1, deadline - time.monotonic()))
            self.assertEqual(ok.message_count, 0)
            self.assertEqual(ok.consumer_count, 1, "the worker should still be consuming")
        finally:
            conn.close()
        # The worker publishes a result before it acks the task (acks_late)
        # and logs "succeeded" after: let it finish the last one before the
        # warm shutdown, or its ack may race the shutdown.
        wait_until(lambda: self.full_worker_log().count("] succeeded in ") >= n,
                   timeout=max(1, deadline - time.monotonic()),
                   what="%d tasks logged as succeeded by the worker" % n)
        log_before_stop = self.worker_log()
        self.stop_worker()
        if os.environ.get("CELERY_TEST_KEEP_LOG"):
            import shutil
            shutil.copy(self.log.name, os.environ["CELERY_TEST_KEEP_LOG"])
        # after a warm shutdown no task message is left unacked (nothing
        # requeued): acks_late acks reached the broker, and the worker's
        # consumer is gone with its connection
        conn = pika.BlockingConnection(self.broker.params())
        try:
            ch = conn.channel()
            wait_until(lambda: ch.queue_declare(queue=self.queue, passive=True)
                       .method.consumer_count == 0, timeout=10)
            ok = ch.queue_declare(queue=self.queue, passive=True).method
            self.assertEqual((ok.message_count, ok.consumer_count), (0, 0),
                             "worker log before stop:\n%s\nafter:\n%s\nbroker:\n%s"
                             % (log_before_stop[-1500:], self.worker_log()[-1500:],
                                self.broker.stderr()[-3000:]))
        finally:
            conn.close()


if __name__ == "__main__":
    main()
