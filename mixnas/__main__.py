import sys

from mixnas.cli import main

sys.exit(main())
