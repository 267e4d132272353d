"""Command-line front ends: thin modules over library calls (``neotool-dlq`` over ``dlqtool``)."""
