#!/usr/bin/python3
"""warrend as a daemon: SIGTERM with clients connected (they see 320 and
nothing confirmed is lost), the shutdown bound, SIGHUP log reopening and
log formats, -d with a pid file, systemd's readiness protocol, the data
directory's lock and format stamp, --check-config and the environment
variables (warrend only: skipped when WARREN_TEST_EXTERNAL is set)."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request
import base64

import pika

from harness import (
    CONNECTION_FORCED, HOST, SANITIZER_MARKERS, find_warrend, free_ports, main,
    pika_params, skip_if_external, wait_until,
)


@skip_if_external("tests warrend's process life")
class DaemonTest(unittest.TestCase):

    def setUp(self):
        self.warrend = find_warrend()
        self.tmp = tempfile.mkdtemp(prefix="warren-daemon-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.port, self.mgmt_port = free_ports(2)
        self.data = os.path.join(self.tmp, "data")
        self.procs = []
        self.addCleanup(self.kill_all)

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def config(self, extra=(), mgmt=False):
        path = os.path.join(self.tmp, "warren.conf")
        lines = ["listeners.tcp.default = %s:%d" % (HOST, self.port),
                 "warren.data_dir = %s" % self.data,
                 "management.tcp.port = %d" % (self.mgmt_port if mgmt else 0),
                 "prometheus.tcp.port = 0"] + list(extra)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def spawn(self, args, env=None):
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen([self.warrend] + args, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=self.tmp, env=e)
        self.procs.append(p)
        return p

    def wait_listening(self, p=None, port=None):
        def up():
            if p is not None and p.poll() is not None:
                self.fail("warrend exited (%s): %s" % (p.returncode, p.stderr.read()))
            try:
                socket.create_connection((HOST, port or self.port), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_until(up, timeout=30, what="warrend listening")

    def finish(self, p, sig=signal.SIGTERM):
        """Signal p and wait for it: (status, stdout, stderr), with no
        sanitizer report in stderr."""
        if sig is not None:
            p.send_signal(sig)
        out, err = p.communicate(timeout=30)
        err = err.decode("utf-8", "replace")
        for marker in SANITIZER_MARKERS:
            self.assertNotIn(marker, err)
        return p.returncode, out.decode(), err

    def run_to_end(self, args, env=None):
        return self.finish(self.spawn(args, env), sig=None)

    # ---- shutdown --------------------------------------------------------------
    def test_sigterm_tells_clients_320_and_keeps_confirmed_messages(self):
        p = self.spawn(["-c", self.config()])
        self.wait_listening(p)
        conn = pika.BlockingConnection(pika_params(self.port))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("kept", durable=True)
        for i in range(500):
            ch.basic_publish("", "kept", b"m%d" % i,
                             pika.BasicProperties(delivery_mode=2))
        idle = pika.BlockingConnection(pika_params(self.port))   # never pumped
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            while True:
                conn.process_data_events(0.1)
        self.assertEqual(cm.exception.reply_code, CONNECTION_FORCED)
        self.assertIn("shutdown", cm.exception.reply_text)
        rc, _out, err = self.finish(p, sig=None)
        self.assertEqual(rc, 0)
        # the idle client (the last accepted) did not hold the shutdown up
        # to its close timeout: its connection was still open when the loop
        # ended (a timeout would have closed it with the close's reason)
        idle_id = re.findall(r"conn (\d+): accepted", err)[-1]
        self.assertRegex(err, r"conn %s: closed [^\n]*: broker shutting down\n"
                         % idle_id)
        self.assertNotIn("not every client took its connection.close", err)
        self.assertLess(time.monotonic() - t0, 30)
        del idle
        # every confirmed message is there after a restart
        p = self.spawn(["-c", self.config()])
        self.wait_listening(p)
        conn = pika.BlockingConnection(pika_params(self.port))
        ch = conn.channel()
        q = ch.queue_declare("kept", durable=True, passive=True)
        self.assertEqual(q.method.message_count, 500)
        conn.close()
        self.assertEqual(self.finish(p)[0], 0)

    def test_shutdown_bounded_by_a_client_that_does_not_read(self):
        # A client that stops reading: the close cannot be sent; after
        # warren.shutdown_timeout warrend exits anyway.
        p = self.spawn(["-c", self.config(["warren.shutdown_timeout = 500ms"])])
        self.wait_listening(p)
        conn = pika.BlockingConnection(pika_params(self.port))
        ch = conn.channel()
        ch.queue_declare("big")
        body = b"x" * 65536
        for _ in range(300):
            ch.basic_publish("", "big", body)
        ch.basic_consume("big", lambda *a: None, auto_ack=True)
        conn.process_data_events(0.2)   # deliveries start; then we stop reading
        t0 = time.monotonic()
        rc, out, err = self.finish(p)
        self.assertEqual(rc, 0, err)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("not every client took its connection.close within 500 ms", err)

    # ---- logs --------------------------------------------------------------------
    def test_sighup_reopens_the_log_file(self):
        log = os.path.join(self.tmp, "warren.log")
        p = self.spawn(["-c", self.config(["log.file = %s" % log])])
        self.wait_listening(p)
        wait_until(lambda: os.path.exists(log) and "started" in open(log).read(),
                   what="the start in the log file")
        os.rename(log, log + ".1")          # logrotate's move
        p.send_signal(signal.SIGHUP)
        wait_until(lambda: os.path.exists(log), what="a new log file")
        s = socket.create_connection((HOST, self.port))
        event = "accepted from %s:%d" % s.getsockname()
        s.close()
        wait_until(lambda: event in open(log).read(), what="new events in the new file")
        self.assertNotIn(event, open(log + ".1").read())
        self.finish(p)
        self.assertIn("warrend stopped", open(log).read())

    def test_json_lines(self):
        log = os.path.join(self.tmp, "warren.log")
        p = self.spawn(["-c", self.config(["log.file = %s" % log,
                                            "log.file.formatter = json",
                                            "log.console.formatter = json"])])
        self.wait_listening(p)
        # a user name that is not UTF-8 still gives valid JSON
        s = socket.create_connection((HOST, self.port))
        s.close()
        rc, out, err = self.finish(p)
        for text in (open(log).read(), err):
            lines = text.splitlines()
            self.assertGreater(len(lines), 3)
            events = [json.loads(line) for line in lines]
            self.assertTrue(all(set(e) == {"time", "level", "msg"} for e in events))
            self.assertTrue(any("config " in e["msg"] and "data_dir" in e["msg"]
                                for e in events))
            self.assertTrue(all(e["time"].endswith("Z") for e in events))

    def test_log_levels_per_output(self):
        log = os.path.join(self.tmp, "warren.log")
        p = self.spawn(["-c", self.config(["log.file = %s" % log,
                                            "log.file.level = warning",
                                            "log.console = false"])])
        self.wait_listening(p)
        socket.create_connection((HOST, self.port)).close()
        rc, out, err = self.finish(p)
        self.assertEqual(err, "")               # console off
        self.assertNotIn("[info]", open(log).read())   # file at warning

    def test_unwritable_log_file_stops_the_start(self):
        rc, out, err = self.run_to_end(["-c", self.config(
            ["log.file = %s/no/such/dir/w.log" % self.tmp])])
        self.assertEqual(rc, 1)
        self.assertIn("log.file: cannot open", err)

    # ---- -d, pid file, readiness ---------------------------------------------------
    def test_daemonize_with_pid_file(self):
        pidfile = os.path.join(self.tmp, "w.pid")
        log = os.path.join(self.tmp, "warren.log")
        rc, out, err = self.run_to_end(["-d", "-p", pidfile, "-c",
                                        self.config(["log.file = %s" % log])])
        self.assertEqual(rc, 0, err)
        # listening by the time -d returns
        socket.create_connection((HOST, self.port), timeout=5).close()
        pid = int(open(pidfile).read())
        self.addCleanup(lambda: os.path.exists("/proc/%d" % pid) and os.kill(pid, 9))
        self.assertIn("started (pid %d)" % pid, open(log).read())
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not os.path.exists(pidfile), what="the pid file removed")
        wait_until(lambda: "warrend stopped" in open(log).read(), what="the stop")

    def test_daemonize_reports_a_failed_start(self):
        holder = socket.socket()
        holder.bind((HOST, self.port))
        holder.listen(1)
        self.addCleanup(holder.close)
        rc, out, err = self.run_to_end(["-d", "-c", self.config()])
        self.assertEqual(rc, 1)

    def test_systemd_notify(self):
        path = os.path.join(self.tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        self.addCleanup(sock.close)
        sock.settimeout(30)
        p = self.spawn(["-c", self.config()], env={"NOTIFY_SOCKET": path})
        self.assertEqual(sock.recv(256), b"READY=1")
        socket.create_connection((HOST, self.port), timeout=5).close()
        p.send_signal(signal.SIGHUP)
        self.assertEqual(sock.recv(256), b"RELOADING=1")
        self.assertEqual(sock.recv(256), b"READY=1")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(sock.recv(256), b"STOPPING=1")
        self.assertEqual(self.finish(p, sig=None)[0], 0)

    # ---- the data directory ---------------------------------------------------------
    def test_second_warrend_on_the_data_directory_refused(self):
        p = self.spawn(["-c", self.config()])
        self.wait_listening(p)
        port2 = free_ports(1)[0]
        conf2 = os.path.join(self.tmp, "second.conf")
        with open(conf2, "w") as f:
            f.write("listeners.tcp.default = %s:%d\nwarren.data_dir = %s\n"
                    "management.tcp.port = 0\nprometheus.tcp.port = 0\n"
                    % (HOST, port2, self.data))
        rc, out, err = self.run_to_end(["-c", conf2])
        self.assertEqual(rc, 1)
        self.assertIn("is in use by another warrend, pid %d" % p.pid, err)
        self.finish(p)

    def test_format_stamp_written_and_newer_refused(self):
        p = self.spawn(["-c", self.config()])
        self.wait_listening(p)
        self.finish(p)
        stamp = os.path.join(self.data, "FORMAT")
        self.assertEqual(open(stamp).read(), "warren-data-format 1\n")
        with open(stamp, "w") as f:
            f.write("warren-data-format 7\n")
        rc, out, err = self.run_to_end(["-c", self.config()])
        self.assertEqual(rc, 1)
        self.assertIn("has format 7; this warrend", err)
        self.assertIn("written by a newer warrend", err)
        with open(stamp, "w") as f:
            f.write("something else\n")
        rc, out, err = self.run_to_end(["-c", self.config()])
        self.assertEqual(rc, 1)
        self.assertIn("not a Warren data directory stamp", err)

    # ---- command line and environment ----------------------------------------------
    def test_check_config(self):
        good = self.config()
        for flag in ("-n", "--check-config"):
            rc, out, err = self.run_to_end([flag, "-c", good])
            self.assertEqual((rc, out), (0, "configuration OK\n"), err)
        bad = self.config(["heartbeat = 10", "heartbeat = 20"])
        rc, out, err = self.run_to_end(["--check-config", "--config", bad])
        self.assertEqual(rc, 1)
        self.assertIn("%s:6: heartbeat is set twice (first on line 5)" % bad, err)
        # nothing was started or created
        self.assertFalse(os.path.exists(self.data))

    def test_environment(self):
        conf = self.config(mgmt=True)
        other = os.path.join(self.tmp, "elsewhere")
        p = self.spawn([], env={"WARREN_CONFIG_FILE": conf,
                                "WARREN_DATA_DIR": other,
                                "WARREN_NODENAME": "warren@box-7"})
        self.wait_listening(p)
        self.assertTrue(os.path.exists(os.path.join(other, "FORMAT")))
        self.assertFalse(os.path.exists(self.data))
        req = urllib.request.Request("http://%s:%d/api/overview" % (HOST, self.mgmt_port))
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertEqual(json.loads(r.read())["node"], "warren@box-7")
        self.assertEqual(self.finish(p)[0], 0)


if __name__ == "__main__":
    main()
