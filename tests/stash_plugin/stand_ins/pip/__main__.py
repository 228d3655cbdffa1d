"""``python -m pip install ... --target DIR SPEC...``, offline (see ``PLEXSYNC_TEST_SERVED``); every call is logged."""

import json
import os
import sys
from pathlib import Path


def main(argv):
    served = json.loads(Path(os.environ["PLEXSYNC_TEST_SERVED"]).read_text(encoding="utf-8"))
    with open(Path(os.environ["PLEXSYNC_TEST_SERVED"]).with_name("pip_calls.jsonl"), "a", encoding="utf-8") as calls:
        calls.write(json.dumps(argv) + "\n")
    if not argv or argv[0] != "install" or "--target" not in argv:
        print("ERROR: this stand-in only installs with --target", file=sys.stderr)
        return 1
    target = Path(argv[argv.index("--target") + 1])
    specs = [arg for i, arg in enumerate(argv[1:], 1) if not arg.startswith("-") and argv[i - 1] != "--target"]
    target.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        name = spec.split("==")[0].lower()
        if name not in served:
            print(f"ERROR: No matching distribution found for {spec}", file=sys.stderr)
            return 1
        for path in served[name]:
            link = target / Path(path).name
            if not link.exists():
                os.symlink(path, link)
    return 0


sys.exit(main(sys.argv[1:]))
