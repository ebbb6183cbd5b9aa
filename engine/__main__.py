"""`python -m engine` is `defdistill-engine`: for machines where the scripts' folder is not on PATH."""

import sys

from engine.cli import main

sys.exit(main())
