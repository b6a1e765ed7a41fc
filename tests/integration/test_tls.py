#!/usr/bin/python3
"""TLS (AMQPS): listeners.ssl.default with RabbitMQ's ssl_options.* keys.

A throwaway CA, server and client certificate are made with the openssl
command for each class. Covered: pika over TLS (server certificate checked
against the CA and the 127.0.0.1 name), a 1 MiB message and a consumer over
TLS, the plain listener alongside; a ClientHello that really offers only
TLS 1.1 (checked byte by byte, sent over a plain socket) answered with a
fatal protocol_version alert, and the same for TLS 1.2 answered with a
ServerHello; plain AMQP on the TLS port and TLS on the plain port closed
by the broker and logged; a client refusing the server certificate logged
and harmless; amqp-tools (rabbitmq-c) with --ssl; verify_peer with
fail_if_no_peer_cert (no certificate, one from another CA, or one that
expired: refused and logged, the expiry named; the right one: accepted); configuration errors (missing key or
certificate file, a certificate file that exists but is not PEM, listener
without certificate, verify_peer without a CA, a key that does not match
the certificate) stop warrend with a message naming the key, the file and
the reason.
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import warnings

import pika
import pika.exceptions

from harness import (BrokerTestCase, HOST, assert_broker_alive,
                     find_warrend, free_port, main, skip_if_external, wait_until)

TLS_HANDSHAKE, TLS_ALERT = 0x16, 0x15
ALERT_FATAL, ALERT_PROTOCOL_VERSION = 2, 70
EXT_SUPPORTED_VERSIONS = 43


def client_hello(version):
    """(sslobj, incoming BIO, ClientHello bytes) of a client that offers
    exactly `version` (SECLEVEL=0, so OpenSSL 3 really offers TLS 1.1).
    The handshake runs over memory BIOs, so the test sees and sends the
    very bytes the client produced."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = version
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return obj, incoming, outgoing.read()


def parse_client_hello(data):
    """(legacy client_version, [versions in supported_versions or None])."""
    if len(data) < 9 or data[0] != TLS_HANDSHAKE or data[5] != 1:
        raise AssertionError("not a TLS ClientHello: %r" % data[:16])
    body = data[9:]
    version = int.from_bytes(body[0:2], "big")
    i = 2 + 32
    i += 1 + body[i]                                   # session id
    i += 2 + int.from_bytes(body[i:i + 2], "big")      # cipher suites
    i += 1 + body[i]                                   # compression methods
    supported = None
    if i < len(body):
        end = i + 2 + int.from_bytes(body[i:i + 2], "big")
        i += 2
        while i + 4 <= end:
            etype = int.from_bytes(body[i:i + 2], "big")
            elen = int.from_bytes(body[i + 2:i + 4], "big")
            ext = body[i + 4:i + 4 + elen]
            if etype == EXT_SUPPORTED_VERSIONS:
                supported = [int.from_bytes(ext[j:j + 2], "big")
                             for j in range(1, 1 + ext[0], 2)]
            i += 4 + elen
    return version, supported


def read_to_eof(sock, timeout=30.0):
    """Everything the peer sends until it closes the connection (EOF or
    reset).  Fails if it is still open after `timeout`."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionError:
        return data
    except socket.timeout:
        raise AssertionError("the broker kept the connection open for %.0f s "
                             "(got %r)" % (timeout, data[:64]))


def log_mark(broker):
    return len(broker.stderr())


def wait_log_since(broker, mark, predicate, what, timeout=30.0):
    """A log line written after `mark` that satisfies predicate."""
    return wait_until(lambda: next((l for l in broker.stderr()[mark:].splitlines()
                                    if predicate(l)), None),
                      timeout=timeout, what="a warrend log line " + what)


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(d, prefix=""):
    """CA, server (SAN 127.0.0.1, localhost) and client certificates in d,
    named {prefix}ca.pem, {prefix}server.pem/.key, {prefix}client.pem/.key."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", prefix + "ca.key", "-out",
            prefix + "ca.pem", "-days", "2", "-subj", "/CN=warren-test-ca-" + prefix,
            cwd=d)
    ext = os.path.join(d, prefix + "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who, extra in (("server", ["-extfile", ext]), ("client", [])):
        openssl("req", *ec, "-keyout", prefix + who + ".key", "-out",
                prefix + who + ".csr", "-subj", "/CN=warren-test-" + who, cwd=d)
        openssl("x509", "-req", "-in", prefix + who + ".csr", "-CA", prefix + "ca.pem",
                "-CAkey", prefix + "ca.key", "-CAcreateserial", "-out",
                prefix + who + ".pem", "-days", "2", *extra, cwd=d)
    return {k: os.path.join(d, prefix + k) for k in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def make_expired_client(d, ca_pem, ca_key):
    """A client certificate from the test CA that expired in 2020, as
    expired.pem/.key in d.  `openssl x509 -req` (OpenSSL 3.0) cannot
    backdate; `openssl ca` with explicit dates can."""
    with open(os.path.join(d, "expired-ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = test_ca\n[test_ca]\n"
                "database = expired-index.txt\nnew_certs_dir = .\n"
                "serial = expired-serial\ndefault_md = sha256\n"
                "policy = any\nunique_subject = no\n"
                "[any]\ncommonName = supplied\n")
    open(os.path.join(d, "expired-index.txt"), "w").close()
    with open(os.path.join(d, "expired-serial"), "w") as f:
        f.write("1000\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "expired.key", "-out", "expired.csr",
            "-subj", "/CN=warren-test-expired", cwd=d)
    openssl("ca", "-batch", "-config", "expired-ca.cnf", "-cert", ca_pem,
            "-keyfile", ca_key, "-in", "expired.csr", "-out", "expired.pem",
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
            "-notext", cwd=d)
    return os.path.join(d, "expired.pem"), os.path.join(d, "expired.key")


class TLSBase(BrokerTestCase):
    verify_peer = False

    @classmethod
    def setUpClass(cls):
        if shutil.which("openssl") is None:
            raise AssertionError("the openssl command is needed (Debian package openssl)")
        cls.pki_dir = tempfile.mkdtemp(prefix="warren-tls-")
        cls.pki = make_pki(cls.pki_dir)
        cls.tls_port = free_port()
        cls.config = {
            "listeners.ssl.default": "%s:%d" % (HOST, cls.tls_port),
            "ssl_options.certfile": cls.pki["server.pem"],
            "ssl_options.keyfile": cls.pki["server.key"],
            "ssl_options.cacertfile": cls.pki["ca.pem"],
        }
        cls.config.update(getattr(cls, "extra", {}))
        if hasattr(cls, "before_start"):
            cls.before_start()
        if cls.verify_peer:
            cls.config["ssl_options.verify"] = "verify_peer"
            cls.config["ssl_options.fail_if_no_peer_cert"] = "true"
        try:
            super().setUpClass()
        except BaseException:
            shutil.rmtree(cls.pki_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def context(self, cert=True, cafile=None):
        ctx = ssl.create_default_context(cafile=cafile or self.pki["ca.pem"])
        if cert:
            ctx.load_cert_chain(self.pki["client.pem"], self.pki["client.key"])
        return ctx

    def tls_params(self, ctx=None, **kw):
        ctx = ctx or self.context()
        return pika.ConnectionParameters(
            host=HOST, port=self.tls_port,
            credentials=pika.PlainCredentials(self.broker.user, self.broker.password),
            ssl_options=pika.SSLOptions(ctx, HOST), connection_attempts=1,
            socket_timeout=5, blocked_connection_timeout=10, **kw)

    def round_trip(self, params, body=b"over tls"):
        conn = pika.BlockingConnection(params)
        try:
            ch = conn.channel()
            q = ch.queue_declare("", exclusive=True).method.queue
            ch.basic_publish("", q, body)
            for m, _p, got in ch.consume(q, auto_ack=True, inactivity_timeout=5):
                self.assertIsNotNone(m, "no delivery over TLS")
                return got
        finally:
            conn.close()


@skip_if_external("needs a TLS listener configured by the test")
class TLSTest(TLSBase):

    def test_pika_round_trip_checks_server_certificate(self):
        # check_hostname is on: the certificate must name 127.0.0.1.
        mark = log_mark(self.broker)
        self.assertEqual(self.round_trip(self.tls_params()), b"over tls")
        wait_log_since(self.broker, mark,
                       lambda l: "accepted from" in l and l.endswith("(TLS)"),
                       "showing a TLS connection was accepted")

    def test_large_message_and_consumer_over_tls(self):
        body = os.urandom(1 << 20)
        self.assertEqual(self.round_trip(self.tls_params(), body), body)

    def test_plain_listener_still_serves(self):
        conn = pika.BlockingConnection(self.broker.params())
        conn.channel().queue_declare("", exclusive=True)
        conn.close()

    def test_client_rejecting_the_certificate_is_logged_and_harmless(self):
        # The client refuses the server certificate (another CA) and sends
        # an unknown_ca alert: the broker must log it and carry on.
        other = make_pki(self.pki_dir, prefix="other-")
        mark = log_mark(self.broker)
        with self.assertRaises(ssl.SSLCertVerificationError):
            pika.BlockingConnection(self.tls_params(self.context(
                cert=False, cafile=other["ca.pem"])))
        wait_log_since(self.broker, mark,
                       lambda l: "TLS error" in l and "unknown ca" in l,
                       "reporting the client's unknown_ca alert")
        assert_broker_alive(self.broker, self)

    def exchange_hello(self, version):
        """Send a ClientHello offering only `version` to the TLS port.
        Returns (the ClientHello, the broker's first reply bytes, sock)."""
        obj, incoming, hello = client_hello(version)
        legacy, supported = parse_client_hello(hello)
        if version == ssl.TLSVersion.TLSv1_1:
            # it really offers TLS 1.1 and nothing newer
            self.assertEqual(legacy, 0x0302, hello[:16].hex())
            self.assertTrue(supported is None or max(supported) <= 0x0302, supported)
        sock = socket.create_connection((HOST, self.tls_port), timeout=30)
        sock.sendall(hello)
        return obj, incoming, hello, sock

    def test_tls_1_2_client_hello_gets_a_server_hello(self):
        # The control for the TLS 1.1 test below: the same way of sending a
        # ClientHello is answered with a ServerHello when the version is fine.
        obj, incoming, _hello, sock = self.exchange_hello(ssl.TLSVersion.TLSv1_2)
        with sock:
            sock.settimeout(30)
            data = sock.recv(65536)
        self.assertGreaterEqual(len(data), 6, data)
        self.assertEqual((data[0], data[5]), (TLS_HANDSHAKE, 2),
                         "no ServerHello for TLS 1.2: %r" % data[:16])
        self.assertEqual(data[1:3], b"\x03\x03")

    def test_tls_1_1_is_refused(self):
        mark = log_mark(self.broker)
        obj, incoming, _hello, sock = self.exchange_hello(ssl.TLSVersion.TLSv1_1)
        with sock:
            data = read_to_eof(sock)
        # a fatal protocol_version alert, then the broker closes
        self.assertEqual(data[:1], bytes([TLS_ALERT]),
                         "broker did not answer TLS 1.1 with an alert: %r" % data[:16])
        self.assertEqual(data[5:7], bytes([ALERT_FATAL, ALERT_PROTOCOL_VERSION]),
                         "alert is not a fatal protocol_version: %r" % data[:16])
        # ...which the client's TLS stack reads as the server refusing
        incoming.write(data)
        incoming.write_eof()
        with self.assertRaises(ssl.SSLError) as cm:
            obj.do_handshake()
        self.assertIn("PROTOCOL_VERSION", str(cm.exception))
        wait_log_since(self.broker, mark,
                       lambda l: "TLS error" in l and "unsupported protocol" in l,
                       "about the refused TLS version")
        assert_broker_alive(self.broker, self)

    def test_plain_amqp_on_tls_port_is_dropped(self):
        mark = log_mark(self.broker)
        with socket.create_connection((HOST, self.tls_port), timeout=30) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            data = read_to_eof(s)
        # nothing but (perhaps) a TLS alert before the broker closes
        self.assertTrue(data == b"" or data[0] == TLS_ALERT,
                        "broker answered plain AMQP on its TLS port with %r" % data[:16])
        wait_log_since(self.broker, mark, lambda l: "TLS error" in l,
                       "about the non-TLS bytes")
        assert_broker_alive(self.broker, self)

    def test_tls_on_plain_port_fails_cleanly(self):
        # A ClientHello is a bad protocol header: the broker answers with
        # its protocol header (RabbitMQ's way) or nothing, and closes.
        mark = log_mark(self.broker)
        _obj, _incoming, hello = client_hello(ssl.TLSVersion.TLSv1_2)
        with socket.create_connection((HOST, self.broker.port), timeout=30) as s:
            s.sendall(hello)
            data = read_to_eof(s)
        self.assertIn(data, (b"", b"AMQP\x00\x00\x09\x01"))
        wait_log_since(self.broker, mark, lambda l: "bad protocol header" in l,
                       "about the bad protocol header")
        assert_broker_alive(self.broker, self)

    def test_amqp_tools_over_tls(self):
        if shutil.which("amqp-publish") is None:
            raise AssertionError("amqp-tools are needed (Debian package amqp-tools)")
        q = "tls-tools-%s" % os.urandom(3).hex()
        conn = pika.BlockingConnection(self.broker.params())
        ch = conn.channel()
        ch.queue_declare(q)
        # No path in the URL: "/" would name the vhost "" (AMQP URI rules).
        # rabbitmq-c checks the name against DNS names only: "localhost".
        common = ["--url", "amqps://%s:%s@localhost:%d" % (
            self.broker.user, self.broker.password, self.tls_port),
            "--ssl", "--cacert", self.pki["ca.pem"]]
        subprocess.run(["amqp-publish", *common, "-r", q, "-b", "via rabbitmq-c"],
                       check=True, timeout=30, capture_output=True)
        try:
            out = subprocess.run(["amqp-get", *common, "-q", q], check=True,
                                 timeout=30, capture_output=True).stdout
            self.assertEqual(out, b"via rabbitmq-c")
            # amqp-get acked it over TLS: the queue is empty now
            self.assertEqual(ch.queue_declare(q, passive=True).method.message_count, 0)
        finally:
            ch.queue_delete(q)
            conn.close()


@skip_if_external("needs a TLS listener configured by the test")
class TLSPeerVerificationTest(TLSBase):
    verify_peer = True

    def test_client_certificate_accepted(self):
        self.assertEqual(self.round_trip(self.tls_params()), b"over tls")

    def test_no_client_certificate_refused(self):
        mark = log_mark(self.broker)
        with self.assertRaises((pika.exceptions.AMQPConnectionError,
                                ssl.SSLError, ConnectionError)):
            self.round_trip(self.tls_params(self.context(cert=False)))
        wait_log_since(self.broker, mark,
                       lambda l: "TLS error" in l and "certificate" in l,
                       "about the missing client certificate")
        assert_broker_alive(self.broker, self)

    def test_certificate_from_another_ca_refused(self):
        other = make_pki(self.pki_dir, prefix="rogue-")
        ctx = self.context(cert=False)
        ctx.load_cert_chain(other["client.pem"], other["client.key"])
        mark = log_mark(self.broker)
        with self.assertRaises((pika.exceptions.AMQPConnectionError,
                                ssl.SSLError, ConnectionError)):
            self.round_trip(self.tls_params(ctx))
        wait_log_since(self.broker, mark,
                       lambda l: "TLS error" in l and "certificate" in l,
                       "about the untrusted client certificate")
        assert_broker_alive(self.broker, self)

    def test_expired_certificate_refused(self):
        pem, key = make_expired_client(self.pki_dir, self.pki["ca.pem"],
                                       os.path.join(self.pki_dir, "ca.key"))
        ctx = self.context(cert=False)
        ctx.load_cert_chain(pem, key)
        mark = log_mark(self.broker)
        with self.assertRaises((pika.exceptions.AMQPConnectionError,
                                ssl.SSLError, ConnectionError)):
            self.round_trip(self.tls_params(ctx))
        wait_log_since(self.broker, mark,
                       lambda l: "TLS error" in l and "expired" in l,
                       "about the expired client certificate")
        assert_broker_alive(self.broker, self)


@skip_if_external("starts warrend with broken TLS settings")
@skip_if_external("needs a TLS listener configured by the test")
class TLSVersionsAndCiphersTest(TLSBase):
    """ssl_options.versions.N and ssl_options.ciphers.N, as rabbitmq.conf
    spells them: TLS 1.3 only here, with one suite."""

    @classmethod
    def setUpClass(cls):
        cls.extra = {"ssl_options.versions.1": "tlsv1.3",
                     "ssl_options.ciphers.1": "TLS_AES_256_GCM_SHA384"}
        super().setUpClass()

    def test_only_the_configured_version_and_suite(self):
        ctx = self.context()
        conn = pika.BlockingConnection(self.tls_params(ctx))
        conn.close()
        # TLS 1.2 only: no common version.
        old = self.context()
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.assertRaises((pika.exceptions.AMQPConnectionError,
                                ssl.SSLError, ConnectionError)):
            pika.BlockingConnection(self.tls_params(old))
        # The suite negotiated is the one configured.
        raw = ctx.wrap_socket(socket.create_connection((HOST, self.tls_port)),
                              server_hostname=HOST)
        try:
            self.assertEqual(raw.version(), "TLSv1.3")
            self.assertEqual(raw.cipher()[0], "TLS_AES_256_GCM_SHA384")
        finally:
            raw.close()
        assert_broker_alive(self.broker, self)


@skip_if_external("sends SIGHUP to warrend")
class TLSReloadTest(TLSBase):
    """SIGHUP reloads the certificate and key for new connections; open
    ones go on; files that no longer load leave the old ones in place."""

    @classmethod
    def before_start(cls):
        cls.other = make_pki(cls.pki_dir, prefix="other-")
        cls.live = {k: os.path.join(cls.pki_dir, "live-" + k)
                    for k in ("server.pem", "server.key")}
        for k, path in cls.live.items():
            shutil.copy(cls.pki[k], path)
        cls.config["ssl_options.certfile"] = cls.live["server.pem"]
        cls.config["ssl_options.keyfile"] = cls.live["server.key"]

    def connects(self, cafile):
        try:
            pika.BlockingConnection(self.tls_params(
                self.context(cert=False, cafile=cafile))).close()
            return True
        except (pika.exceptions.AMQPConnectionError, ssl.SSLError,
                ConnectionError):
            return False

    def test_sighup_reloads_for_new_connections(self):
        old_conn = pika.BlockingConnection(self.tls_params())
        self.assertFalse(self.connects(self.other["ca.pem"]))
        for k in self.live:
            shutil.copy(self.other[k], self.live[k])
        mark = log_mark(self.broker)
        self.broker.proc.send_signal(signal.SIGHUP)
        wait_log_since(self.broker, mark, lambda l: "TLS certificate and key "
                       "reloaded" in l, "the reload")
        self.assertTrue(self.connects(self.other["ca.pem"]))
        self.assertFalse(self.connects(self.pki["ca.pem"]))
        # The connection made before goes on.
        ch = old_conn.channel()
        ch.queue_declare("", exclusive=True)
        old_conn.close()
        # A broken key: logged, and the current certificate stays.
        with open(self.live["server.key"], "w") as f:
            f.write("not a key\n")
        mark = log_mark(self.broker)
        self.broker.proc.send_signal(signal.SIGHUP)
        wait_log_since(self.broker, mark, lambda l: "TLS files not reloaded" in l,
                       "the refused reload")
        self.assertTrue(self.connects(self.other["ca.pem"]))
        assert_broker_alive(self.broker, self)


@skip_if_external("needs a TLS listener and users configured by the test")
class TLSExternalLoginTest(TLSBase):
    """EXTERNAL: the user is the verified client certificate's common name
    (ssl_cert_login_from = common_name); offered only on TLS connections
    that presented one; auth_mechanisms.* picks what is offered."""
    verify_peer = True
    extra = {"auth_mechanisms.1": "EXTERNAL", "auth_mechanisms.2": "PLAIN",
             "ssl_cert_login_from": "common_name"}

    def setUp(self):
        from test_mgmt_api import Api
        self.api = Api(self.broker)
        self.api.ok("PUT", "/users/warren-test-client",
                    {"password_hash": "", "tags": ""})
        self.api.ok("PUT", "/permissions/%2F/warren-test-client",
                    {"configure": ".*", "write": ".*", "read": ".*"})

    def external_params(self):
        return pika.ConnectionParameters(
            host=HOST, port=self.tls_port,
            credentials=pika.credentials.ExternalCredentials(),
            ssl_options=pika.SSLOptions(self.context(), HOST),
            connection_attempts=1, socket_timeout=5)

    def test_certificate_names_the_user(self):
        conn = pika.BlockingConnection(self.external_params())
        try:
            ch = conn.channel()
            q = ch.queue_declare("", exclusive=True).method.queue
            users = [c["user"] for c in self.api.ok("GET", "/connections")]
            self.assertIn("warren-test-client", users)
            ch.basic_publish("", q, b"x")
        finally:
            conn.close()

    def test_unknown_certificate_user_refused(self):
        self.api.ok("DELETE", "/users/warren-test-client")
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError) as cm:
            pika.BlockingConnection(self.external_params())
        self.assertIn("Login was refused using authentication mechanism "
                      "EXTERNAL", str(cm.exception))

    def test_mechanisms_offered(self):
        def offered(sock):
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            data = b""
            while b"PLAIN" not in data:
                chunk = sock.recv(4096)
                self.assertTrue(chunk, "no connection.start")
                data += chunk
            return data
        # Plain TCP: no certificate, no EXTERNAL; AMQPLAIN not configured.
        with socket.create_connection((HOST, self.broker.port), timeout=10) as s:
            data = offered(s)
            self.assertIn(b"\x05PLAIN", data)
            self.assertNotIn(b"EXTERNAL", data)
            self.assertNotIn(b"AMQPLAIN", data)
        raw = self.context().wrap_socket(
            socket.create_connection((HOST, self.tls_port), timeout=10),
            server_hostname=HOST)
        try:
            self.assertIn(b"\x0eEXTERNAL PLAIN", offered(raw))
        finally:
            raw.close()
        # A mechanism not offered is refused.
        with self.assertRaises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika.ConnectionParameters(
                host=HOST, port=self.broker.port, connection_attempts=1,
                credentials=pika.credentials.ExternalCredentials()))


class TLSConfigErrorTest(BrokerTestCase):
    """warrend refuses to start, naming the problem."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="warren-tlsconf-")
        cls.pki = make_pki(cls.dir)
        other = make_pki(cls.dir, prefix="other-")
        cls.other_key = other["server.key"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def start(self, lines):
        conf = os.path.join(self.dir, "warren.conf")
        with open(conf, "w") as f:
            f.write("listeners.tcp.default = %s:%d\n" % (HOST, free_port()))
            f.write("listeners.ssl.default = %s:%d\n" % (HOST, free_port()))
            f.write("warren.data_dir = %s\n" % self.dir)
            f.write("".join(l + "\n" for l in lines))
            f.write("management.tcp.port = 0\n")
            f.write("prometheus.tcp.port = 0\n")
        p = subprocess.run([find_warrend(), "-c", conf], capture_output=True,
                           timeout=10, text=True)
        self.assertNotEqual(p.returncode, 0, "warrend started: %s" % p.stderr)
        self.assertNotIn("Sanitizer", p.stderr)
        return conf, p.stderr

    def test_listener_without_certificate(self):
        conf, err = self.start([])
        self.assertIn("%s: a TLS listener (listeners.ssl.*) needs "
                      "ssl_options.certfile and ssl_options.keyfile" % conf, err)

    def test_verify_peer_without_ca(self):
        conf, err = self.start(["ssl_options.certfile = " + self.pki["server.pem"],
                                "ssl_options.keyfile = " + self.pki["server.key"],
                                "ssl_options.verify = verify_peer"])
        self.assertIn("%s: ssl_options.verify = verify_peer needs "
                      "ssl_options.cacertfile" % conf, err)

    def test_bad_versions_and_ciphers(self):
        conf, err = self.start(["ssl_options.versions.1 = tlsv1.1"])
        self.assertIn("%s:4: ssl_options.versions.1: \"tlsv1.1\" is not tlsv1.2 "
                      "or tlsv1.3" % conf, err)
        _conf, err = self.start(["ssl_options.certfile = " + self.pki["server.pem"],
                                 "ssl_options.keyfile = " + self.pki["server.key"],
                                 "ssl_options.versions.1 = tlsv1.3",
                                 "ssl_options.ciphers.1 = ECDHE-RSA-AES128-GCM-SHA256"])
        self.assertIn("ssl_options.ciphers: no cipher it names is usable", err)

    def test_bad_verify_value(self):
        conf, err = self.start(["ssl_options.verify = maybe"])
        self.assertIn("%s:4: ssl_options.verify: \"maybe\" is not verify_peer "
                      "or verify_none" % conf, err)

    def test_missing_key_file(self):
        missing = os.path.join(self.dir, "nope.key")
        _conf, err = self.start(["ssl_options.certfile = " + self.pki["server.pem"],
                                 "ssl_options.keyfile = " + missing])
        self.assertIn("ssl_options.keyfile %s:" % missing, err)
        self.assertIn("No such file", err)

    def test_key_not_matching_certificate(self):
        _conf, err = self.start(["ssl_options.certfile = " + self.pki["server.pem"],
                                 "ssl_options.keyfile = " + self.other_key])
        # a real key, just not the certificate's: the reason is the mismatch
        self.assertIn("ssl_options.keyfile %s:" % self.other_key, err)
        self.assertIn("mismatch", err)

    def test_check_only_loads_the_certificates(self):
        # warrend -n checks what a real start would load, not just syntax.
        conf = os.path.join(self.dir, "check.conf")
        with open(conf, "w") as f:
            f.write("listeners.ssl.default = %s:%d\n" % (HOST, free_port()))
            f.write("ssl_options.certfile = %s\n" % self.pki["server.pem"])
            f.write("ssl_options.keyfile = %s\n" % self.other_key)
        p = subprocess.run([find_warrend(), "-n", "-c", conf],
                           capture_output=True, timeout=10, text=True)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("ssl_options.keyfile %s:" % self.other_key, p.stderr)
        self.assertNotIn("configuration OK", p.stdout)
        with open(conf, "w") as f:
            f.write("listeners.ssl.default = %s:%d\n" % (HOST, free_port()))
            f.write("ssl_options.certfile = %s\n" % self.pki["server.pem"])
            f.write("ssl_options.keyfile = %s\n" % self.pki["server.key"])
        p = subprocess.run([find_warrend(), "-n", "-c", conf],
                           capture_output=True, timeout=10, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("configuration OK", p.stdout)

    def test_missing_certificate_file(self):
        missing = os.path.join(self.dir, "nope.pem")
        _conf, err = self.start(["ssl_options.certfile = " + missing,
                                 "ssl_options.keyfile = " + self.pki["server.key"]])
        self.assertIn("ssl_options.certfile %s:" % missing, err)
        self.assertIn("No such file", err)

    def test_certificate_file_is_not_pem(self):
        # A file that exists and holds the right certificate, but in DER.
        der = os.path.join(self.dir, "server.der")
        openssl("x509", "-in", self.pki["server.pem"], "-outform", "DER",
                "-out", der, cwd=self.dir)
        self.assertTrue(os.path.getsize(der) > 0)
        _conf, err = self.start(["ssl_options.certfile = " + der,
                                 "ssl_options.keyfile = " + self.pki["server.key"]])
        line = next((l for l in err.splitlines()
                     if "ssl_options.certfile %s:" % der in l), None)
        self.assertIsNotNone(line, "no error naming ssl_options.certfile %s:\n%s" % (der, err))
        self.assertIn("PEM", line)                  # why: it is not PEM...
        self.assertNotIn("No such file", line)      # ...not that it is missing


if __name__ == "__main__":
    main()
