"""Celery application for test_celery.py.

Configured from the environment so that the worker subprocess and the test
process agree:
  WARREN_CELERY_BROKER  broker URL, e.g. amqp://guest:guest@127.0.0.1:5672//
  WARREN_CELERY_QUEUE   the task queue name (unique per test run)
"""

import os

from celery import Celery

app = Celery("warren_celery_test")
app.conf.update(
    broker_url=os.environ.get("WARREN_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//"),
    result_backend="rpc://",
    task_acks_late=True,
    task_default_queue=os.environ.get("WARREN_CELERY_QUEUE", "warren-celery-test"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=4,
    broker_connection_timeout=5,
    broker_heartbeat=0,
    worker_send_task_events=False,
)


@app.task
def add(x, y):
    return x + y

