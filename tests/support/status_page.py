"""Looks at the /status page in Debian's headless Chromium driven by Selenium (none of
it postrunner's code): loads it, keeps a full-height screenshot, and reports what a
person would see: the headings, the text, each chart's accessible title and its drawn
bars (with their tooltips), and the size the browser laid each chart out at.

stdin:  {"url": "...", "dir": "<where the screenshot goes>", "name": "<file name>"}
stdout: {"title", "headings", "text", "charts": [{"title", "width", "height", "bars": [...]}], "scripts"}
"""

import json
import os
import sys

import chromium
from selenium.webdriver.common.by import By

request = json.load(sys.stdin)
os.makedirs(request["dir"], exist_ok=True)
driver = chromium.start(1040, 900)
try:
    driver.get(request["url"])
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1040, max(900, height + 120))
    charts = []
    for svg in driver.find_elements(By.TAG_NAME, "svg"):
        size = svg.size
        charts.append({
            "title": svg.find_element(By.TAG_NAME, "title").get_attribute("textContent"),
            "width": size["width"],
            "height": size["height"],
            "bars": [bar.find_element(By.TAG_NAME, "title").get_attribute("textContent")
                     for bar in svg.find_elements(By.CSS_SELECTOR, "rect.bar")],
        })
    driver.save_screenshot(os.path.join(request["dir"], request["name"]))
    json.dump({
        "title": driver.title,
        "headings": [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h1, h2")],
        "text": driver.find_element(By.TAG_NAME, "main").text,
        "charts": charts,
        "scripts": len(driver.find_elements(By.TAG_NAME, "script")),
    }, sys.stdout)
finally:
    driver.quit()
