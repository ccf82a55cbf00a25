"""The tasks, one module each with its options and defaults, its per-image answer and its finish; `task.py`
says what a task is to the engine."""
