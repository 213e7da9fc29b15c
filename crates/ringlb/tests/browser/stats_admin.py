#!/usr/bin/python3
"""Drives the ringlb stats page in headless Chromium (Selenium), for stats_browser.rs.

usage: stats_admin.py BASE_URL USER PASSWORD OUT_DIR

1. Without credentials the page answers 401.
2. With basic auth (an Authorization header set through the DevTools protocol, as a user
   who typed the credentials would send), both backend tables are visible.
3. In backend "app", ticks server s1, picks "Set state to DRAIN" and presses Apply; the
   page comes back with the action reported done and s1 shown as DRAIN.
4. Saves OUT_DIR/stats-drained.png and prints "screenshot: PATH".

Every wait is bounded; a watchdog alarm ends the run (and the browser) after 60 s.
Exit status 0 on success, 1 on a failed check (message on stderr).
"""
import base64
import os
import signal
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

WATCHDOG_S = 60
WAIT_S = 10


def fail(msg):
    raise AssertionError(msg)


def on_alarm(_sig, _frame):
    raise TimeoutError(f"browser run exceeded {WATCHDOG_S}s")


def main():
    base, user, password, out_dir = sys.argv[1:5]
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(WATCHDOG_S)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--window-size=1400,1000",
              "--no-first-run", "--no-default-browser-check"):
        opts.add_argument(a)
    service = Service(executable_path="/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=opts)
    try:
        driver.set_page_load_timeout(WAIT_S)
        driver.set_script_timeout(WAIT_S)
        run(driver, base, user, password, out_dir)
    finally:
        try:
            driver.quit()
        finally:
            # chromedriver by pid, if quit could not stop it.
            proc = getattr(service, "process", None)
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
    signal.alarm(0)


def run(driver, base, user, password, out_dir):
    # Without credentials the browser would open its login dialog (not scriptable when
    # headless): the page's own fetch shows the refusal instead.
    # (From a page of the same origin: the proxy's own 503 page outside the stats URI.)
    driver.get(base.rsplit("/", 1)[0] + "/not-stats")
    status = driver.execute_script(
        "return fetch(arguments[0], {credentials: 'omit'}).then(r => r.status)", base)
    if status != 401:
        fail(f"without credentials the page should answer 401, got {status}")
    print("without credentials: 401")

    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                           {"headers": {"Authorization": f"Basic {token}"}})
    driver.get(base)
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.tbl"))
    for px in ("app", "api"):
        anchors = driver.find_elements(By.CSS_SELECTOR, f"a[name='{px}']")
        if not anchors:
            fail(f"no table for backend {px}")
        table = anchors[0].find_element(By.XPATH, "ancestor::table[1]")
        if not table.is_displayed():
            fail(f"table of {px} not displayed")
        print(f"backend {px}: {table.text.splitlines()[0]!r}")
    rows = driver.find_elements(By.CSS_SELECTOR, "input.app-checkbox[value='s1']")
    if not rows:
        fail("no admin checkbox for app/s1 (is 'stats admin' on?)")
    box = rows[0]
    form = box.find_element(By.XPATH, "ancestor::form[1]")
    box.click()
    if not box.is_selected():
        fail("checkbox of s1 did not tick")
    Select(form.find_element(By.NAME, "action")).select_by_value("drain")
    form.find_element(By.CSS_SELECTOR, "input[type='submit']").click()
    wait.until(lambda d: "st=DONE" in d.current_url)
    print(f"after Apply: {driver.current_url}")
    # The s1 row of app (the one holding its checkbox) now says DRAIN.
    boxes = driver.find_elements(By.CSS_SELECTOR, "input.app-checkbox[value='s1']")
    if not boxes:
        fail("no s1 row in app after the action")
    row = boxes[0].find_element(By.XPATH, "ancestor::tr[1]")
    if "DRAIN" not in row.text:
        fail(f"s1 row does not show DRAIN: {row.text!r}")
    print(f"s1 row: {row.text!r}")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "stats-drained.png")
    if not driver.save_screenshot(path):
        fail("screenshot not saved")
    print(f"screenshot: {path}")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line for the Rust test's message
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
