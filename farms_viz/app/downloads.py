"""The app's files: download buttons and the names of every file it gives (tables, the HTML report, PNGs).

A file name is built from the model, the layer and the settings, which can hold anything (a layer
name is text from the model file: slashes, quotes, a NUL byte, 3000 characters), so every name
passes :func:`safe_name`: ASCII letters, digits, ``-`` and ``_`` only, each part and the whole
length-capped. Plotly's camera button takes its file name from :func:`chart_config`.
"""

from __future__ import annotations

import re

from farms_viz.figures.style import CONTEXT_CHARS, subtitle
from farms_viz.io.tables import TABLE_FORMATS, table_bytes
from farms_viz.settings import Settings

#: a part of a file name (a model, a layer) keeps at most this many characters, the whole name NAME_CHARS:
#: MiniLM's longest layer name is 45 characters, and 120 stays far below every file system's 255
PART_CHARS = 60
NAME_CHARS = 120
#: the MIME type of each file suffix the app writes
MIME = {**{f".{k}": v for k, v in TABLE_FORMATS.items()}, ".html": "text/html"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _fit(parts: list[str], chars: int) -> list[str]:
    """``parts`` whose ``-``-joined length is at most ``chars``: the longest part is cut in its middle
    first (a layer name's start and end tell layers apart), down to 9 characters at least."""
    parts = list(parts)
    while (excess := len("-".join(parts)) - chars) > 0:
        i = max(range(len(parts)), key=lambda k: len(parts[k]))
        keep = max(len(parts[i]) - excess, 9)
        if keep >= len(parts[i]):
            break
        head = (keep - 1) // 2
        parts[i] = parts[i][:head] + "_" + parts[i][len(parts[i]) - (keep - 1 - head):]
    return parts


def safe_name(*parts) -> str:
    """``parts`` joined by ``-`` as a file name: every run of other characters (dots, slashes, quotes,
    spaces, non-ASCII) one ``_``; each part at most PART_CHARS characters and the whole NAME_CHARS, long
    parts cut in the middle; ``farms-viz`` when nothing is left."""
    cleaned = [_UNSAFE.sub("_", str(p)).strip("_-") for p in parts if p is not None]
    cleaned = _fit([c[:PART_CHARS // 2] + "_" + c[-(PART_CHARS // 2 - 1):] if len(c) > PART_CHARS else c
                    for c in cleaned if c], NAME_CHARS)
    return "-".join(cleaned)[:NAME_CHARS] or "farms-viz"


def settings_tag(settings: Settings) -> str:
    """The settings that change alpha, short enough for a file name: ``xmin_peak-w2000-q1-ops15``."""
    tag = f"{settings.fit}-w{settings.window}-q{settings.q:g}-ops{settings.ops}"
    if settings.fit == "xmin_mid":
        tag += f"-pos{settings.xmin_pos:g}"
    return tag + ("-convgrid" if settings.conv_rule == "grid" else "")


def settings_words(settings: Settings) -> str:
    """The same settings for a figure's context line, in the sidebar's words and short enough for a
    half-width chart at 1024 px: ``xmin_peak, window 2000, q 1, ops 15``."""
    return (settings.fit + (f" (xmin_pos {settings.xmin_pos:g})" if settings.fit == "xmin_mid" else "")
            + f", window {settings.window}, q {settings.q:g}, ops {settings.ops}"
            + (", conv window grid" if settings.conv_rule == "grid" else ""))


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def options_tag(options: dict) -> str:
    """A call's options for a file name: ``sparsity0.7-epsilon0.3-blocks_only`` (a true flag by its
    name, a false or None one left out)."""
    return "-".join(k if v is True else f"{k}{_short(v)}" for k, v in options.items() if v not in (None, False))


def options_words(options: dict) -> str:
    """The same options in words: ``sparsity 0.7, epsilon 0.3, blocks only``."""
    return ", ".join(k.replace("_", " ") if v is True else f"{k.replace('_', ' ')} {_short(v)}"
                     for k, v in options.items() if v not in (None, False))


def chart_config(*parts) -> dict:
    """``st.plotly_chart``'s config: no plotly logo, and the PNG button's file name from ``parts``."""
    return {"displaylogo": False, "toImageButtonOptions": {"filename": safe_name(*parts)}}


def download(container, label: str, data, stem: str, suffix: str, key: str, **kw):
    """A download button in ``container`` for ``data`` (bytes, or a callable that makes them on the
    click, for files that are large or slow to make), named ``stem`` + ``suffix`` (``stem`` is
    a :func:`safe_name`). A click does not rerun the page (nothing on it changes)."""
    kw.setdefault("on_click", "ignore")
    return container.download_button(label, data, key=key, file_name=stem + suffix, mime=MIME[suffix], **kw)


def table_downloads(container, table, stem: str, key: str, what: str = "Table") -> None:
    """CSV and JSON buttons side by side for ``table``: the bytes ``farms-viz ... --out`` writes, made
    when clicked (both took 38 ms on every rerun for minilm's 37 rows)."""
    cols = container.columns(len(TABLE_FORMATS))
    for col, fmt in zip(cols, TABLE_FORMATS):
        download(col, f"{what} {fmt.upper()}", lambda fmt=fmt: table_bytes(table, fmt), stem, f".{fmt}",
                 f"{key}_{fmt}", icon=":material/download:", width="stretch")




#: the top margin each context line under a figure's title adds (12 px text and its spacing)
LINE_PX = 16


def chart(container, fig, key: str, lines=(), file=(), chars: int = CONTEXT_CHARS, **kw):
    """``fig`` in ``container``: its title gains a subtitle of the context ``lines`` (model and layer,
    settings; see :func:`farms_viz.figures.style.subtitle`), its top margin grows to hold them, and
    its PNG button names the file from ``file`` (:func:`chart_config`)."""
    lines = [line for line in lines if line]
    if lines:
        fig.layout.title.subtitle = subtitle(*lines, chars=chars)
        fig.layout.margin.t = (fig.layout.margin.t or 50) + LINE_PX * len(lines)
    return container.plotly_chart(fig, key=key, theme=None, config=chart_config(*file), **kw)
