"""Task post-processing, one module per task with its options and defaults: model outputs -> answers."""
