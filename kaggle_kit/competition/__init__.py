"""The competition: its spec (files, columns, classes, metric) and competition-shaped sample data."""
