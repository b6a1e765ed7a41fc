#!/usr/bin/python3
"""The README's runnable examples run against warrend: examples/*.py."""

import os
import subprocess

from harness import BrokerTestCase, main

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


class ExamplesTest(BrokerTestCase):

    def test_streams_and_partitions(self):
        p = subprocess.run(["/usr/bin/python3", os.path.join(EXAMPLES, "streams_and_partitions.py"),
                            "127.0.0.1", str(self.broker.port)],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("all examples ran", p.stdout)
        # the second session of the named consumer resumed after its acks
        self.assertIn("session 2 of consumer 'billing' read offsets [3", p.stdout)

    def test_retry_backoff(self):
        p = subprocess.run(["/usr/bin/python3", os.path.join(EXAMPLES, "retry_backoff.py"),
                            "127.0.0.1", str(self.broker.port)],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("all examples ran", p.stdout)
        # the flaky job came back after its backoff and then succeeded;
        # poison was parked as rejected, the crasher by its delivery limit
        self.assertIn("done: ['flaky']", p.stdout)
        self.assertIn("parked: [('crasher', 'delivery_limit'), "
                      "('poison', 'rejected')]", p.stdout)


if __name__ == "__main__":
    main()
