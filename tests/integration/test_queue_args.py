#!/usr/bin/python3
"""Queue argument validation (issue 6): a wrong type or an out-of-range value
for each x- argument is channel.close 406 (class 50 method 10) whose reply
text names the argument and the queue; the queue is not created.  Valid
values of every AMQP integer type are accepted.

Behaviour checked against RabbitMQ 3.10.8.  Its reply texts are, e.g.
  PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}
  PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'
  PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue 'q' in vhost '/': routing_key_but_no_dlx_defined
and only the argument name, the queue name and the prefix are required here.
Limits: x-message-ttl 0..315360000000, x-expires 1..315360000000,
x-max-length / x-max-length-bytes >= 0 (no upper bound), x-max-priority
0..255; integers of any AMQP integer type (b B s u I i l), not doubles,
booleans or void.  x-single-active-consumer must be a boolean, x-overflow
one of drop-head/reject-publish/reject-publish-dlx (a longstr),
x-dead-letter-exchange and -routing-key longstrs.  A passive declare ignores
the arguments altogether.
"""

import os

import pika

from harness import (CHANNEL_CLOSE, CHANNEL_CLOSE_OK, NOT_FOUND, PRECONDITION_FAILED,
                     QUEUE_DECLARE_OK, BrokerTestCase, T, assert_broker_alive,
                     main, method_frame, raw_connect)


def uniq(stem):
    return "warren-it-qa-%s-%s" % (stem, os.urandom(4).hex())


INVALID = [
    # (argument that must be named, arguments)
    ("x-message-ttl", {"x-message-ttl": -1}),
    ("x-message-ttl", {"x-message-ttl": "x"}),
    ("x-message-ttl", {"x-message-ttl": T("d", 5.0)}),
    ("x-message-ttl", {"x-message-ttl": T("t", True)}),
    ("x-message-ttl", {"x-message-ttl": T("V", None)}),
    ("x-message-ttl", {"x-message-ttl": T("l", 315360000001)}),
    ("x-expires", {"x-expires": 0}),
    ("x-expires", {"x-expires": -1}),
    ("x-expires", {"x-expires": "a"}),
    ("x-expires", {"x-expires": T("l", 315360000001)}),
    ("x-max-length", {"x-max-length": -1}),
    ("x-max-length", {"x-max-length": T("d", 1.0)}),
    ("x-max-length", {"x-max-length": "10"}),
    ("x-max-length-bytes", {"x-max-length-bytes": -1}),
    ("x-max-length-bytes", {"x-max-length-bytes": "1"}),
    ("x-overflow", {"x-overflow": "bogus"}),
    ("x-overflow", {"x-overflow": T("I", 1)}),
    ("x-overflow", {"x-overflow": T("x", b"drop-head")}),
    ("x-dead-letter-exchange", {"x-dead-letter-exchange": 5}),
    ("x-dead-letter-exchange", {"x-dead-letter-exchange": T("x", b"dlx")}),
    ("x-dead-letter-routing-key", {"x-dead-letter-routing-key": "rk"}),
    ("x-dead-letter-routing-key", {"x-dead-letter-exchange": "dlx",
                                   "x-dead-letter-routing-key": T("I", 1)}),
    ("x-max-priority", {"x-max-priority": 300}),
    ("x-max-priority", {"x-max-priority": 256}),
    ("x-max-priority", {"x-max-priority": -1}),
    ("x-max-priority", {"x-max-priority": "a"}),
    ("x-single-active-consumer", {"x-single-active-consumer": "yes"}),
    ("x-single-active-consumer", {"x-single-active-consumer": T("I", 1)}),
    ("x-queue-type", {"x-queue-type": "bogus"}),
]

INT_TYPES = ("b", "B", "s", "u", "I", "i", "l")

VALID = [
    {"x-message-ttl": 0},
    {"x-message-ttl": T("l", 315360000000)},
    {"x-expires": 1},
    {"x-expires": T("l", 315360000000)},
    {"x-max-length": 0},
    {"x-max-length": T("l", 2 ** 62)},
    {"x-max-length-bytes": 0},
    {"x-max-length-bytes": T("l", 2 ** 40)},
    {"x-overflow": "drop-head"},
    {"x-overflow": "reject-publish"},
    {"x-overflow": "reject-publish-dlx"},
    {"x-dead-letter-exchange": ""},
    {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "rk"},
    {"x-dead-letter-exchange": "no-such-exchange-is-fine"},
    {"x-max-priority": 0},
    {"x-max-priority": 1},
    {"x-max-priority": 255},
    {"x-single-active-consumer": True},
    {"x-single-active-consumer": False},
    {"x-queue-type": "classic"},
    {"x-consumer-timeout": 1000},
    {"x-unknown-argument": "anything", "plain": T("d", 1.5)},
]


class QueueArgsTest(BrokerTestCase):

    def setUp(self):
        self.r = raw_connect(self.broker)
        self.next_ch = 1

    def tearDown(self):
        try:
            self.r.close()
        finally:
            assert_broker_alive(self.broker)

    def declare(self, name, args, passive=False):
        """queue.declare on a fresh channel: ('ok', frame) or ('closed', frame).
        The channel is closed again either way."""
        ch = self.next_ch
        self.next_ch += 1
        self.r.channel_open(ch)
        self.r.queue_declare(ch, name, passive=passive, arguments=args, wait=False)
        f = self.r.read_frame_skip_heartbeats()
        if f.method == QUEUE_DECLARE_OK:
            self.r.channel_close(ch)
            return "ok", f
        self.assertEqual(f.method, CHANNEL_CLOSE, "expected declare-ok or channel.close, got %r" % f)
        self.r.send(method_frame(ch, CHANNEL_CLOSE_OK))
        return "closed", f

    def delete(self, name):
        ch = self.next_ch
        self.next_ch += 1
        self.r.channel_open(ch)
        self.r.queue_delete(ch, name)
        self.r.channel_close(ch)

    def test_invalid_arguments_406(self):
        for arg, args in INVALID:
            with self.subTest(args=args):
                name = uniq("bad")
                what, f = self.declare(name, args)
                if what == "ok":
                    self.delete(name)
                self.assertEqual(what, "closed", "accepted %r" % (args,))
                self.assertEqual(f["reply_code"], PRECONDITION_FAILED, f)
                self.assertEqual((f["class_id"], f["method_id"]), (50, 10))
                text = f["reply_text"]
                self.assertTrue(text.startswith("PRECONDITION_FAILED - "), text)
                self.assertIn("'%s'" % arg, text, "reply text must name the argument")
                self.assertIn("'%s'" % name, text, "reply text must name the queue")
                # nothing was created
                what, f = self.declare(name, {}, passive=True)
                self.assertEqual(what, "closed")
                self.assertEqual(f["reply_code"], NOT_FOUND)

    def test_valid_arguments_accepted(self):
        for args in VALID:
            with self.subTest(args=args):
                name = uniq("ok")
                what, f = self.declare(name, args)
                self.assertEqual(what, "ok", "refused %r: %r" % (args, f))
                self.delete(name)

    def test_every_integer_type_accepted(self):
        for arg, value in (("x-message-ttl", 5), ("x-expires", 100), ("x-max-length", 5),
                           ("x-max-length-bytes", 5), ("x-max-priority", 5)):
            for t in INT_TYPES:
                with self.subTest(arg=arg, type=t):
                    name = uniq("int")
                    what, f = self.declare(name, {arg: T(t, value)})
                    self.assertEqual(what, "ok", "refused %s of type %s: %r" % (arg, t, f))
                    self.delete(name)

    def test_negative_of_each_signed_type_refused(self):
        for t in ("b", "s", "I", "l"):
            with self.subTest(type=t):
                name = uniq("neg")
                what, f = self.declare(name, {"x-max-length": T(t, -3)})
                self.assertEqual(what, "closed")
                self.assertEqual(f["reply_code"], PRECONDITION_FAILED)
                self.assertIn("'x-max-length'", f["reply_text"])

    def test_first_invalid_argument_closes_once(self):
        """Several bad arguments: one 406 naming one of them."""
        name = uniq("many")
        what, f = self.declare(name, {"x-message-ttl": -1, "x-max-length": -1})
        self.assertEqual(what, "closed")
        self.assertEqual(f["reply_code"], PRECONDITION_FAILED)
        self.assertTrue("'x-message-ttl'" in f["reply_text"] or
                        "'x-max-length'" in f["reply_text"], f["reply_text"])

    def test_passive_declare_ignores_arguments(self):
        name = uniq("passive")
        self.assertEqual(self.declare(name, {})[0], "ok")
        try:
            for args in ({"x-message-ttl": -1}, {"x-max-priority": 300},
                         {"x-message-ttl": 5}):
                with self.subTest(args=args):
                    what, f = self.declare(name, args, passive=True)
                    self.assertEqual(what, "ok", f)
        finally:
            self.delete(name)

    def test_invalid_arguments_with_pika(self):
        """The same through pika, as an application would see it."""
        conn = pika.BlockingConnection(self.broker.params())
        try:
            for arg, args in [("x-message-ttl", {"x-message-ttl": -1}),
                              ("x-dead-letter-exchange", {"x-dead-letter-exchange": 5}),
                              ("x-single-active-consumer", {"x-single-active-consumer": "yes"})]:
                with self.subTest(args=args):
                    ch = conn.channel()
                    with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                        ch.queue_declare(uniq("pika"), arguments=args)
                    self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED)
                    self.assertIn(arg, cm.exception.reply_text)
            self.assertTrue(conn.is_open)
        finally:
            conn.close()


if __name__ == "__main__":
    main()
