#!/usr/bin/env python3
"""The article's task.py for Python 3 and pika 1.x, as its text intends it.

Sends the command-line words (or "Hello World!") as one persistent message to
the durable queue task_queue. fairq workers consume it with
`fairq worker -Q task_queue --raw-handler fairq.demo:dots`.
"""

import os
import sys

import pika

connection = pika.BlockingConnection(pika.URLParameters(os.environ.get("FAIRQ_BROKER_URL", "amqp://guest:guest@localhost:5672/")))
channel = connection.channel()

channel.queue_declare(queue="task_queue", durable=True)

message = " ".join(sys.argv[1:]) or "Hello World!"
channel.basic_publish(
    exchange="",
    routing_key="task_queue",
    body=message,
    properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
)
print(f" [x] Sent {message!r}")
connection.close()
