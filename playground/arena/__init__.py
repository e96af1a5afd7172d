"""The arena: two models answer the same prompt; visitors vote; the votes become ratings.

pairing.py chooses the two sides (named, blind, presets), service.py runs and records the rounds,
anonymise.py is the one boundary that hides names in blind mode, ratings.py turns every visitor's votes
into a leaderboard, export.py writes a battle as Markdown and JSON with the code that repeats each side,
library.py reads prompts/arena/, batch.py runs a prompt file through both sides (`compare`).
No Gradio here.
"""
