"""Screenshots of the dashboard in the demo's state, for the README: `paymaster demo` runs its five-agent
pipeline before and after the levers against the simulator, then, while the after gateway still serves,
Debian's headless chromium signs in and captures the page.

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs] [--tasks 6]

Writes docs/dashboard.png (the whole page) and docs/dashboard-login.png. Needs chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import chromium  # noqa: E402

from paymaster import demo  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs")
    ap.add_argument("--tasks", type=int, default=6)
    args = ap.parse_args()
    out = Path(args.out)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shoot(url: str, admin_key: str) -> None:
        for d in chromium():
            d.set_window_size(1400, 900)
            d.get(url + "/dashboard")
            d.save_screenshot(str(out / "dashboard-login.png"))
            d.find_element(By.ID, "key").send_keys(admin_key)
            d.find_element(By.ID, "sign-in").click()
            WebDriverWait(d, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, "body[data-loaded]"))
            time.sleep(1.0)  # the live stream connects
            height = d.execute_script("return document.documentElement.scrollHeight")
            d.set_window_size(1400, height + 40)
            time.sleep(0.3)
            d.save_screenshot(str(out / "dashboard.png"))

    demo.run(args.tasks, keep=False, out=lambda _: None, then=shoot)
    print(f"wrote {out / 'dashboard.png'} and {out / 'dashboard-login.png'}")


if __name__ == "__main__":
    main()
