#!/usr/bin/python3
"""The README's runnable examples run against warrend: examples/*.py."""

import os
import subprocess

from harness import BrokerTestCase, main

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


class ExamplesTest(BrokerTestCase):

    def run_example(self, name):
        """Run examples/NAME against the test broker; its stdout."""
        p = subprocess.run(["/usr/bin/python3", os.path.join(EXAMPLES, name),
                            "127.0.0.1", str(self.broker.port)],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("all examples ran", p.stdout)
        return p.stdout

    def test_streams_and_partitions(self):
        out = self.run_example("streams_and_partitions.py")
        # the second session of the named consumer resumed after its acks
        self.assertIn("session 2 of consumer 'billing' read offsets [3", out)

    def test_retry_backoff(self):
        out = self.run_example("retry_backoff.py")
        # the flaky job came back after its backoff and then succeeded;
        # poison was parked as rejected, the crasher by its delivery limit
        self.assertIn("done: ['flaky']", out)
        self.assertIn("parked: [('crasher', 'delivery_limit'), "
                      "('poison', 'rejected')]", out)

    def test_celery_retry(self):
        out = self.run_example("celery_retry.py")
        # two retries through the delayed exchange (the example checks that
        # the broker held them for the backoff), two tasks parked
        self.assertIn("flaky: done after 2 retries", out)
        self.assertIn("parked: [('crasher', 'delivery_limit'), "
                      "('poison', 'rejected')]", out)


if __name__ == "__main__":
    main()
