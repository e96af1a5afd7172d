"""Evaluation: many models over a prompt set, scored by checks, a judge and votes, with speed and memory
measured on this machine, in one chart and one reproducible card (the Evaluate tab, `python -m
playground eval`)."""
