#!/usr/bin/python3
"""loopback_users from a real non-loopback address, through a network
namespace.

RabbitMQ lets `guest` (loopback_users.guest = true by default) log in only
from a loopback address; warrend decides by the peer address of the TCP
connection.  To get a connection whose source is not 127.0.0.0/8 without
any traffic leaving the machine, each class makes its own network
namespace (warren-test-PID<k>) joined to the host by a veth pair: the host
side gets 10.213.A.B+1/30, the namespace side 10.213.A.B+2/30 (A.B from the
pid; another /30 if that one is in use).  warrend listens on 0.0.0.0:PORT
(it has one TCP listener; 127.0.0.1 must keep working for the harness and
the loopback checks) and a pika client run with `ip netns exec` connects to
the host side from 10.213.A.B+2.

- Default config: guest from the namespace is refused with connection.close
  403 "ACCESS_REFUSED - User 'guest' can only connect via localhost"; so is
  guest from the host to the veth address (the source is then the host's
  own 10.213.A.B+1, not loopback: the address decides, not the route);
  a user made through the management API logs in and round-trips a
  message from the same namespace; guest via 127.0.0.1 logs in.
- loopback_users = none: guest from the namespace logs in.

Needs root (CAP_NET_ADMIN) and iproute2's `ip`; otherwise every test is
skipped with the reason.  The namespace and the veth pair are removed after
each class, also when it fails (and by the harness's file watchdog).
"""

import base64
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pika  # noqa: E402
import pika.exceptions  # noqa: E402

import harness  # noqa: E402
from harness import (Broker, BrokerTestCase, assert_broker_alive,  # noqa: E402
                     is_external, main)

ACCESS_REFUSED = 403
LOCALHOST_ONLY = "ACCESS_REFUSED - User 'guest' can only connect via localhost"
PYTHON = "/usr/bin/python3"  # the one with python3-pika

# Run inside the namespace: connect with pika, print one JSON line.
#   {"result": "ok"}                                 logged in, message round trip
#   {"result": "refused", "reply_code": N, "reply_text": "..."}  connection.close
#   {"result": "error", "error": "..."}              anything else
CLIENT = r'''
import ast, json, os, re, sys
import pika, pika.exceptions
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
params = pika.ConnectionParameters(
    host=host, port=port, virtual_host="/",
    credentials=pika.PlainCredentials(user, password),
    socket_timeout=5, stack_timeout=15, connection_attempts=1)
def closed(e):
    # Before open-ok pika wraps the broker's connection.close in
    # ProbableAuthenticationError/ProbableAccessDeniedError, keeping only
    # its repr: "ConnectionClosedByBroker: (403) 'text'".
    m = re.search(r"ConnectionClosedByBroker: \((\d+)\) ('.*'|\".*\")\s*$",
                  str(e.args[0]) if e.args else "")
    if not m:
        return {"result": "error", "error": repr(e)}
    return {"result": "refused", "reply_code": int(m.group(1)),
            "reply_text": ast.literal_eval(m.group(2))}
try:
    conn = pika.BlockingConnection(params)
except pika.exceptions.ConnectionClosedByBroker as e:
    out = {"result": "refused", "reply_code": e.reply_code,
           "reply_text": e.reply_text}
except (pika.exceptions.ProbableAuthenticationError,
        pika.exceptions.ProbableAccessDeniedError) as e:
    out = closed(e)
except Exception as e:
    out = {"result": "error", "error": repr(e)}
else:
    try:
        ch = conn.channel()
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        body = os.urandom(8).hex().encode()
        ch.basic_publish(exchange="", routing_key=q, body=body)
        for _ in range(100):
            method, _props, got = ch.basic_get(q, auto_ack=True)
            if method is not None:
                break
            conn.sleep(0.05)
        if method is None or got != body:
            out = {"result": "error", "error": "round trip: got %r" % (got,)}
        else:
            out = {"result": "ok"}
        conn.close()
    except Exception as e:
        out = {"result": "error", "error": repr(e)}
print(json.dumps(out))
'''


class NetnsUnavailable(Exception):
    pass


def _ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True,
                       timeout=30)
    if check and r.returncode != 0:
        raise NetnsUnavailable("ip %s: %s" % (" ".join(args),
                                              (r.stderr or r.stdout).strip()))
    return r


_live_netns = set()


class Netns:
    """A network namespace joined to the host by a veth pair on a /30."""

    def __init__(self, tag):
        pid = os.getpid()
        self.name = "warren-test-%d%s" % (pid, tag)
        # Interface names are at most 15 characters: 3 + 7 (pid) + 1.
        self.host_if = "wth%d%s" % (pid, tag)
        self.ns_if = "wtn%d%s" % (pid, tag)
        self.created = False
        self.host_addr = self.ns_addr = None
        self._seed = (pid * 2 + (ord(tag) & 1)) % 16384

    def _pick_subnet(self):
        """A /30 in 10.213.0.0/16 that no address or route here overlaps."""
        used = []
        for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
            f = line.split()
            if "inet" in f:
                used.append(ipaddress.ip_interface(f[f.index("inet") + 1]).network)
        for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
            f = line.split()
            if f and f[0] not in ("default", "broadcast", "local") and f[0][0].isdigit():
                try:
                    net = ipaddress.ip_network(f[0], strict=False)
                except ValueError:
                    continue
                if net.prefixlen >= 16:  # ignore wide routes like 10.0.0.0/8
                    used.append(net)
        for i in range(16384):
            n = (self._seed + i) % 16384
            net = ipaddress.ip_network("10.213.%d.%d/30" % (n >> 6, (n & 63) * 4))
            if not any(net.overlaps(u) for u in used):
                hosts = list(net.hosts())
                return str(hosts[0]), str(hosts[1])
        raise NetnsUnavailable("no free /30 in 10.213.0.0/16")

    def create(self):
        if os.geteuid() != 0:
            raise NetnsUnavailable("needs root (CAP_NET_ADMIN) for a network "
                                   "namespace and a veth pair")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("no `ip` command (Debian package iproute2)")
        _live_netns.add(self)
        try:
            self.host_addr, self.ns_addr = self._pick_subnet()
            _ip("netns", "add", self.name)
            self.created = True
            _ip("link", "add", self.host_if, "type", "veth",
                "peer", "name", self.ns_if, "netns", self.name)
            _ip("addr", "add", self.host_addr + "/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "addr", "add", self.ns_addr + "/30",
                "dev", self.ns_if)
            _ip("-n", self.name, "link", "set", self.ns_if, "up")
            # Both ends up: the carrier comes on (LOWER_UP) on each side.
            deadline = time.monotonic() + 10
            while not (self._lower_up([], self.host_if) and
                       self._lower_up(["-n", self.name], self.ns_if)):
                if time.monotonic() > deadline:
                    raise NetnsUnavailable("veth %s/%s did not come up"
                                           % (self.host_if, self.ns_if))
                time.sleep(0.05)
        except BaseException:
            self.remove()
            raise

    @staticmethod
    def _lower_up(prefix, dev):
        r = _ip(*(prefix + ["-o", "link", "show", "dev", dev]), check=False)
        return r.returncode == 0 and "LOWER_UP" in r.stdout

    def remove(self):
        """Delete the veth pair and the namespace (whatever of them exists)."""
        _ip("link", "del", self.host_if, check=False)
        if self.created:
            _ip("netns", "del", self.name, check=False)
            self.created = False
        _live_netns.discard(self)

    def leftovers(self):
        """What of this namespace/veth pair still exists (for the tests)."""
        left = []
        if self.name in _ip("netns", "list", check=False).stdout.split():
            left.append("netns " + self.name)
        if _ip("link", "show", "dev", self.host_if, check=False).returncode == 0:
            left.append("link " + self.host_if)
        return left

    def client(self, port, user, password, timeout=40):
        """Run CLIENT in the namespace against the host side; its JSON."""
        p = subprocess.run(["ip", "netns", "exec", self.name, PYTHON, "-c", CLIENT,
                            self.host_addr, str(port), user, password],
                           capture_output=True, text=True, timeout=timeout)
        lines = p.stdout.strip().splitlines()
        try:
            return json.loads(lines[-1])
        except (IndexError, ValueError):
            raise AssertionError("client in %s printed no result (exit %d):\n%s%s"
                                 % (self.name, p.returncode, p.stdout, p.stderr))


# The harness's file watchdog ends the process with os._exit after killing
# the brokers; remove the namespaces then too.
_harness_kill_all_brokers = harness._kill_all_brokers


def _kill_all_brokers_and_netns():
    try:
        _harness_kill_all_brokers()
    finally:
        for ns in list(_live_netns):
            ns.remove()


harness._kill_all_brokers = _kill_all_brokers_and_netns


class AnyAddressBroker(Broker):
    """warrend listening on 0.0.0.0 (the harness's port): reachable on
    127.0.0.1 and on the veth's host side."""

    def _write_config(self):
        super()._write_config()
        # the harness's 127.0.0.1 listener, on every address instead (a key
        # may be set only once)
        with open(self.config_path) as f:
            text = f.read()
        mine = "listeners.tcp.default = %s:%d\n" % (harness.HOST, self.port)
        assert mine in text, text
        with open(self.config_path, "w") as f:
            f.write(text.replace(mine, "listeners.tcp.default = 0.0.0.0:%d\n"
                                 % self.port))


class NetnsTestCase(BrokerTestCase):
    """One namespace and one broker per class."""

    tag = "a"
    config = None

    @classmethod
    def setUpClass(cls):
        cls._broker_cm = None
        cls._skip_reason = None
        cls.ns = None
        if is_external():
            cls._skip_reason = ("external broker (WARREN_TEST_EXTERNAL): needs "
                                "warrend listening on the veth address")
            return
        ns = Netns(cls.tag)
        try:
            ns.create()
        except NetnsUnavailable as e:
            cls._skip_reason = "no network namespace: %s" % e
            return
        cls.ns = ns
        cm = AnyAddressBroker(config=cls.config)
        try:
            cls.broker = cm.__enter__()
        except BaseException:
            ns.remove()
            raise
        cls._broker_cm = cm

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            if cls.ns is not None:
                ns, cls.ns = cls.ns, None
                ns.remove()
                left = ns.leftovers()
                if left:
                    raise AssertionError("not removed: %s" % ", ".join(left))

    @classmethod
    def mgmt_put(cls, path, body):
        req = urllib.request.Request(
            "http://127.0.0.1:%d/api/%s" % (cls.broker.mgmt_port, path),
            data=json.dumps(body).encode(), method="PUT",
            headers={"Authorization": "Basic " +
                     base64.b64encode(b"guest:guest").decode(),
                     "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=30).close()

    def from_netns(self, user, password):
        """Connect from the namespace; also check warrend saw the
        namespace's address as the peer."""
        mark = self.broker.log_mark()
        out = self.ns.client(self.broker.port, user, password)
        peer = "accepted from %s:" % self.ns.ns_addr
        self.assertIsNotNone(
            self.broker.wait_for_log(lambda l: peer in l, timeout=10, since=mark),
            "no '%s' in warrend's log:\n%s" % (peer, self.broker.stderr()[mark:]))
        return out

    def assert_guest_refused(self, out):
        self.assertEqual(out, {"result": "refused", "reply_code": ACCESS_REFUSED,
                               "reply_text": LOCALHOST_ONLY})

    def tearDown(self):
        assert_broker_alive(self.broker)


class GuestLoopbackOnly(NetnsTestCase):
    """Default loopback_users (guest only from loopback)."""

    tag = "a"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls._skip_reason:
            return
        cls.password = secrets.token_hex(12)
        try:
            cls.mgmt_put("users/netuser", {"password": cls.password, "tags": ""})
            cls.mgmt_put("permissions/%2F/netuser",
                         {"configure": ".*", "write": ".*", "read": ".*"})
        except BaseException:
            cls.tearDownClass()
            raise

    def test_guest_refused_from_netns(self):
        mark = self.broker.log_mark()
        self.assert_guest_refused(self.from_netns("guest", "guest"))
        self.assertIsNotNone(self.broker.wait_for_log(
            lambda l: self.ns.ns_addr in l and "403" in l and LOCALHOST_ONLY in l,
            timeout=10, since=mark), self.broker.stderr()[mark:])

    def test_other_user_allowed_from_netns(self):
        self.assertEqual(self.from_netns("netuser", self.password), {"result": "ok"})

    def test_other_user_wrong_password_from_netns(self):
        # an ordinary login failure, not the loopback one
        out = self.from_netns("netuser", "wrong")
        self.assertEqual((out.get("result"), out.get("reply_code")),
                         ("refused", ACCESS_REFUSED), out)
        self.assertNotIn("localhost", out.get("reply_text", ""))

    def test_guest_via_127_0_0_1(self):
        conn = pika.BlockingConnection(self.broker.params())
        try:
            self.assertTrue(conn.channel().is_open)
        finally:
            conn.close()

    def test_guest_refused_from_host_to_veth_address(self):
        # Same host, no namespace: the source is the host side's address.
        params = self.broker.params()
        params.host = self.ns.host_addr
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError) as cm:
            pika.BlockingConnection(params)
        self.assertIn("(403) %r" % LOCALHOST_ONLY, str(cm.exception))


class LoopbackUsersNone(NetnsTestCase):
    """loopback_users = none: guest may log in from anywhere."""

    tag = "b"
    config = {"loopback_users.guest": None, "loopback_users": "none"}

    def test_guest_allowed_from_netns(self):
        self.assertEqual(self.from_netns("guest", "guest"), {"result": "ok"})


if __name__ == "__main__":
    main()
