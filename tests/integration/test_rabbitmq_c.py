#!/usr/bin/python3
"""rabbitmq-c (librabbitmq) client round trip: runs rabbitmq_c_roundtrip
(built by make at $WARREN_BUILDDIR/tests/integration/; compiled here into a
temp dir when it isn't there yet) against the broker."""

import os
import shutil
import subprocess
import tempfile

from harness import BrokerTestCase, assert_broker_alive, main

HERE = os.path.dirname(os.path.abspath(__file__))
_tmpdir = None


def find_or_build_client():
    """Path of the rabbitmq_c_roundtrip binary; a missing compiler or
    librabbitmq is a failure (AssertionError), never a skip."""
    global _tmpdir
    cands = []
    if os.environ.get("WARREN_BUILDDIR"):
        cands.append(os.path.join(os.environ["WARREN_BUILDDIR"], "tests", "integration",
                                  "rabbitmq_c_roundtrip"))
    cands.append(os.path.join(HERE, "rabbitmq_c_roundtrip"))
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    src = os.path.join(HERE, "rabbitmq_c_roundtrip.c")
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not cc or not shutil.which("pkg-config"):
        raise AssertionError("rabbitmq_c_roundtrip not built and no cc/pkg-config "
                             "to build it (apt-get install gcc pkg-config librabbitmq-dev)")
    try:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "librabbitmq"],
                               check=True, capture_output=True, text=True).stdout.split()
    except subprocess.CalledProcessError:
        raise AssertionError("rabbitmq_c_roundtrip not built and librabbitmq not found "
                             "(apt-get install librabbitmq-dev)")
    _tmpdir = tempfile.mkdtemp(prefix="warren-rmqc-")
    out = os.path.join(_tmpdir, "rabbitmq_c_roundtrip")
    p = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-O1", "-o", out, src] + flags,
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("compiling %s failed:\n%s" % (src, p.stderr))
    return out


class RabbitMQCTest(BrokerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.client = find_or_build_client()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if _tmpdir:
            shutil.rmtree(_tmpdir, ignore_errors=True)

    def tearDown(self):
        assert_broker_alive(self.broker)

    def run_client(self, count, timeout=45):
        return subprocess.Popen([self.client, self.broker.host, str(self.broker.port),
                                 str(count)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def wait_client(self, p, timeout=45):
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            self.fail("rabbitmq_c_roundtrip hung (> %d s): %s" % (timeout, out))
        self.assertEqual(p.returncode, 0, "rabbitmq_c_roundtrip failed: %s" % out)
        return out

    def test_thousand_messages(self):
        out = self.wait_client(self.run_client(1000))
        self.assertIn("1000 messages round-tripped", out)

    def test_concurrent_clients(self):
        procs = [self.run_client(300) for _ in range(4)]
        for p in procs:
            self.assertIn("300 messages round-tripped", self.wait_client(p))


if __name__ == "__main__":
    main()
