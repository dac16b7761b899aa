"""The data coverage page (``cjm profile --out``): the features layer's ``CoverageReport`` laid
out by Jinja2 templates as one self-contained HTML file."""
