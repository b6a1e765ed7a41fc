#!/usr/bin/python3
"""warrend's command line and config file errors (warrend only: skipped
when WARREN_TEST_EXTERNAL is set)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import (
    HOST, Broker, assert_broker_alive, find_warrend, free_port, main, skip_if_external,
)

RUN_TIMEOUT = 10


@skip_if_external("tests warrend's command line")
class ConfigCliTest(unittest.TestCase):

    def setUp(self):
        self.warrend = find_warrend()
        self.tmp = tempfile.mkdtemp(prefix="warren-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.port = free_port()

    def write_config(self, lines, name="warren.conf"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def base_lines(self):
        return ["# test config",
                "listeners.tcp.default = %s:%d" % (HOST, self.port),
                "warren.data_dir = %s" % os.path.join(self.tmp, "data"),
                "management.tcp.port = 0",
                "prometheus.tcp.port = 0",
                ""]

    def run_warrend(self, args, timeout=RUN_TIMEOUT):
        t0 = time.monotonic()
        try:
            p = subprocess.run([self.warrend] + args, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout, cwd=self.tmp)
        except subprocess.TimeoutExpired as e:
            # the process is killed by subprocess.run
            self.fail("warrend %r still running after %d s (it should have exited); "
                      "stderr: %r" % (args, timeout, e.stderr))
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        self.assertNotIn("AddressSanitizer", err)
        self.assertNotIn("runtime error:", err)
        self.assertNotIn("LeakSanitizer", err)
        return p.returncode, out, err, time.monotonic() - t0

    def assert_bad_line(self, bad_line, extra_before=()):
        lines = self.base_lines() + list(extra_before) + [bad_line, "heartbeat = 30"]
        path = self.write_config(lines)
        lineno = len(self.base_lines()) + len(extra_before) + 1
        rc, out, err, _t = self.run_warrend(["-c", path])
        self.assertNotEqual(rc, 0, "warrend accepted %r" % bad_line)
        pat = re.compile(r"^.*%s:%d: \S" % (re.escape(path), lineno), re.M)
        self.assertRegex(err, pat, "expected '%s:%d: message' on stderr for %r"
                         % (path, lineno, bad_line))
        # it must not have started listening
        with self.assertRaises(OSError):
            socket.create_connection((HOST, self.port), timeout=0.5).close()
        return err

    # ---- bad config lines ---------------------------------------------------------
    def test_unknown_key(self):
        err = self.assert_bad_line("no_such_key = 1")
        self.assertIn("no_such_key", err)

    def test_unknown_key_after_comments_and_blank_lines(self):
        self.assert_bad_line("bogus.key = x", extra_before=["", "# comment", "   ", "  # indented",
                                                             "heartbeat = 10  # trailing comment"])

    def test_heartbeat_out_of_range(self):
        self.assert_bad_line("heartbeat = 65536")

    def test_heartbeat_negative(self):
        self.assert_bad_line("heartbeat = -1")

    def test_heartbeat_not_a_number(self):
        self.assert_bad_line("heartbeat = soon")

    def test_frame_max_below_minimum(self):
        self.assert_bad_line("frame_max = 100")

    def test_channel_max_out_of_range(self):
        self.assert_bad_line("channel_max = 70000")

    def test_max_message_size_out_of_range(self):
        self.assert_bad_line("max_message_size = 536870913")

    def test_bad_log_level(self):
        self.assert_bad_line("log.console.level = loud")

    def test_line_without_equals(self):
        self.assert_bad_line("this line has no equals sign")

    def test_bad_listener(self):
        self.assert_bad_line("listeners.tcp.default = 127.0.0.1:notaport")

    def test_bad_line_with_check_flag(self):
        path = self.write_config(self.base_lines() + ["frame_max = 12"])
        rc, out, err, _t = self.run_warrend(["-n", "-c", path])
        self.assertNotEqual(rc, 0)
        self.assertIn("%s:%d:" % (path, len(self.base_lines()) + 1), err)

    def test_check_flag_accepts_shipped_config(self):
        srcdir = os.environ.get("WARREN_SRCDIR") or os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..")
        shipped = os.path.join(srcdir, "conf", "warren.conf")
        if not os.path.exists(shipped):
            self.skipTest("no conf/warren.conf at %s" % shipped)
        rc, out, err, _t = self.run_warrend(["-n", "-c", shipped])
        self.assertEqual(rc, 0, "shipped config rejected: %s" % err)
        self.assertIn("configuration OK", out + err)

    # ---- missing file / options -------------------------------------------------
    def test_missing_config_file(self):
        path = os.path.join(self.tmp, "does-not-exist.conf")
        rc, out, err, t = self.run_warrend(["-c", path])
        self.assertNotEqual(rc, 0)
        self.assertIn(path, err)
        self.assertLess(t, RUN_TIMEOUT)

    def test_help_prints_usage(self):
        # asked for: on stdout, status 0 (a bad option: stderr, 2)
        rc, out, err, _t = self.run_warrend(["-h"])
        self.assertEqual(rc, 0)
        self.assertIn("usage", out.lower())
        self.assertIn("--check-config", out)

    def test_bad_option_prints_usage(self):
        rc, out, err, _t = self.run_warrend(["--definitely-not-an-option"])
        self.assertNotEqual(rc, 0)
        self.assertIn("usage", (out + err).lower())

    def test_stray_argument_prints_usage(self):
        rc, out, err, _t = self.run_warrend(["-c", "/dev/null", "extra"])
        self.assertNotEqual(rc, 0)
        self.assertIn("usage", (out + err).lower())

    # ---- running --------------------------------------------------------------
    def test_listener_port_in_use(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, self.port))
        s.listen(1)
        try:
            path = self.write_config(self.base_lines())
            rc, out, err, _t = self.run_warrend(["-c", path])
            self.assertNotEqual(rc, 0, "warrend started although its port is taken")
            self.assertTrue(err.strip(), "no message on stderr")
        finally:
            s.close()

    def test_sigint_exits_zero(self):
        path = self.write_config(self.base_lines())
        p = subprocess.Popen([self.warrend, "-c", path], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.tmp)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection((HOST, self.port), timeout=0.5).close()
                    break
                except OSError:
                    if p.poll() is not None or time.monotonic() > deadline:
                        self.fail("warrend did not start: %r" % p.stderr.read())
                    time.sleep(0.05)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=10)
            self.assertEqual(p.returncode, 0, "exit status after SIGINT; stderr: %r" % err)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_config_values_applied(self):
        # a config with comments, blank lines and overrides starts and applies
        with Broker(config={"heartbeat": 17, "frame_max": 16384, "channel_max": 33}) as b:
            with b.raw() as c:
                c.send_protocol_header()
                c.expect_method((10, 10))
                c.start_ok()
                t = c.expect_method((10, 30))
                self.assertEqual((t["channel_max"], t["frame_max"], t["heartbeat"]),
                                 (33, 16384, 17))
            assert_broker_alive(b)

    def test_custom_user_and_vhost(self):
        with Broker(config={"default_user": "warren", "default_pass": "s3cret",
                            "default_vhost": "/prod"}) as b:
            assert_broker_alive(b)
            import pika
            # refused by the broker (403 / 530), not merely unreachable
            for kw in ({"user": "guest", "password": "guest"}, {"password": "wrong"}):
                with self.assertRaises(pika.exceptions.ProbableAuthenticationError) as cm:
                    pika.BlockingConnection(b.params(**kw))
                self.assertIn("(403)", str(cm.exception))
            with self.assertRaises(pika.exceptions.ProbableAccessDeniedError) as cm:
                pika.BlockingConnection(b.params(vhost="/"))
            self.assertIn("(530)", str(cm.exception))
            assert_broker_alive(b)


if __name__ == "__main__":
    main()
