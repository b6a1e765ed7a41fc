#!/usr/bin/python3
"""amqp091-go (RabbitMQ's Go client) against warrend: the scenarios in
go/amqp091_client.go (round trip with typed headers, publisher confirms in
order, a mandatory return, a headers exchange, Qos with nack-requeue, a 404
channel error, transactions), each a test case. All also pass against
RabbitMQ 3.10.8 (WARREN_TEST_EXTERNAL).

The client is built once per run with Debian's golang-go and
golang-github-rabbitmq-amqp091-go-dev, in GOPATH mode (no network)."""

import os
import shutil
import subprocess
import tempfile

from harness import (BrokerTestCase, add_scenario_tests, main,
                     run_client_scenario)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.environ.get("WARREN_SRCDIR", os.path.join(HERE, "..", "..")),
                   "tests", "integration", "go", "amqp091_client.go")
GOPATH = "/usr/share/gocode"
SCENARIOS = ["roundTrip", "confirms", "mandatoryReturn", "headersExchange",
             "qosAndRequeue", "channelError", "transactions"]


class Amqp091GoTest(BrokerTestCase):

    @classmethod
    def setUpClass(cls):
        if shutil.which("go") is None or not os.path.isdir(
                os.path.join(GOPATH, "src", "github.com", "rabbitmq", "amqp091-go")):
            raise AssertionError("golang-go and golang-github-rabbitmq-amqp091-go-dev "
                                 "are needed (scripts/bootstrap installs them)")
        cls.tmp = tempfile.mkdtemp(prefix="warren-go-")
        cls.client = os.path.join(cls.tmp, "amqp091_client")
        env = dict(os.environ, GOPATH=GOPATH, GO111MODULE="off", GOFLAGS="",
                   GOCACHE=os.path.join(cls.tmp, "cache"))
        p = subprocess.run(["go", "build", "-o", cls.client, SRC], env=env,
                           capture_output=True, text=True, timeout=150)
        if p.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError("go build failed:\n%s%s" % (p.stdout, p.stderr))
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_scenario(self, name):
        run_client_scenario(self, [self.client, str(self.broker.port), name], name)


add_scenario_tests(Amqp091GoTest, SCENARIOS)


if __name__ == "__main__":
    main()
