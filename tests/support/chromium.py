"""Debian's headless Chromium through chromedriver, as the browser tests drive it."""

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def start(width, height):
    """A headless Chromium window of width x height pixels."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
