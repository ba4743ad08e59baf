"""What a run shows: the post's chart, report.html and the figures they draw (Altair imported only here)."""
