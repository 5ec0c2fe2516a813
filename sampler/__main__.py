import sys

try:
    from sampler.cli import main
except KeyboardInterrupt:
    # Ctrl-C while heatline is still loading: end as a later Ctrl-C does, without a traceback.
    print("Interrupted by user.", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
