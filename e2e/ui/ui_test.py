#!/usr/bin/env python3
"""Drives the admin port's web UI with a real browser (headless Chromium through
chromedriver, Selenium from PyPI), as an operator would: open the admin port, register the
example deployment through the page (by keyboard), see its services, find an invocation
that suspended in the invocations view with its journal, pause and resume it, kill it from the page (in-page
confirmation), and see the cluster's nodes. A screenshot of each page goes to --out.

    ui_test.py --admin http://127.0.0.1:9070 --ingress http://127.0.0.1:8080 \
               --deployment http://127.0.0.1:9080 --out DIR
"""

import argparse
import json
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

TIMEOUT = 60


def browser():
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


def main():
    parser = argparse.ArgumentParser()
    for arg in ("--admin", "--ingress", "--deployment", "--out"):
        parser.add_argument(arg, required=True)
    args = parser.parse_args()
    driver = browser()
    wait = WebDriverWait(driver, TIMEOUT)
    step = 0

    def shot(name):
        nonlocal step
        step += 1
        driver.save_screenshot(f"{args.out}/ui-{step:02d}-{name}.png")

    def text_of(locator):
        return driver.find_element(*locator).text

    try:
        # The admin port's root sends a browser to the UI; the overview lists the nodes.
        driver.get(args.admin + "/")
        wait.until(lambda d: "/ui/" in d.current_url)
        wait.until(EC.presence_of_element_located((By.ID, "nodes")))
        wait.until(lambda d: d.find_element(By.ID, "nodes").text.count("alive") >= 3)
        shot("overview")

        # Register the deployment through the form, by keyboard.
        driver.find_element(By.ID, "nav-deployments").click()
        field = wait.until(EC.element_to_be_clickable((By.ID, "register-uri")))
        field.send_keys(args.deployment)
        field.send_keys(Keys.ENTER)
        wait.until(EC.presence_of_element_located((By.ID, "deployments")))
        wait.until(lambda d: args.deployment in d.find_element(By.ID, "deployments").text)
        assert "Registered" in text_of((By.ID, "status")), text_of((By.ID, "status"))
        shot("deployments")

        driver.find_element(By.ID, "nav-services").click()
        wait.until(EC.presence_of_element_located((By.ID, "services")))
        services = text_of((By.ID, "services"))
        for name in ("Greeter", "Counter", "Approval"):
            assert name in services, services
        shot("services")

        # An invocation that suspends (it waits on an awakeable).
        sent = post(args.ingress + "/Approval/ui-order/request/send", "ui order")
        invocation = sent["invocationId"]
        driver.find_element(By.ID, "nav-invocations").click()
        wait.until(EC.presence_of_element_located((By.ID, "invocation-filter")))

        def suspended_listed(d):
            Select(d.find_element(By.ID, "filter-status")).select_by_value("suspended")
            d.find_element(By.ID, "filter-apply").click()
            time.sleep(0.3)
            return d.find_elements(By.LINK_TEXT, invocation)

        wait.until(suspended_listed)
        shot("invocations")
        driver.find_element(By.LINK_TEXT, invocation).click()
        wait.until(EC.presence_of_element_located((By.ID, "journal")))
        assert "Command" in text_of((By.ID, "journal")), text_of((By.ID, "journal"))
        shot("invocation")

        def status_is(wanted):
            def check(_):
                rows = post(args.admin + "/query", {"query": f"SELECT status FROM sys_invocation WHERE id = '{invocation}'"})["rows"]
                return rows and rows[0]["status"] == wanted
            return check

        # Pause it, then resume it, from the page (each confirmed in the page).
        for action, after in [("pause", "paused"), ("resume", "suspended")]:
            wait.until(EC.element_to_be_clickable((By.ID, f"{action}-invocation"))).click()
            wait.until(EC.visibility_of_element_located((By.ID, "confirm")))
            driver.find_element(By.ID, "confirm-yes").click()
            wait.until(status_is(after))
            driver.refresh()
            wait.until(EC.presence_of_element_located((By.ID, "journal")))
            assert after in text_of((By.ID, "invocation")), text_of((By.ID, "invocation"))
            shot(after)

        # Kill it from the page; the confirmation is in the page, not a browser dialog.
        driver.find_element(By.ID, "kill-invocation").click()
        confirm = wait.until(EC.visibility_of_element_located((By.ID, "confirm")))
        assert invocation in confirm.text, confirm.text
        shot("confirm-kill")
        driver.find_element(By.ID, "confirm-yes").click()
        wait.until(lambda d: "killed" in d.find_element(By.ID, "status").text)

        def completed(_):
            rows = post(args.admin + "/query", {"query": f"SELECT status, completion_failure FROM sys_invocation WHERE id = '{invocation}'"})["rows"]
            return not rows or rows[0]["status"] == "completed"

        wait.until(completed)
        shot("killed")

        driver.find_element(By.ID, "nav-overview").click()
        wait.until(lambda d: d.find_element(By.ID, "nodes").text.count("alive") >= 3)
        assert driver.find_element(By.ID, "partitions").text
        shot("overview-again")
        print(f"ui: {step} pages checked, screenshots in {args.out}")
    except Exception:
        shot("failure")
        print(driver.page_source[:4000], file=sys.stderr)
        raise
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
