"""Pictures: module memory maps, memory pools, dependency graphs and crash call chains as
self-contained SVG (and HTML pages holding them): inline styles, light and dark colours, hover
details in ``<title>``, no scripts and no network fetches.  Every number drawn is also in a
``data-*`` attribute of its element."""

__all__: list[str] = []
