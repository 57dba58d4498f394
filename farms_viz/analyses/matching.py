"""Which layer of checkpoint A goes with which layer of B: by name, by name without a prefix or
suffix one side adds, or by shape and order.

The same weights saved two ways differ in their names only: a state dict has ``encoder.layer.0...``
where the Hugging Face folder of the model-with-a-head has ``bert.encoder.layer.0...`` (and a
``classifier`` the other lacks); a wrapped model saves ``model.`` in front of every key. Modes:

- ``name``: exact names only.
- ``auto`` (default): exact names; unless they pair every layer of the smaller side, also each
  side's names without a prefix (their first one or two dotted parts, or their longest common
  prefix) and/or suffix (their last dotted part, or their longest common suffix), where a name has
  it; the choice that pairs the most layers wins (ties: the one that strips least), and is used
  only when it pairs more than the exact names do.
- ``order``: names are ignored; the i-th layer of a shape in A goes with the i-th layer of that
  shape in B (table order, i.e. model order).

No pandas here: names in table order and a shape key per name in, a :class:`Matching` out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from os.path import commonprefix

from farms_viz.errors import FarmsError

MATCH_MODES = ("auto", "name", "order")
#: each mode in a few words (the CLI's help, the page's control)
MATCH_TEXT = {"auto": "names, else names without a common prefix/suffix",
              "name": "exact names only",
              "order": "shape and order (names ignored)"}
#: what separates the parts of a layer name (torch: dots; TF/JAX checkpoints: slashes)
SEPARATORS = "./"
#: candidate prefixes / suffixes tried per side, most frequent first (plus the common ones and none)
MAX_PREFIXES, MAX_SUFFIXES = 6, 3
#: the per-row ``matched_by`` values
BY_NAME, BY_STRIPPED, BY_ORDER = "name", "stripped name", "shape and order"


@dataclass(frozen=True)
class Matching:
    """Pairs ``(name in A, name in B)`` in A's order; ``how`` is ``name``, ``stripped`` or ``order``;
    ``strip_a`` / ``strip_b`` the (prefix, suffix) taken off that side's names before matching."""

    pairs: tuple[tuple[str, str], ...]
    how: str
    n_a: int
    n_b: int
    strip_a: tuple[str, str] = ("", "")
    strip_b: tuple[str, str] = ("", "")

    def row_how(self, name_a: str, name_b: str) -> str:
        """How one pair was matched: an equal pair of names counts as matched by name."""
        if self.how == "order":
            return BY_ORDER
        return BY_NAME if name_a == name_b else BY_STRIPPED

    def describe(self) -> str:
        """One sentence, e.g. ``37 of 37 layers matched after stripping the prefix 'model.' from B``."""
        k = len(self.pairs)
        of = f"{k} of {self.n_a} layers" if self.n_a == self.n_b else f"{k} of A's {self.n_a} layers (B has {self.n_b})"
        if self.how == "order":
            return f"{of} matched by shape and order (the i-th layer of a shape in A with the i-th of that shape in B)"
        if self.how == "name":
            return f"{of} matched by name"
        parts = [f"the {what} {text!r} from {side}"
                 for side, (pre, suf) in (("A", self.strip_a), ("B", self.strip_b))
                 for what, text in (("prefix", pre), ("suffix", suf)) if text]
        return f"{of} matched after stripping " + " and ".join(parts)


def _cut(name: str, k: int, from_end: bool) -> str:
    """The first k parts of ``name`` with their separator (``model.`` for k = 1), or the last k
    parts with theirs (``.weight``); "" when the name has fewer parts."""
    seps = [i for i, c in enumerate(name) if c in SEPARATORS]
    if len(seps) < k:
        return ""
    return name[seps[-k]:] if from_end else name[: seps[k - 1] + 1]


def _common(names: list[str], from_end: bool) -> str:
    """The longest common prefix (suffix) of ``names`` that ends (starts) at a separator."""
    if len(names) < 2:
        return ""
    if from_end:
        return _common([n[::-1] for n in names], False)[::-1]
    p = commonprefix(names)
    cut = max(p.rfind(s) for s in SEPARATORS)
    return p[: cut + 1] if cut >= 0 else ""


def affixes(names: list[str]) -> tuple[list[str], list[str]]:
    """The prefixes and suffixes worth stripping from ``names``: "" (none), the longest common one,
    and the most frequent first one or two parts (prefixes) or last part (suffixes)."""
    pre = Counter(p for n in names for p in (_cut(n, 1, False), _cut(n, 2, False)) if p)
    suf = Counter(s for n in names if (s := _cut(n, 1, True)))
    out = []
    for counts, common, most in ((pre, _common(names, False), MAX_PREFIXES), (suf, _common(names, True), MAX_SUFFIXES)):
        cands = ["", common] + [a for a, c in counts.most_common(most) if c > 1 or len(names) == 1]
        out.append(list(dict.fromkeys(cands)))
    return out[0], out[1]


def strip(name: str, prefix: str, suffix: str) -> str:
    """``name`` without ``prefix`` and ``suffix`` where it has them (never down to nothing)."""
    out = name[len(prefix):] if prefix and name.startswith(prefix) else name
    out = out[: -len(suffix)] if suffix and out.endswith(suffix) and len(out) > len(suffix) else out
    return out or name


def _keys(names: list[str], prefix: str, suffix: str) -> dict[str, str]:
    """Stripped name -> name, the first name in table order winning a shared key."""
    out: dict[str, str] = {}
    for n in names:
        out.setdefault(strip(n, prefix, suffix), n)
    return out


def match_names(names_a: list[str], names_b: list[str], strip_affixes: bool = True) -> Matching:
    """Exact names; with ``strip_affixes`` also the best prefix/suffix strip (module docstring)."""
    exact = set(names_b)
    pairs = tuple((n, n) for n in dict.fromkeys(names_a) if n in exact)
    plain = Matching(pairs, "name", len(set(names_a)), len(exact))
    if not strip_affixes or len(pairs) >= min(plain.n_a, plain.n_b):
        return plain
    sides = []
    for names in (names_a, names_b):
        pre, suf = affixes(names)
        sides.append({(p, s): _keys(names, p, s) for p in pre for s in suf})
    best, best_rank = None, (len(pairs), 0)
    for sa, ka in sides[0].items():
        for sb, kb in sides[1].items():
            rank = (len(ka.keys() & kb.keys()), -len("".join(sa + sb)))
            if rank[0] > best_rank[0] or (rank[0] == best_rank[0] and best is not None and rank > best_rank):
                best, best_rank = (sa, ka, sb, kb), rank
    if best is None:
        return plain
    sa, ka, sb, kb = best
    # ka is in A's order (a key is inserted at its first name) and each of its names has one key
    pairs = tuple((n, kb[k]) for k, n in ka.items() if k in kb)
    return Matching(pairs, "stripped", plain.n_a, plain.n_b, sa, sb)


def match_order(names_a: list[str], names_b: list[str], shape_a: dict, shape_b: dict) -> Matching:
    """The i-th layer of each shape in A with the i-th layer of that shape in B (a None shape never matches)."""
    groups: dict = {}
    for n in dict.fromkeys(names_b):
        if shape_b.get(n) is not None:
            groups.setdefault(shape_b[n], []).append(n)
    seen: Counter = Counter()
    pairs = []
    for n in dict.fromkeys(names_a):
        key = shape_a.get(n)
        if key is None:
            continue
        i = seen[key]
        seen[key] += 1
        if i < len(groups.get(key, ())):
            pairs.append((n, groups[key][i]))
    return Matching(tuple(pairs), "order", len(set(names_a)), len(set(names_b)))


def match_layers(names_a: list[str], names_b: list[str], shape_a: dict, shape_b: dict, match: str = "auto",
                 labels: tuple[str, str] = ("A", "B")) -> Matching:
    """Pair A's and B's layers by ``match`` (one of MATCH_MODES); FarmsError with one sentence that
    says what else could work when no layer pairs up."""
    if match not in MATCH_MODES:
        raise FarmsError(f"match {match!r} is not one of {', '.join(MATCH_MODES)}.")
    m = (match_order(names_a, names_b, shape_a, shape_b) if match == "order"
         else match_names(names_a, names_b, strip_affixes=match == "auto"))
    if m.pairs:
        return m
    la, lb = labels
    by_shape = len(match_order(names_a, names_b, shape_a, shape_b).pairs) if match != "order" else 0
    if match == "order" and (named := len(match_names(names_a, names_b).pairs)):
        raise FarmsError(f"{la} and {lb} have no layer of the same shape: nothing to compare by shape and order; "
                         f"{named} layers match by name (match 'auto').")
    if match == "name":
        stripped = len(match_names(names_a, names_b).pairs)
        if stripped:
            raise FarmsError(f"{la} and {lb} have no layer name in common: nothing to compare by exact name; "
                             f"{stripped} layers match once a common prefix or suffix is stripped (match 'auto').")
    if by_shape:
        raise FarmsError(f"{la} and {lb} have no layer name in common, even without a common prefix or suffix; "
                         f"{by_shape} layers pair up by shape and order (match 'order'), if they are the same network.")
    raise FarmsError(f"{la} and {lb} have no layer in common (names and shapes differ): nothing to compare.")
