#!/usr/bin/python3
"""amqplib (Node.js) against warrend: the scenarios in node/amqplib_client.js
(round trip with properties and typed headers, confirm channel, topic
routing, prefetch, dead-lettering with x-death, a 404 channel error, a
server-sent basic.cancel, direct reply-to), each a test case. All also pass
against RabbitMQ 3.10.8 (WARREN_TEST_EXTERNAL).

amqplib is installed from the npm registry with `npm ci` (versions pinned
by node/package-lock.json) into the build tree the first time."""

import os
import shutil
import subprocess

from harness import (BrokerTestCase, add_scenario_tests, main,
                     run_client_scenario)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.environ.get("WARREN_SRCDIR", os.path.join(HERE, "..", "..")),
                   "tests", "integration", "node")
# npm ci installs into the build tree (make check sets WARREN_BUILDDIR), or
# beside the sources when a file is run by hand.
BUILD = os.path.join(os.environ.get("WARREN_BUILDDIR", os.path.join(HERE, "..", "..")),
                     "tests", "integration", "node")
SCENARIOS = ["roundTrip", "confirms", "topicRouting", "prefetch", "deadLetter",
             "channelError", "serverCancel", "directReplyTo"]


def node_modules():
    """A node_modules holding amqplib: the source tree's, or one made by
    `npm ci` in the build tree."""
    for base in (SRC, BUILD):
        if os.path.isdir(os.path.join(base, "node_modules", "amqplib")):
            return os.path.join(base, "node_modules")
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise AssertionError("node and npm are needed (scripts/bootstrap installs them)")
    dest = BUILD
    os.makedirs(dest, exist_ok=True)
    if os.path.realpath(dest) != os.path.realpath(SRC):   # not in-tree
        for f in ("package.json", "package-lock.json"):
            shutil.copyfile(os.path.join(SRC, f), os.path.join(dest, f))
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=dest,
                       capture_output=True, text=True, timeout=150)
    if p.returncode != 0:
        raise AssertionError("npm ci failed:\n%s%s" % (p.stdout, p.stderr))
    return os.path.join(dest, "node_modules")


class AmqplibTest(BrokerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.node_path = node_modules()
        super().setUpClass()

    def run_scenario(self, name):
        run_client_scenario(self, ["node", os.path.join(SRC, "amqplib_client.js"),
                                   str(self.broker.port), name], name,
                            env=dict(os.environ, NODE_PATH=self.node_path))


add_scenario_tests(AmqplibTest, SCENARIOS)


if __name__ == "__main__":
    main()
