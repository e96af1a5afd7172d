"""The page's layout rules added for the lesson (issue 16): tables whose headers never wrap inside a word
and whose columns scroll rather than being cut; the expert map whose cells always show inside its box.

Kept apart from app.py's rules so that the map's markup stays simple (a table of plain cells, classes
`moe-token` and `moe-cell`): whoever changes how the map streams keeps this layout by keeping the classes.
"""

from __future__ import annotations

TABLES = """
#providers-list th, #models-catalog th, #models-loaded th, #models-local th, #arena-board th,
#providers-list th *, #models-catalog th *, #models-loaded th *, #models-local th *, #arena-board th * {
  white-space: nowrap; word-break: keep-all; overflow-wrap: normal; hyphens: none;
}
#providers-list .table-wrap, #models-catalog .table-wrap, #models-loaded .table-wrap,
#models-local .table-wrap { overflow-x: auto; }
#providers-list td, #models-catalog td, #models-loaded td, #models-local td { word-break: normal; }
"""

MAP = """
#moe-map .moe-map { max-height: 340px; max-width: 100%; overflow: auto; }
#moe-map table { table-layout: auto; width: max-content; max-width: 100%; }
#moe-map th.moe-token {
  max-width: 8em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; position: sticky; left: 0;
  background: var(--background-fill-primary);
}
#moe-map td.moe-cell { min-width: 1.8em; padding: 1px 3px; }
#moe-map thead th { position: sticky; top: 0; background: var(--background-fill-primary); }
#moe-map thead th:first-child { left: 0; z-index: 1; }
"""

LESSON = """
.lesson { border-left: 3px solid var(--color-accent); padding: 4px 10px; margin-bottom: 6px; }
.lesson p { margin: 2px 0; }
"""

FIDELITY = """
#arena-fidelity-tokens .fid-tokens { white-space: pre-wrap; font-family: monospace; line-height: 1.7; }
#arena-fidelity-tokens .fid-token { border-radius: 2px; cursor: default; }
#arena-fidelity-tokens .fid-differs { text-decoration: underline wavy; }
"""

CSS = TABLES + MAP + LESSON + FIDELITY
