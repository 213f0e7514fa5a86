"""Static files of the demo page (served by bot/demo.py)."""
