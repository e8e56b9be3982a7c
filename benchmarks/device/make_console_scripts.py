#!/usr/bin/env python3
"""Write the console scripts (nnUNetv2_train, ...) of packages that were unpacked from wheels rather than installed.

The lent GPU machine has no package index; the wheels of nnU-Net and its dependencies travel as one unpacked,
xz-compressed folder (benchmarks/device/pack_site.sh), which pip never sees, so the entry points are written here.

    python3 benchmarks/device/make_console_scripts.py /tmp/site     # -> /tmp/site/bin/nnUNetv2_train, ...
"""
import configparser
import glob
import os
import sys


def write_console_scripts(site: str) -> int:
    os.makedirs(os.path.join(site, "bin"), exist_ok=True)
    written = 0
    for entry_points in glob.glob(os.path.join(site, "*.dist-info", "entry_points.txt")):
        parser = configparser.ConfigParser(delimiters=("=",))
        parser.optionxform = str  # keep the case of script names
        parser.read(entry_points)
        if "console_scripts" not in parser:
            continue
        for name, target in parser["console_scripts"].items():
            module, function = (part.strip() for part in target.split(":"))
            path = os.path.join(site, "bin", name)
            with open(path, "w") as f:
                # the __main__ guard matters: torch.compile's worker processes re-import the main module
                f.write(f"#!{sys.executable}\nimport sys\nfrom {module} import {function.split('.')[0]}\n"
                        f"if __name__ == '__main__':\n    sys.exit({function}())\n")
            os.chmod(path, 0o755)
            written += 1
    return written


if __name__ == "__main__":
    print(f"{write_console_scripts(sys.argv[1])} console scripts in {sys.argv[1]}/bin")
