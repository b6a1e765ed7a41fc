#!/usr/bin/python3
"""TLS (AMQPS): listeners.ssl.default with RabbitMQ's ssl_options.* keys.

A throwaway CA, server and client certificate are made with the openssl
command for each class. Covered: pika over TLS (server certificate checked
against the CA and the 127.0.0.1 name), a 1 MiB message and a consumer over
TLS, the plain listener alongside, TLS 1.1 refused, plain AMQP on the TLS
port and TLS on the plain port refused without harm to the broker,
amqp-tools (rabbitmq-c) with --ssl; verify_peer with fail_if_no_peer_cert
(no certificate, or one from another CA: refused; the right one:
accepted); configuration errors (missing key file, listener without
certificate, verify_peer without a CA, a key that does not match the
certificate) stop warrend with a message naming the key.
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pika
import pika.exceptions

from harness import (Broker, BrokerTestCase, HOST, assert_broker_alive,
                     find_warrend, free_port, main, skip_if_external)


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
        self.assertEqual(self.round_trip(self.tls_params()), b"over tls")
        self.assertIsNotNone(self.broker.wait_for_log(lambda l: "(TLS)" in l))

    def test_large_message_and_consumer_over_tls(self):
        body = os.urandom(1 << 20)
        self.assertEqual(self.round_trip(self.tls_params(), body), body)

    def test_plain_listener_still_serves(self):
        conn = pika.BlockingConnection(self.broker.params())
        conn.channel().queue_declare("", exclusive=True)
        conn.close()

    def test_wrong_ca_is_refused_by_the_client(self):
        other = make_pki(self.pki_dir, prefix="other-")
        with self.assertRaises((pika.exceptions.AMQPConnectionError,
                                ssl.SSLError)):
            pika.BlockingConnection(self.tls_params(self.context(
                cert=False, cafile=other["ca.pem"])))
        assert_broker_alive(self.broker, self)

    def test_tls_1_1_is_refused(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError) as e:
            self.skipTest("this Python cannot offer TLS 1.1: %s" % e)
        with socket.create_connection((HOST, self.tls_port), timeout=5) as s:
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                ctx.wrap_socket(s).do_handshake()
        assert_broker_alive(self.broker, self)

    def test_plain_amqp_on_tls_port_is_dropped(self):
        with socket.create_connection((HOST, self.tls_port), timeout=5) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            s.settimeout(5)
            try:
                data = s.recv(4096)
            except ConnectionError:
                data = b""
            # Whatever comes back (a TLS alert, or nothing) is not AMQP.
            self.assertFalse(data.startswith(b"AMQP") or b"\x01\x00\x00" in data[:3])
        self.assertIsNotNone(self.broker.wait_for_log(lambda l: "TLS error" in l))
        assert_broker_alive(self.broker, self)

    def test_tls_on_plain_port_fails_cleanly(self):
        ctx = self.context(cert=False)
        with socket.create_connection((HOST, self.broker.port), timeout=5) as s:
            with self.assertRaises((ssl.SSLError, ConnectionError, socket.timeout)):
                ctx.wrap_socket(s, server_hostname=HOST).do_handshake()
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
                       check=True, timeout=10, capture_output=True)
        out = subprocess.run(["amqp-get", *common, "-q", q], check=True,
                             timeout=10, capture_output=True).stdout
        self.assertEqual(out, b"via rabbitmq-c")
        ch.queue_delete(q)
        conn.close()


@skip_if_external("needs a TLS listener configured by the test")
class TLSPeerVerificationTest(TLSBase):
    verify_peer = True

    def test_client_certificate_accepted(self):
        self.assertEqual(self.round_trip(self.tls_params()), b"over tls")

    def test_no_client_certificate_refused(self):
        with self.assertRaises((pika.exceptions.AMQPConnectionError,
                                ssl.SSLError, ConnectionError)):
            self.round_trip(self.tls_params(self.context(cert=False)))
        self.assertIsNotNone(self.broker.wait_for_log(
            lambda l: "TLS error" in l and "certificate" in l))
        assert_broker_alive(self.broker, self)

    def test_certificate_from_another_ca_refused(self):
        other = make_pki(self.pki_dir, prefix="rogue-")
        ctx = self.context(cert=False)
        ctx.load_cert_chain(other["client.pem"], other["client.key"])
        with self.assertRaises((pika.exceptions.AMQPConnectionError,
                                ssl.SSLError, ConnectionError)):
            self.round_trip(self.tls_params(ctx))
        assert_broker_alive(self.broker, self)


@skip_if_external("starts warrend with broken TLS settings")
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

    def test_bad_verify_value(self):
        conf, err = self.start(["ssl_options.verify = maybe"])
        self.assertIn("%s:4: ssl_options.verify: \"maybe\" is not verify_peer "
                      "or verify_none" % conf, err)

    def test_missing_key_file(self):
        missing = os.path.join(self.dir, "nope.key")
        _conf, err = self.start(["ssl_options.certfile = " + self.pki["server.pem"],
                                 "ssl_options.keyfile = " + missing])
        self.assertIn("ssl_options.keyfile %s:" % missing, err)

    def test_key_not_matching_certificate(self):
        _conf, err = self.start(["ssl_options.certfile = " + self.pki["server.pem"],
                                 "ssl_options.keyfile = " + self.other_key])
        self.assertIn("ssl_options.keyfile %s:" % self.other_key, err)

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
        with open(conf, "a") as f:
            f.write("ssl_options.keyfile = %s\n" % self.pki["server.key"])
        p = subprocess.run([find_warrend(), "-n", "-c", conf],
                           capture_output=True, timeout=10, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("configuration OK", p.stdout)

    def test_certificate_file_is_not_pem(self):
        _conf, err = self.start(["ssl_options.certfile = " + self.pki["server.key"] + ".csr-nope",
                                 "ssl_options.keyfile = " + self.pki["server.key"]])
        self.assertIn("ssl_options.certfile", err)


if __name__ == "__main__":
    main()
