#!/usr/bin/python3
"""Retry with exponential backoff, then park, for Celery tasks: the same
recipe as retry_backoff.py, with Celery doing the publishing.

    celery-jobs    the task queue; x-delivery-limit 3 parks a task whose
                   worker keeps dying on it (or requeues it); its
                   dead-letter exchange is "" with key celery-parked
    celery-retry   an x-delayed-message exchange bound to celery-jobs:
                   Task.retry() sends the task there with an x-delay
                   header, so Warren holds it (persistently) until it is
                   due; no worker holds an ETA task in its memory
    celery-parked  where tasks go to rest

Celery's own retry(countdown=N) keeps the task in a worker's memory until
it is due; here the broker keeps it, so a worker restart loses nothing.
A task that can never work rejects itself (Reject(requeue=False)) and
dead-lettering parks it.

Usage: celery_retry.py [HOST [PORT]]   (a running warrend; 5672)
It starts one worker (a subprocess of this file), sends three tasks and
prints what happened to them.
"""

import os
import subprocess
import sys
import time

import pika
from celery import Celery
from celery.exceptions import Reject
from kombu import Exchange, Queue, binding

BASE_MS = 200
HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 5672

jobs_exchange = Exchange("celery-jobs", type="direct", durable=True)
retry_exchange = Exchange("celery-retry", type="x-delayed-message",
                          durable=True,
                          arguments={"x-delayed-type": "direct"})
jobs = Queue("celery-jobs", durable=True,
             bindings=[binding(jobs_exchange, routing_key="celery-jobs"),
                       binding(retry_exchange, routing_key="celery-jobs")],
             queue_arguments={"x-delivery-limit": 3,
                              "x-dead-letter-exchange": "",
                              "x-dead-letter-routing-key": "celery-parked"})

app = Celery("celery_retry",
             broker="amqp://guest:guest@%s:%d//" % (HOST, PORT),
             backend="rpc://")
app.conf.update(
    task_queues=[jobs],
    task_default_queue="celery-jobs",
    task_default_exchange="celery-jobs",
    task_default_routing_key="celery-jobs",
    task_acks_late=True,              # a worker that dies returns the task
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_heartbeat=0,
)


def retry_later(task, exc):
    """Send the task again through celery-retry, due in BASE_MS * 2^n."""
    delay = BASE_MS * 2 ** task.request.retries
    raise task.retry(exc=exc, countdown=0, max_retries=3,
                     exchange=retry_exchange, routing_key="celery-jobs",
                     headers={"x-delay": delay})


@app.task(bind=True)
def flaky(self, started):
    """Fails twice (a timeout, say), then works."""
    if self.request.retries < 2:
        retry_later(self, RuntimeError("upstream timed out"))
    return {"retries": self.request.retries,
            "seconds": round(time.time() - started, 2)}


@app.task(bind=True)
def poison(self):
    """Can never work: parked at once, as rejected."""
    raise Reject("malformed input", requeue=False)


@app.task(bind=True)
def crasher(self):
    """Its worker dies on it every time (here: hands it back): the
    delivery limit parks it after 3 returns."""
    raise Reject("worker lost", requeue=True)


def parked(ch):
    out = []
    while True:
        m, props, body = ch.basic_get("celery-parked", auto_ack=True)
        if m is None:
            return out
        task = props.headers.get("task")
        out.append((task.rsplit(".", 1)[-1],
                    props.headers["x-death"][0]["reason"]))


def main():
    params = pika.ConnectionParameters(HOST, PORT)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare("celery-parked", durable=True)
    with app.connection_for_write() as c:
        jobs.bind(c).declare()        # the queue, both exchanges, bindings
    ch.queue_purge("celery-jobs")
    ch.queue_purge("celery-parked")

    worker = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), HOST, str(PORT),
         "--worker"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        result = flaky.delay(time.time())
        poison.delay()
        crasher.delay()
        outcome = result.get(timeout=60)
        deadline = time.monotonic() + 60
        rest = []
        while len(rest) < 2 and time.monotonic() < deadline:
            rest += parked(ch)
            time.sleep(0.05)
    finally:
        worker.terminate()
        log, _ = worker.communicate(timeout=60)
    print("flaky: done after %d retries, %.2f s" % (outcome["retries"],
                                                   outcome["seconds"]))
    print("parked:", sorted(rest))
    conn.close()
    # Two backoffs (BASE_MS, then 2 * BASE_MS) were waited by the broker.
    ok = (outcome["retries"] == 2 and outcome["seconds"] >= 3 * BASE_MS / 1000
          and sorted(rest) == [("crasher", "delivery_limit"),
                               ("poison", "rejected")])
    if not ok:
        sys.exit("the recipe did not behave as described; worker log:\n"
                 + log)
    print("all examples ran")


if __name__ == "__main__":
    if sys.argv[-1] == "--worker":
        app.worker_main(["worker", "--pool=solo", "--loglevel=WARNING",
                         "--without-heartbeat", "--without-gossip",
                         "--without-mingle"])
    else:
        main()
