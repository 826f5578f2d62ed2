"""Headless Chromium for the browser test and the console benchmark, driven by Selenium.

Everything is reached at 127.0.0.1, never at "localhost", which does not resolve on a
machine without /etc/hosts (a fresh debootstrap root has none): Chromium is started here
with its DevTools on a port it picks (read from DevToolsActivePort), ChromeDriver on a
port it picks (read from its "started successfully on port N" line), and ChromeDriver
attaches to that browser. Runs under Debian's /usr/bin/python3 (python3-selenium)."""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

from selenium import webdriver

FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
         "--window-size=1280,900", "--no-first-run", "--no-default-browser-check")


def _driver_port(proc, timeout):
    port, found = [], threading.Event()

    def read():
        for line in proc.stdout:
            m = re.search(r"started successfully on port (\d+)", line)
            if m and not port:
                port.append(int(m.group(1)))
                found.set()
        found.set()  # it exited
    threading.Thread(target=read, daemon=True).start()
    found.wait(timeout)
    return port[0] if port else None


class Chrome:
    def __init__(self, timeout=30):
        self.profile = tempfile.mkdtemp(prefix="sy-chrome-")
        self.browser = subprocess.Popen(
            [shutil.which("chromium") or "/usr/bin/chromium", *FLAGS, "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", "--user-data-dir=" + self.profile, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc = None
        try:
            active = os.path.join(self.profile, "DevToolsActivePort")
            deadline = time.time() + timeout
            while not (os.path.exists(active) and open(active).read().strip()):
                if time.time() > deadline or self.browser.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.02)
            devtools = int(open(active).read().split()[0])
            self.proc = subprocess.Popen([shutil.which("chromedriver") or "/usr/bin/chromedriver", "--port=0"],
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            port = _driver_port(self.proc, timeout)
            if port is None:
                raise RuntimeError("chromedriver did not start")
            opts = webdriver.ChromeOptions()
            opts.debugger_address = "127.0.0.1:%d" % devtools
            self.driver = webdriver.Remote(command_executor="http://127.0.0.1:%d" % port, options=opts)
        except Exception:
            self._stop()
            raise

    def _stop(self):
        for p in (self.proc, self.browser):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def quit(self):
        try:
            self.driver.quit()
        finally:
            self._stop()
