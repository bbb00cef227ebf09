import sys

from alphabet.cli import main

sys.exit(main())
