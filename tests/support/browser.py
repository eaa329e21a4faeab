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

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

request = json.load(sys.stdin)
os.makedirs(request["dir"], exist_ok=True)
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=900,700"):
    options.add_argument(argument)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.get(request["url"])
    before = driver.find_element(By.TAG_NAME, "main").text
    driver.save_screenshot(os.path.join(request["dir"], "unsubscribe-page.png"))
    driver.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(driver, 15).until(
        lambda d: "unsubscribed" in d.find_element(By.TAG_NAME, "h1").text.lower())
    after = driver.find_element(By.TAG_NAME, "main").text
    driver.save_screenshot(os.path.join(request["dir"], "unsubscribe-confirmed.png"))
    json.dump({"before": before, "after": after}, sys.stdout)
finally:
    driver.quit()
