"""Speed, accuracy and scale measurements, run by command (see README)."""
