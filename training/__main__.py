"""`python -m training`: synth, train, evaluate, export."""

from training.cli import main

raise SystemExit(main())
