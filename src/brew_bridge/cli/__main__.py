import sys

from brew_bridge.cli import main

sys.exit(main())
