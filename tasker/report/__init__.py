"""Reports of a run: console/log lines, --output-json, project summary, alerts."""
