"""Screenshots of the dashboard in the demo's state, for the README: the demo's five-agent pipeline runs against
the simulator through the gateway (the drafter is blocked part-way), then Debian's headless chromium signs in
and captures the page.

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs] [--tasks 6]

Writes docs/dashboard.png (the whole page) and docs/dashboard-login.png. Needs chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import chromium  # noqa: E402

from paymaster import demo  # noqa: E402
from paymaster.app import Gateway  # noqa: E402
from paymaster.config import load  # noqa: E402
from paymaster.server import ServerThread  # noqa: E402
from paymaster.sim import Simulator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs")
    ap.add_argument("--tasks", type=int, default=6)
    args = ap.parse_args()
    out = Path(args.out)
    env = {f"PAYMASTER_DEMO_KEY_{p[0].upper()}": "pm-" + secrets.token_urlsafe(16) for p in demo.PIPELINE}
    env["PAYMASTER_DEMO_ADMIN_KEY"] = admin_key = "pm-admin-" + secrets.token_urlsafe(16)
    env["PAYMASTER_DEMO_PROVIDER_KEY"] = provider_key = "sk-sim-" + secrets.token_urlsafe(8)
    os.environ.update(env)
    with tempfile.TemporaryDirectory(prefix="paymaster-shots-") as tmp:
        sim = Simulator(latency_ms=2.0, api_keys={provider_key})
        with ServerThread(sim.app) as sim_srv:
            path = Path(tmp) / "fleet.yaml"
            path.write_text(yaml.safe_dump(demo.fleet(sim_srv.url, env)))
            with ServerThread(Gateway(load(path))) as gw_srv:
                demo.pipeline(gw_srv.url, env, args.tasks)
                from selenium.webdriver.common.by import By
                from selenium.webdriver.support.ui import WebDriverWait

                for d in chromium():
                    d.set_window_size(1400, 900)
                    d.get(gw_srv.url + "/dashboard")
                    d.save_screenshot(str(out / "dashboard-login.png"))
                    d.find_element(By.ID, "key").send_keys(admin_key)
                    d.find_element(By.ID, "sign-in").click()
                    WebDriverWait(d, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, "body[data-loaded]"))
                    time.sleep(1.0)  # the live stream connects
                    height = d.execute_script("return document.documentElement.scrollHeight")
                    d.set_window_size(1400, height + 40)
                    time.sleep(0.3)
                    d.save_screenshot(str(out / "dashboard.png"))
    print(f"wrote {out / 'dashboard.png'} and {out / 'dashboard-login.png'}")


if __name__ == "__main__":
    main()
