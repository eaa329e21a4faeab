"""Uses the unsubscribe page the way a person does, in Debian's headless Chromium
driven through chromedriver by Selenium (none of it postrunner's code): opens the link,
keeps a screenshot, clicks the page's button, waits for the answer page, keeps a
second screenshot, and prints what both pages said.

stdin:  {"url": "...", "dir": "<where the screenshots go>"}
stdout: {"before": "<text of the page>", "after": "<text after the click>"}
"""

import json
import os
import sys

import chromium
from selenium.webdriver.common.by import By
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

request = json.load(sys.stdin)
os.makedirs(request["dir"], exist_ok=True)
driver = chromium.start(900, 700)
try:
    driver.get(request["url"])
    before = driver.find_element(By.TAG_NAME, "main").text
    driver.save_screenshot(os.path.join(request["dir"], "unsubscribe-page.png"))
    driver.find_element(By.TAG_NAME, "button").click()
    # The click navigates: a heading found on the old page can go stale before its text
    # is read, which only means "not yet".
    WebDriverWait(driver, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: "unsubscribed" in d.find_element(By.TAG_NAME, "h1").text.lower())
    after = driver.find_element(By.TAG_NAME, "main").text
    driver.save_screenshot(os.path.join(request["dir"], "unsubscribe-confirmed.png"))
    json.dump({"before": before, "after": after}, sys.stdout)
finally:
    driver.quit()
