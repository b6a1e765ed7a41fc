#!/usr/bin/python3
"""The web console in headless Chromium (Debian's chromium, chromium-driver
and python3-selenium): log in, read a queue's depth after pika publishes,
purge it, trace a route, close a connection, watch the overview's chart
update, and check that a monitoring user can see but not change anything.
Each test saves a screenshot under the build directory's screenshots/."""

import base64
import json
import os
import shutil
import unittest
import urllib.error
import urllib.request

import pika

from harness import PikaTestCase, main, skip_if_external, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("WARREN_SRCDIR") or os.path.join(HERE, "..", "..")
BUILDDIR = os.environ.get("WARREN_BUILDDIR") or os.path.join(HERE, "..", "..")
SHOTS = os.path.join(BUILDDIR, "screenshots")

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import (NoSuchElementException,
                                            StaleElementReferenceException)
    from selenium.webdriver.support.ui import Select, WebDriverWait
    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

MISSING = None
if not HAVE_SELENIUM:
    MISSING = "python3-selenium is not installed (the setup script installs it)"
elif not (shutil.which("chromium") and shutil.which("chromedriver")):
    MISSING = "chromium or chromium-driver is not installed (the setup script installs them)"


@skip_if_external("starts warrend with the console's files")
@unittest.skipIf(MISSING, MISSING)
class ConsoleTest(PikaTestCase):

    config = {"management.console_dir": os.path.abspath(os.path.join(SRCDIR, "console"))}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        os.makedirs(SHOTS, exist_ok=True)
        opts = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
                  "--disable-dev-shm-usage", "--window-size=1280,900"):
            opts.add_argument(a)
        cls.driver = webdriver.Chrome(options=opts)
        cls.driver.set_page_load_timeout(60)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.ch = self.connect().channel()
        self.ch.confirm_delivery()
        self.addCleanup(self.screenshot)

    def screenshot(self):
        self.driver.save_screenshot(os.path.join(SHOTS, self._testMethodName + ".png"))

    def url(self, fragment=""):
        return "http://127.0.0.1:%d/%s" % (self.broker.mgmt_port, fragment)

    def api(self, method, path, body=None, user="guest", password="guest"):
        req = urllib.request.Request("http://127.0.0.1:%d/api%s" % (self.broker.mgmt_port, path),
                                     method=method, data=None if body is None else json.dumps(body).encode())
        req.add_header("Authorization", "Basic " + base64.b64encode(
            ("%s:%s" % (user, password)).encode()).decode())
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
        return json.loads(text) if text else None

    def wait(self, cond, what, timeout=30):
        """Until cond() is true.  The page redraws itself every few seconds,
        so an element found a moment ago may be gone: that is retried."""
        return WebDriverWait(self.driver, timeout, ignored_exceptions=(
            StaleElementReferenceException, NoSuchElementException)).until(
            lambda d: cond(), message=what)

    def login(self, user="guest", password="guest"):
        d = self.driver
        d.get(self.url())
        d.execute_script("sessionStorage.clear()")
        d.refresh()         # starts logged out
        self.wait(lambda: d.find_element(By.ID, "login-user").is_displayed(), "the login form")
        d.find_element(By.ID, "login-user").send_keys(user)
        d.find_element(By.ID, "login-password").send_keys(password)
        d.find_element(By.ID, "login-submit").click()

    def click(self, by, what):
        """Click the element when it is there (found and clicked at once:
        a redraw in between is retried)."""
        self.wait(lambda: self.driver.find_element(by, what).click() or True,
                  "%s to click" % what)

    def text(self, element_id):
        try:
            return self.driver.find_element(By.ID, element_id).text
        except Exception:
            return ""

    def open(self, fragment, ready_id):
        self.driver.get(self.url(fragment))
        self.driver.refresh()
        self.wait(lambda: self.text(ready_id) != "", "element #%s" % ready_id)

    def detail(self, label):
        cells = self.driver.find_elements(By.CSS_SELECTOR, 'td[data-field="%s"]' % label)
        return cells[0].text if cells else None

    # ---------------------------------------------------------------------------
    def test_login_and_queue_depth_then_purge(self):
        self.login()
        self.wait(lambda: "guest" in self.text("who"), "logged in")
        self.ch.queue_declare("console-orders")
        for i in range(7):
            self.ch.basic_publish("", "console-orders", b"order %d" % i)
        self.open("#/queue/%2F/console-orders", "queue-name")
        self.wait(lambda: self.detail("messages ready") == "7", "the depth of 7")
        # the ready messages are browsed, in order, without being taken
        cells = self.driver.find_elements(By.CSS_SELECTOR, "table:last-of-type tbody tr")
        self.assertEqual(len(cells), 7)
        self.click(By.ID, "purge")
        wait_until(lambda: self.api("GET", "/queues/%2F/console-orders")["messages_ready"] == 0,
                   what="the purge")
        self.wait(lambda: self.detail("messages ready") == "0", "the page to show 0")

    def test_wrong_password(self):
        self.login("guest", "not-the-password")
        self.wait(lambda: "wrong user or password" in self.text("login-error"), "the refusal")

    def test_trace_a_route(self):
        ch = self.ch
        ch.exchange_declare("console-x", "topic")
        ch.queue_declare("console-eu")
        ch.queue_bind("console-eu", "console-x", "order.eu.*")
        self.login()
        self.wait(lambda: "guest" in self.text("who"), "logged in")
        self.open("#/exchange/%2F/console-x", "trace-form")
        self.driver.find_element(By.ID, "trace-key").send_keys("order.eu.created")
        self.click(By.ID, "trace-submit")
        self.wait(lambda: "reaches: console-eu" in self.text("trace-queues"), "the traced route")
        self.driver.find_element(By.ID, "trace-key").clear()
        self.driver.find_element(By.ID, "trace-key").send_keys("order.us.created")
        self.click(By.ID, "trace-submit")
        self.wait(lambda: "reaches no queue" in self.text("trace-queues"), "an unroutable key")
        self.assertIn("does not match", self.text("trace-result"))

    def test_close_a_connection(self):
        names = lambda: {c["name"] for c in self.api("GET", "/connections")}
        before = names()
        victim = pika.BlockingConnection(self.broker.params())
        new = wait_until(lambda: names() - before, what="the new connection")
        victim_name = new.pop()
        self.login()
        self.wait(lambda: "guest" in self.text("who"), "logged in")
        self.driver.get(self.url("#/connections"))
        self.driver.refresh()
        self.click(By.CSS_SELECTOR, 'button.close-connection[data-name="%s"]' % victim_name)
        wait_until(lambda: victim_name not in names(), what="the close")
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as cm:
            wait_until(lambda: victim.process_data_events(0.05) or False, timeout=10)
        self.assertEqual(cm.exception.reply_code, 320)

    def test_overview_chart_updates(self):
        self.ch.queue_declare("console-rates")
        self.login()
        self.wait(lambda: self.text("total-queues") != "", "the overview")
        for i in range(50):
            self.ch.basic_publish("", "console-rates", b"x")

        def points():
            lines = self.driver.find_elements(By.CSS_SELECTOR, "svg.chart polyline")
            return lines and len(lines[0].get_attribute("points").split()) >= 3
        # samples every 5 s: three of them arrive within the bound
        self.wait(points, "a chart of at least three samples", timeout=60)
        self.wait(lambda: int(self.text("total-ready") or 0) >= 50, "the ready total")

    def test_monitoring_user_sees_but_cannot_change(self):
        self.api("PUT", "/users/console-watch", {"password": "watch", "tags": "monitoring"})
        self.ch.queue_declare("console-watched")
        self.ch.basic_publish("", "console-watched", b"x")
        self.login("console-watch", "watch")
        self.wait(lambda: "(read only)" in self.text("who"), "the read-only console")
        self.open("#/queue/%2F/console-watched", "queue-name")
        self.wait(lambda: self.detail("messages ready") == "1", "the depth")
        for element_id in ("purge", "delete-queue", "publish"):
            self.wait(lambda: not self.driver.find_element(By.ID, element_id).is_displayed(),
                      "#%s hidden" % element_id)
        self.driver.get(self.url("#/connections"))
        self.driver.refresh()

        def close_buttons_hidden():
            buttons = self.driver.find_elements(By.CSS_SELECTOR, "button.close-connection")
            return buttons and not any(b.is_displayed() for b in buttons)
        self.wait(close_buttons_hidden, "the connections' Close buttons, hidden")
        # and the API refuses what a hidden button would have asked
        with self.assertRaises(urllib.error.HTTPError) as cm:
            self.api("DELETE", "/queues/%2F/console-watched/contents",
                     user="console-watch", password="watch")
        self.assertEqual(cm.exception.code, 401)
        self.assertEqual(self.api("GET", "/queues/%2F/console-watched")["messages_ready"], 1)

    def test_set_permissions(self):
        self.api("PUT", "/users/console-app", {"password": "pw", "tags": ""})
        self.api("PUT", "/vhosts/console-vh")
        self.login()
        self.wait(lambda: "guest" in self.text("who"), "logged in")
        self.open("#/admin", "perm-form")
        d = self.driver
        Select(d.find_element(By.ID, "perm-user")).select_by_value("console-app")
        Select(d.find_element(By.ID, "perm-vhost")).select_by_value("console-vh")
        d.find_element(By.ID, "perm-write").clear()
        d.find_element(By.ID, "perm-write").send_keys("^app\\.")
        self.click(By.ID, "perm-submit")
        perms = wait_until(lambda: [p for p in self.api("GET", "/permissions")
                                    if p["user"] == "console-app"], what="the permission")
        self.assertEqual((perms[0]["vhost"], perms[0]["configure"], perms[0]["write"],
                          perms[0]["read"]), ("console-vh", ".*", "^app\\.", ".*"))

    def test_static_files(self):
        with urllib.request.urlopen(self.url(), timeout=60) as r:
            self.assertEqual(r.headers["Content-Type"], "text/html; charset=utf-8")
            self.assertIn("default-src 'self'", r.headers["Content-Security-Policy"])
        for path in ("console.js", "console.css"):
            with urllib.request.urlopen(self.url(path), timeout=60) as r:
                self.assertEqual(r.status, 200)
        for path in ("../etc/passwd", "secret.txt", "console.js.map"):
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(self.url(path), timeout=60)
            self.assertEqual(cm.exception.code, 404)


if __name__ == "__main__":
    main()
