import os
import sys

from . import main

# ``python -m`` puts the working directory first on sys.path; the console script does
# not, and neither should this: a ``tomllib.py`` (or ``yaml.py``, ...) lying in the
# working directory would run in place of the library when the command imports it
# (as ``python -P`` would: sys.flags.safe_path).
if not sys.flags.safe_path and sys.path and os.path.abspath(sys.path[0] or ".") == os.getcwd():
    del sys.path[0]
sys.exit(main())
