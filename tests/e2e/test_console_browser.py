"""The console in a real browser: Debian's Chromium driven by Selenium (chromium-driver) against
the app served on a loopback port (a threaded werkzeug server on the test PostgreSQL and Redis).

Each role signs in through the form, sees its own data and none of another tenant's; the admin
refunds from the order page and asks for a verification; the auditor downloads the log as CSV;
the seller ships, reads its payouts and statement, and downloads that as CSV and PDF. A
screenshot of every main page is saved under var/screenshots/ (1280 px wide, 390 px narrow).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from app import create_app
from tests.e2e.console_helpers import World, build_world
from tests.integration.read_side_helpers import run_worker_burst

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
MISSING = (
    "the console's browser tests need Debian's Chromium and its driver: "
    "apt-get install -y chromium chromium-driver (.ci/run installs them)"
)


def _binary(*names: str) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module; a missing browser fails every test in one line."""
    chromium = _binary("chromium", "chromium-browser")
    driver_path = _binary("chromedriver")
    if chromium is None or driver_path is None:
        pytest.fail(MISSING, pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,900")
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def settings(make_settings):
    return make_settings("pg", console_insecure_cookies=True)  # plain http on the loopback


@pytest.fixture
def server(container) -> Iterator[str]:
    """The app on a free loopback port, in threads of this process."""
    app = create_app(container=container)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(5)


@pytest.fixture
def world(app, container) -> World:
    return build_world(app.test_client(), container)


@pytest.fixture
def page(browser, server) -> Callable[..., Any]:
    """page(path) opens a console page; the cookies of earlier tests are gone first."""
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    browser.set_window_size(1280, 900)

    def open_(path: str) -> Any:
        browser.get(server + path)
        return browser

    return open_


def shot(browser: Any, name: str) -> None:
    """A screenshot of the whole page (as tall as its content) under var/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    width = browser.get_window_size()["width"]
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, min(max(int(height) + 120, 600), 2400))
    assert browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    browser.set_window_size(width, 900)


def by(css: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    return (By.CSS_SELECTOR, css)


def text(browser: Any) -> str:
    return str(browser.find_element(*by("body")).text)


def sign_in(page: Callable[..., Any], key: str) -> Any:
    """Type the key and press Enter: the form works from the keyboard alone."""
    from selenium.webdriver.common.keys import Keys

    browser = page("/console/login")
    browser.find_element(*by("#key")).send_keys(key, Keys.ENTER)
    wait_for(lambda: "/console/login" not in browser.current_url)
    return browser


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, browser: Any = None) -> None:
    """Poll until ``condition`` holds (a page still loading, its elements replaced, counts as not yet)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (StaleElementReferenceException, NoSuchElementException):
            pass
        if time.monotonic() > deadline:
            seen = f": {browser.current_url} shows {text(browser)[:600]!r}" if browser is not None else ""
            raise AssertionError(f"timed out waiting for the page{seen}")
        time.sleep(0.05)


def click(browser: Any, css: str) -> None:
    browser.find_element(*by(css)).click()


def submit_text(browser: Any, label: str) -> None:
    """Press the button that reads ``label``."""
    from selenium.webdriver.common.by import By

    browser.find_element(By.XPATH, f"//button[normalize-space()='{label}']").click()


def test_a_bad_key_is_refused_in_the_browser(page) -> None:
    browser = page("/console/login")
    shot(browser, "login")
    browser.find_element(*by("#key")).send_keys("tk_not-a-key")
    submit_text(browser, "Sign in")
    wait_for(lambda: "not valid" in text(browser))
    assert "/console/login" in browser.current_url


def test_the_admin_refunds_from_the_order_page_and_verifies_the_chain(page, world, container) -> None:
    browser = sign_in(page, world.keys["admin"])
    assert "Event log" in text(browser) and "Keys" in text(browser)
    shot(browser, "admin-home")
    browser = page("/console/orders")
    field = browser.find_element(*by("#q"))
    field.send_keys("c-1")
    submit_text(browser, "Search")
    order_id = world.orders["c-1"]["id"]
    wait_for(lambda: order_id[:8] in text(browser))
    assert world.orders["c-2"]["id"][:8] not in text(browser)
    shot(browser, "admin-orders")
    click(browser, f"a[href='/console/orders/{order_id}']")
    wait_for(lambda: "Per seller" in text(browser))
    assert "$44.99" in text(browser)
    browser.find_element(*by("#amount")).send_keys("500")
    browser.find_element(*by("#reason")).send_keys("scratched")
    shot(browser, "admin-order")
    submit_text(browser, "Review refund…")
    wait_for(lambda: "Confirm the refund" in text(browser))
    assert "Refund $5.00 across the sellers (scratched)?" in text(browser)
    shot(browser, "admin-refund-confirm")
    submit_text(browser, "Yes, refund")
    wait_for(lambda: "recorded" in text(browser), browser=browser)
    assert container.marketplace.get_order(order_id).refunded_amount == 500
    assert "partially refunded" in text(browser)

    container.read_models.catch_up()  # what the workers do after the refund, before verifying
    browser = page("/console/audit/chain")
    submit_text(browser, "Verify the books now")
    wait_for(lambda: "/console/audit/verifications/" in browser.current_url)
    run_worker_burst(container)  # the verification runs in the background, as in production
    browser.refresh()
    wait_for(lambda: "the books hold" in text(browser), browser=browser)
    shot(browser, "admin-verification")
    shot(page("/console/audit/chain"), "admin-chain")
    shot(page("/console/operations"), "admin-operations")
    shot(page("/console/keys"), "admin-keys")
    submit_text(browser, "Sign out")
    wait_for(lambda: "/console/login" in browser.current_url)
    page("/console/keys")
    assert "/console/login" in browser.current_url


def test_the_auditor_reads_the_log_and_downloads_it_as_csv(page, world) -> None:
    browser = sign_in(page, world.keys["auditor"])
    assert "Keys" not in browser.find_element(*by("nav")).text  # no admin pages offered
    browser = page("/console/audit/events")
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(*by("#type"))).select_by_visible_text("Order.Placed")
    submit_text(browser, "Filter")
    wait_for(lambda: "type=Order.Placed" in browser.current_url)
    rows = browser.find_elements(*by("tbody tr"))
    assert len(rows) == 2 and all("Order.Placed" in row.text for row in rows)
    shot(browser, "auditor-events")
    for old in browser.downloads.glob("*"):
        old.unlink()
    click(browser, "a[href^='/console/audit/events.csv']")
    wait_for(lambda: any(p.suffix == ".csv" for p in browser.downloads.glob("*")))
    downloaded = next(p for p in browser.downloads.glob("*.csv"))
    wait_for(lambda: downloaded.read_text().count("\n") >= 3)
    lines = downloaded.read_text().splitlines()
    assert lines[0].startswith("position,") and len(lines) == 3
    assert all("Order.Placed" in line for line in lines[1:])
    shot(page("/console/audit/balances?seller_id=s-2"), "auditor-balances")
    shot(page(f"/console/audit/streams?stream_id={world.orders['c-1']['id']}"), "auditor-stream")
    statement = f"/console/sellers/s-1/settlements/{world.settlement['id']}/statement"
    shot(page(statement), "auditor-statement")
    assert "$22.50" in text(browser)  # 25.00 less the 10 % fee
    assert page("/console/keys") and "403" in text(browser)


def test_the_seller_ships_and_reads_its_payouts_and_statement(page, world, container) -> None:
    browser = sign_in(page, world.keys["s-2"])
    assert browser.current_url.endswith("/console/sellers/s-2/orders")
    body = text(browser)
    assert world.orders["c-1"]["id"][:8] in body and world.orders["c-2"]["id"][:8] in body
    shot(browser, "seller-orders")
    order_id = world.orders["c-1"]["id"]
    row = next(r for r in browser.find_elements(*by("tbody tr")) if order_id[:8] in r.text)
    row.find_element(*by("input[name=carrier]")).send_keys("UPS")
    row.find_element(*by("input[name=tracking_number]")).send_keys("1Z999")
    row.find_element(*by("form.inline-form button")).click()
    wait_for(lambda: "ship recorded" in text(browser))
    container.read_models.catch_up()
    browser.refresh()
    wait_for(lambda: "UPS 1Z999" in text(browser))
    row = next(r for r in browser.find_elements(*by("tbody tr")) if order_id[:8] in r.text)
    row.find_element(*by("button")).click()  # the one step left: mark delivered
    wait_for(lambda: "deliver recorded" in text(browser))

    browser = page("/console/sellers/s-2/payouts")
    assert browser.find_elements(*by("svg.chart polyline"))
    shot(browser, "seller-payouts")
    shot(page("/console/sellers/s-2/invoices"), "seller-invoices")
    assert "403" in text(page("/console/sellers/s-1/orders"))  # another seller's page
    assert world.orders["c-1"]["id"][:8] not in text(browser)

    sign_in(page, world.keys["s-1"])
    browser = page("/console/sellers/s-1/settlements")
    shot(browser, "seller-settlements")
    click(browser, "a[href$='/statement']")
    wait_for(lambda: "Statement for s-1" in text(browser))
    shot(browser, "seller-statement")
    for old in browser.downloads.glob("*"):
        old.unlink()
    click(browser, "a[href$='/statement.csv']")
    wait_for(lambda: any(p.suffix == ".csv" for p in browser.downloads.glob("*")))
    downloaded = next(p for p in browser.downloads.glob("*.csv"))
    wait_for(lambda: "order" in downloaded.read_text())
    assert world.orders["c-1"]["id"] in downloaded.read_text()
    click(browser, "a[href$='/statement.pdf']")  # the API's PDF, under this session
    wait_for(lambda: any(p.suffix == ".pdf" for p in browser.downloads.glob("*")))
    pdf = next(p for p in browser.downloads.glob("*.pdf"))
    wait_for(lambda: pdf.stat().st_size > 500 and pdf.read_bytes().rstrip().endswith(b"%%EOF"))
    assert pdf.read_bytes().startswith(b"%PDF-")


def test_the_customer_sees_its_own_orders_only(page, world) -> None:
    browser = sign_in(page, world.keys["c-2"])
    assert browser.current_url.endswith("/console/customers/c-2/orders")
    assert world.orders["c-2"]["id"][:8] in text(browser) and "€42.00" in text(browser)
    assert world.orders["c-1"]["id"][:8] not in text(browser)
    amount = browser.find_element(*by("td.num"))
    assert amount.value_of_css_property("text-align") == "right"
    shot(browser, "customer-orders")
    assert "403" in text(page(f"/console/orders/{world.orders['c-1']['id']}"))
    assert "403" in text(page("/console/customers/c-1/orders"))


def test_pages_fit_a_390_pixel_wide_screen(page, world) -> None:
    browser = sign_in(page, world.keys["admin"])
    browser.set_window_size(390, 844)
    for path, name in (
        ("/console/", "narrow-home"),
        (f"/console/orders/{world.orders['c-1']['id']}", "narrow-order"),
        ("/console/audit/events", "narrow-events"),
        ("/console/sellers/s-2/payouts", "narrow-payouts"),
    ):
        page(path)
        browser.set_window_size(390, 844)
        viewport = browser.execute_script("return document.documentElement.clientWidth")
        overflow = browser.execute_script("return document.documentElement.scrollWidth")
        assert overflow <= viewport, (path, overflow, viewport)  # wide tables scroll in their box
        shot(browser, name)


def tab_to(browser: Any, matches: Callable[[Any], bool], limit: int = 80) -> Any:
    """Press Tab until the focused element matches; the element (every step by keyboard alone)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused = browser.switch_to.active_element
        if matches(focused):
            return focused
    raise AssertionError("never reached by Tab")


def test_an_admin_refunds_with_the_keyboard_alone(page, world, container) -> None:
    from selenium.webdriver.common.keys import Keys

    order_id = world.orders["c-1"]["id"]
    sign_in(page, world.keys["admin"])
    browser = page(f"/console/orders/{order_id}")
    first = tab_to(browser, lambda e: True)
    assert first.text == "Skip to content"  # the first stop skips the navigation
    tab_to(browser, lambda e: e.get_attribute("id") == "amount").send_keys("300")
    tab_to(browser, lambda e: e.text == "Review refund…").send_keys(Keys.ENTER)
    wait_for(lambda: "Confirm the refund" in text(browser))
    tab_to(browser, lambda e: e.text == "Yes, refund").send_keys(Keys.ENTER)
    wait_for(lambda: "recorded" in text(browser), browser=browser)
    assert container.marketplace.get_order(order_id).refunded_amount == 300
