#!/usr/bin/python3
"""Failed logins are rate-limited per source address (issue 14): after 20
failures in a row an address's new connections are closed as soon as they
are accepted (no handshake, no password hashing, no log line each), and it
regains one attempt a second.  Other addresses are not affected: the test
connects from 127.0.0.2 as well (the whole 127/8 is loopback on Linux).
"""

import time

from harness import (BrokerTestCase, ConnectionClosedByPeer, RawClient, main,
                     skip_if_external)

BURST = 20


class LoginThrottle(BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        skip_if_external("counts warrend's refusals")
        super().setUpClass()

    def attempt(self, password, source="127.0.0.1"):
        """'ok', 'refused' (403 at login) or 'dropped' (closed unserved)."""
        try:
            c = RawClient(self.broker.host, self.broker.port, timeout=10,
                          source=source)
        except OSError:
            return "dropped"
        try:
            c.handshake(user="guest", password=password)
            c.close()
            return "ok"
        except (ConnectionClosedByPeer, ConnectionError):
            return "dropped"
        except AssertionError as e:
            return "refused" if "ACCESS_REFUSED" in str(e) else "error: %s" % e
        finally:
            c.close()

    def test_failures_past_the_burst_are_dropped_unserved(self):
        start = time.monotonic()
        results = [self.attempt("wrong") for _ in range(BURST + 30)]
        elapsed = time.monotonic() - start
        self.assertEqual(results[:BURST], ["refused"] * BURST, results)
        # Past the burst, all are dropped but the one a second the
        # allowance regains (however slowly a busy machine ran them).
        served = results[BURST:].count("refused")
        self.assertEqual(served + results[BURST:].count("dropped"), 30, results)
        self.assertLessEqual(served, int(elapsed) + 1, (elapsed, results))
        self.assertGreater(results[BURST:].count("dropped"), 0, results)
        # Even the right password waits for the allowance (tried right
        # after a drop; a slow machine may let a second pass in between,
        # so a few tries) ...
        outcomes = []
        for _ in range(5):
            while self.attempt("wrong") != "dropped":
                pass
            outcomes.append(self.attempt("guest"))
            if outcomes[-1] == "dropped":
                break
        self.assertEqual(outcomes[-1], "dropped", outcomes)
        # ... while another address is served at once.
        self.assertEqual(self.attempt("guest", source="127.0.0.2"), "ok")
        self.assertEqual(self.attempt("wrong", source="127.0.0.2"), "refused")
        # The allowance comes back: one attempt a second.
        deadline = time.monotonic() + 30
        while self.attempt("guest") != "ok":
            self.assertLess(time.monotonic(), deadline, "address never let in again")
            time.sleep(0.2)
        # The log says so (a flood of these lines is cut by the log's rate
        # limit: 200, then 50 a second).
        self.assertIn("refused a connection from 127.0.0.1: too many failed "
                      "logins", self.broker.stderr())


if __name__ == "__main__":
    main()
