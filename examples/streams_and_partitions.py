#!/usr/bin/python3
"""Kafka's and Redis Streams' concepts in Warren, with pika.

Each function is one concept of README.md's "Streams, partitions and
consumer groups" table.  Run against a broker:

    /usr/bin/python3 examples/streams_and_partitions.py [HOST [PORT]]

Every example declares its own objects (names prefixed "example.") and
deletes them; it prints what it shows and fails loudly if the broker does
not behave as described.  tests/integration/test_examples.py runs it.
"""

import sys
import time

import pika

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 5672


def connect():
    return pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT))


def read(ch, queue, n, **args):
    """Consume n messages from a stream; [(offset, body)].

    The prefetch is n, so exactly n arrive; they are acked after the
    cancel.  (A stream refuses nack and reject with 540, and pika nacks
    deliveries still in flight when a consumer is cancelled: with the
    window full, none are.)"""
    got, tags = [], []

    def on(c, m, p, body):
        got.append((p.headers["x-stream-offset"], body))
        tags.append(m.delivery_tag)
    ch.basic_qos(prefetch_count=n)
    tag = ch.basic_consume(queue, on, arguments=args or None)
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        ch.connection.process_data_events(time_limit=0.05)
    assert len(got) >= n, "expected %d messages, got %d" % (n, len(got))
    ch.basic_cancel(tag)
    ch.basic_ack(tags[-1], multiple=True)
    return got[:n]


def topic_and_offsets():
    """Kafka topic / Redis stream = a stream queue; XADD = publish;
    offsets, seek and XRANGE = x-stream-offset."""
    conn = connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("example.orders", durable=True,
                     arguments={"x-queue-type": "stream", "x-max-age": "7D"})
    for i in range(10):
        ch.basic_publish("", "example.orders", b"order %d" % i)       # XADD
    print("replay from the start:", read(conn.channel(), "example.orders", 10,
                                         **{"x-stream-offset": "first"})[:2], "...")
    print("seek to offset 7:", read(conn.channel(), "example.orders", 3,
                                    **{"x-stream-offset": 7}))
    print("the last hour (XRANGE by time):",
          len(read(conn.channel(), "example.orders", 10, **{"x-stream-offset": "1h"})),
          "messages")
    ch.queue_delete("example.orders")
    conn.close()


def committed_offsets():
    """Kafka's committed offsets / a consumer name: server-side offset
    tracking; a named consumer resumes where its acks got to."""
    conn = connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("example.events", durable=True, arguments={"x-queue-type": "stream"})
    for i in range(10):
        ch.basic_publish("", "example.events", b"event %d" % i)
    for session in (1, 2):
        c = conn.channel()
        c.basic_qos(prefetch_count=1)
        got = []

        def on(cc, m, p, body, got=got):
            got.append(p.headers["x-stream-offset"])
            if len(got) <= 3:
                cc.basic_ack(m.delivery_tag)   # commit the first three
        c.basic_consume("example.events", on, consumer_tag="billing",
                        arguments={"x-stream-automatic-offset-tracking": True,
                                   "x-stream-offset": "first"})
        # with prefetch 1 a fourth arrives and stays unacked: wait for it,
        # so that nothing is in flight when the channel closes
        while len(got) < 4:
            conn.process_data_events(time_limit=0.05)
        c.close()
        print("session %d of consumer 'billing' read offsets %s" % (session, got[:3]))
    assert got[0] == 3, "the second session should resume at offset 3"
    ch.queue_delete("example.events")
    conn.close()


def partitions_and_consumer_groups():
    """Kafka partitions and consumer groups: an x-consistent-hash exchange
    spreads keys over partition queues; with single active consumer each
    partition is read by one member at a time, in order, with failover."""
    conn = connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare("example.clicks", "x-consistent-hash", durable=True)
    parts = ["example.clicks.%d" % i for i in range(3)]
    for q in parts:
        ch.queue_declare(q, durable=True, arguments={"x-single-active-consumer": True})
        ch.queue_bind(q, "example.clicks", routing_key="1")  # weight 1
    for i in range(30):
        ch.basic_publish("example.clicks", "user-%d" % (i % 6), b"click %d" % i)
    counts = [ch.queue_declare(q, passive=True).method.message_count for q in parts]
    print("partition sizes:", counts)
    seen = {}
    members = []
    for name in ("member-a", "member-b"):
        c = connect().channel()

        def on(cc, m, p, body, name=name):
            seen.setdefault(m.routing_key, set()).add(name)
            cc.basic_ack(m.delivery_tag)
        for q in parts:
            c.basic_consume(q, on)
        members.append(c)
    deadline = time.monotonic() + 30
    while sum(len(v) for v in seen.values()) < 6 and time.monotonic() < deadline:
        for c in members:
            c.connection.process_data_events(time_limit=0.02)
    assert all(len(v) == 1 for v in seen.values()), "a key went to two members"
    print("each user's clicks went to one member:", sorted(
        (k, v.pop()) for k, v in seen.items()))
    for c in members:
        c.connection.close()
    for q in parts:
        ch.queue_delete(q)
    ch.exchange_delete("example.clicks")
    conn.close()


def work_queue_with_pending_entries():
    """Redis XREADGROUP / XACK / pending entries / XCLAIM: a classic queue
    with manual acks; what a consumer holds unacked is its pending list,
    and when it dies those messages go back to the others (redelivered)."""
    conn = connect()
    ch = conn.channel()
    ch.queue_declare("example.jobs", durable=True)
    for i in range(3):
        ch.basic_publish("", "example.jobs", b"job %d" % i)
    crashing = connect()
    cc = crashing.channel()
    cc.basic_qos(prefetch_count=3)
    held = []
    cc.basic_consume("example.jobs", lambda c, m, p, b: held.append(b))   # XREADGROUP
    while len(held) < 3:
        crashing.process_data_events(time_limit=0.05)
    q = ch.queue_declare("example.jobs", passive=True).method
    print("pending in the group:", len(held), "ready:", q.message_count)
    crashing.close()                                          # the consumer dies
    claimed = []
    for _ in range(3):                                        # XCLAIM, automatically
        m, p, body = ch.basic_get("example.jobs")
        while m is None:
            time.sleep(0.05)
            m, p, body = ch.basic_get("example.jobs")
        claimed.append((body, m.redelivered))
        ch.basic_ack(m.delivery_tag)                          # XACK
    print("taken over:", claimed)
    assert all(r for _, r in claimed)
    ch.queue_delete("example.jobs")
    conn.close()


if __name__ == "__main__":
    for example in (topic_and_offsets, committed_offsets, partitions_and_consumer_groups,
                    work_queue_with_pending_entries):
        print("==", example.__name__)
        example()
    print("all examples ran")
