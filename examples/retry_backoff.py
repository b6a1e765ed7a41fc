#!/usr/bin/python3
"""Retry with exponential backoff, then park: Warren's delayed messages,
delivery limits and dead-lettering, with no chain of TTL queues and no
plugin.

    jobs      a durable queue; x-delivery-limit 3 parks a message whose
              consumer keeps crashing (or timing out) on it; its
              dead-letter exchange is "" with routing key "parked"
    retry     an x-delayed-message exchange (x-delayed-type direct) bound
              to jobs: a job published here with x-delay waits that long
    parked    where jobs go to rest: inspect them, fix, publish again

A worker that fails a job republishes it to `retry` with x-delay =
BASE_MS * 2^attempt and acks the original (publisher confirms first, so
the job cannot be lost in between); after MAX_ATTEMPTS it rejects it
instead, and dead-lettering parks it.

Usage: retry_backoff.py [HOST [PORT]]   (a running warrend; 5672)
"""

import sys
import time

import pika

BASE_MS = 100
MAX_ATTEMPTS = 3


def declare(ch):
    ch.queue_declare("parked", durable=True)
    ch.queue_declare("jobs", durable=True, arguments={
        "x-delivery-limit": 3,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "parked"})
    ch.exchange_declare("retry", "x-delayed-message", durable=True,
                        arguments={"x-delayed-type": "direct"})
    ch.queue_bind("jobs", "retry", "jobs")


def retry_later(ch, method, props, body):
    """Fail this delivery: retry it later, or park it after the last try."""
    headers = dict(props.headers or {})
    attempt = headers.get("x-attempt", 0)
    if attempt + 1 >= MAX_ATTEMPTS:
        ch.basic_reject(method.delivery_tag, requeue=False)   # -> parked
        return
    headers["x-attempt"] = attempt + 1
    headers["x-delay"] = BASE_MS * 2 ** attempt
    ch.basic_publish("retry", "jobs", body, pika.BasicProperties(
        headers=headers, message_id=props.message_id, delivery_mode=2))
    ch.basic_ack(method.delivery_tag)


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 5672
    params = pika.ConnectionParameters(host, port)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.confirm_delivery()
    declare(ch)
    ch.queue_purge("jobs")
    ch.queue_purge("parked")

    # flaky: fails twice, then works; poison: always fails; crasher: its
    # worker dies before acking, every time.
    for job in ("flaky", "poison", "crasher"):
        ch.basic_publish("", "jobs", job.encode(), pika.BasicProperties(
            message_id=job, delivery_mode=2))

    started = time.monotonic()
    log = []
    failures = {"flaky": 0}
    done = set()

    def work(c, method, props, body):
        job = body.decode()
        attempt = (props.headers or {}).get("x-attempt", 0)
        log.append((round(time.monotonic() - started, 2), job, attempt))
        if job == "crasher":
            # The worker dies holding it: its connection goes, the job
            # comes back with x-delivery-count one higher.
            c.connection.close()
            return
        if job == "flaky" and failures["flaky"] < 2:
            failures["flaky"] += 1
            retry_later(c, method, props, body)
            return
        if job == "poison":
            retry_later(c, method, props, body)
            return
        c.basic_ack(method.delivery_tag)
        done.add(job)

    def parked_count():
        return ch.queue_declare("parked", durable=True,
                                passive=True).method.message_count

    deadline = time.monotonic() + 30
    while (("flaky" not in done or parked_count() < 2)
           and time.monotonic() < deadline):
        worker = pika.BlockingConnection(params)
        wch = worker.channel()
        wch.confirm_delivery()
        wch.basic_qos(prefetch_count=1)
        wch.basic_consume("jobs", work)
        try:
            while worker.is_open and time.monotonic() < deadline:
                worker.process_data_events(0.05)
                if "flaky" in done and parked_count() >= 2:
                    break
        except pika.exceptions.ConnectionWrongStateError:
            pass
        if worker.is_open:
            worker.close()

    for t, job, attempt in log:
        print("%5.2f s  %-8s attempt %d" % (t, job, attempt))
    parked = []
    while True:
        m, props, body = ch.basic_get("parked", auto_ack=True)
        if m is None:
            break
        parked.append((body.decode(), props.headers["x-death"][0]["reason"]))
    print("done:", sorted(done))
    print("parked:", sorted(parked))
    ok = (done == {"flaky"} and
          sorted(parked) == [("crasher", "delivery_limit"),
                             ("poison", "rejected")])
    conn.close()
    if not ok:
        sys.exit("the recipe did not behave as described")
    print("all examples ran")


if __name__ == "__main__":
    main()
