import sys

from rlship.cli import main

sys.exit(main())
