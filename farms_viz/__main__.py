import sys

from farms_viz.cli import main

sys.exit(main())
