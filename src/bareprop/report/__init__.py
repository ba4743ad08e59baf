"""What a run shows: the post's chart, report.html and the figures they draw (charts as SVG; vl-convert only rasterises)."""
