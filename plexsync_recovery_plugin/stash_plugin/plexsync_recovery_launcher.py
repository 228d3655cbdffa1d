"""PlexSync Recovery's launcher: Stash runs this with its Python and writes the plugin input to stdin.

It only imports the installed package and hands over; when the package is not installed in
that Python, it says so in one line of Stash's log (and exits 0 for a hook, so the scene
update that triggered it is not reported as failed).
"""

import json
import sys

# Written by plexsync-recovery stash-plugin install; a reinstall replaces this file.

if __name__ == "__main__":
    try:
        from plexsync_recovery_plugin.stash_plugin.entry import main
    except ImportError as error:
        message = (
            "PlexSync Recovery: the package plexsync-recovery-plugin cannot be imported by the Python"
            " Stash runs plugins with (%s): install it into that Python with"
            " '%s -m pip install plexsync-recovery-plugin' (%s)" % (sys.executable, sys.executable, error)
        )
        sys.stderr.write("\x01e\x02" + message + "\n")
        sys.stdout.write(json.dumps({"output": None, "error": message}) + "\n")
        sys.exit(0)
    sys.exit(main())
