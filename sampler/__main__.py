import sys

from sampler._entry import main

sys.exit(main())
