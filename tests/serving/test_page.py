"""The web page, driven in headless Chromium on a phone-sized screen: upload two images, ground, see the box."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from servers import two_scenes

PHONE = (390, 844)


def _browser_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail(
            "the page test needs Chromium and its driver: apt-get install chromium chromium-driver (.ci/run does)"
        )
    return browser, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={PHONE[0]},{PHONE[1]}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_needs_nothing_from_elsewhere(demo_server):
    response = httpx.get(demo_server.url + "/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "http://" not in response.text and "https://" not in response.text


def test_upload_two_images_and_see_the_box_drawn(demo_server, browser, tmp_path, record_property):
    paths = []
    for index, image in enumerate(two_scenes()):
        path = tmp_path / f"scene{index + 1}.png"
        path.write_bytes(image)
        paths.append(str(path))
    browser.get(demo_server.url + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda driver: "univg-demo-base" in driver.find_element(By.ID, "model").text)

    browser.find_element(By.ID, "submit").click()
    assert browser.find_element(By.ID, "status").text == "Add at least one image."

    browser.find_element(By.ID, "files").send_keys("\n".join(paths))
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#gallery figure")) == 2)
    Select(browser.find_element(By.ID, "style")).select_by_value("plain")
    browser.find_element(By.ID, "question").send_keys("Locate the red circle in the 2th image.")
    tokens = browser.find_element(By.ID, "max-tokens")
    assert tokens.get_attribute("value") == "8"  # the server's default, from /healthz
    tokens.clear()
    tokens.send_keys("40")
    browser.find_element(By.ID, "submit").click()
    wait.until(
        lambda driver: (
            driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")
            in ("drawn", "answered", "error")
        )
    )

    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "drawn", (
        browser.find_element(By.ID, "status").text
    )
    figures = browser.find_elements(By.CSS_SELECTOR, "#gallery figure")
    assert ["target" in (f.get_attribute("class") or "") for f in figures] == [False, True]
    assert browser.find_element(By.ID, "box").text.startswith("image 2 (named in the question)")
    # The box is really on the canvas: its left edge, half-way down, is painted in the box colour.
    pixel = browser.execute_script(
        """
        const canvas = document.querySelectorAll('#gallery canvas')[1];
        const [x1, y1, x2, y2] = canvas.dataset.box.split(',').map(Number);
        const x = Math.round(x1 * canvas.width), y = Math.round((y1 + y2) / 2 * canvas.height);
        return Array.from(canvas.getContext('2d').getImageData(x, y, 1, 1).data);
        """
    )
    assert pixel[3] > 200 and pixel[0] > 200 and pixel[1] < 120, pixel
    empty = browser.execute_script(
        "const c = document.querySelectorAll('#gallery canvas')[0];"
        "return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v) => v !== 0);"
    )
    assert empty is False  # nothing drawn on the other image
    # Phone-sized: nothing sticks out sideways.
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")

    visible = browser.execute_script(
        "const r = document.querySelectorAll('#gallery figure')[1].getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= window.innerHeight;"
    )
    assert visible  # on a phone the page scrolls the image with the box into view

    screenshot = tmp_path / "page.png"
    _full_page_screenshot(browser, screenshot)
    assert screenshot.stat().st_size > 1000
    record_property("screenshot", str(screenshot))
    print(f"page screenshot: {screenshot}")  # noqa: T201 (the artefact's path, shown with -s and on failure)


def _full_page_screenshot(browser: webdriver.Chrome, path: Path) -> None:
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def test_images_can_be_dropped_and_removed(demo_server, browser):
    browser.get(demo_server.url + "/")
    browser.execute_script(
        """
        const canvas = document.createElement('canvas');
        canvas.width = canvas.height = 56;
        canvas.toBlob((blob) => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
          document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
        });
        """
    )
    wait = WebDriverWait(browser, 30)
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#gallery figure")) == 1)
    assert "dropped.png" in browser.find_element(By.CSS_SELECTOR, "#gallery figcaption").text
    browser.find_element(By.CSS_SELECTOR, "#gallery figcaption button").click()
    wait.until(lambda driver: not driver.find_elements(By.CSS_SELECTOR, "#gallery figure"))
