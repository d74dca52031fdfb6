"""``python -m drugjax.synthetic OUT --preset small|paper|tiny|deploy|hard --seed N``."""

import sys

from drugjax.synthetic.world import main

if __name__ == "__main__":
    sys.exit(main())
