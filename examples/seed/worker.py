#!/usr/bin/env python3
"""The article's worker.py for Python 3 and pika 1.x, as its text intends it.

Consumes task_queue with prefetch_count=1 (fair dispatch) and manual acks,
sleeping one second per '.' in the body ($FAIRQ_DOT_SECONDS overrides the second,
so tests and demos need not wait). `fairq send --raw -Q task_queue ...` feeds it.
"""

import os
import time

import pika

SECONDS_PER_DOT = float(os.environ.get("FAIRQ_DOT_SECONDS", "1.0"))

connection = pika.BlockingConnection(pika.URLParameters(os.environ.get("FAIRQ_BROKER_URL", "amqp://guest:guest@localhost:5672/")))
channel = connection.channel()

channel.queue_declare(queue="task_queue", durable=True)
print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)


def callback(ch, method, properties, body):
    print(f" [x] Received {body.decode()!r}", flush=True)
    time.sleep(body.count(b".") * SECONDS_PER_DOT)
    print(" [x] Done", flush=True)
    ch.basic_ack(delivery_tag=method.delivery_tag)


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue="task_queue", on_message_callback=callback)

try:
    channel.start_consuming()
except KeyboardInterrupt:
    connection.close()
