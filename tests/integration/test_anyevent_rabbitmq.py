#!/usr/bin/python3
"""AnyEvent::RabbitMQ (Perl, on Net::AMQP) against warrend: the scenarios in
perl/anyevent_client.pl (round trip with confirms and manual acks, reject
with requeue, a 404 channel error, a mandatory return), each a test case.

The client opens with the AMQP 0-9 protocol header, which RabbitMQ answers
in 0-9-1; warrend refused it until it did the same.  All scenarios also pass
against RabbitMQ 3.10.8 (WARREN_TEST_EXTERNAL).  Needs Debian's
libanyevent-rabbitmq-perl (scripts/bootstrap installs it)."""

import os
import shutil
import subprocess

from harness import BrokerTestCase, add_scenario_tests, main, run_client_scenario

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(os.environ.get("WARREN_SRCDIR", os.path.join(HERE, "..", "..")),
                      "tests", "integration", "perl", "anyevent_client.pl")
SCENARIOS = ["roundTrip", "rejectRequeue", "channelError", "mandatoryReturn"]


class AnyEventRabbitMQTest(BrokerTestCase):

    @classmethod
    def setUpClass(cls):
        perl = shutil.which("perl")
        if perl is None or subprocess.run(
                [perl, "-MAnyEvent::RabbitMQ", "-e", "1"],
                capture_output=True).returncode != 0:
            raise AssertionError("perl with AnyEvent::RabbitMQ is needed "
                                 "(libanyevent-rabbitmq-perl; scripts/bootstrap "
                                 "installs it)")
        cls.perl = perl
        super().setUpClass()

    def run_scenario(self, name):
        run_client_scenario(self, [self.perl, CLIENT, str(self.broker.port), name], name)


add_scenario_tests(AnyEventRabbitMQTest, SCENARIOS)


if __name__ == "__main__":
    main()
