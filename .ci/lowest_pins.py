"""Print a pip constraint for each runtime dependency at its lowest declared version.

``requests>=2.30`` becomes ``requests==2.30.*`` (the newest patch release of the
lowest declared minor version); dependencies limited to some Python versions
keep their marker. Read from setup.cfg, so the CI's lowest-versions run can
never drift from what the package declares. Exits non-zero for a runtime
dependency without a lower bound.
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lowest_pins(setup_cfg: Path) -> list[str]:
    config = configparser.ConfigParser()
    config.read(setup_cfg, encoding="utf-8")
    pins = []
    for line in config["options"]["install_requires"].splitlines():
        requirement = line.split("#", 1)[0].strip()
        if not requirement:
            continue
        spec, _, marker = requirement.partition(";")
        match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", spec.strip())
        if match is None:
            raise SystemExit(f"cannot read the requirement {requirement!r}")
        name, bounds = match.groups()
        lower = re.search(r">=\s*([0-9][0-9.]*)", bounds)
        if lower is None:
            raise SystemExit(f"{name} has no lower bound (>=) in setup.cfg")
        pin = f"{name}=={lower.group(1)}.*"
        pins.append(f"{pin}; {marker.strip()}" if marker.strip() else pin)
    return pins


if __name__ == "__main__":
    sys.stdout.write("".join(pin + "\n" for pin in lowest_pins(ROOT / "setup.cfg")))
