"""Pick the profile folder and the variant: preferred variant first, then root order.

The first root complete for the preferred variant wins; only when no root has
it does the other variant serve (fp32 always can, int8 only on a CPU that is
not blocked). So an override folder holding only fp32 never hides a complete
bundled int8 on an int8 machine. Every folder skipped is reported with why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from embedding_runtime._completeness import folder_problem
from embedding_runtime._locations import ModelRoot, RootKind
from embedding_runtime._variant import VariantDecision

logger = logging.getLogger(__name__)
# The reason of a folder whose weights do not reproduce the build's probe vectors (see _probe).
CANARY_MISMATCH = "canary_mismatch"
# The reason of a folder whose marker names the bundled pin but records other bytes (see _probe).
FORGED_MARKER = "forged_marker"


@dataclass(frozen=True)
class SkippedFolder:
    path: Path
    kind: RootKind
    variant: str
    reason: str


@dataclass(frozen=True)
class Resolution:
    """The chosen folder and variant (``folder`` is None when nothing can serve)."""

    folder: Path | None
    kind: RootKind | None
    variant: str | None
    variant_reason: str
    skipped: tuple[SkippedFolder, ...] = field(default=())
    # The preferred variant failed its canary wherever it was present, so the other one serves.
    canary_fallback: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "folder": str(self.folder) if self.folder else None,
            "kind": self.kind,
            "variant": self.variant,
            "variant_reason": self.variant_reason,
            "canary_fallback": self.canary_fallback,
            "skipped": [
                {"path": str(s.path), "kind": s.kind, "variant": s.variant, "reason": s.reason} for s in self.skipped
            ],
        }


def resolve(
    profile_id: str,
    roots: Sequence[ModelRoot],
    decision: VariantDecision,
    *,
    verify: bool = False,
    accept: Callable[[Path, str], str | None] | None = None,
) -> Resolution:
    """Find the folder to load ``profile_id`` from; see the module docstring for the order.

    ``accept(folder, variant)`` has the last word on a complete folder (the canary: do its
    weights reproduce the recorded vectors?): a reason it returns skips the folder too.
    """
    skipped: list[SkippedFolder] = []
    other = "fp32" if decision.preferred == "int8" else "int8"
    variants = [decision.preferred] + ([other] if other == "fp32" or decision.int8_allowed else [])
    for variant in variants:
        why = decision.reason if variant == decision.preferred else _fallback_reason(decision, other, skipped)
        for root in roots:
            folder = root.path / profile_id
            problem = folder_problem(folder, variant, verify=verify)
            if problem is None and accept is not None:
                problem = accept(folder, variant)
            if problem is None:
                fallback = variant != decision.preferred and _canary_failed(decision.preferred, skipped)
                return Resolution(folder, root.kind, variant, why, tuple(skipped), fallback)
            skipped.append(SkippedFolder(folder, root.kind, variant, problem))
            if problem != "folder does not exist":  # absent is normal; broken is worth a line in the log
                logger.info("skipping %s folder %s for %s: %s", root.kind, folder, variant, problem)
    return Resolution(None, None, None, decision.reason, tuple(skipped))


def _fallback_reason(decision: VariantDecision, other: str, skipped: Sequence[SkippedFolder]) -> str:
    preferred = decision.preferred
    if _canary_failed(preferred, skipped):
        return (
            f"{preferred} failed its canary in every folder that has it (this CPU's {preferred} kernels, "
            f"or damaged weights); {other} serves instead"
        )
    return f"no folder has {preferred} ({decision.reason}); {other} serves instead"


def _canary_failed(variant: str, skipped: Sequence[SkippedFolder]) -> bool:
    return any(s.variant == variant and s.reason.startswith(CANARY_MISMATCH) for s in skipped)
