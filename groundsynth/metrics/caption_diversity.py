"""Caption diversity measured on what captions SAY, not on their wording.

- Exact redundancy (the original's definition): 1 - unique captions / total captions.
- Canonical redundancy: the same over canonical forms. A caption's canonical form is the set
  of claims groundsynth.metrics.claims.parse_claims reads from it -- every synonym mapped
  back to its class, every slot phrase (place, amount, structure, count, parcel size, linear
  feature, shoreline, ranking, dominance, negation, water tone and gradient, no data) to its slot and value -- sorted, so word
  order, lead-ins, tails and synonyms make no difference. A caption from which the parser reads
  no claim keeps its own text (lower case, punctuation and spacing normalised) as its form:
  with nothing mapped back there is nothing to merge it with.

Two captions with the same canonical form assert the same things about their tiles, so
phrase pools cannot lower the canonical figure; only saying different true things can.
Limit: text the parser does not read (e.g. a VLM's "a marina with boats") does not count
towards diversity, so free text may be somewhat more diverse than this says.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from groundsynth.metrics.claims import Claims, parse_claims


def claim_items(c: Claims) -> list[str]:
    """The claims of a parsed caption as sorted strings (duplicates removed)."""
    items = {f"present:{n}" for n in c.named} | {f"absent:{n}" for n in c.negated}
    items |= {f"dominant:{n}" for n in c.dominant} | {f"dominant:{n}@{r}" for n, r in c.regional_dominant}
    items |= {f"at:{n}@{r}" for n, r in c.positions} | {f"dispersed:{n}" for n in c.dispersed}
    items |= {f"amount:{n}@{r}:{lo:g}-{hi:g}" for n, r, lo, hi in c.amounts}
    items |= {f"structure:{n}:{k}" for n, k in c.structures} | {f"parcels:{n}:{k}" for n, k in c.parcels}
    items |= {f"count:{n}:{lo}-{hi}" for n, lo, hi in c.counts} | {f"linear:{n}:{lo}-{hi}" for n, lo, hi in c.linear}
    items |= {f"shore_orientation:{o}" for o in c.shore_orientation} | {f"shore_shape:{s}" for s in c.shore_shape}
    items |= {"rank:" + ">".join(r) for r in c.rankings}
    items |= {f"nodata:{r}" for r in c.nodata_at}
    items |= {f"water_tone:{t}" for t in c.water_tone} | {f"water_paler_toward:{d}" for d in c.water_paler_toward}
    if c.shoreline:
        items.add("shoreline")
    if c.no_dominant:
        items.add("no_dominant")
    return sorted(items)


def canonical_form(text: str) -> str:
    """The caption's claims as one string (see module doc)."""
    items = claim_items(parse_claims(text))
    if items:
        return " | ".join(items)
    return "text:" + " ".join(re.sub(r"[^\w\s-]", " ", text.lower()).split())


def redundancy(forms: Iterable[str]) -> float:
    items = list(forms)
    return 1.0 - len(set(items)) / len(items) if items else 0.0


def canonical_redundancy(captions: Iterable[str]) -> float:
    """1 - unique canonical forms / total captions; 0.0 for no captions."""
    return redundancy(canonical_form(c) for c in captions)


def diversity(captions: Iterable[str], forms: Sequence[str] | None = None) -> dict:
    """{"captions", "exact", "canonical", "unique_canonical"} of a set of captions (None rates when empty);
    `forms`: their canonical forms when already known (one per caption, in order)."""
    caps = list(captions)
    forms = [canonical_form(c) for c in caps] if forms is None else list(forms)
    if len(forms) != len(caps):
        raise ValueError(f"expected one canonical form per caption, got {len(forms)} for {len(caps)}")
    return {"captions": len(caps), "exact": redundancy(caps) if caps else None,
            "canonical": redundancy(forms) if caps else None, "unique_canonical": len(set(forms))}
