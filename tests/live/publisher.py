"""A publisher of change events in a process of its own (``python -m tests.live.publisher``), for floods.

It reads lines on stdin: ``<collection> <action> <key>,<key>,...`` publishes that event (as a host's
``QuerySet.update`` + ``publish()`` would), then answers ``ok`` on stdout. Writing the rows is not needed for an
update: subscribers re-read them. One process serves a whole test, so Django starts once.
"""

from __future__ import annotations

import sys

import django


def main() -> None:
    django.setup()
    from likha_realtime.events import publish

    for line in sys.stdin:
        collection, action, keys = line.split()
        publish(collection, action, [int(key) for key in keys.split(",")])
        print("ok", flush=True)


if __name__ == "__main__":
    main()
