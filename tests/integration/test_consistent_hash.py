#!/usr/bin/python3
"""x-consistent-hash exchange (issue 13), with the semantics of RabbitMQ's
rabbitmq_consistent_hash_exchange plugin: the binding key is a weight; a
message goes to exactly one binding, chosen by hashing its routing key (or
the header named by hash-header, or the property named by hash-property);
the same value always reaches the same queue; a binding key that is not a
positive integer is refused with 406, and so are hash-header together with
hash-property, and a hash-property other than message_id, correlation_id
or timestamp.  With single active consumer on each partition queue this
is a Kafka-style consumer group, with failover."""

import collections
import os

import pika
import pika.exceptions

from harness import PikaTestCase, PRECONDITION_FAILED, main, wait_until


def uniq(stem):
    return "warren-it-chx-%s-%s" % (stem, os.urandom(4).hex())


class ConsistentHashTest(PikaTestCase):

    def partitions(self, ch, weights, arguments=None, durable=False, sac=False):
        """An x-consistent-hash exchange and one queue per weight."""
        x = uniq("x")
        ch.exchange_declare(x, "x-consistent-hash", durable=durable, arguments=arguments)
        self.exchanges_to_delete.append(x)
        qs = []
        for i, w in enumerate(weights):
            q = uniq("p%d" % i)
            ch.queue_declare(q, durable=durable,
                             arguments={"x-single-active-consumer": True} if sac else None)
            ch.queue_bind(q, x, routing_key=str(w))
            self.to_delete.append(q)
            qs.append(q)
        return x, qs

    def where(self, ch, qs):
        """{body: queue} of every message in the queues (consumed)."""
        seen = {}
        for q in qs:
            while True:
                m, _, body = ch.basic_get(q, auto_ack=True)
                if m is None:
                    break
                self.assertNotIn(body, seen, "a message reached two partitions")
                seen[body] = q
        return seen

    def publish(self, ch, x, n, key=lambda i: "key-%d" % i, props=lambda i: None):
        for i in range(n):
            ch.basic_publish(x, key(i), b"%d" % i, properties=props(i))

    def wait_total(self, ch, qs, n):
        wait_until(lambda: sum(ch.queue_declare(q, passive=True).method.message_count
                               for q in qs) == n, what="%d messages routed" % n)

    def counts(self, ch, qs):
        return [ch.queue_declare(q, passive=True).method.message_count for q in qs]

    def test_same_routing_key_same_queue(self):
        ch = self.connect().channel()
        x, qs = self.partitions(ch, [1, 1, 1, 1])
        # every key three times, interleaved
        self.publish(ch, x, 300, key=lambda i: "order-%d" % (i % 100))
        self.wait_total(ch, qs, 300)
        placed = self.where(ch, qs)
        by_key = collections.defaultdict(set)
        for body, q in placed.items():
            by_key[int(body) % 100].add(q)
        self.assertEqual(len(by_key), 100)
        for k, where in by_key.items():
            self.assertEqual(len(where), 1, "key order-%d reached %s" % (k, where))
        self.assertEqual(len(set(placed.values())), 4, "some partition got nothing")

    def test_even_spread_of_4000_keys_over_4_partitions(self):
        ch = self.connect().channel()
        x, qs = self.partitions(ch, [1, 1, 1, 1])
        self.publish(ch, x, 4000)
        self.wait_total(ch, qs, 4000)
        for q, n in zip(qs, self.counts(ch, qs)):
            self.assertLess(abs(n - 1000), 150, "%s got %d of 4000" % (q, n))

    def test_weights_are_proportional(self):
        ch = self.connect().channel()
        x, qs = self.partitions(ch, [1, 1, 2, 4])
        self.publish(ch, x, 8000)
        self.wait_total(ch, qs, 8000)
        for want, n in zip([1000, 1000, 2000, 4000], self.counts(ch, qs)):
            self.assertLess(abs(n - want), 0.15 * want, "%d where %d expected" % (n, want))

    def test_unbind_moves_only_that_partitions_keys(self):
        ch = self.connect().channel()
        x, qs = self.partitions(ch, [1, 1, 1, 1])
        self.publish(ch, x, 400)
        self.wait_total(ch, qs, 400)
        before = self.where(ch, qs)
        ch.queue_unbind(qs[3], x, routing_key="1")
        self.publish(ch, x, 400)
        self.wait_total(ch, qs, 400)
        after = self.where(ch, qs)
        self.assertEqual(self.counts(ch, [qs[3]]), [0])
        self.assertNotIn(qs[3], after.values())
        # keys on the first partition (whose buckets did not move) stay there
        for body, q in before.items():
            if q == qs[0]:
                self.assertEqual(after[body], qs[0], "key %s moved" % body)

    def test_hash_header(self):
        ch = self.connect().channel()
        x, qs = self.partitions(ch, [1, 1, 1, 1], arguments={"hash-header": "tenant"})
        # the routing key changes every time; the header decides
        self.publish(ch, x, 400, key=lambda i: "rk-%d" % i,
                     props=lambda i: pika.BasicProperties(headers={"tenant": "t%d" % (i % 40)}))
        self.wait_total(ch, qs, 400)
        by_tenant = collections.defaultdict(set)
        for body, q in self.where(ch, qs).items():
            by_tenant[int(body) % 40].add(q)
        self.assertTrue(all(len(v) == 1 for v in by_tenant.values()), by_tenant)
        self.assertGreater(len(set().union(*by_tenant.values())), 1)

    def test_hash_property_message_id_correlation_id_timestamp(self):
        ch = self.connect().channel()
        cases = {
            "message_id": lambda i: pika.BasicProperties(message_id="m%d" % (i % 30)),
            "correlation_id": lambda i: pika.BasicProperties(correlation_id="c%d" % (i % 30)),
            "timestamp": lambda i: pika.BasicProperties(timestamp=1700000000 + i % 30),
        }
        for prop, props in cases.items():
            x, qs = self.partitions(ch, [1, 1, 1], arguments={"hash-property": prop})
            self.publish(ch, x, 300, key=lambda i: "rk-%d" % i, props=props)
            self.wait_total(ch, qs, 300)
            groups = collections.defaultdict(set)
            for body, q in self.where(ch, qs).items():
                groups[int(body) % 30].add(q)
            self.assertTrue(all(len(v) == 1 for v in groups.values()), (prop, groups))
            self.assertGreater(len(set().union(*groups.values())), 1, prop)

    def test_bad_binding_keys_are_refused(self):
        conn = self.connect()
        ch = conn.channel()
        x, qs = self.partitions(ch, [1])
        for key in ["abc", "", "0", "-3", "1.5", "2x"]:
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.queue_bind(qs[0], x, routing_key=key)
            self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED, key)
            ch = conn.channel()
        # nothing was bound by the refused attempts: still one partition
        self.publish(ch, x, 50)
        self.wait_total(ch, qs, 50)

    def test_bad_exchange_arguments_are_refused(self):
        conn = self.connect()
        for args in [{"hash-header": "h", "hash-property": "message_id"},
                     {"hash-property": "app_id"}]:
            ch = conn.channel()
            x = uniq("bad")
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                ch.exchange_declare(x, "x-consistent-hash", arguments=args)
            self.assertEqual(cm.exception.reply_code, PRECONDITION_FAILED, args)
            ch = conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker):
                ch.exchange_declare(x, passive=True)  # not created

    def test_partitions_survive_a_restart(self):
        ch = self.connect().channel()
        x, qs = self.partitions(ch, [1, 2, 1, 3], durable=True)
        self.publish(ch, x, 200)
        self.wait_total(ch, qs, 200)
        before = self.where(ch, qs)
        self.conns[-1].close()
        self.broker.restart()
        ch = self.connect().channel()
        self.publish(ch, x, 200)
        self.wait_total(ch, qs, 200)
        self.assertEqual(self.where(ch, qs), before)

    def test_consumer_group_with_single_active_consumers_fails_over(self):
        """Four partitions with single active consumer, two group members
        each consuming every partition: each partition has exactly one
        active member, keys stay in order, and when a member goes away the
        other takes over its partitions."""
        ch = self.connect().channel()
        x, qs = self.partitions(ch, [1, 1, 1, 1], sac=True)
        members = []
        for name in ("a", "b"):
            conn = self.connect()
            mch = conn.channel()
            mch.basic_qos(prefetch_count=10)
            got = []

            def on(c, m, p, body, got=got):
                got.append((m.routing_key, int(body)))
                c.basic_ack(m.delivery_tag)
            members.append((conn, mch, on, got))
        (ca, cha, on_a, ga), (cb, chb, on_b, gb) = members
        # a registers first on partitions 0 and 1, b on 2 and 3
        for q in qs[:2]:
            cha.basic_consume(q, on_a)
        for q in qs:
            chb.basic_consume(q, on_b)
        for q in qs[2:]:
            cha.basic_consume(q, on_a)

        def pump():
            for conn, _, _, _ in members:
                if conn.is_open:
                    conn.process_data_events(time_limit=0.02)

        keys = ["user-%d" % k for k in range(20)]
        seq = collections.Counter()

        def send(n):
            for i in range(n):
                k = keys[i % len(keys)]
                seq[k] += 1
                ch.basic_publish(x, k, b"%d" % seq[k])

        send(400)
        wait_until(lambda: (pump(), len(ga) + len(gb) == 400)[1], what="400 deliveries")
        self.assertGreater(len(ga), 0)
        self.assertGreater(len(gb), 0)
        keys_a = {k for k, _ in ga}
        keys_b = {k for k, _ in gb}
        self.assertFalse(keys_a & keys_b, "a key was consumed by two members")
        for got in (ga, gb):
            per_key = collections.defaultdict(list)
            for k, s in got:
                per_key[k].append(s)
            for k, ss in per_key.items():
                self.assertEqual(ss, sorted(ss), "key %s out of order" % k)

        # member a leaves: b becomes active on every partition
        ca.close()
        before_b = len(gb)
        send(400)
        wait_until(lambda: (pump(), len(gb) - before_b == 400)[1],
                   what="b takes over every partition")
        self.assertEqual({k for k, _ in gb[before_b:]}, set(keys))


if __name__ == "__main__":
    main()
