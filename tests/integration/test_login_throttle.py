#!/usr/bin/python3
"""Failed logins are rate-limited per source address (issue 14): after 20
failures in a row an address's new connections are closed as soon as they
are accepted (no handshake, no password hashing, no log line each), and it
regains one attempt a second.  Other addresses are not affected: the test
connects from 127.0.0.2 as well (the whole 127/8 is loopback on Linux).
The management API's failed logins draw on the same per-address budget:
past it, its requests are answered 429 with Retry-After, whatever their
password, and AMQP logins from that address are dropped too.
"""

import base64
import http.client
import json
import time

from harness import (BrokerTestCase, ConnectionClosedByPeer, RawClient, main,
                     require_own_broker)

BURST = 20


class LoginThrottle(BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        require_own_broker("counts warrend's refusals")
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

    def api_whoami(self, password, source):
        """(status, parsed reply, Retry-After) of GET /api/whoami."""
        c = http.client.HTTPConnection(self.broker.host, self.broker.mgmt_port,
                                       timeout=30, source_address=(source, 0))
        token = base64.b64encode(("guest:" + password).encode()).decode()
        try:
            c.request("GET", "/api/whoami",
                      headers={"Authorization": "Basic " + token})
            r = c.getresponse()
            body = r.read()
            return r.status, json.loads(body), r.getheader("Retry-After")
        finally:
            c.close()

    def test_management_api_failures_share_the_budget(self):
        src = "127.0.0.3"
        self.assertEqual(self.api_whoami("guest", src)[0], 200)
        statuses = [self.api_whoami("wrong", src)[0] for _ in range(BURST)]
        self.assertEqual(statuses, [401] * BURST)
        # Out of allowance (a slow machine may have regained one attempt
        # a second; keep failing until a request is held back).
        deadline = time.monotonic() + 60
        while True:
            status, reply, retry = self.api_whoami("wrong", src)
            if status == 429:
                break
            self.assertEqual(status, 401)
            self.assertLess(time.monotonic(), deadline, "never throttled")
        self.assertEqual((reply["error"], retry), ("too_many_requests", "1"))
        # Right after a 429, the right password is held back too, over
        # HTTP and over AMQP (a slow machine may let a second pass in
        # between, so a few tries) ...
        for ask in (lambda: self.api_whoami("guest", src)[0],
                    lambda: self.attempt("guest", source=src)):
            outcomes = []
            for _ in range(5):
                while self.api_whoami("wrong", src)[0] != 429:
                    pass
                outcomes.append(ask())
                if outcomes[-1] in (429, "dropped"):
                    break
            self.assertIn(outcomes[-1], (429, "dropped"), outcomes)
        # ... while another address is served.
        self.assertEqual(self.api_whoami("guest", "127.0.0.4")[0], 200)
        self.assertIn("management API: login failed from " + src,
                      self.broker.stderr())
        # The allowance comes back.
        deadline = time.monotonic() + 30
        while self.api_whoami("guest", src)[0] != 200:
            self.assertLess(time.monotonic(), deadline, "never let in again")
            time.sleep(0.2)


if __name__ == "__main__":
    main()
