"""The backend's report.html, adapted for QTextBrowser (Qt's rich text: no flexbox, no inline-block, no CSS
sizes on images or cells), so the report panel shows it as a browser does.

- the summary cards (a flex row) become a table, three cards to a row;
- the class legend (inline-block swatches) becomes coloured squares with spacing;
- the tile column of the best/worst tables keeps its lines whole (it wrapped one character per line);
- thumbnails get their 128 px size and the plots a width that fits the panel.
The file itself is not changed ("Open in browser" shows the original).
"""
from __future__ import annotations

import re

CARD = re.compile(r"<div class=['\"]card['\"]><div class=['\"]v['\"]>(.*?)</div><div class=['\"]k['\"]>(.*?)</div></div>",
                  re.S)
CARDS = re.compile(r"<div class=['\"]cards['\"]>((?:<td .*?</td>)*)</div>", re.S)
SWATCH = re.compile(r"<span><span class=['\"]sw['\"] style=['\"]background:\s*([#\w]+)['\"]></span>(.*?)</span>", re.S)
PLOT_WIDTH = 560


def _cards_table(match: re.Match) -> str:
    cells = re.findall(r"<td .*?</td>", match.group(1), re.S)
    rows = ["<tr>" + "".join(cells[i:i + 3]) + "</tr>" for i in range(0, len(cells), 3)]
    return f"<table cellspacing='6' cellpadding='8'>{''.join(rows)}</table>"


def for_text_browser(html: str, plot_width: int = PLOT_WIDTH) -> str:
    html = CARD.sub(lambda m: ("<td style='background:#ffffff; border:1px solid #dddddd'>"
                               f"<span style='font-size:x-large; font-weight:600'>{m.group(1)}</span><br>"
                               f"<span style='color:#666666'>{m.group(2)}</span></td>"), html)
    html = CARDS.sub(_cards_table, html)
    html = SWATCH.sub(lambda m: (f"<span style='color:{m.group(1)}; font-size:large'>&#9632;</span>&nbsp;"
                                 f"{m.group(2)}&nbsp;&nbsp;&nbsp; "), html)
    html = re.sub(r"<td class=['\"]cap['\"]><b>", "<td width='150' style='white-space:nowrap'><b>", html)
    html = re.sub(r"<td class=['\"]cap['\"]>", "<td width='260'>", html)
    html = re.sub(r"<img class=['\"]plot['\"]", f"<img width='{plot_width}'", html)
    html = re.sub(r"<img src=(['\"])(?!.*?width=)", r"<img width='128' height='128' src=\1", html)
    return html
