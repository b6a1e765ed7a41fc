#!/usr/bin/python3
"""What an operator installs: the man pages (clean under `mandoc -T lint`,
readable with `man -l`), `make install` into a scratch root giving a
working broker, and the Debian package built by `dpkg-buildpackage`
(contents, conffiles, maintainer scripts, lintian).  warrend only:
skipped when WARREN_TEST_EXTERNAL is set."""

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

import pika

from harness import (
    HOST, find_warrend, free_ports, main, pika_params, skip_if_external, wait_until,
)

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("WARREN_SRCDIR") or os.path.join(HERE, "..", "..")
BUILDDIR = os.environ.get("WARREN_BUILDDIR") or os.path.dirname(
    os.path.dirname(find_warrend()))
MAN_PAGES = sorted(glob.glob(os.path.join(SRCDIR, "man", "*.[0-9]")))
# Our pages name each other; mandoc looks them up among the installed
# manuals, where they are not before an install: that note alone is
# expected (and the database notice mandoc prints on some systems).
OWN_PAGES = {"warrend 8", "warrenctl 1", "warren.conf 5", "warren-bench 1"}


def clean_env():
    """The environment without make's own variables (a make run from a
    test inside `make check` must not join its job server)."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(k, None)
    return env


class ManPagesTest(unittest.TestCase):

    def test_every_page_is_there(self):
        names = {os.path.basename(p) for p in MAN_PAGES}
        self.assertEqual(names, {"warrend.8", "warren.conf.5", "warrenctl.1",
                                 "warren-bench.1"})

    @unittest.skipUnless(shutil.which("mandoc"), "mandoc is not installed "
                         "(the setup script installs it)")
    def test_mandoc_lint(self):
        for page in MAN_PAGES:
            p = subprocess.run(["mandoc", "-T", "lint", page], capture_output=True,
                               text=True, timeout=60)
            problems = []
            for line in (p.stdout + p.stderr).splitlines():
                m = re.search(r"referenced manual not found: Xr (\S+ \d)", line)
                if (m and m.group(1) in OWN_PAGES) or "mandoc.db" in line:
                    continue
                problems.append(line)
            self.assertEqual(problems, [], page)

    @unittest.skipUnless(shutil.which("man"), "man is not installed "
                         "(the setup script installs man-db)")
    def test_readable_with_man(self):
        for page in MAN_PAGES:
            env = clean_env()
            env.update(MANWIDTH="80", MAN_KEEP_FORMATTING="0")
            p = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                               timeout=60, env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            text = re.sub(".\b", "", p.stdout)      # overstrike bold
            self.assertIn("NAME", text)
            self.assertIn("SEE ALSO", text)
            self.assertNotIn("warning", p.stderr.lower(), page)


@skip_if_external("installs and runs this build")
class InstallTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="warren-install-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_make_install_gives_a_working_broker(self):
        root = os.path.join(self.tmp, "root")
        p = subprocess.run(["make", "-C", BUILDDIR, "install", "DESTDIR=" + root],
                           capture_output=True, text=True, timeout=600, env=clean_env())
        self.assertEqual(p.returncode, 0, p.stdout[-4000:] + p.stderr[-4000:])
        # the prefix make used, as installed under DESTDIR
        warrend = glob.glob(os.path.join(root, "**", "sbin", "warrend"), recursive=True)
        self.assertEqual(len(warrend), 1, "installed warrend: %r" % warrend)
        prefix = os.path.dirname(os.path.dirname(warrend[0]))
        for rel in ("bin/warrenctl", "bin/warren-bench", "share/man/man8/warrend.8",
                    "share/man/man5/warren.conf.5", "share/man/man1/warrenctl.1",
                    "share/man/man1/warren-bench.1", "share/warren/console/index.html",
                    "share/warren/console/console.js", "share/warren/console/console.css"):
            self.assertTrue(os.path.exists(os.path.join(prefix, rel)), rel)
        conf = glob.glob(os.path.join(root, "**", "warren", "warren.conf"), recursive=True)
        self.assertEqual(len(conf), 1, "installed warren.conf: %r" % conf)
        # the installed default config is valid as shipped
        p = subprocess.run([warrend[0], "-n", "-c", conf[0]], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout), (0, "configuration OK\n"), p.stderr)
        # and the installed broker serves pika
        port, = free_ports(1)
        mine = os.path.join(self.tmp, "test.conf")
        with open(mine, "w") as f:
            f.write("listeners.tcp.default = %s:%d\nwarren.data_dir = %s\n"
                    "management.tcp.port = 0\nprometheus.tcp.port = 0\n"
                    % (HOST, port, os.path.join(self.tmp, "data")))
        proc = subprocess.Popen([warrend[0], "-c", mine], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        conn = wait_until(lambda: self.connect(port), timeout=30,
                          what="the installed warrend listening")
        ch = conn.channel()
        ch.queue_declare("installed")
        ch.basic_publish("", "installed", b"it works")
        self.assertEqual(ch.basic_get("installed", auto_ack=True)[2], b"it works")
        conn.close()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, err)

    def connect(self, port):
        try:
            return pika.BlockingConnection(pika_params(port))
        except pika.exceptions.AMQPConnectionError:
            return None


def source_files(src):
    """The source tree's files: git's list (tracked, and new ones not
    ignored) in a checkout, else everything but build output."""
    if os.path.isdir(os.path.join(src, ".git")) and shutil.which("git"):
        p = subprocess.run(["git", "-C", src, "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], capture_output=True, timeout=120)
        if p.returncode == 0:
            return [f for f in p.stdout.decode().split("\0")
                    if f and os.path.lexists(os.path.join(src, f))]
    out = []
    skip = re.compile(r"^(build[^/]*|autom4te\.cache|\.git)(/|$)")
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        if rel != "." and skip.match(rel):
            dirnames[:] = []
            continue
        for name in filenames:
            out.append(os.path.normpath(os.path.join(rel, name)))
    return out


@skip_if_external("builds this tree")
@unittest.skipUnless(shutil.which("dpkg-buildpackage") and shutil.which("dh"),
                     "dpkg-buildpackage or debhelper is not installed "
                     "(the setup script installs them)")
class DebianPackageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="warren-deb-")
        tree = os.path.join(cls.tmp, "warren")
        for rel in source_files(SRCDIR):
            dst = os.path.join(tree, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(os.path.join(SRCDIR, rel), dst, follow_symlinks=False)
        p = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree,
                           capture_output=True, text=True, timeout=1500, env=clean_env())
        cls.build_log = p.stdout[-6000:] + p.stderr[-6000:]
        debs = glob.glob(os.path.join(cls.tmp, "warren_*.deb"))
        cls.deb = debs[0] if p.returncode == 0 and len(debs) == 1 else None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def setUp(self):
        self.assertIsNotNone(self.deb, "dpkg-buildpackage failed:\n" + self.build_log)

    def dpkg_deb(self, *args):
        p = subprocess.run(["dpkg-deb"] + list(args), capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_contents(self):
        files = {line.split()[-1].lstrip(".") for line in
                 self.dpkg_deb("-c", self.deb).splitlines()}
        for path in ("/usr/sbin/warrend", "/usr/bin/warrenctl", "/usr/bin/warren-bench",
                     "/usr/share/man/man8/warrend.8.gz",
                     "/usr/share/man/man5/warren.conf.5.gz",
                     "/usr/share/man/man1/warrenctl.1.gz",
                     "/usr/share/man/man1/warren-bench.1.gz",
                     "/etc/warren/warren.conf", "/lib/systemd/system/warren.service",
                     "/etc/logrotate.d/warren", "/var/lib/warren/", "/var/log/warren/",
                     "/usr/share/warren/console/index.html",
                     "/usr/share/warren/console/console.js",
                     "/usr/share/doc/warren/copyright"):
            self.assertIn(path, files)
        fields = self.dpkg_deb("-f", self.deb, "Package", "Depends")
        self.assertIn("Package: warren", fields)
        for lib in ("libevent", "libssl3", "libjansson", "adduser"):
            self.assertIn(lib, fields)

    def test_conffile_and_maintainer_scripts(self):
        ctl = os.path.join(self.tmp, "control")
        self.dpkg_deb("-e", self.deb, ctl)
        with open(os.path.join(ctl, "conffiles")) as f:
            self.assertIn("/etc/warren/warren.conf", f.read().split())
        with open(os.path.join(ctl, "postinst")) as f:
            postinst = f.read()
        self.assertIn("adduser --system", postinst)      # the warren user
        self.assertIn("deb-systemd-helper", postinst)    # the unit enabled
        with open(os.path.join(ctl, "postrm")) as f:
            postrm = f.read()
        self.assertIn("rm -rf /var/lib/warren /var/log/warren", postrm)

    def test_packaged_config_and_unit(self):
        root = os.path.join(self.tmp, "root")
        self.dpkg_deb("-x", self.deb, root)
        conf = os.path.join(root, "etc", "warren", "warren.conf")
        with open(conf) as f:
            text = f.read()
        self.assertIn("warren.data_dir = /var/lib/warren\n", text)
        self.assertIn("log.file = /var/log/warren/warren.log\n", text)
        p = subprocess.run([os.path.join(root, "usr", "sbin", "warrend"), "-n", "-c", conf],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout), (0, "configuration OK\n"), p.stderr)
        with open(os.path.join(root, "lib", "systemd", "system", "warren.service")) as f:
            unit = f.read()
        for line in ("Type=notify", "User=warren", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "LimitNOFILE=65536",
                     "ExecStart=/usr/sbin/warrend -c /etc/warren/warren.conf"):
            self.assertIn(line + "\n", unit)

    @unittest.skipUnless(shutil.which("lintian"), "lintian is not installed "
                         "(the setup script installs it)")
    def test_lintian_finds_no_errors(self):
        p = subprocess.run(["lintian", "--allow-root", self.deb], capture_output=True,
                           text=True, timeout=900)
        errors = [l for l in p.stdout.splitlines() if l.startswith("E:")]
        self.assertEqual(errors, [], p.stdout + p.stderr)


if __name__ == "__main__":
    main()
