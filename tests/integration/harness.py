"""Shared helpers for Warren's integration tests.

Contents
  free_port()          a spare TCP port on 127.0.0.1
  Broker               context manager: starts $WARREND on a temp config and
                       data dir (or uses WARREN_TEST_EXTERNAL=host:port)
  RawClient            a small raw-socket AMQP 0-9-1 client for sending
                       precisely (mal)formed input and reading raw frames
  pika_params(), assert_broker_alive()
  wait_until()         poll for a condition with a generous bound
  main()               runs the calling file's TestCase classes and prints
                       exactly one line "RESULT: P passed, F failed, S skipped"

Only 127.0.0.1 is ever contacted.
"""

import datetime
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest
import urllib.request

HOST = "127.0.0.1"

# Per-test and per-file wall-clock limits, so a broken broker makes a test
# fail instead of hanging.
TEST_TIMEOUT = int(os.environ.get("WARREN_TEST_TIMEOUT", "60"))
FILE_TIMEOUT = int(os.environ.get("WARREN_TEST_FILE_TIMEOUT", "170"))

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "runtime error:",
    "ERROR: LeakSanitizer",
    "ERROR: ThreadSanitizer",
    "WARNING: ThreadSanitizer",
)

# RabbitMQ's defaults for the config keys the tests care about.  When the
# suite runs against an external broker (WARREN_TEST_EXTERNAL), a Broker that
# asks for config values is only usable if the external broker has them:
# either these defaults or whatever WARREN_TEST_EXTERNAL_CONF declares
# ("key=value;key=value", e.g. "handshake_timeout=1000;max_message_size=1048576").
RABBITMQ_DEFAULTS = {
    "default_user": "guest",
    "default_pass": "guest",
    "default_vhost": "/",
    "loopback_users.guest": "true",
    "heartbeat": "60",
    "frame_max": "131072",
    "channel_max": "2047",
    "handshake_timeout": "10000",
    "max_message_size": "134217728",
    "log.console.level": None,  # any value is acceptable
}

# Keys that only matter to warrend and never require skipping.
_IRRELEVANT_EXTERNAL_KEYS = {"log.console.level", "warren.data_dir"}


def external_target():
    """(host, port) of an external broker, or None."""
    ext = os.environ.get("WARREN_TEST_EXTERNAL", "").strip()
    if not ext:
        return None
    host, _, port = ext.rpartition(":")
    host = host or HOST
    if host not in ("127.0.0.1", "localhost"):
        raise RuntimeError("WARREN_TEST_EXTERNAL must point at 127.0.0.1")
    return "127.0.0.1", int(port)


def is_external():
    return external_target() is not None


def external_config():
    conf = dict(RABBITMQ_DEFAULTS)
    raw = os.environ.get("WARREN_TEST_EXTERNAL_CONF", "")
    for item in raw.replace(",", ";").split(";"):
        item = item.strip()
        if not item:
            continue
        k, _, v = item.partition("=")
        conf[k.strip()] = v.strip()
    return conf


def skip_if_external(reason):
    """Decorator: skip a test/class when running against an external broker."""
    if is_external():
        return unittest.skip("external broker (WARREN_TEST_EXTERNAL): " + reason)
    return lambda obj: obj


def require_own_broker(reason):
    """The statement form of skip_if_external, for setUp/setUpClass: skip
    when running against an external broker."""
    if is_external():
        raise unittest.SkipTest("external broker (WARREN_TEST_EXTERNAL): " + reason)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_ports(n):
    """n different TCP ports on 127.0.0.1 that nothing listens on right
    now (held together while chosen, so none is picked twice)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def find_warrend():
    path = os.environ.get("WARREND")
    if path:
        return path
    here = os.path.dirname(os.path.abspath(__file__))
    for base in (os.environ.get("WARREN_BUILDDIR"),
                 os.path.join(here, "..", "..")):
        if base:
            cand = os.path.join(base, "src", "warrend")
            if os.path.exists(cand):
                return os.path.abspath(cand)
    raise RuntimeError("WARREND is not set and no src/warrend was found; "
                       "run via 'make check' or export WARREND=/path/to/warrend")


def find_warrenctl():
    """warrenctl, built beside warrend."""
    path = os.path.join(os.path.dirname(find_warrend()), "warrenctl")
    if not os.path.exists(path):
        raise RuntimeError("no warrenctl beside %s" % find_warrend())
    return path


def warrend_is_sanitized():
    """True for a warrend built with AddressSanitizer, whose quarantine and
    shadow memory make its resident size say nothing about leaks."""
    with open(find_warrend(), "rb") as f:
        return b"__asan_init" in f.read()


def skip_if_sanitized(reason):
    """Decorator: skip a test when warrend runs under AddressSanitizer."""
    if not is_external() and warrend_is_sanitized():
        return unittest.skip("warrend built with AddressSanitizer: " + reason)
    return lambda obj: obj


def add_scenario_tests(cls, names):
    """A test_NAME method on cls for each scenario name, calling
    cls.run_scenario(name): one test case per scenario of a client program."""
    for name in names:
        setattr(cls, "test_" + name,
                (lambda n: lambda self: self.run_scenario(n))(name))
    return cls


def run_client_scenario(testcase, argv, name, env=None):
    """Run a client program's scenario (it prints "ok NAME" and exits 0)."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    testcase.assertEqual(p.returncode, 0, "%s %s:\n%s%s"
                         % (os.path.basename(argv[0]), name, p.stdout, p.stderr))
    testcase.assertIn("ok " + name, p.stdout)


_live_brokers = set()


class BrokerError(AssertionError):
    pass


class Broker:
    """Runs warrend for the duration of a `with` block.

        with Broker(config={"heartbeat": "5"}) as b:
            pika.BlockingConnection(b.params())

    config: extra/overriding config keys (strings or ints).
    On exit: SIGTERM, wait, and raise BrokerError if warrend exited non-zero,
    died early, or printed a sanitizer report.  Temp dirs are always removed
    and the process is always killed.

    With WARREN_TEST_EXTERNAL=host:port nothing is started; if `config`
    asks for a value the external broker isn't known to have (see
    RABBITMQ_DEFAULTS / WARREN_TEST_EXTERNAL_CONF) unittest.SkipTest is
    raised with the reason.
    """

    def __init__(self, config=None, start_timeout=15.0, stop_timeout=10.0):
        self.config = {
            "default_user": "guest",
            "default_pass": "guest",
            "default_vhost": "/",
            "loopback_users.guest": "true",
            "log.console.level": "info",
        }
        for k, v in (config or {}).items():
            self.config[k] = None if v is None else str(v)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.proc = None
        self.tmpdir = None
        self.port = None
        self.host = HOST
        self.external = False
        self.config_path = None
        self.mgmt_port = None
        self.prometheus_port = None
        self.data_dir = None
        self.stderr_path = None
        self.returncode = None

    # ---- configuration helpers -------------------------------------------
    @property
    def user(self):
        return self.config.get("default_user") or "guest"

    @property
    def password(self):
        return self.config.get("default_pass") or "guest"

    @property
    def vhost(self):
        return self.config.get("default_vhost") or "/"

    def conf_int(self, key):
        """The effective integer value of a config key (ours or RabbitMQ's default)."""
        v = self.config.get(key)
        if v is None:
            v = (external_config() if self.external else RABBITMQ_DEFAULTS).get(key)
        return int(v)

    def params(self, user=None, password=None, vhost=None, **kw):
        """pika.ConnectionParameters for this broker (kw go to pika)."""
        return pika_params(self.port, user=user or self.user,
                           password=password or self.password,
                           vhost=vhost or self.vhost, **kw)

    def raw(self, timeout=5.0):
        return RawClient(self.host, self.port, timeout=timeout)

    # ---- lifecycle ---------------------------------------------------------
    def __enter__(self):
        ext = external_target()
        if ext:
            self.external = True
            self.host, self.port = ext
            have = external_config()
            for k, v in self.config.items():
                if k in _IRRELEVANT_EXTERNAL_KEYS:
                    continue
                if k not in have or (have[k] is not None and have[k] != v):
                    raise unittest.SkipTest(
                        "needs broker config %s = %s; the external broker has %s "
                        "(declare it in WARREN_TEST_EXTERNAL_CONF)"
                        % (k, v, have.get(k, "unknown")))
            return self
        try:
            self._start()
        except BaseException:
            self._cleanup(kill=True)
            raise
        return self

    def _start(self):
        warrend = find_warrend()
        self.tmpdir = tempfile.mkdtemp(prefix="warren-it-")
        self.data_dir = os.path.join(self.tmpdir, "data")
        os.mkdir(self.data_dir)
        self.stderr_path = os.path.join(self.tmpdir, "stderr.log")
        # Another process may take a chosen port before warrend binds it
        # (tests run in parallel): then choose again.
        for attempt in range(5):
            self._write_config()
            try:
                self._launch()
                return
            except BrokerError as e:
                if "cannot listen" not in str(e) or attempt == 4:
                    raise
                self._stderr_f.close()
                os.unlink(self.stderr_path)

    def _write_config(self):
        self.port, mgmt_port, prometheus_port = free_ports(3)
        self.config_path = os.path.join(self.tmpdir, "warren.conf")
        lines = ["# generated by tests/integration/harness.py",
                 "listeners.tcp.default = %s:%d" % (HOST, self.port)]
        # a key may be set once: the test's own data directory wins
        if self.config.get("warren.data_dir"):
            self.data_dir = self.config["warren.data_dir"]
        else:
            lines.append("warren.data_dir = %s" % self.data_dir)
        if "management.tcp.port" not in self.config:
            self.mgmt_port = mgmt_port
            lines.append("management.tcp.port = %d" % self.mgmt_port)
        if "prometheus.tcp.port" not in self.config:
            self.prometheus_port = prometheus_port
            lines.append("prometheus.tcp.port = %d" % self.prometheus_port)
        for k, v in self.config.items():
            if v is not None:
                lines.append("%s = %s" % (k, v))
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def restart(self, kill=False):
        """Stop warrend, with SIGTERM (checked as on exit) or SIGKILL (a
        crash), and start it again on the same port, config and data
        directory.  Its log continues in the same file."""
        self.stop(kill)
        self.start()

    def stop(self, kill=False):
        """The first half of restart(): warrend is down until start()."""
        if self.external:
            raise unittest.SkipTest("cannot restart an external broker")
        if kill:
            self.proc.kill()
            self.proc.wait(10)
        else:
            problems = self._stop()
            if problems:
                raise BrokerError("warrend: " + "; ".join(problems))
        self._stderr_f.close()

    def start(self):
        """Start warrend again after stop()."""
        self._launch()

    def _launch(self):
        warrend = find_warrend()
        self._stderr_f = open(self.stderr_path, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.proc = subprocess.Popen([warrend, "-c", self.config_path],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._stderr_f,
                                     stderr=self._stderr_f,
                                     cwd=self.tmpdir, env=env)
        _live_brokers.add(self)
        deadline = time.monotonic() + self.start_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise BrokerError("warrend exited with status %s before accepting "
                                  "connections on port %d; stderr:\n%s"
                                  % (rc, self.port, self.stderr()))
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BrokerError("warrend did not accept connections on %s:%d "
                                  "within %.0f s; stderr:\n%s"
                                  % (HOST, self.port, self.start_timeout, self.stderr()))
            time.sleep(0.05)

    def stderr(self):
        """Everything warrend wrote so far (stdout and stderr)."""
        if not self.stderr_path:
            return ""
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_mark(self):
        """A position in warrend's log: wait_for_log(since=mark) looks only
        at what was written after it."""
        return len(self.stderr())

    def wait_for_log(self, predicate, timeout=30.0, since=0):
        """Wait until some line of warrend's log (written after `since`, a
        log_mark()) satisfies predicate(line); None if none does in time."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stderr()[since:].splitlines():
                if predicate(line):
                    return line
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def alive(self):
        return self.external or (self.proc is not None and self.proc.poll() is None)

    def rss_kib(self):
        """warrend's resident size (VmRSS), in KiB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for warrend")

    def metrics(self, path="/metrics"):
        """(Content-Type, text) of warrend's Prometheus endpoint."""
        url = "http://127.0.0.1:%d%s" % (self.prometheus_port, path)
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.headers["Content-Type"], r.read().decode()

    def __exit__(self, exc_type, exc, tb):
        if self.external:
            return False
        problems = self._stop()
        self._cleanup(kill=True)
        if problems:
            msg = "warrend: " + "; ".join(problems)
            if exc_type is None:
                raise BrokerError(msg)
            sys.stderr.write(msg + "\n")
        return False

    def _stop(self):
        problems = []
        if self.proc is None:
            return problems
        rc = self.proc.poll()
        if rc is not None:
            problems.append("exited on its own (status %s) before SIGTERM" % rc)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                problems.append("did not exit within %.0f s of SIGTERM" % self.stop_timeout)
                self.proc.kill()
                rc = self.proc.wait(5)
            else:
                if rc != 0:
                    problems.append("exited with status %s after SIGTERM" % rc)
        self.returncode = rc
        text = self.stderr()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                problems.append("sanitizer report (%r) in stderr" % marker)
                break
        if problems:
            tail = text[-8000:]
            problems.append("stderr tail:\n" + tail)
        return problems

    def _cleanup(self, kill=False):
        if self.proc is not None and self.proc.poll() is None and kill:
            try:
                self.proc.kill()
                self.proc.wait(5)
            except Exception:
                pass
        _live_brokers.discard(self)
        f = getattr(self, "_stderr_f", None)
        if f:
            f.close()
            self._stderr_f = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def _kill_all_brokers():
    for b in list(_live_brokers):
        try:
            if b.proc and b.proc.poll() is None:
                b.proc.kill()
        except Exception:
            pass
        b._cleanup(kill=True)


class BrokerTestCase(unittest.TestCase):
    """TestCase with one Broker per class (cls.broker).  Set `config`."""

    config = None
    _skip_reason = None

    @classmethod
    def setUpClass(cls):
        cls._broker_cm = None
        cls._skip_reason = None
        cm = Broker(config=cls.config)
        try:
            cls.broker = cm.__enter__()
        except unittest.SkipTest as e:
            # skip each test (so each is counted and its reason printed)
            cls._skip_reason = str(e)
            return
        cls._broker_cm = cm

    @classmethod
    def tearDownClass(cls):
        if cls._broker_cm is not None:
            cm, cls._broker_cm = cls._broker_cm, None
            cm.__exit__(None, None, None)

    def run(self, result=None):
        if self._skip_reason:
            # bypass setUp/tearDown (they may need the broker)
            setattr(self, self._testMethodName,
                    lambda: self.skipTest(self._skip_reason))
            self.setUp = lambda: None
            self.tearDown = lambda: None
        return super().run(result)


class PikaTestCase(BrokerTestCase):
    """A BrokerTestCase that cleans up after each test: the pika connections
    made with connect() are closed, the queues in self.to_delete and the
    exchanges in self.exchanges_to_delete are deleted, and the broker must
    still serve a new connection."""

    def setUp(self):
        self.conns = []
        self.to_delete = []
        self.exchanges_to_delete = []

    def connect(self, **kw):
        """A pika connection (kw: user, password, vhost) closed after the test."""
        import pika
        c = pika.BlockingConnection(self.broker.params(**kw))
        self.conns.append(c)
        return c

    def tearDown(self):
        import pika
        try:
            for c in self.conns:
                if c.is_open:
                    try:
                        c.close()
                    except Exception:
                        pass
            if self.to_delete or self.exchanges_to_delete:
                c = pika.BlockingConnection(self.broker.params())
                ch = c.channel()
                for q in self.to_delete:
                    ch.queue_delete(q)
                for x in self.exchanges_to_delete:
                    ch.exchange_delete(x)
                c.close()
        finally:
            assert_broker_alive(self.broker)


# ---------------------------------------------------------------------------
# pika helpers

def pika_params(port, user="guest", password="guest", vhost="/", host=HOST, **kw):
    import pika
    kw.setdefault("socket_timeout", 5)
    kw.setdefault("stack_timeout", 10)
    kw.setdefault("blocked_connection_timeout", 10)
    kw.setdefault("connection_attempts", 1)
    return pika.ConnectionParameters(host=host, port=port, virtual_host=vhost,
                                     credentials=pika.PlainCredentials(user, password),
                                     **kw)


def assert_broker_alive(broker, testcase=None):
    """A fresh pika connection can declare, publish, get and ack."""
    import pika
    if not broker.alive():
        raise AssertionError("warrend is no longer running; stderr:\n" + broker.stderr()[-4000:])
    conn = pika.BlockingConnection(broker.params())
    try:
        ch = conn.channel()
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        body = os.urandom(8).hex().encode()
        ch.basic_publish(exchange="", routing_key=q, body=body)
        deadline = time.monotonic() + 5
        while True:
            method, props, got = ch.basic_get(q, auto_ack=False)
            if method is not None:
                break
            if time.monotonic() > deadline:
                raise AssertionError("broker alive check: message not routable")
            time.sleep(0.02)
        if got != body:
            raise AssertionError("broker alive check: got %r, want %r" % (got, body))
        ch.basic_ack(method.delivery_tag)
    finally:
        try:
            conn.close()
        except Exception:
            pass


def wait_until(predicate, timeout=30.0, interval=0.02, what=None):
    """Poll predicate() until it returns something true and return that.

    Tests wait for the condition they mean, never for a fixed time: the
    bound is generous (CI may share its cores) and only reached when the
    condition never comes.  With `what`, a timeout raises AssertionError
    naming it; without, the last (false) value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if what is not None:
                raise AssertionError("not %s within %.0f s" % (what, timeout))
            return value
        time.sleep(interval)


def metric_samples(text):
    """{'name{labels}': value} of every sample line of a Prometheus text."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_cpu_quiet(pid, quiet=0.5, timeout=30.0):
    """Wait until the process has used (almost) no CPU for `quiet` seconds:
    it has done all the work it had.  True if so within timeout."""
    deadline = time.monotonic() + timeout
    mark, since = cpu_ticks(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = cpu_ticks(pid)
        if now - mark > 1:
            mark, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return True
    return False


def get_all(ch, queue):
    """Every message now in queue, taken with basic.get (auto-ack), in
    order, as (body, redelivered)."""
    got = []
    while True:
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return got
        got.append((body, method.redelivered))


def wait_message_count(ch, queue, expected, timeout=30.0):
    """Poll a passive queue.declare until message_count == expected.

    Publishing is asynchronous (RabbitMQ gives no ordering guarantee between
    a publish and a later declare), so counts are checked by polling.
    Returns the last declare-ok method."""
    deadline = time.monotonic() + timeout
    while True:
        ok = ch.queue_declare(queue=queue, passive=True).method
        if ok.message_count == expected or time.monotonic() > deadline:
            return ok
        time.sleep(0.02)


# ---------------------------------------------------------------------------
# AMQP 0-9-1 encoding

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE

# reply codes
REPLY_SUCCESS = 200
CONTENT_TOO_LARGE = 311
NO_ROUTE = 312
NO_CONSUMERS = 313
CONNECTION_FORCED = 320
INVALID_PATH = 402
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
RESOURCE_ERROR = 506
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541

# (class, method) ids
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_SECURE = (10, 20)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
EXCHANGE_DECLARE = (40, 10)
EXCHANGE_DECLARE_OK = (40, 11)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
QUEUE_DELETE = (50, 40)
QUEUE_DELETE_OK = (50, 41)
BASIC_QOS = (60, 10)
BASIC_QOS_OK = (60, 11)
BASIC_CONSUME = (60, 20)
BASIC_CONSUME_OK = (60, 21)
BASIC_PUBLISH = (60, 40)
BASIC_RETURN = (60, 50)
BASIC_DELIVER = (60, 60)
BASIC_GET = (60, 70)
BASIC_GET_OK = (60, 71)
BASIC_GET_EMPTY = (60, 72)
BASIC_ACK = (60, 80)
CONFIRM_SELECT = (85, 10)
CONFIRM_SELECT_OK = (85, 11)

METHOD_NAMES = {
    CONNECTION_START: "connection.start", CONNECTION_START_OK: "connection.start-ok",
    CONNECTION_SECURE: "connection.secure",
    CONNECTION_TUNE: "connection.tune", CONNECTION_TUNE_OK: "connection.tune-ok",
    CONNECTION_OPEN: "connection.open", CONNECTION_OPEN_OK: "connection.open-ok",
    CONNECTION_CLOSE: "connection.close", CONNECTION_CLOSE_OK: "connection.close-ok",
    CHANNEL_OPEN: "channel.open", CHANNEL_OPEN_OK: "channel.open-ok",
    CHANNEL_CLOSE: "channel.close", CHANNEL_CLOSE_OK: "channel.close-ok",
    EXCHANGE_DECLARE: "exchange.declare", EXCHANGE_DECLARE_OK: "exchange.declare-ok",
    QUEUE_DECLARE: "queue.declare", QUEUE_DECLARE_OK: "queue.declare-ok",
    QUEUE_DELETE: "queue.delete", QUEUE_DELETE_OK: "queue.delete-ok",
    BASIC_QOS: "basic.qos", BASIC_QOS_OK: "basic.qos-ok",
    BASIC_CONSUME: "basic.consume", BASIC_CONSUME_OK: "basic.consume-ok",
    BASIC_PUBLISH: "basic.publish", BASIC_RETURN: "basic.return",
    BASIC_DELIVER: "basic.deliver", BASIC_GET: "basic.get",
    BASIC_GET_OK: "basic.get-ok", BASIC_GET_EMPTY: "basic.get-empty",
    BASIC_ACK: "basic.ack",
    CONFIRM_SELECT: "confirm.select", CONFIRM_SELECT_OK: "confirm.select-ok",
}


class T:
    """An explicitly typed field value: T('b', -5), T('L', 2**63), ..."""
    __slots__ = ("type", "value")

    def __init__(self, type_, value):
        self.type = type_
        self.value = value

    def __eq__(self, other):
        return isinstance(other, T) and (self.type, self.value) == (other.type, other.value)

    def __repr__(self):
        return "T(%r, %r)" % (self.type, self.value)


def enc_octet(v):
    return struct.pack(">B", v)


def enc_short(v):
    return struct.pack(">H", v)


def enc_long(v):
    return struct.pack(">I", v)


def enc_longlong(v):
    return struct.pack(">Q", v)


def enc_shortstr(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    if len(s) > 255:
        raise ValueError("shortstr too long")
    return struct.pack(">B", len(s)) + s


def enc_longstr(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return struct.pack(">I", len(s)) + s


def enc_bits(*bits):
    v = 0
    for i, b in enumerate(bits):
        if b:
            v |= 1 << i
    return enc_octet(v)


def enc_field_value(v):
    """Encode a field value; T(type, value) gives an exact type."""
    if isinstance(v, T):
        t, x = v.type, v.value
        if t == "t":
            return b"t" + enc_octet(1 if x else 0)
        if t == "b":
            return b"b" + struct.pack(">b", x)
        if t == "B":
            return b"B" + struct.pack(">B", x)
        if t == "s":
            return b"s" + struct.pack(">h", x)
        if t == "u":
            return b"u" + struct.pack(">H", x)
        if t == "I":
            return b"I" + struct.pack(">i", x)
        if t == "i":
            return b"i" + struct.pack(">I", x)
        if t == "l":
            return b"l" + struct.pack(">q", x)
        if t == "L":
            return b"L" + struct.pack(">Q", x)
        if t == "f":
            return b"f" + struct.pack(">f", x)
        if t == "d":
            return b"d" + struct.pack(">d", x)
        if t == "D":
            scale, unscaled = x
            return b"D" + struct.pack(">Bi", scale, unscaled)
        if t == "S":
            return b"S" + enc_longstr(x)
        if t == "x":
            return b"x" + enc_longstr(x)
        if t == "T":
            return b"T" + struct.pack(">Q", x)
        if t == "F":
            return b"F" + enc_table(x)
        if t == "A":
            return b"A" + enc_array(x)
        if t == "V":
            return b"V"
        raise ValueError("unknown field type %r" % t)
    if isinstance(v, bool):
        return b"t" + enc_octet(1 if v else 0)
    if isinstance(v, int):
        if -2**31 <= v < 2**31:
            return b"I" + struct.pack(">i", v)
        return b"l" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"d" + struct.pack(">d", v)
    if isinstance(v, str):
        return b"S" + enc_longstr(v)
    if isinstance(v, (bytes, bytearray)):
        return b"x" + enc_longstr(bytes(v))
    if isinstance(v, dict):
        return b"F" + enc_table(v)
    if isinstance(v, (list, tuple)):
        return b"A" + enc_array(v)
    if v is None:
        return b"V"
    if isinstance(v, datetime.datetime):
        return b"T" + struct.pack(">Q", int(v.replace(tzinfo=datetime.timezone.utc).timestamp()))
    raise TypeError("cannot encode %r" % (v,))


def enc_table(d):
    """Encode a field table.  d may be a dict or a list of (key, value) pairs."""
    items = d.items() if isinstance(d, dict) else d
    body = b"".join(enc_shortstr(k) + enc_field_value(v) for k, v in items)
    return enc_long(len(body)) + body


def enc_array(values):
    body = b"".join(enc_field_value(v) for v in values)
    return enc_long(len(body)) + body


class Reader:
    """Sequential decoder over a bytes payload."""

    def __init__(self, data, pos=0):
        self.data = data
        self.pos = pos

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated: need %d bytes at %d of %d" % (n, self.pos, len(self.data)))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))

    def octet(self):
        return self.unpack(">B")[0]

    def short(self):
        return self.unpack(">H")[0]

    def long(self):
        return self.unpack(">I")[0]

    def longlong(self):
        return self.unpack(">Q")[0]

    def shortstr(self):
        return self.take(self.octet()).decode("utf-8", "replace")

    def longstr(self):
        return self.take(self.long())

    def table(self):
        """Decoded as {key: T(type, value)} (exact types kept)."""
        sub = Reader(self.longstr())
        out = {}
        while sub.pos < len(sub.data):
            k = sub.shortstr()
            out[k] = sub.field_value()
        return out

    def array(self):
        sub = Reader(self.longstr())
        out = []
        while sub.pos < len(sub.data):
            out.append(sub.field_value())
        return out

    def field_value(self):
        t = self.take(1).decode("latin-1")
        simple = {"b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I",
                  "l": ">q", "L": ">Q", "f": ">f", "d": ">d", "T": ">Q"}
        if t in simple:
            return T(t, self.unpack(simple[t])[0])
        if t == "t":
            return T(t, self.octet() != 0)
        if t == "D":
            return T(t, self.unpack(">Bi"))
        if t == "S":
            return T(t, self.longstr())
        if t == "x":
            return T(t, self.longstr())
        if t == "F":
            return T(t, self.table())
        if t == "A":
            return T(t, self.array())
        if t == "V":
            return T(t, None)
        raise ValueError("unknown field type %r" % t)


def plain_table(typed):
    """{k: T(...)} -> plain python values (strings decoded), for convenience."""
    def conv(v):
        if v.type == "S":
            return v.value.decode("utf-8", "replace")
        if v.type == "F":
            return plain_table(v.value)
        if v.type == "A":
            return [conv(x) for x in v.value]
        return v.value
    return {k: conv(v) for k, v in typed.items()}


# Method argument layouts for decoding replies.  Each entry is a list of
# (name, kind); consecutive "bit" fields share octets as in the spec.
METHOD_ARGS = {
    CONNECTION_START: [("version_major", "octet"), ("version_minor", "octet"),
                       ("server_properties", "table"), ("mechanisms", "longstr"),
                       ("locales", "longstr")],
    CONNECTION_SECURE: [("challenge", "longstr")],
    CONNECTION_TUNE: [("channel_max", "short"), ("frame_max", "long"), ("heartbeat", "short")],
    CONNECTION_OPEN_OK: [("known_hosts", "shortstr")],
    CONNECTION_CLOSE: [("reply_code", "short"), ("reply_text", "shortstr"),
                       ("class_id", "short"), ("method_id", "short")],
    CONNECTION_CLOSE_OK: [],
    CHANNEL_OPEN_OK: [("channel_id", "longstr")],
    CHANNEL_CLOSE: [("reply_code", "short"), ("reply_text", "shortstr"),
                    ("class_id", "short"), ("method_id", "short")],
    CHANNEL_CLOSE_OK: [],
    EXCHANGE_DECLARE_OK: [],
    QUEUE_DECLARE_OK: [("queue", "shortstr"), ("message_count", "long"),
                       ("consumer_count", "long")],
    QUEUE_DELETE_OK: [("message_count", "long")],
    BASIC_QOS_OK: [],
    BASIC_CONSUME_OK: [("consumer_tag", "shortstr")],
    BASIC_RETURN: [("reply_code", "short"), ("reply_text", "shortstr"),
                   ("exchange", "shortstr"), ("routing_key", "shortstr")],
    BASIC_DELIVER: [("consumer_tag", "shortstr"), ("delivery_tag", "longlong"),
                    ("redelivered", "bit"), ("exchange", "shortstr"),
                    ("routing_key", "shortstr")],
    BASIC_GET_OK: [("delivery_tag", "longlong"), ("redelivered", "bit"),
                   ("exchange", "shortstr"), ("routing_key", "shortstr"),
                   ("message_count", "long")],
    BASIC_GET_EMPTY: [("cluster_id", "shortstr")],
    BASIC_ACK: [("delivery_tag", "longlong"), ("multiple", "bit")],
    CONFIRM_SELECT_OK: [],
}


class Frame:
    def __init__(self, ftype, channel, payload):
        self.type = ftype
        self.channel = channel
        self.payload = payload
        self.method = None      # (class_id, method_id) for method frames
        self.args = None        # dict of decoded args when the layout is known
        if ftype == FRAME_METHOD and len(payload) >= 4:
            self.method = struct.unpack(">HH", payload[:4])
            layout = METHOD_ARGS.get(self.method)
            if layout is not None:
                self.args = decode_args(payload[4:], layout)

    @property
    def name(self):
        if self.type == FRAME_METHOD:
            return METHOD_NAMES.get(self.method, "method %r" % (self.method,))
        return {FRAME_HEADER: "content-header", FRAME_BODY: "content-body",
                FRAME_HEARTBEAT: "heartbeat"}.get(self.type, "frame type %d" % self.type)

    def __getitem__(self, k):
        return self.args[k]

    def __repr__(self):
        if self.type == FRAME_METHOD:
            return "<Frame ch=%d %s %r>" % (self.channel, self.name, self.args)
        return "<Frame ch=%d %s %d bytes>" % (self.channel, self.name, len(self.payload))


def decode_args(data, layout):
    r = Reader(data)
    out = {}
    bitpos = 8
    bitval = 0
    for name, kind in layout:
        if kind == "bit":
            if bitpos >= 8:
                bitval = r.octet()
                bitpos = 0
            out[name] = bool(bitval & (1 << bitpos))
            bitpos += 1
            continue
        bitpos = 8
        out[name] = getattr(r, kind)()
    return out


def method_payload(cm, args=b""):
    return struct.pack(">HH", *cm) + args


def frame(ftype, channel, payload, end=FRAME_END):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([end])


def method_frame(channel, cm, args=b""):
    return frame(FRAME_METHOD, channel, method_payload(cm, args))


def heartbeat_frame(channel=0):
    return frame(FRAME_HEARTBEAT, channel, b"")


# ---- basic properties ----------------------------------------------------
BASIC_PROPERTIES = [
    ("content_type", "shortstr"), ("content_encoding", "shortstr"),
    ("headers", "table"), ("delivery_mode", "octet"), ("priority", "octet"),
    ("correlation_id", "shortstr"), ("reply_to", "shortstr"),
    ("expiration", "shortstr"), ("message_id", "shortstr"),
    ("timestamp", "longlong"), ("type", "shortstr"), ("user_id", "shortstr"),
    ("app_id", "shortstr"), ("cluster_id", "shortstr"),
]


def enc_basic_properties(props):
    """props: dict of property name -> value (tables as dict/list of pairs)."""
    flags = 0
    out = b""
    for i, (name, kind) in enumerate(BASIC_PROPERTIES):
        if name not in props or props[name] is None:
            continue
        flags |= 1 << (15 - i)
        v = props[name]
        if kind == "shortstr":
            out += enc_shortstr(v)
        elif kind == "table":
            out += enc_table(v) if not isinstance(v, (bytes, bytearray)) else bytes(v)
        elif kind == "octet":
            out += enc_octet(v)
        elif kind == "longlong":
            out += enc_longlong(v)
    return enc_short(flags) + out


def content_header_payload(body_size, props=None, class_id=60, raw_props=None):
    """raw_props: exact property bytes (flags + list), overrides props."""
    p = raw_props if raw_props is not None else enc_basic_properties(props or {})
    return struct.pack(">HHQ", class_id, 0, body_size) + p


def decode_content_header(payload):
    r = Reader(payload)
    class_id, weight, size = r.unpack(">HHQ")
    flags_words = []
    while True:
        w = r.short()
        flags_words.append(w)
        if not (w & 1):
            break
    flags = flags_words[0]
    props = {}
    for i, (name, kind) in enumerate(BASIC_PROPERTIES):
        if flags & (1 << (15 - i)):
            props[name] = getattr(r, kind)()
    return {"class_id": class_id, "weight": weight, "body_size": size,
            "flags": flags, "properties": props, "raw_properties": payload[12:]}


# ---------------------------------------------------------------------------
# Raw client

class ConnectionClosedByPeer(Exception):
    pass


class RawClient:
    """A minimal AMQP 0-9-1 client on a plain socket.

    Frames are read with read_frame(timeout); raises socket.timeout when
    nothing arrives and ConnectionClosedByPeer on EOF/reset.
    """

    def __init__(self, host, port, timeout=5.0, source=None):
        """source: the local address to connect from (say "127.0.0.2")."""
        self.timeout = timeout
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.frame_max = 131072
        self.channel_max = 0
        self.heartbeat = 0
        self.start = None
        self.tune = None
        self.eof = False
        self.discarded = b""   # bytes wait_closed() read and dropped

    # ---- low level --------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def try_send(self, data):
        """Send, ignoring errors from a peer that already closed."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out waiting for data")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError) as e:
            self.eof = True
            raise ConnectionClosedByPeer("connection reset: %s" % e)
        if not chunk:
            self.eof = True
            raise ConnectionClosedByPeer("peer closed the connection")
        self.buf += chunk

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < 7:
            self._fill(deadline)
        ftype, channel, size = struct.unpack(">BHI", self.buf[:7])
        if self.buf[:4] == b"AMQP":
            raise AssertionError("server sent a protocol header: %r" % self.buf[:8])
        while len(self.buf) < 8 + size:
            self._fill(deadline)
        payload = self.buf[7:7 + size]
        end = self.buf[7 + size]
        self.buf = self.buf[8 + size:]
        if end != FRAME_END:
            raise AssertionError("server sent a frame with frame-end 0x%02x" % end)
        return Frame(ftype, channel, payload)

    def read_frame_skip_heartbeats(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f = self.read_frame(max(0.001, deadline - time.monotonic()))
            if f.type != FRAME_HEARTBEAT:
                return f

    def expect_method(self, cm, channel=None, timeout=None):
        """Read the next non-heartbeat frame; assert it is method cm."""
        f = self.read_frame_skip_heartbeats(timeout)
        if f.type != FRAME_METHOD or f.method != cm or (channel is not None and f.channel != channel):
            raise AssertionError("expected %s on channel %s, got %r"
                                 % (METHOD_NAMES.get(cm, cm), channel, f))
        return f

    def wait_closed(self, timeout=5.0):
        """Read (and discard) until the server closes the socket.
        Returns True if closed within timeout, else False."""
        deadline = time.monotonic() + timeout
        if self.eof:
            return True
        try:
            while True:
                self.discarded += self.buf
                self.buf = b""
                self._fill(deadline)
        except ConnectionClosedByPeer:
            return True
        except (socket.timeout, TimeoutError):
            return False
        except OSError:
            return True

    def read_until_connection_close(self, timeout=None):
        """Read frames until connection.close arrives; returns that frame.
        Raises AssertionError if the socket closes first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = []
        while True:
            try:
                f = self.read_frame(max(0.001, deadline - time.monotonic()))
            except ConnectionClosedByPeer:
                raise AssertionError("server closed the socket without connection.close "
                                     "(frames seen: %r)" % seen)
            except (socket.timeout, TimeoutError):
                raise AssertionError("no connection.close within timeout "
                                     "(frames seen: %r)" % seen)
            if f.type == FRAME_METHOD and f.method == CONNECTION_CLOSE:
                if f.channel != 0:
                    raise AssertionError("connection.close on channel %d" % f.channel)
                return f
            seen.append(f)

    def expect_connection_close(self, code, timeout=None, send_close_ok=True,
                                close_timeout=5.0):
        """Wait for connection.close with reply code `code`, answer close-ok and
        assert the server then closes the socket.  Returns the close frame."""
        f = self.read_until_connection_close(timeout)
        if f["reply_code"] != code:
            raise AssertionError("expected connection.close %d, got %d %r (class %d method %d)"
                                 % (code, f["reply_code"], f["reply_text"],
                                    f["class_id"], f["method_id"]))
        if send_close_ok:
            self.try_send(method_frame(0, CONNECTION_CLOSE_OK))
        if not self.wait_closed(close_timeout):
            raise AssertionError("server did not close the socket within %.1f s after "
                                 "connection.close/close-ok" % close_timeout)
        return f

    # ---- handshake ----------------------------------------------------------
    def send_protocol_header(self, header=PROTOCOL_HEADER):
        self.send(header)

    def start_ok(self, user="guest", password="guest", mechanism="PLAIN",
                 client_properties=None, locale="en_US", response=None):
        if response is None:
            if mechanism == "PLAIN":
                response = b"\x00" + user.encode() + b"\x00" + password.encode()
            elif mechanism == "AMQPLAIN":
                # AMQPLAIN: a field table without its length prefix
                response = enc_table([("LOGIN", user), ("PASSWORD", password)])[4:]
            else:
                response = b""
        props = client_properties
        if props is None:
            props = {"product": "warren-raw-test",
                     "capabilities": {"authentication_failure_close": True,
                                      "consumer_cancel_notify": True,
                                      "basic.nack": True,
                                      "publisher_confirms": True,
                                      "connection.blocked": True}}
        self.send(method_frame(0, CONNECTION_START_OK,
                               enc_table(props) + enc_shortstr(mechanism) +
                               enc_longstr(response) + enc_shortstr(locale)))

    def tune_ok(self, channel_max, frame_max, heartbeat):
        self.channel_max, self.frame_max, self.heartbeat = channel_max, frame_max, heartbeat
        self.send(method_frame(0, CONNECTION_TUNE_OK,
                               enc_short(channel_max) + enc_long(frame_max) + enc_short(heartbeat)))

    def open(self, vhost="/"):
        self.send(method_frame(0, CONNECTION_OPEN, enc_shortstr(vhost) + enc_shortstr("") + enc_bits(False)))

    def handshake(self, user="guest", password="guest", vhost="/", mechanism="PLAIN",
                  frame_max=None, channel_max=None, heartbeat=0,
                  protocol_header=PROTOCOL_HEADER):
        """Full handshake.  frame_max/channel_max None = accept the server's."""
        self.send_protocol_header(protocol_header)
        self.start = self.expect_method(CONNECTION_START, 0)
        self.start_ok(user, password, mechanism)
        self.tune = self.expect_method(CONNECTION_TUNE, 0)
        cm = self.tune["channel_max"] if channel_max is None else channel_max
        fm = self.tune["frame_max"] if frame_max is None else frame_max
        self.tune_ok(cm, fm, heartbeat)
        self.open(vhost)
        self.expect_method(CONNECTION_OPEN_OK, 0)
        return self

    # ---- channel / common methods -------------------------------------------
    def channel_open(self, ch):
        self.send(method_frame(ch, CHANNEL_OPEN, enc_shortstr("")))
        return self.expect_method(CHANNEL_OPEN_OK, ch)

    def channel_close(self, ch):
        self.send(method_frame(ch, CHANNEL_CLOSE, enc_short(200) + enc_shortstr("bye") +
                               enc_short(0) + enc_short(0)))
        return self.expect_method(CHANNEL_CLOSE_OK, ch)

    def connection_close(self):
        self.send(method_frame(0, CONNECTION_CLOSE, enc_short(200) + enc_shortstr("bye") +
                               enc_short(0) + enc_short(0)))
        return self.expect_method(CONNECTION_CLOSE_OK, 0)

    def queue_declare(self, ch, queue="", passive=False, durable=False, exclusive=False,
                      auto_delete=False, arguments=None, wait=True):
        self.send(method_frame(ch, QUEUE_DECLARE,
                               enc_short(0) + enc_shortstr(queue) +
                               enc_bits(passive, durable, exclusive, auto_delete, False) +
                               enc_table(arguments or {})))
        if wait:
            return self.expect_method(QUEUE_DECLARE_OK, ch)

    def queue_delete(self, ch, queue):
        self.send(method_frame(ch, QUEUE_DELETE, enc_short(0) + enc_shortstr(queue) +
                               enc_bits(False, False, False)))
        return self.expect_method(QUEUE_DELETE_OK, ch)

    def basic_qos(self, ch, prefetch_count):
        self.send(method_frame(ch, BASIC_QOS, enc_long(0) + enc_short(prefetch_count) + enc_bits(False)))
        return self.expect_method(BASIC_QOS_OK, ch)

    def basic_consume(self, ch, queue, tag="", no_ack=False):
        self.send(method_frame(ch, BASIC_CONSUME, enc_short(0) + enc_shortstr(queue) +
                               enc_shortstr(tag) + enc_bits(False, no_ack, False, False) +
                               enc_table({})))
        return self.expect_method(BASIC_CONSUME_OK, ch)

    def basic_get(self, ch, queue, no_ack=True):
        self.send(method_frame(ch, BASIC_GET, enc_short(0) + enc_shortstr(queue) + enc_bits(no_ack)))

    def basic_ack(self, ch, tag, multiple=False):
        self.send(method_frame(ch, BASIC_ACK, enc_longlong(tag) + enc_bits(multiple)))

    def publish_frames(self, ch, body, exchange="", routing_key="", props=None,
                       raw_props=None, mandatory=False, frame_max=None, body_size=None):
        """The frames of one basic.publish with content, as bytes."""
        fm = frame_max or self.frame_max or 131072
        chunk = fm - 8
        out = [method_frame(ch, BASIC_PUBLISH, enc_short(0) + enc_shortstr(exchange) +
                            enc_shortstr(routing_key) + enc_bits(mandatory, False))]
        out.append(frame(FRAME_HEADER, ch, content_header_payload(
            len(body) if body_size is None else body_size, props, raw_props=raw_props)))
        for i in range(0, len(body), chunk):
            out.append(frame(FRAME_BODY, ch, body[i:i + chunk]))
        return b"".join(out)

    def publish(self, ch, body, **kw):
        self.send(self.publish_frames(ch, body, **kw))

    def read_content(self, ch, timeout=None):
        """After a deliver/get-ok: read the content header and body frames.
        Returns (header_dict, body, body_frames)."""
        hf = self.read_frame_skip_heartbeats(timeout)
        if hf.type != FRAME_HEADER or hf.channel != ch:
            raise AssertionError("expected content header on channel %d, got %r" % (ch, hf))
        header = decode_content_header(hf.payload)
        body = b""
        frames = []
        while len(body) < header["body_size"]:
            bf = self.read_frame_skip_heartbeats(timeout)
            if bf.type != FRAME_BODY or bf.channel != ch:
                raise AssertionError("expected content body on channel %d, got %r" % (ch, bf))
            frames.append(bf)
            body += bf.payload
        if len(body) != header["body_size"]:
            raise AssertionError("body frames carry %d bytes, header said %d"
                                 % (len(body), header["body_size"]))
        return header, body, frames


def raw_connect(broker, timeout=5.0, **handshake_kw):
    c = RawClient(broker.host, broker.port, timeout=timeout)
    try:
        c.handshake(user=handshake_kw.pop("user", broker.user),
                    password=handshake_kw.pop("password", broker.password),
                    vhost=handshake_kw.pop("vhost", broker.vhost), **handshake_kw)
    except BaseException:
        c.close()
        raise
    return c


# ---------------------------------------------------------------------------
# Runner

class _TestTimeout(Exception):
    pass


def _alarm_handler(signum, frame_):
    raise _TestTimeout("test exceeded %d s (WARREN_TEST_TIMEOUT)" % TEST_TIMEOUT)


class _Result(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.n_pass = self.n_fail = self.n_skip = 0

    def startTest(self, test):
        signal.alarm(TEST_TIMEOUT)
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        signal.alarm(0)
        super().stopTest(test)

    def addSuccess(self, test):
        self.n_pass += 1
        super().addSuccess(test)

    def addFailure(self, test, err):
        self.n_fail += 1
        super().addFailure(test, err)

    def addError(self, test, err):
        self.n_fail += 1
        super().addError(test, err)

    def addSkip(self, test, reason):
        self.n_skip += 1
        super().addSkip(test, reason)
        # make sure the reason is printed whatever the verbosity
        self.stream.writeln("SKIP: %s: %s" % (test, reason))
        self.stream.flush()

    def addExpectedFailure(self, test, err):
        self.n_pass += 1
        super().addExpectedFailure(test, err)

    def addUnexpectedSuccess(self, test):
        self.n_fail += 1
        super().addUnexpectedSuccess(test)

    def addSubTest(self, test, subtest, err):
        # each failing subtest counts as a failure; a test whose subtests
        # all pass counts once, via addSuccess
        if err is not None:
            if issubclass(err[0], unittest.SkipTest):
                self.n_skip += 1
            else:
                self.n_fail += 1
        super().addSubTest(test, subtest, err)


def _watchdog(seconds, counts):
    def fire():
        sys.stderr.write("\n*** test file exceeded %d s (WARREN_TEST_FILE_TIMEOUT); "
                         "thread stacks:\n" % seconds)
        for tid, stack in sys._current_frames().items():
            sys.stderr.write("Thread %s:\n%s\n" % (tid, "".join(traceback.format_stack(stack))))
        _kill_all_brokers()
        r = counts.get("result")
        p, f, s = (r.n_pass, r.n_fail, r.n_skip) if r else (0, 0, 0)
        sys.stdout.write("RESULT: %d passed, %d failed, %d skipped\n" % (p, f + 1, s))
        sys.stdout.flush()
        os._exit(1)
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t


def main(module="__main__"):
    """Run every TestCase in the calling module; print the RESULT line."""
    mod = sys.modules[module]
    signal.signal(signal.SIGALRM, _alarm_handler)
    loader = unittest.TestLoader()
    pattern = sys.argv[1:]  # optional: names of classes or Class.test to run
    if pattern:
        suite = unittest.TestSuite(loader.loadTestsFromName(n, mod) for n in pattern)
    else:
        suite = loader.loadTestsFromModule(mod)
    counts = {}
    wd = _watchdog(FILE_TIMEOUT, counts)
    stream = sys.stdout
    runner = unittest.TextTestRunner(stream=stream, verbosity=2, resultclass=_Result)
    # TextTestRunner builds the result itself; capture it for the watchdog.
    orig_make = runner._makeResult

    def make():
        r = orig_make()
        counts["result"] = r
        return r
    runner._makeResult = make
    try:
        result = runner.run(suite)
    finally:
        wd.cancel()
        _kill_all_brokers()
    stream.write("RESULT: %d passed, %d failed, %d skipped\n"
                 % (result.n_pass, result.n_fail, result.n_skip))
    stream.flush()
    sys.exit(0 if result.n_fail == 0 else 1)
